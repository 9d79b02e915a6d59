//! A DynamoDB endpoint for tests, the demo and the benchmarks, with nothing to install.
//!
//! [`LocalDynamo::start`] serves the embedded, SQLite-backed DynamoDB-compatible server
//! [`dynoxide`] on `127.0.0.1`, port 0, in this process, unless the environment variable
//! `DYNAMODB_ENDPOINT` names another endpoint (DynamoDB Local, LocalStack, or real AWS with
//! `DYNAMODB_ENDPOINT=aws`), in which case that endpoint is used instead.
//!
//! The embedded server runs on a runtime of its own, on its own threads, so it outlives the
//! runtime of whichever test started it and works with any `#[tokio::test]` flavour.
#![deny(missing_docs)]

pub mod faults;

use std::net::SocketAddr;
use std::sync::OnceLock;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Credentials;

/// Environment variable naming the endpoint to test against instead of the embedded server.
///
/// `aws` (or `AWS`) means the standard AWS configuration chain with no endpoint override.
pub const ENDPOINT_VAR: &str = "DYNAMODB_ENDPOINT";

/// Where the DynamoDB API is served.
#[derive(Debug, Clone)]
pub struct LocalDynamo {
    endpoint: Option<String>,
    embedded: bool,
}

/// Why a local endpoint could not be started.
#[derive(Debug)]
pub struct StartError(String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "could not start the embedded DynamoDB server: {}",
            self.0
        )
    }
}

impl std::error::Error for StartError {}

impl LocalDynamo {
    /// The endpoint named by `DYNAMODB_ENDPOINT`, or else a fresh embedded server.
    ///
    /// # Errors
    /// When the embedded server cannot bind a loopback port or open its database.
    pub fn start() -> Result<Self, StartError> {
        match std::env::var(ENDPOINT_VAR) {
            Ok(v) if v.eq_ignore_ascii_case("aws") => Ok(Self {
                endpoint: None,
                embedded: false,
            }),
            Ok(v) if !v.trim().is_empty() => Ok(Self {
                endpoint: Some(v.trim().to_owned()),
                embedded: false,
            }),
            _ => Self::embedded(),
        }
    }

    /// A fresh embedded server (an in-memory database), whatever the environment says.
    ///
    /// # Errors
    /// When no loopback port can be bound or the in-memory database cannot be opened.
    pub fn embedded() -> Result<Self, StartError> {
        let addr = spawn_embedded()?;
        Ok(Self {
            endpoint: Some(format!("http://{addr}")),
            embedded: true,
        })
    }

    /// A given endpoint URL (for example a fault-injecting proxy in front of another
    /// endpoint), with local dummy credentials unless the environment has real ones.
    pub fn at(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: Some(endpoint.into()),
            embedded: false,
        }
    }

    /// The process-wide shared server: one embedded server per test binary (tests still
    /// isolate themselves with a fresh table each), or the `DYNAMODB_ENDPOINT` one.
    ///
    /// # Panics
    /// When the embedded server cannot start: there is nothing to test against then.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<LocalDynamo> = OnceLock::new();
        SHARED.get_or_init(|| Self::start().expect("start the shared DynamoDB endpoint"))
    }

    /// The endpoint URL, or `None` for real AWS (the standard configuration chain).
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// Whether this is the embedded server started by this process.
    pub fn is_embedded(&self) -> bool {
        self.embedded
    }

    /// SDK configuration for this endpoint.
    ///
    /// For the embedded server (or any endpoint without AWS credentials in the
    /// environment) it uses static dummy credentials and `us-east-1`; otherwise the
    /// standard AWS configuration chain, with the endpoint overridden.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
            let has_credentials = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
                || std::env::var_os("AWS_PROFILE").is_some();
            if self.embedded || !has_credentials {
                loader = loader
                    .credentials_provider(Credentials::new("local", "local", None, None, "local"));
            }
            if self.embedded || std::env::var_os("AWS_REGION").is_none() {
                loader = loader.region(Region::new("us-east-1"));
            }
        }
        loader.load().await
    }

    /// A DynamoDB client for this endpoint.
    pub async fn client(&self) -> Client {
        Client::new(&self.sdk_config().await)
    }
}

/// Serves a new in-memory dynoxide database on 127.0.0.1:0 from a dedicated thread.
fn spawn_embedded() -> Result<SocketAddr, StartError> {
    let db = dynoxide::Database::memory().map_err(|e| StartError(e.to_string()))?;
    let (std_listener, addr, runtime) = loopback_server("dynoxide")?;
    std::thread::Builder::new()
        .name("dynoxide-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(listener) => listener,
                    Err(e) => {
                        eprintln!("embedded DynamoDB: {e}");
                        return;
                    }
                };
                // Serves until the process exits.
                let forever = std::future::pending::<()>();
                if let Err(e) = dynoxide::server::serve_with_shutdown(listener, db, forever).await {
                    eprintln!("embedded DynamoDB: {e}");
                }
            });
        })
        .map_err(|e| StartError(e.to_string()))?;
    Ok(addr)
}

/// A non-blocking listener on 127.0.0.1:0, its address, and a two-thread runtime of its
/// own to serve it from a dedicated thread (so it outlives any test's runtime).
pub(crate) fn loopback_server(
    name: &str,
) -> Result<(std::net::TcpListener, SocketAddr, tokio::runtime::Runtime), StartError> {
    let error = |e: std::io::Error| StartError(format!("{name}: {e}"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(error)?;
    let addr = listener.local_addr().map_err(error)?;
    listener.set_nonblocking(true).map_err(error)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(error)?;
    Ok((listener, addr, runtime))
}
