//! The node's core: every partition this node replicates, request routing and forwarding, and
//! the batching of their outputs, as a pure state machine.
//!
//! The tokio runtime ([`super::run`]) and the deterministic simulator (`kvnode/tests/sim`) drive
//! this same code, so what the simulation explores is what the node does:
//!
//! 1. [`NodeCore::handle`] takes one [`Input`] at a time: a client request, a peer message, a
//!    tick, "the write-ahead log is durable through batch N", "checkpoint the log". Messages the
//!    node sends to itself without waiting for the disk are handled before `handle` returns.
//! 2. After any number of inputs, [`NodeCore::flush`] closes the batch: every partition sends
//!    what its proposals added, and the batch's [`Output`] comes back:
//!    - `send`: messages that may leave at once;
//!    - `replies`: answers to clients;
//!    - `wal`: one [`WalBatch`] (records, plus messages that may leave only once those records and
//!      everything before them are durable). The caller appends and syncs it, releases its held
//!      messages, and then feeds back [`Input::Synced`] with the batch's sequence number.
//!
//! The caller chooses how many inputs go into one batch (the runtime: whatever is queued, at most
//! [`MAX_BATCH`]; the simulator: a random number), and when a batch becomes durable.
//!
//! # Contract: persist before you promise
//! Nothing in `WalBatch::held` may leave before the batch is durable, and batches must be made
//! durable in sequence order. Replies and `send` messages never depend on records that are not
//! yet durable: a write is answered once chosen, which needs a majority's durable acceptance.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::command::Command;
use crate::config::{ClusterConfig, Protocol};
use crate::partition::{Partition, PartitionConfig, Refusal, RequestId, Response};
use crate::paxos::NodeId;
use crate::replica::{Durable, Message, Outbox, ReplicaConfig, decode_record, encode_record};
use crate::wire::{MAX_OP_BYTES, Outcome, PeerMessage, Request, Response as WireResponse};
use crate::{paxos, zab};

/// Inputs the runtime handles before it flushes (bounds latency under load).
pub const MAX_BATCH: usize = 512;
/// How long a forwarded request may wait for the other node's answer, milliseconds (clients
/// retry sooner).
const FORWARD_TIMEOUT_MS: u64 = 2_000;

/// Per-node switches.
#[derive(Clone, Debug, Default)]
pub struct CoreOptions {
    /// Deliberate bug: serve GET from the local replica without confirming leadership.
    pub unsafe_read_local: bool,
    /// Deliberate bug: acknowledge PUT/DELETE once the leader has logged it, before a quorum.
    pub unsafe_early_ack: bool,
    /// Deliberate bug (Zab only): a new leader broadcasts without synchronising its followers
    /// (see [`zab::ReplicaConfig::unsafe_skip_sync`]).
    pub unsafe_skip_sync: bool,
}

/// One input to the core. `R` is how the caller routes a reply back to its client.
#[derive(Debug)]
pub enum Input<R> {
    Client {
        request: Request,
        reply: R,
    },
    Peer {
        from: NodeId,
        msg: PeerMessage,
    },
    Tick,
    /// Every [`WalBatch`] up to and including sequence number `batch` is durable.
    Synced {
        batch: u64,
    },
    /// The write-ahead log grew large: replace it by a checkpoint at the end of this batch.
    CheckpointWanted,
}

/// What the write-ahead log must do for one batch, in order: append `records`; if `checkpoint`
/// is set, sync, release `held` so far, and replace the whole log by the checkpoint's records;
/// sync; release `held`.
#[derive(Debug, Default)]
pub struct WalBatch {
    /// Batches are numbered from 1 in the order the core produces them.
    pub seq: u64,
    pub records: Vec<Vec<u8>>,
    /// Messages that may leave only once `records` (and everything before) are durable.
    pub held: Vec<(NodeId, PeerMessage)>,
    /// Replace the whole log by these records (after writing `records`).
    pub checkpoint: Option<Vec<Vec<u8>>>,
}

/// Everything one batch asks the caller to do.
#[derive(Debug)]
pub struct Output<R> {
    /// Peer messages that may leave at once.
    pub send: Vec<(NodeId, PeerMessage)>,
    /// Answers to clients.
    pub replies: Vec<(R, WireResponse)>,
    /// Records to make durable, if any.
    pub wal: Option<WalBatch>,
}

