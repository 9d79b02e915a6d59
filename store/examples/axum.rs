//! The README's usage example: an axum app with sessions in DynamoDB.
//!
//! ```text
//! SESSIONS_TABLE=sessions AWS_REGION=eu-west-1 cargo run --example axum
//! ```
//!
//! It uses the standard AWS configuration chain (credentials, region, and
//! `AWS_ENDPOINT_URL_DYNAMODB` for a local endpoint). See `demo.rs` for the same on an
//! embedded DynamoDB.
use std::time::Duration;

use axum::{Router, routing::get};
use dynamo_session_store::DynamoStore;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

async fn count(session: Session) -> Result<String, (axum::http::StatusCode, String)> {
    let internal = |e: tower_sessions::session::Error| {
        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    };
    let visits: u64 = session.get("visits").await.map_err(internal)?.unwrap_or(0) + 1;
    session.insert("visits", visits).await.map_err(internal)?;
    Ok(format!("{visits} visits"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Errors reach the log: a failed load or save is logged by tower-sessions.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let table = std::env::var("SESSIONS_TABLE").unwrap_or_else(|_| "sessions".into());
    let store = DynamoStore::from_env(table)
        .await
        // Unchanged sessions are written at most once per 30 s.
        .with_touch_after(Duration::from_secs(30));
    // A wrong table, missing credentials or region: one line that says what to set, now,
    // rather than a blank 500 on every request.
    if let Err(err) = store.check_table().await {
        eprintln!("sessions: {err}");
        std::process::exit(2);
    }

    // Rolling expiry: each request moves the expiry to now + 12 h; the store turns that
    // into at most one small UpdateItem per `touch_after` instead of a write per request.
    let sessions = SessionManagerLayer::new(store)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(12)))
        .with_always_save(true);

    let app = Router::new().route("/", get(count)).layer(sessions);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
