//! The replica's one `LISTEN` connection: PostgreSQL notifications, raised
//! by triggers in the changing transaction (migrations V4, V5), handed to
//! the subscribers that asked for their channel — the caches (`app::Caches`:
//! a change clears the cache concerned) and the job workers (a queued job
//! wakes them). Subscribers also hear when the connection is up (listening:
//! what changed while it was down must be assumed changed) and when it is
//! lost (a cache is bypassed until it is back).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use crate::db::Connections;

/// API tokens, their users and the MFA requirement changed.
pub const AUTH_CHANNEL: &str = "m77_auth";
/// Collections or their fields changed.
pub const CATALOG_CHANNEL: &str = "m77_catalog";
/// A job was queued.
pub const JOBS_CHANNEL: &str = "m77_jobs";
/// Every channel there is (migrations raise no others).
const CHANNELS: [&str; 3] = [AUTH_CHANNEL, CATALOG_CHANNEL, JOBS_CHANNEL];

/// How often the connection is checked.
const PROBE_EVERY: Duration = Duration::from_secs(10);

/// One who hears notifications.
pub trait Subscriber: Send + Sync {
    /// A notification on `channel`.
    fn notified(&self, channel: &str);
    /// The connection is listening (`true`) or lost (`false`).
    fn connected(&self, up: bool);
}

/// Wakes the waiters of a [`Notify`] on one channel's notifications and on
/// every (re)connection, for what happened meanwhile.
pub struct Wake {
    pub channel: &'static str,
    pub notify: Arc<Notify>,
}

impl Subscriber for Wake {
    fn notified(&self, channel: &str) {
        if channel == self.channel {
            self.notify.notify_waiters();
        }
    }

    fn connected(&self, up: bool) {
        if up {
            self.notify.notify_waiters();
        }
    }
}

/// Keeps the connection open for as long as the server runs, reconnecting
/// with backoff.
pub async fn listen(connections: Connections, subscribers: Vec<Arc<dyn Subscriber>>) {
    let subscribers: Arc<[Arc<dyn Subscriber>]> = subscribers.into();
    let mut backoff = Duration::from_millis(250);
    let mut after_outage = false;
    loop {
        match listen_once(&connections, &subscribers, after_outage).await {
            Ok(()) => {
                tracing::warn!(
                    "the cache invalidation connection closed; caches are off until it is back"
                );
                backoff = Duration::from_millis(250);
            }
            Err(e) => tracing::warn!(
                error = %crate::db::describe_pg_error(&e),
                "the cache invalidation connection failed; caches are off until it is back"
            ),
        }
        for s in subscribers.iter() {
            s.connected(false);
        }
        after_outage = true;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn listen_once(
    connections: &Connections,
    subscribers: &Arc<[Arc<dyn Subscriber>]>,
    after_outage: bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = connections.app.connect(connections.tls.clone()).await?;
    let driver_subscribers = subscribers.clone();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    for s in driver_subscribers.iter() {
                        s.notified(n.channel());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    let statements: String = CHANNELS.iter().map(|c| format!("LISTEN {c}; ")).collect();
    client.batch_execute(&statements).await?;
    // Only what is read from now on can be trusted to be cleared.
    for s in subscribers.iter() {
        s.connected(true);
    }
    if after_outage {
        tracing::info!("the cache invalidation connection is back; caches are on again");
    } else {
        tracing::debug!("cache invalidation connection listening");
    }
    // A connection dropped silently (a firewall's idle timeout) would leave
    // the caches live but deaf: probe it, and start over when it is gone.
    let mut driver = driver;
    let mut probe = tokio::time::interval(PROBE_EVERY);
    loop {
        tokio::select! {
            ended = &mut driver => {
                return match ended {
                    Ok(result) => result,
                    Err(_) => Ok(()),
                };
            }
            _ = probe.tick() => {
                let answered =
                    tokio::time::timeout(PROBE_EVERY, client.simple_query("SELECT 1")).await;
                match answered {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        driver.abort();
                        return Err(e);
                    }
                    Err(_) => {
                        driver.abort();
                        tracing::warn!("the cache invalidation connection stopped answering");
                        return Ok(());
                    }
                }
            }
        }
    }
}
