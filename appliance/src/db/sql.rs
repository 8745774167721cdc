//! The one way the server runs a SQL statement: [`Sql`], with the methods
//! of tokio-postgres's clients (`query`, `query_one`, `query_opt`,
//! `execute`, `batch_execute`) for the pool's connections and transactions
//! and for plain connections. Each statement
//!
//! - is a span (`db.query.summary` such as `SELECT users`, never a
//!   value) under the current trace context, when there is one and it is
//!   recorded; a statement outside any traced work opens no trace;
//! - is timed: one over `database.slow_statement_ms` is counted in
//!   `mogothrow77_db_slow_statements_total{operation}` and logged with its
//!   summary (not its text, which may name a collection's columns, and not
//!   its values).
//!
//! The inherent methods of tokio-postgres's clients are disallowed
//! (`appliance/clippy.toml`), so a statement cannot skip this by accident.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row, Statement, ToStatement};

use crate::metrics::Metrics;
use crate::telemetry::{Kind, Span};

/// Statement parameters, as tokio-postgres takes them.
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Until the configuration is read (`main` sets `database.slow_statement_ms`
/// for every command): its default.
static SLOW_STATEMENT_MS: AtomicU64 = AtomicU64::new(500);

/// Sets the duration over which a statement counts as slow.
pub fn set_slow_statement_threshold(threshold: Duration) {
    SLOW_STATEMENT_MS.store(threshold.as_millis() as u64, Ordering::Relaxed);
}

fn slow_statement_threshold() -> Duration {
    Duration::from_millis(SLOW_STATEMENT_MS.load(Ordering::Relaxed))
}

/// A statement's text, or a prepared statement with the text it was
/// prepared from (tokio-postgres's `Statement` does not keep it).
pub trait Text: Sync {
    type Statement: ?Sized + ToStatement + Sync;
    fn statement(&self) -> &Self::Statement;
    fn text(&self) -> &str;
}

impl Text for str {
    type Statement = str;
    fn statement(&self) -> &str {
        self
    }
    fn text(&self) -> &str {
        self
    }
}

impl Text for String {
    type Statement = str;
    fn statement(&self) -> &str {
        self
    }
    fn text(&self) -> &str {
        self
    }
}

/// A prepared statement and the text it was prepared from.
pub struct Prepared<'a> {
    statement: Statement,
    text: &'a str,
}

impl<'a> Prepared<'a> {
    pub fn new(statement: Statement, text: &'a str) -> Prepared<'a> {
        Prepared { statement, text }
    }
}

impl Text for Prepared<'_> {
    type Statement = Statement;
    fn statement(&self) -> &Statement {
        &self.statement
    }
    fn text(&self) -> &str {
        self.text
    }
}

/// Runs statements, each observed (module documentation).
pub trait Sql: Sync {
    fn query<T: ?Sized + Text>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send;

    fn query_one<T: ?Sized + Text>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Row, Error>> + Send;

    fn query_opt<T: ?Sized + Text>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send;

