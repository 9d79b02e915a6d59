//! [`DynamoStore`]: get, put, delete and touch against one table, with write throttling.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::clock::{Clock, SharedClock, SystemClock};
use crate::codec::Codec;
use crate::error::Error;
use crate::owner::{DEFAULT_OWNER_INDEX, OwnerFn, SessionData};
use crate::schema::{
    EXPIRES_ALIAS as EXPIRES, Expiry, Item, ItemSchema, KEY_ALIAS as KEY, StoredData,
};
use crate::throttle::{Plan, Seen, WriteCache, plan};

/// Default lifetime of a record saved without an expiry: two weeks, as in the original.
pub const DEFAULT_TTL: StdDuration = StdDuration::from_secs(14 * 24 * 60 * 60);
/// Default throttling window: 10 seconds, as in the original's `touchAfter`.
pub const DEFAULT_TOUCH_AFTER: StdDuration = StdDuration::from_secs(10);
/// Default number of sessions whose last write is remembered for throttling.
pub const DEFAULT_THROTTLE_CAPACITY: usize = 10_000;
/// Default timeout of one HTTP attempt, applied when the client sets none: 2 s, two
/// hundred times DynamoDB's usual latency, so a slow attempt is retried well before a
/// user gives up.
pub const DEFAULT_ATTEMPT_TIMEOUT: StdDuration = StdDuration::from_secs(2);
/// Default timeout of a whole operation (all its attempts), applied when the client sets
/// none: 5 s. A web request loads and saves its session (two calls): when DynamoDB stalls,
/// it fails within 5 s (the load) and at most 10 s (a load that just made it, then the
/// save), well inside API Gateway's 29 s, and the session is kept (nothing is deleted).
/// Set both with [`DynamoStore::with_timeouts`].
pub const DEFAULT_OPERATION_TIMEOUT: StdDuration = StdDuration::from_secs(5);

/// A session store backed by one DynamoDB table.
///
/// Cheap to clone: clones share the client and the throttling state.
///
/// ```no_run
/// # async fn demo(client: aws_sdk_dynamodb::Client) {
/// use std::time::Duration;
/// use dynamo_session_store::DynamoStore;
///
/// let store = DynamoStore::new(client, "sessions")
///     .with_touch_after(Duration::from_secs(30))
///     .with_default_ttl(Duration::from_secs(24 * 3600));
/// # }
/// ```
#[derive(Clone)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) table: Arc<str>,
    pub(crate) schema: Arc<ItemSchema>,
    default_ttl: StdDuration,
    touch_after: StdDuration,
    pub(crate) consistent_read: bool,
    pub(crate) clock: SharedClock,
    pub(crate) cache: Arc<WriteCache>,
    pub(crate) owner: Option<OwnerFn>,
    pub(crate) owner_index: Arc<str>,
    pub(crate) codec: Arc<Codec>,
}

impl fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.table)
            .field("schema", &self.schema)
            .field("default_ttl", &self.default_ttl)
            .field("touch_after", &self.touch_after)
            .field("consistent_read", &self.consistent_read)
            .field("clock", &self.clock)
            .field("throttled_sessions", &self.cache.len())
            .field("writes_owners", &self.owner.is_some())
            .field("owner_index", &self.owner_index)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

/// A session read from the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// The session data.
    pub data: T,
    /// When the session expires.
    pub expires_at: OffsetDateTime,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteOutcome {
    /// The whole item was written.
    Put,
    /// Only the expiry was updated.
    Touched,
    /// Nothing was written: the data was unchanged and the expiry moved by less than
    /// `touch_after` since this process last wrote or read it.
    Skipped,
    /// The session no longer exists (deleted or expired), so nothing was written: a save
    /// never brings a deleted session back.
    Gone,
    /// [`DynamoStore::insert`] found a session with that id already; nothing was written.
    AlreadyExists,
}

/// Which precondition a write carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Create or replace.
    Upsert,
    /// Create only if absent.
    Insert,
    /// Replace only if present and unexpired.
    Update,
}

/// The condition a `PutItem` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// None: create or replace.
    None,
    /// No live item: absent, or expired (read as absent).
    AbsentOrExpired,
    /// A live item: present and unexpired, so a save never resurrects.
    Live,
}

