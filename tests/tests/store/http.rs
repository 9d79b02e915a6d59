//! Full request cycles through axum and tower-sessions, including a logout racing a
//! request that saves afterwards.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::sync::Notify;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use super::*;

/// Lets a test hold a request in its handler while others run.
#[derive(Default)]
struct Gates {
    reached: Notify,
    release: Notify,
}

async fn count(session: Session) -> String {
    let visits: u64 = session.get("visits").await.unwrap().unwrap_or(0) + 1;
    session.insert("visits", visits).await.unwrap();
    visits.to_string()
}

async fn peek(session: Session) -> String {
    let visits: u64 = session.get("visits").await.unwrap().unwrap_or(0);
    visits.to_string()
}

async fn logout(session: Session) -> &'static str {
    session.flush().await.unwrap();
    "bye"
}

/// Holds the request until the test lets it finish (and save).
async fn hold(gates: &Gates) {
    gates.reached.notify_one();
    gates.release.notified().await;
}

async fn slow_count(State(gates): State<Arc<Gates>>, session: Session) -> String {
    let visits = count(session).await;
    hold(&gates).await;
    visits
}

async fn slow_peek(State(gates): State<Arc<Gates>>, session: Session) -> String {
    let visits = peek(session).await;
    hold(&gates).await;
    visits
}

fn app(store: DynamoStore, gates: Arc<Gates>) -> Router {
    let layer = SessionManagerLayer::new(store)
        .with_expiry(Expiry::OnInactivity(Duration::minutes(30)))
        .with_always_save(true);
    Router::new()
        .route("/", get(count))
        .route("/peek", get(peek))
        .route("/slow", get(slow_count))
        .route("/slow-peek", get(slow_peek))
        .route("/logout", get(logout))
        .with_state(gates)
        .layer(layer)
}

/// Sends one request; returns (status, session cookie value if set, body).
async fn send(
    app: &Router,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let (status, set_cookie, body) = super::routes::request(app, path, cookie).await;
    (status, set_cookie.map(|c| c.value), body)
}

#[tokio::test]
async fn a_full_request_cycle_counts_visits_and_logout_deletes() {
    let table = TestTable::new("http").await;
    let app = app(table.store(), Arc::default());

    let (status, cookie, body) = send(&app, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "1");
    let id = cookie.expect("the first response sets a session cookie");
    let item = table
        .raw_get(&key_of(&id))
        .await
        .expect("the session item was created");
    assert_no_key_contains(&table, "id", &id).await;
    assert_eq!(data_of(&item), json!({"visits": 1}));
    let expires = expires_of(&item);
    let now = clock_now().now_plus(Duration::ZERO);
    let expected = secs(now + Duration::minutes(30));
    assert!(
        (expected - 5..=expected + 1).contains(&expires),
        "{expires} vs {expected}"
    );
    assert_eq!(table.requests.count("PutItem"), 1);

    let (status, _, body) = send(&app, "/", Some(&id)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "2"));
    let item = table.raw_get(&key_of(&id)).await.unwrap();
    assert_eq!(data_of(&item), json!({"visits": 2}));
    assert_eq!(table.scan_all().await.len(), 1, "the cookie was not reused");

    // A request that only reads, under `with_always_save(true)`, writes nothing.
    table.requests.reset();
    let (_, _, body) = send(&app, "/peek", Some(&id)).await;
    assert_eq!(body, "2");
    assert_eq!(table.requests.writes(), 0, "{:?}", table.requests);

    let (status, cookie, body) = send(&app, "/logout", Some(&id)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "bye"));
    assert_eq!(cookie.as_deref(), Some(""), "the cookie is removed");
    assert!(table.scan_all().await.is_empty());

    // The old cookie no longer works: a new session starts.
    let (_, cookie, body) = send(&app, "/", Some(&id)).await;
    assert_eq!(body, "1");
    let new_id = cookie.unwrap();
    assert_ne!(new_id, id);
    assert!(table.raw_get(&key_of(&id)).await.is_none());
    assert_eq!(table.scan_all().await.len(), 1);
}

/// Runs `path` with the session cookie `id` on `app` and, while its handler is held
/// (session loaded, not yet saved), a logout on `logout_app`; then lets it finish.
async fn logout_during(
    app: &Router,
    gates: &Gates,
    path: &'static str,
    id: &str,
    logout_app: &Router,
) -> (StatusCode, String) {
    let request = tokio::spawn({
        let (app, id) = (app.clone(), id.to_owned());
        async move { send(&app, path, Some(&id)).await }
    });
    // A bound, not a sleep: fails instead of hanging if the handler never runs.
    tokio::time::timeout(std::time::Duration::from_secs(10), gates.reached.notified())
        .await
        .expect("the held request reached its handler");
    let (_, _, body) = send(logout_app, "/logout", Some(id)).await;
    assert_eq!(body, "bye");
    gates.release.notify_one();
    let (status, _, body) = request.await.unwrap();
    (status, body)
}

#[tokio::test]
async fn a_logout_racing_a_request_is_not_undone_by_its_save() {
    let table = TestTable::new("http-race").await;
    let gates = Arc::new(Gates::default());
    let app = app(table.store(), gates.clone());

    // Tab 1 loads the session and counts a visit; tab 2 logs out before tab 1 saves.
    let (_, cookie, _) = send(&app, "/", None).await;
    let id = cookie.unwrap();
    let (status, body) = logout_during(&app, &gates, "/slow", &id, &app).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "2"));
    assert!(
        table.raw_get(&key_of(&id)).await.is_none(),
        "the late save resurrected the session"
    );
    assert!(table.scan_all().await.is_empty());

    // Tab 1 only reads (an unchanged save under `with_always_save`); the logout runs in
    // another process, whose store shares no throttle memory with this one.
    let (_, cookie, _) = send(&app, "/", None).await;
    let id = cookie.unwrap();
    let other_process = self::app(table.store(), Arc::default());
    let (status, body) = logout_during(&app, &gates, "/slow-peek", &id, &other_process).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
    assert!(table.raw_get(&key_of(&id)).await.is_none());
    assert!(table.scan_all().await.is_empty());

    // The old cookie now starts a new session.
    let (_, _, body) = send(&app, "/peek", Some(&id)).await;
    assert_eq!(body, "0");
}
