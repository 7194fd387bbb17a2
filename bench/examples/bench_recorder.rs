//! Generator and recorder benchmark: how many operations per second `bench`'s clients sustain
//! against a fast kvnode cluster with the history recorded, and the same clients with recording
//! off; plus the recorder alone. Writes a Markdown table (not asserted: machine-dependent).
//!
//! ```text
//! cargo build --release --bins
//! cargo run --release -p bench --example bench_recorder -- [--seconds 10] [--out FILE]
//! ```

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bench::profile::Profile;
use bench::recorder::{Event, Process, Recorder};
use bench::run::measure_workload;
use bench::system::kvnode::{Cluster, ClusterSpec, find_kvnode};
use kvnode::config::Timing;

fn main() -> anyhow::Result<()> {
    let mut seconds = 10u64;
    let mut out = PathBuf::from("benchmarks/bench.md");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N")
            }
            "--out" => out = args.next().expect("--out FILE").into(),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let kvnode = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .expect("target/<profile>/examples")
        .join("kvnode");
    let node = find_kvnode(Some(&kvnode))?;
    let dir = tempfile::tempdir()?;
    let length = Duration::from_secs(seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut table = String::new();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    writeln!(
        table,
        "# Generator and recorder benchmark\n\n3 kvnode processes and `bench`'s clients on one {cores}-core \
         machine, closed loop, no faults; each figure is the mean of two {seconds} s runs taken in the order off, on, on, off. `recording on` streams every invocation and \
         completion to history.jsonl; `off` runs the same clients with a recorder that writes nothing.\n"
    )?;
    writeln!(
        table,
        "| profile | clients | recording | ops/s | events/s | overhead |"
    )?;
    writeln!(table, "|---|---:|---|---:|---:|---:|")?;
    runtime.block_on(async {
        let spec = ClusterSpec {
            protocol: kvnode::config::Protocol::Paxos,
            nodes: 3,
            partitions: 8,
            replication: 3,
            timing: Timing::default(),
            kvnode: node,
            node_args: Vec::new(),
            ports: bench::system::loopback_ports(),
        };
        let cluster = Cluster::start(spec, dir.path()).await?;
        for name in ["ycsb-a", "ycsb-c"] {
            let mut profile = Profile::builtin(name).expect("built in");
            profile.concurrency = 64;
            // ABBA order (off, on, on, off) cancels warm-up and drift; each figure is the mean.
            let path = dir.path().join(format!("{name}.jsonl"));
            let (mut off, mut on, mut events) = (0.0, 0.0, 0.0);
            for recording in [false, true, true, false] {
                let t = measure_workload(
                    &cluster,
                    profile.clone(),
                    length,
                    recording.then_some(path.as_path()),
                )
                .await?;
                let rate = t.ops as f64 / t.seconds / 2.0;
                if recording {
                    on += rate;
                    events += t.events as f64 / t.seconds / 2.0;
                } else {
                    off += rate;
                }
            }
            let (r_off, r_on) = (off, on);
            writeln!(table, "| {name} | 64 | off | {r_off:.0} | - | - |")?;
            writeln!(
                table,
                "| {name} | 64 | on | {r_on:.0} | {events:.0} | {:+.1}% |",
                (r_off - r_on) / r_off * 100.0
            )?;
            eprintln!("{name}: off {r_off:.0} ops/s, on {r_on:.0} ops/s");
        }
        anyhow::Ok(())
    })?;
    // The recorder alone: 4 threads recording as fast as they can.
    let path = dir.path().join("alone.jsonl");
    let start = Instant::now();
    let recorder = Recorder::create(&path, start)?;
    let per_thread = 500_000;
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let r = &recorder;
            s.spawn(move || {
                for i in 0..per_thread {
                    r.record(&Event {
                        process: Process::Client(t),
                        kind: if i % 2 == 0 { "invoke" } else { "ok" },
                        f: "write",
                        key: Some("k17"),
                        value: serde_json::json!(format!("w{t}-{i}")),
                        error: None,
                    });
                }
            });
        }
    });
    let events = recorder.finish()?;
    let secs = start.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path)?.len();
    writeln!(
        table,
        "\nRecorder alone (4 threads): {:.0} events/s, {:.0} MB/s of JSON Lines ({events} events).",
        events as f64 / secs,
        bytes as f64 / secs / 1e6
    )?;
    print!("{table}");
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d)?;
    }
    writeln!(
        table,
        "\nThe Maelstrom router's figures (messages per second with recording on, time per hop) \
         are in [router.md](router.md) (`cargo run --release -p bench --example bench_router`)."
    )?;
    std::fs::write(&out, table)?;
    eprintln!("figures written to {}", out.display());
    Ok(())
}
