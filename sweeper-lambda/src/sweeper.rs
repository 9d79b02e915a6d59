//! [`Sweeper`]: one configured sweeper per process, shared by the Lambda handler and the
//! command line. It runs a sweep, logs its report, prints the EMF metrics line, and turns
//! failed segments into an error.

use std::io::Write;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use dynamo_session_store::clock::{SharedClock, SystemClock};
use time::OffsetDateTime;

use crate::budget::Budget;
use crate::config::SweepConfig;
use crate::engine::sweep;
use crate::error::SweepError;
use crate::report::SweepReport;

/// The sweeper's state, initialised once and shared by invocations.
#[derive(Clone)]
pub struct Sweeper {
    pub(crate) client: Client,
    pub(crate) config: SweepConfig,
    pub(crate) clock: SharedClock,
    emit_metrics: bool,
    function_name: Option<String>,
}

impl std::fmt::Debug for Sweeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweeper")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("emit_metrics", &self.emit_metrics)
            .field("function_name", &self.function_name)
            .finish_non_exhaustive()
    }
}

impl Sweeper {
    /// A sweeper with the system clock, printing an EMF line per invocation.
    pub fn new(client: Client, config: SweepConfig) -> Self {
        Self {
            client,
            config,
            clock: Arc::new(SystemClock),
            emit_metrics: true,
            function_name: None,
        }
    }

    /// Uses `clock` for the cutoff and the deadline (default the system clock).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Whether to print the EMF metrics line to stdout (default `true`).
    pub fn with_metrics(mut self, emit: bool) -> Self {
        self.emit_metrics = emit;
        self
    }

    /// Also publishes `Incomplete` per `FunctionName` = `name` (in Lambda, the function's
    /// own name; default none). See [`SweepReport::to_emf`].
    pub fn with_function_name(mut self, name: Option<String>) -> Self {
        self.function_name = name.filter(|n| !n.is_empty());
        self
    }

    /// The base configuration.
    pub fn config(&self) -> &SweepConfig {
        &self.config
    }

    /// Runs one sweep with `config` and `budget`, logging and emitting the report.
    ///
    /// # Errors
    /// [`SweepError::InvalidConfig`] for an invalid `config`, [`SweepError::Checkpoint`]
    /// when the checkpoint cannot be read, [`SweepError::Failed`] when segments failed.
    pub async fn run(
        &self,
        config: &SweepConfig,
        budget: Budget,
    ) -> Result<SweepReport, SweepError> {
        let report = sweep(&self.client, config, self.clock.as_ref(), budget).await?;
        tracing::info!(
            table = %report.table,
            slice = %report.slice,
            scanned = report.scanned,
            expired_found = report.expired_found,
            deleted = report.deleted,
            skipped_live = report.skipped_live,
            malformed_skipped = report.malformed_skipped,
            throttled_retries = report.throttled_retries,
            read_units = report.read_units,
            write_units = report.write_units,
            segments_completed = report.segments_completed,
            segments_failed = report.segments_failed,
            duration_ms = report.duration.as_millis() as u64,
            complete = report.complete,
            dry_run = report.dry_run,
            "sweep finished"
        );
        if self.emit_metrics {
            let line = report.emf_line(
                config.metrics_namespace(),
                unix_millis(self.clock.now()),
                self.function_name.as_deref(),
            );
            // One write of a whole line, so it is never interleaved with log output.
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
        if report.segments_failed > 0 || !report.errors.is_empty() {
            return Err(SweepError::Failed {
                report: Box::new(report),
            });
        }
        Ok(report)
    }
}

/// `t` in epoch milliseconds.
pub(crate) fn unix_millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
