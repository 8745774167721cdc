//! Collections and their fields: admins create, change and delete them;
//! everyone who can read records can read their schema.

use crate::db::Sql;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use super::support::load;
use super::{invalid_field, Api, ApiJson, ApiQuery, Ctx, Method};
use crate::app::AppState;
use crate::audit::{Event, Outcome};
use crate::authz::{Access, Permission};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::records::schema::{self, NewField, SchemaError};
use crate::records::{self, Collection};

pub fn routes(api: Api) -> Api {
    let read = Access::Permission(Permission::RecordsRead);
    let manage = Access::Permission(Permission::CollectionsManage);
    api.route(Method::Get, "/api/v1/collections", read, list)
        .route(Method::Post, "/api/v1/collections", manage, create)
        .route(
            Method::Get,
            "/api/v1/collections/{collection}",
            read,
            get_one,
        )
        .route(
            Method::Delete,
            "/api/v1/collections/{collection}",
            manage,
            delete_collection,
        )
        .route(
            Method::Post,
            "/api/v1/collections/{collection}/fields",
            manage,
            add_field,
        )
        .route(
            Method::Patch,
            "/api/v1/collections/{collection}/fields/{field}",
            manage,
            update_field,
        )
        .route(
            Method::Delete,
            "/api/v1/collections/{collection}/fields/{field}",
            manage,
            hide_field,
        )
        .route(
            Method::Post,
            "/api/v1/collections/{collection}/purge-hidden-fields",
            manage,
            purge_hidden,
        )
}

/// A visible field of `c` by name.
fn field_of(c: &Collection, field_name: &str) -> Result<records::Field, ErrorBody> {
    c.field(field_name).cloned().ok_or_else(|| {
        ErrorBody::new(
            ErrorCode::NotFound,
            format!("collection {:?} has no field {field_name:?}", c.name),
        )
    })
}

