//! `sweeper`: in Lambda (`AWS_LAMBDA_RUNTIME_API` set) the scheduled handler; elsewhere
//! one sweep configured from flags and the environment (see `sweeper --help`).

use std::process::ExitCode;

use tracing_subscriber::filter::LevelFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let logs = tracing_subscriber::fmt().with_max_level(log_level());
    if !in_lambda {
        logs.with_writer(std::io::stderr).init();
        return sweeper_lambda::cli::main(std::env::args().skip(1).collect()).await;
    }
    // CloudWatch stamps each line itself.
    logs.with_ansi(false).without_time().init();
    sweeper_lambda::handler::serve().await
}

/// The log level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (a plain level such as `debug`),
/// `info` by default.
fn log_level() -> LevelFilter {
    ["AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.trim().parse().ok())
        .unwrap_or(LevelFilter::INFO)
}
