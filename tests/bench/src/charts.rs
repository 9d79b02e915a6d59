//! The charts of BENCHMARKS.md, drawn from the rows of the same run (SVG, `plotters`):
//!
//! - `sizing.svg` (scenario 7): the deletes per second each Lambda memory size sustains on
//!   CPU, beside a new on-demand table's write throughput, which binds first above it;
//! - `peers.svg` (scenario 3): the sweeper against the raw `BatchWriteItem` loop and the
//!   naive Scan + `DeleteItem` loop, on loopback and with added latency.
//!
//! A chart whose scenario did not run is not drawn.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::report::{Report, Row};
use crate::sizing::ON_DEMAND_START_WRITES;

/// One bar: its label, its value, whether it is the sweeper's.
type Bar = (String, f64, bool);

/// Draws every chart whose rows are in `report` into `dir`; the files written.
pub fn draw(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let sizing = sizing_bars(report.rows());
    if !sizing.is_empty() {
        let path = dir.join("sizing.svg");
        bars(
            &path,
            "Deletes/s a Lambda sustains on CPU (8 segments); line: new on-demand table",
            "deletes per second",
            &sizing,
            Some(ON_DEMAND_START_WRITES),
        )?;
        written.push(path);
    }
    let peers = peer_bars(report.rows());
    if !peers.is_empty() {
        let path = dir.join("peers.svg");
        bars(
            &path,
            "The sweeper against its peers (deletes/s, same run, same server)",
            "deletes per second",
            &peers,
            None,
        )?;
        written.push(path);
    }
    Ok(written)
}

/// Scenario 7's per-memory rows: the CPU-bound rate of each size.
fn sizing_bars(rows: &[Row]) -> Vec<Bar> {
    rows.iter()
        .filter(|r| r.scenario == "7 sizing" && r.unit == "del/s")
        .filter_map(|r| {
            let detail = r.detail.as_ref()?;
            Some((
                format!("{} MB", detail["memory_mb"].as_u64()?),
                detail["cpu_bound_del_s"].as_f64()?,
                true,
            ))
        })
        .collect()
}

/// Scenario 3's comparisons: for loopback and for added latency, the sweeper, the raw
/// loop and the naive loop.
fn peer_bars(rows: &[Row]) -> Vec<Bar> {
    let mut out = Vec::new();
    for (latency, label) in [(false, "loopback"), (true, "+latency")] {
        let row = |against: &str| {
            rows.iter().find(|r| {
                r.scenario == "3 sweep"
                    && r.unit == "del/s"
                    && r.case.contains(against)
                    && r.case.contains("latency") == latency
                    && !r.case.contains("known keys")
            })
        };
        let (Some(raw), Some(naive)) = (row("vs raw BatchWriteItem"), row("vs naive")) else {
            continue;
        };
        out.push((format!("sweeper, {label}"), raw.value, true));
        if let Some(base) = raw.baseline {
            out.push((format!("raw batch, {label}"), base, false));
        }
        if let Some(base) = naive.baseline {
            out.push((format!("naive, {label}"), base, false));
        }
    }
    out
}

/// A bar chart of `data`, the sweeper's bars in blue, with an optional horizontal line.
fn bars(
    path: &Path,
    caption: &str,
    y_desc: &str,
    data: &[Bar],
    line: Option<f64>,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let top = data
        .iter()
        .map(|(_, v, _)| *v)
        .chain(line)
        .fold(0.0_f64, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..data.len()).into_segmented(), 0.0..top.max(1.0))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_desc)
        .x_labels(data.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => data.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (_, value, sweeper)) in data.iter().enumerate() {
        let color = if *sweeper {
            BLUE
        } else {
            RGBColor(150, 150, 150)
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *value),
                ],
                color.mix(0.8).filled(),
            )))
            .map_err(|e| err(&e))?;
    }
    if let Some(y) = line {
        chart
            .draw_series(LineSeries::new(
                [
                    (SegmentValue::Exact(0), y),
                    (SegmentValue::Exact(data.len()), y),
                ],
                RED.stroke_width(2),
            ))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
