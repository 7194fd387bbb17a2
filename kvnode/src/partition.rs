//! One partition on one node: a [`Replica`] (Paxos or Zab), the [`Store`] it feeds, and the
//! client requests waiting on them.
//!
//! Still pure: inputs are requests, messages, ticks and "your records are durable"
//! ([`Partition::persisted`]); outputs are an [`Outbox`] for the runtime and [`Response`]s for
//! clients. The deterministic simulator and the tokio node drive this same code.
//!
//! How a request's outcome is decided (what the bench records as ok / fail / info):
//! - a write is answered once its log slot is decided and applied: with its command (`Ok`), or
//!   with another one (`Fail`: an entry never moves to another slot, so it can no longer be
//!   chosen). A proposal that merely reuses the slot (this node's log was truncated below it
//!   meanwhile) decides nothing: the displaced entry may survive on another replica and be
//!   chosen by a later leader, so the displaced write waits for the slot too;
//! - a read is answered after read-index confirmation, from the applied state;
//! - refused before anything was proposed (not the leader): `Fail`;
//! - this node lost track (its state was replaced by a snapshot): `Unknown`.

use std::collections::BTreeMap;

use crate::command::{Command, Op, Reply};
use crate::paxos::{Event, NodeId, NotLeader, ReplayError, Snapshot};
use crate::replica::{Durable, Message, Outbox, Replica, ReplicaConfig};
use crate::store::Store;

/// Identifies a client request within one node's runtime.
pub type RequestId = u64;

/// What a client is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// It took effect (a CAS whose precondition failed also "took effect": it observed the
    /// value; see [`Reply::Mismatch`]).
    Ok(Reply),
    /// It definitely did not take effect.
    Fail(Refusal),
    /// It may or may not have taken effect.
    Unknown(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Sent to a replica that does not lead; nothing was proposed.
    NotLeader { hint: Option<NodeId> },
    /// Its log slot was decided with another command: it was never chosen.
    Superseded,
}

#[derive(Clone, Debug)]
pub struct PartitionConfig {
    pub replica: ReplicaConfig,
    /// Take a snapshot (and compact the log) every this many applied entries.
    pub snapshot_every: u64,
    /// Deliberate bug: serve GET from the local store without confirming leadership.
    pub unsafe_read_local: bool,
    /// Deliberate bug: acknowledge PUT/DELETE once the leader's own log has it durably, before
    /// a majority does (replication itself is unchanged).
    pub unsafe_early_ack: bool,
}

struct PendingWrite {
    request: RequestId,
    cmd: Command,
    /// Already answered (unsafe early acknowledgement).
    answered: bool,
}

pub struct Partition {
    cfg: PartitionConfig,
    replica: Replica,
    store: Store,
    /// Entries below this index are applied to `store`.
    applied: u64,
    /// Writes waiting for each log slot to be decided: the latest proposal there last, before
    /// it those it displaced (their fate is also only known once the slot is decided).
    writes: BTreeMap<u64, Vec<PendingWrite>>,
    /// Read id -> (request, key), waiting for confirmation.
    reads: BTreeMap<u64, (RequestId, String)>,
    /// Confirmed reads waiting for `applied >= index`: (index, request, key).
    ready: Vec<(u64, RequestId, String)>,
    next_read: u64,
    /// (WAL batch, log length at the flush that closed it): what each batch made durable.
    flushed: std::collections::VecDeque<(u64, u64)>,
    snapshots_taken: u64,
    snapshots_installed: u64,
}

impl Partition {
    /// A partition replica rebuilt from its durable records (none for a fresh one).
    pub fn new(
        cfg: PartitionConfig,
        records: impl IntoIterator<Item = Durable>,
    ) -> Result<Partition, ReplayError> {
        let replica = Replica::recover(cfg.replica.clone(), records)?;
        let mut store = Store::default();
        let mut applied = 0;
        if let Some(s) = replica.snapshot() {
            store = decode_store(&s.data);
            applied = s.index;
        }
        let mut p = Partition {
            cfg,
            replica,
            store,
            applied,
            writes: BTreeMap::new(),
            reads: BTreeMap::new(),
            ready: Vec::new(),
            next_read: 0,
            flushed: std::collections::VecDeque::new(),
            snapshots_taken: 0,
            snapshots_installed: 0,
        };
        let mut responses = Vec::new();
        p.apply_decided(&mut responses);
        Ok(p)
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Snapshots this partition took of its own store since it started.
    pub fn snapshots_taken(&self) -> u64 {
        self.snapshots_taken
    }

    /// Snapshots this partition installed from a leader since it started.
    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed
    }

