//! The filter's semantics in Rust, as the SQL has them: the oracle the
//! tests compare the database against.

use std::cmp::Ordering;

use serde_json::{Map, Value as Json};
use time::{Date, OffsetDateTime};

use super::ast::{allowed_ops, FieldRef, Filter, List, Op, Value};
use super::parse::{checked_literal, find_field};
use crate::records::values::{
    canonical_decimal, cmp_decimal, decimal_of_number, parse_date, parse_timestamp, FieldType,
};
use crate::records::Scalar;

/// Whether a record matches, with the same semantics as [`to_sql`]'s SQL.
/// `record` maps field names to values as the API returns them; a missing
/// key or `null` is a missing value (SQL NULL), and so is a value that is
/// not of the field's type.
pub fn matches(filter: &Filter, fields: &[FieldRef], record: &Map<String, Json>) -> bool {
    match filter {
        Filter::And(children) => children.iter().all(|f| matches(f, fields, record)),
        Filter::Or(children) => children.iter().any(|f| matches(f, fields, record)),
        Filter::Not(child) => !matches(child, fields, record),
        Filter::Leaf { field, op, value } => {
            leaf_matches(fields, record, field, *op, value.as_ref())
        }
    }
}

pub(super) fn leaf_matches(
    fields: &[FieldRef],
    record: &Map<String, Json>,
    name: &str,
    op: Op,
    value: Option<&Value>,
) -> bool {
    let Some(field) = find_field(fields, name) else {
        return false;
    };
    let t = field.field_type;
    let actual = record.get(name).and_then(|v| record_cell(t, v));
    if op == Op::IsNull {
        return match (allowed_ops(t).contains(&op), value) {
            (true, None | Some(Value::One(Scalar::Boolean(true)))) => actual.is_none(),
            (true, Some(Value::One(Scalar::Boolean(false)))) => actual.is_some(),
            _ => false,
        };
    }
    let Some(expected) = value.and_then(|v| checked_literal(t, op, v)) else {
        return false;
    };
    let expected = literal_cells(&expected);
    let Some(actual) = actual else {
        // A missing value is "not equal" to anything; every other test fails.
        return op == Op::Ne;
    };
    let order = |want: fn(Ordering) -> bool| {
        expected
            .iter()
            .any(|e| cell_cmp(&actual, e).is_some_and(want))
    };
    match op {
        Op::Eq | Op::In => expected.iter().any(|e| cell_eq(&actual, e)),
        Op::Ne => !expected.iter().any(|e| cell_eq(&actual, e)),
        Op::Lt => order(Ordering::is_lt),
        Op::Lte => order(Ordering::is_le),
        Op::Gt => order(Ordering::is_gt),
        Op::Gte => order(Ordering::is_ge),
        Op::Contains => expected.iter().any(|e| match (&actual, e) {
            (Cell::Text(a), Cell::Text(e)) => a.contains(e),
            (Cell::Json(a), Cell::Json(e)) => jsonb_contains(a, e),
            _ => false,
        }),
        Op::Prefix => expected.iter().any(|e| match (&actual, e) {
            (Cell::Text(a), Cell::Text(e)) => a.starts_with(e),
            _ => false,
        }),
        Op::IsNull => false,
    }
}

/// A typed, comparable value.
#[derive(Debug)]
pub(super) enum Cell<'a> {
    Text(&'a str),
    Integer(i64),
    /// Canonical decimal text.
    Decimal(String),
    Boolean(bool),
    Date(Date),
    Timestamp(OffsetDateTime),
    Json(&'a Json),
}

/// A record's value as the API returns it, or `None` when it is missing or
/// not of the type.
pub(super) fn record_cell(t: FieldType, v: &Json) -> Option<Cell<'_>> {
    if v.is_null() {
        return None;
    }
    match t {
        FieldType::Text | FieldType::Enum => v.as_str().map(Cell::Text),
        FieldType::Integer => v.as_i64().map(Cell::Integer),
        FieldType::Decimal => match v {
            Json::String(s) => canonical_decimal(s, None).map(Cell::Decimal),
            Json::Number(n) => decimal_of_number(n).map(Cell::Decimal),
            _ => None,
        },
        FieldType::Boolean => v.as_bool().map(Cell::Boolean),
        FieldType::Date => v.as_str().and_then(parse_date).map(Cell::Date),
        FieldType::Timestamp => v.as_str().and_then(parse_timestamp).map(Cell::Timestamp),
        FieldType::Json => Some(Cell::Json(v)),
    }
}

