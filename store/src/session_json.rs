//! The frameworks' session maps (tower-sessions' `HashMap<String, Value>`, actix-session's
//! `HashMap<String, String>`) as the JSON text of the data attribute, and back.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, redacted};

/// A framework's session map as JSON, keys in sorted order (a `HashMap` iterates in a
/// random order), so unchanged data always encodes, and fingerprints, the same.
///
/// sonic-rs writes it: the same bytes serde_json writes (checked once per process by
/// [`sonic_writes_serde_json`], and by a property test), with SIMD string escaping, about
/// ten times faster on a 100 KB session. It reserves room for the worst case of escaping
/// first (six bytes per byte of a string), so it writes into a buffer each thread keeps
/// ([`SCRATCH`]), and the text is then copied out at its exact size: a large session
/// costs no fresh, six-times-larger allocation per save, which glibc would map and fault
/// in each time.
pub(crate) fn sorted_json<V: Serialize>(map: &HashMap<String, V>) -> Result<String, Error> {
    let sorted: BTreeMap<&String, &V> = map.iter().collect();
    let with_sonic = sonic_writes_serde_json();
    let encode = |scratch: &mut Vec<u8>| encode_into(scratch, &sorted, with_sonic);
    // Past the thread's end (a save from a thread-local destructor), a buffer of its own.
    SCRATCH
        .try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                let text = encode(&mut scratch);
                if scratch.capacity() > SCRATCH_KEPT_BYTES {
                    *scratch = Vec::new();
                }
                text
            }
            // Never borrowed twice (nothing in here calls back into the store), but a
            // buffer of its own serves if it ever were.
            Err(_) => encode(&mut Vec::new()),
        })
        .unwrap_or_else(|_| encode(&mut Vec::new()))
}

/// `sorted` as JSON text, written into `scratch` (cleared first) and copied out at its
/// exact size: by sonic-rs when `with_sonic`, else by serde_json.
fn encode_into<T: Serialize + ?Sized>(
    scratch: &mut Vec<u8>,
    sorted: &T,
    with_sonic: bool,
) -> Result<String, Error> {
    let encode_error = |e: &dyn fmt::Display| Error::Encode(serde::ser::Error::custom(e));
    scratch.clear();
    if with_sonic {
        sonic_rs::to_writer(&mut *scratch, sorted).map_err(|e| encode_error(&e))?;
    } else {
        serde_json::to_writer(&mut *scratch, sorted).map_err(Error::Encode)?;
    }
    // JSON text of UTF-8 keys and values: valid UTF-8, checked.
    std::str::from_utf8(scratch)
        .map(str::to_owned)
        .map_err(|e| encode_error(&e))
}

/// Whether sonic-rs writes, in this build, the bytes serde_json writes. Features another
/// crate of the application may turn on change that: serde_json's `arbitrary_precision`
/// (numbers become a private struct, which sonic-rs would write as an object) or
/// sonic-rs's `non_trailing_zero` (`1.0` written as `1`). Then saves use serde_json.
/// Decided once per process, on a sample of every kind of value.
fn sonic_writes_serde_json() -> bool {
    static SAME: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SAME.get_or_init(|| {
        let sample = serde_json::json!({
            "int": -1, "big": u64::MAX, "float": 1.0, "small": 2.5e-8, "none": null,
            "text": "\u{1}\"\\/é\u{2028}\u{7f}", "list": [true, [], {"k": {}}],
        });
        let by_sonic = sonic_rs::to_string(&sample).ok();
        by_sonic.is_some() && by_sonic == serde_json::to_string(&sample).ok()
    })
}

/// The most a thread's [`SCRATCH`] buffer keeps between saves (sonic-rs reserves six
/// bytes per string byte: enough for sessions whose largest string is up to about 170 KB);
/// a larger one is freed after its save.
const SCRATCH_KEPT_BYTES: usize = 1 << 20;

