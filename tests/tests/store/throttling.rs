//! Write throttling: unchanged saves within `touch_after` cost nothing, then one
//! expiry-only update; changed data is a put; a load refreshes what the store knows.

use super::*;

const INACTIVITY: Duration = Duration::minutes(30);

#[tokio::test]
async fn unchanged_saves_within_touch_after_write_nothing_then_one_touch() {
    let table = TestTable::new("throttle").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    assert_eq!(store.touch_after(), std::time::Duration::from_secs(10));
    let mut rec = record(json!({"user": 7}), clock.now_plus(INACTIVITY));
    store.create(&mut rec).await.unwrap();
    assert_eq!(table.requests.writes(), 1);
    table.requests.reset();

    // `Expiry::OnInactivity`: every request moves the expiry to now + inactivity. 1,000
    // requests within 9 s (9 ms apart) move it by less than `touch_after`.
    for _ in 0..1000 {
        clock.advance(Duration::milliseconds(9));
        rec.expiry_date = clock.now_plus(INACTIVITY);
        store.save(&rec).await.unwrap();
    }
    assert_eq!(table.requests.total(), 0, "{:?}", table.requests);

    // Past `touch_after` since the last write: exactly one expiry-only update.
    clock.advance(Duration::milliseconds(1001));
    rec.expiry_date = clock.now_plus(INACTIVITY);
    store.save(&rec).await.unwrap();
    assert_eq!(table.requests.count("UpdateItem"), 1);
    assert_eq!(table.requests.count("PutItem"), 0);
    assert_eq!(table.requests.total(), 1);
    let item = table.raw_get(&key_of(&rec.id.to_string())).await.unwrap();
    assert_eq!(expires_of(&item), secs(rec.expiry_date));
    assert_eq!(data_of(&item), json!({"user": 7}));

    // And the window starts again from that touch.
    table.requests.reset();
    for _ in 0..100 {
        clock.advance(Duration::milliseconds(50));
        rec.expiry_date = clock.now_plus(INACTIVITY);
        store.save(&rec).await.unwrap();
    }
    assert_eq!(table.requests.writes(), 0);
}

#[tokio::test]
async fn changed_data_is_a_put_even_within_touch_after() {
    let table = TestTable::new("throttle-changed").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let mut rec = record(json!({"n": 0}), clock.now_plus(INACTIVITY));
    store.create(&mut rec).await.unwrap();
    table.requests.reset();

    for i in 1..=5 {
        rec.data.insert("n".into(), json!(i));
        store.save(&rec).await.unwrap();
    }
    assert_eq!(table.requests.count("PutItem"), 5);
    assert_eq!(table.requests.count("UpdateItem"), 0);
    let item = table.raw_get(&key_of(&rec.id.to_string())).await.unwrap();
    assert_eq!(data_of(&item), json!({"n": 5}));
}

#[tokio::test]
async fn core_update_is_throttled_and_put_always_writes() {
    use dynamo_session_store::WriteOutcome;
    let table = TestTable::new("throttle-update").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let data = json!({"a": 1, "b": 2});
    let update = |at| store.update("p", &data, Some(at));
    assert_eq!(
        store
            .put("p", &data, Some(clock.now_plus(INACTIVITY)))
            .await
            .unwrap(),
        WriteOutcome::Put
    );
    clock.advance(Duration::seconds(9));
    assert_eq!(
        update(clock.now_plus(INACTIVITY)).await.unwrap(),
        WriteOutcome::Skipped
    );
    clock.advance(Duration::seconds(1));
    assert_eq!(
        update(clock.now_plus(INACTIVITY)).await.unwrap(),
        WriteOutcome::Touched
    );
    assert_eq!(table.requests.count("PutItem"), 1);
    assert_eq!(table.requests.count("UpdateItem"), 1);

    // An explicit put is never throttled: unchanged data a second later is written.
    clock.advance(Duration::seconds(1));
    let at = clock.now_plus(INACTIVITY);
    assert_eq!(
        store.put("p", &data, Some(at)).await.unwrap(),
        WriteOutcome::Put
    );
    assert_eq!(table.requests.count("PutItem"), 2);
}

#[tokio::test]
async fn a_put_after_another_instance_deleted_the_session_writes_it() {
    use dynamo_session_store::WriteOutcome;
    let table = TestTable::new("put-after-delete").await;
    let clock = clock_now();
    let (a, b) = (
        table.store().with_clock(clock.clone()),
        table.store().with_clock(clock.clone()),
    );
    let (data, at) = (json!({"v": 1}), Some(clock.now_plus(INACTIVITY)));
    assert_eq!(a.put("s", &data, at).await.unwrap(), WriteOutcome::Put);
    b.delete("s").await.unwrap();
    assert_eq!(a.put("s", &data, at).await.unwrap(), WriteOutcome::Put);
    assert!(
        table.raw_get(&key_of("s")).await.is_some(),
        "put means create or replace"
    );
}

#[tokio::test]
async fn load_refreshes_the_throttle_state() {
    let table = TestTable::new("throttle-load").await;
    let clock = clock_now();
    // Another process wrote the session; this one has never seen it.
    let writer = table.store().with_clock(clock.clone());
    let mut rec = record(json!({"cart": ["apple"]}), clock.now_plus(INACTIVITY));
    writer.create(&mut rec).await.unwrap();

    let reader = table.store().with_clock(clock.clone());
    clock.advance(Duration::seconds(2));
    let mut loaded = reader.load(&rec.id).await.unwrap().expect("present");
    table.requests.reset();
    loaded.expiry_date = clock.now_plus(INACTIVITY);
    reader.save(&loaded).await.unwrap();
    assert_eq!(table.requests.total(), 0, "{:?}", table.requests);

    // Without the load, the same save is a (conditional) put.
    let stranger = table.store().with_clock(clock.clone());
    stranger.save(&loaded).await.unwrap();
    assert_eq!(table.requests.count("PutItem"), 1);
}

#[tokio::test]
async fn zero_touch_after_writes_every_save() {
    let table = TestTable::new("throttle-off").await;
    let clock = clock_now();
    let store = table
        .store()
        .with_clock(clock.clone())
        .with_touch_after(std::time::Duration::ZERO);
    let mut rec = record(json!({"n": 1}), clock.now_plus(INACTIVITY));
    store.create(&mut rec).await.unwrap();
    table.requests.reset();
    for _ in 0..3 {
        store.save(&rec).await.unwrap();
    }
    assert_eq!(table.requests.count("UpdateItem"), 3);
}
