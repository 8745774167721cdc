//! Changing a field's type: which conversions are allowed, checking every
//! stored value converts, and the column's and default's conversion.

use crate::db::Sql;
use serde_json::Value as Json;
use tokio_postgres::Transaction;

use super::fields::touch;
use super::indexes::{index_expr, index_name};
use super::{busy_or, default_clause, invalid, validate, NewField, SchemaError, LOCK_TIMEOUT};
use crate::records::{sql_type, to_cell, Collection, Field, FieldType};

/// Whether a value, as PostgreSQL prints it (`col::text`), converts to a
/// field of type `to` by the same rules the API applies to writes.
fn converts(text: &str, to: FieldType, enum_values: &[String]) -> bool {
    match to {
        FieldType::Text => true,
        FieldType::Integer => text.parse::<i64>().is_ok(),
        FieldType::Decimal => crate::records::values::canonical_decimal(text, Some(40)).is_some(),
        FieldType::Boolean => matches!(text, "true" | "false"),
        FieldType::Date => crate::records::values::parse_date(text).is_some(),
        FieldType::Timestamp => {
            crate::records::values::parse_date(text).is_some()
                || crate::records::values::parse_timestamp(text).is_some()
        }
        FieldType::Enum => enum_values.iter().any(|v| v == text),
        FieldType::Json => serde_json::from_str::<Json>(text)
            .map(|v| !crate::records::values::json_has_nul(&v))
            .unwrap_or(false),
    }
}

/// The conversions offered (every other pair is refused up front).
pub fn conversion_allowed(from: FieldType, to: FieldType) -> bool {
    use FieldType::*;
    match (from, to) {
        (a, b) if a == b => false,
        (_, Text) => true,
        (Text, _) => true,
        (Integer, Decimal) | (Decimal, Integer) => true,
        (Date, Timestamp) => true,
        _ => false,
    }
}

/// Changes a field's type when every stored value converts; otherwise
/// refuses with the records whose values do not. Writes are blocked while
/// the values are checked and the column is rewritten (reads go on until
/// the rewrite); indexes are rebuilt for the new type.
pub async fn change_type(
    tx: &Transaction<'_>,
    c: &Collection,
    field: &Field,
    to: FieldType,
    enum_values: &[String],
) -> Result<(), SchemaError> {
    if !conversion_allowed(field.field_type, to) {
        return Err(invalid(
            "type",
            format!(
                "{} cannot become {}; convert through text (every type converts to and from text), \
                 integer <-> decimal, or date -> timestamp",
                crate::records::field_type_name(field.field_type),
                crate::records::field_type_name(to)
            ),
        ));
    }
    if to == FieldType::Enum {
        let probe = NewField {
            name: field.name.clone(),
            field_type: to,
            required: false,
            unique: false,
            indexed: false,
            sensitive: false,
            enum_values: enum_values.to_vec(),
            default: None,
        };
        validate("enum_values", &probe, &[])?;
    }
    let mut changed = field.clone();
    changed.field_type = to;
    changed.enum_values = if to == FieldType::Enum {
        enum_values.to_vec()
    } else {
        Vec::new()
    };
    changed.default = match &field.default {
        Some(d) => Some(converted_default(d, &changed)?),
        None => None,
    };
    Sql::batch_execute(
        &tx,
        &format!(
            "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0; \
         LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
            c.table()
        ),
    )
    .await
    .map_err(busy_or)?;
    let rows = Sql::query(
        &tx,
        &format!(
            "SELECT id, {}::text FROM {} WHERE {} IS NOT NULL ORDER BY id",
            field.column(),
            c.table(),
            field.column()
        ),
        &[],
    )
    .await?;
    let offending: Vec<i64> = rows
        .iter()
        .filter(|r| !converts(r.get::<_, &str>(1), to, enum_values))
        .map(|r| r.get(0))
        .collect();
    if !offending.is_empty() {
        return Err(SchemaError::Conflict {
            message: format!(
                "{} record(s) have a value of {:?} that is not a valid {}; change them first",
                offending.len(),
                field.name,
                crate::records::field_type_name(to)
            ),
            record_ids: offending.into_iter().take(20).collect(),
        });
    }
    for unique in [true, false] {
        Sql::batch_execute(
            &tx,
            &format!(
                "DROP INDEX IF EXISTS records.{}",
                index_name(field.id, unique)
            ),
        )
        .await?;
    }
    let using = match (field.field_type, to) {
        (FieldType::Date, FieldType::Timestamp) => {
            format!("{} AT TIME ZONE 'UTC'", field.column())
        }
        (_, FieldType::Text | FieldType::Enum) => format!("{}::text", field.column()),
        (_, to) => format!("{}::text::{}", field.column(), sql_type(to)),
    };
    // The default goes while the column is rewritten and comes back in the
    // new type (PostgreSQL cannot cast a column's default for us).
    let (drop_default, set_default) = match changed.default {
        Some(_) => (
            format!("ALTER COLUMN {} DROP DEFAULT, ", field.column()),
            format!(
                ", ALTER COLUMN {} SET{}",
                field.column(),
                default_clause(tx, &changed).await?
            ),
        ),
        None => (String::new(), String::new()),
    };
    Sql::batch_execute(
        &tx,
        &format!(
            "ALTER TABLE {} {drop_default}ALTER COLUMN {} TYPE {} USING {using}{set_default}",
            c.table(),
            field.column(),
            sql_type(to)
        ),
    )
    .await
    .map_err(busy_or)?;
    let json = to == FieldType::Json;
    for unique in [true, false] {
        let wanted = if unique { field.unique } else { field.indexed };
        if wanted && !json {
            Sql::batch_execute(
                &tx,
                &format!(
                    "CREATE {}INDEX {} ON {} ({})",
                    if unique { "UNIQUE " } else { "" },
                    index_name(field.id, unique),
                    c.table(),
                    index_expr(&changed, unique)
                ),
            )
            .await?;
        }
    }
    Sql::execute(
        &tx,
        "UPDATE collection_fields SET field_type = $2, enum_values = $3, default_value = $5, \
         is_unique = is_unique AND NOT $4, indexed = indexed AND NOT $4 WHERE id = $1",
        &[
            &field.id,
            &crate::records::field_type_name(to),
            &changed.enum_values,
            &json,
            &changed.default,
        ],
    )
    .await?;
    touch(tx, c).await
}

/// A field's default in the type it changes to (`to` carries the new type
/// and enum values), by the same rules as its stored values: through its
/// text form. Refused when it does not convert.
fn converted_default(default: &Json, to: &Field) -> Result<Json, SchemaError> {
    let text = match default {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let refuse = || {
        invalid(
            "type",
            format!(
                "the field's default {text:?} is not a valid {}; change the default first, or \
                 add a new field",
                crate::records::field_type_name(to.field_type)
            ),
        )
    };
    if !converts(&text, to.field_type, &to.enum_values) {
        return Err(refuse());
    }
    let value = match to.field_type {
        FieldType::Integer => text.parse::<i64>().map(Json::from).map_err(|_| refuse())?,
        FieldType::Boolean => Json::Bool(text == "true"),
        FieldType::Json => serde_json::from_str(&text).map_err(|_| refuse())?,
        FieldType::Timestamp if crate::records::values::parse_timestamp(&text).is_none() => {
            // A date becomes its midnight in UTC, as the column's values do.
            Json::String(format!("{text}T00:00:00Z"))
        }
        _ => Json::String(text.clone()),
    };
    match to_cell(to, &value) {
        Ok(cell) if !cell.is_null() => Ok(value),
        _ => Err(refuse()),
    }
}
