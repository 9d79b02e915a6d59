//! Hostile and boundary input, store side: sizes and key lengths at DynamoDB's exact limits
//! (checked against the server's own validator), Unicode ids, and items written into the
//! table by other tools. The store answers with typed errors or `None` as documented, and
//! never panics.
use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_smithy_types::Blob;
use dynamo_session_store::schema::KeyMode;
use dynamo_session_store::schema::{MAX_ITEM_BYTES, MAX_KEY_BYTES};
use dynamo_session_store::tower_sessions_core::SessionStore;
use dynamo_session_store::tower_sessions_core::session::Id;
use dynamo_session_store::tower_sessions_core::session_store::Error as TsError;
use dynamo_session_store::{
    Clock, DynamoStore, Error, ItemSchema, ManualClock, WriteOutcome, aws_sdk_dynamodb,
};
use integration_tests::{Item, TestTable, key_of, n, s, unique_name};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

/// Session data `{"s":"<pad…>"}` whose item under `key`, expiring at `expires`, is exactly
/// `size` bytes as the store counts it; `pad` may be multi-byte (an ASCII `x` evens out).
fn data_of_item_size(
    schema: &ItemSchema,
    key: &str,
    expires: i64,
    size: usize,
    pad: char,
) -> Value {
    let empty = schema.item_size(key, r#"{"s":""}"#.len(), expires);
    let bytes = size - empty;
    let mut text = pad.to_string().repeat(bytes / pad.len_utf8());
    text.push_str(&"x".repeat(bytes % pad.len_utf8()));
    let data = json!({ "s": text });
    let json = serde_json::to_string(&data).unwrap();
    assert_eq!(schema.item_size(key, json.len(), expires), size);
    data
}

#[tokio::test]
async fn the_item_size_limit_is_exact_on_both_sides_and_agrees_with_the_server() {
    let table = TestTable::new("size-boundary").await;
    let clock = ManualClock::starting_now();
    let store = table.store().with_clock(clock.clone());
    let schema = ItemSchema::new();
    let soon = clock.now() + Duration::hours(1);
    let soon_odd = soon + Duration::seconds(123); // more significant digits
    let before_epoch = OffsetDateTime::from_unix_timestamp(-86_399).unwrap();
    for (key, expires, pad) in [
        ("max-ascii", soon, 'x'),
        ("max-odd-expiry", soon_odd, 'x'),
        ("ключ-🔑", soon, 'é'),
        ("emoji-pad", soon, '😀'),
        ("negative-expiry", before_epoch, 'x'),
    ] {
        let secs = expires.unix_timestamp();
        let id = key;
        let key = &schema.key_for(id).unwrap();
        // Largest accepted: exactly the limit. The server takes it.
        let largest = data_of_item_size(&schema, key, secs, MAX_ITEM_BYTES, pad);
        table.requests.reset();
        let outcome = store.put(id, &largest, Some(expires)).await;
        assert!(
            matches!(outcome, Ok(WriteOutcome::Put)),
            "{key}: the largest item the store accepts was refused: {outcome:?}"
        );
        let stored = schema.decode(table.raw_get(key).await.unwrap()).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(stored.data.as_json().unwrap()).unwrap(),
            largest
        );

        // An insert adds its claim token: the largest it accepts is that much smaller,
        // and the server takes that too (the store counts what it sends).
        let id_insert = format!("{id}-insert");
        let insert_key = schema.key_for(&id_insert).unwrap();
        let room = schema.claim_size();
        let fits = data_of_item_size(&schema, &insert_key, secs, MAX_ITEM_BYTES - room, pad);
        let outcome = store.insert(&id_insert, &fits, Some(expires)).await;
        assert!(
            matches!(outcome, Ok(WriteOutcome::Put)),
            "{id}: {outcome:?}"
        );
        store.delete(&id_insert).await.unwrap();
        let over = data_of_item_size(&schema, &insert_key, secs, MAX_ITEM_BYTES - room + 1, pad);
        match store.insert(&id_insert, &over, Some(expires)).await {
            Err(Error::TooLarge { size, .. }) => assert_eq!(size, MAX_ITEM_BYTES + 1, "{id}"),
            other => panic!("{id}: an insert one byte over: {other:?}"),
        }

        // Smallest rejected: one byte more. The store refuses it before any request...
        let smallest = data_of_item_size(&schema, key, secs, MAX_ITEM_BYTES + 1, pad);
        table.requests.reset();
        match store.put(id, &smallest, Some(expires)).await {
            Err(Error::TooLarge { size, limit, .. }) => {
                assert_eq!((size, limit), (MAX_ITEM_BYTES + 1, MAX_ITEM_BYTES), "{key}")
            }
            other => panic!("{key}: expected TooLarge, got {other:?}"),
        }
        assert_eq!(table.requests.total(), 0, "{key}");
        // ...and so does the server, when another tool sends it: our count is its count.
        let item = HashMap::from([
            ("id".to_owned(), s(key)),
            ("expires".to_owned(), n(secs)),
            (
                "data".to_owned(),
                s(&serde_json::to_string(&smallest).unwrap()),
            ),
        ]);
        let err = table.try_raw_put(item).await.unwrap_err();
        assert!(err.contains("size"), "{key}: {err}");
        // The refused write left the accepted version in place.
        let stored = schema.decode(table.raw_get(key).await.unwrap()).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(stored.data.as_json().unwrap()).unwrap(),
            largest
        );
    }
}

