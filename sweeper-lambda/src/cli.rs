//! The command line, for runs outside Lambda (cron, ECS, a laptop against any endpoint).
//!
//! ```text
//! sweeper --table sessions [--segments 8] [--slice 0..4] [--dry-run] [--endpoint URL] …
//! ```
//!
//! Flags stand in for the environment variables of the same meaning (a flag wins), so the
//! same settings work in both places. The report is printed to stdout as JSON; logs go to
//! stderr. Exit status: 0 done (or stopped early by `--max-seconds`), 1 segments failed,
//! 2 invalid arguments or configuration.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use crate::budget::Budget;
use crate::config::{ConfigError, Slice, SweepConfig, parse_number};
use crate::error::SweepError;
use crate::handler::{Sweeper, dynamodb_client};

/// The usage text.
pub const USAGE: &str = "\
sweeper: delete expired sessions from a dynamo-session-store table, once.

USAGE: sweeper --table NAME [OPTIONS]

Every option can also be set by the environment variable in brackets.
  --table NAME                  table to sweep [SESSIONS_TABLE]
  --segments N                  parallel scan segments, 1..=1000000 [SWEEP_TOTAL_SEGMENTS=8]
  --slice START..END            sweep only these segments of the total
  --grace-seconds N             cutoff = now - N [SWEEP_GRACE_SECONDS=15]
  --max-deletes-per-second N    pacing, 0 = none [SWEEP_MAX_DELETES_PER_SECOND=0]
  --page-size N                 Scan Limit, 0 = 1 MB pages [SWEEP_PAGE_SIZE=0]
  --dry-run                     report only, delete nothing [SWEEP_DRY_RUN]
  --no-checkpoint               keep no resume cursors [SWEEP_CHECKPOINT=true]
  --key-attribute NAME          [SESSION_KEY_ATTRIBUTE=id]
  --expires-attribute NAME      [SESSION_EXPIRES_ATTRIBUTE=expires]
  --data-attribute NAME         [SESSION_DATA_ATTRIBUTE=data]
  --key-prefix PREFIX           [SESSION_KEY_PREFIX]
  --strategy partiql|delete-item  [SWEEP_DELETE_STRATEGY=partiql]
  --segment-concurrency N       segments scanned at once [SWEEP_SEGMENT_CONCURRENCY=16]
  --delete-concurrency N        delete requests in flight per segment [SWEEP_DELETE_CONCURRENCY=4]
  --max-seconds N               stop starting new work after N seconds (resume next run)
  --endpoint URL                DynamoDB endpoint (local servers); region/credentials from AWS_*
  --emf                         also print the CloudWatch EMF metrics line
  -h, --help                    this text
";

/// Parsed command-line arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    /// Values standing in for environment variables, by variable name.
    pub vars: HashMap<&'static str, String>,
    /// Flag used for each variable, for error messages.
    pub flags: HashMap<&'static str, String>,
    /// `--slice`.
    pub slice: Option<Slice>,
    /// `--max-seconds`.
    pub max_seconds: Option<u64>,
    /// `--endpoint`.
    pub endpoint: Option<String>,
    /// `--emf`.
    pub emf: bool,
    /// `-h` / `--help`.
    pub help: bool,
}

const VALUE_FLAGS: [(&str, &str); 14] = [
    ("--table", "SESSIONS_TABLE"),
    ("--segments", "SWEEP_TOTAL_SEGMENTS"),
    ("--grace-seconds", "SWEEP_GRACE_SECONDS"),
    ("--max-deletes-per-second", "SWEEP_MAX_DELETES_PER_SECOND"),
    ("--page-size", "SWEEP_PAGE_SIZE"),
    ("--key-attribute", "SESSION_KEY_ATTRIBUTE"),
    ("--expires-attribute", "SESSION_EXPIRES_ATTRIBUTE"),
    ("--data-attribute", "SESSION_DATA_ATTRIBUTE"),
    ("--key-prefix", "SESSION_KEY_PREFIX"),
    ("--strategy", "SWEEP_DELETE_STRATEGY"),
    ("--segment-concurrency", "SWEEP_SEGMENT_CONCURRENCY"),
    ("--delete-concurrency", "SWEEP_DELETE_CONCURRENCY"),
    ("--deadline-margin-ms", "SWEEP_DEADLINE_MARGIN_MS"),
    ("--namespace", "SWEEP_METRICS_NAMESPACE"),
];

