//! The engine: scan the slice's segments in parallel and delete each page as it arrives.
//!
//! [`sweep`] computes the cutoff (`now - grace`, from the injected clock), reads the
//! checkpoint, then runs up to `segment_concurrency` workers. Each worker takes the next
//! unfinished segment and loops: claim a page from the [`Budget`], scan one page
//! (filtered and projected, see [`crate::scan`]), classify it, delete its expired items
//! conditionally (see [`crate::delete`]) while fetching the next page from
//! `LastEvaluatedKey`. A worker holds at most two pages, so memory stays flat whatever the
//! table's size.
//!
//! When a segment stops (time or page budget) its cursor is kept; when one fails after
//! retries its last good cursor is kept (unless the scan itself was refused for good: then
//! it starts over next time) and the other segments carry on. At the end the
//! checkpoint is saved (stopped early) or deleted (slice finished), and a
//! [`SweepReport`] is returned. Failed segments are in the report, not an `Err`: the
//! handler turns them into a failed invocation.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use dynamo_session_store::clock::Clock;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::budget::Budget;
use crate::checkpoint::{self, Checkpoint, Cursor};
use crate::config::SweepConfig;
use crate::delete::{delete_expired, delete_statement};
use crate::error::SweepError;
use crate::pace::Pacer;
use crate::report::{SweepReport, Tally};
use crate::retry::{Stop, send_with_retries};
use crate::scan::{PageScan, classify_page};

/// Called by the engine between scanning a page and deleting its expired items.
///
/// For tests and instrumentation (e.g. refreshing a session after it was scanned, to check
/// that it survives). Keys are full table keys: do not log them.
#[async_trait]
pub trait PageHook: Send + Sync + 'static {
    /// `expired` are the keys about to be deleted (or, in a dry run, reported).
    async fn before_delete(&self, segment: u32, expired: &[String]);
}

/// A [`PageHook`] that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

#[async_trait]
impl PageHook for NoHook {
    async fn before_delete(&self, _segment: u32, _expired: &[String]) {}
}

/// Everything the workers of one sweep share.
pub(crate) struct Run {
    pub(crate) client: Client,
    pub(crate) config: SweepConfig,
    pub(crate) cutoff: i64,
    pub(crate) budget: Budget,
    pub(crate) tally: Tally,
    pub(crate) pacer: Pacer,
    pub(crate) statement: String,
    scan: PageScan,
    hook: Arc<dyn PageHook>,
}

/// How a segment's work in this sweep ended.
#[derive(Debug)]
enum SegmentEnd {
    /// Scanned to its end.
    Done,
    /// Stopped by the budget; continue from the cursor (`None`: from the start).
    Stopped(Option<Cursor>),
    /// Failed after retries; the cursor is the last page fully processed.
    Failed(Option<Cursor>, dynamo_session_store::Error),
}

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
    sweep_with_hook(client, config, clock, budget, Arc::new(NoHook)).await
}