/// Why a node cannot start from its write-ahead log.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("no node named {0:?} in the configuration")]
    UnknownNode(String),
    #[error("record {index} is not a replica record: {message}")]
    BadRecord { index: usize, message: String },
    #[error("record {index} belongs to partition {partition}, which this node does not replicate")]
    ForeignPartition { index: usize, partition: u32 },
    #[error(
        "record {index} was written by {found}, but the configuration says protocol = \"{expected}\""
    )]
    WrongProtocol {
        index: usize,
        found: Protocol,
        expected: Protocol,
    },
    #[error("partition {partition}: {source}")]
    Replica {
        partition: u32,
        source: crate::paxos::ReplayError,
    },
}

/// Where the answer to a request goes.
enum Origin<R> {
    Client { id: u64, reply: R },
    Peer { node: NodeId, id: u64 },
}

struct Pending<R> {
    origin: Origin<R>,
    request: Request,
    partition: u32,
    hops: u8,
}

/// Counts of the housekeeping a node did, for the bench's summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Housekeeping {
    /// Snapshots taken by this node's partitions (log compactions).
    pub snapshots: u64,
    /// Snapshots installed from a leader (a follower that was behind the leader's log).
    pub installs: u64,
    /// Write-ahead log checkpoints.
    pub checkpoints: u64,
}

pub struct NodeCore<R> {
    config: ClusterConfig,
    me: NodeId,
    partitions: BTreeMap<u32, Partition>,
    /// Whether the link to each node is up (forwarding to a node that is down fails at once).
    reachable: Vec<bool>,
    /// Messages from this node to itself, handled before the next input.
    local: VecDeque<(u32, Message)>,
    pending: HashMap<RequestId, Pending<R>>,
    /// Forwarded requests: id -> (where the answer goes, tick at which we give up).
    forwards: HashMap<u64, (Origin<R>, u64)>,
    next_id: u64,
    /// Partition -> the leader we last heard of, for routing.
    leaders: HashMap<u32, NodeId>,
    ticks: u64,
    forward_timeout_ticks: u64,
    next_batch: u64,
    batch: WalBatch,
    send: Vec<(NodeId, PeerMessage)>,
    replies: Vec<(R, WireResponse)>,
    checkpoints: u64,
    /// The log asked for a checkpoint; it is written at the end of the batch.
    checkpoint_wanted: bool,
}

/// A replica message as it travels between nodes.
fn peer_message(partition: u32, msg: Message) -> PeerMessage {
    match msg {
        Message::Paxos(msg) => PeerMessage::Paxos { partition, msg },
        Message::Zab(msg) => PeerMessage::Zab { partition, msg },
    }
}

