//! The session item schema: the one place that knows attribute names.
//!
//! A session is one item with three attributes (names configurable, defaults shown):
//!
//! | attribute | type | holds |
//! |-----------|------|-------|
//! | `id`      | S    | key prefix + session id (the table's partition key) |
//! | `expires` | N    | expiry in **epoch seconds**, the unit DynamoDB's native TTL reads |
//! | `data`    | S    | the session data as a JSON object |
//!
//! Every expression the store builds aliases the attribute names (`#k`, `#e`; `data` is a
//! DynamoDB reserved word).
//!
//! Session ids may not start with `!` (after the key prefix): keys that do are left to
//! other tools on the table, so the store never reads or writes them. The sweeper keeps
//! its checkpoint items there.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::Error;

/// DynamoDB's maximum item size: 400 KB, counting attribute names and values.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// DynamoDB's maximum size of a partition key value.
pub const MAX_KEY_BYTES: usize = 2048;

/// Expression alias of the key attribute.
pub(crate) const KEY: &str = "#k";
/// Expression alias of the expiry attribute.
pub(crate) const EXPIRES: &str = "#e";

/// Session ids may not start with this (after the key prefix): such keys are left to
/// other tools on the table; the sweeper keeps its checkpoint items there.
pub(crate) const RESERVED_ID_PREFIX: char = '!';

/// Attribute names and key prefix of session items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemSchema {
    key_attr: String,
    expires_attr: String,
    data_attr: String,
    key_prefix: String,
}

impl Default for ItemSchema {
    fn default() -> Self {
        Self {
            key_attr: "id".into(),
            expires_attr: "expires".into(),
            data_attr: "data".into(),
            key_prefix: String::new(),
        }
    }
}

#[doc(hidden)]
/// A session item read back from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// The session data, a JSON text.
    pub data: String,
    /// Expiry, epoch seconds.
    pub expires: i64,
}

impl ItemSchema {
    /// The default schema: `id`, `expires`, `data`, no key prefix.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the partition key attribute (default `id`).
    pub fn with_key_attribute(mut self, name: impl Into<String>) -> Self {
        self.key_attr = name.into();
        self
    }

    /// Names the expiry attribute, epoch seconds (default `expires`).
    pub fn with_expires_attribute(mut self, name: impl Into<String>) -> Self {
        self.expires_attr = name.into();
        self
    }

    /// Names the data attribute (default `data`).
    pub fn with_data_attribute(mut self, name: impl Into<String>) -> Self {
        self.data_attr = name.into();
        self
    }

    /// Prefixes every key, so sessions can share a table with other items (default none).
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The partition key attribute name.
    pub fn key_attribute(&self) -> &str {
        &self.key_attr
    }

    /// The expiry attribute name.
    pub fn expires_attribute(&self) -> &str {
        &self.expires_attr
    }

    /// The data attribute name.
    pub fn data_attribute(&self) -> &str {
        &self.data_attr
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The schema named by the environment variables that `infra/template.yaml` sets on
    /// the apps and on the sweeper alike, read through `lookup`:
    /// `SESSION_KEY_ATTRIBUTE` (default `id`), `SESSION_EXPIRES_ATTRIBUTE` (`expires`) and
    /// `SESSION_DATA_ATTRIBUTE` (`data`), each trimmed, unset or blank keeping the
    /// default; and `SESSION_KEY_PREFIX` (none), taken exactly as given, since a prefix may
    /// end in a space or a separator. The result is not validated: call
    /// [`ItemSchema::validate`].
    ///
    /// ```
    /// use dynamo_session_store::ItemSchema;
    ///
    /// let schema = ItemSchema::from_lookup(|name| match name {
    ///     "SESSION_EXPIRES_ATTRIBUTE" => Some(" ttl ".to_owned()),
    ///     _ => None,
    /// });
    /// assert_eq!(schema.expires_attribute(), "ttl");
    /// assert_eq!(schema.key_attribute(), "id");
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let name = |var: &str| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut schema = Self::default();
        if let Some(v) = name("SESSION_KEY_ATTRIBUTE") {
            schema.key_attr = v;
        }
        if let Some(v) = name("SESSION_EXPIRES_ATTRIBUTE") {
            schema.expires_attr = v;
        }
        if let Some(v) = name("SESSION_DATA_ATTRIBUTE") {
            schema.data_attr = v;
        }
        if let Some(v) = lookup("SESSION_KEY_PREFIX") {
            schema.key_prefix = v;
        }
        schema
    }

