//! What a sweep does: [`SweepConfig`], its documented defaults, and reading it from the
//! environment variables of the deployment contract.
//!
//! Per-invocation overrides from the schedule's event live in [`crate::event`]. Every
//! invalid value fails fast with a [`ConfigError`] naming the variable, flag or field.

use std::sync::Arc;
use std::time::Duration;

use dynamo_session_store::ItemSchema;

mod env;
mod error;
mod metrics;
mod read_rate;
mod retry_policy;
pub mod settings;
mod slice;
mod strategy;

pub use error::ConfigError;
pub use metrics::MetricsMode;
pub use read_rate::{AUTO_SHARE_PERCENT, ReadRate};
pub use retry_policy::{DEFAULT_ATTEMPT_TIMEOUT, RetryPolicy};
pub use settings::{SETTINGS, Setting};
pub use slice::{Slice, SlicePart, SliceSetting};
pub use strategy::DeleteStrategy;

/// DynamoDB's largest `TotalSegments`.
pub const MAX_TOTAL_SEGMENTS: u32 = 1_000_000;
/// Default `TotalSegments`.
pub const DEFAULT_TOTAL_SEGMENTS: u32 = 8;
/// The longest grace window: a year.
pub const MAX_GRACE: Duration = Duration::from_secs(365 * 86_400);
/// Default grace window: the cutoff is `now - 15 s`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(15);
/// Default safety margin before the Lambda deadline: the sweep, its checkpoint included,
/// is over this long before it, leaving the time to send the report.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_millis(1000);
/// The smallest deadline margin: the report, its log and metrics lines and the answer to
/// the Lambda runtime must fit in it.
pub const MIN_DEADLINE_MARGIN: Duration = Duration::from_millis(200);
/// The shortest and longest attempt timeouts accepted.
pub const ATTEMPT_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(50), Duration::from_secs(60));
/// Default CloudWatch namespace of the metrics line.
pub const DEFAULT_METRICS_NAMESPACE: &str = "SessionSweeper";
/// Default number of segments scanned at the same time by one invocation.
pub const DEFAULT_SEGMENT_CONCURRENCY: u32 = 16;
/// Default number of delete requests in flight per segment.
pub const DEFAULT_DELETE_CONCURRENCY: usize = 4;

/// The start of the checkpoint items' reserved key names: `sweeper-checkpoint/`, then the
/// slice label (`0-8of8`). IAM's `dynamodb:LeadingKeys` condition in
/// `infra/template.yaml` allows exactly `<prefix>!sweeper-checkpoint/*`.
pub const CHECKPOINT_KEY_NAME: &str = "sweeper-checkpoint/";

/// Everything one sweep needs to know. Built with [`SweepConfig::new`] and `with_*`
/// methods (defaults below), or from the environment with [`SweepConfig::from_env`].
///
/// ```no_run
/// use std::time::Duration;
/// use sweeper_lambda::SweepConfig;
///
/// let config = SweepConfig::new("sessions")
///     .with_total_segments(16)
///     .with_grace(Duration::from_secs(30))
///     .with_max_deletes_per_second(500);
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SweepConfig {
    table: Arc<str>,
    schema: ItemSchema,
    total_segments: u32,
    slice: Option<Slice>,
    part: Option<SlicePart>,
    grace: Duration,
    max_deletes_per_second: u32,
    read_rate: ReadRate,
    max_read_units: u64,
    page_size: u32,
    deadline_margin: Duration,
    dry_run: bool,
    checkpoint: bool,
    metrics_namespace: String,
    metrics: MetricsMode,
    strategy: DeleteStrategy,
    segment_concurrency: u32,
    delete_concurrency: usize,
    retry: RetryPolicy,
}

