//! The system page's data (version, schema, health) and the installation's
//! security settings.

use crate::db::Sql;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{Api, ApiJson, Ctx, Method};
use crate::app::AppState;
use crate::audit::{Event, Outcome};
use crate::authz::{Access, Permission};
use crate::db::migrate;
use crate::http::error::ErrorBody;

pub fn routes(api: Api) -> Api {
    api.route(
        Method::Get,
        "/api/v1/system",
        Access::Permission(Permission::SystemRead),
        system,
    )
    .route(
        Method::Get,
        "/api/v1/settings/security",
        Access::Permission(Permission::SettingsManage),
        security_settings,
    )
    .route(
        Method::Patch,
        "/api/v1/settings/security",
        Access::Permission(Permission::SettingsManage),
        update_security_settings,
    )
}

async fn system(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ErrorBody> {
    let client = state.pool.get().await?;
    let schema = migrate::status_for_readiness(&client).await;
    let (applied_level, schema_ok, schema_message) = match &schema {
        Ok(s) => (
            s.applied.keys().max().copied().unwrap_or(0),
            s.check_serveable().is_ok(),
            s.check_serveable().err().map(|e| e.to_string()),
        ),
        Err(e) => (0, false, Some(e.to_string())),
    };
    let row = client
        .query_one(
            "SELECT instance_id::text, current_setting('server_version') FROM appliance_installation",
            &[],
        )
        .await?;
    let instance_id: String = row.get(0);
    let postgres: String = row.get(1);
    Ok(Json(json!({
        "version": env!("APPLIANCE_VERSION"),
        "commit": env!("APPLIANCE_GIT_COMMIT"),
        "instance_id": instance_id,
        "schema": {
            "binary_level": migrate::binary_level(),
            "applied_level": applied_level,
            "compatible": schema_ok,
            "message": schema_message,
        },
        "database": { "reachable": true, "postgresql_version": postgres },
        "backups": backups(
            &client,
            state.backup_schedule.as_deref(),
            state.drill_schedule.as_deref(),
        )
        .await,
        "release_notes": release_notes(),
    })))
}

/// The schedule, the newest backup and the newest restore drill. Archive
/// paths are reduced to their file names (where they are stays on the host).
async fn backups(
    client: &tokio_postgres::Client,
    schedule: Option<&str>,
    drill_schedule: Option<&str>,
) -> serde_json::Value {
    let name = |archive: String| {
        std::path::Path::new(&archive)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(archive)
    };
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let last = Sql::query_opt(
        &client,
        "SELECT finished_at, archive, bytes, scheduled_for IS NOT NULL FROM backups \
             ORDER BY finished_at DESC LIMIT 1",
        &[],
    )
    .await
    .ok()
    .flatten()
    .map(|r| {
        json!({
            "finished_at": rfc3339(r.get(0)),
            "archive": name(r.get(1)),
            "bytes": r.get::<_, i64>(2),
            "scheduled": r.get::<_, bool>(3),
        })
    });
    let drill = Sql::query_opt(
        &client,
        "SELECT drilled_at, drill_ok, archive, drill_report FROM backups \
             WHERE drilled_at IS NOT NULL ORDER BY drilled_at DESC LIMIT 1",
        &[],
    )
    .await
    .ok()
    .flatten()
    .map(|r| {
        let report: Option<serde_json::Value> = r.get(3);
        let report = report.unwrap_or_default();
        json!({
            "drilled_at": rfc3339(r.get(0)),
            "ok": r.get::<_, Option<bool>>(1).unwrap_or(false),
            "archive": name(r.get(2)),
            "collections": report["collections"],
            "records": report["records"],
        })
    });
    json!({
        "schedule": schedule,
        "drill_schedule": drill_schedule,
        "last": last,
        "drill": drill,
    })
}

/// The running release's notes from the CHANGELOG.md compiled in; `null`
/// for a build whose version has none (a test fixture).
fn release_notes() -> serde_json::Value {
    use contracts::changelog;
    let releases = changelog::parse(changelog::CHANGELOG);
    changelog::release(&releases, env!("APPLIANCE_VERSION"))
        .and_then(|r| serde_json::to_value(r).ok())
        .unwrap_or(serde_json::Value::Null)
}

async fn read_settings(client: &deadpool_postgres::Client) -> Result<serde_json::Value, ErrorBody> {
    let row = client
        .query_one("SELECT require_mfa FROM security_settings", &[])
        .await?;
    Ok(json!({ "require_mfa": row.get::<_, bool>(0) }))
}

async fn security_settings(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ErrorBody> {
    let client = state.pool.get().await?;
    Ok(Json(read_settings(&client).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecuritySettings {
    require_mfa: Option<bool>,
}

async fn update_security_settings(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<SecuritySettings>,
) -> Result<Json<serde_json::Value>, ErrorBody> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let before: bool = tx
        .query_one("SELECT require_mfa FROM security_settings FOR UPDATE", &[])
        .await?
        .get(0);
    let after = req.require_mfa.unwrap_or(before);
    tx.execute(
        "UPDATE security_settings SET require_mfa = $1, updated_at = now()",
        &[&after],
    )
    .await?;
    ctx.audit_event(
        &tx,
        &Event::new("settings.update", "settings:security", Outcome::Success)
            .details(json!({ "require_mfa": { "from": before, "to": after } })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(read_settings(&client).await?))
}
