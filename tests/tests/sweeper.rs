//! The sweeper against a real DynamoDB-compatible server (embedded dynoxide, or
//! `DYNAMODB_ENDPOINT`), one fresh table per test, time from a [`ManualClock`].
//!
//! | test | shows |
//! |------|-------|
//! | `keeps_exactly_live_and_malformed_items` | 1, 4 and 16 segments, both delete strategies: only expired sessions go, counts exact |
//! | `refreshed_session_survives_*` | a session refreshed between scan and delete is skipped live |
//! | `sessions_gone_before_*` | a session deleted between scan and delete is `already_gone`, not deleted |
//! | `cut_short_sweep_resumes_*` | page budget / deadline: checkpoint saved, resumed, nothing twice, nothing missed |
//! | `slices_cover_the_table_exactly_once` | concurrent slices partition the work |
//! | `dry_run_deletes_nothing` | counts, no deletes, no checkpoint |
//! | `other_prefixes_*`, `custom_attribute_names_*` | the schema is honoured end to end |
//! | `the_backlog_grows_*` | `backlog_seconds` grows run after run until a pass completes |

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_session_store::clock::Clock;
use dynamo_session_store::{ItemSchema, ManualClock};
use integration_tests::{Item, TestTable, far_future_clock, n, s};
use sweeper_lambda::testing::{PageHook, sweep_with_hook};
use sweeper_lambda::{
    Budget, DeleteStrategy, Slice, SweepConfig, SweepReport, read_checkpoint, sweep,
};

fn now(clock: &ManualClock) -> i64 {
    clock.now().unix_timestamp()
}

