//! Why a sweep or an invocation failed, and how Lambda shows it.

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

    /// The checkpoint item could not be read. Nothing was scanned.
    #[error("could not read the sweep checkpoint: {0}")]
    Checkpoint(#[source] dynamo_session_store::Error),

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
            SweepError::Checkpoint(_) => "SweepError.Checkpoint",
            SweepError::Failed { .. } => "SweepError.Failed",
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
