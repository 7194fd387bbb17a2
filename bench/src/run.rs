//! `bench run`: start a cluster, drive the workload while the nemesis injects faults, record the
//! history, heal, read every key one last time, check, write `results.json`, exit with the
//! verdict.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use checker::{CheckOptions, ReadOptions, Verdict};
use hdrhistogram::Histogram;
use kvnode::client::{Client, ClientError};
use kvnode::command::{Op, Reply};
use nemesis::fault::{Fault, Shape};
use nemesis::schedule::ScheduleSpec;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

use crate::cli::RunArgs;
use crate::cluster::{Cluster, ClusterSpec, find_kvnode};
use crate::profile::{KeyChooser, OpKind, Profile, duration_serde};
use crate::recorder::{Event, Process, Recorder};

/// Everything that determines a run; written to `config.toml` so `--config` repeats it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub test: String,
    pub seed: u64,
    #[serde(with = "duration_serde")]
    pub time_limit: Duration,
    pub nodes: usize,
    pub partitions: u32,
    pub replication: usize,
    pub node_args: Vec<String>,
    pub profile: Profile,
    pub nemesis: ScheduleSpec,
}

impl RunConfig {
    fn resolve(args: &RunArgs) -> anyhow::Result<RunConfig> {
        let mut cfg = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("read {}", path.display()))?;
                toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim()))?
            }
            None => RunConfig {
                test: String::new(),
                seed: SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007),
                time_limit: Duration::from_secs(60),
                nodes: 3,
                partitions: 8,
                replication: 3,
                node_args: Vec::new(),
                profile: Profile::builtin("register").expect("built in"),
                nemesis: ScheduleSpec::from_name_or_file("mix")?,
            },
        };
        if let Some(p) = &args.profile {
            cfg.profile = Profile::from_name_or_file(p)?;
        }
        if let Some(n) = &args.nemesis {
            cfg.nemesis = ScheduleSpec::from_name_or_file(n)?;
        }
        if let Some(t) = args.time_limit {
            cfg.time_limit = t;
        }
        if let Some(s) = args.seed {
            cfg.seed = s;
        }
        if let Some(n) = args.nodes {
            cfg.nodes = n;
            cfg.replication = cfg.replication.min(n);
        }
        if !args.node_arg.is_empty() {
            cfg.node_args.clone_from(&args.node_arg);
        }
        if let Some(t) = &args.test {
            cfg.test.clone_from(t);
        }
        if cfg.test.is_empty() {
            cfg.test = format!("{}-{}", cfg.profile.name, cfg.nemesis.name.clone());
        }
        cfg.profile
            .validate()
            .map_err(|e| anyhow::anyhow!("profile {}: {e}", cfg.profile.name))?;
        if cfg.nodes == 0 {
            bail!("--nodes must be at least 1");
        }
        Ok(cfg)
    }
}

/// Shared by the workers.
struct Ctx {
    cfg: RunConfig,
    keys: KeyChooser,
    recorder: Recorder,
    cluster_config: kvnode::config::ClusterConfig,
    start: Instant,
    deadline: Instant,
    stop: AtomicBool,
    ops_left: AtomicU64,
    ok: AtomicU64,
    fail: AtomicU64,
    info: AtomicU64,
    fault: std::sync::Mutex<String>,
}

#[derive(Default)]
struct Stats {
    latency: HashMap<&'static str, Histogram<u64>>,
}

impl Stats {
    fn record(&mut self, f: &'static str, micros: u64) {
        self.latency
            .entry(f)
            .or_insert_with(|| Histogram::new(3).expect("histogram"))
            .record(micros.max(1))
            .expect("in range");
    }

    fn merge(&mut self, other: Stats) {
        for (f, h) in other.latency {
            match self.latency.get_mut(f) {
                Some(mine) => mine.add(h).expect("same bounds"),
                None => {
                    self.latency.insert(f, h);
                }
            }
        }
    }
}

#[derive(Serialize)]
struct FaultWindow {
    fault: serde_json::Value,
    start_ns: u64,
    end_ns: u64,
}

