//! CSV exports of a collection's records: the statement that reads every
//! record a filter matches (each value as PostgreSQL's text, the form `COPY`
//! writes), and the RFC 4180 encoding with values that spreadsheets would run
//! as formulas neutralised.
//!
//! The encoding matches `COPY … TO STDOUT (FORMAT csv, HEADER)` apart from
//! two documented differences: records end with CRLF (RFC 4180; `COPY` writes
//! LF), and, unless asked to keep them, text values starting with `=`, `+`,
//! `-`, `@`, a tab or a carriage return get a leading `'`. A missing value is
//! an empty field and an empty text is `""`, as in `COPY`.

use crate::db::sql::observed;
use crate::db::Sql;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;

use super::filter::{self, Filter, Limits, Value};
use super::query::{self, QueryError, SortKey};
use super::{Collection, Field, FieldType};

/// An export as asked for (query parameters, or the body of an export
/// job), kept as text so a stored export can be planned again later.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub filter: Option<String>,
    pub sort: Option<String>,
    pub fields: Option<String>,
    pub formulas: Option<String>,
}

/// Why an export request cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("formulas must be neutralise or keep")]
    Formulas,
}

/// What one export reads, planned against the collection as it is now.
pub struct Plan {
    pub collection: Collection,
    fields: Option<Vec<String>>,
    filter: Option<Filter>,
    sort: Vec<SortKey>,
    pub formulas: Formulas,
}

impl Plan {
    pub fn new(collection: Collection, request: &Request) -> Result<Plan, PlanError> {
        let filter = match request.filter.as_deref().filter(|f| !f.is_empty()) {
            Some(text) => Some(
                filter::parse(text, &collection.filter_fields(), Limits::default())
                    .map_err(QueryError::from)?,
            ),
            None => None,
        };
        let formulas = match request.formulas.as_deref() {
            None | Some("neutralise") => Formulas::Neutralise,
            Some("keep") => Formulas::Keep,
            Some(_) => return Err(PlanError::Formulas),
        };
        Ok(Plan {
            sort: query::parse_sort(&collection, request.sort.as_deref())?,
            fields: query::parse_fields(&collection, request.fields.as_deref())?,
            collection,
            filter,
            formulas,
        })
    }

    pub fn export(&self) -> Export<'_> {
        let fields: Vec<&Field> = match &self.fields {
            Some(names) => names
                .iter()
                .filter_map(|n| self.collection.field(n))
                .collect(),
            None => self.collection.fields.iter().collect(),
        };
        Export {
            collection: &self.collection,
            fields,
            filter: self.filter.as_ref(),
            sort: &self.sort,
            formulas: self.formulas,
        }
    }
}

impl Formulas {
    pub fn as_str(self) -> &'static str {
        match self {
            Formulas::Neutralise => "neutralise",
            Formulas::Keep => "keep",
        }
    }
}

/// Whether values that look like spreadsheet formulas are neutralised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formulas {
    /// Prefix them with `'` (the default).
    Neutralise,
    /// Write them as they are (for machines, not spreadsheets).
    Keep,
}

/// What to export: the visible fields chosen (all by default), a filter and
/// a sort, as the records listing takes them.
pub struct Export<'a> {
    pub collection: &'a Collection,
    pub fields: Vec<&'a Field>,
    pub filter: Option<&'a Filter>,
    pub sort: &'a [SortKey],
    pub formulas: Formulas,
}

