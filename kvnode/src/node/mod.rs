//! The node runtime: the thin tokio shell around the partitions.
//!
//! One task, the *core*, owns every partition this node replicates and is the only code that
//! touches them. Everything else talks to it through one channel of `Input`s: client requests,
//! peer messages, ticks, and "the log is durable up to here". For each batch of inputs the core
//! collects the partitions' outboxes and:
//! 1. sends the records to persist, together with the messages that may only leave once they are
//!    durable, to the WAL thread, which appends a whole queue of batches, syncs once (group
//!    commit), and only then releases those messages;
//! 2. sends the other messages at once;
//! 3. answers clients whose requests completed.
//!
//! Requests for a partition this node does not lead are forwarded to the leader it knows of
//! (at most two hops); requests that cannot be placed anywhere fail as "did not happen".

mod net;
mod wal_thread;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::command::Command;
use crate::config::ClusterConfig;
use crate::partition::{Partition, PartitionConfig, Refusal, RequestId, Response};
use crate::paxos::{Durable, NodeId, Outbox, ReplicaConfig};
use crate::wal;
use crate::wire::{Outcome, PeerMessage, Request, Response as WireResponse};
use net::PeerLink;

/// How long a forwarded request may wait for the other node's answer (clients retry sooner).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// Inputs handled before the core flushes (bounds latency under load).
const MAX_BATCH: usize = 512;

/// Per-node switches.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    pub id: String,
    pub data_dir: PathBuf,
    /// Deliberate bug: serve GET from the local replica without confirming leadership.
    pub unsafe_read_local: bool,
    /// Deliberate bug: acknowledge PUT/DELETE once the leader has logged it, before a quorum.
    pub unsafe_early_ack: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("no node named {0:?} in the configuration")]
    UnknownNode(String),
    #[error("cannot use data directory {path}: {message}")]
    DataDir { path: PathBuf, message: String },
    #[error("write-ahead log in {path}: {message}")]
    Log { path: PathBuf, message: String },
}

pub(crate) enum Input {
    Client {
        request: Request,
        reply: mpsc::UnboundedSender<WireResponse>,
    },
    Peer {
        from: NodeId,
        msg: PeerMessage,
    },
    Tick,
    /// Everything sent to the WAL thread so far is durable.
    Synced,
    /// The log grew large: write a checkpoint.
    CheckpointWanted,
    /// The WAL failed; the node must stop.
    LogFailed(String),
}

/// Where the answer to a request goes.
enum Origin {
    Client {
        id: u64,
        reply: mpsc::UnboundedSender<WireResponse>,
    },
    Peer {
        node: NodeId,
        id: u64,
    },
}

struct Pending {
    origin: Origin,
    request: Request,
    partition: u32,
    hops: u8,
}

struct Core {
    config: ClusterConfig,
    me: NodeId,
    partitions: BTreeMap<u32, Partition>,
    peers: Vec<Option<PeerLink>>,
    wal: mpsc::UnboundedSender<wal_thread::Job>,
    /// Messages from this node to itself, handled before the next flush.
    local: VecDeque<(u32, crate::paxos::Message)>,
    pending: HashMap<RequestId, Pending>,
    forwards: HashMap<u64, (Origin, Instant)>,
    next_id: u64,
    /// Partition -> the leader we last heard of, for routing.
    leaders: HashMap<u32, NodeId>,
    batch: wal_thread::Job,
    stop: Option<String>,
}

