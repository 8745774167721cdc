//! Collections and records: the catalog (collections and their typed
//! fields), the DDL that keeps each collection's table in step with it, and
//! record reads and writes. Every SQL identifier for user data is generated
//! here from numeric ids (`records."c_12"`, `"f_34"`); user-chosen names
//! only ever appear as bind parameters.

pub mod export;
pub mod filter;
pub mod import;
#[cfg(test)]
mod import_generative;
pub mod page;
pub mod query;
pub mod reserved;
pub mod scalar;
pub mod schema;
pub mod store;
pub mod values;

use crate::db::{Cached, Sql};
use serde::Serialize;
use serde_json::{json, Value as Json};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use tokio_postgres::Row;

pub use scalar::{Cell, Scalar};
pub use values::FieldType;

/// Names the record envelope uses; fields cannot take them.
pub const RESERVED: [&str; 6] = [
    "id",
    "version",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
];

/// Limits on what one collection may hold.
pub const MAX_FIELDS: usize = 200;
pub const MAX_ENUM_VALUES: usize = 200;
/// Largest text value, in characters.
pub const MAX_TEXT_CHARS: usize = 100_000;

/// Why a collection or field name is refused, or `None`.
pub fn check_name(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    let ok = (1..=63).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        Some("names are 1-63 characters: lowercase letters, digits and '_', starting with a letter")
    } else {
        None
    }
}

pub fn field_type_name(t: FieldType) -> &'static str {
    match t {
        FieldType::Text => "text",
        FieldType::Integer => "integer",
        FieldType::Decimal => "decimal",
        FieldType::Boolean => "boolean",
        FieldType::Date => "date",
        FieldType::Timestamp => "timestamp",
        FieldType::Enum => "enum",
        FieldType::Json => "json",
    }
}

pub fn parse_field_type(s: &str) -> Option<FieldType> {
    [
        FieldType::Text,
        FieldType::Integer,
        FieldType::Decimal,
        FieldType::Boolean,
        FieldType::Date,
        FieldType::Timestamp,
        FieldType::Enum,
        FieldType::Json,
    ]
    .into_iter()
    .find(|t| field_type_name(*t) == s)
}

/// The PostgreSQL column type of a field type.
pub fn sql_type(t: FieldType) -> &'static str {
    match t {
        FieldType::Text | FieldType::Enum => "text",
        FieldType::Integer => "bigint",
        FieldType::Decimal => "numeric",
        FieldType::Boolean => "boolean",
        FieldType::Date => "date",
        FieldType::Timestamp => "timestamptz",
        FieldType::Json => "jsonb",
    }
}

/// One field of a collection.
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    pub required: bool,
    pub unique: bool,
    pub indexed: bool,
    pub sensitive: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enum_values: Vec<String>,
    pub default: Option<Json>,
    #[serde(skip)]
    pub hidden: bool,
}

impl Field {
    /// The quoted column name.
    pub fn column(&self) -> String {
        column(self.id)
    }
}

pub fn column(field_id: i64) -> String {
    format!("\"f_{field_id}\"")
}

/// A collection with its visible fields, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Collection {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub title: String,
    pub fields: Vec<Field>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Collection {
    /// The quoted, schema-qualified table name.
    pub fn table(&self) -> String {
        table(self.id)
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The fields as the filter language sees them.
    pub fn filter_fields(&self) -> Vec<filter::FieldRef> {
        self.fields
            .iter()
            .map(|f| filter::FieldRef {
                name: f.name.clone(),
                column: f.column(),
                field_type: f.field_type,
                enum_values: f.enum_values.clone(),
            })
            .collect()
    }
}

pub fn table(collection_id: i64) -> String {
    format!("records.\"c_{collection_id}\"")
}

fn field_from_row(row: &Row) -> Field {
    let t: String = row.get(2);
    Field {
        id: row.get(0),
        name: row.get(1),
        // The column's CHECK constraint allows only the known names.
        field_type: parse_field_type(&t).unwrap_or(FieldType::Text),
        required: row.get(3),
        unique: row.get(4),
        indexed: row.get(5),
        sensitive: row.get(6),
        enum_values: row.get(7),
        default: row.get(8),
        hidden: row.get::<_, Option<OffsetDateTime>>(9).is_some(),
    }
}

const FIELD_COLUMNS: &str = "id, name, field_type, required, is_unique, indexed, sensitive, \
     enum_values, default_value, hidden_at";

/// Fields of a collection; hidden ones only when asked.
pub async fn fields<C: Sql>(
    client: &C,
    collection_id: i64,
    include_hidden: bool,
) -> Result<Vec<Field>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT {FIELD_COLUMNS} FROM collection_fields WHERE collection_id = $1 \
                 AND ($2 OR hidden_at IS NULL) ORDER BY position, id"
            ),
            &[&collection_id, &include_hidden],
        )
        .await?;
    Ok(rows.iter().map(field_from_row).collect())
}