fn session(schema: &ItemSchema, key: &str, expires: AttributeValue) -> Item {
    HashMap::from([
        (
            schema.key_attribute().to_owned(),
            AttributeValue::S(key.to_owned()),
        ),
        (schema.expires_attribute().to_owned(), expires),
        (
            schema.data_attribute().to_owned(),
            AttributeValue::S(r#"{"user":42}"#.to_owned()),
        ),
    ])
}

/// What a test table holds, by kind of item.
#[derive(Debug, Default)]
struct Seeded {
    live: HashSet<String>,
    expired: HashSet<String>,
    malformed: HashSet<String>,
}

impl Seeded {
    fn survivors(&self) -> HashSet<String> {
        self.live.union(&self.malformed).cloned().collect()
    }
}

/// Writes `live` live sessions (half of them within the grace window: expired for 5 s,
/// which is less than the 15 s grace), `expired` expired ones, and six malformed items.
async fn seed(
    table: &TestTable,
    schema: &ItemSchema,
    clock: &ManualClock,
    live: usize,
    expired: usize,
) -> Seeded {
    let now = now(clock);
    let prefix = schema.key_prefix();
    let mut seeded = Seeded::default();
    let mut items = Vec::new();
    for i in 0..live {
        let key = format!("{prefix}live-{i:04}");
        let expires = if i % 2 == 0 { now + 3600 } else { now - 5 };
        items.push(session(schema, &key, n(expires)));
        seeded.live.insert(key);
    }
    for i in 0..expired {
        let key = format!("{prefix}expired-{i:04}");
        items.push(session(schema, &key, n(now - 100 - i as i64)));
        seeded.expired.insert(key);
    }
    let malformed = [
        ("text-expiry-old", Some(AttributeValue::S("1".into()))),
        ("text-expiry", Some(AttributeValue::S("tomorrow".into()))),
        ("bool-expiry", Some(AttributeValue::Bool(true))),
        ("fractional-expiry", Some(AttributeValue::N("12.5".into()))),
        ("no-expiry", None),
        ("no-expiry-2", None),
    ];
    for (name, expires) in malformed {
        let key = format!("{prefix}malformed-{name}");
        let mut item = session(schema, &key, n(0));
        match expires {
            Some(v) => item.insert(schema.expires_attribute().to_owned(), v),
            None => item.remove(schema.expires_attribute()),
        };
        items.push(item);
        seeded.malformed.insert(key);
    }
    table.batch_put(items, 4).await;
    seeded
}

/// A fresh table with the default schema, seeded with `live` and `expired` sessions as of
/// the far-future clock.
async fn fixture(
    label: &str,
    live: usize,
    expired: usize,
) -> (TestTable, ItemSchema, ManualClock, Seeded) {
    let table = TestTable::new(label).await;
    let schema = ItemSchema::default();
    let clock = far_future_clock();
    let seeded = seed(&table, &schema, &clock, live, expired).await;
    (table, schema, clock, seeded)
}

/// The checkpoint key of slice `label`, as the sweeper names it.
fn checkpoint_key(schema: &ItemSchema, label: &str) -> String {
    schema
        .reserved_key(&format!(
            "{}{label}",
            sweeper_lambda::config::CHECKPOINT_KEY_NAME
        ))
        .unwrap()
}

async fn keys_in(table: &TestTable, schema: &ItemSchema) -> HashSet<String> {
    table
        .scan_all()
        .await
        .into_iter()
        .map(|item| schema.key_of(&item).unwrap().to_owned())
        .filter(|key| !schema.is_reserved_key(key))
        .collect()
}

async fn checkpoint_items(table: &TestTable, schema: &ItemSchema) -> Vec<String> {
    table
        .scan_all()
        .await
        .into_iter()
        .map(|item| schema.key_of(&item).unwrap().to_owned())
        .filter(|key| schema.is_reserved_key(key))
        .collect()
}

fn config(table: &TestTable) -> SweepConfig {
    SweepConfig::new(table.name.as_str()).with_page_size(7)
}

/// One unlimited sweep of `table` in two segments with `strategy`, calling `hook`.
async fn sweep_two_segments(
    table: &TestTable,
    clock: &ManualClock,
    strategy: DeleteStrategy,
    hook: Arc<dyn PageHook>,
) -> SweepReport {
    let config = config(table).with_total_segments(2).with_strategy(strategy);
    sweep_with_hook(&table.client, &config, clock, Budget::unlimited(), hook)
        .await
        .expect("a sweep")
}

/// Records every key handed to the deletes, to prove nothing is handled twice.
#[derive(Debug, Default)]
struct Recorder {
    keys: Mutex<Vec<String>>,
}

#[async_trait]
impl PageHook for Recorder {
    async fn before_delete(&self, _segment: u32, expired: &[String]) {
        self.keys.lock().unwrap().extend(expired.iter().cloned());
    }
}

impl Recorder {
    fn keys(&self) -> Vec<String> {
        self.keys.lock().unwrap().clone()
    }
}

fn assert_unique(keys: &[String]) -> HashSet<String> {
    let set: HashSet<String> = keys.iter().cloned().collect();
    assert_eq!(
        set.len(),
        keys.len(),
        "a key was handed to the deletes twice"
    );
    set
}

#[tokio::test]
async fn keeps_exactly_live_and_malformed_items() {
    for (segments, strategy) in [
        (1, DeleteStrategy::PartiqlBatch),
        (4, DeleteStrategy::PartiqlBatch),
        (16, DeleteStrategy::PartiqlBatch),
        (4, DeleteStrategy::DeleteItem),
    ] {
        let (table, schema, clock, seeded) = fixture("sweep-keeps-live", 40, 90).await;
        // Another slice's checkpoint (no expiry): never deleted, never counted.
        let foreign = checkpoint_key(&schema, "0-3of3");
        table
            .raw_put(HashMap::from([("id".to_owned(), s(&foreign))]))
            .await;

        let config = config(&table)
            .with_total_segments(segments)
            .with_strategy(strategy);
        let report = sweep(&table.client, &config, &clock, Budget::unlimited())
            .await
            .unwrap();

        let label = format!("{segments} segments, {strategy:?}");
        assert_eq!(
            keys_in(&table, &schema).await,
            seeded.survivors(),
            "{label}"
        );
        assert_eq!(
            checkpoint_items(&table, &schema).await,
            [foreign],
            "{label}"
        );
        assert_eq!(report.scanned, 40 + 90 + 6 + 1, "{label}");
        assert_eq!(report.expired_found, 90, "{label}");
        assert_eq!(report.deleted, 90, "{label}");
        assert_eq!(report.skipped_live, 0, "{label}");
        assert_eq!(report.already_gone, 0, "{label}");
        assert_eq!(report.malformed_skipped, 6, "{label}");
        assert_eq!(report.segments_completed, segments, "{label}");
        assert_eq!(report.segments_failed, 0, "{label}");
        assert_eq!(report.segments_remaining, 0, "{label}");
        assert!(report.complete, "{label}");
        assert!(!report.checkpoint_saved, "{label}");
        assert!(report.errors.is_empty(), "{label}: {:?}", report.errors);
        assert_eq!(report.cutoff, now(&clock) - 15, "{label}");
        let deletes = match strategy {
            DeleteStrategy::PartiqlBatch => "BatchExecuteStatement",
            _ => "DeleteItem",
        };
        assert!(table.requests.count(deletes) > 0, "{label}");

        // A second sweep finds nothing more to delete.
        let again = sweep(&table.client, &config, &clock, Budget::unlimited())
            .await
            .unwrap();
        assert_eq!((again.expired_found, again.deleted), (0, 0), "{label}");
        assert_eq!(again.malformed_skipped, 6, "{label}");
    }
}

/// Refreshes the first expired key of the first page it sees, as a user request would;
/// or, with `reshape`, rewrites it into another application's shape (its data attribute
/// removed, or replaced by one of another type), still expired.
#[derive(Debug)]
struct RefreshFirst {
    client: aws_sdk_dynamodb::Client,
    table: String,
    new_expiry: i64,
    /// `Some(None)`: remove the data attribute; `Some(Some(v))`: set it to `v`.
    reshape: Option<Option<AttributeValue>>,
    refreshed: Mutex<Option<String>>,
}

#[async_trait]
impl PageHook for RefreshFirst {
    async fn before_delete(&self, _segment: u32, expired: &[String]) {
        let key = {
            let mut refreshed = self.refreshed.lock().unwrap();
            if refreshed.is_some() {
                return;
            }
            *refreshed = Some(expired[0].clone());
            expired[0].clone()
        };
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key));
        let update = if let Some(reshape) = &self.reshape {
            let update = update.expression_attribute_names("#d", "data");
            match reshape {
                None => update.update_expression("REMOVE #d"),
                Some(value) => update
                    .update_expression("SET #d = :d")
                    .expression_attribute_values(":d", value.clone()),
            }
        } else {
            update
                .update_expression("SET #e = :e")
                .expression_attribute_names("#e", "expires")
                .expression_attribute_values(":e", n(self.new_expiry))
        };
        update.send().await.expect("refresh");
    }
}

