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
//!
//! To show where the sweeper's time goes, the first data size also gets: the sweeper's
//! own PartiQL conditional deletes on the known keys without any scan; a dry run (the scan
//! alone); the sweeper with `DeleteItem` instead of PartiQL batches; the sweeper with a
//! Scan `Limit` of 1,000 (smaller, more pages); and the embedded
//! server's CPU time (its threads in this process) during the sweeper and the raw runs.
//!
//! Loopback round trips cost ~0.2 ms, which flatters the naive loop: it pays one round
//! trip per item, where the sweeper's batched, concurrent requests share theirs. So the
//! first data size also runs the sweeper, the raw limit and the naive loop (first 2,000
//! deletions, 200 in quick mode) through a [`FaultProxy`] that adds [`ADDED_LATENCY`] to
//! every request and injects no faults.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use dynamo_session_store::clock::{Clock, SystemClock};
use local_dynamodb::faults::FaultProxy;
use serde_json::json;
use sweeper_lambda::SweepConfig;
use sweeper_lambda::config::DeleteStrategy;

use crate::baselines::{naive_sweep, raw_batch_delete, raw_partiql_delete};
use crate::child::{self, OwnCpu, SweeperProgram};
use crate::data::Sessions;
use crate::report::{Report, Row};
use crate::sweeper_run::{SweepRun, sweep_in_child, sweep_in_child_at};

