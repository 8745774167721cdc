//! Why a filter was refused: stable codes, messages that say what is wrong
//! and what to do, and the path of the offending node.

use serde_json::Value as Json;

use super::ast::{allowed_ops, Op, ALL_OPS};
use crate::records::field_type_name;
use crate::records::values::FieldType;

/// How many names an error message lists.
pub(super) const MAX_LISTED: usize = 20;

/// Why a filter was refused. Each has a stable [`code`](Self::code), a
/// message saying what is wrong and what to do, and the [`path`](Self::path)
/// of the offending filter node (`""` for the whole filter, else e.g.
/// `and[1].or[0]` or `not`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error(
        "the filter is longer than {max} characters; simplify it (e.g. one `in` instead of many \
         `or`ed `eq`s) or split the request"
    )]
    TooLong { path: String, max: usize },
    #[error(
        "the filter is not valid JSON ({detail}); send one JSON object such as \
         {{\"field\": \"status\", \"op\": \"eq\", \"value\": \"open\"}}"
    )]
    InvalidJson { path: String, detail: String },
    #[error(
        "the filter nests deeper than {max} levels {}; flatten nested and/or/not (and nested \
         arrays/objects in json values)",
        at(.path)
    )]
    TooDeep { path: String, max: usize },
    #[error(
        "the filter has more than {max} nodes (conditions and and/or/not) {}; simplify it, e.g. \
         one `in` instead of many `or`ed `eq`s",
        at(.path)
    )]
    TooManyNodes { path: String, max: usize },
    #[error(
        "no field named {} {}; field names are case-sensitive; {}",
        quote(.field),
        at(.path),
        known_fields(.known, *.more)
    )]
    UnknownField {
        path: String,
        field: String,
        /// Up to 20 of the known field names.
        known: Vec<String>,
        /// How many more fields there are.
        more: usize,
    },
    #[error(
        "unknown operator {} {}; use one of: {}",
        quote(.op),
        at(.path),
        op_list(ALL_OPS)
    )]
    UnknownOperator { path: String, op: String },
    #[error(
        "operator {} is not allowed on the {} field {} {}; {} fields allow: {}",
        op_name(*.op),
        field_type_name(*.field_type),
        quote(.field),
        at(.path),
        field_type_name(*.field_type),
        op_list(allowed_ops(*.field_type))
    )]
    OperatorNotAllowed {
        path: String,
        field: String,
        op: Op,
        field_type: FieldType,
    },
    #[error("the value for field {} {} must be {expected}", quote(.field), at(.path))]
    TypeMismatch {
        path: String,
        field: String,
        expected: String,
    },
    #[error(
        "{detail} {}; a filter is {{\"field\": ..., \"op\": ..., \"value\": ...}} or exactly one \
         of {{\"and\": [filters]}}, {{\"or\": [filters]}}, {{\"not\": filter}}",
        at(.path)
    )]
    BadShape { path: String, detail: String },
    #[error(
        "the value {} has more than {max} {}; split the request or simplify the value",
        at(.path),
        if *.json { "array elements and object members" } else { "values in its `in` list" }
    )]
    ListTooLong {
        path: String,
        max: usize,
        /// Whether the value is a json value (else an `in` list).
        json: bool,
    },
    #[error(
        "a string in the value {} is longer than {max} characters; use a shorter value (e.g. \
         `prefix` or `contains` with part of it)",
        at(.path)
    )]
    ValueTooLong { path: String, max: usize },
    #[error(
        "{} is not a value of the enum field {} {}; allowed values: {}",
        quote(.value),
        quote(.field),
        at(.path),
        name_list(.allowed, *.more)
    )]
    NotAnEnumValue {
        path: String,
        field: String,
        value: String,
        /// Up to 20 of the allowed values.
        allowed: Vec<String>,
        /// How many more allowed values there are.
        more: usize,
    },
}

impl FilterError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            FilterError::TooLong { .. } => "too_long",
            FilterError::InvalidJson { .. } => "invalid_json",
            FilterError::TooDeep { .. } => "too_deep",
            FilterError::TooManyNodes { .. } => "too_many_nodes",
            FilterError::UnknownField { .. } => "unknown_field",
            FilterError::UnknownOperator { .. } => "unknown_operator",
            FilterError::OperatorNotAllowed { .. } => "operator_not_allowed",
            FilterError::TypeMismatch { .. } => "type_mismatch",
            FilterError::BadShape { .. } => "bad_shape",
            FilterError::ListTooLong { .. } => "list_too_long",
            FilterError::ValueTooLong { .. } => "value_too_long",
            FilterError::NotAnEnumValue { .. } => "not_an_enum_value",
        }
    }

    /// The path of the offending filter node: `""` for the whole filter,
    /// else e.g. `and[1].or[0]`.
    pub fn path(&self) -> &str {
        match self {
            FilterError::TooLong { path, .. }
            | FilterError::InvalidJson { path, .. }
            | FilterError::TooDeep { path, .. }
            | FilterError::TooManyNodes { path, .. }
            | FilterError::UnknownField { path, .. }
            | FilterError::UnknownOperator { path, .. }
            | FilterError::OperatorNotAllowed { path, .. }
            | FilterError::TypeMismatch { path, .. }
            | FilterError::BadShape { path, .. }
            | FilterError::ListTooLong { path, .. }
            | FilterError::ValueTooLong { path, .. }
            | FilterError::NotAnEnumValue { path, .. } => path,
        }
    }
}

pub(super) fn op_name(op: Op) -> &'static str {
    match op {
        Op::Eq => "eq",
        Op::Ne => "ne",
        Op::Lt => "lt",
        Op::Lte => "lte",
        Op::Gt => "gt",
        Op::Gte => "gte",
        Op::In => "in",
        Op::Contains => "contains",
        Op::Prefix => "prefix",
        Op::IsNull => "is_null",
    }
}

pub(super) fn op_list(ops: &[Op]) -> String {
    ops.iter()
        .map(|op| op_name(*op))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where in the filter, for a message.
pub(super) fn at(path: &str) -> String {
    if path.is_empty() {
        "(at the top level)".to_string()
    } else {
        format!("(at {path})")
    }
}

/// A user-supplied string for a message: quoted, escaped, and cut short.
pub(super) fn quote(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

pub(super) fn name_list(names: &[String], more: usize) -> String {
    let mut out = names
        .iter()
        .map(|n| quote(n))
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        out.push_str(&format!(" (and {more} more)"));
    }
    out
}

pub(super) fn known_fields(known: &[String], more: usize) -> String {
    if known.is_empty() {
        "this collection has no fields to filter on".to_string()
    } else {
        format!("known fields: {}", name_list(known, more))
    }
}

/// Up to [`MAX_LISTED`] names, and how many more there are.
pub(super) fn listed<'a>(names: impl ExactSizeIterator<Item = &'a String>) -> (Vec<String>, usize) {
    let total = names.len();
    let list: Vec<String> = names.take(MAX_LISTED).cloned().collect();
    let more = total - list.len();
    (list, more)
}

pub(super) fn child_path(path: &str, segment: &str) -> String {
    if path.is_empty() {
        segment.to_string()
    } else {
        format!("{path}.{segment}")
    }
}

pub(super) fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}
