//! Helpers shared by the integration suite (`tests/tests/*.rs`).
//!
//! Every test gets its own freshly created table on the shared endpoint
//! ([`LocalDynamo::shared`]: the embedded dynoxide server, or `DYNAMODB_ENDPOINT`), so
//! tests run in parallel without seeing each other's items. Against a remote endpoint the
//! table is deleted again when the [`TestTable`] is dropped.
//!
//! Beside the table: the attribute-value shorthands [`s`] and [`n`], the two test clocks
//! ([`clock_now`] for store tests, [`far_future_clock`] for sweeper tests), raw reads and
//! writes that bypass the store, and [`write_batch`], the one bounded, backing-off
//! `BatchWriteItem` loop the suite and the bench share; and [`cost`], the model of what a
//! sweep costs that the bench and the cost tests check the sweeper against.
#![deny(missing_docs)]

pub mod cost;
pub mod in_process;
pub mod observe;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use dynamo_session_store::{DynamoStore, ItemSchema, ManualClock};
pub use local_dynamodb::LocalDynamo;
use time::OffsetDateTime;

/// One DynamoDB item, as the SDK holds it.
pub type Item = HashMap<String, AttributeValue>;

/// A string attribute value.
pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// A number attribute value.
pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A session item in the default schema (`id`, `expires`, `data`), written as is: the
/// key is not checked, so tests can also store what the store itself would refuse.
pub fn session_item(key: &str, data: &str, expires: i64) -> Item {
    HashMap::from([
        ("id".to_owned(), s(key)),
        ("expires".to_owned(), n(expires)),
        ("data".to_owned(), s(data)),
    ])
}

/// The table key of session `id` under the default schema (a hashed key): where a
/// default store keeps it, for raw reads and writes.
pub fn key_of(id: &str) -> String {
    ItemSchema::default().key_for(id).expect("a valid id")
}

/// A stopped clock at the current time, for store tests: items expire in the real near
/// future, so they are also sane for DynamoDB's own TTL when the suite runs on real AWS.
pub fn clock_now() -> ManualClock {
    ManualClock::starting_now()
}

/// Epoch second of [`far_future_clock`]: 2096-10-02.
pub const FAR_FUTURE: i64 = 4_000_000_000;

/// A stopped clock far in the future, for sweeper tests: sessions "expired" by it are
/// still in the real future, so no native TTL (on real AWS) can delete them behind the
/// sweeper's back.
pub fn far_future_clock() -> ManualClock {
    ManualClock::new(OffsetDateTime::from_unix_timestamp(FAR_FUTURE).expect("a valid time"))
}

/// A table created for one test.
#[derive(Debug)]
pub struct TestTable {
    /// Its name.
    pub name: String,
    /// A client for its endpoint.
    pub client: Client,
    /// Counts every HTTP request (retries included) the client sends, by operation.
    pub requests: RequestCounter,
    remote: bool,
}

impl TestTable {
    /// Creates a uniquely named sessions table with the default schema.
    pub async fn new(label: &str) -> Self {
        Self::with_schema(label, ItemSchema::default()).await
    }

    /// Creates a uniquely named sessions table for `schema` (its key attribute and TTL on
    /// its expiry attribute), with native TTL enabled.
    pub async fn with_schema(label: &str, schema: ItemSchema) -> Self {
        Self::created_by(label, |store| {
            store.with_schema(schema).expect("valid schema")
        })
        .await
    }

    /// Creates a uniquely named sessions table with the owner index (named
    /// [`dynamo_session_store::owner::DEFAULT_OWNER_INDEX`], on the default owner
    /// attribute), as `DynamoStore::create_table` makes it for a store that writes owners.
    pub async fn with_owner_index(label: &str) -> Self {
        Self::created_by(label, |store| store.with_owner(|data| data.get("user"))).await
    }

    /// Creates a uniquely named table with `DynamoStore::create_table` of the store that
    /// `configure` makes from a default store on it.
    pub async fn created_by(
        label: &str,
        configure: impl FnOnce(DynamoStore) -> DynamoStore,
    ) -> Self {
        let local = LocalDynamo::shared();
        let requests = RequestCounter::default();
        let config = local.sdk_config().await;
        let client = Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&config)
                .interceptor(requests.clone())
                .build(),
        );
        let name = unique_name(label);
        configure(DynamoStore::new(client.clone(), &name))
            .create_table()
            .await
            .expect("create test table");
        requests.reset();
        Self {
            name,
            client,
            requests,
            remote: !local.is_embedded(),
        }
    }

    /// A store on this table with the default options.
    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(self.client.clone(), &self.name)
    }

    /// Every item in the table, read with a consistent scan (for assertions).
    pub async fn scan_all(&self) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.name)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan test table");
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }
}

