//! Items the store did not write (or that were corrupted) give typed decode errors naming
//! the attribute, never a panic.

use super::*;
use dynamo_session_store::ItemSchema;

/// Writes `item` under `id`, then checks that reading it through the core API and the
/// `SessionStore` trait both fail with a decode error naming `attribute`.
async fn assert_decode_error(
    table: &TestTable,
    store: &DynamoStore,
    mut item: Item,
    attribute: &str,
) {
    let id = Id::default();
    let key = store.schema().key_for(&id.to_string()).unwrap();
    item.insert(store.schema().key_attribute().to_owned(), s(&key));
    table.raw_put(item).await;

    match store.get::<Value>(&id.to_string()).await {
        Err(Error::Decode { attribute: a, .. }) => assert_eq!(a, attribute),
        other => panic!("expected a decode error on `{attribute}`, got {other:?}"),
    }
    match store.load(&id).await {
        Err(session_store::Error::Decode(text)) => {
            assert!(text.contains(&format!("`{attribute}`")), "{text}")
        }
        other => panic!("expected session_store::Error::Decode, got {other:?}"),
    }
}

#[tokio::test]
async fn corrupt_items_give_typed_decode_errors() {
    let table = TestTable::new("corrupt").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let later = secs(clock.now_plus(Duration::hours(1)));
    let item = |pairs: &[(&str, AttributeValue)]| -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    };
    let cases = [
        (
            "data not JSON",
            item(&[("expires", n(later)), ("data", s("{not json"))]),
            "data",
        ),
        (
            "data a Number",
            item(&[("expires", n(later)), ("data", n(5))]),
            "data",
        ),
        ("data missing", item(&[("expires", n(later))]), "data"),
        (
            "expires a String",
            item(&[("expires", s("tomorrow")), ("data", s("{}"))]),
            "expires",
        ),
        (
            "expires fractional",
            item(&[
                ("expires", AttributeValue::N(format!("{later}.5"))),
                ("data", s("{}")),
            ]),
            "expires",
        ),
        ("expires missing", item(&[("data", s("{}"))]), "expires"),
        (
            "expires out of range",
            item(&[("expires", n(i64::MAX)), ("data", s("{}"))]),
            "expires",
        ),
    ];
    let written = cases.len();
    for (what, corrupt, attribute) in cases {
        println!("case: {what}");
        assert_decode_error(&table, &store, corrupt, attribute).await;
    }
    // Only the raw writes above: a failed read never writes.
    assert_eq!(table.requests.writes(), written);
}

#[tokio::test]
async fn data_that_is_json_but_not_an_object_fails_to_load() {
    let table = TestTable::new("corrupt-shape").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone());
    let id = Id::default();
    let later = secs(clock.now_plus(Duration::hours(1)));
    table
        .raw_put(session_item(&key_of(&id.to_string()), "[1,2,3]", later))
        .await;

    // The core API reads whatever type the caller asks for...
    let got = store.get::<Value>(&id.to_string()).await.unwrap().unwrap();
    assert_eq!(got.data, json!([1, 2, 3]));
    // ...tower-sessions needs an object of values.
    let err = store.load(&id).await.unwrap_err();
    assert!(
        matches!(&err, session_store::Error::Decode(t) if t.contains("`data`")),
        "{err:?}"
    );
    // A typed read into the wrong shape names the attribute too.
    let err = store
        .get::<HashMap<String, u32>>(&id.to_string())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Decode { attribute, .. } if attribute == "data"),
        "{err:?}"
    );
}

#[tokio::test]
async fn corrupt_items_under_a_custom_schema_name_the_configured_attribute() {
    let schema = ItemSchema::new()
        .with_key_attribute("pk")
        .with_expires_attribute("ttl")
        .with_data_attribute("payload")
        .with_key_prefix("sess#");
    let (table, clock, store) = schema_fixture("corrupt-schema", schema).await;
    let later = secs(clock.now_plus(Duration::hours(1)));
    let bad_ttl = HashMap::from([("ttl".to_owned(), s("x")), ("payload".to_owned(), s("{}"))]);
    assert_decode_error(&table, &store, bad_ttl, "ttl").await;
    // An item written with the default names is missing the configured ones.
    let default_names = HashMap::from([
        ("expires".to_owned(), n(later)),
        ("data".to_owned(), s("{}")),
    ]);
    assert_decode_error(&table, &store, default_names, "ttl").await;
    let no_payload = HashMap::from([("ttl".to_owned(), n(later)), ("data".to_owned(), s("{}"))]);
    assert_decode_error(&table, &store, no_payload, "payload").await;
}