/// A collection by name, with its visible fields.
pub async fn collection<C: Sql>(
    client: &C,
    name: &str,
) -> Result<Option<Collection>, tokio_postgres::Error> {
    let Some(row) = client
        .query_opt(
            "SELECT id, name, title, created_at, updated_at FROM collections WHERE name = $1",
            &[&name],
        )
        .await?
    else {
        return Ok(None);
    };
    let id: i64 = row.get(0);
    Ok(Some(Collection {
        id,
        name: row.get(1),
        title: row.get(2),
        fields: fields(client, id, false).await?,
        created_at: row.get(3),
        updated_at: row.get(4),
    }))
}

/// A collection by name in one round trip (a statement prepared once per
/// connection): the read path of record requests when the replica's
/// catalog cache misses.
pub async fn collection_prepared(
    client: &deadpool_postgres::Client,
    name: &str,
) -> Result<Option<Collection>, tokio_postgres::Error> {
    let statement = client
        .prepared(
            "SELECT c.id, c.name, c.title, c.created_at, c.updated_at, f.id, f.name, f.field_type, \
                    f.required, f.is_unique, f.indexed, f.sensitive, f.enum_values, f.default_value, \
                    f.hidden_at \
             FROM collections c LEFT JOIN collection_fields f \
               ON f.collection_id = c.id AND f.hidden_at IS NULL \
             WHERE c.name = $1 ORDER BY f.position, f.id",
        )
        .await?;
    let rows = client.query(&statement, &[&name]).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let fields = rows
        .iter()
        .filter(|r| r.get::<_, Option<i64>>(5).is_some())
        .map(|r| {
            let t: String = r.get(7);
            Field {
                id: r.get(5),
                name: r.get(6),
                field_type: parse_field_type(&t).unwrap_or(FieldType::Text),
                required: r.get(8),
                unique: r.get(9),
                indexed: r.get(10),
                sensitive: r.get(11),
                enum_values: r.get(12),
                default: r.get(13),
                hidden: r.get::<_, Option<OffsetDateTime>>(14).is_some(),
            }
        })
        .collect();
    Ok(Some(Collection {
        id: first.get(0),
        name: first.get(1),
        title: first.get(2),
        fields,
        created_at: first.get(3),
        updated_at: first.get(4),
    }))
}

pub async fn list<C: Sql>(client: &C) -> Result<Vec<Collection>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, name, title, created_at, updated_at FROM collections ORDER BY name",
            &[],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.get(0);
        out.push(Collection {
            id,
            name: row.get(1),
            title: row.get(2),
            fields: fields(client, id, false).await?,
            created_at: row.get(3),
            updated_at: row.get(4),
        });
    }
    Ok(out)
}

