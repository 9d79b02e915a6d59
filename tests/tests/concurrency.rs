//! Many clients at once: 16 tasks, each with its own `DynamoStore` (so its own throttle
//! memory, like separate Lambda instances or app servers), load and save distinct and
//! shared sessions on one table.
//!
//! Semantics checked (and documented in the README):
//! - a session only one client writes never loses an update;
//! - a session several clients write is last-writer-wins per save: a save that changes the
//!   data replaces data and expiry together, so the item always holds one whole written
//!   version, never a mix of two; a throttled save of unchanged data moves only the expiry
//!   (an expiry-only update), so it keeps whatever data a concurrent writer saved in
//!   between rather than writing stale data back;
//! - concurrent read-modify-write cycles on one session lose each other's changes (no
//!   locking, no merge): `shared_counter` prints how many.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_session_store::tower_sessions_core::SessionStore;
use dynamo_session_store::tower_sessions_core::session::{Id, Record};
use dynamo_session_store::{Clock, DynamoStore, ItemSchema, ManualClock, WriteOutcome};
use integration_tests::TestTable;
use serde_json::{Value, json};
use time::OffsetDateTime;

const TASKS: u64 = 16;
const ROUNDS: i64 = 25;

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

/// A whole item read past the store: (data, expiry), checking it has exactly the three
/// session attributes (and the claim token an insert writes, until the next whole write).
async fn stored(table: &TestTable, id: &str) -> Option<(Value, i64)> {
    let item = table
        .client
        .get_item()
        .table_name(&table.name)
        .key("id", AttributeValue::S(integration_tests::key_of(id)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item?;
    let claimed = usize::from(item.contains_key(ItemSchema::new().claim_attribute()));
    assert_eq!(
        item.len(),
        3 + claimed,
        "unexpected attributes {:?}",
        item.keys()
    );
    let item = ItemSchema::new().decode(item).unwrap();
    Some((
        serde_json::from_str(item.data.as_json().unwrap()).unwrap(),
        item.expires,
    ))
}

/// Each task its own store: its own throttle memory, as separate processes would have.
fn own_store(table: &TestTable, clock: &ManualClock) -> DynamoStore {
    DynamoStore::new(table.client.clone(), &table.name).with_clock(clock.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn distinct_sessions_never_lose_an_update() {
    let table = Arc::new(TestTable::new("concurrent-distinct").await);
    let clock = ManualClock::starting_now();
    let base = clock.now().unix_timestamp() + 3600;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = own_store(&table, &clock);
        tasks.push(tokio::spawn(async move {
            let id = Id::default();
            let key = id.to_string();
            for round in 1..=ROUNDS {
                let expires = base + round * 60;
                if t % 2 == 0 {
                    // tower-sessions' cycle: load, change, save (create the first time).
                    let loaded = SessionStore::load(&store, &id).await.unwrap();
                    let count = loaded
                        .as_ref()
                        .map_or(0, |r| r.data["count"].as_i64().unwrap());
                    assert_eq!(count, round - 1, "task {t} lost an update");
                    let mut record = Record {
                        id,
                        data: HashMap::from([("count".to_owned(), json!(count + 1))]),
                        expiry_date: at(expires),
                    };
                    if loaded.is_none() {
                        SessionStore::create(&store, &mut record).await.unwrap();
                        assert_eq!(record.id, id);
                    } else {
                        SessionStore::save(&store, &record).await.unwrap();
                    }
                } else {
                    let loaded = store.get::<Value>(&key).await.unwrap();
                    let count = loaded.map_or(0, |l| l.data["count"].as_i64().unwrap());
                    assert_eq!(count, round - 1, "task {t} lost an update");
                    let outcome = store
                        .put(&key, &json!({"count": count + 1}), Some(at(expires)))
                        .await
                        .unwrap();
                    assert_eq!(outcome, WriteOutcome::Put);
                }
            }
            (key, base + ROUNDS * 60)
        }));
    }
    for task in tasks {
        let (key, last_expiry) = task.await.unwrap();
        assert_eq!(
            stored(&table, &key).await,
            Some((json!({"count": ROUNDS}), last_expiry))
        );
    }
    assert_eq!(table.scan_all().await.len(), TASKS as usize);
}

/// One write a task made to a shared session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Wrote {
    /// Data and expiry together.
    Whole(String, i64),
    /// Only the expiry.
    Expiry(i64),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_sessions_hold_one_whole_written_version() {
    const SHARED: u64 = 3;
    let table = Arc::new(TestTable::new("concurrent-shared").await);
    let clock = ManualClock::starting_now();
    let base = clock.now().unix_timestamp() + 3600;
    let writes: Arc<Mutex<HashMap<u64, HashSet<Wrote>>>> = Arc::default();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = own_store(&table, &clock);
        let writes = Arc::clone(&writes);
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(t);
            let mut outcomes: HashMap<&str, u64> = HashMap::new();
            for round in 0..ROUNDS {
                let s = rng.u64(..SHARED);
                let key = format!("shared-{s}");
                // Unique per write and far apart, so each expiry names its writer.
                let expires = base + (round * TASKS as i64 + t as i64) * 100;
                let loaded = store.get::<Value>(&key).await.unwrap();
                // Half the saves change the data, half write back what was loaded.
                let data = match loaded {
                    Some(l) if rng.bool() => l.data,
                    _ => json!({"writer": t, "round": round, "pad": "p".repeat(rng.usize(..500))}),
                };
                let outcome = if rng.bool() {
                    store.put(&key, &data, Some(at(expires))).await
                } else {
                    store.update(&key, &data, Some(at(expires))).await
                }
                .unwrap();
                let wrote = match outcome {
                    WriteOutcome::Put => Some(Wrote::Whole(data.to_string(), expires)),
                    WriteOutcome::Touched => Some(Wrote::Expiry(expires)),
                    _ => None,
                };
                *outcomes.entry(outcome_name(outcome)).or_default() += 1;
                if let Some(wrote) = wrote {
                    writes.lock().unwrap().entry(s).or_default().insert(wrote);
                }
            }
            outcomes
        }));
    }
    let mut outcomes: HashMap<&str, u64> = HashMap::new();
    for task in tasks {
        for (k, v) in task.await.unwrap() {
            *outcomes.entry(k).or_default() += v;
        }
    }
    println!("shared sessions: save outcomes {outcomes:?}");
    assert!(
        outcomes.get("Touched").copied().unwrap_or(0) > 0,
        "no expiry-only saves"
    );
    let writes = std::mem::take(&mut *writes.lock().unwrap());
    for s in 0..SHARED {
        let (data, expires) = stored(&table, &format!("shared-{s}"))
            .await
            .expect("a shared session vanished");
        let written = &writes[&s];
        let data_text = data.to_string();
        // The data is one whole version a save wrote...
        let data_writes: Vec<i64> = written
            .iter()
            .filter_map(|w| match w {
                Wrote::Whole(d, e) if *d == data_text => Some(*e),
                _ => None,
            })
            .collect();
        assert!(!data_writes.is_empty(), "shared-{s}: data no save wrote");
        // ...and the expiry was written with that data, or by a later expiry-only save;
        // never the expiry of a different whole version.
        let with_its_data = data_writes.contains(&expires);
        let by_a_touch = written.contains(&Wrote::Expiry(expires));
        assert!(
            with_its_data || by_a_touch,
            "shared-{s}: expiry {expires} was written with other data"
        );
    }
}

