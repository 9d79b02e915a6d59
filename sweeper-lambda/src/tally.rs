//! [`Tally`]: the live counters of one sweep, shared by every task that does its work.
//!
//! The lowest layer of the engine: the calls that scan, delete, retry and checkpoint add
//! to it as things happen, so a sweep cut short still reports what it did. The engine
//! reads it once, at the end, into the [`crate::SweepReport`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many distinct problems a sweep reports in full; the counters count them all.
const MAX_NOTES: usize = 10;

/// Counters shared by the segment tasks of one sweep.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub scanned: AtomicU64,
    pub expired_found: AtomicU64,
    pub deleted: AtomicU64,
    pub skipped_live: AtomicU64,
    pub already_gone: AtomicU64,
    pub malformed_skipped: AtomicU64,
    pub throttled_retries: AtomicU64,
    pub retries: AtomicU64,
    pub pages: AtomicU64,
    pub expires_in_millis: AtomicU64,
    pub expires_far_future: AtomicU64,
    pub statement_errors: AtomicU64,
    pub checkpoint_discarded: AtomicU64,
    notes: Mutex<Vec<String>>,
}

impl Tally {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Keeps a problem to report (the first [`MAX_NOTES`] distinct ones).
    pub(crate) fn note(&self, problem: String) {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        if notes.len() < MAX_NOTES && !notes.contains(&problem) {
            notes.push(problem);
        }
    }

    /// The problems kept by [`Tally::note`], in order.
    pub(crate) fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Counts one retry, and whether throttling caused it.
    pub(crate) fn retried(&self, throttled: bool) {
        Self::add(&self.retries, 1);
        if throttled {
            Self::add(&self.throttled_retries, 1);
        }
    }
}
