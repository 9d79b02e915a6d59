//! The engine: scan the slice's segments in parallel and delete each page as it arrives.
//!
//! [`sweep`] computes the cutoff (`now - grace`, from the injected clock), reads the
//! checkpoint, then runs up to `segment_concurrency` workers over the shared `Run`
//! (`shared.rs`). Each worker takes the next unfinished segment and loops (`segment.rs`):
//! claim a page from the [`Budget`], scan one page (filtered and projected, see
//! [`crate::scan`]), classify it, delete its expired items conditionally (see
//! [`crate::delete`]) while fetching the next page from `LastEvaluatedKey`. A worker holds
//! at most two pages, so memory stays flat whatever the table's size.
//!
//! When every worker is done, the pure `settle` (`settle.rs`) folds how each segment
//! ended into the progress to keep: a stopped segment keeps its cursor; a failed one its
//! last good cursor (unless the scan itself was refused for good: then it starts over).
//! The checkpoint is then saved (stopped early) or deleted (slice finished), and a
//! [`SweepReport`] is returned. Failed segments are in the report, not an `Err`: the
//! handler turns them into a failed invocation.

#[cfg(feature = "testing")]
mod hook;
mod segment;
mod settle;
mod shared;

use std::collections::VecDeque;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::TableDescription;
use dynamo_session_store::clock::Clock;
use dynamo_session_store::table::provisioned_read_units;
use tokio::task::JoinSet;
use tokio::time::Instant;

#[cfg(feature = "testing")]
pub use hook::{NoHook, PageHook};

use crate::budget::Budget;
use crate::checkpoint::{self, Checkpoint, Expect, Written};
use crate::config::{ReadRate, SweepConfig};
use crate::error::{CallError, Operation, SweepError};
use crate::progress::Progress;
use crate::report::SweepReport;
use crate::retry::{Stop, send_with_retries};
use crate::tally::Tally;
use shared::Run;

/// Sweeps `config`'s slice of the table once: deletes every session item whose expiry is
/// below `clock.now() - grace`, unless it was refreshed meanwhile, until done or until
/// `budget` says stop.
///
/// Give it a client without SDK-level retries (see [`crate::retry`]).
///
/// # Errors
/// [`SweepError::InvalidConfig`] for an invalid configuration and
/// [`SweepError::Checkpoint`] when the checkpoint cannot be read; nothing was deleted
/// then. Failed segments are reported in the [`SweepReport`] (`segments_failed`,
/// `errors`), not as an error.
pub async fn sweep(
    client: &Client,
    config: &SweepConfig,
    clock: &dyn Clock,
    budget: Budget,
) -> Result<SweepReport, SweepError> {
    sweep_with_progress(client, config, clock, budget, &Progress::default()).await
}

/// [`sweep`], counting into `progress` as it goes, for a display that reads it meanwhile.
///
/// # Errors
/// As [`sweep`].
pub async fn sweep_with_progress(
    client: &Client,
    config: &SweepConfig,
    clock: &dyn Clock,
    budget: Budget,
    progress: &Progress,
) -> Result<SweepReport, SweepError> {
    sweep_observed(client, config, clock, budget, NO_HOOK, progress.0.clone()).await
}

/// What the engine calls between a page's scan and its deletes: nothing in the builds that
/// ship; with the `testing` feature, the integration suite's hook, if any.
#[cfg(feature = "testing")]
pub(crate) type Hook = Option<Arc<dyn PageHook>>;
#[cfg(not(feature = "testing"))]
pub(crate) struct Hook;

/// No hook.
#[cfg(feature = "testing")]
const NO_HOOK: Hook = None;
#[cfg(not(feature = "testing"))]
const NO_HOOK: Hook = Hook;

/// [`sweep`], calling `hook` (if the build has one) on every page between the scan and the
/// deletes.
#[cfg(feature = "testing")]
pub(crate) async fn sweep_with_hook(
    client: &Client,
    config: &SweepConfig,
    clock: &dyn Clock,
    budget: Budget,
    hook: Hook,
) -> Result<SweepReport, SweepError> {
    sweep_observed(client, config, clock, budget, hook, Arc::default()).await
}

