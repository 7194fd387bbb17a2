//! A kvnode cluster owned by the bench: configuration, processes, faults, teardown.
//!
//! Each node runs in its own process group with its output in the run directory. Node-to-node
//! traffic goes through the bench's link layer (one proxy per directed link), so partitions
//! need neither root nor the node's cooperation. Teardown kills every process group and reaps
//! it: on drop (normal end, error, panic) and from the signal handlers of `bench run`. Should the
//! bench itself be killed with SIGKILL, each node also has a parent-death signal as a last
//! resort.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use kvnode::client::Client;
use kvnode::config::{ClusterConfig, Link, NodeConfig, Timing};
use nemesis::proxy::{Link as ProxyLink, LinkLayer};

#[derive(Clone)]
pub struct ClusterSpec {
    pub nodes: usize,
    pub partitions: u32,
    pub replication: usize,
    /// Written into `cluster.toml` for every node (the link layer adds the links).
    pub timing: Timing,
    pub kvnode: NodeBinary,
    pub node_args: Vec<String>,
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

struct NodeProc {
    name: String,
    child: Option<Child>,
    paused: bool,
}

pub struct Cluster {
    /// The configuration the nodes run with (peer traffic through the link layer).
    pub config: ClusterConfig,
    config_path: PathBuf,
    dir: PathBuf,
    spec: ClusterSpec,
    nodes: Vec<NodeProc>,
    pub links: LinkLayer,
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    kvnode::ports::unused_loopback_addr().context("find a free loopback port")
}

/// Starts with fresh ports this many times when a node finds its port taken.
const START_ATTEMPTS: usize = 3;

/// The node binary: the one given; else this `bench` itself, which carries the node code of
/// the same build (a `kvnode` lying beside it may be from an older build, and a bench must not
/// test a store other than the one it was built with).
/// The names of a cluster's `n` nodes: `n1` to `nN`.
pub(crate) fn node_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

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
        for attempt in 1.. {
            let result = Cluster::start_once(spec.clone(), dir).await;
            let Err(e) = result else {
                return result;
            };
            let names = node_names(spec.nodes);
            let in_use = names.iter().any(|n| {
                std::fs::read_to_string(dir.join(format!("{n}.log")))
                    .is_ok_and(|log| kvnode::ports::is_addr_in_use(&log))
            });
            if !in_use || attempt == START_ATTEMPTS {
                return Err(e);
            }
            eprintln!(
                "a node's port was taken while the cluster started; starting again with fresh ports"
            );
            for n in &names {
                let log = dir.join(format!("{n}.log"));
                if log.exists() {
                    std::fs::rename(&log, dir.join(format!("{n}.log.failed-start-{attempt}")))
                        .with_context(|| format!("move {} aside", log.display()))?;
                }
            }
            let data = dir.join("data");
            if data.exists() {
                std::fs::remove_dir_all(&data)
                    .with_context(|| format!("remove {}", data.display()))?;
            }
        }
        unreachable!("the loop returns")
    }

    async fn start_once(spec: ClusterSpec, dir: &Path) -> anyhow::Result<Cluster> {
        let names = node_names(spec.nodes);
        let mut nodes = Vec::new();
        for name in &names {
            nodes.push(NodeConfig {
                id: name.clone(),
                client: free_addr()?,
                peer: free_addr()?,
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
            nodes: names
                .into_iter()
                .map(|name| NodeProc {
                    name,
                    child: None,
                    paused: false,
                })
                .collect(),
            links,
        };
        for i in 0..cluster.nodes.len() {
            cluster.start_node(i)?;
        }
        cluster.wait_ready(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let name = self.nodes[i].name.clone();
        let log_path = self.dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        let mut cmd = self.spec.kvnode.command();
        cmd.arg("--config")
            .arg(&self.config_path)
            .args(["--id", &name, "--data-dir"])
            .arg(self.dir.join("data").join(&name))
            .args(&self.spec.node_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        // SAFETY: only async-signal-safe calls (prctl) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start {} as {name}", self.spec.kvnode.describe()))?;
        self.nodes[i].child = Some(child);
        self.nodes[i].paused = false;
        Ok(())
    }

    /// Waits until a write to every partition succeeds; fails at once, naming the node, if a
    /// node exits meanwhile (a bad flag, a port in use, an unreadable data directory).
    pub async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
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

    /// The nodes that exited by themselves since the last call (not those the bench killed),
    /// each with why. They stay down until [`Cluster::restart`] or [`Cluster::heal`].
    pub fn exited(&mut self) -> Vec<NodeExit> {
        let mut exits = Vec::new();
        for n in &mut self.nodes {
            if let Some(child) = n.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                n.child = None;
                let log = self.dir.join(format!("{}.log", n.name));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                // Its last error line says why (clap, for one, ends with a hint instead).
                let lines = || text.lines().rev().filter(|l| !l.trim().is_empty());
                let why = lines()
                    .find(|l| l.to_ascii_lowercase().contains("error"))
                    .or_else(|| lines().next())
                    .unwrap_or("(empty log)")
                    .to_owned();
                exits.push(NodeExit {
                    name: n.name.clone(),
                    status,
                    why,
                    log,
                });
            }
        }
        exits
    }

    fn pid(&self, name: &str) -> Option<u32> {
        let i = self.index(name)?;
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// SIGKILL to the node's process group; returns once the node is reaped (so that a restart
    /// never races the dead node for its ports and data directory).
    pub async fn kill(&mut self, name: &str) {
        if let Some(i) = self.index(name)
            && let Some(child) = self.nodes[i].child.take()
        {
            let _ = nemesis::process::kill_group(child.id());
            reap(vec![child]).await;
        }
    }

    pub fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        match self.index(name) {
            Some(i) if self.nodes[i].child.is_none() => self.start_node(i),
            _ => Ok(()),
        }
    }

    pub fn pause(&mut self, name: &str) {
        if let Some(pid) = self.pid(name) {
            let _ = nemesis::process::pause_group(pid);
            let i = self.index(name).expect("has a pid");
            self.nodes[i].paused = true;
        }
    }

    pub fn resume(&mut self, name: &str) {
        if let Some(pid) = self.pid(name) {
            let _ = nemesis::process::resume_group(pid);
            let i = self.index(name).expect("has a pid");
            self.nodes[i].paused = false;
        }
    }

    /// Ends every fault: resumes paused nodes, restarts killed ones, heals the network.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        self.links.heal_all();
        for i in 0..self.nodes.len() {
            let name = self.nodes[i].name.clone();
            if self.nodes[i].paused {
                self.resume(&name);
            }
            if self.nodes[i].child.is_none() {
                self.start_node(i)?;
            }
        }
        Ok(())
    }

    /// Kills every node and returns once each is reaped. Idempotent.
    pub async fn shutdown(&mut self) {
        reap(self.kill_all()).await;
    }

    /// SIGKILL to every node's process group; returns the children, for the caller to reap.
    fn kill_all(&mut self) -> Vec<Child> {
        let mut killed = Vec::new();
        for n in &mut self.nodes {
            if let Some(child) = n.child.take() {
                let pid = child.id();
                if n.paused {
                    let _ = nemesis::process::resume_group(pid);
                }
                let _ = nemesis::process::kill_group(pid);
                killed.push(child);
            }
        }
        killed
    }
}

/// Waits for killed nodes on tokio's blocking pool, so the runtime's workers (the clients, the
/// nemesis, the link layer's proxies) keep running meanwhile. The children move to the blocking
/// thread, so they are reaped even if the caller stops waiting.
async fn reap(killed: Vec<Child>) {
    if killed.is_empty() {
        return;
    }
    let reaped = tokio::task::spawn_blocking(move || {
        for mut child in killed {
            let _ = child.wait();
        }
    });
    let _ = reaped.await;
}

/// A node that exited by itself, as [`Cluster::exited`] reports it.
#[derive(Debug)]
pub struct NodeExit {
    pub name: String,
    pub status: std::process::ExitStatus,
    /// The last error line of its log (or its last line).
    pub why: String,
    pub log: PathBuf,
}

impl std::fmt::Display for NodeExit {
    /// `(exit status: 1): <why> (log: <path>)`: follows "node NAME exited ...".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "({}): {} (log: {})",
            self.status,
            self.why,
            self.log.display()
        )
    }
}

impl Drop for Cluster {
    /// Drop cannot await, so it reaps in place; the nodes have just been sent SIGKILL, so the
    /// wait is short.
    fn drop(&mut self) {
        for mut child in self.kill_all() {
            let _ = child.wait();
        }
    }
}
