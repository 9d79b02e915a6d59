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
//! `SWEEP_TOTAL_SEGMENTS` (8), `SWEEP_SLICE` (all segments: `START..END`, or part `I/N`),
//! `SWEEP_GRACE_SECONDS` (15), `SWEEP_MAX_DELETES_PER_SECOND`
//! (0, no cap), `SWEEP_PAGE_SIZE` (0, 1 MB pages), `SWEEP_DEADLINE_MARGIN_MS` (1000),
//! `SWEEP_ATTEMPT_TIMEOUT_MS` (3000),
//! `SWEEP_DRY_RUN` (false), `SWEEP_CHECKPOINT` (true), `SWEEP_METRICS_NAMESPACE`
//! (`SessionSweeper`), and two tuning knobs outside the deployment contract:
//! `SWEEP_DELETE_STRATEGY` (`partiql` or `delete-item`) and `SWEEP_SEGMENT_CONCURRENCY`
//! (16). The event may override some per invocation: see [`event`].
//!
//! # Layout
//!
//! Layers point one way: each module uses only those listed below it. Follow one sweep
//! from `main.rs` down: [`handler`] (or [`cli`]) → [`mod@sweeper`] → [`engine`] →
//! `scan` / `delete` / `checkpoint` → `retry` → `budget`, `pace`, `tally` → [`config`].
//!
//! | module | layer | concept |
//! |--------|-------|---------|
//! | [`handler`] | edge | the Lambda handler, [`Sweeper::handle`], and `serve` |
//! | [`cli`] | edge | the command line outside Lambda (clap) |
//! | [`event`] | edge | the schedule's payload: Scheduler input or classic envelope (serde) |
//! | [`client`] | edge | the DynamoDB client the binary builds |
//! | [`mod@sweeper`] | edge | [`Sweeper`]: run a sweep, log it, emit its metrics line |
//! | [`engine`] | engine | [`sweep`]: the workers, their shared state (`shared.rs`), one segment's loop (`segment.rs`), the pure `settle` of segment ends (`settle.rs`) |
//! | [`checkpoint`] | page I/O | resume cursors in a reserved item |
//! | [`scan`] | page I/O | one page's scan request and the pure classification of its items |
//! | [`delete`] | page I/O | conditional deletes: PartiQL batches or `DeleteItem` |
//! | [`retry`] | primitive | bounded, jittered exponential back-off of one call |
//! | [`budget`] | primitive | deadline and page budget: when to stop starting work |
//! | `read_cap` | primitive | **the read-unit caps**, per second and per run, in one place |
//! | `pace` | primitive | the GCRA limiter both per-second caps wait on (deletes, read units) |
//! | `tally` | primitive | the live counters every task adds to |
//! | [`report`] | data | [`SweepReport`] and its CloudWatch EMF line |
//! | [`error`] | data | [`SweepError`] and its Lambda `errorType` |
//! | [`config`] | data | [`SweepConfig`], [`RetryPolicy`]; reading the environment |
//! | `testing` | — | seams for tests (a hook between scan and delete), feature `testing` only; not API |
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod budget;
pub mod checkpoint;
pub mod cli;
pub mod client;
pub mod config;
pub mod delete;
pub mod engine;
pub mod error;
pub mod event;
pub mod handler;
mod pace;
mod read_cap;
pub mod report;
pub mod retry;
pub mod scan;
pub mod sweeper;
mod tally;
#[cfg(feature = "testing")]
pub mod testing;

pub use budget::Budget;
pub use checkpoint::{Checkpoint, read_checkpoint};
pub use config::{
    ConfigError, DeleteStrategy, RetryPolicy, Slice, SlicePart, SliceSetting, SweepConfig,
};
pub use engine::sweep;
pub use error::{CallError, Operation, SweepError};
pub use event::EventOverrides;
pub use report::SweepReport;
pub use sweeper::Sweeper;
