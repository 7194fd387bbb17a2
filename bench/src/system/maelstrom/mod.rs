//! Any program speaking Maelstrom's protocol as a [`System`]: `bench run --system maelstrom
//! --bin PATH`.
//!
//! Each node is one process of the program, named `n1` .. `nN`; it reads messages
//! (`{"src","dest","body"}`, one JSON object per line) on stdin, writes messages on stdout and
//! logs on stderr (to `nX.log` in the run directory). It gets an `init` from client `c0` first.
//! The bench is the network: every message, between nodes and between the bench's clients
//! (`c1`, `c2`, ...: client `cN` is the history's process `N-1`) and nodes, passes through the
//! [`router`], which can cut links (every partition shape), delay, drop, duplicate and reorder
//! messages, and records each one to `messages.jsonl`.
//!
//! The workload is Maelstrom's lin-kv: `read {key}` → `read_ok {value}`, `write {key, value}` →
//! `write_ok`, `cas {key, from, to}` → `cas_ok`, errors as `{"type":"error","code",...}`. Keys and
//! values are integers on the wire ([`codec`]); the history keeps kvlab's `k5` and unique
//! written values. Error codes 1, 10, 11, 12, 14, 20, 21, 22 and 30 are definite (the operation
//! did not happen); 0 (timeout), 13 (crash) and codes Maelstrom does not define are not (`info`).
//! A read answered with 20 saw the key absent; a CAS answered with 20 or 22 saw the key not
//! holding `from` (a precondition miss).

pub mod codec;
pub mod router;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nemesis::fault::Trouble;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::procs::{NodeExit, NodeProcs};
use super::{
    Capabilities, ClientSpec, LeaderHint, Operation, Outcome, Session, System, SystemFacts,
};
use crate::workload::FINAL_READS_BASE;
use router::Network;

/// `[system]` of a run's `config.toml` for `kind = "maelstrom"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaelstromConfig {
    /// The node program.
    pub bin: PathBuf,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
}

impl MaelstromConfig {
    /// The program exists and may be executed.
    pub fn check(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(&self.bin)
            .map_err(|e| anyhow::anyhow!("--bin {}: {e}", self.bin.display()))?;
        if !meta.is_file() {
            bail!("--bin {}: not a file", self.bin.display());
        }
        if meta.permissions().mode() & 0o111 == 0 {
            bail!(
                "--bin {}: not executable (chmod +x it, or give its interpreter as --bin and \
                 the script as --bin-arg)",
                self.bin.display()
            );
        }
        Ok(())
    }
}

/// The client the bench sends `init` from.
const INIT_CLIENT: &str = "c0";

/// A cluster of Maelstrom nodes with the bench as their network.
pub struct Cluster {
    config: MaelstromConfig,
    dir: PathBuf,
    procs: NodeProcs,
    net: Arc<Network>,
    /// Replies to `init`.
    init_inbox: mpsc::UnboundedReceiver<Value>,
    /// Per node: the msg_id of the `init` it has not yet answered.
    init_pending: Vec<Option<u64>>,
    next_init_id: u64,
}

impl Cluster {
    /// Starts `nodes` processes of the program, sends each its `init`, and waits until each has
    /// answered. The network's random choices come from `seed`; `value_size` is the workload's
    /// (to map integers back to the values written).
    pub async fn start(
        config: &MaelstromConfig,
        nodes: usize,
        seed: u64,
        value_size: usize,
        dir: &Path,
    ) -> anyhow::Result<Cluster> {
        config.check()?;
        let names = super::kvnode::node_names(nodes);
        let net = Network::new(names.clone(), seed, value_size, &dir.join("messages.jsonl"))?;
        let init_inbox = net.register_client(INIT_CLIENT);
        let mut cluster = Cluster {
            config: config.clone(),
            dir: dir.to_owned(),
            procs: NodeProcs::new(names, |name| dir.join(format!("{name}.log"))),
            net,
            init_inbox,
            init_pending: vec![None; nodes],
            next_init_id: 1,
        };
        for i in 0..nodes {
            cluster.start_node(i)?;
        }
        cluster.wait_ready(Duration::from_secs(10)).await?;
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
        let mut cmd = Command::new(&self.config.bin);
        cmd.args(&self.config.args)
            .current_dir(std::env::current_dir()?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log);
        let what = self.config.bin.display().to_string();
        let child = self.procs.spawn(i, cmd, &what)?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let id = self.next_init_id;
        self.next_init_id += 1;
        self.init_pending[i] = Some(id);
        let init = json!({
            "src": INIT_CLIENT,
            "dest": name,
            "body": {
                "type": "init",
                "msg_id": id,
                "node_id": name,
                "node_ids": self.procs.names(),
            }
        });
        self.net.attach(i, stdin, stdout, &init.to_string())?;
        Ok(())
    }
}

impl System for Cluster {
    type Session = MaelstromSession;

