//! etcd as a [`System`]: `bench run --system etcd [--etcd-bin PATH]`.
//!
//! N members of the `etcd` binary (Debian's `etcd-server` package) on loopback ports the bench
//! picks, data directories and logs in the run directory, ready when every member's `/health`
//! says so, and torn down on every path like any node ([`super::procs`]).
//!
//! Partitions: etcd members dial one another at the peer URLs they advertise, which all members
//! share, so each member advertises the address of a proxy of its own
//! ([`nemesis::peer_proxy`]), which tells senders apart by the headers of etcd's raft transport
//! and cuts exactly the directed links a fault names. Message-level faults (delay, loss,
//! duplication, reordering) act on single messages, which these proxies do not see: refused.
//!
//! The client is [`client::EtcdClient`], over the v3 JSON gateway.

pub mod client;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nemesis::fault::Trouble;
use nemesis::peer_proxy::PeerProxies;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::procs::{NodeExit, NodeProcs};
use super::{
    Capabilities, ClientSpec, LeaderHint, Operation, Outcome, Session, System, SystemFacts,
};
use super::{PortPicker, start_retrying_taken_ports};
use client::EtcdClient;

/// `[system]` of a run's `config.toml` for `kind = "etcd"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// The etcd binary; `None`: `etcd` from `PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin: Option<PathBuf>,
    /// Reads served by whichever member answers (etcd's serializable range), which may be
    /// stale; the default is linearizable reads.
    #[serde(default)]
    pub serializable_reads: bool,
}

impl EtcdConfig {
    /// The binary to run, or a one-line error naming the package that has it.
    pub fn binary(&self) -> anyhow::Result<PathBuf> {
        if let Some(bin) = &self.bin {
            if !bin.is_file() {
                bail!("--etcd-bin {}: no such file", bin.display());
            }
            return Ok(bin.clone());
        }
        find_on_path("etcd").ok_or_else(|| {
            anyhow::anyhow!(
                "--system etcd: no `etcd` on PATH; install it (Debian: apt-get install \
                 etcd-server) or give --etcd-bin PATH"
            )
        })
    }
}

/// `name` in one of `PATH`'s directories.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// One member's addresses.
#[derive(Clone, Debug)]
struct Member {
    name: String,
    client: SocketAddr,
    /// Where it listens for peers.
    peer: SocketAddr,
}

/// An etcd cluster owned by the bench.
pub struct Cluster {
    config: EtcdConfig,
    bin: PathBuf,
    dir: PathBuf,
    members: Vec<Member>,
    proxies: PeerProxies,
    procs: NodeProcs,
    /// etcd's member ids (hex) → names, once known.
    ids: HashMap<String, String>,
    token: String,
}

impl Cluster {
    /// Starts `nodes` members behind their peer proxies and waits until every one is healthy;
    /// starts again with fresh ports (`ports`) when a member finds its port taken.
    pub async fn start(
        config: &EtcdConfig,
        nodes: usize,
        seed: u64,
        dir: &Path,
        ports: PortPicker,
    ) -> anyhow::Result<Cluster> {
        start_retrying_taken_ports(dir, &super::kvnode::node_names(nodes), || {
            Cluster::start_once(config, nodes, seed, dir, &ports)
        })
        .await
    }

    async fn start_once(
        config: &EtcdConfig,
        nodes: usize,
        seed: u64,
        dir: &Path,
        ports: &PortPicker,
    ) -> anyhow::Result<Cluster> {
        let bin = config.binary()?;
        let names = super::kvnode::node_names(nodes);
        let mut members = Vec::new();
        for name in &names {
            members.push(Member {
                name: name.clone(),
                client: ports()?,
                peer: ports()?,
            });
        }
        let proxies =
            PeerProxies::start(members.iter().map(|m| (m.name.clone(), m.peer)).collect())
                .await
                .context("start the peer proxies")?;
        let mut cluster = Cluster {
            config: config.clone(),
            bin,
            dir: dir.to_owned(),
            members,
            proxies,
            procs: NodeProcs::new(names, |name| dir.join(format!("{name}.log"))),
            ids: HashMap::new(),
            token: format!("kvlab-{seed}"),
        };
        for i in 0..nodes {
            cluster.start_member(i)?;
        }
        cluster.wait_ready(Duration::from_secs(30)).await?;
        cluster.learn_ids().await?;
        Ok(cluster)
    }

