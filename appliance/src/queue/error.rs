//! Why a job's attempt failed, and whether another attempt may do better.

/// Why a job's attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (the database was away, a statement timed out).
    #[error("{0}")]
    Transient(String),
    /// Another attempt would fail the same way (the collection is gone).
    #[error("{0}")]
    Permanent(String),
    /// The worker lost the job (lease taken over, job cancelled): stop
    /// without recording anything.
    #[error("the job was cancelled or taken over by another worker")]
    Lost,
}

impl From<tokio_postgres::Error> for JobError {
    /// Data and integrity errors (SQLSTATE classes 22 and 23: a value the
    /// column cannot hold, a row that no longer exists to refer to) recur on
    /// every attempt; everything else (the database away, a timeout, a
    /// schema changed meanwhile, which the next attempt reads afresh) may
    /// not.
    fn from(e: tokio_postgres::Error) -> JobError {
        crate::metrics::Metrics::shared().db_error(crate::db::error_kind(&e));
        let text = crate::db::describe_pg_error(&e);
        if e.code().is_some_and(|c| recurs(c.code())) {
            JobError::Permanent(text)
        } else {
            JobError::Transient(text)
        }
    }
}

/// Whether an error with this SQLSTATE comes back on every attempt.
fn recurs(sqlstate: &str) -> bool {
    matches!(sqlstate.get(..2), Some("22" | "23"))
}

impl From<deadpool_postgres::PoolError> for JobError {
    fn from(e: deadpool_postgres::PoolError) -> JobError {
        crate::metrics::Metrics::shared().db_error(crate::db::pool_error_kind(&e));
        JobError::Transient(crate::db::describe_pool_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_integrity_errors_recur_others_may_not() {
        for (code, recurring) in [
            ("22003", true),  // numeric value out of range
            ("23503", true),  // foreign key violation (the export was deleted)
            ("57014", false), // statement timeout
            ("08006", false), // connection failure
            ("42703", false), // undefined column: a schema change the next attempt reads
            ("40001", false), // serialization failure
            ("", false),
        ] {
            assert_eq!(recurs(code), recurring, "{code}");
        }
    }
}
