//! Listing records: filter (the JSON filter language), sort on up to three
//! keys, field selection, and keyset pagination with authenticated
//! cursors. The sort always ends with the record id, so the order is total
//! and a walk neither skips nor repeats a record that exists throughout,
//! whatever is inserted or deleted meanwhile. Text sorts and comparisons
//! use the "C" collation (byte order), the same as the field indexes.

use crate::db::{Cached, Sql};
use serde_json::{json, Value as Json};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::filter::{self, Filter};
use super::page::{Items, ENVELOPE};
use super::store::select_sql;
use super::{to_cell, Cell, Collection, Field, FieldType};
use crate::identity::keys::ServerKeys;

pub const MAX_PAGE: i64 = 200;
pub const MAX_SORT_KEYS: usize = 3;

/// A sort key: a field or an envelope column.
#[derive(Debug, Clone)]
pub enum Key {
    Field(Field),
    Id,
    CreatedAt,
    UpdatedAt,
}

impl Key {
    fn name(&self) -> &str {
        match self {
            Key::Field(f) => &f.name,
            Key::Id => "id",
            Key::CreatedAt => "created_at",
            Key::UpdatedAt => "updated_at",
        }
    }

    /// The SQL expression sorted and compared on.
    fn expr(&self) -> String {
        match self {
            Key::Field(f) if matches!(f.field_type, FieldType::Text | FieldType::Enum) => {
                format!("{} COLLATE \"C\"", f.column())
            }
            Key::Field(f) => f.column(),
            Key::Id => "id".to_string(),
            Key::CreatedAt => "created_at".to_string(),
            Key::UpdatedAt => "updated_at".to_string(),
        }
    }

    /// The key's value in a row selected with the full select list, as
    /// the API shows it.
    fn value(&self, c: &Collection, row: &Row) -> Result<Json, tokio_postgres::Error> {
        Ok(match self {
            Key::Field(f) => match c.fields.iter().position(|x| x.id == f.id) {
                Some(i) => super::read_value(row, ENVELOPE + i, f.field_type)?,
                None => Json::Null,
            },
            Key::Id => json!(row.try_get::<_, i64>(0)?),
            Key::CreatedAt => json!(rfc3339(row.try_get(2)?)),
            Key::UpdatedAt => json!(rfc3339(row.try_get(3)?)),
        })
    }

    /// A cursor value back as a typed parameter.
    fn cell(&self, v: &Json) -> Option<Cell> {
        let probe = |field_type| Field {
            id: 0,
            name: String::new(),
            field_type,
            required: false,
            unique: false,
            indexed: false,
            sensitive: false,
            enum_values: Vec::new(),
            default: None,
            hidden: false,
        };
        match self {
            Key::Field(f) => {
                let mut f = f.clone();
                f.required = false;
                // Enum values may have changed since; compare as text.
                if f.field_type == FieldType::Enum {
                    f = probe(FieldType::Text);
                }
                to_cell(&f, v).ok()
            }
            Key::Id => to_cell(&probe(FieldType::Integer), v).ok(),
            Key::CreatedAt | Key::UpdatedAt => to_cell(&probe(FieldType::Timestamp), v).ok(),
        }
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct SortKey {
    pub key: Key,
    pub descending: bool,
}

/// Why a listing request was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Filter(#[from] filter::FilterError),
    #[error("{0}")]
    Sort(String),
    #[error("{0}")]
    Fields(String),
    #[error("the cursor is not valid for this listing (tampered with, from another collection, sort or filter, or its sort field no longer exists); start again without a cursor")]
    Cursor,
    #[error("limit must be between 1 and {MAX_PAGE}")]
    Limit,
    #[error("count must be exact, estimate or bounded")]
    Count,
    #[error("the query ran longer than the statement timeout (api.query_timeout_ms); narrow the filter or sort on an indexed field, or retry if a schema change was holding the collection")]
    Timeout,
    #[error(transparent)]
    Db(tokio_postgres::Error),
}

/// `ORDER BY` terms: the sort keys (missing values last), then `id`.
pub(crate) fn order_by(sort: &[SortKey]) -> Vec<String> {
    sort.iter()
        .map(|k| {
            format!(
                "{} {} NULLS LAST",
                k.key.expr(),
                if k.descending { "DESC" } else { "ASC" }
            )
        })
        .chain(std::iter::once("id ASC".to_string()))
        .collect()
}

/// Parses `sort=-priority,title`: up to three keys, `-` for descending.
pub fn parse_sort(c: &Collection, spec: Option<&str>) -> Result<Vec<SortKey>, QueryError> {
    let mut keys = Vec::new();
    let Some(spec) = spec.filter(|s| !s.is_empty()) else {
        return Ok(keys);
    };
    for part in spec.split(',') {
        let (descending, name) = match part.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, part),
        };
        let key = match name {
            "id" => Key::Id,
            "created_at" => Key::CreatedAt,
            "updated_at" => Key::UpdatedAt,
            _ => match c.field(name) {
                Some(f) if f.field_type == FieldType::Json => {
                    return Err(QueryError::Sort(format!(
                        "cannot sort on the json field {name:?}"
                    )))
                }
                Some(f) => Key::Field(f.clone()),
                None => {
                    return Err(QueryError::Sort(format!(
                    "cannot sort on {name:?}: no such field; use a field name, id, created_at or \
                         updated_at, with - for descending"
                )))
                }
            },
        };
        if keys.iter().any(|k: &SortKey| k.key.name() == key.name()) {
            return Err(QueryError::Sort(format!("{name:?} appears twice in sort")));
        }
        keys.push(SortKey { key, descending });
    }
    if keys.len() > MAX_SORT_KEYS {
        return Err(QueryError::Sort(format!(
            "at most {MAX_SORT_KEYS} sort keys"
        )));
    }
    Ok(keys)
}

