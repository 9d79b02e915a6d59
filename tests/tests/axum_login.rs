//! axum-login 0.18 (on tower-sessions 0.14) over `DynamoStore`, through the store's
//! `tower-sessions-014` feature: the example app (`store/examples/axum_login.rs`) served on
//! 127.0.0.1 and driven over real HTTP, checked against the table.

#[path = "../../store/examples/axum_login.rs"]
mod example;

use std::net::SocketAddr;

use aws_sdk_dynamodb::types::AttributeValue;

use dynamo_session_store::{Codec, KeyRing, codec, owner};
use integration_tests::{TestTable, http, key_of};

/// tower-sessions' cookie name.
const COOKIE: &str = "id";

/// The example app on a fresh table (with the owner index, as `create_table` makes it for
/// the example's store), served on a free loopback port.
async fn serve() -> (TestTable, SocketAddr) {
    let table =
        TestTable::created_by("axum-login", |store| store.with_owner(owner::axum_login)).await;
    let app = example::app(table.store());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (table, addr)
}

/// The example app with its data encrypted and compressed (the `codec` feature).
async fn serve_encrypted() -> (TestTable, SocketAddr) {
    let table = TestTable::created_by("axum-login-enc", |store| {
        store.with_owner(owner::axum_login)
    })
    .await;
    let keys = KeyRing::parse(&format!("k1={}", codec::generate_key().unwrap())).unwrap();
    let store = table
        .store()
        .with_codec(Codec::new().with_compression().with_encryption(keys));
    let app = example::app(store);
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
    assert!(table.raw_get(&key_of(&before)).await.is_some());

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
        table.raw_get(&key_of(&before)).await.is_none(),
        "the old id's item is gone"
    );
    assert!(table.raw_get(&key_of(&after)).await.is_some());
    assert_eq!(items(&table).await, 1);
    // What anyone who can read the table sees holds no cookie: no attribute equals or
    // contains the logged-in session's id (the key is its hash; the owner is the user).
    for item in table.scan_all().await {
        for (name, value) in &item {
            let text = format!("{value:?}");
            assert!(!text.contains(&after), "`{name}` holds the cookie: {text}");
            assert!(!text.contains("hunter42"), "`{name}` holds the password");
        }
    }

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
        table.raw_get(&key_of(&after)).await.is_none(),
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

/// Logs `user` in from a fresh cookie jar: its session cookie.
async fn log_in(addr: SocketAddr, user: &str, password: &str) -> String {
    let form = format!("username={user}&password={password}");
    let login = http(addr, ("POST", "/login"), (COOKIE, None), Some(&form)).await;
    assert_eq!(login.status, 303, "{login:?}");
    login.set_cookie.expect("a session cookie")
}

/// The status of `GET /protected` with `cookie`.
async fn protected(addr: SocketAddr, cookie: &str) -> u16 {
    http(addr, ("GET", "/protected"), (COOKIE, Some(cookie)), None)
        .await
        .status
}

#[tokio::test]
async fn signing_out_other_devices_refuses_them_on_their_very_next_request() {
    let (table, addr) = serve().await;
    // One user on two devices, another user on a third.
    let laptop = log_in(addr, "ferris", "hunter42").await;
    let phone = log_in(addr, "ferris", "hunter42").await;
    let other_user = log_in(addr, "corro", "unsafe").await;
    for cookie in [&laptop, &phone, &other_user] {
        assert_eq!(protected(addr, cookie).await, 200);
    }

    // "Your devices" lists both of ferris's sessions, marks this one, shows no id whole.
    let devices = http(addr, ("GET", "/devices"), (COOKIE, Some(&laptop)), None).await;
    assert_eq!(devices.status, 200, "{devices:?}");
    assert_eq!(devices.body.lines().count(), 2, "{}", devices.body);
    assert_eq!(devices.body.matches("(this device)").count(), 1);
    assert!(!devices.body.contains(&laptop) && !devices.body.contains(&phone));

    // From the laptop: sign out the other devices.
    let revoke = http(
        addr,
        ("POST", "/devices/sign-out-others"),
        (COOKIE, Some(&laptop)),
        None,
    )
    .await;
    assert_eq!(
        (revoke.status, revoke.body.as_str()),
        (200, "signed out 1 other sessions")
    );
    // The phone is refused on its very next request; the laptop stays logged in, and
    // the other user is untouched.
    assert_eq!(protected(addr, &phone).await, 401);
    assert!(table.raw_get(&key_of(&phone)).await.is_none());
    assert_eq!(protected(addr, &laptop).await, 200);
    assert_eq!(protected(addr, &other_user).await, 200);
}

