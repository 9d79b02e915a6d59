//! Scenario 9: the data codec (compression, encryption), against the codec off.
//!
//! - **Round trips**: load + changed-data save round trips through tower-sessions'
//!   `SessionStore` of a realistic session of 200 B, 4 KB and 100 KB, by four stores on one
//!   table: codec off (the baseline), compression (zstd level 3, from 1 KiB: the default),
//!   encryption (XChaCha20-Poly1305), and both. They run in alternating rounds, each
//!   round starting with the next store, so a noisy moment hurts all four alike.
//! - **In process, no server**: what zstd makes of realistic session JSON of 200 B, 1 KB,
//!   4 KB, 100 KB and 1 MB (JSON bytes, stored bytes, and the write units of the item
//!   before and after), and the time of one encode + decode with compression, encryption
//!   and both, against the JSON serialize + parse of the same data that every round trip
//!   already does. Compression is forced from 1 byte here, so that the sizes below the
//!   default 1 KiB threshold show what compressing them would cost and save.
//! - **1 MB in one item**: a 1 MB session created, loaded and saved through stores with
//!   compression and with both; the item read back from the table must be within
//!   DynamoDB's 400 KB.
//!
//! The sessions are built by [`session`]: a CSRF token, a user profile, a cart, a list of
//! recently viewed products and flash messages; keys repeat, values vary (pseudo-random,
//! the same in every run), as in a real shop's session.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_session_store::codec::{Codec, DEFAULT_COMPRESS_FROM, KeyRing};
use dynamo_session_store::schema::{ItemSchema, MAX_ITEM_BYTES};
use dynamo_session_store::{Clock, DynamoStore, SystemClock};
use integration_tests::TestTable;
use serde_json::{Value, json};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::SessionStore;

use crate::report::{Report, Row};
use crate::store_rt::store_round_trips;

const SCENARIO: &str = "9 codec";
const KIB: usize = 1024;
/// A write unit covers 1 KB of an item; a strongly consistent read unit, 4 KB.
const WRITE_UNIT_BYTES: usize = 1024;
const READ_UNIT_BYTES: usize = 4096;

pub async fn run(report: &mut Report, quick: bool) {
    round_trips(report, quick).await;
    in_process(report, quick);
    one_megabyte(report).await;
}

