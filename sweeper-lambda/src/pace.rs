//! The optional caps, shared by every segment of a sweep: deletes per second, and read
//! capacity units per second.
//!
//! A GCRA limiter from `governor`: requests wait for permits, never fail. For deletes the
//! burst is one second's worth, so a 25-statement batch waits for 25 permits (in pieces
//! when the cap is below 25 a second). For reads the engine pays for each scanned page's
//! units, in half units, with a burst of a tenth of a second, so the measured rate stays
//! close to the cap. A wait that would end past the budget's deadline
//! is not started: the pacer says stop at once, leaving the time for the checkpoint.
//!
//! Time is tokio's, through [`TokioClock`]: the same clock the budget's deadline is on,
//! real in production and paused in tests (`start_paused`), so a pacer and a deadline
//! can be tested together without sleeping on the wall clock. The pacer's own tests run
//! on governor's `FakeRelativeClock`.

use std::future::Future;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::budget::Budget;

/// A governor clock the pacer can wait on.
pub(crate) trait PaceClock: Clock + Send + Sync {
    /// Waits until `by` has passed on this clock.
    fn wait(&self, by: Duration) -> impl Future<Output = ()> + Send;
}

/// governor's clock on tokio's time, counted from when the clock was made.
#[derive(Debug, Clone)]
pub(crate) struct TokioClock {
    start: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        Self {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.start.elapsed())
    }
}

impl PaceClock for TokioClock {
    async fn wait(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
}

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Paces permits (deletes, or half read units); a no-op without a cap.
#[derive(Debug)]
pub(crate) struct Pacer<C: PaceClock = TokioClock> {
    limiter: Option<Limiter<C>>,
    burst: u32,
    clock: C,
}

impl Pacer {
    /// At most `per_second` permits a second, a second's worth at once; 0 for no cap.
    pub(crate) fn new(per_second: u32) -> Self {
        Self::with_clock(per_second, TokioClock::default())
    }

    /// At most `per_second` permits a second, `burst` (at least 1) at once; 0 for no cap.
    /// A small burst keeps the measured rate close to the cap over a short run.
    pub(crate) fn with_burst(per_second: u32, burst: u32) -> Self {
        Self::with_clock_and_burst(per_second, burst.max(1), TokioClock::default())
    }
}

impl<C: PaceClock + Clone> Pacer<C> {
    /// [`Pacer::new`] on `clock`.
    pub(crate) fn with_clock(per_second: u32, clock: C) -> Self {
        Self::with_clock_and_burst(per_second, per_second, clock)
    }

    /// [`Pacer::with_burst`] on `clock`.
    pub(crate) fn with_clock_and_burst(per_second: u32, burst: u32, clock: C) -> Self {
        let burst = burst.clamp(1, per_second.max(1));
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let quota = Quota::per_second(rate)
                .allow_burst(NonZeroU32::new(burst).expect("the burst is at least 1"));
            RateLimiter::direct_with_clock(quota, clock.clone())
        });
        Self {
            limiter,
            burst,
            clock,
        }
    }

    /// Waits until `n` deletes may be sent. Returns `false`, having waited for nothing,
    /// when the next wait would end at or after the budget's deadline.
    pub(crate) async fn acquire(&self, n: usize, budget: &Budget) -> bool {
        let Some(limiter) = &self.limiter else {
            return true;
        };
        let mut left = u32::try_from(n).unwrap_or(u32::MAX);
        while let Some(step) = NonZeroU32::new(left.min(self.burst)) {
            match limiter.check_n(step) {
                Ok(Ok(())) => left -= step.get(),
                Ok(Err(not_until)) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    if !budget.leaves_time_for(wait) {
                        return false;
                    }
                    self.clock.wait(wait).await;
                }
                // More than the burst at once: `step` never is.
                Err(_) => unreachable!("a step is at most the burst"),
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    impl PaceClock for FakeRelativeClock {
        async fn wait(&self, by: Duration) {
            self.advance(by);
        }
    }

    /// How far `clock` has moved since it was made.
    fn elapsed(clock: &FakeRelativeClock) -> Duration {
        clock.now().into()
    }

    #[tokio::test]
    async fn cap_spreads_deletes_over_time() {
        // 100 a second with a burst of 100: the first 100 go at once, 50 more take 0.5 s.
        let clock = FakeRelativeClock::default();
        let pacer = Pacer::with_clock(100, clock.clone());
        assert!(pacer.acquire(100, &Budget::unlimited()).await);
        assert_eq!(elapsed(&clock), Duration::ZERO);
        assert!(pacer.acquire(50, &Budget::unlimited()).await);
        assert_eq!(elapsed(&clock), Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_burst_goes_in_pieces() {
        // 10 a second: 25 deletes are 10 now, 10 after 1 s and 5 after another 0.5 s.
        let clock = FakeRelativeClock::default();
        let pacer = Pacer::with_clock(10, clock.clone());
        assert!(pacer.acquire(25, &Budget::unlimited()).await);
        assert_eq!(elapsed(&clock), Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn a_small_burst_spreads_even_the_first_permits() {
        // 100 a second, 10 at once: 100 permits take 0.9 s, not 0.
        let clock = FakeRelativeClock::default();
        let pacer = Pacer::with_clock_and_burst(100, 10, clock.clone());
        assert!(pacer.acquire(100, &Budget::unlimited()).await);
        assert_eq!(elapsed(&clock), Duration::from_millis(900));
    }

    #[tokio::test]
    async fn zero_is_no_cap() {
        let clock = FakeRelativeClock::default();
        let pacer = Pacer::with_clock(0, clock.clone());
        assert!(pacer.acquire(usize::MAX, &Budget::unlimited()).await);
        assert_eq!(elapsed(&clock), Duration::ZERO);
        // The same count under a cap of one a second would need years.
        let capped = Pacer::with_clock(1, clock.clone());
        assert!(capped.acquire(1, &Budget::unlimited()).await);
        assert!(
            !capped
                .acquire(2, &Budget::for_duration(Duration::from_secs(1)))
                .await
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_cuts_the_wait_short() {
        // The wait for the second permit (1 s) would end past the deadline (50 ms): the
        // pacer refuses at once instead of sleeping into it.
        let clock = FakeRelativeClock::default();
        let pacer = Pacer::with_clock(1, clock.clone());
        let budget = Budget::for_duration(Duration::from_millis(50));
        assert!(pacer.acquire(1, &budget).await);
        assert!(!pacer.acquire(1, &budget).await);
        assert_eq!(elapsed(&clock), Duration::ZERO);
    }
}
