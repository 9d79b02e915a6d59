//! The benchmark program. Every speed is reported as a ratio against a baseline measured in
//! the same run, on the same server and payload, because these machines are noisy.
//!
//! ```text
//! cargo run --release -p bench -- [SCENARIO ...] [--quick] [--large] [--json PATH]
//! ```
//!
//! Scenarios: `store` (1), `amplification` (2), `sweep` (3), `scaling` (4), `lambda` (5),
//! `cost` (6), `sizing` (7), `owners` (8), `codec` (9), `all` (default). With `--json PATH`,
//! the charts of the scenarios that ran are drawn beside it (`charts`); in quick mode, into a
//! temporary folder. `--quick` runs small sizes to check the harness still works (CI); it
//! proves nothing about speed, and missed targets do not fail it. `--large` adds the
//! 1,000,000-item run to `sweep` (it takes minutes). The server is the embedded dynoxide on
//! 127.0.0.1:0, in this process, unless `DYNAMODB_ENDPOINT` is set. Outside quick mode,
//! the sweeper scenarios first build the real `sweeper` binary (see [`child`]).
//!
//! # Layout
//! | module | scenario |
//! |--------|----------|
//! | `report` | result rows, the printed table and the JSON file |
//! | `store_rt` | 1: `SessionStore` load + save vs raw `GetItem` + `PutItem` |
//! | `amplification` | 2: DynamoDB writes per 1,000 requests through axum + tower-sessions |
//! | `sweep` | 3: sweeper deletes/s vs raw `BatchWriteItem` and naive loops; peak RSS |
//! | `scaling` | 4: sweeper deletes/s with 1 to 16 segments, server vs client CPU |
//! | `lambda` | 5: `bootstrap.zip` size; cold start against a fake Runtime API |
//! | `cost` | 6: read and write units of one sweep vs the cost model |
//! | `sizing` | 7: sweeper CPU and peak RSS per 10,000 deletes; deletes/s per Lambda size |
//! | `owners` | 8: `revoke_all` of 1 to 1,000 sessions; what the owner index adds to a save |
//! | `codec` | 9: round trips with compression, encryption vs off; zstd's ratio, CPU per call |
//! | `charts` | the SVG charts of BENCHMARKS.md, from the rows of the same run |
//! | `data` | the sweeper scenarios' tables: bulk loads, reloads, counts |
//! | `baselines` | raw `BatchWriteItem` deletes; the naive Scan + `DeleteItem` loop |
//! | `child` | the sweeper process: build/locate it, peak RSS and CPU from `/proc` |
//! | `sweeper_run` | one sweep in a child process, its report and the table checked |
//! | `sweeper_child` | the hidden `__sweeper` subcommand: the sweeper's `main`, in the bench |
#![forbid(unsafe_code)]

mod amplification;
mod baselines;
mod charts;
mod child;
mod codec;
mod cost;
mod data;
mod lambda;
mod owners;
mod report;
mod scaling;
mod sizing;
mod store_rt;
mod sweep;
mod sweeper_child;
mod sweeper_run;

use std::process::ExitCode;

use std::path::PathBuf;

use report::Report;

/// Command-line options.
#[derive(Debug)]
struct Opts {
    scenarios: Vec<String>,
    quick: bool,
    large: bool,
    json: Option<PathBuf>,
}

const SCENARIOS: &[&str] = &[
    "store",
    "amplification",
    "sweep",
    "scaling",
    "lambda",
    "cost",
    "sizing",
    "owners",
    "codec",
];

fn parse_args() -> Result<Opts, String> {
    let mut opts = Opts {
        scenarios: Vec::new(),
        quick: false,
        large: false,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--large" => opts.large = true,
            "--json" => {
                opts.json = Some(args.next().ok_or("--json needs a path")?.into());
            }
            "-h" | "--help" => {
                return Err(format!(
                    "usage: bench [{}|all ...] [--quick] [--large] [--json PATH]",
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
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some(sweeper_child::SUBCOMMAND) {
        return sweeper_child::main(args.collect()).await;
    }
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
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
            "sweep" => sweep::run(&mut report, opts.quick, opts.large).await,
            "scaling" => scaling::run(&mut report, opts.quick).await,
            "lambda" => lambda::run(&mut report, opts.quick).await,
            "cost" => cost::run(&mut report, opts.quick).await,
            "sizing" => sizing::run(&mut report, opts.quick).await,
            "owners" => owners::run(&mut report, opts.quick).await,
            "codec" => codec::run(&mut report, opts.quick).await,
            _ => unreachable!("validated in parse_args"),
        }
    }
    report.print();
    if let Some(path) = &opts.json {
        if let Err(e) = report.write_json(path) {
            eprintln!("could not write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {}", path.display());
    }
    let charts = match (&opts.json, opts.quick) {
        (_, true) => Some(std::env::temp_dir().join("bench-charts")),
        (Some(path), false) => path.parent().map(std::path::Path::to_path_buf),
        (None, false) => None,
    };
    if let Some(dir) = charts {
        match charts::draw(&report, &dir) {
            Ok(files) => {
                for file in files {
                    eprintln!("drew {}", file.display());
                }
            }
            Err(e) => {
                eprintln!("could not draw the charts: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if report.failed_targets() > 0 {
        eprintln!(
            "{} target(s) missed{}",
            report.failed_targets(),
            if opts.quick {
                " (quick mode: not a failure)"
            } else {
                ""
            }
        );
    }
    ExitCode::SUCCESS
}
