//! The actix-session backend over real HTTP (issue 22): an actix-web `HttpServer` on
//! 127.0.0.1, port 0, in its own single-threaded actix `System` (as actix runs a worker),
//! with `SessionMiddleware` on a `DynamoStore`, against the real server (embedded, or
//! `DYNAMODB_ENDPOINT`). Requests are plain HTTP/1.1 over TCP (`integration_tests::http`),
//! a browser's view: the session cookie is carried by hand. Time on the store's side comes
//! from a [`ManualClock`].
//!
//! | test | shows |
//! |------|-------|
//! | `a_visit_counter_keeps_its_session` | the basic workflow, with signed and with private cookies (the key in the clear, or encrypted) |
//! | `login_renew_logout_and_purge` | renew gives a new key and the old cookie is refused; logout deletes the item and its cookie is refused |
//! | `expiry_moves_on_changes_only_by_default` | `OnStateChanges`: a change moves the expiry, a read does not |
//! | `expiry_moves_on_every_request_once_per_touch_after` | `OnEveryRequest`: a request after `touch_after` moves it with one `UpdateItem`; one within writes nothing |
//! | `a_save_racing_a_logout_does_not_resurrect` | a session deleted elsewhere between load and save is saved under a new key, never the old one |
//! | `an_oversized_session_is_refused_with_nothing_written` | a 500 KB session: a 500, no item |
//! | `one_sweep_serves_actix_and_tower_sessions_apps` | both frameworks' sessions in one table, one sweep: 0 live lost, 0 expired left |

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use actix_session::config::{CookieContentSecurity, PersistentSession, TtlExtensionPolicy};
use actix_session::storage::{SessionKey, SessionStore};
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::Key;
use actix_web::cookie::time::Duration;
use actix_web::{App, HttpResponse, HttpServer, web};
use dynamo_session_store::SESSION_KEY_LENGTH;
use dynamo_session_store::clock::Clock;
use dynamo_session_store::{DynamoStore, ManualClock};
use integration_tests::{TestTable, clock_now, http, key_of};
use sweeper_lambda::{Budget, SweepConfig, sweep};

const COOKIE: &str = "id";

async fn count(session: Session) -> actix_web::Result<HttpResponse> {
    let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", visits)?;
    Ok(HttpResponse::Ok().body(visits.to_string()))
}

async fn peek(session: Session) -> actix_web::Result<HttpResponse> {
    let visits = session.get::<u64>("visits")?.unwrap_or(0);
    Ok(HttpResponse::Ok().body(visits.to_string()))
}

async fn login(session: Session) -> actix_web::Result<HttpResponse> {
    session.renew();
    session.insert("user_id", 42)?;
    Ok(HttpResponse::Ok().body("logged in"))
}

async fn me(session: Session) -> actix_web::Result<HttpResponse> {
    Ok(match session.get::<u64>("user_id")? {
        Some(user) => HttpResponse::Ok().body(user.to_string()),
        None => HttpResponse::Unauthorized().body("who are you?"),
    })
}

async fn logout(session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::Ok().body("bye")
}

/// A visit during which the session is logged out elsewhere: after the middleware loaded
/// it, before it saves the change.
async fn count_racing_a_logout(
    session: Session,
    store: web::Data<DynamoStore>,
) -> actix_web::Result<HttpResponse> {
    let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    let items = store
        .client()
        .scan()
        .table_name(store.table_name())
        .send()
        .await
        .expect("scan");
    // Another instance logs the session out: its item goes (by key: the table holds
    // hashed keys, not ids).
    for item in items.items() {
        store
            .client()
            .delete_item()
            .table_name(store.table_name())
            .key("id", item["id"].clone())
            .send()
            .await
            .expect("delete");
    }
    session.insert("visits", visits)?;
    Ok(HttpResponse::Ok().body(visits.to_string()))
}

async fn big(session: Session) -> actix_web::Result<HttpResponse> {
    session.insert("blob", "x".repeat(500_000))?;
    Ok(HttpResponse::Ok().body("stored?"))
}

/// A running app: its address; dropping it stops the server.
struct RunningApp {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        // Stopping is a future; the server's own thread ends with it.
        drop(self.handle.stop(false));
    }
}

