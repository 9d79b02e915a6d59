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