impl SweepConfig {
    /// A sweep of `table` with the defaults of [`SETTINGS`]: the default [`ItemSchema`],
    /// 8 segments, the whole table, 15 s grace, no delete-rate, read-rate or read-budget
    /// cap, DynamoDB's default page size, a 1 s deadline margin, deleting for real,
    /// checkpoints on, namespace `SessionSweeper`, PartiQL batch deletes, up to 16
    /// segments at a time, 4 delete requests in flight per segment, and
    /// [`RetryPolicy::default`].
    pub fn new(table: impl Into<Arc<str>>) -> Self {
        Self {
            table: table.into(),
            schema: ItemSchema::default(),
            total_segments: DEFAULT_TOTAL_SEGMENTS,
            slice: None,
            part: None,
            grace: DEFAULT_GRACE,
            max_deletes_per_second: 0,
            read_rate: ReadRate::PerSecond(0),
            max_read_units: 0,
            page_size: 0,
            deadline_margin: DEFAULT_DEADLINE_MARGIN,
            dry_run: false,
            checkpoint: true,
            metrics_namespace: DEFAULT_METRICS_NAMESPACE.to_owned(),
            metrics: MetricsMode::All,
            strategy: DeleteStrategy::default(),
            segment_concurrency: DEFAULT_SEGMENT_CONCURRENCY,
            delete_concurrency: DEFAULT_DELETE_CONCURRENCY,
            retry: RetryPolicy::default(),
        }
    }

    /// Uses `schema` for attribute names and key prefix (default [`ItemSchema::default`]).
    pub fn with_schema(mut self, schema: ItemSchema) -> Self {
        self.schema = schema;
        self
    }

    /// Sets `TotalSegments`, 1 to 1,000,000 (default 8). Resets a slice of segment
    /// numbers to all segments; a [part](Self::with_slice_part) is kept, as it is
    /// relative to the total.
    pub fn with_total_segments(mut self, total: u32) -> Self {
        self.total_segments = total;
        self.slice = None;
        self
    }

    /// Sweeps only segments `start..end` of the total (default all of them). Wins over a
    /// [part](Self::with_slice_part).
    pub fn with_slice(mut self, slice: Slice) -> Self {
        self.slice = Some(slice);
        self
    }

    /// Sweeps only part `index` of `count` equal parts of the segments (see
    /// [`SlicePart::segments`]); cleared by [`with_slice`](Self::with_slice).
    pub fn with_slice_part(mut self, part: SlicePart) -> Self {
        self.part = Some(part);
        self.slice = None;
        self
    }

    /// Applies a `START..END` or `I/N` setting.
    pub fn with_slice_setting(self, setting: SliceSetting) -> Self {
        match setting {
            SliceSetting::Segments(slice) => self.with_slice(slice),
            SliceSetting::Part(part) => self.with_slice_part(part),
        }
    }

    /// Sets the grace window: items expired for less than this survive (default 15 s).
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Caps deletes per second across all segments, 0 for no cap (default 0).
    pub fn with_max_deletes_per_second(mut self, cap: u32) -> Self {
        self.max_deletes_per_second = cap;
        self
    }

    /// Caps the read capacity units the scan consumes per second, across all segments, 0
    /// for no cap (default 0): each page's units, as DynamoDB reports them, are paid for
    /// before the segment scans on, so the sweep leaves the rest of the table's read
    /// capacity to the application.
    pub fn with_max_read_units_per_second(mut self, cap: u32) -> Self {
        self.read_rate = ReadRate::PerSecond(cap);
        self
    }

    /// Sets the read-units-per-second cap, fixed or [`ReadRate::Auto`] (sized from the
    /// table's provisioned capacity at the start of each run).
    pub fn with_read_rate(mut self, rate: ReadRate) -> Self {
        self.read_rate = rate;
        self
    }

    /// Which metrics the EMF line publishes (default [`MetricsMode::All`]).
    pub fn with_metrics(mut self, mode: MetricsMode) -> Self {
        self.metrics = mode;
        self
    }

    /// Stops a run once its scan has consumed this many read capacity units, 0 for no
    /// budget (default 0): it saves its checkpoint, and the next run resumes there. Pages
    /// in flight finish, so a run may pass its budget by about a page per segment.
    pub fn with_max_read_units(mut self, budget: u64) -> Self {
        self.max_read_units = budget;
        self
    }