    fn start_member(&mut self, i: usize) -> anyhow::Result<()> {
        let m = self.members[i].clone();
        let log_path = &self.procs.nodes[i].log;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|o| {
                let proxy = self.proxies.addr(&o.name).expect("a proxy per member");
                format!("{}=http://{proxy}", o.name)
            })
            .collect();
        let advertised = self.proxies.addr(&m.name).expect("a proxy per member");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.dir.join("data").join(&m.name))
            .arg("--listen-client-urls")
            .arg(format!("http://{}", m.client))
            .arg("--advertise-client-urls")
            .arg(format!("http://{}", m.client))
            .arg("--listen-peer-urls")
            .arg(format!("http://{}", m.peer))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://{advertised}"))
            .arg("--initial-cluster")
            .arg(initial.join(","))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(&self.token)
            // Elections within a second or so, as kvnode's: a test run is short.
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let what = self.bin.display().to_string();
        self.procs.spawn(i, cmd, &what)?;
        Ok(())
    }

    fn client_of(&self, i: usize, timeout: Duration) -> EtcdClient {
        EtcdClient::new(
            self.members[i].client,
            timeout,
            self.config.serializable_reads,
        )
    }

    /// Each member's id, from the member list, for the proxies and for leader hints.
    async fn learn_ids(&mut self) -> anyhow::Result<()> {
        let answer = self
            .client_of(0, Duration::from_secs(5))
            .call("/v3/cluster/member/list", &json!({}))
            .await
            .map_err(|e| anyhow::anyhow!("list etcd's members: {e}"))?;
        let mut ids = HashMap::new();
        for m in answer
            .get("members")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(name)) = (member_id(m.get("ID")), m.get("name")) else {
                continue;
            };
            if let Some(name) = name.as_str() {
                ids.insert(id, name.to_owned());
            }
        }
        self.proxies.learn_ids(ids.clone());
        self.ids = ids;
        Ok(())
    }

    /// Whether member `i`'s `/health` says so (it has a leader and a quorum answers it).
    async fn healthy(&self, i: usize) -> bool {
        let c = self.client_of(i, Duration::from_secs(2));
        matches!(c.get("/health").await, Ok(v) if v.get("health") == Some(&json!("true")))
    }
}