#[tokio::test]
async fn ids_are_limited_in_bytes_not_characters_and_the_server_agrees() {
    let table = TestTable::new("key-boundary").await;
    // Plain keys, where the id is the key and the server's own limit applies to it; the
    // store refuses the same ids in every key mode (checked below for hashed keys).
    let schema = ItemSchema::new().with_key_mode(KeyMode::Plain);
    let store = table.store().with_schema(schema.clone()).unwrap();
    let hashed = table.store();
    let max = MAX_KEY_BYTES;
    let cases = [
        ("ascii", "k".repeat(max), "k".repeat(max + 1)),
        (
            "two-byte",
            "é".repeat(max / 2),
            format!("{}a", "é".repeat(max / 2)),
        ),
        (
            "four-byte",
            "😀".repeat(max / 4),
            format!("{}a", "😀".repeat(max / 4)),
        ),
        (
            // 682 three-byte characters are 2046 bytes: two ASCII ones make 2048.
            "three-byte",
            format!("{}ab", "€".repeat(max / 3)),
            format!("{}abc", "€".repeat(max / 3)),
        ),
    ];
    for (what, at_limit, over) in &cases {
        assert_eq!((at_limit.len(), over.len()), (max, max + 1), "{what}");
        // At the limit: the store and the server accept it, and it reads back.
        store
            .put(at_limit, &json!({"what": what}), None)
            .await
            .unwrap();
        let got = store.get::<Value>(at_limit).await.unwrap().unwrap();
        assert_eq!(got.data, json!({"what": what}));
        assert!(table.raw_get(at_limit).await.is_some());
        // Hashed, the key is 44 bytes whatever the id; the same id is accepted, and the
        // same one byte over refused.
        hashed
            .put(at_limit, &json!({"what": what}), None)
            .await
            .unwrap();
        assert!(table.raw_get(&key_of(at_limit)).await.is_some());
        let err = hashed.put(over, &json!({}), None).await.unwrap_err();
        assert!(err.to_string().contains("2049 bytes"), "{what}: {err}");

        // One byte over: refused before any request, by every call...
        table.requests.reset();
        let later = in_an_hour();
        let errors = [
            store.get::<Value>(over).await.unwrap_err(),
            store.put(over, &json!({}), None).await.unwrap_err(),
            store.insert(over, &json!({}), None).await.unwrap_err(),
            store.update(over, &json!({}), None).await.unwrap_err(),
            store.touch(over, later).await.unwrap_err(),
            store.delete(over).await.unwrap_err(),
        ];
        for err in errors {
            match err {
                Error::InvalidId { reason, .. } => {
                    assert!(reason.contains("2049 bytes"), "{reason}")
                }
                other => panic!("{what}: expected InvalidId, got {other:?}"),
            }
        }
        assert_eq!(table.requests.total(), 0, "{what}");
        // ...and by the server.
        let item = schema.encode(over.clone(), "{}", 4_000_000_000).unwrap();
        let err = table.try_raw_put(item).await.unwrap_err();
        assert!(err.contains("2048"), "{what}: {err}");
    }
}