/// The request a save sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing: throttled.
    Skip,
    /// An expiry-only `UpdateItem`, conditional on a live item.
    Touch,
    /// A whole `PutItem` under a precondition.
    Put(Precondition),
}

/// Which request a write in `mode` sends. Pure: `throttle` is asked only for the saves it
/// applies to (an explicit put or insert always writes).
pub(crate) fn decide(mode: Mode, throttle: impl FnOnce() -> Plan) -> Action {
    match mode {
        Mode::Upsert => Action::Put(Precondition::None),
        Mode::Insert => Action::Put(Precondition::AbsentOrExpired),
        Mode::Update => match throttle() {
            Plan::Skip => Action::Skip,
            Plan::Touch => Action::Touch,
            Plan::Put => Action::Put(Precondition::Live),
        },
    }
}

impl DynamoStore {
    /// A store on `table`, using `client`.
    ///
    /// Defaults: item schema `id` / `expires` / `data` with no key prefix
    /// ([`ItemSchema::default`]), default lifetime [`DEFAULT_TTL`] (two weeks), throttling
    /// window [`DEFAULT_TOUCH_AFTER`] (10 s), strongly consistent reads, the system clock,
    /// and memory of the last [`DEFAULT_THROTTLE_CAPACITY`] sessions written. If the client
    /// has no timeouts configured, [`DEFAULT_ATTEMPT_TIMEOUT`] and
    /// [`DEFAULT_OPERATION_TIMEOUT`] apply, so no call hangs forever: the store then keeps
    /// a copy of `client` rebuilt with those timeouts (same credentials, region, endpoint
    /// and interceptors), which is what [`client`](Self::client) returns.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client: with_default_timeouts(client),
            table: Arc::from(table.into()),
            schema: Arc::new(ItemSchema::default()),
            default_ttl: DEFAULT_TTL,
            touch_after: DEFAULT_TOUCH_AFTER,
            consistent_read: true,
            clock: Arc::new(SystemClock),
            cache: Arc::new(WriteCache::new(
                NonZeroUsize::new(DEFAULT_THROTTLE_CAPACITY).expect("non-zero"),
            )),
            owner: None,
            owner_index: Arc::from(DEFAULT_OWNER_INDEX),
            codec: Arc::new(Codec::new()),
        }
    }

    /// A store on `table` with a client built from the standard AWS configuration chain
    /// (environment, profile, container or instance credentials; `AWS_REGION`;
    /// `AWS_ENDPOINT_URL_DYNAMODB` or `AWS_ENDPOINT_URL` for a local endpoint).
    #[cfg(feature = "from-env")]
    pub async fn from_env(table: impl Into<String>) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(Client::new(&config), table)
    }

    /// Uses another item schema: attribute names and key prefix, to share an existing table.
    ///
    /// The one option that can fail, so it returns a `Result` in the middle of the chain:
    /// put it first and `?` it, `DynamoStore::new(client, "t").with_schema(schema)?
    /// .with_touch_after(..)`.
    ///
    /// # Errors
    /// [`Error::InvalidSchema`] when the attribute names are empty or not distinct.
    pub fn with_schema(mut self, schema: ItemSchema) -> Result<Self, Error> {
        schema.validate()?;
        self.schema = Arc::new(schema);
        Ok(self)
    }

    /// Cuts every attempt after `attempt` and every call, its retries included, after
    /// `operation` (defaults [`DEFAULT_ATTEMPT_TIMEOUT`], 2 s, and
    /// [`DEFAULT_OPERATION_TIMEOUT`], 5 s, when the client had none), replacing the
    /// client's own: the store keeps a copy of the client with these (same credentials,
    /// region, endpoint and interceptors). A call cut short is an [`Error::DynamoDb`]
    /// marked transient, and nothing in the table is changed by the cut.
    pub fn with_timeouts(mut self, attempt: StdDuration, operation: StdDuration) -> Self {
        self.client = with_timeouts(self.client.clone(), attempt, operation);
        self
    }

    /// Lifetime of records saved without an expiry (default two weeks).
    pub fn with_default_ttl(mut self, ttl: StdDuration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Throttling window (default 10 s): a save of unchanged data whose expiry moved by less
    /// than this writes nothing; one whose expiry moved further writes only the expiry.
    /// `Duration::ZERO` writes on every save.
    pub fn with_touch_after(mut self, touch_after: StdDuration) -> Self {
        self.touch_after = touch_after;
        self
    }

    /// Strongly consistent reads (default `true`). Eventually consistent reads cost half
    /// the read capacity but may miss a write made less than a second earlier.
    pub fn with_consistent_reads(mut self, consistent: bool) -> Self {
        self.consistent_read = consistent;
        self
    }

    /// The clock used for expiry decisions (default the system clock).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How many sessions' last writes are remembered for throttling (default 10,000; at
    /// least 1). Forgetting a session only costs one extra write.
    pub fn with_throttle_capacity(mut self, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        self.cache = Arc::new(WriteCache::new(capacity));
        self
    }

    /// Encodes session data with `codec`: compression and/or authenticated encryption
    /// (feature `codec`; [`crate::codec`]). Off by default: plain JSON text. Items
    /// written in either form read in both; a session whose data does not decode loads
    /// as absent, with one warning naming why.
    ///
    /// ```
    /// # #[cfg(feature = "codec")]
    /// # fn demo(client: aws_sdk_dynamodb::Client) -> Result<(), dynamo_session_store::Error> {
    /// use dynamo_session_store::{Codec, DynamoStore, KeyRing};
    ///
    /// // SESSION_ENCRYPTION_KEYS="b=<base64 key>,a=<base64 key>": b encrypts, both decrypt.
    /// let keys = KeyRing::from_env()?.expect("SESSION_ENCRYPTION_KEYS is set");
    /// let store = DynamoStore::new(client, "sessions")
    ///     .with_codec(Codec::new().with_compression().with_encryption(keys));
    /// # Ok(()) }
    /// ```
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = Arc::new(codec);
        self
    }

    /// The codec ([`with_codec`](Self::with_codec)).
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// The DynamoDB client: the one given to [`new`](Self::new), or its copy with the
    /// default timeouts added when it had none.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The item schema.
    pub fn schema(&self) -> &ItemSchema {
        &self.schema
    }

    /// The throttling window.
    pub fn touch_after(&self) -> StdDuration {
        self.touch_after
    }

    /// Reads session `id`. An item whose expiry has passed reads as `None`, even while
    /// DynamoDB has not deleted it yet.
    ///
    /// # Errors
    /// [`Error::InvalidId`], [`Error::DynamoDb`], or [`Error::Decode`] when the item is
    /// not a well-formed session or its data does not deserialize into `T`.
    pub async fn get<T: DeserializeOwned>(&self, id: &str) -> Result<Option<Loaded<T>>, Error> {
        let Some((data, expires)) = self.read_id(id).await? else {
            return Ok(None);
        };
        let data = serde_json::from_str(&data).map_err(|e| Error::Decode {
            attribute: self.schema.data_attribute().to_owned(),
            problem: "does not hold the expected session data".into(),
            source: Some(crate::error::redacted(e)),
        })?;
        Ok(Some(Loaded {
            data,
            expires_at: self.expiry_date(expires)?,
        }))
    }

    /// Creates or replaces session `id`, expiring at `expires_at` (or after the default
    /// lifetime when `None`). Always writes: one unconditional `PutItem`, never throttled.
    ///
    /// Across processes and instances: last writer wins; a put after another instance's
    /// delete brings the session back (use [`update`](Self::update) for saves that must
    /// not).
    ///
    /// # Errors
    /// [`Error::InvalidId`], [`Error::Encode`], [`Error::TooLarge`] (before any call, with
    /// nothing written), or [`Error::DynamoDb`].
    pub async fn put<T: Serialize + ?Sized>(
        &self,
        id: &str,
        data: &T,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<WriteOutcome, Error> {
        self.write_value(id, data, expires_at, Mode::Upsert).await
    }

    /// Creates session `id` only if no live session has that id; never overwrites a live
    /// one (an expired item still in the table, which [`get`](Self::get) reads as absent,
    /// is replaced). Never throttled.
    ///
    /// Across processes and instances: a claim. Of any number of inserts of one id, from
    /// any instances, exactly one returns [`WriteOutcome::Put`]; the others return
    /// [`WriteOutcome::AlreadyExists`], even with identical data. An insert whose first
    /// attempt was applied but whose answer was lost, and that the SDK retried, still
    /// returns `Put`: each insert writes a random claim token
    /// ([`ItemSchema::claim_attribute`]) and recognises its own write by it, never by the
    /// data.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn insert<T: Serialize + ?Sized>(
        &self,
        id: &str,
        data: &T,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<WriteOutcome, Error> {
        self.write_value(id, data, expires_at, Mode::Insert).await
    }

    /// Replaces session `id` only if it still exists and has not expired, subject to
    /// throttling; returns [`WriteOutcome::Gone`] otherwise. Use it for saves that may race
    /// a logout, so they never bring a deleted session back.
    ///
    /// Throttling compares with what *this instance* last read or wrote for the session
    /// (read a session before writing it back, as tower-sessions does): unchanged data
    /// whose expiry moved by less than `touch_after` is not written
    /// ([`WriteOutcome::Skipped`]), and past that only the expiry is. Across processes and
    /// instances: conditional on the item, so never a resurrection; between two changes
    /// of the data, last writer wins.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn update<T: Serialize + ?Sized>(
        &self,
        id: &str,
        data: &T,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<WriteOutcome, Error> {
        let outcome = self.write_value(id, data, expires_at, Mode::Update).await?;
        if outcome == WriteOutcome::Gone && self.migrated(id).await?.is_some() {
            return self.write_value(id, data, expires_at, Mode::Update).await;
        }
        Ok(outcome)
    }

    /// Moves the expiry of session `id` to `expires_at`, only if the session exists and has
    /// not expired: a touch never creates an item, from any instance. Throttled like a
    /// save of unchanged data, by what this instance last saw of the session.
    ///
    /// Returns [`WriteOutcome::Touched`], [`WriteOutcome::Skipped`] or
    /// [`WriteOutcome::Gone`].
    ///
    /// # Errors
    /// [`Error::InvalidId`] or [`Error::DynamoDb`].
    pub async fn touch(&self, id: &str, expires_at: OffsetDateTime) -> Result<WriteOutcome, Error> {
        let outcome = self.touch_key(id, expires_at).await?;
        if outcome == WriteOutcome::Gone && self.migrated(id).await?.is_some() {
            return self.touch_key(id, expires_at).await;
        }
        Ok(outcome)
    }

    async fn touch_key(&self, id: &str, expires_at: OffsetDateTime) -> Result<WriteOutcome, Error> {
        let key = self.schema.key_for(id)?;
        let expires = expires_at.unix_timestamp();
        // A touch is a save of the data last seen: throttled the same way, and never a put.
        let last = self.cache.get(&key);
        let next = last.map(|last| Seen { expires, ..last });
        if let Some(next) = next
            && self.throttle(&key, next) == Plan::Skip
        {
            return Ok(WriteOutcome::Skipped);
        }
        self.send_touch(&key, expires, next).await
    }

    /// Deletes session `id` (a no-op if it does not exist). Unconditional: after it, no
    /// update, touch or save from any instance brings the session back; only a
    /// [`put`](Self::put) or [`insert`](Self::insert) creates it again.
    ///
    /// `id` is anything that displays as the session id: a `&str`, a `String`, or a
    /// tower-sessions `Id` (so `store.delete(&id)` works with the `SessionStore` trait in
    /// scope too, and does the same).
    ///
    /// # Errors
    /// [`Error::InvalidId`] or [`Error::DynamoDb`].
    pub async fn delete(&self, id: impl std::fmt::Display) -> Result<(), Error> {
        let id = id.to_string();
        let id = id.as_str();
        let key = self.schema.key_for(id)?;
        self.cache.forget(&key);
        // In the migration window, the plain item too: a logout ends the session in
        // whichever form it is.
        if let Some(plain) = self.schema.plain_key_for(id) {
            self.delete_key(plain).await?;
        }
        self.delete_key(key).await
    }

    async fn delete_key(&self, key: String) -> Result<(), Error> {
        let label = self.schema.log_label(&key);
        self.client
            .delete_item()
            .table_name(self.table.as_ref())
            .key(self.schema.key_attribute(), AttributeValue::S(key))
            .send()
            .await
            .map_err(|e| Error::from_sdk("DeleteItem", &self.table, e))?;
        tracing::debug!(session = %label, "deleted session");
        Ok(())
    }

    /// Reads session `id` under its key; in the migration window
    /// ([`KeyMode::HashedReadingPlain`](crate::schema::KeyMode::HashedReadingPlain)), a
    /// session found only under its plain key is moved to its hashed key first.
    pub(crate) async fn read_id(&self, id: &str) -> Result<Option<(String, i64)>, Error> {
        let key = self.schema.key_for(id)?;
        if let Some(found) = self.read(&key, self.consistent_read).await? {
            return Ok(Some(found));
        }
        if self.schema.plain_key_for(id).is_none() {
            return Ok(None);
        }
        if let Some(moved) = self.migrated(id).await? {
            return Ok(Some(moved));
        }
        // Not moved by this call: moved by another instance between the two reads (its
        // plain item then is gone), or not there at all. A consistent read tells.
        self.read(&key, true).await
    }

    /// In the migration window: moves session `id` from its plain key to its hashed key,
    /// if it is there, live and well-formed, in one transaction: a put of the same data,
    /// expiry and owner under the hashed key (only where no live session is), and a
    /// delete of the plain item (only if it still has the expiry read). So a logout or a
    /// revoke racing the move is never undone, and two instances moving at once leave
    /// one item. Returns the session when this call moved it.
    pub(crate) async fn migrated(&self, id: &str) -> Result<Option<(String, i64)>, Error> {
        use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

        let Some(plain) = self.schema.plain_key_for(id) else {
            return Ok(None);
        };
        let Some(item) = self.get_item(&plain, true).await? else {
            return Ok(None);
        };
        let key = self.schema.key_for(id)?;
        let label = self.schema.log_label(&key);
        // A plain item that is not a well-formed session stays where it is, unread, as
        // under a hashed key it would read as absent.
        let stored = match self.schema.decode(item) {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(session = %label, "not moving a malformed plain item: {err}");
                return Ok(None);
            }
        };
        let now = self.now_epoch();
        if !matches!(
            Expiry::classify(stored.expires, now.saturating_add(1)),
            Expiry::Live | Expiry::FarFuture
        ) {
            return Ok(None);
        }
        // Encrypted data is bound to its item's key: decoded under the plain key,
        // encoded again under the hashed one.
        let data = match self.codec.decode(&plain, stored.data) {
            Ok(data) => data,
            Err(err) => {
                tracing::warn!(session = %label, "not moving a plain item whose data does not decode: {err}");
                return Ok(None);
            }
        };
        let owner = stored.owner.clone().or_else(|| self.owner_in(&data));
        let expires = stored.expires;
        let encoded = self.codec.encode(&key, data.clone())?;
        let item = self
            .schema
            .encode_owned(key.clone(), encoded, expires, owner)?;
        let names = self.schema.key_and_expiry_names();
        let put = Put::builder()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .condition_expression(format!("attribute_not_exists({KEY}) OR {EXPIRES} <= :now"))
            .set_expression_attribute_names(Some(names.clone()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .build()
            .expect("table and item are set");
        let delete = Delete::builder()
            .table_name(self.table.as_ref())
            .key(self.schema.key_attribute(), AttributeValue::S(plain))
            .condition_expression(format!("attribute_exists({KEY}) AND {EXPIRES} = :e"))
            .set_expression_attribute_names(Some(names))
            .expression_attribute_values(":e", AttributeValue::N(expires.to_string()))
            .build()
            .expect("table and key are set");
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::debug!(session = %label, "moved a session from its plain key to its hashed key");
                self.cache.record(&key, self.cache.seen(&data, expires));
                Ok(Some((data, expires)))
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_transaction_canceled_exception()) =>
            {
                Ok(None)
            }
            Err(err) => Err(Error::from_sdk("TransactWriteItems", &self.table, err)),
        }
    }

    /// The expiry of a live item as a date. Epoch milliseconds, which the Node package
    /// this crate succeeds wrote, are a decode error that says so.
    pub(crate) fn expiry_date(&self, secs: i64) -> Result<OffsetDateTime, Error> {
        let millis = Expiry::classify(secs, i64::MIN) == Expiry::EpochMillis;
        OffsetDateTime::from_unix_timestamp(secs)
            .ok()
            .filter(|_| !millis)
            .ok_or_else(|| {
                Error::decode(
                    self.schema.expires_attribute(),
                    format!(
                        "is {secs}: epoch milliseconds? this store reads and writes epoch seconds"
                    ),
                )
            })
    }

    /// What throttling says about saving `next` for `key`, given what this instance last
    /// saw of it.
    fn throttle(&self, key: &str, next: Seen) -> Plan {
        plan(self.cache.get(key), next, self.touch_after_secs())
    }

    fn touch_after_secs(&self) -> i64 {
        i64::try_from(self.touch_after.as_secs()).unwrap_or(i64::MAX)
    }

    pub(crate) fn now_epoch(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// The expiry to store for `expires_at`, epoch seconds.
    fn expiry_secs(&self, expires_at: Option<OffsetDateTime>) -> i64 {
        match expires_at {
            Some(at) => at.unix_timestamp(),
            None => self
                .now_epoch()
                .saturating_add(i64::try_from(self.default_ttl.as_secs()).unwrap_or(i64::MAX)),
        }
    }

    async fn write_value<T: Serialize + ?Sized>(
        &self,
        id: &str,
        data: &T,
        expires_at: Option<OffsetDateTime>,
        mode: Mode,
    ) -> Result<WriteOutcome, Error> {
        let key = self.schema.key_for(id)?;
        // Through `Value`, so that maps are written in sorted key order and unchanged data
        // always has the same fingerprint.
        let value = serde_json::to_value(data).map_err(Error::Encode)?;
        let json = serde_json::to_string(&value).map_err(Error::Encode)?;
        let owner = self.owner_of(&key, SessionData::value(&value));
        self.write(key, json, self.expiry_secs(expires_at), mode, owner)
            .await
    }

    /// How logs name session `id`: the label of its key ([`ItemSchema::log_label`]).
    /// Computed only where a line is logged, off the paths every request takes.
    #[cfg(any(
        feature = "tower-sessions",
        feature = "tower-sessions-014",
        feature = "actix-session"
    ))]
    pub(crate) fn label_of_id(&self, id: &str) -> String {
        match self.schema.key_for(id) {
            Ok(key) => self.schema.log_label(&key),
            Err(_) => "(not a valid id)".to_owned(),
        }
    }

    /// The item under `key`, as stored: one `GetItem`.
    async fn get_item(&self, key: &str, consistent: bool) -> Result<Option<Item>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .key(
                self.schema.key_attribute(),
                AttributeValue::S(key.to_owned()),
            )
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| Error::from_sdk("GetItem", &self.table, e))?;
        Ok(out.item)
    }

    /// Reads the item under `key`: `(data JSON, expiry)`, or `None` if absent or expired.
    /// Remembers what it read, for throttling.
    pub(crate) async fn read(
        &self,
        key: &str,
        consistent: bool,
    ) -> Result<Option<(String, i64)>, Error> {
        let Some(item) = self.get_item(key, consistent).await? else {
            self.cache.forget(key);
            return Ok(None);
        };
        let stored = self.schema.decode(item)?;
        // Expired at `now` when `expires <= now`: the cutoff is `now + 1`.
        if Expiry::classify(stored.expires, self.now_epoch().saturating_add(1)) == Expiry::Expired {
            self.cache.forget(key);
            return Ok(None);
        }
        let adopt = self.owner.is_some() && stored.owner.is_none();
        let current = self.codec.is_current(&stored.data);
        // The data as read, when this read may rewrite the item: the rewrite is
        // conditional on it.
        let raw = (adopt || !current).then(|| stored.data.clone());
        let data = match self.codec.decode(key, stored.data) {
            Ok(data) => data,
            Err(err) => {
                // Altered, moved, or under a key no longer in the ring: the app gets no
                // session (and so starts a new one under a new id); nothing is written.
                tracing::warn!(
                    session = %self.schema.log_label(key),
                    "session data does not decode; loading the session as absent: {err}"
                );
                self.cache.forget(key);
                return Ok(None);
            }
        };
        if let Some(raw) = raw {
            // Written before this store wrote owners: indexed now, by this read, so that
            // revoke_all finds it even if no request ever saves it again.
            let owner = if adopt { self.owner_in(&data) } else { None };
            // Plain, or under an older key, while the codec encrypts under its primary:
            // encrypted now, by this read, so that rotation reaches sessions that are only
            // loaded (and then, maybe, touched).
            let recoded = if current {
                None
            } else {
                self.recoded(
                    key,
                    &data,
                    stored.expires,
                    stored.owner.as_deref(),
                    owner.as_deref(),
                )
            };
            let rewrote = if owner.is_some() || recoded.is_some() {
                self.rewrite_on_read(key, raw, recoded, owner).await
            } else {
                false
            };
            if !current && !rewrote {
                // Still not as the codec writes it: the next save writes it whole, which
                // re-encodes it, instead of a touch or nothing.
                self.cache.forget(key);
                return Ok(Some((data, stored.expires)));
            }
        }
        self.cache
            .record(key, self.cache.seen(&data, stored.expires));
        Ok(Some((data, stored.expires)))
    }

    /// `data` encoded again for the item under `key`, if the item then still fits in
    /// DynamoDB's limit (with its owner, `stored_owner` or `new_owner`, and room for a
    /// claim token it may carry); `None`, logged, otherwise.
    fn recoded(
        &self,
        key: &str,
        data: &str,
        expires: i64,
        stored_owner: Option<&str>,
        new_owner: Option<&str>,
    ) -> Option<StoredData> {
        let label = || self.schema.log_label(key);
        let recoded = match self.codec.encode(key, data.to_owned()) {
            Ok(recoded) => recoded,
            Err(err) => {
                tracing::warn!(session = %label(), "could not re-encode session data: {err}");
                return None;
            }
        };
        let size = self.schema.item_size(key, recoded.len(), expires)
            + stored_owner
                .or(new_owner)
                .map_or(0, |o| self.schema.owner_size(o))
            + self.schema.claim_size();
        if size > crate::schema::MAX_ITEM_BYTES {
            tracing::warn!(
                session = %label(),
                "not re-encoding session data on read: the item would be {size} bytes, over DynamoDB's limit"
            );
            return None;
        }
        Some(recoded)
    }

    /// Writes a session item (already keyed, its data encoded, its owner found), throttled
    /// and conditioned by `mode`: [`decide`] picks the request, this sends it and records
    /// the outcome. The owner changes only with the data, so a skip or a touch (which
    /// leave the owner as it is) never writes the owner index.
    pub(crate) async fn write(
        &self,
        key: String,
        json: String,
        expires: i64,
        mode: Mode,
        owner: Option<String>,
    ) -> Result<WriteOutcome, Error> {
        let next = self.cache.seen(&json, expires);
        let action = decide(mode, || self.throttle(&key, next));
        tracing::trace!(session = %self.schema.log_label(&key), ?action, "save");
        match action {
            Action::Skip => Ok(WriteOutcome::Skipped),
            Action::Touch => self.send_touch(&key, expires, Some(next)).await,
            Action::Put(precondition) => {
                // An insert adds its claim token: the size check counts it.
                let room = match precondition {
                    Precondition::AbsentOrExpired => self.schema.claim_size(),
                    _ => 0,
                };
                let data = self.codec.encode(&key, json)?;
                let item = self
                    .schema
                    .encode_with_room(key.clone(), data, expires, owner, room)?;
                let outcome = self.send_put(&key, item, precondition).await;
                match outcome {
                    Ok(WriteOutcome::Put) => self.cache.record(&key, next),
                    // Refused, or failed: the item's state is unknown to this instance now,
                    // so the next save writes it whole.
                    _ => self.cache.forget(&key),
                }
                outcome
            }
        }
    }

    /// Sends an expiry-only update; records `seen` (the session as it now stands) when it
    /// applied, forgets the session when it is gone.
    async fn send_touch(
        &self,
        key: &str,
        expires: i64,
        seen: Option<Seen>,
    ) -> Result<WriteOutcome, Error> {
        if self.update_expiry(key, expires).await? {
            if let Some(seen) = seen {
                self.cache.record(key, seen);
            }
            Ok(WriteOutcome::Touched)
        } else {
            self.cache.forget(key);
            Ok(WriteOutcome::Gone)
        }
    }

    /// Sends one `PutItem` of `item` under `precondition`: [`WriteOutcome::Put`], or the
    /// outcome of a refused condition.
    async fn send_put(
        &self,
        key: &str,
        mut item: Item,
        precondition: Precondition,
    ) -> Result<WriteOutcome, Error> {
        let now = AttributeValue::N(self.now_epoch().to_string());
        let mut request = self.client.put_item().table_name(self.table.as_ref());
        let mut claim = None;
        match precondition {
            Precondition::None => {}
            Precondition::AbsentOrExpired => {
                // A token only this request writes: if the SDK retried after an attempt
                // that applied but whose answer was lost, the refused item (ALL_OLD)
                // carries it, and the insert is ours.
                let token = AttributeValue::S(format!("{:016x}", fastrand::u64(..)));
                debug_assert_eq!(
                    token.as_s().map(String::len),
                    Ok(crate::schema::CLAIM_TOKEN_BYTES)
                );
                item.insert(self.schema.claim_attribute().to_owned(), token.clone());
                claim = Some(token);
                request = request
                    .condition_expression(format!(
                        "attribute_not_exists({KEY}) OR {EXPIRES} <= :now"
                    ))
                    .set_expression_attribute_names(Some(self.schema.key_and_expiry_names()))
                    .expression_attribute_values(":now", now)
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    );
            }
            Precondition::Live => {
                request = request
                    .condition_expression(format!("attribute_exists({KEY}) AND {EXPIRES} > :now"))
                    .set_expression_attribute_names(Some(self.schema.key_and_expiry_names()))
                    .expression_attribute_values(":now", now);
            }
        }
        match request.set_item(Some(item)).send().await {
            Ok(_) => Ok(WriteOutcome::Put),
            Err(err) => {
                let Some(PutItemError::ConditionalCheckFailedException(refused)) =
                    err.as_service_error()
                else {
                    return Err(Error::from_sdk("PutItem", &self.table, err));
                };
                let found_claim = refused
                    .item()
                    .and_then(|item| item.get(self.schema.claim_attribute()));
                if claim.is_some() && found_claim == claim.as_ref() {
                    return Ok(WriteOutcome::Put);
                }
                tracing::debug!(session = %self.schema.log_label(key), ?precondition, "conditional write refused");
                Ok(match precondition {
                    Precondition::AbsentOrExpired => WriteOutcome::AlreadyExists,
                    _ => WriteOutcome::Gone,
                })
            }
        }
    }

    /// Sets the expiry of an existing, unexpired item. `false` if there is none.
    async fn update_expiry(&self, key: &str, expires: i64) -> Result<bool, Error> {
        let values = HashMap::from([
            (":e".to_owned(), AttributeValue::N(expires.to_string())),
            (
                ":now".to_owned(),
                AttributeValue::N(self.now_epoch().to_string()),
            ),
        ]);
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .key(
                self.schema.key_attribute(),
                AttributeValue::S(key.to_owned()),
            )
            .update_expression(format!("SET {EXPIRES} = :e"))
            .condition_expression(format!("attribute_exists({KEY}) AND {EXPIRES} > :now"))
            .set_expression_attribute_names(Some(self.schema.key_and_expiry_names()))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => {
                self.cache.forget(key);
                Err(Error::from_sdk("UpdateItem", &self.table, err))
            }
        }
    }
}

