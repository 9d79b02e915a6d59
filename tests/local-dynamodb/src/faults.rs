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
//! | `StatementValidationError` | a 200 answer, some statements answered `ValidationError` | only the others |
//! | `StatementMiss` | a 200 answer, some statements answered with an empty member (no `Item`) | only the others |
//! | `StartKeyRejected` | `Scan` only: HTTP 400 `ValidationException`, as DynamoDB answers an `ExclusiveStartKey` of another segment | no |
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
//! The two `Statement*` kinds ([`Fault::SHAPES`]) splice, in the same way, the answers
//! real DynamoDB gives that are not failures: a per-statement `ValidationError` for a
//! statement it refuses, and a member with neither `Item` nor `Error` for a
//! `DELETE … RETURNING ALL OLD *` that found nothing.
//!
//! [`FaultProxy::set_latency`] adds a fixed delay to every request before it is answered
//! (forwarded or faulted alike), as a network between client and server would: on loopback
//! a round trip costs a fraction of a millisecond, so a client that makes one request at a
//! time looks far cheaper than it is against a real endpoint. The delay is a tokio sleep on
//! the proxy's runtime, so it takes at least the latency, rounded up to the timer's
//! millisecond tick; concurrent requests wait in parallel, as on a real network. It is zero
//! by default and is independent of the plan.
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
//! use std::time::Duration;
//! use local_dynamodb::LocalDynamo;
//! use local_dynamodb::faults::{Fault, FaultPlan, FaultProxy};
//!
//! let upstream = LocalDynamo::embedded()?;
//! let proxy = FaultProxy::start(upstream.endpoint().unwrap())?;
//! proxy.set_plan(FaultPlan::new(0.1, vec![Fault::Throttling, Fault::InternalServerError]));
//! proxy.set_latency(Duration::from_millis(2)); // an in-region round trip
//! let client = LocalDynamo::at(proxy.endpoint()).client().await;
//! // ... use `client`; then:
//! println!("{:?}", proxy.stats());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;

use crate::{LocalDynamo, StartError};

mod batch;
mod http;

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
    /// `BatchExecuteStatement` only: some statements are not executed, and answered as
    /// DynamoDB answers an invalid statement, a per-statement
    /// `{"Error": {"Code": "ValidationError", …}}` in a 200 answer (not a thrown error).
    StatementValidationError,
    /// `BatchExecuteStatement` only: some statements are not executed, and answered as
    /// DynamoDB answers a `DELETE … RETURNING ALL OLD *` that found no item: a member
    /// with neither `Item` nor `Error`.
    StatementMiss,
    /// `Scan` only: HTTP 400 `ValidationException`, as DynamoDB answers a parallel scan
    /// whose `ExclusiveStartKey` belongs to another segment (a cursor local servers do not
    /// check). Permanent: retrying the same request fails the same way.
    StartKeyRejected,
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

    /// The real-DynamoDB answer shapes spliced into `BatchExecuteStatement` answers, for
    /// tests that pin how the delete path reads them. Not in [`Fault::ALL`]: they are not
    /// failures a retry fixes.
    pub const SHAPES: [Fault; 2] = [Fault::StatementValidationError, Fault::StatementMiss];

    /// Refusals for good, which no retry fixes. Not in [`Fault::ALL`].
    pub const PERMANENT: [Fault; 1] = [Fault::StartKeyRejected];

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
            Fault::StatementValidationError => "StatementValidationError",
            Fault::StatementMiss => "StatementMiss",
            Fault::StartKeyRejected => "StartKeyRejected",
        }
    }

    /// Whether this fault can be injected into a request for `operation`.
    pub fn applies_to(self, operation: &str) -> bool {
        match self {
            Fault::PartialBatch => matches!(operation, "BatchWriteItem" | "BatchExecuteStatement"),
            Fault::StatementValidationError | Fault::StatementMiss => {
                operation == "BatchExecuteStatement"
            }
            Fault::StartKeyRejected => operation == "Scan",
            _ => true,
        }
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
    /// Stop injecting after this many faults under this plan (`None`: no limit). With rate
    /// 1.0 and a limit of `n`, exactly the first `n` matching requests fail.
    pub max_faults: Option<u64>,
}

