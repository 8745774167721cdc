//! `mogothrow77 demo seed|reset`: demo data for an evaluator's first look.
//! `seed` makes three collections (every field type), thousands of records
//! from a seed, a user of every role with a one-time sign-in link, and a
//! stored export — through the code the API uses, each write audited — and
//! refuses a database holding collections it did not make (unless
//! `--force`). `reset` removes exactly what `seed` made (names prefixed
//! `demo_` and `demo.`), audited; the audit entries themselves stay.

mod data;

use crate::db::Sql;
use serde_json::json;
use tokio_postgres::Transaction;

use crate::audit::{self, Event, Outcome};
use crate::authz::Role;
use crate::cli::DemoCommand;
use crate::commands::with_app_connection;
use crate::config::Settings;
use crate::exit::Exit;
use crate::identity::{password, reset, users};
use crate::records::{self, schema, store};
use crate::startup::Purpose;
use data::{COLLECTION_PREFIX, USER_PREFIX};

/// Records written per transaction.
const BATCH: u64 = 250;

/// The demo's users: one per role.
const USERS: [(&str, Role); 4] = [
    ("demo.admin", Role::Admin),
    ("demo.editor", Role::Editor),
    ("demo.viewer", Role::Viewer),
    ("demo.auditor", Role::Auditor),
];

pub async fn run(settings: Settings, command: DemoCommand) -> Exit {
    let ctx = audit::Context {
        actor: crate::startup::cli_actor(),
        ..Default::default()
    };
    let base_url = settings.console_url(settings.listen.port());
    let retention =
        std::time::Duration::from_secs(settings.config.jobs.export_retention_hours * 3600);
    match command {
        DemoCommand::Seed { seed, scale, force } => {
            with_app_connection(&settings, Purpose::Migrate, "demo seed", async |client| {
                seed_demo(client, &ctx, &base_url, retention, seed, scale, force).await
            })
            .await
        }
        DemoCommand::Reset => {
            with_app_connection(&settings, Purpose::Migrate, "demo reset", async |client| {
                reset_demo(client, &ctx).await
            })
            .await
        }
    }
}

fn pg(e: tokio_postgres::Error) -> String {
    crate::db::describe_pg_error(&e)
}