/// Starts the app on `store` with `security` cookies, a one-hour TTL and `policy`.
fn start(
    store: DynamoStore,
    security: CookieContentSecurity,
    policy: TtlExtensionPolicy,
) -> RunningApp {
    let key = Key::generate();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                let sessions = SessionMiddleware::builder(store.clone(), key.clone())
                    .cookie_name(COOKIE.to_owned())
                    .cookie_secure(false)
                    .cookie_content_security(security)
                    .session_lifecycle(
                        PersistentSession::default()
                            .session_ttl(Duration::hours(1))
                            .session_ttl_extension_policy(policy.clone()),
                    )
                    .build();
                App::new()
                    .app_data(web::Data::new(store.clone()))
                    .wrap(sessions)
                    .route("/race", web::get().to(count_racing_a_logout))
                    .route("/count", web::get().to(count))
                    .route("/peek", web::get().to(peek))
                    .route("/login", web::post().to(login))
                    .route("/me", web::get().to(me))
                    .route("/logout", web::post().to(logout))
                    .route("/big", web::post().to(big))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run();
            sender.send(server.handle()).expect("hand the handle over");
            server.await
        })
    });
    let handle = receiver
        .recv_timeout(StdDuration::from_secs(10))
        .expect("the server started");
    RunningApp { addr, handle }
}

/// One request, with the cookie if given: (status, body, the new cookie if one was set).
async fn send(
    app: &RunningApp,
    method: &str,
    path: &str,
    cookie: Option<&str>,
) -> (u16, String, Option<String>) {
    let answer = http(app.addr, (method, path), (COOKIE, cookie), None).await;
    (answer.status, answer.body, answer.set_cookie)
}

/// The session key a signed actix cookie carries: its last 64 characters, after the
/// signature.
fn actix_key(cookie: &str) -> &str {
    &cookie[cookie.len() - SESSION_KEY_LENGTH..]
}

/// The session items of `table`, as (key, expiry).
async fn sessions(table: &TestTable) -> Vec<(String, i64)> {
    let schema = dynamo_session_store::ItemSchema::default();
    table
        .scan_all()
        .await
        .into_iter()
        .map(|item| {
            let key = schema.key_of(&item).unwrap().to_owned();
            (key, schema.expires_of(&item).unwrap())
        })
        .collect()
}

fn store(table: &TestTable, clock: &ManualClock) -> DynamoStore {
    table.store().with_clock(clock.clone())
}

