//! Store benchmark: a 3-node cluster of real `kvnode` processes on 127.0.0.1 per replication
//! protocol (Paxos, then Zab), closed-loop clients at several concurrencies, 50% reads and 50%
//! durable writes over 1,000 keys. Writes figures (throughput, latency quantiles, server CPU per
//! operation) to a Markdown file, both protocols in one table.
//!
//! ```text
//! cargo build --release -p kvnode --bins
//! cargo run --release -p kvnode --example bench_kvnode -- [--seconds 10] [--protocol paxos|zab] [--out FILE]
//! ```

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kvnode::client::Client;
use kvnode::config::{ClusterConfig, Protocol};
use rand::prelude::*;
use rand::rngs::StdRng;

const KEYS: u64 = 1000;

struct Row {
    protocol: Protocol,
    clients: usize,
    ops: u64,
    errors: u64,
    seconds: f64,
    all: Histogram<u64>,
    puts: Histogram<u64>,
    gets: Histogram<u64>,
    cpu_seconds: f64,
}

fn main() {
    let mut seconds = 10u64;
    let mut out = PathBuf::from("benchmarks/kvnode.md");
    let mut protocols = vec![Protocol::Paxos, Protocol::Zab];
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
            "--protocol" => {
                protocols = vec![
                    args.next()
                        .and_then(|s| s.parse().ok())
                        .expect("--protocol paxos|zab"),
                ]
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let kvnode = std::env::current_exe()
        .expect("own path")
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/examples")
        .join("kvnode");
    assert!(
        kvnode.is_file(),
        "{} not found: run `cargo build --release -p kvnode --bins` first",
        kvnode.display()
    );
    let mut rows = Vec::new();
    for protocol in protocols {
        rows.extend(bench_protocol(&kvnode, protocol, seconds));
    }
    let table = render(&rows, seconds);
    print!("{table}");
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(&out, table).unwrap();
    eprintln!("figures written to {}", out.display());
}

/// One cluster running `protocol`, measured at each concurrency in turn.
fn bench_protocol(kvnode: &Path, protocol: Protocol, seconds: u64) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = || {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let mut text = format!("partitions = 8\nreplication = 3\nprotocol = \"{protocol}\"\n");
    for i in 1..=3 {
        text += &format!(
            "[[node]]\nid = \"n{i}\"\nclient = \"127.0.0.1:{}\"\npeer = \"127.0.0.1:{}\"\n",
            port(),
            port()
        );
    }
    let config_path = dir.path().join("cluster.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config = Arc::new(ClusterConfig::parse(&text).unwrap());
    let mut nodes: Vec<Child> = (1..=3)
        .map(|i| {
            Command::new(kvnode)
                .arg("--config")
                .arg(&config_path)
                .args(["--id", &format!("n{i}"), "--data-dir"])
                .arg(dir.path().join(format!("n{i}")))
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .expect("start kvnode")
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Ready when every partition answers.
    runtime.block_on(async {
        let c = Client::new(&config, 0, u64::MAX, Duration::from_secs(20));
        for k in 0..64 {
            c.put(&format!("k{k}"), "warm")
                .await
                .expect("cluster ready");
        }
    });
    let mut rows = Vec::new();
    for clients in [1, 16, 64] {
        let pids: Vec<u32> = nodes.iter().map(Child::id).collect();
        let cpu_before = cpu_seconds(&pids);
        let row = runtime.block_on(run(config.clone(), clients, Duration::from_secs(seconds)));
        let cpu = cpu_seconds(&pids) - cpu_before;
        rows.push(Row {
            cpu_seconds: cpu,
            protocol,
            ..row
        });
        eprintln!(
            "{protocol}, {} clients: {:.0} ops/s",
            clients,
            rows.last().unwrap().ops as f64 / rows.last().unwrap().seconds
        );
    }
    for n in &mut nodes {
        let _ = n.kill();
        let _ = n.wait();
    }
    rows
}

async fn run(config: Arc<ClusterConfig>, clients: usize, length: Duration) -> Row {
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|w| {
            let config = config.clone();
            tokio::spawn(async move {
                // Session ids are unique across rows: a reused id would restart below its old sequence.
                let client = Client::new(
                    &config,
                    w,
                    (clients as u64) << 32 | w as u64,
                    Duration::from_secs(5),
                );
                let mut rng = StdRng::seed_from_u64(w as u64);
                let mut puts = Histogram::<u64>::new(3).unwrap();
                let mut gets = Histogram::<u64>::new(3).unwrap();
                let (mut ops, mut errors, mut n) = (0u64, 0u64, 0u64);
                while start.elapsed() < length {
                    let key = format!("k{}", rng.random_range(0..KEYS));
                    let t = Instant::now();
                    let (result, h) = if rng.random_bool(0.5) {
                        (client.get(&key).await.map(drop), &mut gets)
                    } else {
                        n += 1;
                        (client.put(&key, &format!("v{w}-{n}")).await, &mut puts)
                    };
                    if let Err(e) = &result
                        && errors < 3
                    {
                        eprintln!("client {w}: {e}");
                    }
                    let ok = result.is_ok();
                    h.record(t.elapsed().as_micros() as u64).unwrap();
                    ops += u64::from(ok);
                    errors += u64::from(!ok);
                }
                (ops, errors, puts, gets)
            })
        })
        .collect();
    let mut row = Row {
        protocol: Protocol::Paxos,
        clients,
        ops: 0,
        errors: 0,
        seconds: 0.0,
        all: Histogram::new(3).unwrap(),
        puts: Histogram::new(3).unwrap(),
        gets: Histogram::new(3).unwrap(),
        cpu_seconds: 0.0,
    };
    for t in tasks {
        let (ops, errors, puts, gets) = t.await.unwrap();
        row.ops += ops;
        row.errors += errors;
        row.puts.add(&puts).unwrap();
        row.gets.add(&gets).unwrap();
        row.all.add(&puts).unwrap();
        row.all.add(&gets).unwrap();
    }
    row.seconds = start.elapsed().as_secs_f64();
    row
}

/// User + system CPU time of the processes, seconds.
fn cpu_seconds(pids: &[u32]) -> f64 {
    let tick = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    pids.iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the command name (which may contain spaces) start at ") ".
            let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            (ticks(11) + ticks(12)) / tick
        })
        .sum()
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn render(rows: &[Row], seconds: u64) -> String {
    let mut s = String::new();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let _ = writeln!(
        s,
        "# kvnode benchmark\n\n3 kvnode processes and the client on one {cores}-core machine, 127.0.0.1, \
         8 partitions x 3 replicas, durable writes (fsync before acknowledging), closed loop, 50% GET / 50% PUT \
         over {KEYS} keys, {seconds} s per row. Latency in ms; CPU is the three servers' user+system time.\n"
    );
    let _ = writeln!(
        s,
        "| protocol | clients | ops/s | errors | p50 | p99 | PUT p50 | PUT p99 | GET p50 | GET p99 | server CPU (cores) | CPU us/op |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
            r.protocol,
            r.clients,
            r.ops as f64 / r.seconds,
            r.errors,
            ms(&r.all, 0.5),
            ms(&r.all, 0.99),
            ms(&r.puts, 0.5),
            ms(&r.puts, 0.99),
            ms(&r.gets, 0.5),
            ms(&r.gets, 0.99),
            r.cpu_seconds / r.seconds,
            r.cpu_seconds * 1e6 / r.ops.max(1) as f64,
        );
    }
    // Zab against Paxos at each concurrency both were measured at.
    let rate = |r: &Row| r.ops as f64 / r.seconds;
    let mut first = true;
    for z in rows.iter().filter(|r| r.protocol == Protocol::Zab) {
        let Some(p) = rows
            .iter()
            .find(|r| r.protocol == Protocol::Paxos && r.clients == z.clients)
        else {
            continue;
        };
        if first {
            let _ = writeln!(s, "\nZab against Paxos:\n");
            first = false;
        }
        let _ = writeln!(
            s,
            "- concurrency {}: throughput {:+.0}%, p99 {:.2} ms against {:.2} ms",
            z.clients,
            (rate(z) / rate(p) - 1.0) * 100.0,
            ms(&z.all, 0.99),
            ms(&p.all, 0.99),
        );
    }
    s
}
