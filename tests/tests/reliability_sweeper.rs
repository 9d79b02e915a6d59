//! The sweeper behind a fault-injecting proxy ([`local_dynamodb::faults`]): issue 5, part 2.
//!
//! Sessions are written straight into a table on the shared endpoint. The sweeper reaches
//! it through a [`FaultProxy`], with the Lambda's own client configuration
//! ([`dynamodb_client`]: SDK retries off, the engine retries with its [`RetryPolicy`])
//! and a 1 s attempt timeout; every check reads the table directly, past the proxy.
//! Time comes from a [`ManualClock`].
//!
//! | test | shows |
//! |------|-------|
//! | `fifty_thousand_sessions_under_ten_percent_faults` | every fault kind at 10%: the sweep finishes over several invocations, exact sets survive, retries match the faults |
//! | `each_injected_fault_is_one_retry_in_the_report` | `at_most(n)` faults of each kind on each operation: exactly `n` retries counted |
//! | `retries_run_out_and_the_failure_is_surfaced` | a segment failing after its retries: typed error in the report, resumed next time |
//! | `deletes_applied_without_an_answer_are_reported_unconfirmed` | deletes applied but unanswered: `deleted + unconfirmed` is what left the table |
//!
//! The figures of issue 5:
//! `cargo test -p integration-tests --test reliability_sweeper -- --include-ignored --nocapture`
//! (the 50,000-session run is in the soak set).
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::batch_execute_statement::BatchExecuteStatementOutput;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::BatchStatementErrorCodeEnum;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use dynamo_session_store::ManualClock;
use dynamo_session_store::clock::Clock;
use integration_tests::{
    Item, LocalDynamo, RequestCounter, TestTable, far_future_clock, session_item,
};
use local_dynamodb::faults::{Fault, FaultPlan, FaultProxy, FaultStats};
use sweeper_lambda::client::dynamodb_client;
use sweeper_lambda::config::DEFAULT_ATTEMPT_TIMEOUT;
use sweeper_lambda::{Budget, DeleteStrategy, RetryPolicy, SweepConfig, SweepReport, sweep};

/// One HTTP attempt of the sweeper's client (the Lambda's is 10 s). At 300 ms, up to one
/// in seven of the big run's requests timed out on their own on a busy 2-core machine in a
/// debug build (all counted and retried, but they outnumber the injected timeouts); at 1 s
/// none did.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longer than an attempt, so a held request always times out on the client side.
const TIMEOUT_HOLD: Duration = Duration::from_millis(1200);
/// The exact-count test's attempt timeout and hold: its table is small and it runs alone,
/// so half a second is plenty, and its nine held requests cost 6 s less than at 1 s.
const SHORT_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
const SHORT_TIMEOUT_HOLD: Duration = Duration::from_millis(650);

/// The tests of this file run one at a time: the big run loads the 2-core machine enough
/// to slow the others' requests past their attempt timeouts.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// The delete strategies' requests.
const PARTIQL: &str = "BatchExecuteStatement";

