//! The table contract: what a session item is, in every tool that reads or writes the
//! table. The store, the sweeper and the tests use it through this public API, and so can
//! your own tools (an export, a migration, an admin script).
//!
//! # A session item
//!
//! One item per session, three attributes (names configurable with [`ItemSchema`],
//! defaults shown):
//!
//! | attribute | type | holds |
//! |-----------|------|-------|
//! | `id`      | S    | [key prefix](ItemSchema::with_key_prefix) + `~` + the session id's hash ([`KeyMode`]): the table's partition key |
//! | `expires` | N    | expiry in **epoch seconds**, the unit DynamoDB's native TTL reads |
//! | `data`    | S or B | the session data: a JSON object as text ([`DATA_TYPE`]), or encoded by the store's [codec](crate::codec) ([`ENCODED_DATA_TYPE`]: a versioned header, then the data compressed and/or encrypted) |
//!
//! An item written by [`DynamoStore::insert`](crate::DynamoStore::insert) (and so by
//! tower-sessions' `create`) also carries a random claim token (`claim`, S), so that a
//! retried insert recognises its own write; later saves drop it.
//!
//! A store told how to find a session's owner ([`DynamoStore::with_owner`](crate::DynamoStore::with_owner))
//! also writes the owner (`owner`, S, [`ItemSchema::with_owner_attribute`]) on items that
//! have one, and only on those: the key of a sparse global secondary index, so that an
//! app can list and revoke one user's sessions ([`crate::owner`]).
//!
//! **The shape**: an item is a session only if its key is a String under the key prefix
//! that is not reserved, and its data attribute is present with type [`DATA_TYPE`] (plain)
//! or [`ENCODED_DATA_TYPE`] (encoded). A table may hold both: items written before a
//! store turned its codec on stay plain until their next save. The sweeper scans and
//! deletes only items of that shape, never decoding the data (it needs no key), and its
//! deletes check again that the data is still there, so items of other applications in a
//! shared table are never touched, whatever their expiry attribute holds.
//!
//! # Keys
//!
//! - The key is the prefix followed by `~` ([`HASHED_KEY_TAG`]) and the base64url SHA-256
//!   of the session id ([`ItemSchema::key_for`], [`KeyMode::Hashed`], the default), so
//!   nothing in the table can be sent back as a cookie; or by the id itself
//!   ([`KeyMode::Plain`], tables written that way), or either while a table moves from
//!   one to the other ([`KeyMode::HashedReadingPlain`]). No id contains `~`.
//! - A non-empty prefix ends with a character that is neither a letter nor a digit
//!   (`app:`, `app#`, `app/`), so that `app:` never matches the keys of `app2:`; it never
//!   contains [`RESERVED_MARKER`].
//! - **Reserved keys** are `prefix + '!' + name` ([`ItemSchema::reserved_key`]). They are
//!   left to other tools on the table; the sweeper keeps its checkpoints there. No
//!   session key contains `!`: ids containing it are refused, so no id, under any prefix
//!   or none, can equal any deployment's reserved key.
//! - A key is at most [`MAX_KEY_BYTES`].
//!
//! # Expiry
//!
//! Expiries are whole epoch seconds, read with [`ItemSchema::expires_of`] and judged by
//! [`Expiry::classify`] against a cutoff: [`Expiry::Expired`] (below it),
//! [`Expiry::Live`], [`Expiry::EpochMillis`] (from [`EPOCH_MILLIS_FROM`] up: as seconds
//! they would be past the year 5000, as milliseconds they are after March 1973; the Node
//! package this crate succeeds wrote those, and DynamoDB's TTL ignores them) and
//! [`Expiry::FarFuture`] (more than [`FAR_FUTURE_SECONDS`] after the cutoff). An expiry
//! that is missing or not a whole number is not epoch seconds at all: `expires_of`
//! returns [`Error::Decode`] naming it. The store reads an expired session as absent and
//! an epoch-milliseconds one as malformed; the sweeper deletes only expired sessions and
//! counts the others.
//!
//! # Expressions
//!
//! Every expression aliases the attribute names, [`KEY_ALIAS`], [`EXPIRES_ALIAS`] and
//! [`DATA_ALIAS`] (`data` is a DynamoDB reserved word): [`ItemSchema::expression_names`].
//!
//! # Size
//!
//! An item is at most [`MAX_ITEM_BYTES`] as DynamoDB counts it, attribute names included
//! ([`ItemSchema::item_size`]); [`ItemSchema::encode`] refuses a larger one.
//!
//! ```
//! use dynamo_session_store::schema::{Expiry, ItemSchema};
//!
//! let schema = ItemSchema::new().with_key_prefix("app1:");
//! let item = schema.encode(schema.key_for("abc")?, r#"{"n":1}"#, 1_700_000_000)?;
//! assert!(schema.is_session(&item));
//! let expires = schema.expires_of(&item)?;
//! assert_eq!(Expiry::classify(expires, 1_800_000_000), Expiry::Expired);
//! assert_eq!(schema.decode(item)?.data, r#"{"n":1}"#);
//!
//! assert!(schema.key_for("a!b").is_err()); // `!` is reserved
//! assert_eq!(schema.reserved_key("sweeper-checkpoint/0-8of8")?, "app1:!sweeper-checkpoint/0-8of8");
//! # Ok::<(), dynamo_session_store::Error>(())
//! ```

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::Error;

