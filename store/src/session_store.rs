//! The `tower_sessions_core::SessionStore` implementation, for tower-sessions 0.15
//! (feature `tower-sessions`, on by default) and 0.14 (feature `tower-sessions-014`, for
//! axum-login 0.18 and the ecosystem's stores still on it).
//!
//! | trait call | DynamoDB |
//! |------------|----------|
//! | `create` | `PutItem` conditional on `attribute_not_exists`; a taken id is replaced by a fresh random one and retried |
//! | `save`   | throttled: nothing, an expiry-only `UpdateItem`, or a `PutItem`, each conditional on the session still existing unexpired, so a save racing a logout never brings the session back |
//! | `load`   | `GetItem` (strongly consistent by default); expired items read as absent |
//! | `delete` | `DeleteItem` |
//!
//! The two versions' traits, `Id`, `Record` and error enum have the same shape, so one
//! implementation, written once in `session_store_for!`, is instantiated for each enabled
//! version: there is no second copy of create, save, load or delete. Each instance also
//! maps [`Error`] into that version's `session_store::Error`, in one `From` impl.

use std::collections::HashMap;

use crate::error::Error;
use crate::owner::SessionData;
use crate::session_json::{parse_session_map, sorted_json};
use crate::store::{DynamoStore, Mode, WriteOutcome};

/// How many fresh ids `SessionStore::create` tries before giving up.
const MAX_CREATE_ATTEMPTS: u32 = 8;

/// Session data as JSON, with keys in sorted order so unchanged data always encodes the
/// same (a `HashMap` iterates in a random order).
fn encode_data(data: &HashMap<String, serde_json::Value>) -> Result<String, Error> {
    sorted_json(data)
}

/// `SessionStore` for `DynamoStore`, and `From<Error>` for the session store error, of the
/// tower-sessions-core crate named `$core`.
macro_rules! session_store_for {
    ($core:ident) => {
        impl From<Error> for $core::session_store::Error {
            fn from(err: Error) -> Self {
                use $core::session_store::Error as TsError;
                match err {
                    Error::Encode(_) | Error::Codec(_) | Error::TooLarge { .. } => TsError::Encode(err.to_string()),
                    Error::Decode { .. } => TsError::Decode(err.to_string()),
                    _ => TsError::Backend(err.to_string()),
                }
            }
        }

        #[async_trait::async_trait]
        impl $core::SessionStore for DynamoStore {
            async fn create(
                &self,
                record: &mut $core::session::Record,
            ) -> $core::session_store::Result<()> {
                let json = encode_data(&record.data)?;
                let expires = record.expiry_date.unix_timestamp();
                for _ in 0..MAX_CREATE_ATTEMPTS {
                    let key = self.schema.key_for(&record.id.to_string())?;
                    let owner = self.owner_of(&key, SessionData::map(&record.data));
                    match self.write(key, json.clone(), expires, Mode::Insert, owner).await? {
                        WriteOutcome::AlreadyExists => {
                            tracing::warn!(
                                session = %self.label_of_id(&record.id.to_string()),
                                "session id collision; picking another"
                            );
                            record.id = $core::session::Id::default();
                        }
                        _ => return Ok(()),
                    }
                }
                Err(Error::IdCollision {
                    attempts: MAX_CREATE_ATTEMPTS,
                }
                .into())
            }

            async fn save(
                &self,
                record: &$core::session::Record,
            ) -> $core::session_store::Result<()> {
                let key = self.schema.key_for(&record.id.to_string())?;
                let json = encode_data(&record.data)?;
                let owner = self.owner_of(&key, SessionData::map(&record.data));
                let expires = record.expiry_date.unix_timestamp();
                let outcome = self.write(key, json, expires, Mode::Update, owner).await?;
                if outcome == WriteOutcome::Gone {
                    tracing::debug!(
                        session = %self.label_of_id(&record.id.to_string()),
                        "session was deleted or expired before this save; not recreating it"
                    );
                }
                Ok(())
            }

            async fn load(
                &self,
                session_id: &$core::session::Id,
            ) -> $core::session_store::Result<Option<$core::session::Record>> {
                let Some((json, expires)) = self.read_id(&session_id.to_string()).await? else {
                    return Ok(None);
                };
                let data = parse_session_map(&json).map_err(|e| Error::Decode {
                    attribute: self.schema.data_attribute().to_owned(),
                    problem: "is not a JSON object of session values".into(),
                    source: Some(e),
                })?;
                Ok(Some($core::session::Record {
                    id: *session_id,
                    data,
                    expiry_date: self.expiry_date(expires)?,
                }))
            }

            async fn delete(
                &self,
                session_id: &$core::session::Id,
            ) -> $core::session_store::Result<()> {
                DynamoStore::delete(self, &session_id.to_string()).await?;
                Ok(())
            }
        }
    };
}

#[cfg(feature = "tower-sessions")]
session_store_for!(tower_sessions_core);

#[cfg(feature = "tower-sessions-014")]
session_store_for!(tower_sessions_core_014);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_encodes_in_sorted_key_order() {
        let mut a = HashMap::new();
        let mut b = HashMap::new();
        for (k, v) in [("z", 1), ("a", 2), ("m", 3), ("q", 4), ("c", 5)] {
            a.insert(k.to_owned(), serde_json::json!(v));
        }
        for (k, v) in [("c", 5), ("q", 4), ("m", 3), ("a", 2), ("z", 1)] {
            b.insert(k.to_owned(), serde_json::json!(v));
        }
        let encoded = encode_data(&a).unwrap();
        assert_eq!(encoded, encode_data(&b).unwrap());
        assert_eq!(encoded, r#"{"a":2,"c":5,"m":3,"q":4,"z":1}"#);
    }
}
