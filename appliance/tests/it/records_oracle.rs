//! The filter language against an oracle: random records (nulls, unicode,
//! case, decimal edges) and random filter trees; the API's result (ids and
//! order) must equal an independent evaluation written here, for every
//! operator and type, and random sorts must order like the oracle does
//! (byte order for text, nulls last, id as the tiebreaker).

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use crate::harness::api::{encode, Site};

/// A small deterministic generator (xorshift64*); the seed is printed so a
/// failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const TEXTS: [&str; 12] = [
    "", "a", "A", "ab", "abc", "B", "é", "ä", "Zebra", "zebra", "😀x", "a b",
];
const DECIMALS: [&str; 9] = [
    "0",
    "-0.5",
    "2.5",
    "10.25",
    "100",
    "-3",
    "0.0001",
    "2.50",
    "99999.9999",
];
const DATES: [&str; 5] = [
    "2026-01-01",
    "2025-12-31",
    "2026-02-28",
    "1999-07-04",
    "2030-01-01",
];
const ENUMS: [&str; 3] = ["a", "b", "c"];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Integer,
    Decimal,
    Boolean,
    Enum,
    Date,
}

const FIELDS: [(&str, Kind); 6] = [
    ("t", Kind::Text),
    ("n", Kind::Integer),
    ("d", Kind::Decimal),
    ("b", Kind::Boolean),
    ("e", Kind::Enum),
    ("day", Kind::Date),
];

fn random_value(rng: &mut Rng, kind: Kind) -> Value {
    match kind {
        Kind::Text => json!(rng.pick(&TEXTS)),
        Kind::Integer => json!(rng.below(7) as i64 - 3),
        Kind::Decimal => json!(rng.pick(&DECIMALS)),
        Kind::Boolean => json!(rng.below(2) == 0),
        Kind::Enum => json!(rng.pick(&ENUMS)),
        Kind::Date => json!(rng.pick(&DATES)),
    }
}

/// Exact decimal as an integer number of 1/10000ths (the data has at most
/// four fractional digits).
fn decimal(s: &str) -> i128 {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let frac = format!("{frac:0<4}");
    let v: i128 =
        int.parse::<i128>().expect("int") * 10_000 + frac[..4].parse::<i128>().expect("frac");
    if neg {
        -v
    } else {
        v
    }
}

/// Compares two non-null values of a kind.
fn compare(kind: Kind, a: &Value, b: &Value) -> Ordering {
    match kind {
        // PostgreSQL's "C" collation: byte order of UTF-8.
        Kind::Text | Kind::Enum | Kind::Date => a
            .as_str()
            .expect("s")
            .as_bytes()
            .cmp(b.as_str().expect("s").as_bytes()),
        Kind::Integer => a.as_i64().cmp(&b.as_i64()),
        Kind::Decimal => decimal(a.as_str().expect("d")).cmp(&decimal(b.as_str().expect("d"))),
        Kind::Boolean => a.as_bool().cmp(&b.as_bool()),
    }
}

fn ops(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Text => &[
            "eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "prefix", "is_null",
        ],
        Kind::Integer | Kind::Decimal | Kind::Date => {
            &["eq", "ne", "lt", "lte", "gt", "gte", "in", "is_null"]
        }
        Kind::Boolean => &["eq", "ne", "is_null"],
        Kind::Enum => &["eq", "ne", "in", "is_null"],
    }
}

fn random_filter(rng: &mut Rng, depth: usize) -> Value {
    if depth < 3 && rng.below(3) == 0 {
        return match rng.below(3) {
            0 => {
                json!({ "and": (0..1 + rng.below(3)).map(|_| random_filter(rng, depth + 1)).collect::<Vec<_>>() })
            }
            1 => {
                json!({ "or": (0..1 + rng.below(3)).map(|_| random_filter(rng, depth + 1)).collect::<Vec<_>>() })
            }
            _ => json!({ "not": random_filter(rng, depth + 1) }),
        };
    }
    let (name, kind) = *rng.pick(&FIELDS);
    let op = *rng.pick(ops(kind));
    let value = match op {
        "is_null" => json!(rng.below(2) == 0),
        "in" => json!((0..1 + rng.below(3))
            .map(|_| random_value(rng, kind))
            .collect::<Vec<_>>()),
        "contains" | "prefix" => json!(rng.pick(&["", "a", "b", "é", "Z", "😀", " "])),
        _ => random_value(rng, kind),
    };
    json!({ "field": name, "op": op, "value": value })
}

