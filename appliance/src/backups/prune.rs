//! Retention: scheduled archives beyond `backup.keep` or older than
//! `backup.keep_days` are removed — never the newest, never a file outside
//! `backup.dir`, never one the upgrade tool or `mogothrow77 backup` wrote.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::db::Sql;

use crate::config::BackupPolicy;

/// What one pass removed.
#[derive(Debug, Default)]
pub struct Pruned {
    pub archives: Vec<String>,
}

/// Whether the backup at `index` (0 = newest) of `finished_at` goes.
fn expired(policy: &BackupPolicy, index: usize, finished_at: SystemTime, now: SystemTime) -> bool {
    if index == 0 {
        return false;
    }
    let by_count = policy.keep > 0 && index >= policy.keep as usize;
    let by_age = policy.keep_days > 0
        && now.duration_since(finished_at).unwrap_or_default()
            > Duration::from_secs(u64::from(policy.keep_days) * 86_400);
    by_count || by_age
}

/// Removes what retention says goes, marking each row pruned; slot
/// bookkeeping older than 60 days goes too.
pub async fn prune<C: Sql>(
    client: &C,
    policy: &BackupPolicy,
) -> Result<Pruned, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, archive, finished_at FROM backups \
             WHERE scheduled_for IS NOT NULL AND pruned_at IS NULL \
             ORDER BY finished_at DESC, id DESC",
            &[],
        )
        .await?;
    let now = SystemTime::now();
    let mut pruned = Pruned::default();
    for (index, row) in rows.iter().enumerate() {
        let (id, archive, finished_at): (i64, String, SystemTime) =
            (row.get(0), row.get(1), row.get(2));
        if !expired(policy, index, finished_at, now) {
            continue;
        }
        let path = Path::new(&archive);
        if path.parent() != Some(policy.dir.as_path()) {
            // Written where backup.dir pointed before: not ours to delete now.
            continue;
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(archive = %archive, error = %e, "cannot remove an expired backup");
                continue;
            }
        }
        client
            .execute("UPDATE backups SET pruned_at = now() WHERE id = $1", &[&id])
            .await?;
        pruned.archives.push(archive);
    }
    client
        .execute(
            "DELETE FROM backup_slots WHERE slot < now() - interval '60 days'",
            &[],
        )
        .await?;
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(keep: u32, keep_days: u32) -> BackupPolicy {
        BackupPolicy {
            schedule: None,
            dir: "/b".into(),
            keep,
            keep_days,
            copy_to: None,
            hook: None,
            hook_timeout: Duration::from_secs(1),
            recipients: Vec::new(),
            drill_schedule: None,
            identities: Vec::new(),
            work_dir: "/w".into(),
            pitr: None,
        }
    }

    #[test]
    fn keeps_by_count_and_age_and_always_the_newest() {
        let now = SystemTime::now();
        let days = |n: u64| now - Duration::from_secs(n * 86_400 + 60);
        let p = policy(2, 0);
        assert!(!expired(&p, 0, days(100), now));
        assert!(!expired(&p, 1, days(100), now));
        assert!(expired(&p, 2, days(0), now));
        let p = policy(0, 3);
        assert!(!expired(&p, 5, days(2), now));
        assert!(expired(&p, 1, days(3), now));
        assert!(
            !expired(&p, 0, days(30), now),
            "the newest stays, however old"
        );
        let p = policy(10, 3);
        assert!(expired(&p, 1, days(4), now), "either limit removes");
    }
}
