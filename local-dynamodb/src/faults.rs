//! A fault-injecting HTTP proxy in front of a DynamoDB endpoint.
//!
//! Local servers never throttle, time out or drop connections, so the retry paths of the
//! store and the sweeper can only be exercised by making requests fail on purpose.
//! [`FaultProxy`] listens on `127.0.0.1:0`, forwards every request to an upstream endpoint
//! (normally the embedded server) and, at a configurable rate, answers with a fault
//! instead:
//!
//! | [`Fault`] | what the client sees | reached the upstream? |
//! |-----------|----------------------|-----------------------|
//! | `ProvisionedThroughputExceeded` | HTTP 400 `ProvisionedThroughputExceededException` | no |
//! | `Throttling` | HTTP 400 `ThrottlingException` | no |
//! | `InternalServerError` | HTTP 500 `InternalServerError` | no |
//! | `ServiceUnavailable` | HTTP 503 `ServiceUnavailable` | no |
//! | `Timeout` | no answer for `timeout_hold`, then the connection is reset | no |
//! | `TimeoutAfterForward` | as `Timeout` | **yes**: the write is applied, the client never hears |
//! | `ConnectionReset` | the connection is reset, no response | no |
//! | `ConnectionResetAfterForward` | as `ConnectionReset` | **yes** |
//! | `PartialBatch` | a 200 answer where some batch entries were not executed | only the others |
//!
//! Error bodies are DynamoDB's JSON 1.0 errors (`__type`, `message`, `x-amzn-ErrorType`,
//! `application/x-amz-json-1.0`), so the AWS SDK classifies them exactly as it would in AWS:
//! throttling and 5xx are retried by the SDK's standard retry strategy, and surface as
//! service errors with the same codes once its attempts are used up.
//!
//! `PartialBatch` applies to `BatchWriteItem` (some requests are moved to
//! `UnprocessedItems` without being executed) and `BatchExecuteStatement` (some statements
//! are dropped before forwarding, and per-statement errors with the codes DynamoDB uses,
//! `ThrottlingError`, `ProvisionedThroughputExceeded` and `InternalServerError`, are
//! spliced into `Responses` at their positions). For any other operation it is not
//! applicable: a plan's faults are drawn uniformly among those that apply to the request's
//! operation, and a request with none that apply is forwarded untouched.
//!
//! Decisions come from a PRNG seeded by [`FaultPlan::seed`], so a sequential run is
//! reproducible; concurrent requests take their draws in arrival order.
//!
//! The proxy speaks plain HTTP/1.1 and does not re-sign requests: it is meant for loopback
//! endpoints (the embedded server, DynamoDB Local) that do not check signatures. It runs on
//! a runtime and thread of its own, like the embedded server, so it works under any test
//! runtime, and stops when the last [`FaultProxy`] handle is dropped.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use local_dynamodb::LocalDynamo;
//! use local_dynamodb::faults::{Fault, FaultPlan, FaultProxy};
//!
//! let upstream = LocalDynamo::embedded()?;
//! let proxy = FaultProxy::start(upstream.endpoint().unwrap())?;
//! proxy.set_plan(FaultPlan::new(0.1, vec![Fault::Throttling, Fault::InternalServerError]));
//! let client = LocalDynamo::at(proxy.endpoint()).client().await;
//! // ... use `client`; then:
//! println!("{:?}", proxy.stats());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, TRANSFER_ENCODING};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use crate::{LocalDynamo, StartError};

/// One kind of injected fault. See the [module docs](self) for what each one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Fault {
    /// HTTP 400 `ProvisionedThroughputExceededException` (throttling).
    ProvisionedThroughputExceeded,
    /// HTTP 400 `ThrottlingException` (throttling).
    Throttling,
    /// HTTP 500 `InternalServerError`.
    InternalServerError,
    /// HTTP 503 `ServiceUnavailable`.
    ServiceUnavailable,
    /// Holds the request for [`FaultPlan::timeout_hold`] without forwarding it, then resets
    /// the connection. Set the hold longer than the client's attempt timeout.
    Timeout,
    /// Forwards the request (so a write is applied), holds the response for
    /// [`FaultPlan::timeout_hold`], then resets the connection: "the write happened but the
    /// client timed out".
    TimeoutAfterForward,
    /// Resets the connection without forwarding the request or answering.
    ConnectionReset,
    /// Forwards the request, then resets the connection instead of relaying the answer.
    ConnectionResetAfterForward,
    /// Executes only part of a `BatchWriteItem` / `BatchExecuteStatement` and reports the
    /// rest as unprocessed / failed. Not applicable to other operations.
    PartialBatch,
}

