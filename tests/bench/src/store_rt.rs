//! Scenario 1: `load` + `save` round trips per second through the `SessionStore` trait,
//! against raw `GetItem` + `PutItem` of the same payload through the SDK.
//!
//! Every store save changes the data (a counter), so every round trip really writes: this
//! measures the store's own client-side cost (JSON through tower-sessions' map, keys,
//! throttling bookkeeping), not its throttling, against raw calls carrying the same save
//! condition (`attribute_exists(#k) AND #e > :now`), which the server evaluates either way.
//! The same store with plain keys shows what hashing the id (SHA-256 per call) costs. The
//! five paths take turns round trip by round trip, in an order shuffled each round (from
//! a fixed seed), and each path's times are summed, so a noisy moment hurts all alike and
//! no path always runs after the same one.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::TestTable;
use serde_json::json;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::SessionStore;

use dynamo_session_store::schema::KeyMode;
use dynamo_session_store::{Clock, ItemSchema, SystemClock};

use crate::report::{Report, Row};

/// The store against raw calls with the same save condition: at most 5% spent in the
/// store.
const TARGET_RATIO: f64 = 0.95;

pub async fn run(report: &mut Report, quick: bool) {
    let rounds = if quick { 2 } else { 5 };
    for (label, size, ops) in [
        ("200 B", 200, if quick { 10 } else { 300 }),
        ("4 KB", 4 * 1024, if quick { 10 } else { 300 }),
        ("100 KB", 100 * 1024, if quick { 5 } else { 150 }),
    ] {
        let table = TestTable::new("bench-store").await;
        let store = table.store();
        let blob = "x".repeat(size);

        // The store's session, created through the trait.
        let mut record = Record {
            id: Id::default(),
            data: [("blob".to_owned(), json!(blob)), ("n".to_owned(), json!(0))]
                .into_iter()
                .collect(),
            expiry_date: time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(365 * 100),
        };
        store.create(&mut record).await.expect("create");
        let id = record.id;
        // The same store with plain keys (the id as the key, as 0.2 wrote): what hashing
        // the id costs a round trip.
        let plain_table = TestTable::new("bench-store-plain").await;
        let plain = plain_table
            .store()
            .with_schema(ItemSchema::new().with_key_mode(KeyMode::Plain))
            .expect("a valid schema");
        let mut plain_record = record.clone();
        plain.create(&mut plain_record).await.expect("create");
        let plain_id = plain_record.id;
        let mut plain_time = Duration::ZERO;

        // The raw path's item: the same attributes and payload size.
        let raw_key = "raw-session";
        let raw_data = serde_json::to_string(&record.data).expect("json");
        let mut store_time = Duration::ZERO;
        let mut raw_time = Duration::ZERO;
        let mut cond_time = Duration::ZERO;
        let mut json_time = Duration::ZERO;
        let now = SystemClock.now().unix_timestamp();
        // The item the raw path with the trait's JSON work reads and rewrites.
        raw_round_trips(&table, "raw-json-session", &raw_data, 1, None).await;
        // The raw paths' item, there before the first round (whichever path it starts with).
        raw_round_trips(&table, raw_key, &raw_data, 1, None).await;
        let mut n = 0_u64;
        let mut order_rng = fastrand::Rng::with_seed(1);
        for _ in 0..rounds * ops {
            // One round trip of each path, in a shuffled order: a fixed rotation put each
            // path always after the same other one, so whatever that one left in the
            // allocator (freed 100 KB buffers, a trimmed heap) always landed on it.
            let mut order = [0_u32, 1, 2, 3, 4];
            order_rng.shuffle(&mut order);
            for path in order {
                match path {
                    4 => {
                        json_time +=
                            raw_json_round_trip(&table, "raw-json-session", &raw_data, n, now)
                                .await;
                    }
                    0 => store_time += store_round_trips(&store, id, 1, &mut n).await,
                    1 => plain_time += store_round_trips(&plain, plain_id, 1, &mut n).await,
                    2 => raw_time += raw_round_trips(&table, raw_key, &raw_data, 1, None).await,
                    _ => {
                        cond_time +=
                            raw_round_trips(&table, raw_key, &raw_data, 1, Some(now)).await;
                    }
                }
            }
        }
        let total = f64::from(rounds * ops);
        let store_rate = total / store_time.as_secs_f64();
        let raw_rate = total / raw_time.as_secs_f64();
        let cond_rate = total / cond_time.as_secs_f64();
        let ratio = store_rate / cond_rate;
        report.push(Row {
            scenario: "1 store".into(),
            case: format!("load+save round trips, payload {label}"),
            value: store_rate,
            unit: "rt/s".into(),
            baseline: Some(cond_rate),
            ratio: Some(ratio),
            target: Some(format!(">= {TARGET_RATIO:.2}x raw, same condition")),
            met: Some(ratio >= TARGET_RATIO),
            detail: None,
        });
        let plain_rate = total / plain_time.as_secs_f64();
        report.push(Row {
            scenario: "1 store".into(),
            case: format!("  hashed keys vs plain keys, {label}"),
            value: store_rate,
            unit: "rt/s".into(),
            baseline: Some(plain_rate),
            ratio: Some(store_rate / plain_rate),
            target: Some(">= 0.98x plain".into()),
            met: Some(store_rate / plain_rate >= 0.98),
            detail: None,
        });
        // Where the store's cost goes: raw calls with the condition that also do the JSON
        // work tower-sessions' trait asks of any store, with serde_json (parse the data
        // into its map on load, serialize the map on save; no sorted copy, no
        // fingerprint). The store serializes with sonic-rs, which is cheaper, so this is
        // a reference point (a plain serde_json store), not the store's own cost alone.
        let json_rate = total / json_time.as_secs_f64();
        report.push(Row {
            scenario: "1 store".into(),
            case: format!("  store vs raw + the trait's JSON work, {label}"),
            value: store_rate,
            unit: "rt/s".into(),
            baseline: Some(json_rate),
            ratio: Some(store_rate / json_rate),
            target: None,
            met: None,
            detail: None,
        });
        // What the save condition costs the server: raw calls with it against raw calls
        // without it.
        report.push(Row {
            scenario: "1 store".into(),
            case: format!("  raw with the store's save condition vs without, {label}"),
            value: cond_rate,
            unit: "rt/s".into(),
            baseline: Some(raw_rate),
            ratio: Some(cond_rate / raw_rate),
            target: None,
            met: None,
            detail: None,
        });
    }
}

