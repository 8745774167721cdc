//! Collections the appliance keeps for itself: names starting with
//! [`PREFIX`] are refused to people, and their schema cannot be changed or
//! dropped through the API. One exists: [`SMOKE`], the scratch collection of
//! `mogothrow77 smoke`, created at start; writes to it raise no webhook
//! event.

use super::schema::{self, NewField, SchemaError};
use super::FieldType;

/// Names with this prefix are the appliance's own.
pub const PREFIX: &str = "mogothrow77_";

/// The smoke check's scratch collection.
pub const SMOKE: &str = "mogothrow77_smoke";

pub fn is_reserved(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// Creates [`SMOKE`] unless it exists (every replica calls this at start;
/// the first one creates it). Returns true when it was created.
pub async fn ensure_smoke(client: &mut tokio_postgres::Client) -> Result<bool, SchemaError> {
    let field = |name: &str, field_type| NewField {
        required: true,
        ..NewField::new(name, field_type)
    };
    let tx = client.transaction().await?;
    let created = schema::create_collection(
        &tx,
        SMOKE,
        "Reserved for `mogothrow77 smoke` (do not use)",
        &[
            field("probe", FieldType::Text),
            field("n", FieldType::Integer),
        ],
    )
    .await;
    match created {
        Ok(_) => {
            tx.commit().await?;
            Ok(true)
        }
        Err(SchemaError::CollectionExists(_)) => Ok(false),
        Err(e) => Err(e),
    }
}
