//! A per-replica cache of rows that are read on nearly every request and
//! change rarely (API tokens, collection catalogs: `app::Caches`).
//!
//! Caches stay true across replicas through PostgreSQL notifications:
//! triggers (migration V4) `NOTIFY` on every change that matters, in the
//! changing transaction, and the replica's one `LISTEN` connection
//! (`crate::listen`) clears the cache concerned. While that connection is
//! down a cache is bypassed ([`Cache::set_live`]), and an entry never
//! outlives [`TTL`], so a lost notification cannot keep a revoked token
//! working for long.
//!
//! A loader that read the database before a notification must not store
//! what it read after it: [`Cache::generation`] is taken before the read and
//! [`Cache::insert`] drops the value when a clear happened in between.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest an entry is served without reading the database again.
pub const TTL: Duration = Duration::from_secs(30);
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

impl<K: Eq + Hash, V: Clone> Default for Cache<K, V> {
    fn default() -> Cache<K, V> {
        Cache::new()
    }
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    pub fn new() -> Cache<K, V> {
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

    /// Used (true) or bypassed, forgetting every entry either way: true
    /// once the invalidation connection listens, false when it is lost.
    pub fn set_live(&self, live: bool) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.generation += 1;
        inner.live = live;
    }

    /// Whether the cache is used (its invalidations are heard).
    pub fn is_live(&self) -> bool {
        self.lock().live
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
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
