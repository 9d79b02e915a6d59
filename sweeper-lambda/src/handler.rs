//! The Lambda handler: event in, one sweep, report out.
//!
//! [`Sweeper`] is built once per process (client, base configuration from the
//! environment, clock) and borrowed by every invocation:
//!
//! 1. the event's overrides are applied to the base configuration (an invalid payload
//!    fails at once with [`SweepError::InvalidConfig`] naming the field);
//! 2. the budget ends `SWEEP_DEADLINE_MARGIN_MS` before the context's deadline;
//! 3. the sweep runs; its report is logged and printed as one EMF line;
//! 4. a sweep with failed segments (or an unwritten checkpoint) returns
//!    [`SweepError::Failed`], so Lambda's `Errors` metric counts it; otherwise the report
//!    is the invocation's result, `complete: false` when time ran out first.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use dynamo_session_store::clock::{SharedClock, SystemClock};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use time::OffsetDateTime;

use crate::budget::Budget;
use crate::config::SweepConfig;
use crate::error::SweepError;
use crate::event::EventOverrides;
use crate::report::SweepReport;
use crate::sweep::{NoHook, PageHook, sweep_with_hook};

/// The handler's state, initialised once and shared by invocations.
#[derive(Clone)]
pub struct Sweeper {
    client: Client,
    config: SweepConfig,
    clock: SharedClock,
    hook: Arc<dyn PageHook>,
    emit_metrics: bool,
}

impl std::fmt::Debug for Sweeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweeper")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("emit_metrics", &self.emit_metrics)
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
            hook: Arc::new(NoHook),
            emit_metrics: true,
        }
    }

    /// Uses `clock` for the cutoff and the deadline (default the system clock).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Calls `hook` between each page's scan and its deletes (default none).
    pub fn with_hook(mut self, hook: Arc<dyn PageHook>) -> Self {
        self.hook = hook;
        self
    }

    /// Whether to print the EMF metrics line to stdout (default `true`).
    pub fn with_metrics(mut self, emit: bool) -> Self {
        self.emit_metrics = emit;
        self
    }

    /// The base configuration.
    pub fn config(&self) -> &SweepConfig {
        &self.config
    }

    /// Handles one Lambda invocation.
    ///
    /// # Errors
    /// [`SweepError::InvalidConfig`] for a bad payload, [`SweepError::Checkpoint`] when the
    /// checkpoint cannot be read, [`SweepError::Failed`] when segments failed.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<SweepReport, SweepError> {
        let (payload, context) = event.into_parts();
        let overrides = EventOverrides::parse(&payload)?;
        let config = overrides.apply(&self.config)?;
        let budget = match time_left(context.deadline, self.clock.now(), config.deadline_margin()) {
            Some(left) => Budget::for_duration(left),
            None => Budget::unlimited(),
        };
        self.run(&config, budget).await
    }

    /// Runs one sweep with `config` and `budget`, logging and emitting the report.
    ///
    /// # Errors
    /// As [`Sweeper::handle`].
    pub async fn run(
        &self,
        config: &SweepConfig,
        budget: Budget,
    ) -> Result<SweepReport, SweepError> {
        let report = sweep_with_hook(
            &self.client,
            config,
            self.clock.as_ref(),
            budget,
            self.hook.clone(),
        )
        .await?;
        tracing::info!(
            table = %report.table,
            slice = %report.slice,
            scanned = report.scanned,
            expired_found = report.expired_found,
            deleted = report.deleted,
            skipped_live = report.skipped_live,
            malformed_skipped = report.malformed_skipped,
            throttled_retries = report.throttled_retries,
            segments_completed = report.segments_completed,
            segments_failed = report.segments_failed,
            duration_ms = report.duration.as_millis() as u64,
            complete = report.complete,
            dry_run = report.dry_run,
            "sweep finished"
        );
        if self.emit_metrics {
            let line = report.emf_line(config.metrics_namespace(), unix_millis(self.clock.now()));
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

/// Timeout of one HTTP attempt of the sweeper's client.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves Lambda invocations until the runtime stops: the configuration from the
/// environment ([`SweepConfig::from_env`], failing fast on an invalid one), one client,
/// and [`Sweeper::handle`] per event. What the `sweeper` binary runs inside Lambda.
pub async fn serve() -> std::process::ExitCode {
    let config = match SweepConfig::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("sweeper: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let sweeper = Sweeper::new(dynamodb_client(None).await, config);
    let sweeper = &sweeper;
    let run = lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| async move { sweeper.handle(event).await },
    ));
    match run.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sweeper: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The DynamoDB client the binary uses: the standard AWS configuration chain (Lambda's
/// role), an optional endpoint override, SDK retries off (the engine retries itself, see
/// [`crate::retry`]) and a 10 s timeout per attempt. With an endpoint and no AWS
/// credentials in the environment (a local server), dummy credentials and `us-east-1`.
pub async fn dynamodb_client(endpoint: Option<&str>) -> Client {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_sdk_dynamodb::config::{Credentials, Region};

    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
        let has_credentials = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
            || std::env::var_os("AWS_PROFILE").is_some();
        if !has_credentials {
            loader = loader
                .credentials_provider(Credentials::new("local", "local", None, None, "sweeper"));
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            loader = loader.region(Region::new("us-east-1"));
        }
    }
    Client::new(&loader.load().await)
}

/// How long the sweep may start new work: until `margin` before `deadline_ms` (epoch
/// milliseconds, as in the Lambda context). `None` when the deadline is unknown (0, as in
/// a default context); zero when it is already too late.
pub fn time_left(deadline_ms: u64, now: OffsetDateTime, margin: Duration) -> Option<Duration> {
    if deadline_ms == 0 {
        return None;
    }
    let now_ms = u64::try_from(unix_millis(now)).unwrap_or(0);
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Some(left.saturating_sub(margin))
}

fn unix_millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_subtracts_the_margin() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let deadline = 1_700_000_000_000 + 60_000;
        assert_eq!(
            time_left(deadline, now, Duration::from_secs(5)),
            Some(Duration::from_secs(55))
        );
        assert_eq!(
            time_left(deadline, now, Duration::from_secs(90)),
            Some(Duration::ZERO)
        );
        assert_eq!(time_left(1_000, now, Duration::ZERO), Some(Duration::ZERO));
        assert_eq!(time_left(0, now, Duration::from_secs(5)), None);
    }
}
