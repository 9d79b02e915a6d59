//! The example app's Lambda entry point: settings, store, `lambda_http::run`.

use dynamo_session_store::DynamoStore;
use session_app_lambda::{DEFAULT_INACTIVITY, Settings, app};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(false)
        .without_time()
        .init();
    let settings = Settings::from_env()?;
    let store = DynamoStore::from_env(settings.table())
        .await
        .with_schema(settings.schema().clone())?;
    // A wrong table, or missing permissions, fails the cold start with one line naming
    // it and the setting to change, instead of a 500 on every request.
    store.check_table().await?;
    lambda_http::run(app(store, DEFAULT_INACTIVITY)).await
}
