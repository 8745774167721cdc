//! The filter language's tests: parsing and refusals, SQL shapes, and the
//! oracle's semantics.

use std::cmp::Ordering;

use serde_json::json;
use serde_json::{Map, Value as Json};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, UtcOffset};
use tokio_postgres::types::ToSql;

use super::ast::{FieldRef, Filter, Limits, List, Op, Value, ALL_OPS};
use super::error::{op_name, FilterError};
use super::oracle::{jsonb_contains, jsonb_eq, matches};
use super::parse::{parse, parse_value};
use super::sql::to_sql;
use crate::records::field_type_name;
use crate::records::values::{
    canonical_decimal, cmp_decimal, decimal_from_json_number, parse_date, FieldType,
};
use crate::records::Scalar;

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
    Value::One(Scalar::Text(s.to_string()))
}

fn dec(s: &str) -> Value {
    Value::One(Scalar::Decimal(s.to_string()))
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
            Value::List(List::Text(vec!["a".into(), "b".into()])),
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
            value: Some(Value::One(Scalar::Boolean(true)))
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
            Value::One(Scalar::Integer(-5)),
        ),
        (
            "count",
            "ne",
            json!(i64::MAX),
            "(\"f_2\" IS DISTINCT FROM $1::int8)",
            Value::One(Scalar::Integer(i64::MAX)),
        ),
        (
            "count",
            "lt",
            json!(i64::MIN),
            "(\"f_2\" < $1::int8)",
            Value::One(Scalar::Integer(i64::MIN)),
        ),
        (
            "count",
            "lte",
            json!(0),
            "(\"f_2\" <= $1::int8)",
            Value::One(Scalar::Integer(0)),
        ),
        (
            "count",
            "gt",
            json!(1),
            "(\"f_2\" > $1::int8)",
            Value::One(Scalar::Integer(1)),
        ),
        (
            "count",
            "gte",
            json!(2),
            "(\"f_2\" >= $1::int8)",
            Value::One(Scalar::Integer(2)),
        ),
        (
            "count",
            "in",
            json!([1, 2, 3]),
            "(\"f_2\" = ANY($1::int8[]))",
            Value::List(List::Integer(vec![1, 2, 3])),
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
            Value::List(List::Decimal(vec!["1".into(), "2".into(), "0".into()])),
        ),
        (
            "done",
            "eq",
            json!(true),
            "(\"f_4\" = $1::bool)",
            Value::One(Scalar::Boolean(true)),
        ),
        (
            "done",
            "ne",
            json!(false),
            "(\"f_4\" IS DISTINCT FROM $1::bool)",
            Value::One(Scalar::Boolean(false)),
        ),
        (
            "due",
            "eq",
            json!("2026-02-28"),
            "(\"f_5\" = $1::date)",
            Value::One(Scalar::Date(date("2026-02-28"))),
        ),
        (
            "due",
            "gt",
            json!("0001-01-01"),
            "(\"f_5\" > $1::date)",
            Value::One(Scalar::Date(date("0001-01-01"))),
        ),
        (
            "due",
            "in",
            json!(["2024-02-29"]),
            "(\"f_5\" = ANY($1::date[]))",
            Value::List(List::Date(vec![date("2024-02-29")])),
        ),
        (
            "at",
            "lt",
            json!("2026-01-31T13:00:00+01:00"),
            "(\"f_6\" < $1::timestamptz)",
            Value::One(Scalar::Timestamp(ts("2026-01-31T12:00:00Z"))),
        ),
        (
            "at",
            "in",
            json!(["2026-01-31T12:00:00Z"]),
            "(\"f_6\" = ANY($1::timestamptz[]))",
            Value::List(List::Timestamp(vec![ts("2026-01-31T12:00:00Z")])),
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
            Value::List(List::Text(vec!["open".into(), "it's; done".into()])),
        ),
        (
            "meta",
            "eq",
            json!({"a": 1}),
            "(\"f_8\" = $1::jsonb)",
            Value::One(Scalar::Json(json!({"a": 1}))),
        ),
        (
            "meta",
            "contains",
            json!({"tags": ["x"]}),
            "(\"f_8\" @> $1::jsonb)",
            Value::One(Scalar::Json(json!({"tags": ["x"]}))),
        ),
        (
            "meta",
            "eq",
            json!(false),
            "(\"f_8\" = $1::jsonb)",
            Value::One(Scalar::Json(json!(false))),
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
            Value::One(Scalar::Integer(3)),
            Value::List(List::Text(vec!["open".into()])),
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
    let (s, _) = sql(&json!({"or": [{"field": "title", "op": "eq", "value": "a"}]}).to_string());
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
            vec![Value::One(Scalar::Integer(7)), text("a")]
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
            s.starts_with("(\"f_1\" COLLATE \"C\" ") || s.starts_with("(\"f_7\" COLLATE \"C\" "),
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
            value: Some(Value::One(Scalar::Integer(1))),
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
            value: Some(Value::One(Scalar::Json(Json::Null))),
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
            value: Some(Value::One(Scalar::Timestamp(ts(
                "9999-12-31T23:59:59-01:00",
            )))),
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
        value: Some(Value::One(Scalar::Timestamp(ts(
            "2026-01-01T01:00:00.123456789+01:00",
        )))),
    };
    assert_eq!(
        to_sql(&f3, &f, 1).1,
        vec![Value::One(Scalar::Timestamp(ts(
            "2026-01-01T00:00:00.123456Z"
        )))]
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
    let e = parse_err(r#"{"and": [{"field": "title", "field": "count", "op": "eq", "value": 1}]}"#);
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
    let e = parse(&leaf("title", "in", json!(["a", "b".repeat(1001)])), &f, l).expect_err("long");
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
            vec![Value::List(List::Text(vec![v.to_string(), v.to_string()]))]
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
    let at =
        |op: &str, v: &str, rec: &str| matches_text(&leaf("at", op, json!(v)), json!({"at": rec}));
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
            value: Some(Value::One(Scalar::Timestamp(ts(
                "2026-01-31T12:00:00.123456Z"
            ))))
        }
    );
    assert!(at(
        "gte",
        "2026-01-31T12:00:00.0000009Z",
        "2026-01-31T12:00:00Z"
    ));
    // Values are kept in UTC.
    let Filter::Leaf {
        value: Some(Value::One(Scalar::Timestamp(t))),
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
    let m =
        |op: &str, v: Json, rec: Json| matches_text(&leaf("meta", op, v), json!({ "meta": rec }));
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
        assert_eq!(
            serde_json::to_value(t).expect("type"),
            json!(field_type_name(t))
        );
    }
}

#[test]
fn values_bind() {
    // Each variant can be handed to tokio-postgres.
    let all = [
        text("a"),
        Value::One(Scalar::Integer(1)),
        dec("1.5"),
        Value::One(Scalar::Boolean(true)),
        Value::One(Scalar::Date(date("2026-01-01"))),
        Value::One(Scalar::Timestamp(ts("2026-01-01T00:00:00Z"))),
        Value::One(Scalar::Json(json!({"a": 1}))),
        Value::List(List::Text(vec!["a".into()])),
        Value::List(List::Integer(vec![1])),
        Value::List(List::Decimal(vec!["1".into()])),
        Value::List(List::Boolean(vec![true])),
        Value::List(List::Date(vec![date("2026-01-01")])),
        Value::List(List::Timestamp(vec![ts("2026-01-01T00:00:00Z")])),
    ];
    for v in &all {
        let _: &(dyn ToSql + Sync) = v.as_sql();
        assert!(!format!("{:?}", v.as_sql()).is_empty());
    }
}