    /// Handles a client request addressed to this partition.
    pub fn request(
        &mut self,
        request: RequestId,
        cmd: Command,
        out: &mut Outbox,
        responses: &mut Vec<(RequestId, Response)>,
    ) {
        if let Op::Get { key } = &cmd.op {
            if self.cfg.unsafe_read_local {
                let value = self.store.get(key).cloned();
                responses.push((request, Response::Ok(Reply::Value(value))));
                return;
            }
            let id = self.next_read;
            self.next_read += 1;
            match self.replica.read(id, out) {
                Ok(()) => {
                    self.reads.insert(id, (request, key.clone()));
                }
                Err(NotLeader { hint }) => {
                    responses.push((request, Response::Fail(Refusal::NotLeader { hint })));
                }
            }
        } else {
            match self.replica.propose(cmd.clone()) {
                Ok(index) => {
                    // A write already waiting here lost its entry from our log, but not
                    // necessarily from every replica's: it keeps waiting (see the module docs).
                    self.writes.entry(index).or_default().push(PendingWrite {
                        request,
                        cmd,
                        answered: false,
                    });
                }
                Err(NotLeader { hint }) => {
                    responses.push((request, Response::Fail(Refusal::NotLeader { hint })));
                }
            }
        }
        self.process(out, responses);
    }

    pub fn on_message(
        &mut self,
        from: NodeId,
        msg: Message,
        out: &mut Outbox,
        responses: &mut Vec<(RequestId, Response)>,
    ) {
        self.replica.on_message(from, msg, out);
        self.process(out, responses);
    }

    pub fn tick(&mut self, out: &mut Outbox, responses: &mut Vec<(RequestId, Response)>) {
        self.replica.tick(out);
        self.process(out, responses);
    }

    /// Sends the proposals accepted since the last flush (call once per batch of requests);
    /// `batch` is the write-ahead log batch that will carry `out.persist`.
    pub fn flush(&mut self, batch: u64, out: &mut Outbox) {
        self.replica.flush(out);
        if self.cfg.unsafe_early_ack {
            let len = self.replica.log_len();
            match self.flushed.back_mut() {
                Some((b, l)) if *b == batch => *l = len,
                _ => self.flushed.push_back((batch, len)),
            }
        }
    }

    /// The runtime made every write-ahead log batch up to `batch` durable.
    pub fn persisted(&mut self, batch: u64, responses: &mut Vec<(RequestId, Response)>) {
        let mut durable_len = None;
        while let Some(&(b, len)) = self.flushed.front()
            && b <= batch
        {
            durable_len = Some(len);
            self.flushed.pop_front();
        }
        let Some(durable_len) = durable_len else {
            return;
        };
        if !self.cfg.unsafe_early_ack || !self.replica.is_leader() {
            return;
        }
        // Only the latest proposal at a slot can be the entry our log holds there.
        for w in self
            .writes
            .range_mut(..durable_len)
            .filter_map(|(_, ws)| ws.last_mut())
        {
            if !w.answered && matches!(w.cmd.op, Op::Put { .. } | Op::Delete { .. }) {
                w.answered = true;
                responses.push((w.request, Response::Ok(Reply::Done)));
            }
        }
    }

    /// Handles the replica's events: apply, serve reads, install snapshots, compact.
    fn process(&mut self, out: &mut Outbox, responses: &mut Vec<(RequestId, Response)>) {
        let events = std::mem::take(&mut out.events);
        for event in events {
            match event {
                Event::Decided(_) => self.apply_decided(responses),
                Event::ReadReady { id, index } => {
                    if let Some((request, key)) = self.reads.remove(&id) {
                        self.ready.push((index, request, key));
                    }
                }
                Event::ReadFailed { id } => {
                    if let Some((request, _)) = self.reads.remove(&id) {
                        let hint = self.replica.leader();
                        responses.push((request, Response::Fail(Refusal::NotLeader { hint })));
                    }
                }
                Event::InstallSnapshot(s) => self.install(&s, responses),
            }
        }
        self.serve_ready(responses);
        self.maybe_compact(out);
    }

    fn apply_decided(&mut self, responses: &mut Vec<(RequestId, Response)>) {
        let decided = self.replica.decided();
        while self.applied < decided {
            let index = self.applied;
            let cmd = self
                .replica
                .entry(index)
                .expect("decided entries above the snapshot are in the log")
                .clone();
            let reply = self.store.apply(&cmd);
            self.applied += 1;
            for w in self.writes.remove(&index).into_iter().flatten() {
                if w.answered {
                    continue;
                }
                let response = if w.cmd == cmd {
                    Response::Ok(reply.clone())
                } else {
                    Response::Fail(Refusal::Superseded)
                };
                responses.push((w.request, response));
            }
        }
        self.serve_ready(responses);
    }

    fn serve_ready(&mut self, responses: &mut Vec<(RequestId, Response)>) {
        let applied = self.applied;
        let store = &self.store;
        self.ready.retain(|(index, request, key)| {
            if *index > applied {
                return true;
            }
            responses.push((
                *request,
                Response::Ok(Reply::Value(store.get(key).cloned())),
            ));
            false
        });
    }

