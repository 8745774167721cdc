//! Generative tests of the filter language (untrusted: a URL parameter):
//! any text parses or is refused with a code, never a panic; what parses
//! stays within the limits, compiles to SQL whose placeholders are exactly
//! its parameters, and the oracle evaluates it on any record.

use serde_json::{json, Map, Value as Json};

use super::ast::{FieldRef, Filter, Limits, Value};
use super::{matches, parse, to_sql};
use crate::records::values::FieldType;
use generative::{run, Rng};

fn fields() -> Vec<FieldRef> {
    let field = |name: &str, id: u32, field_type| FieldRef {
        name: name.to_string(),
        column: format!("\"f_{id}\""),
        field_type,
        enum_values: if field_type == FieldType::Enum {
            vec!["open".into(), "closed".into()]
        } else {
            Vec::new()
        },
    };
    vec![
        field("title", 1, FieldType::Text),
        field("count", 2, FieldType::Integer),
        field("price", 3, FieldType::Decimal),
        field("done", 4, FieldType::Boolean),
        field("due", 5, FieldType::Date),
        field("at", 6, FieldType::Timestamp),
        field("status", 7, FieldType::Enum),
        field("meta", 8, FieldType::Json),
    ]
}

const CORPUS: &[&[u8]] = &[
    br#"{"field": "title", "op": "eq", "value": "a"}"#,
    br#"{"field": "count", "op": "in", "value": [1, 2, 3]}"#,
    br#"{"field": "price", "op": "gte", "value": "12.50"}"#,
    br#"{"field": "due", "op": "lt", "value": "2026-12-08"}"#,
    br#"{"field": "at", "op": "gt", "value": "2026-12-08T10:00:00Z"}"#,
    br#"{"field": "status", "op": "ne", "value": "open"}"#,
    br#"{"field": "meta", "op": "contains", "value": {"tags": ["x"]}}"#,
    br#"{"field": "title", "op": "prefix", "value": "ab"}"#,
    br#"{"and": [{"field": "done", "op": "is_null", "value": false}, {"or": [{"field": "count", "op": "gt", "value": 3}, {"not": {"field": "price", "op": "ne", "value": "1.5"}}]}]}"#,
];

const DICTIONARY: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"1e999",
    b"-0",
    b"9223372036854775808",
    b"\"and\"",
    b"\"or\"",
    b"\"not\"",
    b"\"field\"",
    b"\"op\"",
    b"\"value\"",
    b"\"in\"",
    b"\"is_null\"",
    b"\"contains\"",
    b"\"meta\"",
    b"\"2026-02-30\"",
    b"\"0001-01-01T00:00:00Z\"",
    b"\"NaN\"",
    b"\"1.0e5\"",
    b"[[[[[[[[[[",
    b"{\"not\":{\"not\":{\"not\":",
];

/// Nodes and depth of a parsed filter, and its longest `in` list.
fn shape(f: &Filter, depth: usize, out: &mut (usize, usize, usize)) {
    out.0 += 1;
    out.1 = out.1.max(depth);
    match f {
        Filter::And(items) | Filter::Or(items) => {
            for i in items {
                shape(i, depth + 1, out);
            }
        }
        Filter::Not(inner) => shape(inner, depth + 1, out),
        Filter::Leaf { value, .. } => {
            if let Some(Value::List(list)) = value {
                let n = match list {
                    super::List::Text(v) | super::List::Decimal(v) => v.len(),
                    super::List::Integer(v) => v.len(),
                    super::List::Boolean(v) => v.len(),
                    super::List::Date(v) => v.len(),
                    super::List::Timestamp(v) => v.len(),
                };
                out.2 = out.2.max(n);
            }
        }
    }
}

/// A record with random values of every field (some of the wrong type).
fn record(rng: &mut Rng) -> Map<String, Json> {
    let values = [
        json!(null),
        json!("a"),
        json!("open"),
        json!(3),
        json!(-1),
        json!("12.50"),
        json!(true),
        json!("2026-12-08"),
        json!("2026-12-08T10:00:00Z"),
        json!({"tags": ["x"], "n": 1}),
        json!([1, 2]),
    ];
    let mut out = Map::new();
    for f in fields() {
        if !rng.chance(5) {
            out.insert(f.name, rng.pick(&values).clone());
        }
    }
    out
}

#[test]
fn generative_any_filter_text_parses_or_is_refused_within_the_limits() {
    let fields = fields();
    let limits = Limits::default();
    run("filter", CORPUS, DICTIONARY, |rng, input| {
        let Ok(text) = std::str::from_utf8(input) else {
            return;
        };
        match parse(text, &fields, limits) {
            Err(e) => {
                assert!(!e.code().is_empty());
                assert!(!e.to_string().is_empty());
            }
            Ok(filter) => {
                assert!(text.chars().count() <= limits.max_chars);
                let mut s = (0, 0, 0);
                shape(&filter, 1, &mut s);
                assert!(s.0 <= limits.max_nodes, "{s:?} nodes for {text}");
                assert!(s.1 <= limits.max_depth, "{s:?} depth for {text}");
                assert!(s.2 <= limits.max_in, "{s:?} in-list for {text}");
                let first = 1 + rng.below(5);
                let (sql, params) = to_sql(&filter, &fields, first);
                for n in first..first + params.len() {
                    assert!(sql.contains(&format!("${n}")), "${n} missing in {sql}");
                }
                assert!(
                    !sql.contains(&format!("${}", first + params.len())),
                    "{sql}"
                );
                for _ in 0..4 {
                    let _ = matches(&filter, &fields, &record(rng));
                }
            }
        }
    });
}

#[test]
fn generative_a_text_over_the_limit_is_refused() {
    let fields = fields();
    let limits = Limits {
        max_chars: 64,
        ..Limits::default()
    };
    run("filter length", CORPUS, DICTIONARY, |_, input| {
        if let Ok(text) = std::str::from_utf8(input) {
            if text.chars().count() > limits.max_chars {
                assert!(parse(text, &fields, limits).is_err(), "{text}");
            }
        }
    });
}
