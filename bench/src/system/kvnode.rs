//! kvnode as a [`System`]: configuration, processes, faults, teardown.
//!
//! Each node runs in its own process group with its output in the run directory. Node-to-node
//! traffic goes through the bench's link layer (one proxy per directed link), so partitions
//! need neither root nor the node's cooperation. Teardown kills every process group and reaps
//! it: on drop (normal end, error, panic) and from the signal handlers of `bench run`. Should the
//! bench itself be killed with SIGKILL, each node also has a parent-death signal as a last
//! resort.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use kvnode::client::{Client, ClientError};
use kvnode::command::{Op, Reply};
use kvnode::config::{ClusterConfig, Link, NodeConfig, Protocol, Timing};
use nemesis::fault::Trouble;
use nemesis::proxy::{Link as ProxyLink, LinkLayer};
use rand::RngExt;
use rand::rngs::StdRng;

use super::procs::{NodeExit, NodeProcs};
use super::{
    Capabilities, ClientSpec, LeaderHint, Operation, Outcome, Session, System, SystemFacts,
};
use super::{PortPicker, start_retrying_taken_ports};

#[derive(Clone)]
pub struct ClusterSpec {
    /// What every partition runs.
    pub protocol: Protocol,
    pub nodes: usize,
    pub partitions: u32,
    pub replication: usize,
    /// Written into `cluster.toml` for every node (the link layer adds the links).
    pub timing: Timing,
    pub kvnode: NodeBinary,
    pub node_args: Vec<String>,
    /// Where the nodes listen ([`super::loopback_ports`]).
    pub ports: PortPicker,
}

/// How to start a node.
#[derive(Clone, Debug)]
pub enum NodeBinary {
    /// A `kvnode` executable.
    Path(PathBuf),
    /// This `bench` executable, as `bench kvnode ...`.
    Bench(PathBuf),
}

impl NodeBinary {
    fn command(&self) -> Command {
        match self {
            NodeBinary::Path(p) => Command::new(p),
            NodeBinary::Bench(p) => {
                let mut c = Command::new(p);
                c.arg("kvnode");
                c
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            NodeBinary::Path(p) => p.display().to_string(),
            NodeBinary::Bench(p) => format!("{} kvnode", p.display()),
        }
    }
}

/// A kvnode cluster owned by the bench.
pub struct Cluster {
    /// The configuration the nodes run with (peer traffic through the link layer).
    pub config: ClusterConfig,
    config_path: PathBuf,
    dir: PathBuf,
    spec: ClusterSpec,
    procs: NodeProcs,
    pub links: LinkLayer,
}

/// The names of a cluster's `n` nodes: `n1` to `nN`.
pub(crate) fn node_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

/// The node binary: the one given; else this `bench` itself, which carries the node code of
/// the same build (a `kvnode` lying beside it may be from an older build, and a bench must not
/// test a store other than the one it was built with).
pub fn find_kvnode(given: Option<&Path>) -> anyhow::Result<NodeBinary> {
    if let Some(p) = given {
        if !p.is_file() {
            bail!("--kvnode {}: no such file", p.display());
        }
        return Ok(NodeBinary::Path(p.to_owned()));
    }
    let me = std::env::current_exe().context("locate the bench binary")?;
    Ok(NodeBinary::Bench(me))
}

impl Cluster {
    /// Writes the configuration, starts the link layer and every node, and waits until every
    /// partition answers. A node that exits because another socket took its port (see
    /// [`kvnode::ports`]) makes the start begin again with fresh ports; its log is kept as
    /// `NAME.log.failed-start-N`.
    pub async fn start(spec: ClusterSpec, dir: &Path) -> anyhow::Result<Cluster> {
        start_retrying_taken_ports(dir, &node_names(spec.nodes), || {
            Cluster::start_once(spec.clone(), dir)
        })
        .await
    }