    fn install(&mut self, s: &Snapshot, responses: &mut Vec<(RequestId, Response)>) {
        if s.index <= self.applied {
            return;
        }
        self.store = decode_store(&s.data);
        self.applied = s.index;
        self.snapshots_installed += 1;
        // Writes in the replaced prefix: this node cannot tell whether they were chosen.
        let kept = self.writes.split_off(&s.index);
        for w in std::mem::replace(&mut self.writes, kept)
            .into_values()
            .flatten()
        {
            if !w.answered {
                responses.push((w.request, Response::Unknown("state replaced by a snapshot")));
            }
        }
        self.apply_decided(responses);
    }

    fn maybe_compact(&mut self, out: &mut Outbox) {
        if self.applied - self.replica.first_index() < self.cfg.snapshot_every {
            return;
        }
        let snapshot = Snapshot {
            index: self.applied,
            data: encode_store(&self.store),
        };
        self.replica.compact(snapshot, out);
        self.snapshots_taken += 1;
    }
}

fn encode_store(store: &Store) -> Vec<u8> {
    postcard::to_allocvec(store).expect("a store serialises")
}

fn decode_store(data: &[u8]) -> Store {
    // Snapshots are produced by `encode_store` and checksummed on disk and on the wire.
    postcard::from_bytes(data).expect("a snapshot holds a store")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paxos::{self, AcceptSync, Ballot, Prepare};

    fn config(me: NodeId, group: Vec<NodeId>, snapshot_every: u64) -> PartitionConfig {
        PartitionConfig {
            replica: ReplicaConfig::Paxos(paxos::ReplicaConfig {
                me,
                group,
                election_ticks: 10,
                heartbeat_ticks: 3,
                seed: 1,
                max_batch: 64,
            }),
            snapshot_every,
            unsafe_read_local: false,
            unsafe_early_ack: false,
        }
    }

    /// Delivers to a one-replica partition what it sends itself (its records count as durable).
    fn settle(p: &mut Partition, mut out: Outbox, responses: &mut Vec<(RequestId, Response)>) {
        loop {
            let msgs: Vec<_> = out
                .after_persist
                .drain(..)
                .chain(out.send.drain(..))
                .collect();
            if msgs.is_empty() {
                return;
            }
            out = Outbox::default();
            for (to, msg) in msgs {
                assert_eq!(to, 0, "a group of one talks to itself");
                p.on_message(0, msg, &mut out, responses);
            }
        }
    }

    fn put(seq: u64) -> Command {
        Command {
            client: 1,
            seq,
            op: Op::Put {
                key: "k".into(),
                value: format!("v{seq}"),
            },
        }
    }

    #[test]
    fn a_snapshot_is_taken_every_snapshot_every_applied_entries() {
        let mut p = Partition::new(config(0, vec![0], 4), []).unwrap();
        let mut responses = Vec::new();
        while !p.replica().is_leader() {
            let mut out = Outbox::default();
            p.tick(&mut out, &mut responses);
            settle(&mut p, out, &mut responses);
        }
        for seq in 1..=13 {
            let mut out = Outbox::default();
            p.request(seq, put(seq), &mut out, &mut responses);
            p.flush(seq, &mut out);
            settle(&mut p, out, &mut responses);
        }
        assert_eq!(responses.len(), 13, "every write was answered");
        assert_eq!(p.replica().decided(), 13);
        assert_eq!(p.snapshots_taken(), 3, "at 4, 8 and 12 applied entries");
        assert_eq!(p.replica().first_index(), 12);
        assert_eq!(p.snapshots_installed(), 0);
    }

    #[test]
    fn a_follower_counts_every_snapshot_it_installs() {
        let mut p = Partition::new(config(1, vec![0, 1, 2], 1_000), []).unwrap();
        let mut responses = Vec::new();
        let ballot = Ballot { round: 1, node: 0 };
        let mut out = Outbox::default();
        let prepare = Prepare {
            ballot,
            decided: 0,
            accepted: Ballot::default(),
            log_len: 0,
        };
        let prepare = Message::Paxos(paxos::Message::Prepare(prepare));
        p.on_message(0, prepare, &mut out, &mut responses);
        let mut leader = Store::default();
        for (i, index) in [5, 9].into_iter().enumerate() {
            leader.apply(&put(i as u64 + 1));
            let sync = AcceptSync {
                ballot,
                start: index,
                entries: Vec::new(),
                decided: index,
                snapshot: Some(Snapshot {
                    index,
                    data: encode_store(&leader),
                }),
            };
            let sync = Message::Paxos(paxos::Message::AcceptSync(sync));
            p.on_message(0, sync, &mut out, &mut responses);
        }
        assert_eq!(p.snapshots_installed(), 2);
        assert_eq!(p.replica().first_index(), 9);
        assert_eq!(p.store, leader, "the follower's state is the leader's");
    }
}