/// [`sweep`], calling `hook` on every page between the scan and the deletes.
///
/// # Errors
/// As [`sweep`].
pub async fn sweep_with_hook(
    client: &Client,
    config: &SweepConfig,
    clock: &dyn Clock,
    budget: Budget,
    hook: Arc<dyn PageHook>,
) -> Result<SweepReport, SweepError> {
    config.validate()?;
    let started = Instant::now();
    let grace = i64::try_from(config.grace().as_secs()).unwrap_or(i64::MAX);
    let cutoff = clock.now().unix_timestamp().saturating_sub(grace);
    let schema = config.schema();
    let run = Arc::new(Run {
        client: client.clone(),
        config: config.clone(),
        cutoff,
        budget,
        tally: Tally::default(),
        pacer: Pacer::new(config.max_deletes_per_second()),
        statement: delete_statement(
            config.table(),
            schema.key_attribute(),
            schema.expires_attribute(),
        ),
        scan: PageScan::new(schema, cutoff),
        hook,
    });

    // A dry run neither reads nor writes checkpoints: it must not make a real run skip
    // segments it only looked at.
    let use_checkpoint = config.checkpoint() && !config.dry_run();
    let previous = if use_checkpoint {
        match checkpoint::load(client, config, &run.budget, &run.tally).await {
            Ok(previous) => previous,
            Err(Stop::Failed(err)) => return Err(SweepError::Checkpoint(err)),
            Err(Stop::Deadline) => None,
        }
    } else {
        None
    };
    let mut progress = previous.clone().unwrap_or_default();

    let slice = config.slice();
    let queue: VecDeque<(u32, Option<Cursor>)> = (slice.start..slice.end)
        .filter(|s| !progress.is_done(*s))
        .map(|s| (s, progress.cursor(s).cloned()))
        .collect();
    let queue = Arc::new(Mutex::new(queue));
    let ends = Arc::new(Mutex::new(Vec::new()));
    let mut workers = JoinSet::new();
    if !run.budget.expired() {
        for _ in 0..config.segment_concurrency() {
            let (run, queue, ends) = (run.clone(), queue.clone(), ends.clone());
            workers.spawn(async move {
                loop {
                    let next = lock(&queue).pop_front();
                    let Some((segment, cursor)) = next else { break };
                    let end = run_segment(&run, segment, cursor).await;
                    lock(&ends).push((segment, end));
                }
            });
        }
    }
    while let Some(joined) = workers.join_next().await {
        if let Err(err) = joined
            && err.is_panic()
        {
            std::panic::resume_unwind(err.into_panic());
        }
    }

    let mut errors = Vec::new();
    let mut failed = 0;
    let mut resumed = 0;
    for (segment, end) in std::mem::take(&mut *lock(&ends)) {
        if previous
            .as_ref()
            .is_some_and(|p| p.cursor(segment).is_some())
        {
            resumed += 1;
        }
        match end {
            SegmentEnd::Done => progress.mark_done(segment),
            SegmentEnd::Stopped(Some(cursor)) => progress.set_cursor(segment, cursor),
            SegmentEnd::Stopped(None) => {}
            SegmentEnd::Failed(cursor, err) => {
                failed += 1;
                // A scan refused for good (say, a cursor from a forged checkpoint that is
                // not a valid starting key) would fail at the same place every run: the
                // segment starts over instead, which only repeats conditional deletes.
                let scan_refused = matches!(
                    &err,
                    dynamo_session_store::Error::DynamoDb {
                        operation: "Scan",
                        transient: false,
                        ..
                    }
                );
                match cursor {
                    Some(cursor) if !scan_refused => progress.set_cursor(segment, cursor),
                    _ => progress.forget(segment),
                }
                tracing::error!(segment, error = %err, "segment failed");
                errors.push(format!("segment {segment}: {err}"));
            }
        }
    }
    let completed = progress.done_segments().count() as u32;
    let complete = completed == slice.len();

    let mut checkpoint_saved = false;
    if use_checkpoint {
        let outcome = if complete {
            if previous.is_some() {
                checkpoint::clear(client, config, &run.tally).await
            } else {
                Ok(())
            }
        } else if !progress.is_empty() || previous.is_some() {
            let saved = checkpoint::save(
                client,
                config,
                &progress,
                clock.now().unix_timestamp(),
                &run.tally,
            )
            .await;
            checkpoint_saved = saved.is_ok();
            saved
        } else {
            Ok(())
        };
        if let Err(Stop::Failed(err)) = outcome {
            tracing::error!(error = %err, "checkpoint not written");
            errors.push(format!("checkpoint: {err}"));
        }
    }

    let t = &run.tally;
    Ok(SweepReport {
        table: config.table().to_owned(),
        slice: config.slice_label(),
        dry_run: config.dry_run(),
        cutoff,
        scanned: Tally::get(&t.scanned),
        expired_found: Tally::get(&t.expired_found),
        deleted: Tally::get(&t.deleted),
        skipped_live: Tally::get(&t.skipped_live),
        already_gone: Tally::get(&t.already_gone),
        malformed_skipped: Tally::get(&t.malformed_skipped),
        throttled_retries: Tally::get(&t.throttled_retries),
        retries: Tally::get(&t.retries),
        pages: Tally::get(&t.pages),
        segments_completed: completed,
        segments_failed: failed,
        segments_remaining: slice.len() - completed - failed,
        segments_resumed: resumed,
        duration: started.elapsed(),
        complete,
        checkpoint_saved,
        errors,
    })
}

