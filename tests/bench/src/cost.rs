//! Scenario 6: what a sweep costs. The read and write units DynamoDB reports for one
//! sweep, next to the cost model's figures ([`integration_tests::cost`]), at two table sizes
//! and two expired fractions. Sessions are 200-byte items (as DynamoDB counts them); the
//! sweep runs in this process with 8 segments and 1 MB pages. The target: the model
//! within 10% of what was measured.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_session_store::ItemSchema;
use dynamo_session_store::clock::{Clock, SystemClock};
use integration_tests::cost::{checkpoint_units, delete_write_units, scan_read_units};
use integration_tests::{Item, TestTable};
use serde_json::json;
use sweeper_lambda::{Budget, SweepConfig, sweep};

use crate::report::{Report, Row};
use crate::sweep::size_label;

/// Item size, in bytes as DynamoDB counts them.
const ITEM_BYTES: u64 = 200;
const SEGMENTS: u32 = 8;
const FRACTIONS: [f64; 2] = [0.1, 0.5];

pub async fn run(report: &mut Report, quick: bool) {
    let sizes: [usize; 2] = if quick {
        [1_000, 4_000]
    } else {
        [10_000, 100_000]
    };
    for total in sizes {
        for fraction in FRACTIONS {
            one(report, total, fraction).await;
        }
    }
}

/// A 200-byte session expiring at `expires`.
fn session(i: usize, expires: i64) -> Item {
    let key = format!("s-{i:08}");
    let schema = ItemSchema::new();
    let empty = schema.item_size(&key, 0, expires) as u64;
    let data = "x".repeat((ITEM_BYTES - empty) as usize);
    debug_assert_eq!(
        schema.item_size(&key, data.len(), expires) as u64,
        ITEM_BYTES
    );
    HashMap::from([
        ("id".to_owned(), AttributeValue::S(key)),
        ("expires".to_owned(), AttributeValue::N(expires.to_string())),
        ("data".to_owned(), AttributeValue::S(data)),
    ])
}

async fn one(report: &mut Report, total: usize, fraction: f64) {
    let table = TestTable::new("bench-cost").await;
    let now = SystemClock.now().unix_timestamp();
    let expired = (total as f64 * fraction).round() as usize;
    // Expiries of the same number of digits, so every item has the same size.
    let items = (0..total)
        .map(|i| {
            session(
                i,
                if i < expired {
                    now - 86_400
                } else {
                    now + 86_400
                },
            )
        })
        .collect();
    table.batch_put(items, 8).await;
    let client = sweeper_lambda::client::dynamodb_client(
        integration_tests::LocalDynamo::shared().endpoint(),
        sweeper_lambda::config::DEFAULT_ATTEMPT_TIMEOUT,
    )
    .await;
    let config = SweepConfig::new(table.name.as_str()).with_total_segments(SEGMENTS);
    let swept = sweep(&client, &config, &SystemClock, Budget::unlimited())
        .await
        .expect("the sweep runs");
    // Under load an attempt may be cut after the server applied it: the retry then finds
    // those sessions already gone. Either way each expired session was deleted once.
    assert!(
        swept.complete && swept.deleted + swept.already_gone == expired as u64,
        "{swept:?}"
    );
    let (checkpoint_read, _) = checkpoint_units(u64::from(SEGMENTS));
    let model_read =
        scan_read_units(total as u64, ITEM_BYTES, 0, u64::from(SEGMENTS)) + checkpoint_read;
    let model_write = delete_write_units(expired as u64, ITEM_BYTES, 0);
    let size = size_label(total);
    let pct = (fraction * 100.0).round();
    eprintln!(
        "   {size} sessions, {pct}% expired: read {} units (model {model_read}), write {} (model {model_write})",
        swept.read_units, swept.write_units
    );
    for (what, measured, model) in [
        ("read units", swept.read_units, model_read),
        ("write units", swept.write_units, model_write),
    ] {
        let ratio = measured / model;
        report.push(Row {
            scenario: "6 cost".into(),
            case: format!("{size}, {pct}% expired, 200 B: {what} per sweep vs the model"),
            value: measured,
            unit: "units".into(),
            baseline: Some(model),
            ratio: Some(ratio),
            target: Some("model within 10%".into()),
            met: Some((0.9..=1.1).contains(&ratio)),
            detail: Some(json!({
                "items": total,
                "expired": expired,
                "item_bytes": ITEM_BYTES,
                "segments": SEGMENTS,
                "pages": swept.pages,
            })),
        });
    }
}