impl Export<'_> {
    /// The statement and its parameters: `id` then the chosen fields, every
    /// value cast to text, in the sort's order then by id.
    pub fn statement(&self) -> (String, Vec<Value>) {
        let c = self.collection;
        // Aliased: ORDER BY resolves a bare name to an output column first,
        // and the text of a column must not be what it sorts by.
        let mut columns = vec!["id::text AS out_id".to_string()];
        columns.extend(
            self.fields
                .iter()
                .map(|f| format!("{}::text AS out_{}", f.column(), f.id)),
        );
        let (condition, values) = match self.filter {
            Some(f) => filter::to_sql(f, &c.filter_fields(), 1),
            None => ("true".to_string(), Vec::new()),
        };
        let order = super::query::order_by(self.sort);
        (
            format!(
                "SELECT {} FROM {} WHERE {condition} ORDER BY {}",
                columns.join(", "),
                c.table(),
                order.join(", ")
            ),
            values,
        )
    }

    /// The header record: `id` and the field names.
    pub fn header(&self, out: &mut Vec<u8>) {
        let mut names = vec!["id"];
        names.extend(self.fields.iter().map(|f| f.name.as_str()));
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_field(out, Some(name), false);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Which columns of a row hold text a spreadsheet could take for a
    /// formula (text, enum and json values; numbers, dates and booleans
    /// cannot start with a formula character other than a minus sign, which
    /// there only means a negative number).
    pub fn neutralised_columns(&self) -> Vec<bool> {
        let mut mask = vec![false];
        mask.extend(self.fields.iter().map(|f| {
            self.formulas == Formulas::Neutralise
                && matches!(
                    f.field_type,
                    FieldType::Text | FieldType::Enum | FieldType::Json
                )
        }));
        mask
    }
}

/// Rows fetched from the portal at a time.
const BATCH_ROWS: i32 = 1000;

/// Where [`Export::write`] hands the file, a chunk at a time.
pub trait Sink {
    type Error: From<tokio_postgres::Error>;

    /// Takes what `chunk` holds (leaving it empty) after `rows` rows.
    fn flush(
        &mut self,
        chunk: &mut Vec<u8>,
        rows: u64,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send;
}

impl Export<'_> {
    /// Writes the whole file: the header, then every row, into a chunk,
    /// handing it to `sink` (with the rows written so far) whenever it holds
    /// `chunk_bytes` or more, and once at the end. Runs in `tx`, which the
    /// caller opened read-only (one snapshot); values come as `COPY` writes
    /// them whatever the server's settings. Rows are fetched through a
    /// portal, 1,000 at a time, each fetch under the statement timeout; the
    /// next batch is asked for before this one is encoded, so PostgreSQL
    /// produces it while this process encodes and flushes. `rows` counts what
    /// was written, also when it fails part way.
    pub async fn write<S: Sink>(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        chunk_bytes: usize,
        rows: &mut u64,
        sink: &mut S,
    ) -> Result<(), S::Error> {
        Sql::batch_execute(
            &tx,
            "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'",
        )
        .await?;
        let (sql, values) = self.statement();
        let statement = tx.prepare(&sql).await?;
        let portal = tx.bind(&statement, &params(&values)).await?;
        let neutralise = self.neutralised_columns();
        let mut chunk = Vec::with_capacity(chunk_bytes + chunk_bytes / 8);
        self.header(&mut chunk);
        // Each fetch from the portal is a statement of its own (traced,
        // timed).
        let mut batch = observed(&sql, tx.query_portal(&portal, BATCH_ROWS)).await?;
        loop {
            let more = batch.len() == BATCH_ROWS as usize;
            let fetch = async {
                match more {
                    true => Some(observed(&sql, tx.query_portal(&portal, BATCH_ROWS)).await),
                    false => None,
                }
            };
            let encode = async {
                let mut cells: Vec<Option<&str>> = Vec::new();
                for row in &batch {
                    cells.clear();
                    for i in 0..row.len() {
                        cells.push(row.try_get(i)?);
                    }
                    write_record(&mut chunk, &cells, &neutralise);
                    *rows += 1;
                    // Flushed row by row: a chunk never holds much more than
                    // `chunk_bytes`, however large the records.
                    if chunk.len() >= chunk_bytes {
                        sink.flush(&mut chunk, *rows).await?;
                    }
                }
                Ok::<(), S::Error>(())
            };
            let (next, encoded) = tokio::join!(fetch, encode);
            encoded?;
            match next {
                Some(next) => batch = next?,
                None => break,
            }
        }
        sink.flush(&mut chunk, *rows).await
    }
}

