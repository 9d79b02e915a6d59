//! Sessions by owner (issue 20): `sessions_of` lists exactly an owner's live sessions,
//! `revoke_all` deletes them (but the current one, when asked) and keeps a session that
//! changed owner meanwhile, the index is written only when the owner changes (measured
//! from the server's own consumed capacity), and a bad owner never fails a request.

use std::collections::HashSet;

use dynamo_session_store::owner::{self, DEFAULT_OWNER_INDEX, MAX_OWNER_BYTES};
use dynamo_session_store::table::TableProblem;
use dynamo_session_store::{DynamoStore, Error, SessionHandle, TableCreated, WriteOutcome};
use integration_tests::observe::{BeforeFirst, IndexCapacity};
use integration_tests::{TestTable, clock_now};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use tokio::task::JoinSet;

use super::*;
use dynamo_session_store::Clock as _;

/// A store on `table` that finds the owner under `user`, on a stopped clock.
fn owned_store(table: &TestTable, clock: &ManualClock) -> DynamoStore {
    table
        .store()
        .with_owner(|data| data.get("user"))
        .with_clock(clock.clone())
}

/// Session ids `{owner}-{i}` for `count` sessions of `owner`, saved with `expires_at`.
async fn seed(
    store: &DynamoStore,
    owner: &str,
    count: usize,
    expires_at: OffsetDateTime,
) -> Vec<String> {
    let ids: Vec<String> = (0..count).map(|i| format!("{owner}-{i:04}")).collect();
    let mut puts = JoinSet::new();
    for chunk in ids.chunks(count.div_ceil(16).max(1)) {
        let (store, owner, chunk) = (store.clone(), owner.to_owned(), chunk.to_vec());
        puts.spawn(async move {
            for id in chunk {
                let data = json!({"user": owner, "device": format!("laptop of {id}")});
                store.put(&id, &data, Some(expires_at)).await.unwrap();
            }
        });
    }
    puts.join_all().await;
    ids
}

/// The handles of `ids`.
fn handles(store: &DynamoStore, ids: &[String]) -> HashSet<SessionHandle> {
    ids.iter().map(|id| store.handle_of(id).unwrap()).collect()
}

/// Every handle `sessions_of(owner)` lists, checking that no page exceeds 100.
async fn listed(store: &DynamoStore, owner: &str) -> HashSet<SessionHandle> {
    let mut pages = store.sessions_of(owner);
    let mut all = HashSet::new();
    while let Some(page) = pages.next_page().await.unwrap() {
        assert!(
            page.len() <= 100,
            "a page holds at most 100: {}",
            page.len()
        );
        for session in page {
            assert!(all.insert(session.handle), "listed twice");
        }
    }
    all
}

#[tokio::test]
async fn sessions_of_lists_exactly_an_owners_live_sessions() {
    let table = TestTable::with_owner_index("owners-list").await;
    let clock = clock_now();
    let store = owned_store(&table, &clock);
    let live = clock.now() + Duration::hours(1);
    let mut by_owner = Vec::new();
    for (owner, count) in [("u-none", 0), ("u-one", 1), ("u-ten", 10), ("u-many", 1000)] {
        by_owner.push((owner, seed(&store, owner, count, live).await));
    }
    // Noise: expired sessions of the same owners, and sessions without an owner.
    for i in 0..3 {
        let data = json!({"user": "u-ten"});
        let expired = clock.now() - Duration::seconds(1);
        let id = format!("u-ten-expired-{i}");
        store.put(&id, &data, Some(expired)).await.unwrap();
    }
    store
        .put("anonymous", &json!({"visits": 3}), Some(live))
        .await
        .unwrap();

    for (owner, ids) in &by_owner {
        assert_eq!(
            &listed(&store, owner).await,
            &handles(&store, ids),
            "{owner}"
        );
    }
    // What a "your devices" page shows: the expiry, and a handle that prints redacted.
    let mut one = store.sessions_of("u-one");
    let session = one.next().await.unwrap().unwrap();
    assert_eq!(session.expires_at, live.replace_nanosecond(0).unwrap());
    assert!(one.next().await.is_none());
    assert!(!session.handle.to_string().contains("u-one-0000"));
    // A session expiring now is no longer listed, as `get` reads it as absent.
    clock.set(live);
    assert!(listed(&store, "u-ten").await.is_empty());
}

