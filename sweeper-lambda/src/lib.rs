//! The session sweeper: a scheduled AWS Lambda (and a command-line program) that deletes
//! expired sessions written by [`dynamo_session_store`].
//!
//! It scans the table in parallel segments, keeps only expired items (and counts
//! malformed ones), and deletes each page as it arrives with deletes that are conditional
//! on the expiry still being below the cutoff, so a session refreshed after the scan
//! survives. Retries back off with jitter and are bounded; an optional cap paces deletes.
//! Near the Lambda deadline it stops starting new work and saves each segment's cursor in
//! a checkpoint item, so the next invocation resumes instead of starting over.
//!
//! ```no_run
//! # async fn run(client: aws_sdk_dynamodb::Client) -> Result<(), sweeper_lambda::SweepError> {
//! use std::time::Duration;
//! use dynamo_session_store::SystemClock;
//! use sweeper_lambda::{Budget, SweepConfig, sweep};
//!
//! let config = SweepConfig::new("sessions").with_total_segments(16);
//! let report = sweep(&client, &config, &SystemClock, Budget::for_duration(Duration::from_secs(60))).await?;
//! println!("deleted {} of {} expired", report.deleted, report.expired_found);
//! # Ok(()) }
//! ```
//!
//! # Configuration
//!
//! From the environment ([`SweepConfig::from_env`]; only `SESSIONS_TABLE` is required):
//! `SESSIONS_TABLE`, `SESSION_KEY_ATTRIBUTE` (`id`), `SESSION_EXPIRES_ATTRIBUTE`
//! (`expires`), `SESSION_DATA_ATTRIBUTE` (`data`), `SESSION_KEY_PREFIX` (none),
//! `SWEEP_TOTAL_SEGMENTS` (8), `SWEEP_GRACE_SECONDS` (15), `SWEEP_MAX_DELETES_PER_SECOND`
//! (0, no cap), `SWEEP_PAGE_SIZE` (0, 1 MB pages), `SWEEP_DEADLINE_MARGIN_MS` (5000),
//! `SWEEP_DRY_RUN` (false), `SWEEP_CHECKPOINT` (true), `SWEEP_METRICS_NAMESPACE`
//! (`SessionSweeper`), and two tuning knobs outside the deployment contract:
//! `SWEEP_DELETE_STRATEGY` (`partiql` or `delete-item`) and `SWEEP_SEGMENT_CONCURRENCY`
//! (16). The event may override some per invocation: see [`event`].
//!
//! # Layout
//!
//! | module | concept |
//! |--------|---------|
//! | [`config`] | [`SweepConfig`]: settings, defaults, environment variables |
//! | [`event`] | the schedule's payload: Scheduler input or classic envelope |
//! | [`mod@sweep`] | the engine: parallel segments, page by page |
//! | [`scan`] | one page's scan request and the pure classification of its items |
//! | [`delete`] | conditional deletes: PartiQL batches or `DeleteItem` |
//! | [`retry`] | bounded, jittered exponential back-off |
//! | `pace` | the deletes-per-second cap |
//! | [`budget`] | deadline and page budget: when to stop starting work |
//! | [`checkpoint`] | resume cursors in a reserved item |
//! | [`report`] | [`SweepReport`] and its CloudWatch EMF line |
//! | [`handler`] | the Lambda handler, [`Sweeper`] |
//! | [`error`] | [`SweepError`] and its Lambda `errorType` |
//! | [`cli`] | the command line outside Lambda |
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod budget;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod delete;
pub mod error;
pub mod event;
pub mod handler;
mod pace;
pub mod report;
pub mod retry;
pub mod scan;
pub mod sweep;

pub use budget::Budget;
pub use checkpoint::Checkpoint;
pub use config::{ConfigError, DeleteStrategy, Slice, SweepConfig};
pub use error::SweepError;
pub use event::EventOverrides;
pub use handler::Sweeper;
pub use report::SweepReport;
pub use retry::RetryPolicy;
pub use sweep::{NoHook, PageHook, read_checkpoint, sweep, sweep_with_hook};
