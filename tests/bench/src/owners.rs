//! Scenario 8: sessions by owner (issue 20).
//!
//! - `revoke_all` of an owner with 1, 10 and 1,000 sessions, against the same deletes sent
//!   one after another as unconditional `DeleteItem`s of keys the caller already knows
//!   (no listing): the ratio is what listing and bounded concurrency buy or cost.
//! - What the owner index adds to a save: load + changed-data save round trips through
//!   tower-sessions' `SessionStore` of an axum-login session, on a table with the index
//!   and a store that writes owners, against a table without it and a store that does
//!   not, in alternating rounds of one run; and the index write units each login and each
//!   save consumed, as the server reports them (`ReturnConsumedCapacity = INDEXES`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_session_store::owner::{self, DEFAULT_OWNER_INDEX};
use dynamo_session_store::{Clock, DynamoStore, Revoked, SystemClock};
use integration_tests::TestTable;
use integration_tests::observe::IndexCapacity;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::SessionStore;

use crate::report::{Report, Row};
use crate::store_rt::store_round_trips;

const SCENARIO: &str = "8 owners";

pub async fn run(report: &mut Report, quick: bool) {
    revoke_all(report, quick).await;
    save_cost(report, quick).await;
}

/// An axum-login session of user `user`.
fn session_data(user: u64, n: u64) -> HashMap<String, Value> {
    HashMap::from([
        (
            "axum-login.data".to_owned(),
            json!({"user_id": user, "auth_hash": vec![7; 32]}),
        ),
        ("n".to_owned(), json!(n)),
        ("csrf".to_owned(), json!("x".repeat(64))),
    ])
}

/// An expiry a day from now, by the system clock (the store's own).
fn a_day_from_now() -> time::OffsetDateTime {
    SystemClock.now() + time::Duration::days(1)
}

/// `count` sessions of `user` created through the trait: their ids.
async fn seed(store: &DynamoStore, user: u64, count: usize) -> Vec<Id> {
    let mut tasks = JoinSet::new();
    for chunk in 0..16_usize.min(count) {
        let store = store.clone();
        let mine = (chunk..count).step_by(16).count();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for i in 0..mine {
                let mut record = Record {
                    id: Id::default(),
                    data: session_data(user, i as u64),
                    expiry_date: a_day_from_now(),
                };
                store.create(&mut record).await.expect("create");
                ids.push(record.id);
            }
            ids
        });
    }
    tasks.join_all().await.into_iter().flatten().collect()
}

async fn revoke_all(report: &mut Report, quick: bool) {
    let table =
        TestTable::created_by("bench-owners", |store| store.with_owner(owner::axum_login)).await;
    let store = table.store().with_owner(owner::axum_login);
    let rounds = if quick { 1 } else { 3 };
    for count in [1_usize, 10, if quick { 100 } else { 1000 }] {
        let mut revoke_time = Duration::ZERO;
        let mut naive_time = Duration::ZERO;
        for round in 0..rounds {
            let user = (count * 10 + round) as u64;
            seed(&store, user, count).await;
            let started = Instant::now();
            let revoked: Revoked = store
                .revoke_all(&user.to_string(), None)
                .await
                .expect("revoke_all");
            revoke_time += started.elapsed();
            assert_eq!(revoked.deleted, count, "revoke_all deletes them all");

            // The baseline: the same number of sessions, their keys known, deleted one
            // after another without a condition.
            let ids = seed(&store, user + 1_000_000, count).await;
            let started = Instant::now();
            for id in &ids {
                table
                    .client
                    .delete_item()
                    .table_name(&table.name)
                    .key("id", AttributeValue::S(id.to_string()))
                    .send()
                    .await
                    .expect("DeleteItem");
            }
            naive_time += started.elapsed();
        }
        let ms = revoke_time.as_secs_f64() * 1000.0 / f64::from(rounds as u32);
        let naive_ms = naive_time.as_secs_f64() * 1000.0 / f64::from(rounds as u32);
        report.push(Row {
            scenario: SCENARIO.into(),
            case: format!("revoke_all, {count} sessions, vs known keys deleted one by one"),
            value: ms,
            unit: "ms".into(),
            baseline: Some(naive_ms),
            ratio: Some(ms / naive_ms),
            target: Some("< 1000 ms".into()),
            met: Some(ms < 1000.0),
            detail: None,
        });
    }
}

async fn save_cost(report: &mut Report, quick: bool) {
    let capacity = IndexCapacity::default();
    let indexed =
        TestTable::created_by("bench-owned", |store| store.with_owner(owner::axum_login)).await;
    let plain = TestTable::new("bench-unowned").await;
    let owned = DynamoStore::new(capacity.client(&indexed.client), &indexed.name)
        .with_owner(owner::axum_login);
    let unowned = plain.store();
    let (rounds, ops) = if quick { (2, 10) } else { (5, 300) };

    // A login each: the index write units of a login.
    let mut owned_record = Record {
        id: Id::default(),
        data: session_data(42, 0),
        expiry_date: a_day_from_now(),
    };
    let mut unowned_record = owned_record.clone();
    capacity.reset();
    owned.create(&mut owned_record).await.expect("create");
    let login_units = capacity.units(DEFAULT_OWNER_INDEX);
    unowned.create(&mut unowned_record).await.expect("create");

    let mut owned_time = Duration::ZERO;
    let mut unowned_time = Duration::ZERO;
    let mut n = 0;
    capacity.reset();
    for _ in 0..rounds {
        for (store, id, time) in [
            (&owned, owned_record.id, &mut owned_time),
            (&unowned, unowned_record.id, &mut unowned_time),
        ] {
            *time += store_round_trips(store, id, ops, &mut n).await;
        }
    }
    let saves = f64::from(rounds * ops);
    let save_units = capacity.units(DEFAULT_OWNER_INDEX) / saves;
    let owned_rate = saves / owned_time.as_secs_f64();
    let unowned_rate = saves / unowned_time.as_secs_f64();
    report.push(Row {
        scenario: SCENARIO.into(),
        case: "load+save round trips, owner index on vs off (axum-login session)".into(),
        value: owned_rate,
        unit: "rt/s".into(),
        baseline: Some(unowned_rate),
        ratio: Some(owned_rate / unowned_rate),
        target: Some(">= 0.95x off".into()),
        met: Some(owned_rate / unowned_rate >= 0.95),
        detail: None,
    });
    report.push(Row {
        scenario: SCENARIO.into(),
        case: "index write units per save that keeps the owner (server-reported)".into(),
        value: save_units,
        unit: "WCU".into(),
        baseline: None,
        ratio: None,
        target: Some("0".into()),
        met: Some(save_units == 0.0),
        detail: None,
    });
    report.push(Row {
        scenario: SCENARIO.into(),
        case: "index write units per login (server-reported)".into(),
        value: login_units,
        unit: "WCU".into(),
        baseline: None,
        ratio: None,
        target: Some("1".into()),
        met: Some(login_units == 1.0),
        detail: None,
    });
}
