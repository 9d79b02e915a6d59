//! axum-login 0.18 (on tower-sessions 0.14) over `DynamoStore`, through the store's
//! `tower-sessions-014` feature: the example app (`store/examples/axum_login.rs`) served on
//! 127.0.0.1 and driven over real HTTP, checked against the table.

#[path = "../../store/examples/axum_login.rs"]
mod example;

use std::net::SocketAddr;

use integration_tests::{TestTable, http};

/// tower-sessions' cookie name.
const COOKIE: &str = "id";

/// The example app on a fresh table, served on a free loopback port.
async fn serve() -> (TestTable, SocketAddr) {
    let table = TestTable::new("axum-login").await;
    let app = example::app(table.store());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (table, addr)
}

/// How many items the table holds.
async fn items(table: &TestTable) -> usize {
    table.scan_all().await.len()
}

#[tokio::test]
async fn login_protects_cycles_and_logout_deletes() {
    let (table, addr) = serve().await;

    // Refused before login, and nothing stored for it.
    let refused = http(addr, ("GET", "/protected"), (COOKIE, None), None).await;
    assert_eq!(refused.status, 401);
    assert_eq!(items(&table).await, 0);

    // A visit before login starts a session: one item.
    let visit = http(addr, ("GET", "/"), (COOKIE, None), None).await;
    assert_eq!((visit.status, visit.body.as_str()), (200, "visits: 1"));
    let before = visit.set_cookie.expect("a session cookie");
    assert!(table.raw_get(&before).await.is_some());

    // A wrong password is refused and changes nothing.
    let wrong = http(
        addr,
        ("POST", "/login"),
        (COOKIE, Some(&before)),
        Some("username=ferris&password=nope"),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.set_cookie, None);

    // Login cycles the session id: a new cookie, the old id's item gone, one item left.
    let login = http(
        addr,
        ("POST", "/login"),
        (COOKIE, Some(&before)),
        Some("username=ferris&password=hunter42"),
    )
    .await;
    assert_eq!(login.status, 303, "{login:?}");
    let after = login.set_cookie.expect("a new session cookie");
    assert_ne!(after, before, "login must cycle the session id");
    assert!(
        table.raw_get(&before).await.is_none(),
        "the old id's item is gone"
    );
    assert!(table.raw_get(&after).await.is_some());
    assert_eq!(items(&table).await, 1);

    // Allowed after login.
    let allowed = http(addr, ("GET", "/protected"), (COOKIE, Some(&after)), None).await;
    assert_eq!(
        (allowed.status, allowed.body.as_str()),
        (200, "hello, ferris")
    );
    // The old cookie is not logged in.
    let old = http(addr, ("GET", "/protected"), (COOKIE, Some(&before)), None).await;
    assert_eq!(old.status, 401);

    // Logout deletes the item.
    let logout = http(addr, ("POST", "/logout"), (COOKIE, Some(&after)), None).await;
    assert_eq!(logout.status, 303, "{logout:?}");
    assert!(
        table.raw_get(&after).await.is_none(),
        "logout deletes the item"
    );
    assert_eq!(items(&table).await, 0);

    // The cookie replayed after logout is refused, and creates nothing.
    let replayed = http(addr, ("GET", "/protected"), (COOKIE, Some(&after)), None).await;
    assert_eq!(replayed.status, 401);
    // At most an empty cookie, removing the stale one; never a new session.
    assert!(
        replayed.set_cookie.as_deref().is_none_or(str::is_empty),
        "{replayed:?}"
    );
    assert_eq!(items(&table).await, 0);
}
