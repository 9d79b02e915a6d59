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

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::BatchStatementErrorCodeEnum as Code;
use dynamo_session_store::error::{Error as StoreError, classify};
use tokio::time::Instant;

use crate::budget::Budget;
use crate::config::RetryPolicy;
use crate::tally::Tally;

/// Why a call gave up.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The deadline came first; nothing is wrong, the work resumes next time.
    Deadline,
    /// A permanent error, or a transient one that outlasted the retries.
    Failed(StoreError),
}

/// Sends `call()` until it succeeds, retrying transient errors with back-off.
///
/// Every attempt is cut after the policy's attempt timeout, and at the budget's deadline
/// at the latest: whatever the server does, this returns by the deadline (plus the time
/// to drop the request). An attempt cut by its own timeout is a transient failure and is
/// retried; one cut by the deadline, or a back-off that would sleep past it, ends in
/// [`Stop::Deadline`].
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
        let (err, throttling, code) = match attempt(policy, budget, call()).await {
            Attempt::Answered(Ok(value)) => return Ok(value),
            Attempt::Answered(Err(err)) => {
                let class = classify(&err);
                let err = StoreError::from_sdk(operation, err);
                if !class.transient {
                    return Err(Stop::Failed(err));
                }
                (err, class.throttling, class.code)
            }
            Attempt::TimedOut => (attempt_timed_out(operation, policy), false, None),
            Attempt::Deadline => return Err(Stop::Deadline),
        };
        let Some(delay) = delays.next() else {
            return Err(Stop::Failed(err));
        };
        if !budget.leaves_time_for(delay) {
            return Err(Stop::Deadline);
        }
        tally.retried(throttling);
        tracing::debug!(
            operation,
            code = code.as_deref().unwrap_or("-"),
            delay_ms = delay.as_millis() as u64,
            "retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

/// How one attempt ended.
enum Attempt<R> {
    /// The server answered (or the client failed) in time.
    Answered(R),
    /// The attempt outlasted the policy's attempt timeout.
    TimedOut,
    /// The budget's deadline came first.
    Deadline,
}

/// Runs one attempt, cut at the attempt timeout or the budget's deadline, whichever is
/// first.
async fn attempt<R>(
    policy: &RetryPolicy,
    budget: &Budget,
    send: impl Future<Output = R>,
) -> Attempt<R> {
    let timeout = Instant::now() + policy.attempt_timeout();
    let (cut, by_deadline) = match budget.deadline() {
        Some(deadline) if deadline <= timeout => (deadline, true),
        _ => (timeout, false),
    };
    match tokio::time::timeout_at(cut, send).await {
        Ok(answer) => Attempt::Answered(answer),
        Err(_) if by_deadline => Attempt::Deadline,
        Err(_) => Attempt::TimedOut,
    }
}

/// The error of an attempt the engine cut: transient, like the SDK's own timeouts.
fn attempt_timed_out(operation: &'static str, policy: &RetryPolicy) -> StoreError {
    let message = format!(
        "no answer within the {} ms attempt timeout",
        policy.attempt_timeout().as_millis()
    );
    StoreError::dynamo_db(operation, true, message)
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