    /// Sets the Scan `Limit` (items evaluated per page), 0 for DynamoDB's 1 MB pages
    /// (default 0).
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size;
        self
    }

    /// How long before the Lambda deadline the sweep, checkpoint included, must be over
    /// (default 1 s, at least 200 ms): the report is sent in this time. Work stops
    /// earlier still, by the checkpoint's reserve ([`RetryPolicy::checkpoint_reserve`]).
    pub fn with_deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    /// Reports what would be deleted and deletes nothing (default `false`).
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Keeps resume cursors in the checkpoint item (default `true`).
    pub fn with_checkpoint(mut self, checkpoint: bool) -> Self {
        self.checkpoint = checkpoint;
        self
    }

    /// Sets the CloudWatch namespace of the metrics line (default `SessionSweeper`).
    pub fn with_metrics_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.metrics_namespace = namespace.into();
        self
    }

    /// Chooses how items are deleted (default [`DeleteStrategy::PartiqlBatch`]).
    pub fn with_strategy(mut self, strategy: DeleteStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// How many segments are scanned at the same time (default 16, at most the slice).
    pub fn with_segment_concurrency(mut self, n: u32) -> Self {
        self.segment_concurrency = n;
        self
    }

    /// How many delete requests each segment keeps in flight (default 4).
    pub fn with_delete_concurrency(mut self, n: usize) -> Self {
        self.delete_concurrency = n;
        self
    }

    /// Sets the retry policy (default [`RetryPolicy::default`]).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The key of this slice's checkpoint item: the reserved key
    /// `<prefix>!sweeper-checkpoint/<slice label>` of the table contract.
    ///
    /// # Errors
    /// [`ConfigError`] when the key prefix leaves no room for it under DynamoDB's key
    /// size limit.
    pub fn checkpoint_key(&self) -> Result<String, ConfigError> {
        self.schema
            .reserved_key(&format!("{CHECKPOINT_KEY_NAME}{}", self.slice_label()))
            .map_err(|e| ConfigError::new("SESSION_KEY_PREFIX", e.to_string()))
    }

    /// Checks every setting: the one place where bounds and the settings' agreement (a
    /// slice within the total) are checked.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting by its variable (see
    /// [`SETTINGS`]; [`ConfigError::renamed`] names it as a flag or an event field).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.table.trim().is_empty() {
            return Err(ConfigError::new(
                "SESSIONS_TABLE",
                "is required: the table to sweep",
            ));
        }
        self.schema
            .validate()
            .map_err(|e| ConfigError::new("item schema", e.to_string()))?;
        self.checkpoint_key()?;
        if !(1..=MAX_TOTAL_SEGMENTS).contains(&self.total_segments) {
            return Err(ConfigError::new(
                "SWEEP_TOTAL_SEGMENTS",
                format!(
                    "must be between 1 and {MAX_TOTAL_SEGMENTS}, got {}",
                    self.total_segments
                ),
            ));
        }
        if let (None, Some(part)) = (self.slice, self.part)
            && (part.index >= part.count || part.count > self.total_segments)
        {
            return Err(ConfigError::new(
                "SWEEP_SLICE",
                format!(
                    "part {}/{} must satisfy index < parts <= total_segments ({})",
                    part.index, part.count, self.total_segments
                ),
            ));
        }
        let slice = self.slice();
        if slice.start >= slice.end || slice.end > self.total_segments {
            return Err(ConfigError::new(
                "SWEEP_SLICE",
                format!(
                    "must satisfy start < end <= total_segments ({}), got {}..{}",
                    self.total_segments, slice.start, slice.end
                ),
            ));
        }
        if self.segment_concurrency == 0 {
            return Err(ConfigError::new(
                "SWEEP_SEGMENT_CONCURRENCY",
                "must be at least 1",
            ));
        }
        if self.delete_concurrency == 0 {
            return Err(ConfigError::new(
                "SWEEP_DELETE_CONCURRENCY",
                "must be at least 1",
            ));
        }
        if self.metrics_namespace.trim().is_empty() {
            return Err(ConfigError::new("SWEEP_METRICS_NAMESPACE", "is empty"));
        }
        if self.deadline_margin < MIN_DEADLINE_MARGIN {
            return Err(ConfigError::new(
                "SWEEP_DEADLINE_MARGIN_MS",
                format!(
                    "must be at least {} ms, to send the report before the Lambda deadline; \
                     got {} ms",
                    MIN_DEADLINE_MARGIN.as_millis(),
                    self.deadline_margin.as_millis()
                ),
            ));
        }
        let (shortest, longest) = ATTEMPT_TIMEOUT_RANGE;
        let attempt = self.retry.attempt_timeout();
        if !(shortest..=longest).contains(&attempt) {
            return Err(ConfigError::new(
                "SWEEP_ATTEMPT_TIMEOUT_MS",
                format!(
                    "must be between {} ms and {} ms, got {} ms",
                    shortest.as_millis(),
                    longest.as_millis(),
                    attempt.as_millis()
                ),
            ));
        }
        if self.grace > MAX_GRACE {
            return Err(ConfigError::new(
                "SWEEP_GRACE_SECONDS",
                format!(
                    "must be at most {} s (a year), got {} s",
                    MAX_GRACE.as_secs(),
                    self.grace.as_secs()
                ),
            ));
        }
        Ok(())
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The item schema.
    pub fn schema(&self) -> &ItemSchema {
        &self.schema
    }

    /// `TotalSegments`.
    pub fn total_segments(&self) -> u32 {
        self.total_segments
    }

    /// The segments this invocation sweeps.
    pub fn slice(&self) -> Slice {
        self.slice
            .or_else(|| self.part.map(|part| part.segments(self.total_segments)))
            .unwrap_or_else(|| Slice::new(0, self.total_segments))
    }

    /// The checkpoint item's name for this slice, e.g. `0-8of8`.
    pub fn slice_label(&self) -> String {
        let s = self.slice();
        format!("{}-{}of{}", s.start, s.end, self.total_segments)
    }

    /// The grace window.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The deletes-per-second cap, 0 for none.
    pub fn max_deletes_per_second(&self) -> u32 {
        self.max_deletes_per_second
    }

    /// The read-units-per-second cap in force, 0 for none: a [`ReadRate::Auto`] not yet
    /// sized from the table counts as none (the engine sizes it before scanning).
    pub fn max_read_units_per_second(&self) -> u32 {
        match self.read_rate {
            ReadRate::PerSecond(cap) => cap,
            ReadRate::Auto => 0,
        }
    }

    /// The read-units-per-second cap as set.
    pub fn read_rate(&self) -> ReadRate {
        self.read_rate
    }

    /// Which metrics the EMF line publishes.
    pub fn metrics(&self) -> MetricsMode {
        self.metrics
    }

    /// The per-run read-unit budget, 0 for none.
    pub fn max_read_units(&self) -> u64 {
        self.max_read_units
    }

    /// The Scan `Limit`, 0 for DynamoDB's default.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The safety margin before the Lambda deadline.
    pub fn deadline_margin(&self) -> Duration {
        self.deadline_margin
    }

    /// The shortest time a sweep needs to do anything and still save its checkpoint:
    /// the checkpoint's reserve when checkpoints are kept, nothing otherwise.
    pub fn min_run_time(&self) -> Duration {
        if self.checkpoint && !self.dry_run {
            self.retry.checkpoint_reserve()
        } else {
            Duration::ZERO
        }
    }

    /// Refuses a run of `time` (after the margin) too short to guarantee that the sweep
    /// saves its checkpoint and reports before its deadline. `field` names where the time
    /// came from.
    ///
    /// # Errors
    /// A [`ConfigError`] on `field` when `time` is below [`SweepConfig::min_run_time`].
    pub fn check_run_time(&self, time: Duration, field: &str) -> Result<(), ConfigError> {
        let needed = self.min_run_time();
        if time >= needed {
            return Ok(());
        }
        Err(ConfigError::new(
            field,
            format!(
                "leaves {} ms to sweep, less than the {} ms kept to save the checkpoint \
                 (two attempts of SWEEP_ATTEMPT_TIMEOUT_MS, {} ms, and a retry delay): \
                 allow more time, or shorten the attempt timeout",
                time.as_millis(),
                needed.as_millis(),
                self.retry.attempt_timeout().as_millis()
            ),
        ))
    }

    /// Whether nothing is deleted.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// Whether resume cursors are kept.
    pub fn checkpoint(&self) -> bool {
        self.checkpoint
    }

    /// The CloudWatch namespace.
    pub fn metrics_namespace(&self) -> &str {
        &self.metrics_namespace
    }

    /// The delete strategy.
    pub fn strategy(&self) -> DeleteStrategy {
        self.strategy
    }

    /// Segments scanned at the same time (never more than the slice holds).
    pub fn segment_concurrency(&self) -> u32 {
        self.segment_concurrency.min(self.slice().len()).max(1)
    }

    /// Delete requests in flight per segment.
    pub fn delete_concurrency(&self) -> usize {
        self.delete_concurrency
    }

    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_checked_against_the_total() {
        let config = SweepConfig::new("t")
            .with_total_segments(4)
            .with_slice(Slice::new(2, 5));
        assert_eq!(config.validate().unwrap_err().field(), "SWEEP_SLICE");
        let config = SweepConfig::new("t")
            .with_total_segments(4)
            .with_slice(Slice::new(2, 2));
        assert!(config.validate().is_err());
        let config = SweepConfig::new("t")
            .with_total_segments(4)
            .with_slice(Slice::new(1, 3));
        config.validate().unwrap();
        assert_eq!(config.slice_label(), "1-3of4");
        assert_eq!(config.segment_concurrency(), 2);
    }

    #[test]
    fn parts_cover_every_segment_once() {
        for total in [1, 2, 3, 7, 8, 16, 1_000_000] {
            for count in (1..=8).filter(|&c| c <= total) {
                let mut next = 0;
                for index in 0..count {
                    let config = SweepConfig::new("t")
                        .with_slice_part(SlicePart::new(index, count))
                        .with_total_segments(total);
                    config.validate().unwrap();
                    let slice = config.slice();
                    assert_eq!(slice.start, next, "{index}/{count} of {total}");
                    assert!(slice.len() >= total / count && slice.len() <= total / count + 1);
                    next = slice.end;
                }
                assert_eq!(next, total, "{count} parts of {total}");
            }
        }
        let part = |i, n| SweepConfig::new("t").with_slice_part(SlicePart::new(i, n));
        assert_eq!(part(1, 2).slice_label(), "4-8of8");
        for (i, n) in [(2, 2), (0, 0), (0, 9)] {
            let err = part(i, n).validate().unwrap_err();
            assert_eq!(err.field(), "SWEEP_SLICE");
            assert!(err.reason().contains(&format!("{i}/{n}")), "{err}");
        }
        // Segment numbers win over a part.
        let config = part(1, 2).with_slice(Slice::new(0, 1));
        assert_eq!(config.slice(), Slice::new(0, 1));
    }

    #[test]
    fn slice_settings_parse() {
        let parse = |t: &str| t.parse::<SliceSetting>();
        assert_eq!(parse("1..3"), Ok(SliceSetting::Segments(Slice::new(1, 3))));
        assert_eq!(parse(" 0/2 "), Ok(SliceSetting::Part(SlicePart::new(0, 2))));
        assert!(parse("2-9").unwrap_err().contains("I/N"));
        assert!(parse("a/2").unwrap_err().contains("part number"));
        assert!(parse("1..x").unwrap_err().contains("segment number"));
    }
}
