//! Parsing filter text (strict JSON: duplicate keys refused) and validating
//! it against the collection's fields, within the limits: the tree of
//! [`super::Filter`] with every literal checked and canonical.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value as Json};

use super::ast::{allowed_ops, FieldRef, Filter, Limits, List, Op, Value, ALL_OPS};
use super::error::{child_path, json_kind, listed, op_name, quote, FilterError};
use crate::records::values::{
    canonical_decimal, decimal_from_json_number, json_has_nul, normalize_timestamp, parse_date,
    parse_timestamp, FieldType, MAX_DECIMAL_DIGITS,
};
use crate::records::Scalar;

/// Longest string in a value, in characters.
pub(super) const MAX_VALUE_CHARS: usize = 1000;

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
pub(super) struct StrictJson(Json);

impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

pub(super) struct StrictVisitor;

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

pub(super) struct Parser<'a> {
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

pub(super) fn find_field<'a>(fields: &'a [FieldRef], name: &str) -> Option<&'a FieldRef> {
    fields.iter().find(|f| f.name == name)
}

/// Reads a condition's value for one field.
pub(super) struct Literal<'a> {
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
                Json::Bool(b) => Ok(Value::One(Scalar::Boolean(*b))),
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
            FieldType::Text | FieldType::Enum => {
                Value::List(List::Text(collect(values, |v| match v {
                    Value::One(Scalar::Text(s)) => Some(s),
                    _ => None,
                })))
            }
            FieldType::Integer => Value::List(List::Integer(collect(values, |v| match v {
                Value::One(Scalar::Integer(n)) => Some(n),
                _ => None,
            }))),
            FieldType::Decimal => Value::List(List::Decimal(collect(values, |v| match v {
                Value::One(Scalar::Decimal(d)) => Some(d),
                _ => None,
            }))),
            FieldType::Boolean => Value::List(List::Boolean(collect(values, |v| match v {
                Value::One(Scalar::Boolean(b)) => Some(b),
                _ => None,
            }))),
            FieldType::Date => Value::List(List::Date(collect(values, |v| match v {
                Value::One(Scalar::Date(d)) => Some(d),
                _ => None,
            }))),
            FieldType::Timestamp => Value::List(List::Timestamp(collect(values, |v| match v {
                Value::One(Scalar::Timestamp(t)) => Some(t),
                _ => None,
            }))),
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
                Some(s) => Ok(Value::One(Scalar::Text(s.to_string()))),
                None => Err(wrong()),
            },
            FieldType::Enum => match string {
                Some(s) if self.field.enum_values.iter().any(|v| v == s) => {
                    Ok(Value::One(Scalar::Text(s.to_string())))
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
                Json::Number(n) if n.is_i64() => n
                    .as_i64()
                    .map(|v| Value::One(Scalar::Integer(v)))
                    .ok_or_else(wrong),
                _ => Err(wrong()),
            },
            FieldType::Decimal => {
                let canonical = match (string, value) {
                    (Some(s), _) => canonical_decimal(s, Some(MAX_DECIMAL_DIGITS)),
                    (None, Json::Number(n)) => decimal_from_json_number(n),
                    _ => None,
                };
                canonical
                    .map(|v| Value::One(Scalar::Decimal(v)))
                    .ok_or_else(wrong)
            }
            FieldType::Boolean => value
                .as_bool()
                .map(|v| Value::One(Scalar::Boolean(v)))
                .ok_or_else(wrong),
            FieldType::Date => string
                .and_then(parse_date)
                .map(|v| Value::One(Scalar::Date(v)))
                .ok_or_else(wrong),
            FieldType::Timestamp => string
                .and_then(parse_timestamp)
                .map(|v| Value::One(Scalar::Timestamp(v)))
                .ok_or_else(wrong),
            FieldType::Json => {
                let mut members = 0;
                self.check_json(value, 0, &mut members)?;
                Ok(Value::One(Scalar::Json(value.clone())))
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
pub(super) fn collect<T>(values: Vec<Value>, part: impl Fn(Value) -> Option<T>) -> Vec<T> {
    values.into_iter().filter_map(part).collect()
}

/// Whether `s` has more than `max` characters.
pub(super) fn too_many_chars(s: &str, max: usize) -> bool {
    s.len() > max && s.chars().nth(max).is_some()
}

/// The expected value of a condition, normalized (decimals canonical,
/// timestamps in UTC to the microsecond), or `None` when it does not fit
/// the field type and operator (or could not be bound).
pub(super) fn checked_literal(t: FieldType, op: Op, value: &Value) -> Option<Value> {
    let text_ok = |s: &str| !s.contains('\0');
    let decimal = |s: &String| canonical_decimal(s, None);
    let v = match (t, op, value) {
        (_, Op::IsNull, _) => return None,
        (FieldType::Text | FieldType::Enum, Op::In, Value::List(List::Text(l))) => {
            if !l.iter().all(|s| text_ok(s)) {
                return None;
            }
            value.clone()
        }
        (FieldType::Integer, Op::In, Value::List(List::Integer(_)))
        | (FieldType::Date, Op::In, Value::List(List::Date(_))) => value.clone(),
        (FieldType::Decimal, Op::In, Value::List(List::Decimal(l))) => {
            Value::List(List::Decimal(l.iter().map(decimal).collect::<Option<_>>()?))
        }
        (FieldType::Timestamp, Op::In, Value::List(List::Timestamp(l))) => {
            Value::List(List::Timestamp(
                l.iter()
                    .map(|t| normalize_timestamp(*t))
                    .collect::<Option<_>>()?,
            ))
        }
        (_, Op::In, _) => return None,
        (FieldType::Text, _, Value::One(Scalar::Text(s)))
        | (FieldType::Enum, Op::Eq | Op::Ne, Value::One(Scalar::Text(s))) => {
            if !text_ok(s) {
                return None;
            }
            value.clone()
        }
        (FieldType::Integer, _, Value::One(Scalar::Integer(_)))
        | (FieldType::Boolean, _, Value::One(Scalar::Boolean(_)))
        | (FieldType::Date, _, Value::One(Scalar::Date(_))) => value.clone(),
        (FieldType::Decimal, _, Value::One(Scalar::Decimal(s))) => {
            Value::One(Scalar::Decimal(decimal(s)?))
        }
        (FieldType::Timestamp, _, Value::One(Scalar::Timestamp(t))) => {
            Value::One(Scalar::Timestamp(normalize_timestamp(*t)?))
        }
        (FieldType::Json, _, Value::One(Scalar::Json(j))) if !j.is_null() && !json_has_nul(j) => {
            value.clone()
        }
        _ => return None,
    };
    allowed_ops(t).contains(&op).then_some(v)
}