/// Parses `fields=title,status`: which data fields to return.
pub fn parse_fields(c: &Collection, spec: Option<&str>) -> Result<Option<Vec<String>>, QueryError> {
    let Some(spec) = spec.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let mut names = Vec::new();
    for name in spec.split(',') {
        if c.field(name).is_none() {
            return Err(QueryError::Fields(format!(
                "fields: no field named {name:?} in this collection"
            )));
        }
        if names.iter().any(|n| n == name) {
            return Err(QueryError::Fields(format!(
                "fields: {name:?} is named twice; name each field once"
            )));
        }
        names.push(name.to_string());
    }
    Ok(Some(names))
}

/// A listing request, validated.
pub struct Listing {
    pub filter: Option<Filter>,
    pub filter_text: String,
    pub sort: Vec<SortKey>,
    pub fields: Option<Vec<String>>,
    pub limit: i64,
    pub count: CountMode,
}

/// Whether and how to count the records the filter matches (all pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountMode {
    None,
    /// `count(*)`: exact, costs a scan of what the filter matches.
    Exact,
    /// The planner's row estimate: cheap, approximate.
    Estimate,
    /// `count(*)` of at most [`COUNT_BOUND`] records: exact up to there,
    /// then "more than that" (a scan never longer than the bound).
    Bounded,
}

/// Where a bounded count stops.
pub const COUNT_BOUND: i64 = 10_000;

/// A count and whether it is exact.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Count {
    pub value: i64,
    pub exact: bool,
    /// A bounded count that stopped at its bound: more records match.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

/// A page of records and the cursor for the next one: the list response's
/// body as it is (the records serialized straight from their rows).
#[derive(serde::Serialize)]
pub struct Page {
    pub items: Items,
    pub next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<Count>,
}

/// What a cursor is bound to: the collection, the sort and the filter.
fn purpose(c: &Collection, l: &Listing) -> String {
    let sort: Vec<String> = l
        .sort
        .iter()
        .map(|k| format!("{}{}", if k.descending { "-" } else { "" }, k.key.name()))
        .collect();
    let digest = ring::digest::digest(&ring::digest::SHA256, l.filter_text.as_bytes());
    format!(
        "records\n{}\n{}\n{}",
        c.id,
        sort.join(","),
        crate::audit::hex(digest.as_ref())
    )
}

