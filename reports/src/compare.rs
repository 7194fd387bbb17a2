//! `compare.html`: several runs of the same seed, workload and fault schedule against different
//! systems (Paxos and Zab, say), side by side on one page.
//!
//! The page leads with a verdict table, one column per side, that fits one screen; then the ok
//! throughput of every side on one plot (faults shaded), latency quantiles per function, each
//! fault with what each side did during it (availability) and after it began (recovery: the
//! first write that took effect), and what each side spent per operation.
//!
//! Sides are recorded run directories ([`Side`]); the page knows nothing of how they were run.
//! Which key partition a key belongs to is the system's business: a side passes it in
//! ([`Side::partition_of`]) so that the recovery after a fault aimed at one partition's leader
//! waits for a write to that partition.

use std::path::{Path, PathBuf};

use checker::{Func, Verdict};
use minijinja::Environment;
use plotters::prelude::*;
use serde::Serialize;

use crate::error::ReportError;
use crate::faults;
use crate::html::data_uri;
use crate::plots::{WIDTH, fonts, legend, plot_error, time_chart};
use crate::results::{FaultWindow, Quantiles, RunResults};
use crate::run::{Buckets, FUNCS, Op, Run, Status};

/// A key's key partition.
pub type PartitionOf = Box<dyn Fn(&str) -> u32>;

/// One side of a comparison: a recorded run directory.
pub struct Side {
    pub dir: PathBuf,
    /// The key partition of a key, for systems whose faults may aim at one partition's leader
    /// (kvnode); `None` where keys are not partitioned or the mapping is unknown.
    pub partition_of: Option<PartitionOf>,
}

/// A side, loaded.
struct Loaded {
    run: Run,
    /// Each operation's key partition, in the order of `run.ops` (`None`: unknown).
    partitions: Vec<Option<u32>>,
}

/// What a side did during one fault and after it began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DuringFault {
    /// Operations invoked while the fault was in force.
    pub invoked: usize,
    /// Of those, the ones the store answered (ok, or a CAS miss).
    pub answered: usize,
    /// From the fault's start to the completion of the first write (write, CAS or delete) that
    /// took effect, invoked at or after the start, on a key of the fault's key partition when
    /// the fault names one; `None` if there was none before the history ended.
    pub recovery_ns: Option<u64>,
}

/// Counts of `ops` around fault `w` (see [`DuringFault`]); `partitions` gives each operation's
/// key partition, in the order of `ops`.
pub fn during_fault(ops: &[Op], partitions: &[Option<u32>], w: &FaultWindow) -> DuringFault {
    let target = w
        .fault
        .get("partition")
        .and_then(serde_json::Value::as_u64)
        .map(|p| p as u32);
    let mut invoked = 0;
    let mut answered = 0;
    let mut first: Option<u64> = None;
    for (i, op) in ops.iter().enumerate() {
        if op.invoke >= w.start_ns && op.invoke < w.end_ns {
            invoked += 1;
            answered += usize::from(op.status.answered());
        }
        let write = matches!(op.f, Func::Write | Func::Cas | Func::Delete);
        let in_partition = match (target, partitions.get(i).copied().flatten()) {
            (Some(t), Some(p)) => t == p,
            _ => true,
        };
        if write
            && in_partition
            && op.status == Status::Ok
            && op.invoke >= w.start_ns
            && let Some(c) = op.complete
        {
            first = Some(first.map_or(c, |f| f.min(c)));
        }
    }
    DuringFault {
        invoked,
        answered,
        recovery_ns: first.map(|c| c - w.start_ns),
    }
}

