//! `bench run`: start a cluster, drive the workload ([`crate::workload`]) while the nemesis
//! injects faults, record the history, heal, read every key one last time, check, write
//! `results.json`, exit with the verdict.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use checker::{CheckOptions, ReadOptions, Verdict};
use kvnode::config::Timing;
use nemesis::schedule::{FaultKind, ScheduleSpec};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::cli::RunArgs;
use crate::cluster::{Cluster, ClusterSpec, find_kvnode};
use crate::compaction::{Compaction, CompactionCounts, CompactionReport};
use crate::faults::drive_nemesis;
use crate::profile::{KeyChooser, Profile, duration_serde};
use crate::recorder::Recorder;
use crate::summary::{ResultsFile, RunFacts, print_latency, progress, results};
use crate::workload::{Ctx, Stats, final_reads, worker};

pub use crate::workload::{Throughput, measure_workload};

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
    /// A config recorded before the bench chose its own thresholds ran with kvnode's.
    #[serde(default = "Compaction::kvnode_default")]
    pub compaction: Compaction,
    pub profile: Profile,
    pub nemesis: ScheduleSpec,
}

impl RunConfig {
    fn resolve(args: &RunArgs) -> anyhow::Result<RunConfig> {
        let mut cfg = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("read {}", path.display()))?;
                toml::from_str(&text).map_err(|e| {
                    let where_ = kvnode::config::toml_error(&text, &e);
                    anyhow::anyhow!("{}: {where_}", path.display())
                })?
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
                // Chosen for the profile below, once the profile is known.
                compaction: Compaction::kvnode_default(),
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
        if args.config.is_none() {
            cfg.compaction = Compaction::for_profile(&cfg.profile);
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
        if let Some(n) = args.snapshot_every {
            cfg.compaction.snapshot_every = n;
        }
        if let Some(n) = args.wal_checkpoint_bytes {
            cfg.compaction.wal_checkpoint_bytes = n;
        }
        if let Some(t) = &args.test {
            cfg.test.clone_from(t);
        }
        if cfg.test.is_empty() {
            cfg.test = format!(
                "{}-{}",
                short_name(&cfg.profile.name),
                short_name(&cfg.nemesis.name)
            );
        }
        cfg.profile
            .validate()
            .map_err(|e| anyhow::anyhow!("profile {}: {e}", cfg.profile.name))?;
        if cfg.nodes == 0 {
            bail!("--nodes must be at least 1");
        }
        if cfg.compaction.snapshot_every == 0 || cfg.compaction.wal_checkpoint_bytes == 0 {
            bail!("--snapshot-every and --wal-checkpoint-bytes must be at least 1");
        }
        if cfg.time_limit.is_zero() {
            bail!("--time-limit must be more than 0s: the workload would not run at all");
        }
        let (possible, impossible) = fault_kinds(&cfg.nemesis, cfg.nodes);
        if possible.is_empty() && !impossible.is_empty() {
            bail!(
                "--nemesis {} can do nothing with --nodes {}: {}; give more --nodes or another \
                 --nemesis (none, kill or pause work on any number of nodes)",
                short_name(&cfg.nemesis.name),
                cfg.nodes,
                needs(&impossible)
            );
        }
        // A timed schedule's named nodes and step times, against this run.
        cfg.nemesis
            .check(&crate::cluster::node_names(cfg.nodes), cfg.time_limit)?;
        Ok(cfg)
    }

    /// A warning when some of the schedule's fault kinds cannot happen on this many nodes (they
    /// are left out of the plan), but others can.
    fn nemesis_warning(&self) -> Option<String> {
        let (possible, impossible) = fault_kinds(&self.nemesis, self.nodes);
        if possible.is_empty() || impossible.is_empty() {
            return None;
        }
        let drawn: Vec<String> = possible.into_iter().map(kind_name).collect();
        Some(format!(
            "--nemesis {}: {}, so with --nodes {} it draws only {}",
            short_name(&self.nemesis.name),
            needs(&impossible),
            self.nodes,
            drawn.join(", ")
        ))
    }
}