impl Fault {
    /// Every fault kind.
    pub const ALL: [Fault; 9] = [
        Fault::ProvisionedThroughputExceeded,
        Fault::Throttling,
        Fault::InternalServerError,
        Fault::ServiceUnavailable,
        Fault::Timeout,
        Fault::TimeoutAfterForward,
        Fault::ConnectionReset,
        Fault::ConnectionResetAfterForward,
        Fault::PartialBatch,
    ];

    /// The kinds that never let the request reach the upstream (everything but the
    /// `*AfterForward` kinds and `PartialBatch`).
    pub const NOT_EXECUTED: [Fault; 6] = [
        Fault::ProvisionedThroughputExceeded,
        Fault::Throttling,
        Fault::InternalServerError,
        Fault::ServiceUnavailable,
        Fault::Timeout,
        Fault::ConnectionReset,
    ];

    /// The name used in [`FaultStats::by_kind`], e.g. `"Throttling"`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::ProvisionedThroughputExceeded => "ProvisionedThroughputExceeded",
            Fault::Throttling => "Throttling",
            Fault::InternalServerError => "InternalServerError",
            Fault::ServiceUnavailable => "ServiceUnavailable",
            Fault::Timeout => "Timeout",
            Fault::TimeoutAfterForward => "TimeoutAfterForward",
            Fault::ConnectionReset => "ConnectionReset",
            Fault::ConnectionResetAfterForward => "ConnectionResetAfterForward",
            Fault::PartialBatch => "PartialBatch",
        }
    }

    /// Whether this fault can be injected into a request for `operation`.
    pub fn applies_to(self, operation: &str) -> bool {
        self != Fault::PartialBatch
            || matches!(operation, "BatchWriteItem" | "BatchExecuteStatement")
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to inject, and how often. Replace it at any time with [`FaultProxy::set_plan`].
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Probability, `0.0..=1.0`, that a matching request gets a fault.
    pub rate: f64,
    /// The faults to draw from, uniformly (among those that apply to the operation).
    pub faults: Vec<Fault>,
    /// Operations (`X-Amz-Target` names such as `PutItem`) subject to faults; empty means
    /// all.
    pub operations: Vec<String>,
    /// Seed of the PRNG that makes every decision.
    pub seed: u64,
    /// How long [`Fault::Timeout`] and [`Fault::TimeoutAfterForward`] hold a request before
    /// resetting the connection.
    pub timeout_hold: Duration,
}

impl Default for FaultPlan {
    /// No faults: rate 0, seed 0, `timeout_hold` 1 s.
    fn default() -> Self {
        Self {
            rate: 0.0,
            faults: Vec::new(),
            operations: Vec::new(),
            seed: 0,
            timeout_hold: Duration::from_secs(1),
        }
    }
}

impl FaultPlan {
    /// A plan injecting `faults` into a fraction `rate` of all requests (defaults otherwise
    /// as in [`FaultPlan::default`]).
    pub fn new(rate: f64, faults: Vec<Fault>) -> Self {
        Self {
            rate,
            faults,
            ..Self::default()
        }
    }

    /// No faults: every request is forwarded.
    pub fn none() -> Self {
        Self::default()
    }

    /// Restricts faults to these operations (e.g. `["PutItem", "UpdateItem"]`).
    pub fn only<I, S>(mut self, operations: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.operations = operations.into_iter().map(Into::into).collect();
        self
    }

    /// Seeds the PRNG.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets how long timeouts hold a request.
    pub fn with_timeout_hold(mut self, hold: Duration) -> Self {
        self.timeout_hold = hold;
        self
    }

    fn matches(&self, operation: &str) -> bool {
        self.operations.is_empty() || self.operations.iter().any(|o| o == operation)
    }
}

