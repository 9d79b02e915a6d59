//! The DynamoDB client the sweeper binary uses, in Lambda and on the command line.

use std::time::Duration;

use aws_sdk_dynamodb::Client;

/// How long after the engine's attempt timeout the SDK cuts an attempt itself.
pub const SDK_CUT_AFTER: Duration = Duration::from_millis(250);

/// The standard AWS configuration chain (Lambda's role), an optional endpoint override,
/// SDK retries off (the engine retries itself, see [`crate::retry`]), and the sweep's one
/// attempt timeout, `attempt_timeout` (`SWEEP_ATTEMPT_TIMEOUT_MS`,
/// [`RetryPolicy::attempt_timeout`](crate::RetryPolicy::attempt_timeout)): the engine
/// cuts every attempt there, so that its retries are counted and paced, and the SDK's own
/// cut, [`SDK_CUT_AFTER`] later, only backs it up. With an endpoint and no AWS
/// credentials in the environment (a local server), dummy credentials and `us-east-1`.
pub async fn dynamodb_client(endpoint: Option<&str>, attempt_timeout: Duration) -> Client {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_sdk_dynamodb::config::{Credentials, Region};

    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(attempt_timeout.saturating_add(SDK_CUT_AFTER))
                .build(),
        );
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
        let has_credentials = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
            || std::env::var_os("AWS_PROFILE").is_some();
        if !has_credentials {
            loader = loader
                .credentials_provider(Credentials::new("local", "local", None, None, "sweeper"));
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            loader = loader.region(Region::new("us-east-1"));
        }
    }
    Client::new(&loader.load().await)
}
