//! `sweeper`: in Lambda (`AWS_LAMBDA_RUNTIME_API` set) the scheduled handler; elsewhere
//! one sweep configured from flags and the environment (see `sweeper --help`).

use std::process::ExitCode;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use sweeper_lambda::handler::dynamodb_client;
use sweeper_lambda::{SweepConfig, Sweeper};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        return sweeper_lambda::cli::main(std::env::args().skip(1).collect()).await;
    }
    // Honours the function's log level and format (text or JSON) settings.
    lambda_runtime::tracing::init_default_subscriber();
    let config = match SweepConfig::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("sweeper: {err}");
            return ExitCode::FAILURE;
        }
    };
    let sweeper = Sweeper::new(dynamodb_client(None).await, config);
    let sweeper = &sweeper;
    let run = lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        sweeper.handle(event).await
    }));
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sweeper: {err}");
            ExitCode::FAILURE
        }
    }
}
