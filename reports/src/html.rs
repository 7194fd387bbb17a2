//! Assembles `report.html` and `index.html` from the run's data and the rendered plots.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use checker::{History, Verdict};
use minijinja::Environment;
use serde::Serialize;

use crate::error::ReportError;
use crate::junit::junit_xml;
use crate::results::RunResults;
use crate::run::{self, Run, Status, read_results, seconds};
use crate::{anomaly, faults, lamport, plots, tables};

/// What [`render`] wrote.
#[derive(Debug)]
pub struct Report {
    pub html: PathBuf,
    pub junit: PathBuf,
    pub plots: Vec<PathBuf>,
    /// `messages.svg`, the Lamport diagram of the messages around the earliest anomaly, when
    /// the run is invalid and recorded its messages.
    pub messages_svg: Option<PathBuf>,
    /// Points drawn in the latency scatter (after thinning by pixel) and operations in all.
    pub scatter_points: usize,
    pub operations: usize,
}

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

    let anomalies = match r.earliest_anomaly() {
        Some(_) => anomaly::views(run, &mut png)?,
        None => Vec::new(),
    };
    let diagram = match r.earliest_anomaly().and_then(|k| k.anomaly.as_ref()) {
        Some(a) => lamport::diagram(run, a)?,
        None => None,
    };
    let messages_svg = match &diagram {
        Some(d) => {
            let path = dir.join("messages.svg");
            std::fs::write(&path, &d.file).map_err(ReportError::io(&path))?;
            Some(path)
        }
        None => None,
    };

    let plot_views = vec![
        plot_view(
            &latency_png,
            "service time over time",
            format!(
                "Service time (invocation to completion) of every operation, marked at its \
                 invocation: circles ok, a CAS whose precondition did not hold in its own colour \
                 (answered, not a failure), crosses fail, triangles info (outcome unknown, usually \
                 a timeout). {} of {} operations drawn: where several of one kind fall on the same \
                 pixel, one is drawn.",
                scatter_points,
                run.ops.len()
            ),
        )?,
        plot_view(
            &throughput_png,
            "throughput over time",
            "Completions per second by function, one panel per outcome; CAS misses (the \
             precondition did not hold) have their own panel, apart from failures."
                .to_owned(),
        )?,
        plot_view(
            &quantiles_png,
            "service time quantiles over time",
            "Exact quantiles of the service time of every ok operation invoked in each bucket; \
             gaps are buckets in which nothing of that function succeeded."
                .to_owned(),
        )?,
    ];

    let headline = match r.verdict {
        Verdict::Valid => format!(
            "VALID: linearizable ({}, {})",
            checker::counted(r.operations as u64, "operation", "operations"),
            checker::counted(r.faults.len() as u64, "fault", "faults")
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
                "label": faults::label(w),
                "nodes": faults::nodes(w),
                "start": seconds(w.start_ns),
                "end": seconds(w.end_ns),
                "lasted": format!("{:.2}", w.end_ns.saturating_sub(w.start_ns) as f64 / 1e9),
            })
        })
        .collect();
    // From the history rather than results.json: runs recorded before CAS misses were counted
    // apart have them among the failures there.
    let count = |s: Status| run.ops.iter().filter(|o| o.status == s).count();
    let node_args = run::node_args(r, run.config.as_deref());
    let ctx = serde_json::json!({
        "verdict": r.verdict.name(),
        "headline": headline,
        "bug": deliberate_bug(&node_args),
        "interrupted": r.interrupted,
        "test": r.test,
        "system": r.system(),
        "messages": r.messages.as_ref().map(tables::messages),
        "costs": r.costs.as_ref().map(|c| serde_json::json!({
            "wal_syncs": format!("{:.2}", c.per_op.wal_syncs),
            "peer_messages": format!("{:.2}", c.per_op.peer_messages),
            "approximate": c.cut_short > 0,
        })),
        "started_at": r.started_at.clone().unwrap_or_else(|| "unknown date".into()),
        "profile": r.profile,
        "nemesis": r.nemesis,
        "seed": r.seed,
        "node_args": node_args.join(" "),
        "operations": r.operations,
        "outcomes": Status::ALL.map(|s| serde_json::json!({"name": s.name(), "n": count(s)})),
        "throughput": format!("{:.0}", r.throughput_ops_per_s),
        "duration": humantime::format_duration(Duration::from_secs(r.duration_s.round() as u64)).to_string(),
        "faults": faults,
        "checker_ms": format!("{:.0} ms", r.checker.elapsed_ms),
        "keys": r.checker.keys.len(),
        "anomalies": anomalies,
        "lamport": diagram.as_ref().map(|d| serde_json::json!({"svg": d.inline, "caption": d.caption})),
        "unknown_keys": unknown_keys,
        "plots": plot_views,
        "funcs": tables::func_rows(run),
        "availability": tables::availability(run),
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
        messages_svg,
        scatter_points,
        operations: run.ops.len(),
    })
}

