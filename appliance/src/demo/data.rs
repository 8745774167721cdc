//! The demo's content: three collections that between them use every field
//! type and give the filter language something to do, and records made from
//! a seed (the same seed, the same records).

use serde_json::{json, Map, Value};

use crate::records::schema::NewField;
use crate::records::FieldType;

/// Collections the demo makes are named with this prefix; `demo reset`
/// removes exactly those.
pub const COLLECTION_PREFIX: &str = "demo_";
/// Users the demo makes are named with this prefix.
pub const USER_PREFIX: &str = "demo.";

/// A small, fast generator (xorshift64*): deterministic for a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn field(name: &str, field_type: FieldType) -> NewField {
    NewField::new(name, field_type)
}

/// One demo collection: its name, title, fields and how to make a record.
pub struct Collection {
    pub name: &'static str,
    pub title: &'static str,
    pub fields: Vec<NewField>,
    pub make: fn(&mut Rng, u64) -> Map<String, Value>,
    /// Records per unit of `--records` (tickets the most).
    pub share: u64,
}

pub fn collections() -> Vec<Collection> {
    vec![
        Collection {
            name: "demo_tickets",
            title: "Support tickets (demo)",
            fields: vec![
                NewField {
                    required: true,
                    indexed: true,
                    ..field("title", FieldType::Text)
                },
                NewField {
                    indexed: true,
                    ..field("priority", FieldType::Integer)
                },
                NewField {
                    enum_values: ["open", "pending", "solved", "closed"]
                        .map(String::from)
                        .to_vec(),
                    indexed: true,
                    ..field("status", FieldType::Enum)
                },
                field("opened", FieldType::Timestamp),
                field("due", FieldType::Date),
                field("billable", FieldType::Boolean),
                field("cost", FieldType::Decimal),
                field("tags", FieldType::Json),
            ],
            make: ticket,
            share: 4,
        },
        Collection {
            name: "demo_assets",
            title: "Asset inventory (demo)",
            fields: vec![
                NewField {
                    required: true,
                    unique: true,
                    ..field("serial", FieldType::Text)
                },
                field("model", FieldType::Text),
                field("location", FieldType::Text),
                field("purchased", FieldType::Date),
                field("price", FieldType::Decimal),
                field("in_service", FieldType::Boolean),
            ],
            make: asset,
            share: 2,
        },
        Collection {
            name: "demo_contacts",
            title: "Contacts (demo)",
            fields: vec![
                NewField {
                    required: true,
                    ..field("name", FieldType::Text)
                },
                NewField {
                    sensitive: true,
                    ..field("email", FieldType::Text)
                },
                field("company", FieldType::Text),
                field("vip", FieldType::Boolean),
                field("last_contact", FieldType::Timestamp),
            ],
            make: contact,
            share: 1,
        },
    ]
}

const SUBJECTS: &[&str] = &[
    "Printer on floor 3 jams",
    "VPN drops every hour",
    "New laptop for onboarding",
    "Mailbox over quota",
    "Badge does not open the lab",
    "Slow shared drive",
    "Password reset for the ERP",
    "Monitor flickers",
    "Conference room screen offline",
    "Request for a second monitor",
];
const TAGS: &[&str] = &[
    "hardware", "network", "access", "software", "urgent", "onsite",
];
const MODELS: &[&str] = &[
    "ThinkPad T14",
    "Latitude 5440",
    "EliteBook 840",
    "OptiPlex 7010",
    "UltraSharp U2723",
];
const SITES: &[&str] = &["Berlin", "Lyon", "Austin", "Osaka", "Warsaw", "Leeds"];
const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus", "Radia", "Donald",
];
const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Torvalds",
    "Perlman", "Knuth",
];
const COMPANIES: &[&str] = &["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark"];

/// A date in 2026 as `YYYY-MM-DD`.
fn date(rng: &mut Rng) -> String {
    format!("2026-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28))
}

fn timestamp(rng: &mut Rng) -> String {
    format!(
        "{}T{:02}:{:02}:00Z",
        date(rng),
        rng.below(24),
        rng.below(60)
    )
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn ticket(rng: &mut Rng, n: u64) -> Map<String, Value> {
    let tags: Vec<&str> = (0..1 + rng.below(3)).map(|_| rng.pick(TAGS)).collect();
    object(json!({
        "title": format!("{} (#{})", rng.pick(SUBJECTS), 1000 + n),
        "priority": 1 + rng.below(5),
        "status": rng.pick(&["open", "pending", "solved", "closed"]),
        "opened": timestamp(rng),
        "due": date(rng),
        "billable": rng.below(3) == 0,
        "cost": format!("{}.{:02}", rng.below(900), rng.below(100)),
        "tags": tags,
    }))
}

fn asset(rng: &mut Rng, n: u64) -> Map<String, Value> {
    object(json!({
        "serial": format!("SN-{:06}", 100_000 + n),
        "model": rng.pick(MODELS),
        "location": rng.pick(SITES),
        "purchased": date(rng),
        "price": format!("{}.00", 300 + rng.below(2500)),
        "in_service": rng.below(10) != 0,
    }))
}

fn contact(rng: &mut Rng, n: u64) -> Map<String, Value> {
    let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
    let company = rng.pick(COMPANIES);
    object(json!({
        "name": format!("{first} {last}"),
        "email": format!(
            "{}.{}{n}@{}.example",
            first.to_lowercase(),
            last.to_lowercase(),
            company.to_lowercase()
        ),
        "company": company,
        "vip": rng.below(8) == 0,
        "last_contact": timestamp(rng),
    }))
}

/// A CSV file of `n` more contacts for the demo's import, with one row
/// whose `vip` is not a boolean (so the import reports a problem).
pub fn contacts_csv(rng: &mut Rng, n: u64) -> String {
    let mut out = String::from("name,email,company,vip,last_contact\r\n");
    for i in 0..n {
        let c = contact(rng, 10_000 + i);
        let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        let vip = if i == n / 2 {
            "perhaps".to_string()
        } else {
            c["vip"].as_bool().unwrap_or(false).to_string()
        };
        out.push_str(&format!(
            "{},{},{},{vip},{}\r\n",
            text("name"),
            text("email"),
            text("company"),
            text("last_contact")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_records_and_every_type_is_used() {
        let records = |seed| {
            let mut rng = Rng::new(seed);
            collections()
                .iter()
                .map(|c| (c.make)(&mut rng, 1))
                .collect::<Vec<_>>()
        };
        assert_eq!(records(7), records(7));
        assert_ne!(records(7), records(8));
        let types: std::collections::BTreeSet<String> = collections()
            .iter()
            .flat_map(|c| c.fields.iter().map(|f| format!("{:?}", f.field_type)))
            .collect();
        assert_eq!(types.len(), 8, "{types:?}");
        for c in collections() {
            assert!(c.name.starts_with(COLLECTION_PREFIX));
        }
    }
}