/// The four codecs, the baseline first.
fn codecs(compress_from: usize) -> [(&'static str, Codec); 4] {
    let ring = || KeyRing::new("a", [7; 32]).expect("a valid key id");
    [
        ("codec off", Codec::new()),
        ("zstd", Codec::new().with_compression_from(compress_from)),
        ("XChaCha20", Codec::new().with_encryption(ring())),
        (
            "zstd + XChaCha20",
            Codec::new()
                .with_compression_from(compress_from)
                .with_encryption(ring()),
        ),
    ]
}

fn size_label(bytes: usize) -> String {
    match bytes {
        b if b >= KIB * KIB => format!("{} MB", b / (KIB * KIB)),
        b if b >= KIB => format!("{} KB", b / KIB),
        b => format!("{b} B"),
    }
}

/// An expiry a day from now, by the system clock (the store's own).
fn a_day_from_now() -> time::OffsetDateTime {
    SystemClock.now() + time::Duration::days(1)
}

async fn round_trips(report: &mut Report, quick: bool) {
    let rounds = if quick { 2 } else { 5 };
    let table = TestTable::new("bench-codec").await;
    for (size, ops) in [
        (200, if quick { 10 } else { 300 }),
        (4 * KIB, if quick { 10 } else { 300 }),
        (100 * KIB, if quick { 5 } else { 60 }),
    ] {
        let label = size_label(size);
        let data = session(size, 1);
        let json = to_json(&data);
        let mut stores = Vec::new();
        for (name, codec) in codecs(DEFAULT_COMPRESS_FROM) {
            let stored = codec
                .encode(&hashed_key(), json.clone())
                .expect("encode")
                .len();
            let store = table.store().with_codec(codec);
            let mut record = Record {
                id: Id::default(),
                data: data.clone(),
                expiry_date: a_day_from_now(),
            };
            store.create(&mut record).await.expect("create");
            stores.push((name, store, record.id, stored, Duration::ZERO));
        }
        let mut n = 0;
        let count = stores.len();
        for round in 0..rounds {
            for i in 0..count {
                let (_, store, id, _, time) = &mut stores[(round + i) % count];
                *time += store_round_trips(&*store, *id, ops, &mut n).await;
            }
        }
        let total = f64::from(rounds as u32 * ops);
        let off_rate = total / stores[0].4.as_secs_f64();
        for (name, _, _, stored, time) in &stores {
            let rate = total / time.as_secs_f64();
            report.push(Row {
                scenario: SCENARIO.into(),
                case: if *name == "codec off" {
                    format!("load+save round trips, {label} session, codec off")
                } else {
                    format!("  {name} vs off, {label}")
                },
                value: rate,
                unit: "rt/s".into(),
                baseline: Some(off_rate),
                ratio: Some(rate / off_rate),
                target: None,
                met: None,
                detail: Some(json!({
                    "json_bytes": json.len(),
                    "stored_bytes": stored,
                    "rounds": rounds,
                    "round_trips_per_round": ops,
                    "seconds": time.as_secs_f64(),
                })),
            });
        }
    }
}

/// The JSON text of session data as the store writes it: keys sorted, so the same data
/// gives the same text (and compresses the same) in every run.
fn to_json(data: &HashMap<String, Value>) -> String {
    serde_json::to_string(&data.iter().collect::<BTreeMap<_, _>>()).expect("json")
}

/// The table key of a fresh session id under the default schema (a hashed key): what
/// the encryption binds the data to.
fn hashed_key() -> String {
    ItemSchema::new()
        .key_for(&Id::default().to_string())
        .expect("a valid id")
}

/// Write units of a save and strongly consistent read units of a load of a session item
/// with `data_bytes` of stored data.
fn units(schema: &ItemSchema, key: &str, data_bytes: usize, expires: i64) -> (usize, usize) {
    let item = schema.item_size(key, data_bytes, expires);
    (
        item.div_ceil(WRITE_UNIT_BYTES),
        item.div_ceil(READ_UNIT_BYTES),
    )
}

fn in_process(report: &mut Report, quick: bool) {
    // Each measurement: the fastest of `batches` batches of about `budget` each, the
    // four operations of a size taking turns batch by batch. The fastest batch is the one
    // least disturbed by the rest of the machine: these loops do no I/O, so it is their
    // CPU time.
    let (batches, budget) = if quick {
        (2, Duration::from_millis(5))
    } else {
        (7, Duration::from_millis(60))
    };
    let schema = ItemSchema::new();
    let key = hashed_key();
    let expires = a_day_from_now().unix_timestamp();
    for size in [200, KIB, 4 * KIB, 100 * KIB, KIB * KIB] {
        let label = size_label(size);
        let data = session(size, 2);
        let json = to_json(&data);
        let [_, (_, zstd), (_, sealed), (_, both)] = codecs(1);
        let zstd_bytes = zstd.encode(&key, json.clone()).expect("encode").len();
        let (off_wcu, off_rcu) = units(&schema, &key, json.len(), expires);
        let (zstd_wcu, zstd_rcu) = units(&schema, &key, zstd_bytes, expires);
        let fits_off = schema.item_size(&key, json.len(), expires) <= MAX_ITEM_BYTES;
        let zstd_fits = schema.item_size(&key, zstd_bytes, expires) <= MAX_ITEM_BYTES;
        let by_default = if size >= DEFAULT_COMPRESS_FROM {
            ""
        } else {
            " (not compressed by default)"
        };
        let units_text = if fits_off {
            format!("write units {off_wcu} -> {zstd_wcu}")
        } else {
            format!("off: over 400 KB; zstd: {zstd_wcu} write units")
        };
        report.push(Row {
            scenario: SCENARIO.into(),
            case: format!(
                "zstd, {label} session JSON{by_default}: stored vs JSON bytes; {units_text}"
            ),
            value: zstd_bytes as f64,
            unit: "B".into(),
            baseline: Some(json.len() as f64),
            ratio: Some(zstd_bytes as f64 / json.len() as f64),
            target: (size >= KIB * KIB).then(|| "<= 400 KB item".into()),
            met: (size >= KIB * KIB).then_some(zstd_fits),
            detail: Some(json!({
                "json_bytes": json.len(),
                "stored_bytes": zstd_bytes,
                "compression_factor": json.len() as f64 / zstd_bytes as f64,
                "item_bytes_off": schema.item_size(&key, json.len(), expires),
                "item_bytes_zstd": schema.item_size(&key, zstd_bytes, expires),
                "write_units_off": fits_off.then_some(off_wcu),
                "write_units_zstd": zstd_wcu,
                "read_units_off": fits_off.then_some(off_rcu),
                "read_units_zstd": zstd_rcu,
                "compressed_by_default": size >= DEFAULT_COMPRESS_FROM,
            })),
        });
        if size >= KIB * KIB {
            eprintln!(
                "   1 MB of session JSON ({} B) compresses to {zstd_bytes} B: {} one 400 KB item",
                json.len(),
                if zstd_fits {
                    "it fits in"
                } else {
                    "it does NOT fit in"
                }
            );
        }

        // The work to time, each call handing its result to the next: no copy is timed.
        let mut ops: Vec<Op> = Vec::new();
        let mut map = Some(data.clone());
        ops.push((
            "JSON serialize+parse",
            Box::new(move || {
                let text = to_json(&map.take().expect("a map"));
                map = Some(
                    serde_json::from_str::<HashMap<String, Value>>(black_box(&text))
                        .expect("parse"),
                );
            }),
        ));
        for (name, codec) in [
            ("zstd", zstd),
            ("XChaCha20", sealed),
            ("zstd + XChaCha20", both),
        ] {
            let key = key.clone();
            let mut text = Some(json.clone());
            ops.push((
                name,
                Box::new(move || {
                    let stored = codec
                        .encode(&key, text.take().expect("a text"))
                        .expect("encode");
                    text = Some(codec.decode(&key, black_box(stored)).expect("decode"));
                }),
            ));
        }
        let per_call = time_interleaved(&mut ops, batches, budget);
        let json_us = per_call[0];
        for ((name, _), us) in ops.iter().zip(&per_call).skip(1) {
            report.push(Row {
                scenario: SCENARIO.into(),
                case: format!("  {name} encode+decode, {label}, vs JSON serialize+parse"),
                value: *us,
                unit: "µs/call".into(),
                baseline: Some(json_us),
                ratio: Some(us / json_us),
                target: None,
                met: None,
                detail: Some(json!({
                    "json_bytes": json.len(),
                    "mb_per_s": json.len() as f64 / us,
                    "batches": batches,
                })),
            });
        }
    }
}

/// An operation to time, by name: one call of it per call of the closure.
type Op = (&'static str, Box<dyn FnMut()>);

/// The time per call of each operation, in µs: each is calibrated alone, then they run
/// `batches` batches of about `budget` each, in turns; the fastest batch counts.
fn time_interleaved(ops: &mut [Op], batches: u32, budget: Duration) -> Vec<f64> {
    let iters: Vec<u32> = ops
        .iter_mut()
        .map(|(_, op)| {
            op(); // warm up
            let started = Instant::now();
            let mut calls = 0_u32;
            while started.elapsed() < budget / 10 || calls == 0 {
                op();
                calls += 1;
            }
            let per_call = started.elapsed().as_secs_f64() / f64::from(calls);
            ((budget.as_secs_f64() / per_call) as u32).max(1)
        })
        .collect();
    let mut best = vec![f64::INFINITY; ops.len()];
    for _ in 0..batches {
        for ((_, op), (iters, best)) in ops.iter_mut().zip(iters.iter().zip(&mut best)) {
            let started = Instant::now();
            for _ in 0..*iters {
                op();
            }
            let us = started.elapsed().as_secs_f64() * 1e6 / f64::from(*iters);
            *best = best.min(us);
        }
    }
    best
}

/// A 1 MB session created, loaded and saved through the store with compression, and with
/// compression and encryption; the item read back must be within 400 KB. The store with
/// the codec off is given it too: its refusal (or not) is in the rows' detail.
async fn one_megabyte(report: &mut Report) {
    let table = TestTable::new("bench-codec-1mb").await;
    let schema = ItemSchema::new();
    let data = session(KIB * KIB, 3);
    let json_bytes = to_json(&data).len();
    let mut off_refused = None;
    for (name, codec) in codecs(DEFAULT_COMPRESS_FROM) {
        let store = table.store().with_codec(codec);
        let mut record = Record {
            id: Id::default(),
            data: data.clone(),
            expiry_date: a_day_from_now(),
        };
        if name == "codec off" {
            off_refused = Some(match store.create(&mut record).await {
                Ok(()) => "no: the store wrote it".to_owned(),
                Err(e) => format!("yes: {e}"),
            });
            continue;
        }
        if name == "XChaCha20" {
            continue; // encryption alone does not shrink it
        }
        let outcome = through_store(&store, &schema, &mut record).await;
        let (item_bytes, error) = match &outcome {
            Ok(bytes) => (*bytes, None),
            Err(e) => (0, Some(e.clone())),
        };
        let fits = error.is_none() && item_bytes <= MAX_ITEM_BYTES;
        eprintln!(
            "   1 MB session through the store, {name}: {}",
            match &error {
                None => format!(
                    "created, loaded and saved; the item is {item_bytes} B: {} one 400 KB item",
                    if fits { "fits in" } else { "does NOT fit in" }
                ),
                Some(e) => format!("FAILED: {e}"),
            }
        );
        report.push(Row {
            scenario: SCENARIO.into(),
            case: format!(
                "1 MB session created+loaded+saved through the store, {name}: item bytes vs limit"
            ),
            value: item_bytes as f64,
            unit: "B".into(),
            baseline: Some(MAX_ITEM_BYTES as f64),
            ratio: Some(item_bytes as f64 / MAX_ITEM_BYTES as f64),
            target: Some("<= 400 KB item".into()),
            met: Some(fits),
            detail: Some(json!({
                "json_bytes": json_bytes,
                "error": error,
                "codec_off_refuses_it": off_refused,
            })),
        });
    }
}

/// Creates `record`, loads it (its data must come back whole), saves it changed and
/// loads it again; the item's size as read from the table, or what went wrong.
async fn through_store(
    store: &DynamoStore,
    schema: &ItemSchema,
    record: &mut Record,
) -> Result<usize, String> {
    store
        .create(record)
        .await
        .map_err(|e| format!("create: {e}"))?;
    let mut loaded = store
        .load(&record.id)
        .await
        .map_err(|e| format!("load: {e}"))?
        .ok_or("load: absent")?;
    if loaded.data != record.data {
        return Err("load: the data came back different".into());
    }
    loaded.data.insert("n".into(), json!(1));
    store
        .save(&loaded)
        .await
        .map_err(|e| format!("save: {e}"))?;
    let again = store
        .load(&record.id)
        .await
        .map_err(|e| format!("load after save: {e}"))?
        .ok_or("load after save: absent")?;
    if again.data != loaded.data {
        return Err("load after save: the data came back different".into());
    }
    let key = schema
        .key_for(&record.id.to_string())
        .map_err(|e| e.to_string())?;
    let item = store
        .client()
        .get_item()
        .table_name(store.table_name())
        .key(schema.key_attribute(), AttributeValue::S(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| format!("GetItem: {e}"))?
        .item
        .ok_or("GetItem: no item")?;
    Ok(item_size(&item))
}

/// An item's size as DynamoDB counts it, near enough: names and values (numbers by
/// their text, a slight overestimate).
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    _ => 0,
                }
        })
        .sum()
}

