//! Secrets at rest: this host's key file opens what the database holds —
//! it has the key in force and every key a sealed value names — and no
//! secret is left unsealed.

use tokio_postgres::Client;

use super::{Check, Runbooks};
use crate::config::{KeyFile, KeyId, Settings};
use crate::db::{describe_pg_error, Sql};
use crate::secrets::columns;

pub const NAME: &str = "secrets at rest";
const PAGE: &str = "runbooks/secrets-key.md";

pub async fn check(client: &Client, settings: &Settings, runbooks: &Runbooks) -> Check {
    let location = &settings.key_file;
    if location.generate && !location.path.exists() {
        return Check::warn(
            NAME,
            format!("{} not made yet", location.path.display()),
            runbooks.fix(
                "start the service once: it makes the key file on its first start",
                PAGE,
            ),
        );
    }
    let keys = match KeyFile::read(&location.path) {
        Ok(keys) => keys,
        Err(e) => {
            return Check::fail(
                NAME,
                e.to_string(),
                runbooks.fix(
                    "restore the key file from a replica or the backups' copy",
                    PAGE,
                ),
            )
        }
    };
    let in_force = match Sql::query_opt(&client, "SELECT key_id FROM secrets_key", &[]).await {
        Ok(row) => row.map(|r| r.get::<_, String>(0)),
        Err(e) => return Check::fail(NAME, describe_pg_error(&e), String::new()),
    };
    let Some(in_force) = in_force else {
        return Check::warn(
            NAME,
            "no key in force yet",
            runbooks.fix(
                "start the service once: its first start seals the secrets",
                PAGE,
            ),
        );
    };
    let (by_key, unsealed) = match columns::census(client).await {
        Ok(c) => c,
        Err(e) => return Check::fail(NAME, describe_pg_error(&e), String::new()),
    };
    let known = |id: &str| KeyId::parse(id).is_some_and(|id| keys.get(&id).is_some());
    let missing: Vec<&str> = std::iter::once(in_force.as_str())
        .chain(by_key.iter().map(|(id, _)| id.as_str()))
        .filter(|id| !known(id))
        .collect();
    let summary = by_key
        .iter()
        .map(|(id, n)| format!("{n} under {id}"))
        .collect::<Vec<_>>()
        .join(", ");
    let file = location.path.display();
    if !missing.is_empty() {
        return Check::fail(
            NAME,
            format!(
                "{file} lacks key {} that the database needs (key in force {in_force}; sealed: {summary})",
                missing.join(", ")
            ),
            runbooks.fix(
                "copy the key file from the replica that rotated the keys (or the one kept with \
                 the backups)",
                PAGE,
            ),
        );
    }
    let value = format!(
        "key in force {in_force}, {} key(s) in {file}; sealed values: {}",
        keys.keys.len(),
        if summary.is_empty() {
            "none yet".to_string()
        } else {
            summary
        }
    );
    if unsealed > 0 {
        return Check::warn(
            NAME,
            format!("{value}; {unsealed} secret value(s) not sealed yet"),
            runbooks.fix(
                "restart the service: its start seals what an earlier release wrote",
                PAGE,
            ),
        );
    }
    Check::pass(NAME, value)
}