/// Runs `bench run`; returns the process exit code.
pub fn main(args: &RunArgs) -> u8 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the async runtime");
    match runtime.block_on(run(args)) {
        Ok(verdict) => verdict.exit_code() as u8,
        Err(e) => {
            eprintln!("bench run: {e:#}");
            crate::cli::EXIT_USAGE
        }
    }
}

fn timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
}

async fn run(args: &RunArgs) -> anyhow::Result<Verdict> {
    let cfg = RunConfig::resolve(args)?;
    let kvnode = find_kvnode(args.kvnode.as_deref())?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs"));
    let dir = out.join(&cfg.test).join(timestamp());
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let latest = out.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(dir.strip_prefix(&out).unwrap_or(&dir), &latest);
    std::fs::write(dir.join("config.toml"), toml::to_string(&cfg)?).context("write config.toml")?;
    eprintln!(
        "bench: {} for {}, profile {}, nemesis {}, seed {} -> {}",
        cfg.test,
        humantime::format_duration(cfg.time_limit),
        cfg.profile.name,
        cfg.nemesis.name.clone(),
        cfg.seed,
        dir.display()
    );

    let spec = ClusterSpec {
        nodes: cfg.nodes,
        partitions: cfg.partitions,
        replication: cfg.replication,
        kvnode,
        node_args: cfg.node_args.clone(),
    };
    let cluster = Arc::new(Mutex::new(Cluster::start(spec, &dir).await?));
    let names = cluster.lock().await.names();
    let cluster_config = cluster.lock().await.config.clone();
    let start = Instant::now();
    let ctx = Arc::new(Ctx {
        keys: KeyChooser::new(&cfg.profile),
        recorder: Recorder::create(&dir.join("history.jsonl"), start)
            .context("create history.jsonl")?,
        cluster_config,
        start,
        deadline: start + cfg.time_limit,
        stop: AtomicBool::new(false),
        ops_left: AtomicU64::new(cfg.profile.op_limit.unwrap_or(u64::MAX)),
        ok: AtomicU64::new(0),
        fail: AtomicU64::new(0),
        info: AtomicU64::new(0),
        fault: std::sync::Mutex::new("none".into()),
        cfg,
    });

    let interrupted = Arc::new(AtomicBool::new(false));
    let signals = {
        let (ctx, interrupted) = (ctx.clone(), interrupted.clone());
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            interrupted.store(true, Ordering::SeqCst);
            ctx.stop.store(true, Ordering::SeqCst);
        })
    };

    let workers: Vec<_> = (0..ctx.cfg.profile.concurrency)
        .map(|w| tokio::spawn(worker(w, ctx.clone())))
        .collect();
    let plan = ctx
        .cfg
        .nemesis
        .plan(&names, ctx.cfg.seed, ctx.cfg.time_limit);
    let nemesis = tokio::spawn(drive_nemesis(plan, ctx.clone(), cluster.clone()));
    let progress = tokio::spawn(progress(ctx.clone()));

    let mut stats = Stats::default();
    for w in workers {
        stats.merge(w.await.context("a client task failed")?);
    }
    ctx.stop.store(true, Ordering::SeqCst);
    let windows = nemesis.await.context("the nemesis task failed")??;
    progress.abort();
    eprintln!();
    if interrupted.load(Ordering::SeqCst) {
        cluster.lock().await.shutdown();
        let _ = ctx.recorder.finish();
        bail!(
            "interrupted; the cluster is stopped and the partial history is in {}",
            dir.display()
        );
    }

    // Heal, let the cluster recover, then read every key once more (as Jepsen does).
    {
        let mut c = cluster.lock().await;
        c.heal()?;
        c.wait_ready(Duration::from_secs(30)).await?;
    }
    final_reads(&ctx).await;
    cluster.lock().await.shutdown();
    signals.abort();
    let events = ctx.recorder.finish().context("write history.jsonl")?;
    let elapsed = start.elapsed();

    let history_path = dir.join("history.jsonl");
    let read_started = Instant::now();
    let (history, _) = checker::read_file(&history_path, &ReadOptions::default())
        .with_context(|| format!("read back {}", history_path.display()))?;
    let read_ms = read_started.elapsed().as_secs_f64() * 1e3;
    let result = checker::check(&history, &CheckOptions::default());
    let results = results_json(&ctx, &history, &result, &stats, &windows, elapsed, events);
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )
    .context("write results.json")?;
    let summary = crate::check::render(
        &history_path.display().to_string(),
        &history,
        &result,
        read_ms,
    );
    print!("{summary}");
    print_latency(&stats);
    println!("run directory: {}", dir.display());
    Ok(result.verdict)
}

