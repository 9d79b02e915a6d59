//! The command line, for runs outside Lambda (cron, ECS, a laptop against any endpoint).
//!
//! ```text
//! sweeper --table sessions [--segments 8] [--slice 0..4] [--dry-run] [--endpoint URL] …
//! ```
//!
//! Parsed by `clap` (derive): `sweeper --help` is generated from [`Args`]' field docs, so
//! it cannot drift from what is accepted. Flags stand in for the environment variables
//! of the same meaning (a flag wins), so the same settings work in both places, and are
//! validated by the same code ([`SweepConfig::from_lookup_named`]), which names the flag
//! in its errors. The report is printed to stdout as JSON; logs go to stderr. Exit
//! status: 0 done (or stopped early by `--max-seconds`), 1 segments failed, 2 invalid
//! arguments or configuration.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::budget::Budget;
use crate::client::dynamodb_client;
use crate::config::{ConfigError, SweepConfig};
use crate::error::SweepError;
use crate::sweeper::Sweeper;

/// sweeper: delete expired sessions from a dynamo-session-store table, once.
///
/// Every option named with an env variable can also be set by that variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Parser)]
#[command(name = "sweeper", disable_version_flag = true)]
pub struct Args {
    /// Table to sweep (env SESSIONS_TABLE)
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// Parallel scan segments, 1..=1000000 (env SWEEP_TOTAL_SEGMENTS; default 8)
    #[arg(long, value_name = "N")]
    pub segments: Option<String>,
    /// Sweep only segments START..END of the total, or part I of N (from 0) (env SWEEP_SLICE)
    #[arg(long, value_name = "START..END|I/N")]
    pub slice: Option<String>,
    /// Cutoff = now - N (env SWEEP_GRACE_SECONDS; default 15)
    #[arg(long, value_name = "N")]
    pub grace_seconds: Option<String>,
    /// Pacing, 0 = none (env SWEEP_MAX_DELETES_PER_SECOND; default 0)
    #[arg(long, value_name = "N")]
    pub max_deletes_per_second: Option<String>,
    /// Read capacity units per second, 0 = no cap (env SWEEP_MAX_READ_UNITS_PER_SECOND; default 0)
    #[arg(long, value_name = "N")]
    pub max_read_units_per_second: Option<String>,
    /// Read capacity units per run, then checkpoint (env SWEEP_MAX_READ_UNITS; default 0, none)
    #[arg(long, value_name = "N")]
    pub max_read_units: Option<String>,
    /// Scan Limit, 0 = 1 MB pages (env SWEEP_PAGE_SIZE; default 0)
    #[arg(long, value_name = "N")]
    pub page_size: Option<String>,
    /// Report only, delete nothing (env SWEEP_DRY_RUN)
    #[arg(long)]
    pub dry_run: bool,
    /// Keep no resume cursors (env SWEEP_CHECKPOINT; default true)
    #[arg(long)]
    pub no_checkpoint: bool,
    /// Session key attribute (env SESSION_KEY_ATTRIBUTE; default id)
    #[arg(long, value_name = "NAME")]
    pub key_attribute: Option<String>,
    /// Expiry attribute, epoch seconds (env SESSION_EXPIRES_ATTRIBUTE; default expires)
    #[arg(long, value_name = "NAME")]
    pub expires_attribute: Option<String>,
    /// Data attribute (env SESSION_DATA_ATTRIBUTE; default data)
    #[arg(long, value_name = "NAME")]
    pub data_attribute: Option<String>,
    /// Key prefix of this app's sessions (env SESSION_KEY_PREFIX)
    #[arg(long, value_name = "PREFIX")]
    pub key_prefix: Option<String>,
    /// partiql or delete-item (env SWEEP_DELETE_STRATEGY; default partiql)
    #[arg(long, value_name = "STRATEGY")]
    pub strategy: Option<String>,
    /// Segments scanned at once (env SWEEP_SEGMENT_CONCURRENCY; default 16)
    #[arg(long, value_name = "N")]
    pub segment_concurrency: Option<String>,
    /// Delete requests in flight per segment (env SWEEP_DELETE_CONCURRENCY; default 4)
    #[arg(long, value_name = "N")]
    pub delete_concurrency: Option<String>,
    /// In Lambda, be done this long before the deadline (env SWEEP_DEADLINE_MARGIN_MS; default 1000)
    #[arg(long, value_name = "MS")]
    pub deadline_margin_ms: Option<String>,
    /// Cut one DynamoDB attempt after this long (env SWEEP_ATTEMPT_TIMEOUT_MS; default 3000)
    #[arg(long, value_name = "MS")]
    pub attempt_timeout_ms: Option<String>,
    /// CloudWatch namespace of the --emf line (env SWEEP_METRICS_NAMESPACE; default SessionSweeper)
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,
    /// Be done, checkpoint saved, within N seconds, 1 to 2592000 (30 days; resume next run)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_RUN_SECONDS))]
    pub max_seconds: Option<u64>,
    /// DynamoDB endpoint (local servers); region and credentials from AWS_*
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Also print the CloudWatch EMF metrics line
    #[arg(long)]
    pub emf: bool,
}

