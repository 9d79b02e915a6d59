//! An example HTTP API Lambda whose sessions live in the shared sessions table: the "apps
//! share the store crate" case: a stack of its own, `infra/app/template.yaml`, on the
//! sessions stack of `infra/template.yaml`.
//!
//! The same [`app`] router is served by `lambda_http` in `main.rs` and exercised by the
//! tests against the embedded DynamoDB-compatible server.
//!
//! # Layout
//!
//! | item | concept |
//! |------|---------|
//! | [`Settings`] | the table and item schema, from the same variables the sweeper reads |
//! | [`app`] | the axum router: a visit counter and a reset, behind tower-sessions |
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use dynamo_session_store::{DynamoStore, ItemSchema};
use tower_sessions::{Expiry, Session, SessionManagerLayer};

/// How long a session lives after its last request, unless renewed.
pub const DEFAULT_INACTIVITY: time::Duration = time::Duration::hours(12);

/// The session value this app keeps.
const VISITS: &str = "visits";

/// Where the store is: the table name and the item schema.
///
/// Read from the environment variables the template sets on both the app and the sweeper,
/// so the two always agree on attribute names and key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    table: String,
    schema: ItemSchema,
}

/// A required setting is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingSetting(&'static str);

impl std::fmt::Display for MissingSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "environment variable {} is not set (the template sets it from the stack's table)",
            self.0
        )
    }
}

impl std::error::Error for MissingSetting {}

impl Settings {
    /// Reads `SESSIONS_TABLE` (required, trimmed) and the item schema through `lookup`,
    /// with [`ItemSchema::from_lookup`]: the one reading of those variables that the
    /// sweeper shares.
    ///
    /// # Errors
    /// [`MissingSetting`] when `SESSIONS_TABLE` is unset or blank.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, MissingSetting> {
        let table = lookup("SESSIONS_TABLE")
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or(MissingSetting("SESSIONS_TABLE"))?;
        Ok(Self {
            table,
            schema: ItemSchema::from_lookup(lookup),
        })
    }

    /// [`Settings::from_lookup`] on the process environment.
    ///
    /// # Errors
    /// [`MissingSetting`] when `SESSIONS_TABLE` is unset or empty.
    pub fn from_env() -> Result<Self, MissingSetting> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The item schema.
    pub fn schema(&self) -> &ItemSchema {
        &self.schema
    }
}

/// The app: `GET /` counts this browser's visits, `POST /reset` ends its session.
///
/// Sessions expire after `inactivity` without a request; every request renews them
/// (`with_always_save`), which the store throttles to at most one write per `touch_after`.
pub fn app(store: DynamoStore, inactivity: time::Duration) -> Router {
    let sessions = SessionManagerLayer::new(store)
        .with_expiry(Expiry::OnInactivity(inactivity))
        .with_always_save(true);
    Router::new()
        .route("/", get(visit))
        .route("/reset", post(reset))
        .layer(sessions)
}

async fn visit(session: Session) -> Result<Html<String>, AppError> {
    let visits: u64 = session.get(VISITS).await?.unwrap_or(0) + 1;
    session.insert(VISITS, visits).await?;
    let times = if visits == 1 { "time" } else { "times" };
    Ok(Html(format!(
        "<!doctype html>\n<title>Visits</title>\n\
         <p>You have visited this page <strong id=\"visits\">{visits}</strong> {times}.</p>\n\
         <form method=\"post\" action=\"reset\"><button>Start over</button></form>\n"
    )))
}

async fn reset(session: Session) -> Result<Redirect, AppError> {
    session.flush().await?;
    Ok(Redirect::to("/"))
}

/// A session store failure, answered with 500 and logged without the session id.
struct AppError(tower_sessions::session::Error);

impl From<tower_sessions::session::Error> for AppError {
    fn from(err: tower_sessions::session::Error) -> Self {
        Self(err)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "session store failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "session store unavailable",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn table_is_required() {
        assert_eq!(
            Settings::from_lookup(lookup(&[])),
            Err(MissingSetting("SESSIONS_TABLE"))
        );
        assert_eq!(
            Settings::from_lookup(lookup(&[("SESSIONS_TABLE", "")])),
            Err(MissingSetting("SESSIONS_TABLE"))
        );
    }

    #[test]
    fn schema_defaults_match_the_store() {
        let settings = Settings::from_lookup(lookup(&[("SESSIONS_TABLE", "t")])).unwrap();
        assert_eq!(settings.table(), "t");
        assert_eq!(settings.schema(), &ItemSchema::default());
    }

    #[test]
    fn schema_follows_the_template_variables() {
        let settings = Settings::from_lookup(lookup(&[
            ("SESSIONS_TABLE", "t"),
            ("SESSION_KEY_ATTRIBUTE", "pk"),
            ("SESSION_EXPIRES_ATTRIBUTE", "ttl"),
            ("SESSION_DATA_ATTRIBUTE", "body"),
            ("SESSION_KEY_PREFIX", "app1#"),
        ]))
        .unwrap();
        let expected = ItemSchema::default()
            .with_key_attribute("pk")
            .with_expires_attribute("ttl")
            .with_data_attribute("body")
            .with_key_prefix("app1#");
        assert_eq!(settings.schema(), &expected);
    }

    #[test]
    fn the_app_and_the_sweeper_read_the_schema_alike() {
        let vars = [
            ("SESSIONS_TABLE", " t "),
            ("SESSION_KEY_ATTRIBUTE", " pk "),
            ("SESSION_EXPIRES_ATTRIBUTE", "ttl\n"),
            ("SESSION_KEY_PREFIX", "app1 "),
        ];
        let app = Settings::from_lookup(lookup(&vars)).unwrap();
        let sweeper = sweeper_lambda::SweepConfig::from_lookup(lookup(&vars)).unwrap();
        assert_eq!(app.table(), sweeper.table());
        assert_eq!(app.schema(), sweeper.schema());
        assert_eq!(app.schema().key_attribute(), "pk");
        assert_eq!(app.schema().expires_attribute(), "ttl");
        // A prefix is taken as given: it may end in a separator, even a space.
        assert_eq!(app.schema().key_prefix(), "app1 ");
    }
}
