//! The system under test, as the bench sees it (Jepsen's db + client split).
//!
//! A [`System`] is a running cluster of named nodes that the bench owns: it can kill, pause,
//! resume and restart any node, cut and heal the network between nodes, and open a client
//! [`Session`] to a node. The workload, the recorder, the nemesis, the checker and the reports
//! talk only to these traits; two systems implement them:
//! - [`kvnode`]: kvlab's own store, its node-to-node TCP traffic through per-link proxies;
//! - [`maelstrom`]: any program speaking Maelstrom's protocol on stdin/stdout, every message
//!   routed by the bench (which can then also delay, drop, duplicate and reorder messages);
//! - [`etcd`]: a cluster of etcd members, partitioned by proxies in front of their peer ports.
//!
//! Adding a system means implementing the two traits and adding a [`SystemConfig`] variant
//! (README, "Test your own store").
//!
//! Contracts every implementation keeps:
//! - no orphans: every process it starts dies on [`System::shutdown`], on drop (error, panic),
//!   and, should the bench be SIGKILLed, by a parent-death signal;
//! - an [`Outcome::Fail`] means the operation certainly did not take effect; when that is not
//!   known (a timeout, a cut connection, a crash) the outcome is [`Outcome::Info`].

pub mod etcd;
pub mod kvnode;
pub mod maelstrom;
mod procs;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use nemesis::fault::Trouble;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

pub use procs::NodeExit;

/// One operation of the key-value workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    Read {
        key: String,
    },
    Write {
        key: String,
        value: String,
    },
    /// Sets `new` if the key holds `expected` (`None`: the key is absent).
    Cas {
        key: String,
        expected: Option<String>,
        new: String,
    },
    Delete {
        key: String,
    },
    /// Takes the lock named `key`, waiting while another holds it.
    Acquire {
        key: String,
    },
    /// Gives back the lock named `key`, which this session holds.
    Release {
        key: String,
    },
}

/// How an operation ended, as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It took effect; a read carries the value it saw (`None`: absent).
    Ok(Option<String>),
    /// A CAS whose precondition did not hold: it changed nothing. Carries what the key held,
    /// when the store said (`Some(None)`: absent).
    CasMiss(Option<Option<String>>),
    /// It certainly did not take effect; why.
    Fail(String),
    /// Its fate is unknown (timeout, cut connection, crash); why.
    Info(String),
}

/// A client connection to the system: performs one operation at a time.
pub trait Session: Send + 'static {
    fn perform(&mut self, op: &Operation) -> impl Future<Output = Outcome> + Send;
}

/// One of the workload's clients.
#[derive(Clone, Copy, Debug)]
pub struct ClientSpec {
    /// Which (0-based): it first talks to node `worker % N`, and starts as the history's
    /// process `worker`.
    pub worker: usize,
    /// How many there are: a process retired after an unknown outcome comes back `workers`
    /// numbers on.
    pub workers: usize,
    /// Operations time out after this long (outcome info).
    pub timeout: Duration,
    /// Stay with the first node rather than follow leader hints.
    pub sticky: bool,
    /// The lock workload's lease time to live (systems with locks).
    pub lease_ttl: Duration,
}

/// What a system can do beyond the common core (read, write, CAS with a value expected, kill,
/// pause, partitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// A delete operation.
    pub delete: bool,
    /// A CAS that expects the key to be absent.
    pub cas_from_absent: bool,
    /// Message-level faults: delay, loss, duplication, reordering.
    pub message_faults: bool,
    /// Nodes keep their state across a kill (a durable store); `false` for nodes that keep it
    /// in memory, which come back empty.
    pub durable: bool,
    /// Named locks: acquire and release.
    pub locks: bool,
}

/// Who leads, as far as a fault aimed at "the leader" can learn.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderHint {
    /// The key partition whose leader was asked for, when the system has partitions.
    pub partition: Option<u32>,
    /// The leader, if the system said.
    pub node: Option<String>,
}

/// A running cluster the bench owns.
pub trait System: Send + Sync + 'static {
    type Session: Session;

    /// The nodes' names, `n1` to `nN`.
    fn names(&self) -> Vec<String>;

    fn capabilities(&self) -> Capabilities;

    /// A session for one of the workload's clients.
    fn session(&self, client: &ClientSpec) -> Self::Session;

    /// A session for the bench's own reads after the workload (the final reads), apart from
    /// every worker's.
    fn reader(&self, timeout: Duration) -> Self::Session;

    /// The run's time 0, once the system is up: what the system records itself (messages) is
    /// stamped from it, as the history is.
    fn begin(&mut self, start: Instant);

    /// Waits until the cluster serves requests again, or fails after `within`, naming why.
    fn wait_ready(&mut self, within: Duration) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// SIGKILL; returns once the node is reaped.
    fn kill(&mut self, node: &str) -> impl Future<Output = ()> + Send;
    /// Starts a killed node again (with its data directory, if it has one).
    fn restart(&mut self, node: &str) -> anyhow::Result<()>;
    fn pause(&mut self, node: &str);
    fn resume(&mut self, node: &str);

    /// Drops every message from `from` to `to` for each pair; replaces any earlier cut.
    fn partition(&mut self, cuts: &[(String, String)]) -> anyhow::Result<()>;
    /// Message-level trouble on every link between nodes; [`Capabilities::message_faults`]
    /// systems only (others refuse).
    fn trouble(&mut self, trouble: Option<Trouble>) -> anyhow::Result<()>;
    /// Heals every link and ends any trouble.
    fn heal_network(&mut self);

    /// Resumes paused nodes, restarts killed ones, heals the network.
    fn heal(&mut self) -> anyhow::Result<()>;

    /// The nodes that exited by themselves since the last call, each with why.
    fn exited(&mut self) -> Vec<NodeExit>;

    /// The leader to aim a leader-targeted fault at, drawing a key partition from `rng` where
    /// there are several.
    fn leader(&self, rng: &mut StdRng) -> impl Future<Output = LeaderHint> + Send;

    /// Kills every node and returns once each is reaped. Idempotent.
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send;

    /// Facts for the results once the run is over (message counts, for one), as a JSON object
    /// merged into `results.json`; called after [`System::shutdown`].
    fn finish(&mut self, dir: &Path) -> anyhow::Result<SystemFacts>;
}

