//! [`Run`]: the state every worker of one sweep shares, owned by the engine.
//!
//! The work queue (segments not yet started, with the cursor each resumes from), the ends
//! workers report, the page scan and the deleter prepared once for the sweep's cutoff, the
//! budget, and the live counters. Lower layers never see a `Run`: each call gets the
//! parts it needs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_sdk_dynamodb::Client;

use super::Hook;
use super::settle::SegmentEnd;
use crate::budget::Budget;
use crate::config::SweepConfig;
use crate::delete::Deleter;
use crate::read_cap::ReadCaps;
use crate::scan::{Cursor, PageScan};
use crate::tally::Tally;

/// Everything the workers of one sweep share.
pub(super) struct Run {
    pub(super) client: Client,
    pub(super) config: SweepConfig,
    pub(super) cutoff: i64,
    pub(super) budget: Budget,
    pub(super) tally: Arc<Tally>,
    pub(super) scan: PageScan,
    pub(super) deleter: Deleter,
    /// The read-unit caps, per second and per run.
    pub(super) reads: ReadCaps,
    #[cfg(feature = "testing")]
    pub(super) hook: Hook,
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
        tally: Arc<Tally>,
        hook: Hook,
        queue: VecDeque<(u32, Option<Cursor>)>,
    ) -> Self {
        #[cfg(not(feature = "testing"))]
        let Hook = hook;
        Self {
            client: client.clone(),
            config: config.clone(),
            cutoff,
            budget,
            tally,
            scan: PageScan::new(config.schema(), cutoff),
            deleter: Deleter::new(client.clone(), config, cutoff),
            reads: ReadCaps::new(config),
            #[cfg(feature = "testing")]
            hook,
            queue: Mutex::new(queue),
            ends: Mutex::new(Vec::new()),
        }
    }

    /// Claims the next page: `false` once the deadline, the page budget or a read cap
    /// says stop.
    pub(super) fn try_start_page(&self) -> bool {
        self.reads.allow_page(self.tally.read_units()) && self.budget.try_start_page()
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