/// The keyset condition "after the cursor row", for NULLS LAST ordering.
/// Placeholders are numbered from `*next`; the cells to bind are pushed to
/// `bind` in the same order (null cells need none).
fn after_cursor<'a>(
    keys: &[SortKey],
    cells: &'a [Cell],
    id_placeholder: &str,
    next: &mut usize,
    bind: &mut Vec<&'a Cell>,
) -> String {
    let mut out = format!("id > {id_placeholder}");
    // Built from the innermost level outwards; placeholders are assigned
    // afterwards in key order, so collect them first.
    let mut placeholders = Vec::new();
    for cell in cells {
        if cell.is_null() {
            placeholders.push(None);
        } else {
            placeholders.push(Some(cell.placeholder(*next)));
            bind.push(cell);
            *next += 1;
        }
    }
    for i in (0..keys.len()).rev() {
        let expr = keys[i].key.expr();
        let (op, op_eq) = if keys[i].descending {
            ("<", "<=")
        } else {
            (">", ">=")
        };
        out = match &placeholders[i] {
            // Nulls sort last: only rows also null here can follow.
            None => format!("({expr} IS NULL AND {out})"),
            // The first key is written so an index on it can start at the
            // cursor: the rows with no value in it, which follow all the
            // others, are read by a second query (see `null_tail`).
            Some(p) if i == 0 => {
                format!("({expr} {op_eq} {p} AND ({expr} {op} {p} OR {out}))")
            }
            Some(p) => {
                format!("({expr} {op} {p} OR {expr} IS NULL OR ({expr} = {p} AND {out}))")
            }
        };
    }
    out
}

/// Whether a page after this cursor may continue into the rows that have
/// no value in the first sort key (which the main query leaves out).
fn null_tail(keys: &[SortKey], cells: &[Cell]) -> bool {
    match (keys.first(), cells.first()) {
        (Some(k), Some(cell)) => !cell.is_null() && matches!(&k.key, Key::Field(f) if !f.required),
        _ => false,
    }
}

/// Prepared statements kept per connection before the cache is reset.
const STATEMENT_CACHE_LIMIT: usize = 256;

/// Runs the listing (and the count, when asked) under the connection's
/// statement timeout.
pub async fn list(
    client: &deadpool_postgres::Client,
    keys: &ServerKeys,
    c: &Collection,
    l: &Listing,
    cursor: Option<&str>,
) -> Result<Page, QueryError> {
    let fields = c.filter_fields();
    let mut conditions = Vec::new();
    let mut filter_values = Vec::new();
    if let Some(f) = &l.filter {
        let (sql, values) = filter::to_sql(f, &fields, 1);
        conditions.push(sql);
        filter_values = values;
    }
    let purpose = purpose(c, l);
    let mut cursor_cells = Vec::new();
    let mut cursor_id: i64 = 0;
    if let Some(cursor) = cursor {
        let payload = keys
            .open_cursor(&purpose, cursor)
            .ok_or(QueryError::Cursor)?;
        let values: Vec<Json> = serde_json::from_str(&payload).map_err(|_| QueryError::Cursor)?;
        if values.len() != l.sort.len() + 1 {
            return Err(QueryError::Cursor);
        }
        for (k, v) in l.sort.iter().zip(&values) {
            cursor_cells.push(k.key.cell(v).ok_or(QueryError::Cursor)?);
        }
        cursor_id = values[l.sort.len()].as_i64().ok_or(QueryError::Cursor)?;
    }
    let mut next = filter_values.len() + 1;
    let mut cursor_bind: Vec<&Cell> = Vec::new();
    if cursor.is_some() {
        // The id's placeholder comes after the key values'.
        let nonnull = cursor_cells.iter().filter(|c| !c.is_null()).count();
        let id_placeholder = format!("${}", next + nonnull);
        conditions.push(after_cursor(
            &l.sort,
            &cursor_cells,
            &id_placeholder,
            &mut next,
            &mut cursor_bind,
        ));
        next += 1;
    }
    let order = order_by(&l.sort);
    let sql = format!(
        "{} WHERE {} ORDER BY {} LIMIT ${next}",
        select_sql(c),
        if conditions.is_empty() {
            "true".to_string()
        } else {
            conditions.join(" AND ")
        },
        order.join(", ")
    );
    let mut refs: Vec<&(dyn ToSql + Sync)> = filter_values.iter().map(|v| v.as_sql()).collect();
    for cell in &cursor_bind {
        refs.push(cell.as_sql());
    }
    if cursor.is_some() {
        refs.push(&cursor_id);
    }
    let fetch = l.limit + 1;
    refs.push(&fetch);
    // One round trip: the statement is prepared once per connection and
    // shape of listing; the pool's connections carry the statement timeout.
    // Distinct shapes are unbounded (filters vary), so the cache is reset
    // when it grows.
    if client.statement_cache.size() > STATEMENT_CACHE_LIMIT {
        client.statement_cache.clear();
    }
    let statement = client.prepared(&sql).await.map_err(timeout_or_db)?;
    let mut rows = client
        .query(&statement, &refs)
        .await
        .map_err(timeout_or_db)?;
    if null_tail(&l.sort, &cursor_cells) && (rows.len() as i64) <= l.limit {
        // The page goes on into the rows without a value in the first key,
        // all of which come after the cursor.
        let first = l.sort[0].key.expr();
        let rest: Vec<String> = order.iter().skip(1).cloned().collect();
        let tail_limit = l.limit + 1 - rows.len() as i64;
        let mut tail_conditions = vec![format!("{first} IS NULL")];
        if let Some(f) = conditions.first().filter(|_| l.filter.is_some()) {
            tail_conditions.push(f.clone());
        }
        let tail_sql = format!(
            "{} WHERE {} ORDER BY {} LIMIT ${}",
            select_sql(c),
            tail_conditions.join(" AND "),
            rest.join(", "),
            filter_values.len() + 1
        );
        let mut tail_refs: Vec<&(dyn ToSql + Sync)> =
            filter_values.iter().map(|v| v.as_sql()).collect();
        tail_refs.push(&tail_limit);
        let tail = client.prepared(&tail_sql).await.map_err(timeout_or_db)?;
        rows.extend(
            client
                .query(&tail, &tail_refs)
                .await
                .map_err(timeout_or_db)?,
        );
    }
    let count = match l.count {
        CountMode::None => None,
        CountMode::Exact | CountMode::Estimate | CountMode::Bounded => {
            let filter_sql = conditions.first().filter(|_| l.filter.is_some());
            let where_clause = filter_sql.map(String::as_str).unwrap_or("true");
            let filter_refs = &refs[..filter_values.len()];
            Some(count(client, c, where_clause, filter_refs, l.count).await?)
        }
    };
    let more = rows.len() as i64 > l.limit;
    let mut rows = rows;
    rows.truncate(l.limit as usize);
    // Every column read once with its field's type: a catalog that trails
    // a schema change fails here (and is read again), not while the
    // response is written.
    if let Some(first) = rows.first() {
        for (i, f) in c.fields.iter().enumerate() {
            super::read_value(first, ENVELOPE + i, f.field_type).map_err(QueryError::Db)?;
        }
    }
    let next_cursor = match (more, rows.last()) {
        (true, Some(last)) => {
            let mut values: Vec<Json> = l
                .sort
                .iter()
                .map(|k| k.key.value(c, last))
                .collect::<Result<_, _>>()
                .map_err(QueryError::Db)?;
            values.push(json!(last.try_get::<_, i64>(0).map_err(QueryError::Db)?));
            Some(keys.seal_cursor(&purpose, &Json::Array(values).to_string()))
        }
        _ => None,
    };
    Ok(Page {
        items: Items::new(c, rows, l.fields.as_deref()),
        next_cursor,
        count,
    })
}

