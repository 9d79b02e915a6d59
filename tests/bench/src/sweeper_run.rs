//! One run of the sweeper in a child process, checked against the data it swept.

use std::time::Duration;

use serde::Deserialize;

use crate::child::{self, OwnCpu, SweeperProgram};
use crate::data::Sessions;
use crate::sweep::size_label;

/// One sweep by the child process, with what it cost.
#[derive(Debug)]
pub struct SweepRun {
    /// Spawn to exit.
    pub wall: Duration,
    /// The engine's own `duration` (without process start and client set-up).
    pub engine: Duration,
    pub peak_rss_mib: f64,
    /// CPU time of the sweeper process.
    pub sweeper_cpu: Duration,
    /// CPU time of the embedded server's threads meanwhile.
    pub server_cpu: Duration,
    pub deleted: u64,
}

/// The fields of the sweeper's printed report that the bench checks.
#[derive(Debug, Deserialize)]
struct PrintedReport {
    expired_found: u64,
    deleted: u64,
    skipped_live: u64,
    malformed_skipped: u64,
    duration_ms: u64,
    complete: bool,
    dry_run: bool,
}

/// Runs `program` once on `sessions`' table, with its default configuration plus `args`
/// (e.g. `--segments 4`, `--dry-run`). Checks its report against the data, and the table:
/// exactly the live items must remain (every item, after a dry run).
pub async fn sweep_in_child(
    program: &SweeperProgram,
    sessions: &Sessions,
    args: &[&str],
) -> SweepRun {
    let endpoint = integration_tests::LocalDynamo::shared().endpoint();
    sweep_in_child_at(program, sessions, endpoint, args).await
}

/// As [`sweep_in_child`], with the sweeper pointed at `endpoint` (e.g. a proxy in front of
/// the shared server) instead of the shared endpoint; `None` is real AWS. The table is
/// still checked through `sessions`' own client.
pub async fn sweep_in_child_at(
    program: &SweeperProgram,
    sessions: &Sessions,
    endpoint: Option<&str>,
    args: &[&str],
) -> SweepRun {
    let mut cmd = program.command();
    cmd.args(["--table", &sessions.table]);
    if let Some(endpoint) = endpoint {
        cmd.args(["--endpoint", endpoint]);
    }
    cmd.args(args);
    // Defaults only: no setting leaks in from the caller's environment.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("SWEEP_") || name.starts_with("SESSION") {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd.env("RUST_LOG", "warn");
    let before = OwnCpu::now();
    let run = tokio::task::spawn_blocking(move || child::run_monitored(cmd))
        .await
        .expect("monitor thread")
        .expect("spawn the sweeper");
    let server_cpu = OwnCpu::since(before).server;
    run.ensure_success("the sweeper");
    let printed: PrintedReport = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("the sweeper's report ({e}): {}", run.stdout));
    let expected = sessions.expired() as u64;
    let deleted = if printed.dry_run { 0 } else { expected };
    assert!(
        printed.complete
            && printed.expired_found == expected
            && printed.deleted == deleted
            && printed.skipped_live == 0
            && printed.malformed_skipped == 0,
        "the sweeper's report does not match the data ({expected} expired): {}",
        run.stdout
    );
    let table = if printed.dry_run {
        sessions.check_untouched().await
    } else {
        sessions.check_only_live_remain().await
    };
    if let Err(e) = table {
        panic!("after the sweep: {e}");
    }
    SweepRun {
        wall: run.wall,
        engine: Duration::from_millis(printed.duration_ms),
        peak_rss_mib: run.peak_rss_mib(),
        sweeper_cpu: run.cpu,
        server_cpu,
        deleted: printed.deleted,
    }
}

/// Runs of the sweeper over one table, one per segment count.
pub struct BySegments {
    /// The table's size, e.g. `50k`.
    pub size: String,
    /// Sessions in the table.
    pub total: usize,
    /// Of those, expired: each run deletes them.
    pub expired: usize,
    /// Which program swept.
    pub program: &'static str,
    /// Each segment count and its run.
    pub runs: Vec<(u32, SweepRun)>,
}

/// Scenarios 4 and 7: the sweeper in a child process over one table of 50,000 sessions
/// (1,000 in quick mode), half expired, once per entry of `segments` (`--segments N`), the
/// expired half reloaded before each run after the first.
pub async fn sweeps_by_segments(label: &str, quick: bool, segments: &[u32]) -> BySegments {
    let program = tokio::task::spawn_blocking(move || child::sweeper_program(quick))
        .await
        .expect("locate the sweeper");
    let total = if quick { 1_000 } else { 50_000 };
    let size = size_label(total);
    eprintln!("   {size} sessions, sweeper program: {}", program.label());
    let sessions = Sessions::create(label, total).await;
    let mut runs = Vec::new();
    for (i, &count) in segments.iter().enumerate() {
        if i > 0 {
            sessions.reload_expired().await;
        }
        let arg = count.to_string();
        runs.push((
            count,
            sweep_in_child(&program, &sessions, &["--segments", &arg]).await,
        ));
    }
    BySegments {
        size,
        total,
        expired: sessions.expired(),
        program: program.label(),
        runs,
    }
}