// ----- Realistic session data -----

/// splitmix64: the same pseudo-random values in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// A random token of `len` base64url characters (a CSRF token: incompressible).
    fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..len)
            .map(|_| char::from(ALPHABET[self.below(64) as usize]))
            .collect()
    }
}

const FIRST: &[&str] = &[
    "anna", "ben", "chloe", "david", "emma", "felix", "grace", "hugo", "ines", "jonas", "lena",
    "marco", "nora", "oscar", "paula", "rafael", "sofia", "tom",
];
const LAST: &[&str] = &[
    "schmidt", "martin", "rossi", "garcia", "novak", "jansen", "dubois", "silva", "kowalski",
    "berg", "moreau", "fischer",
];
const LOCALES: &[(&str, &str)] = &[
    ("de-DE", "Europe/Berlin"),
    ("fr-FR", "Europe/Paris"),
    ("en-GB", "Europe/London"),
    ("es-ES", "Europe/Madrid"),
    ("it-IT", "Europe/Rome"),
    ("nl-NL", "Europe/Amsterdam"),
];
const ADJECTIVES: &[&str] = &[
    "slim",
    "relaxed",
    "classic",
    "vintage",
    "lightweight",
    "organic",
    "waterproof",
    "cropped",
    "oversized",
    "essential",
    "stretch",
    "quilted",
];
const COLOURS: &[&str] = &[
    "navy", "black", "white", "olive", "sand", "burgundy", "grey", "sky-blue", "rust", "cream",
];
const MATERIALS: &[&str] = &[
    "linen", "cotton", "wool", "denim", "leather", "cashmere", "fleece", "canvas", "silk",
];
const PRODUCTS: &[&str] = &[
    "shirt", "t-shirt", "jacket", "jeans", "sweater", "hoodie", "sneakers", "boots", "scarf",
    "backpack", "dress", "chinos", "parka", "beanie",
];
const SIZES: &[&str] = &[
    "XS", "S", "M", "L", "XL", "38", "40", "42", "44", "one-size",
];
const CATEGORIES: &[&str] = &[
    "men",
    "women",
    "kids",
    "shoes",
    "accessories",
    "sale",
    "new-in",
];
const FLASH_LEVELS: &[&str] = &["success", "info", "warning"];
const FLASH_WORDS: &[&str] = &[
    "your",
    "order",
    "was",
    "added",
    "to",
    "the",
    "cart",
    "saved",
    "for",
    "later",
    "address",
    "updated",
    "free",
    "shipping",
    "from",
    "voucher",
    "applied",
    "item",
    "is",
    "back",
    "in",
    "stock",
    "size",
    "changed",
    "password",
    "newsletter",
    "confirmed",
    "thank",
    "you",
];