#[tokio::test]
async fn refreshed_session_survives_the_delete_with_both_strategies() {
    for strategy in [DeleteStrategy::PartiqlBatch, DeleteStrategy::DeleteItem] {
        let (table, schema, clock, seeded) = fixture("sweep-refresh", 4, 30).await;
        let hook = Arc::new(RefreshFirst {
            client: table.client.clone(),
            table: table.name.clone(),
            new_expiry: now(&clock) + 3600,
            reshape: None,
            refreshed: Mutex::new(None),
        });
        let report = sweep_two_segments(&table, &clock, strategy, hook.clone()).await;

        let refreshed = hook.refreshed.lock().unwrap().clone().unwrap();
        assert!(seeded.expired.contains(&refreshed));
        let mut expected = seeded.survivors();
        expected.insert(refreshed);
        assert_eq!(keys_in(&table, &schema).await, expected, "{strategy:?}");
        assert_eq!(report.expired_found, 30, "{strategy:?}");
        assert_eq!(report.deleted, 29, "{strategy:?}");
        assert_eq!(report.skipped_live, 1, "{strategy:?}");
        assert_eq!(report.already_gone, 0, "{strategy:?}");
        assert!(report.complete);
    }
}

#[tokio::test]
async fn an_item_rewritten_into_another_shape_after_the_scan_is_not_deleted() {
    // The delete's condition checks the session shape too: an expired session that another
    // application rewrote between the scan and the delete (no data attribute, or data of
    // neither session type) is kept.
    let reshapes = [
        None,
        Some(AttributeValue::M(Default::default())),
        Some(n(7)),
        Some(AttributeValue::Ss(vec!["x".into()])),
    ];
    for (strategy, reshape) in [DeleteStrategy::PartiqlBatch, DeleteStrategy::DeleteItem]
        .into_iter()
        .flat_map(|s| reshapes.iter().map(move |r| (s, r.clone())))
    {
        let (table, schema, clock, seeded) = fixture("sweep-reshape", 4, 30).await;
        let hook = Arc::new(RefreshFirst {
            client: table.client.clone(),
            table: table.name.clone(),
            new_expiry: 0,
            reshape: Some(reshape.clone()),
            refreshed: Mutex::new(None),
        });
        let report = sweep_two_segments(&table, &clock, strategy, hook.clone()).await;
        let reshaped = hook.refreshed.lock().unwrap().clone().unwrap();
        let mut expected = seeded.survivors();
        expected.insert(reshaped.clone());
        assert_eq!(keys_in(&table, &schema).await, expected, "{strategy:?}");
        assert_eq!(
            (report.deleted, report.skipped_live),
            (29, 1),
            "{strategy:?}"
        );
        let item = table.raw_get(&reshaped).await.expect("kept");
        assert_eq!(item.get("data"), reshape.as_ref(), "{strategy:?}");
    }
}