#[tokio::test]
async fn revoke_all_deletes_an_owners_sessions_but_the_current_one() {
    let table = TestTable::with_owner_index("owners-revoke").await;
    let clock = clock_now();
    let store = owned_store(&table, &clock);
    let live = clock.now() + Duration::hours(1);
    let mine = seed(&store, "u-a", 10, live).await;
    let theirs = seed(&store, "u-b", 4, live).await;
    store
        .put("anonymous", &json!({"visits": 1}), Some(live))
        .await
        .unwrap();

    // "Sign out my other devices": all but the current one.
    let current = &mine[3];
    let revoked = store.revoke_all("u-a", Some(current)).await.unwrap();
    assert_eq!(
        (revoked.deleted, revoked.kept, revoked.spared),
        (9, 0, true)
    );
    for id in &mine {
        let kept = store.get::<Value>(id).await.unwrap().is_some();
        assert_eq!(kept, id == current, "{id}");
    }
    for id in theirs.iter().map(String::as_str).chain(["anonymous"]) {
        assert!(store.get::<Value>(id).await.unwrap().is_some(), "{id}");
    }
    // "Sign me out everywhere": the current one too; then nothing is left to do.
    let revoked = store.revoke_all("u-a", None).await.unwrap();
    assert_eq!((revoked.deleted, revoked.spared), (1, false));
    assert_eq!(store.revoke_all("u-a", None).await.unwrap().deleted, 0);
    assert!(listed(&store, "u-a").await.is_empty());
    assert_eq!(listed(&store, "u-b").await.len(), 4);

    // A thousand sessions at once.
    let many = seed(&store, "u-many", 1000, live).await;
    let revoked = store.revoke_all("u-many", None).await.unwrap();
    assert_eq!(revoked.deleted, 1000);
    assert!(store.get::<Value>(&many[999]).await.unwrap().is_none());
    assert_eq!(table.scan_all().await.len(), 4 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_changes_owner_during_revoke_all_is_kept() {
    let table = TestTable::with_owner_index("owners-race").await;
    let clock = clock_now();
    let store = owned_store(&table, &clock);
    let live = clock.now() + Duration::hours(1);
    let ids = seed(&store, "u-a", 20, live).await;
    let moved: Vec<String> = ids.iter().step_by(4).cloned().collect();

    // After revoke_all has listed u-a's sessions and before its first delete is sent,
    // five of them change hands (another instance saving them for u-b).
    let other = store.clone();
    let to_move = moved.clone();
    let meanwhile = BeforeFirst::new(
        "DeleteItem",
        BeforeFirst::blocking(async move {
            for id in to_move {
                let data = json!({"user": "u-b"});
                other.put(&id, &data, Some(live)).await.unwrap();
            }
        }),
    );
    let revoking = DynamoStore::new(meanwhile.client(&table.client), &table.name)
        .with_owner(|data| data.get("user"))
        .with_clock(clock.clone());
    let revoked = revoking.revoke_all("u-a", None).await.unwrap();
    assert!(meanwhile.ran());
    assert_eq!((revoked.deleted, revoked.kept), (15, 5));
    for id in &ids {
        let found = store.get::<Value>(id).await.unwrap();
        if moved.contains(id) {
            assert_eq!(
                found.unwrap().data["user"],
                "u-b",
                "{id} changed hands: kept"
            );
        } else {
            assert!(found.is_none(), "{id} is revoked");
        }
    }
    assert_eq!(listed(&store, "u-b").await, handles(&store, &moved));
}

#[tokio::test]
async fn revoke_deletes_one_session_only_for_its_owner() {
    let table = TestTable::with_owner_index("owners-revoke-one").await;
    let clock = clock_now();
    let store = owned_store(&table, &clock);
    let live = clock.now() + Duration::hours(1);
    let a = seed(&store, "u-a", 2, live).await;
    let handle = store.handle_of(&a[0]).unwrap();
    // Someone else's handle: refused by the condition, nothing deleted.
    assert!(!store.revoke("u-b", &handle).await.unwrap());
    assert!(store.get::<Value>(&a[0]).await.unwrap().is_some());
    // The owner's own: deleted once.
    assert!(store.revoke("u-a", &handle).await.unwrap());
    assert!(!store.revoke("u-a", &handle).await.unwrap());
    assert!(store.get::<Value>(&a[1]).await.unwrap().is_some());
    // Handles sent back by a client are checked before any request.
    for bad in ["", "!sweeper-checkpoint/0-1of1"] {
        let err = store
            .revoke("u-a", &SessionHandle::from_text(bad))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidId { .. }), "{err}");
    }
    let err = store.revoke_all("", None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidOwner { .. }), "{err}");
    assert!(err.to_string().contains("empty"), "{err}");
    let err = store.sessions_of("").next().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::InvalidOwner { .. }), "{err}");
}