impl From<SchemaError> for ErrorBody {
    fn from(e: SchemaError) -> ErrorBody {
        match e {
            SchemaError::Invalid { path, message } => invalid_field(&path, message),
            SchemaError::CollectionExists(_) | SchemaError::FieldExists(_) => {
                ErrorBody::new(ErrorCode::Conflict, e.to_string())
            }
            SchemaError::Conflict {
                message,
                record_ids,
            } => ErrorBody::new(ErrorCode::SchemaConflict, message)
                .with_details(json!({ "record_ids": record_ids })),
            SchemaError::Busy => {
                ErrorBody::new(ErrorCode::CollectionBusy, e.to_string()).retry_after(5)
            }
            SchemaError::Db(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldInput {
    name: String,
    #[serde(rename = "type")]
    field_type: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    unique: bool,
    #[serde(default)]
    indexed: bool,
    #[serde(default)]
    sensitive: bool,
    #[serde(default)]
    enum_values: Vec<String>,
    #[serde(default)]
    default: Option<Json_>,
}

impl FieldInput {
    fn into_new(self, path: &str) -> Result<NewField, ErrorBody> {
        let field_type = records::parse_field_type(&self.field_type).ok_or_else(|| {
            invalid_field(
                &format!("{path}.type"),
                format!(
                    "unknown type {:?}; expected text, integer, decimal, boolean, date, timestamp, enum or json",
                    self.field_type
                ),
            )
        })?;
        Ok(NewField {
            name: self.name,
            field_type,
            required: self.required,
            unique: self.unique,
            indexed: self.indexed,
            sensitive: self.sensitive,
            enum_values: self.enum_values,
            default: self.default.filter(|d| !d.is_null()),
        })
    }
}

/// The people's collections; the appliance's own (reserved) are left out
/// (they are still reachable by name).
async fn list(State(state): State<AppState>) -> Result<Json<Json_>, ErrorBody> {
    let client = state.pool.get().await?;
    let items: Vec<Collection> = records::list(&**client)
        .await?
        .into_iter()
        .filter(|c| !records::reserved::is_reserved(&c.name))
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn get_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Collection>, ErrorBody> {
    let client = state.pool.get().await?;
    Ok(Json(load(&**client, &name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCollection {
    name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    fields: Vec<FieldInput>,
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<CreateCollection>,
) -> Result<Response, ErrorBody> {
    if req.title.chars().count() > 200 || req.title.chars().any(char::is_control) {
        return Err(invalid_field(
            "title",
            "at most 200 characters, no control characters",
        ));
    }
    if records::reserved::is_reserved(&req.name) {
        return Err(invalid_field(
            "name",
            format!(
                "names starting with {} are reserved for the appliance; pick another name",
                records::reserved::PREFIX
            ),
        ));
    }
    let mut fields = Vec::with_capacity(req.fields.len());
    for (i, f) in req.fields.into_iter().enumerate() {
        fields.push(f.into_new(&format!("fields[{i}]"))?);
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    schema::create_collection(&tx, &req.name, &req.title, &fields).await?;
    let created = load(&*tx, &req.name).await?;
    ctx.audit_event(&tx, &Event::new("collection.create", format!("collection:{}", created.name), Outcome::Success)
            .details(json!({
                "fields": created.fields.iter().map(|f| json!({ "name": f.name, "type": f.field_type })).collect::<Vec<_>>(),
            }))).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// The appliance's own collections keep their schema.
fn refuse_reserved(name: &str) -> Result<(), ErrorBody> {
    if records::reserved::is_reserved(name) {
        return Err(ErrorBody::new(
            ErrorCode::Conflict,
            format!(
                "{name} is reserved for the appliance (`mogothrow77 smoke` writes to it); its \
                 schema cannot be changed and it cannot be deleted"
            ),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Confirm {
    confirm: Option<String>,
}

async fn delete_collection(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<Confirm>,
) -> Result<Response, ErrorBody> {
    refuse_reserved(&name)?;
    if q.confirm.as_deref() != Some(name.as_str()) {
        return Err(invalid_field(
            "confirm",
            format!(
                "deleting a collection deletes all its records; repeat its name: ?confirm={name}"
            ),
        ));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let c = load(&*tx, &name).await?;
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    let count: i64 = tx
        .query_one(&format!("SELECT count(*) FROM {}", c.table()), &[])
        .await?
        .get(0);
    schema::drop_collection(&tx, &c).await?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "collection.delete",
            format!("collection:{name}"),
            Outcome::Success,
        )
        .details(json!({ "records_deleted": count })),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add_field(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<FieldInput>,
) -> Result<Response, ErrorBody> {
    refuse_reserved(&name)?;
    let new = input.into_new("field")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let c = load(&*tx, &name).await?;
    let field = schema::add_field(&tx, &c, &new).await?;
    ctx.audit_event(
        &tx,
        &Event::new("field.add", format!("collection:{name}"), Outcome::Success).details(json!({
            "field": field.name, "type": field.field_type, "required": field.required,
            "unique": field.unique, "indexed": field.indexed,
        })),
    )
    .await?;
    tx.commit().await?;
    let c = load(&**client, &name).await?;
    for unique in [true, false] {
        let wanted = if unique { field.unique } else { field.indexed };
        if !wanted {
            continue;
        }
        if let Err(e) = schema::build_index(&client, &c, &field, unique).await {
            // The field stays, without the index it could not get; the
            // audit log says so.
            let column = if unique { "is_unique" } else { "indexed" };
            client
                .execute(
                    &format!("UPDATE collection_fields SET {column} = false WHERE id = $1"),
                    &[&field.id],
                )
                .await?;
            let error = ErrorBody::from(e);
            let key = if unique { "unique" } else { "indexed" };
            let tx = client.transaction().await?;
            ctx.audit_event(
                &tx,
                &Event::new(
                    "field.update",
                    format!("collection:{name}"),
                    Outcome::Failure,
                )
                .details(json!({
                    "field": field.name,
                    "changes": { key: false },
                    "reason": error.code,
                })),
            )
            .await?;
            tx.commit().await?;
            return Err(error);
        }
    }
    Ok((StatusCode::CREATED, Json(load(&**client, &name).await?)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateField {
    #[serde(rename = "type")]
    field_type: Option<String>,
    name: Option<String>,
    required: Option<bool>,
    unique: Option<bool>,
    indexed: Option<bool>,
    sensitive: Option<bool>,
    enum_values: Option<Vec<String>>,
}

async fn update_field(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((name, field_name)): Path<(String, String)>,
    ApiJson(req): ApiJson<UpdateField>,
) -> Result<Json<Collection>, ErrorBody> {
    refuse_reserved(&name)?;
    let mut client = state.pool.get().await?;
    let c = load(&**client, &name).await?;
    let field = field_of(&c, &field_name)?;
    let mut changes = serde_json::Map::new();
    let tx = client.transaction().await?;
    // A type change comes first: it rewrites the column, and the other
    // changes then apply to the new type.
    let mut field = field;
    if let Some(t) = &req.field_type {
        let to = records::parse_field_type(t).ok_or_else(|| {
            invalid_field(
                "type",
                format!("unknown type {t:?}; expected text, integer, decimal, boolean, date, timestamp, enum or json"),
            )
        })?;
        if to != field.field_type {
            let values = req.enum_values.clone().unwrap_or_default();
            schema::change_type(&tx, &c, &field, to, &values).await?;
            changes.insert("type".into(), json!({ "from": field.field_type, "to": to }));
            field.field_type = to;
            field.enum_values = values;
        }
    }
    if let Some(new_name) = &req.name {
        if *new_name != field.name {
            let probe = NewField {
                name: new_name.clone(),
                field_type: field.field_type,
                required: false,
                unique: false,
                indexed: false,
                sensitive: false,
                enum_values: field.enum_values.clone(),
                default: None,
            };
            let taken: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
            schema::validate("name", &probe, &taken)?;
            // Metadata only: the column is named after the field's id.
            tx.execute(
                "UPDATE collection_fields SET name = $2 WHERE id = $1",
                &[&field.id, new_name],
            )
            .await?;
            changes.insert("name".into(), json!({ "from": field.name, "to": new_name }));
        }
    }
    if let Some(required) = req.required.filter(|r| *r != field.required) {
        schema::set_required(&tx, &c, &field, required).await?;
        changes.insert("required".into(), json!(required));
    }
    if let Some(sensitive) = req.sensitive.filter(|s| *s != field.sensitive) {
        tx.execute(
            "UPDATE collection_fields SET sensitive = $2 WHERE id = $1",
            &[&field.id, &sensitive],
        )
        .await?;
        changes.insert("sensitive".into(), json!(sensitive));
    }
    if let Some(values) = &req.enum_values {
        if field.field_type != records::FieldType::Enum {
            return Err(invalid_field(
                "enum_values",
                "only enum fields take enum_values",
            ));
        }
        schema::set_enum_values(&tx, &c, &field, values).await?;
        changes.insert("enum_values".into(), json!(values));
    }
    let index_changes: Vec<(bool, bool)> = [
        (true, req.unique.filter(|u| *u != field.unique)),
        (false, req.indexed.filter(|i| *i != field.indexed)),
    ]
    .into_iter()
    .filter_map(|(unique, want)| want.map(|w| (unique, w)))
    .collect();
    if field.field_type == records::FieldType::Json && index_changes.iter().any(|(_, w)| *w) {
        return Err(invalid_field(
            "indexed",
            "json fields cannot be indexed or unique; index a typed field instead",
        ));
    }
    let current_name = req.name.clone().unwrap_or(field.name.clone());
    if !changes.is_empty() {
        schema::touch(&tx, &c).await?;
        ctx.audit_event(
            &tx,
            &Event::new(
                "field.update",
                format!("collection:{name}"),
                Outcome::Success,
            )
            .details(json!({ "field": current_name, "changes": changes })),
        )
        .await?;
    }
    tx.commit().await?;
    // Index builds run outside a transaction, after the other changes
    // committed; each one is audited with its outcome.
    for (unique, want) in index_changes {
        let key = if unique { "unique" } else { "indexed" };
        let outcome = if want {
            schema::build_index(&client, &c, &field, unique).await
        } else {
            schema::drop_index(&client, &field, unique).await
        };
        if outcome.is_ok() {
            let column = if unique { "is_unique" } else { "indexed" };
            client
                .execute(
                    &format!("UPDATE collection_fields SET {column} = $2 WHERE id = $1"),
                    &[&field.id, &want],
                )
                .await?;
        }
        let error = outcome.err().map(ErrorBody::from);
        let tx = client.transaction().await?;
        ctx.audit_event(
            &tx,
            &Event::new(
                "field.update",
                format!("collection:{name}"),
                if error.is_some() {
                    Outcome::Failure
                } else {
                    Outcome::Success
                },
            )
            .details(json!({
                "field": current_name,
                "changes": { key: want },
                "reason": error.as_ref().map(|e| e.code),
            })),
        )
        .await?;
        tx.commit().await?;
        if let Some(error) = error {
            return Err(error);
        }
    }
    Ok(Json(load(&**client, &name).await?))
}

async fn hide_field(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((name, field_name)): Path<(String, String)>,
) -> Result<Response, ErrorBody> {
    refuse_reserved(&name)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let c = load(&*tx, &name).await?;
    let field = field_of(&c, &field_name)?;
    schema::hide_field(&tx, &c, &field).await?;
    ctx.audit_event(
        &tx,
        &Event::new("field.hide", format!("collection:{name}"), Outcome::Success)
            .details(json!({ "field": field.name })),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn purge_hidden(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<Json<Json_>, ErrorBody> {
    refuse_reserved(&name)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let c = load(&*tx, &name).await?;
    let hidden: Vec<_> = records::fields(&*tx, c.id, true)
        .await?
        .into_iter()
        .filter(|f| f.hidden)
        .collect();
    for f in &hidden {
        schema::purge_field(&tx, &c, f).await?;
    }
    let names: Vec<&str> = hidden.iter().map(|f| f.name.as_str()).collect();
    ctx.audit_event(
        &tx,
        &Event::new(
            "field.purge",
            format!("collection:{name}"),
            Outcome::Success,
        )
        .details(json!({ "fields": names })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "purged": names })))
}