thread_local! {
    /// The buffer [`sorted_json`] writes into, kept per thread between saves.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A framework's session map read from its JSON text: what the store wrote, or anything
/// another writer put in the table. serde_json reads it (nesting bounded at 128 levels, so
/// no text overflows the stack; sonic-rs, which writes, was measured reading 1.5x faster
/// but overflowed a 2 MiB thread stack on 129 levels in a debug build). A failure is
/// [`redacted`].
pub(crate) fn parse_session_map<V: DeserializeOwned>(
    json: &str,
) -> Result<HashMap<String, V>, serde_json::Error> {
    serde_json::from_str(json).map_err(redacted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any key: any text, or text of the characters JSON escapes.
    fn json_key() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            any::<String>(),
            "[\\x00-\\x1f\"\\\\/\u{7f}\u{2028}a-z]{0,12}",
        ]
    }

    /// Any JSON value: numbers of every kind, strings of any characters (control
    /// characters, quotes, backslashes, non-ASCII), nested arrays and objects.
    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x1f\"\\\\/\u{7f}\u{2028}a-z]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(json_key(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// The sessions' JSON, written by sonic-rs, is byte for byte what serde_json
        /// writes of the sorted map (so sessions saved by an earlier version keep their
        /// fingerprints), and reads back as a map of the same keys.
        #[test]
        fn session_json_is_serde_json_s_and_round_trips(
            map in proptest::collection::hash_map(json_key(), json_value(), 0..8),
        ) {
            let json = sorted_json(&map).unwrap();
            let sorted: std::collections::BTreeMap<_, _> = map.iter().collect();
            proptest::prop_assert_eq!(&json, &serde_json::to_string(&sorted).unwrap());
            // Reads back as a map of the same keys (the values are serde_json's own
            // reading of serde_json's own text: a float may come back one ulp apart,
            // serde_json's default float parsing, not this writer's).
            let back: HashMap<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
            proptest::prop_assert_eq!(back.keys().collect::<std::collections::BTreeSet<_>>(), map.keys().collect());
        }

        /// Any text another writer may have left: a map or a typed error, never a panic,
        /// and never an error quoting the text.
        #[test]
        fn the_session_reader_is_total_and_never_quotes_the_text(text in "[\\[\\]{}\":,0-9a-z \\\\]{0,40}") {
            if let Err(e) = parse_session_map::<serde_json::Value>(&text) {
                let message = e.to_string();
                proptest::prop_assert!(crate::error::is_redacted(&message), "{}", message);
            }
        }
    }

    #[test]
    fn sonic_rs_is_used_in_this_build_and_both_writers_agree() {
        // No crate of this workspace turns on a feature that changes how numbers are
        // written, so saves go through sonic-rs here (a build where one does falls back).
        assert!(sonic_writes_serde_json());
        let map = HashMap::from([
            ("n".to_owned(), serde_json::json!(1.0)),
            ("s".to_owned(), serde_json::json!("\u{1}\"é")),
        ]);
        let sorted: std::collections::BTreeMap<_, _> = map.iter().collect();
        let by_sonic = encode_into(&mut Vec::new(), &sorted, true).unwrap();
        let by_serde = encode_into(&mut Vec::new(), &sorted, false).unwrap();
        assert_eq!(by_sonic, by_serde);
        assert_eq!(by_sonic, r#"{"n":1.0,"s":"\u0001\"é"}"#);
    }

    #[test]
    fn the_thread_s_buffer_is_kept_for_usual_sessions_and_freed_after_huge_ones() {
        let scratch = || SCRATCH.with(|cell| cell.borrow().capacity());
        let session = |n: usize| HashMap::from([("blob".to_owned(), "x".repeat(n))]);
        let text = sorted_json(&session(100 * 1024)).unwrap();
        assert_eq!(text.len(), 100 * 1024 + 11);
        // Copied out at its exact size; the buffer (six bytes per string byte) is kept.
        assert_eq!(text.capacity(), text.len());
        let kept = scratch();
        assert!((600 * 1024..=SCRATCH_KEPT_BYTES).contains(&kept), "{kept}");
        // Reused, not grown, by the next save of the same size.
        sorted_json(&session(100 * 1024)).unwrap();
        assert_eq!(scratch(), kept);
        // A session too large to keep a buffer for is written whole; the buffer goes.
        let huge = sorted_json(&session(1024 * 1024)).unwrap();
        assert_eq!(huge, format!(r#"{{"blob":"{}"}}"#, "x".repeat(1024 * 1024)));
        assert_eq!(scratch(), 0);
    }

    #[test]
    fn the_session_reader_names_the_fault_never_the_data() {
        for (text, kind) in [
            (r#""secret-token""#, "another shape"),
            (r#"["secret-token"]"#, "another shape"),
            (r#"{"user": "secret-token""#, "truncated"),
            (r#"{"user": secret-token}"#, "not valid JSON"),
            (
                r#"{"user": "secret-token"} trailing-secret"#,
                "not valid JSON",
            ),
        ] {
            let message = parse_session_map::<serde_json::Value>(text)
                .unwrap_err()
                .to_string();
            assert!(message.contains(kind), "{text}: {message}");
            assert!(!message.contains("secret"), "{text}: {message}");
        }
        // actix-session's state: string values only.
        let message = parse_session_map::<String>(r#"{"user": 7}"#)
            .unwrap_err()
            .to_string();
        assert!(message.contains("another shape"), "{message}");
        // Nesting deep enough to overflow a recursive reader's stack is refused.
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_session_map::<serde_json::Value>(&deep).is_err());
        // The deepest session the reader accepts is written back (sonic-rs recurses too),
        // on a test thread's 2 MiB stack, in a debug build.
        let deepest = format!(r#"{{"a":{}{}}}"#, "[".repeat(126), "]".repeat(126));
        let map = parse_session_map::<serde_json::Value>(&deepest).unwrap();
        assert_eq!(sorted_json(&map).unwrap(), deepest);
    }
}
