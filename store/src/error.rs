//! The store's one error type, by cause. Its mapping into tower-sessions' error, one
//! `From` impl per supported tower-sessions version, is in `session_store.rs`.

use std::error::Error as StdError;

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session id cannot be used as a key.
    #[error("invalid session id: {reason}")]
    #[non_exhaustive]
    InvalidId {
        /// What is wrong with it.
        reason: String,
    },

    /// The owner given to [`DynamoStore::sessions_of`](crate::DynamoStore::sessions_of),
    /// [`revoke`](crate::DynamoStore::revoke) or
    /// [`revoke_all`](crate::DynamoStore::revoke_all) cannot be an owner index key.
    #[error("invalid owner: {reason}")]
    #[non_exhaustive]
    InvalidOwner {
        /// What is wrong with it.
        reason: String,
    },

    /// [`DynamoStore::revoke_all`](crate::DynamoStore::revoke_all) could not delete every
    /// session of the owner. The deletes that could be made were made; calling it again
    /// finishes the job.
    #[error(
        "revoking an owner's sessions stopped short: {deleted} deleted, {failed} failed{}; \
         call revoke_all again to finish: {source}",
        if *listed_all { "" } else { ", and the listing of the rest failed" }
    )]
    #[non_exhaustive]
    RevokeIncomplete {
        /// Sessions deleted.
        deleted: usize,
        /// Deletes that failed.
        failed: usize,
        /// Whether every page of the owner's sessions was listed (if not, more may remain
        /// than `failed`).
        listed_all: bool,
        /// The first failure.
        #[source]
        source: Box<Error>,
    },

    /// The item schema (attribute names) is unusable.
    #[error("invalid item schema: {reason}")]
    #[non_exhaustive]
    InvalidSchema {
        /// What is wrong with it.
        reason: String,
    },

    /// The item would exceed DynamoDB's item size limit. Nothing was written.
    #[error(
        "session item is {size} bytes, over DynamoDB's item size limit of {limit} bytes; nothing was written"
    )]
    #[non_exhaustive]
    TooLarge {
        /// Size of the item as DynamoDB counts it (attribute names plus values).
        size: usize,
        /// DynamoDB's limit, 400 KB.
        limit: usize,
    },

    /// The session data could not be serialized to JSON.
    #[error("could not encode session data as JSON: {0}")]
    Encode(#[source] serde_json::Error),

    /// The store's codec could not encode the data, or a key ring is not usable
    /// ([`crate::codec`]). Data that does not decode on a read is not an error: the
    /// session loads as absent, with a warning naming the [`CodecError`](crate::codec::CodecError).
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),

    /// An item in the table is not a well-formed session (written by another tool, or
    /// corrupted). Nothing is guessed from it.
    #[error("malformed session item: attribute `{attribute}` {problem}")]
    #[non_exhaustive]
    Decode {
        /// The attribute that is wrong.
        attribute: String,
        /// What is wrong with it.
        problem: String,
        /// The underlying parse error, if any.
        #[source]
        source: Option<serde_json::Error>,
    },

    /// The table cannot hold this store's sessions (see [`crate::table::check_table`]).
    #[error("table `{table}` cannot hold sessions: {problem}")]
    #[non_exhaustive]
    Table {
        /// The table name.
        table: String,
        /// What is wrong, and the setting to change.
        problem: crate::table::TableProblem,
    },

    /// DynamoDB (or the network on the way to it) returned an error.
    #[error("DynamoDB {operation} on table `{table}` failed: {message}")]
    #[non_exhaustive]
    DynamoDb {
        /// The DynamoDB operation, e.g. `PutItem`.
        operation: &'static str,
        /// The table.
        table: String,
        /// DynamoDB's error code, e.g. `ProvisionedThroughputExceededException`, when there
        /// was a service response.
        code: Option<String>,
        /// Whether retrying later may succeed (throttling, 5xx, timeouts, I/O).
        transient: bool,
        /// What happened, in words ([`in_words`]): DynamoDB's error code and message, or
        /// what failed on the way (a timeout, the connection, credentials). The error's
        /// `Display` shows it, so it has no `source()`: an error reporter that also walks
        /// the chain (anyhow's `{:#}`) would print it twice.
        message: String,
        /// The SDK error itself, to downcast.
        sdk_error: Box<dyn StdError + Send + Sync>,
    },

    /// `create` kept meeting existing sessions when picking new ids.
    #[error("could not find a free session id after {attempts} attempts")]
    #[non_exhaustive]
    IdCollision {
        /// How many ids were tried.
        attempts: u32,
    },
}

impl Error {
    /// Whether the error is transient, so the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::DynamoDb { transient, .. } => *transient,
            Error::RevokeIncomplete { source, .. } => source.is_transient(),
            _ => false,
        }
    }

    pub(crate) fn decode(attribute: &str, problem: impl Into<String>) -> Self {
        Error::Decode {
            attribute: attribute.to_owned(),
            problem: problem.into(),
            source: None,
        }
    }

    /// Wraps an SDK error from `operation` (e.g. `"PutItem"`) on `table`, classified with
    /// [`classify`] and told in words ([`in_words`]).
    pub(crate) fn from_sdk<E>(
        operation: &'static str,
        table: &str,
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let class = classify(&err);
        Error::DynamoDb {
            operation,
            table: table.to_owned(),
            code: class.code,
            transient: class.transient,
            message: in_words(&err),
            sdk_error: Box::new(err),
        }
    }
}