    async fn start_once(spec: ClusterSpec, dir: &Path) -> anyhow::Result<Cluster> {
        let names = node_names(spec.nodes);
        let mut nodes = Vec::new();
        for name in &names {
            nodes.push(NodeConfig {
                id: name.clone(),
                client: (spec.ports)()?,
                peer: (spec.ports)()?,
            });
        }
        let mut proxy_links = Vec::new();
        for from in &nodes {
            for to in &nodes {
                if from.id != to.id {
                    proxy_links.push(ProxyLink {
                        from: from.id.clone(),
                        to: to.id.clone(),
                        target: to.peer,
                    });
                }
            }
        }
        let links = LinkLayer::start(proxy_links)
            .await
            .context("start the link layer")?;
        let mut config = ClusterConfig {
            partitions: spec.partitions,
            replication: spec.replication,
            protocol: spec.protocol,
            nodes,
            timing: spec.timing.clone(),
            links: Vec::new(),
        };
        for from in &names {
            for to in &names {
                if from != to {
                    config.links.push(Link {
                        from: from.clone(),
                        to: to.clone(),
                        addr: links.addr(from, to).expect("a proxy per link"),
                    });
                }
            }
        }
        config.validate()?;
        let config_path = dir.join("cluster.toml");
        std::fs::write(&config_path, config.to_toml())
            .with_context(|| format!("write {}", config_path.display()))?;
        let mut cluster = Cluster {
            config,
            config_path,
            dir: dir.to_owned(),
            spec,
            procs: NodeProcs::new(names, |name| dir.join(format!("{name}.log"))),
            links,
        };
        for i in 0..cluster.procs.nodes.len() {
            cluster.start_node(i)?;
        }
        cluster.wait_ready(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let name = self.procs.nodes[i].name.clone();
        let log_path = &self.procs.nodes[i].log;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        let mut cmd = self.spec.kvnode.command();
        cmd.arg("--config")
            .arg(&self.config_path)
            .args(["--id", &name, "--data-dir"])
            .arg(self.dir.join("data").join(&name))
            .args(&self.spec.node_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.procs.spawn(i, cmd, &self.spec.kvnode.describe())?;
        Ok(())
    }

    /// One write to every partition, each given a second.
    async fn probe(&self) -> anyhow::Result<()> {
        let client = Client::new(&self.config, 0, u64::MAX - 1, Duration::from_secs(1));
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..10_000 {
            let k = format!("ready-{i}");
            if seen.insert(self.config.partition_of(&k)) {
                client.put(&k, "ready").await?;
            }
            if seen.len() == self.config.partitions as usize {
                break;
            }
        }
        Ok(())
    }
}

/// The first of the keys `k0`, `k1`, ... that belongs to `partition`. One exists for any
/// partition: the hash spreads keys evenly, so about `partitions` tries find one.
pub(crate) fn key_in(config: &ClusterConfig, partition: u32) -> String {
    (0u64..)
        .map(|i| format!("k{i}"))
        .find(|k| config.partition_of(k) == partition)
        .expect("the keys are endless")
}

impl System for Cluster {
    type Session = KvSession;

    fn names(&self) -> Vec<String> {
        self.procs.names()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            delete: true,
            cas_from_absent: true,
            message_faults: false,
            durable: true,
            locks: false,
        }
    }

    fn session(&self, c: &ClientSpec) -> KvSession {
        let nodes = self.config.nodes.len();
        let client = Client::new(
            &self.config,
            c.worker % nodes,
            c.worker as u64 + 1,
            c.timeout,
        );
        KvSession(if c.sticky { client.sticky() } else { client })
    }

    fn reader(&self, timeout: Duration) -> KvSession {
        KvSession(Client::new(&self.config, 0, u64::MAX - 2, timeout))
    }

    fn begin(&mut self, _start: std::time::Instant) {}

    /// Waits until a write to every partition succeeds; fails at once, naming the node, if a
    /// node exits meanwhile (a bad flag, a port in use, an unreadable data directory).
    async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let attempt = self.probe().await;
            if let Some(exit) = self.exited().into_iter().next() {
                bail!("node {} exited while starting {exit}", exit.name);
            }
            if attempt.is_ok() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return attempt.with_context(|| {
                    format!(
                        "the cluster did not become ready within {within:?} (logs in {})",
                        self.dir.display()
                    )
                });
            }
        }
    }

    async fn kill(&mut self, node: &str) {
        self.procs.kill(node).await;
    }

    fn restart(&mut self, node: &str) -> anyhow::Result<()> {
        match self.procs.index(node) {
            Some(i) if !self.procs.is_up(node) => self.start_node(i),
            _ => Ok(()),
        }
    }

    fn pause(&mut self, node: &str) {
        self.procs.pause(node);
    }

    fn resume(&mut self, node: &str) {
        self.procs.resume(node);
    }

    fn partition(&mut self, cuts: &[(String, String)]) -> anyhow::Result<()> {
        Ok(self.links.partition(cuts)?)
    }

    fn trouble(&mut self, trouble: Option<Trouble>) -> anyhow::Result<()> {
        match trouble {
            None => Ok(()),
            Some(_) => bail!(
                "kvnode's links are TCP proxies: they can cut a link, not delay, drop, \
                 duplicate or reorder single messages"
            ),
        }
    }

    fn heal_network(&mut self) {
        self.links.heal_all();
    }

    fn heal(&mut self) -> anyhow::Result<()> {
        self.links.heal_all();
        for i in self.procs.resume_all() {
            self.start_node(i)?;
        }
        Ok(())
    }

    fn exited(&mut self) -> Vec<NodeExit> {
        self.procs.exited()
    }

    /// The leader of a partition drawn from `rng`, as a fresh client learns it from a read of
    /// one of its keys.
    async fn leader(&self, rng: &mut StdRng) -> LeaderHint {
        let partition = rng.random_range(0..self.config.partitions);
        let probe = Client::new(&self.config, 0, u64::MAX - 3, Duration::from_secs(2));
        let _ = probe.get(&key_in(&self.config, partition)).await;
        LeaderHint {
            partition: Some(partition),
            node: probe.leader_of(partition).map(str::to_owned),
        }
    }

    /// Stops every node with SIGTERM, so that each logs its final costs line (killed after
    /// 2 s if it has not exited by then).
    async fn shutdown(&mut self) {
        self.procs.stop(Duration::from_secs(2)).await;
    }

    /// The nodes' costs from their logs (per operation: filled in by the caller).
    fn finish(&mut self, dir: &Path) -> anyhow::Result<SystemFacts> {
        let costs = crate::costs::of_run(dir, &self.procs.names(), 0)
            .context("read the nodes' costs from their logs")?;
        Ok(SystemFacts {
            messages: None,
            costs: Some(costs),
        })
    }
}

