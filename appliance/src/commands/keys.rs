//! `mogothrow77 key-file new` and `mogothrow77 admin rotate-keys`: making
//! the key-encryption key file and rotating the keys (docs/security.md,
//! section secrets-at-rest; ADR 0027).

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::audit::{self, Event, Outcome};
use crate::commands::with_app_connection;
use crate::config::Settings;
use crate::exit::Exit;
use crate::identity::keys as server_keys;
use crate::secrets::{file, Vault};
use crate::startup::Purpose;

/// `key-file new PATH`: a new file with one key; never replaces a file.
pub fn new_key_file(path: &Path) -> Exit {
    // `-`: to standard output, for a secret store (a Kubernetes Secret).
    if path == Path::new("-") {
        let made = crate::config::KeyFile {
            keys: vec![file::new_key()],
        };
        print!("{}", made.render());
        return Exit::Ok;
    }
    if path.exists() {
        eprintln!(
            "mogothrow77 key-file new: {} exists; a key file is never overwritten (it may \
             hold the only key that opens this installation's secrets)",
            path.display()
        );
        return Exit::Config;
    }
    match file::create(path) {
        Ok(made) => {
            println!(
                "made {} with key {} (mode 0600)",
                path.display(),
                made.newest().id
            );
            eprintln!(
                "give every replica a copy owned by the service user \
                 (`chown mogothrow77:mogothrow77 {p}`), set secrets.key_file = \"{p}\", and keep \
                 a copy with the backups: a restore onto another host needs it",
                p = path.display()
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("mogothrow77 key-file new: {e}");
            Exit::Failure
        }
    }
}

/// `admin rotate-keys [--stage] [--overlap-hours N]`.
pub async fn rotate(settings: &Settings, stage: bool, overlap_hours: Option<u64>) -> Exit {
    let actor = crate::startup::cli_actor();
    let overlap = Duration::from_secs(
        3600 * overlap_hours.unwrap_or(settings.config.auth.session_absolute_hours),
    );
    let location = settings.key_file.clone();
    with_app_connection(settings, Purpose::Migrate, "admin rotate-keys", async |client| {
        // After the privilege drop: the file is the service user's.
        let vault = Vault::open(&location).map_err(|e| e.to_string())?;
        let pg = |e: tokio_postgres::Error| crate::db::describe_pg_error(&e);
        let ctx = audit::Context {
            actor: actor.clone(),
            ..Default::default()
        };
        let tx = client.transaction().await.map_err(pg)?;
        // Not opened: every value is sealed again from its clear copy, so a
        // rotation also recovers from a lost key file (docs/runbooks/secrets-key.md).
        let in_force = vault.in_force(&tx).await.map_err(|e| e.to_string())?;
        let in_force_text = in_force
            .as_ref()
            .map_or_else(|| "none yet".to_string(), ToString::to_string);
        if stage {
            let added = file::stage(vault.path()).map_err(|e| e.to_string())?;
            let event = Event::new("secrets.key_stage", "secrets", Outcome::Success).details(
                json!({ "key_id": added.id.as_str(), "in_force": in_force_text,
                        "by": "mogothrow77 admin rotate-keys --stage" }),
            );
            audit::append(&tx, &ctx, &event)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(pg)?;
            println!(
                "added key {} to {}; it seals nothing yet (in force: {in_force_text})",
                added.id,
                vault.path().display(),
            );
            eprintln!(
                "copy {} to every replica that reads its own copy, then run \
                 `mogothrow77 admin rotate-keys` (without --stage) on one of them",
                vault.path().display()
            );
            return Ok(Exit::Ok);
        }
        // A key staged earlier (newest in the file, not in force) is used;
        // else a new one is added now (one host, or a shared file).
        let newest = vault.keys().newest().clone();
        let (to, staged) = if in_force.as_ref() != Some(&newest.id) {
            (newest, true)
        } else {
            (
                file::stage(vault.path()).map_err(|e| e.to_string())?,
                false,
            )
        };
        vault.reload().map_err(|e| e.to_string())?;
        vault.switch_to(&tx, &to).await.map_err(|e| e.to_string())?;
        let from = in_force_text;
        let rotated = server_keys::rotate(&tx, overlap).await.map_err(pg)?;
        let pass = vault.reseal_all(&tx, &to).await.map_err(|e| e.to_string())?;
        let sealed = pass.current + pass.sealed;
        let event = Event::new("secrets.rotate", "secrets", Outcome::Success).details(json!({
            "key_id": { "from": from, "to": to.id.as_str() },
            "staged_before": staged,
            "values_sealed": sealed,
            "server_keys_rotated": rotated,
            "overlap_hours": overlap.as_secs() / 3600,
            "by": "mogothrow77 admin rotate-keys",
        }));
        audit::append(&tx, &ctx, &event)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(pg)?;
        println!(
            "key-encryption key {from} → {}: {sealed} secret values sealed again; CSRF and \
             cursor keys rotated (the new ones sign in {} s, the previous ones verify for {} h)",
            to.id,
            server_keys::ACTIVATION.as_secs(),
            overlap.as_secs() / 3600
        );
        eprintln!(
            "key {from} stays in {} for restores of backups made before now; delete its line \
             once no backup you keep is older{}",
            vault.path().display(),
            if staged {
                ""
            } else {
                ". Replicas reading their own copy of the file need this one: copy it to them now"
            }
        );
        Ok(Exit::Ok)
    })
    .await
}