impl Args {
    /// The flags that stand in for environment variables: (variable, flag, value).
    fn vars(&self) -> Vec<(&'static str, &'static str, String)> {
        let flags = [
            ("SESSIONS_TABLE", "--table", &self.table),
            ("SWEEP_TOTAL_SEGMENTS", "--segments", &self.segments),
            ("SWEEP_SLICE", "--slice", &self.slice),
            (
                "SWEEP_GRACE_SECONDS",
                "--grace-seconds",
                &self.grace_seconds,
            ),
            (
                "SWEEP_MAX_DELETES_PER_SECOND",
                "--max-deletes-per-second",
                &self.max_deletes_per_second,
            ),
            (
                "SWEEP_MAX_READ_UNITS_PER_SECOND",
                "--max-read-units-per-second",
                &self.max_read_units_per_second,
            ),
            (
                "SWEEP_MAX_READ_UNITS",
                "--max-read-units",
                &self.max_read_units,
            ),
            ("SWEEP_PAGE_SIZE", "--page-size", &self.page_size),
            (
                "SESSION_KEY_ATTRIBUTE",
                "--key-attribute",
                &self.key_attribute,
            ),
            (
                "SESSION_EXPIRES_ATTRIBUTE",
                "--expires-attribute",
                &self.expires_attribute,
            ),
            (
                "SESSION_DATA_ATTRIBUTE",
                "--data-attribute",
                &self.data_attribute,
            ),
            ("SESSION_KEY_PREFIX", "--key-prefix", &self.key_prefix),
            ("SWEEP_DELETE_STRATEGY", "--strategy", &self.strategy),
            (
                "SWEEP_SEGMENT_CONCURRENCY",
                "--segment-concurrency",
                &self.segment_concurrency,
            ),
            (
                "SWEEP_DELETE_CONCURRENCY",
                "--delete-concurrency",
                &self.delete_concurrency,
            ),
            (
                "SWEEP_DEADLINE_MARGIN_MS",
                "--deadline-margin-ms",
                &self.deadline_margin_ms,
            ),
            (
                "SWEEP_ATTEMPT_TIMEOUT_MS",
                "--attempt-timeout-ms",
                &self.attempt_timeout_ms,
            ),
            ("SWEEP_METRICS_NAMESPACE", "--namespace", &self.namespace),
        ];
        let switches = [
            (
                "SWEEP_DRY_RUN",
                "--dry-run",
                self.dry_run.then(|| "true".to_owned()),
            ),
            (
                "SWEEP_CHECKPOINT",
                "--no-checkpoint",
                self.no_checkpoint.then(|| "false".to_owned()),
            ),
        ];
        flags
            .into_iter()
            .map(|(var, flag, value)| (var, flag, value.clone()))
            .chain(switches)
            .filter_map(|(var, flag, value)| Some((var, flag, value?)))
            .collect()
    }

    /// The configuration: these flags over the environment read by `env`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the flag or variable that is missing or invalid.
    pub fn config(&self, env: impl Fn(&str) -> Option<String>) -> Result<SweepConfig, ConfigError> {
        let vars = self.vars();
        let flag = |name: &str| vars.iter().find(|(var, ..)| *var == name);
        SweepConfig::from_lookup_named(
            |name| {
                flag(name)
                    .map(|(.., value)| value.clone())
                    .or_else(|| env(name))
            },
            |name| match flag(name) {
                Some((_, flag, _)) => format!("flag `{flag}`"),
                None => format!("environment variable `{name}`"),
            },
        )
    }
}

/// Runs one sweep from the command line (arguments without the program name).
pub async fn main(args: Vec<String>) -> ExitCode {
    let args = match Args::try_parse_from(std::iter::once("sweeper".to_owned()).chain(args)) {
        Ok(args) => args,
        Err(err) => {
            // Help goes to stdout with status 0; a usage error to stderr with status 2.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    let config = match args.config(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("sweeper: {err}\n(see --help)");
            return ExitCode::from(2);
        }
    };
    let max_time = args.max_seconds.map(Duration::from_secs);
    if let Some(Err(err)) = max_time.map(|t| config.check_run_time(t, "flag `--max-seconds`")) {
        eprintln!("sweeper: {err}\n(see --help)");
        return ExitCode::from(2);
    }
    let client = dynamodb_client(args.endpoint.as_deref(), config.retry().attempt_timeout()).await;
    let sweeper = Sweeper::new(client, config.clone()).with_metrics(args.emf);
    let budget = match max_time {
        Some(time) => Budget::for_duration(time),
        None => Budget::unlimited(),
    };
    let (report, code) = match sweeper.run(&config, budget).await {
        Ok(report) => (report, ExitCode::SUCCESS),
        Err(SweepError::Failed { report }) => (*report, ExitCode::FAILURE),
        Err(err) => {
            eprintln!("sweeper: {err}");
            return ExitCode::FAILURE;
        }
    };
    match serde_json::to_string_pretty(&report) {
        Ok(json) => println!("{json}"),
        Err(err) => eprintln!("sweeper: could not print the report: {err}"),
    }
    code
}