    fn execute<T: ?Sized + Text>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Statements without parameters, separated by semicolons (the summary
    /// names the first).
    fn batch_execute(&self, statements: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Implements [`Sql`] for `$ty`, whose statements run on the
/// tokio-postgres `$inner` that `$reach` leads to.
macro_rules! sql_impl {
    ($ty:ty => $inner:ty, |$c:ident| $reach:expr) => {
        #[allow(clippy::disallowed_methods)]
        impl Sql for $ty {
            async fn query<T: ?Sized + Text>(
                &self,
                statement: &T,
                params: Params<'_>,
            ) -> Result<Vec<Row>, Error> {
                let $c = self;
                observed(
                    statement.text(),
                    <$inner>::query($reach, statement.statement(), params),
                )
                .await
            }
            async fn query_one<T: ?Sized + Text>(
                &self,
                statement: &T,
                params: Params<'_>,
            ) -> Result<Row, Error> {
                let $c = self;
                observed(
                    statement.text(),
                    <$inner>::query_one($reach, statement.statement(), params),
                )
                .await
            }
            async fn query_opt<T: ?Sized + Text>(
                &self,
                statement: &T,
                params: Params<'_>,
            ) -> Result<Option<Row>, Error> {
                let $c = self;
                observed(
                    statement.text(),
                    <$inner>::query_opt($reach, statement.statement(), params),
                )
                .await
            }
            async fn execute<T: ?Sized + Text>(
                &self,
                statement: &T,
                params: Params<'_>,
            ) -> Result<u64, Error> {
                let $c = self;
                observed(
                    statement.text(),
                    <$inner>::execute($reach, statement.statement(), params),
                )
                .await
            }
            async fn batch_execute(&self, statements: &str) -> Result<(), Error> {
                let $c = self;
                observed(statements, <$inner>::batch_execute($reach, statements)).await
            }
        }
    };
}

sql_impl!(tokio_postgres::Client => tokio_postgres::Client, |c| c);
sql_impl!(tokio_postgres::Transaction<'_> => tokio_postgres::Transaction<'_>, |c| c);
sql_impl!(deadpool_postgres::Object => tokio_postgres::Client, |c| &***c);
sql_impl!(deadpool_postgres::Transaction<'_> => tokio_postgres::Transaction<'_>, |c| &**c);

impl<S: Sql> Sql for &S {
    fn query<T: ?Sized + Text>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send {
        (**self).query(statement, params)
    }
    fn query_one<T: ?Sized + Text>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Row, Error>> + Send {
        (**self).query_one(statement, params)
    }
    fn query_opt<T: ?Sized + Text>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send {
        (**self).query_opt(statement, params)
    }
    fn execute<T: ?Sized + Text>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> impl Future<Output = Result<u64, Error>> + Send {
        (**self).execute(statement, params)
    }
    fn batch_execute(&self, statements: &str) -> impl Future<Output = Result<(), Error>> + Send {
        (**self).batch_execute(statements)
    }
}

/// Statements prepared once per pooled connection (deadpool's statement
/// cache), kept with their text for [`Sql`].
pub trait Cached {
    fn prepared<'a>(
        &self,
        text: &'a str,
    ) -> impl Future<Output = Result<Prepared<'a>, Error>> + Send;
}

impl Cached for deadpool_postgres::Object {
    async fn prepared<'a>(&self, text: &'a str) -> Result<Prepared<'a>, Error> {
        let statement = deadpool_postgres::ClientWrapper::prepare_cached(self, text).await?;
        Ok(Prepared::new(statement, text))
    }
}

impl Cached for deadpool_postgres::Transaction<'_> {
    async fn prepared<'a>(&self, text: &'a str) -> Result<Prepared<'a>, Error> {
        let statement = deadpool_postgres::Transaction::prepare_cached(self, text).await?;
        Ok(Prepared::new(statement, text))
    }
}

/// Times `work`, the statement `text`: a span under the current context,
/// the slow-statement counter and log line. Also for what [`Sql`] does not
/// cover: each fetch from a portal (`query_portal`) is a statement.
pub async fn observed<R>(
    text: &str,
    work: impl Future<Output = Result<R, Error>>,
) -> Result<R, Error> {
    // The text is only read for a recorded span or a slow statement: most
    // statements cost an `Instant` and a comparison.
    let mut summary: Option<Summary> = None;
    let mut span = Span::within_current(
        || {
            let s = Summary::of(text);
            let name = s.to_string();
            summary = Some(s);
            name
        },
        Kind::Client,
    );
    if let (Some(span), Some(summary)) = (&mut span, &summary) {
        span.set("db.system.name", "postgresql");
        span.set("db.operation.name", summary.operation);
        span.set("db.query.summary", summary.to_string());
    }
    let started = Instant::now();
    let result = work.await;
    let took = started.elapsed();
    let threshold = slow_statement_threshold();
    if took > threshold {
        let summary = summary.unwrap_or_else(|| Summary::of(text));
        Metrics::shared().slow_statement(summary.label());
        tracing::warn!(
            statement = %summary,
            duration_ms = took.as_millis() as u64,
            threshold_ms = threshold.as_millis() as u64,
            "slow statement"
        );
    }
    if let (Some(span), Err(e)) = (&mut span, &result) {
        span.fail(super::describe_pg_error(e));
    }
    result
}