/// One DynamoDB item, as the SDK gives and takes it.
pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB's maximum item size: 400 KB, counting attribute names and values.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// DynamoDB's maximum size of a partition key value.
pub const MAX_KEY_BYTES: usize = 2048;

/// DynamoDB's maximum length of an attribute name.
pub const MAX_ATTRIBUTE_NAME_BYTES: usize = 255;

/// Expression alias of the key attribute.
pub const KEY_ALIAS: &str = "#k";
/// Expression alias of the expiry attribute.
pub const EXPIRES_ALIAS: &str = "#e";
/// Expression alias of the data attribute.
pub const DATA_ALIAS: &str = "#d";

/// The DynamoDB type of a session's plain data attribute: `S`, a JSON text.
pub const DATA_TYPE: &str = "S";

/// The DynamoDB type of a session's encoded data attribute: `B`, a versioned header and
/// the data compressed and/or encrypted ([`crate::codec`]).
pub const ENCODED_DATA_TYPE: &str = "B";

/// A session's data as it is stored: a JSON text, or bytes encoded by a codec.
///
/// Its `Debug` shows the form and the length, never the content.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoredData {
    /// [`DATA_TYPE`]: the data as a JSON text.
    Json(String),
    /// [`ENCODED_DATA_TYPE`]: the data encoded by a codec ([`crate::codec`]).
    Encoded(Vec<u8>),
}

impl StoredData {
    /// The bytes of the value, as DynamoDB counts them.
    pub fn len(&self) -> usize {
        match self {
            StoredData::Json(s) => s.len(),
            StoredData::Encoded(b) => b.len(),
        }
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The JSON text of plain data; `None` for encoded data.
    pub fn as_json(&self) -> Option<&str> {
        match self {
            StoredData::Json(s) => Some(s),
            StoredData::Encoded(_) => None,
        }
    }

    /// The attribute value that stores it.
    pub fn to_attribute(&self) -> AttributeValue {
        self.clone().into_attribute()
    }

    /// The attribute value that stores it.
    pub fn into_attribute(self) -> AttributeValue {
        match self {
            StoredData::Json(s) => AttributeValue::S(s),
            StoredData::Encoded(b) => AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b)),
        }
    }
}

impl From<String> for StoredData {
    fn from(json: String) -> Self {
        StoredData::Json(json)
    }
}

impl From<&str> for StoredData {
    fn from(json: &str) -> Self {
        StoredData::Json(json.to_owned())
    }
}

/// Plain data equals its JSON text; encoded data equals no text.
impl PartialEq<str> for StoredData {
    fn eq(&self, other: &str) -> bool {
        self.as_json() == Some(other)
    }
}

impl PartialEq<&str> for StoredData {
    fn eq(&self, other: &&str) -> bool {
        self.as_json() == Some(*other)
    }
}

impl std::fmt::Debug for StoredData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoredData::Json(s) => write!(f, "Json({} bytes)", s.len()),
            StoredData::Encoded(b) => write!(f, "Encoded({} bytes)", b.len()),
        }
    }
}

/// The character that marks reserved keys: `prefix + '!' + name`. No session key
/// contains it.
pub const RESERVED_MARKER: char = '!';

/// Expiries from here up look like epoch **milliseconds**: as seconds they would be past
/// the year 5000, as milliseconds they are after March 1973.
pub const EPOCH_MILLIS_FROM: i64 = 100_000_000_000;

/// Expiries more than this after a cutoff (ten years) are [`Expiry::FarFuture`].
pub const FAR_FUTURE_SECONDS: i64 = 10 * 366 * 86_400;

/// The default name of the claim token attribute (see [`ItemSchema::with_claim_attribute`]).
pub const DEFAULT_CLAIM_ATTRIBUTE: &str = "claim";

/// What starts the id part of a hashed key: `prefix + "~" + hash`. Neither
/// tower-sessions' ids (base64url) nor actix-session's (alphanumeric) contain it, so no
/// session id written plain by an earlier version starts with it.
pub const HASHED_KEY_TAG: char = '~';

