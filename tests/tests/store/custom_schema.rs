//! A configured item schema (attribute names, key prefix) end to end, including
//! reserved-word attribute names.

use super::*;
use dynamo_session_store::{ItemSchema, WriteOutcome};

#[tokio::test]
async fn custom_attribute_names_and_key_prefix_work_end_to_end() {
    // `TTL` and `VALUE` are DynamoDB reserved words: every expression must alias them.
    let schema = ItemSchema::new()
        .with_key_attribute("session_key")
        .with_expires_attribute("ttl")
        .with_data_attribute("value")
        .with_key_prefix("app1:");
    let (table, clock, store) = schema_fixture("schema", schema.clone()).await;
    let expires = clock.now_plus(Duration::hours(1));

    store
        .put("abc", &json!({"n": 1}), Some(expires))
        .await
        .unwrap();
    let got = store.get::<Value>("abc").await.unwrap().unwrap();
    assert_eq!(got.data, json!({"n": 1}));

    let items = table.scan_all().await;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["session_key", "ttl", "value"]);
    let key = schema.key_for("abc").unwrap();
    assert!(key.starts_with("app1:"), "{key}");
    assert_eq!(item["session_key"], s(&key));
    assert_no_key_contains(&table, "session_key", "abc").await;
    assert_eq!(item["value"], s(r#"{"n":1}"#));
    // Epoch seconds, not milliseconds: DynamoDB's TTL ignores millisecond values.
    assert_eq!(item["ttl"], n(secs(expires)));
    let stored: i64 = item["ttl"].as_n().unwrap().parse().unwrap();
    assert!(stored < 100_000_000_000, "{stored} looks like milliseconds");

    // Touch, conditional update, insert and the trait all go through the aliases.
    let later = clock.now_plus(Duration::hours(2));
    assert_eq!(
        store.touch("abc", later).await.unwrap(),
        WriteOutcome::Touched
    );
    assert_eq!(
        store
            .update("abc", &json!({"n": 2}), Some(later))
            .await
            .unwrap(),
        WriteOutcome::Put
    );
    assert_eq!(
        store.insert("abc", &json!({"n": 3}), None).await.unwrap(),
        WriteOutcome::AlreadyExists
    );
    let items = table.scan_all().await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["ttl"], n(secs(later)));
    assert_eq!(items[0]["value"], s(r#"{"n":2}"#));

    let mut rec = record(json!({"visits": 1}), later);
    store.create(&mut rec).await.unwrap();
    let key = schema.key_for(&rec.id.to_string()).unwrap();
    assert!(
        table
            .scan_all()
            .await
            .iter()
            .any(|i| i["session_key"] == s(&key)),
        "the trait's create ignored the prefix"
    );
    assert_no_key_contains(&table, "session_key", &rec.id.to_string()).await;
    assert_eq!(store.load(&rec.id).await.unwrap().unwrap().data, rec.data);
    SessionStore::delete(&store, &rec.id).await.unwrap();
    store.delete("abc").await.unwrap();
    assert!(table.scan_all().await.is_empty());
}

#[tokio::test]
async fn prefixed_stores_share_a_table_without_seeing_each_other() {
    let table = TestTable::new("shared-table").await;
    let a = table
        .store()
        .with_schema(ItemSchema::new().with_key_prefix("a:"))
        .unwrap();
    let b = table
        .store()
        .with_schema(ItemSchema::new().with_key_prefix("b:"))
        .unwrap();
    a.put("same-id", &json!({"app": "a"}), None).await.unwrap();
    assert_eq!(b.get::<Value>("same-id").await.unwrap(), None);
    b.put("same-id", &json!({"app": "b"}), None).await.unwrap();
    assert_eq!(
        a.get::<Value>("same-id").await.unwrap().unwrap().data,
        json!({"app": "a"})
    );
    assert_eq!(table.scan_all().await.len(), 2);
}
