//! [`Progress`]: a live view of a running sweep's counts, for a progress display. The
//! command line prints it on a terminal; Lambda and piped runs print only their report.

use std::sync::Arc;
use std::time::Duration;

use crate::tally::Tally;

/// A running sweep's counts, shared with whoever displays them. Give the same `Progress`
/// to [`Sweeper::run_with_progress`](crate::Sweeper::run_with_progress) and read
/// [`Progress::snapshot`] from another task.
#[derive(Debug, Clone, Default)]
pub struct Progress(pub(crate) Arc<Tally>);

/// The counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// Items DynamoDB evaluated.
    pub scanned: u64,
    /// Well-formed sessions found expired.
    pub expired_found: u64,
    /// Items deleted.
    pub deleted: u64,
    /// Read capacity units consumed.
    pub read_units: f64,
}

impl Progress {
    /// The counts now.
    pub fn snapshot(&self) -> Snapshot {
        let t = &self.0;
        Snapshot {
            scanned: Tally::get(&t.scanned),
            expired_found: Tally::get(&t.expired_found),
            deleted: Tally::get(&t.deleted),
            read_units: t.read_units(),
        }
    }
}

impl Snapshot {
    /// One line for a terminal: the counts `elapsed` into the run, and the delete rate
    /// since `previous`, taken `interval` ago.
    pub fn line(&self, previous: &Snapshot, interval: Duration, elapsed: Duration) -> String {
        let seconds = interval.as_secs_f64();
        let rate = if seconds > 0.0 {
            self.deleted.saturating_sub(previous.deleted) as f64 / seconds
        } else {
            0.0
        };
        let total = elapsed.as_secs();
        format!(
            "sweeper: {}:{:02} scanned {}, expired {}, deleted {} ({rate:.0}/s), read units {:.1}",
            total / 60,
            total % 60,
            self.scanned,
            self.expired_found,
            self.deleted,
            self.read_units,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_shows_counts_and_the_recent_delete_rate() {
        let progress = Progress::default();
        let before = progress.snapshot();
        Tally::add(&progress.0.scanned, 12_000);
        Tally::add(&progress.0.expired_found, 5_000);
        Tally::add(&progress.0.deleted, 4_000);
        progress.0.read(None);
        let now = progress.snapshot();
        assert_eq!(
            now.line(&before, Duration::from_secs(2), Duration::from_secs(125)),
            "sweeper: 2:05 scanned 12000, expired 5000, deleted 4000 (2000/s), read units 0.0"
        );
        assert!(
            now.line(&now, Duration::ZERO, Duration::ZERO)
                .contains("(0/s)")
        );
    }
}
