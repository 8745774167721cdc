//! `restore --to-time TIMESTAMP`: the stopped managed cluster brought back
//! to a moment with point-in-time recovery (`backup.pitr`, ADR 0023).

use crate::audit;
use crate::backups::pitr::{parse_time, restore};
use crate::config::{DatabaseTarget, Settings};
use crate::db::managed::{ClusterLock, ManagedPostgres};
use crate::exit::Exit;
use crate::startup::{self, StartError};

pub async fn restore_to_time(settings: Settings, to_time: &str) -> Exit {
    let fail = |e: &dyn std::fmt::Display, exit: Exit| {
        eprintln!("mogothrow77 restore: {e}");
        exit
    };
    let target = match parse_time(to_time) {
        Ok(t) => t,
        Err(e) => return fail(&format!("--to-time: {e}"), Exit::Config),
    };
    let DatabaseTarget::Managed { bin_dir } = &settings.database else {
        return fail(
            &"--to-time restores the managed database; with database.url the database \
              server's own point-in-time recovery (its DBA's tooling) is used instead",
            Exit::Config,
        );
    };
    let Some(policy) = settings.backup.pitr.clone() else {
        return fail(
            &"--to-time needs point-in-time recovery, and backup.pitr is off: only the \
              logical backups (restore --from FILE) can be restored",
            Exit::Config,
        );
    };
    let result = async {
        startup::become_service_user(&settings)?;
        let pg = ManagedPostgres::prepare(
            &settings.config.state_dir,
            bin_dir.as_deref(),
            settings.config.database.pool_size + 10,
        )
        .await?;
        let Some(_lock) = ClusterLock::try_acquire(&pg.layout)? else {
            return Err(StartError::Other(format!(
                "the service is running on state_dir {}: stop it first (systemctl stop mogothrow77)",
                settings.config.state_dir.display()
            )));
        };
        // A cluster left running by a killed `serve` is stopped first.
        pg.stop_orphan().await?;
        let ctx = audit::Context {
            actor: startup::cli_actor(),
            ..Default::default()
        };
        restore::to_time(&policy, pg, target, &ctx)
            .await
            .map_err(|e| StartError::Other(e.to_string()))
    }
    .await;
    match result {
        Ok(done) => {
            for w in &done.warnings {
                println!("warn  {w}");
            }
            let records: i64 = done
                .counts
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(_, n)| n.as_i64())
                .sum();
            println!(
                "restored the managed database to {} in {:.1} s: {} collection(s), {records} \
                 records",
                done.target,
                done.seconds,
                done.counts.as_object().map_or(0, |m| m.len()),
            );
            if done.audit_problems.is_empty() {
                println!(
                    "audit chain: {} entries verify; the restore is audited (database.restore)",
                    done.audit_entries
                );
            } else {
                for p in &done.audit_problems {
                    println!("FAIL  audit chain: {p}");
                }
            }
            println!(
                "the database as it was before is kept in {}: remove it once the restored one \
                 is checked (start the service: systemctl start mogothrow77)",
                done.kept.display()
            );
            if done.audit_problems.is_empty() {
                Exit::Ok
            } else {
                Exit::Failure
            }
        }
        Err(e) => fail(&e, e.exit()),
    }
}
