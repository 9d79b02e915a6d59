//! Sessions by owner: list one user's sessions ("your devices") and revoke them all ("sign
//! me out everywhere"), through a sparse global secondary index on an owner attribute.
//!
//! # How it works
//!
//! - **Opt in.** Tell the store how to find a session's owner in its data:
//!   [`DynamoStore::with_owner`] takes a function from the session's data to the owner's
//!   value; [`axum_login`] is the one for axum-login's layout. On every write of the
//!   whole item, the store writes the owner as a top-level String attribute
//!   ([`ItemSchema::owner_attribute`](crate::ItemSchema::owner_attribute), default
//!   `owner`) beside the data, and only when the session has one.
//! - **A sparse, keys-only index.** The index ([`DEFAULT_OWNER_INDEX`], or
//!   [`DynamoStore::with_owner_index`]) is keyed by the owner and projects the table's
//!   key only. Sessions without an owner are not in it. Its cost: one index write (1 WCU)
//!   when an owned session is created or changes owner, one when it is deleted; a touch
//!   (an expiry-only update) or a save whose owner did not change writes the index
//!   **zero** times, since neither changes the index key nor a projected attribute.
//!   [`DynamoStore::create_table`] creates it when the store has an owner function, and
//!   adds it to an existing table; `infra/template.yaml` creates it behind its
//!   `OwnerIndex` parameter.
//! - **Calls the app makes.** [`DynamoStore::sessions_of`] lists an owner's live sessions
//!   page by page; [`DynamoStore::revoke_all`] deletes them (but one, if asked);
//!   [`DynamoStore::revoke`] deletes one. Each delete is conditional on the item still
//!   belonging to that owner, so a session that changed hands meanwhile is kept. There is
//!   no background work.
//!
//! # Bad owners
//!
//! An owner must be a non-empty String of at most [`MAX_OWNER_BYTES`], DynamoDB's limit
//! for an index key; an integer is taken as its decimal text (axum-login's user ids are
//! often numbers). Any other value, or a function that panics, leaves the session
//! unindexed with one warning naming the session (redacted): never an error for the
//! request, and the store goes on working.
//!
//! # Consistency
//!
//! A global secondary index is eventually consistent: a session created a moment (usually
//! well under a second) before [`revoke_all`](DynamoStore::revoke_all) may not be listed
//! yet. Listing re-reads each session from the table (strongly consistent by default), so
//! what it returns is live and still that owner's.
//!
//! ```no_run
//! # async fn demo(client: aws_sdk_dynamodb::Client, current_id: &str) -> Result<(), dynamo_session_store::Error> {
//! use dynamo_session_store::{DynamoStore, owner};
//!
//! let store = DynamoStore::new(client, "sessions").with_owner(owner::axum_login);
//! store.create_table().await?; // with the index
//!
//! // "Your devices".
//! let mut sessions = store.sessions_of("42");
//! while let Some(session) = sessions.next().await {
//!     let session = session?;
//!     println!("{} expires {}", session.handle, session.expires_at);
//! }
//! // "Sign out my other devices".
//! let revoked = store.revoke_all("42", Some(current_id)).await?;
//! println!("signed out {} other sessions", revoked.deleted);
//! # Ok(()) }
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::{Error, redact};
use crate::schema::{
    DATA_ALIAS, EXPIRES_ALIAS, Expiry, HASHED_KEY_TAG, Item, KeyMode, OWNER_ALIAS, StoredData,
};
use crate::store::DynamoStore;

/// The default name of the owner index.
pub const DEFAULT_OWNER_INDEX: &str = "owner-index";

/// DynamoDB's maximum size of an index partition key: 2048 bytes.
pub const MAX_OWNER_BYTES: usize = 2048;

/// The key axum-login keeps its data under in the session (its default `data_key`).
pub const AXUM_LOGIN_DATA_KEY: &str = "axum-login.data";

/// How many index entries one `Query` page returns, and so how many sessions are read or
/// deleted together.
const PAGE: i32 = 100;

/// How many reads or deletes are in flight at once.
const CONCURRENCY: usize = 16;

/// A session's data as the owner function sees it: the JSON the store is about to write.
#[derive(Clone, Copy)]
pub struct SessionData<'a>(Repr<'a>);

