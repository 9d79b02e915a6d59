//! The `actix_session::storage::SessionStore` implementation (feature `actix-session`), on
//! the same core calls as the tower-sessions one, so both frameworks read and write the
//! same table format and one sweeper serves both.
//!
//! | trait call | DynamoDB |
//! |------------|----------|
//! | `save` | a fresh key of 64 alphanumeric characters from the operating system's random source (as actix's own, about 381 bits); `PutItem` conditional on the key being free: a taken key is replaced, never overwritten |
//! | `update` | throttled: nothing, an expiry-only `UpdateItem` or a `PutItem`, each conditional on the session still existing unexpired; a session gone meanwhile (logged out elsewhere, revoked, expired, swept) is never brought back: not under the old key, and its state not under a new one (the client gets a new, empty session) |
//! | `update_ttl` | the throttled touch: an `UpdateItem` of the expiry at most once per `touch_after` per session, conditional on the session still existing; so `TtlExtensionPolicy::OnEveryRequest` does not cost a write per request |
//! | `load` | `GetItem` (strongly consistent by default); expired items read as absent; a key the store could never have issued reads as absent |
//! | `delete` | `DeleteItem` |
//!
//! The state, actix's `HashMap<String, String>`, is stored as a JSON object in the data
//! attribute, keys in sorted order; the expiry in epoch seconds, as everywhere. actix's
//! futures need not be `Send`, and actix runs one single-threaded runtime per worker: the
//! store needs nothing more than the runtime it is called on.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::error::Error;
use crate::owner::SessionData;
use crate::store::{DynamoStore, Mode, WriteOutcome};

/// How many fresh keys `save` tries before giving up (a collision of 381-bit keys does not
/// happen; a key taken on purpose is not given back).
const MAX_SAVE_ATTEMPTS: u32 = 8;
/// The length of a session key: 64 alphanumeric characters, as actix generates them.
pub const SESSION_KEY_LENGTH: usize = 64;

/// A fresh, unguessable session key.
fn fresh_key() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(SESSION_KEY_LENGTH)
        .map(char::from)
        .collect()
}

/// The state as JSON, with keys in sorted order so unchanged state always encodes the same.
fn encode_state(state: &HashMap<String, String>) -> Result<String, Error> {
    crate::session_json::sorted_json(state)
}

/// Whether `err` is about the session's data rather than the table.
fn is_data_error(err: &Error) -> bool {
    matches!(
        err,
        Error::Encode(_) | Error::Codec(_) | Error::TooLarge { .. }
    )
}

impl DynamoStore {
    /// The expiry `ttl` from now, epoch seconds (a negative TTL expires at once).
    fn actix_expiry(&self, ttl: &Duration) -> i64 {
        self.now_epoch().saturating_add(ttl.whole_seconds().max(0))
    }

    /// The owner of `state`, when the store writes owners: actix keeps each value as a
    /// JSON text, so the owner function sees them parsed (a value that is not JSON, as a
    /// string).
    fn actix_owner(&self, key: &str, state: &HashMap<String, String>) -> Option<String> {
        self.owner.as_ref()?;
        let parsed: HashMap<String, serde_json::Value> = state
            .iter()
            .map(|(name, text)| {
                let value = serde_json::from_str(text)
                    .unwrap_or_else(|_| serde_json::Value::String(text.clone()));
                (name.clone(), value)
            })
            .collect();
        self.owner_of(key, SessionData::map(&parsed))
    }

    /// Writes `json` under a fresh key, retrying on a taken one.
    async fn save_fresh(
        &self,
        json: String,
        expires: i64,
        owner: Option<String>,
    ) -> Result<SessionKey, Error> {
        for _ in 0..MAX_SAVE_ATTEMPTS {
            let id = fresh_key();
            let key = self.schema.key_for(&id)?;
            let label = self.schema.log_label(&key);
            match self
                .write(key, json.clone(), expires, Mode::Insert, owner.clone())
                .await?
            {
                WriteOutcome::AlreadyExists => {
                    tracing::warn!(session = %label, "session key taken; picking another");
                }
                _ => {
                    return Ok(SessionKey::try_from(id)
                        .expect("64 alphanumeric characters are a valid session key"));
                }
            }
        }
        Err(Error::IdCollision {
            attempts: MAX_SAVE_ATTEMPTS,
        })
    }
}

impl SessionStore for DynamoStore {
    async fn load(
        &self,
        session_key: &SessionKey,
    ) -> Result<Option<HashMap<String, String>>, LoadError> {
        // A key this store never issues (a `!`, or too long for the table) holds nothing.
        if self.schema.key_for(session_key.as_ref()).is_err() {
            return Ok(None);
        }
        let Some((json, _)) = self
            .read_id(session_key.as_ref())
            .await
            .map_err(|e| LoadError::Other(e.into()))?
        else {
            return Ok(None);
        };
        let state = crate::session_json::parse_session_map(&json).map_err(|e| {
            LoadError::Deserialization(
                Error::Decode {
                    attribute: self.schema.data_attribute().to_owned(),
                    problem: "is not a JSON object of string values (actix-session state)".into(),
                    source: Some(e),
                }
                .into(),
            )
        })?;
        Ok(Some(state))
    }

    async fn save(
        &self,
        session_state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, SaveError> {
        let json = encode_state(&session_state).map_err(|e| SaveError::Serialization(e.into()))?;
        let owner = self.actix_owner("(new session)", &session_state);
        self.save_fresh(json, self.actix_expiry(ttl), owner)
            .await
            .map_err(|e| {
                if is_data_error(&e) {
                    SaveError::Serialization(e.into())
                } else {
                    SaveError::Other(e.into())
                }
            })
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: HashMap<String, String>,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let update_error = |e: Error| {
            if is_data_error(&e) {
                UpdateError::Serialization(e.into())
            } else {
                UpdateError::Other(e.into())
            }
        };
        let json = encode_state(&session_state).map_err(update_error)?;
        let expires = self.actix_expiry(ttl);
        let owner = self.actix_owner(session_key.as_ref(), &session_state);
        let outcome = match self.schema.key_for(session_key.as_ref()) {
            Ok(key) => self
                .write(key, json, expires, Mode::Update, owner)
                .await
                .map_err(update_error)?,
            Err(_) => WriteOutcome::Gone,
        };
        if outcome != WriteOutcome::Gone {
            return Ok(session_key);
        }
        // Logged out elsewhere, revoked, expired or swept: the old key stays dead, and its
        // state with it (carried over, a revoked session would live on under a new key).
        tracing::debug!(
            session = %self.label_of_id(session_key.as_ref()),
            "session gone before this update; starting an empty one under a new key"
        );
        self.save_fresh("{}".to_owned(), expires, None)
            .await
            .map_err(update_error)
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        let expires_at = time::OffsetDateTime::from_unix_timestamp(self.actix_expiry(ttl))?;
        self.touch(session_key.as_ref(), expires_at).await?;
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        DynamoStore::delete(self, session_key.as_ref()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_64_alphanumeric_characters_and_differ() {
        let (a, b) = (fresh_key(), fresh_key());
        assert_eq!(a.len(), SESSION_KEY_LENGTH);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
        assert!(SessionKey::try_from(a).is_ok());
    }

    #[test]
    fn state_encodes_in_sorted_key_order() {
        let a: HashMap<String, String> = [("z", "1"), ("a", "\"x\"")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(encode_state(&a).unwrap(), r#"{"a":"\"x\"","z":"1"}"#);
    }
}
