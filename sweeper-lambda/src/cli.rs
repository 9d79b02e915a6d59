//! The command line, for runs outside Lambda (cron, ECS, a laptop against any endpoint).
//!
//! ```text
//! sweeper --table sessions [--segments 8] [--slice 0..4] [--dry-run] [--endpoint URL] …
//! ```
//!
//! Parsed by `clap`, from [`SETTINGS`]: one flag per setting, named and documented there
//! with its variable, default and bounds, so `sweeper --help` cannot drift from what is
//! accepted. Flags stand in for the environment variables of the same meaning (a flag
//! wins), so the same settings work in both places, and are validated by the same code
//! ([`SweepConfig::from_lookup_named`]), which names the flag in its errors. The report is
//! printed to stdout as JSON; logs go to stderr, and on a terminal a line of progress every
//! five seconds (`crate::progress`). Exit status: 0 done (or stopped early by
//! `--max-seconds`), 1 segments failed, or the table or the checkpoint could not be read,
//! 2 invalid arguments or configuration (a table that cannot hold sessions included).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Arg, ArgAction, Command, value_parser};
use tokio::time::{Instant, MissedTickBehavior};

use crate::budget::Budget;
use crate::client::dynamodb_client;
use crate::config::settings::Kind;
use crate::config::{ConfigError, SETTINGS, SweepConfig};
use crate::error::SweepError;
use crate::progress::Progress;
use crate::sweeper::Sweeper;

/// The command line: `sweeper --help`.
pub fn command() -> Command {
    let settings = SETTINGS.iter().map(|s| {
        let bounds = if s.bounds.is_empty() {
            String::new()
        } else {
            format!("; {}", s.bounds)
        };
        let help = format!(
            "{} (env {}; default {}{bounds})",
            capitalized(s.doc),
            s.env,
            s.default,
        )
        .replace('`', "");
        let arg = Arg::new(s.env).long(s.flag).help(help);
        match (s.switch, s.kind) {
            (Some(_), _) => arg.action(ArgAction::SetTrue),
            (None, Kind::Number) => arg.value_name("N"),
            (None, Kind::Rate) => arg.value_name("N|auto"),
            (None, Kind::Slice) => arg.value_name("START..END|I/N"),
            (None, _) => arg.value_name("TEXT"),
        }
    });
    Command::new("sweeper")
        .about("sweeper: delete expired sessions from a dynamo-session-store table, once")
        .long_about(
            "sweeper: delete expired sessions from a dynamo-session-store table, once.\n\n\
             Every option named with an env variable can also be set by that variable.",
        )
        .disable_version_flag(true)
        .args(settings)
        .arg(
            Arg::new("max-seconds")
                .long("max-seconds")
                .value_name("N")
                .value_parser(value_parser!(u64).range(1..=MAX_RUN_SECONDS))
                .help(
                    "Be done, checkpoint saved, within N seconds, 1 to 2592000 (30 days; \
                     resume next run)",
                ),
        )
        .arg(
            Arg::new("endpoint")
                .long("endpoint")
                .value_name("URL")
                .help("DynamoDB endpoint (local servers); region and credentials from AWS_*"),
        )
        .arg(
            Arg::new("emf")
                .long("emf")
                .action(ArgAction::SetTrue)
                .help("Also print the CloudWatch EMF metrics line"),
        )
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// (variable, flag, value) of every setting given as a flag.
    settings: Vec<(&'static str, String, String)>,
    /// `--max-seconds`.
    pub max_seconds: Option<u64>,
    /// `--endpoint`.
    pub endpoint: Option<String>,
    /// `--emf`.
    pub emf: bool,
}

impl Args {
    /// Parses the arguments (the program name first).
    ///
    /// # Errors
    /// clap's error, with its exit code (2 for a usage error, 0 for `--help`).
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = command().try_get_matches_from(args)?;
        let settings = SETTINGS
            .iter()
            .filter_map(|s| {
                let value = match s.switch {
                    Some(on) => matches.get_flag(s.env).then(|| on.to_owned()),
                    None => matches.get_one::<String>(s.env).cloned(),
                };
                Some((s.env, s.flag_name(), value?))
            })
            .collect();
        Ok(Self {
            settings,
            max_seconds: matches.get_one::<u64>("max-seconds").copied(),
            endpoint: matches.get_one::<String>("endpoint").cloned(),
            emf: matches.get_flag("emf"),
        })
    }

    /// The configuration: these flags over the environment read by `env`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the flag or variable that is missing or invalid.
    pub fn config(&self, env: impl Fn(&str) -> Option<String>) -> Result<SweepConfig, ConfigError> {
        let flag = |name: &str| self.settings.iter().find(|(var, ..)| *var == name);
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
    // On a terminal, a line of progress every few seconds; piped, nothing but the report.
    let progress = Progress::default();
    let display = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(show_progress(progress.clone(), PROGRESS_INTERVAL)));
    let outcome = sweeper.run_with_progress(&config, budget, &progress).await;
    if let Some(display) = display {
        display.abort();
    }
    let (report, code) = match outcome {
        Ok(report) => (report, ExitCode::SUCCESS),
        Err(SweepError::Failed { report }) => (*report, ExitCode::FAILURE),
        // A table that cannot hold sessions is a configuration error, as a bad flag is.
        Err(err @ SweepError::InvalidConfig(_)) => {
            eprintln!("sweeper: {err}");
            return ExitCode::from(2);
        }
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

/// How often a terminal is shown the progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// Prints `progress` to stderr every `interval`, until aborted.
async fn show_progress(progress: Progress, interval: Duration) {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut previous = progress.snapshot();
    loop {
        ticks.tick().await;
        let now = progress.snapshot();
        eprintln!("{}", now.line(&previous, interval, started.elapsed()));
        previous = now;
    }
}

/// The longest `--max-seconds`: 30 days, far beyond any useful run, and far within the
/// clock's range.
pub const MAX_RUN_SECONDS: u64 = 30 * 86_400;

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("sweeper").chain(list.iter().copied()))
    }

    #[test]
    fn the_command_is_well_formed() {
        command().debug_assert();
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
    fn every_setting_is_a_flag_in_the_help() {
        let help = command().render_long_help().to_string();
        for arg in command().get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(help.contains(&format!("--{long}")), "--{long} missing");
            }
        }
        for setting in SETTINGS {
            assert!(
                help.contains(&setting.flag_name()),
                "{} missing",
                setting.flag
            );
            assert!(help.contains(setting.env), "{} missing", setting.env);
        }
        // Every setting's flag stands in for its variable.
        for setting in SETTINGS {
            let value = match (setting.switch, setting.kind) {
                (Some(_), _) => None,
                (None, Kind::Number | Kind::Rate) => Some("7"),
                (None, Kind::Slice) => Some("0/1"),
                (None, _) => Some("x:"),
            };
            let flag = setting.flag_name();
            let list: Vec<&str> = std::iter::once(flag.as_str()).chain(value).collect();
            let parsed = args(&list).unwrap();
            assert_eq!(
                parsed.settings,
                [(
                    setting.env,
                    flag.clone(),
                    value.or(setting.switch).unwrap().to_owned()
                )],
                "{flag}"
            );
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