#[tokio::test]
async fn a_visit_counter_keeps_its_session() {
    for security in [
        CookieContentSecurity::Signed,
        CookieContentSecurity::Private,
    ] {
        let table = TestTable::new("actix-basic").await;
        let clock = clock_now();
        let app = start(
            store(&table, &clock),
            security,
            TtlExtensionPolicy::OnStateChanges,
        );
        let (status, body, cookie) = send(&app, "GET", "/count", None).await;
        assert_eq!((status, body.as_str()), (200, "1"), "{security:?}");
        let cookie = cookie.expect("a session cookie");
        // actix sends the cookie again on a change (to move its Max-Age); the session is
        // the same: the count goes on, and the table holds one item.
        let (_, body, again) = send(&app, "GET", "/count", Some(&cookie)).await;
        assert_eq!(body, "2", "{security:?}: the same session");
        let (_, body, _) = send(
            &app,
            "GET",
            "/count",
            Some(&again.unwrap_or(cookie.clone())),
        )
        .await;
        assert_eq!(body, "3", "{security:?}");
        let items = sessions(&table).await;
        assert_eq!(items.len(), 1, "{security:?}");
        let (key, expires) = &items[0];
        // The table holds the session key's hash, never the key the cookie carries.
        assert_eq!(key.len(), 44, "{security:?}: a hashed key");
        assert!(!cookie.contains(&key[1..]), "{security:?}");
        // A signed cookie carries the 64-character key in the clear (after its
        // signature); a private one encrypts it.
        if matches!(security, CookieContentSecurity::Signed) {
            assert_eq!(&key_of(actix_key(&cookie)), key, "{security:?}");
        }
        assert_eq!(
            *expires,
            clock.now().unix_timestamp() + 3600,
            "epoch seconds"
        );
        let stored = table.raw_get(key).await.unwrap();
        assert_eq!(stored["data"].as_s().unwrap(), r#"{"visits":"3"}"#);
    }
}

#[tokio::test]
async fn login_renew_logout_and_purge() {
    for security in [
        CookieContentSecurity::Signed,
        CookieContentSecurity::Private,
    ] {
        let table = TestTable::new("actix-login").await;
        let clock = clock_now();
        let app = start(
            store(&table, &clock),
            security,
            TtlExtensionPolicy::OnStateChanges,
        );
        let (_, _, anonymous) = send(&app, "GET", "/count", None).await;
        let anonymous = anonymous.unwrap();
        // Logging in renews the key: the anonymous cookie no longer names the session.
        let (status, _, logged_in) = send(&app, "POST", "/login", Some(&anonymous)).await;
        assert_eq!(status, 200);
        let logged_in = logged_in.expect("a renewed cookie");
        assert_ne!(logged_in, anonymous);
        assert_eq!(send(&app, "GET", "/me", Some(&logged_in)).await.1, "42");
        assert_eq!(
            send(&app, "GET", "/me", Some(&anonymous)).await.0,
            401,
            "{security:?}"
        );
        assert_eq!(
            sessions(&table).await.len(),
            1,
            "the old key's item is gone"
        );
        // Logging out deletes the item: the cookie is refused from then on.
        assert_eq!(send(&app, "POST", "/logout", Some(&logged_in)).await.0, 200);
        assert!(sessions(&table).await.is_empty(), "{security:?}");
        let (status, _, cookie) = send(&app, "GET", "/me", Some(&logged_in)).await;
        assert_eq!(
            (status, cookie),
            (401, None),
            "{security:?}: a logged-out cookie"
        );
    }
}

#[tokio::test]
async fn expiry_moves_on_changes_only_by_default() {
    let table = TestTable::new("actix-ttl-changes").await;
    let clock = clock_now();
    let app = start(
        store(&table, &clock),
        CookieContentSecurity::Private,
        TtlExtensionPolicy::OnStateChanges,
    );
    let start_at = clock.now().unix_timestamp();
    let cookie = send(&app, "GET", "/count", None).await.2.unwrap();
    clock.advance(time::Duration::minutes(10));
    send(&app, "GET", "/peek", Some(&cookie)).await;
    assert_eq!(
        sessions(&table).await[0].1,
        start_at + 3600,
        "a read moves nothing"
    );
    send(&app, "GET", "/count", Some(&cookie)).await;
    assert_eq!(
        sessions(&table).await[0].1,
        start_at + 600 + 3600,
        "a change moves it"
    );
}

#[tokio::test]
async fn expiry_moves_on_every_request_once_per_touch_after() {
    let table = TestTable::new("actix-ttl-every").await;
    let clock = clock_now();
    let store = store(&table, &clock).with_touch_after(StdDuration::from_secs(10));
    let app = start(
        store,
        CookieContentSecurity::Signed,
        TtlExtensionPolicy::OnEveryRequest,
    );
    let start_at = clock.now().unix_timestamp();
    let cookie = send(&app, "GET", "/count", None).await.2.unwrap();
    // Past `touch_after`: one read moves the expiry with one small write.
    clock.advance(time::Duration::minutes(10));
    table.requests.reset();
    send(&app, "GET", "/peek", Some(&cookie)).await;
    assert_eq!(sessions(&table).await[0].1, start_at + 600 + 3600);
    assert_eq!(table.requests.count("UpdateItem"), 1);
    assert_eq!(table.requests.writes(), 1, "a touch, not a put");
    // Within `touch_after`: requests that only read write nothing at all.
    clock.advance(time::Duration::seconds(5));
    table.requests.reset();
    for _ in 0..5 {
        assert_eq!(send(&app, "GET", "/peek", Some(&cookie)).await.1, "1");
    }
    assert_eq!(table.requests.writes(), 0, "update_ttl within touch_after");
    assert_eq!(sessions(&table).await[0].1, start_at + 600 + 3600);
}

#[tokio::test]
async fn a_save_racing_a_logout_does_not_resurrect() {
    let table = TestTable::new("actix-race").await;
    let clock = clock_now();
    let store = store(&table, &clock);
    let app = start(
        store.clone(),
        CookieContentSecurity::Signed,
        TtlExtensionPolicy::OnStateChanges,
    );
    let cookie = send(&app, "GET", "/count", None).await.2.unwrap();
    let (old_key, _) = sessions(&table).await.remove(0);
    let old_session_key = actix_key(&cookie).to_owned();
    assert_eq!(key_of(&old_session_key), old_key);
    // Logged out elsewhere (another instance, another tab) between this request's load
    // and its save: the update finds the item gone.
    let (status, body, renewed) = send(&app, "GET", "/race", Some(&cookie)).await;
    assert_eq!((status, body.as_str()), (200, "2"));
    let items = sessions(&table).await;
    assert_eq!(items.len(), 1, "the state is saved once");
    assert_ne!(items[0].0, old_key, "under a new key, never the old one");
    assert!(table.raw_get(&old_key).await.is_none());
    // The new key is the cookie's from now on; the old cookie names nothing.
    let renewed = renewed.expect("a new cookie for the new key");
    // The new key holds a new, empty session: the state of a session logged out (or
    // revoked) meanwhile does not live on under another key.
    assert_eq!(send(&app, "GET", "/peek", Some(&renewed)).await.1, "0");
    assert_eq!(send(&app, "GET", "/peek", Some(&cookie)).await.1, "0");
    // Through the trait too: an update of a deleted key does not bring it back.
    let key = SessionKey::try_from(old_session_key.clone()).unwrap();
    let state = [("visits".to_owned(), "9".to_owned())].into();
    let new_key = SessionStore::update(&store, key, state, &Duration::hours(1))
        .await
        .unwrap();
    assert_ne!(new_key.as_ref(), old_session_key);
    assert!(table.raw_get(&old_key).await.is_none());
}

#[tokio::test]
async fn an_oversized_session_is_refused_with_nothing_written() {
    let table = TestTable::new("actix-big").await;
    let clock = clock_now();
    let app = start(
        store(&table, &clock),
        CookieContentSecurity::Private,
        TtlExtensionPolicy::OnStateChanges,
    );
    table.requests.reset();
    let (status, _, cookie) = send(&app, "POST", "/big", None).await;
    assert_eq!(status, 500, "a session DynamoDB cannot hold");
    assert_eq!(cookie, None);
    assert!(sessions(&table).await.is_empty());
    assert_eq!(table.requests.writes(), 0, "refused before any request");
}

#[tokio::test]
async fn one_sweep_serves_actix_and_tower_sessions_apps() {
    use tower_sessions::session::{Id, Record};
    use tower_sessions::session_store::SessionStore as _;

    let table = TestTable::new("actix-tower-sweep").await;
    let clock = clock_now();
    let store = store(&table, &clock);
    let now = clock.now();
    let mut live = HashSet::new();
    let mut expired = HashSet::new();
    for i in 0..20 {
        let ttl = if i % 2 == 0 {
            Duration::hours(1)
        } else {
            Duration::minutes(1)
        };
        let state = [("n".to_owned(), i.to_string())].into();
        let key = SessionStore::save(&store, state, &ttl).await.unwrap();
        let set = if i % 2 == 0 { &mut live } else { &mut expired };
        set.insert(key_of(key.as_ref()));
        let mut record = Record {
            id: Id::default(),
            data: [("n".to_owned(), serde_json::json!(i))].into(),
            expiry_date: now + ttl,
        };
        store.create(&mut record).await.unwrap();
        let set = if i % 2 == 0 { &mut live } else { &mut expired };
        set.insert(key_of(&record.id.to_string()));
    }
    // Ten minutes on: the one-minute sessions of both apps have expired.
    clock.advance(time::Duration::minutes(10));
    let report = sweep(
        &table.client,
        &SweepConfig::new(table.name.as_str()),
        &clock,
        Budget::unlimited(),
    )
    .await
    .unwrap();
    assert!(report.complete, "{report:?}");
    assert_eq!(report.deleted, 20, "{report:?}");
    let left: HashSet<String> = sessions(&table).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, live, "0 live lost, 0 expired left");
    assert!(left.is_disjoint(&expired));
}

