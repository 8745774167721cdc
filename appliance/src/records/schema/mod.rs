//! Collection DDL: create and drop a collection's table, add, change, hide
//! and purge fields, and build indexes concurrently. The catalog row and
//! the table change commit together; indexes are built after the commit
//! (`CREATE INDEX CONCURRENTLY` cannot run in a transaction) and a failed
//! unique build is undone and reported with the offending record ids.
//! Locks are bounded: a change that cannot get its lock within
//! [`LOCK_TIMEOUT`] fails instead of queueing in front of every reader.

use crate::db::Sql;
use serde_json::Value as Json;
use tokio_postgres::Transaction;

use super::{sql_type, to_cell, Field, FieldType, Scalar, MAX_ENUM_VALUES, RESERVED};

mod collection;
mod fields;
mod indexes;
mod retype;

pub use collection::{create_collection, drop_collection};
pub use fields::{add_field, hide_field, purge_field, set_enum_values, set_required, touch};
pub use indexes::{build_index, drop_index};
pub use retype::{change_type, conversion_allowed};

/// How long DDL waits for its table lock.
pub const LOCK_TIMEOUT: &str = "5s";

/// A field as requested by an admin.
#[derive(Debug, Clone)]
pub struct NewField {
    pub name: String,
    pub field_type: FieldType,
    pub required: bool,
    pub unique: bool,
    pub indexed: bool,
    pub sensitive: bool,
    pub enum_values: Vec<String>,
    pub default: Option<Json>,
}

impl NewField {
    /// An optional, plain field of `field_type` (set the rest by struct
    /// update: `NewField { required: true, ..NewField::new(…) }`).
    pub fn new(name: &str, field_type: FieldType) -> NewField {
        NewField {
            name: name.to_string(),
            field_type,
            required: false,
            unique: false,
            indexed: false,
            sensitive: false,
            enum_values: Vec::new(),
            default: None,
        }
    }
}

/// Why a schema change was refused.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A request field is invalid; names the field path.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("a collection named {0:?} already exists")]
    CollectionExists(String),
    #[error("a field named {0:?} already exists in this collection")]
    FieldExists(String),
    /// Existing records prevent the change; lists some of them.
    #[error("{message}")]
    Conflict {
        message: String,
        record_ids: Vec<i64>,
    },
    #[error("the collection is busy (a long transaction holds it); retry in a moment")]
    Busy,
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> SchemaError {
    SchemaError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// Maps a lock timeout to [`SchemaError::Busy`].
pub fn busy_or(e: tokio_postgres::Error) -> SchemaError {
    if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
        SchemaError::Busy
    } else {
        SchemaError::Db(e)
    }
}

/// Checks a requested field on its own and against the names of the
/// collection's visible fields (a hidden field's name may be reused).
pub fn validate(path: &str, f: &NewField, taken: &[&str]) -> Result<(), SchemaError> {
    if let Some(m) = super::check_name(&f.name) {
        return Err(invalid(format!("{path}.name"), m));
    }
    if RESERVED.contains(&f.name.as_str()) {
        return Err(invalid(
            format!("{path}.name"),
            format!(
                "{:?} is reserved for the record envelope; pick another name",
                f.name
            ),
        ));
    }
    if taken.contains(&f.name.as_str()) {
        return Err(SchemaError::FieldExists(f.name.clone()));
    }
    match f.field_type {
        FieldType::Enum => {
            if f.enum_values.is_empty() || f.enum_values.len() > MAX_ENUM_VALUES {
                return Err(invalid(
                    format!("{path}.enum_values"),
                    format!("an enum needs 1 to {MAX_ENUM_VALUES} values"),
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for v in &f.enum_values {
                if v.is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control) {
                    return Err(invalid(
                        format!("{path}.enum_values"),
                        "each value is 1-200 characters without control characters",
                    ));
                }
                if !seen.insert(v) {
                    return Err(invalid(
                        format!("{path}.enum_values"),
                        format!("{v:?} appears twice"),
                    ));
                }
            }
        }
        _ if !f.enum_values.is_empty() => {
            return Err(invalid(
                format!("{path}.enum_values"),
                "only enum fields take enum_values",
            ))
        }
        _ => {}
    }
    if f.field_type == FieldType::Json && (f.unique || f.indexed) {
        return Err(invalid(
            format!("{path}.indexed"),
            "json fields cannot be indexed or unique; index a typed field instead",
        ));
    }
    if let Some(d) = &f.default {
        let probe = as_field(0, f);
        match to_cell(&probe, d) {
            Ok(c) if c.is_null() => {
                return Err(invalid(
                    format!("{path}.default"),
                    "use no default rather than null",
                ))
            }
            Ok(_) => {}
            Err(m) => return Err(invalid(format!("{path}.default"), m)),
        }
    }
    Ok(())
}

fn as_field(id: i64, f: &NewField) -> Field {
    Field {
        id,
        name: f.name.clone(),
        field_type: f.field_type,
        required: f.required,
        unique: f.unique,
        indexed: f.indexed,
        sensitive: f.sensitive,
        enum_values: f.enum_values.clone(),
        default: f.default.clone(),
        hidden: false,
    }
}

/// `DEFAULT <literal>` for a column, quoted by the server (`quote_literal`)
/// so no user text is ever spliced into SQL by hand.
async fn default_clause(tx: &Transaction<'_>, field: &Field) -> Result<String, SchemaError> {
    let Some(default) = &field.default else {
        return Ok(String::new());
    };
    let cell = to_cell(field, default).map_err(|m| invalid("default", m))?;
    let text = match cell.value {
        Some(Scalar::Text(s) | Scalar::Decimal(s)) => s,
        Some(Scalar::Integer(n)) => n.to_string(),
        Some(Scalar::Boolean(b)) => b.to_string(),
        Some(Scalar::Json(j)) => j.to_string(),
        Some(Scalar::Date(_) | Scalar::Timestamp(_)) => default.as_str().unwrap_or("").to_string(),
        None => return Ok(String::new()),
    };
    let literal: String = Sql::query_one(&tx, "SELECT quote_literal($1::text)", &[&text])
        .await?
        .get(0);
    Ok(format!(
        " DEFAULT {literal}::{}",
        sql_type(field.field_type)
    ))
}

async fn column_definition(tx: &Transaction<'_>, field: &Field) -> Result<String, SchemaError> {
    let mut def = format!("{} {}", field.column(), sql_type(field.field_type));
    def.push_str(&default_clause(tx, field).await?);
    if field.required {
        def.push_str(" NOT NULL");
    }
    Ok(def)
}

async fn insert_field(
    tx: &Transaction<'_>,
    collection_id: i64,
    f: &NewField,
    position: i32,
) -> Result<Field, SchemaError> {
    let row = Sql::query_one(
        &tx,
        "INSERT INTO collection_fields (collection_id, name, field_type, required, is_unique, \
             indexed, sensitive, enum_values, default_value, position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        &[
            &collection_id,
            &f.name,
            &super::field_type_name(f.field_type),
            &f.required,
            &f.unique,
            &f.indexed,
            &f.sensitive,
            &f.enum_values,
            &f.default,
            &position,
        ],
    )
    .await?;
    Ok(as_field(row.get(0), f))
}