#[derive(Clone, Copy)]
enum Repr<'a> {
    /// The core API's value.
    Value(&'a Value),
    /// tower-sessions' record data.
    Map(&'a HashMap<String, Value>),
}

impl<'a> SessionData<'a> {
    pub(crate) fn value(value: &'a Value) -> Self {
        Self(Repr::Value(value))
    }

    #[cfg_attr(
        not(any(
            feature = "tower-sessions",
            feature = "tower-sessions-014",
            feature = "actix-session"
        )),
        allow(dead_code)
    )]
    pub(crate) fn map(map: &'a HashMap<String, Value>) -> Self {
        Self(Repr::Map(map))
    }

    /// The top-level field `name`, when the data is an object that has it.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        match self.0 {
            Repr::Value(value) => value.get(name),
            Repr::Map(map) => map.get(name),
        }
    }
}

impl fmt::Debug for SessionData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the contents.
        f.write_str("SessionData { .. }")
    }
}

/// The owner function for axum-login's layout: the `user_id` it keeps under
/// `axum-login.data` ([`AXUM_LOGIN_DATA_KEY`]); `None` for a session nobody is logged in
/// to. Needs no axum-login dependency. For an app that changed axum-login's `data_key`,
/// write the two-line equivalent.
pub fn axum_login(data: SessionData<'_>) -> Option<&Value> {
    data.get(AXUM_LOGIN_DATA_KEY)?
        .get("user_id")
        .filter(|id| !id.is_null())
}

/// The function from a session's data to its owner's value.
pub(crate) type OwnerFn = Arc<dyn for<'a> Fn(SessionData<'a>) -> Option<&'a Value> + Send + Sync>;

/// Why a value cannot be an owner.
///
/// # Errors
/// A reason in words when `value` is not a non-empty String (or an integer) of at most
/// [`MAX_OWNER_BYTES`].
pub fn check_owner(value: &Value) -> Result<String, String> {
    let owner = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        other => {
            let kind = match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a fractional number",
                Value::Array(_) => "an array",
                _ => "an object",
            };
            return Err(format!("the owner is {kind}, not a string or an integer"));
        }
    };
    if owner.is_empty() {
        return Err("the owner is an empty string".into());
    }
    if owner.len() > MAX_OWNER_BYTES {
        return Err(format!(
            "the owner is {} bytes, over DynamoDB's index key limit of {MAX_OWNER_BYTES}",
            owner.len()
        ));
    }
    Ok(owner)
}

/// A session's handle: what [`DynamoStore::revoke`] takes, and what
/// [`DynamoStore::sessions_of`] gives. It is the session's key in the table: by default
/// ([`KeyMode::Hashed`]) the hash of the session id, which
/// cannot be sent back as a cookie, so a page may carry it in a form; with
/// [`KeyMode::Plain`] (and for sessions not yet moved in the
/// migration window) it holds the session id itself: treat it then as you treat the cookie.
/// Its `Debug` and `Display` show only its first characters ([`redacted`](Self::redacted)).
#[derive(Clone)]
pub struct SessionHandle {
    key: String,
    label: String,
}

impl PartialEq for SessionHandle {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for SessionHandle {}

impl std::hash::Hash for SessionHandle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl SessionHandle {
    pub(crate) fn new(key: String, schema: &crate::ItemSchema) -> Self {
        let label = schema.log_label(&key);
        Self { key, label }
    }

    /// The handle as text, to send back in a form (to its owner only).
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// A handle received back from a form. [`DynamoStore::revoke`] checks it belongs to
    /// the owner before deleting anything.
    pub fn from_text(text: impl Into<String>) -> Self {
        let key = text.into();
        // The label `sessions_of` gives the same handle: from the hash's tag, when the
        // key is hashed (the prefix is not known here).
        let label = match key.find(crate::schema::HASHED_KEY_TAG) {
            Some(at) => format!("{}…", key[at..].chars().take(7).collect::<String>()),
            None => redact(&key),
        };
        Self { key, label }
    }

