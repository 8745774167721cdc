//! The record filter language: parsing and validating a JSON filter (hostile
//! input) against a collection's fields, compiling it to a parameterized SQL
//! boolean expression, and the same semantics in Rust ([`matches`]) as an
//! oracle for tests.
//!
//! # The language
//!
//! A filter is one JSON object of exactly one of these shapes:
//!
//! - a condition (leaf): `{"field": "status", "op": "eq", "value": "open"}`.
//!   All three keys are required, `value` included (for `is_null` it is
//!   `true` for "is null" and `false` for "is not null");
//! - `{"and": [f, ...]}` or `{"or": [f, ...]}` with at least one filter;
//! - `{"not": f}`.
//!
//! Any other key, a missing key, a mix of the shapes, a duplicate key or a
//! node that is not an object is refused (`bad_shape`, or `invalid_json` for
//! a duplicate key in filter text). Field names match `FieldRef::name`
//! exactly (case-sensitive).
//!
//! | field type | operators | value |
//! | --- | --- | --- |
//! | text | eq ne lt lte gt gte in contains prefix is_null | a string |
//! | integer | eq ne lt lte gt gte in is_null | a JSON integer (i64) |
//! | decimal | eq ne lt lte gt gte in is_null | a string `-?[0-9]{1,40}(\.[0-9]{1,40})?`, or a JSON number |
//! | boolean | eq ne is_null | true or false |
//! | date | eq ne lt lte gt gte in is_null | `YYYY-MM-DD` (years 0001-9999) |
//! | timestamp | eq ne lt lte gt gte in is_null | RFC 3339 with an offset |
//! | enum | eq ne in is_null | one of the field's values |
//! | json | eq contains is_null | any JSON value but `null` |
//!
//! `in` takes a JSON array of 1 to `max_in` values of the field's type.
//! `null` is never a value: to match missing values use `is_null`.
//!
//! # Semantics: every condition is true or false, never NULL
//!
//! A missing value (SQL NULL; `null` or absent in the record as the API
//! returns it) makes every condition false, except:
//!
//! - `ne` is `IS DISTINCT FROM`: a missing value *is* "not equal" (true);
//! - `is_null` tests for the missing value.
//!
//! So `not` is plain boolean negation: `not(lt x)` matches the records where
//! `lt x` does not, missing values included. `and`/`or` are the usual
//! connectives.
//!
//! Details of each type:
//!
//! - text: `eq`, `ne` and `in` compare exactly. `lt`/`lte`/`gt`/`gte`
//!   compare in byte order (`COLLATE "C"`, which is Unicode code point
//!   order), `contains` is a case-sensitive substring test and `prefix` a
//!   case-sensitive starts-with test. Values may not contain U+0000, which
//!   PostgreSQL text cannot hold.
//! - decimal: compared exactly, as numbers (`0.10` = `0.1`, `-0` = `0`).
//!   Values are kept as canonical text (no leading zeros, no trailing
//!   fractional zeros, no `-0`), bound as text and cast in SQL
//!   (`$n::text::numeric`; a plain `$n::numeric` would make PostgreSQL ask
//!   the client for a binary numeric, which a Rust string cannot provide).
//!   A JSON number that is not an integer has already been read as a 64-bit
//!   float by the JSON layer, so it is accepted only with at most 15
//!   significant digits (where the float still denotes the decimal that was
//!   written); send longer decimals as strings.
//! - timestamp: compared as instants, whatever the offsets. Values are kept
//!   in UTC with microsecond precision (PostgreSQL's): finer digits are
//!   truncated. A value whose UTC time falls outside years 0000-9999 is
//!   refused.
//! - json: `eq` is jsonb equality (numbers compare as numbers, object key
//!   order does not matter), `contains` is jsonb containment (`@>`): an
//!   object contains an object whose every key it has with a containing
//!   value; an array contains an array whose every element is contained in
//!   some element of it; a top-level array also contains a scalar that is
//!   one of its elements; scalars contain equal scalars. A JSON `null` at the
//!   top level of a record's value is the same as a missing value.
//!
//! # SQL
//!
//! [`to_sql`] writes only the trusted `FieldRef::column` expressions,
//! placeholders (`$n`, with a cast to the parameter's type), keywords and
//! punctuation; every user value is a bind parameter (returned in order by
//! [`to_sql`]; bind each with [`Value::as_sql`]). Conditions compile to
//! plain predicates, so that PostgreSQL can answer them from the field's
//! index:
//!
//! | op | SQL |
//! | --- | --- |
//! | eq | `(col = $n::T)` (text, enum: `(col COLLATE "C" = $n::text)`) |
//! | ne | `(col IS DISTINCT FROM $n::T)` (text, enum: `col COLLATE "C"` likewise) |
//! | lt, lte, gt, gte | `(col < $n::T)` (text: `(col COLLATE "C" < $n::text)`) |
//! | in | `(col = ANY($n::T[]))` (text, enum: `(col COLLATE "C" = ANY($n::text[]))`) |
//! | contains | text: `(strpos(col, $n::text) > 0)`; json: `(col @> $n::jsonb)` |
//! | prefix | `starts_with(col, $n::text)` |
//! | is_null | `(col IS NULL)` / `(col IS NOT NULL)` |
//!
//! and `and`/`or`/`not` to `(a AND b)`, `(a OR b)`, `(NOT coalesce(a,
//! false))`. The column types are those of the appliance: text (text and
//! enum), bigint, numeric, boolean, date, timestamptz and jsonb. Text and
//! enum columns are indexed on `(col COLLATE "C")` (the records schema), so
//! every comparison that an index can answer uses that expression; equality
//! is byte equality under any deterministic collation, so `COLLATE "C"`
//! changes no result of `eq`, `ne` or `in`.
//!
//! Why this is exact: with a missing value, a predicate other than `ne` and
//! `is_null` is SQL-unknown (NULL) rather than false. Write `[f]` for a
//! filter's two-valued value (what [`matches`] computes) and `e` for its
//! SQL; by induction, `e` is true where `[f]` is true and false or NULL
//! where `[f]` is false:
//!
//! - a leaf: with a value present it is exactly `[f]`; with the value
//!   missing, `ne` and `is_null` are still exact (true and true/false) and
//!   the others are NULL, where `[f]` is false;
//! - `and`: if `[f]` is true every operand is true, so `e` is; if it is
//!   false some operand is false or NULL, so `e` is false or NULL;
//! - `or`: if `[f]` is true some operand is true, so `e` is; if it is false
//!   every operand is false or NULL, so `e` is false or NULL;
//! - `not g`: `coalesce(e_g, false)` is exactly `[g]`, so
//!   `NOT coalesce(e_g, false)` is exactly `[not g]`, never NULL.
//!
//! A `WHERE` keeps the rows where its condition is true, so it keeps exactly
//! the records [`matches`] accepts. The SQL itself may be NULL, though: use
//! it as a `WHERE` condition, alone or under `AND` with other conditions, or
//! wrap it in `coalesce(…, false)`; never negate or compare it as is.
//!
//! A [`Filter`] built by hand rather than by [`parse`] may hold conditions
//! that do not validate (an unknown field, an operator the type does not
//! have, a value of the wrong type): [`to_sql`] compiles such a condition to
//! `false` and [`matches`] agrees.
//!
//! # Limits
//!
//! [`Limits`]: the filter text's length in characters (`too_long`), the
//! nesting depth of filter nodes, the top-level node being depth 1
//! (`too_deep`), the number of filter nodes, conditions and and/or/not alike
//! (`too_many_nodes`), and the length of an `in` list (`list_too_long`).
//! Strings in values, JSON keys included, are at most 1000 characters
//! (`value_too_long`). A json value nests at most `max_depth` arrays/objects
//! deep (`too_deep`) and holds at most `max_in` array elements and object
//! members in all (`list_too_long`).

use std::cmp::Ordering;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value as Json};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, UtcOffset};
use tokio_postgres::types::ToSql;

/// Longest string in a value, in characters.
const MAX_VALUE_CHARS: usize = 1000;
/// Most digits on each side of a decimal's point.
const MAX_DECIMAL_DIGITS: usize = 40;
/// Most significant digits of a decimal sent as a (non-integer) JSON number.
const MAX_FLOAT_DIGITS: usize = 15;
/// How many names an error message lists.
const MAX_LISTED: usize = 20;

/// The type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Integer,
    Decimal,
    Boolean,
    Date,
    Timestamp,
    Enum,
    Json,
}

/// A field as the filter sees it.
#[derive(Debug, Clone)]
pub struct FieldRef {
    /// The API name, e.g. `status`.
    pub name: String,
    /// SQL expression for the column, trusted, e.g. `"f_12"` (quoted). It is
    /// written as is, so it must be a quoted identifier (optionally
    /// qualified) or another primary expression.
    pub column: String,
    pub field_type: FieldType,
    /// The allowed values when `field_type` is [`FieldType::Enum`].
    pub enum_values: Vec<String>,
}

/// Bounds on a filter's size.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of filter nodes (the top-level node is depth 1); also
    /// the deepest nesting of a json value.
    pub max_depth: usize,
    /// Most filter nodes (conditions and and/or/not) in all.
    pub max_nodes: usize,
    /// Longest `in` list; also the most array elements and object members in
    /// a json value.
    pub max_in: usize,
    /// Longest filter text, in characters.
    pub max_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 8,
            max_nodes: 64,
            max_in: 100,
            max_chars: 4096,
        }
    }
}

/// A typed literal bound as a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Integer(i64),
    /// Canonical decimal text, bound as text and cast to numeric in SQL.
    Decimal(String),
    Boolean(bool),
    Date(Date),
    Timestamp(OffsetDateTime),
    Json(Json),
    TextList(Vec<String>),
    IntegerList(Vec<i64>),
    DecimalList(Vec<String>),
    BooleanList(Vec<bool>),
    DateList(Vec<Date>),
    TimestampList(Vec<OffsetDateTime>),
}

impl Value {
    /// The value to bind for its placeholder.
    pub fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Value::Text(v) | Value::Decimal(v) => v,
            Value::Integer(v) => v,
            Value::Boolean(v) => v,
            Value::Date(v) => v,
            Value::Timestamp(v) => v,
            Value::Json(v) => v,
            Value::TextList(v) | Value::DecimalList(v) => v,
            Value::IntegerList(v) => v,
            Value::BooleanList(v) => v,
            Value::DateList(v) => v,
            Value::TimestampList(v) => v,
        }
    }
}

/// A condition's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    Contains,
    Prefix,
    IsNull,
}

/// A parsed, validated filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// A condition. [`parse`] always gives a value; for `is_null` it is
    /// `Value::Boolean(true)` ("is null") or `Value::Boolean(false)` ("is not
    /// null"), and `None` there is taken as `true`. Only `is_null` may have
    /// `None`.
    Leaf {
        field: String,
        op: Op,
        value: Option<Value>,
    },
}

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
        type_name(*.field_type),
        quote(.field),
        at(.path),
        type_name(*.field_type),
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

// ---------------------------------------------------------------------------
// Names and message helpers

const ALL_OPS: &[Op] = &[
    Op::Eq,
    Op::Ne,
    Op::Lt,
    Op::Lte,
    Op::Gt,
    Op::Gte,
    Op::In,
    Op::Contains,
    Op::Prefix,
    Op::IsNull,
];

fn op_name(op: Op) -> &'static str {
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

fn type_name(t: FieldType) -> &'static str {
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