const TARGET_VS_RAW: f64 = 0.50;
const TARGET_VS_NAIVE: f64 = 10.0;
const TARGET_RSS_MIB: f64 = 40.0;
/// The Scan `Limit` of the extra paged sweeper run.
const PAGE_SIZE: &str = "1000";
/// Added per request in the latency runs: a typical round trip to DynamoDB from a client
/// in the same region (single-digit milliseconds; 2 ms is a common figure in practice).
const ADDED_LATENCY: Duration = Duration::from_millis(2);
/// Deletions timed for the naive loop in the latency runs (quick mode: 200); at ~2 ms a
/// deletion, 2,000 take about 5 s.
const NAIVE_LIMIT_WITH_LATENCY: usize = 2_000;
/// "About the same" peak RSS at 1M items as at 100k.
const TARGET_RSS_GROWTH: f64 = 1.25;

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
    for (i, &total) in sizes.iter().enumerate() {
        let peak = measure(report, &program, total, quick, i == 0).await;
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

/// Sums of the sweeper runs of one data size.
#[derive(Debug, Default)]
struct Totals {
    wall: Duration,
    engine: Duration,
    sweeper_cpu: Duration,
    server_cpu: Duration,
    peak_rss_mib: f64,
}

impl Totals {
    fn add(&mut self, run: &SweepRun) {
        self.wall += run.wall;
        self.engine += run.engine;
        self.sweeper_cpu += run.sweeper_cpu;
        self.server_cpu += run.server_cpu;
        self.peak_rss_mib = self.peak_rss_mib.max(run.peak_rss_mib);
    }
}

/// Measures one data size; returns the sweeper's peak RSS (MiB, highest of its runs).
async fn measure(
    report: &mut Report,
    program: &SweeperProgram,
    total: usize,
    quick: bool,
    extras: bool,
) -> f64 {
    let size = size_label(total);
    eprintln!("   {size} sessions");
    let sessions = Sessions::create("bench-sweep", total).await;
    let expired = sessions.expired();
    let defaults = SweepConfig::new(sessions.table.as_str());
    let segments = defaults.total_segments();
    let in_flight = defaults.segment_concurrency() as usize * defaults.delete_concurrency();
    let strategy = match defaults.strategy() {
        DeleteStrategy::PartiqlBatch => "PartiQL",
        DeleteStrategy::DeleteItem => "DeleteItem",
        _ => "other",
    };
    let rounds = if quick || total > 100_000 { 1 } else { 2 };

    let mut sweeps = Totals::default();
    let mut raw_time = Duration::ZERO;
    let mut raw_server_cpu = Duration::ZERO;
    let mut raw_bench_cpu = Duration::ZERO;
    for round in 0..rounds {
        if round > 0 {
            sessions.reload_expired().await;
        }
        let run = sweep_in_child(program, &sessions, &[]).await;
        eprintln!(
            "   sweeper: {} deleted in {:.2} s (engine {:.2} s), peak RSS {:.1} MiB, server {:.2} + sweeper {:.2} CPU s",
            run.deleted,
            run.wall.as_secs_f64(),
            run.engine.as_secs_f64(),
            run.peak_rss_mib,
            run.server_cpu.as_secs_f64(),
            run.sweeper_cpu.as_secs_f64(),
        );
        sweeps.add(&run);

        sessions.reload_expired().await;
        let keys: Vec<String> = sessions.expired_keys().collect();
        let before = OwnCpu::now();
        let took = raw_batch_delete(&sessions.client, &sessions.table, keys, in_flight).await;
        let cpu = OwnCpu::since(before);
        eprintln!(
            "   raw BatchWriteItem: {expired} deleted in {:.2} s, server {:.2} + client {:.2} CPU s",
            took.as_secs_f64(),
            cpu.server.as_secs_f64(),
            cpu.bench.as_secs_f64()
        );
        raw_time += took;
        raw_server_cpu += cpu.server;
        raw_bench_cpu += cpu.bench;
        if let Err(e) = sessions.check_only_live_remain().await {
            panic!("after the raw batch deletes: {e}");
        }
    }
    let deleted = (expired * rounds) as f64;
    let sweeper_rate = deleted / sweeps.wall.as_secs_f64();
    let raw_rate = deleted / raw_time.as_secs_f64();

    let mut extra_rows = Vec::new();
    if extras {
        extra_rows.extend(
            with_latency(
                program,
                &sessions,
                &size,
                LatencyRuns {
                    rounds,
                    in_flight,
                    segments,
                    strategy,
                    quick,
                },
            )
            .await,
        );
        extra_rows.extend(
            where_the_time_goes(
                program, &sessions, &size, in_flight, &sweeps, rounds, raw_rate,
            )
            .await,
        );
    }

    let limit = expired.min(if quick { 200 } else { 5_000 });
    let (naive_deleted, naive_time) = naive_run(&sessions, &sessions.client, limit, "").await;
    let naive_rate = naive_deleted as f64 / naive_time.as_secs_f64();

    let sweep_server_cores = sweeps.server_cpu.as_secs_f64() / sweeps.wall.as_secs_f64();
    let raw_server_cores = raw_server_cpu.as_secs_f64() / raw_time.as_secs_f64();
    let detail = json!({
        "items": total,
        "expired": expired,
        "rounds": rounds,
        "program": program.label(),
        "segments": segments,
        "delete_strategy": strategy,
        "sweeper_deletes_in_flight": in_flight,
        "raw_batch_calls_in_flight": in_flight,
        "sweeper_wall_s": sweeps.wall.as_secs_f64(),
        "sweeper_engine_s": sweeps.engine.as_secs_f64(),
        "sweeper_engine_rate": deleted / sweeps.engine.as_secs_f64(),
        "sweeper_cpu_s": sweeps.sweeper_cpu.as_secs_f64(),
        "server_cpu_during_sweeps_s": sweeps.server_cpu.as_secs_f64(),
        "raw_s": raw_time.as_secs_f64(),
        "server_cpu_during_raw_s": raw_server_cpu.as_secs_f64(),
        "client_cpu_during_raw_s": raw_bench_cpu.as_secs_f64(),
        "naive_deleted": naive_deleted,
        "naive_s": naive_time.as_secs_f64(),
    });
    report.push(Row {
        detail: Some(detail),
        ..deletes_vs(
            format!(
                "{size}: sweeper ({segments} seg, {strategy}) vs raw BatchWriteItem ({in_flight} in flight)"
            ),
            (sweeper_rate, raw_rate),
            (TARGET_VS_RAW, "raw"),
        )
    });
    report.push(deletes_vs(
        format!("{size}: sweeper vs naive Scan + DeleteItem (first {limit} deletions)"),
        (sweeper_rate, naive_rate),
        (TARGET_VS_NAIVE, "naive"),
    ));
    report.push(Row {
        scenario: "3 sweep".into(),
        case: format!(
            "{size}: peak RSS of the sweeper process ({})",
            program.label()
        ),
        value: sweeps.peak_rss_mib,
        unit: "MiB".into(),
        baseline: None,
        ratio: None,
        target: Some(format!("<= {TARGET_RSS_MIB:.0} MiB")),
        met: Some(sweeps.peak_rss_mib <= TARGET_RSS_MIB),
        detail: None,
    });
    report.push(Row {
        scenario: "3 sweep".into(),
        case: format!("{size}: server CPU busy, sweeper runs vs raw BatchWriteItem runs"),
        value: sweep_server_cores,
        unit: "cores".into(),
        baseline: Some(raw_server_cores),
        ratio: Some(sweep_server_cores / raw_server_cores),
        ..Row::default()
    });
    for row in extra_rows {
        report.push(row);
    }
    sweeps.peak_rss_mib
}

/// What [`with_latency`] runs, as the loopback runs of the same size.
struct LatencyRuns {
    rounds: usize,
    in_flight: usize,
    segments: u32,
    strategy: &'static str,
    quick: bool,
}

/// The sweeper, the raw limit and the naive loop through a proxy adding [`ADDED_LATENCY`]
/// to every request (no faults). The naive loop stops early, so expired items remain:
/// reload before the next run.
async fn with_latency(
    program: &SweeperProgram,
    sessions: &Sessions,
    size: &str,
    runs: LatencyRuns,
) -> Vec<Row> {
    let LatencyRuns {
        rounds,
        in_flight,
        segments,
        strategy,
        quick,
    } = runs;
    let ms = ADDED_LATENCY.as_millis();
    let proxy = FaultProxy::in_front_of(integration_tests::LocalDynamo::shared())
        .expect("start the latency proxy");
    proxy.set_latency(ADDED_LATENCY);
    let endpoint = proxy.endpoint();
    let client = proxy.local().client().await;
    // What a round trip costs now, against the same server directly.
    let direct_rtt = mean_round_trip(&sessions.client, 50).await;
    let proxied_rtt = mean_round_trip(&client, 50).await;
    eprintln!(
        "   +{ms} ms latency proxy: round trip {:.2} ms (direct {:.2} ms)",
        ms_of(proxied_rtt),
        ms_of(direct_rtt)
    );

    let expired = sessions.expired();
    let mut sweep_time = Duration::ZERO;
    let mut raw_time = Duration::ZERO;
    for _ in 0..rounds {
        sessions.reload_expired().await;
        let run = sweep_in_child_at(program, sessions, Some(&endpoint), &[]).await;
        eprintln!(
            "   sweeper, +{ms} ms: {} deleted in {:.2} s (engine {:.2} s)",
            run.deleted,
            run.wall.as_secs_f64(),
            run.engine.as_secs_f64()
        );
        sweep_time += run.wall;

        sessions.reload_expired().await;
        let keys: Vec<String> = sessions.expired_keys().collect();
        let took = raw_batch_delete(&client, &sessions.table, keys, in_flight).await;
        eprintln!(
            "   raw BatchWriteItem, +{ms} ms: {expired} deleted in {:.2} s",
            took.as_secs_f64()
        );
        raw_time += took;
        if let Err(e) = sessions.check_only_live_remain().await {
            panic!("after the raw batch deletes through the latency proxy: {e}");
        }
    }
    let deleted = (expired * rounds) as f64;
    let sweeper_rate = deleted / sweep_time.as_secs_f64();
    let raw_rate = deleted / raw_time.as_secs_f64();

    let limit = expired.min(if quick { 200 } else { NAIVE_LIMIT_WITH_LATENCY });
    let (naive_deleted, naive_time) =
        naive_run(sessions, &client, limit, &format!(", +{ms} ms")).await;
    let naive_rate = naive_deleted as f64 / naive_time.as_secs_f64();

    let detail = json!({
        "added_latency_ms": ADDED_LATENCY.as_secs_f64() * 1e3,
        "round_trip_ms_through_proxy": ms_of(proxied_rtt),
        "round_trip_ms_direct": ms_of(direct_rtt),
        "rounds": rounds,
        "sweeper_wall_s": sweep_time.as_secs_f64(),
        "raw_s": raw_time.as_secs_f64(),
        "naive_deleted": naive_deleted,
        "naive_s": naive_time.as_secs_f64(),
    });
    vec![
        Row {
            detail: Some(detail),
            ..deletes_vs(
                format!(
                    "{size}, +{ms} ms latency: sweeper ({segments} seg, {strategy}) vs raw BatchWriteItem ({in_flight} in flight)"
                ),
                (sweeper_rate, raw_rate),
                (TARGET_VS_RAW, "raw"),
            )
        },
        deletes_vs(
            format!(
                "{size}, +{ms} ms latency: sweeper vs naive Scan + DeleteItem (first {limit} deletions)"
            ),
            (sweeper_rate, naive_rate),
            (TARGET_VS_NAIVE, "naive"),
        ),
    ]
}

/// The mean of `n` sequential `ListTables` round trips (after one to warm up).
async fn mean_round_trip(client: &Client, n: u32) -> Duration {
    client.list_tables().send().await.expect("ListTables");
    let started = Instant::now();
    for _ in 0..n {
        client.list_tables().send().await.expect("ListTables");
    }
    started.elapsed() / n
}

fn ms_of(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The extra runs that explain the sweeper's rate (the table ends with the expired half
/// deleted, as after a sweep).
async fn where_the_time_goes(
    program: &SweeperProgram,
    sessions: &Sessions,
    size: &str,
    in_flight: usize,
    sweeps: &Totals,
    rounds: usize,
    raw_rate: f64,
) -> Vec<Row> {
    let expired = sessions.expired() as f64;
    let mut rows = Vec::new();

    sessions.reload_expired().await;
    let keys: Vec<String> = sessions.expired_keys().collect();
    let cutoff = SystemClock.now().unix_timestamp() - 15;
    let before = OwnCpu::now();
    let took = raw_partiql_delete(&sessions.client, &sessions.table, keys, cutoff, in_flight).await;
    let cpu = OwnCpu::since(before);
    if let Err(e) = sessions.check_only_live_remain().await {
        panic!("after the raw PartiQL deletes: {e}");
    }
    eprintln!(
        "   raw PartiQL conditional deletes: {} s",
        took.as_secs_f64()
    );
    let rate = expired / took.as_secs_f64();
    rows.push(Row {
        scenario: "3 sweep".into(),
        case: format!(
            "{size}: sweeper's PartiQL deletes on known keys, no scan ({in_flight} in flight)"
        ),
        value: rate,
        unit: "del/s".into(),
        baseline: Some(raw_rate),
        ratio: Some(rate / raw_rate),
        detail: Some(json!({
            "s": took.as_secs_f64(),
            "server_cpu_s": cpu.server.as_secs_f64(),
            "client_cpu_s": cpu.bench.as_secs_f64(),
        })),
        ..Row::default()
    });

    sessions.reload_expired().await;
    let dry = sweep_in_child(program, sessions, &["--dry-run"]).await;
    let sweep_s = sweeps.wall.as_secs_f64() / rounds as f64;
    eprintln!(
        "   dry run (scan only): {:.2} s, server {:.2} + sweeper {:.2} CPU s",
        dry.wall.as_secs_f64(),
        dry.server_cpu.as_secs_f64(),
        dry.sweeper_cpu.as_secs_f64()
    );
    rows.push(Row {
        scenario: "3 sweep".into(),
        case: format!("{size}: sweeper --dry-run (scan only) vs full sweep, time"),
        value: dry.wall.as_secs_f64(),
        unit: "s".into(),
        baseline: Some(sweep_s),
        ratio: Some(dry.wall.as_secs_f64() / sweep_s),
        detail: Some(cpu_detail(&dry)),
        ..Row::default()
    });

    let item = sweep_in_child(program, sessions, &["--strategy", "delete-item"]).await;
    let rate = expired / item.wall.as_secs_f64();
    eprintln!(
        "   sweeper with DeleteItem: {:.2} s",
        item.wall.as_secs_f64()
    );
    rows.push(vs_raw(
        format!("{size}: sweeper --strategy delete-item"),
        rate,
        raw_rate,
        &item,
    ));
    // A Scan `Limit` makes pages smaller, so there are more of them. On dynoxide each page
    // costs about a pass over the table (it sorts the segment's remaining rows by hash
    // before cutting the page), so this run shows that per-page cost: more pages, slower.
    sessions.reload_expired().await;
    let paged = sweep_in_child(program, sessions, &["--page-size", PAGE_SIZE]).await;
    let paged_rate = expired / paged.wall.as_secs_f64();
    eprintln!(
        "   sweeper --page-size {PAGE_SIZE}: {:.2} s, server {:.2} + sweeper {:.2} CPU s, peak RSS {:.1} MiB",
        paged.wall.as_secs_f64(),
        paged.server_cpu.as_secs_f64(),
        paged.sweeper_cpu.as_secs_f64(),
        paged.peak_rss_mib
    );
    rows.push(vs_raw(
        format!("{size}: sweeper --page-size {PAGE_SIZE}"),
        paged_rate,
        raw_rate,
        &paged,
    ));
    rows
}

fn cpu_detail(run: &SweepRun) -> serde_json::Value {
    json!({
        "wall_s": run.wall.as_secs_f64(),
        "server_cpu_s": run.server_cpu.as_secs_f64(),
        "sweeper_cpu_s": run.sweeper_cpu.as_secs_f64(),
        "peak_rss_mib": run.peak_rss_mib,
    })
}

/// A scenario 3 row: deletes per second against a baseline, with a target ratio.
fn deletes_vs(case: String, (rate, baseline): (f64, f64), (target, name): (f64, &str)) -> Row {
    let ratio = rate / baseline;
    Row {
        scenario: "3 sweep".into(),
        case,
        value: rate,
        unit: "del/s".into(),
        baseline: Some(baseline),
        ratio: Some(ratio),
        target: Some(format!(">= {target}x {name}")),
        met: Some(ratio >= target),
        detail: None,
    }
}

/// A scenario 3 row: a sweeper run's deletes per second against raw `BatchWriteItem`.
fn vs_raw(case: String, rate: f64, raw_rate: f64, run: &SweepRun) -> Row {
    Row {
        scenario: "3 sweep".into(),
        case: format!("{case} vs raw BatchWriteItem"),
        value: rate,
        unit: "del/s".into(),
        baseline: Some(raw_rate),
        ratio: Some(rate / raw_rate),
        detail: Some(cpu_detail(run)),
        ..Row::default()
    }
}

/// Reloads the expired sessions, deletes `limit` of them with the naive loop through
/// `client`: how many it deleted, and how long that took. `label` tells the run apart in
/// the log.
async fn naive_run(
    sessions: &Sessions,
    client: &Client,
    limit: usize,
    label: &str,
) -> (usize, Duration) {
    sessions.reload_expired().await;
    let (deleted, took) = naive_sweep(
        client,
        &sessions.table,
        SystemClock.now().unix_timestamp(),
        limit,
    )
    .await;
    assert_eq!(deleted, limit, "the naive loop ran out of expired items");
    eprintln!(
        "   naive Scan + DeleteItem{label}: {deleted} deleted in {:.2} s",
        took.as_secs_f64()
    );
    (deleted, took)
}

/// `100k`, `1M`, `2k`.
pub fn size_label(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}