impl TestTable {
    /// A consistent raw read of the item keyed `key` (attribute `id`), bypassing the store.
    pub async fn raw_get(&self, key: &str) -> Option<Item> {
        self.client
            .get_item()
            .table_name(&self.name)
            .key("id", s(key))
            .consistent_read(true)
            .send()
            .await
            .expect("raw GetItem")
            .item
    }

    /// A raw write of `item`, bypassing the store, as another tool would. `Err` holds the
    /// server's refusal with its whole cause chain, lower-cased.
    pub async fn try_raw_put(&self, item: Item) -> Result<(), String> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                    .to_string()
                    .to_lowercase()
            })
    }

    /// [`TestTable::try_raw_put`], which must succeed.
    pub async fn raw_put(&self, item: Item) {
        if let Err(refused) = self.try_raw_put(item).await {
            panic!("raw PutItem refused: {refused}");
        }
    }

    /// Writes `items` straight into the table, as another tool would (no store, no proxy):
    /// `BatchWriteItem` requests of 25, `concurrency` of them in flight, each repeated
    /// until nothing is left unprocessed. Fast enough to seed tens of thousands of items.
    pub async fn batch_put(&self, items: Vec<Item>, concurrency: usize) {
        let batches: Vec<Vec<Item>> = items.chunks(25).map(<[Item]>::to_vec).collect();
        let queue = Arc::new(Mutex::new(batches));
        let mut writers = tokio::task::JoinSet::new();
        for _ in 0..concurrency.max(1) {
            let (queue, client, table) = (queue.clone(), self.client.clone(), self.name.clone());
            writers.spawn(async move {
                loop {
                    let batch = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let Some(batch) = batch else { break };
                    let puts = batch.into_iter().map(put_request).collect();
                    write_batch(&client, &table, puts).await;
                }
            });
        }
        while let Some(done) = writers.join_next().await {
            done.expect("a batch writer panicked");
        }
    }

    /// The string keys (attribute `key_attribute`) of every item in the table, read with a
    /// consistent parallel scan of 4 segments projecting only the key.
    pub async fn keys(&self, key_attribute: &str) -> HashSet<String> {
        const SEGMENTS: i32 = 4;
        let mut scans = tokio::task::JoinSet::new();
        for segment in 0..SEGMENTS {
            let (client, table) = (self.client.clone(), self.name.clone());
            let key_attribute = key_attribute.to_owned();
            scans.spawn(async move {
                let mut keys = Vec::new();
                let mut start = None;
                loop {
                    let page = client
                        .scan()
                        .table_name(&table)
                        .segment(segment)
                        .total_segments(SEGMENTS)
                        .consistent_read(true)
                        .projection_expression("#k")
                        .expression_attribute_names("#k", &key_attribute)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .expect("scan test table keys");
                    for item in page.items.unwrap_or_default() {
                        match item.get(&key_attribute) {
                            Some(AttributeValue::S(key)) => keys.push(key.clone()),
                            other => panic!("an item with key {other:?}"),
                        }
                    }
                    start = page.last_evaluated_key.filter(|k| !k.is_empty());
                    if start.is_none() {
                        return keys;
                    }
                }
            });
        }
        let mut all = HashSet::new();
        while let Some(keys) = scans.join_next().await {
            all.extend(keys.expect("a key scan panicked"));
        }
        all
    }
}

/// A `BatchWriteItem` put of `item`.
pub fn put_request(item: Item) -> WriteRequest {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .expect("an item is set");
    WriteRequest::builder().put_request(put).build()
}

/// A `BatchWriteItem` delete of the item keyed `key` (attribute `id`).
pub fn delete_request(key: String) -> WriteRequest {
    let delete = DeleteRequest::builder()
        .key("id", AttributeValue::S(key))
        .build()
        .expect("the key is set");
    WriteRequest::builder().delete_request(delete).build()
}

