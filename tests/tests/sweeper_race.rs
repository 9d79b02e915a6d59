//! The sweeper racing the store: issue 5, part 3.
//!
//! Sessions sit right at the cutoff: expired for the sweeper, still live for the app. That
//! happens when the app's clock is behind the sweeper's by more than the grace window, the
//! case the grace exists for; here the store's [`ManualClock`] is 30 s behind the sweeper's
//! (grace 15 s). While the sweep runs, the store refreshes some of them with `touch`,
//! `update` and `put` ([`DynamoStore`], straight to the same table). The sweeper's
//! conditional deletes must spare every refresh that landed first, and a refresh that came
//! after the delete must not bring the session back (`touch` and `update` answer `Gone`;
//! `put`, an unconditional save, writes a new session, as documented).
//!
//! | test | shows |
//! |------|-------|
//! | `refreshes_between_scan_and_delete_are_spared_exactly` | a [`PageHook`] refreshes (and logs out) chosen sessions after their page was scanned: exact counts, both strategies |
//! | `free_running_refreshes_race_the_deletes` | 30 seeded runs of refreshers racing a sweep: nothing refreshed is lost, nothing else survives |
//!
//! `cargo test -p integration-tests --test sweeper_race -- --include-ignored --nocapture` prints the races (the free-running ones are in the soak set).
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use dynamo_session_store::schema::KeyMode;
use dynamo_session_store::{DynamoStore, ItemSchema, ManualClock, WriteOutcome};
use integration_tests::{Item, TestTable, session_item};
use serde_json::{Value, json};
use sweeper_lambda::testing::{NoHook, PageHook, sweep_with_hook};
use sweeper_lambda::{Budget, DeleteStrategy, SweepConfig, SweepReport};
use time::OffsetDateTime;

/// The sweeper's now; the cutoff is 15 s earlier (the default grace).
const NOW: i64 = 4_000_000_000;
const CUTOFF: i64 = NOW - 15;
/// The app's now: 30 s behind the sweeper.
const APP_NOW: i64 = NOW - 30;
/// Where refreshed sessions expire.
const REFRESHED: i64 = NOW + 7200;

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

fn session(key: &str, expires: i64) -> Item {
    session_item(key, r#"{"v":0}"#, expires)
}
/// A session at the cutoff: expired for the sweeper (below `CUTOFF`), live for the app
/// (above `APP_NOW`).
fn edge_expiry(i: usize) -> i64 {
    CUTOFF - 1 - (i as i64 % 10)
}

/// How the app refreshes a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresh {
    Touch,
    Update,
    Put,
}

impl Refresh {
    const ALL: [Refresh; 3] = [Refresh::Touch, Refresh::Update, Refresh::Put];

    /// Runs the refresh: `Touched` or `Put` when it wrote, `Gone` when the session was not
    /// there (or already expired for the app).
    async fn run(self, store: &DynamoStore, key: &str) -> WriteOutcome {
        let outcome = match self {
            Refresh::Touch => store.touch(key, at(REFRESHED)).await,
            Refresh::Update => {
                store
                    .update(key, &json!({"v": 1}), Some(at(REFRESHED)))
                    .await
            }
            Refresh::Put => store.put(key, &json!({"v": 2}), Some(at(REFRESHED))).await,
        };
        let outcome = outcome.expect("the refresh reaches the table");
        assert!(
            matches!(
                outcome,
                WriteOutcome::Touched | WriteOutcome::Put | WriteOutcome::Gone
            ),
            "{self:?}: {outcome:?}"
        );
        outcome
    }

    /// The data a successful refresh leaves.
    fn data(self) -> Value {
        match self {
            Refresh::Touch => json!({"v": 0}),
            Refresh::Update => json!({"v": 1}),
            Refresh::Put => json!({"v": 2}),
        }
    }
}

/// One unlimited sweep at [`NOW`], calling `hook` on every page.
async fn sweep_at_now(
    table: &TestTable,
    config: &SweepConfig,
    hook: Arc<dyn PageHook>,
) -> SweepReport {
    let clock = ManualClock::new(at(NOW));
    sweep_with_hook(&table.client, config, &clock, Budget::unlimited(), hook)
        .await
        .expect("a sweep")
}

