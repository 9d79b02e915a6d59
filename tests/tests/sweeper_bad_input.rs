//! Hostile input, sweeper side (issue 5, part 5): items written into the sessions table by
//! other tools. The sweep never panics, deletes only what is a session of its own prefix
//! whose expiry is whole epoch seconds below the cutoff, and counts exactly.
//!
//! What the sweeper does with each kind of item (sweeper configured with key prefix `app:`):
//!
//! | item | outcome | why |
//! |------|---------|-----|
//! | expiry missing, or of type S, BOOL, NULL, M, NS, B | kept, counted malformed | not a number: nothing says it expired |
//! | expiry fractional (`12.5`), below the cutoff | kept, counted malformed | not whole epoch seconds |
//! | expiry beyond `i64`, negative (`-1e20` written out) | kept, counted malformed | below the cutoff, but not representable |
//! | expiry fractional or beyond `i64`, above the cutoff | kept, not counted | the scan's numeric filter never returns it |
//! | expiry in epoch milliseconds (past or future) | kept, not counted | it reads as live for millennia; never deleted |
//! | expiry `100.000` (whole, decimal form) | deleted | the same number as `100` |
//! | expiry negative or zero | deleted | before the cutoff |
//! | data encoded (Binary, written by a store with a codec), expired / live | deleted / kept | the session shape's second form; never decoded |
//! | data missing or neither a string nor binary, whatever the expiry (`0`, past, text) | kept, not counted | not the session shape: another application's item |
//! | ~390 KB items | deleted if expired, kept if live or malformed | size does not matter |
//! | 2,048-byte key, Unicode key | deleted if expired | any valid key |
//! | another prefix, or no prefix, whatever the expiry | kept, not counted | not ours |
//! | reserved keys (`app:!…`), checkpoints of other slices | kept, not counted | the sweeper's own |
//!
//! And the sweep's own checkpoint item, forged (`a_checkpoint_forged_by_someone_else_*`):
//! unreadable, it is ignored and the slice starts over; with a cursor DynamoDB rejects
//! (`a_cursor_the_server_rejects_*`, through the fault proxy: local servers do not check a
//! start key's segment), that segment fails once with a typed error and starts over on
//! the next run.
//!
//! `cargo test -p integration-tests --test sweeper_bad_input`.
use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::Blob;
use dynamo_session_store::ItemSchema;
use dynamo_session_store::ManualClock;
use integration_tests::{Item, TestTable, n, s};
use sweeper_lambda::{Budget, DeleteStrategy, SweepConfig, read_checkpoint, sweep};
use time::OffsetDateTime;

const NOW: i64 = 4_000_000_000;
const PREFIX: &str = "app:";
/// Data of a ~390 KB item.
const HUGE: usize = 390 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Deleted, counted as found expired and deleted.
    Deleted,
    /// Kept, counted as malformed.
    Malformed,
    /// Kept, not counted.
    Ignored,
    /// Kept, counted as an expiry in epoch milliseconds.
    Millis,
    /// Kept, counted as a far-future expiry.
    FarFuture,
    /// Kept, a live session.
    Live,
}

/// An item with key `key`, and the given expiry and data (`None`: attribute missing).
fn item(key: &str, expires: Option<AttributeValue>, data: Option<AttributeValue>) -> Item {
    let mut item = HashMap::from([("id".to_owned(), s(key))]);
    if let Some(e) = expires {
        item.insert("expires".to_owned(), e);
    }
    if let Some(d) = data {
        item.insert("data".to_owned(), d);
    }
    item
}

