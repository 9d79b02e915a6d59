//! axum-login 0.18 on this store: in-memory users, a login form, a protected route and a
//! logout, with the sessions in DynamoDB; and, through the owner index, a user's devices,
//! "sign out my other devices" and "change password", which sign out every other session
//! of that user at once (not on their next request, and not only where the app compares
//! a password hash).
//!
//! axum-login 0.18 is built on tower-sessions 0.14, so the store is used through its
//! `tower-sessions-014` feature (its `SessionStore` for tower-sessions-core 0.14); apps on
//! tower-sessions 0.15 use the default `tower-sessions` feature instead.
//!
//! ```text
//! cargo run -p dynamo-session-store --features tower-sessions-014 --example axum_login
//! curl -i -c jar -b jar -d 'username=ferris&password=hunter42' http://127.0.0.1:3001/login
//! curl -i -b jar http://127.0.0.1:3001/protected
//! curl -i -b jar http://127.0.0.1:3001/devices
//! curl -i -b jar -X POST http://127.0.0.1:3001/devices/sign-out-others
//! curl -i -c jar -b jar -d 'password=correct-horse' http://127.0.0.1:3001/password
//! ```
//!
//! The same [`app`] is driven over real HTTP by the integration suite
//! (`tests/tests/axum_login.rs`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum_login::tower_sessions::{Expiry, SessionManagerLayer};
use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend, UserId};
use dynamo_session_store::{DynamoStore, owner};
use serde::Deserialize;

/// A user of the example, kept in memory.
#[derive(Clone)]
pub struct User {
    id: u64,
    name: String,
    /// A digest of the password: what the session keeps (axum-login's auth hash), so the
    /// table never holds the password. (A real app stores a slow, salted password hash,
    /// argon2 or bcrypt, and may derive the auth hash from it.)
    password_digest: Vec<u8>,
}

/// The example's password digest: SHA-256 (the store's own dependency; a real app uses
/// a password hash).
fn digest(password: &str) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(password.as_bytes()).to_vec()
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

    /// Changing the password invalidates the user's sessions. A digest, never the
    /// password: axum-login keeps it in the session's data.
    fn session_auth_hash(&self) -> &[u8] {
        &self.password_digest
    }
}

/// The login form.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

/// The password form.
#[derive(Debug, Clone, Deserialize)]
pub struct NewPassword {
    password: String,
}

/// The users, by name.
#[derive(Debug, Clone)]
pub struct Users {
    by_name: Arc<RwLock<HashMap<String, User>>>,
}

impl Users {
    /// Two users: `ferris` / `hunter42` and `corro` / `unsafe`.
    pub fn example() -> Self {
        let users = [(1, "ferris", "hunter42"), (2, "corro", "unsafe")].map(|(id, name, pw)| {
            let user = User {
                id,
                name: name.to_owned(),
                password_digest: digest(pw),
            };
            (name.to_owned(), user)
        });
        Self {
            by_name: Arc::new(RwLock::new(users.into_iter().collect())),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, User>> {
        self.by_name.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets `name`'s password; the updated user.
    fn set_password(&self, name: &str, password: String) -> Option<User> {
        let mut users = self.by_name.write().unwrap_or_else(|p| p.into_inner());
        let user = users.get_mut(name)?;
        user.password_digest = digest(&password);
        Some(user.clone())
    }
}

impl AuthnBackend for Users {
    type User = User;
    type Credentials = Credentials;
    type Error = std::convert::Infallible;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, Self::Error> {
        Ok(self
            .read()
            .get(&creds.username)
            .filter(|user| user.password_digest == digest(&creds.password))
            .cloned())
    }

    async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, Self::Error> {
        Ok(self.read().values().find(|user| user.id == *id).cloned())
    }
}

/// The app: `GET /` (a visit counter, public), `POST /login`, `GET /protected` (logged-in
/// users only, 401 otherwise), `POST /logout`; for logged-in users, `GET /devices` (their
/// sessions), `POST /devices/sign-out-others` and `POST /password`, both of which sign
/// out every other session of the user at once.
///
/// The store is told where axum-login keeps the user id ([`owner::axum_login`]), so each
/// logged-in session is indexed under its user; its table needs the owner index
/// (`DynamoStore::create_table` makes it, `infra/template.yaml` with `OwnerIndex=enabled`).
pub fn app(store: DynamoStore) -> Router {
    let store = store.with_owner(owner::axum_login);
    let users = Users::example();
    let sessions = SessionManagerLayer::new(store.clone())
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)))
        // Plain http on localhost in the example; keep `Secure` in production.
        .with_secure(false);
    let auth = AuthManagerLayerBuilder::new(users.clone(), sessions).build();
    Router::new()
        .route("/protected", get(protected))
        .route("/devices", get(devices))
        .route("/devices/sign-out-others", post(sign_out_others))
        .route("/password", post(change_password))
        .route_layer(axum_login::login_required!(Users))
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(auth)
        .with_state(AppState { store, users })
}

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    store: DynamoStore,
    users: Users,
}

