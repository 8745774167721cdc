//! Record reads and writes with optimistic concurrency: every record has a
//! `version`, bumped on each update; a write naming an older version is
//! refused with the current record.

use crate::db::Sql;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{read_value, select_expr, to_cell, Cell, Collection};

/// A record as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub id: i64,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub created_by: Option<i64>,
    pub updated_by: Option<i64>,
    pub data: Map<String, Json>,
}

/// One problem with one field of a write.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the record has problems in {} field(s)", .0.len())]
    Invalid(Vec<FieldProblem>),
    /// Another record already has this value in a unique field.
    #[error("another record already has this value in the unique field {0:?}")]
    Duplicate(String),
    /// `If-Match` named an older version; carries the current record.
    #[error("the record changed since version {expected}; it is now version {}", .current.version)]
    Stale { expected: i64, current: Box<Record> },
    #[error("no record with id {0}")]
    NotFound(i64),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// The columns every read selects, in order: the envelope, then fields.
fn select_list(c: &Collection) -> String {
    let mut cols = vec![
        "id".to_string(),
        "version".to_string(),
        "created_at".to_string(),
        "updated_at".to_string(),
        "created_by".to_string(),
        "updated_by".to_string(),
    ];
    cols.extend(c.fields.iter().map(select_expr));
    cols.join(", ")
}

/// A record from a row selected with [`select_list`].
pub fn from_row(c: &Collection, row: &Row) -> Result<Record, tokio_postgres::Error> {
    let mut data = Map::new();
    for (i, f) in c.fields.iter().enumerate() {
        data.insert(f.name.clone(), read_value(row, 6 + i, f.field_type)?);
    }
    Ok(Record {
        id: row.try_get(0)?,
        version: row.try_get(1)?,
        created_at: row.try_get(2)?,
        updated_at: row.try_get(3)?,
        created_by: row.try_get(4)?,
        updated_by: row.try_get(5)?,
        data,
    })
}

pub fn select_sql(c: &Collection) -> String {
    format!("SELECT {} FROM {}", select_list(c), c.table())
}

/// Validates a write's data against the fields. `partial` (PATCH): fields
/// not sent keep their value; otherwise required fields without a default
/// must be present. Unknown fields are errors.
pub fn cells(
    c: &Collection,
    data: &Map<String, Json>,
    partial: bool,
) -> Result<Vec<(usize, Cell)>, WriteError> {
    let mut problems = Vec::new();
    for name in data.keys() {
        if c.field(name).is_none() {
            problems.push(FieldProblem {
                field: name.clone(),
                message: "no such field in this collection".to_string(),
            });
        }
    }
    let mut out = Vec::new();
    for (i, f) in c.fields.iter().enumerate() {
        match data.get(&f.name) {
            Some(v) => match to_cell(f, v) {
                Ok(cell) => out.push((i, cell)),
                Err(message) => problems.push(FieldProblem {
                    field: f.name.clone(),
                    message,
                }),
            },
            None if !partial && f.required && f.default.is_none() => problems.push(FieldProblem {
                field: f.name.clone(),
                message: "is required; send a value".to_string(),
            }),
            None => {}
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(WriteError::Invalid(problems))
    }
}

fn duplicate(c: &Collection, e: &tokio_postgres::Error) -> Option<WriteError> {
    let db = e.as_db_error()?;
    if db.code() != &tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
        return None;
    }
    // The constraint is the unique index "u_<field id>".
    let field_id: i64 = db.constraint()?.strip_prefix("u_")?.parse().ok()?;
    let name = c.fields.iter().find(|f| f.id == field_id)?.name.clone();
    Some(WriteError::Duplicate(name))
}

pub async fn insert<C: Sql>(
    client: &C,
    c: &Collection,
    data: &Map<String, Json>,
    user_id: i64,
) -> Result<Record, WriteError> {
    let cells = cells(c, data, false)?;
    let mut columns = vec!["created_by".to_string(), "updated_by".to_string()];
    let mut placeholders = vec!["$1".to_string(), "$1".to_string()];
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&user_id];
    for (i, cell) in &cells {
        columns.push(c.fields[*i].column());
        placeholders.push(cell.placeholder(params.len() + 1));
        params.push(cell.as_sql());
    }
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
        c.table(),
        columns.join(", "),
        placeholders.join(", "),
        select_list(c)
    );
    match client.query_one(&sql, &params).await {
        Ok(row) => Ok(from_row(c, &row)?),
        Err(e) => Err(duplicate(c, &e).unwrap_or(WriteError::Db(e))),
    }
}