/// An id as the gateway writes it (a decimal string of a uint64) in etcd's hex form.
fn member_id(v: Option<&Value>) -> Option<String> {
    let v = v?;
    let n: u64 = match v {
        Value::String(s) => s.parse().ok()?,
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    Some(format!("{n:x}"))
}

impl System for Cluster {
    type Session = EtcdSession;

    fn names(&self) -> Vec<String> {
        self.procs.names()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            delete: true,
            cas_from_absent: true,
            message_faults: false,
            durable: true,
            locks: true,
        }
    }

    fn session(&self, c: &ClientSpec) -> EtcdSession {
        EtcdSession::new(
            self.client_of(c.worker % self.members.len(), c.timeout),
            c.lease_ttl,
        )
    }

    fn reader(&self, timeout: Duration) -> EtcdSession {
        EtcdSession::new(self.client_of(0, timeout), Duration::from_secs(2))
    }

    fn begin(&mut self, _start: std::time::Instant) {}

    /// Until every running member serves a linearizable read (it has a leader and a quorum).
    async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(exit) = self.exited().into_iter().next() {
                bail!("etcd member {} exited {exit}", exit.name);
            }
            let mut all = true;
            for i in 0..self.members.len() {
                if !self.healthy(i).await {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the etcd cluster did not become healthy within {within:?} (logs in {})",
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn kill(&mut self, node: &str) {
        self.procs.kill(node).await;
    }

    fn restart(&mut self, node: &str) -> anyhow::Result<()> {
        match self.procs.index(node) {
            Some(i) if !self.procs.is_up(node) => self.start_member(i),
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
        Ok(self.proxies.partition(cuts)?)
    }

    fn trouble(&mut self, trouble: Option<Trouble>) -> anyhow::Result<()> {
        match trouble {
            None => Ok(()),
            Some(_) => bail!(
                "etcd's peers talk over HTTP streams: the bench can cut a link, not delay, \
                 drop, duplicate or reorder single raft messages"
            ),
        }
    }

    fn heal_network(&mut self) {
        self.proxies.heal_all();
    }

    fn heal(&mut self) -> anyhow::Result<()> {
        self.proxies.heal_all();
        for i in self.procs.resume_all() {
            self.start_member(i)?;
        }
        Ok(())
    }

    fn exited(&mut self) -> Vec<NodeExit> {
        self.procs.exited()
    }

    /// The leader, as the first member that answers its status names it.
    async fn leader(&self, _rng: &mut StdRng) -> LeaderHint {
        for i in 0..self.members.len() {
            let answer = self
                .client_of(i, Duration::from_secs(1))
                .call("/v3/maintenance/status", &json!({}))
                .await;
            if let Ok(status) = answer
                && let Some(id) = member_id(status.get("leader"))
                && let Some(name) = self.ids.get(&id)
            {
                return LeaderHint {
                    partition: None,
                    node: Some(name.clone()),
                };
            }
        }
        LeaderHint::default()
    }

    async fn shutdown(&mut self) {
        self.procs.shutdown().await;
    }

    fn finish(&mut self, _dir: &Path) -> anyhow::Result<SystemFacts> {
        Ok(SystemFacts::default())
    }
}

/// A client of one member; for the lock workload, also the leases and locks it holds.
pub struct EtcdSession {
    client: EtcdClient,
    lease_ttl: Duration,
    /// Lock name → what holding it takes.
    held: HashMap<String, Held>,
}

/// A lock this session holds: the lease it is held under (kept alive by `keepalive`) and the
/// key etcd's lock API created for it.
struct Held {
    lease: String,
    key: Value,
    keepalive: tokio::task::JoinHandle<()>,
}

impl EtcdSession {
    fn new(client: EtcdClient, lease_ttl: Duration) -> EtcdSession {
        EtcdSession {
            client,
            lease_ttl,
            held: HashMap::new(),
        }
    }

    /// A lease, then the lock under it (waiting while another holds it), then a task that keeps
    /// the lease alive every third of its time to live. A lock whose fate is unknown has its
    /// lease revoked, so that it is not held by nobody for long.
    async fn acquire(&mut self, name: &str) -> Outcome {
        let ttl = self.lease_ttl.as_secs().max(1);
        let lease = match self
            .client
            .call("/v3/lease/grant", &json!({"TTL": ttl}))
            .await
        {
            Ok(v) => match v.get("ID").and_then(Value::as_str) {
                Some(id) => id.to_owned(),
                None => return Outcome::Fail(format!("a lease grant without an ID: {v}")),
            },
            // No lease, no lock: the acquire did not happen.
            Err(e) => return Outcome::Fail(format!("lease grant: {e}")),
        };
        // Kept alive from now on, while waiting for the lock too, as etcd's own client
        // sessions do: a lease left to run out while its lock request waits would take the
        // request's key with it, and the lock would be answered for a key that is gone.
        let (client, id, every) = (self.client.clone(), lease.clone(), self.lease_ttl / 3);
        let keepalive = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let _ = client.call("/v3/lease/keepalive", &json!({"ID": id})).await;
            }
        });
        let body = json!({"name": client::key64(name), "lease": lease});
        let answer = self.client.call("/v3/lock/lock", &body).await;
        let outcome = match answer {
            Ok(v) => match v.get("key").cloned() {
                Some(key) => {
                    self.held.insert(
                        name.to_owned(),
                        Held {
                            lease,
                            key,
                            keepalive,
                        },
                    );
                    return Outcome::Ok(None);
                }
                None => Outcome::Info(format!("a lock answer without a key: {v}")),
            },
            Err(e @ client::CallError::NotSent(_)) => Outcome::Fail(format!("lock: {e}")),
            Err(e) => Outcome::Info(format!("lock: {e}")),
        };
        keepalive.abort();
        self.revoke(&lease);
        outcome
    }

    /// Unlocks and revokes the lease. Anything short of an answer is unknown: the lock may
    /// still be released when its lease runs out.
    async fn release(&mut self, name: &str) -> Outcome {
        let Some(held) = self.held.remove(name) else {
            return Outcome::Fail(format!(
                "release of {name}, which this client does not hold"
            ));
        };
        held.keepalive.abort();
        let answer = self
            .client
            .call("/v3/lock/unlock", &json!({"key": held.key}))
            .await;
        self.revoke(&held.lease);
        match answer {
            Ok(_) => Outcome::Ok(None),
            Err(e) => Outcome::Info(format!("unlock: {e}")),
        }
    }

    /// Revokes a lease in the background (best effort: it runs out by itself otherwise).
    fn revoke(&self, lease: &str) {
        let (client, id) = (self.client.clone(), lease.to_owned());
        tokio::spawn(async move {
            let _ = client.call("/v3/lease/revoke", &json!({"ID": id})).await;
        });
    }
}

impl Session for EtcdSession {
    async fn perform(&mut self, op: &Operation) -> Outcome {
        match op {
            Operation::Acquire { key } => self.acquire(key).await,
            Operation::Release { key } => self.release(key).await,
            _ => self.client.perform(op).await,
        }
    }
}

impl Drop for EtcdSession {
    fn drop(&mut self) {
        for held in self.held.values() {
            held.keepalive.abort();
        }
    }
}