impl<R> NodeCore<R> {
    /// Rebuilds node `id` from the records its write-ahead log replays (none for a new node).
    pub fn recover(
        config: ClusterConfig,
        id: &str,
        options: &CoreOptions,
        records: &[Vec<u8>],
    ) -> Result<NodeCore<R>, RecoveryError> {
        let me = config
            .node_index(id)
            .ok_or_else(|| RecoveryError::UnknownNode(id.to_owned()))?;
        let mut by_partition: BTreeMap<u32, Vec<Durable>> = BTreeMap::new();
        for (index, rec) in records.iter().enumerate() {
            let (p, d) = decode_record(rec).map_err(|e| RecoveryError::BadRecord {
                index,
                message: e.to_string(),
            })?;
            if d.protocol() != config.protocol {
                return Err(RecoveryError::WrongProtocol {
                    index,
                    found: d.protocol(),
                    expected: config.protocol,
                });
            }
            if p >= config.partitions || !config.replicas(p).contains(&me) {
                return Err(RecoveryError::ForeignPartition {
                    index,
                    partition: p,
                });
            }
            by_partition.entry(p).or_default().push(d);
        }
        let t = &config.timing;
        let mut partitions = BTreeMap::new();
        for p in 0..config.partitions {
            let group = config.replicas(p);
            if !group.contains(&me) {
                continue;
            }
            let seed = u64::from(p) << 32 | u64::from(me);
            let (election_ticks, heartbeat_ticks) = (t.election_ticks, t.heartbeat_ticks);
            let replica = match config.protocol {
                Protocol::Paxos => ReplicaConfig::Paxos(paxos::ReplicaConfig {
                    me,
                    group,
                    election_ticks,
                    heartbeat_ticks,
                    seed,
                    max_batch: 4096,
                }),
                Protocol::Zab => ReplicaConfig::Zab(zab::ReplicaConfig {
                    me,
                    group,
                    election_ticks,
                    heartbeat_ticks,
                    seed,
                    max_batch: 4096,
                    unsafe_skip_sync: options.unsafe_skip_sync,
                }),
            };
            let cfg = PartitionConfig {
                replica,
                snapshot_every: t.snapshot_every,
                unsafe_read_local: options.unsafe_read_local,
                unsafe_early_ack: options.unsafe_early_ack,
            };
            let records = by_partition.remove(&p).unwrap_or_default();
            let partition =
                Partition::new(cfg, records).map_err(|source| RecoveryError::Replica {
                    partition: p,
                    source,
                })?;
            partitions.insert(p, partition);
        }
        let forward_timeout_ticks = FORWARD_TIMEOUT_MS.div_ceil(t.tick_ms.max(1));
        Ok(NodeCore {
            reachable: vec![true; config.nodes.len()],
            config,
            me,
            partitions,
            local: VecDeque::new(),
            pending: HashMap::new(),
            forwards: HashMap::new(),
            next_id: 0,
            leaders: HashMap::new(),
            ticks: 0,
            forward_timeout_ticks,
            next_batch: 1,
            batch: WalBatch::default(),
            send: Vec::new(),
            replies: Vec::new(),
            checkpoints: 0,
            checkpoint_wanted: false,
        })
    }

    /// This node's index in the configuration.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The partitions this node replicates (for inspection by tests and the simulator).
    pub fn partitions(&self) -> impl Iterator<Item = (u32, &Partition)> {
        self.partitions.iter().map(|(&p, part)| (p, part))
    }

    /// Snapshots taken and installed, checkpoints written, since this process started.
    pub fn housekeeping(&self) -> Housekeeping {
        let mut h = Housekeeping {
            checkpoints: self.checkpoints,
            ..Housekeeping::default()
        };
        for p in self.partitions.values() {
            h.snapshots += p.snapshots_taken();
            h.installs += p.snapshots_installed();
        }
        h
    }

    /// Tells the core whether its link to `node` is up: requests are not forwarded over a link
    /// that is down (they fail at once, as "did not happen").
    pub fn set_reachable(&mut self, node: NodeId, up: bool) {
        if let Some(r) = self.reachable.get_mut(node as usize) {
            *r = up;
        }
    }