/// How session ids become table keys ([`ItemSchema::with_key_mode`]).
///
/// A hashed key is `prefix + "~" + base64url(SHA-256("dynamo-session-store/id/v1\0" +
/// id))`, 44 characters after the prefix: one-way, so nothing in the table (an export, a
/// backup, a stream, a role that can `Scan`) can be sent back as a cookie. SHA-256
/// without a secret, because the ids it hides are unguessable by construction (128 bits
/// from tower-sessions, 381 from actix-session, and the core API's ids must be too: an
/// id one can guess can be replayed without reading any table); a keyed hash would add a
/// secret to deploy and rotate, and rotating it would end every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyMode {
    /// Keys are hashed ids (the default).
    #[default]
    Hashed,
    /// Keys are the ids themselves, as written by version 0.2 and earlier: for a table
    /// that stays that way. Anyone who can read the table can replay its sessions.
    Plain,
    /// The migration window from [`KeyMode::Plain`]: writes hashed keys; a session not
    /// found under its hashed key is looked up under its plain key and, if live, moved
    /// to its hashed key (written, then the plain item deleted), so an upgrade logs
    /// nobody out. Deletes remove both. Run it for one session lifetime, then switch to
    /// [`KeyMode::Hashed`]; plain items left by then have expired.
    HashedReadingPlain,
}

impl KeyMode {
    /// Parses `hashed`, `plain` or `hashed-reading-plain` (the values of
    /// `SESSION_KEY_MODE`).
    ///
    /// # Errors
    /// [`Error::InvalidSchema`] naming the value and the accepted ones.
    pub fn parse(value: &str) -> Result<Self, Error> {
        match value.trim() {
            "hashed" => Ok(KeyMode::Hashed),
            "plain" => Ok(KeyMode::Plain),
            "hashed-reading-plain" => Ok(KeyMode::HashedReadingPlain),
            other => Err(Error::InvalidSchema {
                reason: format!(
                    "the key mode `{other}` is none of `hashed`, `plain`, `hashed-reading-plain`"
                ),
            }),
        }
    }
}

/// The bytes a hashed id takes in a key: the tag and 43 base64url characters.
pub const HASHED_KEY_BYTES: usize = 44;

/// The domain-separation prefix of the hashed key's input.
const KEY_HASH_DOMAIN: &[u8] = b"dynamo-session-store/id/v1\0";

/// The length of the claim token an insert writes (16 hexadecimal characters).
pub const CLAIM_TOKEN_BYTES: usize = 16;

/// The default name of the owner attribute (see [`ItemSchema::with_owner_attribute`]).
pub const DEFAULT_OWNER_ATTRIBUTE: &str = "owner";

/// Expression alias of the owner attribute.
pub const OWNER_ALIAS: &str = "#o";

/// How a stored expiry (epoch seconds) stands against a cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expiry {
    /// Below the cutoff: the session is over.
    Expired,
    /// At or after the cutoff, and plausible as epoch seconds.
    Live,
    /// [`EPOCH_MILLIS_FROM`] or more: epoch milliseconds, not seconds. DynamoDB's TTL
    /// ignores it, the store reads it as malformed, and the sweeper never deletes it.
    EpochMillis,
    /// More than [`FAR_FUTURE_SECONDS`] after the cutoff, yet below
    /// [`EPOCH_MILLIS_FROM`]: a session that lives on, but suspicious in bulk.
    FarFuture,
}

impl Expiry {
    /// Classifies `expires` (epoch seconds) against `cutoff`: [`Expiry::Expired`] when
    /// `expires < cutoff`. The store reads a session as expired at `now` when
    /// `expires <= now`, that is with `cutoff = now + 1`; the sweeper uses
    /// `now - grace`. Total: never panics, whatever the values.
    pub fn classify(expires: i64, cutoff: i64) -> Self {
        if expires < cutoff {
            Expiry::Expired
        } else if expires >= EPOCH_MILLIS_FROM {
            Expiry::EpochMillis
        } else if expires > cutoff.saturating_add(FAR_FUTURE_SECONDS) {
            Expiry::FarFuture
        } else {
            Expiry::Live
        }
    }
}

/// A session item read back from the table ([`ItemSchema::decode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionItem {
    /// The session data as stored: plain JSON, or encoded (decode it with the store's
    /// [`Codec`](crate::codec::Codec)).
    pub data: StoredData,
    /// Expiry, epoch seconds.
    pub expires: i64,
    /// The owner, when the item has a String owner attribute.
    pub owner: Option<String>,
}

/// The attribute names and key prefix of session items: the configurable part of the
/// contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemSchema {
    key_attr: String,
    expires_attr: String,
    data_attr: String,
    claim_attr: String,
    owner_attr: String,
    key_prefix: String,
    key_mode: KeyMode,
    /// A `SESSION_KEY_MODE` that did not parse: [`ItemSchema::validate`] refuses it.
    bad_key_mode: Option<String>,
}

impl Default for ItemSchema {
    fn default() -> Self {
        Self {
            key_attr: "id".into(),
            expires_attr: "expires".into(),
            data_attr: "data".into(),
            claim_attr: DEFAULT_CLAIM_ATTRIBUTE.into(),
            owner_attr: DEFAULT_OWNER_ATTRIBUTE.into(),
            key_prefix: String::new(),
            key_mode: KeyMode::Hashed,
            bad_key_mode: None,
        }
    }
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

    /// Names the claim token attribute that inserts write (default `claim`).
    pub fn with_claim_attribute(mut self, name: impl Into<String>) -> Self {
        self.claim_attr = name.into();
        self
    }

