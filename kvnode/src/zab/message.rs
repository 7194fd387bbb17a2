//! What Zab replicas say to each other, what they must make durable, and what they tell the
//! runtime.
//!
//! Names follow the Zab paper (Junqueira, Reed, Serafini, "Zab: High-performance broadcast for
//! primary-backup systems", and "Dissecting Zab"): CEPOCH, NEWEPOCH, ACK-E, NEWLEADER (carrying
//! ZooKeeper's DIFF / TRUNC / SNAP), ACK-LD, PROPOSAL, ACK, COMMIT; the election follows
//! ZooKeeper's fast leader election.

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::paxos::{Event, NodeId, Snapshot};

/// A transaction id: the epoch of the leader that proposed it and its position in that epoch.
/// Ordered by epoch, then counter. Within a history zxids strictly increase, and a zxid names
/// one proposal: two histories holding the same zxid at the same index agree up to it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Zxid {
    pub epoch: u64,
    pub counter: u64,
}

/// One entry of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub zxid: Zxid,
    pub cmd: Command,
}

/// The epoch a replica promised to follow (the paper's `acceptedEpoch`), with the leader that
/// proposed it. Equal epochs from the same leader are the same promise (a follower reconnecting
/// to its leader); equal epochs from different leaders are never both accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedEpoch {
    pub epoch: u64,
    pub leader: NodeId,
}

/// A snapshot with the zxid of the last transaction it covers (a history compacted to nothing
/// still knows its last zxid).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZabSnapshot {
    pub snapshot: Snapshot,
    pub last: Zxid,
}

/// Fast leader election's vote: who should lead, and how up to date its history is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub leader: NodeId,
    /// The candidate's `currentEpoch` (ZooKeeper's `peerEpoch`).
    pub current_epoch: u64,
    pub last_zxid: Zxid,
}

impl Vote {
    /// ZooKeeper's total order on votes: `(peerEpoch, zxid, server id)`.
    pub fn key(&self) -> (u64, Zxid, NodeId) {
        (self.current_epoch, self.last_zxid, self.leader)
    }
}

/// What the sender of a [`Notification`] is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerState {
    Looking,
    /// Following `vote.leader`.
    Following,
    /// Leading (`vote.leader` is the sender).
    Leading,
}

/// A replica's history as the leader needs it to synchronise the replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSummary {
    pub current_epoch: u64,
    pub last_zxid: Zxid,
    pub committed: u64,
    pub len: u64,
    /// The zxids of the entries `[tail_start, len)`; below `tail_start` the history is
    /// committed (so a prefix of every later leader's history).
    pub tail_start: u64,
    pub tail: Vec<Zxid>,
}

/// A part of a history: `entries` from index `start` on, after `snapshot` if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suffix {
    pub start: u64,
    pub entries: Vec<Txn>,
    pub snapshot: Option<ZabSnapshot>,
}

/// How a NEWLEADER brings a follower to the leader's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncKind {
    /// The follower's history is a prefix of the leader's: append the missing suffix.
    Diff,
    /// The follower's history diverges from `start` on (an uncommitted tail): drop it, then
    /// append.
    Trunc,
    /// The follower is behind the leader's compaction point: install this snapshot, then
    /// replace its history with the entries.
    Snap(ZabSnapshot),
}

/// Messages between the replicas of one partition.
///
/// As for Paxos, each variant wraps a struct of the same name (postcard encodes that like a
/// struct variant, so this is also the wire format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Notification(Notification),
    CEpoch(CEpoch),
    NewEpoch(NewEpoch),
    AckEpoch(AckEpoch),
    NewLeader(NewLeader),
    AckNewLeader(AckNewLeader),
    Proposal(Proposal),
    Ack(Ack),
    Commit(Commit),
    Ping(Ping),
    PingAck(PingAck),
}

/// Fast leader election: the sender's state, election round and current vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub round: u64,
    pub state: PeerState,
    pub vote: Vote,
}