/// What the proxy has seen and done since it started (or since [`FaultProxy::reset_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests received.
    pub requests: u64,
    /// Requests that got a fault (a `PartialBatch` counts once per request).
    pub injected: u64,
    /// Injected faults by [`Fault::name`].
    pub by_kind: BTreeMap<String, u64>,
    /// Requests received, by operation.
    pub by_operation: BTreeMap<String, u64>,
    /// Batch entries (`BatchWriteItem` requests or `BatchExecuteStatement` statements) that
    /// `PartialBatch` withheld from the upstream.
    pub batch_entries_withheld: u64,
}

/// A running fault-injecting proxy. Cheap to clone; clones share the plan and the
/// statistics; the proxy stops when the last clone is dropped.
#[derive(Clone)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    _running: Arc<ShutdownOnDrop>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.shared.addr)
            .field("upstream", &self.shared.upstream)
            .field("plan", &self.shared.lock_state().plan)
            .finish_non_exhaustive()
    }
}

struct Shared {
    addr: SocketAddr,
    upstream: Uri,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    state: Mutex<State>,
}

struct State {
    plan: FaultPlan,
    rng: fastrand::Rng,
    stats: FaultStats,
}

struct ShutdownOnDrop(Option<oneshot::Sender<()>>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `upstream` (e.g.
    /// `"http://127.0.0.1:1234"`), with no faults planned.
    ///
    /// # Errors
    /// When `upstream` is not an `http://host:port` URL, or no loopback port can be bound.
    pub fn start(upstream: &str) -> Result<FaultProxy, StartError> {
        let upstream: Uri = upstream
            .trim_end_matches('/')
            .parse()
            .map_err(|e| StartError(format!("fault proxy: bad upstream URL `{upstream}`: {e}")))?;
        if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
            return Err(StartError(format!(
                "fault proxy: upstream must be an http://host:port URL, got `{upstream}`"
            )));
        }
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| StartError(e.to_string()))?;
        let addr = std_listener
            .local_addr()
            .map_err(|e| StartError(e.to_string()))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| StartError(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .map_err(|e| StartError(e.to_string()))?;
        let http = {
            // The client needs a runtime context to be built with a tokio executor.
            let _guard = runtime.enter();
            HttpClient::builder(TokioExecutor::new()).build_http()
        };
        let plan = FaultPlan::none();
        let shared = Arc::new(Shared {
            addr,
            upstream,
            http,
            state: Mutex::new(State {
                rng: fastrand::Rng::with_seed(plan.seed),
                plan,
                stats: FaultStats::default(),
            }),
        });
        let (stop, stopped) = oneshot::channel();
        let serving = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || runtime.block_on(serve(std_listener, serving, stopped)))
            .map_err(|e| StartError(e.to_string()))?;
        Ok(FaultProxy {
            shared,
            _running: Arc::new(ShutdownOnDrop(Some(stop))),
        })
    }

    /// Starts a proxy in front of `local` (e.g. [`LocalDynamo::shared`]).
    ///
    /// # Errors
    /// As [`start`](Self::start); also when `local` is real AWS, which has no endpoint URL
    /// to proxy.
    pub fn in_front_of(local: &LocalDynamo) -> Result<FaultProxy, StartError> {
        let upstream = local.endpoint().ok_or_else(|| {
            StartError("fault proxy: real AWS (no endpoint URL) cannot be proxied".into())
        })?;
        Self::start(upstream)
    }

    /// A [`LocalDynamo`] pointing at this proxy, to build clients with.
    pub fn local(&self) -> LocalDynamo {
        LocalDynamo::at(self.endpoint())
    }

    /// The proxy's endpoint URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The upstream endpoint URL.
    pub fn upstream(&self) -> String {
        self.shared.upstream.to_string()
    }

    /// Replaces the plan (and reseeds the PRNG from it); applies to the next request.
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut state = self.shared.lock_state();
        state.rng = fastrand::Rng::with_seed(plan.seed);
        state.plan = plan;
    }

    /// The current plan.
    pub fn plan(&self) -> FaultPlan {
        self.shared.lock_state().plan.clone()
    }

    /// Statistics so far.
    pub fn stats(&self) -> FaultStats {
        self.shared.lock_state().stats.clone()
    }

    /// Returns the statistics so far and starts counting from zero.
    pub fn reset_stats(&self) -> FaultStats {
        std::mem::take(&mut self.shared.lock_state().stats)
    }
}

