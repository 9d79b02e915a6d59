//! The demo: the whole system in one process. An axum app whose sessions live in
//! DynamoDB, counting visits per session, and the sweep engine deleting expired sessions
//! from the same table every few seconds, as the scheduled Lambda would.
//!
//! ```text
//! cargo run --example demo                  # serve on http://127.0.0.1:3000 until Ctrl-C
//! cargo run --example demo -- --self-test   # make a few requests to itself, print, exit
//! ```
//!
//! Routes: `/` counts a visit, `/peek` shows the count without changing it, `/logout`
//! deletes the session. For every request the demo prints what is in the table afterwards
//! (read back with a raw `GetItem`): the session id (shortened), the visit count, the
//! expiry in epoch seconds, and what the store's write throttling did.
//!
//! Sessions expire after 60 s without a request. Every 5 s the sweep engine
//! (`sweeper_lambda::sweep`) runs against the same table and prints its report line:
//! scanned, deleted, read and write units. Open the page, wait a minute and a few
//! seconds, and watch your session expire and get swept; the next visit starts a new one.
//!
//! The demo lives in the integration-test crate because it depends on both the store and
//! the sweep engine, and the store library must not depend on the sweeper.
//!
//! Environment:
//!
//! | variable | effect |
//! |----------|--------|
//! | (none) | an embedded DynamoDB-compatible server (dynoxide), in memory, in this process |
//! | `DYNAMODB_ENDPOINT` | that endpoint instead, e.g. `http://localhost:8000` (DynamoDB Local) |
//! | `AWS_ENDPOINT_URL_DYNAMODB` or `DEMO_USE_AWS=1` | the standard AWS configuration chain (region, credentials, endpoint) |
//! | `SESSIONS_TABLE` | table name (default `sessions-demo`), created if missing |
//! | `PORT` | port on 127.0.0.1 (default 3000; any free port if that one is busy) |
//! | `DEMO_SELF_TEST=1` | same as `--self-test`: also plants a session that expired two minutes ago, and checks that a sweep deletes it and keeps the live one |

use std::env;
use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, Response};
use axum::routing::get;
use std::time::Duration;

use dynamo_session_store::aws_sdk_dynamodb::Client;
use dynamo_session_store::clock::{Clock, SystemClock};
use dynamo_session_store::schema::SessionItem;
use dynamo_session_store::{DynamoStore, TableCreated};
use integration_tests::http;
use local_dynamodb::LocalDynamo;
use sweeper_lambda::{Budget, SweepConfig, SweepReport, sweep};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Sessions expire after 60 seconds without a request (rolling expiry), short enough to
/// watch one expire and get swept.
const INACTIVITY: time::Duration = time::Duration::seconds(60);
/// How often the in-process sweep runs (the deployed schedule is every 5 minutes).
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// The sweep's grace: sessions expired for longer than this are deleted.
const GRACE: Duration = Duration::from_secs(2);
/// The session cookie's name (tower-sessions' default).
const COOKIE: &str = "id";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let self_test = env::args().any(|arg| arg == "--self-test")
        || env::var("DEMO_SELF_TEST").is_ok_and(|v| v == "1");

    let table = env::var("SESSIONS_TABLE").unwrap_or_else(|_| "sessions-demo".into());
    let (store, sweeper_client) = connect(&table).await?;
    match store.create_table().await? {
        TableCreated::Created => println!("table:    {table} (created, TTL on `expires`)"),
        _ => println!("table:    {table} (already there)"),
    }
    // An existing table of another shape is named now, with the setting to change.
    store.check_table().await?;

    // Rolling expiry: every request pushes the expiry to now + INACTIVITY. The store keeps this
    // cheap: unchanged data costs a write at most once per `touch_after` (10 s).
    let sweeps = start_sweeping(sweeper_client, &table);
    let sessions = SessionManagerLayer::new(store.clone())
        .with_expiry(Expiry::OnInactivity(INACTIVITY))
        .with_always_save(true)
        // The demo is plain http on localhost; keep the default (`Secure`) in production.
        .with_secure(false);
    let app = Router::new()
        .route("/", get(count))
        .route("/peek", get(peek))
        .route("/logout", get(logout))
        .layer(sessions)
        // Outside the session layer, so it sees the table after the session was saved.
        .layer(middleware::from_fn_with_state(store.clone(), report));

    let listener = bind().await?;
    let addr = listener.local_addr()?;
    println!("demo:     http://{addr}/   (/ counts a visit, /peek reads, /logout deletes)");

    if self_test {
        tokio::spawn(async move { axum::serve(listener, app).await });
        let live = self_test_requests(addr).await?;
        self_test_sweep(&store, &live, sweeps).await?;
        println!("self-test: passed");
        return Ok(());
    }
    println!("Ctrl-C to stop.\n");
    axum::serve(listener, app).await?;
    Ok(())
}