/// The sentence that warns of a deliberate bug, when the nodes ran with an `--unsafe-` flag:
/// such a run is expected to be invalid, and must not be mistaken for a finding.
fn deliberate_bug(node_args: &[String]) -> Option<String> {
    let unsafe_args: Vec<&str> = node_args
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("--unsafe-"))
        .collect();
    match unsafe_args.len() {
        0 => None,
        1 => Some(format!(
            "nodes ran with {}: a deliberate bug",
            unsafe_args[0]
        )),
        _ => Some(format!(
            "nodes ran with {}: deliberate bugs",
            unsafe_args.join(" ")
        )),
    }
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

pub(crate) fn data_uri(png: &Path) -> Result<String, ReportError> {
    let bytes = std::fs::read(png).map_err(ReportError::io(png))?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// Writes `index.html` in `root` listing every run found under it (`root/<test>/<time>/` with a
/// `results.json`), newest first, and every comparison (`root/compare/<test>/<time>/` with a
/// `compare.html`, its sides' runs listed with the others); returns its path. Runs whose
/// results cannot be read are listed with their error rather than left out.
pub fn write_index(root: &Path) -> Result<PathBuf, ReportError> {
    let mut runs = Vec::new();
    let mut comparisons = Vec::new();
    for test in subdirs(root).map_err(ReportError::io(root))? {
        if test.file_name().is_some_and(|n| n == "compare") {
            // root/compare/<test>/<time>/, a side's run in each of its directories.
            let tests = subdirs(&test).into_iter().flatten();
            for page in tests.flat_map(|t| holding(&t, "compare.html")) {
                let sides = holding(&page, "results.json");
                comparisons.push(comparison_row(root, &page, &sides));
                runs.extend(sides.iter().map(|side| run_row(root, side)));
            }
        } else {
            runs.extend(
                holding(&test, "results.json")
                    .iter()
                    .map(|run| run_row(root, run)),
            );
        }
    }
    comparisons.sort_by(|a, b| b["date"].as_str().cmp(&a["date"].as_str()));
    runs.sort_by(|a, b| b["date"].as_str().cmp(&a["date"].as_str()));
    let html = environment()
        .get_template("index.html")?
        .render(serde_json::json!({
            "runs": runs,
            "comparisons": comparisons,
            "root": root.display().to_string(),
        }))?;
    let path = root.join("index.html");
    std::fs::write(&path, html).map_err(ReportError::io(&path))?;
    Ok(path)
}

/// The runs index's row for the run in `run` (which has a `results.json`), with links relative
/// to `root`.
fn run_row(root: &Path, run: &Path) -> serde_json::Value {
    let results_path = run.join("results.json");
    let name = run
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let rel = |file: &str| relative(root, &run.join(file));
    let report = run.join("report.html").exists().then(|| rel("report.html"));
    match read_results(&results_path) {
        Ok(r) => {
            let config = std::fs::read_to_string(run.join("config.toml")).ok();
            let node_args = run::node_args(&r, config.as_deref());
            serde_json::json!({
                "date": r.started_at.clone().unwrap_or_else(|| name.clone()),
                "verdict": r.verdict.name(),
                "interrupted": r.interrupted,
                "node_args": node_args.join(" "),
                "bug": deliberate_bug(&node_args).is_some(),
                "test": r.test,
                "system": r.system(),
                "msgs_per_op": r.messages.as_ref().map(|m| format!("{:.2}", m.per_operation)),
                "profile": r.profile,
                "nemesis": r.nemesis,
                "faults": r.faults.len(),
                "operations": r.operations,
                "throughput": format!("{:.0}", r.throughput_ops_per_s),
                "report": report,
                "results": rel("results.json"),
            })
        }
        Err(e) => serde_json::json!({
            "date": name,
            "verdict": "unknown",
            "test": run.parent().and_then(Path::file_name).map(|n| n.to_string_lossy()),
            "profile": format!("unreadable: {e}"),
            "report": report,
            "results": rel("results.json"),
        }),
    }
}

/// The runs index's row for the comparison page in `page`, whose sides' runs are `sides`.
fn comparison_row(root: &Path, page: &Path, sides: &[PathBuf]) -> serde_json::Value {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    serde_json::json!({
        "date": name(page),
        "test": page.parent().and_then(name),
        "sides": sides.iter().filter_map(|s| name(s)).collect::<Vec<_>>(),
        "page": relative(root, &page.join("compare.html")),
    })
}

/// The directories in `dir` that hold a file named `file`, sorted.
fn holding(dir: &Path, file: &str) -> Vec<PathBuf> {
    subdirs(dir)
        .into_iter()
        .flatten()
        .filter(|d| d.join(file).exists())
        .collect()
}

/// The directories in `dir` (not the `latest` symlinks), sorted.
fn subdirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// `path` relative to `root`, with `/` between parts (for links in the index).
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
