//! The Maelstrom router's overhead: how many messages per second the bench's network sustains
//! with every message recorded to `messages.jsonl`, and how long one hop takes. Writes a
//! Markdown table (not asserted: machine-dependent).
//!
//! The nodes are this very example run as `--node`: a minimal lin-kv node in Rust in which
//! every node but `n1` forwards each request to `n1` and relays the answer. With one node an
//! operation is two messages (client → n1 → client); with two, every client talks to `n2`, so
//! an operation is four (client → n2 → n1 → n2 → client), two of them between nodes.
//!
//! ```text
//! cargo run --release -p bench --example bench_router -- [--seconds 5] [--out FILE]
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::system::maelstrom::{Cluster, MaelstromConfig};
use bench::system::{ClientSpec, Operation, Outcome, Session, System};
use serde_json::{Value, json};

fn main() -> anyhow::Result<()> {
    let mut seconds = 5u64;
    let mut out = PathBuf::from("benchmarks/router.md");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--node" => return node(),
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
    let me = std::env::current_exe()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut table = String::new();
    writeln!(
        table,
        "# Router benchmark\n\nThe bench as the network of Maelstrom nodes, on one {cores}-core \
         machine: `cargo run --release -p bench --example bench_router`. Nodes are a minimal \
         lin-kv node in Rust (the example itself): with one node an operation is 2 messages \
         (client, n1, client); with two, every client talks to n2, which forwards to n1, so an \
         operation is 4 messages (2 hops between nodes). Every message is recorded to \
         messages.jsonl. Closed loop, half writes and half reads, {seconds} s per row, no faults.\n"
    )?;
    writeln!(
        table,
        "| nodes | clients | ops/s | messages/s routed | service time p50 | per hop p50 |"
    )?;
    writeln!(table, "|---:|---:|---:|---:|---:|---:|")?;
    runtime.block_on(async {
        for (nodes, clients) in [(1, 1), (2, 1), (1, 16), (2, 16), (2, 64)] {
            let dir = tempfile::tempdir()?;
            let config = MaelstromConfig {
                bin: me.clone(),
                args: vec!["--node".into()],
            };
            let mut cluster = Cluster::start(&config, nodes, 1, 8, dir.path()).await?;
            let start = Instant::now();
            cluster.begin(start);
            let cluster = Arc::new(cluster);
            let deadline = start + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for worker in 0..clients {
                // Worker w talks to node w % nodes: with two nodes, every client on n2.
                let mut session = cluster.session(&ClientSpec {
                    worker: worker * nodes + nodes - 1,
                    workers: clients * nodes,
                    timeout: Duration::from_secs(5),
                    sticky: true,
                    lease_ttl: Duration::from_secs(2),
                });
                tasks.push(tokio::spawn(async move {
                    let mut ops = 0u64;
                    let mut times = Vec::new();
                    let key = format!("k{worker}");
                    while Instant::now() < deadline {
                        let op = if ops.is_multiple_of(2) {
                            Operation::Write {
                                key: key.clone(),
                                value: format!("w{worker}-{}", ops + 1),
                            }
                        } else {
                            Operation::Read { key: key.clone() }
                        };
                        let began = Instant::now();
                        let outcome = session.perform(&op).await;
                        assert!(matches!(outcome, Outcome::Ok(_)), "{outcome:?}");
                        times.push(began.elapsed());
                        ops += 1;
                    }
                    times
                }));
            }
            let mut times = Vec::new();
            for t in tasks {
                times.extend(t.await?);
            }
            let elapsed = start.elapsed().as_secs_f64();
            let mut cluster = Arc::into_inner(cluster).expect("sessions are done");
            cluster.shutdown().await;
            let stats = cluster
                .finish(dir.path())?
                .messages
                .expect("message counts");
            times.sort();
            let p50 = times[times.len() / 2];
            let hops = stats.total as f64 / times.len() as f64;
            let line = format!(
                "| {nodes} | {clients} | {:.0} | {:.0} | {:.1} µs | {:.1} µs |",
                times.len() as f64 / elapsed,
                stats.total as f64 / elapsed,
                p50.as_secs_f64() * 1e6,
                p50.as_secs_f64() * 1e6 / hops
            );
            eprintln!("{line}");
            writeln!(table, "{line}")?;
        }
        anyhow::Ok(())
    })?;
    writeln!(
        table,
        "\nper hop = service time p50 / messages per operation (2 or 4): an upper bound on what \
         the router adds to one message, as it includes the node's own parsing and the pipes. \
         With many clients a closed loop saturates the nodes and the figure is mostly queueing."
    )?;
    std::fs::write(&out, &table)?;
    println!("{table}");
    Ok(())
}

/// A minimal lin-kv node: `n1` holds the data; the others forward to it.
fn node() -> anyhow::Result<()> {
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut me = String::new();
    let mut data: HashMap<i64, Value> = HashMap::new();
    // Forwarded msg_id -> (client, client's msg_id).
    let mut pending: HashMap<u64, (String, Value)> = HashMap::new();
    let mut next = 0u64;
    for line in stdin.lines() {
        let msg: Value = serde_json::from_str(&line?)?;
        let (src, body) = (msg["src"].as_str().unwrap_or("").to_owned(), &msg["body"]);
        let kind = body["type"].as_str().unwrap_or("");
        next += 1;
        if kind == "init" {
            me = body["node_id"].as_str().unwrap_or("").to_owned();
        }
        let reply = |to: &str, mut b: Value, re: &Value| {
            b["msg_id"] = json!(next);
            b["in_reply_to"] = re.clone();
            json!({"src": me, "dest": to, "body": b})
        };
        let out = if kind == "init" {
            reply(&src, json!({"type": "init_ok"}), &body["msg_id"])
        } else if let Some(re) = body.get("in_reply_to").and_then(Value::as_u64) {
            let Some((client, id)) = pending.remove(&re) else {
                continue;
            };
            let mut b = body.clone();
            b.as_object_mut().expect("object").remove("msg_id");
            reply(&client, b, &id)
        } else if me != "n1" {
            pending.insert(next, (src, body["msg_id"].clone()));
            let mut b = body.clone();
            b["msg_id"] = json!(next);
            json!({"src": me, "dest": "n1", "body": b})
        } else {
            let key = body["key"].as_i64().unwrap_or(0);
            let b = match kind {
                "write" => {
                    data.insert(key, body["value"].clone());
                    json!({"type": "write_ok"})
                }
                "read" => match data.get(&key) {
                    Some(v) => json!({"type": "read_ok", "value": v}),
                    None => json!({"type": "error", "code": 20}),
                },
                _ => json!({"type": "error", "code": 10}),
            };
            reply(&src, b, &body["msg_id"])
        };
        serde_json::to_writer(&mut stdout, &out)?;
        stdout.write_all(b"\n")?;
        // After every message: a closed-loop client waits for each answer.
        stdout.flush()?;
    }
    Ok(())
}
