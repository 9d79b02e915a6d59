//! The README's actix-web example: an actix-web app with sessions in DynamoDB, through
//! actix-session's `SessionMiddleware` (feature `actix-session`).
//!
//! ```text
//! SESSIONS_TABLE=sessions AWS_REGION=eu-west-1 cargo run --example actix --features actix-session
//! ```
//!
//! It uses the standard AWS configuration chain (credentials, region, and
//! `AWS_ENDPOINT_URL_DYNAMODB` for a local endpoint). `SESSION_KEY` (64 bytes or more) signs
//! and encrypts the cookie; without it, a random key is made at start (every session ends
//! with the process).
use std::time::Duration;

use actix_session::config::{PersistentSession, TtlExtensionPolicy};
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::Key;
use actix_web::{App, HttpResponse, HttpServer, web};
use dynamo_session_store::DynamoStore;

async fn count(session: Session) -> actix_web::Result<HttpResponse> {
    let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", visits)?;
    Ok(HttpResponse::Ok().body(format!("{visits} visits")))
}

async fn logout(session: Session) -> HttpResponse {
    // The item is deleted: the old cookie is refused from now on.
    session.purge();
    HttpResponse::Ok().body("logged out")
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    // A wrong table, missing credentials or region: one line that says what to set, now.
    if let Err(err) = store.check_table().await {
        eprintln!("sessions: {err}");
        std::process::exit(2);
    }
    let key = match std::env::var("SESSION_KEY") {
        Ok(secret) => Key::try_from(secret.as_bytes())?,
        Err(_) => Key::generate(),
    };
    HttpServer::new(move || {
        // Rolling expiry: each request moves the expiry to now + 12 h; the store turns that
        // into at most one small UpdateItem per `touch_after`, not a write per request.
        let sessions = SessionMiddleware::builder(store.clone(), key.clone())
            .session_lifecycle(
                PersistentSession::default()
                    .session_ttl(actix_web::cookie::time::Duration::hours(12))
                    .session_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
            )
            .build();
        App::new()
            .wrap(sessions)
            .route("/", web::get().to(count))
            .route("/logout", web::post().to(logout))
    })
    .bind(("127.0.0.1", 3000))?
    .run()
    .await?;
    Ok(())
}
