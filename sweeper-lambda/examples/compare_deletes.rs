//! Measures the two conditional delete strategies on the same server, in the same run:
//! PartiQL `BatchExecuteStatement` (25 statements a request) against concurrent
//! `DeleteItem` with a `ConditionExpression`.
//!
//! ```text
//! cargo run --release -p sweeper-lambda --example compare_deletes [ITEMS] [ROUNDS]
//! ```
//!
//! Each round seeds a fresh table with ITEMS (default 20,000) expired sessions of about
//! 200 bytes, sweeps it with 8 segments, and prints expired sessions deleted per second.
//! Strategies alternate within a round so neither always runs on a warmer server. As the
//! practical limit, each round also deletes a seeded table with a raw, unconditional
//! `BatchWriteItem` loop over keys known in advance (8 workers, 4 requests in flight each,
//! no scan). Uses the embedded server unless `DYNAMODB_ENDPOINT` names another.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_session_store::{DynamoStore, ManualClock};
use integration_tests::{delete_request, put_request, write_batch};
use local_dynamodb::LocalDynamo;
use sweeper_lambda::client::dynamodb_client;
use sweeper_lambda::{Budget, DeleteStrategy, SweepConfig, sweep};
use time::OffsetDateTime;

const SEGMENTS: u32 = 8;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let items: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let local = LocalDynamo::start().expect("a DynamoDB endpoint");
    let client = dynamodb_client(
        local.endpoint(),
        sweeper_lambda::config::DEFAULT_ATTEMPT_TIMEOUT,
    )
    .await;
    let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(4_000_000_000).unwrap());
    let variants: [(&str, DeleteStrategy, usize); 4] = [
        (
            "PartiQL batch, 4 in flight/segment",
            DeleteStrategy::PartiqlBatch,
            4,
        ),
        (
            "DeleteItem, 4 in flight/segment",
            DeleteStrategy::DeleteItem,
            4,
        ),
        (
            "DeleteItem, 32 in flight/segment",
            DeleteStrategy::DeleteItem,
            32,
        ),
        (
            "PartiQL batch, 1 in flight/segment",
            DeleteStrategy::PartiqlBatch,
            1,
        ),
    ];
    println!(
        "{items} expired sessions (~200 B each), {SEGMENTS} segments, {rounds} rounds, endpoint {}",
        local.endpoint().unwrap_or("aws")
    );
    let mut results: HashMap<&str, Vec<f64>> = HashMap::new();
    const RAW: &str = "raw BatchWriteItem (no scan, no condition)";
    for round in 0..rounds {
        let table = format!("compare-deletes-{round}-raw");
        DynamoStore::new(client.clone(), &table)
            .create_table()
            .await
            .expect("create table");
        let keys = seed(&client, &table, items, &clock).await;
        let started = Instant::now();
        raw_delete(&client, &table, keys).await;
        let secs = started.elapsed().as_secs_f64();
        let rate = items as f64 / secs;
        println!("round {round}: {RAW:<38} {rate:>9.0} deletes/s ({secs:.2} s)");
        results.entry(RAW).or_default().push(rate);
        let _ = client.delete_table().table_name(&table).send().await;
        for (name, strategy, in_flight) in variants {
            let table = format!("compare-deletes-{round}-{strategy:?}-{in_flight}");
            DynamoStore::new(client.clone(), &table)
                .create_table()
                .await
                .expect("create table");
            seed(&client, &table, items, &clock).await;
            let config = SweepConfig::new(table.as_str())
                .with_total_segments(SEGMENTS)
                .with_strategy(strategy)
                .with_delete_concurrency(in_flight)
                .with_checkpoint(false);
            let started = Instant::now();
            let report = sweep(&client, &config, &clock, Budget::unlimited())
                .await
                .expect("sweep");
            let secs = started.elapsed().as_secs_f64();
            assert_eq!(report.deleted, items as u64, "{report:?}");
            let rate = report.deleted as f64 / secs;
            println!("round {round}: {name:<38} {rate:>9.0} deletes/s ({secs:.2} s)");
            results.entry(name).or_default().push(rate);
            let _ = client.delete_table().table_name(&table).send().await;
        }
    }
    // What the scan alone costs: a dry run over the same data.
    let table = "compare-deletes-dry-run";
    DynamoStore::new(client.clone(), table)
        .create_table()
        .await
        .expect("create table");
    seed(&client, table, items, &clock).await;
    let config = SweepConfig::new(table)
        .with_total_segments(SEGMENTS)
        .with_dry_run(true);
    let started = Instant::now();
    let report = sweep(&client, &config, &clock, Budget::unlimited())
        .await
        .expect("dry run");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "scan only (dry run, {} pages): {:.2} s, {:.0} items/s",
        report.pages,
        secs,
        report.scanned as f64 / secs
    );

    println!("\nmean over {rounds} rounds:");
    let names = std::iter::once(RAW).chain(variants.iter().map(|v| v.0));
    for name in names {
        let rates = &results[name];
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        println!("  {name:<38} {mean:>9.0} deletes/s");
    }
}

/// Deletes `keys` with unconditional `BatchWriteItem`s: 8 workers, 4 requests in flight
/// each.
async fn raw_delete(client: &Client, table: &str, keys: Vec<String>) {
    use futures_util::StreamExt;
    let batches: Vec<Vec<String>> = keys.chunks(25).map(<[_]>::to_vec).collect();
    futures_util::stream::iter(batches)
        .for_each_concurrent(SEGMENTS as usize * 4, |batch| async move {
            let requests = batch.into_iter().map(delete_request).collect();
            write_batch(client, table, requests).await;
        })
        .await;
}

async fn seed(client: &Client, table: &str, items: usize, clock: &ManualClock) -> Vec<String> {
    use dynamo_session_store::clock::Clock;
    let expired = clock.now().unix_timestamp() - 3600;
    let payload = format!(r#"{{"user":42,"pad":"{}"}}"#, "x".repeat(170));
    let keys: Vec<String> = (0..items).map(|i| format!("session-{i:08}")).collect();
    for chunk in keys.chunks(25) {
        let requests = chunk
            .iter()
            .map(|key| {
                put_request(HashMap::from([
                    ("id".to_owned(), AttributeValue::S(key.clone())),
                    ("expires".to_owned(), AttributeValue::N(expired.to_string())),
                    ("data".to_owned(), AttributeValue::S(payload.clone())),
                ]))
            })
            .collect();
        write_batch(client, table, requests).await;
    }
    keys
}