/// A kvnode client session.
pub struct KvSession(Client);

impl Session for KvSession {
    async fn perform(&mut self, op: &Operation) -> Outcome {
        let op = match op.clone() {
            Operation::Read { key } => Op::Get { key },
            Operation::Write { key, value } => Op::Put { key, value },
            Operation::Cas { key, expected, new } => Op::Cas { key, expected, new },
            Operation::Delete { key } => Op::Delete { key },
            Operation::Acquire { .. } | Operation::Release { .. } => {
                return Outcome::Fail("kvnode has no locks".into());
            }
        };
        match self.0.execute(op).await {
            Ok(Reply::Value(v)) => Outcome::Ok(v),
            Ok(Reply::Done | Reply::Swapped) => Outcome::Ok(None),
            Ok(Reply::Mismatch { current }) => Outcome::CasMiss(Some(current)),
            Ok(Reply::Stale) => Outcome::Fail("stale session".into()),
            Err(ClientError::Failed(why)) => Outcome::Fail(why),
            Err(ClientError::Unknown(why)) => Outcome::Info(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(partitions: u32) -> ClusterConfig {
        let mut text = format!("partitions = {partitions}\nreplication = 3\n");
        for i in 1..=3 {
            text += &format!(
                "[[node]]\nid = \"n{i}\"\nclient = \"127.0.0.1:710{i}\"\npeer = \"127.0.0.1:720{i}\"\n"
            );
        }
        ClusterConfig::parse(&text).unwrap()
    }

    #[test]
    fn every_partition_has_a_key_to_find_its_leader_by() {
        for partitions in [1, 8, 61] {
            let c = config(partitions);
            for p in 0..partitions {
                assert_eq!(c.partition_of(&key_in(&c, p)), p);
            }
        }
    }
}