#[tokio::test]
async fn deployments_sharing_a_table_list_and_revoke_only_their_own() {
    let table = TestTable::with_owner_index("owners-shared").await;
    let clock = clock_now();
    let prefixed = |prefix: &str| {
        owned_store(&table, &clock)
            .with_schema(ItemSchema::new().with_key_prefix(prefix))
            .unwrap()
    };
    let (app1, app2) = (prefixed("app1:"), prefixed("app2:"));
    let live = clock.now() + Duration::hours(1);
    let ones = seed(&app1, "u-a", 3, live).await;
    let twos = seed(&app2, "u-a", 2, live).await;
    assert_eq!(listed(&app1, "u-a").await, handles(&app1, &ones));
    assert_eq!(app1.revoke_all("u-a", None).await.unwrap().deleted, 3);
    assert_eq!(listed(&app2, "u-a").await, handles(&app2, &twos));
}

#[tokio::test(flavor = "current_thread")]
async fn a_bad_owner_is_not_indexed_and_never_fails_the_request() {
    let table = TestTable::with_owner_index("owners-bad").await;
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .with_ansi(false)
        .finish();
    let _guard = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber);

    let store = table.store().with_owner(|data| {
        if data.get("boom").is_some() {
            panic!("an owner function with a bug");
        }
        data.get("user")
    });
    let cases = [
        ("numb-session-xxxxxxxx", json!({"user": 42}), Some("42")),
        ("strg-session-xxxxxxxx", json!({"user": "u-1"}), Some("u-1")),
        ("bool-session-xxxxxxxx", json!({"user": true}), None),
        ("empt-session-xxxxxxxx", json!({"user": ""}), None),
        ("objt-session-xxxxxxxx", json!({"user": {"id": 1}}), None),
        (
            "long-session-xxxxxxxx",
            json!({"user": "x".repeat(MAX_OWNER_BYTES + 1)}),
            None,
        ),
        (
            "panc-session-xxxxxxxx",
            json!({"boom": 1, "user": "u-1"}),
            None,
        ),
        ("miss-session-xxxxxxxx", json!({"visits": 1}), None),
    ];
    for (id, data, owner) in &cases {
        store.put(id, data, None).await.unwrap();
        let item = table.raw_get(&key_of(id)).await.unwrap();
        let written = item.get("owner").and_then(|o| o.as_s().ok());
        assert_eq!(written.map(String::as_str), *owner, "{id}");
    }
    // The store goes on working after the panic.
    store
        .put("after", &json!({"user": "u-1"}), None)
        .await
        .unwrap();
    assert!(store.get::<Value>("after").await.unwrap().is_some());
    assert_eq!(listed(&store, "u-1").await.len(), 2);

    // One warning per unusable owner, naming the session by the start of its hashed key
    // only.
    let text = logs.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 5, "{text}");
    for (id, _, owner) in &cases[2..7] {
        assert!(owner.is_none());
        let label = ItemSchema::default().log_label(&key_of(id));
        assert!(
            warnings.iter().any(|w| w.contains(&label)),
            "{id} ({label}): {warnings:?}"
        );
        assert!(!text.contains(id), "a full session id was logged: {text}");
    }
    for says in ["a boolean", "empty", "an object", "2049 bytes", "panicked"] {
        assert!(text.contains(says), "{says}: {text}");
    }
}

