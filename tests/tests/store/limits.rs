//! Rejected before any request: sessions over 400 KB (checked exactly against the server)
//! and ids that cannot be keys.

use super::*;
use dynamo_session_store::schema::{MAX_ITEM_BYTES, MAX_KEY_BYTES};

/// Session data whose JSON is `len` bytes: `{"blob":"xxx…"}`.
fn blob(len: usize) -> Value {
    json!({"blob": "x".repeat(len - r#"{"blob":""}"#.len())})
}

fn assert_too_large(err: &Error) {
    match err {
        Error::TooLarge { size, limit, .. } => {
            assert_eq!(*limit, MAX_ITEM_BYTES);
            assert!(*size > *limit, "{size} <= {limit}");
            let text = err.to_string();
            assert!(text.contains(&size.to_string()), "{text}");
            assert!(text.contains("409600"), "{text}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_session_is_rejected_and_nothing_is_written() {
    let table = TestTable::new("too-large").await;
    let store = table.store();
    let err = store
        .put("big", &blob(MAX_ITEM_BYTES + 1), None)
        .await
        .unwrap_err();
    assert_too_large(&err);
    let err = store
        .insert("big", &blob(500 * 1024), None)
        .await
        .unwrap_err();
    assert_too_large(&err);
    assert_eq!(table.requests.total(), 0, "{:?}", table.requests);
    assert!(table.scan_all().await.is_empty());
}

#[tokio::test]
async fn oversized_update_keeps_the_previous_version() {
    let table = TestTable::new("too-large-update").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let mut rec = record(json!({"small": true}), clock.now_plus(Duration::hours(1)));
    store.create(&mut rec).await.unwrap();
    let id = rec.id.to_string();
    table.requests.reset();

    let err = store
        .put(&id, &blob(MAX_ITEM_BYTES), None)
        .await
        .unwrap_err();
    assert_too_large(&err);
    rec.data
        .insert("huge".into(), json!("y".repeat(MAX_ITEM_BYTES)));
    let err = store.save(&rec).await.unwrap_err();
    match &err {
        session_store::Error::Encode(text) => {
            assert!(text.contains("409600"), "{text}")
        }
        other => panic!("expected Encode, got {other:?}"),
    }
    assert_eq!(table.requests.writes(), 0);

    let item = table.raw_get(&key_of(&id)).await.unwrap();
    assert_eq!(data_of(&item), json!({"small": true}));
    assert_eq!(table.scan_all().await.len(), 1);
}

#[tokio::test]
async fn oversized_create_is_an_encode_error() {
    let table = TestTable::new("too-large-create").await;
    let store = table.store();
    let mut rec = record(
        blob(MAX_ITEM_BYTES),
        clock_now().now_plus(Duration::hours(1)),
    );
    let err = store.create(&mut rec).await.unwrap_err();
    assert!(matches!(err, session_store::Error::Encode(_)), "{err:?}");
    assert_eq!(table.requests.total(), 0);
    assert!(table.scan_all().await.is_empty());
}

#[tokio::test]
async fn the_largest_session_that_fits_is_accepted_by_dynamodb() {
    let table = TestTable::new("largest").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let expires = clock.now_plus(Duration::hours(1));
    let id = "max";
    let key = store.schema().key_for(id).unwrap();
    // Fill the item up to exactly the limit, as the store counts it (with the item's key).
    let probe = store
        .schema()
        .item_size(&key, r#"{"blob":""}"#.len(), secs(expires));
    let data = blob(MAX_ITEM_BYTES - probe + r#"{"blob":""}"#.len());
    let json = serde_json::to_string(&data).unwrap();
    assert_eq!(
        store.schema().item_size(&key, json.len(), secs(expires)),
        MAX_ITEM_BYTES
    );
    store.put(id, &data, Some(expires)).await.unwrap();
    assert_eq!(store.get::<Value>(id).await.unwrap().unwrap().data, data);
    let stored = table.raw_get(&key).await.expect("stored under its key");
    assert_eq!(data_of(&stored), data);

    // One byte more and DynamoDB itself refuses the item: the store's limit is exact.
    // A key of the same length and one more byte of data: exactly one byte over.
    let over = format!("{json} ");
    let other = store.schema().key_for("xam").unwrap();
    assert_eq!(other.len(), key.len());
    assert_eq!(
        store.schema().item_size(&other, over.len(), secs(expires)),
        MAX_ITEM_BYTES + 1
    );
    let item = session_item(&other, &over, secs(expires));
    let refused = table
        .client
        .put_item()
        .table_name(&table.name)
        .set_item(Some(item))
        .send()
        .await;
    let err = refused.expect_err("DynamoDB accepted an item over 400 KB");
    let text = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
    assert!(text.contains("size"), "{text}");
}

#[tokio::test]
async fn invalid_ids_are_rejected_without_a_request() {
    let table = TestTable::new("invalid-ids").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let later = clock.now_plus(Duration::hours(1));
    let too_long = "x".repeat(MAX_KEY_BYTES + 1);
    // With no key prefix, no id may equal another deployment's reserved key either (its
    // checkpoint under prefix `p:`), nor hold the reserved marker anywhere.
    for id in [
        "",
        "!sweeper-checkpoint/0-1of1",
        "p:!sweeper-checkpoint/0-8of8",
        "!x",
        "a!",
        too_long.as_str(),
    ] {
        let errors = [
            store.get::<Value>(id).await.unwrap_err(),
            store.put(id, &json!({}), None).await.unwrap_err(),
            store.insert(id, &json!({}), None).await.unwrap_err(),
            store.update(id, &json!({}), None).await.unwrap_err(),
            store.touch(id, later).await.unwrap_err(),
            store.delete(id).await.unwrap_err(),
        ];
        for err in errors {
            assert!(matches!(err, Error::InvalidId { .. }), "{id:.10}: {err:?}");
        }
    }
    assert_eq!(table.requests.total(), 0, "{:?}", table.requests);
    let err = store.get::<Value>(&too_long).await.unwrap_err().to_string();
    assert!(err.contains("2049 bytes") && err.contains("2048"), "{err}");
    for id in ["!x", "p:!sweeper-checkpoint/0-8of8"] {
        let err = store.get::<Value>(id).await.unwrap_err().to_string();
        assert!(err.contains("reserved"), "{err}");
    }

    // The key prefix counts towards the key limit.
    let prefixed = table
        .store()
        .with_schema(dynamo_session_store::ItemSchema::new().with_key_prefix("app:"))
        .unwrap();
    let just_fits_alone = "x".repeat(MAX_KEY_BYTES);
    let err = prefixed.get::<Value>(&just_fits_alone).await.unwrap_err();
    assert!(matches!(err, Error::InvalidId { .. }), "{err:?}");
    assert_eq!(table.requests.total(), 0);
}