/// Converts a JSON value for `field` into a cell, or says what is wrong.
pub fn to_cell(field: &Field, value: &Json) -> Result<Cell, String> {
    if value.is_null() {
        if field.required {
            return Err("is required; send a value".to_string());
        }
        return Ok(Cell::null(field.field_type));
    }
    let wrong = |expected: &str| Err(format!("expected {expected}"));
    let cell = |value: Scalar| Cell::of(field.field_type, value);
    match field.field_type {
        FieldType::Text => match value.as_str() {
            Some(s) if s.chars().count() > MAX_TEXT_CHARS => {
                Err(format!("at most {MAX_TEXT_CHARS} characters"))
            }
            Some(s) if s.contains('\0') => Err("text cannot contain NUL characters".to_string()),
            Some(s) => Ok(cell(Scalar::Text(s.to_string()))),
            None => wrong("a string"),
        },
        FieldType::Enum => match value.as_str() {
            Some(s) if field.enum_values.iter().any(|v| v == s) => {
                Ok(cell(Scalar::Text(s.to_string())))
            }
            Some(_) => Err(format!("expected one of: {}", field.enum_values.join(", "))),
            None => wrong("a string"),
        },
        FieldType::Integer => match value.as_i64() {
            Some(n) if value.is_i64() || value.is_u64() => Ok(cell(Scalar::Integer(n))),
            _ => wrong("an integer between -9223372036854775808 and 9223372036854775807"),
        },
        FieldType::Decimal => {
            let canonical = match value {
                Json::String(s) => values::canonical_decimal(s, Some(40)),
                Json::Number(n) => values::decimal_from_json_number(n),
                _ => return wrong("a decimal number (as a JSON number or string, e.g. \"12.50\")"),
            };
            canonical.map(|d| cell(Scalar::Decimal(d))).ok_or_else(|| {
                "expected a decimal number with at most 40 digits before and after the point, \
                     e.g. \"12.50\""
                    .to_string()
            })
        }
        FieldType::Boolean => match value.as_bool() {
            Some(b) => Ok(cell(Scalar::Boolean(b))),
            None => wrong("true or false"),
        },
        FieldType::Date => match value.as_str().and_then(values::parse_date) {
            Some(d) => Ok(cell(Scalar::Date(d))),
            None => wrong("a date as YYYY-MM-DD"),
        },
        FieldType::Timestamp => match value.as_str().and_then(values::parse_timestamp) {
            Some(t) => Ok(cell(Scalar::Timestamp(t))),
            None => wrong("an RFC 3339 timestamp, e.g. 2026-01-31T12:00:00Z"),
        },
        FieldType::Json => {
            if values::json_has_nul(value) {
                return Err("JSON text cannot contain NUL characters (\\u0000)".to_string());
            }
            if value.to_string().len() > MAX_TEXT_CHARS {
                return Err(format!("at most {MAX_TEXT_CHARS} bytes of JSON"));
            }
            Ok(cell(Scalar::Json(value.clone())))
        }
    }
}

/// The SQL expression that reads a field for [`read_value`]. A computed
/// column gets its own alias: an output column named like the table column
/// would be what a bare `ORDER BY "f_3"` sorts on (PostgreSQL resolves
/// ORDER BY names against the output list first).
pub fn select_expr(field: &Field) -> String {
    match field.field_type {
        FieldType::Decimal => format!("{}::text AS \"out_{}\"", field.column(), field.id),
        _ => field.column(),
    }
}

/// Whether a read failed because the collection's table no longer matches
/// the catalog the statement was built from (a concurrent schema change the
/// reader's catalog, or a connection's prepared statement, had not seen yet):
/// a column gone, the table gone, a column's type changed ("cached plan must
/// not change result type", or a value of another type). Reading again with
/// the catalog read afresh answers it.
pub fn schema_moved(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match e.code() {
        Some(code) => {
            *code == SqlState::UNDEFINED_COLUMN
                || *code == SqlState::UNDEFINED_TABLE
                || *code == SqlState::FEATURE_NOT_SUPPORTED
        }
        None => {
            std::error::Error::source(e).is_some_and(|s| s.is::<tokio_postgres::types::WrongType>())
        }
    }
}

/// The JSON value of column `i` of `row`, read with [`select_expr`]. Fails
/// (instead of panicking) when the column's type is not the field's: the
/// catalog a reader holds can trail a concurrent type change.
pub fn read_value(row: &Row, i: usize, t: FieldType) -> Result<Json, tokio_postgres::Error> {
    Ok(match t {
        FieldType::Text | FieldType::Enum | FieldType::Decimal => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Json::Null, Json::String),
        FieldType::Integer => json!(row.try_get::<_, Option<i64>>(i)?),
        FieldType::Boolean => json!(row.try_get::<_, Option<bool>>(i)?),
        FieldType::Date => match row.try_get::<_, Option<Date>>(i)? {
            Some(d) => json!(format!(
                "{:04}-{:02}-{:02}",
                d.year(),
                u8::from(d.month()),
                d.day()
            )),
            None => Json::Null,
        },
        FieldType::Timestamp => match row.try_get::<_, Option<OffsetDateTime>>(i)? {
            Some(t) => t
                .to_offset(time::UtcOffset::UTC)
                .format(&Rfc3339)
                .map(Json::String)
                .unwrap_or(Json::Null),
            None => Json::Null,
        },
        FieldType::Json => row.try_get::<_, Option<Json>>(i)?.unwrap_or(Json::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("tickets").is_none());
        assert!(check_name("a1_b").is_none());
        for bad in [
            "",
            "1a",
            "A",
            "a-b",
            "a b",
            "é",
            "x\"; DROP TABLE users; --",
        ] {
            assert!(check_name(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn identifiers_come_from_ids_only() {
        assert_eq!(table(12), "records.\"c_12\"");
        assert_eq!(column(34), "\"f_34\"");
    }
}
