//! The agents' answer cache: a value per key until its time is up, bounded
//! in size (past the bound it starts over, so a flood of distinct keys
//! cannot grow it without end). Shared by DNS lists, callouts and LDAP.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most answers kept.
const MAX_CACHED: usize = 100_000;

pub struct TtlCache<V> {
    entries: Mutex<HashMap<String, (V, Instant)>>,
}

impl<V> Default for TtlCache<V> {
    fn default() -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> TtlCache<V> {
    /// The value kept for `key`, if its time is not up.
    pub fn get(&self, key: &str) -> Option<V> {
        let entries = self.entries.lock().expect("not poisoned");
        entries
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v.clone())
    }

    /// Keeps `value` for `key` for `ttl`.
    pub fn put(&self, key: String, value: V, ttl: Duration) {
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.len() >= MAX_CACHED {
            entries.clear();
        }
        entries.insert(key, (value, Instant::now() + ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expire_and_the_cache_stays_bounded() {
        let c = TtlCache::default();
        c.put("a".into(), 1, Duration::from_secs(60));
        c.put("b".into(), 2, Duration::ZERO);
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("b"), None);
        for i in 0..MAX_CACHED + 1 {
            c.put(i.to_string(), 0, Duration::from_secs(60));
        }
        assert!(c.entries.lock().unwrap().len() <= MAX_CACHED);
    }
}