/// What a workload achieved (for the recorder benchmark).
pub struct Throughput {
    pub ops: u64,
    pub seconds: f64,
    pub events: u64,
}

/// Drives `profile` against a running cluster for `length`, recording into `history` (`None`:
/// recording off), with no faults. The same client code as `bench run`.
pub async fn measure_workload(
    cluster_config: &kvnode::config::ClusterConfig,
    profile: Profile,
    length: Duration,
    history: Option<&std::path::Path>,
) -> anyhow::Result<Throughput> {
    let start = Instant::now();
    let recorder = match history {
        Some(p) => Recorder::create(p, start)?,
        None => Recorder::null(start),
    };
    let ctx = Arc::new(Ctx {
        keys: KeyChooser::new(&profile),
        recorder,
        cluster_config: cluster_config.clone(),
        start,
        deadline: start + length,
        stop: AtomicBool::new(false),
        ops_left: AtomicU64::new(profile.op_limit.unwrap_or(u64::MAX)),
        ok: AtomicU64::new(0),
        fail: AtomicU64::new(0),
        info: AtomicU64::new(0),
        fault: std::sync::Mutex::new("none".into()),
        cfg: RunConfig {
            test: "measure".into(),
            seed: 1,
            time_limit: length,
            nodes: cluster_config.nodes.len(),
            partitions: cluster_config.partitions,
            replication: cluster_config.replication,
            node_args: Vec::new(),
            profile,
            nemesis: ScheduleSpec::from_name_or_file("none")?,
        },
    });
    let workers: Vec<_> = (0..ctx.cfg.profile.concurrency)
        .map(|w| tokio::spawn(worker(w, ctx.clone())))
        .collect();
    for w in workers {
        w.await?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let events = ctx.recorder.finish()?;
    let ops = ctx.ok.load(Ordering::Relaxed)
        + ctx.fail.load(Ordering::Relaxed)
        + ctx.info.load(Ordering::Relaxed);
    Ok(Throughput {
        ops,
        seconds,
        events,
    })
}

fn op_for(
    kind: OpKind,
    key: &str,
    value: &str,
    expected: Option<&String>,
) -> (Op, &'static str, serde_json::Value) {
    match kind {
        OpKind::Read => (Op::Get { key: key.into() }, "read", serde_json::Value::Null),
        OpKind::Write => (
            Op::Put {
                key: key.into(),
                value: value.into(),
            },
            "write",
            json!(value),
        ),
        OpKind::Cas => (
            Op::Cas {
                key: key.into(),
                expected: expected.cloned(),
                new: value.into(),
            },
            "cas",
            json!([expected, value]),
        ),
        OpKind::Delete => (
            Op::Delete { key: key.into() },
            "delete",
            serde_json::Value::Null,
        ),
    }
}

async fn worker(w: usize, ctx: Arc<Ctx>) -> Stats {
    let profile = &ctx.cfg.profile;
    let nodes = ctx.cluster_config.nodes.len();
    let mut client = Client::new(
        &ctx.cluster_config,
        w % nodes,
        w as u64 + 1,
        profile.timeout,
    );
    if profile.sticky {
        client = client.sticky();
    }
    let mut rng = StdRng::seed_from_u64(ctx.cfg.seed ^ ((w as u64 + 1) << 32));
    let mut stats = Stats::default();
    let mut process = w as u64;
    let mut last: HashMap<String, String> = HashMap::new();
    let interval = profile
        .rate
        .map(|r| Duration::from_secs_f64(profile.concurrency as f64 / r));
    let mut n = 0u64;
    loop {
        let intended = interval
            .map(|i| ctx.start + i.mul_f64(n as f64 + (w as f64 / profile.concurrency as f64)));
        if let Some(at) = intended {
            if at >= ctx.deadline {
                break;
            }
            tokio::time::sleep_until(at.into()).await;
        }
        if ctx.stop.load(Ordering::Relaxed) || Instant::now() >= ctx.deadline {
            break;
        }
        if ctx
            .ops_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| x.checked_sub(1))
            .is_err()
        {
            break;
        }
        n += 1;
        let began = intended.unwrap_or_else(Instant::now);
        let kind = profile.pick_op(&mut rng);
        let key = format!("k{}", ctx.keys.pick(&mut rng));
        let mut value = format!("w{w}-{n}");
        while value.len() < profile.value_size {
            value.push('.');
        }
        let (op, f, arg) = op_for(kind, &key, &value, last.get(&key));
        ctx.recorder.record(&Event {
            process: Process::Client(process),
            kind: "invoke",
            f,
            key: Some(&key),
            value: arg.clone(),
            error: None,
        });
        let result = client.execute(op).await;
        let (kind_name, value, error) = match &result {
            Ok(Reply::Value(v)) => {
                if let Some(v) = v {
                    last.insert(key.clone(), v.clone());
                }
                ("ok", json!(v), None)
            }
            Ok(Reply::Done | Reply::Swapped) => {
                if matches!(kind, OpKind::Write | OpKind::Cas) {
                    last.insert(key.clone(), value.clone());
                } else {
                    last.remove(&key);
                }
                ("ok", arg, None)
            }
            Ok(Reply::Mismatch { current }) => {
                match current {
                    Some(c) => last.insert(key.clone(), c.clone()),
                    None => last.remove(&key),
                };
                ("fail", arg, Some("precondition".to_owned()))
            }
            Ok(Reply::Stale) => ("fail", arg, Some("stale session".to_owned())),
            Err(ClientError::Failed(why)) => ("fail", arg, Some(why.clone())),
            Err(ClientError::Unknown(why)) => ("info", arg, Some(why.clone())),
        };
        ctx.recorder.record(&Event {
            process: Process::Client(process),
            kind: kind_name,
            f,
            key: Some(&key),
            value,
            error: error.as_deref(),
        });
        stats.record(f, began.elapsed().as_micros() as u64);
        match kind_name {
            "ok" => &ctx.ok,
            "fail" => &ctx.fail,
            _ => {
                // Jepsen's rule: a process whose operation's fate is unknown never invokes again.
                process += profile.concurrency as u64;
                &ctx.info
            }
        }
        .fetch_add(1, Ordering::Relaxed);
    }
    stats
}

