//! Rendered JSON of read endpoints, kept while the node's state is unchanged.
//!
//! A catalog or health read of a 100-instance service builds a few hundred small JSON values;
//! load balancers and gateways ask the same question many times a second while nothing
//! changes. Each answer is keyed by what it depends on (the route, the service, the filters:
//! never the raw URL, so junk query parameters cannot make entries) and the snapshot's change
//! counter, so any change (registry or membership) makes every cached answer miss.
//!
//! Bounded in entries and in bytes (keys and bodies): past either bound the cache starts over
//! (a bound, not an LRU: the hot set of a registry's readers is small), and an answer larger
//! than [`ENTRY_BYTES_MAX`] is rendered every time rather than kept.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;

/// Distinct requests remembered.
pub const ENTRIES_MAX: usize = 512;
/// Bytes of keys and bodies remembered in all.
pub const BYTES_MAX: usize = 8 * 1024 * 1024;
/// Bytes of one key and body, past which an answer is not kept.
pub const ENTRY_BYTES_MAX: usize = 1024 * 1024;

#[derive(Debug, Default)]
pub struct ResponseCache {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_key: HashMap<String, (u64, Bytes)>,
    /// Sum of the keys' and bodies' lengths.
    bytes: usize,
}

impl ResponseCache {
    /// The cached body for `key` at `version`, or render it, remember it and return it.
    pub fn get_or_render(&self, key: &str, version: u64, render: impl FnOnce() -> Bytes) -> Bytes {
        if let Ok(entries) = self.inner.lock() {
            if let Some((v, body)) = entries.by_key.get(key) {
                if *v == version {
                    return body.clone();
                }
            }
        }
        let body = render();
        let size = key.len().saturating_add(body.len());
        if size > ENTRY_BYTES_MAX {
            return body;
        }
        if let Ok(mut entries) = self.inner.lock() {
            if let Some((_, old)) = entries.by_key.remove(key) {
                entries.bytes = entries.bytes.saturating_sub(key.len() + old.len());
            }
            if entries.by_key.len() >= ENTRIES_MAX || entries.bytes.saturating_add(size) > BYTES_MAX
            {
                entries.by_key.clear();
                entries.bytes = 0;
            }
            entries
                .by_key
                .insert(key.to_string(), (version, body.clone()));
            entries.bytes = entries.bytes.saturating_add(size);
        }
        body
    }

    /// Bytes of keys and bodies held now.
    pub fn bytes(&self) -> usize {
        self.inner.lock().map_or(0, |e| e.bytes)
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
        assert_eq!(cache.bytes(), "/a".len() + "two".len());
    }

    /// Issue 12, item 10: 511 keys of 60 KB each grew an idle node by 27 MB.
    #[test]
    fn bounded_in_bytes_not_only_entries() {
        let cache = ResponseCache::default();
        // An absolute figure, not BYTES_MAX: the test is of the bound, whatever it is set to.
        let ten_mib = 10 * 1024 * 1024;
        for n in 0..ENTRIES_MAX - 1 {
            let key = format!("{n}{}", "x".repeat(60 * 1024));
            cache.get_or_render(&key, 1, || Bytes::from_static(b"[]"));
            assert!(cache.bytes() <= ten_mib, "{} bytes", cache.bytes());
        }
        let huge = Bytes::from(vec![b' '; ENTRY_BYTES_MAX + 1]);
        let body = cache.get_or_render("big", 1, || huge.clone());
        assert_eq!(body.len(), huge.len(), "a big answer is still answered");
        assert!(cache.bytes() <= BYTES_MAX);
    }
}