/// A product as a shop keeps it in a session: id, title, slug, price, image and category.
fn product(rng: &mut Rng) -> (u64, String, String, String) {
    let id = 100_000 + rng.below(900_000);
    let title = format!(
        "{} {} {} {}",
        rng.pick(ADJECTIVES),
        rng.pick(COLOURS),
        rng.pick(MATERIALS),
        rng.pick(PRODUCTS)
    );
    let slug = format!("{}-{id}", title.replace(' ', "-"));
    let price = format!(
        "{}.{}",
        9 + rng.below(240),
        rng.pick(&["00", "50", "90", "95", "99"])
    );
    (id, title, slug, price)
}

fn iso_time(epoch: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch).expect("a valid time");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn cart_item(rng: &mut Rng) -> Value {
    let (id, title, _, price) = product(rng);
    json!({
        "product_id": id,
        "sku": format!("{id}-{}", rng.pick(SIZES)),
        "title": title,
        "qty": 1 + rng.below(3),
        "unit_price": price,
        "currency": "EUR",
    })
}

fn viewed_item(rng: &mut Rng, at: i64) -> Value {
    let (id, title, slug, price) = product(rng);
    json!({
        "product_id": id,
        "title": title,
        "url": format!("/p/{slug}"),
        "image": format!("https://cdn.example.com/img/{id}/{}.jpg", 1 + rng.below(4)),
        "price": price,
        "category": rng.pick(CATEGORIES),
        "viewed_at": iso_time(at),
    })
}

