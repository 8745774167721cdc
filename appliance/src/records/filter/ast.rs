//! A parsed filter: the fields it may name, its size limits, its typed
//! literals and operators, and the tree itself; which operators each field
//! type takes.

use time::{Date, OffsetDateTime};
use tokio_postgres::types::ToSql;

use crate::records::values::FieldType;
use crate::records::Scalar;

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

/// A literal bound as a parameter: one value of the field's type, or the
/// list an `in` condition compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    One(Scalar),
    List(List),
}

/// The values of an `in` condition, bound as one array parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum List {
    Text(Vec<String>),
    Integer(Vec<i64>),
    /// Canonical decimal texts, cast to `numeric[]` in SQL.
    Decimal(Vec<String>),
    Boolean(Vec<bool>),
    Date(Vec<Date>),
    Timestamp(Vec<OffsetDateTime>),
}

impl Value {
    /// The value to bind for its placeholder.
    pub fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Value::One(v) => v.as_sql(),
            Value::List(List::Text(v) | List::Decimal(v)) => v,
            Value::List(List::Integer(v)) => v,
            Value::List(List::Boolean(v)) => v,
            Value::List(List::Date(v)) => v,
            Value::List(List::Timestamp(v)) => v,
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

pub(super) const ALL_OPS: &[Op] = &[
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

/// The operators a field type allows.
pub(super) fn allowed_ops(t: FieldType) -> &'static [Op] {
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