/// An hour from now, by the system clock (the store's default clock).
fn in_an_hour() -> OffsetDateTime {
    dynamo_session_store::SystemClock.now() + Duration::hours(1)
}

#[tokio::test]
async fn the_key_prefix_counts_towards_the_key_limit() {
    let schema = ItemSchema::new()
        .with_key_prefix("app:")
        .with_key_mode(KeyMode::Plain);
    let table = TestTable::with_schema("key-prefix-boundary", schema.clone()).await;
    let store = table.store().with_schema(schema).unwrap();
    let fits = "p".repeat(MAX_KEY_BYTES - 4);
    store.put(&fits, &json!({}), None).await.unwrap();
    assert!(table.raw_get(&format!("app:{fits}")).await.is_some());
    let over = format!("{fits}p");
    table.requests.reset();
    assert!(matches!(
        store.put(&over, &json!({}), None).await,
        Err(Error::InvalidId { .. })
    ));
    assert_eq!(table.requests.total(), 0);
}

#[tokio::test]
async fn unicode_ids_are_byte_exact_keys() {
    let table = TestTable::new("unicode-ids").await;
    let store = table.store();
    let composed = "caf\u{e9}"; // é as one code point
    let decomposed = "cafe\u{301}"; // e + combining acute: looks the same, other bytes
    let ids = [
        composed,
        decomposed,
        "日本語のセッション",
        "emoji-🔑🍪",
        "tab\tnewline\nquote\"backslash\\",
        "nul\u{0}inside",
        "right-to-left-\u{202e}txet",
        " ",
    ];
    for (i, id) in ids.iter().enumerate() {
        store
            .put(id, &json!({"i": i, "id": id}), None)
            .await
            .unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let got = store.get::<Value>(id).await.unwrap().unwrap();
        assert_eq!(got.data, json!({"i": i, "id": id}), "{id:?}");
        assert!(
            table.raw_get(&key_of(id)).await.is_some(),
            "{id:?} stored under another key"
        );
    }
    // No normalisation: the two spellings of "café" are two sessions.
    assert_eq!(table.scan_all().await.len(), ids.len());
    store.delete(composed).await.unwrap();
    assert!(store.get::<Value>(composed).await.unwrap().is_none());
    assert!(store.get::<Value>(decomposed).await.unwrap().is_some());
}

#[tokio::test]
async fn empty_ids_are_refused_before_any_request() {
    let table = TestTable::new("empty-ids").await;
    let store = table.store();
    let later = in_an_hour();
    let errors = [
        store.get::<Value>("").await.unwrap_err(),
        store.put("", &json!({}), None).await.unwrap_err(),
        store.insert("", &json!({}), None).await.unwrap_err(),
        store.update("", &json!({}), None).await.unwrap_err(),
        store.touch("", later).await.unwrap_err(),
        store.delete("").await.unwrap_err(),
    ];
    for err in errors {
        match err {
            Error::InvalidId { reason, .. } => assert!(reason.contains("empty"), "{reason}"),
            other => panic!("expected InvalidId, got {other:?}"),
        }
    }
    assert_eq!(table.requests.total(), 0);
}

