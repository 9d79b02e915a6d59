//! The sweeper's two baselines, run on the same server and table as the sweeper.
//!
//! - [`raw_batch_delete`]: the practical limit. Unconditional `BatchWriteItem` deletes of
//!   keys already known (no scan at all), 25 per call, a fixed number of calls in flight.
//! - [`raw_partiql_delete`]: the sweeper's own conditional delete statements on the known
//!   keys, without the scan: what the conditional deletes alone cost on this server.
//! - [`naive_sweep`]: what the Node stores do. One sequential `Scan` filtered on
//!   `expires < now`, then one unconditional `DeleteItem` per expired item, one at a time.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, BatchStatementRequest};
use futures_util::{StreamExt, stream};

use crate::data::{BATCH, delete_request, write_batch};

/// Deletes `keys` with `BatchWriteItem`, `in_flight` calls at a time; returns the time taken.
pub async fn raw_batch_delete(
    client: &Client,
    table: &str,
    keys: Vec<String>,
    in_flight: usize,
) -> Duration {
    let batches: Vec<Vec<String>> = keys.chunks(BATCH).map(<[_]>::to_vec).collect();
    let started = Instant::now();
    stream::iter(batches)
        .map(|batch| {
            let requests = batch.into_iter().map(delete_request).collect();
            write_batch(client, table, requests)
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

/// Deletes `keys` with the sweeper's PartiQL statement (`… WHERE id = ? AND expires < ?`),
/// 25 per `BatchExecuteStatement`, `in_flight` calls at a time; returns the time taken.
pub async fn raw_partiql_delete(
    client: &Client,
    table: &str,
    keys: Vec<String>,
    cutoff: i64,
    in_flight: usize,
) -> Duration {
    let statement =
        sweeper_lambda::delete::delete_statement(table, &dynamo_session_store::ItemSchema::new());
    let cutoff = AttributeValue::N(cutoff.to_string());
    let batches: Vec<Vec<String>> = keys.chunks(BATCH).map(<[_]>::to_vec).collect();
    let started = Instant::now();
    stream::iter(batches)
        .map(|batch| {
            let statements: Vec<BatchStatementRequest> = batch
                .into_iter()
                .map(|key| {
                    BatchStatementRequest::builder()
                        .statement(&statement)
                        .parameters(AttributeValue::S(key))
                        .parameters(cutoff.clone())
                        .build()
                        .expect("the statement is set")
                })
                .collect();
            async move {
                let out = client
                    .batch_execute_statement()
                    .set_statements(Some(statements))
                    .send()
                    .await
                    .expect("BatchExecuteStatement");
                if let Some(failed) = out.responses().iter().find_map(|r| r.error.as_ref()) {
                    panic!("a PartiQL delete failed: {failed:?}");
                }
            }
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

/// Scans sequentially for items with `expires < now` and deletes them one by one,
/// unconditionally, stopping after `limit` deletions. Returns the deletions and the time.
pub async fn naive_sweep(
    client: &Client,
    table: &str,
    now: i64,
    limit: usize,
) -> (usize, Duration) {
    let started = Instant::now();
    let mut deleted = 0;
    let mut start = None;
    'pages: loop {
        let page = client
            .scan()
            .table_name(table)
            .filter_expression("#e < :now")
            .expression_attribute_names("#e", "expires")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("naive Scan");
        for item in page.items.unwrap_or_default() {
            if deleted == limit {
                break 'pages;
            }
            let Some(id) = item.get("id").cloned() else {
                continue;
            };
            client
                .delete_item()
                .table_name(table)
                .key("id", id)
                .send()
                .await
                .expect("naive DeleteItem");
            deleted += 1;
        }
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            break;
        }
    }
    (deleted, started.elapsed())
}
