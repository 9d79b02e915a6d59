//! axum-login 0.18 on this store: in-memory users, a login form, a protected route and a
//! logout, with the sessions in DynamoDB.
//!
//! axum-login 0.18 is built on tower-sessions 0.14, so the store is used through its
//! `tower-sessions-014` feature (its `SessionStore` for tower-sessions-core 0.14); apps on
//! tower-sessions 0.15 use the default `tower-sessions` feature instead.
//!
//! ```text
//! cargo run -p dynamo-session-store --features tower-sessions-014 --example axum_login
//! curl -i -c jar -b jar -d 'username=ferris&password=hunter42' http://127.0.0.1:3001/login
//! curl -i -b jar http://127.0.0.1:3001/protected
//! ```
//!
//! The same [`app`] is driven over real HTTP by the integration suite
//! (`tests/tests/axum_login.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::Form;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum_login::tower_sessions::{Expiry, SessionManagerLayer};
use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend, UserId};
use dynamo_session_store::DynamoStore;
use serde::Deserialize;

/// A user of the example, kept in memory.
#[derive(Clone)]
pub struct User {
    id: u64,
    name: String,
    password: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl AuthUser for User {
    type Id = u64;

    fn id(&self) -> u64 {
        self.id
    }

    /// Changing the password invalidates the user's sessions. (A real app keeps a hash
    /// of the password here, never the password.)
    fn session_auth_hash(&self) -> &[u8] {
        self.password.as_bytes()
    }
}

/// The login form.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

/// The users, by name.
#[derive(Debug, Clone)]
pub struct Users {
    by_name: Arc<HashMap<String, User>>,
}

impl Users {
    /// Two users: `ferris` / `hunter42` and `corro` / `unsafe`.
    pub fn example() -> Self {
        let users = [(1, "ferris", "hunter42"), (2, "corro", "unsafe")].map(|(id, name, pw)| {
            let user = User {
                id,
                name: name.to_owned(),
                password: pw.to_owned(),
            };
            (name.to_owned(), user)
        });
        Self {
            by_name: Arc::new(users.into_iter().collect()),
        }
    }
}

impl AuthnBackend for Users {
    type User = User;
    type Credentials = Credentials;
    type Error = std::convert::Infallible;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, Self::Error> {
        Ok(self
            .by_name
            .get(&creds.username)
            .filter(|user| user.password == creds.password)
            .cloned())
    }

    async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, Self::Error> {
        Ok(self.by_name.values().find(|user| user.id == *id).cloned())
    }
}

/// The app: `GET /` (a visit counter, public), `POST /login`, `GET /protected` (logged-in
/// users only, 401 otherwise), `POST /logout`.
pub fn app(store: DynamoStore) -> Router {
    let sessions = SessionManagerLayer::new(store)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)))
        // Plain http on localhost in the example; keep `Secure` in production.
        .with_secure(false);
    let auth = AuthManagerLayerBuilder::new(Users::example(), sessions).build();
    Router::new()
        .route("/protected", get(protected))
        .route_layer(axum_login::login_required!(Users))
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(auth)
}

async fn home(auth: AuthSession<Users>) -> Result<String, StatusCode> {
    let session = auth.session;
    let visits: u64 = session
        .get("visits")
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .unwrap_or(0)
        + 1;
    session
        .insert("visits", visits)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(format!("visits: {visits}"))
}

async fn login(mut auth: AuthSession<Users>, Form(creds): Form<Credentials>) -> impl IntoResponse {
    match auth.authenticate(creds).await {
        Ok(Some(user)) => match auth.login(&user).await {
            Ok(()) => Redirect::to("/protected").into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn protected(auth: AuthSession<Users>) -> impl IntoResponse {
    match auth.user {
        Some(user) => format!("hello, {}", user.name).into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn logout(mut auth: AuthSession<Users>) -> impl IntoResponse {
    match auth.logout().await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[allow(dead_code)] // the integration suite includes this file for `app` alone
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Errors reach the log: a failed load or save is logged by tower-sessions.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // The standard AWS configuration chain; AWS_ENDPOINT_URL_DYNAMODB for a local server.
    let store = DynamoStore::from_env("sessions-axum-login").await;
    // Created if missing; then checked, so a wrong table (or missing credentials or
    // region) is one line that says what to set.
    let checked = match store.create_table().await {
        Ok(_) => store.check_table().await,
        Err(err) => Err(err),
    };
    if let Err(err) = checked {
        eprintln!("sessions: {err}");
        std::process::exit(2);
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 3001)).await?;
    println!("http://{}/", listener.local_addr()?);
    axum::serve(listener, app(store)).await?;
    Ok(())
}
