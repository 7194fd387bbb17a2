//! Assembles `report.html` and `index.html` from the run's data and the rendered plots.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use checker::{Anomaly, History, Verdict};
use minijinja::Environment;
use serde::Serialize;

use crate::error::ReportError;
use crate::junit::junit_xml;
use crate::logs::{LogLine, lines_between};
use crate::plots;
use crate::results::RunResults;
use crate::run::{FUNCS, Run, Status, quantile, read_results};

/// What [`render`] wrote.
#[derive(Debug)]
pub struct Report {
    pub html: PathBuf,
    pub junit: PathBuf,
    pub plots: Vec<PathBuf>,
    /// Points drawn in the latency scatter (after thinning by pixel) and operations in all.
    pub scatter_points: usize,
    pub operations: usize,
}

/// Node log lines shown with an anomaly: this long before the culprit's invocation …
const LOG_BEFORE: Duration = Duration::from_secs(2);
/// … to this long after its completion, at most this many.
const LOG_AFTER: Duration = Duration::from_secs(1);
const LOG_LIMIT: usize = 200;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_template("report.html", include_str!("../templates/report.html"))
        .expect("the report template parses");
    env.add_template("index.html", include_str!("../templates/index.html"))
        .expect("the index template parses");
    env
}

/// Renders the report of the run in `dir` (see the crate docs for what it writes).
pub fn render(dir: &Path) -> Result<Report, ReportError> {
    render_run(&Run::load(dir)?)
}

/// As [`render`], for a caller that already holds the run's results and history (the bench at
/// the end of a run), so that the history is not read and parsed a second time.
pub fn render_with(
    dir: &Path,
    results: RunResults,
    history: &History,
) -> Result<Report, ReportError> {
    render_run(&Run::new(dir, results, history))
}