/// The store, and the sweeper's client (the Lambda's: SDK retries off, the engine
/// retries itself): on AWS when the environment says so, else on the local endpoint.
async fn connect(table: &str) -> Result<(DynamoStore, Client), BoxError> {
    let use_aws = env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some()
        || env::var("DEMO_USE_AWS").is_ok_and(|v| v == "1");
    if use_aws {
        let store = DynamoStore::from_env(table).await;
        let region = store.client().config().region().map(ToString::to_string);
        println!(
            "dynamodb: the standard AWS configuration chain (region {})",
            region.as_deref().unwrap_or("not set")
        );
        return Ok((
            store,
            sweeper_lambda::client::dynamodb_client(
                None,
                sweeper_lambda::config::DEFAULT_ATTEMPT_TIMEOUT,
            )
            .await,
        ));
    }
    let local = LocalDynamo::start()?;
    match local.endpoint() {
        Some(url) if local.is_embedded() => {
            println!("dynamodb: embedded dynoxide at {url} (in memory, gone when the demo exits)")
        }
        Some(url) => println!("dynamodb: {url} (DYNAMODB_ENDPOINT)"),
        None => println!("dynamodb: AWS (DYNAMODB_ENDPOINT=aws)"),
    }
    let sweeper = sweeper_lambda::client::dynamodb_client(
        local.endpoint(),
        sweeper_lambda::config::DEFAULT_ATTEMPT_TIMEOUT,
    )
    .await;
    Ok((DynamoStore::new(local.client().await, table), sweeper))
}

// ---- the sweeper, in process -------------------------------------------------------------

/// Runs the sweep engine on `table` every [`SWEEP_EVERY`], printing each report line;
/// every report is also sent on the returned channel (for the self-test).
fn start_sweeping(client: Client, table: &str) -> mpsc::UnboundedReceiver<SweepReport> {
    let config = SweepConfig::new(table)
        .with_total_segments(2)
        .with_grace(GRACE)
        .with_metrics_namespace("SessionSweeperDemo");
    println!(
        "sweeper:  every {} s, in this process: deletes sessions expired for over {} s",
        SWEEP_EVERY.as_secs(),
        GRACE.as_secs()
    );
    let (reports, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match sweep(&client, &config, &SystemClock, Budget::unlimited()).await {
                Ok(report) => {
                    println!("{}", sweep_line(&report));
                    let _ = reports.send(report);
                }
                Err(e) => println!("sweep    failed: {e}"),
            }
        }
    });
    received
}

/// One sweep's report as a line of the demo's output.
fn sweep_line(report: &SweepReport) -> String {
    format!(
        "sweep    scanned {}, deleted {} expired ({} skipped live, {} already gone), \
         {} read units, {} write units, {} ms",
        report.scanned,
        report.deleted,
        report.skipped_live,
        report.already_gone,
        report.read_units,
        report.write_units,
        report.duration.as_millis()
    )
}

