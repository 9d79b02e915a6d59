//! Session ids hashed at rest (issue 21): the table holds no id a browser sends, and a
//! table written with plain ids keeps its users logged in across the upgrade, through
//! the migration window (`KeyMode::HashedReadingPlain`).

use dynamo_session_store::schema::KeyMode;
use dynamo_session_store::tower_sessions_core::SessionStore as _;
use dynamo_session_store::{Clock as _, SystemClock, WriteOutcome};

use super::*;

/// A store on `table` in `mode`.
fn in_mode(table: &TestTable, mode: KeyMode) -> DynamoStore {
    table
        .store()
        .with_schema(ItemSchema::new().with_key_mode(mode))
        .unwrap()
}

/// A tower-sessions session with `visits`, an hour from now.
fn record(visits: u64) -> Record {
    Record {
        id: Id::default(),
        data: HashMap::from([("visits".to_owned(), json!(visits))]),
        expiry_date: SystemClock.now() + Duration::hours(1),
    }
}

#[tokio::test]
async fn the_table_holds_no_id_a_browser_sends() {
    let table = TestTable::new("hashed-ids").await;
    let store = table.store();
    let mut ids = Vec::new();
    for visits in 0..5 {
        let mut session = record(visits);
        store.create(&mut session).await.unwrap();
        ids.push(session.id.to_string());
    }
    store
        .put("core-api-id-123", &json!({"n": 1}), None)
        .await
        .unwrap();
    ids.push("core-api-id-123".to_owned());
    for item in table.scan_all().await {
        for (name, value) in &item {
            let text = format!("{value:?}");
            for id in &ids {
                assert!(!text.contains(id.as_str()), "`{name}` holds the id {id}");
            }
        }
    }
    // Each session reads back by its id, through both APIs.
    let loaded = store.load(&ids[0].parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(loaded.data["visits"], json!(0));
    assert!(
        store
            .get::<Value>("core-api-id-123")
            .await
            .unwrap()
            .is_some()
    );
    // A key read from the table, sent back as an id, is refused before any request.
    let key = store.schema().key_for(&ids[1]).unwrap();
    assert!(matches!(
        store.get::<Value>(&key).await,
        Err(Error::InvalidId { .. })
    ));
    let cookie: Result<Id, _> = key.parse();
    assert!(cookie.is_err(), "not even a tower-sessions id");
}

#[tokio::test]
async fn an_upgrade_through_the_migration_window_logs_nobody_out() {
    let table = TestTable::new("key-migration").await;
    // Version 0.2: plain keys.
    let before = in_mode(&table, KeyMode::Plain);
    let mut sessions = Vec::new();
    for visits in 0..4 {
        let mut session = record(visits);
        before.create(&mut session).await.unwrap();
        sessions.push(session);
    }
    before.put("core-1", &json!({"n": 1}), None).await.unwrap();
    for session in &sessions {
        assert!(table.raw_get(&session.id.to_string()).await.is_some());
    }

    // The upgrade, in the documented mode: every user is still logged in.
    let during = in_mode(&table, KeyMode::HashedReadingPlain);
    let first = &sessions[0];
    let loaded = during
        .load(&first.id)
        .await
        .unwrap()
        .expect("still logged in");
    assert_eq!(loaded.data, first.data);
    // Read once, the session has moved: its hashed key holds it, its plain key nothing.
    assert!(table.raw_get(&first.id.to_string()).await.is_none());
    assert!(
        table
            .raw_get(&key_of(&first.id.to_string()))
            .await
            .is_some()
    );
    // Saves go on under the hashed key, throttled as usual.
    let mut next = loaded.clone();
    next.data.insert("visits".into(), json!(10));
    during.save(&next).await.unwrap();
    assert_eq!(
        during.load(&first.id).await.unwrap().unwrap().data["visits"],
        json!(10)
    );
    // A core-API update of a session not read yet moves it, then writes it.
    let outcome = during
        .update("core-1", &json!({"n": 2}), None)
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Put);
    assert!(table.raw_get("core-1").await.is_none());
    assert_eq!(
        during.get::<Value>("core-1").await.unwrap().unwrap().data,
        json!({"n": 2})
    );
    // So does a core-API touch: the session moves, then its expiry moves.
    before.put("core-2", &json!({"n": 1}), None).await.unwrap();
    let later = SystemClock.now() + Duration::hours(3);
    let outcome = during.touch("core-2", later).await.unwrap();
    assert_eq!(outcome, WriteOutcome::Touched);
    assert!(table.raw_get("core-2").await.is_none());
    let moved = during.get::<Value>("core-2").await.unwrap().unwrap();
    assert_eq!(moved.expires_at.unix_timestamp(), later.unix_timestamp());
    // A logout of a session not read yet ends it in its plain form too.
    let second = sessions[1].id;
    SessionStore::delete(&during, &second).await.unwrap();
    assert!(during.load(&second).await.unwrap().is_none());
    assert!(table.raw_get(&second.to_string()).await.is_none());
    // Two instances reading the same plain session at once: one item, under its hash.
    let third = sessions[2].id;
    let other_instance = in_mode(&table, KeyMode::HashedReadingPlain);
    let (a, b) = tokio::join!(during.load(&third), other_instance.load(&third));
    assert!(a.unwrap().is_some() && b.unwrap().is_some());
    assert!(table.raw_get(&third.to_string()).await.is_none());
    assert!(table.raw_get(&key_of(&third.to_string())).await.is_some());
    // A hash sent back as an id never reaches a plain lookup of another session.
    let hash = key_of(&first.id.to_string());
    assert!(matches!(
        during.get::<Value>(&hash).await,
        Err(Error::InvalidId { .. })
    ));

    // After the window, hashed only: moved sessions read, a plain one left behind reads
    // as absent (by then it would have expired).
    let after = table.store();
    assert!(after.load(&first.id).await.unwrap().is_some());
    assert!(after.load(&third).await.unwrap().is_some());
    let fourth = sessions[3].id;
    assert!(after.load(&fourth).await.unwrap().is_none());
    assert!(table.raw_get(&fourth.to_string()).await.is_some());
}