impl Default for FaultPlan {
    /// No faults: rate 0, all operations, seed 0, `timeout_hold` 1 s, no limit.
    fn default() -> Self {
        Self {
            rate: 0.0,
            faults: Vec::new(),
            operations: Vec::new(),
            seed: 0,
            timeout_hold: Duration::from_secs(1),
            max_faults: None,
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

    /// Injects at most `n` faults under this plan.
    pub fn at_most(mut self, n: u64) -> Self {
        self.max_faults = Some(n);
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
            .field("latency", &self.shared.latency())
            .finish_non_exhaustive()
    }
}

struct Shared {
    addr: SocketAddr,
    upstream: Uri,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    state: Mutex<State>,
    /// Added latency per request, in nanoseconds (see [`FaultProxy::set_latency`]).
    latency_nanos: AtomicU64,
}

struct State {
    plan: FaultPlan,
    rng: fastrand::Rng,
    stats: FaultStats,
    /// Faults drawn under the current plan, for [`FaultPlan::max_faults`].
    drawn: u64,
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
        let (std_listener, addr, runtime) = crate::loopback_server("fault-proxy")?;
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
                drawn: 0,
            }),
            latency_nanos: AtomicU64::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let serving = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || runtime.block_on(http::serve(std_listener, serving, stopped)))
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
        state.drawn = 0;
    }

    /// The current plan.
    pub fn plan(&self) -> FaultPlan {
        self.shared.lock_state().plan.clone()
    }

    /// Delays every request by `latency` before it is forwarded or faulted, to stand for
    /// the network between a client and a real endpoint; applies to the next request.
    /// Zero (the default) adds nothing. Replacing the plan keeps the latency.
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_nanos.store(nanos, Ordering::Relaxed);
    }

    /// The added latency per request (zero unless [`set_latency`](Self::set_latency)).
    pub fn latency(&self) -> Duration {
        self.shared.latency()
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

    fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::Relaxed))
    }

    /// Counts the request and draws whether (and which) fault it gets.
    fn decide(&self, operation: &str) -> Option<(Fault, Duration)> {
        let mut state = self.lock_state();
        let State {
            plan,
            rng,
            stats,
            drawn,
        } = &mut *state;
        stats.requests += 1;
        *stats.by_operation.entry(operation.to_owned()).or_default() += 1;
        if plan.rate <= 0.0
            || !plan.matches(operation)
            || plan.max_faults.is_some_and(|max| *drawn >= max)
        {
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
        *drawn += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_batch_applies_only_to_batches() {
        assert!(Fault::PartialBatch.applies_to("BatchWriteItem"));
        assert!(Fault::PartialBatch.applies_to("BatchExecuteStatement"));
        assert!(!Fault::PartialBatch.applies_to("PutItem"));
        assert!(Fault::Throttling.applies_to("PutItem"));
    }

    /// The fastest of `n` sequential `ListTables` calls through `client`.
    async fn fastest_of(client: &aws_sdk_dynamodb::Client, n: usize) -> Duration {
        let mut fastest = Duration::MAX;
        for _ in 0..n {
            let started = std::time::Instant::now();
            client.list_tables().send().await.expect("ListTables");
            fastest = fastest.min(started.elapsed());
        }
        fastest
    }

    #[tokio::test]
    #[ignore = "soak: asserts on wall-clock time; run with `cargo test --workspace -- --ignored`"]
    async fn latency_delays_every_request_and_defaults_to_nothing() {
        const LATENCY: Duration = Duration::from_millis(20);
        let upstream = LocalDynamo::embedded().expect("embedded server");
        let proxy = FaultProxy::in_front_of(&upstream).expect("proxy");
        let client = proxy.local().client().await;
        assert_eq!(proxy.latency(), Duration::ZERO);
        // Warm-up: connections and credentials, not the proxy's cost.
        client.list_tables().send().await.expect("ListTables");

        // Zero latency: the fastest round trip stays well under the latency used below
        // (the fastest of several, so a busy machine does not make this flaky).
        let unloaded = fastest_of(&client, 5).await;
        assert!(unloaded < LATENCY / 2, "no latency set, yet {unloaded:?}");

        proxy.set_latency(LATENCY);
        // Every request pays it: the fastest is at least the latency.
        let delayed = fastest_of(&client, 3).await;
        assert!(
            delayed >= LATENCY,
            "latency {LATENCY:?}, request took {delayed:?}"
        );

        // Faulted requests pay it too, and replacing the plan keeps it: one throttled
        // attempt and its retry make two delayed round trips.
        proxy.set_plan(FaultPlan::new(1.0, vec![Fault::Throttling]).at_most(1));
        assert_eq!(proxy.latency(), LATENCY);
        let started = std::time::Instant::now();
        client
            .list_tables()
            .send()
            .await
            .expect("ListTables, retried");
        let took = started.elapsed();
        assert_eq!(proxy.stats().injected, 1);
        assert!(took >= 2 * LATENCY, "two attempts, yet {took:?}");

        proxy.set_latency(Duration::ZERO);
        let back = fastest_of(&client, 5).await;
        assert!(back < LATENCY / 2, "latency reset, yet {back:?}");
    }
}