impl Shared {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts the request and draws whether (and which) fault it gets.
    fn decide(&self, operation: &str) -> Option<(Fault, Duration)> {
        let mut state = self.lock_state();
        let State { plan, rng, stats } = &mut *state;
        stats.requests += 1;
        *stats.by_operation.entry(operation.to_owned()).or_default() += 1;
        if plan.rate <= 0.0 || !plan.matches(operation) {
            return None;
        }
        let applicable: Vec<Fault> = plan
            .faults
            .iter()
            .copied()
            .filter(|f| f.applies_to(operation))
            .collect();
        if applicable.is_empty() || rng.f64() >= plan.rate {
            return None;
        }
        let fault = applicable[rng.usize(..applicable.len())];
        Some((fault, plan.timeout_hold))
    }

    fn count_injected(&self, fault: Fault, withheld: usize) {
        let mut state = self.lock_state();
        state.stats.injected += 1;
        *state
            .stats
            .by_kind
            .entry(fault.name().to_owned())
            .or_default() += 1;
        state.stats.batch_entries_withheld += withheld as u64;
    }

    /// A fresh PRNG for one request's batch split, drawn from the shared one so that the
    /// whole run stays a function of the seed.
    fn fork_rng(&self) -> fastrand::Rng {
        self.lock_state().rng.fork()
    }
}

/// Accepts connections until the last handle is dropped.
async fn serve(
    std_listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(std_listener) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("fault proxy: {e}");
            return;
        }
    };
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("fault proxy: accept: {e}");
                    continue;
                }
            },
        };
        // The proxy only closes a connection itself to inject a fault: make that a reset
        // (RST), as a dying server or load balancer would, rather than an orderly FIN.
        let _ = stream.set_zero_linger();
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&shared), req));
            // An error here is either an injected reset or the client going away.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fault proxy: connection dropped on purpose")
    }
}

impl std::error::Error for DropConnection {}

type ProxyResponse = Response<Full<Bytes>>;

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<ProxyResponse, DropConnection> {
    let operation = operation_of(req.headers());
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Err(DropConnection);
    };
    let Some((fault, hold)) = shared.decide(&operation) else {
        return Ok(forward(&shared, &parts, body).await);
    };
    match fault {
        Fault::ProvisionedThroughputExceeded
        | Fault::Throttling
        | Fault::InternalServerError
        | Fault::ServiceUnavailable => {
            shared.count_injected(fault, 0);
            Ok(error_response(fault))
        }
        Fault::Timeout => {
            shared.count_injected(fault, 0);
            tokio::time::sleep(hold).await;
            Err(DropConnection)
        }
        Fault::TimeoutAfterForward => {
            shared.count_injected(fault, 0);
            let _applied = forward(&shared, &parts, body).await;
            tokio::time::sleep(hold).await;
            Err(DropConnection)
        }
        Fault::ConnectionReset => {
            shared.count_injected(fault, 0);
            Err(DropConnection)
        }
        Fault::ConnectionResetAfterForward => {
            shared.count_injected(fault, 0);
            let _applied = forward(&shared, &parts, body).await;
            Err(DropConnection)
        }
        Fault::PartialBatch => Ok(partial_batch(&shared, &operation, &parts, body).await),
    }
}

/// The DynamoDB operation of a request, from `X-Amz-Target: DynamoDB_20120810.PutItem`.
fn operation_of(headers: &hyper::HeaderMap) -> String {
    headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("unknown")
        .to_owned()
}