fn render_run(run: &Run) -> Result<Report, ReportError> {
    let dir = run.dir.as_path();
    let r = &run.results;
    let mut written = Vec::new();
    let mut png = |name: &str| {
        let p = dir.join(name);
        written.push(p.clone());
        p
    };

    let latency_png = png("latency.png");
    let scatter_points = plots::latency_scatter(run, &latency_png)?;
    let throughput_png = png("throughput.png");
    plots::throughput(run, &throughput_png)?;
    let quantiles_png = png("quantiles.png");
    plots::quantiles_over_time(run, &quantiles_png)?;

    let anomaly = match r.earliest_anomaly() {
        Some(k) => {
            let a = k.anomaly.as_ref().expect("earliest_anomaly has one");
            let timeline = png("anomaly.png");
            plots::anomaly_timeline(&k.key, a, &timeline)?;
            Some(anomaly_view(run, &k.key, a, &timeline)?)
        }
        None => None,
    };

    let plot_views = vec![
        plot_view(
            &latency_png,
            "latency over time",
            format!(
                "One mark per operation at its invocation: circles ok, crosses fail, triangles info \
                 (outcome unknown, usually a timeout). {} of {} operations drawn: where several of \
                 one kind fall on the same pixel, one is drawn.",
                scatter_points,
                run.ops.len()
            ),
        )?,
        plot_view(
            &throughput_png,
            "throughput over time",
            "Completions per second by function, one panel per outcome.".to_owned(),
        )?,
        plot_view(
            &quantiles_png,
            "latency quantiles over time",
            "Exact quantiles of every ok operation invoked in each bucket; gaps are buckets in \
             which nothing of that function succeeded."
                .to_owned(),
        )?,
    ];

    let headline = match r.verdict {
        Verdict::Valid => format!(
            "VALID: linearizable ({} operations, {} faults)",
            r.operations,
            r.faults.len()
        ),
        Verdict::Invalid => format!(
            "INVALID: not linearizable ({} of {} keys)",
            r.checker.invalid_keys.len(),
            r.checker.keys.len()
        ),
        Verdict::Unknown => format!(
            "UNKNOWN: the checker could not decide {} of {} keys",
            r.checker.unknown_keys.len(),
            r.checker.keys.len()
        ),
    };
    let unknown_keys: Vec<_> = r
        .checker
        .keys
        .iter()
        .filter(|k| k.verdict == Verdict::Unknown)
        .map(|k| serde_json::json!({"key": k.key, "reason": k.reason.clone().unwrap_or_default()}))
        .collect();
    let faults: Vec<_> = r
        .faults
        .iter()
        .map(|w| {
            serde_json::json!({
                "label": if w.label.is_empty() { w.fault.to_string() } else { w.label.clone() },
                "start": format!("{:.2}", w.start_ns as f64 / 1e9),
                "end": format!("{:.2}", w.end_ns as f64 / 1e9),
                "lasted": format!("{:.2}", w.end_ns.saturating_sub(w.start_ns) as f64 / 1e9),
            })
        })
        .collect();
    let ctx = serde_json::json!({
        "verdict": r.verdict.name(),
        "headline": headline,
        "test": r.test,
        "started_at": r.started_at.clone().unwrap_or_else(|| "unknown date".into()),
        "profile": r.profile,
        "nemesis": r.nemesis,
        "seed": r.seed,
        "operations": r.operations,
        "ok": r.ok,
        "fail": r.fail,
        "info": r.info,
        "throughput": format!("{:.0}", r.throughput_ops_per_s),
        "duration": humantime::format_duration(Duration::from_secs(r.duration_s.round() as u64)).to_string(),
        "faults": faults,
        "checker_ms": format!("{:.0} ms", r.checker.elapsed_ms),
        "keys": r.checker.keys.len(),
        "anomaly": anomaly,
        "unknown_keys": unknown_keys,
        "plots": plot_views,
        "funcs": func_rows(run),
        "availability": availability(run),
        "config": run.config,
        "config_path": dir.join("config.toml").display().to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "dir": dir.display().to_string(),
    });
    let html = environment().get_template("report.html")?.render(ctx)?;
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, html).map_err(ReportError::io(&html_path))?;
    let junit_path = dir.join("results.xml");
    std::fs::write(&junit_path, junit_xml(r)).map_err(ReportError::io(&junit_path))?;
    Ok(Report {
        html: html_path,
        junit: junit_path,
        plots: written,
        scatter_points,
        operations: run.ops.len(),
    })
}

#[derive(Serialize)]
struct PlotView {
    title: &'static str,
    caption: String,
    file: String,
    uri: String,
}

fn plot_view(path: &Path, title: &'static str, caption: String) -> Result<PlotView, ReportError> {
    Ok(PlotView {
        title,
        caption,
        file: path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        uri: data_uri(path)?,
    })
}

