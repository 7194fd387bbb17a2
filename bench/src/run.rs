//! `bench run`: start the system under test, drive the workload ([`crate::workload`]) while the
//! nemesis injects faults, record the history, heal, read every key one last time, check, write
//! `results.json`, exit with the verdict.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use checker::{CheckOptions, ReadOptions, Verdict};
use kvnode::config::Timing;
use nemesis::schedule::FaultKind;
use tokio::sync::Mutex;

use crate::cli::RunArgs;
use crate::compaction::{Compaction, CompactionCounts, CompactionReport};
use crate::config::RunConfig;
use crate::faults::drive_nemesis;
use crate::profile::{KeyChooser, Profile};
use crate::recorder::Recorder;
use crate::summary::{ResultsFile, RunFacts, print_latency, progress, results};
use crate::system::kvnode::{Cluster, ClusterSpec, find_kvnode};
use crate::system::{ClientSpec, System, SystemConfig, etcd, loopback_ports, maelstrom};
use crate::workload::{Ctx, Stats, final_reads, lock_worker, worker};

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

/// A run directory's name: the UTC time, `20261123T101500Z`.
pub(crate) fn timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
}

async fn run(args: &RunArgs) -> anyhow::Result<Verdict> {
    let cfg = RunConfig::resolve(args)?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs"));
    let dir = new_latest(&out, &cfg.test)?;
    run_in(cfg, args.kvnode.as_deref(), &dir, Some(&out)).await
}

/// Creates `root/<test>/<UTC time>/` and points `root/latest` at it (best effort: a file system
/// without symbolic links still gets the directory).
pub(crate) fn new_latest(root: &Path, test: &str) -> anyhow::Result<PathBuf> {
    let dir = root.join(test).join(timestamp());
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let latest = root.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(dir.strip_prefix(root).unwrap_or(&dir), &latest);
    Ok(dir)
}

/// Runs `cfg` into the existing directory `dir` (`kvnode`: `--kvnode`); afterwards rewrites the
/// runs index in `index`, if given. What `bench run` and each side of `bench compare` do.
pub(crate) async fn run_in(
    cfg: RunConfig,
    kvnode: Option<&Path>,
    dir: &Path,
    index: Option<&Path>,
) -> anyhow::Result<Verdict> {
    if let Some(warning) = cfg.nemesis_warning() {
        eprintln!("bench: warning: {warning}");
    }
    let dir = dir.to_owned();
    std::fs::write(dir.join("config.toml"), toml::to_string(&cfg)?).context("write config.toml")?;
    let compaction = match cfg.system {
        SystemConfig::Kvnode(_) => format!(
            ", snapshot every {} entries, WAL checkpoint at {} bytes",
            cfg.compaction.snapshot_every, cfg.compaction.wal_checkpoint_bytes
        ),
        SystemConfig::Maelstrom(_) | SystemConfig::Etcd(_) => String::new(),
    };
    eprintln!(
        "bench: {} for {}, {}, profile {}, nemesis {}, seed {}{compaction} -> {}",
        cfg.test,
        humantime::format_duration(cfg.time_limit),
        cfg.system.describe(),
        cfg.profile.name,
        cfg.nemesis.name.clone(),
        cfg.seed,
        dir.display()
    );
    match &cfg.system {
        SystemConfig::Kvnode(k) => {
            let spec = ClusterSpec {
                protocol: k.protocol,
                nodes: cfg.nodes,
                partitions: cfg.partitions,
                replication: cfg.replication,
                timing: cfg.compaction.timing(),
                kvnode: find_kvnode(kvnode)?,
                node_args: cfg.node_args.clone(),
                ports: loopback_ports(),
            };
            let cluster = Cluster::start(spec, &dir).await?;
            drive(cluster, cfg, &dir, index).await
        }
        SystemConfig::Maelstrom(m) => {
            if cfg.nemesis.faults.contains(&FaultKind::Kill)
                || cfg.nemesis.steps.iter().any(|s| s.fault == FaultKind::Kill)
            {
                eprintln!(
                    "bench: note: a killed Maelstrom node restarts empty (its state was in its \
                     memory): a store that keeps nothing on disk loses what that node alone held"
                );
            }
            let cluster =
                maelstrom::Cluster::start(m, cfg.nodes, cfg.seed, cfg.profile.value_size, &dir)
                    .await?;
            drive(cluster, cfg, &dir, index).await
        }
        SystemConfig::Etcd(e) => {
            let cluster =
                etcd::Cluster::start(e, cfg.nodes, cfg.seed, &dir, loopback_ports()).await?;
            drive(cluster, cfg, &dir, index).await
        }
    }
}

