//! The sweeper under its deadline while DynamoDB is slow or stalls, and the real-DynamoDB
//! answer shapes its delete path relies on (issue 13).
//!
//! The sweeper's client reaches the table through a [`FaultProxy`] that adds latency to
//! every answer, or splices in the exact shapes real DynamoDB answers with; checks read the
//! table directly, past the proxy.
//!
//! | test | shows |
//! |------|-------|
//! | `a_slow_table_stops_the_sweep_in_time_with_its_checkpoint_saved` | added latency: work stops early enough to save the checkpoint; the next run resumes from it, nothing twice, nothing missed |
//! | `a_stalled_table_ends_the_sweep_at_its_deadline_having_changed_nothing` | no answer at all: every attempt is cut, the sweep reports instead of hanging |
//! | `*_within_the_budget` (soak set) | the same runs, timed: wall time within the budget plus a small epsilon |
//! | `a_statement_refused_with_a_validation_error_is_counted_not_retried` | a per-statement `ValidationError`: counted, reported with its message, never retried; the rest of the batch deleted |
//! | `a_member_without_an_item_is_already_gone_not_deleted` | a `RETURNING ALL OLD *` miss (no `Item`): counted as already gone, never as deleted |
//! | `the_server_answers_deletes_in_the_shapes_the_sweeper_reads` | the server itself: the old item on a delete, nothing on a miss, `Items: []` from `ExecuteStatement` |
//!
//! Time comes from a [`ManualClock`]; the deadline is real time, as in Lambda.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, BatchStatementRequest};
use dynamo_session_store::ManualClock;
use integration_tests::{FAR_FUTURE, Item, LocalDynamo, TestTable, far_future_clock, session_item};
use local_dynamodb::faults::{Fault, FaultPlan, FaultProxy};
use sweeper_lambda::client::dynamodb_client;
use sweeper_lambda::config::DEFAULT_ATTEMPT_TIMEOUT;
use sweeper_lambda::delete::delete_statement;
use sweeper_lambda::{Budget, RetryPolicy, SweepConfig, SweepReport, read_checkpoint, sweep};
use tokio::time::Instant;

/// A test table, and the Lambda's own client reaching it through a fault proxy.
struct Behind {
    table: TestTable,
    proxy: FaultProxy,
    client: Client,
}

impl Behind {
    async fn new(label: &str) -> Self {
        let table = TestTable::new(label).await;
        let proxy = FaultProxy::in_front_of(LocalDynamo::shared()).expect("start fault proxy");
        let client = dynamodb_client(Some(&proxy.endpoint()), DEFAULT_ATTEMPT_TIMEOUT).await;
        Self {
            table,
            proxy,
            client,
        }
    }

    /// `expired` sessions expired an hour before the clock and `live` live ones, written
    /// past the proxy; the live keys.
    async fn seed(&self, expired: usize, live: usize) -> HashSet<String> {
        let mut items: Vec<Item> = (0..expired)
            .map(|i| session_item(&format!("old-{i:05}"), "{}", FAR_FUTURE - 3600))
            .collect();
        let live: HashSet<String> = (0..live).map(|i| format!("live-{i:03}")).collect();
        items.extend(
            live.iter()
                .map(|k| session_item(k, "{}", FAR_FUTURE + 3600)),
        );
        self.table.batch_put(items, 4).await;
        live
    }

    fn config(&self) -> SweepConfig {
        SweepConfig::new(self.table.name.as_str())
            .with_total_segments(2)
            .with_page_size(40)
            .with_retry(patience())
    }
}

/// Short attempts and delays, so a stall shows within seconds: the checkpoint's reserve
/// is 2 x 300 ms + 40 ms.
fn patience() -> RetryPolicy {
    RetryPolicy::new(10, Duration::from_millis(20), Duration::from_millis(100))
        .with_attempt_timeout(Duration::from_millis(300))
}

