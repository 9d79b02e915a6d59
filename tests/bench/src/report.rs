//! Result rows, the printed table, and the JSON file.

use std::path::Path;

use serde::Serialize;

/// One measured number, with its same-run baseline where there is one.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    /// Scenario number and name, e.g. `1 store`.
    pub scenario: String,
    /// What was measured, e.g. `payload 4 KB`.
    pub case: String,
    /// The measured value.
    pub value: f64,
    /// Its unit, e.g. `ops/s`.
    pub unit: String,
    /// The baseline's value in the same unit, measured in the same run.
    pub baseline: Option<f64>,
    /// `value / baseline`.
    pub ratio: Option<f64>,
    /// The target, as text.
    pub target: Option<String>,
    /// Whether the target was met.
    pub met: Option<bool>,
    /// Supporting numbers (JSON only), e.g. CPU time and in-flight requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// All rows of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    quick: bool,
    machine: Machine,
    rows: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct Machine {
    cores: usize,
    cpu: String,
    ram_mib: u64,
    /// `/proc/loadavg` when the run started: other work on the machine skews speeds.
    load_average: String,
    endpoint: String,
}

impl Report {
    pub fn new(quick: bool) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let ram_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("MemTotal:"))?.to_owned();
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .map_or(0, |kib| kib / 1024);
        let load_average = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        let endpoint = std::env::var(local_dynamodb::ENDPOINT_VAR)
            .unwrap_or_else(|_| "embedded dynoxide (HTTP on 127.0.0.1)".into());
        Self {
            quick,
            machine: Machine {
                cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
                cpu,
                ram_mib,
                load_average,
                endpoint,
            },
            rows: Vec::new(),
        }
    }

    /// Adds a row; `met` is computed by the caller against its target.
    /// The rows so far.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub fn failed_targets(&self) -> usize {
        self.rows.iter().filter(|r| r.met == Some(false)).count()
    }

    pub fn print(&self) {
        println!(
            "machine: {} cores, {}, {} MiB RAM, load average {}; endpoint: {}{}",
            self.machine.cores,
            self.machine.cpu,
            self.machine.ram_mib,
            self.machine.load_average,
            self.machine.endpoint,
            if self.quick {
                "; QUICK MODE (numbers mean nothing)"
            } else {
                ""
            }
        );
        let case_width = self
            .rows
            .iter()
            .map(|r| r.case.chars().count())
            .max()
            .unwrap_or(0)
            .max(4);
        println!(
            "| {:<16} | {:<case_width$} | {:>12} | {:<8} | {:>12} | {:>7} | {:<18} | {:<4} |",
            "scenario", "case", "value", "unit", "baseline", "ratio", "target", "met"
        );
        println!("|{}|", ["-"; 8].map(|_| "---").join("|"));
        for r in &self.rows {
            println!(
                "| {:<16} | {:<case_width$} | {:>12} | {:<8} | {:>12} | {:>7} | {:<18} | {:<4} |",
                r.scenario,
                r.case,
                fmt_num(r.value),
                r.unit,
                r.baseline.map(fmt_num).unwrap_or_default(),
                r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default(),
                r.target.clone().unwrap_or_default(),
                match r.met {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "",
                }
            );
        }
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}