impl Args {
    /// Parses arguments (without the program name). `--flag value` and `--flag=value`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the flag that is unknown or lacks a valid value.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, ConfigError> {
        let mut out = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let field = format!("flag `{flag}`");
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| ConfigError::new(&field, "needs a value"))
            };
            match flag.as_str() {
                "-h" | "--help" => out.help = true,
                "--dry-run" => out.set("SWEEP_DRY_RUN", &flag, "true".into()),
                "--no-checkpoint" => out.set("SWEEP_CHECKPOINT", &flag, "false".into()),
                "--emf" => out.emf = true,
                "--endpoint" => out.endpoint = Some(value()?),
                "--max-seconds" => out.max_seconds = Some(parse_number(&value()?, &field)?),
                "--slice" => out.slice = Some(parse_slice(&value()?, &field)?),
                _ => match VALUE_FLAGS.iter().find(|(f, _)| *f == flag) {
                    Some((_, var)) => {
                        let v = value()?;
                        out.set(var, &flag, v);
                    }
                    None => {
                        return Err(ConfigError::new(
                            field,
                            "is not a known option (see --help)",
                        ));
                    }
                },
            }
        }
        Ok(out)
    }

    fn set(&mut self, var: &'static str, flag: &str, value: String) {
        self.vars.insert(var, value);
        self.flags.insert(var, flag.to_owned());
    }

    /// The configuration: these flags over the environment read by `env`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the flag or variable that is missing or invalid.
    pub fn config(&self, env: impl Fn(&str) -> Option<String>) -> Result<SweepConfig, ConfigError> {
        let config = SweepConfig::from_lookup_named(
            |name| self.vars.get(name).cloned().or_else(|| env(name)),
            |name| match self.flags.get(name) {
                Some(flag) => format!("flag `{flag}`"),
                None => format!("environment variable `{name}`"),
            },
        )?;
        let Some(slice) = self.slice else {
            return Ok(config);
        };
        let config = config.with_slice(slice);
        config
            .validate()
            .map_err(|e| ConfigError::new("flag `--slice`", e.reason()))?;
        Ok(config)
    }
}

fn parse_slice(text: &str, field: &str) -> Result<Slice, ConfigError> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| ConfigError::new(field, format!("`{text}` is not START..END")))?;
    Ok(Slice::new(parse_number(a, field)?, parse_number(b, field)?))
}

/// Runs one sweep from the command line (arguments without the program name).
pub async fn main(args: Vec<String>) -> ExitCode {
    let args = match Args::parse(args) {
        Ok(args) => args,
        Err(err) => return usage_error(&err),
    };
    if args.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match args.config(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(err) => return usage_error(&err),
    };
    let client = dynamodb_client(args.endpoint.as_deref()).await;
    let sweeper = Sweeper::new(client, config.clone()).with_metrics(args.emf);
    let budget = match args.max_seconds {
        Some(secs) => Budget::for_duration(Duration::from_secs(secs)),
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

fn usage_error(err: &ConfigError) -> ExitCode {
    eprintln!("sweeper: {err}\n(see --help)");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, ConfigError> {
        Args::parse(list.iter().map(|s| (*s).to_owned()))
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
        ])
        .unwrap();
        let env = |name: &str| (name == "SWEEP_GRACE_SECONDS").then(|| "60".to_owned());
        let config = a.config(env).unwrap();
        assert_eq!(config.table(), "t");
        assert_eq!(config.total_segments(), 4);
        assert_eq!(config.slice_label(), "1-3of4");
        assert!(config.dry_run());
        assert_eq!(config.grace(), Duration::from_secs(60));
        assert_eq!(a.endpoint.as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(a.max_seconds, Some(30));
    }

    #[test]
    fn errors_name_the_flag() {
        let err = args(&["--segmnts", "4"]).unwrap_err();
        assert!(err.field().contains("--segmnts"), "{err}");
        let err = args(&["--table"]).unwrap_err();
        assert!(err.to_string().contains("needs a value"), "{err}");
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
        let err = args(&[]).unwrap().config(|_| None).unwrap_err();
        assert!(err.field().contains("SESSIONS_TABLE"), "{err}");
    }
}