fn written(outcome: WriteOutcome) -> bool {
    matches!(outcome, WriteOutcome::Touched | WriteOutcome::Put)
}

/// The app's store on the table: its clock is behind the sweeper's. Plain keys, so that
/// the ids the test seeds are the keys it reads back: how keys are derived plays no part
/// in the race (sessions under hashed keys are swept in `actix.rs`).
fn app_store(table: &TestTable) -> DynamoStore {
    table
        .store()
        .with_schema(ItemSchema::new().with_key_mode(KeyMode::Plain))
        .expect("a valid schema")
        .with_clock(ManualClock::new(at(APP_NOW)))
}

/// Every session in the table: key -> (data, expiry), read past everything.
async fn sessions(table: &TestTable) -> HashMap<String, (Value, i64)> {
    table
        .scan_all()
        .await
        .into_iter()
        .map(|item| {
            let key = item["id"].as_s().unwrap().clone();
            let stored = ItemSchema::new().decode(item).unwrap();
            (
                key,
                (
                    serde_json::from_str(stored.data.as_json().unwrap()).unwrap(),
                    stored.expires,
                ),
            )
        })
        .collect()
}

/// Refreshes every third `edge-` key, logs out every `logout-` key and tries to touch
/// every third `old-` key of each page, after the scan and before the deletes.
struct Interleave {
    store: DynamoStore,
    done: Mutex<Vec<(String, Refresh, WriteOutcome)>>,
    logged_out: Mutex<Vec<String>>,
}

fn index(key: &str) -> usize {
    key.rsplit('-').next().unwrap().parse().unwrap()
}

#[async_trait]
impl PageHook for Interleave {
    async fn before_delete(&self, _segment: u32, expired: &[String]) {
        for key in expired {
            let i = index(key);
            if key.starts_with("edge-") && i.is_multiple_of(3) {
                let refresh = Refresh::ALL[(i / 3) % 3];
                let outcome = refresh.run(&self.store, key).await;
                self.done
                    .lock()
                    .unwrap()
                    .push((key.clone(), refresh, outcome));
            } else if key.starts_with("old-") && i.is_multiple_of(3) {
                let outcome = Refresh::Touch.run(&self.store, key).await;
                self.done
                    .lock()
                    .unwrap()
                    .push((key.clone(), Refresh::Touch, outcome));
            } else if key.starts_with("logout-") {
                self.store.delete(key).await.expect("logout");
                self.logged_out.lock().unwrap().push(key.clone());
            }
        }
    }
}

#[tokio::test]
async fn refreshes_between_scan_and_delete_are_spared_exactly() {
    const EDGE: usize = 90;
    const OLD: usize = 30;
    const LOGOUT: usize = 12;
    const LIVE: usize = 20;
    for strategy in [DeleteStrategy::PartiqlBatch, DeleteStrategy::DeleteItem] {
        let table = TestTable::new("race-hook").await;
        let mut items = Vec::new();
        items.extend((0..EDGE).map(|i| session(&format!("edge-{i:03}"), edge_expiry(i))));
        items.extend((0..OLD).map(|i| session(&format!("old-{i:03}"), NOW - 3600)));
        items.extend((0..LOGOUT).map(|i| session(&format!("logout-{i:03}"), edge_expiry(i))));
        items.extend((0..LIVE).map(|i| session(&format!("live-{i:03}"), NOW + 3600)));
        table.batch_put(items, 4).await;

        let hook = Arc::new(Interleave {
            store: app_store(&table),
            done: Mutex::default(),
            logged_out: Mutex::default(),
        });
        let config = SweepConfig::new(table.name.as_str())
            .with_total_segments(4)
            .with_page_size(10)
            .with_strategy(strategy);
        let report = sweep_at_now(&table, &config, hook.clone()).await;

        let label = format!("{strategy:?}");
        let done = hook.done.lock().unwrap().clone();
        let refreshed: Vec<&(String, Refresh, WriteOutcome)> = done
            .iter()
            .filter(|(key, _, _)| key.starts_with("edge-"))
            .collect();
        let touched_old: Vec<&(String, Refresh, WriteOutcome)> = done
            .iter()
            .filter(|(key, _, _)| key.starts_with("old-"))
            .collect();
        assert_eq!(refreshed.len(), EDGE.div_ceil(3), "{label}");
        assert_eq!(touched_old.len(), OLD.div_ceil(3), "{label}");
        assert_eq!(hook.logged_out.lock().unwrap().len(), LOGOUT, "{label}");
        // Live for the app: every refresh wrote. Expired for the app too: a touch never
        // brings a session back.
        assert!(
            refreshed.iter().all(|(_, _, o)| written(*o)),
            "{refreshed:?}"
        );
        assert!(
            touched_old.iter().all(|(_, _, o)| *o == WriteOutcome::Gone),
            "{touched_old:?}"
        );

        let after = sessions(&table).await;
        let mut expected: HashSet<String> = (0..LIVE).map(|i| format!("live-{i:03}")).collect();
        expected.extend(refreshed.iter().map(|(key, _, _)| key.clone()));
        let present: HashSet<String> = after.keys().cloned().collect();
        assert_eq!(present, expected, "{label}");
        for (key, refresh, _) in &refreshed {
            assert_eq!(after[key], (refresh.data(), REFRESHED), "{label}: {key}");
        }

        let n = |count: usize| count as u64;
        assert_eq!(report.expired_found, n(EDGE + OLD + LOGOUT), "{label}");
        assert_eq!(report.skipped_live, n(refreshed.len()), "{label}");
        assert_eq!(report.already_gone, n(LOGOUT), "{label}");
        assert_eq!(report.deleted, n(EDGE - refreshed.len() + OLD), "{label}");
        assert!(report.complete && report.errors.is_empty(), "{report:?}");
    }
}

