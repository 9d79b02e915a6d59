//! Scenario 2: DynamoDB writes per 1,000 requests on an unchanged session, through a real
//! axum + tower-sessions stack with `Expiry::OnInactivity` and `with_always_save(true)`,
//! with throttling (`touch_after` = 1 s) against the same stack with throttling off
//! (`touch_after` = 0).
//!
//! tower-sessions computes the rolling expiry from the wall clock, so the requests are
//! spread over several real seconds: each second is one `touch_after` window.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use axum::routing::get;
use dynamo_session_store::DynamoStore;
use integration_tests::TestTable;
use tower::ServiceExt;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::report::{Report, Row};

async fn visit(session: Session) -> String {
    // Reads the session (a load) but changes nothing: the worst case for write amplification.
    let user: Option<String> = session.get("user").await.unwrap_or(None);
    if user.is_none() {
        let _ = session.insert("user", "alice").await;
    }
    "ok".into()
}

fn app(store: DynamoStore) -> Router {
    let layer = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)))
        .with_always_save(true);
    Router::new().route("/", get(visit)).layer(layer)
}

struct Measured {
    writes: usize,
    windows: u64,
}

async fn measure(touch_after: Duration, requests: u32, spread: Duration) -> Measured {
    let table = TestTable::new("bench-amp").await;
    let store = table.store().with_touch_after(touch_after);
    let app = app(store);

    let first = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).expect("request"))
        .await
        .expect("first request");
    let cookie = first
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned();
    table.requests.reset();

    let started = Instant::now();
    let mut seconds = std::collections::BTreeSet::new();
    for i in 0..requests {
        let due = spread.mul_f64(f64::from(i) / f64::from(requests));
        tokio::time::sleep_until((started + due).into()).await;
        seconds.insert(started.elapsed().as_secs());
        let response = app
            .clone()
            .oneshot(
                Request::get("/")
                    .header(header::COOKIE, &cookie)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("request");
        assert!(
            response.status().is_success(),
            "status {}",
            response.status()
        );
    }
    Measured {
        writes: table.requests.writes(),
        windows: seconds.len() as u64,
    }
}

pub async fn run(report: &mut Report, quick: bool) {
    let (requests, spread) = if quick {
        (100, Duration::from_millis(1500))
    } else {
        (1000, Duration::from_secs(5))
    };
    let throttled = measure(Duration::from_secs(1), requests, spread).await;
    let unthrottled = measure(Duration::ZERO, requests, spread).await;
    let per_1000 = |w: usize| w as f64 * 1000.0 / f64::from(requests);
    let writes_per_window = throttled.writes as f64 / throttled.windows as f64;
    report.push(Row {
        scenario: "2 amplification".into(),
        case: format!(
            "writes/1000 req, touch_after 1 s, {} windows",
            throttled.windows
        ),
        value: per_1000(throttled.writes),
        unit: "writes".into(),
        baseline: Some(per_1000(unthrottled.writes)),
        ratio: Some(throttled.writes as f64 / unthrottled.writes.max(1) as f64),
        target: Some("<= 1 write/window".into()),
        met: Some(writes_per_window <= 1.0),
        detail: None,
    });
    report.push(Row {
        scenario: "2 amplification".into(),
        case: "writes per touch_after window (throttled)".into(),
        value: writes_per_window,
        unit: "writes".into(),
        baseline: None,
        ratio: None,
        target: Some("<= 1".into()),
        met: Some(writes_per_window <= 1.0),
        detail: None,
    });
}