    /// Names the owner attribute, the key of the owner index (default `owner`).
    pub fn with_owner_attribute(mut self, name: impl Into<String>) -> Self {
        self.owner_attr = name.into();
        self
    }

    /// Prefixes every key, so sessions can share a table with other items (default none).
    /// A non-empty prefix must end with a character that is neither a letter nor a digit
    /// and must not contain `!` ([`validate`](Self::validate) checks it).
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How session ids become keys (default [`KeyMode::Hashed`]).
    pub fn with_key_mode(mut self, mode: KeyMode) -> Self {
        self.key_mode = mode;
        self.bad_key_mode = None;
        self
    }

    /// The key mode.
    pub fn key_mode(&self) -> KeyMode {
        self.key_mode
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

    /// The claim token attribute name.
    pub fn claim_attribute(&self) -> &str {
        &self.claim_attr
    }

    /// The owner attribute name.
    pub fn owner_attribute(&self) -> &str {
        &self.owner_attr
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The schema named by the environment variables that `infra/template.yaml` sets on
    /// the apps and on the sweeper alike, read through `lookup`:
    /// `SESSION_KEY_ATTRIBUTE` (default `id`), `SESSION_EXPIRES_ATTRIBUTE` (`expires`),
    /// `SESSION_DATA_ATTRIBUTE` (`data`) and `SESSION_OWNER_ATTRIBUTE` (`owner`), each trimmed, unset or blank keeping the
    /// default; and `SESSION_KEY_PREFIX` (none), taken exactly as given, since a prefix may
    /// end in a space or a separator; and `SESSION_KEY_MODE` (`hashed`, the default;
    /// `plain`; `hashed-reading-plain`: [`KeyMode`]). The result is not validated: call
    /// [`ItemSchema::validate`], which refuses a key mode it could not read.
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
        if let Some(v) = name("SESSION_OWNER_ATTRIBUTE") {
            schema.owner_attr = v;
        }
        if let Some(v) = lookup("SESSION_KEY_PREFIX") {
            schema.key_prefix = v;
        }
        if let Some(v) = name("SESSION_KEY_MODE") {
            match KeyMode::parse(&v) {
                Ok(mode) => schema.key_mode = mode,
                Err(_) => schema.bad_key_mode = Some(v),
            }
        }
        schema
    }

    /// [`ItemSchema::from_lookup`] on the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Checks the schema itself: attribute names non-empty, at most 255 bytes and
    /// distinct; the key prefix empty, or ending with a character that is neither a
    /// letter nor a digit, without `!`, and leaving room for an id under
    /// [`MAX_KEY_BYTES`].
    ///
    /// # Errors
    /// [`Error::InvalidSchema`] naming the problem.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: String| Err(Error::InvalidSchema { reason });
        if let Some(mode) = &self.bad_key_mode {
            return KeyMode::parse(mode).map(drop);
        }
        let names = [
            ("key attribute", &self.key_attr),
            ("expires attribute", &self.expires_attr),
            ("data attribute", &self.data_attr),
            ("claim attribute", &self.claim_attr),
            ("owner attribute", &self.owner_attr),
        ];
        for (what, name) in names {
            if name.is_empty() {
                return invalid(format!("the {what} name is empty"));
            }
            if name.len() > MAX_ATTRIBUTE_NAME_BYTES {
                return invalid(format!(
                    "the {what} name is longer than {MAX_ATTRIBUTE_NAME_BYTES} bytes"
                ));
            }
        }
        for (i, (what, name)) in names.iter().enumerate() {
            if let Some((other, _)) = names[i + 1..].iter().find(|(_, n)| n == name) {
                return invalid(format!(
                    "the {what} and the {other} are both named `{name}`; the key, expires, \
                     data, claim and owner attribute names must differ"
                ));
            }
        }
        let prefix = &self.key_prefix;
        if prefix.contains(RESERVED_MARKER) {
            return invalid(format!(
                "the key prefix `{prefix}` contains `{RESERVED_MARKER}`, which marks reserved keys"
            ));
        }
        if prefix.chars().last().is_some_and(char::is_alphanumeric) {
            return invalid(format!(
                "the key prefix `{prefix}` ends with a letter or digit, so it would also match \
                 the keys of `{prefix}2…`; end it with a separator such as `{prefix}:`"
            ));
        }
        let hashed = self.key_mode != KeyMode::Plain;
        if hashed && prefix.len() + HASHED_KEY_BYTES > MAX_KEY_BYTES {
            return invalid(format!(
                "the key prefix is {} bytes: with a hashed id ({HASHED_KEY_BYTES} bytes) the key \
                 would exceed DynamoDB's key limit of {MAX_KEY_BYTES} bytes",
                prefix.len()
            ));
        }
        if prefix.len() >= MAX_KEY_BYTES {
            return invalid(format!(
                "the key prefix is {} bytes, leaving no room for an id under DynamoDB's key \
                 limit of {MAX_KEY_BYTES} bytes",
                prefix.len()
            ));
        }
        Ok(())
    }

