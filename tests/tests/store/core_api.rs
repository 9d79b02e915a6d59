//! The core API (no web framework): get / put / insert / update / touch / delete, and
//! expired items reading as absent while still in the table.

use super::*;
use dynamo_session_store::WriteOutcome;
use dynamo_session_store::store::DEFAULT_TTL;

#[tokio::test]
async fn put_then_get_round_trips_data_and_expiry() {
    let table = TestTable::new("roundtrip").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let expires = clock.now_plus(Duration::hours(1));

    let outcome = store
        .put(
            "abc",
            &json!({"user": 42, "roles": ["a", "b"]}),
            Some(expires),
        )
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Put);
    assert_eq!(table.requests.count("PutItem"), 1);
    assert_eq!(table.requests.writes(), 1);

    let got = store.get::<Value>("abc").await.unwrap().expect("present");
    assert_eq!(got.data, json!({"user": 42, "roles": ["a", "b"]}));
    assert_eq!(secs(got.expires_at), secs(expires));
    assert_eq!(table.requests.count("GetItem"), 1);

    let item = table.raw_get(&key_of("abc")).await.expect("item in table");
    assert_eq!(item.len(), 3, "{item:?}");
    assert_eq!(expires_of(&item), secs(expires));
    assert_eq!(data_of(&item), json!({"roles": ["a", "b"], "user": 42}));
}

#[tokio::test]
async fn get_of_a_missing_session_is_none() {
    let table = TestTable::new("missing").await;
    assert_eq!(table.store().get::<Value>("nobody").await.unwrap(), None);
}

#[tokio::test]
async fn put_without_expiry_uses_the_default_lifetime() {
    let table = TestTable::new("default-ttl").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    store.put("two-weeks", &json!({}), None).await.unwrap();
    let default_secs = i64::try_from(DEFAULT_TTL.as_secs()).unwrap();
    assert_eq!(default_secs, 14 * 24 * 3600);
    let item = table.raw_get(&key_of("two-weeks")).await.unwrap();
    assert_eq!(
        expires_of(&item),
        secs(clock.now_plus(Duration::ZERO)) + default_secs
    );

    let store = store.with_default_ttl(std::time::Duration::from_secs(600));
    store.put("ten-minutes", &json!({}), None).await.unwrap();
    let item = table.raw_get(&key_of("ten-minutes")).await.unwrap();
    assert_eq!(
        expires_of(&item),
        secs(clock.now_plus(Duration::ZERO)) + 600
    );
}

#[tokio::test]
async fn delete_removes_the_item_and_is_idempotent() {
    let table = TestTable::new("delete").await;
    let store = table.store();
    store
        .put("gone-soon", &json!({"n": 1}), None)
        .await
        .unwrap();
    store.put("stays", &json!({"n": 2}), None).await.unwrap();
    store.delete("gone-soon").await.unwrap();
    store.delete("gone-soon").await.unwrap();
    assert_eq!(store.get::<Value>("gone-soon").await.unwrap(), None);
    let items = table.scan_all().await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], s(&key_of("stays")));
    assert_no_key_contains(&table, "id", "stays").await;
}

#[tokio::test]
async fn expired_item_reads_as_absent_while_still_in_the_table() {
    let table = TestTable::new("expired").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let expires = clock.now_plus(Duration::seconds(60));
    store
        .put("short", &json!({"n": 1}), Some(expires))
        .await
        .unwrap();

    clock.advance(Duration::seconds(59));
    assert!(store.get::<Value>("short").await.unwrap().is_some());
    // The expiry instant itself is already expired.
    clock.advance(Duration::seconds(1));
    assert_eq!(store.get::<Value>("short").await.unwrap(), None);
    let id = Id::default();
    store
        .put(&id.to_string(), &json!({}), Some(expires))
        .await
        .unwrap();
    assert_eq!(SessionStore::load(&store, &id).await.unwrap(), None);

    // Nothing deleted it: it is still in the table, with its data.
    let item = table
        .raw_get(&key_of("short"))
        .await
        .expect("still in the table");
    assert_eq!(expires_of(&item), secs(expires));
    assert_eq!(data_of(&item), json!({"n": 1}));
}

#[tokio::test]
async fn insert_never_overwrites() {
    let table = TestTable::new("insert").await;
    let store = table.store();
    assert_eq!(
        store
            .insert("taken", &json!({"v": "first"}), None)
            .await
            .unwrap(),
        WriteOutcome::Put
    );
    assert_eq!(
        store
            .insert("taken", &json!({"v": "second"}), None)
            .await
            .unwrap(),
        WriteOutcome::AlreadyExists
    );
    let item = table.raw_get(&key_of("taken")).await.unwrap();
    assert_eq!(data_of(&item), json!({"v": "first"}));
}