/// Runs a node until `shutdown` completes or the node fails. Listeners are bound by the caller
/// (so tests can use port 0 and the binary can report bind errors itself).
pub async fn run(
    config: ClusterConfig,
    options: NodeOptions,
    clients: TcpListener,
    peers: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    let me = config
        .node_index(&options.id)
        .ok_or_else(|| NodeError::UnknownNode(options.id.clone()))?;
    std::fs::create_dir_all(&options.data_dir).map_err(|e| NodeError::DataDir {
        path: options.data_dir.clone(),
        message: e.to_string(),
    })?;
    let lock = lock_data_dir(&options.data_dir)?;
    let (log, recovery) = wal::open(&options.data_dir).map_err(|e| NodeError::Log {
        path: options.data_dir.clone(),
        message: e.to_string(),
    })?;
    if recovery.truncated_bytes > 0 {
        warn!(
            bytes = recovery.truncated_bytes,
            "dropped the torn tail of the write-ahead log (a write cut short by a crash)"
        );
    }
    let records = recovery.records;
    let mut by_partition: BTreeMap<u32, Vec<Durable>> = BTreeMap::new();
    for (i, rec) in records.iter().enumerate() {
        let (p, d): (u32, Durable) = postcard::from_bytes(rec).map_err(|e| NodeError::Log {
            path: options.data_dir.clone(),
            message: format!("record {i} is not a replica record: {e}"),
        })?;
        by_partition.entry(p).or_default().push(d);
    }
    let mut partitions = BTreeMap::new();
    for p in 0..config.partitions {
        let group = config.replicas(p);
        if !group.contains(&me) {
            continue;
        }
        let t = &config.timing;
        let cfg = PartitionConfig {
            replica: ReplicaConfig {
                me,
                group,
                election_ticks: t.election_ticks,
                heartbeat_ticks: t.heartbeat_ticks,
                seed: u64::from(p) << 32 | u64::from(me),
                max_batch: 4096,
            },
            snapshot_every: t.snapshot_every,
            unsafe_read_local: options.unsafe_read_local,
            unsafe_early_ack: options.unsafe_early_ack,
        };
        let records = by_partition.remove(&p).unwrap_or_default();
        partitions.insert(p, Partition::new(cfg, records));
    }
    info!(
        node = %options.id,
        partitions = partitions.len(),
        records = records.len(),
        "recovered from the write-ahead log"
    );
    drop(records);

    let (inbox, mut rx) = mpsc::unbounded_channel();
    let links: Vec<Option<PeerLink>> = (0..config.nodes.len() as NodeId)
        .map(|n| (n != me).then(|| PeerLink::spawn(me, n, config.peer_addr(me, n))))
        .collect();
    let wal = wal_thread::spawn(
        log,
        inbox.clone(),
        links.clone(),
        me,
        config.timing.wal_checkpoint_bytes,
    );
    tokio::spawn(net::serve_peers(peers, inbox.clone(), config.nodes.len()));
    tokio::spawn(net::serve_clients(clients, inbox.clone()));
    let tick = Duration::from_millis(config.timing.tick_ms);
    let ticker = inbox.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if ticker.send(Input::Tick).is_err() {
                return;
            }
        }
    });

    let mut core = Core {
        config,
        me,
        partitions,
        peers: links,
        wal,
        local: VecDeque::new(),
        pending: HashMap::new(),
        forwards: HashMap::new(),
        next_id: 0,
        leaders: HashMap::new(),
        batch: wal_thread::Job::default(),
        stop: None,
    };
    info!(node = %options.id, "serving");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            input = rx.recv() => {
                let Some(input) = input else { break };
                core.handle(input);
                for _ in 1..MAX_BATCH {
                    match rx.try_recv() {
                        Ok(input) => core.handle(input),
                        Err(_) => break,
                    }
                }
                core.flush();
                if let Some(reason) = core.stop.take() {
                    error!("stopping: {reason}");
                    return Err(NodeError::Log { path: options.data_dir.clone(), message: reason });
                }
            }
        }
    }
    info!(node = %options.id, "shutting down");
    drop(lock);
    Ok(())
}

/// Holds an exclusive lock on the data directory for as long as the node runs, so two nodes can
/// never share one log.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, NodeError> {
    let path = dir.join("LOCK");
    let err = |message: String| NodeError::DataDir {
        path: dir.to_owned(),
        message,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| err(e.to_string()))?;
    file.try_lock()
        .map_err(|_| err("another kvnode is using it (LOCK is held)".into()))?;
    Ok(file)
}