/// Words of flash-message text, exactly `len` bytes (ASCII: no escaping in JSON).
fn words(rng: &mut Rng, len: usize) -> String {
    let mut text = String::with_capacity(len + 16);
    while text.len() < len {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(rng.pick(FLASH_WORDS));
    }
    text.truncate(len);
    text
}

/// A realistic session's data whose JSON text is `bytes` long (exactly, from about
/// 120 bytes up): a CSRF token, a counter `n` (the round trips change it), a user profile,
/// and, as far as room allows, a cart (up to 30 lines), recently viewed products (as many
/// as fit) and a flash message filling the rest. `seed` varies the values.
pub(crate) fn session(bytes: usize, seed: u64) -> HashMap<String, Value> {
    let mut rng = Rng(seed);
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    let (locale, tz) = LOCALES[rng.below(LOCALES.len() as u64) as usize];
    let user_id = 10_000 + rng.below(90_000_000);
    let mut data = HashMap::from([
        ("_csrf".to_owned(), json!(rng.token(43))),
        ("n".to_owned(), json!(0)),
        (
            "user".to_owned(),
            json!({"id": user_id, "name": format!("{first} {last}"), "locale": locale}),
        ),
    ]);
    let flash_of = |level: &str, text: &str| json!([{"level": level, "text": text}]);
    let level = rng.pick(FLASH_LEVELS);
    let json_len = |data: &HashMap<String, Value>| serde_json::to_string(data).expect("json").len();
    // The flash message with an empty text: what it costs before its words.
    let flash_min = {
        let mut with = data.clone();
        with.insert("flash".into(), flash_of(level, ""));
        json_len(&with) - json_len(&data) + 16
    };
    if bytes >= 600 {
        // The whole profile, a cart and a history, as long as room is left for the flash.
        let user = data.get_mut("user").expect("the user");
        user["email"] = json!(format!("{first}.{last}@example.com"));
        user["timezone"] = json!(tz);
        user["roles"] = json!(["customer"]);
        user["marketing_opt_in"] = json!(rng.below(2) == 1);
        data.insert(
            "cart".into(),
            json!({"items": [], "coupon": null, "shipping": "standard"}),
        );
        data.insert("recently_viewed".into(), json!([]));
        let mut used = json_len(&data);
        let room = bytes.saturating_sub(flash_min);
        let mut at = 1_748_779_200 + rng.below(86_400 * 30) as i64;
        let mut cart_lines = 0;
        loop {
            let (list, entry) = if cart_lines < 30 && rng.below(4) == 0 {
                ("cart", cart_item(&mut rng))
            } else {
                at += 5 + rng.below(600) as i64;
                ("recently_viewed", viewed_item(&mut rng, at))
            };
            let slot = match list {
                "cart" => &mut data.get_mut("cart").expect("the cart")["items"],
                _ => data.get_mut(list).expect("the list"),
            };
            let items = slot.as_array_mut().expect("an array");
            let grows =
                serde_json::to_string(&entry).expect("json").len() + usize::from(!items.is_empty());
            if used + grows > room {
                break;
            }
            used += grows;
            items.push(entry);
            if list == "cart" {
                cart_lines += 1;
            }
        }
    }
    // The flash message fills what is left, to the byte.
    data.insert("flash".into(), flash_of(level, ""));
    let text = words(&mut rng, bytes.saturating_sub(json_len(&data)));
    data.insert("flash".into(), flash_of(level, &text));
    data
}
