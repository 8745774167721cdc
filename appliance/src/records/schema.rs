//! Collection DDL: create and drop a collection's table, add, change, hide
//! and purge fields, and build indexes concurrently. The catalog row and
//! the table change commit together; indexes are built after the commit
//! (`CREATE INDEX CONCURRENTLY` cannot run in a transaction) and a failed
//! unique build is undone and reported with the offending record ids.
//! Locks are bounded: a change that cannot get its lock within
//! [`LOCK_TIMEOUT`] fails instead of queueing in front of every reader.

use serde_json::Value as Json;
use tokio_postgres::Transaction;

use super::{
    sql_type, table, to_cell, Cell, Collection, Field, FieldType, MAX_ENUM_VALUES, MAX_FIELDS,
    RESERVED,
};

/// How long DDL waits for its table lock.
pub const LOCK_TIMEOUT: &str = "5s";

/// A field as requested by an admin.
#[derive(Debug, Clone)]
pub struct NewField {
    pub name: String,
    pub field_type: FieldType,
    pub required: bool,
    pub unique: bool,
    pub indexed: bool,
    pub sensitive: bool,
    pub enum_values: Vec<String>,
    pub default: Option<Json>,
}

/// Why a schema change was refused.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A request field is invalid; names the field path.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("a collection named {0:?} already exists")]
    CollectionExists(String),
    #[error("a field named {0:?} already exists in this collection")]
    FieldExists(String),
    /// Existing records prevent the change; lists some of them.
    #[error("{message}")]
    Conflict {
        message: String,
        record_ids: Vec<i64>,
    },
    #[error("the collection is busy (a long transaction holds it); retry in a moment")]
    Busy,
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> SchemaError {
    SchemaError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// Maps a lock timeout to [`SchemaError::Busy`].
pub fn busy_or(e: tokio_postgres::Error) -> SchemaError {
    if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
        SchemaError::Busy
    } else {
        SchemaError::Db(e)
    }
}

/// Checks a requested field on its own and against the names of the
/// collection's visible fields (a hidden field's name may be reused).
pub fn validate(path: &str, f: &NewField, taken: &[&str]) -> Result<(), SchemaError> {
    if let Some(m) = super::check_name(&f.name) {
        return Err(invalid(format!("{path}.name"), m));
    }
    if RESERVED.contains(&f.name.as_str()) {
        return Err(invalid(
            format!("{path}.name"),
            format!(
                "{:?} is reserved for the record envelope; pick another name",
                f.name
            ),
        ));
    }
    if taken.contains(&f.name.as_str()) {
        return Err(SchemaError::FieldExists(f.name.clone()));
    }
    match f.field_type {
        FieldType::Enum => {
            if f.enum_values.is_empty() || f.enum_values.len() > MAX_ENUM_VALUES {
                return Err(invalid(
                    format!("{path}.enum_values"),
                    format!("an enum needs 1 to {MAX_ENUM_VALUES} values"),
                ));
            }
            let mut seen = std::collections::HashSet::new();
            for v in &f.enum_values {
                if v.is_empty() || v.chars().count() > 200 || v.chars().any(char::is_control) {
                    return Err(invalid(
                        format!("{path}.enum_values"),
                        "each value is 1-200 characters without control characters",
                    ));
                }
                if !seen.insert(v) {
                    return Err(invalid(
                        format!("{path}.enum_values"),
                        format!("{v:?} appears twice"),
                    ));
                }
            }
        }
        _ if !f.enum_values.is_empty() => {
            return Err(invalid(
                format!("{path}.enum_values"),
                "only enum fields take enum_values",
            ))
        }
        _ => {}
    }
    if f.field_type == FieldType::Json && (f.unique || f.indexed) {
        return Err(invalid(
            format!("{path}.indexed"),
            "json fields cannot be indexed or unique; index a typed field instead",
        ));
    }
    if let Some(d) = &f.default {
        let probe = as_field(0, f);
        match to_cell(&probe, d) {
            Ok(c) if c.is_null() => {
                return Err(invalid(
                    format!("{path}.default"),
                    "use no default rather than null",
                ))
            }
            Ok(_) => {}
            Err(m) => return Err(invalid(format!("{path}.default"), m)),
        }
    }
    Ok(())
}

fn as_field(id: i64, f: &NewField) -> Field {
    Field {
        id,
        name: f.name.clone(),
        field_type: f.field_type,
        required: f.required,
        unique: f.unique,
        indexed: f.indexed,
        sensitive: f.sensitive,
        enum_values: f.enum_values.clone(),
        default: f.default.clone(),
        hidden: false,
    }
}