/// The schedule's fault kinds that can happen on `nodes` nodes, and those that cannot (a
/// partition of one node).
fn fault_kinds(spec: &ScheduleSpec, nodes: usize) -> (Vec<FaultKind>, Vec<FaultKind>) {
    let mut kinds: Vec<FaultKind> = Vec::new();
    for &kind in &spec.faults {
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds.into_iter().partition(|k| k.possible(nodes))
}

/// `partition needs at least 2 nodes`, for each kind.
fn needs(kinds: &[FaultKind]) -> String {
    kinds
        .iter()
        .map(|&k| {
            let min = (1..)
                .find(|&n| k.possible(n))
                .expect("every fault kind is possible on some number of nodes");
            format!("{} needs at least {min} nodes", kind_name(k))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fault kind as schedules spell it (`partition-one`).
fn kind_name(kind: FaultKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{kind:?}"),
    }
}

/// A profile's or schedule's name as part of a run's name: a schedule read from a file is named
/// by its path, and the run directory is named after the file's stem rather than nested under
/// the path.
fn short_name(name: &str) -> String {
    let path = Path::new(name);
    if path.components().count() <= 1 && !name.ends_with(".toml") {
        return name.to_owned();
    }
    path.file_stem()
        .map_or_else(|| name.to_owned(), |s| s.to_string_lossy().into_owned())
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
    if let Some(warning) = cfg.nemesis_warning() {
        eprintln!("bench: warning: {warning}");
    }
    let kvnode = find_kvnode(args.kvnode.as_deref())?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs"));
    let dir = out.join(&cfg.test).join(timestamp());
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let latest = out.join("latest");
    let _ = std::fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(dir.strip_prefix(&out).unwrap_or(&dir), &latest);
    std::fs::write(dir.join("config.toml"), toml::to_string(&cfg)?).context("write config.toml")?;
    eprintln!(
        "bench: {} for {}, profile {}, nemesis {}, seed {}, snapshot every {} entries, \
         WAL checkpoint at {} bytes -> {}",
        cfg.test,
        humantime::format_duration(cfg.time_limit),
        cfg.profile.name,
        cfg.nemesis.name.clone(),
        cfg.seed,
        cfg.compaction.snapshot_every,
        cfg.compaction.wal_checkpoint_bytes,
        dir.display()
    );

    let spec = ClusterSpec {
        nodes: cfg.nodes,
        partitions: cfg.partitions,
        replication: cfg.replication,
        timing: cfg.compaction.timing(),
        kvnode,
        node_args: cfg.node_args.clone(),
    };
    let cluster = Arc::new(Mutex::new(Cluster::start(spec, &dir).await?));
    let names = cluster.lock().await.names();
    let cluster_config = cluster.lock().await.config.clone();
    let start = Instant::now();
    let started_at = SystemTime::now();
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
    let interrupted = interrupted.load(Ordering::SeqCst);
    if interrupted {
        eprintln!(
            "bench: interrupted: the cluster is stopped; checking and reporting the partial history"
        );
    } else {
        // Heal, let the cluster recover, then read every key once more (as Jepsen does).
        {
            let mut c = cluster.lock().await;
            c.heal()?;
            c.wait_ready(Duration::from_secs(30)).await?;
        }
        final_reads(&ctx).await;
    }
    cluster.lock().await.shutdown().await;
    signals.abort();
    let events = ctx.recorder.finish().context("write history.jsonl")?;
    let elapsed = start.elapsed();
    // Counted once every node is down, so that each log is complete.
    let compaction = match CompactionCounts::of_run(&dir, &names) {
        Ok(counts) => Some(CompactionReport {
            thresholds: ctx.cfg.compaction,
            counts,
        }),
        Err(e) => {
            eprintln!("bench run: cannot count compaction in the node logs: {e}");
            None
        }
    };

    let history_path = dir.join("history.jsonl");
    let read_started = Instant::now();
    let (history, _) = checker::read_file(&history_path, &ReadOptions::default())
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
    // A report that cannot be drawn must not hide the verdict: say why and go on.
    match reports::render_with(&dir, results, &history) {
        Ok(report) => println!("report: {}", report.html.display()),
        Err(e) => eprintln!("bench run: no report: {e}"),
    }
    if let Err(e) = reports::write_index(&out) {
        eprintln!("bench run: no runs index: {e}");
    }
    println!("run directory: {}", dir.display());
    if interrupted && result.verdict == Verdict::Valid {
        // Nothing wrong in what was recorded, but the run did not finish: not a pass.
        println!("interrupted: the partial history is linearizable, but the run is unknown");
        return Ok(Verdict::Unknown);
    }
    Ok(result.verdict)
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
            timing: Timing::default(),
            kvnode: find_kvnode(args.kvnode.as_deref())?,
            node_args: args.node_arg.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_recorded_before_compaction_knobs_repeats_with_kvnode_thresholds() {
        let fresh = RunConfig::resolve(&RunArgs::default()).unwrap();
        assert_eq!(fresh.compaction, Compaction::for_profile(&fresh.profile));
        assert_ne!(fresh.compaction, Compaction::kvnode_default());
        let text = toml::to_string(&fresh).unwrap();
        assert!(text.contains("[compaction]"), "{text}");
        let old = text
            .lines()
            .filter(|l| !l.starts_with("[compaction]") && !l.contains("snapshot_every"))
            .filter(|l| !l.contains("wal_checkpoint_bytes"))
            .collect::<Vec<_>>()
            .join("\n");
        let old: RunConfig = toml::from_str(&old).unwrap();
        assert_eq!(old.compaction, Compaction::kvnode_default());
    }

    fn resolve_err(args: RunArgs) -> String {
        let err = RunConfig::resolve(&args).expect_err("refused").to_string();
        assert!(!err.contains('\n'), "one line: {err}");
        err
    }

    #[test]
    fn a_zero_time_limit_is_refused() {
        let err = resolve_err(RunArgs {
            time_limit: Some(Duration::ZERO),
            ..RunArgs::default()
        });
        assert!(err.contains("--time-limit must be more than 0s"), "{err}");
    }

    #[test]
    fn a_schedule_that_can_do_nothing_on_so_few_nodes_is_refused_naming_the_flags() {
        for (nemesis, nodes, needs) in [
            ("partition", 1, "partition needs at least 2 nodes"),
            (
                "partition-leader",
                1,
                "partition-leader needs at least 2 nodes",
            ),
            ("partition-ring", 2, "partition-ring needs at least 3 nodes"),
            (
                "partition-bridge",
                2,
                "partition-bridge needs at least 3 nodes",
            ),
        ] {
            let err = resolve_err(RunArgs {
                nemesis: Some(nemesis.into()),
                nodes: Some(nodes),
                ..RunArgs::default()
            });
            assert!(
                err.contains(&format!(
                    "--nemesis {nemesis} can do nothing with --nodes {nodes}"
                )),
                "{err}"
            );
            assert!(err.contains(needs), "{err}");
        }
    }

    #[test]
    fn a_schedule_that_can_do_part_of_its_faults_runs_with_a_warning() {
        let args = |nemesis: &str, nodes| RunArgs {
            nemesis: Some(nemesis.into()),
            nodes: Some(nodes),
            ..RunArgs::default()
        };
        let mix = RunConfig::resolve(&args("mix", 1)).unwrap();
        let warning = mix.nemesis_warning().expect("a warning");
        assert!(
            warning.contains("partition needs at least 2 nodes")
                && warning.contains("it draws only kill, pause"),
            "{warning}"
        );
        for (nemesis, nodes) in [("mix", 3), ("kill", 1), ("pause-leader", 1), ("none", 1)] {
            let cfg = RunConfig::resolve(&args(nemesis, nodes)).unwrap();
            assert_eq!(cfg.nemesis_warning(), None, "{nemesis} on {nodes}");
        }
    }

    #[test]
    fn a_run_from_a_schedule_file_is_named_after_its_stem() {
        let dir = tempfile::tempdir().unwrap();
        let schedule = dir.path().join("quick.toml");
        std::fs::write(&schedule, "faults = [\"kill\"]\n").unwrap();
        let cfg = RunConfig::resolve(&RunArgs {
            nemesis: Some(schedule.to_str().unwrap().into()),
            ..RunArgs::default()
        })
        .unwrap();
        assert_eq!(cfg.test, "register-quick");
        assert_eq!(short_name("ycsb-a"), "ycsb-a");
        assert_eq!(short_name("/tmp/x/busy.toml"), "busy");
        assert_eq!(short_name("schedules/slow"), "slow");
        assert_eq!(short_name("local.toml"), "local");
    }

    #[test]
    fn compaction_flags_override_the_defaults_and_zero_is_refused() {
        let args = RunArgs {
            snapshot_every: Some(7),
            wal_checkpoint_bytes: Some(4096),
            ..RunArgs::default()
        };
        let cfg = RunConfig::resolve(&args).unwrap();
        assert_eq!(cfg.compaction.snapshot_every, 7);
        assert_eq!(cfg.compaction.wal_checkpoint_bytes, 4096);
        let zero = RunArgs {
            snapshot_every: Some(0),
            ..RunArgs::default()
        };
        assert!(RunConfig::resolve(&zero).is_err());
    }
}
