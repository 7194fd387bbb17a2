//! Checker benchmark: time and peak memory of reading + checking histories, written to a
//! Markdown file (not asserted: figures depend on the machine).
//!
//! ```text
//! cargo run --release -p checker --example bench_checker -- [--data DIR] [--out FILE] [--quick]
//!     [--keep DIR]
//! ```
//!
//! Cases: every Porcupine sample under `--data` (default `../shared/data/porcupine`, skipped
//! when absent), and generated kvlab histories of a simulated linearizable store: 100,000
//! operations (100 keys, 50 clients, 1% info) and 1,000,000 operations (1,000 keys, 64
//! clients). `--quick` generates 10x smaller histories (for CI smoke runs). `--keep DIR` keeps
//! the generated histories there (`generated-100k.jsonl`, `generated-1m.jsonl`), so a whole
//! process (`bench check`) can be timed on them.
//!
//! Peak memory is the process's resident high-water mark (`VmHWM`), reset before each case
//! through `/proc/self/clear_refs`, so it covers the input text, the history and the search.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use checker::{CheckOptions, ReadOptions, Verdict};
use rand::prelude::*;
use rand::rngs::StdRng;

struct Row {
    case: String,
    ops: usize,
    verdict: Verdict,
    read_ms: f64,
    check_ms: f64,
    peak_mib: f64,
}

fn main() {
    let mut data = PathBuf::from("../shared/data/porcupine");
    let mut out = PathBuf::from("benchmarks/checker.md");
    let mut quick = false;
    let mut keep: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = args.next().expect("--data DIR").into(),
            "--out" => out = args.next().expect("--out FILE").into(),
            "--quick" => quick = true,
            "--keep" => keep = Some(args.next().expect("--keep DIR").into()),
            other => panic!("unknown argument {other}"),
        }
    }
    let mut rows = Vec::new();
    if data.is_dir() {
        for dir in ["kv", "jepsen"] {
            let mut files: Vec<PathBuf> = std::fs::read_dir(data.join(dir))
                .expect("sample folder")
                .map(|e| e.expect("dir entry").path())
                .collect();
            files.sort();
            for f in files {
                let name = format!("{dir}/{}", f.file_name().unwrap().to_string_lossy());
                // Best of 5: these take milliseconds, so one run is mostly noise.
                let best = (0..5)
                    .map(|_| measure(&name, &f))
                    .min_by(|a, b| (a.read_ms + a.check_ms).total_cmp(&(b.read_ms + b.check_ms)))
                    .expect("five runs");
                rows.push(best);
            }
        }
    } else {
        eprintln!(
            "{} not found: skipping the Porcupine samples",
            data.display()
        );
    }
    let scale = if quick { 10 } else { 1 };
    let tmp = std::env::temp_dir().join(format!("kvlab-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    for (name, file, ops, keys, clients, info) in [
        (
            "generated 100k ops, 100 keys, 50 clients, 1% info",
            "generated-100k.jsonl",
            100_000,
            100,
            50,
            0.01,
        ),
        (
            "generated 1M ops, 1000 keys, 64 clients",
            "generated-1m.jsonl",
            1_000_000,
            1000,
            64,
            0.0,
        ),
    ] {
        let path = match &keep {
            Some(dir) => {
                std::fs::create_dir_all(dir).expect("--keep folder");
                dir.join(file)
            }
            None => tmp.join(file),
        };
        generate(&path, ops / scale, keys, clients, info, 7);
        rows.push(measure(name, &path));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let table = render(&rows, quick);
    print!("{table}");
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("output folder");
    }
    std::fs::write(&out, table).expect("write the figures");
    eprintln!("figures written to {}", out.display());
}

fn measure(case: &str, path: &Path) -> Row {
    reset_peak();
    let started = Instant::now();
    let (history, _) = checker::read_file(path, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let read_ms = started.elapsed().as_secs_f64() * 1e3;
    let result = checker::check(&history, &CheckOptions::default());
    let check_ms = started.elapsed().as_secs_f64() * 1e3 - read_ms;
    Row {
        case: case.to_owned(),
        ops: history.ops.len(),
        verdict: result.verdict,
        read_ms,
        check_ms,
        peak_mib: peak_kib() as f64 / 1024.0,
    }
}

fn reset_peak() {
    // "5" resets the peak resident set size (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn render(rows: &[Row], quick: bool) -> String {
    let mut s = String::new();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let _ = writeln!(
        s,
        "# Checker benchmark\n\nRead + check per history, {cores} cores, `bench_checker`{}. \
         Times in ms; peak is the process's resident high-water mark for the case.\n",
        if quick {
            " --quick (10x smaller generated histories)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "| history | ops | verdict | read ms | read µs/op | check ms | total ms | peak MiB |"
    );
    let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {:.2} | {:.1} | {:.1} | {:.0} |",
            r.case,
            r.ops,
            r.verdict.name(),
            r.read_ms,
            r.read_ms * 1e3 / r.ops.max(1) as f64,
            r.check_ms,
            r.read_ms + r.check_ms,
            r.peak_mib
        );
    }
    let samples: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.case.starts_with("generated"))
        .collect();
    if let Some(worst) = samples
        .iter()
        .max_by(|a, b| (a.read_ms + a.check_ms).total_cmp(&(b.read_ms + b.check_ms)))
    {
        let etcd: f64 = samples
            .iter()
            .filter(|r| r.case.starts_with("jepsen/"))
            .map(|r| r.read_ms + r.check_ms)
            .sum();
        let _ = writeln!(
            s,
            "\nSlowest Porcupine sample: {} at {:.1} ms. All {} etcd logs together: {:.1} ms.",
            worst.case,
            worst.read_ms + worst.check_ms,
            samples
                .iter()
                .filter(|r| r.case.starts_with("jepsen/"))
                .count(),
            etcd
        );
    }
    s
}

