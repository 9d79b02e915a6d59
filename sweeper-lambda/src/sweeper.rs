//! [`Sweeper`]: one configured sweeper per process, shared by the Lambda handler and the
//! command line. It runs a sweep, logs its report, prints the EMF metrics line, and turns
//! failed segments into an error.

use std::io::Write;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use dynamo_session_store::clock::{SharedClock, SystemClock};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::budget::Budget;
use crate::config::SweepConfig;
use crate::engine::sweep_with_progress;
use crate::error::SweepError;
use crate::progress::Progress;
use crate::report::SweepReport;

/// The sweeper's state, initialised once and shared by invocations.
#[derive(Clone)]
pub struct Sweeper {
    pub(crate) client: Client,
    pub(crate) config: SweepConfig,
    pub(crate) clock: SharedClock,
    emit_metrics: bool,
    function_name: Option<String>,
    /// The table passed the startup check: once per process (a warm Lambda checks once).
    table_checked: Arc<OnceCell<()>>,
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
            table_checked: Arc::new(OnceCell::new()),
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

    /// Also publishes `BacklogSeconds` per `FunctionName` = `name` (in Lambda, the
    /// function's own name; default none). See [`SweepReport::to_emf`].
    pub fn with_function_name(mut self, name: Option<String>) -> Self {
        self.function_name = name.filter(|n| !n.is_empty());
        self
    }

    /// The base configuration.
    pub fn config(&self) -> &SweepConfig {
        &self.config
    }

    /// Checks the table once per process ([`dynamo_session_store::check_table`]): it
    /// exists, and its key is the configured key attribute, a String. Logs each warning
    /// (TTL off, or on another attribute). The check takes one attempt timeout at most,
    /// and never runs past `budget`'s deadline: when it gets no answer in that time, or a
    /// transient error, the sweep goes on (its own calls retry, within the deadline) and
    /// the next run checks again.
    ///
    /// # Errors
    /// [`SweepError::InvalidConfig`] naming what is wrong with the table and the setting to
    /// change; [`SweepError::TableCheck`] when the check fails for good (credentials,
    /// permissions).
    pub async fn check_table(
        &self,
        config: &SweepConfig,
        budget: &Budget,
    ) -> Result<(), SweepError> {
        let limit = tokio::time::Instant::now().checked_add(config.retry().attempt_timeout());
        let cut = match (budget.deadline(), limit) {
            (Some(deadline), Some(limit)) => Some(deadline.min(limit)),
            (deadline, limit) => deadline.or(limit),
        };
        let check = self.table_checked.get_or_try_init(|| async {
            let schema = config.schema();
            let check = dynamo_session_store::check_table(&self.client, config.table(), schema)
                .await
                .map_err(SweepError::from_table_check)?;
            for warning in check.warnings(config.table(), schema) {
                tracing::warn!("{warning}");
            }
            Ok::<(), SweepError>(())
        });
        let outcome = match cut {
            Some(cut) => tokio::time::timeout_at(cut, check).await,
            None => Ok(check.await),
        };
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(SweepError::TableCheck {
                transient: true,
                message,
            })) => {
                tracing::warn!(error = %message, "could not check the table; sweeping anyway");
                Ok(())
            }
            Ok(Err(err)) => Err(err),
            Err(_) => {
                tracing::warn!("no answer to the table check in time; sweeping anyway");
                Ok(())
            }
        }
    }

    /// Runs one sweep with `config` and `budget`, logging and emitting the report, after
    /// the table's startup check ([`Sweeper::check_table`]).
    ///
    /// # Errors
    /// [`SweepError::InvalidConfig`] for an invalid `config` or table,
    /// [`SweepError::TableCheck`] when the table could not be checked,
    /// [`SweepError::Checkpoint`] when the checkpoint cannot be read,
    /// [`SweepError::Failed`] when segments failed.
    pub async fn run(
        &self,
        config: &SweepConfig,
        budget: Budget,
    ) -> Result<SweepReport, SweepError> {
        self.run_with_progress(config, budget, &Progress::default())
            .await
    }

    /// [`Sweeper::run`], counting into `progress` as it goes (for a progress display).
    ///
    /// # Errors
    /// As [`Sweeper::run`].
    pub async fn run_with_progress(
        &self,
        config: &SweepConfig,
        budget: Budget,
        progress: &Progress,
    ) -> Result<SweepReport, SweepError> {
        config.validate()?;
        self.check_table(config, &budget).await?;
        let report =
            sweep_with_progress(&self.client, config, self.clock.as_ref(), budget, progress)
                .await?;
        tracing::info!(
            table = %report.table,
            slice = %report.slice,
            scanned = report.scanned,
            expired_found = report.expired_found,
            deleted = report.deleted,
            unconfirmed = report.unconfirmed,
            backlog_seconds = report.backlog_seconds,
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
                config.metrics(),
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
