//! Changing a collection's fields: add one, require it, change an enum's
//! values, hide and purge it, and mark the catalog changed.

use crate::db::Sql;
use tokio_postgres::Transaction;

use super::{
    busy_or, column_definition, insert_field, invalid, validate, NewField, SchemaError,
    LOCK_TIMEOUT,
};
use crate::records::{Collection, Field, MAX_FIELDS};

/// Adds a field: catalog row and column in the caller's transaction. The
/// caller builds its index afterwards with [`build_index`].
pub async fn add_field(
    tx: &Transaction<'_>,
    c: &Collection,
    f: &NewField,
) -> Result<Field, SchemaError> {
    let all = crate::records::fields(tx, c.id, true).await?;
    if all.len() >= MAX_FIELDS {
        return Err(invalid(
            "name",
            format!("a collection has at most {MAX_FIELDS} fields"),
        ));
    }
    let taken: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
    validate("field", f, &taken)?;
    Sql::batch_execute(
        &tx,
        &format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0"),
    )
    .await?;
    if f.required && f.default.is_none() {
        let has_records: bool = Sql::query_one(
            &tx,
            &format!("SELECT EXISTS (SELECT 1 FROM {})", c.table()),
            &[],
        )
        .await
        .map_err(busy_or)?
        .get(0);
        if has_records {
            return Err(SchemaError::Conflict {
                message: "the collection has records, so a new required field needs a default \
                          (or add it as optional, fill it, then make it required)"
                    .to_string(),
                record_ids: Vec::new(),
            });
        }
    }
    let position = all.len() as i32;
    touch(tx, c).await?;
    let field = insert_field(tx, c.id, f, position).await?;
    let definition = column_definition(tx, &field).await?;
    Sql::batch_execute(
        &tx,
        &format!("ALTER TABLE {} ADD COLUMN {definition}", c.table()),
    )
    .await
    .map_err(busy_or)?;
    Ok(field)
}

/// Makes a field required (every record must have a value) or optional.
pub async fn set_required(
    tx: &Transaction<'_>,
    c: &Collection,
    field: &Field,
    required: bool,
) -> Result<(), SchemaError> {
    Sql::batch_execute(
        &tx,
        &format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0"),
    )
    .await?;
    if required {
        let rows = Sql::query(
            &tx,
            &format!(
                "SELECT id FROM {} WHERE {} IS NULL ORDER BY id LIMIT 20",
                c.table(),
                field.column()
            ),
            &[],
        )
        .await
        .map_err(busy_or)?;
        if !rows.is_empty() {
            return Err(SchemaError::Conflict {
                message: format!(
                    "{:?} cannot become required: some records have no value; fill them first",
                    field.name
                ),
                record_ids: rows.iter().map(|r| r.get(0)).collect(),
            });
        }
    }
    Sql::batch_execute(
        &tx,
        &format!(
            "ALTER TABLE {} ALTER COLUMN {} {} NOT NULL",
            c.table(),
            field.column(),
            if required { "SET" } else { "DROP" }
        ),
    )
    .await
    .map_err(|e| {
        // A record without a value arrived between the check and the change.
        if e.code() == Some(&tokio_postgres::error::SqlState::NOT_NULL_VIOLATION) {
            SchemaError::Conflict {
                message: format!(
                    "{:?} cannot become required: a record without a value was just written; \
                     fill it and retry",
                    field.name
                ),
                record_ids: Vec::new(),
            }
        } else {
            busy_or(e)
        }
    })?;
    Sql::execute(
        &tx,
        "UPDATE collection_fields SET required = $2 WHERE id = $1",
        &[&field.id, &required],
    )
    .await?;
    Ok(())
}

/// Changes an enum's values; values still in use cannot be removed.
pub async fn set_enum_values(
    tx: &Transaction<'_>,
    c: &Collection,
    field: &Field,
    values: &[String],
) -> Result<(), SchemaError> {
    let probe = NewField {
        name: field.name.clone(),
        field_type: field.field_type,
        required: false,
        unique: false,
        indexed: false,
        sensitive: false,
        enum_values: values.to_vec(),
        default: None,
    };
    validate("enum_values", &probe, &[])?;
    Sql::batch_execute(&tx, "SET LOCAL statement_timeout = 0").await?;
    if let Some(default) = field.default.as_ref().and_then(|d| d.as_str()) {
        if !values.iter().any(|v| v == default) {
            return Err(invalid(
                "enum_values",
                format!("the field's default {default:?} must stay among the values"),
            ));
        }
    }
    let rows = Sql::query(
        &tx,
        &format!(
            "SELECT id FROM {} WHERE {} IS NOT NULL AND NOT ({} = ANY($1)) ORDER BY id LIMIT 20",
            c.table(),
            field.column(),
            field.column()
        ),
        &[&values],
    )
    .await?;
    if !rows.is_empty() {
        return Err(SchemaError::Conflict {
            message: format!(
                "some records of {:?} use a value that would be removed; change them first",
                field.name
            ),
            record_ids: rows.iter().map(|r| r.get(0)).collect(),
        });
    }
    Sql::execute(
        &tx,
        "UPDATE collection_fields SET enum_values = $2 WHERE id = $1",
        &[&field.id, &values],
    )
    .await?;
    Ok(())
}

/// Hides a field: it disappears from the API at once; its column (and
/// data) stays until [`purge_field`]. A required column stops being
/// NOT NULL, or new records (which cannot set it) could not be created.
pub async fn hide_field(
    tx: &Transaction<'_>,
    c: &Collection,
    field: &Field,
) -> Result<(), SchemaError> {
    if field.required {
        Sql::batch_execute(
            &tx,
            &format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0"),
        )
        .await?;
        Sql::batch_execute(
            &tx,
            &format!(
                "ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL",
                c.table(),
                field.column()
            ),
        )
        .await
        .map_err(busy_or)?;
    }
    Sql::execute(
        &tx,
        "UPDATE collection_fields SET hidden_at = now(), required = false \
         WHERE id = $1 AND hidden_at IS NULL",
        &[&field.id],
    )
    .await?;
    touch(tx, c).await
}

/// Records that the collection's schema changed.
pub async fn touch(tx: &Transaction<'_>, c: &Collection) -> Result<(), SchemaError> {
    Sql::execute(
        &tx,
        "UPDATE collections SET updated_at = now() WHERE id = $1",
        &[&c.id],
    )
    .await?;
    Ok(())
}

/// Drops a hidden field's column and catalog row.
pub async fn purge_field(
    tx: &Transaction<'_>,
    c: &Collection,
    field: &Field,
) -> Result<(), SchemaError> {
    Sql::batch_execute(
        &tx,
        &format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0"),
    )
    .await?;
    Sql::batch_execute(
        &tx,
        &format!(
            "ALTER TABLE {} DROP COLUMN IF EXISTS {}",
            c.table(),
            field.column()
        ),
    )
    .await
    .map_err(busy_or)?;
    Sql::execute(
        &tx,
        "DELETE FROM collection_fields WHERE id = $1",
        &[&field.id],
    )
    .await?;
    touch(tx, c).await
}
