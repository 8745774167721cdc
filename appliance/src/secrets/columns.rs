//! The secret columns and their sealed twins, and the one routine that
//! keeps them equal: every sealed column holds its clear column's value
//! sealed under the key in force, or NULL when the clear one is NULL.
//!
//! While the previous release may still run on the schema (the rollback
//! window), the clear columns are the truth: that release writes only
//! them. A row it wrote has a missing or stale sealed twin, which the next
//! start of this release (or the write that follows) seals again.

use tokio_postgres::types::ToSql;

use super::seal::{self, OpenError};
use crate::config::{Kek, KeyFile};
use crate::db::Sql;

/// One secret column: its clear value as bytes, and its sealed twin.
pub struct Column {
    /// The name in a value's place (`webhooks.secret:42`).
    pub name: &'static str,
    /// SQL giving the clear value as bytea.
    pub clear: &'static str,
    pub sealed: &'static str,
}

/// A table holding secret columns.
pub struct Table {
    pub name: &'static str,
    /// The primary key column, and its SQL type (the id travels as text).
    pub key: &'static str,
    pub key_type: &'static str,
    pub columns: &'static [Column],
}

pub const WEBHOOKS: Table = Table {
    name: "webhooks",
    key: "id",
    key_type: "bigint",
    columns: &[
        Column {
            name: "secret",
            clear: "convert_to(secret, 'UTF8')",
            sealed: "secret_sealed",
        },
        Column {
            name: "previous_secret",
            clear: "convert_to(previous_secret, 'UTF8')",
            sealed: "previous_secret_sealed",
        },
    ],
};

pub const USERS: Table = Table {
    name: "users",
    key: "id",
    key_type: "bigint",
    columns: &[
        Column {
            name: "totp_secret",
            clear: "totp_secret",
            sealed: "totp_secret_sealed",
        },
        Column {
            name: "totp_pending_secret",
            clear: "totp_pending_secret",
            sealed: "totp_pending_secret_sealed",
        },
    ],
};

pub const SERVER_KEYS: Table = Table {
    name: "server_keys",
    key: "name",
    key_type: "text",
    columns: &[
        Column {
            name: "key",
            clear: "key",
            sealed: "key_sealed",
        },
        Column {
            name: "previous_key",
            clear: "previous_key",
            sealed: "previous_key_sealed",
        },
    ],
};

/// Every table with secret columns.
pub const TABLES: [&Table; 3] = [&WEBHOOKS, &USERS, &SERVER_KEYS];

/// What one pass over sealed columns found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Values sealed under the key in force and equal to their clear value.
    pub current: u64,
    /// Values (re)sealed: missing, stale, or under another key.
    pub sealed: u64,
    /// Of those, values that did not open with any key of the file
    /// (sealed under a key it no longer has, or altered).
    pub unreadable: u64,
    /// Sealed values cleared because their clear value is gone.
    pub cleared: u64,
}

impl Pass {
    pub fn add(&mut self, other: Pass) {
        self.current += other.current;
        self.sealed += other.sealed;
        self.unreadable += other.unreadable;
        self.cleared += other.cleared;
    }
}

/// What a sealed column should hold, given what it holds.
enum Verdict {
    Keep,
    Seal { unreadable: bool },
    Clear,
}

fn verdict(
    keys: &KeyFile,
    kek: &Kek,
    place: &str,
    clear: Option<&[u8]>,
    sealed: Option<&[u8]>,
) -> Verdict {
    match (clear, sealed) {
        (None, None) => Verdict::Keep,
        (None, Some(_)) => Verdict::Clear,
        (Some(_), None) => Verdict::Seal { unreadable: false },
        (Some(clear), Some(sealed)) => {
            let opened = match seal::key_id(sealed).and_then(|id| keys.get(&id)) {
                Some(k) => seal::open(k, place, sealed),
                None => Err(OpenError::Format),
            };
            match opened {
                Ok(v) if v == clear && seal::key_id(sealed).as_ref() == Some(&kek.id) => {
                    Verdict::Keep
                }
                Ok(_) => Verdict::Seal { unreadable: false },
                Err(_) => Verdict::Seal { unreadable: true },
            }
        }
    }
}

