//! The `tower_sessions_core::SessionStore` implementation: create never overwrites,
//! saves never bring back a deleted or expired session.

use super::*;

#[tokio::test]
async fn create_load_save_delete_round_trip() {
    let table = TestTable::new("trait").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let mut rec = record(json!({"visits": 1}), clock.now_plus(Duration::hours(1)));

    store.create(&mut rec).await.unwrap();
    assert_eq!(table.requests.count("PutItem"), 1);
    let loaded = store.load(&rec.id).await.unwrap().expect("created");
    assert_eq!(loaded.id, rec.id);
    assert_eq!(loaded.data, rec.data);
    assert_eq!(secs(loaded.expiry_date), secs(rec.expiry_date));

    rec.data.insert("visits".into(), json!(2));
    store.save(&rec).await.unwrap();
    let item = table.raw_get(&key_of(&rec.id.to_string())).await.unwrap();
    assert_eq!(data_of(&item), json!({"visits": 2}));
    assert_eq!(store.load(&rec.id).await.unwrap().unwrap().data, rec.data);

    SessionStore::delete(&store, &rec.id).await.unwrap();
    assert_eq!(store.load(&rec.id).await.unwrap(), None);
    assert!(table.scan_all().await.is_empty());
}

#[tokio::test]
async fn create_never_overwrites_an_existing_session() {
    let table = TestTable::new("create-collision").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let mut rec = record(
        json!({"who": "newcomer"}),
        clock.now_plus(Duration::hours(1)),
    );
    let taken = rec.id;
    let original_expiry = secs(clock.now_plus(Duration::hours(5)));
    table
        .raw_put(session_item(
            &key_of(&taken.to_string()),
            r#"{"who":"owner"}"#,
            original_expiry,
        ))
        .await;
    table.requests.reset();

    store.create(&mut rec).await.unwrap();

    assert_ne!(rec.id, taken, "create kept a taken id");
    assert_eq!(
        table.requests.count("PutItem"),
        2,
        "one refused, one written"
    );
    let original = table.raw_get(&key_of(&taken.to_string())).await.unwrap();
    assert_eq!(data_of(&original), json!({"who": "owner"}));
    assert_eq!(expires_of(&original), original_expiry);
    let created = table
        .raw_get(&key_of(&rec.id.to_string()))
        .await
        .expect("new id exists");
    assert_eq!(data_of(&created), json!({"who": "newcomer"}));
    assert_eq!(table.scan_all().await.len(), 2);
}

#[tokio::test]
async fn save_after_delete_with_changed_data_does_not_resurrect() {
    let table = TestTable::new("resurrect-put").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let mut rec = record(json!({"cart": 1}), clock.now_plus(Duration::hours(1)));
    store.create(&mut rec).await.unwrap();

    // A logout (through this store instance or any other) deletes the session...
    SessionStore::delete(&store, &rec.id).await.unwrap();
    // ...while a request that had loaded it earlier saves changed data.
    rec.data.insert("cart".into(), json!(2));
    store.save(&rec).await.unwrap();

    assert!(table.scan_all().await.is_empty(), "the save resurrected it");
    assert_eq!(store.load(&rec.id).await.unwrap(), None);
}

#[tokio::test]
async fn save_after_delete_on_the_touch_path_does_not_resurrect() {
    let table = TestTable::new("resurrect-touch").await;
    let clock = clock_now();
    let inactivity = Duration::minutes(30);
    let store = table.store().with_clock(clock.clone());
    let mut rec = record(json!({"cart": 1}), clock.now_plus(inactivity));
    store.create(&mut rec).await.unwrap();

    // Another process (its own store, its own throttle memory) logs the user out.
    let other = table.store().with_clock(clock.clone());
    SessionStore::delete(&other, &rec.id).await.unwrap();

    // A late request of this process saves the unchanged session past `touch_after`:
    // the throttle plans an expiry-only update, which must find nothing to update.
    clock.advance(Duration::seconds(11));
    rec.expiry_date = clock.now_plus(inactivity);
    table.requests.reset();
    store.save(&rec).await.unwrap();

    assert_eq!(
        table.requests.count("UpdateItem"),
        1,
        "the touch path was taken"
    );
    assert_eq!(table.requests.count("PutItem"), 0);
    assert!(
        table.scan_all().await.is_empty(),
        "the touch resurrected it"
    );

    // The store forgot the session: a later save with changed data is refused too.
    rec.data.insert("cart".into(), json!(2));
    store.save(&rec).await.unwrap();
    assert!(table.scan_all().await.is_empty());
}

#[tokio::test]
async fn save_of_an_expired_session_does_not_revive_it() {
    let table = TestTable::new("save-expired").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let mut rec = record(json!({"n": 1}), clock.now_plus(Duration::seconds(60)));
    store.create(&mut rec).await.unwrap();
    let stored_expiry = secs(rec.expiry_date);

    clock.advance(Duration::seconds(61));
    rec.expiry_date = clock.now_plus(Duration::hours(1));
    store.save(&rec).await.unwrap();
    rec.data.insert("n".into(), json!(2));
    store.save(&rec).await.unwrap();

    let item = table.raw_get(&key_of(&rec.id.to_string())).await.unwrap();
    assert_eq!(expires_of(&item), stored_expiry);
    assert_eq!(data_of(&item), json!({"n": 1}));
    assert_eq!(store.load(&rec.id).await.unwrap(), None);
}

#[tokio::test]
async fn delete_takes_a_tower_sessions_id_with_the_trait_in_scope() {
    let table = TestTable::new("delete-by-id").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let mut rec = record(json!({"v": 1}), clock.now_plus(Duration::hours(1)));
    SessionStore::create(&store, &mut rec).await.unwrap();
    assert!(table.raw_get(&key_of(&rec.id.to_string())).await.is_some());
    // `SessionStore` is in scope here: the obvious call compiles and deletes the session.
    store.delete(&rec.id).await.unwrap();
    assert!(table.raw_get(&key_of(&rec.id.to_string())).await.is_none());
    // And by its text, as before: another session goes, and deleting one that is gone
    // already is a no-op, not an error.
    let mut other = record(json!({"v": 2}), clock.now_plus(Duration::hours(1)));
    SessionStore::create(&store, &mut other).await.unwrap();
    store.delete(other.id.to_string()).await.unwrap();
    assert!(
        table
            .raw_get(&key_of(&other.id.to_string()))
            .await
            .is_none()
    );
    store.delete(rec.id.to_string()).await.unwrap();
    assert!(table.scan_all().await.is_empty());
}
