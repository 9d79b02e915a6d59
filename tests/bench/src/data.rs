//! The sweeper scenarios' data: a table of sessions, every other one expired, loaded fast
//! with concurrent `BatchWriteItem`, reloaded between runs, and counted afterwards.
//!
//! Items have the store's schema (`id`, `expires` in epoch seconds, `data` a JSON text of
//! about 200 bytes). Expired items expired a day ago (far beyond the sweeper's 15 s grace),
//! live ones expire in a day. Keys are derived from the item's index, so the expired half
//! can be rewritten without keeping anything in memory.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Select, WriteRequest};
use dynamo_session_store::clock::{Clock, SystemClock};
use futures_util::{StreamExt, stream};
use integration_tests::{LocalDynamo, TestTable, put_request};
pub use integration_tests::{delete_request, write_batch};

/// Size of each session's `data` attribute.
pub const PAYLOAD_BYTES: usize = 200;
/// `BatchWriteItem`'s limit of requests per call.
pub const BATCH: usize = 25;
/// `BatchWriteItem` calls in flight while loading.
const LOAD_IN_FLIGHT: usize = 16;
const DAY: i64 = 24 * 60 * 60;

/// A table of `total` sessions; items with an even index are expired.
#[derive(Debug)]
pub struct Sessions {
    /// A plain client of the shared endpoint (no interceptors, SDK default retries).
    pub client: Client,
    /// The table's name.
    pub table: String,
    total: usize,
    now: i64,
    _table: TestTable,
}

impl Sessions {
    /// Creates a fresh table and loads `total` sessions into it.
    pub async fn create(label: &str, total: usize) -> Self {
        let table = TestTable::new(label).await;
        let sessions = Self {
            client: LocalDynamo::shared().client().await,
            table: table.name.clone(),
            total,
            now: SystemClock.now().unix_timestamp(),
            _table: table,
        };
        let started = Instant::now();
        sessions.put(0..total, 1).await;
        eprintln!(
            "   loaded {total} sessions ({} expired) in {:.1} s",
            sessions.expired(),
            started.elapsed().as_secs_f64()
        );
        sessions
    }

    /// How many items are expired.
    pub fn expired(&self) -> usize {
        self.total.div_ceil(2)
    }

    /// How many items are live.
    pub fn live(&self) -> usize {
        self.total / 2
    }

    /// The keys of the expired items, in load order.
    pub fn expired_keys(&self) -> impl Iterator<Item = String> + use<> {
        (0..self.total).step_by(2).map(key)
    }

    /// Writes the expired half again (after a run deleted it).
    pub async fn reload_expired(&self) {
        let started = Instant::now();
        self.put(0..self.total, 2).await;
        eprintln!(
            "   reloaded {} expired sessions in {:.1} s",
            self.expired(),
            started.elapsed().as_secs_f64()
        );
    }

    /// Checks that exactly the live items remain: as many items as live sessions, and
    /// none of them expired. A fast sweeper that deletes too much or too little fails here.
    pub async fn check_only_live_remain(&self) -> Result<(), String> {
        self.check_counts(self.live(), 0).await
    }

    /// Checks that every item is still there (after a dry run).
    pub async fn check_untouched(&self) -> Result<(), String> {
        self.check_counts(self.total, self.expired()).await
    }

    async fn check_counts(&self, items: usize, expired: usize) -> Result<(), String> {
        let found = self.count(None).await;
        let found_expired = self.count(Some(self.now)).await;
        if found == items && found_expired == expired {
            Ok(())
        } else {
            Err(format!(
                "expected {items} items of which {expired} expired, found {found} of which \
                 {found_expired} expired"
            ))
        }
    }

    /// Items in the table (with `expires < below`, if given), by a consistent count scan.
    async fn count(&self, below: Option<i64>) -> usize {
        let mut start = None;
        let mut count = 0;
        loop {
            let mut scan = self
                .client
                .scan()
                .table_name(&self.table)
                .select(Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start);
            if let Some(below) = below {
                scan = scan
                    .filter_expression("#e < :below")
                    .expression_attribute_names("#e", "expires")
                    .expression_attribute_values(":below", AttributeValue::N(below.to_string()));
            }
            let page = scan.send().await.expect("count scan");
            count += usize::try_from(page.count).unwrap_or(0);
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return count;
            }
        }
    }

    /// Puts items `range.step_by(step)`, `BATCH` per call, `LOAD_IN_FLIGHT` calls at once.
    async fn put(&self, range: std::ops::Range<usize>, step: usize) {
        let indices: Vec<usize> = range.step_by(step).collect();
        let now = self.now;
        stream::iter(indices.chunks(BATCH))
            .map(|chunk| {
                let requests = chunk.iter().map(|&i| session_put(i, now)).collect();
                write_batch(&self.client, &self.table, requests)
            })
            .buffer_unordered(LOAD_IN_FLIGHT)
            .collect::<Vec<()>>()
            .await;
    }
}

/// The key of item `i`: 32 hex digits, like a session id.
pub fn key(i: usize) -> String {
    let i = i as u64;
    // splitmix64, so that keys spread over the hash space (and over scan segments).
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("{:016x}{i:016x}", z ^ (z >> 31))
}

fn session_put(i: usize, now: i64) -> WriteRequest {
    let expires = if i.is_multiple_of(2) {
        now - DAY
    } else {
        now + DAY
    };
    let mut data = format!(r#"{{"user":"user-{i}","cart":[1,2,3],"pad":""#);
    let pad = PAYLOAD_BYTES.saturating_sub(data.len() + 2);
    data.extend(std::iter::repeat_n('x', pad));
    data.push_str("\"}");
    put_request(HashMap::from([
        ("id".to_owned(), AttributeValue::S(key(i))),
        ("expires".to_owned(), AttributeValue::N(expires.to_string())),
        ("data".to_owned(), AttributeValue::S(data)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_about_200_bytes_and_keys_unique() {
        let WriteRequest {
            put_request: Some(put),
            ..
        } = session_put(12345, 0)
        else {
            panic!("a put")
        };
        let data = put.item["data"].as_s().unwrap();
        assert_eq!(data.len(), PAYLOAD_BYTES);
        serde_json::from_str::<serde_json::Value>(data).unwrap();
        let keys: std::collections::HashSet<String> = (0..10_000).map(key).collect();
        assert_eq!(keys.len(), 10_000);
    }
}
