//! Per-replica caches of rows that are read on nearly every request and
//! change rarely: API tokens and collection catalogs.
//!
//! They stay true across replicas through PostgreSQL notifications: triggers
//! (migration V4) `NOTIFY` on every change that matters, in the changing
//! transaction, and each replica keeps one `LISTEN` connection
//! ([`listen`]) that clears the cache concerned. While that connection is
//! down the caches are bypassed, and an entry never outlives [`TTL`], so a
//! lost notification cannot keep a revoked token working for long.
//!
//! A loader that read the database before a notification must not store
//! what it read after it: [`Cache::generation`] is taken before the read and
//! [`Cache::insert`] drops the value when a clear happened in between.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use crate::authz::Principal;
use crate::db::Connections;
use crate::records::Collection;

/// The channel for API tokens, their users and the MFA requirement.
pub const AUTH_CHANNEL: &str = "m77_auth";
/// The channel for collections and their fields.
pub const CATALOG_CHANNEL: &str = "m77_catalog";
/// Not a cache: jobs queued (V5), heard on the same connection to wake the
/// replica's idle workers (`crate::jobs::worker`).
pub const JOBS_CHANNEL: &str = "m77_jobs";

/// The longest an entry is served without reading the database again.
pub const TTL: Duration = Duration::from_secs(30);
/// How often the `LISTEN` connection is checked.
const PROBE_EVERY: Duration = Duration::from_secs(10);
/// Entries per cache; a full cache starts over.
const CAPACITY: usize = 4096;

/// A map whose entries expire after [`TTL`] and that is only used while
/// the replica hears the database's notifications.
pub struct Cache<K, V> {
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    entries: HashMap<K, (V, Instant)>,
    generation: u64,
    live: bool,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    fn new() -> Cache<K, V> {
        Cache {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                generation: 0,
                live: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        // A panic while holding the lock cannot leave the map half-changed
        // in a way that matters: every operation is a single map call.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value, when the cache is live and the entry younger than [`TTL`].
    pub fn get(&self, key: &K) -> Option<V> {
        let inner = self.lock();
        if !inner.live {
            return None;
        }
        inner
            .entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(v, _)| v.clone())
    }

    /// Taken before reading the database for [`Cache::insert`]; `None` when
    /// the cache is not live (what is read must not be stored).
    pub fn generation(&self) -> Option<u64> {
        let inner = self.lock();
        inner.live.then_some(inner.generation)
    }

    /// Stores what was read under `generation`, unless the cache was
    /// cleared since.
    pub fn insert(&self, generation: Option<u64>, key: K, value: V) {
        let mut inner = self.lock();
        if !inner.live || generation != Some(inner.generation) {
            return;
        }
        if inner.entries.len() >= CAPACITY {
            inner.entries.clear();
        }
        inner.entries.insert(key, (value, Instant::now()));
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.generation += 1;
    }

    fn set_live(&self, live: bool) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.generation += 1;
        inner.live = live;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// What an API token's digest authenticates: the caller, and whether the
/// caller must still enrol in MFA; with the token's expiry.
#[derive(Clone)]
pub struct CachedToken {
    pub principal: Principal,
    pub mfa_enrolment_pending: bool,
    pub expires_at: Option<time::OffsetDateTime>,
}

/// The replica's caches.
pub struct Caches {
    /// API tokens by the SHA-256 digest of their secret.
    pub tokens: Cache<Vec<u8>, CachedToken>,
    /// Collections (visible fields) by name.
    pub catalog: Cache<String, Arc<Collection>>,
}

impl Caches {
    pub fn new() -> Arc<Caches> {
        Arc::new(Caches {
            tokens: Cache::new(),
            catalog: Cache::new(),
        })
    }

    /// Forgets everything: after a change made through this replica, which
    /// must be visible to its next request before the notification arrives.
    pub fn clear(&self) {
        self.tokens.clear();
        self.catalog.clear();
    }

    fn set_live(&self, live: bool) {
        self.tokens.set_live(live);
        self.catalog.set_live(live);
    }

    /// Whether the invalidation listener is connected (the caches are used).
    pub fn is_live(&self) -> bool {
        self.tokens.lock().live
    }

    fn notified(&self, channel: &str) {
        match channel {
            AUTH_CHANNEL => self.tokens.clear(),
            CATALOG_CHANNEL => self.catalog.clear(),
            _ => {}
        }
    }
}

/// Keeps one `LISTEN` connection open for as long as the server runs,
/// reconnecting with backoff; the caches are live only while it is up.
/// Queued jobs wake `jobs` (also on every reconnection, for what was
/// queued meanwhile).
pub async fn listen(connections: Connections, caches: Arc<Caches>, jobs: Arc<Notify>) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match listen_once(&connections, &caches, &jobs).await {
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
        caches.set_live(false);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn listen_once(
    connections: &Connections,
    caches: &Arc<Caches>,
    jobs: &Arc<Notify>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = connections.app.connect(connections.tls.clone()).await?;
    let driver_caches = caches.clone();
    let driver_jobs = jobs.clone();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == JOBS_CHANNEL => {
                    driver_jobs.notify_waiters()
                }
                Some(Ok(AsyncMessage::Notification(n))) => driver_caches.notified(n.channel()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    client
        .batch_execute(&format!(
            "LISTEN {AUTH_CHANNEL}; LISTEN {CATALOG_CHANNEL}; LISTEN {JOBS_CHANNEL}"
        ))
        .await?;
    // Only what is read from now on can be trusted to be cleared.
    caches.set_live(true);
    jobs.notify_waiters();
    tracing::debug!("cache invalidation connection listening");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_not_live_stores_nothing() {
        let c: Cache<u8, u8> = Cache::new();
        let g = c.generation();
        assert_eq!(g, None);
        c.insert(g, 1, 1);
        assert_eq!(c.get(&1), None);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_read_from_before_a_clear_is_not_stored() {
        let c: Cache<u8, u8> = Cache::new();
        c.set_live(true);
        let before = c.generation();
        c.clear();
        c.insert(before, 1, 1);
        assert_eq!(c.get(&1), None);
        let after = c.generation();
        c.insert(after, 1, 2);
        assert_eq!(c.get(&1), Some(2));
        c.clear();
        assert_eq!(c.get(&1), None);
    }

    #[test]
    fn going_offline_forgets_and_bypasses() {
        let c: Cache<u8, u8> = Cache::new();
        c.set_live(true);
        c.insert(c.generation(), 1, 1);
        c.set_live(false);
        assert_eq!(c.get(&1), None);
        c.set_live(true);
        assert_eq!(c.get(&1), None, "entries from before do not come back");
    }

    #[test]
    fn a_full_cache_starts_over() {
        let c: Cache<usize, usize> = Cache::new();
        c.set_live(true);
        for i in 0..=CAPACITY {
            c.insert(c.generation(), i, i);
        }
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&CAPACITY), Some(CAPACITY));
    }
}