/// What a statement does and to which table, from its text: the span's
/// name (OpenTelemetry's `db.query.summary`). Never a value: literals and
/// parameters are skipped, a collection's table is named by its kind.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    /// The statement's keyword (`SELECT`, `INSERT`, …; for `WITH`, that of
    /// its main statement), or `OTHER`.
    pub operation: &'static str,
    pub target: Option<String>,
}

const OPERATIONS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "COPY",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SET",
    "RESET",
    "SHOW",
    "CREATE",
    "ALTER",
    "DROP",
    "LOCK",
    "SAVEPOINT",
    "RELEASE",
    "NOTIFY",
    "LISTEN",
    "UNLISTEN",
    "TRUNCATE",
    "ANALYZE",
    "VACUUM",
    "GRANT",
    "REVOKE",
    "COMMENT",
    "DO",
    "CALL",
];

impl Summary {
    pub fn of(text: &str) -> Summary {
        let words = top_level_words(text, 64);
        let Some(first) = words.first() else {
            return Summary {
                operation: "OTHER",
                target: None,
            };
        };
        let keyword = |w: &str| {
            OPERATIONS
                .iter()
                .find(|o| o.eq_ignore_ascii_case(w))
                .copied()
        };
        let mut operation = keyword(first).unwrap_or("OTHER");
        let mut start = 0;
        if first.eq_ignore_ascii_case("WITH") {
            // The main statement follows the common table expressions,
            // whose bodies are in parentheses.
            match words.iter().enumerate().skip(1).find_map(|(i, w)| {
                ["SELECT", "INSERT", "UPDATE", "DELETE"]
                    .iter()
                    .find(|o| o.eq_ignore_ascii_case(w))
                    .map(|o| (i, *o))
            }) {
                Some((i, o)) => {
                    operation = o;
                    start = i;
                }
                None => operation = "OTHER",
            }
        }
        let rest = &words[start + 1..];
        let after = |marker: &str| {
            rest.iter()
                .position(|w| w.eq_ignore_ascii_case(marker))
                .and_then(|i| rest.get(i + 1))
        };
        let target = match operation {
            "SELECT" | "DELETE" => after("FROM"),
            "INSERT" => after("INTO"),
            "UPDATE" | "COPY" => rest.iter().find(|w| !w.eq_ignore_ascii_case("ONLY")),
            "LOCK" => rest.iter().find(|w| !w.eq_ignore_ascii_case("TABLE")),
            _ => None,
        };
        Summary {
            operation,
            target: target.filter(|t| is_name(t)).map(|t| table_kind(t)),
        }
    }

    /// The operation as a metric label: one of a fixed set.
    pub fn label(&self) -> &'static str {
        match self.operation {
            "SELECT" => "select",
            "INSERT" => "insert",
            "UPDATE" => "update",
            "DELETE" => "delete",
            _ => "other",
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Some(t) => write!(f, "{} {t}", self.operation),
            None => f.write_str(self.operation),
        }
    }
}

/// A table's name as written (`schema.table`, quotes removed).
fn is_name(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// A collection's table (`records.c_42`) by its kind, so that span names
/// stay a small set: `records.c_{id}`.
fn table_kind(name: &str) -> String {
    match name.strip_prefix("records.c_") {
        Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
            "records.c_{id}".to_string()
        }
        _ => name.to_string(),
    }
}