    /// The first characters of the hash (or of a plain id), to tell sessions apart on a
    /// page; never the whole handle.
    pub fn redacted(&self) -> String {
        self.label.clone()
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({})", self.redacted())
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A live session of one owner, listed by [`DynamoStore::sessions_of`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OwnedSession {
    /// The handle to revoke it with.
    pub handle: SessionHandle,
    /// When it expires.
    pub expires_at: OffsetDateTime,
}

/// What [`DynamoStore::revoke_all`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Revoked {
    /// Sessions deleted.
    pub deleted: usize,
    /// Sessions listed but kept: gone meanwhile, or no longer that owner's (the delete's
    /// condition refused them).
    pub kept: usize,
    /// Whether the session named in `except` was found and left alone.
    pub spared: bool,
}

/// The pages of one owner's live sessions ([`DynamoStore::sessions_of`]). Holds one page
/// at a time.
pub struct SessionsOf {
    store: DynamoStore,
    owner: String,
    start: Option<Item>,
    done: bool,
    page: VecDeque<OwnedSession>,
}

impl fmt::Debug for SessionsOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys (the page's start holds one) or the owner.
        f.debug_struct("SessionsOf")
            .field("done", &self.done)
            .field("buffered", &self.page.len())
            .finish_non_exhaustive()
    }
}

impl SessionsOf {
    /// The next session, reading the next page when this one is used up; `None` at the
    /// end. An error ends the listing.
    pub async fn next(&mut self) -> Option<Result<OwnedSession, Error>> {
        loop {
            if let Some(session) = self.page.pop_front() {
                return Some(Ok(session));
            }
            match self.next_page().await {
                Ok(Some(page)) => self.page = page.into(),
                Ok(None) => return None,
                Err(err) => return Some(Err(err)),
            }
        }
    }

    /// The next page of sessions (up to 100; possibly empty while more follow), or `None`
    /// at the end.
    ///
    /// # Errors
    /// [`Error::DynamoDb`] (the listing then ends), or [`Error::InvalidOwner`].
    pub async fn next_page(&mut self) -> Result<Option<Vec<OwnedSession>>, Error> {
        if self.done {
            return Ok(None);
        }
        let (keys, next) = match self.store.query_owner(&self.owner, self.start.take()).await {
            Ok(found) => found,
            Err(err) => {
                self.done = true;
                return Err(err);
            }
        };
        self.done = next.is_none();
        self.start = next;
        let now = self.store.now_epoch();
        let reads = stream::iter(keys)
            .map(|key| self.store.read_owned(key, &self.owner, now))
            .buffered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut page = Vec::with_capacity(reads.len());
        for read in reads {
            match read {
                Ok(Some(session)) => page.push(session),
                Ok(None) => {}
                Err(err) => {
                    self.done = true;
                    return Err(err);
                }
            }
        }
        Ok(Some(page))
    }

    /// Every remaining session, in one `Vec` (for owners with a bounded number of
    /// sessions; page with [`next`](Self::next) otherwise).
    ///
    /// # Errors
    /// As [`next_page`](Self::next_page).
    pub async fn collect(mut self) -> Result<Vec<OwnedSession>, Error> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }
}

impl DynamoStore {
    /// Finds each session's owner in its data with `owner`, writes it as the owner
    /// attribute, and so indexes the session for [`sessions_of`](Self::sessions_of) and
    /// [`revoke_all`](Self::revoke_all). See [`crate::owner`].
    ///
    /// ```no_run
    /// # fn demo(client: aws_sdk_dynamodb::Client) {
    /// use dynamo_session_store::DynamoStore;
    /// // A session whose data is `{"user": {"id": "u-42", ..}, ..}`.
    /// let store = DynamoStore::new(client, "sessions")
    ///     .with_owner(|data| data.get("user")?.get("id"));
    /// # }
    /// ```
    pub fn with_owner<F>(mut self, owner: F) -> Self
    where
        F: for<'a> Fn(SessionData<'a>) -> Option<&'a Value> + Send + Sync + 'static,
    {
        self.owner = Some(Arc::new(owner));
        self
    }

    /// Names the owner index (default [`DEFAULT_OWNER_INDEX`], `owner-index`).
    pub fn with_owner_index(mut self, index: impl Into<String>) -> Self {
        self.owner_index = Arc::from(index.into());
        self
    }

    /// The owner index's name.
    pub fn owner_index(&self) -> &str {
        &self.owner_index
    }

    /// Whether the store writes owners ([`with_owner`](Self::with_owner)).
    pub fn writes_owners(&self) -> bool {
        self.owner.is_some()
    }

    /// The handle of session `id`, to compare with [`OwnedSession::handle`] (to mark the
    /// current session on a "your devices" page).
    ///
    /// # Errors
    /// [`Error::InvalidId`].
    pub fn handle_of(&self, id: &str) -> Result<SessionHandle, Error> {
        self.schema
            .key_for(id)
            .map(|key| SessionHandle::new(key, &self.schema))
    }

