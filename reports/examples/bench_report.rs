//! Report benchmark: time and peak memory of rendering the report of a large run, written to
//! `benchmarks/reports.md`.
//!
//! It generates a run directory the way `bench run` leaves one: a history of a simulated
//! linearizable store (64 clients, 1,000 keys, 60 s, four fault windows during which latency
//! rises and some operations time out), checked by the real checker, with its `results.json`
//! and `config.toml`; then it renders the report and measures it.
//!
//! ```text
//! cargo run --release -p reports --example bench_report            # 1,000,000 operations
//! cargo run --release -p reports --example bench_report -- --ops 100000
//! ```

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use checker::{CheckOptions, ReadOptions, Verdict};
use rand::prelude::*;
use rand::rngs::StdRng;
use reports::{CheckerSummary, FaultWindow, RunResults};

const CLIENTS: usize = 64;
const KEYS: usize = 1000;
const SECONDS: f64 = 60.0;
/// Fault windows, seconds: (label, start, end).
const FAULTS: [(&str, f64, f64); 4] = [
    ("kill n1", 10.0, 15.0),
    ("partition halves", 25.0, 35.0),
    ("pause n2", 40.0, 45.0),
    ("kill n3", 50.0, 53.0),
];

fn main() {
    let mut ops = 1_000_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ops" => ops = args.next().and_then(|v| v.parse().ok()).expect("--ops N"),
            "--render" => {
                render(Path::new(&args.next().expect("--render DIR")));
                return;
            }
            other => panic!("unknown argument {other}; use --ops N"),
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    eprintln!(
        "generating a {ops}-operation run in {}",
        dir.path().display()
    );
    let history = generate(dir.path(), ops, 11);
    let history_mib = std::fs::metadata(&history).map_or(0.0, |m| m.len() as f64 / 1048576.0);

    let parse_started = Instant::now();
    let (h, _) = checker::read_file(&history, &ReadOptions::default()).expect("read it back");
    let parse_s = parse_started.elapsed().as_secs_f64();
    let result = checker::check(&h, &CheckOptions::default());
    assert_eq!(
        result.verdict,
        Verdict::Valid,
        "the generator makes valid histories"
    );
    write_results(dir.path(), &h, &result);
    drop(h);

    // Render in a fresh process, so that the peak is the renderer's own and not the generator's
    // or the checker's.
    let out = std::process::Command::new(std::env::current_exe().expect("own path"))
        .arg("--render")
        .arg(dir.path())
        .output()
        .expect("run the renderer");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|v| v.parse().expect("a figure"))
        .collect();
    let [render_s, peak_mib, points, operations, html_mib] = figures[..] else {
        panic!("unexpected renderer output {figures:?}")
    };

    let mut table = String::new();
    let _ = writeln!(
        table,
        "# Report benchmark\n\n`cargo run --release -p reports --example bench_report` on {} \
         cores: render the report of a generated run ({CLIENTS} clients, {KEYS} keys, \
         {SECONDS} s, {} fault windows). Render time covers reading results.json and \
         history.jsonl, every plot, report.html and results.xml; peak is the process's resident \
         high-water mark while rendering.\n",
        std::thread::available_parallelism().map_or(1, usize::from),
        FAULTS.len()
    );
    let _ = writeln!(
        table,
        "| operations | history | render | of which parsing the history | peak memory | scatter points drawn | report.html |"
    );
    let _ = writeln!(table, "|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        table,
        "| {} | {history_mib:.0} MiB | {render_s:.2} s | {parse_s:.2} s | {peak_mib:.0} MiB | {} | {html_mib:.1} MiB |",
        operations as u64, points as u64
    );
    print!("{table}");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../benchmarks/reports.md");
    std::fs::write(&out, table).expect("write the figures");
    eprintln!("figures written to {}", out.display());
}

/// Renders the report of `dir` and prints: seconds, peak MiB, scatter points, operations, MiB
/// of report.html.
fn render(dir: &Path) {
    let started = Instant::now();
    let report = reports::render(dir).expect("render");
    let render_s = started.elapsed().as_secs_f64();
    let html_mib = std::fs::metadata(&report.html).map_or(0.0, |m| m.len() as f64 / 1048576.0);
    println!(
        "{render_s} {} {} {} {html_mib}",
        peak_kib() as f64 / 1024.0,
        report.scatter_points,
        report.operations
    );
}

