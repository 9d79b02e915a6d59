//! The proxy's HTTP side: accepting connections, forwarding, and answering with faults.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, TRANSFER_ENCODING};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::batch::{split_batch_statements, split_batch_write};
use super::{Fault, Shared};

/// Accepts connections until the last handle is dropped.
pub(super) async fn serve(
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
    let decision = shared.decide(&operation);
    let latency = shared.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Some((fault, hold)) = decision else {
        return Ok(forward(&shared, &parts, body).await);
    };
    match fault {
        Fault::ProvisionedThroughputExceeded
        | Fault::Throttling
        | Fault::InternalServerError
        | Fault::ServiceUnavailable
        | Fault::StartKeyRejected => {
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
        Fault::PartialBatch | Fault::StatementValidationError | Fault::StatementMiss => {
            Ok(partial_batch(&shared, fault, &operation, &parts, body).await)
        }
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
        Fault::StartKeyRejected => (
            StatusCode::BAD_REQUEST,
            "com.amazon.coral.validate",
            "ValidationException",
            "The provided starting key is invalid: Invalid ExclusiveStartKey. Please use \
             ExclusiveStartKey with correct Segment. TotalSegments: 3 Segment: 0",
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
    fault: Fault,
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
        _ => split_batch_statements(request, &mut rng, fault),
    };
    let Some(split) = split else {
        return forward(shared, parts, body).await; // nothing to split
    };
    shared.count_injected(fault, split.withheld_count);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