    /// [`ItemSchema::from_lookup`] on the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Checks the schema itself: attribute names non-empty and distinct.
    ///
    /// # Errors
    /// [`Error::InvalidSchema`] naming the problem.
    pub fn validate(&self) -> Result<(), Error> {
        for (what, name) in [
            ("key attribute", &self.key_attr),
            ("expires attribute", &self.expires_attr),
            ("data attribute", &self.data_attr),
        ] {
            if name.is_empty() {
                return Err(Error::InvalidSchema {
                    reason: format!("the {what} name is empty"),
                });
            }
            if name.len() > 255 {
                return Err(Error::InvalidSchema {
                    reason: format!("the {what} name is longer than 255 bytes"),
                });
            }
        }
        if self.key_attr == self.expires_attr
            || self.key_attr == self.data_attr
            || self.expires_attr == self.data_attr
        {
            return Err(Error::InvalidSchema {
                reason: "the key, expires and data attribute names must differ".into(),
            });
        }
        Ok(())
    }

    /// `ExpressionAttributeNames` binding only [`KEY`] and [`EXPIRES`].
    pub(crate) fn key_and_expiry_names(&self) -> HashMap<String, String> {
        HashMap::from([
            (KEY.to_owned(), self.key_attr.clone()),
            (EXPIRES.to_owned(), self.expires_attr.clone()),
        ])
    }

    /// The table key of session `id`: the key prefix followed by the id.
    ///
    /// # Errors
    /// [`Error::InvalidId`] when the id is empty, starts with `!` (reserved), or the
    /// key would exceed [`MAX_KEY_BYTES`].
    pub fn key_for(&self, id: &str) -> Result<String, Error> {
        if id.is_empty() {
            return Err(Error::InvalidId {
                reason: "the id is empty".into(),
            });
        }
        if id.starts_with(RESERVED_ID_PREFIX) {
            return Err(Error::InvalidId {
                reason: format!("ids starting with `{RESERVED_ID_PREFIX}` are reserved"),
            });
        }
        let len = self.key_prefix.len() + id.len();
        if len > MAX_KEY_BYTES {
            return Err(Error::InvalidId {
                reason: format!(
                    "the key would be {len} bytes (prefix included), over DynamoDB's key limit of {MAX_KEY_BYTES} bytes"
                ),
            });
        }
        Ok(format!("{}{id}", self.key_prefix))
    }

    /// The size DynamoDB would count for a session item with this key and data.
    pub fn item_size(&self, key: &str, data_json: &str, expires: i64) -> usize {
        self.key_attr.len()
            + key.len()
            + self.expires_attr.len()
            + number_size(expires)
            + self.data_attr.len()
            + data_json.len()
    }

    #[doc(hidden)]
    /// Builds the item for a session.
    ///
    /// # Errors
    /// [`Error::TooLarge`] when it would exceed [`MAX_ITEM_BYTES`].
    pub fn encode(
        &self,
        key: String,
        data_json: String,
        expires: i64,
    ) -> Result<HashMap<String, AttributeValue>, Error> {
        let size = self.item_size(&key, &data_json, expires);
        if size > MAX_ITEM_BYTES {
            return Err(Error::TooLarge {
                size,
                limit: MAX_ITEM_BYTES,
            });
        }
        Ok(HashMap::from([
            (self.key_attr.clone(), AttributeValue::S(key)),
            (
                self.expires_attr.clone(),
                AttributeValue::N(expires.to_string()),
            ),
            (self.data_attr.clone(), AttributeValue::S(data_json)),
        ]))
    }

    #[doc(hidden)]
    /// Reads a session item.
    ///
    /// # Errors
    /// [`Error::Decode`] naming the attribute that is missing or of the wrong type.
    pub fn decode(&self, mut item: HashMap<String, AttributeValue>) -> Result<StoredItem, Error> {
        let expires = self.expires_of(&item)?;
        let data = match item.remove(&self.data_attr) {
            Some(AttributeValue::S(s)) => s,
            Some(other) => {
                return Err(Error::decode(
                    &self.data_attr,
                    format!("is of type {}, expected S (a JSON text)", type_name(&other)),
                ));
            }
            None => return Err(Error::decode(&self.data_attr, "is missing")),
        };
        Ok(StoredItem { data, expires })
    }

    #[doc(hidden)]
    /// The expiry of an item, epoch seconds.
    ///
    /// # Errors
    /// [`Error::Decode`] when the attribute is missing, not a Number, or not an integer
    /// number of seconds that fits in an `i64`.
    pub fn expires_of(&self, item: &HashMap<String, AttributeValue>) -> Result<i64, Error> {
        match item.get(&self.expires_attr) {
            Some(AttributeValue::N(n)) => parse_epoch_seconds(n).ok_or_else(|| {
                Error::decode(&self.expires_attr, format!("is `{n}`, not epoch seconds"))
            }),
            Some(other) => Err(Error::decode(
                &self.expires_attr,
                format!(
                    "is of type {}, expected N (epoch seconds)",
                    type_name(other)
                ),
            )),
            None => Err(Error::decode(&self.expires_attr, "is missing")),
        }
    }

    #[doc(hidden)]
    /// The key of an item, as a string.
    ///
    /// # Errors
    /// [`Error::Decode`] when the key attribute is missing or not a String.
    pub fn key_of<'a>(&self, item: &'a HashMap<String, AttributeValue>) -> Result<&'a str, Error> {
        match item.get(&self.key_attr) {
            Some(AttributeValue::S(s)) => Ok(s),
            Some(other) => Err(Error::decode(
                &self.key_attr,
                format!("is of type {}, expected S", type_name(other)),
            )),
            None => Err(Error::decode(&self.key_attr, "is missing")),
        }
    }
}