#[tokio::test]
async fn the_index_is_written_only_when_the_owner_changes() {
    use dynamo_session_store::tower_sessions_core::SessionStore as _;

    let table = TestTable::with_owner_index("owners-cost").await;
    let clock = clock_now();
    let capacity = IndexCapacity::default();
    let store = DynamoStore::new(capacity.client(&table.client), &table.name)
        .with_owner(owner::axum_login)
        .with_clock(clock.clone());
    let index = DEFAULT_OWNER_INDEX;
    let login = |user: Value| {
        HashMap::from([
            (
                "axum-login.data".to_owned(),
                json!({"user_id": user, "auth_hash": [1, 2]}),
            ),
            ("visits".to_owned(), json!(1)),
        ])
    };
    let mut record = Record {
        id: Id::default(),
        data: login(json!(42)),
        expiry_date: clock.now() + Duration::hours(1),
    };

    // An anonymous visit: no owner, no index write.
    let mut anonymous = Record {
        id: Id::default(),
        data: HashMap::from([("visits".to_owned(), json!(1))]),
        expiry_date: record.expiry_date,
    };
    store.create(&mut anonymous).await.unwrap();
    assert!(
        capacity.reported() > 0,
        "the server reports no consumed capacity; the index costs cannot be measured here"
    );
    assert_eq!(
        capacity.writes(index),
        0,
        "an ownerless session is not indexed"
    );

    // A login (tower-sessions' create, after axum-login cycles the id): one index write.
    store.create(&mut record).await.unwrap();
    assert_eq!(capacity.writes(index), 1);
    let per_login = capacity.units(index);
    assert_eq!(per_login, 1.0, "an index item under 1 KB: one unit");

    // An unchanged save within the window: no request at all.
    capacity.reset();
    table.requests.reset();
    store.save(&record).await.unwrap();
    assert_eq!(table.requests.writes(), 0);
    // A touch (the expiry moved past the window): an UpdateItem, and no index write.
    clock.advance(Duration::seconds(60));
    record.expiry_date += Duration::seconds(60);
    store.save(&record).await.unwrap();
    assert_eq!(capacity.reported(), 1, "one write: the touch");
    assert_eq!(capacity.units(index), 0.0, "a touch writes no index");
    // A changed save that keeps the owner: a PutItem, and no index write.
    record.data.insert("visits".to_owned(), json!(2));
    store.save(&record).await.unwrap();
    assert_eq!(capacity.reported(), 2, "two writes: the touch and the put");
    assert_eq!(capacity.units(index), 0.0, "the same owner writes no index");

    // A change of owner rewrites the index entry.
    record.data = login(json!("u-7"));
    store.save(&record).await.unwrap();
    assert_eq!(capacity.writes(index), 1);
    let per_owner_change = capacity.units_by("PutItem", index);
    // DynamoDB counts a changed index key as a delete and a put in the index.
    assert_eq!(per_owner_change, 2.0);

    // A logout (tower-sessions' delete) deletes from the index.
    capacity.reset();
    SessionStore::delete(&store, &record.id).await.unwrap();
    assert_eq!(capacity.writes(index), 1);
    assert_eq!(capacity.units_by("DeleteItem", index), 1.0);
    println!(
        "index units: login {per_login}, owner change {per_owner_change}, logout {}",
        capacity.units(index)
    );
}

#[tokio::test]
async fn a_table_without_the_index_is_named_and_create_table_adds_it() {
    let table = TestTable::new("owners-add-index").await;
    let clock = clock_now();
    let store = owned_store(&table, &clock);
    // Sessions written before the store knew owners carry none.
    let plain = table.store();
    plain
        .put("before", &json!({"user": "u-a"}), None)
        .await
        .unwrap();

    let err = store.check_table().await.unwrap_err();
    let Error::Table { problem, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        matches!(problem, TableProblem::OwnerIndexMissing { index, .. } if index == DEFAULT_OWNER_INDEX),
        "{err}"
    );
    assert!(err.to_string().contains("update-table"), "{err}");
    // The store without owners does not need the index.
    plain.check_table().await.unwrap();

    assert_eq!(
        store.create_table().await.unwrap(),
        TableCreated::AlreadyExisted
    );
    store.check_table().await.unwrap();
    // Written before: not indexed yet. Its first read by a store that writes owners
    // indexes it (one UpdateItem of the owner alone), so revoke_all finds it even if no
    // request ever saves it again.
    assert!(listed(&store, "u-a").await.is_empty());
    table.requests.reset();
    let loaded = store.get::<Value>("before").await.unwrap().unwrap();
    assert_eq!(table.requests.count("UpdateItem"), 1);
    assert_eq!(
        listed(&store, "u-a").await,
        handles(&store, &["before".to_owned()])
    );
    // Then throttled as usual: an unchanged save writes nothing, and a second read does
    // not write the owner again.
    let outcome = store
        .update("before", &loaded.data, Some(loaded.expires_at))
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Skipped);
    table.requests.reset();
    store.get::<Value>("before").await.unwrap().unwrap();
    assert_eq!(table.requests.writes(), 0);

    // An index keyed by another attribute is named too.
    let other = owned_store(&table, &clock)
        .with_schema(ItemSchema::new().with_owner_attribute("user_id"))
        .unwrap();
    let err = other.check_table().await.unwrap_err();
    assert!(err.to_string().contains("keyed by `owner`"), "{err}");
}