    /// The live sessions of `owner`, a page at a time: expired ones are left out, as
    /// [`get`](Self::get) reads them as absent, and so is any the index still lists for
    /// `owner` that now belongs to someone else. Each page is one `Query` of the index and
    /// one `GetItem` per session (16 at a time).
    pub fn sessions_of(&self, owner: &str) -> SessionsOf {
        SessionsOf {
            store: self.clone(),
            owner: owner.to_owned(),
            start: None,
            done: false,
            page: VecDeque::new(),
        }
    }

    /// Deletes session `handle` if it still belongs to `owner` (conditional delete);
    /// `true` if it was deleted, `false` if it was gone or someone else's.
    ///
    /// # Errors
    /// [`Error::InvalidOwner`], [`Error::InvalidId`] for a handle that is no session key
    /// of this store, or [`Error::DynamoDb`].
    pub async fn revoke(&self, owner: &str, handle: &SessionHandle) -> Result<bool, Error> {
        valid_owner(owner)?;
        if !self.schema.owns_key(&handle.key) {
            return Err(Error::InvalidId {
                reason: "the handle is not a session key of this store".into(),
            });
        }
        let deleted = self.delete_owned(&handle.key, owner).await?;
        match self.hashed_twin(&handle.key) {
            Some(twin) => Ok(self.delete_owned(&twin, owner).await? || deleted),
            None => Ok(deleted),
        }
    }