    /// `ExpressionAttributeNames` binding [`KEY_ALIAS`], [`EXPIRES_ALIAS`] and
    /// [`DATA_ALIAS`] to this schema's names (an unused one is refused by DynamoDB, so
    /// take what an expression uses with [`HashMap::retain`] or build your own).
    pub fn expression_names(&self) -> HashMap<String, String> {
        HashMap::from([
            (KEY_ALIAS.to_owned(), self.key_attr.clone()),
            (EXPIRES_ALIAS.to_owned(), self.expires_attr.clone()),
            (DATA_ALIAS.to_owned(), self.data_attr.clone()),
        ])
    }

    /// `ExpressionAttributeNames` binding only [`KEY_ALIAS`] and [`EXPIRES_ALIAS`].
    pub(crate) fn key_and_expiry_names(&self) -> HashMap<String, String> {
        let mut names = self.expression_names();
        names.remove(DATA_ALIAS);
        names
    }

    /// The table key of session `id`: the key prefix followed by the id's hash
    /// ([`KeyMode::Hashed`], [`KeyMode::HashedReadingPlain`]) or by the id itself
    /// ([`KeyMode::Plain`]).
    ///
    /// # Errors
    /// [`Error::InvalidId`] when the id is empty, contains `!` (the reserved marker) or
    /// `~` ([`HASHED_KEY_TAG`]), or the prefix and the id together would exceed
    /// [`MAX_KEY_BYTES`] (in every mode, so that what is accepted does not depend on the
    /// mode).
    pub fn key_for(&self, id: &str) -> Result<String, Error> {
        self.check_id(id)?;
        Ok(match self.key_mode {
            KeyMode::Plain => format!("{}{id}", self.key_prefix),
            KeyMode::Hashed | KeyMode::HashedReadingPlain => self.hashed_key(id),
        })
    }

    /// The key session `id` had before hashing, where the key mode still reads it
    /// ([`KeyMode::HashedReadingPlain`]): `None` in the other modes and for an id that is
    /// not valid (ids never contain [`HASHED_KEY_TAG`], so no plain key is another
    /// session's hashed key: a hash read from the table cannot be sent back as a cookie).
    pub fn plain_key_for(&self, id: &str) -> Option<String> {
        (self.key_mode == KeyMode::HashedReadingPlain && self.check_id(id).is_ok())
            .then(|| format!("{}{id}", self.key_prefix))
    }

    /// A key as logs may show it: the first characters of the hash, or of a plain id
    /// (never more than 7), with the prefix left out.
    pub fn log_label(&self, key: &str) -> String {
        let rest = key.strip_prefix(self.key_prefix.as_str()).unwrap_or(key);
        let shown = if rest.starts_with(HASHED_KEY_TAG) {
            7
        } else {
            4
        };
        let label: String = rest.chars().take(shown).collect();
        format!("{label}…")
    }

    fn check_id(&self, id: &str) -> Result<(), Error> {
        let invalid = |reason: String| Err(Error::InvalidId { reason });
        if id.is_empty() {
            return invalid("the id is empty".into());
        }
        if id.contains(RESERVED_MARKER) {
            return invalid(format!(
                "ids containing `{RESERVED_MARKER}` are reserved (it marks the keys of other \
                 tools on the table, such as the sweeper's checkpoints)"
            ));
        }
        // In every mode: a hashed key read from the table (its part after the prefix) is
        // never an id, so it cannot be sent back as one, whatever the mode.
        if id.contains(HASHED_KEY_TAG) {
            return invalid(format!(
                "ids containing `{HASHED_KEY_TAG}` are reserved (it marks hashed keys)"
            ));
        }
        let len = self.key_prefix.len() + id.len();
        if len > MAX_KEY_BYTES {
            return invalid(format!(
                "the key would be {len} bytes (prefix included), over DynamoDB's key limit of \
                 {MAX_KEY_BYTES} bytes"
            ));
        }
        Ok(())
    }

