//! Scenario 3: expired sessions deleted per second by the sweeper, and its peak RSS.
//!
//! Data: 100,000 sessions (1,000,000 more with `--large`; 2,000 in quick mode), half
//! expired, ~200-byte payloads. Three ways to delete the expired half, each on the same
//! table of the same server, the expired half reloaded before each:
//!
//! 1. the sweeper with its default configuration (8 segments, PartiQL conditional batch
//!    deletes, 4 requests in flight per segment), run as a child process so its peak RSS
//!    is its own; timed from spawn to exit (process start and client set-up included);
//! 2. the raw limit: unconditional `BatchWriteItem` deletes of the known keys, with as many
//!    calls in flight as the sweeper's deletes (segments x per-segment concurrency);
//! 3. the naive loop of the Node stores (sequential filtered Scan + `DeleteItem`), timed on
//!    its first 5,000 deletions (200 in quick mode).
//!
//! The sweeper and the raw loop alternate for a few rounds and their times are summed. After
//! every sweeper and raw run the table must hold exactly the live items.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use sweeper_lambda::SweepConfig;
use sweeper_lambda::config::DeleteStrategy;

use crate::baselines::{naive_sweep, raw_batch_delete};
use crate::child::{self, SweeperProgram};
use crate::data::Sessions;
use crate::report::{Report, Row};

const TARGET_VS_RAW: f64 = 0.50;
const TARGET_VS_NAIVE: f64 = 10.0;
const TARGET_RSS_MIB: f64 = 40.0;
/// "About the same" peak RSS at 1M items as at 100k.
const TARGET_RSS_GROWTH: f64 = 1.25;

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
    /// CPU time of the bench process meanwhile: the embedded server (the bench itself only
    /// waits and polls `/proc`).
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
}