/// Deletes the first expired key of each page before the sweeper does, as a logout (or
/// native TTL) would.
#[derive(Debug)]
struct DeleteFirst {
    client: aws_sdk_dynamodb::Client,
    table: String,
    gone: Mutex<Vec<String>>,
}

#[async_trait]
impl PageHook for DeleteFirst {
    async fn before_delete(&self, _segment: u32, expired: &[String]) {
        let key = expired[0].clone();
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.clone()))
            .send()
            .await
            .expect("logout");
        self.gone.lock().unwrap().push(key);
    }
}

#[tokio::test]
async fn sessions_gone_before_the_delete_are_not_counted_as_deleted() {
    for strategy in [DeleteStrategy::PartiqlBatch, DeleteStrategy::DeleteItem] {
        let (table, schema, clock, seeded) = fixture("sweep-gone", 4, 30).await;
        let hook = Arc::new(DeleteFirst {
            client: table.client.clone(),
            table: table.name.clone(),
            gone: Mutex::new(Vec::new()),
        });
        let report = sweep_two_segments(&table, &clock, strategy, hook.clone()).await;
        let gone = hook.gone.lock().unwrap().len() as u64;
        assert!(gone >= 2, "{strategy:?}: one per page, two segments");
        assert_eq!(report.expired_found, 30, "{strategy:?}");
        assert_eq!(report.already_gone, gone, "{strategy:?}: {report:?}");
        assert_eq!(report.deleted, 30 - gone, "{strategy:?}");
        assert_eq!(report.skipped_live, 0, "{strategy:?}");
        assert_eq!(keys_in(&table, &schema).await, seeded.survivors());
    }
}

