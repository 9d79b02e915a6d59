//! The benchmark program. Every speed is reported as a ratio against a baseline measured in
//! the same run, on the same server and payload, because these machines are noisy.
//!
//! ```text
//! cargo run --release -p bench -- [SCENARIO ...] [--quick] [--json PATH]
//! ```
//!
//! Scenarios: `store` (1), `amplification` (2), `all` (default). `--quick` runs
//! small sizes to check the harness still works (CI); it proves nothing about speed.
//! The server is the embedded dynoxide on 127.0.0.1:0 unless `DYNAMODB_ENDPOINT` is set.
//!
//! # Layout
//! | module | scenario |
//! |--------|----------|
//! | `report` | result rows, the printed table and the JSON file |
//! | `store_rt` | 1: `SessionStore` load + save vs raw `GetItem` + `PutItem` |
//! | `amplification` | 2: DynamoDB writes per 1,000 requests through axum + tower-sessions |
#![forbid(unsafe_code)]

mod amplification;
mod report;
mod store_rt;

use std::path::PathBuf;

use report::Report;

/// Command-line options.
#[derive(Debug)]
struct Opts {
    scenarios: Vec<String>,
    quick: bool,
    json: Option<PathBuf>,
}

const SCENARIOS: &[&str] = &["store", "amplification"];

fn parse_args() -> Result<Opts, String> {
    let mut opts = Opts {
        scenarios: Vec::new(),
        quick: false,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--json" => {
                opts.json = Some(args.next().ok_or("--json needs a path")?.into());
            }
            "-h" | "--help" => {
                return Err(format!(
                    "usage: bench [{}|all ...] [--quick] [--json PATH]",
                    SCENARIOS.join("|")
                ));
            }
            "all" => opts
                .scenarios
                .extend(SCENARIOS.iter().map(|s| s.to_string())),
            s if SCENARIOS.contains(&s) => opts.scenarios.push(s.to_owned()),
            other => return Err(format!("unknown argument `{other}`; try --help")),
        }
    }
    if opts.scenarios.is_empty() {
        opts.scenarios = SCENARIOS.iter().map(|s| s.to_string()).collect();
    }
    Ok(opts)
}

#[tokio::main]
async fn main() {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let mut report = Report::new(opts.quick);
    for scenario in &opts.scenarios {
        eprintln!(
            "== scenario {scenario}{}",
            if opts.quick { " (quick)" } else { "" }
        );
        match scenario.as_str() {
            "store" => store_rt::run(&mut report, opts.quick).await,
            "amplification" => amplification::run(&mut report, opts.quick).await,
            _ => unreachable!("validated in parse_args"),
        }
    }
    report.print();
    if let Some(path) = &opts.json {
        if let Err(e) = report.write_json(path) {
            eprintln!("could not write {}: {e}", path.display());
            std::process::exit(1);
        }
        eprintln!("wrote {}", path.display());
    }
    if !opts.quick && report.failed_targets() > 0 {
        eprintln!("{} target(s) missed", report.failed_targets());
    }
}
