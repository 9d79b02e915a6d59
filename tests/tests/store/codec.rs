//! The data codec (issue 21): compression and authenticated encryption of the data
//! attribute, key rotation, old plain items still read, undecodable data loading as
//! absent with nothing written, and the sweeper deleting both forms without a key.

use aws_smithy_types::Blob;
use dynamo_session_store::Clock as _;
use dynamo_session_store::codec::{ENCRYPTED, FORMAT_VERSION};
use dynamo_session_store::schema::StoredData;
use dynamo_session_store::tower_sessions_core::SessionStore as _;
use dynamo_session_store::{Codec, KeyRing};
use sweeper_lambda::{Budget, DeleteStrategy, SweepConfig, sweep};

use super::*;

const KEY_A: [u8; 32] = [0xa1; 32];
const KEY_B: [u8; 32] = [0xb2; 32];

fn ring_a() -> KeyRing {
    KeyRing::new("a", KEY_A).unwrap()
}

fn ring_b_then_a() -> KeyRing {
    KeyRing::new("b", KEY_B)
        .unwrap()
        .with_older_key("a", KEY_A)
        .unwrap()
}

fn ring_b() -> KeyRing {
    KeyRing::new("b", KEY_B).unwrap()
}

/// Session JSON of realistic redundancy, about `bytes` long: a cart, recently viewed
/// products, flash messages and a CSRF token; keys repeat, values vary.
fn realistic(bytes: usize) -> Value {
    let (mut cart, mut viewed) = (Vec::new(), Vec::new());
    // The envelope's ~200 bytes, then entries until the total reaches `bytes` (each
    // entry measured once, not the whole value again).
    let mut len = 200;
    let mut i = 0u64;
    while len < bytes {
        let item = json!({
            "sku": format!("SKU-{:06}", i * 7919 % 1_000_000),
            "name": format!("Product {} in size {}", i % 97, ["S", "M", "L", "XL"][i as usize % 4]),
            "qty": i % 5 + 1,
            "unit_price_cents": 199 + i * 37 % 10_000,
            "added_at": 1_700_000_000 + i * 61,
        });
        let seen = json!({"sku": format!("SKU-{:06}", i * 104_729 % 1_000_000), "at": 1_700_000_000 + i * 13});
        len += item.to_string().len() + seen.to_string().len() + 2;
        cart.push(item);
        viewed.push(seen);
        i += 1;
    }
    json!({
        "user": {"id": 4242, "name": "Ferris Crab", "locale": "en-GB"},
        "csrf": "kq3Zp0cXl5n8bWq1RrT2yU4vA6sD9fG7",
        "flash": ["Item added to your cart"],
        "cart": cart,
        "recently_viewed": viewed,
    })
}

/// The data attribute of the item under `key`, as stored.
async fn stored(table: &TestTable, key: &str) -> StoredData {
    let item = table.raw_get(key).await.expect("the item exists");
    ItemSchema::new().decode(item).unwrap().data
}

#[tokio::test]
async fn encrypted_data_holds_no_plaintext_and_reads_back() {
    let table = TestTable::new("codec-encrypt").await;
    let store = table
        .store()
        .with_codec(Codec::new().with_compression().with_encryption(ring_a()));
    let data = json!({"user": "ferris", "csrf": "secret-csrf-token-1234", "visits": 3});
    store.put("sess-1", &data, None).await.unwrap();
    for item in table.scan_all().await {
        for (name, value) in &item {
            // Binary values as their bytes (the SDK's Debug prints hex), the others as
            // the SDK prints them.
            let text = match value {
                AttributeValue::B(blob) => String::from_utf8_lossy(blob.as_ref()).into_owned(),
                other => format!("{other:?}"),
            };
            for needle in ["ferris", "secret-csrf", "visits", "sess-1"] {
                assert!(!text.contains(needle), "`{name}` holds `{needle}`: {text}");
            }
        }
        let Some(AttributeValue::B(blob)) = item.get("data") else {
            panic!("the data attribute is binary: {item:?}");
        };
        let bytes = blob.as_ref();
        assert_eq!(&bytes[..4], &[FORMAT_VERSION, ENCRYPTED, 1, b'a']);
    }
    let back = store.get::<Value>("sess-1").await.unwrap().unwrap();
    assert_eq!(back.data, data);
    // A store without the key reads the session as absent, and writes nothing.
    let keyless = table.store();
    table.requests.reset();
    assert!(keyless.get::<Value>("sess-1").await.unwrap().is_none());
    assert_eq!(table.requests.writes(), 0);
    // Each save encrypts under a fresh nonce: the same data, different bytes.
    let first = stored(&table, &key_of("sess-1")).await;
    store.put("sess-1", &data, None).await.unwrap();
    assert_ne!(first, stored(&table, &key_of("sess-1")).await);
}