/// 127.0.0.1 on `PORT` (default 3000), or any free port if that one is taken.
async fn bind() -> std::io::Result<TcpListener> {
    let port = env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            println!("port {port} is busy; using a free one");
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await
        }
        Err(e) => Err(e),
    }
}

// ---- the app -------------------------------------------------------------------------

async fn count(session: Session) -> Result<Html<String>, StatusCode> {
    let visits = visits(&session).await? + 1;
    session
        .insert("visits", visits)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(page(visits))
}

async fn peek(session: Session) -> Result<Html<String>, StatusCode> {
    Ok(page(visits(&session).await?))
}

async fn logout(session: Session) -> Result<Html<String>, StatusCode> {
    session
        .flush()
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(Html(
        r#"<p>Logged out: the session is deleted.</p><p><a href="/">start again</a></p>"#.into(),
    ))
}

async fn visits(session: &Session) -> Result<u64, StatusCode> {
    let visits = session
        .get::<u64>("visits")
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(visits.unwrap_or(0))
}

fn page(visits: u64) -> Html<String> {
    Html(format!(
        "<p>Visits in this session: {visits}</p>\n\
         <p><a href=\"/\">count again</a> · <a href=\"/peek\">peek</a> · \
         <a href=\"/logout\">log out</a></p>\n"
    ))
}

// ---- what the store did ------------------------------------------------------------------

/// Prints, for each request, what the table holds for its session afterwards, and how
/// that differs from before the request.
async fn report(State(store): State<DynamoStore>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let sent = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie_value(v).map(str::to_owned));
    let before = match &sent {
        Some(id) => stored(&store, id).await,
        None => None,
    };

    let response = next.run(request).await;

    let set = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie_value(v).map(str::to_owned));
    // A new non-empty cookie names a new session; an empty one means it was removed.
    let (id, before) = match (set, sent) {
        (Some(new), Some(old)) if !new.is_empty() && new != old => (Some(new), None),
        (Some(new), None) if !new.is_empty() => (Some(new), None),
        (_, sent) => (sent, before),
    };
    let after = match &id {
        Some(id) => stored(&store, id).await,
        None => None,
    };

    // The session as the table knows it: the first characters of its hashed key.
    let who = id
        .as_deref()
        .and_then(|id| store.schema().key_for(id).ok())
        .map_or_else(|| "(none)".to_owned(), |key| store.schema().log_label(&key));
    let now = SystemClock.now().unix_timestamp();
    let state = match &after {
        Some(item) => format!(
            "visits={:<3} expires={} (in {} s)",
            visit_count(item),
            item.expires,
            item.expires - now
        ),
        None => "not in the table".to_owned(),
    };
    println!(
        "{:<7} {:<3} session {who:<8} {state}  -> {}",
        path,
        response.status().as_u16(),
        throttle_outcome(before.as_ref(), after.as_ref())
    );
    response
}

/// What the store wrote, judged from the item before and after the request.
/// The first four characters of a session id: a whole id is a bearer credential and never
/// printed.
fn throttle_outcome(before: Option<&SessionItem>, after: Option<&SessionItem>) -> &'static str {
    match (before, after) {
        (None, Some(_)) => "PutItem: new session",
        (Some(_), None) => "DeleteItem: session deleted",
        (None, None) => "nothing stored",
        (Some(b), Some(a)) if b.data != a.data => "PutItem: data changed",
        (Some(b), Some(a)) if b.expires != a.expires => {
            "UpdateItem of the expiry only: data unchanged, expiry moved >= touch_after"
        }
        _ => "no write: data unchanged, expiry moved < touch_after (throttled)",
    }
}

/// The session item as stored, read with a raw `GetItem` (a real app never needs this).
async fn stored(store: &DynamoStore, id: &str) -> Option<SessionItem> {
    let key = store.schema().key_for(id).ok()?;
    let read = store
        .client()
        .get_item()
        .table_name(store.table_name())
        .key(
            store.schema().key_attribute(),
            dynamo_session_store::aws_sdk_dynamodb::types::AttributeValue::S(key),
        )
        .consistent_read(true)
        .send()
        .await;
    match read {
        Ok(out) => store.schema().decode(out.item?).ok(),
        Err(e) => {
            eprintln!("demo: GetItem failed: {e}");
            None
        }
    }
}

