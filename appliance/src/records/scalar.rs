//! One typed value of a field: what a record's cell holds and what a
//! filter compares it with, bound to SQL the same way for both.

use serde_json::Value as Json;
use time::{Date, OffsetDateTime};
use tokio_postgres::types::ToSql;

use super::FieldType;

/// A field's value, checked and in canonical form (`values.rs`).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    Integer(i64),
    /// Canonical decimal text, bound as text and cast to numeric in SQL.
    Decimal(String),
    Boolean(bool),
    Date(Date),
    Timestamp(OffsetDateTime),
    Json(Json),
}

impl Scalar {
    /// The value to bind for its placeholder.
    pub fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Scalar::Text(v) | Scalar::Decimal(v) => v,
            Scalar::Integer(v) => v,
            Scalar::Boolean(v) => v,
            Scalar::Date(v) => v,
            Scalar::Timestamp(v) => v,
            Scalar::Json(v) => v,
        }
    }
}

/// A typed value or a typed NULL, to write to a field's column.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub field_type: FieldType,
    pub value: Option<Scalar>,
}

static NULL_TEXT: Option<String> = None;
static NULL_INTEGER: Option<i64> = None;
static NULL_BOOLEAN: Option<bool> = None;
static NULL_DATE: Option<Date> = None;
static NULL_TIMESTAMP: Option<OffsetDateTime> = None;
static NULL_JSON: Option<Json> = None;

impl Cell {
    pub fn of(field_type: FieldType, value: Scalar) -> Cell {
        Cell {
            field_type,
            value: Some(value),
        }
    }

    pub fn null(field_type: FieldType) -> Cell {
        Cell {
            field_type,
            value: None,
        }
    }

    /// The value to bind: a NULL is typed as the column's values are
    /// bound, which the statement's parameter types are checked against.
    pub fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match &self.value {
            Some(v) => v.as_sql(),
            None => match self.field_type {
                FieldType::Text | FieldType::Enum | FieldType::Decimal => &NULL_TEXT,
                FieldType::Integer => &NULL_INTEGER,
                FieldType::Boolean => &NULL_BOOLEAN,
                FieldType::Date => &NULL_DATE,
                FieldType::Timestamp => &NULL_TIMESTAMP,
                FieldType::Json => &NULL_JSON,
            },
        }
    }

    /// The placeholder with the cast its column needs.
    pub fn placeholder(&self, n: usize) -> String {
        match self.field_type {
            FieldType::Decimal => format!("${n}::text::numeric"),
            _ => format!("${n}"),
        }
    }

    pub fn is_null(&self) -> bool {
        self.value.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_null_or_a_value_and_decimals_are_cast() {
        assert!(Cell::null(FieldType::Json).is_null());
        assert!(!Cell::of(FieldType::Text, Scalar::Text(String::new())).is_null());
        assert_eq!(
            Cell::null(FieldType::Decimal).placeholder(3),
            "$3::text::numeric"
        );
        assert_eq!(
            Cell::of(FieldType::Decimal, Scalar::Decimal("1.5".into())).placeholder(1),
            "$1::text::numeric"
        );
        assert_eq!(
            Cell::of(FieldType::Integer, Scalar::Integer(1)).placeholder(2),
            "$2"
        );
    }
}