/// Parses a DynamoDB number holding whole epoch seconds (`1700000000`, also `1.7e9`-free
/// decimal forms like `1700000000.0`). Fractions are rejected rather than rounded.
fn parse_epoch_seconds(n: &str) -> Option<i64> {
    let n = n.trim();
    if let Ok(v) = n.parse::<i64>() {
        return Some(v);
    }
    let (int, frac) = n.split_once('.')?;
    if !frac.is_empty() && frac.bytes().all(|b| b == b'0') {
        int.parse().ok()
    } else {
        None
    }
}

/// DynamoDB's size of a number: about one byte per two significant digits, plus one, plus
/// one more for a minus sign.
fn number_size(n: i64) -> usize {
    let digits = n
        .unsigned_abs()
        .to_string()
        .trim_end_matches('0')
        .len()
        .max(1);
    digits.div_ceil(2) + 1 + usize::from(n < 0)
}

#[doc(hidden)]
/// The DynamoDB type tag of a value, for error messages.
pub fn type_name(v: &AttributeValue) -> &'static str {
    match v {
        AttributeValue::B(_) => "B",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::Bs(_) => "BS",
        AttributeValue::L(_) => "L",
        AttributeValue::M(_) => "M",
        AttributeValue::N(_) => "N",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::S(_) => "S",
        AttributeValue::Ss(_) => "SS",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_get_the_prefix_and_reject_bad_ids() {
        let schema = ItemSchema::new().with_key_prefix("app1:");
        assert_eq!(schema.key_for("abc").unwrap(), "app1:abc");
        assert!(matches!(schema.key_for(""), Err(Error::InvalidId { .. })));
        assert!(matches!(
            schema.key_for("!sweeper-checkpoint/0-1of1"),
            Err(Error::InvalidId { .. })
        ));
        let at_limit = "x".repeat(MAX_KEY_BYTES - 5);
        assert!(schema.key_for(&at_limit).is_ok());
        let over = "x".repeat(MAX_KEY_BYTES - 4);
        let err = schema.key_for(&over).unwrap_err().to_string();
        assert!(err.contains("2049 bytes"), "{err}");
    }

    #[test]
    fn encode_decode_round_trip() {
        let schema = ItemSchema::new();
        let item = schema
            .encode("k".into(), r#"{"a":1}"#.into(), 1_700_000_000)
            .unwrap();
        assert_eq!(item["expires"], AttributeValue::N("1700000000".into()));
        let back = schema.decode(item).unwrap();
        assert_eq!(back.data, r#"{"a":1}"#);
        assert_eq!(back.expires, 1_700_000_000);
    }

    #[test]
    fn oversized_items_are_rejected_with_size_and_limit() {
        let schema = ItemSchema::new();
        let err = schema
            .encode("k".into(), "x".repeat(MAX_ITEM_BYTES), 1)
            .unwrap_err();
        match err {
            Error::TooLarge { size, limit } => {
                assert_eq!(limit, MAX_ITEM_BYTES);
                assert!(size > limit);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn malformed_items_name_the_attribute() {
        let schema = ItemSchema::new();
        let mut item = HashMap::from([
            ("id".to_owned(), AttributeValue::S("k".into())),
            ("expires".to_owned(), AttributeValue::S("soon".into())),
            ("data".to_owned(), AttributeValue::S("{}".into())),
        ]);
        let err = schema.decode(item.clone()).unwrap_err().to_string();
        assert!(err.contains("`expires`") && err.contains("type S"), "{err}");
        item.insert("expires".into(), AttributeValue::N("1.5".into()));
        assert!(schema.decode(item.clone()).is_err());
        item.insert("expires".into(), AttributeValue::N("12.000".into()));
        item.insert("data".into(), AttributeValue::N("1".into()));
        let err = schema.decode(item.clone()).unwrap_err().to_string();
        assert!(err.contains("`data`"), "{err}");
        item.remove("data");
        assert!(
            schema
                .decode(item)
                .unwrap_err()
                .to_string()
                .contains("missing")
        );
    }

    #[test]
    fn number_sizes_follow_dynamodb() {
        assert_eq!(number_size(0), 2);
        assert_eq!(number_size(1_700_000_000), 2); // "17" significant digits
        assert_eq!(number_size(1_700_000_123), 6);
        assert_eq!(number_size(-42), 3); // a minus sign costs a byte
        assert_eq!(number_size(-86_399), 5);
    }

    #[test]
    fn schema_validation_names_the_problem() {
        assert!(ItemSchema::new().validate().is_ok());
        let err = ItemSchema::new()
            .with_data_attribute("id")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("must differ"));
        let err = ItemSchema::new()
            .with_expires_attribute("")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("expires attribute"));
    }
}