    /// Deletes every session of `owner`, except the session whose id is `except` (the
    /// current one, for "sign out my other devices"), a page of the index at a time, 16
    /// deletes in flight. Each delete is conditional on the item still belonging to
    /// `owner`: a session that changed owner meanwhile is kept (and counted in
    /// [`Revoked::kept`]). Expired sessions not yet swept are deleted too.
    ///
    /// # Errors
    /// [`Error::InvalidOwner`], [`Error::InvalidId`] for `except`, or
    /// [`Error::RevokeIncomplete`] when a delete or a page of the listing failed: it says
    /// how many were deleted and how many were not; the deletes that could be made were
    /// made, and calling `revoke_all` again finishes the job.
    pub async fn revoke_all(&self, owner: &str, except: Option<&str>) -> Result<Revoked, Error> {
        valid_owner(owner)?;
        let except = except.map(|id| self.schema.key_for(id)).transpose()?;
        let mut revoked = Revoked::default();
        let mut failed = 0;
        let mut first_error = None;
        let mut start = None;
        loop {
            let (keys, next) = match self.query_owner(owner, start.take()).await {
                Ok(found) => found,
                Err(err) => {
                    return Err(Error::RevokeIncomplete {
                        deleted: revoked.deleted,
                        failed,
                        listed_all: false,
                        source: Box::new(first_error.unwrap_or(err)),
                    });
                }
            };
            let keys = keys.into_iter().filter(|key| {
                let spare = except.as_ref() == Some(key);
                revoked.spared |= spare;
                !spare
            });
            let mut deletes = stream::iter(keys)
                .map(|key| async move {
                    let deleted = self.delete_owned(&key, owner).await?;
                    // In the migration window, a plain key listed may have been moved
                    // meanwhile: its hashed twin goes too.
                    match self.hashed_twin(&key) {
                        Some(twin) => Ok(self.delete_owned(&twin, owner).await? || deleted),
                        None => Ok(deleted),
                    }
                })
                .buffer_unordered(CONCURRENCY);
            while let Some(result) = deletes.next().await {
                match result {
                    Ok(true) => revoked.deleted += 1,
                    Ok(false) => revoked.kept += 1,
                    Err(err) => {
                        failed += 1;
                        first_error.get_or_insert(err);
                    }
                }
            }
            match next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        tracing::debug!(
            owner = %redact(owner),
            deleted = revoked.deleted,
            kept = revoked.kept,
            failed,
            "revoked an owner's sessions"
        );
        match first_error {
            None => Ok(revoked),
            Some(err) => Err(Error::RevokeIncomplete {
                deleted: revoked.deleted,
                failed,
                listed_all: true,
                source: Box::new(err),
            }),
        }
    }

    /// The owner of a session about to be written, checked; `None` (with a warning
    /// naming the session, redacted) when the owner function gives an unusable value or
    /// panics.
    pub(crate) fn owner_of(&self, key: &str, data: SessionData<'_>) -> Option<String> {
        match self.find_owner(data)? {
            Ok(owner) => Some(owner),
            Err(reason) => {
                tracing::warn!(
                    session = %self.schema.log_label(key),
                    "{reason}; the session is saved without an owner, so it is not indexed"
                );
                None
            }
        }
    }

    /// The owner named by session data JSON, if usable; no warnings (for reads).
    pub(crate) fn owner_in(&self, data: &str) -> Option<String> {
        self.owner.as_ref()?;
        let value = serde_json::from_str::<Value>(data).ok()?;
        self.find_owner(SessionData::value(&value))?.ok()
    }

    /// Rewrites, on a read, what the item under `key` lacks: its data re-encoded (under
    /// the codec's primary key, [`crate::Codec::is_current`]) and/or its owner (for a
    /// session written before the store wrote owners, which indexes it). One
    /// `UpdateItem` of those attributes alone, only if the item still holds the data read
    /// (`old`) and, for the owner, still has none: a racing save or logout always wins.
    /// Whether it applied; a failure is logged, never the read's error.
    pub(crate) async fn rewrite_on_read(
        &self,
        key: &str,
        old: StoredData,
        data: Option<StoredData>,
        owner: Option<String>,
    ) -> bool {
        let mut sets = Vec::new();
        let mut condition = format!("{DATA_ALIAS} = :d");
        let mut request = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .key(
                self.schema.key_attribute(),
                AttributeValue::S(key.to_owned()),
            )
            .expression_attribute_names(DATA_ALIAS, self.schema.data_attribute())
            .expression_attribute_values(":d", old.into_attribute());
        let what = match (&data, &owner) {
            (Some(_), Some(_)) => "re-encoded and indexed a session",
            (Some(_), None) => "re-encoded a session under the codec's primary key",
            _ => "indexed a session written before the store wrote owners",
        };
        if let Some(data) = data {
            sets.push(format!("{DATA_ALIAS} = :n"));
            request = request.expression_attribute_values(":n", data.into_attribute());
        }
        if let Some(owner) = owner {
            sets.push(format!("{OWNER_ALIAS} = :o"));
            condition.push_str(&format!(" AND attribute_not_exists({OWNER_ALIAS})"));
            request = request
                .expression_attribute_names(OWNER_ALIAS, self.schema.owner_attribute())
                .expression_attribute_values(":o", AttributeValue::S(owner));
        }
        let result = request
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(condition)
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::debug!(session = %self.schema.log_label(key), "{what}");
                true
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                false
            }
            Err(err) => {
                tracing::warn!(
                    session = %self.schema.log_label(key),
                    "could not rewrite a session on read ({what}): {}",
                    Error::from_sdk("UpdateItem", &self.table, err)
                );
                false
            }
        }
    }

    /// The owner function's verdict on `data`: `None` without a function or an owner,
    /// else the checked owner or why it is unusable.
    fn find_owner(&self, data: SessionData<'_>) -> Option<Result<String, String>> {
        let f = self.owner.as_ref()?;
        match catch_unwind(AssertUnwindSafe(|| f(data))) {
            Ok(value) => value.map(check_owner),
            Err(_) => Some(Err("the owner function panicked".into())),
        }
    }

    /// The hashed key of a plain key, in the migration window.
    fn hashed_twin(&self, key: &str) -> Option<String> {
        if self.schema.key_mode() != KeyMode::HashedReadingPlain {
            return None;
        }
        let id = key.strip_prefix(self.schema.key_prefix())?;
        if id.starts_with(HASHED_KEY_TAG) {
            return None;
        }
        self.schema.key_for(id).ok()
    }

    /// One page of the owner index: the session keys of `owner` under this store's
    /// prefix, and where the next page starts.
    async fn query_owner(
        &self,
        owner: &str,
        start: Option<Item>,
    ) -> Result<(Vec<String>, Option<Item>), Error> {
        valid_owner(owner)?;
        let out = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .index_name(self.owner_index.as_ref())
            .key_condition_expression(format!("{OWNER_ALIAS} = :o"))
            .expression_attribute_names(OWNER_ALIAS, self.schema.owner_attribute())
            .expression_attribute_values(":o", AttributeValue::S(owner.to_owned()))
            .limit(PAGE)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| Error::from_sdk("Query", &self.table, e))?;
        let keys = out
            .items()
            .iter()
            .filter_map(|item| self.schema.key_of(item).ok())
            // A shared table: other deployments' sessions of the same owner are theirs.
            .filter(|key| self.schema.owns_key(key))
            .map(str::to_owned)
            .collect();
        Ok((keys, out.last_evaluated_key))
    }

    /// Session `key`, if it is live and `owner`'s.
    async fn read_owned(
        &self,
        key: String,
        owner: &str,
        now: i64,
    ) -> Result<Option<OwnedSession>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .key(self.schema.key_attribute(), AttributeValue::S(key.clone()))
            .projection_expression(format!("{EXPIRES_ALIAS}, {OWNER_ALIAS}"))
            .expression_attribute_names(EXPIRES_ALIAS, self.schema.expires_attribute())
            .expression_attribute_names(OWNER_ALIAS, self.schema.owner_attribute())
            .consistent_read(self.consistent_read)
            .send()
            .await
            .map_err(|e| Error::from_sdk("GetItem", &self.table, e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let theirs = matches!(
            item.get(self.schema.owner_attribute()),
            Some(AttributeValue::S(o)) if o == owner
        );
        // An expiry that is not epoch seconds is someone else's problem: not listed.
        let Ok(expires) = self.schema.expires_of(&item) else {
            return Ok(None);
        };
        let live = Expiry::classify(expires, now.saturating_add(1));
        if !theirs || !matches!(live, Expiry::Live | Expiry::FarFuture) {
            return Ok(None);
        }
        let Ok(expires_at) = self.expiry_date(expires) else {
            return Ok(None);
        };
        Ok(Some(OwnedSession {
            handle: SessionHandle::new(key, &self.schema),
            expires_at,
        }))
    }

    /// Deletes `key` if its owner is `owner`: `true` if deleted.
    async fn delete_owned(&self, key: &str, owner: &str) -> Result<bool, Error> {
        self.cache.forget(key);
        let result = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .key(
                self.schema.key_attribute(),
                AttributeValue::S(key.to_owned()),
            )
            .condition_expression(format!("{OWNER_ALIAS} = :o"))
            .expression_attribute_names(OWNER_ALIAS, self.schema.owner_attribute())
            .expression_attribute_values(":o", AttributeValue::S(owner.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::debug!(session = %self.schema.log_label(key), "revoked session");
                Ok(true)
            }
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(Error::from_sdk("DeleteItem", &self.table, err)),
        }
    }
}