/// Whether the sides' fault schedules line up: the same number of faults, of the same kinds, on
/// the same key partitions, starting within a second of each other. `None` if they do; else why
/// not, in a sentence.
pub fn schedules_differ(schedules: &[(&str, &[FaultWindow])]) -> Option<String> {
    let (first_name, first) = schedules.first()?;
    let kind = |w: &FaultWindow| {
        (
            w.fault.get("kind").cloned(),
            w.fault.get("shape").cloned(),
            w.fault.get("partition").cloned(),
        )
    };
    for (name, other) in &schedules[1..] {
        if other.len() != first.len() {
            return Some(format!(
                "{first_name} had {} and {name} {} faults (a run cut short, or a schedule that \
                 depends on the system)",
                first.len(),
                other.len()
            ));
        }
        for (i, (a, b)) in first.iter().zip(other.iter()).enumerate() {
            if kind(a) != kind(b) || a.start_ns.abs_diff(b.start_ns) > 1_000_000_000 {
                return Some(format!(
                    "fault {} is {} at {:.1} s for {first_name} but {} at {:.1} s for {name}",
                    i + 1,
                    faults::label(a),
                    a.start_ns as f64 / 1e9,
                    faults::label(b),
                    b.start_ns as f64 / 1e9
                ));
            }
        }
    }
    None
}

/// What [`render`] wrote.
#[derive(Debug)]
pub struct CompareReport {
    pub html: PathBuf,
    pub plots: Vec<PathBuf>,
}