/// The sweep, calling `hook` and counting into `tally`.
async fn sweep_observed(
    client: &Client,
    config: &SweepConfig,
    clock: &dyn Clock,
    budget: Budget,
    hook: Hook,
    tally: Arc<Tally>,
) -> Result<SweepReport, SweepError> {
    config.validate()?;
    let checkpoint_key = config.checkpoint_key()?;
    let started = Instant::now();
    let started_at = clock.now().unix_timestamp();
    let grace = i64::try_from(config.grace().as_secs()).unwrap_or(i64::MAX);
    let cutoff = started_at.saturating_sub(grace);
    let config = &size_read_rate(client, config, &budget, &tally).await?;

    // A dry run neither reads nor writes checkpoints: it must not make a real run skip
    // segments it only looked at.
    let use_checkpoint = config.checkpoint() && !config.dry_run();
    // The deadline is a hard bound: the work stops early enough to leave the checkpoint's
    // save (two attempts and a retry delay) its reserve before the deadline.
    let save_budget = budget.deadline_only();
    let budget = if use_checkpoint {
        budget.reserving(config.retry().checkpoint_reserve())
    } else {
        budget
    };
    if budget.expired() {
        tracing::warn!(
            reserve_ms = config.min_run_time().as_millis() as u64,
            "no time left for work before the deadline, less the checkpoint's reserve"
        );
    }
    // A checkpoint read that the deadline cut short is not "no checkpoint": sweeping from
    // the top and saving would overwrite the real progress with this run's. No work, no
    // write, and the report says why.
    let mut checkpoint_unread = false;
    let (previous, expect) = if use_checkpoint {
        match checkpoint::load(client, config, &checkpoint_key, &budget, &tally).await {
            Ok(loaded) => loaded,
            Err(Stop::Failed(err)) => return Err(SweepError::Checkpoint(err)),
            Err(Stop::Deadline) => {
                tracing::warn!("the checkpoint could not be read in time: no work this run");
                checkpoint_unread = true;
                (None, Expect::Absent)
            }
        }
    } else {
        (None, Expect::Absent)
    };

    let slice = config.slice();
    let start = previous.clone().unwrap_or_default();
    let queue: VecDeque<_> = (slice.start..slice.end)
        .filter(|s| !checkpoint_unread && !start.is_done(*s))
        .map(|s| (s, start.cursor(s).cloned()))
        .collect();
    let run = Arc::new(Run::new(client, config, cutoff, budget, tally, hook, queue));
    run_workers(&run).await;

    let settled = settle::settle(previous.as_ref(), run.take_ends());
    for error in &settled.errors {
        tracing::error!(%error, "segment failed");
    }
    let mut errors = settled.errors;
    errors.extend(run.tally.notes());
    let mut progress = settled.progress;
    let completed = progress.done_segments().count() as u32;
    let complete = completed == slice.len();
    // The pass began with the run that found no checkpoint; it is carried until a run
    // finishes the slice.
    let pass_began = previous
        .as_ref()
        .and_then(Checkpoint::began)
        .unwrap_or(started_at);
    progress.set_began(pass_began);

    let (mut checkpoint_saved, mut checkpoint_conflict) = (false, false);
    if use_checkpoint && !checkpoint_unread {
        let outcome = write_checkpoint(
            client,
            config,
            (&checkpoint_key, &expect),
            (previous.as_ref(), &progress, complete),
            clock.now().unix_timestamp(),
            &save_budget,
            &run.tally,
        )
        .await;
        match outcome {
            Ok(Some(Written::Done)) => checkpoint_saved = !complete,
            Ok(Some(Written::Conflict)) => {
                tracing::warn!(
                    "another run of this slice wrote the checkpoint first: this run's \
                     progress is not saved (its deletes stand)"
                );
                checkpoint_conflict = true;
            }
            Ok(None) => {}
            Err(err) => {
                tracing::error!(error = %err, "checkpoint not written");
                errors.push(format!("checkpoint: {err}"));
            }
        }
    }

    let t = &run.tally;
    let backlog_seconds = if complete {
        0
    } else {
        u64::try_from(clock.now().unix_timestamp().saturating_sub(pass_began)).unwrap_or(0)
    };
    Ok(SweepReport {
        table: config.table().to_owned(),
        slice: config.slice_label(),
        dry_run: config.dry_run(),
        cutoff,
        scanned: Tally::get(&t.scanned),
        expired_found: Tally::get(&t.expired_found),
        deleted: Tally::get(&t.deleted),
        unconfirmed: Tally::get(&t.unconfirmed),
        skipped_live: Tally::get(&t.skipped_live),
        already_gone: Tally::get(&t.already_gone),
        malformed_skipped: Tally::get(&t.malformed_skipped),
        expires_in_millis: Tally::get(&t.expires_in_millis),
        expires_far_future: Tally::get(&t.expires_far_future),
        statement_errors: Tally::get(&t.statement_errors),
        checkpoint_discarded: Tally::get(&t.checkpoint_discarded),
        throttled_retries: Tally::get(&t.throttled_retries),
        retries: Tally::get(&t.retries),
        pages: Tally::get(&t.pages),
        read_units: t.read_units(),
        write_units: t.write_units(),
        segments_completed: completed,
        segments_failed: settled.failed,
        segments_remaining: slice.len() - completed - settled.failed,
        segments_resumed: settled.resumed,
        duration: started.elapsed(),
        complete,
        checkpoint_saved,
        checkpoint_unread,
        checkpoint_conflict,
        read_cap_per_second: Some(config.max_read_units_per_second()).filter(|cap| *cap > 0),
        pass_began,
        backlog_seconds,
        errors,
    })
}

