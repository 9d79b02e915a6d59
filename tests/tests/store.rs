//! The store against a real DynamoDB-compatible server (embedded dynoxide, or
//! `DYNAMODB_ENDPOINT`): every test has a fresh table, counts the HTTP requests its client
//! sends, and moves a [`ManualClock`] instead of sleeping.
//!
//! | module | shows |
//! |--------|-------|
//! | `core_api` | get / put / insert / update / touch / delete, expiry on read |
//! | `tower_sessions_trait` | `SessionStore` create / load / save / delete, no resurrection |
//! | `throttling` | unchanged saves cost no write; touches; load refreshes the state |
//! | `limits` | oversized sessions, invalid ids: rejected before any request |
//! | `decoding` | corrupt items give typed decode errors naming the attribute |
//! | `custom_schema` | configured attribute names and key prefix, end to end |
//! | `dynamodb_errors` | the real cause of a DynamoDB error survives |
//! | `http` | full request cycles through axum and tower-sessions |

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_session_store::tower_sessions_core::session::{Id, Record};
use dynamo_session_store::tower_sessions_core::{SessionStore, session_store};
use dynamo_session_store::{DynamoStore, Error, ManualClock};
use integration_tests::TestTable;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

type Item = HashMap<String, AttributeValue>;

/// A stopped clock at the current time (so items are also sane for DynamoDB's own TTL when
/// the suite runs against real AWS).
fn clock() -> ManualClock {
    ManualClock::starting_now()
}

/// `now` truncated to whole seconds, the resolution the table stores.
fn secs(at: OffsetDateTime) -> i64 {
    at.unix_timestamp()
}

