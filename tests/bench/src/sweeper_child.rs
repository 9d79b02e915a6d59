//! The hidden subcommand `__sweeper`: the sweeper's `main`, linked into the bench binary.
//!
//! Used as the child process of the sweeper scenarios when the real `sweeper` binary is
//! not built (quick mode, CI). It does what `sweeper-lambda/src/main.rs` does: with
//! `AWS_LAMBDA_RUNTIME_API` set, the Lambda runtime loop ([`sweeper_lambda::handler::serve`]);
//! otherwise one sweep from command-line flags ([`sweeper_lambda::cli::main`]). It starts
//! no server and no other scenario, so its memory is the sweeper's alone.

use std::process::ExitCode;

/// The subcommand's name.
pub const SUBCOMMAND: &str = "__sweeper";

/// Runs the sweeper with `args` (after the subcommand).
pub async fn main(args: Vec<String>) -> ExitCode {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        return sweeper_lambda::cli::main(args).await;
    }
    sweeper_lambda::handler::serve().await
}
