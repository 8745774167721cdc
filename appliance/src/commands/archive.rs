//! `backup`, `backup drill` and `restore`: archives written (encrypted
//! when `backup.age_recipients_file` is set), proven, and restored
//! (decrypted with `--identity`).

use super::{managed_cluster, pg_client_binaries, scratch_place, with_database};
use crate::audit;
use crate::config::{DatabaseTarget, Settings};
use crate::db::backup;
use crate::db::restore;
use crate::db::scratch;
use crate::exit::Exit;
use crate::startup::{self, Purpose, StartError};

/// `backup --out FILE`: the database through the running cluster (managed
/// mode starts it for the dump when the service is stopped).
pub async fn backup(settings: Settings, out: std::path::PathBuf, test_restore: bool) -> Exit {
    let result = async {
        startup::become_service_user(&settings)?;
        let binaries = pg_client_binaries(&settings)?;
        let database = startup::open_database(&settings, Purpose::Migrate).await?;
        let outcome = async {
            let started_at = std::time::SystemTime::now();
            let ca_file = settings.config.database.ca_file.clone();
            let recipients = &settings.backup.recipients;
            // Encrypted: dumped beside the database first, sealed into
            // FILE, the plaintext removed.
            let dump_to = if recipients.is_empty() {
                out.clone()
            } else {
                if out.exists() {
                    return Err(StartError::Other(
                        backup::BackupError::Exists {
                            path: out.display().to_string(),
                        }
                        .to_string(),
                    ));
                }
                let work = &settings.backup.work_dir;
                crate::backups::archive::create_private_dir(work).map_err(|e| {
                    StartError::Other(format!("cannot create {}: {e}", work.display()))
                })?;
                let plain = work.join(format!("backup-{}.dump.partial", std::process::id()));
                let _ = std::fs::remove_file(&plain);
                plain
            };
            // Each collection's record count in the dump's own snapshot,
            // recorded for drills to compare.
            let mut client = database.connections.connect_app().await?;
            let (summary, counts) = crate::backups::dump_counted(
                &mut client,
                &database.connections.app,
                ca_file.as_deref(),
                &binaries,
                &dump_to,
            )
            .await
            .map_err(|e| StartError::Other(e.to_string()))?;
            drop(client);
            let summary = if recipients.is_empty() {
                println!(
                    "backup written: {} ({} bytes, {} archive entries, read back with pg_restore --list)",
                    summary.path.display(),
                    summary.bytes,
                    summary.entries
                );
                if test_restore {
                    test_restore_backup(&settings, &database, &binaries, &summary).await?;
                }
                summary
            } else {
                let tested = if test_restore {
                    test_restore_backup(&settings, &database, &binaries, &summary).await
                } else {
                    Ok(())
                };
                let sealed = tested.and_then(|()| {
                    crate::age::encrypt_file(&dump_to, &out, recipients).map_err(|e| {
                        StartError::Other(format!("cannot encrypt the backup: {e}"))
                    })
                });
                let _ = std::fs::remove_file(&dump_to);
                sealed?;
                let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
                println!(
                    "backup written: {} ({bytes} bytes, encrypted with age for {} recipient(s); {} \
                     archive entries, read back with pg_restore --list before encryption)",
                    out.display(),
                    recipients.len(),
                    summary.entries
                );
                backup::Summary {
                    path: out.clone(),
                    bytes,
                    entries: summary.entries,
                }
            };
            let client = database.connections.connect_app().await?;
            let host = crate::privileges::host_name();
            match backup::record(&client, &summary, started_at, test_restore, &host, &counts).await {
                Ok(backup::Recording::Recorded) => {}
                Ok(backup::Recording::NoTable) => println!(
                    "note  the backup is not recorded for `diagnose`: the database's schema \
                     predates the record (pending migrations add it)"
                ),
                Err(e) => {
                    return Err(StartError::Other(format!(
                        "the backup {} was written, but recording it failed: {}",
                        summary.path.display(),
                        crate::db::describe_pg_error(&e)
                    )))
                }
            }
            Ok::<(), StartError>(())
        }
        .await;
        database.close().await;
        outcome
    }
    .await;
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("mogothrow77 backup: {e}");
            e.exit()
        }
    }
}

/// The identities of `--identity KEYFILE`.
fn read_identities(path: &std::path::Path) -> Result<Vec<crate::age::Identity>, StartError> {
    crate::age::identity_file(path)
        .map_err(|e| StartError::Other(format!("the key file {}: {e}", path.display())))
}