/// How often [`write_batch`] resends what came back unprocessed before it gives up.
pub const MAX_BATCH_ROUNDS: u32 = 10;

/// One `BatchWriteItem` of up to 25 `requests` on `table`, resending what comes back
/// unprocessed (as DynamoDB does when throttled) after a pause that doubles from 10 ms,
/// at most [`MAX_BATCH_ROUNDS`] times; it panics past that, or on an error.
pub async fn write_batch(client: &Client, table: &str, mut requests: Vec<WriteRequest>) {
    let mut pause = std::time::Duration::from_millis(10);
    for round in 0..=MAX_BATCH_ROUNDS {
        let out = client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
            .expect("BatchWriteItem");
        match out.unprocessed_items.and_then(|mut m| m.remove(table)) {
            Some(rest) if !rest.is_empty() && round < MAX_BATCH_ROUNDS => {
                tokio::time::sleep(pause).await;
                pause *= 2;
                requests = rest;
            }
            Some(rest) if !rest.is_empty() => panic!(
                "BatchWriteItem: {} requests still unprocessed after {MAX_BATCH_ROUNDS} resends",
                rest.len()
            ),
            _ => return,
        }
    }
}

impl Drop for TestTable {
    fn drop(&mut self) {
        if !self.remote {
            return; // the embedded server's memory goes with the process
        }
        let name = self.name.clone();
        // Drop cannot be async: delete from a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async {
                    // A client of its own: the test's client pools connections driven by
                    // the test's runtime, which is blocked in this `join` (a ~6 s stall).
                    let client = LocalDynamo::shared().client().await;
                    let _ = client.delete_table().table_name(name).send().await;
                });
            }
        })
        .join();
    }
}

/// An HTTP/1.1 answer, as [`http`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The value of the `Set-Cookie` for `cookie`, if the answer sets it (empty when it
    /// removes the cookie).
    pub set_cookie: Option<String>,
    /// The body.
    pub body: String,
}

/// One HTTP/1.1 request over a real TCP connection to `addr`: `method path`, with the
/// cookie `cookie=value` when `value` is given, and `form` as a URL-encoded body. A
/// browser's view of an app, for the demo's self-test and the HTTP tests.
///
/// # Panics
/// When the connection fails or the answer is not HTTP.
pub async fn http(
    addr: std::net::SocketAddr,
    (method, path): (&str, &str),
    (cookie, value): (&str, Option<&str>),
    form: Option<&str>,
) -> HttpAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let cookie_header = value.map_or_else(String::new, |v| format!("Cookie: {cookie}={v}\r\n"));
    let body = form.unwrap_or("");
    let content = if form.is_some() {
        "Content-Type: application/x-www-form-urlencoded\r\n"
    } else {
        ""
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{cookie_header}{content}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("end of headers");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let set_cookie = lines
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| cookie_value(v, cookie).map(str::to_owned));
    HttpAnswer {
        status,
        set_cookie,
        body: body.to_owned(),
    }
}

/// The value of the cookie `name` in a `Cookie` or `Set-Cookie` header value.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

/// A table name no other test in this or a concurrent run uses.
pub fn unique_name(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::UNIX_EPOCH
        .elapsed()
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("test-{label}-{}-{n}-{nanos:x}", std::process::id())
}

/// An SDK interceptor counting the HTTP requests a client sends, by DynamoDB operation.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl RequestCounter {
    /// Requests sent for `operation` (e.g. `PutItem`) since the last reset.
    pub fn count(&self, operation: &str) -> usize {
        self.lock().get(operation).copied().unwrap_or(0)
    }

    /// Requests of the write operations (`PutItem`, `UpdateItem`, `DeleteItem`,
    /// `BatchWriteItem`, `BatchExecuteStatement`, `ExecuteStatement`).
    pub fn writes(&self) -> usize {
        [
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "BatchWriteItem",
            "BatchExecuteStatement",
            "ExecuteStatement",
        ]
        .iter()
        .map(|op| self.count(op))
        .sum()
    }

    /// All requests since the last reset.
    pub fn total(&self) -> usize {
        self.lock().values().sum()
    }

    /// Forgets the counts.
    pub fn reset(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = observe::operation(context.request().headers());
        *self.lock().entry(operation).or_default() += 1;
        Ok(())
    }
}
