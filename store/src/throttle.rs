//! Write throttling: whether a save needs a full put, an expiry-only touch, or nothing.
//!
//! The decision is a pure function, [`plan`], of what this process last saw in the table
//! for the session (from its own write or its own read), the new record, and `touch_after`.
//! [`WriteCache`] remembers that state for a bounded number of sessions (least recently used
//! are forgotten first; forgetting only costs one extra write).

use std::hash::BuildHasher;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

/// What this process last knew to be in the table for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Fingerprint of the data JSON.
    pub data_hash: u64,
    /// Expiry, epoch seconds.
    pub expires: i64,
}

/// What a save should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Write the whole item.
    Put,
    /// Update only the expiry.
    Touch,
    /// Write nothing: data unchanged and the expiry moved by less than `touch_after`.
    Skip,
}

/// Decides how to save `next` given what was last seen.
pub(crate) fn plan(last: Option<Seen>, next: Seen, touch_after_secs: i64) -> Plan {
    match last {
        None => Plan::Put,
        Some(last) if last.data_hash != next.data_hash => Plan::Put,
        // `abs_diff`: total for any stored expiries (a subtraction of extremes overflows).
        Some(last) if next.expires.abs_diff(last.expires) < touch_after_secs.unsigned_abs() => {
            Plan::Skip
        }
        Some(_) => Plan::Touch,
    }
}

/// Fingerprints of session data JSON: a fast 64-bit hash (foldhash, several GB/s, so a
/// 100 KB session costs microseconds, where SipHash cost a measurable share of a round
/// trip), seeded at random per store so that nobody can craft colliding data.
#[derive(Debug, Clone)]
pub(crate) struct Fingerprinter {
    state: foldhash::quality::RandomState,
}

impl Fingerprinter {
    pub(crate) fn new() -> Self {
        Self {
            state: foldhash::quality::RandomState::default(),
        }
    }

    /// Fingerprint of a session's data JSON.
    pub(crate) fn fingerprint(&self, data_json: &str) -> u64 {
        self.state.hash_one(data_json)
    }
}

/// Bounded memory of [`Seen`] per table key, with the fingerprinter its hashes come from
/// (fingerprints are only comparable under the same seed, so the two live together).
pub(crate) struct WriteCache {
    entries: Mutex<LruCache<String, Seen>>,
    fingerprints: Fingerprinter,
}

impl std::fmt::Debug for WriteCache {
    // Only the size: the keys are session ids, which must not reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteCache")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl WriteCache {
    pub(crate) fn new(capacity: NonZeroUsize) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            fingerprints: Fingerprinter::new(),
        }
    }

    /// What a session with this data JSON and expiry looks like to this cache.
    pub(crate) fn seen(&self, data_json: &str, expires: i64) -> Seen {
        Seen {
            data_hash: self.fingerprints.fingerprint(data_json),
            expires,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Seen>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, key: &str) -> Option<Seen> {
        self.lock().get(key).copied()
    }

    pub(crate) fn record(&self, key: &str, seen: Seen) {
        let mut entries = self.lock();
        if let Some(slot) = entries.get_mut(key) {
            *slot = seen;
        } else {
            entries.put(key.to_owned(), seen);
        }
    }

    pub(crate) fn forget(&self, key: &str) {
        self.lock().pop(key);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOUCH_AFTER: i64 = 10;

    fn seen(hash: u64, expires: i64) -> Seen {
        Seen {
            data_hash: hash,
            expires,
        }
    }

    #[test]
    fn first_save_is_a_put() {
        assert_eq!(plan(None, seen(1, 100), TOUCH_AFTER), Plan::Put);
    }

    #[test]
    fn changed_data_is_a_put_even_within_the_window() {
        assert_eq!(
            plan(Some(seen(1, 100)), seen(2, 100), TOUCH_AFTER),
            Plan::Put
        );
    }

    #[test]
    fn unchanged_data_within_the_window_is_skipped() {
        assert_eq!(
            plan(Some(seen(1, 100)), seen(1, 109), TOUCH_AFTER),
            Plan::Skip
        );
        assert_eq!(
            plan(Some(seen(1, 100)), seen(1, 100), TOUCH_AFTER),
            Plan::Skip
        );
    }

    #[test]
    fn unchanged_data_past_the_window_is_a_touch() {
        assert_eq!(
            plan(Some(seen(1, 100)), seen(1, 110), TOUCH_AFTER),
            Plan::Touch
        );
        // An expiry moved back (e.g. `Expiry::AtDateTime` shortened) is written too.
        assert_eq!(
            plan(Some(seen(1, 100)), seen(1, 50), TOUCH_AFTER),
            Plan::Touch
        );
    }

    #[test]
    fn zero_touch_after_disables_throttling_of_touches() {
        assert_eq!(plan(Some(seen(1, 100)), seen(1, 100), 0), Plan::Touch);
    }

    #[test]
    fn extreme_stored_expiries_never_overflow() {
        // A stored expiry written by someone else can be anything an i64 holds.
        assert_eq!(
            plan(Some(seen(1, i64::MIN)), seen(1, i64::MAX), TOUCH_AFTER),
            Plan::Touch
        );
        assert_eq!(
            plan(Some(seen(1, i64::MAX)), seen(1, i64::MIN), i64::MAX),
            Plan::Touch
        );
        assert_eq!(
            plan(Some(seen(1, i64::MAX)), seen(1, i64::MAX - 1), i64::MAX),
            Plan::Skip
        );
    }

    #[test]
    fn the_cache_debugs_its_size_never_its_keys() {
        let cache = WriteCache::new(NonZeroUsize::new(4).unwrap());
        cache.record("session-secret-id", seen(1, 1));
        let text = format!("{cache:?}");
        assert!(text.contains("len: 1"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn cache_is_bounded() {
        let cache = WriteCache::new(NonZeroUsize::new(2).unwrap());
        cache.record("a", seen(1, 1));
        cache.record("b", seen(1, 1));
        cache.record("c", seen(1, 1));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("c"), Some(seen(1, 1)));
        cache.forget("c");
        assert_eq!(cache.get("c"), None);
    }

    #[test]
    fn fingerprints_differ_for_different_data() {
        let f = Fingerprinter::new();
        assert_ne!(f.fingerprint(r#"{"n":1}"#), f.fingerprint(r#"{"n":2}"#));
        assert_eq!(f.fingerprint(r#"{"n":1}"#), f.fingerprint(r#"{"n":1}"#));
        let big = "x".repeat(100 * 1024);
        assert_ne!(f.fingerprint(&big), f.fingerprint(&big[1..]));
    }
}