/// Discovery, follower to prospective leader: the follower's `acceptedEpoch` (ZooKeeper's
/// FOLLOWERINFO).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CEpoch {
    pub accepted_epoch: u64,
}

/// Discovery, leader to follower: the new epoch, and the leader's own history position so the
/// follower sends its history only if it is more up to date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEpoch {
    pub epoch: u64,
    pub current_epoch: u64,
    pub last_zxid: Zxid,
    pub committed: u64,
}

/// Discovery: the follower durably accepted `epoch`. `summary` describes its history;
/// `history` is the part the leader lacks, if the follower's is more up to date. Also a
/// follower's request to be (re)synchronised in `epoch`.
///
/// `late`: not a promise that counts towards the epoch's discovery quorum, only a request to
/// be synchronised: the follower had already accepted this epoch from another prospective
/// leader (ZooKeeper's ACKEPOCH with current epoch -1), or it asks again after a lost
/// NEWLEADER.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckEpoch {
    pub epoch: u64,
    pub summary: LogSummary,
    pub history: Option<Suffix>,
    pub late: bool,
}

/// Synchronisation: make the follower's history the leader's, then acknowledge epoch `epoch`
/// as current. `expect` is the follower's `(len, last zxid)` the sync was computed from: a
/// follower not yet synchronised applies it only if its history is still that one. `None`:
/// meant for a follower already synchronised (catching up through a snapshot), which only
/// extends its history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLeader {
    pub epoch: u64,
    pub kind: SyncKind,
    pub start: u64,
    pub entries: Vec<Txn>,
    pub committed: u64,
    pub expect: Option<(u64, Zxid)>,
}

/// Synchronisation: the follower's history `[0, len)` is durable, equals the leader's, and its
/// `currentEpoch` is `epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckNewLeader {
    pub epoch: u64,
    pub len: u64,
}

/// Broadcast: entries from `start` on, pipelined, and the leader's commit index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub epoch: u64,
    pub start: u64,
    pub entries: Vec<Txn>,
    pub committed: u64,
}

/// Broadcast: the follower's history `[0, len)` is durable and equals the leader's. `gap`: a
/// proposal skipped entries; resend from `len`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub epoch: u64,
    pub len: u64,
    pub gap: bool,
}

/// Broadcast: entries below `committed` are committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub epoch: u64,
    pub committed: u64,
}

/// Leader liveness, commit index, and read-index confirmation rounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    pub epoch: u64,
    pub committed: u64,
    pub read_round: u64,
}

/// A synchronised follower still follows the leader of `epoch` and saw `read_round`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingAck {
    pub epoch: u64,
    pub read_round: u64,
}

/// A change to a replica's durable state. Replaying a replica's records in order rebuilds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Durable {
    /// The paper's `acceptedEpoch` (NEWEPOCH acknowledged).
    AcceptedEpoch(AcceptedEpoch),
    /// The paper's `currentEpoch` (NEWLEADER acknowledged).
    CurrentEpoch(u64),
    /// Entries from `start` on replace whatever the history held there (one record, so a
    /// TRUNC and the DIFF after it are durable together or not at all).
    Append { start: u64, entries: Vec<Txn> },
    /// Entries below this index are committed. A hint for recovery, not needed for safety.
    Committed(u64),
    /// The history prefix below `snapshot.index` is replaced by the snapshot.
    Snapshot(ZabSnapshot),
}

/// Everything one step of a replica asks the runtime to do; the same contract as
/// [`crate::paxos::Outbox`]: append `persist` to stable storage, sync it, and only then send
/// `after_persist`; `send` may leave at once. Messages addressed to the replica itself are
/// delivered back to it like any other (that is how its own acknowledgements count).
#[derive(Debug, Default)]
pub struct Outbox {
    pub persist: Vec<Durable>,
    pub after_persist: Vec<(NodeId, Message)>,
    pub send: Vec<(NodeId, Message)>,
    pub events: Vec<Event>,
}
