//! Notifications by e-mail when `[smtp]` is configured: a person whose
//! stored export is ready gets a message (if an admin gave them an
//! address). Messages are queued as jobs of kind `email`
//! (`crate::jobs::email`) in the transaction of the event, so they are
//! retried while the relay is away and never sent for something that
//! rolled back. [`smtp`] is the client.

pub mod smtp;

use crate::db::Sql;
use serde_json::json;
use time::OffsetDateTime;

use crate::queue::{self, Kind};

/// What the e-mail job needs.
#[derive(Debug, Clone)]
pub struct Email {
    pub mailer: smtp::Mailer,
    /// The console's address, for links in messages.
    pub console_url: String,
}

/// Queues a message (in the caller's transaction).
pub async fn queue<C: Sql>(
    client: &C,
    to: &str,
    subject: &str,
    body: &str,
    request_id: Option<&str>,
) -> Result<i64, tokio_postgres::Error> {
    queue::enqueue(
        client,
        Kind::Email,
        &json!({ "to": to, "subject": subject, "body": body }),
        None,
        request_id,
    )
    .await
}

fn size(bytes: i64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} bytes"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / 1024.0 / 1024.0),
    }
}

/// The "your export is ready" message.
pub fn export_ready(
    console_url: &str,
    export_id: i64,
    collection: &str,
    rows: i64,
    bytes: i64,
    expires_at: OffsetDateTime,
) -> (String, String) {
    let expires = expires_at
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let subject = format!("Your export of {collection} is ready");
    let body = format!(
        "Your export #{export_id} of the collection {collection} is ready: {rows} rows, {}.\n\n\
         Download it from the Exports page of the console (sign in first):\n{}exports?started={export_id}\n\n\
         It can be downloaded until {expires}; then it is deleted.\n\n\
         This message was sent by Mogothrow77 because you asked for the export.\n",
        size(bytes),
        console_url
    );
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_export_message_links_the_console() {
        let (subject, body) = export_ready(
            "https://records.example:8443/",
            7,
            "tickets",
            1200,
            3 * 1024 * 1024,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(subject, "Your export of tickets is ready");
        assert!(body.contains("#7"));
        assert!(body.contains("1200 rows, 3.0 MiB"));
        assert!(body.contains("https://records.example:8443/exports?started=7"));
    }
}