    /// Handles one input. Its effects leave with the next [`NodeCore::flush`].
    pub fn handle(&mut self, input: Input<R>) {
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
                    let msg = Message::Paxos(msg);
                    self.with_partition(partition, |p, out, rs| p.on_message(from, msg, out, rs));
                }
                PeerMessage::Zab { partition, msg } => {
                    let msg = Message::Zab(msg);
                    self.with_partition(partition, |p, out, rs| p.on_message(from, msg, out, rs));
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
                self.ticks += 1;
                for id in self.partition_ids() {
                    self.with_partition(id, |p, out, rs| p.tick(out, rs));
                }
                self.expire_forwards();
            }
            Input::Synced { batch } => {
                for id in self.partition_ids() {
                    self.with_partition(id, |p, _, rs| p.persisted(batch, rs));
                }
            }
            Input::CheckpointWanted => self.checkpoint_wanted = true,
        }
        while let Some((partition, msg)) = self.local.pop_front() {
            let me = self.me;
            self.with_partition(partition, |p, out, rs| p.on_message(me, msg, out, rs));
        }
    }

    /// Ends a batch: flushes every partition's proposals and returns what the batch produced.
    pub fn flush(&mut self) -> Output<R> {
        for id in self.partition_ids() {
            let seq = self.next_batch;
            self.with_partition(id, |p, out, _| p.flush(seq, out));
        }
        if std::mem::take(&mut self.checkpoint_wanted) {
            self.checkpoint();
        }
        let wal = if self.batch.records.is_empty()
            && self.batch.held.is_empty()
            && self.batch.checkpoint.is_none()
        {
            None
        } else {
            let mut batch = std::mem::take(&mut self.batch);
            batch.seq = self.next_batch;
            self.next_batch += 1;
            Some(batch)
        };
        Output {
            send: std::mem::take(&mut self.send),
            replies: std::mem::take(&mut self.replies),
            wal,
        }
    }

    fn partition_ids(&self) -> Vec<u32> {
        self.partitions.keys().copied().collect()
    }

    /// Runs `f` on a partition, then performs its outbox and answers its completed requests.
    fn with_partition(
        &mut self,
        partition: u32,
        f: impl FnOnce(&mut Partition, &mut Outbox, &mut Vec<(RequestId, Response)>),
    ) {
        let Some(p) = self.partitions.get_mut(&partition) else {
            return;
        };
        let mut out = Outbox::default();
        let mut responses = Vec::new();
        f(p, &mut out, &mut responses);
        if let Some(leader) = p.replica().leader() {
            self.leaders.insert(partition, leader);
        }
        for d in &out.persist {
            self.batch.records.push(encode_record(partition, d));
        }
        for (to, msg) in out.after_persist {
            self.batch.held.push((to, peer_message(partition, msg)));
        }
        for (to, msg) in out.send {
            if to == self.me {
                self.local.push_back((partition, msg));
            } else {
                self.send.push((to, peer_message(partition, msg)));
            }
        }
        for (id, response) in responses {
            self.respond(id, response);
        }
    }

    /// Replaces the log by records that rebuild every partition's current durable state. Called
    /// at the end of [`NodeCore::flush`], so that no record of the batch follows the checkpoint
    /// (the log writes the batch's records first, then replaces itself by the checkpoint: a
    /// record written after the state was captured would be lost).
    fn checkpoint(&mut self) {
        let mut records = Vec::new();
        for (&p, part) in &self.partitions {
            for d in part.replica().checkpoint() {
                records.push(encode_record(p, &d));
            }
        }
        self.batch.checkpoint = Some(records);
        self.checkpoints += 1;
    }

    /// Sends a request to the partition here, or towards its leader elsewhere.
    fn route(&mut self, origin: Origin<R>, request: Request, hops: u8) {
        let size = request.op.payload_len();
        if size > MAX_OP_BYTES {
            let why =
                format!("key and value of {size} bytes exceed the limit of {MAX_OP_BYTES} bytes");
            self.answer(origin, Outcome::Failed(why), None);
            return;
        }
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
            self.with_partition(partition, |p, out, rs| p.request(id, cmd, out, rs));
        } else {
            let target = self
                .leaders
                .get(&partition)
                .copied()
                .unwrap_or_else(|| self.config.replicas(partition)[0]);
            self.forward(origin, request, target, hops, partition);
        }
    }

    fn forward(
        &mut self,
        origin: Origin<R>,
        request: Request,
        to: NodeId,
        hops: u8,
        partition: u32,
    ) {
        let up = self.reachable.get(to as usize).copied().unwrap_or(false);
        if hops >= 2 || to == self.me || !up {
            let why = format!(
                "partition {partition}: leader {} unreachable from here",
                self.config.node(to).id
            );
            self.answer(origin, Outcome::Failed(why), None);
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.send.push((
            to,
            PeerMessage::Forward {
                id,
                hops: hops + 1,
                request,
            },
        ));
        let deadline = self.ticks + self.forward_timeout_ticks;
        self.forwards.insert(id, (origin, deadline));
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

    fn answer(&mut self, origin: Origin<R>, result: Outcome, leader: Option<NodeId>) {
        match origin {
            Origin::Client { id, reply } => {
                self.replies
                    .push((reply, WireResponse { id, result, leader }));
            }
            Origin::Peer { node, id } => {
                self.send
                    .push((node, PeerMessage::ForwardReply { id, result, leader }));
            }
        }
    }

    fn expire_forwards(&mut self) {
        let now = self.ticks;
        let expired: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, (_, deadline))| now >= *deadline)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            if let Some((origin, _)) = self.forwards.remove(&id) {
                tracing::warn!("forwarded request {id} got no answer");
                self.answer(
                    origin,
                    Outcome::Unknown("no answer from the partition's leader".into()),
                    None,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Op;
    use crate::config::{NodeConfig, Timing};

    fn one_node() -> ClusterConfig {
        ClusterConfig {
            partitions: 1,
            replication: 1,
            protocol: Protocol::Paxos,
            nodes: vec![NodeConfig {
                id: "n1".into(),
                client: "127.0.0.1:1".parse().unwrap(),
                peer: "127.0.0.1:2".parse().unwrap(),
            }],
            timing: Timing::default(),
            links: Vec::new(),
        }
    }

    /// Makes each batch durable at once and hands its held messages back, as the WAL would.
    fn flush_and_sync(core: &mut NodeCore<()>) -> Option<WalBatch> {
        let mut batch = core.flush().wal?;
        for (from, msg) in std::mem::take(&mut batch.held) {
            core.handle(Input::Peer { from, msg });
        }
        core.handle(Input::Synced { batch: batch.seq });
        Some(batch)
    }

    /// A checkpoint replaces the whole log, so it must be taken after every record of its batch:
    /// taken when it was asked for, it lost the records that came later in the same batch.
    #[test]
    fn a_checkpoint_holds_the_records_that_follow_its_request_in_the_batch() {
        let mut core = NodeCore::recover(one_node(), "n1", &CoreOptions::default(), &[]).unwrap();
        for _ in 0..1_000 {
            core.handle(Input::Tick);
            flush_and_sync(&mut core);
            if core.partitions().all(|(_, p)| p.replica().is_leader()) {
                break;
            }
        }
        core.handle(Input::CheckpointWanted);
        let request = Request {
            id: 1,
            client: 1,
            seq: 1,
            op: Op::Put {
                key: "k".into(),
                value: "v".into(),
            },
        };
        core.handle(Input::Client { request, reply: () });
        let batch = flush_and_sync(&mut core).expect("a batch");
        let checkpoint = batch.checkpoint.expect("the checkpoint");
        let back: NodeCore<()> =
            NodeCore::recover(one_node(), "n1", &CoreOptions::default(), &checkpoint).unwrap();
        let len = |c: &NodeCore<()>| {
            c.partitions()
                .map(|(_, p)| p.replica().log_len())
                .sum::<u64>()
        };
        assert_eq!(len(&core), 1, "the put is in the live log");
        assert_eq!(len(&back), len(&core), "the checkpoint lost the put");
    }

    /// A log written by one protocol is never read as the other's: recovery stops at its first
    /// record, naming both protocols.
    #[test]
    fn a_log_of_the_other_protocol_stops_recovery() {
        for (wrote, reads) in [
            (Protocol::Paxos, Protocol::Zab),
            (Protocol::Zab, Protocol::Paxos),
        ] {
            let config = |protocol| ClusterConfig {
                protocol,
                ..one_node()
            };
            let mut core =
                NodeCore::recover(config(wrote), "n1", &CoreOptions::default(), &[]).unwrap();
            let mut records = Vec::new();
            for _ in 0..1_000 {
                core.handle(Input::Tick);
                if let Some(batch) = flush_and_sync(&mut core) {
                    records.extend(batch.records);
                }
                if core.partitions().all(|(_, p)| p.replica().is_leader()) {
                    break;
                }
            }
            assert!(!records.is_empty(), "{wrote} wrote nothing");
            let again =
                NodeCore::<()>::recover(config(wrote), "n1", &CoreOptions::default(), &records);
            assert!(again.is_ok(), "{wrote} cannot read its own log");
            match NodeCore::<()>::recover(config(reads), "n1", &CoreOptions::default(), &records) {
                Err(RecoveryError::WrongProtocol {
                    index: 0,
                    found,
                    expected,
                }) => assert_eq!((found, expected), (wrote, reads)),
                Err(e) => panic!("{reads} reading {wrote}'s log: {e}"),
                Ok(_) => panic!("{reads} recovered from {wrote}'s log"),
            }
        }
    }
}