/// The attributes of a foreign item, its key aside.
type Attributes = Vec<(&'static str, AttributeValue)>;

/// What reading a foreign item must give.
#[derive(Debug)]
enum Read {
    /// A decode error naming this attribute.
    Malformed(&'static str),
    /// `None`: the item counts as expired.
    Absent,
    /// The session, with this data.
    Session(Value),
}

#[tokio::test]
async fn items_written_by_other_tools_give_typed_answers_and_can_be_overwritten() {
    let table = TestTable::new("foreign-items").await;
    let clock = ManualClock::starting_now();
    let store = table.store().with_clock(clock.clone());
    let later = clock.now().unix_timestamp() + 3600;
    let huge = "h".repeat(390 * 1024);
    let m = AttributeValue::M(HashMap::from([("a".to_owned(), n(1))]));
    let b = AttributeValue::B(Blob::new(b"{}".to_vec()));
    let cases: Vec<(&str, Attributes, Read)> = vec![
        ("only a key", vec![], Read::Malformed("expires")),
        (
            "no data",
            vec![("expires", n(later))],
            Read::Malformed("data"),
        ),
        (
            "no expires",
            vec![("data", s("{}"))],
            Read::Malformed("expires"),
        ),
        (
            "expires S",
            vec![("expires", s(&later.to_string())), ("data", s("{}"))],
            Read::Malformed("expires"),
        ),
        (
            "expires BOOL",
            vec![("expires", AttributeValue::Bool(true)), ("data", s("{}"))],
            Read::Malformed("expires"),
        ),
        (
            "expires NULL",
            vec![("expires", AttributeValue::Null(true)), ("data", s("{}"))],
            Read::Malformed("expires"),
        ),
        (
            "expires NS",
            vec![
                ("expires", AttributeValue::Ns(vec![later.to_string()])),
                ("data", s("{}")),
            ],
            Read::Malformed("expires"),
        ),
        (
            "expires beyond i64",
            vec![
                ("expires", n("123456789012345678901234567890")),
                ("data", s("{}")),
            ],
            Read::Malformed("expires"),
        ),
        (
            "expires beyond dates",
            vec![("expires", n(i64::MAX)), ("data", s("{}"))],
            Read::Malformed("expires"),
        ),
        (
            "expires 1e30",
            vec![("expires", n("1E+30")), ("data", s("{}"))],
            Read::Malformed("expires"),
        ),
        (
            "expires fractional",
            vec![("expires", n(format!("{later}.25"))), ("data", s("{}"))],
            Read::Malformed("expires"),
        ),
        (
            // connect-dynamodb-session's unit: as seconds it lies past the year 9999.
            "expires in milliseconds",
            vec![("expires", n(later * 1000)), ("data", s(r#"{"ms":true}"#))],
            Read::Malformed("expires"),
        ),
        (
            "expires negative",
            vec![("expires", n(-5)), ("data", s("{}"))],
            Read::Absent,
        ),
        (
            "expires zero",
            vec![("expires", n(0)), ("data", s("{}"))],
            Read::Absent,
        ),
        (
            "data M",
            vec![("expires", n(later)), ("data", m.clone())],
            Read::Malformed("data"),
        ),
        (
            "data N",
            vec![("expires", n(later)), ("data", n(7))],
            Read::Malformed("data"),
        ),
        (
            // Binary data is the encoded form: these bytes have no header this store
            // knows, so the session loads as absent (with a warning), never as data.
            "data B, not encoded by a codec",
            vec![("expires", n(later)), ("data", b.clone())],
            Read::Absent,
        ),
        (
            "data BOOL",
            vec![("expires", n(later)), ("data", AttributeValue::Bool(false))],
            Read::Malformed("data"),
        ),
        (
            "data L",
            vec![
                ("expires", n(later)),
                ("data", AttributeValue::L(vec![s("{}")])),
            ],
            Read::Malformed("data"),
        ),
        (
            "data empty",
            vec![("expires", n(later)), ("data", s(""))],
            Read::Malformed("data"),
        ),
        (
            "data not JSON",
            vec![("expires", n(later)), ("data", s("<xml/>"))],
            Read::Malformed("data"),
        ),
        (
            "data truncated JSON",
            vec![("expires", n(later)), ("data", s(r#"{"a":"#))],
            Read::Malformed("data"),
        ),
        (
            "extra attributes",
            vec![
                ("expires", n(later)),
                ("data", s(r#"{"x":1}"#)),
                ("owner", s("other-tool")),
                ("ttl", n(1)),
            ],
            Read::Session(json!({"x": 1})),
        ),
        (
            "huge, well-formed",
            vec![
                ("expires", n(later)),
                ("data", s(r#"{"y":2}"#)),
                ("blob", s(&huge)),
            ],
            Read::Session(json!({"y": 2})),
        ),
        (
            "huge data, not JSON",
            vec![("expires", n(later)), ("data", s(&huge))],
            Read::Malformed("data"),
        ),
        (
            "huge data M",
            vec![
                ("expires", n(later)),
                (
                    "data",
                    AttributeValue::M(HashMap::from([("blob".to_owned(), s(&huge))])),
                ),
            ],
            Read::Malformed("data"),
        ),
    ];
    let mut checked = 0;
    for (what, attributes, expected) in cases {
        let id = format!("foreign-{what}");
        let mut item: Item = attributes
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        item.insert("id".into(), s(&key_of(&id)));
        table
            .try_raw_put(item.clone())
            .await
            .unwrap_or_else(|e| panic!("{what}: the server refused the foreign item: {e}"));
        let tid = tower_id(&table, &store, &item).await;

        // Reads: the core API and the SessionStore trait.
        let got = store.get::<Value>(&id).await;
        let loaded = SessionStore::load(&store, &tid).await;
        match &expected {
            Read::Malformed(attribute) => {
                match &got {
                    Err(Error::Decode { attribute: a, .. }) => assert_eq!(a, attribute, "{what}"),
                    other => {
                        panic!("{what}: expected a decode error on `{attribute}`, got {other:?}")
                    }
                }
                match &loaded {
                    Err(TsError::Decode(text)) => {
                        assert!(text.contains(&format!("`{attribute}`")), "{what}: {text}")
                    }
                    other => panic!("{what}: expected Decode, got {other:?}"),
                }
            }
            Read::Absent => {
                assert!(matches!(got, Ok(None)), "{what}: {got:?}");
                assert!(matches!(loaded, Ok(None)), "{what}: {loaded:?}");
            }
            Read::Session(data) => {
                assert_eq!(
                    &got.as_ref().unwrap().as_ref().unwrap().data,
                    data,
                    "{what}"
                );
                let record = loaded.unwrap().unwrap();
                assert_eq!(json!(record.data), *data, "{what}");
            }
        }

        // Writes over it: conditional ones write exactly when the server finds a numeric
        // expiry after now (their condition, `#e > :now`), and answer Gone otherwise;
        // never a panic or an error. A put replaces it with a well-formed session, which
        // then reads back.
        let now = clock.now().unix_timestamp();
        let live_to_the_server = match item.get("expires") {
            Some(AttributeValue::N(v)) => v.parse::<f64>().is_ok_and(|e| e > now as f64),
            _ => false,
        };
        let (touch, update) = if live_to_the_server {
            (WriteOutcome::Touched, WriteOutcome::Put)
        } else {
            (WriteOutcome::Gone, WriteOutcome::Gone)
        };
        let later = clock.now() + Duration::hours(2);
        let at = Some(later);
        let touched = store.touch(&id, later).await;
        assert_eq!(touched.ok(), Some(touch), "{what}: touch");
        let updated = store.update(&id, &json!({"fixed": 1}), at).await;
        assert_eq!(updated.ok(), Some(update), "{what}: update");
        if live_to_the_server {
            let got = store.get::<Value>(&id).await.unwrap().unwrap();
            assert_eq!(got.data, json!({"fixed": 1}), "{what}");
            assert_eq!(
                got.expires_at.unix_timestamp(),
                later.unix_timestamp(),
                "{what}"
            );
        } else {
            assert_eq!(
                table.raw_get(&key_of(&id)).await,
                Some(item.clone()),
                "{what}: untouched"
            );
        }
        store.put(&id, &json!({"fixed": 2}), at).await.unwrap();
        let got = store.get::<Value>(&id).await.unwrap().unwrap();
        assert_eq!(got.data, json!({"fixed": 2}), "{what}");
        store.delete(&id).await.unwrap();
        assert!(table.raw_get(&key_of(&id)).await.is_none(), "{what}");
        checked += 1;
    }
    assert_eq!(checked, 26);
}

/// A tower-sessions id for the same item (its `Id` has a fixed format, so the item is
/// copied under the id's own key for the trait calls).
async fn tower_id(table: &TestTable, store: &DynamoStore, item: &Item) -> Id {
    let tid = Id::default();
    let mut copy = item.clone();
    copy.insert(
        store.schema().key_attribute().to_owned(),
        s(&store.schema().key_for(&tid.to_string()).unwrap()),
    );
    table.raw_put(copy).await;
    tid
}

#[tokio::test]
async fn a_table_whose_key_is_not_a_string_gives_typed_non_transient_errors() {
    // Another tool's table: the same key name, but a Number; and one with another key name.
    let local = integration_tests::LocalDynamo::shared();
    let client = local.client().await;
    for (attribute, kind) in [
        ("id", ScalarAttributeType::N),
        ("pk", ScalarAttributeType::S),
    ] {
        let name = unique_name("foreign-key");
        create_table(&client, &name, attribute, kind).await;
        let store = DynamoStore::new(client.clone(), &name);
        let later = in_an_hour();
        let errors = [
            store.get::<Value>("abc").await.unwrap_err(),
            store.put("abc", &json!({}), None).await.unwrap_err(),
            store.insert("abc", &json!({}), None).await.unwrap_err(),
            store.update("abc", &json!({}), None).await.unwrap_err(),
            store.touch("abc", later).await.unwrap_err(),
            store.delete("abc").await.unwrap_err(),
        ];
        for err in errors {
            match &err {
                Error::DynamoDb {
                    code, transient, ..
                } => {
                    assert_eq!(code.as_deref(), Some("ValidationException"), "{err}");
                    assert!(!transient, "{err}");
                }
                other => panic!("{attribute}: expected a DynamoDb error, got {other:?}"),
            }
        }
        let err = SessionStore::load(&store, &Id::default())
            .await
            .unwrap_err();
        assert!(matches!(err, TsError::Backend(_)), "{err:?}");
        let _ = client.delete_table().table_name(&name).send().await;
    }
}

async fn create_table(client: &Client, name: &str, attribute: &str, kind: ScalarAttributeType) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute)
                .attribute_type(kind)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(attribute)
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create foreign table");
}

#[tokio::test]
async fn an_expiry_in_epoch_milliseconds_is_named_as_such() {
    // Items migrated from connect-dynamodb-session carry milliseconds.
    let table = TestTable::new("expires-ms").await;
    let clock = ManualClock::starting_now();
    let store = table.store().with_clock(clock.clone());
    let ms = (clock.now().unix_timestamp() + 3600) * 1000;
    table
        .raw_put(HashMap::from([
            ("id".to_owned(), s(&key_of("migrated"))),
            ("expires".to_owned(), n(ms)),
            ("data".to_owned(), s("{}")),
        ]))
        .await;
    let err = store.get::<Value>("migrated").await.unwrap_err();
    assert!(matches!(err, Error::Decode { ref attribute, .. } if attribute == "expires"));
    let text = err.to_string();
    assert!(text.contains("epoch milliseconds?"), "{text}");
}
