//! Creating and dropping a collection: its catalog rows and its table.

use crate::db::Sql;
use tokio_postgres::Transaction;

use super::indexes::{index_expr, index_name};
use super::{
    busy_or, column_definition, insert_field, invalid, validate, NewField, SchemaError,
    LOCK_TIMEOUT,
};
use crate::records::{table, Collection, MAX_FIELDS};

/// Creates the collection, its fields and its table (indexes included: the
/// table is empty, so they are built in the same transaction).
pub async fn create_collection(
    tx: &Transaction<'_>,
    name: &str,
    title: &str,
    fields: &[NewField],
) -> Result<i64, SchemaError> {
    if let Some(m) = crate::records::check_name(name) {
        return Err(invalid("name", m));
    }
    if fields.len() > MAX_FIELDS {
        return Err(invalid("fields", format!("at most {MAX_FIELDS} fields")));
    }
    let mut taken: Vec<&str> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        validate(&format!("fields[{i}]"), f, &taken)?;
        taken.push(&f.name);
    }
    let Some(row) = Sql::query_opt(
        &tx,
        "INSERT INTO collections (name, title) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        &[&name, &title],
    )
    .await?
    else {
        return Err(SchemaError::CollectionExists(name.to_string()));
    };
    let id: i64 = row.get(0);
    let mut columns = vec![
        "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY".to_string(),
        "version bigint NOT NULL DEFAULT 1".to_string(),
        "created_at timestamptz NOT NULL DEFAULT now()".to_string(),
        "updated_at timestamptz NOT NULL DEFAULT now()".to_string(),
        "created_by bigint".to_string(),
        "updated_by bigint".to_string(),
    ];
    let mut created = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let field = insert_field(tx, id, f, i as i32).await?;
        columns.push(column_definition(tx, &field).await?);
        created.push(field);
    }
    Sql::batch_execute(
        &tx,
        &format!("CREATE TABLE {} ({})", table(id), columns.join(", ")),
    )
    .await?;
    for field in &created {
        for unique in [true, false] {
            if (unique && field.unique) || (!unique && field.indexed) {
                Sql::batch_execute(
                    &tx,
                    &format!(
                        "CREATE {}INDEX {} ON {} ({})",
                        if unique { "UNIQUE " } else { "" },
                        index_name(field.id, unique),
                        table(id),
                        index_expr(field, unique)
                    ),
                )
                .await?;
            }
        }
    }
    Ok(id)
}

/// Drops a collection and its records.
pub async fn drop_collection(tx: &Transaction<'_>, c: &Collection) -> Result<(), SchemaError> {
    Sql::batch_execute(
        &tx,
        &format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0"),
    )
    .await?;
    Sql::batch_execute(&tx, &format!("DROP TABLE IF EXISTS {}", c.table()))
        .await
        .map_err(busy_or)?;
    Sql::execute(&tx, "DELETE FROM collections WHERE id = $1", &[&c.id]).await?;
    Ok(())
}