async fn drive_nemesis(
    plan: Vec<nemesis::schedule::Step>,
    ctx: Arc<Ctx>,
    cluster: Arc<Mutex<Cluster>>,
) -> anyhow::Result<Vec<FaultWindow>> {
    let mut windows = Vec::new();
    for step in plan {
        if !sleep_until(&ctx, ctx.start + step.at).await {
            break;
        }
        let fault = resolve(&ctx, &cluster, step.fault).await;
        let started = apply(&ctx, &cluster, &fault, true).await?;
        *ctx.fault.lock().expect("fault lock") = describe(&fault);
        let ended = sleep_until(&ctx, ctx.start + step.at + step.duration).await;
        let end_ns = apply(&ctx, &cluster, &fault, false).await?;
        *ctx.fault.lock().expect("fault lock") = "none".into();
        windows.push(FaultWindow {
            fault: serde_json::to_value(&fault)?,
            start_ns: started,
            end_ns,
        });
        if !ended {
            break;
        }
    }
    Ok(windows)
}

/// Sleeps until `at`, the deadline or a stop; true if `at` was reached.
async fn sleep_until(ctx: &Ctx, at: Instant) -> bool {
    let at = at.min(ctx.deadline);
    while Instant::now() < at {
        if ctx.stop.load(Ordering::Relaxed) {
            return false;
        }
        let step = (at - Instant::now()).min(Duration::from_millis(50));
        tokio::time::sleep(step).await;
    }
    !ctx.stop.load(Ordering::Relaxed) && at < ctx.deadline
}