async fn append(tx: &Transaction<'_>, ctx: &audit::Context, event: Event) -> Result<(), String> {
    let mut event = event;
    if let Some(details) = event.details.as_object_mut() {
        details.insert("by".to_string(), json!("mogothrow77 demo"));
    }
    audit::append(tx, ctx, &event)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Names of collections that are neither the demo's nor the appliance's own.
async fn foreign_collections(client: &tokio_postgres::Client) -> Result<Vec<String>, String> {
    Ok(records::list(client)
        .await
        .map_err(pg)?
        .into_iter()
        .map(|c| c.name)
        .filter(|n| !n.starts_with(COLLECTION_PREFIX) && !records::reserved::is_reserved(n))
        .collect())
}

async fn seed_demo(
    client: &mut tokio_postgres::Client,
    ctx: &audit::Context,
    base_url: &str,
    retention: std::time::Duration,
    seed: u64,
    scale: u64,
    force: bool,
) -> Result<Exit, String> {
    let status = crate::db::migrate::status(client)
        .await
        .map_err(|e| e.to_string())?;
    if status.check_serveable().is_err() {
        return Err("the database schema is not up to date: run `mogothrow77 migrate` (or start the service once) first".to_string());
    }
    let seeded: i64 = Sql::query_one(
        &*client,
        "SELECT (SELECT count(*) FROM collections WHERE starts_with(name, $1)) + \
                    (SELECT count(*) FROM users WHERE starts_with(username, $2))",
        &[&COLLECTION_PREFIX, &USER_PREFIX],
    )
    .await
    .map_err(pg)?
    .get(0);
    if seeded > 0 {
        return Err(
            "the demo is seeded already; `mogothrow77 demo reset` removes it first".to_string(),
        );
    }
    let foreign = foreign_collections(client).await?;
    if !foreign.is_empty() && !force {
        return Err(format!(
            "this database holds collections the demo did not make ({}); seed a fresh \
             installation, or add --force to put the demo beside them (nothing was changed)",
            foreign.join(", ")
        ));
    }

    // Users, each with a one-time link to set a password.
    let tx = client.transaction().await.map_err(pg)?;
    let mut links = Vec::new();
    let mut editor = 0;
    for (name, role) in USERS {
        let unusable = password::hash(&crate::identity::random_secret())
            .map_err(|e| format!("hashing: {e}"))?;
        let user = users::create(
            &tx,
            name,
            &format!("Demo {}", role.as_str()),
            role,
            &unusable,
        )
        .await
        .map_err(pg)?
        .ok_or_else(|| format!("a user named {name} exists already"))?;
        if role == Role::Editor {
            editor = user.id;
        }
        let token = reset::issue(&tx, user.id).await.map_err(pg)?;
        links.push((name, role, reset::link(base_url, &token)));
        append(
            &tx,
            ctx,
            Event::new("user.create", format!("user:{}", user.id), Outcome::Success)
                .details(json!({ "username": name, "role": role.as_str(), "email_set": false })),
        )
        .await?;
    }
    // Collections and their records, written as the API writes them.
    let collections = data::collections();
    for c in &collections {
        schema::create_collection(&tx, c.name, c.title, &c.fields)
            .await
            .map_err(|e| format!("{}: {e}", c.name))?;
        append(
            &tx,
            ctx,
            Event::new(
                "collection.create",
                format!("collection:{}", c.name),
                Outcome::Success,
            )
            .details(json!({ "fields": c.fields.iter().map(|f| json!({ "name": f.name, "type": records::field_type_name(f.field_type) })).collect::<Vec<_>>() })),
        )
        .await?;
    }
    tx.commit().await.map_err(pg)?;
    let mut rng = data::Rng::new(seed);
    let mut total = 0;
    for c in &collections {
        let collection = records::collection(&*client, c.name)
            .await
            .map_err(pg)?
            .ok_or_else(|| format!("{} vanished", c.name))?;
        let count = scale * c.share;
        let mut n = 0;
        while n < count {
            let tx = client.transaction().await.map_err(pg)?;
            for _ in 0..BATCH.min(count - n) {
                n += 1;
                let values = (c.make)(&mut rng, n);
                let fields: Vec<&String> = values.keys().collect();
                let record = store::insert(&tx, &collection, &values, editor)
                    .await
                    .map_err(|e| format!("{}: {e}", c.name))?;
                append(
                    &tx,
                    ctx,
                    Event::new(
                        "record.create",
                        format!("collection:{}/record:{}", c.name, record.id),
                        Outcome::Success,
                    )
                    .details(
                        json!({ "collection": c.name, "record_id": record.id, "fields": fields }),
                    ),
                )
                .await?;
            }
            tx.commit().await.map_err(pg)?;
        }
        total += count;
    }
    // A stored export of the open tickets, made by the job workers.
    let tx = client.transaction().await.map_err(pg)?;
    let request = records::export::Request {
        filter: Some(json!({ "field": "status", "op": "eq", "value": "open" }).to_string()),
        sort: Some("-priority".to_string()),
        ..Default::default()
    };
    let export = crate::jobs::export::create(
        &tx,
        "demo_tickets",
        &request,
        editor,
        "demo-seed",
        retention,
    )
    .await
    .map_err(pg)?;
    append(
        &tx,
        ctx,
        Event::new("export.create", format!("export:{}", export.id), Outcome::Success)
            .details(json!({ "export_id": export.id, "job_id": export.job_id, "collection": "demo_tickets" })),
    )
    .await?;
    // An import of more contacts (one row with a problem, so the import
    // shows what a report looks like), made by the job workers.
    let csv = data::contacts_csv(&mut rng, 50);
    let import = crate::jobs::import::create(
        &tx,
        "demo_contacts",
        records::import::Format::Csv,
        records::import::Mode::SkipInvalid,
        editor,
        "demo-seed",
    )
    .await
    .map_err(pg)?;
    crate::jobs::import::add_chunk(&tx, import, 0, csv.as_bytes())
        .await
        .map_err(pg)?;
    let sha256 =
        crate::audit::hex(ring::digest::digest(&ring::digest::SHA256, csv.as_bytes()).as_ref());
    crate::jobs::import::set_file(&tx, import, csv.len() as i64, &sha256)
        .await
        .map_err(pg)?;
    append(
        &tx,
        ctx,
        Event::new(
            "import.create",
            format!("import:{import}"),
            Outcome::Success,
        )
        .details(json!({
            "import_id": import,
            "collection": "demo_contacts",
            "format": "csv",
            "mode": "skip_invalid",
            "bytes": csv.len(),
            "sha256": sha256,
        })),
    )
    .await?;
    append(
        &tx,
        ctx,
        Event::new("demo.seed", "", Outcome::Success).details(json!({
            "seed": seed,
            "records": total,
            "collections": collections.iter().map(|c| c.name).collect::<Vec<_>>(),
        })),
    )
    .await?;
    tx.commit().await.map_err(pg)?;

    println!(
        "demo seeded: {} collections ({}), {total} records (seed {seed}), {} users, a stored \
         export of the open tickets and an import of 50 more contacts (both made once the \
         service runs)",
        collections.len(),
        collections
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", "),
        USERS.len()
    );
    println!(
        "one-time sign-in links (valid {} hours: set a password, then sign in):",
        reset::VALIDITY_HOURS
    );
    for (name, role, link) in links {
        println!("  {name} ({}): {link}", role.as_str());
    }
    println!("`mogothrow77 demo reset` removes all of it");
    Ok(Exit::Ok)
}