/// Writes `history.jsonl`: each client invokes, waits a little, and its operation takes effect
/// at a random instant inside its interval; reads return what that order implies. During fault
/// windows latency grows twentyfold and 2% of operations time out (`info`, after 1 s).
fn generate(dir: &Path, ops: usize, seed: u64) -> PathBuf {
    struct Op {
        process: usize,
        key: usize,
        f: u8,
        invoke: u64,
        complete: u64,
        point: u64,
        value: u64,
        timed_out: bool,
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let in_fault = |t: u64| {
        FAULTS
            .iter()
            .any(|(_, s, e)| (*s * 1e9) as u64 <= t && t < (*e * 1e9) as u64)
    };
    let per_client = ops / CLIENTS;
    let gap = (SECONDS * 1e9 / per_client as f64) as u64;
    let mut all = Vec::with_capacity(ops);
    for client in 0..CLIENTS {
        let mut process = client;
        let mut t = rng.random_range(0..gap);
        for i in 0..per_client {
            let invoke = t;
            let slow = in_fault(invoke);
            let timed_out = slow && rng.random_bool(0.02);
            let base = 300_000.0 - 700_000.0 * (1.0 - rng.random::<f64>()).ln();
            let latency = if timed_out {
                1_000_000_000
            } else if slow {
                (base * 20.0) as u64
            } else {
                base as u64
            };
            let complete = invoke + latency.max(1);
            all.push(Op {
                process,
                key: rng.random_range(0..KEYS),
                f: rng.random_range(0..10),
                invoke,
                complete,
                point: rng.random_range(invoke..complete),
                value: (client * per_client + i) as u64 + 1,
                timed_out,
            });
            if timed_out {
                process += CLIENTS;
            }
            t = complete.max(invoke + gap / 2) + rng.random_range(0..gap);
        }
    }
    all.sort_by_key(|o| o.point);
    let mut current: Vec<Option<u64>> = vec![None; KEYS];
    let mut events: Vec<(u64, String)> = Vec::with_capacity(2 * ops);
    let show = |v: Option<u64>| v.map_or("null".to_owned(), |v| format!("\"v{v}\""));
    for o in &all {
        let cur = current[o.key];
        let (f, arg, done, outcome) = match o.f {
            0..=4 => ("read", "null".to_owned(), show(cur), "ok"),
            5..=8 => {
                current[o.key] = Some(o.value);
                let v = show(Some(o.value));
                ("write", v.clone(), v, "ok")
            }
            _ => {
                let arg = format!("[{},\"v{}\"]", show(cur), o.value);
                current[o.key] = Some(o.value);
                ("cas", arg.clone(), arg, "ok")
            }
        };
        let (outcome, done) = if o.timed_out {
            ("info", "null".to_owned())
        } else {
            (outcome, done)
        };
        let key = o.key;
        events.push((
            o.invoke,
            format!(
                r#""process":{},"type":"invoke","f":"{f}","key":"k{key}","value":{arg}"#,
                o.process
            ),
        ));
        events.push((
            o.complete,
            format!(
                r#""process":{},"type":"{outcome}","f":"{f}","key":"k{key}","value":{done}"#,
                o.process
            ),
        ));
    }
    events.sort_by_key(|e| e.0);
    let path = dir.join("history.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("create history"));
    for (i, (t, rest)) in events.iter().enumerate() {
        writeln!(w, r#"{{"index":{i},"time":{t},{rest}}}"#).expect("write history");
    }
    w.flush().expect("write history");
    path
}

fn write_results(dir: &Path, h: &checker::History, result: &checker::CheckResult) {
    let n = h.outcome_counts();
    let results = RunResults {
        verdict: result.verdict,
        test: "generated".into(),
        system: String::new(),
        seed: 11,
        profile: "generated".into(),
        nemesis: "generated".into(),
        started_at: Some("2026-11-23T00:00:00.000Z".into()),
        duration_s: SECONDS,
        operations: h.ops.len(),
        events: 2 * h.ops.len() as u64,
        ok: n.ok,
        fail: n.fail,
        cas_miss: n.cas_miss,
        info: n.info,
        throughput_ops_per_s: h.ops.len() as f64 / SECONDS,
        latency: Default::default(),
        service_time: Default::default(),
        node_args: Vec::new(),
        interrupted: false,
        faults: FAULTS
            .iter()
            .map(|(label, s, e)| FaultWindow {
                fault: serde_json::json!({"kind": label.split(' ').next()}),
                label: (*label).to_owned(),
                start_ns: (*s * 1e9) as u64,
                end_ns: (*e * 1e9) as u64,
            })
            .collect(),
        messages: None,
        costs: None,
        checker: CheckerSummary::from(result),
    };
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string(&results).expect("serialise"),
    )
    .expect("write results.json");
    std::fs::write(dir.join("config.toml"), "seed = 11\n").expect("write config.toml");
}

fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