/// Fills in what only the running cluster can tell: who leads now.
async fn resolve(ctx: &Ctx, cluster: &Mutex<Cluster>, fault: Fault) -> Fault {
    let Fault::Partition {
        shape: Shape::IsolateLeader,
        ..
    } = fault
    else {
        return fault;
    };
    let names = cluster.lock().await.names();
    // The leader of the partition holding key k0, as a fresh client learns it.
    let probe = Client::new(&ctx.cluster_config, 0, u64::MAX - 3, Duration::from_secs(2));
    let _ = probe.get("k0").await;
    let partition = ctx.cluster_config.partition_of("k0");
    let leader = probe
        .leader_of(partition)
        .map_or_else(|| names[0].clone(), str::to_owned);
    Fault::Partition {
        shape: Shape::IsolateLeader,
        grudge: nemesis::fault::isolate(&leader, &names),
    }
}

fn describe(fault: &Fault) -> String {
    serde_json::to_string(fault).unwrap_or_default()
}

/// Starts (`begin`) or ends a fault and records it; returns the event's time.
async fn apply(
    ctx: &Ctx,
    cluster: &Mutex<Cluster>,
    fault: &Fault,
    begin: bool,
) -> anyhow::Result<u64> {
    let mut c = cluster.lock().await;
    match fault {
        Fault::Kill { nodes } => {
            for n in nodes {
                if begin {
                    c.kill(n);
                } else {
                    c.restart(n)?;
                }
            }
        }
        Fault::Pause { nodes } => {
            for n in nodes {
                if begin {
                    c.pause(n);
                } else {
                    c.resume(n);
                }
            }
        }
        Fault::Partition { .. } => {
            if begin {
                c.links.partition(&fault.cut_links())?;
            } else {
                c.links.heal_all();
            }
        }
    }
    let f = if begin {
        fault.start_name()
    } else {
        fault.end_name()
    };
    Ok(ctx.recorder.record(&Event {
        process: Process::Nemesis("nemesis"),
        kind: "info",
        f,
        key: None,
        value: serde_json::to_value(fault)?,
        error: None,
    }))
}

async fn final_reads(ctx: &Ctx) {
    let client = Client::new(&ctx.cluster_config, 0, u64::MAX - 2, Duration::from_secs(5));
    let base = 1_000_000u64;
    for k in 0..ctx.cfg.profile.keys {
        let key = format!("k{k}");
        let process = Process::Client(base + k);
        ctx.recorder.record(&Event {
            process,
            kind: "invoke",
            f: "read",
            key: Some(&key),
            value: serde_json::Value::Null,
            error: None,
        });
        let (kind, value, error) = match client.get(&key).await {
            Ok(v) => ("ok", json!(v), None),
            Err(ClientError::Failed(why)) => ("fail", serde_json::Value::Null, Some(why)),
            Err(ClientError::Unknown(why)) => ("info", serde_json::Value::Null, Some(why)),
        };
        ctx.recorder.record(&Event {
            process: Process::Client(base + k),
            kind,
            f: "read",
            key: Some(&key),
            value,
            error: error.as_deref(),
        });
    }
}