/// Runs the workload and the nemesis against a started system, then heals, reads every key,
/// checks, writes the results and the report.
async fn drive<S: System>(
    mut system: S,
    cfg: RunConfig,
    dir: &Path,
    index: Option<&Path>,
) -> anyhow::Result<Verdict> {
    let names = system.names();
    let caps = system.capabilities();
    let start = Instant::now();
    system.begin(start);
    let sessions: Vec<S::Session> = (0..cfg.profile.concurrency)
        .map(|worker| {
            system.session(&ClientSpec {
                worker,
                workers: cfg.profile.concurrency,
                timeout: cfg.profile.timeout,
                sticky: cfg.profile.sticky,
                lease_ttl: cfg
                    .profile
                    .lock
                    .as_ref()
                    .map_or(Duration::from_secs(2), |l| l.lease_ttl),
            })
        })
        .collect();
    let cluster = Arc::new(Mutex::new(system));
    let started_at = SystemTime::now();
    let ctx = Arc::new(Ctx {
        keys: KeyChooser::new(&cfg.profile),
        recorder: Recorder::create(&dir.join("history.jsonl"), start)
            .context("create history.jsonl")?,
        caps,
        start,
        deadline: start + cfg.time_limit,
        stop: AtomicBool::new(false),
        ops_left: AtomicU64::new(cfg.profile.op_limit.unwrap_or(u64::MAX)),
        ok: AtomicU64::new(0),
        cas_miss: AtomicU64::new(0),
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
            // The bench now stops the nodes and checks what was recorded; a second signal
            // means "now": the nodes die with the bench (their parent-death signal).
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("\nbench: interrupted again: stopping now, without a verdict");
            std::process::exit(Verdict::Unknown.exit_code());
        })
    };
    // Nodes that exit by themselves during the run (a crash of the system under test): said
    // when seen; each stays down until the faults end, when healing restarts it.
    let crashes = {
        let (ctx, cluster) = (ctx.clone(), cluster.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            while !ctx.stop.load(Ordering::Relaxed) {
                tick.tick().await;
                for exit in cluster.lock().await.exited() {
                    let line = format!(
                        "node {} exited by itself at {:.3} s {exit}",
                        exit.name,
                        ctx.start.elapsed().as_secs_f64()
                    );
                    eprintln!("\nbench: {line}");
                    seen.push(line);
                }
            }
            seen
        })
    };

    let workers: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(w, session)| match ctx.cfg.profile.lock.clone() {
            Some(lock) => tokio::spawn(lock_worker(w, ctx.clone(), session, lock)),
            None => tokio::spawn(worker(w, ctx.clone(), session)),
        })
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
    let mut crashes = crashes.await.context("the node watcher failed")?;
    eprintln!();
    let mut unrecovered = None;
    if interrupted.load(Ordering::SeqCst) {
        eprintln!(
            "bench: interrupted: the cluster is stopped; checking and reporting the partial history"
        );
    } else {
        // Heal, let the cluster recover, then read every key once more (as Jepsen does).
        let recovered = {
            let mut c = cluster.lock().await;
            for exit in c.exited() {
                let line = format!("node {} exited by itself {exit}", exit.name);
                eprintln!("bench: {line}");
                crashes.push(line);
            }
            match c.heal() {
                Ok(()) => c.wait_ready(Duration::from_secs(30)).await,
                Err(e) => Err(e),
            }
            .map(|()| c.reader(Duration::from_secs(5)))
        };
        match recovered {
            // A lock workload has nothing to read back.
            Ok(_) if ctx.cfg.profile.lock.is_some() => {}
            Ok(reader) => final_reads(&ctx, reader, &interrupted).await,
            Err(e) => {
                eprintln!(
                    "bench: the cluster did not recover once the faults ended: {e:#}; checking \
                     the history without the final reads"
                );
                unrecovered = Some(format!("{e:#}"));
            }
        }
    }
    let interrupted = interrupted.load(Ordering::SeqCst);
    let facts = {
        let mut c = cluster.lock().await;
        c.shutdown().await;
        c.finish(dir)
            .context("collect the system's figures (messages.jsonl)")?
    };
    signals.abort();
    let events = ctx.recorder.finish().context("write history.jsonl")?;
    let elapsed = start.elapsed();
    // Counted once every node is down, so that each log is complete.
    let compaction = match ctx.cfg.system {
        SystemConfig::Maelstrom(_) | SystemConfig::Etcd(_) => None,
        SystemConfig::Kvnode(_) => match CompactionCounts::of_run(dir, &names) {
            Ok(counts) => Some(CompactionReport {
                thresholds: ctx.cfg.compaction,
                counts,
            }),
            Err(e) => {
                eprintln!("bench run: cannot count compaction in the node logs: {e}");
                None
            }
        },
    };

    let history_path = dir.join("history.jsonl");
    let read_started = Instant::now();
    let options = ReadOptions {
        model: if ctx.cfg.profile.lock.is_some() {
            checker::ModelKind::Mutex
        } else {
            checker::ModelKind::CasRegister
        },
        ..ReadOptions::default()
    };
    let (history, _) = checker::read_file(&history_path, &options)
        .with_context(|| format!("read back {}", history_path.display()))?;
    let read_ms = read_started.elapsed().as_secs_f64() * 1e3;
    let mut result = checker::check(&history, &CheckOptions::default());
    // The final reads alone test nothing: without a workload operation the run is unknown.
    let workload_ops = ctx.completed();
    let nothing = crate::check::nothing_checked(&mut result, workload_ops)
        .then_some("the workload completed none (only the final reads ran), so nothing was tested");
    let results = results(
        &ctx,
        RunFacts {
            history: &history,
            result: &result,
            stats: &stats,
            windows,
            started_at,
            elapsed,
            events,
            interrupted,
            messages: facts.messages,
            costs: facts.costs,
        },
    );
    let written = ResultsFile {
        results: &results,
        compaction,
    };
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&written)?,
    )
    .context("write results.json")?;
    let summary = crate::check::render(
        &history_path.display().to_string(),
        &history,
        &result,
        read_ms,
        nothing,
    );
    print!("{summary}");
    // The lost write, against the faults: what the checker alone cannot say.
    if let Some(key) = results.earliest_anomaly()
        && let Some(anomaly) = &key.anomaly
    {
        for sentence in reports::missed_write(&results.faults, anomaly) {
            println!("key {:?}, the earliest anomaly: {sentence}", key.key);
        }
    }
    print_latency(&stats);
    if let Some(c) = compaction {
        println!("{c}");
    }
    let kills = results
        .faults
        .iter()
        .filter(|w| w.fault["kind"] == "kill")
        .count();
    if kills > 0 && !caps.durable {
        println!(
            "note: {} restarted nodes that keep their state in memory: each came back empty, \
             so what only it held was lost (a durable store would not lose it)",
            checker::counted(kills as u64, "kill", "kills")
        );
    }
    if let Some(c) = &results.costs {
        println!(
            "costs: {:.2} WAL syncs and {:.2} peer messages ({:.0} bytes) per operation{}",
            c.per_op.wal_syncs,
            c.per_op.peer_messages,
            c.per_op.peer_bytes,
            if c.cut_short > 0 {
                format!(
                    " (about: {} killed lost up to a second of counts each)",
                    checker::counted(c.cut_short, "node process", "node processes")
                )
            } else {
                String::new()
            }
        );
    }
    if let Some(m) = &results.messages {
        println!(
            "messages: {} between nodes ({:.1} per operation), {} in all, {} dropped, {} duplicated",
            m.between_nodes, m.per_operation, m.total, m.dropped, m.duplicated
        );
    }
    // A report that cannot be drawn must not hide the verdict: say why and go on.
    match reports::render_with(dir, results, &history) {
        Ok(report) => println!("report: {}", report.html.display()),
        Err(e) => eprintln!("bench run: no report: {e}"),
    }
    if let Some(root) = index
        && let Err(e) = reports::write_index(root)
    {
        eprintln!("bench run: no runs index: {e}");
    }
    println!("run directory: {}", dir.display());
    for crash in &crashes {
        println!("crash: {crash}");
    }
    if let Some(why) = &unrecovered
        && result.verdict == Verdict::Valid
    {
        println!(
            "the history is linearizable, but the cluster did not recover after the faults \
             ({why}), so the run is unknown"
        );
        return Ok(Verdict::Unknown);
    }
    if interrupted && result.verdict == Verdict::Valid {
        // Nothing wrong in what was recorded, but the run did not finish: not a pass.
        println!("interrupted: the partial history is linearizable, but the run is unknown");
        return Ok(Verdict::Unknown);
    }
    Ok(result.verdict)
}