    fn names(&self) -> Vec<String> {
        self.procs.names()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            delete: false,
            cas_from_absent: false,
            message_faults: true,
            durable: false,
            locks: false,
        }
    }

    /// A Maelstrom client talks to one node (there are no leader hints to follow).
    fn session(&self, c: &ClientSpec) -> MaelstromSession {
        let n = self.procs.nodes.len();
        // Client names follow the history's process numbers: process p is client c{p+1}.
        MaelstromSession::new(
            self.net.clone(),
            self.procs.names()[c.worker % n].clone(),
            c.worker as u64 + 1,
            NameStep::AfterInfo(c.workers as u64),
            c.timeout,
        )
    }

    fn reader(&self, timeout: Duration) -> MaelstromSession {
        // The final reads are processes FINAL_READS_BASE + k, one per key, in key order.
        MaelstromSession::new(
            self.net.clone(),
            self.procs.names()[0].clone(),
            FINAL_READS_BASE + 1,
            NameStep::EveryOp,
            timeout,
        )
    }

    fn begin(&mut self, start: Instant) {
        self.net.begin(start);
    }

    async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(exit) = self.exited().into_iter().next() {
                bail!("node {} exited {exit}", exit.name);
            }
            if self.init_pending.iter().all(Option::is_none) {
                return Ok(());
            }
            let poll = tokio::time::Instant::now() + Duration::from_millis(100);
            match tokio::time::timeout_at(poll.min(deadline), self.init_inbox.recv()).await {
                Ok(Some(body)) => {
                    let reply_to = body
                        .get("in_reply_to")
                        .and_then(codec::integer)
                        .map(|n| n as u64);
                    if body.get("type").and_then(Value::as_str) == Some("init_ok")
                        && let Some(slot) = self
                            .init_pending
                            .iter_mut()
                            .find(|p| p.is_some() && *p == &reply_to)
                    {
                        *slot = None;
                    }
                }
                Ok(None) => bail!("the bench's network stopped"),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    let waiting: Vec<String> = self
                        .init_pending
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.is_some())
                        .map(|(i, _)| self.procs.nodes[i].name.clone())
                        .collect();
                    bail!(
                        "{} did not answer init with init_ok within {within:?} (logs in {})",
                        waiting.join(", "),
                        self.dir.display()
                    );
                }
                Err(_) => {}
            }
        }
    }

    async fn kill(&mut self, node: &str) {
        if let Some(i) = self.procs.index(node) {
            self.net.detach(i);
            self.init_pending[i] = None;
        }
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
        self.net.cut(cuts)
    }

    fn trouble(&mut self, trouble: Option<Trouble>) -> anyhow::Result<()> {
        self.net.set_trouble(trouble);
        Ok(())
    }

    fn heal_network(&mut self) {
        self.net.heal();
    }

    fn heal(&mut self) -> anyhow::Result<()> {
        self.net.heal();
        for i in self.procs.resume_all() {
            self.start_node(i)?;
        }
        Ok(())
    }

    fn exited(&mut self) -> Vec<NodeExit> {
        let exits = self.procs.exited();
        for e in &exits {
            if let Some(i) = self.procs.index(&e.name) {
                self.net.detach(i);
            }
        }
        exits
    }

    /// A Maelstrom node does not say who leads.
    async fn leader(&self, _rng: &mut StdRng) -> LeaderHint {
        LeaderHint::default()
    }

    async fn shutdown(&mut self) {
        for i in 0..self.procs.nodes.len() {
            self.net.detach(i);
        }
        self.procs.shutdown().await;
    }

    fn finish(&mut self, _dir: &Path) -> anyhow::Result<SystemFacts> {
        let messages = self.net.finish()?;
        Ok(SystemFacts {
            messages: Some(messages),
            costs: None,
        })
    }
}

/// How a session's client name moves on.
#[derive(Clone, Copy, Debug)]
enum NameStep {
    /// After an operation with an unknown outcome, by this many (the workload's concurrency):
    /// the name follows the history's process number.
    AfterInfo(u64),
    /// After every operation, by one (the final reads: one process per key).
    EveryOp,
}

/// A client of one node, speaking lin-kv.
pub struct MaelstromSession {
    net: Arc<Network>,
    node: String,
    /// Client `c{id}`.
    id: u64,
    step: NameStep,
    inbox: mpsc::UnboundedReceiver<Value>,
    next_msg_id: u64,
    timeout: Duration,
}

impl MaelstromSession {
    fn new(
        net: Arc<Network>,
        node: String,
        id: u64,
        step: NameStep,
        timeout: Duration,
    ) -> MaelstromSession {
        let inbox = net.register_client(&format!("c{id}"));
        MaelstromSession {
            net,
            node,
            id,
            step,
            inbox,
            next_msg_id: 1,
            timeout,
        }
    }

    fn rename(&mut self, by: u64) {
        self.net.unregister_client(&format!("c{}", self.id));
        self.id += by;
        self.inbox = self.net.register_client(&format!("c{}", self.id));
    }

    async fn request(&mut self, op: &Operation) -> Outcome {
        let body = match codec::request(op) {
            Ok(body) => body,
            Err(why) => return Outcome::Fail(why),
        };
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        let mut body = body;
        body["msg_id"] = json!(msg_id);
        let message = json!({"src": format!("c{}", self.id), "dest": self.node, "body": body});
        self.net.send_from_client(&message.to_string());
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                Err(_) => return Outcome::Info("timeout".into()),
                Ok(None) => return Outcome::Info("the bench's network stopped".into()),
                Ok(Some(reply)) => {
                    // A late answer to an earlier request that timed out: not this one's.
                    if reply.get("in_reply_to").and_then(codec::integer) != Some(msg_id as i64) {
                        continue;
                    }
                    return codec::outcome(op, &reply, self.net.value_size());
                }
            }
        }
    }
}

impl Session for MaelstromSession {
    async fn perform(&mut self, op: &Operation) -> Outcome {
        let outcome = self.request(op).await;
        match (self.step, &outcome) {
            (NameStep::AfterInfo(by), Outcome::Info(_)) => self.rename(by),
            (NameStep::EveryOp, _) => self.rename(1),
            _ => {}
        }
        outcome
    }
}

impl Drop for MaelstromSession {
    fn drop(&mut self) {
        self.net.unregister_client(&format!("c{}", self.id));
    }
}