    fn hashed_key(&self, id: &str) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        hasher.update(KEY_HASH_DOMAIN);
        hasher.update(id.as_bytes());
        let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.finalize());
        format!("{}{HASHED_KEY_TAG}{hash}", self.key_prefix)
    }

    /// The reserved key `name` of this schema's prefix: `prefix + '!' + name`. No session
    /// key equals it, so a tool can keep its own items there (the sweeper keeps its
    /// checkpoints under `!sweeper-checkpoint/`).
    ///
    /// # Errors
    /// [`Error::InvalidId`] when `name` is empty or the key would exceed
    /// [`MAX_KEY_BYTES`].
    pub fn reserved_key(&self, name: &str) -> Result<String, Error> {
        let key = format!("{}{RESERVED_MARKER}{name}", self.key_prefix);
        if name.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(Error::InvalidId {
                reason: format!(
                    "a reserved key's name must be 1 to {} bytes",
                    MAX_KEY_BYTES - self.key_prefix.len() - 1
                ),
            });
        }
        Ok(key)
    }

    /// Whether `key` is one of this prefix's reserved keys.
    pub fn is_reserved_key(&self, key: &str) -> bool {
        key.strip_prefix(self.key_prefix.as_str())
            .is_some_and(|rest| rest.starts_with(RESERVED_MARKER))
    }

    /// Whether `key` can be a session key of this schema: under the prefix, with a
    /// non-empty id that holds no `!`.
    pub fn owns_key(&self, key: &str) -> bool {
        key.strip_prefix(self.key_prefix.as_str())
            .is_some_and(|id| !id.is_empty() && !id.contains(RESERVED_MARKER))
    }

    /// Whether `item` has the session shape: an owned String key and a data attribute of
    /// type [`DATA_TYPE`] or [`ENCODED_DATA_TYPE`]. The expiry is judged separately
    /// ([`ItemSchema::expires_of`]).
    pub fn is_session(&self, item: &Item) -> bool {
        self.key_of(item).is_ok_and(|key| self.owns_key(key))
            && matches!(
                item.get(&self.data_attr),
                Some(AttributeValue::S(_) | AttributeValue::B(_))
            )
    }

    /// The size DynamoDB would count for a session item with this key and data (and no
    /// owner: add [`owner_size`](Self::owner_size) for one). `data_bytes` is the stored
    /// data's length ([`StoredData::len`]: the JSON text, or the encoded bytes).
    pub fn item_size(&self, key: &str, data_bytes: usize, expires: i64) -> usize {
        self.key_attr.len()
            + key.len()
            + self.expires_attr.len()
            + number_size(expires)
            + self.data_attr.len()
            + data_bytes
    }

    /// What an owner attribute holding `owner` adds to an item's size.
    pub fn owner_size(&self, owner: &str) -> usize {
        self.owner_attr.len() + owner.len()
    }

    /// Builds the item of a session: `key` (from [`key_for`](Self::key_for)), its data
    /// (a JSON `String`, or [`StoredData`] already encoded) and its expiry in epoch
    /// seconds.
    ///
    /// # Errors
    /// [`Error::TooLarge`] when it would exceed [`MAX_ITEM_BYTES`].
    pub fn encode(
        &self,
        key: String,
        data: impl Into<StoredData>,
        expires: i64,
    ) -> Result<Item, Error> {
        self.encode_owned(key, data, expires, None)
    }

    /// [`encode`](Self::encode), with the owner attribute when `owner` is given (an
    /// owner is a non-empty String; the store checks it with
    /// [`crate::owner::check_owner`] first).
    ///
    /// # Errors
    /// [`Error::TooLarge`] when it would exceed [`MAX_ITEM_BYTES`].
    pub fn encode_owned(
        &self,
        key: String,
        data: impl Into<StoredData>,
        expires: i64,
        owner: Option<String>,
    ) -> Result<Item, Error> {
        self.encode_with_room(key, data.into(), expires, owner, 0)
    }

    /// What the claim token an insert adds costs an item: its name and its 16 characters.
    pub fn claim_size(&self) -> usize {
        self.claim_attr.len() + CLAIM_TOKEN_BYTES
    }

    /// [`encode_owned`](Self::encode_owned), leaving `room` bytes under the limit for
    /// attributes added afterwards (an insert's claim token).
    pub(crate) fn encode_with_room(
        &self,
        key: String,
        data: StoredData,
        expires: i64,
        owner: Option<String>,
        room: usize,
    ) -> Result<Item, Error> {
        let size = self.item_size(&key, data.len(), expires)
            + owner.as_deref().map_or(0, |o| self.owner_size(o))
            + room;
        if size > MAX_ITEM_BYTES {
            return Err(Error::TooLarge {
                size,
                limit: MAX_ITEM_BYTES,
            });
        }
        let mut item = HashMap::with_capacity(4);
        item.insert(self.key_attr.clone(), AttributeValue::S(key));
        item.insert(
            self.expires_attr.clone(),
            AttributeValue::N(expires.to_string()),
        );
        item.insert(self.data_attr.clone(), data.into_attribute());
        if let Some(owner) = owner {
            item.insert(self.owner_attr.clone(), AttributeValue::S(owner));
        }
        Ok(item)
    }

    /// Reads a session item: its data as stored (not decoded, not parsed) and its expiry.
    ///
    /// # Errors
    /// [`Error::Decode`] naming the attribute that is missing or of the wrong type.
    pub fn decode(&self, mut item: Item) -> Result<SessionItem, Error> {
        let expires = self.expires_of(&item)?;
        let data = match item.remove(&self.data_attr) {
            Some(AttributeValue::S(s)) => StoredData::Json(s),
            Some(AttributeValue::B(b)) => StoredData::Encoded(b.into_inner()),
            Some(other) => {
                return Err(Error::decode(
                    &self.data_attr,
                    format!(
                        "is of type {}, expected {DATA_TYPE} (a JSON text) or \
                         {ENCODED_DATA_TYPE} (encoded data)",
                        attribute_type(&other)
                    ),
                ));
            }
            None => return Err(Error::decode(&self.data_attr, "is missing")),
        };
        let owner = match item.remove(&self.owner_attr) {
            Some(AttributeValue::S(s)) => Some(s),
            _ => None,
        };
        Ok(SessionItem {
            data,
            expires,
            owner,
        })
    }

    /// The expiry of an item, epoch seconds. Classify it with [`Expiry::classify`].
    ///
    /// # Errors
    /// [`Error::Decode`] when the attribute is missing, not a Number, or not a whole
    /// number of seconds that fits in an `i64`.
    pub fn expires_of(&self, item: &Item) -> Result<i64, Error> {
        match item.get(&self.expires_attr) {
            Some(AttributeValue::N(n)) => parse_epoch_seconds(n).ok_or_else(|| {
                Error::decode(&self.expires_attr, format!("is `{n}`, not epoch seconds"))
            }),
            Some(other) => Err(Error::decode(
                &self.expires_attr,
                format!(
                    "is of type {}, expected N (epoch seconds)",
                    attribute_type(other)
                ),
            )),
            None => Err(Error::decode(&self.expires_attr, "is missing")),
        }
    }

    /// The key of an item, as a string.
    ///
    /// # Errors
    /// [`Error::Decode`] when the key attribute is missing or not a String.
    pub fn key_of<'a>(&self, item: &'a Item) -> Result<&'a str, Error> {
        match item.get(&self.key_attr) {
            Some(AttributeValue::S(s)) => Ok(s),
            Some(other) => Err(Error::decode(
                &self.key_attr,
                format!("is of type {}, expected S", attribute_type(other)),
            )),
            None => Err(Error::decode(&self.key_attr, "is missing")),
        }
    }
}