/// What a workload achieved (for the recorder benchmark).
pub struct Throughput {
    pub ops: u64,
    pub seconds: f64,
    pub events: u64,
}

/// Drives `profile` against a running kvnode cluster for `length`, recording into `history`
/// (`None`: recording off), with no faults. The same client code as `bench run`.
pub async fn measure_workload(
    cluster: &Cluster,
    profile: Profile,
    length: Duration,
    history: Option<&Path>,
) -> anyhow::Result<Throughput> {
    let start = Instant::now();
    let recorder = match history {
        Some(p) => Recorder::create(p, start)?,
        None => Recorder::null(start),
    };
    let config = &cluster.config;
    let ctx = Arc::new(Ctx {
        keys: KeyChooser::new(&profile),
        recorder,
        caps: cluster.capabilities(),
        start,
        deadline: start + length,
        stop: AtomicBool::new(false),
        ops_left: AtomicU64::new(profile.op_limit.unwrap_or(u64::MAX)),
        ok: AtomicU64::new(0),
        cas_miss: AtomicU64::new(0),
        fail: AtomicU64::new(0),
        info: AtomicU64::new(0),
        fault: std::sync::Mutex::new("none".into()),
        cfg: RunConfig {
            test: "measure".into(),
            system: SystemConfig::Kvnode(crate::system::KvnodeConfig {
                protocol: config.protocol,
            }),
            seed: 1,
            time_limit: length,
            nodes: config.nodes.len(),
            partitions: config.partitions,
            replication: config.replication,
            node_args: Vec::new(),
            compaction: Compaction {
                snapshot_every: config.timing.snapshot_every,
                wal_checkpoint_bytes: config.timing.wal_checkpoint_bytes,
            },
            profile,
            nemesis: nemesis::schedule::ScheduleSpec::from_name_or_file("none")?,
        },
    });
    let workers: Vec<_> = (0..ctx.cfg.profile.concurrency)
        .map(|w| {
            let session = cluster.session(&ClientSpec {
                worker: w,
                workers: ctx.cfg.profile.concurrency,
                timeout: ctx.cfg.profile.timeout,
                sticky: ctx.cfg.profile.sticky,
                lease_ttl: Duration::from_secs(2),
            });
            tokio::spawn(worker(w, ctx.clone(), session))
        })
        .collect();
    for w in workers {
        w.await?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let events = ctx.recorder.finish()?;
    let ops = ctx.completed();
    Ok(Throughput {
        ops,
        seconds,
        events,
    })
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
            protocol: args.protocol.unwrap_or_default(),
            nodes: args.nodes,
            partitions: 8,
            replication: args.nodes.min(3),
            timing: Timing::default(),
            kvnode: find_kvnode(args.kvnode.as_deref())?,
            node_args: args.node_arg.clone(),
            ports: loopback_ports(),
        };
        let mut cluster = Cluster::start(spec, &args.dir).await?;
        let config = std::path::absolute(args.dir.join("cluster.toml"))?;
        // This very executable carries kvctl: the command works as printed, nothing to install.
        let me = std::env::current_exe().context("locate the bench binary")?;
        println!(
            "{} up, logs in {}; Ctrl-C stops them. Try:\n  {} kvctl --config {} put greeting hello",
            checker::counted(args.nodes as u64, "node", "nodes"),
            args.dir.display(),
            me.display(),
            config.display()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut watch = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = watch.tick() => {
                    for exit in cluster.exited() {
                        eprintln!(
                            "bench cluster: node {} exited {exit}; the others keep serving",
                            exit.name
                        );
                    }
                }
            }
        }
        cluster.shutdown().await;
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
