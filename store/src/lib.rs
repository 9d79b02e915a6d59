//! A DynamoDB session store for [`tower-sessions`](https://docs.rs/tower-sessions) (axum)
//! and for plain AWS Lambda handlers.
//!
//! - Sessions live in one table, one item each, keyed by id, with the expiry stored in
//!   **epoch seconds** so DynamoDB's native TTL can delete them as a backstop.
//! - Reads treat an expired item as absent, even before anything has deleted it.
//! - Saves are throttled: unchanged data whose expiry moved by less than `touch_after`
//!   (default 10 s) costs no write at all; past that, only the expiry is updated.
//! - Writes are conditional: `create` never overwrites, and a save or touch never brings
//!   back a session that was deleted (say, by a logout in another tab).
//! - Expired sessions are deleted by the scheduled `sweeper-lambda`, not by app processes.
//!
//! # With axum and tower-sessions
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use dynamo_session_store::DynamoStore;
//! use tower_sessions::{Expiry, Session, SessionManagerLayer};
//! use time::Duration;
//!
//! async fn count(session: Session) -> String {
//!     let visits: u64 = session.get("visits").await.unwrap().unwrap_or(0) + 1;
//!     session.insert("visits", visits).await.unwrap();
//!     format!("{visits} visits")
//! }
//!
//! # async fn run() {
//! let store = DynamoStore::from_env("sessions").await;
//! let layer = SessionManagerLayer::new(store)
//!     .with_expiry(Expiry::OnInactivity(Duration::hours(12)))
//!     .with_always_save(true);
//! let app: Router = Router::new().route("/", get(count)).layer(layer);
//! # }
//! ```
//!
//! ## Rolling expiry without a write per request
//!
//! `Expiry::OnInactivity(d)` together with `with_always_save(true)` makes every request
//! push the expiry to `now + d`, which naively costs one DynamoDB write per request. This
//! store writes only when it matters: when the data is unchanged and the new expiry is less
//! than `touch_after` away from the one last written, the save is skipped; otherwise an
//! expiry-only `UpdateItem` is sent. A session therefore costs at most one write per
//! `touch_after` window while idle requests keep it alive, and its real expiry is never more
//! than `touch_after` earlier than tower-sessions computed. Choose `touch_after` much smaller
//! than the inactivity period (seconds to minutes against hours).
//!
//! # Without a web framework
//!
//! ```no_run
//! # async fn run(client: aws_sdk_dynamodb::Client) -> Result<(), dynamo_session_store::Error> {
//! use dynamo_session_store::DynamoStore;
//! use serde_json::{Value, json};
//!
//! let store = DynamoStore::new(client, "sessions");
//! store.put("user-42-session", &json!({"user": 42}), None).await?;
//! if let Some(session) = store.get::<Value>("user-42-session").await? {
//!     println!("expires at {}", session.expires_at);
//! }
//! store.delete("user-42-session").await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! | module | concept |
//! |--------|---------|
//! | [`store`] | [`DynamoStore`]: options, get / put / insert / update / touch / delete |
//! | `session_store` | the `tower_sessions_core::SessionStore` implementation |
//! | [`schema`] | the table contract: attribute names and aliases, keys and reserved keys, expiry units and classification, the session shape, size limits |
//! | `throttle` | the pure write / touch / skip decision and its bounded memory |
//! | [`table`] | `create_table` for development |
//! | [`clock`] | injected time |
//! | [`error`] | the error type and its mapping into tower-sessions |
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod clock;
pub mod error;
pub mod schema;
#[cfg(any(feature = "tower-sessions", feature = "tower-sessions-014"))]
mod session_store;
pub mod store;
pub mod table;
mod throttle;

pub use aws_sdk_dynamodb;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use schema::ItemSchema;
pub use store::{DynamoStore, Loaded, WriteOutcome};
pub use table::TableCreated;
/// The tower-sessions-core 0.15 this store implements `SessionStore` of.
#[cfg(feature = "tower-sessions")]
pub use tower_sessions_core;
/// The tower-sessions-core 0.14 this store implements `SessionStore` of.
#[cfg(feature = "tower-sessions-014")]
pub use tower_sessions_core_014;

/// The crate README's snippets, compiled as doctests: `cargo test --doc --all-features`
/// (and the workspace's `cargo test`, whose members turn those features on).
#[cfg(all(
    doctest,
    feature = "tower-sessions",
    feature = "tower-sessions-014",
    feature = "from-env"
))]
#[doc = include_str!("../README.md")]
struct ReadmeSnippets;