/// Adds attempt and operation timeouts to a client that has none.
fn with_default_timeouts(client: Client) -> Client {
    let config = client.config();
    let has_timeouts = config.timeout_config().is_some_and(|t| {
        t.operation_timeout().is_some() || t.operation_attempt_timeout().is_some()
    });
    if has_timeouts {
        return client;
    }
    with_timeouts(client, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_OPERATION_TIMEOUT)
}

/// `client` with these attempt and operation timeouts (its connect timeout kept).
fn with_timeouts(client: Client, attempt: StdDuration, operation: StdDuration) -> Client {
    let config = client.config();
    let mut timeouts = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation);
    if let Some(connect) = config.timeout_config().and_then(|t| t.connect_timeout()) {
        timeouts = timeouts.connect_timeout(connect);
    }
    let config = config.to_builder().timeout_config(timeouts.build()).build();
    Client::from_conf(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_writes_always_put_and_saves_are_throttled() {
        let never = || -> Plan { panic!("an explicit write is never throttled") };
        assert_eq!(decide(Mode::Upsert, never), Action::Put(Precondition::None));
        assert_eq!(
            decide(Mode::Insert, never),
            Action::Put(Precondition::AbsentOrExpired)
        );
        assert_eq!(decide(Mode::Update, || Plan::Skip), Action::Skip);
        assert_eq!(decide(Mode::Update, || Plan::Touch), Action::Touch);
        assert_eq!(
            decide(Mode::Update, || Plan::Put),
            Action::Put(Precondition::Live)
        );
    }
}