/// Inserts several records in one statement (bulk imports): each is
/// validated like [`insert`]; a field a record lacks takes its default.
/// Returns how many were inserted. Keep `rows × fields` well under
/// PostgreSQL's 65,535 parameters.
pub async fn insert_many<C: Sql>(
    client: &C,
    c: &Collection,
    rows: &[&Map<String, Json>],
    user_id: i64,
) -> Result<u64, WriteError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let per_row = rows
        .iter()
        .map(|data| cells(c, data, false))
        .collect::<Result<Vec<_>, _>>()?;
    let mut present = vec![false; c.fields.len()];
    for (i, _) in per_row.iter().flatten() {
        present[*i] = true;
    }
    let used: Vec<usize> = (0..c.fields.len()).filter(|i| present[*i]).collect();
    let mut columns = vec!["created_by".to_string(), "updated_by".to_string()];
    columns.extend(used.iter().map(|i| c.fields[*i].column()));
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&user_id];
    let mut tuples = Vec::with_capacity(per_row.len());
    for cells in &per_row {
        let mut tuple = vec!["$1".to_string(), "$1".to_string()];
        for i in &used {
            match cells.iter().find(|(j, _)| j == i) {
                Some((_, cell)) => {
                    tuple.push(cell.placeholder(params.len() + 1));
                    params.push(cell.as_sql());
                }
                None => tuple.push("DEFAULT".to_string()),
            }
        }
        tuples.push(format!("({})", tuple.join(", ")));
    }
    let sql = format!(
        "INSERT INTO {} ({}) VALUES {}",
        c.table(),
        columns.join(", "),
        tuples.join(", ")
    );
    client
        .execute(&sql, &params)
        .await
        .map_err(|e| duplicate(c, &e).unwrap_or(WriteError::Db(e)))
}

pub async fn get<C: Sql>(
    client: &C,
    c: &Collection,
    id: i64,
) -> Result<Option<Record>, tokio_postgres::Error> {
    let row = client
        .query_opt(&format!("{} WHERE id = $1", select_sql(c)), &[&id])
        .await?;
    row.map(|r| from_row(c, &r)).transpose()
}

/// Locks a record for a write and checks the version the client last saw
/// (`If-Match`); returns the record as it is.
async fn lock_current<C: Sql>(
    client: &C,
    c: &Collection,
    id: i64,
    if_match: Option<i64>,
) -> Result<Record, WriteError> {
    let Some(current) = client
        .query_opt(
            &format!("{} WHERE id = $1 FOR UPDATE", select_sql(c)),
            &[&id],
        )
        .await?
        .map(|r| from_row(c, &r))
        .transpose()?
    else {
        return Err(WriteError::NotFound(id));
    };
    match if_match {
        Some(expected) if expected != current.version => Err(WriteError::Stale {
            expected,
            current: Box::new(current),
        }),
        _ => Ok(current),
    }
}

/// Updates the fields sent; `if_match` is the version the client last saw.
/// Returns the record before and after.
pub async fn update<C: Sql>(
    client: &C,
    c: &Collection,
    id: i64,
    data: &Map<String, Json>,
    if_match: Option<i64>,
    user_id: i64,
) -> Result<(Record, Record), WriteError> {
    let cells = cells(c, data, true)?;
    let before = lock_current(client, c, id, if_match).await?;
    let mut sets = vec![
        "version = version + 1".to_string(),
        "updated_at = now()".to_string(),
        "updated_by = $2".to_string(),
    ];
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id, &user_id];
    for (i, cell) in &cells {
        sets.push(format!(
            "{} = {}",
            c.fields[*i].column(),
            cell.placeholder(params.len() + 1)
        ));
        params.push(cell.as_sql());
    }
    let sql = format!(
        "UPDATE {} SET {} WHERE id = $1 RETURNING {}",
        c.table(),
        sets.join(", "),
        select_list(c)
    );
    match client.query_one(&sql, &params).await {
        Ok(row) => Ok((before, from_row(c, &row)?)),
        Err(e) => Err(duplicate(c, &e).unwrap_or(WriteError::Db(e))),
    }
}

/// Deletes a record; returns it as it was.
pub async fn delete<C: Sql>(
    client: &C,
    c: &Collection,
    id: i64,
    if_match: Option<i64>,
) -> Result<Record, WriteError> {
    let before = lock_current(client, c, id, if_match).await?;
    client
        .execute(&format!("DELETE FROM {} WHERE id = $1", c.table()), &[&id])
        .await?;
    Ok(before)
}

/// Names of the fields whose values differ between two versions.
pub fn changed_fields(before: &Record, after: &Record) -> Vec<String> {
    after
        .data
        .iter()
        .filter(|(k, v)| before.data.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}
