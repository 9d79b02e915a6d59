//! One worker's loop over one segment: claim a page from the budget, scan it, classify
//! it, delete its expired items while the next page is fetched.

use aws_sdk_dynamodb::operation::scan::ScanOutput;

use super::settle::SegmentEnd;
use super::shared::Run;
use crate::retry::Stop;
use crate::scan::{Cursor, classify_page};
use crate::tally::Tally;

/// Scans one segment page by page from `cursor`, deleting as it goes. The next page is
/// fetched while the current one is being deleted, so a worker holds at most two pages.
pub(super) async fn run_segment(run: &Run, segment: u32, mut cursor: Option<Cursor>) -> SegmentEnd {
    let config = &run.config;
    let mut prefetched = None;
    loop {
        let page = match prefetched.take() {
            Some(page) => page,
            None if !run.try_start_page() => return SegmentEnd::Stopped(cursor),
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
        Tally::add(&run.tally.expires_in_millis, plan.millis);
        Tally::add(&run.tally.expires_far_future, plan.far_future);
        Tally::add(&run.tally.expired_found, plan.expired.len() as u64);
        #[cfg(feature = "testing")]
        if let Some(hook) = &run.hook
            && !plan.expired.is_empty()
        {
            hook.before_delete(segment, &plan.expired).await;
        }
        let delete = async {
            if plan.expired.is_empty() || config.dry_run() {
                Ok(())
            } else {
                run.deleter
                    .delete_expired(plan.expired, &run.budget, &run.tally)
                    .await
            }
        };
        let fetch = async {
            match &next {
                Some(next) if run.try_start_page() => {
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

/// One page of `segment` from `cursor`, with retries, its read units paid for under the
/// read caps.
async fn scan_page(run: &Run, segment: u32, cursor: Option<&Cursor>) -> Result<ScanOutput, Stop> {
    let (page, units) = run
        .scan
        .page(
            &run.client,
            &run.config,
            segment,
            cursor,
            &run.budget,
            &run.tally,
        )
        .await?;
    run.reads.pay(units, &run.budget).await;
    Ok(page)
}