#[tokio::test]
async fn owned_sessions_are_listed_and_revoked_in_either_form_during_the_window() {
    let table = TestTable::with_owner_index("key-migration-owners").await;
    let owner_of = |store: DynamoStore| store.with_owner(|data| data.get("user"));
    // Version 0.2 with owners: plain keys, owner attribute written.
    let before = owner_of(in_mode(&table, KeyMode::Plain));
    // And an even older session, written before owners: no owner attribute.
    let older = in_mode(&table, KeyMode::Plain);
    for id in ["p-moved", "p-unread"] {
        before.put(id, &json!({"user": "u-a"}), None).await.unwrap();
    }
    older
        .put("p-ownerless", &json!({"user": "u-a"}), None)
        .await
        .unwrap();
    before
        .put("p-other", &json!({"user": "u-b"}), None)
        .await
        .unwrap();

    let during = owner_of(in_mode(&table, KeyMode::HashedReadingPlain));
    // Read in the window: moved, owner kept (or, for the ownerless one, found in its
    // data), so listed under its hashed key.
    for id in ["p-moved", "p-ownerless"] {
        assert!(during.get::<Value>(id).await.unwrap().is_some(), "{id}");
        let item = table.raw_get(&key_of(id)).await.expect("moved");
        assert_eq!(item["owner"].as_s().unwrap(), "u-a", "{id}");
    }
    let listed: Vec<_> = during.sessions_of("u-a").collect().await.unwrap();
    assert_eq!(listed.len(), 3, "two moved, one still plain");
    // revoke_all ends them in either form, and spares the other user.
    let revoked = during.revoke_all("u-a", None).await.unwrap();
    assert_eq!(revoked.deleted, 3);
    for id in ["p-moved", "p-unread", "p-ownerless"] {
        assert!(during.get::<Value>(id).await.unwrap().is_none(), "{id}");
    }
    assert!(during.get::<Value>("p-other").await.unwrap().is_some());
    assert_eq!(table.scan_all().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_racing_a_move_is_never_undone() {
    let table = TestTable::new("key-migration-race").await;
    let before = in_mode(&table, KeyMode::Plain);
    before.put("racer", &json!({"n": 1}), None).await.unwrap();
    let during = in_mode(&table, KeyMode::HashedReadingPlain);
    // The logout lands between the move's read of the plain item and its write: here,
    // the plain item is deleted by another instance after this one found the hashed key
    // empty. The move's transaction requires the plain item, so it moves nothing.
    let other = in_mode(&table, KeyMode::HashedReadingPlain);
    let meanwhile = integration_tests::observe::BeforeFirst::new(
        "TransactWriteItems",
        integration_tests::observe::BeforeFirst::blocking(async move {
            other.delete("racer").await.unwrap();
        }),
    );
    let racing = DynamoStore::new(meanwhile.client(&table.client), &table.name)
        .with_schema(ItemSchema::new().with_key_mode(KeyMode::HashedReadingPlain))
        .unwrap();
    assert!(racing.get::<Value>("racer").await.unwrap().is_none());
    assert!(meanwhile.ran());
    assert!(during.get::<Value>("racer").await.unwrap().is_none());
    assert!(
        table.scan_all().await.is_empty(),
        "logged out stays logged out"
    );
}
