//! Compiling a filter to one parameterized SQL boolean expression.

use super::ast::{allowed_ops, FieldRef, Filter, Op, Value};
use super::parse::{checked_literal, find_field};
use crate::records::values::FieldType;
use crate::records::Scalar;

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

pub(super) struct Compiler<'a> {
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
                (true, None | Some(Value::One(Scalar::Boolean(true)))) => {
                    format!("({col} IS NULL)")
                }
                (true, Some(Value::One(Scalar::Boolean(false)))) => format!("({col} IS NOT NULL)"),
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