/// A consistent raw read of one item, bypassing the store.
async fn raw_get(table: &TestTable, key: &str) -> Option<Item> {
    table
        .client
        .get_item()
        .table_name(&table.name)
        .key("id", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("raw GetItem")
        .item
}

/// A raw write of one item, bypassing the store (as another tool would).
async fn raw_put(table: &TestTable, item: Item) {
    table
        .client
        .put_item()
        .table_name(&table.name)
        .set_item(Some(item))
        .send()
        .await
        .expect("raw PutItem");
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// A default-schema session item.
fn session_item(key: &str, data: &str, expires: i64) -> Item {
    HashMap::from([
        ("id".to_owned(), s(key)),
        ("expires".to_owned(), n(expires)),
        ("data".to_owned(), s(data)),
    ])
}

fn expires_of(item: &Item) -> i64 {
    item["expires"]
        .as_n()
        .expect("expires is a Number")
        .parse()
        .expect("expires is an integer")
}

fn data_of(item: &Item) -> Value {
    serde_json::from_str(item["data"].as_s().expect("data is a String")).expect("data is JSON")
}

/// A tower-sessions record with `data`, expiring at `expiry_date`.
fn record(data: Value, expiry_date: OffsetDateTime) -> Record {
    let Value::Object(map) = data else {
        panic!("record data must be an object")
    };
    Record {
        id: Id::default(),
        data: map.into_iter().collect(),
        expiry_date,
    }
}

mod core_api {
    use super::*;
    use dynamo_session_store::WriteOutcome;
    use dynamo_session_store::store::DEFAULT_TTL;

    #[tokio::test]
    async fn put_then_get_round_trips_data_and_expiry() {
        let table = TestTable::new("roundtrip").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let expires = clock.now_plus(Duration::hours(1));

        let outcome = store
            .put(
                "abc",
                &json!({"user": 42, "roles": ["a", "b"]}),
                Some(expires),
            )
            .await
            .unwrap();
        assert_eq!(outcome, WriteOutcome::Put);
        assert_eq!(table.requests.count("PutItem"), 1);
        assert_eq!(table.requests.writes(), 1);

        let got = store.get::<Value>("abc").await.unwrap().expect("present");
        assert_eq!(got.data, json!({"user": 42, "roles": ["a", "b"]}));
        assert_eq!(secs(got.expires_at), secs(expires));
        assert_eq!(table.requests.count("GetItem"), 1);

        let item = raw_get(&table, "abc").await.expect("item in table");
        assert_eq!(item.len(), 3, "{item:?}");
        assert_eq!(expires_of(&item), secs(expires));
        assert_eq!(data_of(&item), json!({"roles": ["a", "b"], "user": 42}));
    }

    #[tokio::test]
    async fn get_of_a_missing_session_is_none() {
        let table = TestTable::new("missing").await;
        assert_eq!(table.store().get::<Value>("nobody").await.unwrap(), None);
    }

    #[tokio::test]
    async fn put_without_expiry_uses_the_default_lifetime() {
        let table = TestTable::new("default-ttl").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        store.put("two-weeks", &json!({}), None).await.unwrap();
        let default_secs = i64::try_from(DEFAULT_TTL.as_secs()).unwrap();
        assert_eq!(default_secs, 14 * 24 * 3600);
        let item = raw_get(&table, "two-weeks").await.unwrap();
        assert_eq!(
            expires_of(&item),
            secs(clock.now_plus(Duration::ZERO)) + default_secs
        );

        let store = store.with_default_ttl(std::time::Duration::from_secs(600));
        store.put("ten-minutes", &json!({}), None).await.unwrap();
        let item = raw_get(&table, "ten-minutes").await.unwrap();
        assert_eq!(
            expires_of(&item),
            secs(clock.now_plus(Duration::ZERO)) + 600
        );
    }

    #[tokio::test]
    async fn delete_removes_the_item_and_is_idempotent() {
        let table = TestTable::new("delete").await;
        let store = table.store();
        store
            .put("gone-soon", &json!({"n": 1}), None)
            .await
            .unwrap();
        store.put("stays", &json!({"n": 2}), None).await.unwrap();
        store.delete("gone-soon").await.unwrap();
        store.delete("gone-soon").await.unwrap();
        assert_eq!(store.get::<Value>("gone-soon").await.unwrap(), None);
        let items = table.scan_all().await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["id"], s("stays"));
    }

    #[tokio::test]
    async fn expired_item_reads_as_absent_while_still_in_the_table() {
        let table = TestTable::new("expired").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let expires = clock.now_plus(Duration::seconds(60));
        store
            .put("short", &json!({"n": 1}), Some(expires))
            .await
            .unwrap();

        clock.advance(Duration::seconds(59));
        assert!(store.get::<Value>("short").await.unwrap().is_some());
        // The expiry instant itself is already expired.
        clock.advance(Duration::seconds(1));
        assert_eq!(store.get::<Value>("short").await.unwrap(), None);
        let id = Id::default();
        store
            .put(&id.to_string(), &json!({}), Some(expires))
            .await
            .unwrap();
        assert_eq!(SessionStore::load(&store, &id).await.unwrap(), None);

        // Nothing deleted it: it is still in the table, with its data.
        let item = raw_get(&table, "short").await.expect("still in the table");
        assert_eq!(expires_of(&item), secs(expires));
        assert_eq!(data_of(&item), json!({"n": 1}));
    }

    #[tokio::test]
    async fn insert_never_overwrites() {
        let table = TestTable::new("insert").await;
        let store = table.store();
        assert_eq!(
            store
                .insert("taken", &json!({"v": "first"}), None)
                .await
                .unwrap(),
            WriteOutcome::Put
        );
        assert_eq!(
            store
                .insert("taken", &json!({"v": "second"}), None)
                .await
                .unwrap(),
            WriteOutcome::AlreadyExists
        );
        let item = raw_get(&table, "taken").await.unwrap();
        assert_eq!(data_of(&item), json!({"v": "first"}));
    }

    #[tokio::test]
    async fn update_of_a_missing_session_creates_nothing() {
        let table = TestTable::new("update-missing").await;
        let store = table.store();
        assert_eq!(
            store
                .update("never-was", &json!({"v": 1}), None)
                .await
                .unwrap(),
            WriteOutcome::Gone
        );
        assert!(table.scan_all().await.is_empty());
    }

    #[tokio::test]
    async fn touch_moves_only_the_expiry() {
        let table = TestTable::new("touch").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        store
            .put(
                "t",
                &json!({"keep": true}),
                Some(clock.now_plus(Duration::hours(1))),
            )
            .await
            .unwrap();
        table.requests.reset();

        let later = clock.now_plus(Duration::hours(2));
        assert_eq!(
            store.touch("t", later).await.unwrap(),
            WriteOutcome::Touched
        );
        assert_eq!(table.requests.count("UpdateItem"), 1);
        assert_eq!(table.requests.count("PutItem"), 0);
        let item = raw_get(&table, "t").await.unwrap();
        assert_eq!(expires_of(&item), secs(later));
        assert_eq!(data_of(&item), json!({"keep": true}));

        // A second touch to almost the same expiry is throttled.
        let a_bit_later = later + Duration::seconds(3);
        assert_eq!(
            store.touch("t", a_bit_later).await.unwrap(),
            WriteOutcome::Skipped
        );
        assert_eq!(table.requests.writes(), 1);
    }

    #[tokio::test]
    async fn touch_of_a_deleted_session_creates_nothing() {
        let table = TestTable::new("touch-deleted").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        store.put("bye", &json!({"n": 1}), None).await.unwrap();
        store.delete("bye").await.unwrap();
        table.requests.reset();

        let outcome = store
            .touch("bye", clock.now_plus(Duration::hours(1)))
            .await
            .unwrap();
        assert_eq!(outcome, WriteOutcome::Gone);
        assert_eq!(table.requests.count("UpdateItem"), 1);
        assert_eq!(table.requests.count("PutItem"), 0);
        assert!(
            table.scan_all().await.is_empty(),
            "a touch re-created the item"
        );

        // Also for an id this store never saw.
        let outcome = store
            .touch("never", clock.now_plus(Duration::hours(1)))
            .await
            .unwrap();
        assert_eq!(outcome, WriteOutcome::Gone);
        assert!(table.scan_all().await.is_empty());
    }

    #[tokio::test]
    async fn touch_of_an_expired_session_does_not_revive_it() {
        let table = TestTable::new("touch-expired").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let expires = clock.now_plus(Duration::seconds(30));
        store
            .put("old", &json!({"n": 1}), Some(expires))
            .await
            .unwrap();
        clock.advance(Duration::seconds(31));

        let outcome = store
            .touch("old", clock.now_plus(Duration::hours(1)))
            .await
            .unwrap();
        assert_eq!(outcome, WriteOutcome::Gone);
        let item = raw_get(&table, "old").await.expect("left for the sweeper");
        assert_eq!(expires_of(&item), secs(expires), "the expiry was moved");
        assert_eq!(store.get::<Value>("old").await.unwrap(), None);
        // Nor does an update of its data.
        let outcome = store
            .update(
                "old",
                &json!({"n": 2}),
                Some(clock.now_plus(Duration::hours(1))),
            )
            .await
            .unwrap();
        assert_eq!(outcome, WriteOutcome::Gone);
        assert_eq!(
            data_of(&raw_get(&table, "old").await.unwrap()),
            json!({"n": 1})
        );
    }
}

/// `ManualClock` has no "now + d" of its own; this reads better in the tests.
trait NowPlus {
    fn now_plus(&self, d: Duration) -> OffsetDateTime;
}

impl NowPlus for ManualClock {
    fn now_plus(&self, d: Duration) -> OffsetDateTime {
        use dynamo_session_store::Clock;
        self.now() + d
    }
}

mod tower_sessions_trait {
    use super::*;

    #[tokio::test]
    async fn create_load_save_delete_round_trip() {
        let table = TestTable::new("trait").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let mut rec = record(json!({"visits": 1}), clock.now_plus(Duration::hours(1)));

        store.create(&mut rec).await.unwrap();
        assert_eq!(table.requests.count("PutItem"), 1);
        let loaded = store.load(&rec.id).await.unwrap().expect("created");
        assert_eq!(loaded.id, rec.id);
        assert_eq!(loaded.data, rec.data);
        assert_eq!(secs(loaded.expiry_date), secs(rec.expiry_date));

        rec.data.insert("visits".into(), json!(2));
        store.save(&rec).await.unwrap();
        let item = raw_get(&table, &rec.id.to_string()).await.unwrap();
        assert_eq!(data_of(&item), json!({"visits": 2}));
        assert_eq!(store.load(&rec.id).await.unwrap().unwrap().data, rec.data);

        SessionStore::delete(&store, &rec.id).await.unwrap();
        assert_eq!(store.load(&rec.id).await.unwrap(), None);
        assert!(table.scan_all().await.is_empty());
    }

    #[tokio::test]
    async fn create_never_overwrites_an_existing_session() {
        let table = TestTable::new("create-collision").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let mut rec = record(
            json!({"who": "newcomer"}),
            clock.now_plus(Duration::hours(1)),
        );
        let taken = rec.id;
        let original_expiry = secs(clock.now_plus(Duration::hours(5)));
        raw_put(
            &table,
            session_item(&taken.to_string(), r#"{"who":"owner"}"#, original_expiry),
        )
        .await;
        table.requests.reset();

        store.create(&mut rec).await.unwrap();

        assert_ne!(rec.id, taken, "create kept a taken id");
        assert_eq!(
            table.requests.count("PutItem"),
            2,
            "one refused, one written"
        );
        let original = raw_get(&table, &taken.to_string()).await.unwrap();
        assert_eq!(data_of(&original), json!({"who": "owner"}));
        assert_eq!(expires_of(&original), original_expiry);
        let created = raw_get(&table, &rec.id.to_string())
            .await
            .expect("new id exists");
        assert_eq!(data_of(&created), json!({"who": "newcomer"}));
        assert_eq!(table.scan_all().await.len(), 2);
    }

    #[tokio::test]
    async fn save_after_delete_with_changed_data_does_not_resurrect() {
        let table = TestTable::new("resurrect-put").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let mut rec = record(json!({"cart": 1}), clock.now_plus(Duration::hours(1)));
        store.create(&mut rec).await.unwrap();

        // A logout (through this store instance or any other) deletes the session...
        SessionStore::delete(&store, &rec.id).await.unwrap();
        // ...while a request that had loaded it earlier saves changed data.
        rec.data.insert("cart".into(), json!(2));
        store.save(&rec).await.unwrap();

        assert!(table.scan_all().await.is_empty(), "the save resurrected it");
        assert_eq!(store.load(&rec.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn save_after_delete_on_the_touch_path_does_not_resurrect() {
        let table = TestTable::new("resurrect-touch").await;
        let clock = clock();
        let inactivity = Duration::minutes(30);
        let store = table.store().with_clock(clock.clone());
        let mut rec = record(json!({"cart": 1}), clock.now_plus(inactivity));
        store.create(&mut rec).await.unwrap();

        // Another process (its own store, its own throttle memory) logs the user out.
        let other = table.store().with_clock(clock.clone());
        SessionStore::delete(&other, &rec.id).await.unwrap();

        // A late request of this process saves the unchanged session past `touch_after`:
        // the throttle plans an expiry-only update, which must find nothing to update.
        clock.advance(Duration::seconds(11));
        rec.expiry_date = clock.now_plus(inactivity);
        table.requests.reset();
        store.save(&rec).await.unwrap();

        assert_eq!(
            table.requests.count("UpdateItem"),
            1,
            "the touch path was taken"
        );
        assert_eq!(table.requests.count("PutItem"), 0);
        assert!(
            table.scan_all().await.is_empty(),
            "the touch resurrected it"
        );

        // The store forgot the session: a later save with changed data is refused too.
        rec.data.insert("cart".into(), json!(2));
        store.save(&rec).await.unwrap();
        assert!(table.scan_all().await.is_empty());
    }

    #[tokio::test]
    async fn save_of_an_expired_session_does_not_revive_it() {
        let table = TestTable::new("save-expired").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let mut rec = record(json!({"n": 1}), clock.now_plus(Duration::seconds(60)));
        store.create(&mut rec).await.unwrap();
        let stored_expiry = secs(rec.expiry_date);

        clock.advance(Duration::seconds(61));
        rec.expiry_date = clock.now_plus(Duration::hours(1));
        store.save(&rec).await.unwrap();
        rec.data.insert("n".into(), json!(2));
        store.save(&rec).await.unwrap();

        let item = raw_get(&table, &rec.id.to_string()).await.unwrap();
        assert_eq!(expires_of(&item), stored_expiry);
        assert_eq!(data_of(&item), json!({"n": 1}));
        assert_eq!(store.load(&rec.id).await.unwrap(), None);
    }
}

mod throttling {
    use super::*;

    const INACTIVITY: Duration = Duration::minutes(30);

    #[tokio::test]
    async fn unchanged_saves_within_touch_after_write_nothing_then_one_touch() {
        let table = TestTable::new("throttle").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        assert_eq!(store.touch_after(), std::time::Duration::from_secs(10));
        let mut rec = record(json!({"user": 7}), clock.now_plus(INACTIVITY));
        store.create(&mut rec).await.unwrap();
        assert_eq!(table.requests.writes(), 1);
        table.requests.reset();

        // `Expiry::OnInactivity`: every request moves the expiry to now + inactivity. 1,000
        // requests within 9 s (9 ms apart) move it by less than `touch_after`.
        for _ in 0..1000 {
            clock.advance(Duration::milliseconds(9));
            rec.expiry_date = clock.now_plus(INACTIVITY);
            store.save(&rec).await.unwrap();
        }
        assert_eq!(table.requests.total(), 0, "{:?}", table.requests);

        // Past `touch_after` since the last write: exactly one expiry-only update.
        clock.advance(Duration::milliseconds(1001));
        rec.expiry_date = clock.now_plus(INACTIVITY);
        store.save(&rec).await.unwrap();
        assert_eq!(table.requests.count("UpdateItem"), 1);
        assert_eq!(table.requests.count("PutItem"), 0);
        assert_eq!(table.requests.total(), 1);
        let item = raw_get(&table, &rec.id.to_string()).await.unwrap();
        assert_eq!(expires_of(&item), secs(rec.expiry_date));
        assert_eq!(data_of(&item), json!({"user": 7}));

        // And the window starts again from that touch.
        table.requests.reset();
        for _ in 0..100 {
            clock.advance(Duration::milliseconds(50));
            rec.expiry_date = clock.now_plus(INACTIVITY);
            store.save(&rec).await.unwrap();
        }
        assert_eq!(table.requests.writes(), 0);
    }

    #[tokio::test]
    async fn changed_data_is_a_put_even_within_touch_after() {
        let table = TestTable::new("throttle-changed").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let mut rec = record(json!({"n": 0}), clock.now_plus(INACTIVITY));
        store.create(&mut rec).await.unwrap();
        table.requests.reset();

        for i in 1..=5 {
            rec.data.insert("n".into(), json!(i));
            store.save(&rec).await.unwrap();
        }
        assert_eq!(table.requests.count("PutItem"), 5);
        assert_eq!(table.requests.count("UpdateItem"), 0);
        let item = raw_get(&table, &rec.id.to_string()).await.unwrap();
        assert_eq!(data_of(&item), json!({"n": 5}));
    }

    #[tokio::test]
    async fn core_put_is_throttled_too() {
        use dynamo_session_store::WriteOutcome;
        let table = TestTable::new("throttle-put").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let data = json!({"a": 1, "b": 2});
        let put = |at| store.put("p", &data, Some(at));
        assert_eq!(
            put(clock.now_plus(INACTIVITY)).await.unwrap(),
            WriteOutcome::Put
        );
        clock.advance(Duration::seconds(9));
        assert_eq!(
            put(clock.now_plus(INACTIVITY)).await.unwrap(),
            WriteOutcome::Skipped
        );
        clock.advance(Duration::seconds(1));
        assert_eq!(
            put(clock.now_plus(INACTIVITY)).await.unwrap(),
            WriteOutcome::Touched
        );
        assert_eq!(table.requests.count("PutItem"), 1);
        assert_eq!(table.requests.count("UpdateItem"), 1);
    }

    #[tokio::test]
    async fn load_refreshes_the_throttle_state() {
        let table = TestTable::new("throttle-load").await;
        let clock = clock();
        // Another process wrote the session; this one has never seen it.
        let writer = table.store().with_clock(clock.clone());
        let mut rec = record(json!({"cart": ["apple"]}), clock.now_plus(INACTIVITY));
        writer.create(&mut rec).await.unwrap();

        let reader = table.store().with_clock(clock.clone());
        clock.advance(Duration::seconds(2));
        let mut loaded = reader.load(&rec.id).await.unwrap().expect("present");
        table.requests.reset();
        loaded.expiry_date = clock.now_plus(INACTIVITY);
        reader.save(&loaded).await.unwrap();
        assert_eq!(table.requests.total(), 0, "{:?}", table.requests);

        // Without the load, the same save is a (conditional) put.
        let stranger = table.store().with_clock(clock.clone());
        stranger.save(&loaded).await.unwrap();
        assert_eq!(table.requests.count("PutItem"), 1);
    }

    #[tokio::test]
    async fn zero_touch_after_writes_every_save() {
        let table = TestTable::new("throttle-off").await;
        let clock = clock();
        let store = table
            .store()
            .with_clock(clock.clone())
            .with_touch_after(std::time::Duration::ZERO);
        let mut rec = record(json!({"n": 1}), clock.now_plus(INACTIVITY));
        store.create(&mut rec).await.unwrap();
        table.requests.reset();
        for _ in 0..3 {
            store.save(&rec).await.unwrap();
        }
        assert_eq!(table.requests.count("UpdateItem"), 3);
    }
}

mod limits {
    use super::*;
    use dynamo_session_store::item::{MAX_ITEM_BYTES, MAX_KEY_BYTES};

    /// Session data whose JSON is `len` bytes: `{"blob":"xxx…"}`.
    fn blob(len: usize) -> Value {
        json!({"blob": "x".repeat(len - r#"{"blob":""}"#.len())})
    }

    fn assert_too_large(err: &Error) {
        match err {
            Error::TooLarge { size, limit } => {
                assert_eq!(*limit, MAX_ITEM_BYTES);
                assert!(*size > *limit, "{size} <= {limit}");
                let text = err.to_string();
                assert!(text.contains(&size.to_string()), "{text}");
                assert!(text.contains("409600"), "{text}");
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn oversized_session_is_rejected_and_nothing_is_written() {
        let table = TestTable::new("too-large").await;
        let store = table.store();
        let err = store
            .put("big", &blob(MAX_ITEM_BYTES + 1), None)
            .await
            .unwrap_err();
        assert_too_large(&err);
        let err = store
            .insert("big", &blob(500 * 1024), None)
            .await
            .unwrap_err();
        assert_too_large(&err);
        assert_eq!(table.requests.total(), 0, "{:?}", table.requests);
        assert!(table.scan_all().await.is_empty());
    }

    #[tokio::test]
    async fn oversized_update_keeps_the_previous_version() {
        let table = TestTable::new("too-large-update").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let mut rec = record(json!({"small": true}), clock.now_plus(Duration::hours(1)));
        store.create(&mut rec).await.unwrap();
        let key = rec.id.to_string();
        table.requests.reset();

        let err = store
            .put(&key, &blob(MAX_ITEM_BYTES), None)
            .await
            .unwrap_err();
        assert_too_large(&err);
        rec.data
            .insert("huge".into(), json!("y".repeat(MAX_ITEM_BYTES)));
        let err = store.save(&rec).await.unwrap_err();
        match &err {
            session_store::Error::Encode(text) => {
                assert!(text.contains("409600"), "{text}")
            }
            other => panic!("expected Encode, got {other:?}"),
        }
        assert_eq!(table.requests.writes(), 0);

        let item = raw_get(&table, &key).await.unwrap();
        assert_eq!(data_of(&item), json!({"small": true}));
        assert_eq!(table.scan_all().await.len(), 1);
    }

    #[tokio::test]
    async fn oversized_create_is_an_encode_error() {
        let table = TestTable::new("too-large-create").await;
        let store = table.store();
        let mut rec = record(blob(MAX_ITEM_BYTES), clock().now_plus(Duration::hours(1)));
        let err = store.create(&mut rec).await.unwrap_err();
        assert!(matches!(err, session_store::Error::Encode(_)), "{err:?}");
        assert_eq!(table.requests.total(), 0);
        assert!(table.scan_all().await.is_empty());
    }

    #[tokio::test]
    async fn the_largest_session_that_fits_is_accepted_by_dynamodb() {
        let table = TestTable::new("largest").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let expires = clock.now_plus(Duration::hours(1));
        let key = "max";
        // Fill the item up to exactly the limit, as the store counts it.
        let probe = store
            .schema()
            .item_size(key, r#"{"blob":""}"#, secs(expires));
        let data = blob(MAX_ITEM_BYTES - probe + r#"{"blob":""}"#.len());
        let json = serde_json::to_string(&data).unwrap();
        assert_eq!(
            store.schema().item_size(key, &json, secs(expires)),
            MAX_ITEM_BYTES
        );
        store.put(key, &data, Some(expires)).await.unwrap();
        assert_eq!(store.get::<Value>(key).await.unwrap().unwrap().data, data);

        // One byte more and DynamoDB itself refuses the item: the store's limit is exact.
        let mut item = session_item(key, &format!("{json} "), secs(expires));
        item.insert("id".into(), s("max2"));
        let refused = table
            .client
            .put_item()
            .table_name(&table.name)
            .set_item(Some(item))
            .send()
            .await;
        let err = refused.expect_err("DynamoDB accepted an item over 400 KB");
        let text = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
        assert!(text.contains("size"), "{text}");
    }

    #[tokio::test]
    async fn invalid_ids_are_rejected_without_a_request() {
        let table = TestTable::new("invalid-ids").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let later = clock.now_plus(Duration::hours(1));
        let too_long = "x".repeat(MAX_KEY_BYTES + 1);
        for id in ["", "!sweeper-checkpoint/0-1of1", "!x", too_long.as_str()] {
            let errors = [
                store.get::<Value>(id).await.unwrap_err(),
                store.put(id, &json!({}), None).await.unwrap_err(),
                store.insert(id, &json!({}), None).await.unwrap_err(),
                store.update(id, &json!({}), None).await.unwrap_err(),
                store.touch(id, later).await.unwrap_err(),
                store.delete(id).await.unwrap_err(),
            ];
            for err in errors {
                assert!(matches!(err, Error::InvalidId { .. }), "{id:.10}: {err:?}");
            }
        }
        assert_eq!(table.requests.total(), 0, "{:?}", table.requests);
        let err = store.get::<Value>(&too_long).await.unwrap_err().to_string();
        assert!(err.contains("2049 bytes") && err.contains("2048"), "{err}");
        let err = store.get::<Value>("!x").await.unwrap_err().to_string();
        assert!(err.contains("reserved"), "{err}");

        // The key prefix counts towards the key limit.
        let prefixed = table
            .store()
            .with_schema(dynamo_session_store::ItemSchema::new().with_key_prefix("app:"))
            .unwrap();
        let just_fits_alone = "x".repeat(MAX_KEY_BYTES);
        let err = prefixed.get::<Value>(&just_fits_alone).await.unwrap_err();
        assert!(matches!(err, Error::InvalidId { .. }), "{err:?}");
        assert_eq!(table.requests.total(), 0);
    }
}

mod decoding {
    use super::*;
    use dynamo_session_store::ItemSchema;

    /// Writes `item` under `id`, then checks that reading it through the core API and the
    /// `SessionStore` trait both fail with a decode error naming `attribute`.
    async fn assert_decode_error(
        table: &TestTable,
        store: &DynamoStore,
        mut item: Item,
        attribute: &str,
    ) {
        let id = Id::default();
        let key = format!("{}{id}", store.schema().key_prefix());
        item.insert(store.schema().key_attribute().to_owned(), s(&key));
        raw_put(table, item).await;

        match store.get::<Value>(&id.to_string()).await {
            Err(Error::Decode { attribute: a, .. }) => assert_eq!(a, attribute),
            other => panic!("expected a decode error on `{attribute}`, got {other:?}"),
        }
        match store.load(&id).await {
            Err(session_store::Error::Decode(text)) => {
                assert!(text.contains(&format!("`{attribute}`")), "{text}")
            }
            other => panic!("expected session_store::Error::Decode, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn corrupt_items_give_typed_decode_errors() {
        let table = TestTable::new("corrupt").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let later = secs(clock.now_plus(Duration::hours(1)));
        let item = |pairs: &[(&str, AttributeValue)]| -> Item {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        let cases = [
            (
                "data not JSON",
                item(&[("expires", n(later)), ("data", s("{not json"))]),
                "data",
            ),
            (
                "data a Number",
                item(&[("expires", n(later)), ("data", n(5))]),
                "data",
            ),
            ("data missing", item(&[("expires", n(later))]), "data"),
            (
                "expires a String",
                item(&[("expires", s("tomorrow")), ("data", s("{}"))]),
                "expires",
            ),
            (
                "expires fractional",
                item(&[
                    ("expires", AttributeValue::N(format!("{later}.5"))),
                    ("data", s("{}")),
                ]),
                "expires",
            ),
            ("expires missing", item(&[("data", s("{}"))]), "expires"),
            (
                "expires out of range",
                item(&[("expires", n(i64::MAX)), ("data", s("{}"))]),
                "expires",
            ),
        ];
        let written = cases.len();
        for (what, corrupt, attribute) in cases {
            println!("case: {what}");
            assert_decode_error(&table, &store, corrupt, attribute).await;
        }
        // Only the raw writes above: a failed read never writes.
        assert_eq!(table.requests.writes(), written);
    }

    #[tokio::test]
    async fn data_that_is_json_but_not_an_object_fails_to_load() {
        let table = TestTable::new("corrupt-shape").await;
        let clock = clock();
        let store = table.store().with_clock(clock.clone());
        let id = Id::default();
        let later = secs(clock.now_plus(Duration::hours(1)));
        raw_put(&table, session_item(&id.to_string(), "[1,2,3]", later)).await;

        // The core API reads whatever type the caller asks for...
        let got = store.get::<Value>(&id.to_string()).await.unwrap().unwrap();
        assert_eq!(got.data, json!([1, 2, 3]));
        // ...tower-sessions needs an object of values.
        let err = store.load(&id).await.unwrap_err();
        assert!(
            matches!(&err, session_store::Error::Decode(t) if t.contains("`data`")),
            "{err:?}"
        );
        // A typed read into the wrong shape names the attribute too.
        let err = store
            .get::<HashMap<String, u32>>(&id.to_string())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Decode { attribute, .. } if attribute == "data"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn corrupt_items_under_a_custom_schema_name_the_configured_attribute() {
        let schema = ItemSchema::new()
            .with_key_attribute("pk")
            .with_expires_attribute("ttl")
            .with_data_attribute("payload")
            .with_key_prefix("sess#");
        let table = TestTable::with_schema("corrupt-schema", schema.clone()).await;
        let clock = clock();
        let store = table
            .store()
            .with_schema(schema)
            .unwrap()
            .with_clock(clock.clone());
        let later = secs(clock.now_plus(Duration::hours(1)));
        let bad_ttl = HashMap::from([("ttl".to_owned(), s("x")), ("payload".to_owned(), s("{}"))]);
        assert_decode_error(&table, &store, bad_ttl, "ttl").await;
        // An item written with the default names is missing the configured ones.
        let default_names = HashMap::from([
            ("expires".to_owned(), n(later)),
            ("data".to_owned(), s("{}")),
        ]);
        assert_decode_error(&table, &store, default_names, "ttl").await;
        let no_payload =
            HashMap::from([("ttl".to_owned(), n(later)), ("data".to_owned(), s("{}"))]);
        assert_decode_error(&table, &store, no_payload, "payload").await;
    }
}

mod custom_schema {
    use super::*;
    use dynamo_session_store::{ItemSchema, WriteOutcome};

    #[tokio::test]
    async fn custom_attribute_names_and_key_prefix_work_end_to_end() {
        // `TTL` and `VALUE` are DynamoDB reserved words: every expression must alias them.
        let schema = ItemSchema::new()
            .with_key_attribute("session_key")
            .with_expires_attribute("ttl")
            .with_data_attribute("value")
            .with_key_prefix("app1:");
        let table = TestTable::with_schema("schema", schema.clone()).await;
        let clock = clock();
        let store = table
            .store()
            .with_schema(schema)
            .unwrap()
            .with_clock(clock.clone());
        let expires = clock.now_plus(Duration::hours(1));

        store
            .put("abc", &json!({"n": 1}), Some(expires))
            .await
            .unwrap();
        let got = store.get::<Value>("abc").await.unwrap().unwrap();
        assert_eq!(got.data, json!({"n": 1}));

        let items = table.scan_all().await;
        assert_eq!(items.len(), 1);
        let item = &items[0];
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["session_key", "ttl", "value"]);
        assert_eq!(item["session_key"], s("app1:abc"));
        assert_eq!(item["value"], s(r#"{"n":1}"#));
        // Epoch seconds, not milliseconds: DynamoDB's TTL ignores millisecond values.
        assert_eq!(item["ttl"], n(secs(expires)));
        let stored: i64 = item["ttl"].as_n().unwrap().parse().unwrap();
        assert!(stored < 100_000_000_000, "{stored} looks like milliseconds");

        // Touch, conditional update, insert and the trait all go through the aliases.
        let later = clock.now_plus(Duration::hours(2));
        assert_eq!(
            store.touch("abc", later).await.unwrap(),
            WriteOutcome::Touched
        );
        assert_eq!(
            store
                .update("abc", &json!({"n": 2}), Some(later))
                .await
                .unwrap(),
            WriteOutcome::Put
        );
        assert_eq!(
            store.insert("abc", &json!({"n": 3}), None).await.unwrap(),
            WriteOutcome::AlreadyExists
        );
        let items = table.scan_all().await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["ttl"], n(secs(later)));
        assert_eq!(items[0]["value"], s(r#"{"n":2}"#));

        let mut rec = record(json!({"visits": 1}), later);
        store.create(&mut rec).await.unwrap();
        let key = format!("app1:{}", rec.id);
        assert!(
            table
                .scan_all()
                .await
                .iter()
                .any(|i| i["session_key"] == s(&key)),
            "the trait's create ignored the prefix"
        );
        assert_eq!(store.load(&rec.id).await.unwrap().unwrap().data, rec.data);
        SessionStore::delete(&store, &rec.id).await.unwrap();
        store.delete("abc").await.unwrap();
        assert!(table.scan_all().await.is_empty());
    }

    #[tokio::test]
    async fn prefixed_stores_share_a_table_without_seeing_each_other() {
        let table = TestTable::new("shared-table").await;
        let a = table
            .store()
            .with_schema(ItemSchema::new().with_key_prefix("a:"))
            .unwrap();
        let b = table
            .store()
            .with_schema(ItemSchema::new().with_key_prefix("b:"))
            .unwrap();
        a.put("same-id", &json!({"app": "a"}), None).await.unwrap();
        assert_eq!(b.get::<Value>("same-id").await.unwrap(), None);
        b.put("same-id", &json!({"app": "b"}), None).await.unwrap();
        assert_eq!(
            a.get::<Value>("same-id").await.unwrap().unwrap().data,
            json!({"app": "a"})
        );
        assert_eq!(table.scan_all().await.len(), 2);
    }
}

mod dynamodb_errors {
    use super::*;

    #[tokio::test]
    async fn a_missing_table_error_keeps_its_real_cause() {
        let table = TestTable::new("no-table").await;
        let store = DynamoStore::new(table.client.clone(), format!("{}-missing", table.name));
        let err = store.get::<Value>("abc").await.unwrap_err();
        match &err {
            Error::DynamoDb {
                operation,
                code,
                transient,
                ..
            } => {
                assert_eq!(*operation, "GetItem");
                assert_eq!(code.as_deref(), Some("ResourceNotFoundException"));
                assert!(!transient);
            }
            other => panic!("expected DynamoDb, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("ResourceNotFoundException"), "{text}");
        assert_ne!(text.trim_end(), "DynamoDB GetItem failed: service error");
        assert!(std::error::Error::source(&err).is_some());

        let err = store.put("abc", &json!({}), None).await.unwrap_err();
        assert!(
            err.to_string().contains("ResourceNotFoundException"),
            "{err}"
        );
        // Through the trait, as a backend error with the same text.
        let err = store.load(&Id::default()).await.unwrap_err();
        match err {
            session_store::Error::Backend(text) => {
                assert!(text.contains("ResourceNotFoundException"), "{text}")
            }
            other => panic!("expected Backend, got {other:?}"),
        }
    }
}

mod http {
    use std::sync::Arc;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::State;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tokio::sync::Notify;
    use tower::ServiceExt;
    use tower_sessions::{Expiry, Session, SessionManagerLayer};

    use super::*;

    /// Lets a test hold a request in its handler while others run.
    #[derive(Default)]
    struct Gates {
        reached: Notify,
        release: Notify,
    }

    async fn count(session: Session) -> String {
        let visits: u64 = session.get("visits").await.unwrap().unwrap_or(0) + 1;
        session.insert("visits", visits).await.unwrap();
        visits.to_string()
    }

    async fn peek(session: Session) -> String {
        let visits: u64 = session.get("visits").await.unwrap().unwrap_or(0);
        visits.to_string()
    }

    async fn logout(session: Session) -> &'static str {
        session.flush().await.unwrap();
        "bye"
    }

    /// Holds the request until the test lets it finish (and save).
    async fn hold(gates: &Gates) {
        gates.reached.notify_one();
        gates.release.notified().await;
    }

    async fn slow_count(State(gates): State<Arc<Gates>>, session: Session) -> String {
        let visits = count(session).await;
        hold(&gates).await;
        visits
    }

    async fn slow_peek(State(gates): State<Arc<Gates>>, session: Session) -> String {
        let visits = peek(session).await;
        hold(&gates).await;
        visits
    }

    fn app(store: DynamoStore, gates: Arc<Gates>) -> Router {
        let layer = SessionManagerLayer::new(store)
            .with_expiry(Expiry::OnInactivity(Duration::minutes(30)))
            .with_always_save(true);
        Router::new()
            .route("/", get(count))
            .route("/peek", get(peek))
            .route("/slow", get(slow_count))
            .route("/slow-peek", get(slow_peek))
            .route("/logout", get(logout))
            .with_state(gates)
            .layer(layer)
    }

    /// Sends one request; returns (status, session cookie value if set, body).
    async fn send(
        app: &Router,
        path: &str,
        cookie: Option<&str>,
    ) -> (StatusCode, Option<String>, String) {
        let mut req = Request::builder().uri(path);
        if let Some(id) = cookie {
            req = req.header(header::COOKIE, format!("id={id}"));
        }
        let res = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let set_cookie = res
            .headers()
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned());
        let value = set_cookie.map(|c| {
            let pair = c.split(';').next().unwrap();
            pair.strip_prefix("id=")
                .expect("the session cookie")
                .to_owned()
        });
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, value, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_full_request_cycle_counts_visits_and_logout_deletes() {
        let table = TestTable::new("http").await;
        let app = app(table.store(), Arc::default());

        let (status, cookie, body) = send(&app, "/", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "1");
        let id = cookie.expect("the first response sets a session cookie");
        let item = raw_get(&table, &id)
            .await
            .expect("the session item was created");
        assert_eq!(data_of(&item), json!({"visits": 1}));
        let expires = expires_of(&item);
        let now = clock().now_plus(Duration::ZERO);
        let expected = secs(now + Duration::minutes(30));
        assert!(
            (expected - 5..=expected + 1).contains(&expires),
            "{expires} vs {expected}"
        );
        assert_eq!(table.requests.count("PutItem"), 1);

        let (status, _, body) = send(&app, "/", Some(&id)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "2"));
        let item = raw_get(&table, &id).await.unwrap();
        assert_eq!(data_of(&item), json!({"visits": 2}));
        assert_eq!(table.scan_all().await.len(), 1, "the cookie was not reused");

        // A request that only reads, under `with_always_save(true)`, writes nothing.
        table.requests.reset();
        let (_, _, body) = send(&app, "/peek", Some(&id)).await;
        assert_eq!(body, "2");
        assert_eq!(table.requests.writes(), 0, "{:?}", table.requests);

        let (status, cookie, body) = send(&app, "/logout", Some(&id)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "bye"));
        assert_eq!(cookie.as_deref(), Some(""), "the cookie is removed");
        assert!(table.scan_all().await.is_empty());

        // The old cookie no longer works: a new session starts.
        let (_, cookie, body) = send(&app, "/", Some(&id)).await;
        assert_eq!(body, "1");
        let new_id = cookie.unwrap();
        assert_ne!(new_id, id);
        assert!(raw_get(&table, &id).await.is_none());
        assert_eq!(table.scan_all().await.len(), 1);
    }

    /// Runs `path` with the session cookie `id` on `app` and, while its handler is held
    /// (session loaded, not yet saved), a logout on `logout_app`; then lets it finish.
    async fn logout_during(
        app: &Router,
        gates: &Gates,
        path: &'static str,
        id: &str,
        logout_app: &Router,
    ) -> (StatusCode, String) {
        let request = tokio::spawn({
            let (app, id) = (app.clone(), id.to_owned());
            async move { send(&app, path, Some(&id)).await }
        });
        // A bound, not a sleep: fails instead of hanging if the handler never runs.
        tokio::time::timeout(std::time::Duration::from_secs(10), gates.reached.notified())
            .await
            .expect("the held request reached its handler");
        let (_, _, body) = send(logout_app, "/logout", Some(id)).await;
        assert_eq!(body, "bye");
        gates.release.notify_one();
        let (status, _, body) = request.await.unwrap();
        (status, body)
    }

    #[tokio::test]
    async fn a_logout_racing_a_request_is_not_undone_by_its_save() {
        let table = TestTable::new("http-race").await;
        let gates = Arc::new(Gates::default());
        let app = app(table.store(), gates.clone());

        // Tab 1 loads the session and counts a visit; tab 2 logs out before tab 1 saves.
        let (_, cookie, _) = send(&app, "/", None).await;
        let id = cookie.unwrap();
        let (status, body) = logout_during(&app, &gates, "/slow", &id, &app).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "2"));
        assert!(
            raw_get(&table, &id).await.is_none(),
            "the late save resurrected the session"
        );
        assert!(table.scan_all().await.is_empty());

        // Tab 1 only reads (an unchanged save under `with_always_save`); the logout runs in
        // another process, whose store shares no throttle memory with this one.
        let (_, cookie, _) = send(&app, "/", None).await;
        let id = cookie.unwrap();
        let other_process = self::app(table.store(), Arc::default());
        let (status, body) = logout_during(&app, &gates, "/slow-peek", &id, &other_process).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
        assert!(raw_get(&table, &id).await.is_none());
        assert!(table.scan_all().await.is_empty());

        // The old cookie now starts a new session.
        let (_, _, body) = send(&app, "/peek", Some(&id)).await;
        assert_eq!(body, "0");
    }
}

#[tokio::test]
async fn embedded_endpoint_answers() {
    let table = TestTable::new("smoke").await;
    let store = table.store();
    store.put("abc", &json!({"n": 1}), None).await.unwrap();
    let got = store.get::<Value>("abc").await.unwrap().unwrap();
    assert_eq!(got.data, json!({"n": 1}));
    assert_eq!(table.requests.count("PutItem"), 1);
}
