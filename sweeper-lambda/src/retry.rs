//! Bounded retries with jittered exponential back-off.
//!
//! What is worth retrying is decided in one place: [`CallError::from_sdk`] for whole
//! requests (throttling, 5xx, timeouts, connection failures), and `statement_retry` for
//! single statements of a PartiQL batch. The delays come from `backon`'s exponential schedule with jitter.
//!
//! The engine retries by itself; give it a client whose own SDK retries are off
//! (`max_attempts(1)`, as `main` does) so that retries are counted, paced by the deadline,
//! and not multiplied by a second layer.

use std::error::Error as StdError;
use std::future::Future;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::BatchStatementErrorCodeEnum as Code;
use tokio::time::Instant;

use crate::budget::Budget;
use crate::config::RetryPolicy;
use crate::error::{CallError, Operation};
use crate::tally::Tally;

/// Why a call gave up.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The deadline came first; nothing is wrong, the work resumes next time.
    Deadline,
    /// A permanent error, or a transient one that outlasted the retries.
    Failed(CallError),
}

/// Sends `call()` until it succeeds, retrying transient errors with back-off.
///
/// Every attempt is cut after the policy's attempt timeout, and at the budget's deadline
/// at the latest: whatever the server does, this returns by the deadline (plus the time
/// to drop the request). An attempt cut by its own timeout is a transient failure and is
/// retried; one cut by the deadline, or a back-off that would sleep past it, ends in
/// [`Stop::Deadline`].
pub(crate) async fn send_with_retries<T, E, F, Fut>(
    operation: Operation,
    policy: &RetryPolicy,
    budget: &Budget,
    tally: &Tally,
    call: F,
) -> Result<T, Stop>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + StdError + 'static,
{
    send_tracked(operation, policy, budget, tally, &mut false, call).await
}

/// [`send_with_retries`], setting `unanswered` when an attempt may have reached DynamoDB
/// without its answer reaching us: cut by the attempt timeout or the deadline, or failed
/// after dispatch (a connection lost, a response unread, the SDK's own timeout). A write
/// it carried may have been applied; the caller counts it as unconfirmed if no later
/// attempt answers.
pub(crate) async fn send_tracked<T, E, F, Fut>(
    operation: Operation,
    policy: &RetryPolicy,
    budget: &Budget,
    tally: &Tally,
    unanswered: &mut bool,
    mut call: F,
) -> Result<T, Stop>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + StdError + 'static,
{
    let mut delays = policy.delays();
    let mut retries = 0;
    loop {
        let err = match attempt(policy, budget, call()).await {
            Attempt::Answered(Ok(value)) => return Ok(value),
            Attempt::Answered(Err(err)) => {
                *unanswered |= !matches!(
                    err,
                    SdkError::ServiceError(_) | SdkError::ConstructionFailure(_)
                );
                CallError::from_sdk(operation, &err)
            }
            Attempt::TimedOut => {
                *unanswered = true;
                CallError::AttemptTimedOut {
                    operation,
                    timeout: policy.attempt_timeout(),
                }
            }
            Attempt::Deadline => {
                *unanswered = true;
                return Err(Stop::Deadline);
            }
        };
        if !err.is_transient() {
            return Err(Stop::Failed(err));
        }
        let Some(delay) = delays.next() else {
            return Err(Stop::Failed(CallError::RetriesExhausted {
                retries,
                last: Box::new(err),
            }));
        };
        if !budget.leaves_time_for(delay) {
            return Err(Stop::Deadline);
        }
        retries += 1;
        tally.retried(err.is_throttling());
        tracing::debug!(
            operation = operation.name(),
            error = %err,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
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
    // `checked_add`: an attempt timeout too large to add to now (a policy built through
    // the public API can hold anything) means no cut of its own.
    let timeout = Instant::now().checked_add(policy.attempt_timeout());
    let (cut, by_deadline) = match (budget.deadline(), timeout) {
        (Some(deadline), Some(timeout)) if deadline <= timeout => (Some(deadline), true),
        (Some(deadline), None) => (Some(deadline), true),
        (_, timeout) => (timeout, false),
    };
    let Some(cut) = cut else {
        return Attempt::Answered(send.await);
    };
    match tokio::time::timeout_at(cut, send).await {
        Ok(answer) => Attempt::Answered(answer),
        Err(_) if by_deadline => Attempt::Deadline,
        Err(_) => Attempt::TimedOut,
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