/// Where a system's nodes listen: a fresh loopback address per call. A picker of its own lets a
/// test hand out a port that is already taken.
pub type PortPicker =
    std::sync::Arc<dyn Fn() -> anyhow::Result<std::net::SocketAddr> + Send + Sync>;

/// Fresh loopback addresses below the ephemeral range ([`::kvnode::ports`]).
pub fn loopback_ports() -> PortPicker {
    std::sync::Arc::new(|| {
        ::kvnode::ports::unused_loopback_addr()
            .map_err(|e| anyhow::anyhow!("find a free loopback port: {e}"))
    })
}

/// Starts with fresh ports this many times when a node finds its port taken.
const START_ATTEMPTS: usize = 3;

/// Runs `start` (which picks fresh ports each time) until it succeeds, or fails for another
/// reason than a port taken by someone else ([`port_was_taken`]), at most [`START_ATTEMPTS`]
/// times. `names` are the nodes whose logs in `dir` say why a start failed.
pub(crate) async fn start_retrying_taken_ports<T, Fut>(
    dir: &Path,
    names: &[String],
    mut start: impl FnMut() -> Fut,
) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<T>>,
{
    for attempt in 1.. {
        let e = match start().await {
            Ok(started) => return Ok(started),
            Err(e) => e,
        };
        if attempt == START_ATTEMPTS || !port_was_taken(dir, names, attempt)? {
            return Err(e);
        }
    }
    unreachable!("the loop returns")
}

/// After a failed start: whether a node's log in `dir` says its port was taken (another
/// process bound it between the bench's choice and the node's bind). If so, moves each log
/// aside as `NAME.log.failed-start-N` and removes the data directories, for a fresh start.
fn port_was_taken(dir: &Path, names: &[String], attempt: usize) -> anyhow::Result<bool> {
    use anyhow::Context as _;
    let taken = names.iter().any(|n| {
        std::fs::read_to_string(dir.join(format!("{n}.log"))).is_ok_and(|log| {
            ::kvnode::ports::is_addr_in_use(&log)
                || log.to_ascii_lowercase().contains("address already in use")
        })
    });
    if !taken {
        return Ok(false);
    }
    eprintln!("a node's port was taken while the cluster started; starting again with fresh ports");
    for n in names {
        let log = dir.join(format!("{n}.log"));
        if log.exists() {
            std::fs::rename(&log, dir.join(format!("{n}.log.failed-start-{attempt}")))
                .with_context(|| format!("move {} aside", log.display()))?;
        }
    }
    let data = dir.join("data");
    if data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("remove {}", data.display()))?;
    }
    Ok(true)
}

/// What a system reports at the end of a run.
#[derive(Debug, Default)]
pub struct SystemFacts {
    pub messages: Option<reports::MessageStats>,
    /// What the nodes spent, as they counted it (kvnode); per operation is filled in later.
    pub costs: Option<reports::Costs>,
}

/// The system a run tests, as recorded in `config.toml` (`[system]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SystemConfig {
    /// kvlab's own store.
    Kvnode(KvnodeConfig),
    /// A program speaking Maelstrom's protocol, started once per node.
    Maelstrom(maelstrom::MaelstromConfig),
    /// etcd members.
    Etcd(etcd::EtcdConfig),
}

impl Default for SystemConfig {
    fn default() -> Self {
        SystemConfig::Kvnode(KvnodeConfig::default())
    }
}

/// kvnode's settings in `[system]` (`kind = "kvnode"`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvnodeConfig {
    /// The replication protocol of every partition (a config recorded before there was a
    /// choice ran Paxos).
    #[serde(default)]
    pub protocol: ::kvnode::config::Protocol,
}

impl SystemConfig {
    /// `kvnode (paxos)`, or `maelstrom: PATH ARGS`, for summaries and reports.
    pub fn describe(&self) -> String {
        match self {
            SystemConfig::Kvnode(k) => format!("kvnode ({})", k.protocol),
            SystemConfig::Maelstrom(m) => {
                let mut s = format!("maelstrom: {}", m.bin.display());
                for a in &m.args {
                    s.push(' ');
                    s.push_str(a);
                }
                s
            }
            SystemConfig::Etcd(e) if e.serializable_reads => "etcd (serializable reads)".into(),
            SystemConfig::Etcd(_) => "etcd".into(),
        }
    }
}