/// The live progress line: rewritten in place on a terminal, one line every 5 s otherwise.
async fn progress(ctx: Arc<Ctx>) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let mut seconds = 0u64;
    let total = ctx.cfg.time_limit.as_secs_f64();
    let mut last_ops = 0u64;
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.tick().await;
    loop {
        interval.tick().await;
        let (ok, fail, info) = (
            ctx.ok.load(Ordering::Relaxed),
            ctx.fail.load(Ordering::Relaxed),
            ctx.info.load(Ordering::Relaxed),
        );
        let ops = ok + fail + info;
        let fault = ctx.fault.lock().expect("fault lock").clone();
        seconds += 1;
        let line = format!(
            "[{:>4.0}s / {:.0}s] {:>6} ops/s  ok {ok}  fail {fail}  info {info}  fault: {:<60.60}",
            ctx.start.elapsed().as_secs_f64().min(total),
            total,
            ops - last_ops,
            fault
        );
        if tty {
            eprint!("\r{line}");
        } else if seconds.is_multiple_of(5) {
            eprintln!("{}", line.trim_end());
        }
        last_ops = ops;
    }
}

fn quantiles(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({"count": h.len(), "p50_ms": ms(0.5), "p95_ms": ms(0.95), "p99_ms": ms(0.99), "max_ms": h.max() as f64 / 1000.0})
}

fn results_json(
    ctx: &Ctx,
    history: &checker::History,
    result: &checker::CheckResult,
    stats: &Stats,
    windows: &[FaultWindow],
    elapsed: Duration,
    events: u64,
) -> serde_json::Value {
    let (ok, fail, info) = history.outcome_counts();
    let run_secs = ctx.cfg.time_limit.as_secs_f64().min(elapsed.as_secs_f64());
    let latency: serde_json::Map<String, serde_json::Value> = stats
        .latency
        .iter()
        .map(|(f, h)| ((*f).to_owned(), quantiles(h)))
        .collect();
    json!({
        "verdict": result.verdict,
        "test": ctx.cfg.test,
        "seed": ctx.cfg.seed,
        "profile": ctx.cfg.profile.name,
        "nemesis": ctx.cfg.nemesis.name.clone(),
        "operations": history.ops.len(),
        "events": events,
        "ok": ok,
        "fail": fail,
        "info": info,
        "throughput_ops_per_s": (ctx.ok.load(Ordering::Relaxed) + ctx.fail.load(Ordering::Relaxed) + ctx.info.load(Ordering::Relaxed)) as f64 / run_secs,
        "latency": latency,
        "faults": windows,
        "checker": {
            "elapsed_ms": result.elapsed_ms,
            "states": result.states,
            "invalid_keys": result.keys.iter().filter(|k| k.verdict == Verdict::Invalid).map(|k| &k.key).collect::<Vec<_>>(),
            "unknown_keys": result.keys.iter().filter(|k| k.verdict == Verdict::Unknown).map(|k| &k.key).collect::<Vec<_>>(),
            "keys": result.keys,
        },
    })
}

fn print_latency(stats: &Stats) {
    let mut fs: Vec<_> = stats.latency.iter().collect();
    fs.sort_by_key(|(f, _)| **f);
    for (f, h) in fs {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "latency {f:<6} n={:<7} p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            h.len(),
            ms(0.5),
            ms(0.99),
            h.max() as f64 / 1000.0
        );
    }
}

/// `bench cluster`: a cluster for hands-on use with kvctl, until Ctrl-C.
pub fn cluster_main(args: &crate::cli::ClusterArgs) -> u8 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the async runtime");
    let result: anyhow::Result<()> = runtime.block_on(async {
        std::fs::create_dir_all(&args.dir)
            .with_context(|| format!("create {}", args.dir.display()))?;
        let spec = ClusterSpec {
            nodes: args.nodes,
            partitions: 8,
            replication: args.nodes.min(3),
            kvnode: find_kvnode(args.kvnode.as_deref())?,
            node_args: args.node_arg.clone(),
        };
        let mut cluster = Cluster::start(spec, &args.dir).await?;
        println!(
            "{} nodes up; try: kvctl --config {} put k v   (Ctrl-C stops them)",
            args.nodes,
            args.dir.join("cluster.toml").display()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        cluster.shutdown();
        println!("stopped");
        Ok(())
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bench cluster: {e:#}");
            crate::cli::EXIT_USAGE
        }
    }
}
