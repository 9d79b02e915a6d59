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
//! From the environment ([`SweepConfig::from_env`]), the command line ([`cli`]) or the
//! schedule's event ([`event`], the settings with an event field), all declared once in
//! [`config::SETTINGS`]:
//!
//! | variable | flag | event field | default | bounds | what |
//! |---|---|---|---|---|---|
//! | `SESSIONS_TABLE` | `--table` | — | (required) | — | the table to sweep |
//! | `SESSION_KEY_ATTRIBUTE` | `--key-attribute` | — | `id` | — | the partition key attribute (S), as the apps name it |
//! | `SESSION_EXPIRES_ATTRIBUTE` | `--expires-attribute` | — | `expires` | — | the expiry attribute, epoch seconds (N) |
//! | `SESSION_DATA_ATTRIBUTE` | `--data-attribute` | — | `data` | — | the data attribute (S, or B when encoded): only items with it are sessions |
//! | `SESSION_KEY_PREFIX` | `--key-prefix` | — | none | ends with a separator; no `!` | the key prefix: only keys under it are swept |
//! | `SWEEP_TOTAL_SEGMENTS` | `--segments` | `total_segments` | 8 | 1 to 1000000 | parallel scan segments (`TotalSegments`) |
//! | `SWEEP_SLICE` | `--slice` | `slice` | all segments | within the total | only segments `START..END` of the total, or part `I/N` (from 0) of them |
//! | `SWEEP_GRACE_SECONDS` | `--grace-seconds` | `grace_seconds` | 15 | 0 to 31536000 (a year) | the cutoff is now minus this: sessions expired for less are kept |
//! | `SWEEP_MAX_DELETES_PER_SECOND` | `--max-deletes-per-second` | `max_deletes_per_second` | 0 (no cap) | — | deletes per second, across all segments |
//! | `SWEEP_MAX_READ_UNITS_PER_SECOND` | `--max-read-units-per-second` | `max_read_units_per_second` | 0 (no cap) | `auto` or a whole number | read capacity units per second the scan may consume, across all segments; `auto`: a fifth of a provisioned table's, by the slice's share, none on demand |
//! | `SWEEP_MAX_READ_UNITS` | `--max-read-units` | `max_read_units` | 0 (none) | — | read capacity units per run; then the run checkpoints and stops |
//! | `SWEEP_PAGE_SIZE` | `--page-size` | `page_size` | 0 (1 MB pages) | — | items evaluated per scan page (`Limit`) |
//! | `SWEEP_DRY_RUN` | `--dry-run` | `dry_run` | false | — | report what would be deleted, delete nothing |
//! | `SWEEP_CHECKPOINT` | `--no-checkpoint` | — | true | — | keep resume cursors in the slice's checkpoint item (the flag turns it off) |
//! | `SWEEP_DEADLINE_MARGIN_MS` | `--deadline-margin-ms` | — | 1000 | at least 200 | in Lambda, be done, checkpoint saved, this long before the deadline |
//! | `SWEEP_ATTEMPT_TIMEOUT_MS` | `--attempt-timeout-ms` | — | 3000 | 50 to 60000 | cut one DynamoDB attempt after this long; the checkpoint keeps two and a delay |
//! | `SWEEP_METRICS_NAMESPACE` | `--namespace` | — | `SessionSweeper` | — | the CloudWatch namespace of the metrics line |
//! | `SWEEP_METRICS` | `--metrics` | — | `all` | `all` or `alarms` | the metrics line: every count per table, or only what the alarms read |
//! | `SWEEP_DELETE_STRATEGY` | `--strategy` | — | `partiql` | `partiql` or `delete-item` | tuning: PartiQL batches of 25, or one `DeleteItem` per item |
//! | `SWEEP_SEGMENT_CONCURRENCY` | `--segment-concurrency` | — | 16 | at least 1 | tuning: segments scanned at once |
//! | `SWEEP_DELETE_CONCURRENCY` | `--delete-concurrency` | — | 4 | at least 1 | tuning: delete requests in flight per segment |
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
pub mod progress;
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
pub use engine::{sweep, sweep_with_progress};
pub use error::{CallError, Operation, SweepError};
pub use event::EventOverrides;
pub use progress::Progress;
pub use report::SweepReport;
pub use sweeper::Sweeper;