/// `config` with its read rate in force: an [`ReadRate::Auto`] cap sized from the table's
/// provisioned read capacity, read now (`DescribeTable`, within `budget`), so that it
/// follows the table's capacity as it changes. A fixed cap is kept as it is.
///
/// # Errors
/// [`SweepError::TableCheck`] when the table could not be described (transient when it
/// may work next time): an `auto` cap is never guessed.
async fn size_read_rate(
    client: &Client,
    config: &SweepConfig,
    budget: &Budget,
    tally: &Tally,
) -> Result<SweepConfig, SweepError> {
    if config.read_rate() != ReadRate::Auto {
        return Ok(config.clone());
    }
    let described = send_with_retries(
        Operation::DescribeTable,
        config.retry(),
        budget,
        tally,
        || client.describe_table().table_name(config.table()).send(),
    )
    .await;
    let table = match described {
        Ok(out) => out
            .table
            .unwrap_or_else(|| TableDescription::builder().build()),
        Err(Stop::Failed(err)) => {
            return Err(SweepError::TableCheck {
                transient: err.is_transient(),
                message: format!("could not size the `auto` read cap: {err}"),
            });
        }
        Err(Stop::Deadline) => {
            return Err(SweepError::TableCheck {
                transient: true,
                message: "could not size the `auto` read cap: no answer from \
                          DescribeTable before the deadline"
                    .to_owned(),
            });
        }
    };
    let slice = config.slice();
    let cap = ReadRate::Auto.resolve(
        provisioned_read_units(&table),
        slice.len(),
        config.total_segments(),
    );
    tracing::info!(
        read_cap_per_second = cap,
        "`auto` read cap sized from the table"
    );
    Ok(config.clone().with_read_rate(ReadRate::PerSecond(cap)))
}

/// Runs up to `segment_concurrency` workers until the queue is empty (or the budget says
/// stop). A worker's panic is the sweep's.
async fn run_workers(run: &Arc<Run>) {
    if run.budget.expired() {
        return;
    }
    let mut workers = JoinSet::new();
    for _ in 0..run.config.segment_concurrency() {
        let run = run.clone();
        workers.spawn(async move {
            while let Some((segment, cursor)) = run.next_segment() {
                let end = segment::run_segment(&run, segment, cursor).await;
                run.finish(segment, end);
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        if let Err(err) = joined
            && err.is_panic()
        {
            std::panic::resume_unwind(err.into_panic());
        }
    }
}

/// Saves `progress` when the slice is unfinished, or deletes the checkpoint when it is
/// finished, within `budget`, if the item is still as this run read it: `Ok(None)` when
/// there was nothing to write (finished, and no checkpoint to clear).
async fn write_checkpoint(
    client: &Client,
    config: &SweepConfig,
    key: (&str, &Expect),
    (previous, progress, complete): (Option<&Checkpoint>, &Checkpoint, bool),
    now: i64,
    budget: &Budget,
    tally: &Tally,
) -> Result<Option<Written>, CallError> {
    let (operation, outcome) = if complete {
        if previous.is_none() {
            return Ok(None);
        }
        let cleared = checkpoint::clear(client, config, key, budget, tally).await;
        (Operation::DeleteItem, cleared)
    } else {
        // Even with no segment progress: the item records when the pass began.
        let saved = checkpoint::save(client, config, key, progress, now, budget, tally).await;
        (Operation::PutItem, saved)
    };
    match outcome {
        Ok(written) => Ok(Some(written)),
        Err(Stop::Failed(err)) => Err(err),
        // The write could not be answered before the deadline, even in its reserve.
        Err(Stop::Deadline) => Err(CallError::Deadline {
            operation,
            reserve: config.retry().checkpoint_reserve(),
        }),
    }
}
