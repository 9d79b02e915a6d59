//! Scenario 7: what a deployed sweeper needs. The sweeper's CPU time (user + system) and
//! peak RSS per 10,000 deletes at 1, 4 and 8 segments, measured on the real `sweeper`
//! binary in a child process (50,000 sessions, half expired; 1,000 in quick mode), and
//! from them the deletes per second a Lambda function of each memory size can sustain.
//!
//! Lambda gives a function CPU in proportion to its memory: 1,769 MB is one vCPU, so
//! 256 MB is about 0.145 vCPU. A sweep that needs `c` CPU-seconds per delete can then
//! sustain `share / c` deletes a second, if nothing else binds. Two other things bind:
//! the table's write capacity (each delete is a write unit; a new on-demand table starts
//! near 4,000 write units a second, a provisioned one has what it was given) and the round
//! trips (bounded by the deletes in flight, which DynamoDB's latency divides). The sizing
//! rows are `min(CPU bound, write bound)`. CPU per delete is measured against a local
//! server on loopback, which answers faster than DynamoDB: waiting costs no CPU, so the
//! CPU per delete holds, while the wall-clock rate here does not.

use serde_json::json;

use crate::report::{Report, Row};
use crate::sweeper_run::{BySegments, sweeps_by_segments};

const SEGMENTS: [u32; 3] = [1, 4, 8];
/// The memory sizes the infra README sizes, in MB.
pub const MEMORY_MB: [u32; 4] = [128, 256, 512, 1024];
/// Lambda's memory for one full vCPU.
pub const MB_PER_VCPU: f64 = 1769.0;
/// A new on-demand table's write throughput before it scales: about 4,000 write units a
/// second (deletes of items up to 1 KB).
pub const ON_DEMAND_START_WRITES: f64 = 4000.0;
/// The working time of a 15-minute invocation: 900 s less the checkpoint's reserve and
/// the deadline margin (7.1 s).
pub const WORK_SECONDS_PER_INVOCATION: f64 = 892.9;

/// Deletes a second a function of `memory_mb` can sustain at `cpu_s_per_10k`.
pub fn cpu_bound_rate(memory_mb: u32, cpu_s_per_10k: f64) -> f64 {
    (f64::from(memory_mb) / MB_PER_VCPU) * 10_000.0 / cpu_s_per_10k
}

pub async fn run(report: &mut Report, quick: bool) {
    let BySegments {
        size,
        program,
        runs,
        ..
    } = sweeps_by_segments("bench-sizing", quick, &SEGMENTS).await;
    let mut default_cpu_s_per_10k = 0.0;
    for (segments, run) in runs {
        let cpu_s_per_10k = run.sweeper_cpu.as_secs_f64() / run.deleted as f64 * 10_000.0;
        eprintln!(
            "   {segments} segments: {:.3} CPU-s and {:.1} MiB peak RSS per 10k deletes",
            cpu_s_per_10k, run.peak_rss_mib
        );
        report.push(Row {
            scenario: "7 sizing".into(),
            case: format!("{size}: {segments} seg, sweeper CPU (user + system) per 10,000 deletes"),
            value: cpu_s_per_10k,
            unit: "CPU-s".into(),
            detail: Some(json!({
                "segments": segments,
                "deleted": run.deleted,
                "sweeper_cpu_s": run.sweeper_cpu.as_secs_f64(),
                "wall_s": run.wall.as_secs_f64(),
                "peak_rss_mib": run.peak_rss_mib,
                "program": program,
            })),
            ..Row::default()
        });
        report.push(Row {
            scenario: "7 sizing".into(),
            case: format!("{size}: {segments} seg, sweeper peak RSS"),
            value: run.peak_rss_mib,
            unit: "MiB".into(),
            ..Row::default()
        });
        // The last is the default configuration, 8 segments: the one sized below.
        default_cpu_s_per_10k = cpu_s_per_10k;
    }
    for memory in MEMORY_MB {
        let cpu = cpu_bound_rate(memory, default_cpu_s_per_10k);
        let sustained = cpu.min(ON_DEMAND_START_WRITES);
        report.push(Row {
            scenario: "7 sizing".into(),
            case: format!(
                "{memory:>4} MB Lambda (8 seg): deletes/s, CPU-bound {cpu:.0}, new on-demand table {ON_DEMAND_START_WRITES:.0}"
            ),
            value: sustained,
            unit: "del/s".into(),
            detail: Some(json!({
                "memory_mb": memory,
                "vcpu": f64::from(memory) / MB_PER_VCPU,
                "cpu_bound_del_s": cpu,
                "write_bound_del_s": ON_DEMAND_START_WRITES,
                "deletes_per_15_min_invocation": sustained * WORK_SECONDS_PER_INVOCATION,
            })),
            ..Row::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_vcpu_at_0_1_cpu_s_per_10k_sustains_100k_deletes_a_second() {
        let rate = cpu_bound_rate(1769, 0.1);
        assert!((rate - 100_000.0).abs() < 1e-6, "{rate}");
        assert!((cpu_bound_rate(256, 1.0) - 1447.2).abs() < 0.1);
    }
}