/// Writes a kvlab JSONL history of a simulated linearizable store: every operation takes effect
/// at a random instant inside its interval, so the history is valid. Reads, writes of unique
/// values and CASes (half of them expecting the current value) on `keys` keys; a fraction
/// `info` of operations time out (their effect applied or not, at random) and the client
/// continues under a new process number.
fn generate(path: &Path, ops: usize, keys: usize, clients: usize, info: f64, seed: u64) {
    struct Op {
        process: usize,
        key: usize,
        f: u8,
        invoke: u64,
        complete: u64,
        point: u64,
        write: u64,
        expect_current: bool,
        timed_out: bool,
        applied: bool,
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut all = Vec::with_capacity(ops);
    let mut next_value = 1u64;
    for client in 0..clients {
        let mut t = rng.random_range(0..1_000_000u64);
        let mut process = client;
        for _ in 0..ops / clients {
            let invoke = t + rng.random_range(10_000..200_000);
            let complete = invoke + rng.random_range(100_000..2_000_000);
            let timed_out = rng.random_bool(info);
            all.push(Op {
                process,
                key: rng.random_range(0..keys),
                f: rng.random_range(0..10),
                invoke,
                complete,
                point: rng.random_range(invoke..complete),
                write: next_value,
                expect_current: rng.random_bool(0.5),
                timed_out,
                applied: rng.random_bool(0.5),
            });
            next_value += 1;
            t = complete;
            if timed_out {
                process += clients;
            }
        }
    }
    // Apply effects in linearisation order.
    all.sort_by_key(|o| o.point);
    let mut value: Vec<Option<u64>> = vec![None; keys];
    let mut lines: Vec<(u64, String)> = Vec::with_capacity(2 * all.len());
    for o in &all {
        let cur = value[o.key];
        let k = format!("k{}", o.key);
        let applies = !o.timed_out || o.applied;
        let show = |v: Option<u64>| v.map_or("null".to_owned(), |v| format!("\"v{v}\""));
        let (f, arg, ok_value, failed) = match o.f {
            0..=4 => ("read", "null".to_owned(), show(cur), false),
            5..=7 => {
                if applies {
                    value[o.key] = Some(o.write);
                }
                ("write", show(Some(o.write)), show(Some(o.write)), false)
            }
            _ => {
                let expected = if o.expect_current {
                    cur.unwrap_or(0)
                } else {
                    o.write + 1
                };
                let holds = cur == Some(expected);
                if holds && applies {
                    value[o.key] = Some(o.write);
                }
                let arg = format!("[\"v{expected}\",\"v{}\"]", o.write);
                ("cas", arg.clone(), arg, !holds)
            }
        };
        lines.push((
            o.invoke,
            format!(
                "\"process\":{},\"type\":\"invoke\",\"f\":\"{f}\",\"key\":\"{k}\",\"value\":{arg}}}",
                o.process
            ),
        ));
        let completion = if o.timed_out {
            format!(
                "\"type\":\"info\",\"f\":\"{f}\",\"key\":\"{k}\",\"value\":{arg},\"error\":\"timeout\""
            )
        } else if failed {
            format!(
                "\"type\":\"fail\",\"f\":\"{f}\",\"key\":\"{k}\",\"value\":{arg},\"error\":\"precondition\""
            )
        } else {
            format!("\"type\":\"ok\",\"f\":\"{f}\",\"key\":\"{k}\",\"value\":{ok_value}")
        };
        lines.push((
            o.complete,
            format!("\"process\":{},{completion}}}", o.process),
        ));
    }
    lines.sort_by_key(|l| l.0);
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("history file"));
    for (i, (time, rest)) in lines.iter().enumerate() {
        writeln!(w, "{{\"index\":{i},\"time\":{time},{rest}").expect("write history");
    }
    w.flush().expect("write history");
}
