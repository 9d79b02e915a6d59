//! Bounded retries with jittered exponential back-off.
//!
//! What is worth retrying is decided in one place for the whole workspace:
//! [`dynamo_session_store::error::classify`] for whole requests (throttling, 5xx,
//! timeouts, connection failures), and `statement_retry` for single statements of a
//! PartiQL batch. The delays come from `backon`'s exponential schedule with jitter.
//!
//! The engine retries by itself; give it a client whose own SDK retries are off
//! (`max_attempts(1)`, as `main` does) so that retries are counted, paced by the deadline,
//! and not multiplied by a second layer.

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::BatchStatementErrorCodeEnum as Code;
use backon::{BackoffBuilder, ExponentialBuilder};
use dynamo_session_store::error::{Error as StoreError, classify};

use crate::budget::Budget;
use crate::report::Tally;

/// How often, and how patiently, failed calls are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_retries: usize,
    min_delay: Duration,
    max_delay: Duration,
    jitter: bool,
}

impl Default for RetryPolicy {
    /// 10 retries, delays doubling from 50 ms up to 5 s, each plus up to 100% jitter
    /// (about 25 s of waiting at most).
    fn default() -> Self {
        Self {
            max_retries: 10,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
            jitter: true,
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
        }
    }

    /// No retries at all.
    pub fn none() -> Self {
        Self::new(0, Duration::ZERO, Duration::ZERO)
    }

    /// Turns jitter off (for tests that want exact delays).
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

/// Why a call gave up.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The deadline came first; nothing is wrong, the work resumes next time.
    Deadline,
    /// A permanent error, or a transient one that outlasted the retries.
    Failed(StoreError),
}

/// Sends `call()` until it succeeds, retrying transient errors with back-off.
pub(crate) async fn send_with_retries<T, E, F, Fut>(
    operation: &'static str,
    policy: &RetryPolicy,
    budget: &Budget,
    tally: &Tally,
    mut call: F,
) -> Result<T, Stop>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let mut delays = policy.delays();
    loop {
        let err = match call().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let class = classify(&err);
        if !class.transient {
            return Err(Stop::Failed(StoreError::from_sdk(operation, err)));
        }
        let Some(delay) = delays.next() else {
            return Err(Stop::Failed(StoreError::from_sdk(operation, err)));
        };
        if !budget.leaves_time_for(delay) {
            return Err(Stop::Deadline);
        }
        tally.retried(class.throttling);
        tracing::debug!(
            operation,
            code = class.code.as_deref().unwrap_or("-"),
            delay_ms = delay.as_millis() as u64,
            "retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

/// What to do about one failed statement of a PartiQL batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatementRetry {
    /// The condition failed: the item is live (or gone). Leave it.
    ConditionFailed,
    /// Throttled: retry, and count it as a throttled retry.
    Throttled,
    /// Another transient failure: retry.
    Transient,
    /// Will not succeed by retrying.
    Permanent,
}

/// Classifies a per-statement error code of `BatchExecuteStatement`.
pub(crate) fn statement_retry(code: Option<&Code>) -> StatementRetry {
    match code {
        Some(Code::ConditionalCheckFailed) => StatementRetry::ConditionFailed,
        Some(
            Code::ProvisionedThroughputExceeded
            | Code::RequestLimitExceeded
            | Code::ThrottlingError,
        ) => StatementRetry::Throttled,
        Some(Code::InternalServerError | Code::TransactionConflict) => StatementRetry::Transient,
        _ => StatementRetry::Permanent,
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
    fn statement_codes_are_classified() {
        use StatementRetry::*;
        assert_eq!(
            statement_retry(Some(&Code::ConditionalCheckFailed)),
            ConditionFailed
        );
        assert_eq!(
            statement_retry(Some(&Code::ProvisionedThroughputExceeded)),
            Throttled
        );
        assert_eq!(statement_retry(Some(&Code::ThrottlingError)), Throttled);
        assert_eq!(statement_retry(Some(&Code::InternalServerError)), Transient);
        assert_eq!(statement_retry(Some(&Code::ValidationError)), Permanent);
        assert_eq!(statement_retry(None), Permanent);
    }
}