fn outcome_name(outcome: WriteOutcome) -> &'static str {
    match outcome {
        WriteOutcome::Put => "Put",
        WriteOutcome::Touched => "Touched",
        WriteOutcome::Skipped => "Skipped",
        WriteOutcome::Gone => "Gone",
        WriteOutcome::AlreadyExists => "AlreadyExists",
        _ => "other",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_counter_is_last_writer_wins() {
    let table = Arc::new(TestTable::new("concurrent-counter").await);
    let clock = ManualClock::starting_now();
    let expires = at(clock.now().unix_timestamp() + 3600);
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = own_store(&table, &clock);
        tasks.push(tokio::spawn(async move {
            let mut last_written = 0;
            for _ in 0..ROUNDS {
                let loaded = store.get::<Value>("counter").await.unwrap();
                let count = loaded.map_or(0, |l| l.data["count"].as_i64().unwrap());
                store
                    .put("counter", &json!({"count": count + 1}), Some(expires))
                    .await
                    .unwrap();
                last_written = count + 1;
            }
            last_written
        }));
    }
    let mut written = HashSet::new();
    for task in tasks {
        written.insert(task.await.unwrap());
    }
    let total = TASKS as i64 * ROUNDS;
    let (data, _) = stored(&table, "counter").await.unwrap();
    let count = data["count"].as_i64().unwrap();
    println!(
        "shared counter: {total} increments by {TASKS} clients, final count {count}: \
         {} lost to concurrent read-modify-write (last writer wins)",
        total - count
    );
    assert!((1..=total).contains(&count));
    // The final value is the last write of one of the clients.
    assert!(
        written.contains(&count),
        "{count} is no client's last write"
    );
}