fn data() -> Option<AttributeValue> {
    Some(s(r#"{"user":42}"#))
}

fn huge_data() -> Option<AttributeValue> {
    Some(AttributeValue::S(format!(
        r#"{{"blob":"{}"}}"#,
        "x".repeat(HUGE)
    )))
}

/// Every hostile item, with what the sweep must do with it.
fn hostile() -> Vec<(Item, Expect)> {
    use Expect::*;
    let past = NOW - 3600;
    let future = NOW + 3600;
    let key = |name: &str| format!("{PREFIX}{name}");
    let mut items = vec![
        // Controls.
        (item(&key("expired"), Some(n(past)), data()), Deleted),
        (item(&key("live"), Some(n(future)), data()), Live),
        // Expiry not a number.
        (item(&key("no-expiry"), None, data()), Malformed),
        (
            item(&key("expiry-s-number"), Some(s("1")), data()),
            Malformed,
        ),
        (
            item(&key("expiry-s-text"), Some(s("yesterday")), data()),
            Malformed,
        ),
        (
            item(
                &key("expiry-bool"),
                Some(AttributeValue::Bool(true)),
                data(),
            ),
            Malformed,
        ),
        (
            item(
                &key("expiry-null"),
                Some(AttributeValue::Null(true)),
                data(),
            ),
            Malformed,
        ),
        (
            item(
                &key("expiry-map"),
                Some(AttributeValue::M(HashMap::from([("at".into(), n(1))]))),
                data(),
            ),
            Malformed,
        ),
        (
            item(
                &key("expiry-number-set"),
                Some(AttributeValue::Ns(vec!["1".into()])),
                data(),
            ),
            Malformed,
        ),
        (
            item(
                &key("expiry-binary"),
                Some(AttributeValue::B(Blob::new("1"))),
                data(),
            ),
            Malformed,
        ),
        // Numbers that are not whole epoch seconds in an i64.
        (
            item(&key("fraction-past"), Some(n("12.5")), data()),
            Malformed,
        ),
        (
            item(
                &key("fraction-future"),
                Some(n(format!("{future}.5"))),
                data(),
            ),
            Ignored,
        ),
        // Beyond an i64: the filter returns it as far ahead, and it is no epoch second.
        (
            item(&key("beyond-i64"), Some(n("99999999999999999999")), data()),
            Malformed,
        ),
        (
            item(
                &key("beyond-i64-negative"),
                Some(n("-99999999999999999999")),
                data(),
            ),
            Malformed,
        ),
        // Epoch milliseconds, as connect-dynamodb-session wrote them.
        (
            item(&key("epoch-ms-past"), Some(n(past * 1000)), data()),
            Millis,
        ),
        (
            item(&key("epoch-ms-future"), Some(n(future * 1000)), data()),
            Millis,
        ),
        // Far ahead, yet seconds: twenty years.
        (
            item(&key("far-future"), Some(n(NOW + 20 * 366 * 86_400)), data()),
            FarFuture,
        ),
        (
            item(
                &key("just-under-ten-years"),
                Some(n(NOW + 9 * 365 * 86_400)),
                data(),
            ),
            Live,
        ),
        // Numbers that are whole seconds, in any spelling.
        (
            item(&key("decimal-whole"), Some(n("100.000")), data()),
            Deleted,
        ),
        (item(&key("negative"), Some(n(-5)), data()), Deleted),
        (item(&key("zero"), Some(n(0)), data()), Deleted),
        // The right key, the data missing or of another type: not the session shape, so
        // another application's item, never deleted or counted, whatever its expiry.
        // Encoded data (a store with a codec): a session like any other, never decoded.
        (
            item(
                &key("encoded-expired"),
                Some(n(past)),
                Some(AttributeValue::B(Blob::new(vec![1, 3, 1, b'a', 0, 0xff]))),
            ),
            Deleted,
        ),
        (
            item(
                &key("encoded-live"),
                Some(n(future)),
                Some(AttributeValue::B(Blob::new(vec![1, 1, 0x28, 0xb5]))),
            ),
            Live,
        ),
        (item(&key("no-data-expired"), Some(n(past)), None), Ignored),
        (item(&key("no-data-zero"), Some(n(0)), None), Ignored),
        (
            item(&key("no-data-text-expiry"), Some(s("x")), None),
            Ignored,
        ),
        (item(&key("no-data-live"), Some(n(future)), None), Ignored),
        (
            item(&key("data-number-expired"), Some(n(past)), Some(n(7))),
            Ignored,
        ),
        (
            item(
                &key("data-map-live"),
                Some(n(future)),
                Some(AttributeValue::M(HashMap::new())),
            ),
            Ignored,
        ),
        // Keys at the limits.
        (
            item(
                &key(&"k".repeat(2048 - PREFIX.len())),
                Some(n(past)),
                data(),
            ),
            Deleted,
        ),
        (
            item(&key("ünïcødé-セッション-🙂"), Some(n(past)), data()),
            Deleted,
        ),
        (item(&key("ünïcødé-live-🙂"), Some(n(future)), data()), Live),
        // Not ours: other prefixes, no prefix, a near miss, reserved keys, checkpoints.
        (item("other:expired", Some(n(past)), data()), Ignored),
        // Under a prefix that `app:` is not a prefix of, though `app` is.
        (item("app2:expired", Some(n(past)), data()), Ignored),
        (item("apple", Some(n(past)), data()), Ignored),
        (item("other:text-expiry", Some(s("1")), data()), Ignored),
        (
            item("expired-without-prefix", Some(n(past)), data()),
            Ignored,
        ),
        (item("app", Some(n(past)), data()), Ignored),
        (item("APP:expired", Some(n(past)), data()), Ignored),
        (
            item(&key("!reserved-expired"), Some(n(past)), data()),
            Ignored,
        ),
        (
            item(&key("!sweeper-checkpoint/0-2of2"), None, None),
            Ignored,
        ),
        (item("!sweeper-checkpoint/0-3of3", None, None), Ignored),
    ];
    // Huge items.
    for i in 0..3 {
        items.push((
            item(
                &key(&format!("huge-expired-{i}")),
                Some(n(past)),
                huge_data(),
            ),
            Deleted,
        ));
        items.push((
            item(
                &key(&format!("huge-live-{i}")),
                Some(n(future)),
                huge_data(),
            ),
            Live,
        ));
    }
    items.push((
        item(&key("huge-text-expiry"), Some(s("1")), huge_data()),
        Malformed,
    ));
    items
}

fn count(items: &[(Item, Expect)], expect: Expect) -> u64 {
    items.iter().filter(|(_, e)| *e == expect).count() as u64
}

#[tokio::test]
async fn hostile_items_are_skipped_and_counted_exactly() {
    let schema = ItemSchema::new().with_key_prefix(PREFIX);
    let items = hostile();
    for (strategy, page_size) in [
        (DeleteStrategy::PartiqlBatch, 0),
        (DeleteStrategy::PartiqlBatch, 4),
        (DeleteStrategy::DeleteItem, 0),
        (DeleteStrategy::DeleteItem, 4),
    ] {
        let label = format!("{strategy:?}, page size {page_size}");
        let table = TestTable::with_schema("sweep-hostile", schema.clone()).await;
        table
            .batch_put(items.iter().map(|(i, _)| i.clone()).collect(), 4)
            .await;
        let config = SweepConfig::new(table.name.as_str())
            .with_schema(schema.clone())
            .with_total_segments(3)
            .with_page_size(page_size)
            .with_strategy(strategy);
        let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(NOW).unwrap());
        let report = sweep(&table.client, &config, &clock, Budget::unlimited())
            .await
            .expect("the sweep runs");

        let key_of = |item: &Item| item["id"].as_s().unwrap().clone();
        let expected: HashSet<String> = items
            .iter()
            .filter(|(_, e)| *e != Expect::Deleted)
            .map(|(i, _)| key_of(i))
            .collect();
        let remaining = table.keys("id").await;
        let wrongly_deleted: Vec<&String> = expected.difference(&remaining).collect();
        let left: Vec<&String> = remaining.difference(&expected).collect();
        assert!(
            wrongly_deleted.is_empty(),
            "{label}: deleted {wrongly_deleted:?}"
        );
        assert!(left.is_empty(), "{label}: not deleted {left:?}");

        let deleted = count(&items, Expect::Deleted);
        // `scanned` is the server's `ScannedCount`. With a `Limit` every item is evaluated
        // once; when a 1 MB page ends on a huge item, dynoxide counts the item that did not
        // fit in that page too, and again in the next.
        let all = items.len() as u64;
        if page_size > 0 {
            assert_eq!(report.scanned, all, "{label}");
        } else {
            assert!(
                (all..=all + report.pages).contains(&report.scanned),
                "{label}: {report:?}"
            );
        }
        assert_eq!(report.expired_found, deleted, "{label}");
        assert_eq!(report.deleted, deleted, "{label}");
        assert_eq!(
            report.malformed_skipped,
            count(&items, Expect::Malformed),
            "{label}"
        );
        assert_eq!(
            (report.expires_in_millis, report.expires_far_future),
            (
                count(&items, Expect::Millis),
                count(&items, Expect::FarFuture)
            ),
            "{label}"
        );
        assert_eq!(
            (report.skipped_live, report.already_gone),
            (0, 0),
            "{label}"
        );
        assert!(
            report.complete && report.errors.is_empty(),
            "{label}: {report:?}"
        );
        assert_eq!(report.segments_failed, 0, "{label}");

        // A second sweep deletes nothing more and counts the malformed items again.
        let again = sweep(&table.client, &config, &clock, Budget::unlimited())
            .await
            .unwrap();
        assert_eq!((again.expired_found, again.deleted), (0, 0), "{label}");
        assert_eq!(again.malformed_skipped, report.malformed_skipped, "{label}");
        assert_eq!(table.keys("id").await, expected, "{label}");
    }
}

/// A table shared with another application that writes no data attribute of ours (or one
/// of another type) and uses `expires: 0` for "never": a sweep with no key prefix, which
/// owns every non-reserved key, keeps every one of its items and counts none of them.
/// (A Binary data attribute is the encoded session form: an application sharing a table
/// without a key prefix must not use one.)
#[tokio::test]
async fn another_applications_items_survive_a_full_sweep() {
    let past = NOW - 3_600;
    let foreign = vec![
        item("cfg:never", Some(n(0)), None),
        item("cfg:old", Some(n(past)), None),
        item("cfg:text", Some(s("never")), None),
        item("cfg:no-expiry", None, None),
        item("cfg:number-data", Some(n(0)), Some(n(7))),
        item(
            "cfg:map-data",
            Some(n(past)),
            Some(AttributeValue::M(HashMap::new())),
        ),
        item(
            "cfg:binary-set-data",
            Some(n(past)),
            Some(AttributeValue::Bs(vec![Blob::new("x")])),
        ),
        item("cfg:list-data", Some(n(1)), Some(AttributeValue::L(vec![]))),
    ];
    let ours_expired: Vec<Item> = (0..30)
        .map(|i| item(&format!("s{i}"), Some(n(past)), data()))
        .collect();
    let ours_live: Vec<Item> = (0..10)
        .map(|i| item(&format!("live{i}"), Some(n(NOW + 3_600)), data()))
        .collect();
    for strategy in [DeleteStrategy::PartiqlBatch, DeleteStrategy::DeleteItem] {
        let table = TestTable::new("sweep-foreign").await;
        let all: Vec<Item> = foreign
            .iter()
            .chain(&ours_expired)
            .chain(&ours_live)
            .cloned()
            .collect();
        table.batch_put(all, 4).await;
        let config = SweepConfig::new(table.name.as_str())
            .with_total_segments(4)
            .with_strategy(strategy);
        let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(NOW).unwrap());
        let report = sweep(&table.client, &config, &clock, Budget::unlimited())
            .await
            .expect("the sweep runs");
        let expected: HashSet<String> = foreign
            .iter()
            .chain(&ours_live)
            .map(|i| i["id"].as_s().unwrap().clone())
            .collect();
        assert_eq!(table.keys("id").await, expected, "{strategy:?}");
        assert_eq!(
            (
                report.expired_found,
                report.deleted,
                report.malformed_skipped
            ),
            (30, 30, 0),
            "{strategy:?}: {report:?}"
        );
        // Each foreign item, read back, is exactly as it was written.
        for item in &foreign {
            let key = item["id"].as_s().unwrap();
            assert_eq!(table.raw_get(key).await.as_ref(), Some(item), "{key}");
        }
    }
}