/// The first `limit` words outside parentheses, comments and literals;
/// quoted identifiers lose their quotes and are joined to a qualified name
/// (`records."c_1"` → `records.c_1`).
fn top_level_words(text: &str, limit: usize) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    let flush = |word: &mut String, words: &mut Vec<String>, depth: usize| {
        if !word.is_empty() && depth == 0 {
            words.push(std::mem::take(word));
        }
        word.clear();
    };
    while let Some(c) = chars.next() {
        if words.len() >= limit {
            break;
        }
        match c {
            '-' if chars.peek() == Some(&'-') => {
                flush(&mut word, &mut words, depth);
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                flush(&mut word, &mut words, depth);
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '\'' => {
                flush(&mut word, &mut words, depth);
                // A literal; '' inside it is a quote.
                while let Some(c) = chars.next() {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            '"' => {
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    word.push(c);
                }
            }
            '(' => {
                flush(&mut word, &mut words, depth);
                if depth == 0 {
                    // Marks the group, so that what follows it is not
                    // taken for what precedes it.
                    words.push("()".to_string());
                }
                depth += 1;
            }
            ')' => {
                flush(&mut word, &mut words, depth);
                depth = depth.saturating_sub(1);
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '$' => word.push(c),
            _ => flush(&mut word, &mut words, depth),
        }
    }
    flush(&mut word, &mut words, depth);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(text: &str) -> String {
        Summary::of(text).to_string()
    }

    #[test]
    fn statements_are_summarized_by_keyword_and_table() {
        assert_eq!(
            summary("SELECT id, name FROM users WHERE id = $1"),
            "SELECT users"
        );
        assert_eq!(
            summary("  select count(*) from records.\"c_42\" where x = 'FROM secret'"),
            "SELECT records.c_{id}"
        );
        assert_eq!(
            summary("INSERT INTO audit_log (seq, hash) VALUES ($1, $2)"),
            "INSERT audit_log"
        );
        assert_eq!(
            summary("UPDATE jobs SET state = 'done' WHERE id = $1"),
            "UPDATE jobs"
        );
        assert_eq!(
            summary("DELETE FROM sessions WHERE expires_at < now()"),
            "DELETE sessions"
        );
        assert_eq!(
            summary("-- the queue\nWITH next AS (SELECT id FROM jobs FOR UPDATE SKIP LOCKED) UPDATE jobs SET state = 'running' FROM next"),
            "UPDATE jobs"
        );
        assert_eq!(summary("SELECT (SELECT 1 FROM a), 2 FROM b"), "SELECT b");
        assert_eq!(summary("SELECT 1"), "SELECT");
        assert_eq!(summary("SET LOCAL statement_timeout = 0"), "SET");
        assert_eq!(
            summary("/* x */ LOCK TABLE users IN SHARE MODE"),
            "LOCK users"
        );
        assert_eq!(summary("CREATE INDEX CONCURRENTLY i ON t (a)"), "CREATE");
        assert_eq!(summary("VALUES (1)"), "OTHER");
        assert_eq!(summary(""), "OTHER");
        assert_eq!(summary("SELECT * FROM (SELECT 1) AS x"), "SELECT");
    }

    #[test]
    fn values_never_reach_the_summary() {
        for text in [
            "SELECT 'hunter2' FROM users",
            "INSERT INTO t VALUES ('hunter2')",
            "UPDATE \"hunter2\" SET a = 1",
        ] {
            let s = summary(text);
            assert!(
                !s.contains("hunter2") || text.contains("\"hunter2\""),
                "{text} → {s}"
            );
        }
        assert_eq!(Summary::of("SELECT a FROM 'x'").target, None);
    }

    #[test]
    fn labels_are_a_fixed_set() {
        for (text, label) in [
            ("SELECT 1", "select"),
            ("insert into t values (1)", "insert"),
            ("WITH x AS (SELECT 1) DELETE FROM t", "delete"),
            ("BEGIN", "other"),
            ("nonsense", "other"),
        ] {
            assert_eq!(Summary::of(text).label(), label, "{text}");
        }
    }
}