#[tokio::test]
async fn cut_short_sweep_resumes_and_finishes_with_nothing_twice_and_nothing_missed() {
    let (table, schema, clock, seeded) = fixture("sweep-resume", 20, 150).await;
    let config = SweepConfig::new(table.name.as_str())
        .with_total_segments(4)
        .with_page_size(10);
    let recorder = Arc::new(Recorder::default());

    // First invocation: three pages only.
    let first = sweep_with_hook(
        &table.client,
        &config,
        &clock,
        Budget::unlimited().with_max_pages(3),
        recorder.clone(),
    )
    .await
    .unwrap();
    assert!(!first.complete);
    assert!(first.checkpoint_saved);
    assert_eq!(first.pages, 3);
    assert!(first.deleted > 0 && first.deleted < 150);
    assert_eq!(first.segments_failed, 0);
    assert_eq!(
        first.segments_completed + first.segments_remaining,
        4,
        "{first:?}"
    );
    // The checkpoint round trip: the cursors are in the table under the slice's key.
    assert_eq!(
        checkpoint_items(&table, &schema).await,
        [checkpoint_key(&schema, "0-4of4")]
    );
    let saved = read_checkpoint(&table.client, &config)
        .await
        .unwrap()
        .expect("a checkpoint");
    let with_cursor = (0..4).filter(|s| saved.cursor(*s).is_some()).count();
    assert!(with_cursor > 0, "{saved:?}");
    assert_eq!(
        saved.done_segments().count() as u32,
        first.segments_completed
    );

    // Later invocations with small budgets until the slice is done.
    let mut reports = vec![first];
    for _ in 0..40 {
        if reports.last().unwrap().complete {
            break;
        }
        let next = sweep_with_hook(
            &table.client,
            &config,
            &clock,
            Budget::unlimited().with_max_pages(4),
            recorder.clone(),
        )
        .await
        .unwrap();
        assert_eq!(next.segments_failed, 0);
        reports.push(next);
    }
    let last = reports.last().unwrap();
    assert!(last.complete, "never finished: {reports:#?}");
    assert!(reports.len() > 2);
    assert!(reports.iter().any(|r| r.segments_resumed > 0));

    // Nothing deleted twice, nothing missed, nothing live touched.
    let handled = assert_unique(&recorder.keys());
    assert_eq!(handled, seeded.expired);
    let deleted: u64 = reports.iter().map(|r| r.deleted).sum();
    let skipped: u64 = reports.iter().map(|r| r.skipped_live).sum();
    assert_eq!((deleted, skipped), (150, 0));
    assert_eq!(keys_in(&table, &schema).await, seeded.survivors());
    // Each malformed item is met once per pass over its segment, never deleted.
    let pages: u64 = reports.iter().map(|r| r.pages).sum();
    assert!(pages >= 16, "{pages}");
    let malformed: u64 = reports.iter().map(|r| r.malformed_skipped).sum();
    assert_eq!(malformed, seeded.malformed.len() as u64, "{reports:#?}");
    let left = keys_in(&table, &schema).await;
    assert!(seeded.malformed.is_subset(&left));
    // Finished: the checkpoint is gone, so the next run starts from the top.
    assert!(checkpoint_items(&table, &schema).await.is_empty());
    assert!(
        read_checkpoint(&table.client, &config)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn cut_short_by_a_deadline_starts_nothing_and_keeps_the_checkpoint() {
    let (table, schema, clock, seeded) = fixture("sweep-deadline", 2, 40).await;
    let config = SweepConfig::new(table.name.as_str())
        .with_total_segments(2)
        .with_page_size(10);

    // Some progress first, so there is a checkpoint.
    let first = sweep(
        &table.client,
        &config,
        &clock,
        Budget::unlimited().with_max_pages(1),
    )
    .await
    .unwrap();
    assert!(first.checkpoint_saved);
    let saved = read_checkpoint(&table.client, &config).await.unwrap();

    // A deadline already past: no page is started, the checkpoint is kept as it was.
    let past = Budget::until(tokio::time::Instant::now());
    let cut = sweep(&table.client, &config, &clock, past).await.unwrap();
    assert_eq!((cut.pages, cut.scanned, cut.deleted), (0, 0, 0));
    assert!(!cut.complete);
    assert_eq!(cut.segments_completed + cut.segments_remaining, 2);
    assert_eq!(
        read_checkpoint(&table.client, &config).await.unwrap(),
        saved
    );

    // A generous deadline finishes the job.
    let done = sweep(
        &table.client,
        &config,
        &clock,
        Budget::for_duration(std::time::Duration::from_secs(120)),
    )
    .await
    .unwrap();
    assert!(done.complete);
    assert_eq!(first.deleted + done.deleted, 40);
    assert_eq!(keys_in(&table, &schema).await, seeded.survivors());
}

#[tokio::test]
async fn slices_cover_the_table_exactly_once() {
    let (table, schema, clock, seeded) = fixture("sweep-slices", 30, 120).await;
    let base = SweepConfig::new(table.name.as_str())
        .with_total_segments(8)
        .with_page_size(9);
    let recorder = Arc::new(Recorder::default());
    let slices = [Slice::new(0, 3), Slice::new(3, 5), Slice::new(5, 8)];
    let runs = slices.map(|slice| {
        let config = base.clone().with_slice(slice);
        let (client, clock, recorder) = (table.client.clone(), clock.clone(), recorder.clone());
        tokio::spawn(async move {
            sweep_with_hook(&client, &config, &clock, Budget::unlimited(), recorder).await
        })
    });
    let mut reports: Vec<SweepReport> = Vec::new();
    for run in runs {
        reports.push(run.await.unwrap().unwrap());
    }
    let labels: Vec<&str> = reports.iter().map(|r| r.slice.as_str()).collect();
    assert_eq!(labels, ["0-3of8", "3-5of8", "5-8of8"]);
    assert_eq!(
        reports
            .iter()
            .map(|r| r.segments_completed)
            .collect::<Vec<_>>(),
        [3, 2, 3]
    );
    assert!(reports.iter().all(|r| r.complete));
    let handled = assert_unique(&recorder.keys());
    assert_eq!(handled, seeded.expired);
    let total = |f: fn(&SweepReport) -> u64| reports.iter().map(f).sum::<u64>();
    assert_eq!(total(|r| r.scanned), 30 + 120 + 6);
    assert_eq!(total(|r| r.deleted), 120);
    assert_eq!(total(|r| r.malformed_skipped), 6);
    assert_eq!(keys_in(&table, &schema).await, seeded.survivors());
}

#[tokio::test]
async fn dry_run_deletes_nothing_and_writes_no_checkpoint() {
    let (table, schema, clock, seeded) = fixture("sweep-dry-run", 10, 50).await;
    table.requests.reset();
    let config = config(&table).with_total_segments(4).with_dry_run(true);
    let report = sweep(&table.client, &config, &clock, Budget::unlimited())
        .await
        .unwrap();
    assert!(report.dry_run && report.complete);
    assert_eq!(report.expired_found, 50);
    assert_eq!(report.malformed_skipped, 6);
    assert_eq!((report.deleted, report.skipped_live), (0, 0));
    assert_eq!(table.requests.writes(), 0);
    let all: HashSet<String> = seeded.survivors().union(&seeded.expired).cloned().collect();
    assert_eq!(keys_in(&table, &schema).await, all);

    // Cut short, a dry run still leaves no checkpoint behind.
    let cut = sweep(
        &table.client,
        &config,
        &clock,
        Budget::unlimited().with_max_pages(2),
    )
    .await
    .unwrap();
    assert!(!cut.complete && !cut.checkpoint_saved);
    assert!(checkpoint_items(&table, &schema).await.is_empty());
    assert_eq!(table.requests.writes(), 0);
}

#[tokio::test]
async fn other_prefixes_in_a_shared_table_are_left_alone() {
    let schema = ItemSchema::default().with_key_prefix("app1:");
    let table = TestTable::with_schema("sweep-prefix", schema.clone()).await;
    let clock = far_future_clock();
    let ours = seed(&table, &schema, &clock, 5, 20).await;
    let others = ItemSchema::default().with_key_prefix("app2:");
    let theirs = seed(&table, &others, &clock, 5, 20).await;
    let config = config(&table).with_schema(schema.clone());
    let report = sweep(&table.client, &config, &clock, Budget::unlimited())
        .await
        .unwrap();
    assert_eq!((report.expired_found, report.deleted), (20, 20));
    assert_eq!(report.malformed_skipped, 6);
    let mut expected = ours.survivors();
    expected.extend(theirs.survivors());
    expected.extend(theirs.expired);
    assert_eq!(keys_in(&table, &ItemSchema::default()).await, expected);
}

#[tokio::test]
async fn custom_attribute_names_work_with_both_strategies() {
    // `ttl` is a DynamoDB reserved word: the PartiQL statement quotes it.
    let schema = ItemSchema::default()
        .with_key_attribute("pk")
        .with_expires_attribute("ttl")
        .with_data_attribute("body");
    for strategy in [DeleteStrategy::PartiqlBatch, DeleteStrategy::DeleteItem] {
        let table = TestTable::with_schema("sweep-custom", schema.clone()).await;
        let clock = far_future_clock();
        let seeded = seed(&table, &schema, &clock, 6, 30).await;
        let config = config(&table)
            .with_schema(schema.clone())
            .with_strategy(strategy);
        let report = sweep(&table.client, &config, &clock, Budget::unlimited())
            .await
            .unwrap();
        assert_eq!(report.deleted, 30, "{strategy:?}");
        assert_eq!(report.malformed_skipped, 6, "{strategy:?}");
        assert_eq!(keys_in(&table, &schema).await, seeded.survivors());
    }
}

/// Runs a whole other sweep of the slice the first time it is called: a run overlapping
/// the one it is hooked into, which read the same checkpoint, finishes the pass and clears
/// the checkpoint before the first run writes.
struct OverlapOnce {
    client: aws_sdk_dynamodb::Client,
    config: SweepConfig,
    clock: ManualClock,
    other: tokio::sync::Mutex<Option<SweepReport>>,
}

#[async_trait]
impl PageHook for OverlapOnce {
    async fn before_delete(&self, _segment: u32, _expired: &[String]) {
        let mut other = self.other.lock().await;
        if other.is_none() {
            let report =
                sweeper_lambda::sweep(&self.client, &self.config, &self.clock, Budget::unlimited())
                    .await
                    .expect("the overlapping sweep");
            *other = Some(report);
        }
    }
}

#[tokio::test]
async fn an_overlapping_run_cannot_leave_a_stale_checkpoint_that_skips_segments() {
    let (table, schema, clock, seeded) = fixture("sweep-overlap", 10, 120).await;
    // A page holds a whole segment: every page finishes one.
    let config = SweepConfig::new(table.name.as_str())
        .with_total_segments(4)
        .with_page_size(1_000);
    let first = sweep(
        &table.client,
        &config,
        &clock,
        Budget::unlimited().with_max_pages(1),
    )
    .await
    .unwrap();
    assert!(
        first.checkpoint_saved && first.segments_completed == 1,
        "{first:?}"
    );

    // Run B reads that checkpoint; on its first page, run A (reading the same one)
    // finishes the pass and clears it. B then stops after two pages: its save, with two
    // more segments done, would tell the next pass to skip three of four segments.
    let hook = Arc::new(OverlapOnce {
        client: table.client.clone(),
        config: config.clone(),
        clock: clock.clone(),
        other: tokio::sync::Mutex::new(None),
    });
    let b = sweep_with_hook(
        &table.client,
        &config,
        &clock,
        Budget::unlimited().with_max_pages(2),
        hook.clone(),
    )
    .await
    .unwrap();
    let a = hook
        .other
        .lock()
        .await
        .take()
        .expect("the overlapping run ran");
    assert!(a.complete, "{a:?}");
    assert!(b.checkpoint_conflict && !b.checkpoint_saved, "{b:?}");
    assert!(b.errors.is_empty(), "a conflict is not a failure: {b:?}");
    assert!(
        checkpoint_items(&table, &schema).await.is_empty(),
        "A's clear stands"
    );
    assert_eq!(keys_in(&table, &schema).await, seeded.survivors());

    // Sessions expire everywhere after that pass; the next pass sweeps every segment.
    let later: Vec<_> = (0..40)
        .map(|i| session(&schema, &format!("later-{i:03}"), n(now(&clock) - 50)))
        .collect();
    table.batch_put(later, 4).await;
    let next = sweep(&table.client, &config, &clock, Budget::unlimited())
        .await
        .unwrap();
    assert!(
        next.complete && next.segments_completed == 4,
        "no segment skipped: {next:?}"
    );
    assert_eq!(next.deleted, 40);
    assert_eq!(
        keys_in(&table, &schema).await,
        seeded.survivors(),
        "0 expired left, 0 live lost"
    );
}

#[tokio::test]
async fn two_runs_of_one_slice_at_once_lose_nothing_and_skip_nothing() {
    use local_dynamodb::faults::FaultProxy;
    let (table, schema, clock, seeded) = fixture("sweep-two-at-once", 20, 300).await;
    let proxy = FaultProxy::in_front_of(integration_tests::LocalDynamo::shared())
        .expect("start fault proxy");
    proxy.set_latency(std::time::Duration::from_millis(5));
    let slow = sweeper_lambda::client::dynamodb_client(
        Some(&proxy.endpoint()),
        sweeper_lambda::config::DEFAULT_ATTEMPT_TIMEOUT,
    )
    .await;
    let config = SweepConfig::new(table.name.as_str())
        .with_total_segments(4)
        .with_page_size(25);
    // Two runs at once, each cut short by its own page budget, then runs one at a time
    // until a pass completes.
    let (a, b) = tokio::join!(
        sweep(
            &slow,
            &config,
            &clock,
            Budget::unlimited().with_max_pages(5)
        ),
        sweep(
            &slow,
            &config,
            &clock,
            Budget::unlimited().with_max_pages(7)
        ),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.errors.is_empty() && b.errors.is_empty(), "{a:?} {b:?}");
    let mut passes = 0;
    loop {
        passes += 1;
        let next = sweep(
            &slow,
            &config,
            &clock,
            Budget::unlimited().with_max_pages(6),
        )
        .await
        .unwrap();
        if next.complete {
            break;
        }
        assert!(passes < 50, "never finished");
    }
    assert_eq!(
        keys_in(&table, &schema).await,
        seeded.survivors(),
        "0 expired left, 0 live lost"
    );
    assert!(checkpoint_items(&table, &schema).await.is_empty());
}

#[tokio::test]
async fn the_backlog_grows_while_runs_stop_early_and_resets_when_a_pass_completes() {
    let (table, schema, clock, seeded) = fixture("sweep-backlog", 10, 300).await;
    let config = config(&table).with_total_segments(2);
    let hour = time::Duration::hours(1);
    let pass_began = now(&clock);
    // An hourly schedule whose runs each stop after one page: the pass began with the
    // first run, and every later run reports the time since then. (The sessions seeded
    // live expire meanwhile: only the expired and malformed ones are checked.)
    for run in 0..3_u64 {
        let report = sweep(
            &table.client,
            &config,
            &clock,
            Budget::unlimited().with_max_pages(1),
        )
        .await
        .unwrap();
        assert!(!report.complete && report.checkpoint_saved, "{report:?}");
        assert_eq!(report.pass_began, pass_began, "run {run}");
        assert_eq!(report.backlog_seconds, run * 3600, "run {run}");
        clock.advance(hour);
    }
    // A run that finishes the pass: no backlog, and the checkpoint is gone with it.
    let finished = sweep(&table.client, &config, &clock, Budget::unlimited())
        .await
        .unwrap();
    assert!(finished.complete, "{finished:?}");
    assert_eq!(finished.pass_began, pass_began);
    assert_eq!(finished.backlog_seconds, 0);
    assert!(checkpoint_items(&table, &schema).await.is_empty());
    let left = keys_in(&table, &schema).await;
    assert!(left.is_disjoint(&seeded.expired) && left.is_superset(&seeded.malformed));
    // The next pass begins with the next run.
    clock.advance(hour);
    let next = sweep(
        &table.client,
        &config,
        &clock,
        Budget::unlimited().with_max_pages(1),
    )
    .await
    .unwrap();
    assert_eq!(
        (next.pass_began, next.backlog_seconds),
        (now(&clock), 0),
        "{next:?}"
    );
}