#[tokio::test]
async fn a_megabyte_of_session_json_fits_in_one_item_compressed() {
    let table = TestTable::new("codec-compress").await;
    let data = realistic(1_000_000);
    let json_len = serde_json::to_string(&data).unwrap().len();
    assert!(json_len >= 1_000_000);
    let plain = table.store();
    assert!(
        matches!(
            plain.put("big", &data, None).await,
            Err(Error::TooLarge { .. })
        ),
        "plain, it is over the item limit"
    );
    for codec in [
        Codec::new().with_compression(),
        Codec::new().with_compression().with_encryption(ring_a()),
    ] {
        let store = table.store().with_codec(codec);
        store.put("big", &data, None).await.unwrap();
        let size = stored(&table, &key_of("big")).await.len();
        assert!(size < 400 * 1024, "{size} bytes stored for {json_len}");
        assert_eq!(store.get::<Value>("big").await.unwrap().unwrap().data, data);
    }
    // The size check is on the encoded item: JSON that does not compress enough is
    // refused before any request.
    let noise: String = (0..900_000u64)
        .map(|i| {
            let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ i;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    let store = table.store().with_codec(Codec::new().with_compression());
    assert!(matches!(
        store.put("noise", &json!({ "n": noise }), None).await,
        Err(Error::TooLarge { .. })
    ));
    assert!(table.raw_get(&key_of("noise")).await.is_none());
}

#[tokio::test]
async fn plain_items_written_before_the_codec_still_read_and_are_encrypted_by_their_first_read() {
    let table = TestTable::new("codec-upgrade").await;
    let clock = clock_now();
    let before = table.store().with_clock(clock.clone());
    let mut session = Record {
        id: Id::default(),
        data: HashMap::from([("visits".to_owned(), json!(1))]),
        expiry_date: clock.now() + Duration::hours(1),
    };
    before.create(&mut session).await.unwrap();
    let key = key_of(&session.id.to_string());
    assert!(stored(&table, &key).await.as_json().is_some());

    let after = table
        .store()
        .with_clock(clock.clone())
        .with_codec(Codec::new().with_encryption(ring_a()));
    // Its first read encrypts it (one conditional UpdateItem of the data alone), so a
    // session that is only read, or only touched, is encrypted too.
    table.requests.reset();
    let loaded = after.load(&session.id).await.unwrap().unwrap();
    assert_eq!(loaded.data["visits"], json!(1));
    assert_eq!(table.requests.count("UpdateItem"), 1);
    assert!(matches!(stored(&table, &key).await, StoredData::Encoded(_)));
    // Then it is an encrypted session like any other: a read writes nothing, and an
    // unchanged save inside the throttling window neither.
    table.requests.reset();
    let again = after.load(&session.id).await.unwrap().unwrap();
    assert_eq!(again.data["visits"], json!(1));
    after.save(&again).await.unwrap();
    assert_eq!(table.requests.writes(), 0, "then throttled as before");
    // A store that requires encryption reads it; a plain item planted under its key is
    // refused (loads as absent) rather than trusted.
    let strict = table.store().with_clock(clock.clone()).with_codec(
        Codec::new()
            .with_encryption(ring_a())
            .requiring_encryption(),
    );
    assert!(strict.load(&session.id).await.unwrap().is_some());
    table
        .raw_put(session_item(
            &key,
            r#"{"visits":1,"admin":true}"#,
            clock.now().unix_timestamp() + 600,
        ))
        .await;
    assert!(strict.load(&session.id).await.unwrap().is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn rotation_from_key_a_to_key_b_then_removing_a() {
    let table = TestTable::new("codec-rotate").await;
    let under_a = table
        .store()
        .with_codec(Codec::new().with_encryption(ring_a()));
    for i in 0..4 {
        under_a
            .put(&format!("s{i}"), &json!({ "n": i }), None)
            .await
            .unwrap();
    }
    let key_id = |data: &StoredData| match data {
        StoredData::Encoded(b) => String::from_utf8(b[3..3 + usize::from(b[2])].to_vec()).unwrap(),
        other => panic!("not encrypted: {other:?}"),
    };

    // B becomes primary, A stays in the ring: sessions under A load, and are re-encrypted
    // under B by that read (s2: read only); saves are under B (s0, s1). s3 is not used
    // during the window, and stays under A.
    let rotating = table
        .store()
        .with_codec(Codec::new().with_encryption(ring_b_then_a()));
    for i in 0..3 {
        let got = rotating.get::<Value>(&format!("s{i}")).await.unwrap();
        assert_eq!(got.unwrap().data, json!({ "n": i }));
    }
    for i in 0..2 {
        rotating
            .put(&format!("s{i}"), &json!({ "n": i + 10 }), None)
            .await
            .unwrap();
    }
    for i in 0..4 {
        let expected = if i < 3 { "b" } else { "a" };
        assert_eq!(
            key_id(&stored(&table, &key_of(&format!("s{i}"))).await),
            expected
        );
    }

    // A removed: B's sessions load; A's load as absent, with one warning each naming the
    // key, and nothing is written to them.
    let only_b = table
        .store()
        .with_codec(Codec::new().with_encryption(ring_b()));
    let before = stored(&table, &key_of("s3")).await;
    let (logs, got) = Logs::capture(async {
        let mut got = Vec::new();
        for i in 0..4 {
            got.push(only_b.get::<Value>(&format!("s{i}")).await.unwrap());
        }
        got
    })
    .await;
    for (i, got) in got.iter().enumerate() {
        match i {
            0 | 1 => assert_eq!(got.as_ref().unwrap().data, json!({ "n": i + 10 })),
            2 => assert_eq!(got.as_ref().unwrap().data, json!({ "n": 2 })),
            _ => assert!(got.is_none(), "s{i} is under the removed key"),
        }
    }
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("does not decode"))
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(warnings.iter().all(|w| w.contains("key `a`")), "{logs}");
    assert!(
        !logs.contains(&key_of("s3")),
        "logs hold a full key: {logs}"
    );
    let after = stored(&table, &key_of("s3")).await;
    assert_eq!(
        before, after,
        "nothing is written to a session that does not decode"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn tampered_moved_or_foreign_blobs_load_as_absent_and_nothing_is_written() {
    let table = TestTable::new("codec-tamper").await;
    let clock = clock_now();
    let store = table.store().with_clock(clock.clone()).with_codec(
        Codec::new()
            .with_compression_from(1)
            .with_encryption(ring_a()),
    );
    store
        .put("victim", &json!({"role": "user"}), None)
        .await
        .unwrap();
    store
        .put("attacker", &json!({"role": "admin"}), None)
        .await
        .unwrap();
    let expires = clock.now().unix_timestamp() + 3600;
    let attacker_blob = stored(&table, &key_of("attacker")).await;
    let StoredData::Encoded(good) = stored(&table, &key_of("victim")).await else {
        panic!("encrypted");
    };
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let mut other_version = good.clone();
    other_version[0] = 9;
    let mut other_key = good.clone();
    other_key[3] = b'z';
    let cases: Vec<(&str, AttributeValue, &str)> = vec![
        (
            "moved from another session",
            attacker_blob.into_attribute(),
            "fails authentication",
        ),
        (
            "a flipped bit",
            AttributeValue::B(Blob::new(flipped)),
            "fails authentication",
        ),
        (
            "the tag cut short",
            AttributeValue::B(Blob::new(good[..good.len() - 1].to_vec())),
            "fails authentication",
        ),
        (
            "truncated",
            AttributeValue::B(Blob::new(good[..good.len() / 2].to_vec())),
            "truncated",
        ),
        (
            "truncated header",
            AttributeValue::B(Blob::new(good[..5].to_vec())),
            "truncated",
        ),
        (
            "empty",
            AttributeValue::B(Blob::new(Vec::new())),
            "truncated",
        ),
        (
            "unknown version",
            AttributeValue::B(Blob::new(other_version)),
            "format version 9",
        ),
        (
            "unknown key id",
            AttributeValue::B(Blob::new(other_key)),
            "key `z`",
        ),
        (
            "unknown flags",
            AttributeValue::B(Blob::new(vec![1, 0x40, b'{', b'}'])),
            "unknown flags",
        ),
    ];
    for (label, data, needle) in cases {
        let mut item = session_item(&key_of("victim"), "{}", expires);
        item.insert("data".to_owned(), data);
        table.raw_put(item.clone()).await;
        table.requests.reset();
        let (logs, got) = Logs::capture(store.get::<Value>("victim")).await;
        assert!(got.unwrap().is_none(), "{label}: loads as absent");
        assert!(logs.contains(needle), "{label}: {logs}");
        assert_eq!(
            logs.matches("WARN").count(),
            1,
            "{label}: one warning: {logs}"
        );
        assert!(
            !logs.contains(&key_of("victim")),
            "{label}: a full key in {logs}"
        );
        assert_eq!(table.requests.writes(), 0, "{label}: nothing written");
        assert_eq!(
            table.raw_get(&key_of("victim")).await,
            Some(item),
            "{label}"
        );
    }
}

#[tokio::test]
async fn the_sweeper_deletes_expired_sessions_in_both_forms_without_a_key() {
    let clock = clock_now();
    let now = clock.now().unix_timestamp();
    for strategy in [DeleteStrategy::PartiqlBatch, DeleteStrategy::DeleteItem] {
        let table = TestTable::new("codec-sweep").await;
        let plain = table.store().with_clock(clock.clone());
        let encoded = table.store().with_clock(clock.clone()).with_codec(
            Codec::new()
                .with_compression_from(1)
                .with_encryption(ring_a()),
        );
        let compressed = table
            .store()
            .with_clock(clock.clone())
            .with_codec(Codec::new().with_compression_from(1));
        let soon = Some(clock.now() + Duration::seconds(60));
        let later = Some(clock.now() + Duration::hours(2));
        for i in 0..10 {
            let data = realistic(2_000);
            plain.put(&format!("p-old{i}"), &data, soon).await.unwrap();
            encoded
                .put(&format!("e-old{i}"), &data, soon)
                .await
                .unwrap();
            compressed
                .put(&format!("c-old{i}"), &data, soon)
                .await
                .unwrap();
            plain
                .put(&format!("p-live{i}"), &data, later)
                .await
                .unwrap();
            encoded
                .put(&format!("e-live{i}"), &data, later)
                .await
                .unwrap();
        }
        let kinds: Vec<&str> = table
            .scan_all()
            .await
            .iter()
            .map(|item| dynamo_session_store::schema::attribute_type(&item["data"]))
            .collect();
        assert_eq!(kinds.iter().filter(|k| **k == "S").count(), 20);
        assert_eq!(kinds.iter().filter(|k| **k == "B").count(), 30);

        let config = SweepConfig::new(table.name.as_str())
            .with_total_segments(4)
            .with_strategy(strategy);
        let at = ManualClock::new(OffsetDateTime::from_unix_timestamp(now + 3600).unwrap());
        let report = sweep(&table.client, &config, &at, Budget::unlimited())
            .await
            .expect("the sweep runs");
        assert_eq!(report.deleted, 30, "{strategy:?}: {report:?}");
        let left = table.keys("id").await;
        let expected: std::collections::HashSet<String> = (0..10)
            .flat_map(|i| [key_of(&format!("p-live{i}")), key_of(&format!("e-live{i}"))])
            .collect();
        assert_eq!(left, expected, "{strategy:?}");
        assert!(encoded.get::<Value>("e-live0").await.unwrap().is_some());
    }
}

#[tokio::test]
async fn the_move_to_a_hashed_key_re_encrypts_under_the_new_key() {
    use dynamo_session_store::schema::KeyMode;
    let table = TestTable::new("codec-move").await;
    let in_mode = |mode| {
        table
            .store()
            .with_schema(ItemSchema::new().with_key_mode(mode))
            .unwrap()
            .with_codec(Codec::new().with_encryption(ring_a()))
    };
    // Written by a plain-key deployment with encryption: the blob is bound to the plain
    // key, so moved as it is, it would not decrypt.
    in_mode(KeyMode::Plain)
        .put("legacy-id", &json!({ "n": 1 }), None)
        .await
        .unwrap();
    let plain = stored(&table, "legacy-id").await;
    assert!(matches!(plain, StoredData::Encoded(_)));
    let window = in_mode(KeyMode::HashedReadingPlain);
    let got = window.get::<Value>("legacy-id").await.unwrap().unwrap();
    assert_eq!(got.data, json!({ "n": 1 }));
    assert!(table.raw_get("legacy-id").await.is_none(), "moved");
    let moved = stored(&table, &key_of("legacy-id")).await;
    assert_ne!(moved, plain, "encrypted again, for its new key");
    let hashed = in_mode(KeyMode::Hashed);
    let got = hashed.get::<Value>("legacy-id").await.unwrap().unwrap();
    assert_eq!(got.data, json!({ "n": 1 }));
}

#[tokio::test]
async fn one_read_both_indexes_and_encrypts_a_session_written_before_either() {
    let table = TestTable::with_owner_index("codec-owner").await;
    table
        .store()
        .put("old-login", &json!({ "user": "u-7", "n": 1 }), None)
        .await
        .unwrap();
    let store = table
        .store()
        .with_owner(|data| data.get("user"))
        .with_codec(Codec::new().with_encryption(ring_a()));
    table.requests.reset();
    let got = store.get::<Value>("old-login").await.unwrap().unwrap();
    assert_eq!(got.data["n"], json!(1));
    assert_eq!(
        table.requests.count("UpdateItem"),
        1,
        "one request for both"
    );
    let item = table.raw_get(&key_of("old-login")).await.unwrap();
    assert_eq!(item.get("owner"), Some(&s("u-7")));
    assert!(matches!(item.get("data"), Some(AttributeValue::B(_))));
    let listed = store.sessions_of("u-7").collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    // Read again: nothing left to rewrite.
    table.requests.reset();
    store.get::<Value>("old-login").await.unwrap().unwrap();
    assert_eq!(table.requests.writes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_on_read_that_loses_a_race_leaves_the_next_save_to_encrypt() {
    use integration_tests::observe::BeforeFirst;
    let table = TestTable::new("codec-race").await;
    let clock = clock_now();
    let expires = clock.now().unix_timestamp() + 3600;
    let key = key_of("raced");
    table
        .raw_put(session_item(&key, r#"{"n":1}"#, expires))
        .await;
    // Another instance saves the same session (the same data, written differently) just
    // before this read's rewrite is sent: the rewrite's condition fails, and must not win.
    let raw = table.client.clone();
    let (name, racing_key) = (table.name.clone(), key.clone());
    let meanwhile = BeforeFirst::new(
        "UpdateItem",
        BeforeFirst::blocking(async move {
            raw.put_item()
                .table_name(name)
                .set_item(Some(session_item(&racing_key, r#"{ "n": 1 }"#, expires)))
                .send()
                .await
                .unwrap();
        }),
    );
    let store = DynamoStore::new(meanwhile.client(&table.client), &table.name)
        .with_clock(clock.clone())
        .with_codec(Codec::new().with_encryption(ring_a()));
    let got = store.get::<Value>("raced").await.unwrap().unwrap();
    assert!(meanwhile.ran());
    assert_eq!(got.data, json!({ "n": 1 }));
    assert_eq!(
        stored(&table, &key).await,
        r#"{ "n": 1 }"#,
        "the racing save won"
    );
    // The read was not recorded as current: an unchanged save now writes the whole item,
    // encrypted, rather than skipping it.
    let outcome = store.update("raced", &got.data, None).await.unwrap();
    assert_eq!(outcome, dynamo_session_store::WriteOutcome::Put);
    assert!(matches!(stored(&table, &key).await, StoredData::Encoded(_)));
}