/// The longest `--max-seconds`: 30 days, far beyond any useful run, and far within the
/// clock's range.
pub const MAX_RUN_SECONDS: u64 = 30 * 86_400;

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn args(list: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("sweeper").chain(list.iter().copied()))
    }

    #[test]
    fn the_command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_stand_in_for_variables() {
        let a = args(&[
            "--table",
            "t",
            "--segments=4",
            "--dry-run",
            "--slice",
            "1..3",
            "--endpoint",
            "http://127.0.0.1:8000",
            "--max-seconds",
            "30",
            "--deadline-margin-ms",
            "1500",
            "--namespace",
            "Ns",
        ])
        .unwrap();
        let env = |name: &str| (name == "SWEEP_GRACE_SECONDS").then(|| "60".to_owned());
        let config = a.config(env).unwrap();
        assert_eq!(config.table(), "t");
        assert_eq!(config.total_segments(), 4);
        assert_eq!(config.slice_label(), "1-3of4");
        assert!(config.dry_run());
        assert_eq!(config.grace(), Duration::from_secs(60));
        assert_eq!(config.deadline_margin(), Duration::from_millis(1500));
        assert_eq!(config.metrics_namespace(), "Ns");
        assert_eq!(a.endpoint.as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(a.max_seconds, Some(30));
    }

    #[test]
    fn every_accepted_flag_is_in_the_help() {
        let help = Args::command().render_long_help().to_string();
        for arg in Args::command().get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(help.contains(&format!("--{long}")), "--{long} missing");
            }
        }
        for var in Args::default().vars().iter().map(|(var, ..)| *var) {
            assert!(help.contains(var), "{var} missing from the help");
        }
        // And every flag that stands in for a variable names it.
        let all = Args {
            table: Some("t".into()),
            segments: Some("1".into()),
            slice: Some("0/1".into()),
            grace_seconds: Some("1".into()),
            max_deletes_per_second: Some("1".into()),
            max_read_units_per_second: Some("1".into()),
            max_read_units: Some("1".into()),
            page_size: Some("1".into()),
            dry_run: true,
            no_checkpoint: true,
            key_attribute: Some("k".into()),
            expires_attribute: Some("e".into()),
            data_attribute: Some("d".into()),
            key_prefix: Some("p".into()),
            strategy: Some("partiql".into()),
            segment_concurrency: Some("1".into()),
            delete_concurrency: Some("1".into()),
            deadline_margin_ms: Some("1".into()),
            attempt_timeout_ms: Some("1".into()),
            namespace: Some("n".into()),
            ..Args::default()
        };
        for (var, flag, _) in all.vars() {
            assert!(help.contains(flag), "{flag} missing");
            assert!(help.contains(var), "{var} missing");
        }
    }

    #[test]
    fn errors_name_the_flag() {
        let err = args(&["--segmnts", "4"]).unwrap_err();
        assert!(err.to_string().contains("--segmnts"), "{err}");
        assert_eq!(err.exit_code(), 2);
        let err = args(&["--table"]).unwrap_err();
        assert!(err.to_string().contains("a value is required"), "{err}");
        let err = args(&["--table", "t", "--segments", "x"])
            .unwrap()
            .config(|_| None)
            .unwrap_err();
        assert!(err.field().contains("--segments"), "{err}");
        let err = args(&["--table", "t", "--slice", "2..9"])
            .unwrap()
            .config(|_| None)
            .unwrap_err();
        assert!(err.field().contains("--slice"), "{err}");
        let err = args(&["--table", "t", "--slice", "2-9"])
            .unwrap()
            .config(|_| None)
            .unwrap_err();
        assert!(err.field().contains("--slice"), "{err}");
        assert!(err.reason().contains("START..END"), "{err}");
        let err = args(&["--table", "t", "--segments", "2", "--slice", "0/3"])
            .unwrap()
            .config(|_| None)
            .unwrap_err();
        assert!(err.field().contains("--slice"), "{err}");
        let err = args(&[]).unwrap().config(|_| None).unwrap_err();
        assert!(err.field().contains("SESSIONS_TABLE"), "{err}");
    }
}
