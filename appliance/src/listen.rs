//! The replica's one `LISTEN` connection: PostgreSQL notifications, raised
//! by triggers in the changing transaction (migrations V4, V5), handed to
//! the subscribers that asked for their channel — the caches (`app::Caches`:
//! a change clears the cache concerned) and the job workers (a queued job
//! wakes them). Subscribers also hear when the connection is up (listening:
//! what changed while it was down must be assumed changed) and when it is
//! lost (a cache is bypassed until it is back).
//!
//! Delivery is proven, not assumed: every [`PROBE_EVERY`] the replica sends
//! a notification of its own through another connection and expects to hear
//! it here. A connection pooler in transaction or statement mode between
//! the appliance and PostgreSQL accepts `LISTEN` but never delivers (the
//! session is not kept): at start that is a configuration error
//! ([`check_delivery`]); later, the caches are turned off and `/readyz`
//! answers 503 ([`Delivery::is_broken`]) until notifications arrive again.

use crate::db::Sql;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio_postgres::AsyncMessage;

use crate::db::Connections;

/// API tokens, their users and the MFA requirement changed.
pub const AUTH_CHANNEL: &str = "m77_auth";
/// Collections or their fields changed.
pub const CATALOG_CHANNEL: &str = "m77_catalog";
/// A job was queued.
pub const JOBS_CHANNEL: &str = "m77_jobs";
/// The replicas' delivery probes (each hears only its own).
const PROBE_CHANNEL: &str = "m77_probe";
/// Every channel there is (migrations raise no others).
const CHANNELS: [&str; 4] = [AUTH_CHANNEL, CATALOG_CHANNEL, JOBS_CHANNEL, PROBE_CHANNEL];

/// How often the connection and the delivery are checked.
const PROBE_EVERY: Duration = Duration::from_secs(10);

/// What the operator is told when notifications are not delivered.
pub const NOT_DELIVERED: &str = "notifications sent to the database do not come back to this \
     server's LISTEN connection: database.url leads through a connection pooler in transaction \
     or statement mode (PgBouncer pool_mode = transaction), which the appliance cannot work \
     through (cache invalidation, job wake-ups and prepared statements need a session); point \
     database.url at PostgreSQL directly or at a PgBouncer pool in session mode \
     (see high-availability.md, section Connection poolers)";

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

/// Whether notifications were last found undelivered (a transaction-mode
/// pooler), for `/readyz`.
#[derive(Default)]
pub struct Delivery {
    broken: AtomicBool,
}

impl Delivery {
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    fn set_broken(&self, broken: bool) {
        let was = self.broken.swap(broken, Ordering::SeqCst);
        match (was, broken) {
            (false, true) => {
                tracing::error!("{NOT_DELIVERED}; caches are off and /readyz answers 503")
            }
            (true, false) => tracing::info!("notifications are delivered again"),
            _ => {}
        }
    }
}

/// Why [`check_delivery`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{NOT_DELIVERED}")]
    NotDelivered,
    #[error("database unreachable: {0}")]
    Db(String),
}

/// At start: proves that a notification sent on one connection is heard
/// on another, within `within`.
pub async fn check_delivery(
    connections: &Connections,
    within: Duration,
) -> Result<(), DeliveryError> {
    let db = |e: tokio_postgres::Error| DeliveryError::Db(crate::db::describe_pg_error(&e));
    let mut listening = Listening::open(connections, &Arc::from(Vec::new()))
        .await
        .map_err(db)?;
    let sender = connections.connect_app().await.map_err(|e| match e {
        crate::db::DbError::Unreachable(reason) => DeliveryError::Db(reason),
        other => DeliveryError::Db(other.to_string()),
    })?;
    let heard = listening
        .round_trip(
            |nonce| async move { send_probe(&sender, &nonce).await },
            within,
        )
        .await
        .map_err(db)?;
    listening.driver.abort();
    if heard {
        Ok(())
    } else {
        Err(DeliveryError::NotDelivered)
    }
}