/// What one free-running race did.
#[derive(Debug, Default)]
struct Race {
    refreshes: u64,
    written: u64,
    gone: u64,
    /// Deleted sessions that a later `put` wrote again.
    rewritten_by_put: u64,
    report: Option<SweepReport>,
}

/// Seeds a table, then runs a sweep and `REFRESHERS` tasks refreshing random sessions at
/// the cutoff (in an order drawn from `seed`) until the sweep is over; checks the outcome.
async fn race(seed: u64) -> Race {
    const EDGE: usize = 160;
    const OLD: usize = 40;
    const LIVE: usize = 40;
    const REFRESHERS: usize = 4;
    let table = TestTable::new("race-free").await;
    let mut items = Vec::new();
    items.extend((0..EDGE).map(|i| session(&format!("edge-{i:03}"), edge_expiry(i))));
    items.extend((0..OLD).map(|i| session(&format!("old-{i:03}"), NOW - 3600)));
    items.extend((0..LIVE).map(|i| session(&format!("live-{i:03}"), NOW + 3600)));
    table.batch_put(items, 4).await;

    let mut rng = fastrand::Rng::with_seed(seed);
    let mut order: Vec<String> = (0..EDGE).map(|i| format!("edge-{i:03}")).collect();
    rng.shuffle(&mut order);
    // Each key is refreshed at most once, so a refresh's outcome says what it met.
    let queue: Arc<Mutex<Vec<(String, Refresh)>>> = Arc::new(Mutex::new(
        order
            .into_iter()
            .map(|key| (key, Refresh::ALL[rng.usize(..3)]))
            .collect(),
    ));
    let strategy = if seed.is_multiple_of(2) {
        DeleteStrategy::PartiqlBatch
    } else {
        DeleteStrategy::DeleteItem
    };
    let config = SweepConfig::new(table.name.as_str())
        .with_total_segments(1 + (seed % 4) as u32 * 2)
        .with_page_size(8)
        .with_strategy(strategy);

    let sweeping = Arc::new(AtomicBool::new(true));
    let results: Arc<Mutex<Vec<(String, Refresh, WriteOutcome)>>> = Arc::default();
    let mut refreshers = Vec::new();
    for _ in 0..REFRESHERS {
        let (queue, results, sweeping) = (queue.clone(), results.clone(), sweeping.clone());
        let store = app_store(&table);
        refreshers.push(tokio::spawn(async move {
            while sweeping.load(Ordering::Relaxed) {
                let next = queue.lock().unwrap().pop();
                let Some((key, refresh)) = next else { break };
                let outcome = refresh.run(&store, &key).await;
                results.lock().unwrap().push((key, refresh, outcome));
            }
        }));
    }
    let report = sweep_at_now(&table, &config, Arc::new(NoHook)).await;
    sweeping.store(false, Ordering::Relaxed);
    for refresher in refreshers {
        refresher.await.unwrap();
    }

    let results = results.lock().unwrap().clone();
    let after = sessions(&table).await;
    let label = format!("seed {seed}, {strategy:?}");
    let written_keys: HashSet<&String> = results
        .iter()
        .filter(|(_, _, o)| written(*o))
        .map(|(k, _, _)| k)
        .collect();
    // Every refresh that wrote survives, with what it wrote; nothing else at the cutoff or
    // expired survives; live sessions are untouched.
    let mut expected: HashSet<String> = (0..LIVE).map(|i| format!("live-{i:03}")).collect();
    expected.extend(written_keys.iter().map(|k| (*k).clone()));
    let present: HashSet<String> = after.keys().cloned().collect();
    let lost: Vec<&&String> = written_keys
        .iter()
        .filter(|k| !present.contains(**k))
        .collect();
    assert!(
        lost.is_empty(),
        "{label}: refreshed sessions deleted: {lost:?}"
    );
    assert_eq!(present, expected, "{label}");
    for (key, refresh, outcome) in &results {
        if written(*outcome) {
            assert_eq!(after[key], (refresh.data(), REFRESHED), "{label}: {key}");
        } else {
            // Only a conditional refresh can find its session gone: the sweep came first.
            assert_ne!(*refresh, Refresh::Put, "{label}");
        }
    }
    for i in 0..LIVE {
        assert_eq!(after[&format!("live-{i:03}")].1, NOW + 3600, "{label}");
    }

    assert!(
        report.complete && report.errors.is_empty(),
        "{label}: {report:?}"
    );
    assert_eq!(
        report.deleted + report.skipped_live + report.already_gone,
        report.expired_found,
        "{label}: {report:?}"
    );
    // Nobody else deletes: nothing can be gone before the sweeper's delete.
    assert_eq!(report.already_gone, 0, "{label}");
    // Spared sessions were refreshed after their scan; deleted ones are absent, unless a
    // later `put` wrote them again.
    assert!(report.skipped_live <= written_keys.len() as u64, "{label}");
    let absent = (EDGE + OLD) as u64 - written_keys.len() as u64;
    let puts = results
        .iter()
        .filter(|(_, r, o)| *r == Refresh::Put && written(*o))
        .count() as u64;
    assert!(
        (absent..=absent + puts).contains(&report.deleted),
        "{label}: {report:?}"
    );
    Race {
        refreshes: results.len() as u64,
        written: written_keys.len() as u64,
        gone: (results.len() - written_keys.len()) as u64,
        rewritten_by_put: report.deleted - absent,
        report: Some(report),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: 30 free-running races, timing-dependent; run with `cargo test --workspace -- --ignored`"]
async fn free_running_refreshes_race_the_deletes() {
    const RUNS: u64 = 30;
    let started = Instant::now();
    let mut total = Race::default();
    let (mut expired_found, mut deleted, mut skipped_live) = (0, 0, 0);
    let mut runs_with_a_race = 0;
    for seed in 0..RUNS {
        let race = race(seed).await;
        let report = race.report.expect("a report");
        runs_with_a_race += u64::from(report.skipped_live > 0);
        expired_found += report.expired_found;
        deleted += report.deleted;
        skipped_live += report.skipped_live;
        total.refreshes += race.refreshes;
        total.written += race.written;
        total.gone += race.gone;
        total.rewritten_by_put += race.rewritten_by_put;
    }
    println!(
        "race: {RUNS} runs in {:?}; {} refreshes ({} wrote, {} found the session deleted); \
         sweeps found {expired_found} expired, deleted {deleted}, spared {skipped_live} \
         refreshed after their scan (in {runs_with_a_race} runs); {} deleted sessions \
         written again by a later put; 0 refreshed sessions lost",
        started.elapsed(),
        total.refreshes,
        total.written,
        total.gone,
        total.rewritten_by_put,
    );
    assert!(skipped_live > 0, "no refresh raced a delete");
    assert!(total.gone > 0, "no refresh came after a delete");
}
