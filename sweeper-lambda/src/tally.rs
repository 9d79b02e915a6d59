//! [`Tally`]: the live counters of one sweep, shared by every task that does its work.
//!
//! The lowest layer of the engine: the calls that scan, delete, retry and checkpoint add
//! to it as things happen, so a sweep cut short still reports what it did. The engine
//! reads it once, at the end, into the [`crate::SweepReport`].

use std::sync::Mutex;

use aws_sdk_dynamodb::types::ConsumedCapacity;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many distinct problems a sweep reports in full; the counters count them all.
const MAX_NOTES: usize = 10;

/// Counters shared by the segment tasks of one sweep.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub scanned: AtomicU64,
    pub expired_found: AtomicU64,
    pub deleted: AtomicU64,
    /// Items of delete requests that may have been applied without an answer.
    pub unconfirmed: AtomicU64,
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
    /// Read capacity units consumed, in thousandths (DynamoDB reports fractions).
    read_milli: AtomicU64,
    /// Write capacity units consumed, in thousandths.
    write_milli: AtomicU64,
    notes: Mutex<Vec<String>>,
}

impl Tally {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Adds what a call reported it consumed (`ReturnConsumedCapacity: TOTAL`), as read
    /// units.
    pub(crate) fn read(&self, consumed: Option<&ConsumedCapacity>) -> f64 {
        let units = capacity_units(consumed);
        Self::add(&self.read_milli, to_milli(units));
        units
    }

    /// Adds what a call reported it consumed, as write units.
    pub(crate) fn wrote(&self, consumed: Option<&ConsumedCapacity>) {
        Self::add(&self.write_milli, to_milli(capacity_units(consumed)));
    }

    /// Read units consumed so far.
    pub(crate) fn read_units(&self) -> f64 {
        Self::get(&self.read_milli) as f64 / 1000.0
    }

    /// Write units consumed so far.
    pub(crate) fn write_units(&self) -> f64 {
        Self::get(&self.write_milli) as f64 / 1000.0
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

/// The most units one call is taken to have consumed: far above anything DynamoDB
/// reports (a 1 MB scan page is 256 units; a 25-statement batch of 400 KB items 10,000),
/// so that no report, whatever a server sends, can overflow a total or stall the pacer.
pub(crate) const MAX_UNITS_PER_CALL: f64 = 1_000_000.0;

/// The units a `ConsumedCapacity` reports: its total, 0 when the server sent none or
/// something no count can be (NaN, infinite, negative), at most [`MAX_UNITS_PER_CALL`].
fn capacity_units(consumed: Option<&ConsumedCapacity>) -> f64 {
    consumed
        .and_then(ConsumedCapacity::capacity_units)
        .filter(|u| u.is_finite() && *u > 0.0)
        .map_or(0.0, |u| u.min(MAX_UNITS_PER_CALL))
}

fn to_milli(units: f64) -> u64 {
    (units * 1000.0).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_summed_exactly_in_halves() {
        let tally = Tally::default();
        let half = ConsumedCapacity::builder().capacity_units(0.5).build();
        for _ in 0..3 {
            assert_eq!(tally.read(Some(&half)), 0.5);
        }
        let twenty = ConsumedCapacity::builder().capacity_units(20.0).build();
        tally.wrote(Some(&twenty));
        tally.wrote(None);
        for nonsense in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -3.0] {
            let nonsense = ConsumedCapacity::builder().capacity_units(nonsense).build();
            assert_eq!(tally.read(Some(&nonsense)), 0.0);
        }
        assert_eq!(tally.read_units(), 1.5);
        // Huge but finite: bounded, and the totals never wrap.
        let huge = ConsumedCapacity::builder().capacity_units(1e300).build();
        let total = Tally::default();
        for _ in 0..1_000 {
            assert_eq!(total.read(Some(&huge)), MAX_UNITS_PER_CALL);
        }
        assert_eq!(total.read_units(), 1_000.0 * MAX_UNITS_PER_CALL);
        assert_eq!(tally.write_units(), 20.0);
    }
}