/// Parses a DynamoDB number holding whole epoch seconds (`1700000000`, also decimal forms
/// like `1700000000.0`). Fractions are rejected rather than rounded.
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

/// The DynamoDB type tag of a value (`S`, `N`, `M`, …), for messages about items.
pub fn attribute_type(v: &AttributeValue) -> &'static str {
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
    fn hashed_keys_are_one_way_tagged_and_never_a_plain_key() {
        let schema = ItemSchema::new().with_key_prefix("app1:");
        let key = schema.key_for("abc").unwrap();
        // SHA-256 of the domain and the id, base64url: 43 characters after the tag.
        assert!(
            key.starts_with("app1:~") && key.len() == "app1:~".len() + 43,
            "{key}"
        );
        assert!(!key.contains("abc"));
        assert_eq!(key, schema.key_for("abc").unwrap());
        assert_ne!(key, schema.key_for("abd").unwrap());
        assert!(schema.owns_key(&key) && !schema.is_reserved_key(&key));
        // A known answer: other tools (infra/tests/e2e.py) derive the same key.
        assert_eq!(
            ItemSchema::new().key_for("abc").unwrap(),
            "~RLYnbn8YVlfMG7u8MXkAFex8r4Z3dHfGN8a2rVhgySI"
        );
        // No plain lookup outside the migration window.
        assert_eq!(schema.plain_key_for("abc"), None);
        let migrating = schema.clone().with_key_mode(KeyMode::HashedReadingPlain);
        assert_eq!(migrating.key_for("abc").unwrap(), key);
        assert_eq!(migrating.plain_key_for("abc").unwrap(), "app1:abc");
        // A hash read from the table and sent back as an id never reaches its item.
        let sent_back = key.strip_prefix("app1:").unwrap();
        assert_eq!(migrating.plain_key_for(sent_back), None);
        for mode in [KeyMode::Hashed, KeyMode::Plain, KeyMode::HashedReadingPlain] {
            let err = schema.clone().with_key_mode(mode).key_for(sent_back);
            assert!(matches!(err, Err(Error::InvalidId { .. })), "{mode:?}");
            assert!(schema.clone().with_key_mode(mode).key_for("a~b").is_err());
        }
        // A prefix leaves room for the hashed id.
        let long = format!("{}:", "p".repeat(MAX_KEY_BYTES - HASHED_KEY_BYTES));
        assert!(
            ItemSchema::new()
                .with_key_prefix(long.clone())
                .validate()
                .is_err()
        );
        assert!(
            ItemSchema::new()
                .with_key_prefix(&long[1..])
                .validate()
                .is_ok()
        );
        // Logs show the tag and six characters of the hash, never the id.
        let label = schema.log_label(&key);
        assert_eq!(label.chars().count(), 8, "{label}");
        assert!(key[5..].starts_with(label.trim_end_matches('…')));
        assert_eq!(ItemSchema::new().log_label("Kq2mS0b0cXy9"), "Kq2m…");
    }

    #[test]
    fn key_modes_parse_from_the_environment_and_refuse_typos() {
        let schema = ItemSchema::from_lookup(|var| {
            (var == "SESSION_KEY_MODE").then(|| " hashed-reading-plain ".to_owned())
        });
        assert_eq!(schema.key_mode(), KeyMode::HashedReadingPlain);
        let typo =
            ItemSchema::from_lookup(|var| (var == "SESSION_KEY_MODE").then(|| "plian".into()));
        let err = typo.validate().unwrap_err().to_string();
        assert!(err.contains("`plian`") && err.contains("`plain`"), "{err}");
        assert_eq!(ItemSchema::new().key_mode(), KeyMode::Hashed);
    }

    #[test]
    fn keys_get_the_prefix_and_reject_bad_ids() {
        let schema = ItemSchema::new()
            .with_key_prefix("app1:")
            .with_key_mode(KeyMode::Plain);
        assert_eq!(schema.key_for("abc").unwrap(), "app1:abc");
        assert!(matches!(schema.key_for(""), Err(Error::InvalidId { .. })));
        for reserved in [
            "!sweeper-checkpoint/0-1of1",
            "p:!sweeper-checkpoint/0-8of8",
            "a!",
        ] {
            assert!(
                matches!(schema.key_for(reserved), Err(Error::InvalidId { .. })),
                "{reserved}"
            );
        }
        // With no prefix too: no id equals another deployment's reserved key.
        let err = ItemSchema::new()
            .key_for("p:!sweeper-checkpoint/0-8of8")
            .unwrap_err()
            .to_string();
        assert!(err.contains("reserved"), "{err}");
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
            .encode("k".into(), r#"{"a":1}"#, 1_700_000_000)
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
    fn prefixes_end_with_a_separator_and_hold_no_marker() {
        for ok in ["", "app:", "app#", "a/", "app1 ", "p-"] {
            assert!(
                ItemSchema::new().with_key_prefix(ok).validate().is_ok(),
                "{ok}"
            );
        }
        let err = ItemSchema::new()
            .with_key_prefix("app")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("`app:`"), "{err}");
        assert!(
            ItemSchema::new()
                .with_key_prefix("app2")
                .validate()
                .is_err()
        );
        assert!(
            ItemSchema::new()
                .with_key_prefix("a!b:")
                .validate()
                .is_err()
        );
        let long = format!("{}:", "x".repeat(MAX_KEY_BYTES));
        assert!(ItemSchema::new().with_key_prefix(long).validate().is_err());
    }

    #[test]
    fn reserved_keys_are_never_session_keys() {
        let schema = ItemSchema::new().with_key_prefix("app:");
        let key = schema.reserved_key("sweeper-checkpoint/0-8of8").unwrap();
        assert_eq!(key, "app:!sweeper-checkpoint/0-8of8");
        assert!(schema.is_reserved_key(&key) && !schema.owns_key(&key));
        assert!(schema.owns_key("app:abc") && !schema.is_reserved_key("app:abc"));
        assert!(!schema.owns_key("app2:abc") && !schema.owns_key("app:"));
        assert!(!schema.is_reserved_key("!abc"));
        assert!(schema.reserved_key("").is_err());
        assert!(schema.reserved_key(&"x".repeat(MAX_KEY_BYTES)).is_err());
    }

    #[test]
    fn the_session_shape_needs_a_string_data_attribute() {
        let schema = ItemSchema::new().with_key_prefix("app:");
        let mut item = schema.encode("app:k".into(), "{}", 1).unwrap();
        assert!(schema.is_session(&item));
        item.insert("data".into(), AttributeValue::N("1".into()));
        assert!(!schema.is_session(&item));
        item.remove("data");
        assert!(!schema.is_session(&item));
        let mut foreign = schema.encode("app2:k".into(), "{}", 1).unwrap();
        assert!(!schema.is_session(&foreign));
        foreign.insert("id".into(), AttributeValue::N("7".into()));
        assert!(!schema.is_session(&foreign));
    }

    #[test]
    fn expiries_are_classified_at_the_boundaries() {
        use Expiry::*;
        let cutoff = 1_700_000_000;
        assert_eq!(Expiry::classify(cutoff - 1, cutoff), Expired);
        assert_eq!(Expiry::classify(cutoff, cutoff), Live);
        assert_eq!(Expiry::classify(cutoff + FAR_FUTURE_SECONDS, cutoff), Live);
        assert_eq!(
            Expiry::classify(cutoff + FAR_FUTURE_SECONDS + 1, cutoff),
            FarFuture
        );
        assert_eq!(Expiry::classify(EPOCH_MILLIS_FROM - 1, cutoff), FarFuture);
        assert_eq!(Expiry::classify(EPOCH_MILLIS_FROM, cutoff), EpochMillis);
        // Total at the extremes.
        assert_eq!(Expiry::classify(i64::MIN, i64::MIN), Live);
        assert_eq!(Expiry::classify(i64::MAX, i64::MAX), EpochMillis);
        assert_eq!(Expiry::classify(i64::MIN, i64::MAX), Expired);
        assert_eq!(Expiry::classify(0, i64::MIN), FarFuture);
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
        assert!(err.to_string().contains("must differ"), "{err}");
        assert!(
            err.to_string()
                .contains("key attribute and the data attribute"),
            "{err}"
        );
        let err = ItemSchema::new()
            .with_claim_attribute("data")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("claim"), "{err}");
        let err = ItemSchema::new()
            .with_expires_attribute("")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("expires attribute"));
    }
}
