#![doc = include_str!("../README.md")]
//!
//! ## Layout
//!
//! | module | concept |
//! |--------|---------|
//! | [`store`] | [`DynamoStore`]: options, get / put / insert / update / touch / delete |
//! | `session_json` | the frameworks' session maps as the data attribute's JSON text, and back |
//! | `session_store` | the `tower_sessions_core::SessionStore` implementation |
//! | `actix_store` | the `actix_session::storage::SessionStore` implementation (feature `actix-session`) |
//! | [`owner`] | sessions by owner: the owner function, `sessions_of`, `revoke`, `revoke_all` over a sparse keys-only index |
//! | [`schema`] | the table contract: attribute names and aliases, keys and reserved keys, expiry units and classification, the session shape, size limits |
//! | `throttle` | the pure write / touch / skip decision and its bounded memory |
//! | [`table`] | `check_table`, the startup check in words; `create_table` for development |
//! | [`codec`] | the data attribute's encoded form: compression, encryption, the key ring |
//! | [`clock`] | injected time |
//! | [`error`] | the error type and its mapping into tower-sessions |
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

#[cfg(feature = "actix-session")]
mod actix_store;
pub mod clock;
pub mod codec;
pub mod error;
pub mod owner;
pub mod schema;
#[cfg(any(
    feature = "tower-sessions",
    feature = "tower-sessions-014",
    feature = "actix-session"
))]
mod session_json;
#[cfg(any(feature = "tower-sessions", feature = "tower-sessions-014"))]
mod session_store;
pub mod store;
pub mod table;
mod throttle;

/// The actix-session this store implements `SessionStore` of.
#[cfg(feature = "actix-session")]
pub use actix_session;
#[cfg(feature = "actix-session")]
pub use actix_store::SESSION_KEY_LENGTH;
pub use aws_sdk_dynamodb;
pub use clock::{Clock, ManualClock, SystemClock};
#[cfg(feature = "codec")]
pub use codec::KeyRing;
pub use codec::{Codec, CodecError};
pub use error::Error;
pub use owner::{OwnedSession, Revoked, SessionHandle, SessionsOf};
pub use schema::ItemSchema;
pub use store::{DynamoStore, Loaded, WriteOutcome};
pub use table::{TableCheck, TableCreated, TableProblem, TtlStatus, check_table};
/// The tower-sessions-core 0.15 this store implements `SessionStore` of.
#[cfg(feature = "tower-sessions")]
pub use tower_sessions_core;
/// The tower-sessions-core 0.14 this store implements `SessionStore` of.
#[cfg(feature = "tower-sessions-014")]
pub use tower_sessions_core_014;
