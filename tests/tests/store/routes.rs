//! The peer's suite, in our own words: the route tests tower-sessions runs against every
//! store (its `tests/` route tests, which tower-sessions-stores shares), run against
//! `DynamoStore`: the same requests and the same assertions, plus what the table holds.
//!
//! Where an assertion cannot hold as upstream writes it, the test keeps the documented
//! expectation and says why: the store keeps expiries in whole seconds (rounded down),
//! and throttles saves of unchanged data (`touch_after`).

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use dynamo_session_store::{Clock, SystemClock};
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use super::*;

fn routes() -> Router {
    Router::new()
        .route("/", get(|_: Session| async { "hello" }))
        .route(
            "/insert",
            get(|s: Session| async move { s.insert("foo", 42).await.unwrap() }),
        )
        .route(
            "/get",
            get(
                |s: Session| async move { s.get::<u64>("foo").await.unwrap().unwrap().to_string() },
            ),
        )
        .route(
            "/get_value",
            get(|s: Session| async move { format!("{:?}", s.get_value("foo").await.unwrap()) }),
        )
        .route(
            "/remove_value",
            get(|s: Session| async move {
                s.remove_value("foo").await.unwrap();
            }),
        )
        .route(
            "/cycle_id",
            get(|s: Session| async move { s.cycle_id().await.unwrap() }),
        )
        .route(
            "/flush",
            get(|s: Session| async move { s.flush().await.unwrap() }),
        )
        .route(
            "/set_expiry",
            get(|s: Session| async move {
                let at = SystemClock.now() + Duration::days(1);
                s.set_expiry(Some(Expiry::AtDateTime(at)));
            }),
        )
        .route(
            "/session_end",
            get(|s: Session| async move { s.set_expiry(Some(Expiry::OnSessionEnd)) }),
        )
}

/// The routes over a fresh table: `max_age` sets `OnInactivity`, `domain` the cookie's.
async fn app(
    max_age: Option<Duration>,
    domain: Option<&str>,
    always_save: bool,
) -> (TestTable, Router) {
    let table = TestTable::new("routes").await;
    let mut layer = SessionManagerLayer::new(table.store()).with_always_save(always_save);
    if let Some(max_age) = max_age {
        layer = layer.with_expiry(Expiry::OnInactivity(max_age));
    }
    if let Some(domain) = domain {
        layer = layer.with_domain(domain.to_owned());
    }
    (table, routes().layer(layer))
}

pub(super) use integration_tests::in_process::request;

