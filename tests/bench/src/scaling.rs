//! Scenario 4: sweeper deletes per second with 1, 2, 4, 8 and 16 segments on the same data
//! (50,000 sessions, half expired; 1,000 in quick mode), each against the 1-segment rate.
//!
//! To explain the curve, each run also records CPU time, as cores busy over the run:
//! the sweeper child's (`/proc/<pid>/stat`) and the bench process's, which during the run
//! is the embedded server (the bench itself only waits). With 2 cores, a server near 1
//! core means its single SQLite writer is the limit; both together near 2 means the cores
//! are; a sweeper near 1 core with an idle server would mean the client is.

use serde_json::json;
use sweeper_lambda::SweepConfig;

use crate::report::{Report, Row};
use crate::sweeper_run::{BySegments, sweeps_by_segments};

const SEGMENTS: [u32; 5] = [1, 2, 4, 8, 16];

pub async fn run(report: &mut Report, quick: bool) {
    let BySegments {
        size,
        total,
        expired,
        runs,
        ..
    } = sweeps_by_segments("bench-scaling", quick, &SEGMENTS).await;
    let expired = expired as f64;
    let mut one_segment = None;
    for (segments, run) in runs {
        let config = SweepConfig::new("t").with_total_segments(segments);
        let in_flight = config.segment_concurrency() as usize * config.delete_concurrency();
        let wall = run.wall.as_secs_f64();
        let rate = expired / wall;
        let base = *one_segment.get_or_insert(rate);
        let server_cores = run.server_cpu.as_secs_f64() / wall;
        let sweeper_cores = run.sweeper_cpu.as_secs_f64() / wall;
        eprintln!(
            "   {segments:>2} segments: {rate:.0} del/s, server {server_cores:.2} + sweeper {sweeper_cores:.2} cores, peak RSS {:.1} MiB",
            run.peak_rss_mib
        );
        report.push(Row {
            scenario: "4 scaling".into(),
            case: format!(
                "{size}: {segments:>2} seg, {in_flight:>2} deletes in flight; cores: server {server_cores:.2} + sweeper {sweeper_cores:.2}"
            ),
            value: rate,
            unit: "del/s".into(),
            baseline: Some(base),
            ratio: Some(rate / base),
            target: None,
            met: None,
            detail: Some(json!({
                "items": total,
                "segments": segments,
                "deletes_in_flight": in_flight,
                "wall_s": wall,
                "engine_s": run.engine.as_secs_f64(),
                "server_cpu_s": run.server_cpu.as_secs_f64(),
                "sweeper_cpu_s": run.sweeper_cpu.as_secs_f64(),
                "server_cores": server_cores,
                "sweeper_cores": sweeper_cores,
                "peak_rss_mib": run.peak_rss_mib,
            })),
        });
    }
}