/// Scans one segment page by page from `cursor`, deleting as it goes. The next page is
/// fetched while the current one is being deleted, so a worker holds at most two pages.
async fn run_segment(run: &Run, segment: u32, mut cursor: Option<Cursor>) -> SegmentEnd {
    let config = &run.config;
    let mut prefetched = None;
    loop {
        let page = match prefetched.take() {
            Some(page) => page,
            None if !run.budget.try_start_page() => return SegmentEnd::Stopped(cursor),
            None => match scan_page(run, segment, cursor.as_ref()).await {
                Ok(page) => page,
                Err(Stop::Deadline) => return SegmentEnd::Stopped(cursor),
                Err(Stop::Failed(err)) => return SegmentEnd::Failed(cursor, err),
            },
        };
        Tally::add(
            &run.tally.scanned,
            u64::try_from(page.scanned_count).unwrap_or(0),
        );
        let next = page.last_evaluated_key.filter(|key| !key.is_empty());
        let plan = classify_page(config.schema(), page.items.unwrap_or_default(), run.cutoff);
        Tally::add(&run.tally.malformed_skipped, plan.malformed);
        Tally::add(&run.tally.expired_found, plan.expired.len() as u64);
        if !plan.expired.is_empty() {
            run.hook.before_delete(segment, &plan.expired).await;
        }
        let delete = async {
            if plan.expired.is_empty() || config.dry_run() {
                Ok(())
            } else {
                delete_expired(run, plan.expired).await
            }
        };
        let fetch = async {
            match &next {
                Some(next) if run.budget.try_start_page() => {
                    Some(scan_page(run, segment, Some(next)).await)
                }
                _ => None,
            }
        };
        let (deleted, fetched) = tokio::join!(delete, fetch);
        match deleted {
            Ok(()) => {}
            Err(Stop::Deadline) => return SegmentEnd::Stopped(cursor),
            Err(Stop::Failed(err)) => return SegmentEnd::Failed(cursor, err),
        }
        Tally::add(&run.tally.pages, 1);
        let Some(next) = next else {
            return SegmentEnd::Done;
        };
        cursor = Some(next);
        match fetched {
            Some(Ok(page)) => prefetched = Some(page),
            Some(Err(Stop::Failed(err))) => return SegmentEnd::Failed(cursor, err),
            Some(Err(Stop::Deadline)) | None => return SegmentEnd::Stopped(cursor),
        }
    }
}

/// One page of `segment` from `cursor`, with retries.
async fn scan_page(
    run: &Run,
    segment: u32,
    cursor: Option<&Cursor>,
) -> Result<aws_sdk_dynamodb::operation::scan::ScanOutput, Stop> {
    send_with_retries("Scan", run.config.retry(), &run.budget, &run.tally, || {
        run.scan.send(&run.client, &run.config, segment, cursor)
    })
    .await
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads the saved checkpoint of `config`'s slice, if any (for tools and tests).
///
/// # Errors
/// [`SweepError::Checkpoint`] when it cannot be read.
pub async fn read_checkpoint(
    client: &Client,
    config: &SweepConfig,
) -> Result<Option<Checkpoint>, SweepError> {
    let tally = Tally::default();
    match checkpoint::load(client, config, &Budget::unlimited(), &tally).await {
        Ok(found) => Ok(found),
        Err(Stop::Failed(err)) => Err(SweepError::Checkpoint(err)),
        Err(Stop::Deadline) => Ok(None),
    }
}