/// Seeds 20 expired and 5 live sessions under the prefix, and `checkpoint` as the
/// checkpoint item of the sweep's own slice (`0-3of3`).
async fn with_own_checkpoint(label: &str, checkpoint: Item) -> (TestTable, SweepConfig) {
    let schema = ItemSchema::new().with_key_prefix(PREFIX);
    let table = TestTable::with_schema(label, schema.clone()).await;
    let mut items: Vec<Item> = (0..20)
        .map(|i| item(&format!("{PREFIX}expired-{i}"), Some(n(NOW - 100)), data()))
        .collect();
    items.extend((0..5).map(|i| item(&format!("{PREFIX}live-{i}"), Some(n(NOW + 100)), data())));
    items.push(checkpoint);
    table.batch_put(items, 2).await;
    let config = SweepConfig::new(table.name.as_str())
        .with_schema(schema)
        .with_total_segments(3);
    (table, config)
}

fn own_checkpoint(attributes: Vec<(&str, AttributeValue)>) -> Item {
    let mut item = item(&format!("{PREFIX}!sweeper-checkpoint/0-3of3"), None, None);
    item.extend(attributes.into_iter().map(|(k, v)| (k.to_owned(), v)));
    item
}

/// The session keys (reserved keys left out) in the table.
async fn session_keys(table: &TestTable) -> HashSet<String> {
    let schema = ItemSchema::new().with_key_prefix(PREFIX);
    let mut keys = table.keys("id").await;
    keys.retain(|k| !schema.is_reserved_key(k));
    keys
}