fn data_uri(png: &Path) -> Result<String, ReportError> {
    let bytes = std::fs::read(png).map_err(ReportError::io(png))?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

#[derive(Serialize)]
struct AnomalyView {
    key: String,
    explanation: String,
    timeline: String,
    ops: Vec<OpRow>,
    prefix_len: usize,
    value_after: String,
    prefix_tail: Vec<String>,
    other_keys: Vec<String>,
    logs: Vec<LogLine>,
    log_window: String,
    no_logs: String,
    /// Which faults overlapped the culprit, in words.
    faults_then: String,
}

#[derive(Serialize)]
struct OpRow {
    index: usize,
    process: u64,
    text: String,
    outcome: String,
    invoke: String,
    complete: String,
    took: String,
    lines: String,
    culprit: bool,
}

fn anomaly_view(
    run: &Run,
    key: &str,
    a: &Anomaly,
    timeline: &Path,
) -> Result<AnomalyView, ReportError> {
    // `around` holds the culprit and is sorted by invocation (the checker's contract).
    let rows = a
        .around
        .iter()
        .map(|o| OpRow {
            index: o.index,
            process: o.process,
            text: o.text.clone(),
            outcome: o.outcome.clone(),
            invoke: format!("{:.6}", o.invoke as f64 / 1e9),
            complete: o
                .complete
                .map_or("never".into(), |c| format!("{:.6}", c as f64 / 1e9)),
            took: o.complete.map_or(String::new(), |c| {
                format!("{:.2}", c.saturating_sub(o.invoke) as f64 / 1e6)
            }),
            lines: match o.complete_line {
                Some(c) => format!("{}, {c}", o.invoke_line),
                None => o.invoke_line.to_string(),
            },
            culprit: o.index == a.culprit.index,
        })
        .collect();
    let from_ns = a.culprit.invoke;
    let to_ns = a.culprit.complete.unwrap_or(a.culprit.invoke);
    let window = |from: f64, to: f64| format!("{from:.3} s to {to:.3} s of the run");
    let (logs, log_window, no_logs) = match (run.started_at(), run.wall(from_ns), run.wall(to_ns)) {
        (Some(start), Some(from), Some(to)) => {
            let from = from.checked_sub(LOG_BEFORE).unwrap_or(from);
            let logs = lines_between(&run.dir, start, from, to + LOG_AFTER, LOG_LIMIT);
            (
                logs,
                window(
                    (from_ns as f64 / 1e9 - LOG_BEFORE.as_secs_f64()).max(0.0),
                    to_ns as f64 / 1e9 + LOG_AFTER.as_secs_f64(),
                ),
                "The nodes logged nothing in this window.".to_owned(),
            )
        }
        _ => (
            Vec::new(),
            "around the anomaly".to_owned(),
            "results.json does not record when the run started, so node logs cannot be matched."
                .to_owned(),
        ),
    };
    let overlapping: Vec<String> = run
        .results
        .faults
        .iter()
        .filter(|w| w.start_ns <= to_ns && from_ns <= w.end_ns)
        .map(|w| {
            format!(
                "{} ({:.2} s to {:.2} s)",
                w.label,
                w.start_ns as f64 / 1e9,
                w.end_ns as f64 / 1e9
            )
        })
        .collect();
    let faults_then = if overlapping.is_empty() {
        "No fault was in force while the impossible operation ran.".to_owned()
    } else {
        format!(
            "In force while the impossible operation ran: {}.",
            overlapping.join(", ")
        )
    };
    Ok(AnomalyView {
        faults_then,
        key: key.to_owned(),
        explanation: a.explanation.clone(),
        timeline: data_uri(timeline)?,
        ops: rows,
        prefix_len: a.prefix_len,
        value_after: match &a.value_after_prefix {
            serde_json::Value::Null => "absent".to_owned(),
            v => v.to_string(),
        },
        prefix_tail: a.prefix_tail.iter().map(|o| o.text.clone()).collect(),
        other_keys: run
            .results
            .checker
            .invalid_keys
            .iter()
            .filter(|k| *k != key)
            .cloned()
            .collect(),
        logs,
        log_window,
        no_logs,
    })
}

fn func_rows(run: &Run) -> Vec<serde_json::Value> {
    FUNCS
        .iter()
        .filter_map(|f| {
            let ops: Vec<_> = run.ops.iter().filter(|o| o.f == *f).collect();
            if ops.is_empty() {
                return None;
            }
            let count = |s: Status| ops.iter().filter(|o| o.status == s).count();
            let mut lat: Vec<f64> = ops
                .iter()
                .filter(|o| o.status == Status::Ok)
                .filter_map(|o| o.latency_ms())
                .collect();
            lat.sort_unstable_by(f64::total_cmp);
            let q = |q: f64| {
                if lat.is_empty() {
                    "-".to_owned()
                } else {
                    format!("{:.2}", quantile(&lat, q))
                }
            };
            Some(serde_json::json!({
                "f": f.name(), "ok": count(Status::Ok), "fail": count(Status::Fail),
                "info": count(Status::Info), "p50": q(0.5), "p95": q(0.95), "p99": q(0.99),
                "max": q(1.0),
            }))
        })
        .collect()
}

/// Operations invoked while a fault was in force versus outside, over the workload phase.
fn availability(run: &Run) -> Vec<serde_json::Value> {
    let end = if run.results.duration_s > 0.0 {
        (run.results.duration_s * 1e9) as u64
    } else {
        run.end_ns
    };
    let mut windows: Vec<(u64, u64)> = run
        .results
        .faults
        .iter()
        .map(|w| (w.start_ns.min(end), w.end_ns.min(end)))
        .collect();
    windows.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (s, e) in windows {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let in_fault = |t: u64| {
        let i = merged.partition_point(|w| w.0 <= t);
        i > 0 && t < merged[i - 1].1
    };
    let fault_ns: u64 = merged.iter().map(|(s, e)| e - s).sum();
    let mut n = [(0usize, 0usize); 2];
    for op in run.ops.iter().filter(|o| o.invoke < end) {
        let slot = &mut n[usize::from(in_fault(op.invoke))];
        slot.0 += 1;
        slot.1 += usize::from(op.status == Status::Ok);
    }
    let row = |phase: &str, ns: u64, (invoked, ok): (usize, usize)| {
        let secs = ns as f64 / 1e9;
        serde_json::json!({
            "phase": phase,
            "seconds": format!("{secs:.1}"),
            "invoked": invoked,
            "ok": ok,
            "share": if invoked == 0 { "-".to_owned() } else { format!("{:.1}%", 100.0 * ok as f64 / invoked as f64) },
            "rate": if secs <= 0.0 { "-".to_owned() } else { format!("{:.0}", ok as f64 / secs) },
        })
    };
    vec![
        row("no fault in force", end - fault_ns, n[0]),
        row("a fault in force", fault_ns, n[1]),
    ]
}

/// Writes `index.html` in `root` listing every run found under it (`root/<test>/<time>/` with a
/// `results.json`), newest first; returns its path. Runs whose results cannot be read are
/// listed with their error rather than left out.
pub fn write_index(root: &Path) -> Result<PathBuf, ReportError> {
    let mut runs = Vec::new();
    let tests = std::fs::read_dir(root).map_err(ReportError::io(root))?;
    for test in tests.filter_map(Result::ok) {
        let is_dir = test.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir {
            continue; // `latest` is a symlink; index.html is a file
        }
        let Ok(times) = std::fs::read_dir(test.path()) else {
            continue;
        };
        for run in times.filter_map(Result::ok) {
            let results_path = run.path().join("results.json");
            if !results_path.exists() {
                continue;
            }
            let rel = |name: &str| {
                format!(
                    "{}/{}/{name}",
                    test.file_name().to_string_lossy(),
                    run.file_name().to_string_lossy()
                )
            };
            let report = run
                .path()
                .join("report.html")
                .exists()
                .then(|| rel("report.html"));
            let row = match read_results(&results_path) {
                Ok(r) => serde_json::json!({
                    "date": r.started_at.clone().unwrap_or_else(|| run.file_name().to_string_lossy().into_owned()),
                    "verdict": r.verdict.name(),
                    "test": r.test,
                    "profile": r.profile,
                    "nemesis": r.nemesis,
                    "faults": r.faults.len(),
                    "operations": r.operations,
                    "throughput": format!("{:.0}", r.throughput_ops_per_s),
                    "report": report,
                    "results": rel("results.json"),
                }),
                Err(e) => serde_json::json!({
                    "date": run.file_name().to_string_lossy(),
                    "verdict": "unknown",
                    "test": test.file_name().to_string_lossy(),
                    "profile": format!("unreadable: {e}"),
                    "report": report,
                    "results": rel("results.json"),
                }),
            };
            runs.push(row);
        }
    }
    runs.sort_by(|a, b| b["date"].as_str().cmp(&a["date"].as_str()));
    let html = environment()
        .get_template("index.html")?
        .render(serde_json::json!({
            "runs": runs,
            "root": root.display().to_string(),
        }))?;
    let path = root.join("index.html");
    std::fs::write(&path, html).map_err(ReportError::io(&path))?;
    Ok(path)
}
