//! The store against a real DynamoDB-compatible server (embedded dynoxide, or
//! `DYNAMODB_ENDPOINT`), run as `cargo test -p integration-tests --test store`: every test has a fresh table, counts the HTTP requests its client
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
//! | `key_modes` | ids hashed at rest; the upgrade from plain keys through the migration window |
//! | `owners` | sessions by owner: list, revoke, races, index cost, bad owners |
//! | `codec` | compressed and encrypted data, key rotation, undecodable data loads as absent, sweeping both forms |

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_session_store::tower_sessions_core::session::{Id, Record};
use dynamo_session_store::tower_sessions_core::{SessionStore, session_store};
use dynamo_session_store::{DynamoStore, Error, ItemSchema, ManualClock};
use integration_tests::{Item, TestTable, clock_now, key_of, n, s, session_item};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

mod codec;
mod core_api;
mod custom_schema;
mod decoding;
mod dynamodb_errors;
mod http;
mod key_modes;
mod limits;
mod owners;
mod routes;
mod throttling;
mod tower_sessions_trait;

/// `now` truncated to whole seconds, the resolution the table stores.
fn secs(at: OffsetDateTime) -> i64 {
    at.unix_timestamp()
}

/// A table created for `schema`, a stopped clock, and a store on both.
async fn schema_fixture(label: &str, schema: ItemSchema) -> (TestTable, ManualClock, DynamoStore) {
    let table = TestTable::with_schema(label, schema.clone()).await;
    let clock = clock_now();
    let store = table
        .store()
        .with_schema(schema)
        .expect("a valid schema")
        .with_clock(clock.clone());
    (table, clock, store)
}

/// Checks that no key in `table` (attribute `key_attribute`) holds `id`: keys are
/// hashes, so nothing read from the table can be sent back as a cookie.
async fn assert_no_key_contains(table: &TestTable, key_attribute: &str, id: &str) {
    let keys = table.keys(key_attribute).await;
    assert!(!keys.is_empty(), "no keys to check");
    assert!(
        keys.iter().all(|key| !key.contains(id)),
        "a key holds the session id {id}: {keys:?}"
    );
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

#[tokio::test]
async fn embedded_endpoint_answers() {
    let table = TestTable::new("smoke").await;
    let store = table.store();
    store.put("abc", &json!({"n": 1}), None).await.unwrap();
    let got = store.get::<Value>("abc").await.unwrap().unwrap();
    assert_eq!(got.data, json!({"n": 1}));
    assert_eq!(table.requests.count("PutItem"), 1);
}

/// Collects the `warn` lines the store logs (on the current thread, while installed).
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Runs `f` on this thread with the `warn` lines it logs collected: its output and
    /// the lines. Use a current-thread runtime, so every poll is on this thread.
    async fn capture<T>(f: impl std::future::Future<Output = T>) -> (String, T) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
            .with_ansi(false)
            .finish();
        let _guard = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber);
        let out = f.await;
        (logs.text(), out)
    }
}