/// The cells of a checked literal (several for a list).
pub(super) fn literal_cells(v: &Value) -> Vec<Cell<'_>> {
    match v {
        Value::One(Scalar::Text(s)) => vec![Cell::Text(s)],
        Value::One(Scalar::Integer(n)) => vec![Cell::Integer(*n)],
        Value::One(Scalar::Decimal(d)) => vec![Cell::Decimal(d.clone())],
        Value::One(Scalar::Boolean(b)) => vec![Cell::Boolean(*b)],
        Value::One(Scalar::Date(d)) => vec![Cell::Date(*d)],
        Value::One(Scalar::Timestamp(t)) => vec![Cell::Timestamp(*t)],
        Value::One(Scalar::Json(j)) => vec![Cell::Json(j)],
        Value::List(List::Text(l)) => l.iter().map(|s| Cell::Text(s)).collect(),
        Value::List(List::Integer(l)) => l.iter().map(|n| Cell::Integer(*n)).collect(),
        Value::List(List::Decimal(l)) => l.iter().map(|d| Cell::Decimal(d.clone())).collect(),
        Value::List(List::Boolean(l)) => l.iter().map(|b| Cell::Boolean(*b)).collect(),
        Value::List(List::Date(l)) => l.iter().map(|d| Cell::Date(*d)).collect(),
        Value::List(List::Timestamp(l)) => l.iter().map(|t| Cell::Timestamp(*t)).collect(),
    }
}

/// Order of two cells of one type (text in byte order, as `COLLATE "C"`);
/// `None` for json or differing types.
pub(super) fn cell_cmp(a: &Cell, b: &Cell) -> Option<Ordering> {
    match (a, b) {
        (Cell::Text(a), Cell::Text(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Cell::Integer(a), Cell::Integer(b)) => Some(a.cmp(b)),
        (Cell::Decimal(a), Cell::Decimal(b)) => Some(cmp_decimal(a, b)),
        (Cell::Boolean(a), Cell::Boolean(b)) => Some(a.cmp(b)),
        (Cell::Date(a), Cell::Date(b)) => Some(a.cmp(b)),
        (Cell::Timestamp(a), Cell::Timestamp(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

pub(super) fn cell_eq(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Json(a), Cell::Json(b)) => jsonb_eq(a, b),
        _ => cell_cmp(a, b) == Some(Ordering::Equal),
    }
}

/// Equality of two JSON scalars as jsonb has it (numbers as numbers); false
/// for containers.
pub(super) fn jsonb_scalar_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Null, Json::Null) => true,
        (Json::Bool(a), Json::Bool(b)) => a == b,
        (Json::String(a), Json::String(b)) => a == b,
        (Json::Number(a), Json::Number(b)) => match (decimal_of_number(a), decimal_of_number(b)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
        _ => false,
    }
}

pub(super) fn is_scalar(v: &Json) -> bool {
    !matches!(v, Json::Array(_) | Json::Object(_))
}

/// jsonb `=`: arrays in order, objects by key set, numbers as numbers.
pub(super) fn jsonb_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| jsonb_eq(a, b))
        }
        (Json::Object(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| jsonb_eq(v, w)))
        }
        _ => jsonb_scalar_eq(a, b),
    }
}

/// jsonb `a @> b` on top-level values (PostgreSQL's `JsonbDeepContains`,
/// where a top-level scalar is a one-element "raw scalar" array: a scalar
/// contains an equal scalar, an array contains a scalar among its elements,
/// and a scalar contains no array).
pub(super) fn jsonb_contains(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Array(items), b) if is_scalar(b) => items
            .iter()
            .any(|item| is_scalar(item) && jsonb_scalar_eq(item, b)),
        (a, b) if is_scalar(a) && is_scalar(b) => jsonb_scalar_eq(a, b),
        _ => contains_nested(a, b),
    }
}

/// Containment below the top level: containers of the same kind only.
pub(super) fn contains_nested(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Object(a), Json::Object(b)) => b.iter().all(|(key, want)| {
            a.get(key).is_some_and(|have| {
                if is_scalar(have) || is_scalar(want) {
                    jsonb_scalar_eq(have, want)
                } else {
                    contains_nested(have, want)
                }
            })
        }),
        (Json::Array(a), Json::Array(b)) => b.iter().all(|want| {
            if is_scalar(want) {
                a.iter()
                    .any(|have| is_scalar(have) && jsonb_scalar_eq(have, want))
            } else {
                a.iter()
                    .any(|have| !is_scalar(have) && contains_nested(have, want))
            }
        }),
        _ => false,
    }
}
