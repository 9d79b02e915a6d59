//! The router the Lambda serves, driven request by request against the embedded
//! DynamoDB-compatible server (or `DYNAMODB_ENDPOINT`), one fresh table per test.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use dynamo_session_store::DynamoStore;
use dynamo_session_store::aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::TestTable;
use local_dynamodb::LocalDynamo;
use session_app_lambda::{DEFAULT_INACTIVITY, app};
use tower::ServiceExt;

/// A table created for this test (deleted again when dropped, against a remote
/// endpoint), and a store on it.
async fn fresh_store(label: &str) -> (TestTable, DynamoStore) {
    let table = TestTable::new(&format!("app-{label}")).await;
    let store = DynamoStore::new(LocalDynamo::shared().client().await, &table.name);
    (table, store)
}

async fn send(app: &Router, method: &str, uri: &str, cookie: Option<&str>) -> Response<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    app.clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .expect("the router is infallible")
}

/// The `name=value` part of the session cookie the response sets.
fn session_cookie(response: &Response<Body>) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|pair| pair.starts_with("id="))
}

async fn body_text(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn visits_shown(page: &str) -> u64 {
    let start = page
        .find("<strong id=\"visits\">")
        .expect("counter in page")
        + 20;
    let end = start + page[start..].find('<').unwrap();
    page[start..end].parse().unwrap()
}

/// The raw item of a session, read directly from the table.
async fn raw_item(store: &DynamoStore, cookie: &str) -> Option<HashMap<String, AttributeValue>> {
    let id = cookie.strip_prefix("id=").unwrap();
    store
        .client()
        .get_item()
        .table_name(store.table_name())
        .key("id", AttributeValue::S(store.schema().key_for(id).unwrap()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test]
async fn counts_visits_per_browser_and_stores_the_session_in_the_table() {
    let (_table, store) = fresh_store("count").await;
    let app = app(store.clone(), DEFAULT_INACTIVITY);

    let first = send(&app, "GET", "/", None).await;
    assert_eq!(first.status(), StatusCode::OK);
    let cookie = session_cookie(&first).expect("a new session sets its cookie");
    assert_eq!(visits_shown(&body_text(first).await), 1);

    for expected in 2..=3 {
        let again = send(&app, "GET", "/", Some(&cookie)).await;
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(visits_shown(&body_text(again).await), expected);
    }

    let other_browser = send(&app, "GET", "/", None).await;
    let other_cookie = session_cookie(&other_browser).expect("its own session");
    assert_ne!(other_cookie, cookie);
    assert_eq!(visits_shown(&body_text(other_browser).await), 1);

    let item = raw_item(&store, &cookie).await.expect("the session item");
    assert_eq!(
        item.get("data"),
        Some(&AttributeValue::S(r#"{"visits":3}"#.into()))
    );
    let AttributeValue::N(expires) = &item["expires"] else {
        panic!("expires must be a number, got {:?}", item["expires"]);
    };
    let expires: i64 = expires.parse().unwrap();
    // Epoch seconds, which native TTL understands (milliseconds would be ~1.8e12).
    assert!(
        (1_600_000_000..10_000_000_000).contains(&expires),
        "{expires}"
    );
}

#[tokio::test]
async fn reset_deletes_the_session_and_the_next_visit_starts_over() {
    let (_table, store) = fresh_store("reset").await;
    let app = app(store.clone(), DEFAULT_INACTIVITY);
    let first = send(&app, "GET", "/", None).await;
    let cookie = session_cookie(&first).unwrap();
    send(&app, "GET", "/", Some(&cookie)).await;
    assert!(raw_item(&store, &cookie).await.is_some());

    let reset = send(&app, "POST", "/reset", Some(&cookie)).await;
    assert_eq!(reset.status(), StatusCode::SEE_OTHER);
    assert_eq!(reset.headers()[header::LOCATION], "/");
    assert!(
        raw_item(&store, &cookie).await.is_none(),
        "reset deletes the item"
    );

    let after = send(&app, "GET", "/", Some(&cookie)).await;
    let new_cookie = session_cookie(&after).expect("a fresh session");
    assert_ne!(new_cookie, cookie, "a deleted session is never revived");
    assert_eq!(visits_shown(&body_text(after).await), 1);
}

#[tokio::test]
async fn an_unknown_session_cookie_starts_a_new_session() {
    let (_table, store) = fresh_store("unknown").await;
    let app = app(store.clone(), DEFAULT_INACTIVITY);
    let forged = "id=AAAAAAAAAAAAAAAAAAAAAA";
    let response = send(&app, "GET", "/", Some(forged)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = session_cookie(&response).expect("a fresh session");
    assert_ne!(cookie, forged);
    assert_eq!(visits_shown(&body_text(response).await), 1);
    assert!(raw_item(&store, forged).await.is_none());
}

#[tokio::test]
async fn serves_an_http_api_v2_event_as_lambda_http_decodes_it() {
    let (_table, store) = fresh_store("event").await;
    let app = app(store.clone(), DEFAULT_INACTIVITY);
    let request = lambda_http::request::from_str(include_str!("fixtures/http-api-get-root.json"))
        .expect("a valid HTTP API payload v2 event");
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = session_cookie(&response).expect("a new session sets its cookie");
    assert_eq!(visits_shown(&body_text(response).await), 1);
    assert!(raw_item(&store, &cookie).await.is_some());
}