/// `DEFAULT <literal>` for a column, quoted by the server (`quote_literal`)
/// so no user text is ever spliced into SQL by hand.
async fn default_clause(tx: &Transaction<'_>, field: &Field) -> Result<String, SchemaError> {
    let Some(default) = &field.default else {
        return Ok(String::new());
    };
    let text = match to_cell(field, default).map_err(|m| invalid("default", m))? {
        Cell::Text(Some(s)) | Cell::Decimal(Some(s)) => s,
        Cell::Integer(Some(n)) => n.to_string(),
        Cell::Boolean(Some(b)) => b.to_string(),
        Cell::Json(Some(j)) => j.to_string(),
        Cell::Date(Some(_)) | Cell::Timestamp(Some(_)) => {
            default.as_str().unwrap_or("").to_string()
        }
        _ => return Ok(String::new()),
    };
    let literal: String = tx
        .query_one("SELECT quote_literal($1::text)", &[&text])
        .await?
        .get(0);
    Ok(format!(
        " DEFAULT {literal}::{}",
        sql_type(field.field_type)
    ))
}

async fn column_definition(tx: &Transaction<'_>, field: &Field) -> Result<String, SchemaError> {
    let mut def = format!("{} {}", field.column(), sql_type(field.field_type));
    def.push_str(&default_clause(tx, field).await?);
    if field.required {
        def.push_str(" NOT NULL");
    }
    Ok(def)
}

async fn insert_field(
    tx: &Transaction<'_>,
    collection_id: i64,
    f: &NewField,
    position: i32,
) -> Result<Field, SchemaError> {
    let row = tx
        .query_one(
            "INSERT INTO collection_fields (collection_id, name, field_type, required, is_unique, \
             indexed, sensitive, enum_values, default_value, position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            &[
                &collection_id,
                &f.name,
                &super::field_type_name(f.field_type),
                &f.required,
                &f.unique,
                &f.indexed,
                &f.sensitive,
                &f.enum_values,
                &f.default,
                &position,
            ],
        )
        .await?;
    Ok(as_field(row.get(0), f))
}