/// The sweep's own checkpoint item, forged: every part is validated before use, without
/// relying on the server. Invalid parts are discarded, counted and warned about, the item
/// is cleared (or rewritten) by the same sweep; a huge `done` range costs no memory and
/// at most one run; a cursor at a key that does not exist is a valid place to resume from.
/// Never a panic, never a wrong delete, and two sweeps always finish the job.
#[tokio::test]
async fn a_checkpoint_forged_by_someone_else_costs_at_most_one_run() {
    let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(NOW).unwrap());
    let cursor = |key: AttributeValue| {
        AttributeValue::M(HashMap::from([(
            "0".to_owned(),
            AttributeValue::M(HashMap::from([("id".to_owned(), key)])),
        )]))
    };
    let live: HashSet<String> = (0..5).map(|i| format!("{PREFIX}live-{i}")).collect();
    // (case, the item's parts, parts discarded, whether the first run skips the slice)
    for (name, checkpoint, discarded, skips) in [
        (
            "done-not-a-string",
            own_checkpoint(vec![("done", n(1))]),
            1,
            false,
        ),
        (
            "done-garbage",
            own_checkpoint(vec![("done", s("zero-two"))]),
            1,
            false,
        ),
        (
            "done-huge-range",
            own_checkpoint(vec![("done", s("0-4294967295"))]),
            1,
            true,
        ),
        (
            "cursors-not-a-map",
            own_checkpoint(vec![("cursors", s("x"))]),
            1,
            false,
        ),
        // Refused by the validation, whatever the server would say of it.
        (
            "cursor-of-another-type",
            own_checkpoint(vec![("cursors", cursor(n(5)))]),
            1,
            false,
        ),
        (
            "cursor-at-no-item",
            own_checkpoint(vec![("cursors", cursor(s("zzz")))]),
            0,
            false,
        ),
        (
            "unknown-attribute",
            own_checkpoint(vec![("owner", s("someone else"))]),
            1,
            false,
        ),
    ] {
        let (table, config) = with_own_checkpoint("sweep-forged-checkpoint", checkpoint).await;
        let first = sweep(&table.client, &config, &clock, Budget::unlimited())
            .await
            .expect("the sweep runs");
        assert_eq!(first.malformed_skipped, 0, "{name}");
        assert_eq!(first.skipped_live + first.already_gone, 0, "{name}");
        assert_eq!(first.checkpoint_discarded, discarded, "{name}: {first:?}");
        assert!(
            first.complete && first.errors.is_empty() && first.segments_failed == 0,
            "{name}: {first:?}"
        );
        if skips {
            assert_eq!(first.deleted, 0, "{name}: every segment read as done");
        }
        // The forged item is gone after the first run: cleared by the sweep that finished.
        let left = read_checkpoint(&table.client, &config).await.unwrap();
        assert_eq!(left, None, "{name}");
        let second = sweep(&table.client, &config, &clock, Budget::unlimited())
            .await
            .expect("the sweep runs");
        assert!(
            second.complete && second.errors.is_empty(),
            "{name}: {second:?}"
        );
        assert_eq!(second.checkpoint_discarded, 0, "{name}");
        assert_eq!(first.deleted + second.deleted, 20, "{name}");
        assert_eq!(session_keys(&table).await, live, "{name}");
    }
}