fn visit_count(item: &SessionItem) -> u64 {
    serde_json::from_str::<serde_json::Value>(item.data.as_json().unwrap_or_default())
        .ok()
        .and_then(|data| data["visits"].as_u64())
        .unwrap_or(0)
}

/// The session id in a `Cookie` or `Set-Cookie` header value, if it holds one.
fn cookie_value(header: &str) -> Option<&str> {
    integration_tests::cookie_value(header, COOKIE)
}

// ---- self-test: requests with a one-cookie jar ---------------------------------------

/// Visits the demo like a browser would and checks what it answers; the session id in the
/// jar at the end (a live session).
async fn self_test_requests(addr: SocketAddr) -> Result<String, BoxError> {
    println!("\nself-test: requests with a cookie jar (server lines first, then the client's)");
    let mut jar: Option<String> = None;
    let steps = [
        ("/", "Visits in this session: 1"),
        ("/", "Visits in this session: 2"),
        ("/peek", "Visits in this session: 2"),
        ("/", "Visits in this session: 3"),
        ("/logout", "Logged out"),
        ("/", "Visits in this session: 1"),
    ];
    for (path, expected) in steps {
        let answer = http(addr, ("GET", path), (COOKIE, jar.as_deref()), None).await;
        let (status, body) = (answer.status, answer.body);
        if let Some(value) = answer.set_cookie {
            jar = (!value.is_empty()).then_some(value);
        }
        let first_line = body.lines().next().unwrap_or_default();
        println!("  client: GET {path:<7} -> {status} {first_line}");
        if status != 200 || !body.contains(expected) {
            return Err(format!(
                "self-test: GET {path} answered {status} {body:?}, expected {expected:?}"
            )
            .into());
        }
    }
    jar.ok_or_else(|| "self-test: no session cookie at the end".into())
}

/// Plants a session that expired two minutes ago (an abandoned one), waits for a sweep
/// that deletes it, and checks the live session `live` is still there.
async fn self_test_sweep(
    store: &DynamoStore,
    live: &str,
    mut sweeps: mpsc::UnboundedReceiver<SweepReport>,
) -> Result<(), BoxError> {
    let abandoned = "self-test-abandoned-session";
    let expired_at = SystemClock.now() - time::Duration::minutes(2);
    store
        .put(
            abandoned,
            &serde_json::json!({"visits": 7}),
            Some(expired_at),
        )
        .await?;
    println!("\nself-test: planted a session that expired 2 minutes ago; waiting for a sweep");
    let deadline = tokio::time::Instant::now() + 3 * SWEEP_EVERY;
    loop {
        let report = tokio::time::timeout_at(deadline, sweeps.recv())
            .await
            .map_err(|_| "self-test: no sweep deleted the expired session in time")?
            .ok_or("self-test: the sweeper stopped")?;
        if report.deleted == 0 {
            continue;
        }
        let gone = stored(store, abandoned).await.is_none()
            && store
                .client()
                .get_item()
                .table_name(store.table_name())
                .key(
                    store.schema().key_attribute(),
                    dynamo_session_store::aws_sdk_dynamodb::types::AttributeValue::S(
                        store.schema().key_for(abandoned)?,
                    ),
                )
                .consistent_read(true)
                .send()
                .await?
                .item
                .is_none();
        let kept = stored(store, live).await.is_some();
        println!(
            "self-test: the sweep deleted {} (the expired session {}), the live session {}",
            report.deleted,
            if gone { "is gone" } else { "is STILL THERE" },
            if kept { "is kept" } else { "is GONE" }
        );
        if !gone || !kept || report.deleted != 1 {
            return Err(format!("self-test: the sweep got it wrong: {report:?}").into());
        }
        return Ok(());
    }
}
