//! Rendered JSON of read endpoints, kept while the node's state is unchanged.
//!
//! A catalog or health read of a 100-instance service builds a few hundred small JSON values;
//! load balancers and gateways ask the same question many times a second while nothing
//! changes. Each answer is keyed by the request and the snapshot's change counter, so any
//! change (registry or membership) makes every cached answer miss.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;

/// Distinct requests remembered; past this the cache starts over (a bound, not an LRU: the
/// hot set of a registry's readers is small).
const ENTRIES_MAX: usize = 512;

#[derive(Debug, Default)]
pub struct ResponseCache {
    entries: Mutex<HashMap<String, (u64, Bytes)>>,
}

impl ResponseCache {
    /// The cached body for `key` at `version`, or render it, remember it and return it.
    pub fn get_or_render(&self, key: &str, version: u64, render: impl FnOnce() -> Bytes) -> Bytes {
        if let Ok(entries) = self.entries.lock() {
            if let Some((v, body)) = entries.get(key) {
                if *v == version {
                    return body.clone();
                }
            }
        }
        let body = render();
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= ENTRIES_MAX {
                entries.clear();
            }
            entries.insert(key.to_string(), (version, body.clone()));
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_once_per_version() {
        let cache = ResponseCache::default();
        let mut renders = 0;
        for _ in 0..3 {
            cache.get_or_render("/a", 1, || {
                renders += 1;
                Bytes::from_static(b"one")
            });
        }
        assert_eq!(renders, 1);
        let body = cache.get_or_render("/a", 2, || Bytes::from_static(b"two"));
        assert_eq!(&body[..], b"two");
    }
}