fn timeout_or_db(e: tokio_postgres::Error) -> QueryError {
    if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) {
        QueryError::Timeout
    } else {
        QueryError::Db(e)
    }
}

/// Counts the records matching the filter, exactly or by the planner's
/// estimate, inside the listing's transaction (same timeout).
async fn count(
    tx: &deadpool_postgres::Client,
    c: &Collection,
    where_clause: &str,
    params: &[&(dyn ToSql + Sync)],
    mode: CountMode,
) -> Result<Count, QueryError> {
    if mode == CountMode::Exact {
        let row = tx
            .query_one(
                &format!("SELECT count(*) FROM {} WHERE {where_clause}", c.table()),
                params,
            )
            .await
            .map_err(timeout_or_db)?;
        return Ok(Count {
            value: row.get(0),
            exact: true,
            more: false,
        });
    }
    if mode == CountMode::Bounded {
        let row = tx
            .query_one(
                &format!(
                    "SELECT count(*) FROM (SELECT 1 FROM {} WHERE {where_clause} LIMIT {}) AS s",
                    c.table(),
                    COUNT_BOUND + 1
                ),
                params,
            )
            .await
            .map_err(timeout_or_db)?;
        let value: i64 = row.get(0);
        return Ok(Count {
            value: value.min(COUNT_BOUND),
            exact: value <= COUNT_BOUND,
            more: value > COUNT_BOUND,
        });
    }
    let row = tx
        .query_one(
            &format!(
                "EXPLAIN (FORMAT JSON) SELECT 1 FROM {} WHERE {where_clause}",
                c.table()
            ),
            params,
        )
        .await
        .map_err(timeout_or_db)?;
    let plan: Json = row.get(0);
    let rows = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0);
    Ok(Count {
        value: rows.round() as i64,
        exact: false,
        more: false,
    })
}