/// `owner` as a query or condition value.
fn valid_owner(owner: &str) -> Result<(), Error> {
    check_owner(&Value::String(owner.to_owned()))
        .map(drop)
        .map_err(|reason| Error::InvalidOwner { reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owners_are_non_empty_strings_or_integers_within_the_key_limit() {
        assert_eq!(check_owner(&json!("u-1")).unwrap(), "u-1");
        assert_eq!(check_owner(&json!(42)).unwrap(), "42");
        assert_eq!(check_owner(&json!(-7)).unwrap(), "-7");
        assert_eq!(check_owner(&json!(u64::MAX)).unwrap(), u64::MAX.to_string());
        for (bad, says) in [
            (json!(""), "empty"),
            (json!(1.5), "fractional"),
            (json!(null), "null"),
            (json!(true), "boolean"),
            (json!([1]), "array"),
            (json!({"id": 1}), "object"),
            (json!("x".repeat(MAX_OWNER_BYTES + 1)), "2049 bytes"),
        ] {
            let reason = check_owner(&bad).unwrap_err();
            assert!(reason.contains(says), "{bad}: {reason}");
        }
        assert!(check_owner(&json!("x".repeat(MAX_OWNER_BYTES))).is_ok());
    }

    #[test]
    fn axum_login_owner_is_the_user_id_under_its_data_key() {
        let logged_in = json!({"axum-login.data": {"user_id": 42, "auth_hash": [1, 2]}});
        assert_eq!(axum_login(SessionData::value(&logged_in)), Some(&json!(42)));
        let anonymous = json!({"axum-login.data": {"user_id": null, "auth_hash": null}});
        assert_eq!(axum_login(SessionData::value(&anonymous)), None);
        let map: HashMap<String, Value> =
            HashMap::from([("axum-login.data".into(), json!({"user_id": "u-7"}))]);
        assert_eq!(axum_login(SessionData::map(&map)), Some(&json!("u-7")));
        assert_eq!(axum_login(SessionData::value(&json!({"visits": 1}))), None);
        assert_eq!(axum_login(SessionData::value(&json!([1, 2]))), None);
    }

    #[test]
    fn handles_never_print_whole() {
        let handle = SessionHandle::from_text("abcdefghijklmnopqrstuvwxyz");
        assert!(!format!("{handle:?}").contains("klmnop"));
        assert!(!handle.to_string().contains("klmnop"));
        assert_eq!(handle.as_str(), "abcdefghijklmnopqrstuvwxyz");
    }
}