#[tokio::test]
async fn no_session_set() {
    let (table, app) = app(Some(Duration::hours(1)), None, false).await;
    let (status, set, _) = request(&app, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(set.is_none());
    assert!(table.scan_all().await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn bogus_session_cookie() {
    let (table, app) = app(Some(Duration::hours(1)), None, false).await;
    let bogus = "AAAAAAAAAAAAAAAAAAAAAA";
    let (status, set, _) = request(&app, "/insert", Some(bogus)).await;
    assert_eq!(status, StatusCode::OK);
    let set = set.expect("a new session");
    assert_ne!(set.value, bogus);
    assert!(
        table.raw_get(&key_of(bogus)).await.is_none(),
        "the bogus id is never stored"
    );
    assert!(table.raw_get(&key_of(&set.value)).await.is_some());
}

#[tokio::test]
async fn malformed_session_cookie() {
    let (table, app) = app(Some(Duration::hours(1)), None, false).await;
    let (status, set, _) = request(&app, "/", Some("malformed")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(set.is_none_or(|c| c.value != "malformed"));
    assert!(table.scan_all().await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn insert_session() {
    let (table, app) = app(Some(Duration::hours(1)), None, false).await;
    let now = SystemClock.now().unix_timestamp();
    let (_, set, _) = request(&app, "/insert", None).await;
    let set = set.expect("a session cookie");
    assert!(set.has("HttpOnly") && set.has("Secure"), "{set:?}");
    assert_eq!(set.attribute("SameSite"), Some("Strict"));
    assert_eq!(set.attribute("Path"), Some("/"));
    assert!(set.max_age().is_some_and(|age| age <= 3600), "{set:?}");
    // The stored expiry: an hour from now, in whole seconds (rounded down).
    let item = table.raw_get(&key_of(&set.value)).await.expect("stored");
    let expires = expires_of(&item);
    assert!(
        (now + 3599..=now + 3601).contains(&expires),
        "{expires} vs {now}"
    );
}

#[tokio::test]
async fn session_max_age() {
    // No expiry set: a browser-session cookie (no Max-Age). tower-sessions still gives
    // the record an expiry date (two weeks), which is what the table keeps.
    let (table, app) = app(None, None, false).await;
    let now = SystemClock.now().unix_timestamp();
    let (_, set, _) = request(&app, "/insert", None).await;
    let set = set.expect("a session cookie");
    assert!(set.max_age().is_none(), "{set:?}");
    let expires = expires_of(&table.raw_get(&key_of(&set.value)).await.unwrap());
    let two_weeks = 14 * 86_400;
    assert!((now + two_weeks - 1..=now + two_weeks + 1).contains(&expires));
}

#[tokio::test]
async fn get_session() {
    let (_table, app) = app(Some(Duration::hours(1)), None, false).await;
    let (_, set, _) = request(&app, "/insert", None).await;
    let (status, _, body) = request(&app, "/get", Some(&set.unwrap().value)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "42"));
}

#[tokio::test]
async fn get_no_value() {
    let (_table, app) = app(Some(Duration::hours(1)), None, false).await;
    let (_, _, body) = request(&app, "/get_value", None).await;
    assert_eq!(body, "None");
}

#[tokio::test]
async fn remove_last_value() {
    let (table, app) = app(Some(Duration::hours(1)), None, false).await;
    let (_, set, _) = request(&app, "/insert", None).await;
    let id = set.unwrap().value;
    request(&app, "/remove_value", Some(&id)).await;
    let (_, _, body) = request(&app, "/get_value", Some(&id)).await;
    assert_eq!(body, "None");
    // What the table keeps: the session, now with no values.
    let item = table
        .raw_get(&key_of(&id))
        .await
        .expect("the session is still there");
    assert_eq!(data_of(&item), json!({}));
}

#[tokio::test]
async fn cycle_session_id() {
    let (table, app) = app(Some(Duration::hours(1)), None, false).await;
    let (_, first, _) = request(&app, "/insert", None).await;
    let first = first.unwrap().value;
    let (_, second, _) = request(&app, "/cycle_id", Some(&first)).await;
    let second = second.expect("a new cookie").value;
    assert_ne!(first, second);
    let (_, _, body) = request(&app, "/get", Some(&second)).await;
    assert_eq!(body, "42");
    assert!(
        table.raw_get(&key_of(&first)).await.is_none(),
        "the old id's item is gone"
    );
    assert_eq!(table.scan_all().await.len(), 1);
}

#[tokio::test]
async fn flush_session() {
    let (table, app) = app(Some(Duration::hours(1)), None, false).await;
    let (_, set, _) = request(&app, "/insert", None).await;
    let id = set.unwrap().value;
    let (_, set, _) = request(&app, "/flush", Some(&id)).await;
    let set = set.expect("a removal cookie");
    assert_eq!(set.value, "");
    assert_eq!(set.max_age(), Some(0));
    assert_eq!(set.attribute("Path"), Some("/"));
    assert!(
        table.raw_get(&key_of(&id)).await.is_none(),
        "flush deletes the item"
    );
}

#[tokio::test]
async fn flush_with_domain() {
    let (table, app) = app(Some(Duration::hours(1)), Some("localhost"), false).await;
    let (_, set, _) = request(&app, "/insert", None).await;
    let id = set.unwrap().value;
    let (_, set, _) = request(&app, "/flush", Some(&id)).await;
    let set = set.expect("a removal cookie");
    assert_eq!((set.value.as_str(), set.max_age()), ("", Some(0)));
    assert_eq!(set.attribute("Domain"), Some("localhost"));
    assert!(table.raw_get(&key_of(&id)).await.is_none());
}

#[tokio::test]
async fn set_expiry() {
    let (table, app) = app(Some(Duration::hours(1)), Some("localhost"), false).await;
    let (_, set, _) = request(&app, "/insert", None).await;
    let set = set.unwrap();
    assert!((3599..=3601).contains(&set.max_age().unwrap()));
    let (_, set, _) = request(&app, "/set_expiry", Some(&set.value)).await;
    let set = set.expect("the cookie again, with the new expiry");
    let day = 86_400;
    assert!(
        (day - 1..=day + 1).contains(&set.max_age().unwrap()),
        "{set:?}"
    );
    // The table follows: an expiry a day away, in whole seconds. A changed expiry is
    // written even though the data did not change (it moved by more than touch_after).
    let now = SystemClock.now().unix_timestamp();
    let expires = expires_of(&table.raw_get(&key_of(&set.value)).await.unwrap());
    assert!(
        (now + day - 2..=now + day + 1).contains(&expires),
        "{expires}"
    );
}

#[tokio::test]
async fn change_expiry_type() {
    // From a browser-session cookie to a dated one...
    let (_table, session_end) = app(None, Some("localhost"), false).await;
    let (_, set, _) = request(&session_end, "/insert", None).await;
    let set = set.unwrap();
    assert_eq!(set.max_age(), None);
    let (_, set, _) = request(&session_end, "/set_expiry", Some(&set.value)).await;
    let age = set.expect("a dated cookie").max_age().expect("a Max-Age");
    assert!((86_399..=86_401).contains(&age));
    // ...and from a dated one to a browser-session one.
    let (_table, dated) = app(Some(Duration::hours(1)), Some("localhost"), false).await;
    let (_, set, _) = request(&dated, "/insert", None).await;
    let set = set.unwrap();
    assert!(set.max_age().is_some());
    let (_, set, _) = request(&dated, "/session_end", Some(&set.value)).await;
    assert_eq!(set.expect("the cookie again").max_age(), None);
}

#[tokio::test]
async fn always_save_is_throttled() {
    // With `always_save`, upstream expects every request to save the session. This store
    // skips the write of unchanged data whose expiry moved by less than `touch_after`
    // (10 s): the cookie is still sent each time, the table is written once.
    let (table, app) = app(Some(Duration::hours(1)), None, true).await;
    let (_, set, _) = request(&app, "/insert", None).await;
    let id = set.unwrap().value;
    table.requests.reset();
    for _ in 0..5 {
        let (status, set, body) = request(&app, "/get", Some(&id)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "42"));
        assert!(set.is_some(), "always_save sends the cookie each time");
    }
    assert_eq!(
        table.requests.writes(),
        0,
        "throttled: no write within touch_after"
    );
}