/// Keeps the connection open for as long as the server runs, reconnecting
/// with backoff; probes delivery through `pool`.
pub async fn listen(
    connections: Connections,
    pool: deadpool_postgres::Pool,
    delivery: Arc<Delivery>,
    subscribers: Vec<Arc<dyn Subscriber>>,
) {
    let subscribers: Arc<[Arc<dyn Subscriber>]> = subscribers.into();
    let mut backoff = Duration::from_millis(250);
    let mut after_outage = false;
    loop {
        match listen_once(&connections, &pool, &subscribers, &delivery, after_outage).await {
            Ended::Closed => {
                tracing::warn!(
                    "the cache invalidation connection closed; caches are off until it is back"
                );
                backoff = Duration::from_millis(250);
            }
            Ended::Failed(e) => tracing::warn!(
                error = %crate::db::describe_pg_error(&e),
                "the cache invalidation connection failed; caches are off until it is back"
            ),
            Ended::StoppedAnswering => {
                tracing::warn!("the cache invalidation connection stopped answering")
            }
            // Logged by `Delivery` when it changes.
            Ended::NotDelivered => {}
        }
        for s in subscribers.iter() {
            s.connected(false);
        }
        after_outage = true;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// How one connection's life ended.
enum Ended {
    Closed,
    Failed(tokio_postgres::Error),
    StoppedAnswering,
    NotDelivered,
}

async fn listen_once(
    connections: &Connections,
    pool: &deadpool_postgres::Pool,
    subscribers: &Arc<[Arc<dyn Subscriber>]>,
    delivery: &Delivery,
    after_outage: bool,
) -> Ended {
    let mut listening = match Listening::open(connections, subscribers).await {
        Ok(l) => l,
        Err(e) => return Ended::Failed(e),
    };
    // Only what is read from now on can be trusted to be cleared — once
    // notifications are shown to arrive.
    let mut up = false;
    let mut probe = tokio::time::interval(PROBE_EVERY);
    loop {
        tokio::select! {
            ended = &mut listening.driver => {
                return match ended {
                    Ok(Ok(())) | Err(_) => Ended::Closed,
                    Ok(Err(e)) => Ended::Failed(e),
                };
            }
            _ = probe.tick() => {
                // A connection dropped silently (a firewall's idle timeout)
                // would leave the caches live but deaf.
                let answered = tokio::time::timeout(
                    PROBE_EVERY,
                    listening.client.simple_query("SELECT 1"),
                )
                .await;
                match answered {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        listening.driver.abort();
                        return Ended::Failed(e);
                    }
                    Err(_) => {
                        listening.driver.abort();
                        return Ended::StoppedAnswering;
                    }
                }
                let sent = listening
                    .round_trip(
                        |nonce| async move {
                            let client = pool.get().await.map_err(|e| match e {
                                deadpool_postgres::PoolError::Backend(e) => Some(e),
                                _ => None,
                            })?;
                            send_probe(&client, &nonce).await.map_err(Some)
                        },
                        PROBE_EVERY,
                    )
                    .await;
                match sent {
                    Ok(true) => {
                        delivery.set_broken(false);
                        if !up {
                            up = true;
                            for s in subscribers.iter() {
                                s.connected(true);
                            }
                            if after_outage {
                                tracing::info!(
                                    "the cache invalidation connection is back; caches are on again"
                                );
                            } else {
                                tracing::debug!("cache invalidation connection listening");
                            }
                        }
                    }
                    Ok(false) => {
                        delivery.set_broken(true);
                        listening.driver.abort();
                        return Ended::NotDelivered;
                    }
                    // The pool has no connection now: the database probe and
                    // /readyz report that; try again next round.
                    Err(_) => {}
                }
            }
        }
    }
}

async fn send_probe(
    client: &tokio_postgres::Client,
    nonce: &str,
) -> Result<(), tokio_postgres::Error> {
    Sql::execute(
        &client,
        "SELECT pg_notify($1, $2)",
        &[&PROBE_CHANNEL, &nonce],
    )
    .await
    .map(|_| ())
}

/// An open connection that listens, its driver task, and the probe
/// payloads of this process it has heard.
struct Listening {
    client: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    heard: mpsc::Receiver<String>,
}

/// This process's probe payloads start with this (other replicas hear them
/// too, and ignore them).
/// The `application_name` of every replica's `LISTEN` connection: one per
/// running server, which is how `diagnose` counts the replicas.
pub const LISTENER_APPLICATION_NAME: &str = "mogothrow77 listener";

fn probe_prefix() -> String {
    format!("{}-{}-", std::process::id(), process_start_nanos())
}

fn process_start_nanos() -> u128 {
    static START: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    })
}

impl Listening {
    async fn open(
        connections: &Connections,
        subscribers: &Arc<[Arc<dyn Subscriber>]>,
    ) -> Result<Listening, tokio_postgres::Error> {
        let mut config = connections.app.clone();
        config.application_name(LISTENER_APPLICATION_NAME);
        let (client, mut connection) = config.connect(connections.tls.clone()).await?;
        let (tell, heard) = mpsc::channel(16);
        let subscribers = subscribers.clone();
        let prefix = probe_prefix();
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) if n.channel() == PROBE_CHANNEL => {
                        if n.payload().starts_with(&prefix) {
                            let _ = tell.try_send(n.payload().to_string());
                        }
                    }
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        for s in subscribers.iter() {
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
        if let Err(e) = Sql::batch_execute(&client, &statements).await {
            driver.abort();
            return Err(e);
        }
        Ok(Listening {
            client,
            driver,
            heard,
        })
    }

    /// Sends a probe with `send` and waits up to `within` to hear it:
    /// `Ok(false)` when it was sent but never came back.
    async fn round_trip<F, Fut, E>(&mut self, send: F, within: Duration) -> Result<bool, E>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        static SENT: AtomicU64 = AtomicU64::new(0);
        let nonce = format!("{}{}", probe_prefix(), SENT.fetch_add(1, Ordering::Relaxed));
        send(nonce.clone()).await?;
        let wait = async {
            while let Some(payload) = self.heard.recv().await {
                if payload == nonce {
                    return true;
                }
            }
            false
        };
        Ok(tokio::time::timeout(within, wait).await.unwrap_or(false))
    }
}