const EXPIRED: usize = 4000;
const LIVE: usize = 50;
const SLOW_BUDGET: Duration = Duration::from_millis(2500);
const STALL_BUDGET: Duration = Duration::from_millis(1500);
/// What the soak-set tests allow past the budget: dropping the cut requests and building
/// the report.
const EPSILON: Duration = Duration::from_millis(250);

/// A sweep through 100 ms of added latency per answer, with a 2.5 s budget: far too short
/// for 4,000 sessions. Then a second sweep, latency gone, to finish. The first report, its
/// wall time, the second report.
async fn slow_then_resumed(label: &str) -> (SweepReport, Duration, SweepReport) {
    let b = Behind::new(label).await;
    let live = b.seed(EXPIRED, LIVE).await;
    let clock = far_future_clock();
    let config = b.config();
    b.proxy.set_latency(Duration::from_millis(100));
    let started = Instant::now();
    let first = sweep(
        &b.client,
        &config,
        &clock,
        Budget::for_duration(SLOW_BUDGET),
    )
    .await
    .expect("the sweep runs");
    let took = started.elapsed();
    assert!(!first.complete, "{first:?}");
    assert!(first.checkpoint_saved, "work was done: {first:?}");
    assert!(
        first.errors.is_empty() && first.segments_failed == 0,
        "{first:?}"
    );
    assert!(first.pages > 0 && first.deleted > 0, "{first:?}");
    let saved = read_checkpoint(&b.table.client, &config).await.unwrap();
    let saved = saved.expect("a checkpoint item");
    assert!(
        (0..2).any(|s| saved.cursor(s).is_some() || saved.is_done(s)),
        "{saved:?}"
    );

    b.proxy.set_latency(Duration::ZERO);
    let second = sweep(&b.client, &config, &clock, Budget::unlimited())
        .await
        .expect("the sweep runs");
    assert!(second.complete && second.errors.is_empty(), "{second:?}");
    assert!(second.segments_resumed >= 1, "{second:?}");
    // Nothing missed: only the live sessions are left. Nothing counted twice: the two
    // reports never count more deletes than there were sessions. A batch cut at the
    // deadline may have been applied unanswered: its sessions are then counted by neither
    // run (the second no longer finds them), at most a page per segment.
    let counted = first.deleted + second.deleted;
    assert!(counted <= EXPIRED as u64, "{first:?} {second:?}");
    assert!(
        EXPIRED as u64 - counted <= 2 * 40,
        "more than a page per segment uncounted: {first:?} {second:?}"
    );
    assert_eq!(b.table.keys("id").await, live);
    assert_eq!(
        read_checkpoint(&b.table.client, &config).await.unwrap(),
        None
    );
    (first, took, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_table_stops_the_sweep_in_time_with_its_checkpoint_saved() {
    slow_then_resumed("deadline-slow").await;
}

/// Soak set: the same run, timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: asserts on wall-clock time; run with `cargo test --workspace -- --ignored`"]
async fn a_slow_table_stops_the_sweep_within_the_budget() {
    let (first, took, _) = slow_then_resumed("deadline-slow-timed").await;
    println!("slow table: {took:?} for a {SLOW_BUDGET:?} budget: {first:?}");
    assert!(took <= SLOW_BUDGET + EPSILON, "{took:?}");
}

/// A sweep against a table that never answers (30 s per answer), with a 1.5 s budget.
async fn stalled(label: &str) -> (SweepReport, Duration) {
    let b = Behind::new(label).await;
    b.seed(30, 5).await;
    let clock = far_future_clock();
    b.proxy.set_latency(Duration::from_secs(30));
    let started = Instant::now();
    let report = sweep(
        &b.client,
        &b.config(),
        &clock,
        Budget::for_duration(STALL_BUDGET),
    )
    .await
    .expect("a stall is not an error: the sweep reports");
    let took = started.elapsed();
    // Every attempt was cut (the client's own timeout is 10 s) and retried until the
    // deadline: no page was processed, nothing was written, nothing failed.
    assert!(!report.complete, "{report:?}");
    assert_eq!((report.pages, report.deleted), (0, 0), "{report:?}");
    assert!(report.retries >= 1, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(!report.checkpoint_saved, "{report:?}");
    assert_eq!(b.table.keys("id").await.len(), 35);
    (report, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_table_ends_the_sweep_at_its_deadline_having_changed_nothing() {
    stalled("deadline-stall").await;
}

/// Soak set: the same run, timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: asserts on wall-clock time; run with `cargo test --workspace -- --ignored`"]
async fn a_stalled_table_ends_the_sweep_within_the_budget() {
    let (report, took) = stalled("deadline-stall-timed").await;
    println!("stalled table: {took:?} for a {STALL_BUDGET:?} budget: {report:?}");
    assert!(took <= STALL_BUDGET + EPSILON, "{took:?}");
}

/// One sweep of 30 expired sessions with one `BatchExecuteStatement` answered in `shape`.
async fn one_shape(label: &str, shape: Fault) -> (Behind, SweepReport, u64, ManualClock) {
    let b = Behind::new(label).await;
    b.seed(30, 0).await;
    let clock = far_future_clock();
    let config = b.config().with_total_segments(1).with_page_size(0);
    b.proxy.set_plan(
        FaultPlan::new(1.0, vec![shape])
            .only(["BatchExecuteStatement"])
            .at_most(1),
    );
    let report = sweep(&b.client, &config, &clock, Budget::unlimited())
        .await
        .expect("the sweep runs");
    let withheld = b.proxy.stats().batch_entries_withheld;
    assert!(withheld >= 1, "the shape was spliced in");
    (b, report, withheld, clock)
}

#[tokio::test]
async fn a_statement_refused_with_a_validation_error_is_counted_not_retried() {
    let (b, report, refused, clock) =
        one_shape("shape-validation", Fault::StatementValidationError).await;
    assert_eq!(report.statement_errors, refused, "{report:?}");
    assert_eq!(
        report.deleted,
        30 - refused,
        "the rest of the batch went on: {report:?}"
    );
    assert_eq!((report.retries, report.already_gone), (0, 0), "{report:?}");
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(
        report.errors[0].contains("ValidationError") && report.errors[0].contains("Type mismatch"),
        "reported with its message: {:?}",
        report.errors
    );
    // The refused items are still there; a later sweep without the fault deletes them.
    assert_eq!(b.table.keys("id").await.len() as u64, refused);
    let again = sweep(&b.client, &b.config(), &clock, Budget::unlimited())
        .await
        .unwrap();
    assert_eq!((again.deleted, again.statement_errors), (refused, 0));
    assert!(b.table.keys("id").await.is_empty());
}

#[tokio::test]
async fn a_member_without_an_item_is_already_gone_not_deleted() {
    let (b, report, missed, clock) = one_shape("shape-miss", Fault::StatementMiss).await;
    assert_eq!(report.already_gone, missed, "{report:?}");
    assert_eq!(report.deleted, 30 - missed, "{report:?}");
    assert_eq!(
        (report.retries, report.statement_errors),
        (0, 0),
        "{report:?}"
    );
    assert!(report.errors.is_empty(), "{report:?}");
    // They were never executed: still there, and deleted by the next sweep.
    assert_eq!(b.table.keys("id").await.len() as u64, missed);
    let again = sweep(&b.client, &b.config(), &clock, Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(again.deleted, missed);
}

/// The server's own answers to the sweeper's delete, without any proxy: what real
/// DynamoDB answers (recorded by a public conformance suite against AWS), and what the
/// delete path reads.
#[tokio::test]
async fn the_server_answers_deletes_in_the_shapes_the_sweeper_reads() {
    let table = TestTable::new("delete-shapes").await;
    let old = session_item("gone-soon", r#"{"user":7}"#, 100);
    table.raw_put(old.clone()).await;
    let statement = delete_statement(&table.name, &dynamo_session_store::ItemSchema::new());
    let delete = |key: &str| {
        BatchStatementRequest::builder()
            .statement(&statement)
            .parameters(AttributeValue::S(key.to_owned()))
            .parameters(AttributeValue::N("200".to_owned()))
            .build()
            .unwrap()
    };
    let out = table
        .client
        .batch_execute_statement()
        .statements(delete("gone-soon"))
        .statements(delete("never-written"))
        .send()
        .await
        .expect("BatchExecuteStatement");
    let responses = out.responses();
    assert_eq!(responses.len(), 2);
    // A delete returns the whole old item on `Responses[i].Item`...
    assert_eq!(responses[0].item(), Some(&old));
    assert!(responses[0].error().is_none());
    // ...and a miss returns no item, and no error.
    assert_eq!(responses[1].item(), None);
    assert!(responses[1].error().is_none(), "{:?}", responses[1]);
    assert!(table.raw_get("gone-soon").await.is_none());

    // ExecuteStatement answers a miss with an empty `Items`.
    let out = table
        .client
        .execute_statement()
        .statement(&statement)
        .parameters(AttributeValue::S("never-written".to_owned()))
        .parameters(AttributeValue::N("200".to_owned()))
        .send()
        .await
        .expect("ExecuteStatement");
    assert!(out.items().is_empty(), "{:?}", out.items());
}

/// A checkpoint read cut short by the deadline while the run still had time (the next
/// back-off would not fit) is not "no checkpoint": the run does no work and writes
/// nothing, so it cannot overwrite the real progress with its own, and its report says
/// why. The next run, with DynamoDB answering, resumes from the real checkpoint.
#[tokio::test]
async fn a_checkpoint_read_cut_short_does_no_work_and_writes_nothing() {
    let b = Behind::new("sweep-cut-checkpoint-read").await;
    b.seed(200, 10).await;
    let clock = far_future_clock();
    let config = b.config().with_total_segments(4);
    // Real progress: one run of two pages, past the proxy.
    let first = sweep(
        &b.table.client,
        &config,
        &clock,
        Budget::unlimited().with_max_pages(2),
    )
    .await
    .unwrap();
    assert!(first.checkpoint_saved && first.deleted > 0, "{first:?}");
    let key = config.checkpoint_key().unwrap();
    let saved = b.table.raw_get(&key).await.expect("the real checkpoint");

    // Every GetItem throttled, back-offs that soon outgrow the time left: 300 ms, 600 ms,
    // then 1.2 s against a work deadline about 1 s away.
    b.proxy.set_plan(
        FaultPlan::new(1.0, vec![Fault::Throttling])
            .only(["GetItem"])
            .at_most(10),
    );
    let retry = RetryPolicy::new(10, Duration::from_millis(300), Duration::from_secs(2))
        .with_attempt_timeout(Duration::from_millis(100))
        .without_jitter();
    let cut_config = config.clone().with_retry(retry);
    let reserve = cut_config.retry().checkpoint_reserve();
    let report = sweep(
        &b.client,
        &cut_config,
        &clock,
        Budget::for_duration(reserve + Duration::from_millis(1_000)),
    )
    .await
    .expect("a report: nothing failed, time ran out");
    assert!(report.checkpoint_unread, "{report:?}");
    assert!(report.retries >= 1, "{report:?}");
    assert_eq!(
        (report.pages, report.deleted),
        (0, 0),
        "no work: {report:?}"
    );
    assert!(!report.complete && !report.checkpoint_saved, "{report:?}");
    assert_eq!(
        b.table.raw_get(&key).await.as_ref(),
        Some(&saved),
        "nothing written"
    );

    // DynamoDB answers again: the next run resumes from the real progress.
    b.proxy.set_plan(FaultPlan::none());
    let next = sweep(&b.client, &config, &clock, Budget::unlimited())
        .await
        .unwrap();
    assert!(next.complete && !next.checkpoint_unread, "{next:?}");
    assert!(
        next.segments_resumed > 0 || next.segments_completed < 4,
        "{next:?}"
    );
    assert_eq!(first.deleted + next.deleted, 200);
}