/// Makes the sealed columns of `table` (one row when `only` names its key,
/// else every row) hold their clear values sealed under `kek`; `keys`
/// opens what is there.
pub async fn sync<C: Sql>(
    client: &C,
    keys: &KeyFile,
    kek: &Kek,
    table: &Table,
    only: Option<&str>,
) -> Result<Pass, tokio_postgres::Error> {
    let clear: Vec<&str> = table.columns.iter().map(|c| c.clear).collect();
    let sealed: Vec<&str> = table.columns.iter().map(|c| c.sealed).collect();
    let any = table
        .columns
        .iter()
        .map(|c| format!("{} IS NOT NULL OR {} IS NOT NULL", c.clear, c.sealed))
        .collect::<Vec<_>>()
        .join(" OR ");
    let row_filter = match only {
        Some(_) => format!("{} = ($1::text)::{}", table.key, table.key_type),
        None => format!("({any})"),
    };
    // Identifiers and expressions are this module's constants, never input.
    let select = format!(
        "SELECT {key}::text, {clear}, {sealed} FROM {name} WHERE {row_filter} FOR UPDATE",
        key = table.key,
        clear = clear.join(", "),
        sealed = sealed.join(", "),
        name = table.name,
    );
    let rows = match only {
        Some(id) => client.query(&select, &[&id]).await?,
        None => client.query(&select, &[]).await?,
    };
    let n = table.columns.len();
    let mut pass = Pass::default();
    for row in rows {
        let id: String = row.get(0);
        let mut sets = Vec::new();
        let mut values: Vec<Option<Vec<u8>>> = Vec::new();
        for (i, column) in table.columns.iter().enumerate() {
            let place = format!("{}.{}:{id}", table.name, column.name);
            let clear: Option<Vec<u8>> = row.get(1 + i);
            let sealed: Option<Vec<u8>> = row.get(1 + n + i);
            match verdict(keys, kek, &place, clear.as_deref(), sealed.as_deref()) {
                Verdict::Keep => {
                    if sealed.is_some() {
                        pass.current += 1;
                    }
                    continue;
                }
                Verdict::Seal { unreadable } => {
                    pass.sealed += 1;
                    pass.unreadable += u64::from(unreadable);
                    values.push(clear.map(|c| seal::seal(kek, &place, &c)));
                }
                Verdict::Clear => {
                    pass.cleared += 1;
                    values.push(None);
                }
            }
            sets.push(format!("{} = ${}", column.sealed, values.len() + 1));
        }
        if sets.is_empty() {
            continue;
        }
        let update = format!(
            "UPDATE {name} SET {sets} WHERE {key} = ($1::text)::{key_type}",
            name = table.name,
            sets = sets.join(", "),
            key = table.key,
            key_type = table.key_type,
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
        params.extend(values.iter().map(|v| v as &(dyn ToSql + Sync)));
        client.execute(&update, &params).await?;
    }
    Ok(pass)
}

/// How many sealed values each key seals, and how many secret values
/// have no sealed twin (for `diagnose` and the rotation's report).
pub async fn census<C: Sql>(
    client: &C,
) -> Result<(Vec<(String, i64)>, i64), tokio_postgres::Error> {
    let mut parts = Vec::new();
    let mut missing = Vec::new();
    for table in TABLES {
        for c in table.columns {
            // The key id is bytes 3..(2 + length) of the value.
            parts.push(format!(
                "SELECT convert_from(substr({s}, 3, get_byte({s}, 1)), 'SQL_ASCII') AS key_id \
                 FROM {t} WHERE {s} IS NOT NULL",
                s = c.sealed,
                t = table.name
            ));
            missing.push(format!(
                "(SELECT count(*) FROM {t} WHERE {c} IS NOT NULL AND {s} IS NULL)",
                t = table.name,
                c = c.clear,
                s = c.sealed
            ));
        }
    }
    let rows = client
        .query(
            &format!(
                "SELECT key_id, count(*) FROM ({}) v GROUP BY key_id ORDER BY key_id",
                parts.join(" UNION ALL ")
            ),
            &[],
        )
        .await?;
    let by_key = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let unsealed: i64 = client
        .query_one(&format!("SELECT {}", missing.join(" + ")), &[])
        .await?
        .get(0);
    Ok((by_key, unsealed))
}
