//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Exit code for bad arguments or unreadable input, and for a run that could not finish. Not 2,
/// which would read as the verdict unknown: a CI gate must not take a typo for an undecided check.
pub const EXIT_USAGE: u8 = 254;

/// Every exit code of `bench`, for `--help` (docs/exit-codes.md has the details).
const EXIT_CODES: &str = "Exit codes: 0 valid; 1 anomaly (not linearizable); 2 unknown (undecided, \
no operations to check, or a run interrupted before it could finish); 254 bad arguments or input, \
a refused run, or a cluster \
that could not start; also bench with no command, which prints this help. See docs/exit-codes.md.";

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    version,
    about = "kvlab: is this key-value store linearizable under faults?",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a cluster (kvnode, or any Maelstrom node) under faults, record, check (exit 0 valid,
    /// 1 anomaly, 2 unknown).
    Run(Box<RunArgs>),
    /// Run the same seed, workload and faults against several systems (default: kvnode with
    /// Paxos, then with Zab) and put them side by side in one page, compare.html (exit: the
    /// worst verdict: 1 if any anomaly, else 2 if any unknown, else 0).
    Compare(Box<CompareArgs>),
    /// Check a history for linearizability (exit 0 valid, 1 invalid, 2 unknown).
    Check(CheckArgs),
    /// Render a run's report again: report.html, the plots, results.xml and the runs index.
    Report(ReportArgs),
    /// Start a cluster for hands-on use with kvctl; stops on Ctrl-C.
    Cluster(ClusterArgs),
    /// List the built-in workload profiles.
    Profiles,
    /// List the built-in nemesis schedules.
    Nemeses,
    /// kvnode's client, built in: `bench kvctl --config DIR/cluster.toml put k v` (`bench kvctl
    /// --help`). Exit status is kvctl's: 0 done, 1 failed or unknown, 2 bad arguments, 3 NOT SET.
    #[command(disable_help_flag = true)]
    Kvctl {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run one kvnode from this executable (used when no kvnode binary is at hand).
    #[command(hide = true)]
    Kvnode {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Args, Clone, Debug, Default)]
pub struct RunArgs {
    /// The system under test: kvnode (kvlab's own store), maelstrom (any program speaking
    /// Maelstrom's protocol, given with --bin) or etcd. Default kvnode.
    #[arg(long, value_name = "NAME")]
    pub system: Option<String>,
    /// --system maelstrom: the node program, started once per node.
    #[arg(long, value_name = "PATH")]
    pub bin: Option<std::path::PathBuf>,
    /// --system maelstrom: an argument for the node program (repeatable).
    #[arg(long, allow_hyphen_values = true, value_name = "ARG")]
    pub bin_arg: Vec<String>,
    /// --system etcd: the etcd binary (default: etcd on PATH; Debian package etcd-server).
    #[arg(long, value_name = "PATH")]
    pub etcd_bin: Option<std::path::PathBuf>,
    /// --system etcd: serializable reads, served by whichever member answers (may be stale).
    #[arg(long)]
    pub etcd_serializable_reads: bool,
    /// How long the workload runs, e.g. 30s (default 60s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub time_limit: Option<Duration>,
    /// Fault schedule: a built-in name (`bench nemeses`) or a TOML file (default mix).
    #[arg(long)]
    pub nemesis: Option<String>,
    /// Workload: a built-in name (`bench profiles`) or a TOML file (default register).
    #[arg(long)]
    pub profile: Option<String>,
    /// Seed for every random choice (default: from the clock; recorded in config.toml).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of nodes (default 3).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Name of the test (default: profile-nemesis).
    #[arg(long)]
    pub test: Option<String>,
    /// Repeat a recorded run: its config.toml (flags given as well override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Put run directories under DIR instead of runs/.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A kvnode binary to run instead of the one built into this executable.
    #[arg(long)]
    pub kvnode: Option<PathBuf>,
    /// kvnode's replication protocol: paxos (the default) or zab.
    #[arg(long, value_name = "NAME")]
    pub protocol: Option<kvnode::config::Protocol>,
    /// Extra flag for every kvnode, e.g. --node-arg=--unsafe-read-local (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    pub node_arg: Vec<String>,
    /// Each partition snapshots and compacts its log every N applied entries (default 100).
    #[arg(long, value_name = "N")]
    pub snapshot_every: Option<u64>,
    /// Each node checkpoints its write-ahead log once it grows past N bytes (default 64 KiB, or
    /// four times an estimate of the profile's data if larger).
    #[arg(long, value_name = "N")]
    pub wal_checkpoint_bytes: Option<u64>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Each side runs as `bench run` would, one after the other, into \
<out>/compare/<test>/<time>/<side>/; the page compares verdicts, throughput over time, latency \
quantiles, availability during each fault, recovery after it, and WAL fsyncs and messages per \
operation. `--runs DIR DIR...` renders the page from recorded run directories instead."
)]
pub struct CompareArgs {
    /// A system to run (repeatable, in order): paxos or zab (kvnode with that protocol; also
    /// kvnode:paxos, kvnode:zab), etcd, or maelstrom:PATH (the node program). Default: paxos,
    /// zab.
    #[arg(long = "side", value_name = "SPEC", conflicts_with = "runs")]
    pub sides: Vec<String>,
    /// Compare these recorded run directories instead of running anything.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub runs: Vec<PathBuf>,
    /// Every `bench run` flag, the same for every side (the seed, drawn once if not given).
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The run directory, e.g. runs/latest or runs/register-mix/20261123T101500Z.
    pub run_dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Number of kvnode processes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Where the configuration, logs and data go.
    #[arg(long, default_value = "runs/cluster")]
    pub dir: PathBuf,
    /// A kvnode binary to run instead of the one built into this executable.
    #[arg(long)]
    pub kvnode: Option<PathBuf>,
    /// The replication protocol: paxos (the default) or zab.
    #[arg(long, value_name = "NAME")]
    pub protocol: Option<kvnode::config::Protocol>,
    /// Extra flag for every kvnode (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    pub node_arg: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The history file.
    pub file: PathBuf,
    /// Input format: jsonl, porcupine-kv, jepsen-log or edn (recognised when omitted).
    #[arg(long, short)]
    pub format: Option<checker::Format>,
    /// The object the history was recorded against, as Knossos names it: its operations and
    /// what they require. EDN and Jepsen logs: any model; keys from Jepsen's independent
    /// tuples are checked apart, otherwise the history is one object. kvlab's JSONL: the
    /// default reads key-value histories as cas-register and recognises lock histories
    /// (first client event an acquire or release) as mutex, one lock per key; mutex reads
    /// lock histories only. Porcupine's format: cas-register only.
    #[arg(long, default_value = "cas-register", value_parser = model_parser())]
    pub model: checker::ModelKind,
    /// EDN only: every register's initial value, in the register models and the
    /// multi-register (absent when not given). Integers are read as integers, anything else as
    /// a string.
    #[arg(long)]
    pub initial_value: Option<String>,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Give up (verdict unknown) on keys still open after this long, e.g. 30s or 2m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub time_limit: Option<Duration>,
    /// Memory budget of the search tables, MiB.
    #[arg(long, default_value_t = 4096)]
    pub memory_limit_mib: usize,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Search every key to the end even after one is found invalid.
    #[arg(long)]
    pub all_keys: bool,
    /// Stop at the first key found not linearizable (as Porcupine does); the keys not finished
    /// by then are unknown. Same verdict, sooner.
    #[arg(long, conflicts_with = "all_keys")]
    pub fail_fast: bool,
    /// Time to spend shrinking each invalid key's counterexample to its core, the smallest set
    /// of operations that still cannot be ordered (0s: do not shrink).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub shrink_time: Duration,
}

/// `--model`'s values, each listed with its line in `--help`.
fn model_parser() -> impl clap::builder::TypedValueParser<Value = checker::ModelKind> {
    use clap::builder::TypedValueParser as _;
    let models = checker::ModelKind::ALL
        .map(|m| clap::builder::PossibleValue::new(m.name()).help(m.about()));
    clap::builder::PossibleValuesParser::new(models)
        .map(|name| name.parse().expect("a model of ModelKind::ALL"))
}