/// A cursor that passes validation but that DynamoDB refuses for good (a start key of
/// another segment: DynamoDB answers `ValidationException`; local servers do not check it,
/// so the fault proxy answers as DynamoDB does, once). That segment fails once with a
/// typed error naming the scan, its cursor is dropped rather than kept, the other segments
/// finish, and the next run sweeps it from the start: nothing is stuck.
#[tokio::test]
async fn a_cursor_the_server_rejects_fails_its_segment_once_then_starts_it_over() {
    use local_dynamodb::LocalDynamo;
    use local_dynamodb::faults::{Fault, FaultPlan, FaultProxy};

    let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(NOW).unwrap());
    let forged = own_checkpoint(vec![(
        "cursors",
        AttributeValue::M(HashMap::from([(
            "0".to_owned(),
            AttributeValue::M(HashMap::from([(
                "id".to_owned(),
                s("app:of-another-segment"),
            )])),
        )])),
    )]);
    let (table, config) = with_own_checkpoint("sweep-rejected-cursor", forged).await;
    let config = config.with_segment_concurrency(1);
    let proxy = FaultProxy::in_front_of(LocalDynamo::shared()).expect("start fault proxy");
    let client = sweeper_lambda::client::dynamodb_client(
        Some(&proxy.endpoint()),
        sweeper_lambda::config::DEFAULT_ATTEMPT_TIMEOUT,
    )
    .await;
    // The first scan is segment 0's, from the forged cursor: refused.
    proxy.set_plan(
        FaultPlan::new(1.0, vec![Fault::StartKeyRejected])
            .only(["Scan"])
            .at_most(1),
    );
    let first = sweep(&client, &config, &clock, Budget::unlimited())
        .await
        .expect("the sweep runs");
    assert_eq!(proxy.stats().injected, 1);
    assert_eq!(
        (
            first.segments_failed,
            first.segments_completed,
            first.complete
        ),
        (1, 2, false),
        "{first:?}"
    );
    assert_eq!(first.errors.len(), 1, "{first:?}");
    let error = &first.errors[0];
    assert!(
        error.starts_with("segment 0: DynamoDB Scan failed")
            && error.contains("ValidationException")
            && error.contains("starting key is invalid"),
        "{error}"
    );
    // The cursor is dropped, not kept: segment 0 is neither done nor resumed from it.
    let saved = read_checkpoint(&table.client, &config)
        .await
        .unwrap()
        .expect("the checkpoint of an unfinished slice");
    assert_eq!(saved.cursor(0), None);
    assert!(!saved.is_done(0) && saved.is_done(1) && saved.is_done(2));
    // The next run sweeps segment 0 from its start and finishes the slice.
    let second = sweep(&client, &config, &clock, Budget::unlimited())
        .await
        .expect("the sweep runs");
    assert!(second.complete && second.errors.is_empty(), "{second:?}");
    assert_eq!(first.deleted + second.deleted, 20);
    let live: HashSet<String> = (0..5).map(|i| format!("{PREFIX}live-{i}")).collect();
    assert_eq!(session_keys(&table).await, live);
}
