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
//! Strategies alternate within a round so neither always runs on a warmer server. Uses the
//! embedded server unless `DYNAMODB_ENDPOINT` names another.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use dynamo_session_store::{DynamoStore, ManualClock};
use local_dynamodb::LocalDynamo;
use sweeper_lambda::handler::dynamodb_client;
use sweeper_lambda::{Budget, DeleteStrategy, SweepConfig, sweep};
use time::OffsetDateTime;

const SEGMENTS: u32 = 8;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let items: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let local = LocalDynamo::start().expect("a DynamoDB endpoint");
    let client = dynamodb_client(local.endpoint()).await;
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
    for round in 0..rounds {
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
    println!("\nmean over {rounds} rounds:");
    for (name, _, _) in variants {
        let rates = &results[name];
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        println!("  {name:<38} {mean:>9.0} deletes/s");
    }
}

async fn seed(client: &Client, table: &str, items: usize, clock: &ManualClock) {
    use dynamo_session_store::clock::Clock;
    let expired = clock.now().unix_timestamp() - 3600;
    let payload = format!(r#"{{"user":42,"pad":"{}"}}"#, "x".repeat(170));
    let keys: Vec<String> = (0..items).map(|i| format!("session-{i:08}")).collect();
    for chunk in keys.chunks(25) {
        let requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|key| {
                let item = HashMap::from([
                    ("id".to_owned(), AttributeValue::S(key.clone())),
                    ("expires".to_owned(), AttributeValue::N(expired.to_string())),
                    ("data".to_owned(), AttributeValue::S(payload.clone())),
                ]);
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                    .build()
            })
            .collect();
        let mut pending = Some(HashMap::from([(table.to_owned(), requests)]));
        while let Some(requests) = pending.filter(|r| !r.is_empty()) {
            pending = client
                .batch_write_item()
                .set_request_items(Some(requests))
                .send()
                .await
                .expect("seed")
                .unprocessed_items;
        }
    }
}