fn session(key: &str, expires: i64) -> Item {
    session_item(key, r#"{"user":42}"#, expires)
}
/// The failures the sweeper's client saw, attempt by attempt: what the engine should retry.
#[derive(Debug, Clone, Default)]
struct ClientView {
    /// Attempts that ended in an error, other than a conditional delete's condition failing.
    attempt_errors: Arc<AtomicU64>,
    /// Of those, attempts cut by the client's attempt timeout.
    timeouts: Arc<AtomicU64>,
    /// `BatchExecuteStatement` answers with statements failed for another reason than
    /// their condition (a partial batch).
    partial_batches: Arc<AtomicU64>,
}

impl ClientView {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Failures the engine had to retry: failed attempts and partial batches.
    fn failures(&self) -> u64 {
        Self::get(&self.attempt_errors) + Self::get(&self.partial_batches)
    }
}

impl Intercept for ClientView {
    fn name(&self) -> &'static str {
        "ClientView"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match context.output_or_error() {
            Some(Err(err)) => {
                let condition_failed = err
                    .as_operation_error()
                    .and_then(|e| e.downcast_ref::<DeleteItemError>())
                    .is_some_and(DeleteItemError::is_conditional_check_failed_exception);
                if !condition_failed {
                    self.attempt_errors.fetch_add(1, Ordering::Relaxed);
                }
                if err.is_timeout_error() {
                    self.timeouts.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(Ok(output)) => {
                let partial = output
                    .downcast_ref::<BatchExecuteStatementOutput>()
                    .is_some_and(|out| {
                        out.responses().iter().any(|r| {
                            r.error().is_some_and(|e| {
                                e.code()
                                    != Some(&BatchStatementErrorCodeEnum::ConditionalCheckFailed)
                            })
                        })
                    });
                if partial {
                    self.partial_batches.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {}
        }
        Ok(())
    }
}

/// A test table, and the sweeper's client reaching it through a fault proxy.
struct Proxied {
    table: TestTable,
    proxy: FaultProxy,
    /// Every HTTP attempt the sweeper's client made.
    attempts: RequestCounter,
    /// What those attempts ended in.
    seen: ClientView,
    client: Client,
}

impl Proxied {
    async fn new(label: &str) -> Self {
        Self::with_attempt_timeout(label, ATTEMPT_TIMEOUT).await
    }

    async fn with_attempt_timeout(label: &str, attempt_timeout: Duration) -> Self {
        let table = TestTable::new(label).await;
        let proxy = FaultProxy::in_front_of(LocalDynamo::shared()).expect("start fault proxy");
        let attempts = RequestCounter::default();
        // The Lambda's client, with a short attempt timeout so held requests fail fast.
        let lambda = dynamodb_client(Some(&proxy.endpoint()), DEFAULT_ATTEMPT_TIMEOUT).await;
        let timeouts = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(attempt_timeout)
            .build();
        let seen = ClientView::default();
        let client = Client::from_conf(
            lambda
                .config()
                .to_builder()
                .timeout_config(timeouts)
                .interceptor(attempts.clone())
                .interceptor(seen.clone())
                .build(),
        );
        Self {
            table,
            proxy,
            attempts,
            seen,
            client,
        }
    }

    /// What the table holds, read past the proxy.
    async fn keys(&self) -> HashSet<String> {
        self.table.keys("id").await
    }
}

/// Sweeps with at most `pages` scan pages per invocation until a report says the slice is
/// complete, at most `max_invocations` times (so a bug cannot loop for ever).
async fn sweep_until_complete(
    client: &Client,
    config: &SweepConfig,
    clock: &ManualClock,
    pages: u64,
    max_invocations: usize,
) -> Vec<SweepReport> {
    let mut reports: Vec<SweepReport> = Vec::new();
    while reports.last().is_none_or(|r| !r.complete) {
        assert!(
            reports.len() < max_invocations,
            "not complete after {max_invocations} invocations: {:#?}",
            reports.last()
        );
        let budget = Budget::unlimited().with_max_pages(pages);
        let report = sweep(client, config, clock, budget)
            .await
            .expect("the checkpoint is readable");
        reports.push(report);
    }
    reports
}

fn total(reports: &[SweepReport], field: fn(&SweepReport) -> u64) -> u64 {
    reports.iter().map(field).sum()
}

fn kind(stats: &FaultStats, fault: Fault) -> u64 {
    stats.by_kind.get(fault.name()).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: 50,000 sessions (about 30 s); run with `cargo test --workspace -- --ignored`"]
async fn fifty_thousand_sessions_under_ten_percent_faults() {
    const EXPIRED: usize = 25_000;
    const LIVE: usize = 25_000;
    const PAGE_SIZE: u32 = 500;
    const PAGES_PER_INVOCATION: u64 = 25;
    let _alone = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let p = Proxied::new("faults-sweep-50k").await;
    let clock = far_future_clock();
    let now = clock.now().unix_timestamp();

    // Expired by 16 s to a day; live for an hour, or expired within the 15 s grace.
    let mut items = Vec::with_capacity(EXPIRED + LIVE);
    let mut expired = HashSet::new();
    let mut live = HashSet::new();
    for i in 0..EXPIRED {
        let key = format!("expired-{i:05}");
        items.push(session(&key, now - 16 - (i as i64 % 86_400)));
        expired.insert(key);
    }
    for i in 0..LIVE {
        let key = format!("live-{i:05}");
        let expires = if i % 5 == 0 { now - 14 } else { now + 3600 };
        items.push(session(&key, expires));
        live.insert(key);
    }
    p.table.batch_put(items, 8).await;
    let seeded = started.elapsed();
    assert_eq!(p.keys().await.len(), EXPIRED + LIVE);

    p.proxy.set_plan(
        FaultPlan::new(0.10, Fault::ALL.to_vec())
            .with_seed(2024)
            .with_timeout_hold(TIMEOUT_HOLD),
    );
    let config = SweepConfig::new(p.table.name.as_str())
        .with_total_segments(8)
        .with_page_size(PAGE_SIZE);
    let sweep_started = Instant::now();
    let reports = sweep_until_complete(&p.client, &config, &clock, PAGES_PER_INVOCATION, 60).await;
    let swept = sweep_started.elapsed();
    let stats = p.proxy.stats();
    p.proxy.set_plan(FaultPlan::none());

    // The table, read past the proxy: exactly the live sessions, no checkpoint left.
    let remaining = p.keys().await;
    let lost: Vec<&String> = live.difference(&remaining).collect();
    let not_deleted = expired.intersection(&remaining).count();
    let strangers: Vec<&String> = remaining
        .iter()
        .filter(|k| !live.contains(*k) && !expired.contains(*k))
        .collect();

    let invocations = reports.len();
    let retries = total(&reports, |r| r.retries);
    let throttled = total(&reports, |r| r.throttled_retries);
    let deleted = total(&reports, |r| r.deleted);
    let skipped_live = total(&reports, |r| r.skipped_live);
    let already_gone = total(&reports, |r| r.already_gone);
    let segments_failed: u32 = reports.iter().map(|r| r.segments_failed).sum();
    let seen_failures = p.seen.failures();
    let injected_timeouts = kind(&stats, Fault::Timeout) + kind(&stats, Fault::TimeoutAfterForward);
    let client_timeouts = ClientView::get(&p.seen.timeouts);
    // Failures no fault caused: attempts that outlived the timeout on a busy machine.
    let spontaneous = seen_failures.saturating_sub(stats.injected);
    let errors: Vec<&String> = reports.iter().flat_map(|r| &r.errors).collect();
    println!(
        "sweeper under faults: {} sessions ({EXPIRED} expired, {LIVE} live), {invocations} \
         invocations of at most {PAGES_PER_INVOCATION} pages; {} requests through the proxy \
         {:?}; {} faults injected {:?}, {} batch statements withheld; {retries} retries \
         counted ({throttled} after throttling) for {seen_failures} failures the client saw \
         ({spontaneous} slow attempts timed out without a fault); {deleted} deleted, {already_gone} found already gone \
         after a lost answer, {skipped_live} skipped live; \
         {segments_failed} segments failed, {} errors \
         returned; {} items lost, {not_deleted} expired left; seeding {seeded:?}, sweeping \
         {swept:?}, total {:?}",
        EXPIRED + LIVE,
        stats.requests,
        stats.by_operation,
        stats.injected,
        stats.by_kind,
        stats.batch_entries_withheld,
        errors.len(),
        lost.len(),
        started.elapsed(),
    );

    assert!(lost.is_empty(), "live sessions deleted: {}", lost.len());
    assert_eq!(not_deleted, 0, "expired sessions left behind");
    assert!(strangers.is_empty(), "unexpected items: {strangers:?}");
    assert!(reports.last().unwrap().complete);
    assert!(invocations > 2, "the page budget did not split the work");
    assert!(reports.iter().any(|r| r.segments_resumed > 0));
    // Faults of every kind were injected, and none made a segment fail.
    for fault in Fault::ALL {
        assert!(kind(&stats, fault) > 0, "no {fault} injected: {stats:?}");
    }
    assert_eq!(segments_failed, 0, "{errors:?}");
    assert!(errors.is_empty(), "{errors:?}");
    // Every failure the client saw cost exactly one retry (no call ran out of retries, none
    // was retried twice), and every injected fault was seen as one failure. Failures
    // beyond the faults can only be attempts that outlived the timeout on their own.
    assert_eq!(retries, seen_failures);
    assert!(
        seen_failures >= stats.injected,
        "{seen_failures} < {stats:?}"
    );
    assert!(
        spontaneous <= client_timeouts.saturating_sub(injected_timeouts),
        "{spontaneous} failures without a fault, {client_timeouts} timeouts"
    );
    // Every attempt the client made reached the proxy, and nothing else did.
    assert_eq!(p.attempts.total() as u64, stats.requests);
    // Whole-request throttling is one throttled retry each; a partial batch is one retry,
    // throttled when one of its failed statements was.
    let whole =
        kind(&stats, Fault::ProvisionedThroughputExceeded) + kind(&stats, Fault::Throttling);
    assert!(
        (whole..=whole + kind(&stats, Fault::PartialBatch)).contains(&throttled),
        "{throttled} throttled retries for {stats:?}"
    );
    // Each expired session was handed to the deletes once, and ended deleted, or found
    // already gone when a batch whose answer was lost was sent again.
    assert_eq!(total(&reports, |r| r.expired_found), EXPIRED as u64);
    // ...and was deleted, or found already gone when a batch whose answer was lost (an
    // injected fault, or an attempt that outlived its timeout) was sent again.
    assert_eq!(deleted + already_gone, EXPIRED as u64);
    assert_eq!(skipped_live, 0, "nothing was refreshed");
    let lost_answers = kind(&stats, Fault::TimeoutAfterForward)
        + kind(&stats, Fault::ConnectionResetAfterForward)
        + spontaneous;
    assert!(already_gone <= 25 * lost_answers, "{already_gone}");
    // Every session scanned once; the checkpoint item is scanned too while it exists.
    let scanned = total(&reports, |r| r.scanned);
    assert!(
        (50_000..=50_000 + invocations as u64).contains(&scanned),
        "{scanned}"
    );
    assert_eq!(total(&reports, |r| r.malformed_skipped), 0);
}

/// Seeds `expired` expired and 10 live sessions; returns the live keys.
async fn seed_small(table: &TestTable, clock: &ManualClock, expired: usize) -> HashSet<String> {
    let now = clock.now().unix_timestamp();
    let mut items: Vec<Item> = (0..expired)
        .map(|i| session(&format!("expired-{i:03}"), now - 100))
        .collect();
    let live: HashSet<String> = (0..10).map(|i| format!("live-{i:03}")).collect();
    items.extend(live.iter().map(|k| session(k, now + 3600)));
    table.batch_put(items, 4).await;
    live
}

#[tokio::test]
async fn each_injected_fault_is_one_retry_in_the_report() {
    // (fault, operation, strategy): every kind on the deletes, and the whole-request kinds on
    // the scan and on the single-item deletes.
    let mut cases: Vec<(Fault, &str, DeleteStrategy)> = Fault::ALL
        .iter()
        .map(|f| (*f, PARTIQL, DeleteStrategy::PartiqlBatch))
        .collect();
    for fault in [Fault::Throttling, Fault::Timeout, Fault::ConnectionReset] {
        cases.push((fault, "Scan", DeleteStrategy::PartiqlBatch));
    }
    for fault in [
        Fault::ProvisionedThroughputExceeded,
        Fault::InternalServerError,
        Fault::ConnectionResetAfterForward,
    ] {
        cases.push((fault, "DeleteItem", DeleteStrategy::DeleteItem));
    }
    // The cases are independent (a table and a proxy each): run them side by side.
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut runs = tokio::task::JoinSet::new();
    for (fault, operation, strategy) in cases {
        runs.spawn(exact_case(fault, operation, strategy));
    }
    while let Some(run) = runs.join_next().await {
        run.expect("a case panicked");
    }
}

/// `FAULTS` faults of one kind on one operation: exactly `FAULTS` retries in the report.
async fn exact_case(fault: Fault, operation: &'static str, strategy: DeleteStrategy) {
    const FAULTS: u64 = 3;
    let label = format!("{fault} on {operation}");
    let p = Proxied::with_attempt_timeout("faults-sweep-exact", SHORT_ATTEMPT_TIMEOUT).await;
    let clock = far_future_clock();
    let live = seed_small(&p.table, &clock, 100).await;
    p.proxy.set_plan(
        FaultPlan::new(1.0, vec![fault])
            .only([operation])
            .with_timeout_hold(SHORT_TIMEOUT_HOLD)
            .at_most(FAULTS),
    );
    // One segment, one page: four batches of 25 (or 100 single deletes).
    let config = SweepConfig::new(p.table.name.as_str())
        .with_total_segments(1)
        .with_strategy(strategy);
    let report = sweep(&p.client, &config, &clock, Budget::unlimited())
        .await
        .unwrap();
    let stats = p.proxy.stats();

    assert_eq!(stats.injected, FAULTS, "{label}: {stats:?}");
    assert_eq!(
        p.seen.failures(),
        FAULTS,
        "{label}: a failure without a fault"
    );
    assert_eq!(kind(&stats, fault), FAULTS, "{label}");
    assert_eq!(report.retries, FAULTS, "{label}: {report:?}");
    let throttling = matches!(
        fault,
        Fault::ProvisionedThroughputExceeded | Fault::Throttling
    );
    if fault == Fault::PartialBatch {
        assert!(report.throttled_retries <= FAULTS, "{label}");
        assert!(stats.batch_entries_withheld >= FAULTS, "{label}");
    } else {
        let expected = if throttling { FAULTS } else { 0 };
        assert_eq!(report.throttled_retries, expected, "{label}");
    }
    assert!(
        report.complete && report.errors.is_empty(),
        "{label}: {report:?}"
    );
    assert_eq!(report.expired_found, 100, "{label}");
    // A request applied but unanswered is sent again and finds its items gone: counted
    // as already gone, not as deleted (nor as refreshed).
    let lost_answer = matches!(
        fault,
        Fault::TimeoutAfterForward | Fault::ConnectionResetAfterForward
    );
    let per_request = if operation == PARTIQL { 25 } else { 1 };
    let already_gone = if lost_answer && operation != "Scan" {
        FAULTS * per_request
    } else {
        0
    };
    assert_eq!(report.already_gone, already_gone, "{label}: {report:?}");
    assert_eq!(report.deleted, 100 - already_gone, "{label}");
    assert_eq!(report.skipped_live, 0, "{label}");
    assert_eq!(p.keys().await, live, "{label}");
    assert_eq!(p.attempts.total() as u64, stats.requests, "{label}");
}

#[tokio::test]
async fn retries_run_out_and_the_failure_is_surfaced() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let p = Proxied::new("faults-sweep-exhausted").await;
    let clock = far_future_clock();
    let live = seed_small(&p.table, &clock, 60).await;
    let retry = RetryPolicy::new(2, Duration::from_millis(5), Duration::from_millis(20));
    // One page, its batches one at a time: the first batch's three tries all fail.
    let config = SweepConfig::new(p.table.name.as_str())
        .with_total_segments(1)
        .with_delete_concurrency(1)
        .with_retry(retry);
    p.proxy.set_plan(
        FaultPlan::new(1.0, vec![Fault::Throttling])
            .only([PARTIQL])
            .at_most(100),
    );
    let first = sweep(&p.client, &config, &clock, Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(first.segments_failed, 1, "{first:?}");
    assert_eq!(first.segments_remaining, 0, "{first:?}");
    assert!(!first.complete);
    assert_eq!(
        (first.expired_found, first.deleted, first.already_gone),
        (60, 0, 0)
    );
    assert_eq!((first.retries, first.throttled_retries), (2, 2));
    assert_eq!(p.proxy.stats().injected, 3);
    assert_eq!(first.errors.len(), 1, "{first:?}");
    let error = &first.errors[0];
    assert!(
        error.starts_with("segment 0: ") && error.contains("ThrottlingException"),
        "{error}"
    );
    // Nothing was deleted, and the segment had not finished a page: no cursor to keep,
    // but a checkpoint recording when the pass began (its backlog grows from there).
    assert_eq!(p.keys().await.len(), 70 + 1);
    assert!(first.checkpoint_saved);
    assert!(first.backlog_seconds == 0 && first.pass_began == clock.now().unix_timestamp());

    // Once the faults stop, the next invocation does the work.
    p.proxy.set_plan(FaultPlan::none());
    let second = sweep(&p.client, &config, &clock, Budget::unlimited())
        .await
        .unwrap();
    assert!(second.complete && second.errors.is_empty(), "{second:?}");
    assert_eq!((second.deleted, second.retries), (60, 0));
    assert_eq!(
        p.keys().await,
        live,
        "the checkpoint is cleared with the pass"
    );
}

#[tokio::test]
async fn deletes_applied_without_an_answer_are_reported_unconfirmed() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // (strategy, its delete operation, items per request)
    for (strategy, operation, per_request) in [
        (DeleteStrategy::PartiqlBatch, PARTIQL, 25),
        (DeleteStrategy::DeleteItem, "DeleteItem", 1),
    ] {
        let p = Proxied::new("faults-sweep-unconfirmed").await;
        let clock = far_future_clock();
        seed_small(&p.table, &clock, 60).await;
        // Every delete reaches the table and is applied; every answer is lost, the retry's
        // too. Two requests in flight, one segment.
        p.proxy.set_plan(
            FaultPlan::new(1.0, vec![Fault::ConnectionResetAfterForward]).only([operation]),
        );
        let config = SweepConfig::new(p.table.name.as_str())
            .with_total_segments(1)
            .with_strategy(strategy)
            .with_delete_concurrency(2)
            .with_retry(RetryPolicy::new(
                1,
                Duration::from_millis(5),
                Duration::from_millis(20),
            ));
        let report = sweep(&p.client, &config, &clock, Budget::unlimited())
            .await
            .unwrap();
        let left = p
            .keys()
            .await
            .iter()
            .filter(|k| k.starts_with("expired-"))
            .count() as u64;
        let gone = 60 - left;
        assert_eq!(report.segments_failed, 1, "{strategy:?}: {report:?}");
        assert_eq!(report.deleted, 0, "{strategy:?}: no delete was answered");
        // Both requests in flight finished (none was dropped uncounted) and none started
        // after the failure: what left the table is exactly what is unconfirmed.
        assert_eq!(
            report.unconfirmed,
            2 * per_request,
            "{strategy:?}: {report:?}"
        );
        assert_eq!(
            report.deleted + report.unconfirmed,
            gone,
            "{strategy:?}: {report:?}"
        );
        // Answered failures are not unconfirmed: throttled deletes were never applied.
        p.proxy.set_plan(
            FaultPlan::new(1.0, vec![Fault::Throttling])
                .only([operation])
                .at_most(100),
        );
        let throttled = sweep(&p.client, &config, &clock, Budget::unlimited())
            .await
            .unwrap();
        assert_eq!(throttled.segments_failed, 1, "{throttled:?}");
        assert_eq!(throttled.unconfirmed, 0, "{strategy:?}: {throttled:?}");
    }
}