async fn reset_demo(
    client: &mut tokio_postgres::Client,
    ctx: &audit::Context,
) -> Result<Exit, String> {
    let tx = client.transaction().await.map_err(pg)?;
    let names: Vec<String> = Sql::query(
        &tx,
        "SELECT name FROM collections WHERE starts_with(name, $1) ORDER BY name",
        &[&COLLECTION_PREFIX],
    )
    .await
    .map_err(pg)?
    .iter()
    .map(|r| r.get(0))
    .collect();
    let mut records_deleted = 0i64;
    for name in &names {
        let c = records::collection(&tx, name)
            .await
            .map_err(pg)?
            .ok_or_else(|| format!("{name} vanished"))?;
        let jobs: Vec<i64> = Sql::query(
            &tx,
            "SELECT job_id FROM exports WHERE collection = $1",
            &[name],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| r.get(0))
        .collect();
        let import_jobs: Vec<i64> = Sql::query(
            &tx,
            "DELETE FROM imports WHERE collection = $1 RETURNING job_id",
            &[name],
        )
        .await
        .map_err(pg)?
        .iter()
        .filter_map(|r| r.get::<_, Option<i64>>(0))
        .collect();
        let jobs: Vec<i64> = jobs.into_iter().chain(import_jobs).collect();
        Sql::execute(&tx, "DELETE FROM exports WHERE collection = $1", &[name])
            .await
            .map_err(pg)?;
        Sql::execute(&tx, "DELETE FROM jobs WHERE id = ANY($1)", &[&jobs])
            .await
            .map_err(pg)?;
        let count: i64 = Sql::query_one(&tx, &format!("SELECT count(*) FROM {}", c.table()), &[])
            .await
            .map_err(pg)?
            .get(0);
        records_deleted += count;
        schema::drop_collection(&tx, &c)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        append(
            &tx,
            ctx,
            Event::new(
                "collection.delete",
                format!("collection:{name}"),
                Outcome::Success,
            )
            .details(json!({ "records_deleted": count })),
        )
        .await?;
    }
    let removed: Vec<(i64, String)> = Sql::query(
        &tx,
        "DELETE FROM users WHERE starts_with(username, $1) RETURNING id, username",
        &[&USER_PREFIX],
    )
    .await
    .map_err(pg)?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    append(
        &tx,
        ctx,
        Event::new("demo.reset", "", Outcome::Success).details(json!({
            "collections": names,
            "records_deleted": records_deleted,
            "users": removed.iter().map(|(_, n)| n).collect::<Vec<_>>(),
        })),
    )
    .await?;
    tx.commit().await.map_err(pg)?;
    if names.is_empty() && removed.is_empty() {
        println!("no demo data here: nothing to remove");
    } else {
        println!(
            "demo removed: {} collections with {records_deleted} records, {} users; the audit log \
             keeps its entries",
            names.len(),
            removed.len()
        );
    }
    Ok(Exit::Ok)
}
