//! The optional deletes-per-second cap, shared by every segment of a sweep.
//!
//! A GCRA limiter from `governor`: requests wait for permits, never fail. The burst is
//! one second's worth of deletes, so a 25-statement batch waits for 25 permits (in pieces
//! when the cap is below 25 a second).

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::budget::Budget;

/// Paces deletes; a no-op without a cap.
#[derive(Debug)]
pub(crate) struct Pacer {
    limiter: Option<DefaultDirectRateLimiter>,
    burst: u32,
}

impl Pacer {
    /// At most `per_second` deletes a second; 0 for no cap.
    pub(crate) fn new(per_second: u32) -> Self {
        match NonZeroU32::new(per_second) {
            None => Self {
                limiter: None,
                burst: 0,
            },
            Some(rate) => Self {
                limiter: Some(RateLimiter::direct(Quota::per_second(rate))),
                burst: rate.get(),
            },
        }
    }

    /// Waits until `n` deletes may be sent. Returns `false`, having sent nothing, when the
    /// budget's deadline comes first.
    pub(crate) async fn acquire(&self, n: usize, budget: &Budget) -> bool {
        let Some(limiter) = &self.limiter else {
            return true;
        };
        let mut left = u32::try_from(n).unwrap_or(u32::MAX);
        while let Some(step) = NonZeroU32::new(left.min(self.burst)) {
            let ready = limiter.until_n_ready(step);
            let ok = match budget.deadline() {
                None => ready.await.is_ok(),
                Some(deadline) => tokio::select! {
                    r = ready => r.is_ok(),
                    () = tokio::time::sleep_until(deadline) => return false,
                },
            };
            // `until_n_ready` only fails for more than the burst, which `step` never is.
            debug_assert!(ok);
            left -= step.get();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn no_cap_never_waits() {
        let pacer = Pacer::new(0);
        assert!(pacer.acquire(1_000_000, &Budget::unlimited()).await);
    }

    #[tokio::test]
    async fn cap_spreads_deletes_over_time() {
        // 100 a second with a burst of 100: 50 permits past the burst take ~0.5 s.
        let pacer = Pacer::new(100);
        let started = Instant::now();
        assert!(pacer.acquire(100, &Budget::unlimited()).await);
        assert!(pacer.acquire(50, &Budget::unlimited()).await);
        let waited = started.elapsed();
        assert!(waited.as_millis() >= 400, "{waited:?}");
    }

    #[tokio::test]
    async fn deadline_cuts_the_wait_short() {
        let pacer = Pacer::new(1);
        let budget = Budget::for_duration(std::time::Duration::from_millis(50));
        assert!(pacer.acquire(1, &budget).await);
        assert!(!pacer.acquire(1, &budget).await);
    }
}