#[tokio::test]
async fn changing_the_password_signs_out_every_other_session_at_once() {
    let (_table, addr) = serve().await;
    let laptop = log_in(addr, "ferris", "hunter42").await;
    let phone = log_in(addr, "ferris", "hunter42").await;
    let other_user = log_in(addr, "corro", "unsafe").await;

    let changed = http(
        addr,
        ("POST", "/password"),
        (COOKIE, Some(&laptop)),
        Some("password=correct-horse"),
    )
    .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_eq!(
        changed.body,
        "password changed; signed out 1 other sessions"
    );
    // The laptop is signed in again under a new id, and stays logged in.
    let laptop_now = changed.set_cookie.expect("a new session cookie");
    assert_ne!(laptop_now, laptop);
    assert_eq!(protected(addr, &laptop_now).await, 200);
    // The phone is refused on its very next request, and so is the laptop's old cookie.
    assert_eq!(protected(addr, &phone).await, 401);
    assert_eq!(protected(addr, &laptop).await, 401);
    assert_eq!(protected(addr, &other_user).await, 200);
    // The new password logs in, the old one does not.
    log_in(addr, "ferris", "correct-horse").await;
    let old = http(
        addr,
        ("POST", "/login"),
        (COOKIE, None),
        Some("username=ferris&password=hunter42"),
    )
    .await;
    assert_eq!(old.status, 401);
}

#[tokio::test]
async fn with_encryption_the_table_holds_neither_the_cookie_nor_the_session_data() {
    let (table, addr) = serve_encrypted().await;
    let visit = http(addr, ("GET", "/"), (COOKIE, None), None).await;
    let before = visit.set_cookie.expect("a session cookie");
    let cookie = log_in_with(addr, &before, "ferris", "hunter42").await;
    assert_eq!(protected(addr, &cookie).await, 200);
    let items = table.scan_all().await;
    assert_eq!(items.len(), 1);
    for item in &items {
        for (name, value) in item {
            // Binary values as their bytes, the others as the SDK prints them.
            let text = match value {
                AttributeValue::B(blob) => String::from_utf8_lossy(blob.as_ref()).into_owned(),
                other => format!("{other:?}"),
            };
            assert!(!text.contains(&cookie), "`{name}` holds the cookie: {text}");
            // Nothing of the session's JSON: not axum-login's keys, not the visit
            // counter, not the user's name or password.
            for plain in ["axum-login", "user_id", "visits", "ferris", "hunter42"] {
                assert!(!text.contains(plain), "`{name}` holds `{plain}`: {text}");
            }
        }
        assert!(
            matches!(item.get("data"), Some(AttributeValue::B(_))),
            "the data is binary: {item:?}"
        );
    }
    // The app works as before: logged in across requests, logged out by logout.
    assert_eq!(protected(addr, &cookie).await, 200);
    let logout = http(addr, ("POST", "/logout"), (COOKIE, Some(&cookie)), None).await;
    assert_eq!(logout.status, 303);
    assert_eq!(protected(addr, &cookie).await, 401);
}

/// Logs `user` in from the jar holding `cookie`: the new session cookie.
async fn log_in_with(addr: SocketAddr, cookie: &str, user: &str, password: &str) -> String {
    let form = format!("username={user}&password={password}");
    let login = http(
        addr,
        ("POST", "/login"),
        (COOKIE, Some(cookie)),
        Some(&form),
    )
    .await;
    assert_eq!(login.status, 303, "{login:?}");
    login.set_cookie.expect("a new session cookie")
}
