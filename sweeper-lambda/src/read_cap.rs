//! The read-unit caps, both in one place: what a sweep may read, per second and per run.
//!
//! - `max_read_units_per_second` (`SWEEP_MAX_READ_UNITS_PER_SECOND`, 0 for none) paces the
//!   scan: each page's read units, as DynamoDB reported them, are paid for (a `pace`
//!   limiter, in half units, a tenth of a second's burst) before that segment scans on.
//!   When paying would wait past the work deadline, nothing waits and **no further page
//!   starts** in this run: the cap holds to the end, where it protects a provisioned
//!   table the most.
//! - `max_read_units` (`SWEEP_MAX_READ_UNITS`, 0 for none) is the run's read budget: no
//!   page starts once the units consumed reach it, and the run checkpoints and stops.
//!
//! The units come from [`Tally::read`](crate::tally::Tally), which ignores what a server
//! could report but DynamoDB never does (NaN, infinite or negative units) and bounds one
//! call's units, so no report can stall or overflow the pacer.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::budget::Budget;
use crate::config::SweepConfig;
use crate::pace::Pacer;

/// The read caps of one sweep, shared by its segments.
#[derive(Debug)]
pub(crate) struct ReadCaps {
    /// The per-second cap, in half units (DynamoDB's smallest read).
    pacer: Pacer,
    /// The run's read budget; 0 for none.
    run_budget: u64,
    /// A payment was refused for lack of time: no page starts after it.
    refused: AtomicBool,
}

impl ReadCaps {
    /// The caps `config` sets.
    pub(crate) fn new(config: &SweepConfig) -> Self {
        let halves_per_second = config.max_read_units_per_second().saturating_mul(2);
        Self {
            pacer: Pacer::with_burst(halves_per_second, halves_per_second / 10),
            run_budget: config.max_read_units(),
            refused: AtomicBool::new(false),
        }
    }

    /// Whether another page may start, `consumed` read units into the run.
    pub(crate) fn allow_page(&self, consumed: f64) -> bool {
        !self.refused.load(Ordering::Relaxed)
            && (self.run_budget == 0 || consumed < self.run_budget as f64)
    }

    /// Pays for a page's `units` under the per-second cap, waiting as needed. A wait that
    /// would end past `budget`'s deadline is not started, and then no page starts again.
    pub(crate) async fn pay(&self, units: f64, budget: &Budget) {
        // `units` is finite and bounded (see the module docs): the cast cannot saturate.
        let halves = (units.max(0.0) * 2.0).ceil() as usize;
        if !self.pacer.acquire(halves, budget).await {
            self.refused.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_refused_payment_stops_every_later_page() {
        let caps = ReadCaps::new(&SweepConfig::new("t").with_max_read_units_per_second(10));
        let budget = Budget::for_duration(Duration::from_secs(2));
        assert!(caps.allow_page(0.0));
        // 10 units a second: 20 units fit in the 2 s left, 100 more do not.
        caps.pay(10.0, &budget).await;
        assert!(caps.allow_page(10.0));
        caps.pay(100.0, &budget).await;
        assert!(!caps.allow_page(10.0), "the cap holds to the end");
    }

    #[tokio::test(start_paused = true)]
    async fn payments_wait_for_exactly_twice_the_units_in_half_units() {
        // 10 units a second is 20 half units a second (a burst of 2): 15 units wait about
        // 1.4 s and fit in 2 s; 10 more would end near 2.4 s, past the deadline.
        let caps = ReadCaps::new(&SweepConfig::new("t").with_max_read_units_per_second(10));
        let budget = Budget::for_duration(Duration::from_secs(2));
        let started = tokio::time::Instant::now();
        caps.pay(15.0, &budget).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(1_300) && waited <= Duration::from_millis(1_500),
            "{waited:?}"
        );
        assert!(caps.allow_page(15.0));
        caps.pay(10.0, &budget).await;
        assert!(!caps.allow_page(15.0), "past the deadline: refused");
    }

    #[test]
    fn the_run_budget_stops_pages_once_spent() {
        let caps = ReadCaps::new(&SweepConfig::new("t").with_max_read_units(100));
        assert!(caps.allow_page(99.5));
        assert!(!caps.allow_page(100.0));
        let none = ReadCaps::new(&SweepConfig::new("t"));
        assert!(none.allow_page(f64::MAX));
    }
}