/// The operators a field type allows.
fn allowed_ops(t: FieldType) -> &'static [Op] {
    match t {
        FieldType::Text => ALL_OPS,
        FieldType::Integer | FieldType::Decimal | FieldType::Date | FieldType::Timestamp => &[
            Op::Eq,
            Op::Ne,
            Op::Lt,
            Op::Lte,
            Op::Gt,
            Op::Gte,
            Op::In,
            Op::IsNull,
        ],
        FieldType::Boolean => &[Op::Eq, Op::Ne, Op::IsNull],
        FieldType::Enum => &[Op::Eq, Op::Ne, Op::In, Op::IsNull],
        FieldType::Json => &[Op::Eq, Op::Contains, Op::IsNull],
    }
}

fn op_list(ops: &[Op]) -> String {
    ops.iter()
        .map(|op| op_name(*op))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where in the filter, for a message.
fn at(path: &str) -> String {
    if path.is_empty() {
        "(at the top level)".to_string()
    } else {
        format!("(at {path})")
    }
}

/// A user-supplied string for a message: quoted, escaped, and cut short.
fn quote(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

fn name_list(names: &[String], more: usize) -> String {
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

fn known_fields(known: &[String], more: usize) -> String {
    if known.is_empty() {
        "this collection has no fields to filter on".to_string()
    } else {
        format!("known fields: {}", name_list(known, more))
    }
}

/// Up to [`MAX_LISTED`] names, and how many more there are.
fn listed<'a>(names: impl ExactSizeIterator<Item = &'a String>) -> (Vec<String>, usize) {
    let total = names.len();
    let list: Vec<String> = names.take(MAX_LISTED).cloned().collect();
    let more = total - list.len();
    (list, more)
}

fn child_path(path: &str, segment: &str) -> String {
    if path.is_empty() {
        segment.to_string()
    } else {
        format!("{path}.{segment}")
    }
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------
// Parsing

/// Parses and validates filter text: at most `limits.max_chars` characters of
/// JSON (duplicate object keys refused), then [`parse_value`].
pub fn parse(text: &str, fields: &[FieldRef], limits: Limits) -> Result<Filter, FilterError> {
    if text.len() > limits.max_chars && text.chars().nth(limits.max_chars).is_some() {
        return Err(FilterError::TooLong {
            path: String::new(),
            max: limits.max_chars,
        });
    }
    let json = match serde_json::from_str::<StrictJson>(text) {
        Ok(StrictJson(json)) => json,
        Err(e) => {
            let detail = e.to_string();
            if detail.starts_with("recursion limit exceeded") {
                return Err(FilterError::TooDeep {
                    path: String::new(),
                    max: limits.max_depth,
                });
            }
            return Err(FilterError::InvalidJson {
                path: String::new(),
                detail,
            });
        }
    };
    parse_value(&json, fields, limits)
}

/// Validates a filter already parsed as JSON.
pub fn parse_value(
    json: &Json,
    fields: &[FieldRef],
    limits: Limits,
) -> Result<Filter, FilterError> {
    Parser {
        fields,
        limits,
        nodes: 0,
    }
    .node(json, "", 1)
}

/// A JSON value whose objects have no duplicate keys.
struct StrictJson(Json);

impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictJson;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<StrictJson, E> {
        Ok(StrictJson(Json::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrictJson, E> {
        Ok(StrictJson(Json::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrictJson, E> {
        Ok(StrictJson(Json::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrictJson, E> {
        Number::from_f64(v)
            .map(|n| StrictJson(Json::Number(n)))
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<StrictJson, E> {
        Ok(StrictJson(Json::String(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<StrictJson, E> {
        Ok(StrictJson(Json::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<StrictJson, E> {
        Ok(StrictJson(Json::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<StrictJson, E> {
        Ok(StrictJson(Json::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StrictJson, D::Error> {
        StrictJson::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictJson, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictJson(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(StrictJson(Json::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictJson, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {}",
                    quote(&key)
                )));
            }
            let StrictJson(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(StrictJson(Json::Object(out)))
    }
}

struct Parser<'a> {
    fields: &'a [FieldRef],
    limits: Limits,
    nodes: usize,
}

impl Parser<'_> {
    fn node(&mut self, json: &Json, path: &str, depth: usize) -> Result<Filter, FilterError> {
        if depth > self.limits.max_depth {
            return Err(FilterError::TooDeep {
                path: path.to_string(),
                max: self.limits.max_depth,
            });
        }
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(self.too_many_nodes(path));
        }
        let bad = |detail: String| FilterError::BadShape {
            path: path.to_string(),
            detail,
        };
        let Json::Object(obj) = json else {
            return Err(bad(format!(
                "a filter must be a JSON object, not {}",
                json_kind(json)
            )));
        };
        if let Some(key) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "field" | "op" | "value" | "and" | "or" | "not"))
        {
            return Err(bad(format!(
                "unknown key {}; the keys are field, op and value, or one of and, or, not",
                quote(key)
            )));
        }
        let combinators: Vec<&str> = ["and", "or", "not"]
            .into_iter()
            .filter(|k| obj.contains_key(*k))
            .collect();
        match combinators.as_slice() {
            [] => self.leaf(obj, path),
            [key] if obj.len() == 1 => {
                let inner = &obj[*key];
                if *key == "not" {
                    let child = self.node(inner, &child_path(path, "not"), depth + 1)?;
                    return Ok(Filter::Not(Box::new(child)));
                }
                let Json::Array(items) = inner else {
                    return Err(bad(format!(
                        "`{key}` takes an array of filters, not {}",
                        json_kind(inner)
                    )));
                };
                if items.is_empty() {
                    return Err(bad(format!("`{key}` needs at least one filter")));
                }
                if items.len() > self.limits.max_nodes {
                    return Err(self.too_many_nodes(path));
                }
                let mut children = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let p = child_path(path, &format!("{key}[{i}]"));
                    children.push(self.node(item, &p, depth + 1)?);
                }
                Ok(if *key == "and" {
                    Filter::And(children)
                } else {
                    Filter::Or(children)
                })
            }
            [key] => Err(bad(format!(
                "`{key}` cannot be combined with other keys in one object; put each filter in \
                 its own object"
            ))),
            _ => Err(bad(format!(
                "an object holds only one of {}; nest them instead",
                combinators.join(", ")
            ))),
        }
    }

    fn too_many_nodes(&self, path: &str) -> FilterError {
        FilterError::TooManyNodes {
            path: path.to_string(),
            max: self.limits.max_nodes,
        }
    }

    fn leaf(&self, obj: &Map<String, Json>, path: &str) -> Result<Filter, FilterError> {
        let bad = |detail: String| FilterError::BadShape {
            path: path.to_string(),
            detail,
        };
        let missing: Vec<&str> = ["field", "op", "value"]
            .into_iter()
            .filter(|k| !obj.contains_key(*k))
            .collect();
        if !missing.is_empty() {
            return Err(bad(format!(
                "a condition needs the keys field, op and value; missing: {}",
                missing.join(", ")
            )));
        }
        let (field_json, op_json, value) = (&obj["field"], &obj["op"], &obj["value"]);
        let Json::String(name) = field_json else {
            return Err(bad(format!(
                "`field` must be a string (a field name), not {}",
                json_kind(field_json)
            )));
        };
        let Json::String(op_text) = op_json else {
            return Err(bad(format!(
                "`op` must be a string (an operator name), not {}",
                json_kind(op_json)
            )));
        };
        let Some(op) = ALL_OPS.iter().copied().find(|op| op_name(*op) == op_text) else {
            return Err(FilterError::UnknownOperator {
                path: path.to_string(),
                op: op_text.clone(),
            });
        };
        let Some(field) = find_field(self.fields, name) else {
            let (known, more) = listed(self.fields.iter().map(|f| &f.name));
            return Err(FilterError::UnknownField {
                path: path.to_string(),
                field: name.clone(),
                known,
                more,
            });
        };
        if !allowed_ops(field.field_type).contains(&op) {
            return Err(FilterError::OperatorNotAllowed {
                path: path.to_string(),
                field: field.name.clone(),
                op,
                field_type: field.field_type,
            });
        }
        let value = Literal {
            field,
            limits: self.limits,
            path,
        }
        .parse(op, value)?;
        Ok(Filter::Leaf {
            field: field.name.clone(),
            op,
            value: Some(value),
        })
    }
}

fn find_field<'a>(fields: &'a [FieldRef], name: &str) -> Option<&'a FieldRef> {
    fields.iter().find(|f| f.name == name)
}

/// Reads a condition's value for one field.
struct Literal<'a> {
    field: &'a FieldRef,
    limits: Limits,
    path: &'a str,
}

impl Literal<'_> {
    fn mismatch(&self, expected: String) -> FilterError {
        FilterError::TypeMismatch {
            path: self.path.to_string(),
            field: self.field.name.clone(),
            expected,
        }
    }

    fn too_long(&self) -> FilterError {
        FilterError::ValueTooLong {
            path: self.path.to_string(),
            max: MAX_VALUE_CHARS,
        }
    }

    /// What a scalar of this field's type looks like.
    fn expected(&self) -> &'static str {
        match self.field.field_type {
            FieldType::Text => "a string",
            FieldType::Integer => {
                "a JSON integer between -9223372036854775808 and 9223372036854775807 (no \
                 fraction, no exponent, not a string)"
            }
            FieldType::Decimal => {
                "a decimal with at most 40 digits before and after the point and no exponent: a \
                 string such as \"-12.50\", or a JSON number (with at most 15 significant digits \
                 unless it is an integer; send longer ones as strings)"
            }
            FieldType::Boolean => "true or false",
            FieldType::Date => "a date as a string YYYY-MM-DD (year 0001 to 9999)",
            FieldType::Timestamp => {
                "an RFC 3339 timestamp with an offset, e.g. \"2026-01-31T12:00:00Z\" or \
                 \"2026-01-31T13:00:00+01:00\", within years 0000-9999 in UTC"
            }
            FieldType::Enum => "a string, one of the field's values",
            FieldType::Json => "a JSON value",
        }
    }

    fn parse(&self, op: Op, value: &Json) -> Result<Value, FilterError> {
        match op {
            Op::IsNull => match value {
                Json::Bool(b) => Ok(Value::Boolean(*b)),
                _ => Err(self.mismatch(format!(
                    "true (is null) or false (is not null) for is_null, not {}",
                    json_kind(value)
                ))),
            },
            Op::In => self.list(value),
            _ => self.scalar(value),
        }
    }

    fn list(&self, value: &Json) -> Result<Value, FilterError> {
        let max = self.limits.max_in;
        let expected = || {
            self.mismatch(format!(
                "a JSON array of 1 to {max} values for `in`, each {}",
                self.expected()
            ))
        };
        let Json::Array(items) = value else {
            return Err(expected());
        };
        if items.is_empty() {
            return Err(expected());
        }
        if items.len() > max {
            return Err(FilterError::ListTooLong {
                path: self.path.to_string(),
                max,
                json: false,
            });
        }
        let values = items
            .iter()
            .map(|item| self.scalar(item))
            .collect::<Result<Vec<_>, _>>()?;
        let list = match self.field.field_type {
            FieldType::Text | FieldType::Enum => Value::TextList(collect(values, |v| match v {
                Value::Text(s) => Some(s),
                _ => None,
            })),
            FieldType::Integer => Value::IntegerList(collect(values, |v| match v {
                Value::Integer(n) => Some(n),
                _ => None,
            })),
            FieldType::Decimal => Value::DecimalList(collect(values, |v| match v {
                Value::Decimal(d) => Some(d),
                _ => None,
            })),
            FieldType::Boolean => Value::BooleanList(collect(values, |v| match v {
                Value::Boolean(b) => Some(b),
                _ => None,
            })),
            FieldType::Date => Value::DateList(collect(values, |v| match v {
                Value::Date(d) => Some(d),
                _ => None,
            })),
            FieldType::Timestamp => Value::TimestampList(collect(values, |v| match v {
                Value::Timestamp(t) => Some(t),
                _ => None,
            })),
            // Not reachable: json has no `in`.
            FieldType::Json => return Err(expected()),
        };
        Ok(list)
    }

    /// A string value within the length limit.
    fn string<'v>(&self, value: &'v Json) -> Result<Option<&'v str>, FilterError> {
        match value {
            Json::String(s) if too_many_chars(s, MAX_VALUE_CHARS) => Err(self.too_long()),
            Json::String(s) => Ok(Some(s)),
            _ => Ok(None),
        }
    }

    fn scalar(&self, value: &Json) -> Result<Value, FilterError> {
        if value.is_null() {
            return Err(self.mismatch(format!(
                "{}, not null; to match missing values use the operator is_null",
                self.expected()
            )));
        }
        let wrong = || {
            self.mismatch(format!(
                "{}, not {}",
                self.expected(),
                match value {
                    Json::String(s) => format!("the string {}", quote(s)),
                    Json::Number(n) => format!("the number {}", quote(&n.to_string())),
                    other => json_kind(other).to_string(),
                }
            ))
        };
        let string = self.string(value)?;
        match self.field.field_type {
            FieldType::Text => match string {
                Some(s) if s.contains('\0') => Err(self.mismatch(
                    "text without NUL (U+0000) characters, which text values cannot hold"
                        .to_string(),
                )),
                Some(s) => Ok(Value::Text(s.to_string())),
                None => Err(wrong()),
            },
            FieldType::Enum => match string {
                Some(s) if self.field.enum_values.iter().any(|v| v == s) => {
                    Ok(Value::Text(s.to_string()))
                }
                Some(s) => {
                    let (allowed, more) = listed(self.field.enum_values.iter());
                    Err(FilterError::NotAnEnumValue {
                        path: self.path.to_string(),
                        field: self.field.name.clone(),
                        value: s.to_string(),
                        allowed,
                        more,
                    })
                }
                None => Err(wrong()),
            },
            FieldType::Integer => match value {
                Json::Number(n) if n.is_i64() => n.as_i64().map(Value::Integer).ok_or_else(wrong),
                _ => Err(wrong()),
            },
            FieldType::Decimal => {
                let canonical = match (string, value) {
                    (Some(s), _) => canonical_decimal(s, Some(MAX_DECIMAL_DIGITS)),
                    (None, Json::Number(n)) => decimal_from_json_number(n),
                    _ => None,
                };
                canonical.map(Value::Decimal).ok_or_else(wrong)
            }
            FieldType::Boolean => value.as_bool().map(Value::Boolean).ok_or_else(wrong),
            FieldType::Date => string
                .and_then(parse_date)
                .map(Value::Date)
                .ok_or_else(wrong),
            FieldType::Timestamp => string
                .and_then(parse_timestamp)
                .map(Value::Timestamp)
                .ok_or_else(wrong),
            FieldType::Json => {
                let mut members = 0;
                self.check_json(value, 0, &mut members)?;
                Ok(Value::Json(value.clone()))
            }
        }
    }

    /// Checks a json value's depth, size and strings.
    fn check_json(
        &self,
        value: &Json,
        depth: usize,
        members: &mut usize,
    ) -> Result<(), FilterError> {
        let check_str = |s: &str| {
            if too_many_chars(s, MAX_VALUE_CHARS) {
                Err(self.too_long())
            } else if s.contains('\0') {
                Err(self.mismatch(
                    "a JSON value without NUL (\\u0000) characters, which json values cannot hold"
                        .to_string(),
                ))
            } else {
                Ok(())
            }
        };
        let mut enter = |count: usize| {
            if depth + 1 > self.limits.max_depth {
                return Err(FilterError::TooDeep {
                    path: self.path.to_string(),
                    max: self.limits.max_depth,
                });
            }
            *members += count;
            if *members > self.limits.max_in {
                return Err(FilterError::ListTooLong {
                    path: self.path.to_string(),
                    max: self.limits.max_in,
                    json: true,
                });
            }
            Ok(())
        };
        match value {
            Json::String(s) => check_str(s),
            Json::Array(items) => {
                enter(items.len())?;
                for item in items {
                    self.check_json(item, depth + 1, members)?;
                }
                Ok(())
            }
            Json::Object(map) => {
                enter(map.len())?;
                for (key, item) in map {
                    check_str(key)?;
                    self.check_json(item, depth + 1, members)?;
                }
                Ok(())
            }
            Json::Null | Json::Bool(_) | Json::Number(_) => Ok(()),
        }
    }
}

/// The parts of a list of scalars of one variant.
fn collect<T>(values: Vec<Value>, part: impl Fn(Value) -> Option<T>) -> Vec<T> {
    values.into_iter().filter_map(part).collect()
}

/// Whether `s` has more than `max` characters.
fn too_many_chars(s: &str, max: usize) -> bool {
    s.len() > max && s.chars().nth(max).is_some()
}

// ---------------------------------------------------------------------------
// Values

/// Canonical text of a decimal written `-?[0-9]+(\.[0-9]+)?`, with at most
/// `max_digits` digits on each side of the point when given: no leading
/// zeros, no trailing fractional zeros, no point without a fraction, no
/// `-0`.
pub(crate) fn canonical_decimal(s: &str, max_digits: Option<usize>) -> Option<String> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    let part_ok = |part: &str| {
        !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && max_digits.is_none_or(|max| part.len() <= max)
    };
    if !part_ok(int) || !frac.is_none_or(part_ok) {
        return None;
    }
    let int = match int.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    let frac = frac.unwrap_or("").trim_end_matches('0');
    let mut out = String::with_capacity(int.len() + frac.len() + 2);
    if negative && !(int == "0" && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// A decimal literal sent as a JSON number: integers exactly; other numbers
/// (read as 64-bit floats) only with at most 15 significant digits.
pub(crate) fn decimal_from_json_number(n: &Number) -> Option<String> {
    if n.is_i64() || n.is_u64() {
        return canonical_decimal(&n.to_string(), Some(MAX_DECIMAL_DIGITS));
    }
    // Rust prints floats without an exponent, as the shortest decimal that
    // reads back as the same float.
    let canonical = canonical_decimal(&format!("{}", n.as_f64()?), Some(MAX_DECIMAL_DIGITS))?;
    let significant = canonical
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(char::from)
        .collect::<String>();
    let significant = significant.trim_start_matches('0').trim_end_matches('0');
    (significant.len() <= MAX_FLOAT_DIGITS).then_some(canonical)
}

/// A JSON number as canonical decimal text, of any length (for record values).
fn decimal_of_number(n: &Number) -> Option<String> {
    if n.is_i64() || n.is_u64() {
        canonical_decimal(&n.to_string(), None)
    } else {
        canonical_decimal(&format!("{}", n.as_f64()?), None)
    }
}

/// Compares canonical decimal texts as numbers.
fn cmp_decimal(a: &str, b: &str) -> Ordering {
    fn magnitude(a: &str, b: &str) -> Ordering {
        let (ai, af) = a.split_once('.').unwrap_or((a, ""));
        let (bi, bf) = b.split_once('.').unwrap_or((b, ""));
        // No leading zeros: a longer integer part is larger. No trailing
        // fractional zeros: fractions compare as strings.
        ai.len()
            .cmp(&bi.len())
            .then_with(|| ai.cmp(bi))
            .then_with(|| af.cmp(bf))
    }
    match (a.strip_prefix('-'), b.strip_prefix('-')) {
        (None, None) => magnitude(a, b),
        (Some(a), Some(b)) => magnitude(b, a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
    }
}

/// A date written exactly `YYYY-MM-DD`, years 0001 to 9999.
pub(crate) fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u16> {
        let part = s.get(range)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let year = number(0..4)?;
    let month = u8::try_from(number(5..7)?).ok()?;
    let day = u8::try_from(number(8..10)?).ok()?;
    if year == 0 {
        return None;
    }
    Date::from_calendar_date(i32::from(year), Month::try_from(month).ok()?, day).ok()
}

/// An RFC 3339 timestamp, normalized.
pub(crate) fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    normalize_timestamp(OffsetDateTime::parse(s, &Rfc3339).ok()?)
}

/// In UTC and truncated to microseconds, as PostgreSQL keeps it; `None` when
/// the UTC time is out of range (binding it would panic).
fn normalize_timestamp(t: OffsetDateTime) -> Option<OffsetDateTime> {
    let utc = t.checked_to_offset(UtcOffset::UTC)?;
    utc.replace_nanosecond(utc.nanosecond() / 1000 * 1000).ok()
}

/// The expected value of a condition, normalized (decimals canonical,
/// timestamps in UTC to the microsecond), or `None` when it does not fit
/// the field type and operator (or could not be bound).
fn checked_literal(t: FieldType, op: Op, value: &Value) -> Option<Value> {
    let text_ok = |s: &str| !s.contains('\0');
    let decimal = |s: &String| canonical_decimal(s, None);
    let v = match (t, op, value) {
        (_, Op::IsNull, _) => return None,
        (FieldType::Text | FieldType::Enum, Op::In, Value::TextList(l)) => {
            if !l.iter().all(|s| text_ok(s)) {
                return None;
            }
            value.clone()
        }
        (FieldType::Integer, Op::In, Value::IntegerList(_))
        | (FieldType::Date, Op::In, Value::DateList(_)) => value.clone(),
        (FieldType::Decimal, Op::In, Value::DecimalList(l)) => {
            Value::DecimalList(l.iter().map(decimal).collect::<Option<_>>()?)
        }
        (FieldType::Timestamp, Op::In, Value::TimestampList(l)) => Value::TimestampList(
            l.iter()
                .map(|t| normalize_timestamp(*t))
                .collect::<Option<_>>()?,
        ),
        (_, Op::In, _) => return None,
        (FieldType::Text, _, Value::Text(s))
        | (FieldType::Enum, Op::Eq | Op::Ne, Value::Text(s)) => {
            if !text_ok(s) {
                return None;
            }
            value.clone()
        }
        (FieldType::Integer, _, Value::Integer(_))
        | (FieldType::Boolean, _, Value::Boolean(_))
        | (FieldType::Date, _, Value::Date(_)) => value.clone(),
        (FieldType::Decimal, _, Value::Decimal(s)) => Value::Decimal(decimal(s)?),
        (FieldType::Timestamp, _, Value::Timestamp(t)) => {
            Value::Timestamp(normalize_timestamp(*t)?)
        }
        (FieldType::Json, _, Value::Json(j)) if !j.is_null() && !json_has_nul(j) => value.clone(),
        _ => return None,
    };
    allowed_ops(t).contains(&op).then_some(v)
}

pub(crate) fn json_has_nul(v: &Json) -> bool {
    match v {
        Json::String(s) => s.contains('\0'),
        Json::Array(items) => items.iter().any(json_has_nul),
        Json::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        Json::Null | Json::Bool(_) | Json::Number(_) => false,
    }
}

// ---------------------------------------------------------------------------
// SQL

/// Compiles a filter to a self-contained boolean SQL expression that is true
/// exactly where the filter matches and false *or NULL* elsewhere (see the
/// module doc): use it as a `WHERE` condition, alone or under `AND`, or wrap
/// it in `coalesce(…, false)` for a two-valued result. The placeholders are
/// `$first_param`, `$first_param + 1`, ...; the values to bind for them are
/// returned in that order.
pub fn to_sql(filter: &Filter, fields: &[FieldRef], first_param: usize) -> (String, Vec<Value>) {
    let mut compiler = Compiler {
        fields,
        first_param,
        values: Vec::new(),
    };
    let mut sql = String::new();
    compiler.node(filter, &mut sql);
    (sql, compiler.values)
}

struct Compiler<'a> {
    fields: &'a [FieldRef],
    first_param: usize,
    values: Vec<Value>,
}

impl Compiler<'_> {
    fn node(&mut self, filter: &Filter, out: &mut String) {
        match filter {
            Filter::And(children) => self.join(children, " AND ", "true", out),
            Filter::Or(children) => self.join(children, " OR ", "false", out),
            // The only place the two-valued form is needed: under NOT an
            // unknown (NULL) would stay unknown, where it must become true.
            Filter::Not(child) => {
                out.push_str("(NOT coalesce(");
                self.node(child, out);
                out.push_str(", false))");
            }
            Filter::Leaf { field, op, value } => {
                let leaf = self.leaf(field, *op, value.as_ref());
                out.push_str(&leaf);
            }
        }
    }

    fn join(&mut self, children: &[Filter], separator: &str, empty: &str, out: &mut String) {
        if children.is_empty() {
            out.push_str(empty);
            return;
        }
        out.push('(');
        for (i, child) in children.iter().enumerate() {
            if i > 0 {
                out.push_str(separator);
            }
            self.node(child, out);
        }
        out.push(')');
    }

    /// A placeholder for `value`, with its cast.
    fn bind(&mut self, value: Value, cast: &str) -> String {
        let n = self.first_param + self.values.len();
        self.values.push(value);
        format!("${n}{cast}")
    }

    fn leaf(&mut self, name: &str, op: Op, value: Option<&Value>) -> String {
        let Some(field) = find_field(self.fields, name) else {
            return "false".to_string();
        };
        let t = field.field_type;
        let col = &field.column;
        if op == Op::IsNull {
            return match (allowed_ops(t).contains(&op), value) {
                (true, None | Some(Value::Boolean(true))) => format!("({col} IS NULL)"),
                (true, Some(Value::Boolean(false))) => format!("({col} IS NOT NULL)"),
                _ => "false".to_string(),
            };
        }
        let Some(value) = value.and_then(|v| checked_literal(t, op, v)) else {
            return "false".to_string();
        };
        let cast = match (t, op) {
            (FieldType::Text | FieldType::Enum, Op::In) => "::text[]",
            (FieldType::Text | FieldType::Enum, _) => "::text",
            (FieldType::Integer, Op::In) => "::int8[]",
            (FieldType::Integer, _) => "::int8",
            (FieldType::Decimal, Op::In) => "::text[]::numeric[]",
            (FieldType::Decimal, _) => "::text::numeric",
            (FieldType::Boolean, Op::In) => "::bool[]",
            (FieldType::Boolean, _) => "::bool",
            (FieldType::Date, Op::In) => "::date[]",
            (FieldType::Date, _) => "::date",
            (FieldType::Timestamp, Op::In) => "::timestamptz[]",
            (FieldType::Timestamp, _) => "::timestamptz",
            (FieldType::Json, _) => "::jsonb",
        };
        let p = self.bind(value, cast);
        // Text and enum columns are indexed on `(col COLLATE "C")`: compare
        // that very expression so the index applies. Equality does not depend
        // on the (deterministic) collation; order is byte order.
        let key = match t {
            FieldType::Text | FieldType::Enum => format!("{col} COLLATE \"C\""),
            _ => col.clone(),
        };
        let compare = |symbol: &str| format!("({key} {symbol} {p})");
        match op {
            Op::Eq => compare("="),
            Op::Ne => compare("IS DISTINCT FROM"),
            Op::Lt => compare("<"),
            Op::Lte => compare("<="),
            Op::Gt => compare(">"),
            Op::Gte => compare(">="),
            Op::In => format!("({key} = ANY({p}))"),
            Op::Contains if t == FieldType::Json => format!("({col} @> {p})"),
            Op::Contains => format!("(strpos({col}, {p}) > 0)"),
            Op::Prefix => format!("starts_with({col}, {p})"),
            // Handled above.
            Op::IsNull => "false".to_string(),
        }
    }
}

// ---------------------------------------------------------------------------
// The oracle

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

fn leaf_matches(
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
            (true, None | Some(Value::Boolean(true))) => actual.is_none(),
            (true, Some(Value::Boolean(false))) => actual.is_some(),
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
enum Cell<'a> {
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
fn record_cell(t: FieldType, v: &Json) -> Option<Cell<'_>> {
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
fn literal_cells(v: &Value) -> Vec<Cell<'_>> {
    match v {
        Value::Text(s) => vec![Cell::Text(s)],
        Value::Integer(n) => vec![Cell::Integer(*n)],
        Value::Decimal(d) => vec![Cell::Decimal(d.clone())],
        Value::Boolean(b) => vec![Cell::Boolean(*b)],
        Value::Date(d) => vec![Cell::Date(*d)],
        Value::Timestamp(t) => vec![Cell::Timestamp(*t)],
        Value::Json(j) => vec![Cell::Json(j)],
        Value::TextList(l) => l.iter().map(|s| Cell::Text(s)).collect(),
        Value::IntegerList(l) => l.iter().map(|n| Cell::Integer(*n)).collect(),
        Value::DecimalList(l) => l.iter().map(|d| Cell::Decimal(d.clone())).collect(),
        Value::BooleanList(l) => l.iter().map(|b| Cell::Boolean(*b)).collect(),
        Value::DateList(l) => l.iter().map(|d| Cell::Date(*d)).collect(),
        Value::TimestampList(l) => l.iter().map(|t| Cell::Timestamp(*t)).collect(),
    }
}

/// Order of two cells of one type (text in byte order, as `COLLATE "C"`);
/// `None` for json or differing types.
fn cell_cmp(a: &Cell, b: &Cell) -> Option<Ordering> {
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

fn cell_eq(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Json(a), Cell::Json(b)) => jsonb_eq(a, b),
        _ => cell_cmp(a, b) == Some(Ordering::Equal),
    }
}

/// Equality of two JSON scalars as jsonb has it (numbers as numbers); false
/// for containers.
fn jsonb_scalar_eq(a: &Json, b: &Json) -> bool {
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

fn is_scalar(v: &Json) -> bool {
    !matches!(v, Json::Array(_) | Json::Object(_))
}

/// jsonb `=`: arrays in order, objects by key set, numbers as numbers.
fn jsonb_eq(a: &Json, b: &Json) -> bool {
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
fn jsonb_contains(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Array(items), b) if is_scalar(b) => items
            .iter()
            .any(|item| is_scalar(item) && jsonb_scalar_eq(item, b)),
        (a, b) if is_scalar(a) && is_scalar(b) => jsonb_scalar_eq(a, b),
        _ => contains_nested(a, b),
    }
}

/// Containment below the top level: containers of the same kind only.
fn contains_nested(a: &Json, b: &Json) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str, id: u32, field_type: FieldType) -> FieldRef {
        FieldRef {
            name: name.to_string(),
            column: format!("\"f_{id}\""),
            field_type,
            enum_values: Vec::new(),
        }
    }

    fn fields() -> Vec<FieldRef> {
        let mut status = field("status", 7, FieldType::Enum);
        status.enum_values = vec!["open".into(), "closed".into(), "it's; done".into()];
        vec![
            field("title", 1, FieldType::Text),
            field("count", 2, FieldType::Integer),
            field("price", 3, FieldType::Decimal),
            field("done", 4, FieldType::Boolean),
            field("due", 5, FieldType::Date),
            field("at", 6, FieldType::Timestamp),
            status,
            field("meta", 8, FieldType::Json),
        ]
    }

    fn parse_ok(text: &str) -> Filter {
        parse(text, &fields(), Limits::default()).expect(text)
    }

    fn parse_err(text: &str) -> FilterError {
        match parse(text, &fields(), Limits::default()) {
            Ok(f) => panic!("{text} parsed as {f:?}"),
            Err(e) => e,
        }
    }

    fn json_err(json: Json) -> FilterError {
        match parse_value(&json, &fields(), Limits::default()) {
            Ok(f) => panic!("{json} parsed as {f:?}"),
            Err(e) => e,
        }
    }

    fn sql(text: &str) -> (String, Vec<Value>) {
        to_sql(&parse_ok(text), &fields(), 1)
    }

    fn leaf(field: &str, op: &str, value: Json) -> String {
        json!({"field": field, "op": op, "value": value}).to_string()
    }

    fn record(json: Json) -> Map<String, Json> {
        match json {
            Json::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn matches_text(text: &str, rec: Json) -> bool {
        matches(&parse_ok(text), &fields(), &record(rec))
    }

    fn date(s: &str) -> Date {
        parse_date(s).expect(s)
    }

    fn ts(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).expect(s)
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_string())
    }

    fn dec(s: &str) -> Value {
        Value::Decimal(s.to_string())
    }

    #[test]
    fn limits_default() {
        let l = Limits::default();
        assert_eq!(
            (l.max_depth, l.max_nodes, l.max_in, l.max_chars),
            (8, 64, 100, 4096)
        );
    }

    #[test]
    fn text_operators() {
        let cases: Vec<(&str, Json, &str, Value)> = vec![
            (
                "eq",
                json!("a"),
                "(\"f_1\" COLLATE \"C\" = $1::text)",
                text("a"),
            ),
            (
                "ne",
                json!("a"),
                "(\"f_1\" COLLATE \"C\" IS DISTINCT FROM $1::text)",
                text("a"),
            ),
            (
                "lt",
                json!("a"),
                "(\"f_1\" COLLATE \"C\" < $1::text)",
                text("a"),
            ),
            (
                "lte",
                json!("a"),
                "(\"f_1\" COLLATE \"C\" <= $1::text)",
                text("a"),
            ),
            (
                "gt",
                json!("a"),
                "(\"f_1\" COLLATE \"C\" > $1::text)",
                text("a"),
            ),
            (
                "gte",
                json!("a"),
                "(\"f_1\" COLLATE \"C\" >= $1::text)",
                text("a"),
            ),
            (
                "in",
                json!(["a", "b"]),
                "(\"f_1\" COLLATE \"C\" = ANY($1::text[]))",
                Value::TextList(vec!["a".into(), "b".into()]),
            ),
            (
                "contains",
                json!("a%_"),
                "(strpos(\"f_1\", $1::text) > 0)",
                text("a%_"),
            ),
            (
                "prefix",
                json!("a%"),
                "starts_with(\"f_1\", $1::text)",
                text("a%"),
            ),
        ];
        for (op, value, want_sql, want_value) in cases {
            let (s, values) = sql(&leaf("title", op, value));
            assert_eq!(s, want_sql, "{op}");
            assert_eq!(values, vec![want_value], "{op}");
        }
        assert_eq!(
            sql(&leaf("title", "is_null", json!(true))),
            ("(\"f_1\" IS NULL)".to_string(), vec![])
        );
        assert_eq!(
            sql(&leaf("title", "is_null", json!(false))),
            ("(\"f_1\" IS NOT NULL)".to_string(), vec![])
        );
        assert_eq!(
            parse_ok(&leaf("title", "is_null", json!(true))),
            Filter::Leaf {
                field: "title".into(),
                op: Op::IsNull,
                value: Some(Value::Boolean(true))
            }
        );
    }

    #[test]
    fn typed_operators() {
        let cases: Vec<(&str, &str, Json, &str, Value)> = vec![
            (
                "count",
                "eq",
                json!(-5),
                "(\"f_2\" = $1::int8)",
                Value::Integer(-5),
            ),
            (
                "count",
                "ne",
                json!(i64::MAX),
                "(\"f_2\" IS DISTINCT FROM $1::int8)",
                Value::Integer(i64::MAX),
            ),
            (
                "count",
                "lt",
                json!(i64::MIN),
                "(\"f_2\" < $1::int8)",
                Value::Integer(i64::MIN),
            ),
            (
                "count",
                "lte",
                json!(0),
                "(\"f_2\" <= $1::int8)",
                Value::Integer(0),
            ),
            (
                "count",
                "gt",
                json!(1),
                "(\"f_2\" > $1::int8)",
                Value::Integer(1),
            ),
            (
                "count",
                "gte",
                json!(2),
                "(\"f_2\" >= $1::int8)",
                Value::Integer(2),
            ),
            (
                "count",
                "in",
                json!([1, 2, 3]),
                "(\"f_2\" = ANY($1::int8[]))",
                Value::IntegerList(vec![1, 2, 3]),
            ),
            (
                "price",
                "eq",
                json!("0.10"),
                "(\"f_3\" = $1::text::numeric)",
                dec("0.1"),
            ),
            (
                "price",
                "ne",
                json!(12),
                "(\"f_3\" IS DISTINCT FROM $1::text::numeric)",
                dec("12"),
            ),
            (
                "price",
                "lt",
                json!(0.5),
                "(\"f_3\" < $1::text::numeric)",
                dec("0.5"),
            ),
            (
                "price",
                "gte",
                json!("-007.50"),
                "(\"f_3\" >= $1::text::numeric)",
                dec("-7.5"),
            ),
            (
                "price",
                "in",
                json!(["1.0", 2, "-0"]),
                "(\"f_3\" = ANY($1::text[]::numeric[]))",
                Value::DecimalList(vec!["1".into(), "2".into(), "0".into()]),
            ),
            (
                "done",
                "eq",
                json!(true),
                "(\"f_4\" = $1::bool)",
                Value::Boolean(true),
            ),
            (
                "done",
                "ne",
                json!(false),
                "(\"f_4\" IS DISTINCT FROM $1::bool)",
                Value::Boolean(false),
            ),
            (
                "due",
                "eq",
                json!("2026-02-28"),
                "(\"f_5\" = $1::date)",
                Value::Date(date("2026-02-28")),
            ),
            (
                "due",
                "gt",
                json!("0001-01-01"),
                "(\"f_5\" > $1::date)",
                Value::Date(date("0001-01-01")),
            ),
            (
                "due",
                "in",
                json!(["2024-02-29"]),
                "(\"f_5\" = ANY($1::date[]))",
                Value::DateList(vec![date("2024-02-29")]),
            ),
            (
                "at",
                "lt",
                json!("2026-01-31T13:00:00+01:00"),
                "(\"f_6\" < $1::timestamptz)",
                Value::Timestamp(ts("2026-01-31T12:00:00Z")),
            ),
            (
                "at",
                "in",
                json!(["2026-01-31T12:00:00Z"]),
                "(\"f_6\" = ANY($1::timestamptz[]))",
                Value::TimestampList(vec![ts("2026-01-31T12:00:00Z")]),
            ),
            (
                "status",
                "eq",
                json!("open"),
                "(\"f_7\" COLLATE \"C\" = $1::text)",
                text("open"),
            ),
            (
                "status",
                "ne",
                json!("closed"),
                "(\"f_7\" COLLATE \"C\" IS DISTINCT FROM $1::text)",
                text("closed"),
            ),
            (
                "status",
                "in",
                json!(["open", "it's; done"]),
                "(\"f_7\" COLLATE \"C\" = ANY($1::text[]))",
                Value::TextList(vec!["open".into(), "it's; done".into()]),
            ),
            (
                "meta",
                "eq",
                json!({"a": 1}),
                "(\"f_8\" = $1::jsonb)",
                Value::Json(json!({"a": 1})),
            ),
            (
                "meta",
                "contains",
                json!({"tags": ["x"]}),
                "(\"f_8\" @> $1::jsonb)",
                Value::Json(json!({"tags": ["x"]})),
            ),
            (
                "meta",
                "eq",
                json!(false),
                "(\"f_8\" = $1::jsonb)",
                Value::Json(json!(false)),
            ),
        ];
        for (f, op, value, want_sql, want_value) in cases {
            let (s, values) = sql(&leaf(f, op, value.clone()));
            assert_eq!(s, want_sql, "{f} {op} {value}");
            assert_eq!(values, vec![want_value], "{f} {op} {value}");
        }
        for f in ["count", "price", "done", "due", "at", "status", "meta"] {
            let col = &fields().into_iter().find(|x| x.name == f).expect(f).column;
            assert_eq!(
                sql(&leaf(f, "is_null", json!(true))).0,
                format!("({col} IS NULL)")
            );
            assert_eq!(
                sql(&leaf(f, "is_null", json!(false))).0,
                format!("({col} IS NOT NULL)")
            );
        }
    }

    #[test]
    fn operators_not_allowed_per_type() {
        let not_allowed = [
            ("count", "contains", json!(1)),
            ("count", "prefix", json!(1)),
            ("price", "contains", json!("1")),
            ("done", "lt", json!(true)),
            ("done", "in", json!([true])),
            ("done", "contains", json!(true)),
            ("due", "prefix", json!("2026")),
            ("at", "contains", json!("2026")),
            ("status", "lt", json!("open")),
            ("status", "prefix", json!("op")),
            ("status", "contains", json!("op")),
            ("meta", "ne", json!(1)),
            ("meta", "lt", json!(1)),
            ("meta", "in", json!([1])),
            ("meta", "prefix", json!("a")),
        ];
        for (f, op, value) in not_allowed {
            let e = parse_err(&leaf(f, op, value));
            assert_eq!(e.code(), "operator_not_allowed", "{f} {op}: {e}");
            assert!(e.to_string().contains("allow: "), "{e}");
        }
        let e = parse_err(&leaf("done", "lt", json!(true)));
        assert_eq!(
            e.to_string(),
            "operator lt is not allowed on the boolean field \"done\" (at the top level); boolean \
             fields allow: eq, ne, is_null"
        );
    }

    #[test]
    fn nesting_and_parameter_numbers() {
        let spec = json!({"and": [
            {"field": "title", "op": "eq", "value": "a"},
            {"or": [
                {"field": "count", "op": "gt", "value": 3},
                {"not": {"field": "done", "op": "is_null", "value": true}},
                {"field": "status", "op": "in", "value": ["open"]}
            ]},
            {"not": {"field": "price", "op": "ne", "value": "1.50"}}
        ]})
        .to_string();
        let filter = parse_ok(&spec);
        let (s, values) = to_sql(&filter, &fields(), 3);
        assert_eq!(
            s,
            "((\"f_1\" COLLATE \"C\" = $3::text) AND ((\"f_2\" > $4::int8) OR \
             (NOT coalesce((\"f_4\" IS NULL), false)) OR \
             (\"f_7\" COLLATE \"C\" = ANY($5::text[]))) AND \
             (NOT coalesce((\"f_3\" IS DISTINCT FROM $6::text::numeric), false)))"
        );
        assert_eq!(
            values,
            vec![
                text("a"),
                Value::Integer(3),
                Value::TextList(vec!["open".into()]),
                dec("1.5")
            ]
        );
        match &filter {
            Filter::And(children) => {
                assert_eq!(children.len(), 3);
                assert!(matches!(&children[2], Filter::Not(_)));
            }
            other => panic!("{other:?}"),
        }
        // One child is fine; the parentheses stay.
        let (s, _) =
            sql(&json!({"or": [{"field": "title", "op": "eq", "value": "a"}]}).to_string());
        assert_eq!(s, "((\"f_1\" COLLATE \"C\" = $1::text))");
    }

    #[test]
    fn leaves_are_plain_predicates_and_only_not_is_two_valued() {
        // Leaves stay plain (index-friendly) predicates, also next to a
        // negation; only the negated subtree is made two-valued.
        let spec = json!({"and": [
            {"field": "count", "op": "eq", "value": 7},
            {"not": {"field": "title", "op": "eq", "value": "a"}}
        ]})
        .to_string();
        assert_eq!(
            sql(&spec),
            (
                "((\"f_2\" = $1::int8) AND \
                 (NOT coalesce((\"f_1\" COLLATE \"C\" = $2::text), false)))"
                    .to_string(),
                vec![Value::Integer(7), text("a")]
            )
        );
        // No leaf is wrapped in coalesce.
        for (f, op, value) in [
            ("title", "contains", json!("a")),
            ("title", "prefix", json!("a")),
            ("meta", "contains", json!({"a": 1})),
            ("price", "in", json!([1, 2])),
            ("at", "gte", json!("2026-01-01T00:00:00Z")),
        ] {
            let (s, _) = sql(&leaf(f, op, value));
            assert!(!s.contains("coalesce"), "{s}");
        }
        // Text and enum comparisons all use the indexed expression.
        for (f, op, value) in [
            ("title", "eq", json!("a")),
            ("title", "ne", json!("a")),
            ("title", "in", json!(["a"])),
            ("title", "lt", json!("a")),
            ("title", "gte", json!("a")),
            ("status", "eq", json!("open")),
            ("status", "ne", json!("open")),
            ("status", "in", json!(["open"])),
        ] {
            let (s, _) = sql(&leaf(f, op, value));
            assert!(
                s.starts_with("(\"f_1\" COLLATE \"C\" ")
                    || s.starts_with("(\"f_7\" COLLATE \"C\" "),
                "{s}"
            );
        }
        // A negated and/or, a double negation, and empty connectives.
        let spec = json!({"not": {"or": [
            {"field": "count", "op": "lt", "value": 1},
            {"not": {"field": "due", "op": "gt", "value": "2026-01-01"}}
        ]}})
        .to_string();
        assert_eq!(
            sql(&spec).0,
            "(NOT coalesce(((\"f_2\" < $1::int8) OR \
             (NOT coalesce((\"f_5\" > $2::date), false))), false))"
        );
        let f = fields();
        let not = |inner: Filter| Filter::Not(Box::new(inner));
        assert_eq!(
            to_sql(&not(Filter::And(vec![])), &f, 1).0,
            "(NOT coalesce(true, false))"
        );
        assert_eq!(
            to_sql(&not(not(Filter::Or(vec![]))), &f, 1).0,
            "(NOT coalesce((NOT coalesce(false, false)), false))"
        );
    }

    #[test]
    fn hand_built_filters_never_give_empty_or_invalid_sql() {
        let f = fields();
        assert_eq!(to_sql(&Filter::And(vec![]), &f, 1).0, "true");
        assert_eq!(to_sql(&Filter::Or(vec![]), &f, 1).0, "false");
        let bad = [
            Filter::Leaf {
                field: "nope".into(),
                op: Op::Eq,
                value: Some(text("a")),
            },
            Filter::Leaf {
                field: "count".into(),
                op: Op::Eq,
                value: Some(text("a")),
            },
            Filter::Leaf {
                field: "count".into(),
                op: Op::Contains,
                value: Some(Value::Integer(1)),
            },
            Filter::Leaf {
                field: "title".into(),
                op: Op::Eq,
                value: None,
            },
            Filter::Leaf {
                field: "title".into(),
                op: Op::In,
                value: Some(text("a")),
            },
            Filter::Leaf {
                field: "title".into(),
                op: Op::Eq,
                value: Some(text("a\0b")),
            },
            Filter::Leaf {
                field: "price".into(),
                op: Op::Eq,
                value: Some(dec("1e5")),
            },
            Filter::Leaf {
                field: "meta".into(),
                op: Op::Eq,
                value: Some(Value::Json(Json::Null)),
            },
            Filter::Leaf {
                field: "done".into(),
                op: Op::IsNull,
                value: Some(text("x")),
            },
            Filter::Leaf {
                field: "at".into(),
                op: Op::Eq,
                // Its UTC time is in year 10000: binding it would panic.
                value: Some(Value::Timestamp(ts("9999-12-31T23:59:59-01:00"))),
            },
        ];
        let rec = record(json!({"title": "a", "count": 1, "price": "100000", "done": null}));
        for filter in bad {
            let (s, values) = to_sql(&filter, &f, 1);
            assert_eq!(s, "false", "{filter:?}");
            assert!(values.is_empty());
            assert!(!matches(&filter, &f, &rec), "{filter:?}");
        }
        // is_null without a value means "is null".
        let f2 = Filter::Leaf {
            field: "done".into(),
            op: Op::IsNull,
            value: None,
        };
        assert_eq!(to_sql(&f2, &f, 1).0, "(\"f_4\" IS NULL)");
        assert!(matches(&f2, &f, &rec));
        // Hand-built values are normalized before binding.
        let f3 = Filter::Leaf {
            field: "at".into(),
            op: Op::Gte,
            value: Some(Value::Timestamp(ts("2026-01-01T01:00:00.123456789+01:00"))),
        };
        assert_eq!(
            to_sql(&f3, &f, 1).1,
            vec![Value::Timestamp(ts("2026-01-01T00:00:00.123456Z"))]
        );
    }

    #[test]
    fn every_error_code_with_its_path() {
        let f = fields();
        let l = Limits::default();
        let nested_not = format!(
            "{}{}{}",
            "{\"not\":".repeat(8),
            leaf("title", "eq", json!("a")),
            "}".repeat(8)
        );
        let unknown_in_or = json!({"and": [
            {"field": "title", "op": "eq", "value": "a"},
            {"or": [{"field": "nope", "op": "eq", "value": 1}]}
        ]})
        .to_string();
        let cases: Vec<(Result<Filter, FilterError>, &str, &str)> = vec![
            (parse(&" ".repeat(4097), &f, l), "too_long", ""),
            (parse("{\"field\": ", &f, l), "invalid_json", ""),
            (parse("", &f, l), "invalid_json", ""),
            (parse("{} x", &f, l), "invalid_json", ""),
            (parse(&"[".repeat(200), &f, l), "too_deep", ""),
            (
                parse(&nested_not, &f, l),
                "too_deep",
                "not.not.not.not.not.not.not.not",
            ),
            (
                parse(&unknown_in_or, &f, l),
                "unknown_field",
                "and[1].or[0]",
            ),
            (
                parse(&leaf("title", "like", json!("a")), &f, l),
                "unknown_operator",
                "",
            ),
            (
                parse(&leaf("title", "EQ", json!("a")), &f, l),
                "unknown_operator",
                "",
            ),
            (
                parse(
                    &json!({"not": {"field": "done", "op": "gt", "value": true}}).to_string(),
                    &f,
                    l,
                ),
                "operator_not_allowed",
                "not",
            ),
            (
                parse(&leaf("count", "eq", json!("1")), &f, l),
                "type_mismatch",
                "",
            ),
            (
                parse(&json!({"or": [{"field": "title"}]}).to_string(), &f, l),
                "bad_shape",
                "or[0]",
            ),
            (
                parse(
                    &leaf("count", "in", json!((0..101).collect::<Vec<_>>())),
                    &f,
                    l,
                ),
                "list_too_long",
                "",
            ),
            (
                parse(&leaf("title", "eq", json!("x".repeat(1001))), &f, l),
                "value_too_long",
                "",
            ),
            (
                parse(&leaf("status", "eq", json!("Open")), &f, l),
                "not_an_enum_value",
                "",
            ),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (result, code, path) in cases {
            let e = result.expect_err(code);
            assert_eq!(e.code(), code, "{e}");
            assert_eq!(e.path(), path, "{e}");
            assert!(!e.to_string().is_empty());
            seen.insert(code);
        }
        // Too many nodes: 64 is fine, 65 is not.
        let conds = |n: usize| -> Json {
            let leaves: Vec<Json> = (0..n)
                .map(|i| json!({"field": "count", "op": "eq", "value": i}))
                .collect();
            json!({ "and": leaves })
        };
        assert!(parse_value(&conds(63), &f, l).is_ok());
        let e = parse_value(&conds(64), &f, l).expect_err("65 nodes");
        assert_eq!((e.code(), e.path()), ("too_many_nodes", "and[63]"));
        let e = parse_value(&conds(1000), &f, l).expect_err("1001 nodes");
        assert_eq!((e.code(), e.path()), ("too_many_nodes", ""));
        seen.insert("too_many_nodes");
        assert_eq!(seen.len(), 12, "{seen:?}");
    }

    #[test]
    fn shapes() {
        let bad: Vec<(Json, &str)> = vec![
            (json!([]), ""),
            (json!("x"), ""),
            (json!(null), ""),
            (json!({}), ""),
            (json!({"and": []}), ""),
            (json!({"or": {}}), ""),
            (json!({"and": "x"}), ""),
            (json!({"and": [{}]}), "and[0]"),
            (
                json!({"not": [{"field": "title", "op": "eq", "value": "a"}]}),
                "not",
            ),
            (
                json!({"not": {"field": "title", "op": "eq", "value": "a"}, "field": "title"}),
                "",
            ),
            (json!({"and": [], "or": []}), ""),
            (json!({"field": "title", "op": "eq"}), ""),
            (json!({"field": "title", "value": "a"}), ""),
            (
                json!({"field": "title", "op": "eq", "value": "a", "extra": 1}),
                "",
            ),
            (
                json!({"field": "title", "op": "eq", "value": "a", "and": []}),
                "",
            ),
            (json!({"field": 1, "op": "eq", "value": "a"}), ""),
            (json!({"field": "title", "op": ["eq"], "value": "a"}), ""),
            (json!({"Field": "title", "op": "eq", "value": "a"}), ""),
            (
                json!({"and": [{"field": "title", "op": "eq", "value": "a"}, 5]}),
                "and[1]",
            ),
        ];
        for (json, path) in bad {
            let e = json_err(json.clone());
            assert_eq!((e.code(), e.path()), ("bad_shape", path), "{json}: {e}");
        }
        // Duplicate keys are refused rather than silently taking one.
        let e = parse_err(r#"{"field": "title", "op": "eq", "value": "a", "value": "b"}"#);
        assert_eq!(e.code(), "invalid_json");
        assert!(e.to_string().contains("duplicate key \"value\""), "{e}");
        let e =
            parse_err(r#"{"and": [{"field": "title", "field": "count", "op": "eq", "value": 1}]}"#);
        assert_eq!(e.code(), "invalid_json");
        // value is required, even for is_null.
        assert_eq!(
            json_err(json!({"field": "title", "op": "is_null"})).code(),
            "bad_shape"
        );
    }

    #[test]
    fn type_mismatches() {
        let bad: Vec<(&str, &str, Json)> = vec![
            ("title", "eq", json!(1)),
            ("title", "eq", json!(null)),
            ("title", "eq", json!(["a"])),
            ("title", "eq", json!("a\u{0}b")),
            ("title", "in", json!("a")),
            ("title", "in", json!([])),
            ("title", "in", json!(["a", 1])),
            ("title", "is_null", json!("true")),
            ("title", "is_null", json!(null)),
            ("count", "eq", json!(1.5)),
            ("count", "eq", json!(1.0)),
            ("count", "eq", json!(9_223_372_036_854_775_808u64)),
            ("count", "eq", json!("12")),
            ("count", "eq", json!(true)),
            ("price", "eq", json!("1e5")),
            ("price", "eq", json!(".5")),
            ("price", "eq", json!("5.")),
            ("price", "eq", json!("+5")),
            ("price", "eq", json!(" 5")),
            ("price", "eq", json!("NaN")),
            ("price", "eq", json!("Infinity")),
            ("price", "eq", json!("1".repeat(41))),
            ("price", "eq", json!(format!("0.{}", "1".repeat(41)))),
            ("price", "eq", json!(0.30000000000000004)),
            ("price", "eq", json!(1e50)),
            ("price", "eq", json!(true)),
            ("done", "eq", json!("true")),
            ("done", "eq", json!(1)),
            ("due", "eq", json!("2026-02-30")),
            ("due", "eq", json!("2026-2-3")),
            ("due", "eq", json!("0000-01-01")),
            ("due", "eq", json!("+2026-01-01")),
            ("due", "eq", json!("2026-01-01T00:00:00Z")),
            ("due", "eq", json!(20260101)),
            ("at", "eq", json!("2026-01-31T12:00:00")),
            ("at", "eq", json!("2026-01-31")),
            ("at", "eq", json!("9999-12-31T23:59:59-01:00")),
            ("at", "eq", json!(1_700_000_000)),
            ("status", "eq", json!(1)),
            ("status", "in", json!(["open", null])),
            ("meta", "eq", json!(null)),
            ("meta", "contains", json!({"a": "\u{0}"})),
        ];
        for (f, op, value) in bad {
            let e = parse_err(&leaf(f, op, value.clone()));
            assert_eq!(e.code(), "type_mismatch", "{f} {op} {value}: {e}");
            match &e {
                FilterError::TypeMismatch { field, .. } => assert_eq!(field, f),
                other => panic!("{other:?}"),
            }
        }
        let e = parse_err(&leaf("count", "eq", json!("12")));
        assert_eq!(
            e.to_string(),
            "the value for field \"count\" (at the top level) must be a JSON integer between \
             -9223372036854775808 and 9223372036854775807 (no fraction, no exponent, not a \
             string), not the string \"12\""
        );
        let e = parse_err(&leaf("title", "eq", json!(null)));
        assert!(e.to_string().contains("use the operator is_null"), "{e}");
    }

    #[test]
    fn limits() {
        let f = fields();
        let l = Limits::default();
        // Exactly max_chars characters (not bytes) is fine.
        let base = leaf("title", "eq", json!(""));
        let pad = 4096 - base.chars().count();
        // "é" is one character (two bytes).
        let text = leaf("title", "eq", json!("é".repeat(pad)));
        assert_eq!(text.chars().count(), 4096);
        assert!(text.len() > 4096);
        assert_eq!(
            parse(&text, &f, l).expect_err("value too long").code(),
            "value_too_long"
        );
        let short = leaf("title", "eq", json!("é".repeat(1000)));
        assert!(parse(&short, &f, l).is_ok());
        let padded = format!("{short}{}", " ".repeat(4096 - short.chars().count()));
        assert!(parse(&padded, &f, l).is_ok());
        assert_eq!(
            parse(&format!("{padded} "), &f, l)
                .expect_err("4097")
                .code(),
            "too_long"
        );

        // Depth: 8 levels are fine, 9 are not.
        let nested = |levels: usize| -> String {
            let mut s = leaf("title", "eq", json!("a"));
            for _ in 1..levels {
                s = format!("{{\"not\": {s}}}");
            }
            s
        };
        assert!(parse(&nested(8), &f, l).is_ok());
        let e = parse(&nested(9), &f, l).expect_err("9 levels");
        assert_eq!(
            (e.code(), e.path()),
            ("too_deep", "not.not.not.not.not.not.not.not")
        );
        let e = parse(&nested(300), &f, l).expect_err("300 levels");
        assert_eq!(e.code(), "too_deep");

        // in lists: 1..=100.
        assert!(parse(
            &leaf("count", "in", json!((0..100).collect::<Vec<_>>())),
            &f,
            l
        )
        .is_ok());
        let e = parse(
            &leaf("count", "in", json!((0..101).collect::<Vec<_>>())),
            &f,
            l,
        )
        .expect_err("101");
        assert_eq!(e.code(), "list_too_long");
        assert!(e.to_string().contains("more than 100 values"), "{e}");
        let e =
            parse(&leaf("title", "in", json!(["a", "b".repeat(1001)])), &f, l).expect_err("long");
        assert_eq!(e.code(), "value_too_long");

        // Custom limits.
        let tight = Limits {
            max_depth: 3,
            max_nodes: 3,
            max_in: 2,
            max_chars: 200,
        };
        let two = json!({"or": [
            {"field": "count", "op": "eq", "value": 1},
            {"field": "count", "op": "eq", "value": 2}
        ]});
        assert!(parse_value(&two, &f, tight).is_ok());
        let four = json!({"not": {"not": {"not": {"field": "count", "op": "eq", "value": 1}}}});
        let e = parse_value(&four, &f, tight).expect_err("depth 4");
        assert_eq!((e.code(), e.path()), ("too_deep", "not.not.not"));
        let e = parse_value(&json!({"and": [two.clone(), two]}), &f, tight).expect_err("5 nodes");
        assert_eq!((e.code(), e.path()), ("too_many_nodes", "and[0].or[1]"));
        let e = parse(&leaf("count", "in", json!([1, 2, 3])), &f, tight).expect_err("3 values");
        assert_eq!(e.code(), "list_too_long");

        // json values: depth, size and strings are bounded too.
        let mut deep = json!(1);
        for _ in 0..8 {
            deep = json!([deep]);
        }
        assert!(parse(&leaf("meta", "eq", deep.clone()), &f, l).is_ok());
        let e = parse(&leaf("meta", "eq", json!([deep])), &f, l).expect_err("9 deep");
        assert_eq!(e.code(), "too_deep");
        assert!(parse(
            &leaf("meta", "contains", json!((0..100).collect::<Vec<_>>())),
            &f,
            l
        )
        .is_ok());
        let e = parse(
            &leaf(
                "meta",
                "contains",
                json!({"a": (0..100).collect::<Vec<_>>()}),
            ),
            &f,
            l,
        )
        .expect_err("101 members");
        assert_eq!(e.code(), "list_too_long");
        let e = parse(&leaf("meta", "eq", json!({"k".repeat(1001): 1})), &f, l).expect_err("key");
        assert_eq!(e.code(), "value_too_long");
    }

    #[test]
    fn unknown_field_lists_known_fields() {
        let e = parse_err(&leaf("Title", "eq", json!("a")));
        assert_eq!(e.code(), "unknown_field");
        assert_eq!(
            e.to_string(),
            "no field named \"Title\" (at the top level); field names are case-sensitive; known \
             fields: \"title\", \"count\", \"price\", \"done\", \"due\", \"at\", \"status\", \"meta\""
        );
        let many: Vec<FieldRef> = (0..25)
            .map(|i| field(&format!("f{i}"), i, FieldType::Text))
            .collect();
        let e = parse(&leaf("x", "eq", json!("a")), &many, Limits::default()).expect_err("x");
        match &e {
            FilterError::UnknownField { known, more, .. } => {
                assert_eq!(known.len(), 20);
                assert_eq!(*more, 5);
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().ends_with("\"f19\" (and 5 more)"), "{e}");
        let e = parse(&leaf("x", "eq", json!("a")), &[], Limits::default()).expect_err("none");
        assert!(e.to_string().contains("no fields"), "{e}");
        let e = parse_err(&leaf("status", "eq", json!("Open")));
        assert_eq!(
            e.to_string(),
            "\"Open\" is not a value of the enum field \"status\" (at the top level); allowed \
             values: \"open\", \"closed\", \"it's; done\""
        );
    }

    #[test]
    fn injection_attempts_never_reach_sql_text() {
        let evil = [
            "x\" OR 1=1 --",
            "'; DROP TABLE users; --",
            "$1",
            "a'b\"c;d\\e",
            ") OR true OR (",
            "\u{0}",
        ];
        for name in evil {
            let e = parse_err(&leaf(name, "eq", json!("a")));
            assert_eq!(e.code(), "unknown_field");
        }
        // A field whose API name is hostile still compiles to its column only.
        let mut f = fields();
        f.push(field("x\" OR 1=1 --", 9, FieldType::Text));
        let fl = parse(
            &leaf("x\" OR 1=1 --", "eq", json!("a")),
            &f,
            Limits::default(),
        )
        .expect("field");
        assert_eq!(to_sql(&fl, &f, 1).0, "(\"f_9\" COLLATE \"C\" = $1::text)");

        let values = [
            "'; DROP TABLE users; --",
            "\" OR \"1\"=\"1",
            "a' OR 'a'='a",
            "$$; SELECT pg_sleep(10); $$",
            "\\'; --",
            "-- comment",
            "/* x */",
        ];
        for v in values {
            for (field_name, op) in [
                ("title", "eq"),
                ("title", "lt"),
                ("title", "contains"),
                ("title", "prefix"),
                ("meta", "contains"),
            ] {
                let value = if field_name == "meta" {
                    json!({"k": v})
                } else {
                    json!(v)
                };
                let (s, params) = sql(&leaf(field_name, op, value));
                assert!(!s.contains(v), "{s}");
                assert!(!s.contains('\''), "{s}");
                assert!(!s.contains(';'), "{s}");
                assert_eq!(params.len(), 1);
            }
            let (s, params) = sql(&leaf("title", "in", json!([v, v])));
            assert_eq!(s, "(\"f_1\" COLLATE \"C\" = ANY($1::text[]))");
            assert_eq!(
                params,
                vec![Value::TextList(vec![v.to_string(), v.to_string()])]
            );
        }
        // Operators and keys are never echoed into SQL either.
        assert_eq!(
            parse_err(&leaf("title", "eq; DROP", json!("a"))).code(),
            "unknown_operator"
        );
        // Messages quote (escape) what the user sent.
        let e = parse_err(&leaf("a\"\n", "eq", json!("a")));
        assert!(e.to_string().contains("\"a\\\"\\n\""), "{e}");
        let long_name = "n".repeat(3000);
        let e = parse_err(&leaf(&long_name, "eq", json!("a")));
        assert!(e.to_string().len() < 400, "{e}");
    }

    #[test]
    fn unicode_values() {
        let v = "héllo ✓ 日本 🎉";
        let (s, params) = sql(&leaf("title", "eq", json!(v)));
        assert_eq!(s, "(\"f_1\" COLLATE \"C\" = $1::text)");
        assert_eq!(params, vec![text(v)]);
        assert!(matches_text(
            &leaf("title", "eq", json!(v)),
            json!({"title": v})
        ));
        assert!(matches_text(
            &leaf("title", "contains", json!("✓ 日")),
            json!({"title": v})
        ));
        assert!(matches_text(
            &leaf("title", "prefix", json!("hé")),
            json!({"title": v})
        ));
        assert!(!matches_text(
            &leaf("title", "prefix", json!("he")),
            json!({"title": v})
        ));
        // Escaped in JSON text too.
        assert_eq!(
            parse_ok(r#"{"field": "title", "op": "eq", "value": "\u00e9\ud83c\udf89"}"#),
            Filter::Leaf {
                field: "title".into(),
                op: Op::Eq,
                value: Some(text("é🎉"))
            }
        );
        // Byte (code point) order, as COLLATE "C": "Z" < "a" < "é" < "日" < "🎉".
        let order = ["Z", "a", "é", "日", "🎉"];
        for (i, a) in order.iter().enumerate() {
            for (j, b) in order.iter().enumerate() {
                let lt = matches_text(&leaf("title", "lt", json!(b)), json!({"title": a}));
                assert_eq!(lt, i < j, "{a} < {b}");
                let gte = matches_text(&leaf("title", "gte", json!(b)), json!({"title": a}));
                assert_eq!(gte, i >= j, "{a} >= {b}");
            }
        }
        assert!(matches_text(
            &leaf("title", "lt", json!("ab")),
            json!({"title": "a"})
        ));
        // Case-sensitive.
        assert!(!matches_text(
            &leaf("title", "contains", json!("HÉ")),
            json!({"title": v})
        ));
        assert!(!matches_text(
            &leaf("title", "eq", json!("Héllo ✓ 日本 🎉")),
            json!({"title": v})
        ));
        assert!(matches_text(
            &leaf("title", "contains", json!("")),
            json!({"title": ""})
        ));
    }

    #[test]
    fn decimals_are_canonical_and_compare_exactly() {
        for (input, out) in [
            ("0", "0"),
            ("-0", "0"),
            ("-0.000", "0"),
            ("0.10", "0.1"),
            ("007.500", "7.5"),
            ("-12.0", "-12"),
            (
                "123456789012345678901234567890.5",
                "123456789012345678901234567890.5",
            ),
        ] {
            assert_eq!(
                canonical_decimal(input, Some(40)).as_deref(),
                Some(out),
                "{input}"
            );
        }
        for (number, out) in [
            (json!(0.1), "0.1"),
            (json!(-0.0), "0"),
            (json!(12), "12"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(1e20), "100000000000000000000"),
            (json!(1.5e-30), "0.0000000000000000000000000000015"),
            (json!(123456789.123456), "123456789.123456"),
        ] {
            let Json::Number(n) = &number else { panic!() };
            assert_eq!(
                decimal_from_json_number(n).as_deref(),
                Some(out),
                "{number}"
            );
        }
        let eq = |a: &str, b: &str| {
            cmp_decimal(
                &canonical_decimal(a, None).expect(a),
                &canonical_decimal(b, None).expect(b),
            )
        };
        assert_eq!(eq("0.10", "0.1"), Ordering::Equal);
        assert_eq!(eq("-0", "0"), Ordering::Equal);
        assert_eq!(
            eq(
                "123456789012345678901234567890.5",
                "123456789012345678901234567890.49"
            ),
            Ordering::Greater
        );
        assert_eq!(eq("-1", "-0.5"), Ordering::Less);
        assert_eq!(eq("-10", "-9.99"), Ordering::Less);
        assert_eq!(eq("-0.5", "0"), Ordering::Less);
        assert_eq!(eq("0.5", "0.51"), Ordering::Less);
        assert_eq!(eq("10", "9.999999999999999999999999"), Ordering::Greater);
        assert_eq!(eq("0.000000000000000000001", "0"), Ordering::Greater);

        // Through the language: "0.10" matches 0.1, -0 matches 0.
        assert!(matches_text(
            &leaf("price", "eq", json!("0.10")),
            json!({"price": "0.1"})
        ));
        assert!(matches_text(
            &leaf("price", "eq", json!(0.1)),
            json!({"price": "0.100"})
        ));
        assert!(matches_text(
            &leaf("price", "eq", json!("-0")),
            json!({"price": "0"})
        ));
        assert!(matches_text(
            &leaf("price", "eq", json!("0")),
            json!({"price": -0.0})
        ));
        assert!(matches_text(
            &leaf("price", "gt", json!("123456789012345678901234567890.49")),
            json!({"price": "123456789012345678901234567890.5"})
        ));
        assert!(!matches_text(
            &leaf("price", "gt", json!("123456789012345678901234567890.5")),
            json!({"price": "123456789012345678901234567890.5"})
        ));
        assert!(matches_text(
            &leaf("price", "lte", json!("123456789012345678901234567890.5")),
            json!({"price": "123456789012345678901234567890.50"})
        ));
        assert!(matches_text(
            &leaf("price", "in", json!(["1.5", "2"])),
            json!({"price": "2.000"})
        ));
        assert!(matches_text(
            &leaf("price", "lt", json!("-1.05")),
            json!({"price": "-1.1"})
        ));
        assert!(!matches_text(
            &leaf("price", "lt", json!("-1.1")),
            json!({"price": "-1.05"})
        ));
    }

    #[test]
    fn timestamps_compare_by_instant() {
        let at = |op: &str, v: &str, rec: &str| {
            matches_text(&leaf("at", op, json!(v)), json!({"at": rec}))
        };
        assert!(at(
            "eq",
            "2026-01-31T13:00:00+01:00",
            "2026-01-31T12:00:00Z"
        ));
        assert!(at(
            "eq",
            "2026-01-31T07:00:00-05:00",
            "2026-01-31T12:00:00Z"
        ));
        assert!(at("ne", "2026-01-31T13:00:00Z", "2026-01-31T12:00:00Z"));
        // 12:30+01:00 is 11:30Z: before 12:00Z.
        assert!(at(
            "lt",
            "2026-01-31T12:00:00Z",
            "2026-01-31T12:30:00+01:00"
        ));
        assert!(!at(
            "gt",
            "2026-01-31T12:00:00Z",
            "2026-01-31T12:30:00+01:00"
        ));
        assert!(at(
            "gte",
            "2026-01-31T23:30:00-01:00",
            "2026-02-01T00:30:00Z"
        ));
        assert!(matches_text(
            &leaf(
                "at",
                "in",
                json!(["2026-01-01T00:00:00Z", "2026-01-31T14:00:00+02:00"])
            ),
            json!({"at": "2026-01-31T12:00:00Z"})
        ));
        // Sub-microsecond digits are truncated, as PostgreSQL keeps microseconds.
        assert_eq!(
            parse_ok(&leaf(
                "at",
                "eq",
                json!("2026-01-31T12:00:00.1234567+00:00")
            )),
            Filter::Leaf {
                field: "at".into(),
                op: Op::Eq,
                value: Some(Value::Timestamp(ts("2026-01-31T12:00:00.123456Z")))
            }
        );
        assert!(at(
            "gte",
            "2026-01-31T12:00:00.0000009Z",
            "2026-01-31T12:00:00Z"
        ));
        // Values are kept in UTC.
        let Filter::Leaf {
            value: Some(Value::Timestamp(t)),
            ..
        } = parse_ok(&leaf("at", "eq", json!("2026-01-31T13:00:00+01:00")))
        else {
            panic!()
        };
        assert_eq!(t.offset(), UtcOffset::UTC);
        // Dates.
        let due = |op: &str, v: &str, rec: &str| {
            matches_text(&leaf("due", op, json!(v)), json!({"due": rec}))
        };
        assert!(due("lt", "2026-02-01", "2026-01-31"));
        assert!(due("eq", "2024-02-29", "2024-02-29"));
        assert!(!due("gt", "2026-02-01", "2026-01-31"));
    }

    #[test]
    fn json_equality_and_containment() {
        let contains = |a: Json, b: Json| jsonb_contains(&a, &b);
        // PostgreSQL's documented cases.
        assert!(contains(json!("foo"), json!("foo")));
        assert!(contains(json!([1, 2, 3]), json!([1, 3])));
        assert!(contains(json!([1, 2, 3]), json!([3, 1])));
        assert!(contains(json!([1, 2, 3]), json!([1, 2, 2])));
        assert!(contains(
            json!({"product": "PostgreSQL", "version": 9.4, "jsonb": true}),
            json!({"version": 9.4})
        ));
        assert!(!contains(json!([1, 2, [1, 3]]), json!([1, 3])));
        assert!(contains(json!([1, 2, [1, 3]]), json!([[1, 3]])));
        assert!(!contains(
            json!({"foo": {"bar": "baz"}}),
            json!({"bar": "baz"})
        ));
        assert!(contains(json!({"foo": {"bar": "baz"}}), json!({"foo": {}})));
        assert!(contains(json!(["foo", "bar"]), json!("bar")));
        assert!(!contains(json!("bar"), json!(["bar"])));
        // More.
        assert!(contains(json!({"a": 1, "b": [1, 2]}), json!({})));
        assert!(contains(json!([]), json!([])));
        assert!(!contains(json!([]), json!({})));
        assert!(!contains(json!({}), json!([])));
        assert!(!contains(json!("a"), json!([])));
        assert!(!contains(json!([]), json!("a")));
        assert!(!contains(json!({"a": 1}), json!("a")));
        assert!(!contains(json!({"a": [1, 2]}), json!({"a": 1})));
        assert!(contains(json!({"a": [1, 2]}), json!({"a": [2]})));
        assert!(!contains(json!({"a": {"b": 1}}), json!({"a": [1]})));
        assert!(!contains(json!([[1, 2]]), json!([1])));
        assert!(!contains(json!([[1, 2]]), json!(1)));
        assert!(contains(json!([{"a": 1, "b": 2}, 3]), json!([{"a": 1}])));
        assert!(!contains(json!([{"a": 1}]), json!([{"a": 1, "b": 2}])));
        assert!(contains(json!({"a": null}), json!({"a": null})));
        assert!(!contains(json!({"a": null}), json!({"b": null})));
        assert!(contains(json!([1.0, "x"]), json!([1])));
        assert!(contains(json!(1), json!(1.00)));
        assert!(!contains(json!(1), json!("1")));
        assert!(!contains(json!(true), json!(1)));
        assert!(contains(
            json!({"a": {"b": {"c": [1, {"d": 2}]}}}),
            json!({"a": {"b": {"c": [{"d": 2}]}}})
        ));
        // Equality.
        assert!(jsonb_eq(
            &json!({"a": 1, "b": [1, 2]}),
            &json!({"b": [1.0, 2], "a": 1})
        ));
        assert!(!jsonb_eq(&json!([1, 2]), &json!([2, 1])));
        assert!(!jsonb_eq(&json!([1]), &json!(1)));
        assert!(!jsonb_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(jsonb_eq(&json!(0.1), &json!(0.10)));
        // Through the language; a top-level null record value is missing.
        let m = |op: &str, v: Json, rec: Json| {
            matches_text(&leaf("meta", op, v), json!({ "meta": rec }))
        };
        assert!(m(
            "contains",
            json!({"tags": ["x"]}),
            json!({"tags": ["y", "x"], "n": 1})
        ));
        assert!(!m(
            "contains",
            json!({"tags": ["z"]}),
            json!({"tags": ["y", "x"]})
        ));
        assert!(m("contains", json!("x"), json!(["x", "y"])));
        assert!(m("eq", json!({"a": [1, 2]}), json!({"a": [1, 2]})));
        assert!(!m("eq", json!({"a": [1, 2]}), json!({"a": [1, 2], "b": 0})));
        assert!(!m("eq", json!(false), json!(null)));
        assert!(!m("contains", json!({}), json!(null)));
        assert!(m("is_null", json!(true), json!(null)));
        assert!(m("is_null", json!(false), json!({})));
    }

    #[test]
    fn nulls_and_not() {
        let empty = json!({});
        let null_title = json!({"title": null});
        for rec in [empty, null_title] {
            assert!(matches_text(&leaf("title", "ne", json!("a")), rec.clone()));
            assert!(!matches_text(&leaf("title", "eq", json!("a")), rec.clone()));
            assert!(!matches_text(&leaf("title", "lt", json!("a")), rec.clone()));
            assert!(matches_text(
                &json!({"not": {"field": "title", "op": "lt", "value": "a"}}).to_string(),
                rec.clone()
            ));
            assert!(!matches_text(
                &json!({"not": {"field": "title", "op": "ne", "value": "a"}}).to_string(),
                rec.clone()
            ));
            assert!(!matches_text(
                &leaf("title", "in", json!(["a"])),
                rec.clone()
            ));
            assert!(!matches_text(
                &leaf("title", "contains", json!("")),
                rec.clone()
            ));
            assert!(!matches_text(
                &leaf("title", "prefix", json!("")),
                rec.clone()
            ));
            assert!(matches_text(
                &leaf("title", "is_null", json!(true)),
                rec.clone()
            ));
            assert!(!matches_text(
                &leaf("title", "is_null", json!(false)),
                rec.clone()
            ));
            for (f, v) in [
                ("count", json!(1)),
                ("price", json!("1")),
                ("done", json!(true)),
                ("due", json!("2026-01-01")),
                ("status", json!("open")),
            ] {
                assert!(matches_text(&leaf(f, "ne", v.clone()), rec.clone()), "{f}");
                assert!(!matches_text(&leaf(f, "eq", v.clone()), rec.clone()), "{f}");
            }
        }
        let rec = json!({"title": "b", "count": 5, "done": false});
        assert!(matches_text(&leaf("title", "ne", json!("a")), rec.clone()));
        assert!(!matches_text(&leaf("title", "ne", json!("b")), rec.clone()));
        assert!(matches_text(&leaf("done", "eq", json!(false)), rec.clone()));
        assert!(matches_text(&leaf("done", "ne", json!(true)), rec.clone()));
        assert!(matches_text(
            &leaf("count", "in", json!([4, 5])),
            rec.clone()
        ));
        assert!(!matches_text(&leaf("count", "gt", json!(5)), rec.clone()));
        assert!(matches_text(&leaf("count", "gte", json!(5)), rec.clone()));
        let and_or = json!({"or": [
            {"and": [
                {"field": "count", "op": "lt", "value": 3},
                {"field": "done", "op": "eq", "value": false}
            ]},
            {"not": {"field": "title", "op": "is_null", "value": true}}
        ]})
        .to_string();
        assert!(matches_text(&and_or, rec.clone()));
        assert!(!matches_text(&and_or, json!({"count": 5})));
        assert!(matches_text(&and_or, json!({"count": 2, "done": false})));
        // A record value of the wrong type counts as missing.
        assert!(matches_text(
            &leaf("count", "is_null", json!(true)),
            json!({"count": "5"})
        ));
        assert!(matches_text(
            &leaf("count", "ne", json!(5)),
            json!({"count": 5.0})
        ));
    }

    #[test]
    fn serde_names_match_the_language() {
        for op in ALL_OPS {
            assert_eq!(serde_json::to_value(op).expect("op"), json!(op_name(*op)));
        }
        for t in [
            FieldType::Text,
            FieldType::Integer,
            FieldType::Decimal,
            FieldType::Boolean,
            FieldType::Date,
            FieldType::Timestamp,
            FieldType::Enum,
            FieldType::Json,
        ] {
            assert_eq!(serde_json::to_value(t).expect("type"), json!(type_name(t)));
        }
    }

    #[test]
    fn values_bind() {
        // Each variant can be handed to tokio-postgres.
        let all = [
            text("a"),
            Value::Integer(1),
            dec("1.5"),
            Value::Boolean(true),
            Value::Date(date("2026-01-01")),
            Value::Timestamp(ts("2026-01-01T00:00:00Z")),
            Value::Json(json!({"a": 1})),
            Value::TextList(vec!["a".into()]),
            Value::IntegerList(vec![1]),
            Value::DecimalList(vec!["1".into()]),
            Value::BooleanList(vec![true]),
            Value::DateList(vec![date("2026-01-01")]),
            Value::TimestampList(vec![ts("2026-01-01T00:00:00Z")]),
        ];
        for v in &all {
            let _: &(dyn ToSql + Sync) = v.as_sql();
            assert!(!format!("{:?}", v.as_sql()).is_empty());
        }
    }
}