/// Sends the request to the upstream and relays its answer (body fully read).
async fn forward(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> ProxyResponse {
    match send_upstream(shared, parts, body).await {
        Ok((status, headers, body)) => relay(status, headers, body),
        Err(e) => upstream_unreachable(&e),
    }
}

async fn send_upstream(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<(StatusCode, hyper::HeaderMap, Bytes), String> {
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut uri = shared.upstream.clone().into_parts();
    uri.path_and_query = Some(path.parse().map_err(|e| format!("bad path: {e}"))?);
    let uri = Uri::from_parts(uri).map_err(|e| e.to_string())?;
    let mut request = Request::builder().method(parts.method.clone()).uri(uri);
    for (name, value) in &parts.headers {
        // The body may have been rewritten (PartialBatch): let hyper frame it.
        if name != CONTENT_LENGTH && name != TRANSFER_ENCODING {
            request = request.header(name, value);
        }
    }
    let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
    let response = shared
        .http
        .request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

fn relay(status: StatusCode, mut headers: hyper::HeaderMap, body: Bytes) -> ProxyResponse {
    headers.remove(CONTENT_LENGTH);
    headers.remove(TRANSFER_ENCODING);
    headers.remove("x-amz-crc32"); // no longer true once a body is rewritten
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn upstream_unreachable(error: &str) -> ProxyResponse {
    eprintln!("fault proxy: upstream request failed: {error}");
    json_response(
        StatusCode::BAD_GATEWAY,
        Some("InternalServerError"),
        &json!({
            "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "message": format!("fault proxy: upstream request failed: {error}"),
        }),
    )
}

/// DynamoDB's JSON 1.0 error for an error-response fault, exactly as AWS sends it.
fn error_response(fault: Fault) -> ProxyResponse {
    let (status, namespace, code, message) = match fault {
        Fault::ProvisionedThroughputExceeded => (
            StatusCode::BAD_REQUEST,
            "com.amazonaws.dynamodb.v20120810",
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. \
             Consider increasing your provisioning level with the UpdateTable API.",
        ),
        Fault::Throttling => (
            StatusCode::BAD_REQUEST,
            "com.amazon.coral.availability",
            "ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        ),
        Fault::ServiceUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "com.amazonaws.dynamodb.v20120810",
            "ServiceUnavailable",
            "The service is currently unavailable or busy.",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "com.amazonaws.dynamodb.v20120810",
            "InternalServerError",
            "Internal server error",
        ),
    };
    json_response(
        status,
        Some(code),
        &json!({ "__type": format!("{namespace}#{code}"), "message": message }),
    )
}

fn json_response(status: StatusCode, error_type: Option<&str>, body: &Value) -> ProxyResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    if let Some(code) = error_type.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert("x-amzn-errortype", code);
    }
    headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_static("FAULTPROXY0000000000000000000000000000000000000000000"),
    );
    response
}

/// Executes part of a batch and reports the rest as not done.
async fn partial_batch(
    shared: &Shared,
    operation: &str,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> ProxyResponse {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return forward(shared, parts, body).await; // not ours to judge: let upstream answer
    };
    let mut rng = shared.fork_rng();
    let split = match operation {
        "BatchWriteItem" => split_batch_write(request, &mut rng),
        _ => split_batch_statements(request, &mut rng),
    };
    let Some(split) = split else {
        return forward(shared, parts, body).await; // nothing to split
    };
    shared.count_injected(Fault::PartialBatch, split.withheld_count);
    let upstream = match split.forward {
        None => None,
        Some(request) => {
            let body = Bytes::from(Value::Object(request).to_string());
            match send_upstream(shared, parts, body).await {
                Ok((status, headers, body)) if status.is_success() => {
                    match serde_json::from_slice::<Value>(&body) {
                        Ok(Value::Object(answer)) => Some((headers, answer)),
                        _ => return relay(status, headers, body),
                    }
                }
                // The whole request failed: the client retries all of it anyway.
                Ok((status, headers, body)) => return relay(status, headers, body),
                Err(e) => return upstream_unreachable(&e),
            }
        }
    };
    let (headers, answer) = upstream.unwrap_or_default();
    let merged = (split.merge)(answer);
    let mut response = relay(
        StatusCode::OK,
        headers,
        Bytes::from(Value::Object(merged).to_string()),
    );
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response
}

type Object = Map<String, Value>;

/// A batch request cut in two: what to forward (if anything is left) and how to fold the
/// withheld entries into the upstream's answer.
struct Split {
    forward: Option<Object>,
    withheld_count: usize,
    merge: Box<dyn FnOnce(Object) -> Object + Send>,
}

/// Picks which of `n >= 1` entries to withhold: each with probability one half, and at
/// least one.
fn pick_withheld(n: usize, rng: &mut fastrand::Rng) -> Vec<bool> {
    let mut withheld: Vec<bool> = (0..n).map(|_| rng.bool()).collect();
    if !withheld.contains(&true) {
        withheld[rng.usize(..n)] = true;
    }
    withheld
}

/// `BatchWriteItem`: some requests go to `UnprocessedItems` without being executed.
fn split_batch_write(mut request: Object, rng: &mut fastrand::Rng) -> Option<Split> {
    let Some(Value::Object(items)) = request.remove("RequestItems") else {
        return None;
    };
    let total: usize = items
        .values()
        .map(|v| v.as_array().map_or(0, Vec::len))
        .sum();
    if total == 0 {
        request.insert("RequestItems".into(), Value::Object(items));
        return None;
    }
    let mut withheld_flags = pick_withheld(total, rng).into_iter();
    let mut kept = Object::new();
    let mut withheld = Object::new();
    for (table, entries) in items {
        let entries = match entries {
            Value::Array(entries) => entries,
            other => {
                kept.insert(table, other);
                continue;
            }
        };
        let (mut keep, mut hold) = (Vec::new(), Vec::new());
        for entry in entries {
            if withheld_flags.next().unwrap_or(false) {
                hold.push(entry);
            } else {
                keep.push(entry);
            }
        }
        if !keep.is_empty() {
            kept.insert(table.clone(), Value::Array(keep));
        }
        if !hold.is_empty() {
            withheld.insert(table, Value::Array(hold));
        }
    }
    let withheld_count = withheld
        .values()
        .map(|v| v.as_array().map_or(0, Vec::len))
        .sum();
    let forward = (!kept.is_empty()).then(|| {
        request.insert("RequestItems".into(), Value::Object(kept));
        request
    });
    Some(Split {
        forward,
        withheld_count,
        merge: Box::new(move |mut answer| {
            let unprocessed = answer
                .entry("UnprocessedItems")
                .or_insert_with(|| Value::Object(Object::new()));
            if !unprocessed.is_object() {
                *unprocessed = Value::Object(Object::new());
            }
            if let Value::Object(unprocessed) = unprocessed {
                for (table, entries) in withheld {
                    let slot = unprocessed
                        .entry(table)
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let (Value::Array(slot), Value::Array(entries)) = (slot, entries) {
                        slot.extend(entries);
                    }
                }
            }
            answer
        }),
    })
}

/// The per-statement error codes DynamoDB returns for capacity and server trouble.
const STATEMENT_ERRORS: [(&str, &str); 3] = [
    (
        "ThrottlingError",
        "Throughput exceeds the current capacity for one or more global secondary indexes. \
         DynamoDB is automatically scaling your index so please try again shortly.",
    ),
    (
        "ProvisionedThroughputExceeded",
        "The level of configured provisioned throughput for the table was exceeded.",
    ),
    ("InternalServerError", "Internal server error"),
];

/// `BatchExecuteStatement`: some statements are dropped, and errors take their places in
/// `Responses`.
fn split_batch_statements(mut request: Object, rng: &mut fastrand::Rng) -> Option<Split> {
    let Some(Value::Array(statements)) = request.remove("Statements") else {
        return None;
    };
    if statements.is_empty() {
        request.insert("Statements".into(), Value::Array(statements));
        return None;
    }
    let withheld = pick_withheld(statements.len(), rng);
    let errors: Vec<Option<Value>> = withheld
        .iter()
        .map(|&w| {
            w.then(|| {
                let (code, message) = STATEMENT_ERRORS[rng.usize(..STATEMENT_ERRORS.len())];
                json!({ "Error": { "Code": code, "Message": message } })
            })
        })
        .collect();
    let kept: Vec<Value> = statements
        .into_iter()
        .zip(&withheld)
        .filter(|(_, w)| !**w)
        .map(|(s, _)| s)
        .collect();
    let withheld_count = withheld.iter().filter(|w| **w).count();
    let forward = (!kept.is_empty()).then(|| {
        request.insert("Statements".into(), Value::Array(kept));
        request
    });
    Some(Split {
        forward,
        withheld_count,
        merge: Box::new(move |mut answer| {
            let mut upstream = match answer.remove("Responses") {
                Some(Value::Array(responses)) => responses.into_iter(),
                _ => Vec::new().into_iter(),
            };
            let responses = errors
                .into_iter()
                .map(|error| match error {
                    Some(error) => error,
                    None => upstream.next().unwrap_or_else(|| json!({})),
                })
                .collect();
            answer.insert("Responses".into(), Value::Array(responses));
            answer
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_write_split_moves_entries_to_unprocessed() {
        let request = json!({
            "RequestItems": {
                "t1": [{"PutRequest": {"Item": {"id": {"S": "a"}}}},
                       {"PutRequest": {"Item": {"id": {"S": "b"}}}},
                       {"DeleteRequest": {"Key": {"id": {"S": "c"}}}}],
                "t2": [{"PutRequest": {"Item": {"id": {"S": "d"}}}}]
            },
            "ReturnConsumedCapacity": "TOTAL"
        });
        for seed in 0..50 {
            let Value::Object(request) = request.clone() else {
                unreachable!()
            };
            let split =
                split_batch_write(request, &mut fastrand::Rng::with_seed(seed)).expect("split");
            assert!(split.withheld_count >= 1);
            let forwarded = split.forward.as_ref().map_or(0, |f| {
                assert_eq!(f["ReturnConsumedCapacity"], "TOTAL");
                f["RequestItems"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|v| v.as_array().unwrap().len())
                    .sum()
            });
            assert_eq!(forwarded + split.withheld_count, 4);
            let answer = (split.merge)(Object::new());
            let unprocessed: usize = answer["UnprocessedItems"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_array().unwrap().len())
                .sum();
            assert_eq!(unprocessed, split.withheld_count);
        }
    }

    #[test]
    fn statement_split_splices_errors_at_their_positions() {
        let statements: Vec<Value> = (0..5)
            .map(|i| json!({"Statement": format!("DELETE {i}")}))
            .collect();
        let request = json!({ "Statements": statements });
        let Value::Object(request) = request else {
            unreachable!()
        };
        let split =
            split_batch_statements(request, &mut fastrand::Rng::with_seed(7)).expect("split");
        let kept: Vec<Value> = split
            .forward
            .as_ref()
            .map(|f| f["Statements"].as_array().unwrap().clone())
            .unwrap_or_default();
        // The upstream answers one response per forwarded statement, tagged to check order.
        let answer = json!({
            "Responses": kept.iter().map(|s| json!({"Echo": s["Statement"]})).collect::<Vec<_>>()
        });
        let Value::Object(answer) = answer else {
            unreachable!()
        };
        let merged = (split.merge)(answer);
        let responses = merged["Responses"].as_array().unwrap();
        assert_eq!(responses.len(), 5);
        let mut errors = 0;
        for (i, response) in responses.iter().enumerate() {
            if let Some(code) = response["Error"]["Code"].as_str() {
                assert!(STATEMENT_ERRORS.iter().any(|(c, _)| *c == code));
                errors += 1;
            } else {
                assert_eq!(response["Echo"], format!("DELETE {i}"));
            }
        }
        assert_eq!(errors, split.withheld_count);
        assert_eq!(errors + kept.len(), 5);
    }

    #[test]
    fn error_bodies_are_dynamodb_json_errors() {
        let response = error_response(Fault::ProvisionedThroughputExceeded);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()["content-type"],
            "application/x-amz-json-1.0"
        );
        assert_eq!(
            response.headers()["x-amzn-errortype"],
            "ProvisionedThroughputExceededException"
        );
        assert_eq!(
            error_response(Fault::InternalServerError).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            error_response(Fault::ServiceUnavailable).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn partial_batch_applies_only_to_batches() {
        assert!(Fault::PartialBatch.applies_to("BatchWriteItem"));
        assert!(Fault::PartialBatch.applies_to("BatchExecuteStatement"));
        assert!(!Fault::PartialBatch.applies_to("PutItem"));
        assert!(Fault::Throttling.applies_to("PutItem"));
    }
}
