//! Why a sweep or an invocation failed, and how Lambda shows it: [`SweepError`] for an
//! invocation, [`CallError`] for one of its DynamoDB calls, mapped from the SDK in one
//! place ([`CallError::from_sdk`]).

use std::fmt;
use std::time::Duration;

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use lambda_runtime::Diagnostic;

use crate::config::ConfigError;
use crate::report::SweepReport;

/// Everything that makes a sweep invocation fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// The configuration (environment, flags) or the event payload is invalid. Nothing was
    /// scanned.
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),

    /// The table could not be checked before the sweep (credentials, permissions,
    /// network): the store's error, in words. Nothing was scanned.
    #[error("could not check the table before sweeping: {message}")]
    #[non_exhaustive]
    TableCheck {
        /// The store's error, in words.
        message: String,
        /// Whether a later run may succeed (a timeout, throttling): the sweep goes on
        /// then, and only a lasting failure is returned.
        transient: bool,
    },

    /// The checkpoint item could not be read. Nothing was scanned.
    #[error("could not read the sweep checkpoint: {0}")]
    Checkpoint(#[source] CallError),

    /// The sweep ran, but segments failed after retries (or the checkpoint could not be
    /// written). The report says what was done anyway.
    #[error(
        "sweep of `{}` slice {} failed: {} of its segments failed{}",
        .report.table,
        .report.slice,
        .report.segments_failed,
        first_error(.report)
    )]
    Failed {
        /// What the sweep did.
        report: Box<SweepReport>,
    },
}

fn first_error(report: &SweepReport) -> String {
    match report.errors.first() {
        Some(e) => format!("; first error: {e}"),
        None => String::new(),
    }
}

impl SweepError {
    /// A short, stable name of the cause, used as Lambda's `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            SweepError::InvalidConfig(_) => "SweepError.InvalidConfig",
            SweepError::TableCheck { .. } => "SweepError.TableCheck",
            SweepError::Checkpoint(_) => "SweepError.Checkpoint",
            SweepError::Failed { .. } => "SweepError.Failed",
        }
    }

    /// The error of the table's startup check: a table that cannot hold sessions is an
    /// invalid configuration (named as the table); a failed check is
    /// [`SweepError::TableCheck`].
    pub fn from_table_check(err: dynamo_session_store::Error) -> Self {
        match err {
            dynamo_session_store::Error::Table { table, problem, .. } => {
                SweepError::InvalidConfig(ConfigError::new(
                    format!("table `{table}`"),
                    format!("cannot hold sessions: {problem}"),
                ))
            }
            other => SweepError::TableCheck {
                transient: other.is_transient(),
                message: other.to_string(),
            },
        }
    }

    /// The report of a sweep that ran, if this error comes from one.
    pub fn report(&self) -> Option<&SweepReport> {
        match self {
            SweepError::Failed { report } => Some(report),
            _ => None,
        }
    }
}

impl From<SweepError> for Diagnostic {
    fn from(err: SweepError) -> Self {
        Diagnostic {
            error_type: err.error_type().to_owned(),
            error_message: err.to_string(),
        }
    }
}

/// A DynamoDB operation the sweeper sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// A page of a segment.
    Scan,
    /// A batch of PartiQL deletes.
    BatchExecuteStatement,
    /// One conditional delete (the `delete-item` strategy, or the checkpoint's).
    DeleteItem,
    /// The checkpoint's read.
    GetItem,
    /// The checkpoint's write.
    PutItem,
    /// The table's description, to size an `auto` read cap.
    DescribeTable,
}

impl Operation {
    /// The operation's name in DynamoDB's API.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Scan => "Scan",
            Operation::BatchExecuteStatement => "BatchExecuteStatement",
            Operation::DeleteItem => "DeleteItem",
            Operation::GetItem => "GetItem",
            Operation::PutItem => "PutItem",
            Operation::DescribeTable => "DescribeTable",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why one of the sweeper's DynamoDB calls failed, after its retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// DynamoDB, or the network on the way to it, answered with an error.
    #[error("DynamoDB {operation} failed: {message}")]
    #[non_exhaustive]
    Sdk {
        /// The operation.
        operation: Operation,
        /// DynamoDB's error code, when the service answered.
        code: Option<String>,
        /// Whether retrying later may succeed (throttling, 5xx, timeouts, I/O).
        transient: bool,
        /// The SDK error's whole cause chain, as text.
        message: String,
    },