/// The current session's id, once it has one.
fn current_id(auth: &AuthSession<Users>) -> Option<String> {
    auth.session.id().map(|id| id.to_string())
}

/// The user's sessions: when each expires, this one marked, no id shown whole.
async fn devices(
    auth: AuthSession<Users>,
    State(app): State<AppState>,
) -> Result<String, StatusCode> {
    let user = auth.user.as_ref().ok_or(StatusCode::UNAUTHORIZED)?;
    let current = match current_id(&auth) {
        Some(id) => app.store.handle_of(&id).ok(),
        None => None,
    };
    let mut sessions = app.store.sessions_of(&user.id.to_string());
    let mut page = String::new();
    while let Some(session) = sessions.next().await {
        let session = session.map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
        let this = if Some(&session.handle) == current.as_ref() {
            " (this device)"
        } else {
            ""
        };
        let _ = writeln!(
            page,
            "{} expires {}{this}",
            session.handle, session.expires_at
        );
    }
    Ok(page)
}

/// "Sign out my other devices": every session of the user but this one, at once.
async fn sign_out_others(
    auth: AuthSession<Users>,
    State(app): State<AppState>,
) -> Result<String, StatusCode> {
    let user = auth.user.as_ref().ok_or(StatusCode::UNAUTHORIZED)?;
    let deleted = sign_out_other_sessions(&app.store, user, &auth).await?;
    Ok(format!("signed out {deleted} other sessions"))
}

/// Revokes every session of `user` but the current one, at once: how many it ended.
async fn sign_out_other_sessions(
    store: &DynamoStore,
    user: &User,
    auth: &AuthSession<Users>,
) -> Result<usize, StatusCode> {
    let current = current_id(auth);
    let revoked = store
        .revoke_all(&user.id.to_string(), current.as_deref())
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok(revoked.deleted)
}

/// "Change password": sets it, signs out every other session of the user at once, and
/// signs this session in again (a new id, the new password's hash).
async fn change_password(
    mut auth: AuthSession<Users>,
    State(app): State<AppState>,
    Form(form): Form<NewPassword>,
) -> Result<String, StatusCode> {
    let name = auth
        .user
        .as_ref()
        .ok_or(StatusCode::UNAUTHORIZED)?
        .name
        .clone();
    let user = app
        .users
        .set_password(&name, form.password)
        .ok_or(StatusCode::UNAUTHORIZED)?;
    // Every other session, at once; then this one signs in again under a new id with
    // the new password's hash (the old id is deleted with the response).
    let deleted = sign_out_other_sessions(&app.store, &user, &auth).await?;
    auth.session
        .cycle_id()
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    auth.login(&user)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(format!(
        "password changed; signed out {deleted} other sessions"
    ))
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
    // Owners on, so that create_table makes the owner index the app's /devices routes
    // query (app() turns them on too, for callers that pass a plain store).
    let store = DynamoStore::from_env("sessions-axum-login")
        .await
        .with_owner(owner::axum_login);
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