/// `backup --test-restore`: the archive restored into a scratch database
/// beside the live one, compared, dropped.
async fn test_restore_backup(
    settings: &Settings,
    database: &startup::Database,
    binaries: &crate::db::managed::PgBinaries,
    summary: &backup::Summary,
) -> Result<(), StartError> {
    let managed = managed_cluster(settings).await?;
    let check = scratch::test_restore(
        &database.connections,
        scratch_place(&managed),
        binaries,
        settings.config.database.ca_file.as_deref(),
        &summary.path,
        &settings.config.state_dir,
    )
    .await
    .map_err(|e| {
        StartError::Other(format!(
            "the backup {} was written, but its test restore failed: {e}",
            summary.path.display()
        ))
    })?;
    for w in &check.warnings {
        println!("warn  {w}");
    }
    println!(
        "test restore: the archive restored into a scratch database in {:.1} s with all \
         {} tables and {} applied migrations; the copy was dropped",
        check.seconds, check.tables, check.migrations
    );
    Ok(())
}

/// `restore --from FILE`: the database replaced by an archive. The archive
/// is read before anything is dropped. Managed: the database is recreated
/// and restored in one transaction as the cluster's superuser. External:
/// the appliance's objects are dropped and the archive restored in one
/// transaction as the migration role (`db::restore`).
pub async fn restore(
    settings: Settings,
    from: std::path::PathBuf,
    identity: Option<std::path::PathBuf>,
) -> Exit {
    let result = async {
        // The key is read first: it may be readable by root only.
        let identities = identity.as_deref().map(read_identities).transpose()?;
        startup::become_service_user(&settings)?;
        let binaries = pg_client_binaries(&settings)?;
        let opened = crate::backups::archive::open(
            &from,
            identities.as_deref(),
            &settings.backup.work_dir,
            "restore",
        )
        .map_err(|e| StartError::Other(e.to_string()))?;
        let from = opened.path().to_path_buf();
        let entries =
            backup::entries(&binaries, &from).map_err(|e| StartError::Other(e.to_string()))?;
        let database = startup::open_database(&settings, Purpose::Restore).await?;
        let outcome = match &settings.database {
            DatabaseTarget::Managed { bin_dir } => {
                restore_managed(&settings, bin_dir.as_deref(), binaries, &from).await
            }
            DatabaseTarget::External { .. } => {
                restore_external(&settings, &database, binaries, &from).await
            }
        };
        database.close().await;
        drop(opened);
        outcome.map(|target| (entries, target))
    }
    .await;
    match result {
        Ok((entries, target)) => {
            println!(
                "restored {} ({entries} archive entries) into {target}",
                from.display()
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("mogothrow77 restore: {e}");
            e.exit()
        }
    }
}

async fn restore_managed(
    settings: &Settings,
    bin_dir: Option<&std::path::Path>,
    binaries: crate::db::managed::PgBinaries,
    from: &std::path::Path,
) -> Result<String, StartError> {
    let pg = crate::db::managed::ManagedPostgres::prepare(
        &settings.config.state_dir,
        bin_dir,
        settings.config.database.pool_size + 10,
    )
    .await?;
    pg.recreate_database().await?;
    let env = pg.superuser_env();
    let from = from.to_path_buf();
    tokio::task::spawn_blocking(move || {
        backup::restore(&binaries, env, &from, backup::Owners::AsArchived)
    })
    .await
    .map_err(|e| StartError::Other(format!("the restore task failed: {e}")))?
    .map_err(|e| StartError::Other(e.to_string()))?;
    Ok("the managed database".to_string())
}

async fn restore_external(
    settings: &Settings,
    database: &startup::Database,
    binaries: crate::db::managed::PgBinaries,
    from: &std::path::Path,
) -> Result<String, StartError> {
    let other = |e: restore::RestoreError| StartError::Other(e.to_string());
    // This connection holds the migration lock until the restore is over.
    let client = database.connections.connect_owner().await?;
    let ready = restore::prepare(&client).await.map_err(other)?;
    let env = backup::libpq_env_for(
        &database.connections.owner,
        settings.config.database.ca_file.as_deref(),
    );
    let from = from.to_path_buf();
    let server_major = ready.server_major;
    let configured = settings.config.database.postgres_bin_dir.clone();
    let restored = tokio::task::spawn_blocking(move || {
        let (binaries, parts) =
            restore::client_for(server_major, binaries, configured.as_deref(), &from)?;
        restore::run(&binaries.bin_dir, env, &from, &parts)
    })
    .await
    .map_err(|e| StartError::Other(format!("the restore task failed: {e}")))?;
    if let Err(e) = restored {
        if !restore::settle(&client).await {
            return Err(StartError::Other(format!(
                "{e} (its PostgreSQL session was still rolling back a minute later; wait for \
                 it to end before restoring again)"
            )));
        }
        return Err(other(e));
    }
    drop(client);
    Ok(format!("database {}", ready.database))
}

/// `backup drill`: the newest backup restored into a scratch database and
/// checked; the outcome kept with the backup and audited.
pub async fn backup_drill(settings: Settings, identity: Option<std::path::PathBuf>) -> Exit {
    // The key is read first: it may be readable by root only.
    let identities = match identity.as_deref().map(read_identities).transpose() {
        Ok(ids) => ids,
        Err(e) => {
            eprintln!("mogothrow77 backup drill: {e}");
            return e.exit();
        }
    };
    with_database(
        &settings,
        Purpose::Migrate,
        "backup drill",
        async |database| {
            let binaries = pg_client_binaries(&settings)?;
            let managed = managed_cluster(&settings).await?;
            let drilled = crate::backups::drill::run(
                &database.connections,
                scratch_place(&managed),
                &binaries,
                settings.config.database.ca_file.as_deref(),
                identities.as_deref(),
                &settings.backup.work_dir,
                database.pitr.as_ref(),
            )
            .await;
            let mut client = database.connections.connect_app().await?;
            let ctx = audit::Context {
                actor: crate::startup::cli_actor(),
                ..Default::default()
            };
            crate::backups::drill::record(&mut client, &ctx, &drilled)
                .await
                .map_err(|e| {
                    StartError::Other(format!("the drill's outcome was not recorded: {e}"))
                })?;
            Ok(match drilled {
                Ok(drilled) => {
                    print_drill(&drilled);
                    Ok(if drilled.ok() {
                        Exit::Ok
                    } else {
                        Exit::Failure
                    })
                }
                Err(e) => Err(e.to_string()),
            })
        },
    )
    .await
}

fn print_drill(d: &crate::backups::drill::Drilled) {
    let age = std::time::SystemTime::now()
        .duration_since(d.taken_at)
        .unwrap_or_default();
    println!(
        "drill of {}{} (taken {:.1} hours ago), restored into a scratch database",
        d.archive,
        if d.encrypted { ", encrypted" } else { "" },
        age.as_secs_f64() / 3600.0
    );
    let show = |n: Option<i64>| n.map_or_else(|| "absent".to_string(), |n| n.to_string());
    for c in &d.counts {
        println!(
            "  {}  {}: {} records recorded at the dump, {} restored",
            if c.matches() { "ok  " } else { "FAIL" },
            c.collection,
            show(c.recorded),
            show(c.restored)
        );
    }
    if d.audit_problems.is_empty() {
        println!("  ok    audit chain: {} entries verify", d.audit_entries);
    } else {
        for p in &d.audit_problems {
            println!("  FAIL  audit chain: {p}");
        }
    }
    match &d.pitr {
        None => {}
        Some(Ok(p)) => {
            println!(
                "point-in-time drill: restored to {} into a scratch cluster in {:.1} s",
                p.target, p.seconds
            );
            for c in &p.counts {
                println!(
                    "  {}  {}: {} records at that moment, {} restored",
                    if c.matches() { "ok  " } else { "FAIL" },
                    c.collection,
                    show(c.recorded),
                    show(c.restored)
                );
            }
            if p.audit_problems.is_empty() {
                println!("  ok    audit chain: {} entries verify", p.audit_entries);
            }
            for problem in &p.audit_problems {
                println!("  FAIL  audit chain: {problem}");
            }
        }
        Some(Err(e)) => println!("point-in-time drill: FAIL  {e}"),
    }
    for w in &d.warnings {
        println!("  warn  {w}");
    }
    if d.ok() {
        println!(
            "drill passed in {:.1} s: {} collection(s) match, the audit chain verifies; the copy was dropped",
            d.seconds,
            d.counts.len()
        );
    } else {
        println!(
            "drill FAILED in {:.1} s: the backup does not restore to what was recorded; see \
             docs/operations.md#restore-drills",
            d.seconds
        );
    }
}