#[tokio::test]
async fn actix_sessions_are_indexed_by_owner_and_revoked_together() {
    let table = TestTable::with_owner_index("actix-owners").await;
    let clock = clock_now();
    // actix-session keeps each value as JSON text: `"u-1"` for a string, `42` for a number.
    let store = store(&table, &clock).with_owner(|data| data.get("user_id"));
    let ttl = Duration::hours(1);
    let mut keys = Vec::new();
    for user in ["\"u-1\"", "\"u-1\"", "42"] {
        let state = [
            ("user_id".to_owned(), user.to_owned()),
            ("visits".to_owned(), "1".to_owned()),
        ]
        .into();
        keys.push(SessionStore::save(&store, state, &ttl).await.unwrap());
    }
    let anonymous = [("visits".to_owned(), "1".to_owned())].into();
    let anonymous = SessionStore::save(&store, anonymous, &ttl).await.unwrap();
    let listed = |owner: &'static str| {
        let store = store.clone();
        async move { store.sessions_of(owner).collect().await.unwrap() }
    };
    assert_eq!(listed("u-1").await.len(), 2);
    assert_eq!(listed("42").await.len(), 1);
    // Revoking u-1 from the first session ends the second at once; the others stay.
    let revoked = store
        .revoke_all("u-1", Some(keys[0].as_ref()))
        .await
        .unwrap();
    assert_eq!((revoked.deleted, revoked.spared), (1, true));
    for (key, alive) in [
        (&keys[0], true),
        (&keys[1], false),
        (&keys[2], true),
        (&anonymous, true),
    ] {
        let loaded = SessionStore::load(&store, key).await.unwrap();
        assert_eq!(loaded.is_some(), alive, "{}", &key.as_ref()[..4]);
    }
}