impl Core {
    fn handle(&mut self, input: Input) {
        let mut out = Outbox::default();
        let mut responses = Vec::new();
        match input {
            Input::Client { request, reply } => {
                let origin = Origin::Client {
                    id: request.id,
                    reply,
                };
                self.route(origin, request, 0);
            }
            Input::Peer { from, msg } => match msg {
                PeerMessage::Paxos { partition, msg } => {
                    if let Some(p) = self.partitions.get_mut(&partition) {
                        p.on_message(from, msg, &mut out, &mut responses);
                        self.after(partition, out, responses);
                    }
                }
                PeerMessage::Forward { id, hops, request } => {
                    self.route(Origin::Peer { node: from, id }, request, hops);
                }
                PeerMessage::ForwardReply { id, result, leader } => {
                    if let Some((origin, _)) = self.forwards.remove(&id) {
                        self.answer(origin, result, leader);
                    }
                }
                PeerMessage::Hello { .. } => {}
            },
            Input::Tick => {
                let ids: Vec<u32> = self.partitions.keys().copied().collect();
                for id in ids {
                    let mut out = Outbox::default();
                    let mut responses = Vec::new();
                    let p = self.partitions.get_mut(&id).expect("listed");
                    p.tick(&mut out, &mut responses);
                    self.after(id, out, responses);
                }
                self.expire_forwards();
            }
            Input::Synced => {
                let ids: Vec<u32> = self.partitions.keys().copied().collect();
                for id in ids {
                    let mut responses = Vec::new();
                    self.partitions
                        .get_mut(&id)
                        .expect("listed")
                        .persisted(&mut responses);
                    self.after(id, Outbox::default(), responses);
                }
            }
            Input::CheckpointWanted => self.checkpoint(),
            Input::LogFailed(reason) => self.stop = Some(reason),
        }
        while let Some((partition, msg)) = self.local.pop_front() {
            let mut out = Outbox::default();
            let mut responses = Vec::new();
            if let Some(p) = self.partitions.get_mut(&partition) {
                p.on_message(self.me, msg, &mut out, &mut responses);
                self.after(partition, out, responses);
            }
        }
    }

    /// Performs a partition's outbox and answers its completed requests.
    fn after(&mut self, partition: u32, out: Outbox, responses: Vec<(RequestId, Response)>) {
        for d in out.persist {
            self.batch
                .records
                .push(postcard::to_allocvec(&(partition, d)).expect("records serialise"));
        }
        for (to, msg) in out.after_persist {
            self.batch
                .held
                .push((to, PeerMessage::Paxos { partition, msg }));
        }
        for (to, msg) in out.send {
            self.send(partition, to, msg);
        }
        if let Some(leader) = self
            .partitions
            .get(&partition)
            .and_then(|p| p.replica().leader())
        {
            self.leaders.insert(partition, leader);
        }
        for (id, response) in responses {
            self.respond(id, response);
        }
    }

    fn send(&mut self, partition: u32, to: NodeId, msg: crate::paxos::Message) {
        if to == self.me {
            self.local.push_back((partition, msg));
        } else if let Some(Some(link)) = self.peers.get(to as usize) {
            link.send(PeerMessage::Paxos { partition, msg });
        }
    }

    /// Ends a batch: flushes every partition's proposals and hands the batch to the WAL thread.
    fn flush(&mut self) {
        let ids: Vec<u32> = self.partitions.keys().copied().collect();
        for id in ids {
            let mut out = Outbox::default();
            self.partitions
                .get_mut(&id)
                .expect("listed")
                .flush(&mut out);
            self.after(id, out, Vec::new());
        }
        if !self.batch.is_empty() {
            let job = std::mem::take(&mut self.batch);
            if self.wal.send(job).is_err() {
                self.stop = Some("the write-ahead log thread stopped".into());
            }
        }
    }

