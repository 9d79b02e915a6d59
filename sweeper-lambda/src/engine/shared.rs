//! [`Run`]: the state every worker of one sweep shares, owned by the engine.
//!
//! The work queue (segments not yet started, with the cursor each resumes from), the ends
//! workers report, the page scan and the deleter prepared once for the sweep's cutoff, the
//! budget, and the live counters. Lower layers never see a `Run`: each call gets the
//! parts it needs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_sdk_dynamodb::Client;

use super::hook::PageHook;
use super::settle::SegmentEnd;
use crate::budget::Budget;
use crate::config::SweepConfig;
use crate::delete::Deleter;
use crate::pace::Pacer;
use crate::scan::{Cursor, PageScan};
use crate::tally::Tally;

/// Everything the workers of one sweep share.
pub(super) struct Run {
    pub(super) client: Client,
    pub(super) config: SweepConfig,
    pub(super) cutoff: i64,
    pub(super) budget: Budget,
    pub(super) tally: Tally,
    pub(super) scan: PageScan,
    pub(super) deleter: Deleter,
    /// The read-units-per-second cap, in half units (DynamoDB's smallest read).
    pub(super) read_pacer: Pacer,
    pub(super) hook: Arc<dyn PageHook>,
    queue: Mutex<VecDeque<(u32, Option<Cursor>)>>,
    ends: Mutex<Vec<(u32, SegmentEnd)>>,
}

impl Run {
    /// The shared state of a sweep of `queue`'s segments with `config` at `cutoff`,
    /// counting into `tally` (which may already hold the checkpoint read's retries).
    pub(super) fn new(
        client: &Client,
        config: &SweepConfig,
        cutoff: i64,
        budget: Budget,
        tally: Tally,
        hook: Arc<dyn PageHook>,
        queue: VecDeque<(u32, Option<Cursor>)>,
    ) -> Self {
        Self {
            client: client.clone(),
            config: config.clone(),
            cutoff,
            budget,
            tally,
            scan: PageScan::new(config.schema(), cutoff),
            deleter: Deleter::new(client.clone(), config, cutoff),
            read_pacer: Pacer::with_burst(
                config.max_read_units_per_second().saturating_mul(2),
                config.max_read_units_per_second().saturating_mul(2) / 10,
            ),
            hook,
            queue: Mutex::new(queue),
            ends: Mutex::new(Vec::new()),
        }
    }

    /// Claims the next page: `false` once the deadline, the page budget or the run's read
    /// budget is spent.
    pub(super) fn try_start_page(&self) -> bool {
        let budget = self.config.max_read_units();
        let reads_left = budget == 0 || self.tally.read_units() < budget as f64;
        reads_left && self.budget.try_start_page()
    }

    /// Pays for `read_units` under the read cap, before the segment scans on.
    pub(super) async fn pay_for_reads(&self, read_units: f64) {
        let halves = (read_units * 2.0).ceil() as usize;
        // A wait that would end past the deadline is not started; the next page is not
        // started either then.
        let _ = self.read_pacer.acquire(halves, &self.budget).await;
    }

    /// The next segment to sweep and where it resumes, if any is left.
    pub(super) fn next_segment(&self) -> Option<(u32, Option<Cursor>)> {
        lock(&self.queue).pop_front()
    }

    /// Records how `segment`'s work ended.
    pub(super) fn finish(&self, segment: u32, end: SegmentEnd) {
        lock(&self.ends).push((segment, end));
    }

    /// The ends recorded so far, taken out.
    pub(super) fn take_ends(&self) -> Vec<(u32, SegmentEnd)> {
        std::mem::take(&mut *lock(&self.ends))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