/// The parameters of [`Export::statement`] as the driver takes them.
pub fn params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v.as_sql()).collect()
}

/// Appends one record.
pub fn write_record(out: &mut Vec<u8>, values: &[Option<&str>], neutralise: &[bool]) {
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_field(out, *value, neutralise.get(i).copied().unwrap_or(false));
    }
    out.extend_from_slice(b"\r\n");
}

/// Characters that make a spreadsheet evaluate a cell (OWASP's list): a
/// tab or carriage return first, or `= + - @` — also their full-width forms
/// (`＝ ＋ － ＠`, which some spreadsheets fold to ASCII) and after leading
/// whitespace or line feeds (which spreadsheets skip).
fn looks_like_formula(value: &str) -> bool {
    if matches!(value.as_bytes().first(), Some(b'\t' | b'\r')) {
        return true;
    }
    matches!(
        value.trim_start().chars().next(),
        Some('=' | '+' | '-' | '@' | '\u{FF1D}' | '\u{FF0B}' | '\u{FF0D}' | '\u{FF20}')
    )
}

fn write_field(out: &mut Vec<u8>, value: Option<&str>, neutralise: bool) {
    let Some(value) = value else {
        // A missing value: an empty, unquoted field (as COPY writes NULL).
        return;
    };
    let prefix = neutralise && looks_like_formula(value);
    let quote = value.is_empty()
        || value
            .bytes()
            .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
    if quote {
        out.push(b'"');
    }
    if prefix {
        out.push(b'\'');
    }
    if quote {
        for part in value.split_inclusive('"') {
            out.extend_from_slice(part.as_bytes());
            if part.ends_with('"') {
                out.push(b'"');
            }
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(values: &[Option<&str>], neutralise: bool) -> String {
        let mut out = Vec::new();
        write_record(&mut out, values, &vec![neutralise; values.len()]);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn rfc4180_quoting() {
        assert_eq!(record(&[Some("a"), Some("b c")], false), "a,b c\r\n");
        assert_eq!(record(&[Some("a,b")], false), "\"a,b\"\r\n");
        assert_eq!(
            record(&[Some("say \"hi\"")], false),
            "\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(record(&[Some("two\nlines")], false), "\"two\nlines\"\r\n");
        assert_eq!(record(&[Some("cr\rhere")], false), "\"cr\rhere\"\r\n");
        assert_eq!(record(&[Some("\"")], false), "\"\"\"\"\r\n");
        assert_eq!(record(&[Some("ünï😀")], false), "ünï😀\r\n");
    }

    #[test]
    fn missing_and_empty_differ() {
        assert_eq!(record(&[None, Some(""), None], false), ",\"\",\r\n");
    }

    #[test]
    fn formulas_are_neutralised_only_where_asked() {
        for f in [
            "=1+1",
            "+1",
            "-1",
            "@SUM(A1)",
            "\tx",
            "\rx",
            " =1+1",
            "\n=HYPERLINK(\"x\")",
            "  \n @a",
            "\u{3000}=1",
            "\u{FF1D}1+1",
            "\u{FF0B}1",
            "\u{FF0D}1",
            "\u{FF20}SUM(A1)",
        ] {
            let out = record(&[Some(f)], true);
            assert!(
                out.starts_with("'") || out.starts_with("\"'"),
                "{f:?} -> {out:?}"
            );
            assert!(!record(&[Some(f)], false).contains('\''), "{f:?}");
        }
        assert_eq!(record(&[Some("=a,b")], true), "\"'=a,b\"\r\n");
        assert_eq!(record(&[Some("=\"x\"")], true), "\"'=\"\"x\"\"\"\r\n");
        assert_eq!(record(&[Some("a=b")], true), "a=b\r\n");
        assert_eq!(record(&[Some(" a = b")], true), " a = b\r\n");
        assert_eq!(record(&[Some("")], true), "\"\"\r\n");
    }
}