/// The indexed expression: text in the "C" collation, the order listings
/// sort and compare in; a plain index also holds the id, so a listing
/// sorted on the field (ties by id) reads the index in order.
fn index_expr(field: &Field, unique: bool) -> String {
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

fn index_name(field_id: i64, unique: bool) -> String {
    if unique {
        format!("\"u_{field_id}\"")
    } else {
        format!("\"i_{field_id}\"")
    }
}

/// Creates the collection, its fields and its table (indexes included: the
/// table is empty, so they are built in the same transaction).
pub async fn create_collection(
    tx: &Transaction<'_>,
    name: &str,
    title: &str,
    fields: &[NewField],
) -> Result<i64, SchemaError> {
    if let Some(m) = super::check_name(name) {
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
    let Some(row) = tx
        .query_opt(
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
    tx.batch_execute(&format!(
        "CREATE TABLE {} ({})",
        table(id),
        columns.join(", ")
    ))
    .await?;
    for field in &created {
        for unique in [true, false] {
            if (unique && field.unique) || (!unique && field.indexed) {
                tx.batch_execute(&format!(
                    "CREATE {}INDEX {} ON {} ({})",
                    if unique { "UNIQUE " } else { "" },
                    index_name(field.id, unique),
                    table(id),
                    index_expr(field, unique)
                ))
                .await?;
            }
        }
    }
    Ok(id)
}

/// Drops a collection and its records.
pub async fn drop_collection(tx: &Transaction<'_>, c: &Collection) -> Result<(), SchemaError> {
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0"
    ))
    .await?;
    tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", c.table()))
        .await
        .map_err(busy_or)?;
    tx.execute("DELETE FROM collections WHERE id = $1", &[&c.id])
        .await?;
    Ok(())
}

/// Adds a field: catalog row and column in the caller's transaction. The
/// caller builds its index afterwards with [`build_index`].
pub async fn add_field(
    tx: &Transaction<'_>,
    c: &Collection,
    f: &NewField,
) -> Result<Field, SchemaError> {
    let all = super::fields(tx, c.id, true).await?;
    if all.len() >= MAX_FIELDS {
        return Err(invalid(
            "name",
            format!("a collection has at most {MAX_FIELDS} fields"),
        ));
    }
    let taken: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
    validate("field", f, &taken)?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0"
    ))
    .await?;
    if f.required && f.default.is_none() {
        let has_records: bool = tx
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {})", c.table()), &[])
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
    tx.batch_execute(&format!(
        "ALTER TABLE {} ADD COLUMN {definition}",
        c.table()
    ))
    .await
    .map_err(busy_or)?;
    Ok(field)
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
    client
        .batch_execute(&format!(
            "SET lock_timeout = '{LOCK_TIMEOUT}'; SET statement_timeout = 0"
        ))
        .await?;
    let built = client
        .batch_execute(&format!(
            "CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {name} ON {} ({})",
            if unique { "UNIQUE " } else { "" },
            c.table(),
            index_expr(field, unique)
        ))
        .await;
    client
        .batch_execute("RESET lock_timeout; RESET statement_timeout")
        .await?;
    match built {
        Ok(()) => Ok(()),
        Err(e) => {
            // A failed concurrent build leaves an invalid index behind.
            client
                .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS records.{name}"))
                .await?;
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                let rows = client
                    .query(
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
    client
        .batch_execute(&format!(
            "SET statement_timeout = 0; DROP INDEX CONCURRENTLY IF EXISTS records.{}; \
             RESET statement_timeout",
            index_name(field.id, unique)
        ))
        .await?;
    Ok(())
}

/// Makes a field required (every record must have a value) or optional.
pub async fn set_required(
    tx: &Transaction<'_>,
    c: &Collection,
    field: &Field,
    required: bool,
) -> Result<(), SchemaError> {
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0"
    ))
    .await?;
    if required {
        let rows = tx
            .query(
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
    tx.batch_execute(&format!(
        "ALTER TABLE {} ALTER COLUMN {} {} NOT NULL",
        c.table(),
        field.column(),
        if required { "SET" } else { "DROP" }
    ))
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
    tx.execute(
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
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    if let Some(default) = field.default.as_ref().and_then(|d| d.as_str()) {
        if !values.iter().any(|v| v == default) {
            return Err(invalid(
                "enum_values",
                format!("the field's default {default:?} must stay among the values"),
            ));
        }
    }
    let rows = tx
        .query(
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
    tx.execute(
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
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0"
        ))
        .await?;
        tx.batch_execute(&format!(
            "ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL",
            c.table(),
            field.column()
        ))
        .await
        .map_err(busy_or)?;
    }
    tx.execute(
        "UPDATE collection_fields SET hidden_at = now(), required = false \
         WHERE id = $1 AND hidden_at IS NULL",
        &[&field.id],
    )
    .await?;
    touch(tx, c).await
}

/// Records that the collection's schema changed.
pub async fn touch(tx: &Transaction<'_>, c: &Collection) -> Result<(), SchemaError> {
    tx.execute(
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
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0"
    ))
    .await?;
    tx.batch_execute(&format!(
        "ALTER TABLE {} DROP COLUMN IF EXISTS {}",
        c.table(),
        field.column()
    ))
    .await
    .map_err(busy_or)?;
    tx.execute("DELETE FROM collection_fields WHERE id = $1", &[&field.id])
        .await?;
    touch(tx, c).await
}

/// Whether a value, as PostgreSQL prints it (`col::text`), converts to a
/// field of type `to` by the same rules the API applies to writes.
fn converts(text: &str, to: FieldType, enum_values: &[String]) -> bool {
    match to {
        FieldType::Text => true,
        FieldType::Integer => text.parse::<i64>().is_ok(),
        FieldType::Decimal => super::values::canonical_decimal(text, Some(40)).is_some(),
        FieldType::Boolean => matches!(text, "true" | "false"),
        FieldType::Date => super::values::parse_date(text).is_some(),
        FieldType::Timestamp => {
            super::values::parse_date(text).is_some()
                || super::values::parse_timestamp(text).is_some()
        }
        FieldType::Enum => enum_values.iter().any(|v| v == text),
        FieldType::Json => serde_json::from_str::<Json>(text)
            .map(|v| !super::values::json_has_nul(&v))
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
                super::field_type_name(field.field_type),
                super::field_type_name(to)
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
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; SET LOCAL statement_timeout = 0; \
         LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
        c.table()
    ))
    .await
    .map_err(busy_or)?;
    let rows = tx
        .query(
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
                super::field_type_name(to)
            ),
            record_ids: offending.into_iter().take(20).collect(),
        });
    }
    for unique in [true, false] {
        tx.batch_execute(&format!(
            "DROP INDEX IF EXISTS records.{}",
            index_name(field.id, unique)
        ))
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
    tx.batch_execute(&format!(
        "ALTER TABLE {} {drop_default}ALTER COLUMN {} TYPE {} USING {using}{set_default}",
        c.table(),
        field.column(),
        sql_type(to)
    ))
    .await
    .map_err(busy_or)?;
    let json = to == FieldType::Json;
    for unique in [true, false] {
        let wanted = if unique { field.unique } else { field.indexed };
        if wanted && !json {
            tx.batch_execute(&format!(
                "CREATE {}INDEX {} ON {} ({})",
                if unique { "UNIQUE " } else { "" },
                index_name(field.id, unique),
                c.table(),
                index_expr(&changed, unique)
            ))
            .await?;
        }
    }
    tx.execute(
        "UPDATE collection_fields SET field_type = $2, enum_values = $3, default_value = $5, \
         is_unique = is_unique AND NOT $4, indexed = indexed AND NOT $4 WHERE id = $1",
        &[
            &field.id,
            &super::field_type_name(to),
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
                super::field_type_name(to.field_type)
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
        FieldType::Timestamp if super::values::parse_timestamp(&text).is_none() => {
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