    /// An attempt had no answer within the attempt timeout.
    #[error("DynamoDB {operation}: no answer within the {} ms attempt timeout", .timeout.as_millis())]
    #[non_exhaustive]
    AttemptTimedOut {
        /// The operation.
        operation: Operation,
        /// The attempt timeout.
        timeout: Duration,
    },

    /// A transient failure outlasted every retry.
    #[error("{last} (still failing after {retries} retries)")]
    #[non_exhaustive]
    RetriesExhausted {
        /// How many retries were made.
        retries: u32,
        /// The last attempt's failure.
        last: Box<CallError>,
    },

    /// Single statements of a PartiQL batch kept failing (throttled, or an internal
    /// error) after every retry.
    #[error("{failing} PartiQL deletes still failing after {retries} retries: {last}")]
    #[non_exhaustive]
    StatementsExhausted {
        /// How many statements were still failing.
        failing: usize,
        /// How many retries were made.
        retries: u32,
        /// The last statement error's code and message.
        last: String,
    },

    /// DynamoDB's answer broke the API's contract.
    #[error("DynamoDB {operation} answered {answered} responses to {sent} statements")]
    #[non_exhaustive]
    Protocol {
        /// The operation.
        operation: Operation,
        /// Statements sent.
        sent: usize,
        /// Responses received.
        answered: usize,
    },

    /// The deadline came before an answer, even within the reserve kept for the call.
    #[error(
        "DynamoDB {operation}: no answer before the deadline, within the {} ms kept for it",
        .reserve.as_millis()
    )]
    #[non_exhaustive]
    Deadline {
        /// The operation.
        operation: Operation,
        /// The time kept for it before the deadline.
        reserve: Duration,
    },
}

impl CallError {
    /// Maps an SDK error of `operation`: its code, whether it is transient (throttling
    /// codes are the SDK's own list, so the sweeper retries what the SDK would), and its
    /// whole cause chain as text.
    pub fn from_sdk<E>(operation: Operation, err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (code, transient) = match err {
            SdkError::ServiceError(service) => {
                let code = service.err().code().map(str::to_owned);
                let transient = service.raw().status().as_u16() >= 500
                    || code.as_deref().is_some_and(is_transient_code);
                (code, transient)
            }
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => (None, true),
            _ => (None, false),
        };
        CallError::Sdk {
            operation,
            code,
            transient,
            message: dynamo_session_store::error::in_words(err),
        }
    }

    /// The operation that failed, when the failure is one call's.
    pub fn operation(&self) -> Option<Operation> {
        match self {
            CallError::Sdk { operation, .. }
            | CallError::AttemptTimedOut { operation, .. }
            | CallError::Protocol { operation, .. }
            | CallError::Deadline { operation, .. } => Some(*operation),
            CallError::RetriesExhausted { last, .. } => last.operation(),
            CallError::StatementsExhausted { .. } => Some(Operation::BatchExecuteStatement),
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Sdk { transient, .. } => *transient,
            CallError::AttemptTimedOut { .. }
            | CallError::RetriesExhausted { .. }
            | CallError::StatementsExhausted { .. }
            | CallError::Deadline { .. } => true,
            CallError::Protocol { .. } => false,
        }
    }

    /// Whether this is a throttling error (counted apart from other retries).
    pub fn is_throttling(&self) -> bool {
        matches!(self, CallError::Sdk { code: Some(code), .. } if THROTTLING_ERRORS.contains(&code.as_str()))
    }
}

/// Whether a DynamoDB error code is worth retrying.
fn is_transient_code(code: &str) -> bool {
    THROTTLING_ERRORS.contains(&code)
        || TRANSIENT_ERRORS.contains(&code)
        || matches!(
            code,
            "InternalServerError"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "TransactionConflictException"
        )
}