/// Runs `program` once on `sessions`' table (default configuration, or `segments`
/// segments), checks its report, and that exactly the live items remain.
pub async fn sweep_in_child(
    program: &SweeperProgram,
    sessions: &Sessions,
    segments: Option<u32>,
) -> SweepRun {
    let mut cmd = program.command();
    cmd.args(["--table", &sessions.table]);
    if let Some(endpoint) = integration_tests::LocalDynamo::shared().endpoint() {
        cmd.args(["--endpoint", endpoint]);
    }
    if let Some(segments) = segments {
        cmd.args(["--segments", &segments.to_string()]);
    }
    // Defaults only: no setting leaks in from the caller's environment.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("SWEEP_") || name.starts_with("SESSION") {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd.env("RUST_LOG", "warn");
    let server_before = child::own_cpu();
    let run = tokio::task::spawn_blocking(move || child::run_monitored(cmd))
        .await
        .expect("monitor thread")
        .expect("spawn the sweeper");
    let server_cpu = child::own_cpu().saturating_sub(server_before);
    run.ensure_success("the sweeper");
    let printed: PrintedReport = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("the sweeper's report ({e}): {}", run.stdout));
    let expected = sessions.expired() as u64;
    assert!(
        printed.complete
            && printed.expired_found == expected
            && printed.deleted == expected
            && printed.skipped_live == 0
            && printed.malformed_skipped == 0,
        "the sweeper's report does not match the data ({expected} expired): {}",
        run.stdout
    );
    if let Err(e) = sessions.check_only_live_remain().await {
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

pub async fn run(report: &mut Report, quick: bool, large: bool) {
    let program = tokio::task::spawn_blocking(move || child::sweeper_program(quick))
        .await
        .expect("locate the sweeper");
    eprintln!("   sweeper program: {}", program.label());
    let sizes: &[usize] = match (quick, large) {
        (true, _) => &[2_000],
        (false, false) => &[100_000],
        (false, true) => &[100_000, 1_000_000],
    };
    let mut peaks = Vec::new();
    for &total in sizes {
        let peak = measure(report, &program, total, quick).await;
        peaks.push((total, peak));
    }
    if let [(small_n, small), .., (large_n, large)] = peaks[..] {
        let growth = large / small;
        report.push(Row {
            scenario: "3 sweep".into(),
            case: format!(
                "peak RSS at {} vs at {} items",
                size_label(large_n),
                size_label(small_n)
            ),
            value: large,
            unit: "MiB".into(),
            baseline: Some(small),
            ratio: Some(growth),
            target: Some(format!("<= {TARGET_RSS_GROWTH:.2}x")),
            met: Some(growth <= TARGET_RSS_GROWTH),
            detail: None,
        });
    }
}

/// Measures one data size; returns the sweeper's peak RSS (MiB, highest of its runs).
async fn measure(report: &mut Report, program: &SweeperProgram, total: usize, quick: bool) -> f64 {
    let size = size_label(total);
    eprintln!("   {size} sessions");
    let sessions = Sessions::create("bench-sweep", total).await;
    let expired = sessions.expired();
    let defaults = SweepConfig::new(sessions.table.as_str());
    let segments = defaults.total_segments();
    let in_flight = defaults.segment_concurrency() as usize * defaults.delete_concurrency();
    let strategy = match defaults.strategy() {
        DeleteStrategy::PartiqlBatch => "PartiQL batches",
        DeleteStrategy::DeleteItem => "DeleteItem",
        _ => "other",
    };
    let rounds = if quick || total > 100_000 { 1 } else { 2 };

    let mut sweeper_wall = Duration::ZERO;
    let mut sweeper_engine = Duration::ZERO;
    let mut sweeper_cpu = Duration::ZERO;
    let mut server_cpu = Duration::ZERO;
    let mut raw_time = Duration::ZERO;
    let mut peak_rss: f64 = 0.0;
    for round in 0..rounds {
        if round > 0 {
            sessions.reload_expired().await;
        }
        let run = sweep_in_child(program, &sessions, None).await;
        eprintln!(
            "   sweeper: {} deleted in {:.2} s (engine {:.2} s), peak RSS {:.1} MiB",
            run.deleted,
            run.wall.as_secs_f64(),
            run.engine.as_secs_f64(),
            run.peak_rss_mib
        );
        sweeper_wall += run.wall;
        sweeper_engine += run.engine;
        sweeper_cpu += run.sweeper_cpu;
        server_cpu += run.server_cpu;
        peak_rss = peak_rss.max(run.peak_rss_mib);

        sessions.reload_expired().await;
        let keys: Vec<String> = sessions.expired_keys().collect();
        let took = raw_batch_delete(&sessions.client, &sessions.table, keys, in_flight).await;
        eprintln!(
            "   raw BatchWriteItem: {expired} deleted in {:.2} s",
            took.as_secs_f64()
        );
        raw_time += took;
        if let Err(e) = sessions.check_only_live_remain().await {
            panic!("after the raw batch deletes: {e}");
        }
    }

    sessions.reload_expired().await;
    let limit = expired.min(if quick { 200 } else { 5_000 });
    let now = dynamo_session_store::clock::Clock::now(&dynamo_session_store::SystemClock);
    let (naive_deleted, naive_time) = naive_sweep(
        &sessions.client,
        &sessions.table,
        now.unix_timestamp(),
        limit,
    )
    .await;
    assert_eq!(
        naive_deleted, limit,
        "the naive loop ran out of expired items"
    );
    eprintln!(
        "   naive Scan + DeleteItem: {naive_deleted} deleted in {:.2} s",
        naive_time.as_secs_f64()
    );

    let deleted = (expired * rounds) as f64;
    let sweeper_rate = deleted / sweeper_wall.as_secs_f64();
    let raw_rate = deleted / raw_time.as_secs_f64();
    let naive_rate = naive_deleted as f64 / naive_time.as_secs_f64();
    let detail = json!({
        "items": total,
        "expired": expired,
        "rounds": rounds,
        "program": program.label(),
        "segments": segments,
        "delete_strategy": strategy,
        "sweeper_deletes_in_flight": in_flight,
        "raw_batch_calls_in_flight": in_flight,
        "sweeper_wall_s": sweeper_wall.as_secs_f64(),
        "sweeper_engine_s": sweeper_engine.as_secs_f64(),
        "sweeper_engine_rate": deleted / sweeper_engine.as_secs_f64(),
        "sweeper_cpu_s": sweeper_cpu.as_secs_f64(),
        "server_cpu_during_sweeps_s": server_cpu.as_secs_f64(),
        "raw_s": raw_time.as_secs_f64(),
        "naive_deleted": naive_deleted,
        "naive_s": naive_time.as_secs_f64(),
    });
    let vs_raw = sweeper_rate / raw_rate;
    report.push(Row {
        scenario: "3 sweep".into(),
        case: format!(
            "{size}: sweeper ({segments} seg, {strategy}) vs raw BatchWriteItem, {in_flight} in flight"
        ),
        value: sweeper_rate,
        unit: "del/s".into(),
        baseline: Some(raw_rate),
        ratio: Some(vs_raw),
        target: Some(format!(">= {TARGET_VS_RAW:.2}x raw")),
        met: Some(vs_raw >= TARGET_VS_RAW),
        detail: Some(detail),
    });
    let vs_naive = sweeper_rate / naive_rate;
    report.push(Row {
        scenario: "3 sweep".into(),
        case: format!("{size}: sweeper vs naive Scan + DeleteItem (first {limit} deletions)"),
        value: sweeper_rate,
        unit: "del/s".into(),
        baseline: Some(naive_rate),
        ratio: Some(vs_naive),
        target: Some(format!(">= {TARGET_VS_NAIVE:.0}x naive")),
        met: Some(vs_naive >= TARGET_VS_NAIVE),
        detail: None,
    });
    report.push(Row {
        scenario: "3 sweep".into(),
        case: format!(
            "{size}: peak RSS of the sweeper process ({})",
            program.label()
        ),
        value: peak_rss,
        unit: "MiB".into(),
        baseline: None,
        ratio: None,
        target: Some(format!("<= {TARGET_RSS_MIB:.0} MB")),
        met: Some(peak_rss <= TARGET_RSS_MIB),
        detail: None,
    });
    peak_rss
}

/// `100k`, `1M`, `2k`.
pub fn size_label(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}
