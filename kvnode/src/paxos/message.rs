//! What replicas say to each other, what they must make durable, and what they tell the runtime.

use serde::{Deserialize, Serialize};

use crate::command::Command;

/// A replica's identity within the cluster (its index in the cluster configuration).
pub type NodeId = u32;

/// A Paxos round. Ordered by `round`, then by `node`, so two candidates never share a ballot.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    pub round: u64,
    pub node: NodeId,
}

/// The state of the log's prefix `[0, index)`, in place of its entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub index: u64,
    /// The runtime's serialised state machine after applying the prefix; opaque here.
    pub data: Vec<u8>,
}

/// Messages between the replicas of one partition.
///
/// Each variant wraps a struct of the same name, so a handler takes one value. postcard encodes
/// a newtype variant around a struct exactly as it would a struct variant with those fields, so
/// this shape is also the wire format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Prepare(Prepare),
    Promise(Promise),
    Nack(Nack),
    AcceptSync(AcceptSync),
    Accept(Accept),
    Accepted(Accepted),
    Heartbeat(Heartbeat),
    HeartbeatAck(HeartbeatAck),
}

/// Phase 1a. Carries what the candidate has, so acceptors send only what it lacks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepare {
    pub ballot: Ballot,
    pub decided: u64,
    pub accepted: Ballot,
    pub log_len: u64,
}

/// Phase 1b. `suffix` starts at `suffix_start`; `snapshot` stands in for entries the acceptor
/// has compacted away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promise {
    pub ballot: Ballot,
    pub accepted: Ballot,
    pub decided: u64,
    pub log_len: u64,
    pub suffix_start: u64,
    pub suffix: Vec<Command>,
    pub snapshot: Option<Snapshot>,
}

/// The receiver has promised a higher ballot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nack {
    pub ballot: Ballot,
    pub promised: Ballot,
}

/// Phase 2a after an election: make the follower's log equal to the leader's by truncating
/// it at `start` and appending `entries` (after installing `snapshot`, if any).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptSync {
    pub ballot: Ballot,
    pub start: u64,
    pub entries: Vec<Command>,
    pub decided: u64,
    pub snapshot: Option<Snapshot>,
}

/// Phase 2a: entries from `start` on, pipelined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accept {
    pub ballot: Ballot,
    pub start: u64,
    pub entries: Vec<Command>,
    pub decided: u64,
}

/// Phase 2b: the sender's log `[0, log_len)` is durable and equals the leader's. `synced`
/// false: the sender has not been synced in this ballot (it lost the AcceptSync) and needs
/// one from its `decided` index. `gap`: an Accept skipped entries; resend from `log_len`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub ballot: Ballot,
    pub log_len: u64,
    pub decided: u64,
    pub synced: bool,
    pub gap: bool,
}

/// Leader liveness, decided index, and read-index confirmation rounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub ballot: Ballot,
    pub decided: u64,
    pub read_round: u64,
}

/// A follower's answer to a [`Heartbeat`]: it still follows `ballot` and saw `read_round`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    pub ballot: Ballot,
    pub read_round: u64,
}

/// A change to a replica's durable state. Replaying a replica's records in order rebuilds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Durable {
    Promise(Ballot),
    /// The ballot in which the log was last synced.
    Accepted(Ballot),
    /// Entries from `start` on replace whatever the log held there.
    Append {
        start: u64,
        entries: Vec<Command>,
    },
    /// The log ends at this index.
    Truncate(u64),
    /// Entries below this index are chosen. A hint for recovery, not needed for safety.
    Decided(u64),
    /// The log prefix below `snapshot.index` is replaced by the snapshot.
    Snapshot(Snapshot),
}

/// Something the runtime must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Entries below this index are chosen and may be applied.
    Decided(u64),
    /// The read `id` may be served once the state machine has applied `index` entries.
    ReadReady { id: u64, index: u64 },
    /// The read `id` cannot be served here (leadership lost); it had no effect.
    ReadFailed { id: u64 },
    /// The state machine must be replaced by this snapshot (the follower was too far behind).
    InstallSnapshot(Snapshot),
}

/// Everything one step of a replica asks the runtime to do.
///
/// The order is the contract: append `persist` to stable storage, sync it, and only then send
/// `after_persist`; `send` may leave at once. Messages addressed to the replica itself are
/// delivered back to it like any other (that is how its own promise and acceptance count).
#[derive(Debug, Default)]
pub struct Outbox {
    pub persist: Vec<Durable>,
    pub after_persist: Vec<(NodeId, Message)>,
    pub send: Vec<(NodeId, Message)>,
    pub events: Vec<Event>,
}
