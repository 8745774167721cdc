//! How many record queries one caller (API token, signed-in user or, when
//! anonymous, client address) may have running at once on this replica
//! (`api.max_concurrent_queries`): a few heavy filters in parallel would
//! otherwise keep the database busy for everyone until each hits the
//! statement timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Running queries per caller.
#[derive(Debug)]
pub struct QueryLimiter {
    /// 0: no limit.
    max: usize,
    running: Mutex<HashMap<String, usize>>,
}

/// A running query's place; given back when dropped.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<QueryLimiter>,
    key: String,
}

impl QueryLimiter {
    pub fn new(max: usize) -> Arc<QueryLimiter> {
        Arc::new(QueryLimiter {
            max,
            running: Mutex::new(HashMap::new()),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        match self.running.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A place for one more query of `key`, or `None` when it has `max`
    /// running.
    pub fn try_acquire(self: &Arc<Self>, key: &str) -> Option<Permit> {
        if self.max > 0 {
            let mut running = self.running();
            let n = running.entry(key.to_string()).or_insert(0);
            if *n >= self.max {
                return None;
            }
            *n += 1;
        }
        Some(Permit {
            limiter: self.clone(),
            key: key.to_string(),
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.limiter.max == 0 {
            return;
        }
        let mut running = self.limiter.running();
        if let Some(n) = running.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_caller_has_its_own_places() {
        let limiter = QueryLimiter::new(2);
        let a1 = limiter.try_acquire("a").expect("first");
        let _a2 = limiter.try_acquire("a").expect("second");
        assert!(limiter.try_acquire("a").is_none(), "a third is refused");
        let _b = limiter.try_acquire("b").expect("another caller");
        drop(a1);
        assert!(limiter.try_acquire("a").is_some(), "a place came back");
        let off = QueryLimiter::new(0);
        let many: Vec<_> = (0..100).filter_map(|_| off.try_acquire("a")).collect();
        assert_eq!(many.len(), 100);
    }
}
