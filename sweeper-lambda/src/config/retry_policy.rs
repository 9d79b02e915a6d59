//! [`RetryPolicy`]: how long one attempt may take, and how often, how patiently, failed
//! calls are retried. The retrying itself is [`crate::retry`]'s.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// How often, and how patiently, failed calls are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_retries: usize,
    min_delay: Duration,
    max_delay: Duration,
    jitter: bool,
    attempt_timeout: Duration,
}

/// Default longest time one DynamoDB attempt may take before the engine cuts it.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

impl Default for RetryPolicy {
    /// 10 retries, delays doubling from 50 ms up to 5 s, each plus up to 100% jitter
    /// (about 25 s of waiting at most, always also bounded by the sweep's deadline), and
    /// 3 s per attempt.
    fn default() -> Self {
        Self {
            max_retries: 10,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
            jitter: true,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
        }
    }
}

impl RetryPolicy {
    /// Up to `max_retries` retries, delays doubling from `min_delay` to `max_delay`, with
    /// jitter.
    pub fn new(max_retries: usize, min_delay: Duration, max_delay: Duration) -> Self {
        Self {
            max_retries,
            min_delay,
            max_delay,
            jitter: true,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
        }
    }

    /// Cuts every attempt after `timeout` (default 3 s): a stalled answer counts as a
    /// transient failure and is retried. Attempts are also always cut at the sweep's
    /// deadline.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// The longest one attempt may take.
    pub fn attempt_timeout(&self) -> Duration {
        self.attempt_timeout
    }

    /// The time a sweep keeps free before its deadline to save its checkpoint: two full
    /// attempts and the longest first retry delay between them.
    pub fn checkpoint_reserve(&self) -> Duration {
        // Saturating: a policy built through the public API can hold any durations.
        let first_delay = if self.jitter {
            self.min_delay.saturating_mul(2)
        } else {
            self.min_delay
        };
        self.attempt_timeout
            .saturating_mul(2)
            .saturating_add(first_delay.min(self.max_delay.saturating_mul(2)))
    }

    /// No retries at all.
    pub fn none() -> Self {
        Self::new(0, Duration::ZERO, Duration::ZERO)
    }

    /// Turns jitter off, for tests that want exact delays (feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// The most retries of one call.
    pub fn max_retries(&self) -> usize {
        self.max_retries
    }

    /// The delays before each retry, in order; ends when the retries are used up.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        let builder = ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_retries);
        let builder = if self.jitter {
            builder.with_jitter()
        } else {
            builder
        };
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_bounded() {
        let policy = RetryPolicy::new(6, Duration::from_millis(10), Duration::from_millis(100))
            .without_jitter();
        let delays: Vec<u64> = policy
            .delays()
            .map(|d| (d.as_secs_f64() * 1000.0).round() as u64)
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 100, 100]);
        assert_eq!(RetryPolicy::none().delays().count(), 0);
    }

    #[test]
    fn jitter_stays_within_twice_the_delay() {
        let policy = RetryPolicy::new(8, Duration::from_millis(10), Duration::from_millis(80));
        let delays: Vec<Duration> = policy.delays().collect();
        assert_eq!(delays.len(), 8);
        let plain: Vec<Duration> = policy.clone().without_jitter().delays().collect();
        for (d, p) in delays.iter().zip(&plain) {
            assert!(d >= p && *d <= *p * 2, "{d:?} vs {p:?}");
        }
    }

    #[test]
    fn extreme_durations_saturate() {
        let policy = RetryPolicy::new(usize::MAX, Duration::MAX, Duration::MAX)
            .with_attempt_timeout(Duration::MAX);
        assert_eq!(policy.checkpoint_reserve(), Duration::MAX);
        let mut delays = policy.delays();
        assert!(delays.next().is_some_and(|d| d >= Duration::MAX / 2));
        assert!(delays.next().is_some());
    }

    #[test]
    fn the_checkpoint_reserve_is_two_attempts_and_a_delay() {
        let policy = RetryPolicy::new(3, Duration::from_millis(50), Duration::from_secs(1))
            .with_attempt_timeout(Duration::from_millis(400));
        assert_eq!(policy.attempt_timeout(), Duration::from_millis(400));
        // 2 x 400 ms, and the first delay with its jitter, at most 2 x 50 ms.
        assert_eq!(policy.checkpoint_reserve(), Duration::from_millis(900));
        let exact = policy.without_jitter();
        assert_eq!(exact.checkpoint_reserve(), Duration::from_millis(850));
        assert_eq!(
            RetryPolicy::default().checkpoint_reserve(),
            Duration::from_millis(6100)
        );
    }
}
