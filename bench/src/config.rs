//! What determines a run: [`RunConfig`], resolved from the command line, a recorded
//! `config.toml`, or both (flags override the file), and checked before anything starts.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use nemesis::schedule::{FaultKind, ScheduleSpec};
use serde::{Deserialize, Serialize};

use crate::cli::RunArgs;
use crate::compaction::Compaction;
use crate::profile::{Profile, duration_serde};
use crate::system::SystemConfig;
use crate::system::etcd::EtcdConfig;
use crate::system::maelstrom::MaelstromConfig;

/// Everything that determines a run; written to `config.toml` so `--config` repeats it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub test: String,
    /// The system under test (a config recorded before systems were pluggable ran kvnode).
    #[serde(default)]
    pub system: SystemConfig,
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
    /// A seed for a run that was given none: from the clock.
    pub(crate) fn fresh_seed() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007)
    }

    pub(crate) fn resolve(args: &RunArgs) -> anyhow::Result<RunConfig> {
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
                system: SystemConfig::default(),
                seed: RunConfig::fresh_seed(),
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
        let default_schedule = args.config.is_none() && args.nemesis.is_none();
        let before = cfg.system.clone();
        match args.system.as_deref() {
            None => {}
            Some("kvnode") if !matches!(cfg.system, SystemConfig::Kvnode(_)) => {
                cfg.system = SystemConfig::default();
            }
            Some("kvnode") => {}
            Some("maelstrom") if !matches!(cfg.system, SystemConfig::Maelstrom(_)) => {
                cfg.system = SystemConfig::Maelstrom(MaelstromConfig::default());
            }
            Some("maelstrom") => {}
            Some("etcd") if !matches!(cfg.system, SystemConfig::Etcd(_)) => {
                cfg.system = SystemConfig::Etcd(EtcdConfig::default());
            }
            Some("etcd") => {}
            Some(other) => {
                bail!("--system {other}: unknown; the systems are kvnode, maelstrom and etcd")
            }
        }
        if std::mem::discriminant(&before) != std::mem::discriminant(&cfg.system) {
            // Another system than the recorded run's: its kvnode flags do not carry over.
            cfg.node_args.clear();
        }
        match &mut cfg.system {
            SystemConfig::Maelstrom(m) => {
                if let Some(bin) = &args.bin {
                    // Absolute: the program checked is the one run (not one found on PATH), and
                    // config.toml replays it from any directory.
                    m.bin = std::path::absolute(bin)
                        .with_context(|| format!("--bin {}", bin.display()))?;
                }
                if !args.bin_arg.is_empty() {
                    m.args.clone_from(&args.bin_arg);
                }
                if m.bin.as_os_str().is_empty() {
                    bail!("--system maelstrom needs --bin PATH: the node program to run");
                }
            }
            SystemConfig::Etcd(e) => {
                if let Some(bin) = &args.etcd_bin {
                    e.bin = Some(bin.clone());
                }
                e.serializable_reads |= args.etcd_serializable_reads;
            }
            SystemConfig::Kvnode(k) => {
                if let Some(protocol) = args.protocol {
                    k.protocol = protocol;
                }
            }
        }
        if !matches!(cfg.system, SystemConfig::Maelstrom(_))
            && (args.bin.is_some() || !args.bin_arg.is_empty())
        {
            bail!("--bin and --bin-arg are for --system maelstrom");
        }
        if !matches!(cfg.system, SystemConfig::Etcd(_))
            && (args.etcd_bin.is_some() || args.etcd_serializable_reads)
        {
            bail!("--etcd-bin and --etcd-serializable-reads are for --system etcd");
        }
        if !matches!(cfg.system, SystemConfig::Kvnode(_)) {
            let kvnode_only = [
                ("--protocol", args.protocol.is_some()),
                ("--kvnode", args.kvnode.is_some()),
                ("--node-arg", !args.node_arg.is_empty()),
                ("--snapshot-every", args.snapshot_every.is_some()),
                (
                    "--wal-checkpoint-bytes",
                    args.wal_checkpoint_bytes.is_some(),
                ),
            ];
            if let Some((flag, _)) = kvnode_only.iter().find(|(_, given)| *given) {
                bail!(
                    "{flag} is for --system kvnode; this run tests {}",
                    cfg.system.describe()
                );
            }
        }
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
        if default_schedule && matches!(cfg.system, SystemConfig::Maelstrom(_)) {
            // A Maelstrom node keeps its state in memory, and a kill empties it: the default
            // is every fault but the kill (a single node can only be paused).
            let name = if cfg.nodes >= 2 { "net-mix" } else { "pause" };
            cfg.nemesis = ScheduleSpec::from_name_or_file(name)?;
        }
        if !args.node_arg.is_empty() {
            cfg.node_args.clone_from(&args.node_arg);
        }
        if let SystemConfig::Kvnode(k) = &cfg.system
            && k.protocol != ::kvnode::config::Protocol::Zab
            && cfg.node_args.iter().any(|a| a == "--unsafe-skip-sync")
        {
            bail!(
                "--node-arg=--unsafe-skip-sync is a bug of Zab's synchronisation; this run's \
                 nodes run {} (add --protocol zab)",
                k.protocol
            );
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
        if cfg.profile.lock.is_some() && !matches!(cfg.system, SystemConfig::Etcd(_)) {
            bail!(
                "profile {}: a lock workload needs a system with locks (--system etcd); {} has none",
                cfg.profile.name,
                cfg.system.describe()
            );
        }
        if let SystemConfig::Maelstrom(m) = &cfg.system {
            m.check()?;
            if cfg.profile.mix.delete > 0 {
                bail!(
                    "profile {}: Maelstrom's lin-kv has no delete; use a profile without deletes",
                    cfg.profile.name
                );
            }
            if !cfg.node_args.is_empty() {
                bail!("--node-arg is for kvnode; give a Maelstrom node its flags with --bin-arg");
            }
        } else if cfg.nemesis.message_level() {
            bail!(
                "--nemesis {}: delay, loss, duplicate and reorder act on single messages, which \
                 only systems whose messages pass through the bench allow (--system maelstrom); \
                 {} links are proxied as connections",
                short_name(&cfg.nemesis.name),
                if matches!(cfg.system, SystemConfig::Etcd(_)) {
                    "etcd's"
                } else {
                    "kvnode's"
                }
            );
        }
        if matches!(cfg.system, SystemConfig::Etcd(_)) && !cfg.node_args.is_empty() {
            bail!("--node-arg is for kvnode");
        }
        // A timed schedule's named nodes and step times, against this run.
        cfg.nemesis.check(
            &crate::system::kvnode::node_names(cfg.nodes),
            cfg.time_limit,
        )?;
        Ok(cfg)
    }

    /// A warning when some of the schedule's fault kinds cannot happen on this many nodes (they
    /// are left out of the plan), but others can.
    pub(crate) fn nemesis_warning(&self) -> Option<String> {
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
pub(crate) fn short_name(name: &str) -> String {
    let path = Path::new(name);
    if path.components().count() <= 1 && !name.ends_with(".toml") {
        return name.to_owned();
    }
    path.file_stem()
        .map_or_else(|| name.to_owned(), |s| s.to_string_lossy().into_owned())
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