/// What kind of failure an SDK error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorClass {
    /// DynamoDB's error code, when the service answered.
    pub(crate) code: Option<String>,
    /// Worth retrying: throttling, HTTP 5xx, timeouts, dispatch and I/O failures.
    pub(crate) transient: bool,
}

/// Classifies an SDK error: throttling codes are the SDK's own list
/// (`aws_runtime::retries::classifiers::THROTTLING_ERRORS`), so the store calls transient
/// what the SDK's retry classifier retries.
pub(crate) fn classify<E>(err: &SdkError<E, HttpResponse>) -> ErrorClass
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().map(str::to_owned);
            let status = service.raw().status().as_u16();
            let transient = status >= 500
                || code.as_deref().is_some_and(|c| {
                    THROTTLING_ERRORS.contains(&c)
                        || TRANSIENT_ERRORS.contains(&c)
                        || matches!(
                            c,
                            "InternalServerError"
                                | "InternalFailure"
                                | "ServiceUnavailable"
                                | "TransactionConflictException"
                        )
                });
            ErrorClass { code, transient }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ErrorClass {
                code: None,
                transient: true,
            }
        }
        _ => ErrorClass {
            code: None,
            transient: false,
        },
    }
}

/// An SDK error in words, for a log line or an error page someone reads at 3 a.m.:
/// DynamoDB's error code and message once (`ResourceNotFoundException: Requested resource
/// not found`), or what failed on the way (`no answer within the timeout`, `could not
/// connect: …`, `no credentials: …`), never the SDK's `Debug` representation. The store's
/// [`Error::DynamoDb`] says it this way; tools calling DynamoDB beside the store can too.
pub fn in_words<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let meta = service.err();
            match (meta.code(), meta.message()) {
                (Some(code), Some(message)) if !message.is_empty() => format!("{code}: {message}"),
                (Some(code), _) => code.to_owned(),
                (None, _) => format!(
                    "HTTP {} without an error code",
                    service.raw().status().as_u16()
                ),
            }
        }
        SdkError::TimeoutError(_) => "no answer within the timeout".to_owned(),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            format!("could not connect in time: {}", causes(err))
        }
        SdkError::DispatchFailure(failure) if failure.is_io() => {
            format!("could not connect: {}", causes(err))
        }
        _ => {
            let causes = causes(err);
            // What the SDK says, deep in its chain, when the configuration lacks
            // credentials or a region: said once, with what to set.
            if causes.contains("no credentials") || causes.contains("no identity resolver") {
                NO_CREDENTIALS.to_owned()
            } else if causes.contains("missing signing region")
                || causes.contains("region must be set")
            {
                NO_REGION.to_owned()
            } else {
                causes.strip_prefix("other: ").unwrap_or(&causes).to_owned()
            }
        }
    }
}

/// What [`in_words`] says when no credentials were found.
pub const NO_CREDENTIALS: &str = "no AWS credentials: set AWS_ACCESS_KEY_ID and \
     AWS_SECRET_ACCESS_KEY (for a local endpoint any values work, e.g. `local`), or \
     AWS_PROFILE";

/// What [`in_words`] says when no region is configured.
pub const NO_REGION: &str =
    "no AWS region: set AWS_REGION (for a local endpoint any region works, e.g. us-east-1)";

/// The error's causes, each once, outermost first, joined by `: ` (the outermost, such
/// as "dispatch failure", says nothing a reader needs, so it is left out when there are
/// causes).
fn causes(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

/// Shortens a session id for logs: never log a whole id, which is a bearer credential.
pub(crate) fn redact(id: &str) -> String {
    let prefix: String = id.chars().take(4).collect();
    format!("{prefix}…")
}

/// A JSON read error that names the kind of fault and its position only: serde_json's own
/// message can quote a value of the text (`invalid type: string "…"`, `unknown variant
/// …`), which is session data and never reaches a log. The error returned is a custom
/// one: its own `classify()` says `Data`, and its `line()` and `column()` are 0; the
/// message carries the original's.
pub(crate) fn redacted(err: serde_json::Error) -> serde_json::Error {
    use serde_json::error::Category;
    let kind = match err.classify() {
        Category::Syntax => "is not valid JSON",
        Category::Eof => "is truncated JSON",
        Category::Data => "is JSON of another shape",
        Category::Io => "is not readable JSON",
    };
    serde::de::Error::custom(format_args!(
        "{kind} (line {}, column {})",
        err.line(),
        err.column()
    ))
}

/// Whether `message` is exactly what [`redacted`] writes: a kind and a position, nothing
/// of the text.
#[cfg(test)]
pub(crate) fn is_redacted(message: &str) -> bool {
    let kinds = [
        "is not valid JSON",
        "is truncated JSON",
        "is JSON of another shape",
        "is not readable JSON",
    ];
    let Some(rest) = kinds.iter().find_map(|k| message.strip_prefix(k)) else {
        return false;
    };
    let Some((line, column)) = rest
        .strip_prefix(" (line ")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|r| r.split_once(", column "))
    else {
        return false;
    };
    line.parse::<usize>().is_ok() && column.parse::<usize>().is_ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn typed_reads_are_redacted_too() {
        // What `DynamoStore::get` passes on for data of the wrong shape.
        for text in [
            r#""secret-token""#,
            r#"{"role": "secret-token"}"#,
            "[1, secret",
        ] {
            let err = serde_json::from_str::<HashMap<String, u32>>(text).unwrap_err();
            let message = redacted(err).to_string();
            assert!(is_redacted(&message), "{text}: {message}");
        }
    }
}
