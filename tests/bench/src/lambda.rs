//! Scenario 5: the Lambda artifact and its cold start, measured locally.
//!
//! - The size of the arm64 `bootstrap.zip` built by `.ci/infra.sh` (`cargo lambda build
//!   --release --arm64 -p sweeper-lambda --bin sweeper --output-format zip`), if present
//!   under `<target>/lambda/sweeper/`; "not built" otherwise.
//! - Time from process start to the first handled event: the sweeper program (the x86_64
//!   `sweeper` binary in full mode, see [`crate::child`]) is started as Lambda would start
//!   it, against a minimal fake Lambda Runtime API on 127.0.0.1 that hands out one
//!   invocation (an empty Scheduler input, a deadline a minute away) and records when the
//!   program asks for it (init done) and when it posts the response (the first sweep, of an
//!   empty table, done). The process is then killed.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use dynamo_session_store::clock::{Clock, SystemClock};
use integration_tests::{LocalDynamo, TestTable};
use serde_json::json;
use tokio::sync::Notify;

use crate::child::{self, SweeperProgram};
use crate::report::{Report, Row};

/// The zip size `.ci/infra.sh` accepts.
const MAX_ZIP_BYTES: u64 = 4 * 1024 * 1024;
const REQUEST_ID: &str = "bench-invocation-1";
const GIVE_UP: Duration = Duration::from_secs(60);

pub async fn run(report: &mut Report, quick: bool) {
    zip_size(report);
    let program = tokio::task::spawn_blocking(move || child::sweeper_program(quick))
        .await
        .expect("locate the sweeper");
    let table = TestTable::new("bench-lambda").await;
    let samples = if quick { 1 } else { 5 };
    let mut inits = Vec::new();
    let mut firsts = Vec::new();
    let mut peak_rss: f64 = 0.0;
    for _ in 0..samples {
        let cold = cold_start(&program, &table.name).await;
        eprintln!(
            "   init {:.1} ms, first event handled {:.1} ms, RSS {:.1} MiB",
            ms(cold.init),
            ms(cold.first_response),
            cold.peak_rss_mib
        );
        inits.push(ms(cold.init));
        firsts.push(ms(cold.first_response));
        peak_rss = peak_rss.max(cold.peak_rss_mib);
    }
    let detail = json!({ "program": program.label(), "init_ms": inits, "first_event_ms": firsts });
    report.push(Row {
        scenario: "5 lambda".into(),
        case: format!(
            "spawn -> first /next (init), median of {samples}, {}",
            program.label()
        ),
        value: median(&mut inits),
        unit: "ms".into(),
        detail: Some(detail),
        ..Row::default()
    });
    report.push(Row {
        scenario: "5 lambda".into(),
        case: format!("spawn -> first event handled (init + empty sweep), median of {samples}"),
        value: median(&mut firsts),
        unit: "ms".into(),
        ..Row::default()
    });
    report.push(Row {
        scenario: "5 lambda".into(),
        case: "peak RSS after the first event".into(),
        value: peak_rss,
        unit: "MiB".into(),
        ..Row::default()
    });
}

fn zip_size(report: &mut Report) {
    let zip = child::target_dir().map(|t| t.join("lambda/sweeper/bootstrap.zip"));
    let size = zip
        .as_ref()
        .and_then(|z| std::fs::metadata(z).ok())
        .map(|m| m.len());
    let row = match size {
        Some(bytes) => Row {
            scenario: "5 lambda".into(),
            case: "arm64 bootstrap.zip size".into(),
            value: bytes as f64 / (1024.0 * 1024.0),
            unit: "MiB".into(),
            target: Some("<= 4 MiB".into()),
            met: Some(bytes <= MAX_ZIP_BYTES),
            detail: Some(json!({ "bytes": bytes, "path": zip })),
            ..Row::default()
        },
        None => Row {
            scenario: "5 lambda".into(),
            case: "arm64 bootstrap.zip: not built (run .ci/infra.sh)".into(),
            value: 0.0,
            unit: "MiB".into(),
            detail: Some(json!({ "path": zip })),
            ..Row::default()
        },
    };
    report.push(row);
}

/// One cold start, from spawn.
struct ColdStart {
    init: Duration,
    first_response: Duration,
    peak_rss_mib: f64,
}

/// What the fake Runtime API saw.
#[derive(Default)]
struct Seen {
    handed_out: bool,
    first_next: Option<Instant>,
    response: Option<(Instant, String)>,
    error: Option<String>,
}

#[derive(Clone, Default)]
struct Api {
    seen: Arc<Mutex<Seen>>,
    done: Arc<Notify>,
}

impl Api {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn next(State(api): State<Api>) -> impl IntoResponse {
    let first = {
        let mut seen = api.seen();
        let first = !seen.handed_out;
        if first {
            seen.handed_out = true;
            seen.first_next = Some(Instant::now());
        }
        first
    };
    if !first {
        // The one invocation was handed out: the program waits here until killed.
        std::future::pending::<()>().await;
    }
    let now_ms = SystemClock.now().unix_timestamp_nanos() / 1_000_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("header value"));
    };
    set("lambda-runtime-aws-request-id", REQUEST_ID.into());
    set("lambda-runtime-deadline-ms", (now_ms + 60_000).to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:session-sweeper".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into(),
    );
    set("content-type", "application/json".into());
    (StatusCode::OK, headers, "{}")
}

async fn response(State(api): State<Api>, Path(_id): Path<String>, body: String) -> StatusCode {
    api.seen().response = Some((Instant::now(), body));
    api.done.notify_one();
    StatusCode::ACCEPTED
}

async fn error(State(api): State<Api>, body: String) -> StatusCode {
    api.seen().error = Some(body);
    api.done.notify_one();
    StatusCode::ACCEPTED
}

async fn cold_start(program: &SweeperProgram, table: &str) -> ColdStart {
    let api = Api::default();
    let router = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the fake Runtime API");
    let addr = listener.local_addr().expect("its address");
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let mut cmd = program.command();
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("SWEEP_") || name.starts_with("SESSION") || name.starts_with("AWS_") {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd.env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "session-sweeper")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/session-sweeper")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("SESSIONS_TABLE", table)
        .env("RUST_LOG", "warn");
    if let Some(endpoint) = LocalDynamo::shared().endpoint() {
        cmd.env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_EC2_METADATA_DISABLED", "true");
    } else {
        // Real AWS: keep the caller's credentials and region.
        for (name, value) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AWS_") && name != "AWS_LAMBDA_RUNTIME_API" {
                cmd.env(name, value);
            }
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let done = api.done.notified();
    tokio::pin!(done);
    done.as_mut().enable();
    let spawned = Instant::now();
    let mut child = cmd.spawn().expect("spawn the sweeper");
    let finished = tokio::time::timeout(GIVE_UP, done).await.is_ok();
    let peak_rss_mib = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0);
    let _ = child.kill();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("wait thread")
        .expect("wait for the sweeper");
    server.abort();

    let seen = api.seen();
    let failure = || {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    assert!(finished, "no response within {GIVE_UP:?}; {}", failure());
    if let Some(err) = &seen.error {
        panic!("the sweeper reported an error: {err}; {}", failure());
    }
    let (answered, body) = seen.response.clone().expect("a response was posted");
    let report: serde_json::Value = serde_json::from_str(&body).expect("a JSON report");
    assert_eq!(report["complete"], true, "incomplete first sweep: {body}");
    ColdStart {
        init: seen.first_next.expect("asked for an event") - spawned,
        first_response: answered - spawned,
        peak_rss_mib,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