/// The oracle: every leaf is true or false (never unknown); a null value
/// only satisfies `ne` and `is_null: true`.
fn eval(filter: &Value, record: &Map<String, Value>) -> bool {
    if let Some(all) = filter.get("and") {
        return all.as_array().expect("and").iter().all(|f| eval(f, record));
    }
    if let Some(any) = filter.get("or") {
        return any.as_array().expect("or").iter().any(|f| eval(f, record));
    }
    if let Some(inner) = filter.get("not") {
        return !eval(inner, record);
    }
    let name = filter["field"].as_str().expect("field");
    let kind = FIELDS.iter().find(|(n, _)| *n == name).expect("kind").1;
    let v = record.get(name).cloned().unwrap_or(Value::Null);
    let lit = &filter["value"];
    let op = filter["op"].as_str().expect("op");
    if op == "is_null" {
        return v.is_null() == lit.as_bool().expect("bool");
    }
    if v.is_null() {
        return op == "ne";
    }
    let cmp = || compare(kind, &v, lit);
    match op {
        "eq" => cmp() == Ordering::Equal,
        "ne" => cmp() != Ordering::Equal,
        "lt" => cmp() == Ordering::Less,
        "lte" => cmp() != Ordering::Greater,
        "gt" => cmp() == Ordering::Greater,
        "gte" => cmp() != Ordering::Less,
        "in" => lit
            .as_array()
            .expect("in")
            .iter()
            .any(|l| compare(kind, &v, l) == Ordering::Equal),
        "contains" => v.as_str().expect("s").contains(lit.as_str().expect("s")),
        "prefix" => v.as_str().expect("s").starts_with(lit.as_str().expect("s")),
        other => panic!("unknown op {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_and_sorts_agree_with_an_independent_oracle() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 | 1)
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    println!("oracle seed: {seed}");
    let mut rng = Rng(seed);
    let site = Site::start_with("[api]\nrate_limit_per_minute = 100000\n").await;
    let admin = &site.admin;
    let fields: Vec<Value> = FIELDS
        .iter()
        .map(|(name, kind)| {
            let (t, extra) = match kind {
                Kind::Text => ("text", json!({})),
                Kind::Integer => ("integer", json!({ "indexed": true })),
                Kind::Decimal => ("decimal", json!({})),
                Kind::Boolean => ("boolean", json!({})),
                Kind::Enum => ("enum", json!({ "enum_values": ENUMS })),
                Kind::Date => ("date", json!({})),
            };
            let mut f = json!({ "name": name, "type": t });
            f.as_object_mut()
                .expect("obj")
                .extend(extra.as_object().expect("obj").clone());
            f
        })
        .collect();
    let r = admin
        .post(
            "/api/v1/collections",
            json!({ "name": "oracle", "fields": fields }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let mut records: Vec<(i64, Map<String, Value>)> = Vec::new();
    for _ in 0..150 {
        let mut data = Map::new();
        for (name, kind) in FIELDS {
            let v = if rng.below(5) == 0 {
                Value::Null
            } else {
                random_value(&mut rng, kind)
            };
            data.insert(name.to_string(), v);
        }
        let r = admin
            .post(
                "/api/v1/collections/oracle/records",
                json!({ "data": data }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let stored = r.json();
        // Keep what the server returns (canonical decimals) as the truth
        // the oracle evaluates.
        records.push((
            stored["id"].as_i64().expect("id"),
            stored["data"].as_object().expect("data").clone(),
        ));
    }

    for round in 0..150 {
        let filter = random_filter(&mut rng, 0);
        let (sort_name, sort_kind) = *rng.pick(&FIELDS[..3]);
        let descending = rng.below(2) == 0;
        let sort = format!("{}{sort_name}", if descending { "-" } else { "" });
        let path = format!(
            "/api/v1/collections/oracle/records?limit=200&sort={}&filter={}",
            encode(&sort),
            encode(&filter.to_string())
        );
        let r = admin.get(&path).await;
        assert_eq!(
            r.status, 200,
            "round {round} seed {seed}: {filter}: {}",
            r.body
        );
        let got: Vec<i64> = r.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].as_i64().expect("id"))
            .collect();
        let mut expected: Vec<&(i64, Map<String, Value>)> = records
            .iter()
            .filter(|(_, rec)| eval(&filter, rec))
            .collect();
        expected.sort_by(|(ia, a), (ib, b)| {
            let (va, vb) = (&a[sort_name], &b[sort_name]);
            let key = match (va.is_null(), vb.is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater, // nulls last, both directions
                (false, true) => Ordering::Less,
                (false, false) => {
                    let c = compare(sort_kind, va, vb);
                    if descending {
                        c.reverse()
                    } else {
                        c
                    }
                }
            };
            key.then(ia.cmp(ib))
        });
        let expected: Vec<i64> = expected.iter().map(|(id, _)| *id).collect();
        // Every fifth round also walks the same listing in pages of 7: the
        // pages joined must be the same list.
        if round % 5 == 0 {
            let mut walked = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut page_path = format!(
                    "/api/v1/collections/oracle/records?limit=7&sort={}&filter={}",
                    encode(&sort),
                    encode(&filter.to_string())
                );
                if let Some(c) = &cursor {
                    page_path.push_str(&format!("&cursor={}", encode(c)));
                }
                let page = admin.get(&page_path).await;
                assert_eq!(page.status, 200, "{}", page.body);
                let page = page.json();
                walked.extend(
                    page["items"]
                        .as_array()
                        .expect("items")
                        .iter()
                        .map(|i| i["id"].as_i64().expect("id")),
                );
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
            assert_eq!(
                walked, expected,
                "round {round} seed {seed}: paged walk, filter {filter} sort {sort}"
            );
        }
        if got != expected {
            let show = |ids: &[i64]| {
                ids.iter()
                    .map(|id| {
                        let rec = &records.iter().find(|(i, _)| i == id).expect("record").1;
                        format!("{id}:{}", rec[sort_name])
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            panic!(
                "round {round} seed {seed}: filter {filter} sort {sort}\n got      {}\n expected {}",
                show(&got),
                show(&expected)
            );
        }
    }
}
