//! The Lambda edge: event in, one sweep, report out.
//!
//! [`serve`] builds one [`Sweeper`] per process (client, base configuration from the
//! environment, clock) and lends it to every invocation, [`Sweeper::handle`]:
//!
//! 1. the event's overrides are applied to the base configuration (an invalid payload
//!    fails at once with [`SweepError::InvalidConfig`] naming the field);
//! 2. the budget ends `SWEEP_DEADLINE_MARGIN_MS` before the context's deadline: the sweep,
//!    its checkpoint included, is over by then whatever DynamoDB does (an invocation with
//!    less time than the checkpoint's reserve fails with [`SweepError::InvalidConfig`]);
//! 3. the sweep runs; its report is logged and printed as one EMF line;
//! 4. a sweep with failed segments (or an unwritten checkpoint) returns
//!    [`SweepError::Failed`], so Lambda's `Errors` metric counts it; otherwise the report
//!    is the invocation's result, `complete: false` when time ran out first.

use std::time::Duration;

use lambda_runtime::LambdaEvent;
use serde_json::Value;
use time::OffsetDateTime;

use crate::budget::Budget;
use crate::client::dynamodb_client;
use crate::config::SweepConfig;
use crate::error::SweepError;
use crate::event::EventOverrides;
use crate::report::SweepReport;
use crate::sweeper::{Sweeper, unix_millis};

impl Sweeper {
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
            Some(left) => {
                config.check_run_time(
                    left,
                    "the invocation's time (the function's timeout less SWEEP_DEADLINE_MARGIN_MS)",
                )?;
                Budget::for_duration(left)
            }
            None => Budget::unlimited(),
        };
        self.run(&config, budget).await
    }
}

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
    // Set by Lambda: BacklogSeconds is also published per function, that is per slice.
    let sweeper = Sweeper::new(
        dynamodb_client(None, config.retry().attempt_timeout()).await,
        config,
    )
    .with_function_name(std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok());
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