#[tokio::test]
async fn update_of_a_missing_session_creates_nothing() {
    let table = TestTable::new("update-missing").await;
    let store = table.store();
    assert_eq!(
        store
            .update("never-was", &json!({"v": 1}), None)
            .await
            .unwrap(),
        WriteOutcome::Gone
    );
    assert!(table.scan_all().await.is_empty());
}

#[tokio::test]
async fn touch_moves_only_the_expiry() {
    let table = TestTable::new("touch").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    store
        .put(
            "t",
            &json!({"keep": true}),
            Some(clock.now_plus(Duration::hours(1))),
        )
        .await
        .unwrap();
    table.requests.reset();

    let later = clock.now_plus(Duration::hours(2));
    assert_eq!(
        store.touch("t", later).await.unwrap(),
        WriteOutcome::Touched
    );
    assert_eq!(table.requests.count("UpdateItem"), 1);
    assert_eq!(table.requests.count("PutItem"), 0);
    let item = table.raw_get(&key_of("t")).await.unwrap();
    assert_eq!(expires_of(&item), secs(later));
    assert_eq!(data_of(&item), json!({"keep": true}));

    // A second touch to almost the same expiry is throttled.
    let a_bit_later = later + Duration::seconds(3);
    assert_eq!(
        store.touch("t", a_bit_later).await.unwrap(),
        WriteOutcome::Skipped
    );
    assert_eq!(table.requests.writes(), 1);
}

#[tokio::test]
async fn touch_of_a_deleted_session_creates_nothing() {
    let table = TestTable::new("touch-deleted").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    store.put("bye", &json!({"n": 1}), None).await.unwrap();
    store.delete("bye").await.unwrap();
    table.requests.reset();

    let outcome = store
        .touch("bye", clock.now_plus(Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Gone);
    assert_eq!(table.requests.count("UpdateItem"), 1);
    assert_eq!(table.requests.count("PutItem"), 0);
    assert!(
        table.scan_all().await.is_empty(),
        "a touch re-created the item"
    );

    // Also for an id this store never saw.
    let outcome = store
        .touch("never", clock.now_plus(Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Gone);
    assert!(table.scan_all().await.is_empty());
}

#[tokio::test]
async fn touch_of_an_expired_session_does_not_revive_it() {
    let table = TestTable::new("touch-expired").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let expires = clock.now_plus(Duration::seconds(30));
    store
        .put("old", &json!({"n": 1}), Some(expires))
        .await
        .unwrap();
    clock.advance(Duration::seconds(31));

    let outcome = store
        .touch("old", clock.now_plus(Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Gone);
    let item = table
        .raw_get(&key_of("old"))
        .await
        .expect("left for the sweeper");
    assert_eq!(expires_of(&item), secs(expires), "the expiry was moved");
    assert_eq!(store.get::<Value>("old").await.unwrap(), None);
    // Nor does an update of its data.
    let outcome = store
        .update(
            "old",
            &json!({"n": 2}),
            Some(clock.now_plus(Duration::hours(1))),
        )
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Gone);
    assert_eq!(
        data_of(&table.raw_get(&key_of("old")).await.unwrap()),
        json!({"n": 1})
    );
}

#[tokio::test]
async fn an_id_is_claimed_once_across_instances_and_within_one() {
    let table = TestTable::new("claim").await;
    let clock = clock_now();
    let at = Some(clock.now_plus(Duration::hours(1)));
    // Two stores, as two processes would have: their own throttle memory each.
    let a = table.store().with_clock(clock.clone());
    let b = table.store().with_clock(clock.clone());
    for round in 0..10 {
        let id = format!("claim-{round}");
        // The same id, the same data, the same expiry second: only one of them wrote it.
        let empty = json!({});
        let (x, y) = tokio::join!(a.insert(&id, &empty, at), b.insert(&id, &empty, at));
        let mut outcomes = [x.unwrap(), y.unwrap()];
        outcomes.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(
            outcomes,
            [WriteOutcome::AlreadyExists, WriteOutcome::Put],
            "round {round}"
        );
    }
    // One instance inserting twice: the second finds the first.
    assert_eq!(
        a.insert("twice", &json!({}), at).await.unwrap(),
        WriteOutcome::Put
    );
    assert_eq!(
        a.insert("twice", &json!({}), at).await.unwrap(),
        WriteOutcome::AlreadyExists
    );
}
