//! The indexes of a field: built concurrently after the commit (a failed
//! unique build is undone and reported with the offending record ids),
//! dropped with the field.

use super::{busy_or, SchemaError, LOCK_TIMEOUT};
use crate::db::Sql;
use crate::records::{Collection, Field, FieldType};

/// The indexed expression: text in the "C" collation, the order listings
/// sort and compare in; a plain index also holds the id, so a listing
/// sorted on the field (ties by id) reads the index in order.
pub(super) fn index_expr(field: &Field, unique: bool) -> String {
    let column = match field.field_type {
        FieldType::Text | FieldType::Enum => format!("{} COLLATE \"C\"", field.column()),
        _ => field.column(),
    };
    if unique {
        column
    } else {
        format!("{column}, id")
    }
}

pub(super) fn index_name(field_id: i64, unique: bool) -> String {
    if unique {
        format!("\"u_{field_id}\"")
    } else {
        format!("\"i_{field_id}\"")
    }
}

/// Builds a field's index without blocking writes (outside any
/// transaction). A unique build that finds duplicates is dropped again and
/// reported with the duplicate records.
pub async fn build_index(
    client: &tokio_postgres::Client,
    c: &Collection,
    field: &Field,
    unique: bool,
) -> Result<(), SchemaError> {
    let name = index_name(field.id, unique);
    // Building an index may take long on a big collection: no statement
    // timeout, but a bounded wait for the lock.
    Sql::batch_execute(
        &client,
        &format!("SET lock_timeout = '{LOCK_TIMEOUT}'; SET statement_timeout = 0"),
    )
    .await?;
    let built = Sql::batch_execute(
        &client,
        &format!(
            "CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {name} ON {} ({})",
            if unique { "UNIQUE " } else { "" },
            c.table(),
            index_expr(field, unique)
        ),
    )
    .await;
    Sql::batch_execute(&client, "RESET lock_timeout; RESET statement_timeout").await?;
    match built {
        Ok(()) => Ok(()),
        Err(e) => {
            // A failed concurrent build leaves an invalid index behind.
            Sql::batch_execute(
                &client,
                &format!("DROP INDEX CONCURRENTLY IF EXISTS records.{name}"),
            )
            .await?;
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                let rows = Sql::query(
                    &client,
                    &format!(
                        "SELECT id FROM {t} WHERE {col} IN (SELECT {col} FROM {t} \
                             WHERE {col} IS NOT NULL GROUP BY {col} HAVING count(*) > 1) \
                             ORDER BY id LIMIT 20",
                        t = c.table(),
                        col = field.column()
                    ),
                    &[],
                )
                .await?;
                return Err(SchemaError::Conflict {
                    message: format!(
                        "{:?} cannot be unique: some records share a value; change them first",
                        field.name
                    ),
                    record_ids: rows.iter().map(|r| r.get(0)).collect(),
                });
            }
            Err(busy_or(e))
        }
    }
}

/// Drops a field's index without blocking writes.
pub async fn drop_index(
    client: &tokio_postgres::Client,
    field: &Field,
    unique: bool,
) -> Result<(), SchemaError> {
    Sql::batch_execute(
        &client,
        &format!(
            "SET statement_timeout = 0; DROP INDEX CONCURRENTLY IF EXISTS records.{}; \
             RESET statement_timeout",
            index_name(field.id, unique)
        ),
    )
    .await?;
    Ok(())
}