    fn checkpoint(&mut self) {
        let mut records = Vec::new();
        for (&p, part) in &self.partitions {
            for d in part.replica().checkpoint() {
                records.push(postcard::to_allocvec(&(p, d)).expect("records serialise"));
            }
        }
        // Whatever this batch holds is already reflected in the checkpoint; the WAL thread
        // writes pending batches before it, so order is kept.
        self.flush();
        let _ = self.wal.send(wal_thread::Job {
            checkpoint: Some(records),
            ..wal_thread::Job::default()
        });
    }

    /// Sends a request to the partition here, or towards its leader elsewhere.
    fn route(&mut self, origin: Origin, request: Request, hops: u8) {
        let partition = self.config.partition_of(request.op.key());
        if self.partitions.contains_key(&partition) {
            let id = self.next_id;
            self.next_id += 1;
            let cmd = Command {
                client: request.client,
                seq: request.seq,
                op: request.op.clone(),
            };
            self.pending.insert(
                id,
                Pending {
                    origin,
                    request,
                    partition,
                    hops,
                },
            );
            let mut out = Outbox::default();
            let mut responses = Vec::new();
            let p = self.partitions.get_mut(&partition).expect("checked");
            p.request(id, cmd, &mut out, &mut responses);
            self.after(partition, out, responses);
        } else {
            let target = self
                .leaders
                .get(&partition)
                .copied()
                .unwrap_or_else(|| self.config.replicas(partition)[0]);
            self.forward(origin, request, target, hops, partition);
        }
    }

    fn forward(&mut self, origin: Origin, request: Request, to: NodeId, hops: u8, partition: u32) {
        let link = self.peers.get(to as usize).and_then(Option::as_ref);
        if hops >= 2 || !link.is_some_and(PeerLink::is_up) {
            let why = format!(
                "partition {partition}: leader {} unreachable from here",
                self.config.node(to).id
            );
            self.answer(origin, Outcome::Failed(why), None);
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        link.expect("checked").send(PeerMessage::Forward {
            id,
            hops: hops + 1,
            request,
        });
        self.forwards.insert(id, (origin, Instant::now()));
    }

    fn respond(&mut self, id: RequestId, response: Response) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        let result = match response {
            Response::Ok(reply) => Outcome::Ok(reply),
            Response::Fail(Refusal::NotLeader { hint: Some(leader) })
                if leader != self.me && p.hops < 2 =>
            {
                self.forward(p.origin, p.request, leader, p.hops, p.partition);
                return;
            }
            Response::Fail(Refusal::NotLeader { .. }) => Outcome::Failed(format!(
                "partition {} has no leader at the moment",
                p.partition
            )),
            Response::Fail(Refusal::Superseded) => {
                Outcome::Failed("lost its log slot to another leader's entry".into())
            }
            Response::Unknown(why) => Outcome::Unknown(why.into()),
        };
        let leader = self.leaders.get(&p.partition).copied();
        self.answer(p.origin, result, leader);
    }

    fn answer(&self, origin: Origin, result: Outcome, leader: Option<NodeId>) {
        match origin {
            Origin::Client { id, reply } => {
                let _ = reply.send(WireResponse { id, result, leader });
            }
            Origin::Peer { node, id } => {
                if let Some(Some(link)) = self.peers.get(node as usize) {
                    link.send(PeerMessage::ForwardReply { id, result, leader });
                }
            }
        }
    }

    fn expire_forwards(&mut self) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) > FORWARD_TIMEOUT)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            if let Some((origin, _)) = self.forwards.remove(&id) {
                warn!("forwarded request {id} got no answer");
                self.answer(
                    origin,
                    Outcome::Unknown("no answer from the partition's leader".into()),
                    None,
                );
            }
        }
    }
}