/// Renders `compare.html` (and `throughput.png`) into `out` from the sides' run directories.
pub fn render(out: &Path, sides: &[Side]) -> Result<CompareReport, ReportError> {
    let loaded = sides.iter().map(load).collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(out).map_err(ReportError::io(out))?;
    let throughput_png = out.join("throughput.png");
    fonts();
    draw_throughput(&loaded, &throughput_png).map_err(plot_error("throughput comparison"))?;

    let names: Vec<String> = loaded.iter().map(|l| side_name(&l.run.results)).collect();
    let schedules: Vec<(&str, &[FaultWindow])> = names
        .iter()
        .zip(&loaded)
        .map(|(n, l)| (n.as_str(), l.run.results.faults.as_slice()))
        .collect();
    let differ = schedules_differ(&schedules);
    let first = &loaded[0].run.results;
    let worst = loaded
        .iter()
        .map(|l| l.run.results.verdict)
        .max_by_key(|v| match v {
            Verdict::Valid => 0,
            Verdict::Unknown => 1,
            Verdict::Invalid => 2,
        })
        .unwrap_or(Verdict::Unknown);
    let faults_per_side: Vec<Vec<DuringFault>> = loaded
        .iter()
        .map(|l| {
            l.run
                .results
                .faults
                .iter()
                .map(|w| during_fault(&l.run.ops, &l.partitions, w))
                .collect()
        })
        .collect();
    let columns: Vec<_> = loaded
        .iter()
        .zip(&names)
        .zip(&faults_per_side)
        .map(|((l, name), during)| column(out, l, name, during))
        .collect();
    let fault_rows: Vec<_> = (0..loaded.iter().map(|l| l.run.results.faults.len()).max().unwrap_or(0))
        .map(|i| {
            let w = loaded.iter().find_map(|l| l.run.results.faults.get(i));
            serde_json::json!({
                "n": i + 1,
                "label": w.map(faults::label).unwrap_or_default(),
                "window": w.map(|w| format!("{:.1}–{:.1} s", w.start_ns as f64 / 1e9, w.end_ns as f64 / 1e9)).unwrap_or_default(),
                "sides": faults_per_side.iter().map(|d| match d.get(i) {
                    Some(d) => serde_json::json!({
                        "availability": share(d.answered, d.invoked),
                        "ops": format!("{}/{}", d.answered, d.invoked),
                        "recovery": d.recovery_ns.map_or("none".to_owned(), |ns| format!("{:.2} s", ns as f64 / 1e9)),
                    }),
                    None => serde_json::json!({"availability": "-", "ops": "", "recovery": "-"}),
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let latency: Vec<_> = FUNCS
        .iter()
        .filter(|f| loaded.iter().any(|l| l.run.results.latency.contains_key(f.name())))
        .map(|f| {
            serde_json::json!({
                "f": f.name(),
                "sides": loaded.iter().map(|l| quantile_cells(l.run.results.latency.get(f.name()))).collect::<Vec<_>>(),
            })
        })
        .collect();
    let partitioned = loaded
        .iter()
        .any(|l| l.partitions.iter().any(Option::is_some));
    let ctx = serde_json::json!({
        "worst": worst.name(),
        "title": names.join(" vs "),
        "profile": first.profile,
        "nemesis": first.nemesis,
        "seed": first.seed,
        "seeds_differ": loaded.iter().any(|l| l.run.results.seed != first.seed),
        "duration": format!("{:.0} s", first.duration_s),
        "columns": columns,
        "throughput": data_uri(&throughput_png)?,
        "latency": latency,
        "faults": fault_rows,
        "differ": differ,
        "partitioned": partitioned,
        "version": env!("CARGO_PKG_VERSION"),
        "out": out.display().to_string(),
    });
    let mut env = Environment::new();
    env.add_template("compare.html", include_str!("../templates/compare.html"))?;
    let html = env.get_template("compare.html")?.render(ctx)?;
    let html_path = out.join("compare.html");
    std::fs::write(&html_path, html).map_err(ReportError::io(&html_path))?;
    Ok(CompareReport {
        html: html_path,
        plots: vec![throughput_png],
    })
}

fn load(side: &Side) -> Result<Loaded, ReportError> {
    let results = crate::run::read_results(&side.dir.join("results.json"))?;
    let history_path = side.dir.join("history.jsonl");
    let (history, _) = checker::read_file(&history_path, &checker::ReadOptions::default())
        .map_err(|source| ReportError::History {
            path: history_path.clone(),
            source,
        })?;
    let partitions = history
        .ops
        .iter()
        .map(|op| side.partition_of.as_ref().map(|p| p(history.key_name(op))))
        .collect();
    Ok(Loaded {
        run: Run::new(&side.dir, results, &history),
        partitions,
    })
}

/// `kvnode (zab)`, `etcd`: the system, as its column is headed.
fn side_name(r: &RunResults) -> String {
    r.system().to_owned()
}

fn share(n: usize, of: usize) -> String {
    if of == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / of as f64)
    }
}

fn quantile_cells(q: Option<&Quantiles>) -> [String; 4] {
    match q {
        Some(q) => [q.p50_ms, q.p95_ms, q.p99_ms, q.max_ms].map(|v| format!("{v:.1}")),
        None => std::array::from_fn(|_| "-".to_owned()),
    }
}

/// One side's column of the verdict table.
#[derive(Serialize)]
struct Column {
    name: String,
    verdict: &'static str,
    verdict_text: String,
    ok: usize,
    cas_miss: usize,
    fail: usize,
    info: usize,
    throughput: String,
    faults: usize,
    availability: String,
    longest_recovery: String,
    wal_syncs_per_op: String,
    messages_per_op: String,
    bytes_per_op: String,
    costs_note: String,
    report: Option<String>,
    interrupted: bool,
}

fn column(out: &Path, l: &Loaded, name: &str, during: &[DuringFault]) -> Column {
    let r = &l.run.results;
    let count = |s: Status| l.run.ops.iter().filter(|o| o.status == s).count();
    let (invoked, answered) = during
        .iter()
        .fold((0, 0), |(i, a), d| (i + d.invoked, a + d.answered));
    let longest = during.iter().map(|d| d.recovery_ns).max();
    let (wal, msgs, bytes, note) = match (&r.costs, &r.messages) {
        (Some(c), _) => (
            format!("{:.2}", c.per_op.wal_syncs),
            format!("{:.2}", c.per_op.peer_messages),
            format!("{:.0}", c.per_op.peer_bytes),
            if c.cut_short > 0 {
                format!(
                    "about: {} killed, each losing up to a second of counts",
                    checker::counted(c.cut_short, "node process was", "node processes were")
                )
            } else {
                String::new()
            },
        ),
        (None, Some(m)) => (
            "n/a".to_owned(),
            format!("{:.2}", m.per_operation),
            "n/a".to_owned(),
            "messages counted by the bench's router".to_owned(),
        ),
        (None, None) => (
            "n/a".into(),
            "n/a".into(),
            "n/a".into(),
            "not counted".into(),
        ),
    };
    let report = l.run.dir.join("report.html");
    Column {
        name: name.to_owned(),
        verdict: r.verdict.name(),
        verdict_text: r.verdict.name().to_uppercase(),
        ok: count(Status::Ok),
        cas_miss: count(Status::CasMiss),
        fail: count(Status::Fail),
        info: count(Status::Info),
        throughput: format!("{:.0}", r.throughput_ops_per_s),
        faults: r.faults.len(),
        availability: if during.is_empty() {
            "no faults".to_owned()
        } else {
            share(answered, invoked)
        },
        longest_recovery: match longest {
            None => "-".to_owned(),
            Some(None) => "no write after a fault".to_owned(),
            Some(Some(ns)) => format!("{:.2} s", ns as f64 / 1e9),
        },
        wal_syncs_per_op: wal,
        messages_per_op: msgs,
        bytes_per_op: bytes,
        costs_note: note,
        report: report.exists().then(|| relative(out, &report)),
        interrupted: r.interrupted,
    }
}

/// `to` as a link from a page in `from`: relative when `to` is under `from`, else absolute.
fn relative(from: &Path, to: &Path) -> String {
    match to.strip_prefix(from) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => format!("file://{}", to.display()),
    }
}

const SIDE_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

/// Ok operations completed per second, one line per side, the first side's faults shaded.
fn draw_throughput(sides: &[Loaded], path: &Path) -> crate::plots::PlotResult {
    let end_of = |r: &Run| match r.results.duration_s {
        d if d > 0.0 => ((d * 1e9) as u64).min(r.end_ns),
        _ => r.end_ns,
    };
    let end_ns = sides.iter().map(|l| end_of(&l.run)).max().unwrap_or(0);
    let buckets = Buckets::over(end_ns);
    let x_max = (end_ns as f64 / 1e9).max(1.0);
    let mut lines = Vec::new();
    for l in sides {
        let end = end_of(&l.run);
        let mut counts = vec![0f64; buckets.count];
        for op in l.run.ops.iter().filter(|o| o.status == Status::Ok) {
            if let Some(c) = op.complete.filter(|&c| c <= end) {
                counts[buckets.index(c)] += 1.0;
            }
        }
        let covered = |i: usize| {
            let start = i as u64 * buckets.width_ns;
            end.saturating_sub(start).min(buckets.width_ns) as f64 / 1e9
        };
        let points: Vec<(f64, f64)> = counts
            .iter()
            .enumerate()
            .filter(|(i, _)| covered(*i) > 0.0)
            .map(|(i, n)| (buckets.center_s(i), n / covered(i)))
            .collect();
        lines.push(points);
    }
    let y_max = lines.iter().flatten().map(|p| p.1).fold(1.0f64, f64::max) * 1.15;
    let root = BitMapBackend::new(path, (WIDTH, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let faults = sides
        .first()
        .map(|l| l.run.results.faults.as_slice())
        .unwrap_or_default();
    let mut chart = time_chart(
        &root,
        (
            format!(
                "Ok operations completed per second, in {:.1} s buckets (faults shaded)",
                buckets.width_s()
            ),
            20,
        ),
        x_max,
        (0f64..y_max, (0.0, y_max)),
        ("ok operations/s", &|v| format!("{v:.0}")),
        faults,
    )?;
    // Open-loop sides that keep up draw the same line: each side is drawn thinner than the one
    // before it, on top, so that equal lines show as nested bands rather than one colour.
    let n = sides.len() as u32;
    for (i, (l, points)) in sides.iter().zip(lines).enumerate() {
        let color = SIDE_COLORS[i % SIDE_COLORS.len()];
        let width = 3 * (n - i as u32);
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(width)))?
            .label(side_name(&l.run.results))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width))
            });
    }
    legend(&mut chart, 14)?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(f: Func, status: Status, invoke_ms: u64, complete_ms: u64) -> Op {
        Op {
            f,
            status,
            invoke: invoke_ms * 1_000_000,
            complete: Some(complete_ms * 1_000_000),
        }
    }

    fn window(fault: serde_json::Value, start_ms: u64, end_ms: u64) -> FaultWindow {
        FaultWindow {
            fault,
            label: String::new(),
            start_ns: start_ms * 1_000_000,
            end_ns: end_ms * 1_000_000,
        }
    }

    #[test]
    fn availability_counts_what_was_invoked_during_the_fault_and_answered() {
        let ops = [
            op(Func::Read, Status::Ok, 500, 600),         // before
            op(Func::Read, Status::Ok, 1_000, 1_010),     // during: answered
            op(Func::Cas, Status::CasMiss, 1_100, 1_120), // answered: a miss is an answer
            op(Func::Write, Status::Info, 1_200, 2_200),  // timed out
            op(Func::Read, Status::Fail, 1_900, 1_901),   // refused
            op(Func::Read, Status::Ok, 2_000, 2_001),     // after: the window is [start, end)
        ];
        let w = window(
            serde_json::json!({"kind": "pause", "nodes": ["n1"]}),
            1_000,
            2_000,
        );
        let d = during_fault(&ops, &[None; 6], &w);
        assert_eq!((d.invoked, d.answered), (4, 2));
    }

    #[test]
    fn recovery_waits_for_a_write_invoked_after_the_start_on_the_faults_partition() {
        let ops = [
            // Invoked before the fault: does not show recovery even though it completes after.
            op(Func::Write, Status::Ok, 900, 1_050),
            // A read, and a CAS miss: not writes that took effect.
            op(Func::Read, Status::Ok, 1_000, 1_010),
            op(Func::Cas, Status::CasMiss, 1_000, 1_020),
            // Another partition's write: not the one whose leader was killed.
            op(Func::Write, Status::Ok, 1_100, 1_200),
            // The first write on partition 5 that took effect.
            op(Func::Cas, Status::Ok, 1_300, 2_500),
            op(Func::Write, Status::Ok, 1_400, 2_700),
        ];
        let parts = [Some(5), Some(5), Some(5), Some(2), Some(5), Some(5)];
        let leader = window(
            serde_json::json!({"kind": "kill", "nodes": ["n2"], "partition": 5}),
            1_000,
            2_000,
        );
        assert_eq!(
            during_fault(&ops, &parts, &leader).recovery_ns,
            Some(1_500_000_000)
        );
        // A fault aimed at no partition: the first write anywhere.
        let any = window(
            serde_json::json!({"kind": "kill", "nodes": ["n2"]}),
            1_000,
            2_000,
        );
        assert_eq!(
            during_fault(&ops, &parts, &any).recovery_ns,
            Some(200_000_000)
        );
        // Keys of unknown partition count for any fault.
        assert_eq!(
            during_fault(&ops, &[None; 6], &leader).recovery_ns,
            Some(200_000_000)
        );
        // No write after the start: no recovery within the run.
        let late = window(
            serde_json::json!({"kind": "kill", "partition": 5}),
            1_500,
            1_600,
        );
        assert_eq!(during_fault(&ops[..5], &parts, &late).recovery_ns, None);
    }

    #[test]
    fn schedules_line_up_unless_their_faults_differ_in_number_kind_or_time() {
        let kill = |at| {
            window(
                serde_json::json!({"kind": "kill", "partition": 1}),
                at,
                at + 500,
            )
        };
        let paxos = [kill(1_000), kill(3_000)];
        let zab_late = [kill(1_300), kill(3_900)];
        assert_eq!(
            schedules_differ(&[("paxos", &paxos), ("zab", &zab_late)]),
            None
        );
        let short = [kill(1_000)];
        let why = schedules_differ(&[("paxos", &paxos), ("zab", &short)]).unwrap();
        assert!(why.contains("paxos had 2 and zab 1 faults"), "{why}");
        let pause = [
            kill(1_000),
            window(serde_json::json!({"kind": "pause"}), 3_000, 3_500),
        ];
        let why = schedules_differ(&[("paxos", &paxos), ("zab", &pause)]).unwrap();
        assert!(why.starts_with("fault 2 is"), "{why}");
        let much_later = [kill(1_000), kill(4_500)];
        assert!(schedules_differ(&[("paxos", &paxos), ("zab", &much_later)]).is_some());
    }
}