/// `ops` load + save round trips of session `id` through the `SessionStore` trait, each
/// save changing the data (the counter `n`, carried across calls), so each one writes.
pub(crate) async fn store_round_trips<S: SessionStore>(
    store: &S,
    id: Id,
    ops: u32,
    n: &mut u64,
) -> Duration {
    let started = Instant::now();
    for _ in 0..ops {
        let mut loaded = store.load(&id).await.expect("load").expect("present");
        *n += 1;
        loaded.data.insert("n".into(), json!(*n));
        store.save(&loaded).await.expect("save");
    }
    started.elapsed()
}

/// One raw round trip with the store's save condition that also does the JSON work of the
/// tower-sessions trait: the data read is parsed into a `HashMap<String, Value>`, its
/// counter set to `n`, and the map serialized for the `PutItem` (`initial` if the item has
/// no data).
async fn raw_json_round_trip(
    table: &TestTable,
    key: &str,
    initial: &str,
    n: u64,
    now: i64,
) -> Duration {
    use std::collections::HashMap;
    let started = Instant::now();
    let out = table
        .client
        .get_item()
        .table_name(&table.name)
        .key("id", AttributeValue::S(key.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem");
    let text = match out.item.and_then(|mut item| item.remove("data")) {
        Some(AttributeValue::S(text)) => text,
        _ => initial.to_owned(),
    };
    let mut map: HashMap<String, serde_json::Value> =
        serde_json::from_str(&text).expect("session JSON");
    drop(text);
    map.insert("n".into(), json!(n));
    let data = serde_json::to_string(&map).expect("json");
    table
        .client
        .put_item()
        .table_name(&table.name)
        .item("id", AttributeValue::S(key.into()))
        .item("expires", AttributeValue::N("4102444800".into()))
        .item("data", AttributeValue::S(data))
        .condition_expression("attribute_exists(#k) AND #e > :now")
        .expression_attribute_names("#k", "id")
        .expression_attribute_names("#e", "expires")
        .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
        .send()
        .await
        .expect("PutItem");
    drop(map);
    started.elapsed()
}

/// `ops` raw `GetItem` + `PutItem` round trips; with `condition_now`, the `PutItem` carries
/// the store's save condition (`attribute_exists(#k) AND #e > :now`).
async fn raw_round_trips(
    table: &TestTable,
    key: &str,
    data: &str,
    ops: u32,
    condition_now: Option<i64>,
) -> Duration {
    let started = Instant::now();
    for _ in 0..ops {
        let _ = table
            .client
            .get_item()
            .table_name(&table.name)
            .key("id", AttributeValue::S(key.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem");
        let mut put = table
            .client
            .put_item()
            .table_name(&table.name)
            .item("id", AttributeValue::S(key.into()))
            .item("expires", AttributeValue::N("4102444800".into()))
            .item("data", AttributeValue::S(data.to_owned()));
        if let Some(now) = condition_now {
            put = put
                .condition_expression("attribute_exists(#k) AND #e > :now")
                .expression_attribute_names("#k", "id")
                .expression_attribute_names("#e", "expires")
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()));
        }
        put.send().await.expect("PutItem");
    }
    started.elapsed()
}
