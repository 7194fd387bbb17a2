//! One replica of a partition running Zab: follower, and leader when elected.
//!
//! - **Election** (`election.rs`). ZooKeeper's fast leader election: a replica that has no
//!   leader is LOOKING; it votes for the most up-to-date replica it knows of, votes ordered by
//!   `(currentEpoch, last zxid, id)`, and broadcasts its vote; it adopts any better vote it
//!   hears in its round. When a quorum's votes (its own included) agree, the chosen replica
//!   becomes the prospective leader and the others its followers. A LOOKING replica that hears
//!   from replicas that already follow a leader which says it leads joins that leader.
//! - **Discovery** (`discovery.rs`). Followers send CEPOCH with their `acceptedEpoch`; with a
//!   quorum (itself included) the leader picks an epoch above all of them and every epoch it
//!   ever accepted, persists it as its own `acceptedEpoch`, and only then sends NEWEPOCH.
//!   A follower accepts a NEWEPOCH above its `acceptedEpoch` (or the same promise again),
//!   persists it, and only then answers ACK-E with its `currentEpoch`, last zxid and, if it is
//!   more up to date than the leader, the part of its history the leader lacks. With a quorum of
//!   ACK-Es, its own among them, the leader adopts the history with the highest
//!   `(currentEpoch, last zxid)`: it holds every committed transaction.
//! - **Synchronisation** (`sync.rs`). The leader persists the adopted history and its
//!   `currentEpoch`, and sends each follower a NEWLEADER carrying DIFF (the missing suffix),
//!   TRUNC (the follower's uncommitted divergent tail is dropped first) or SNAP (the follower is
//!   behind the leader's compaction point). A follower persists the history and `currentEpoch`
//!   before ACK-LD. With a quorum of ACK-LDs (its own among them) the leader is established and
//!   commits the initial history.
//! - **Broadcast** (`broadcast.rs`). Proposals get zxids `(epoch, 1, 2, ...)`, are batched into
//!   pipelined PROPOSALs, persisted before ACK (cumulative: the follower's durable history
//!   length); the leader commits the longest prefix a quorum acknowledged in its epoch and sends
//!   COMMIT. Pings carry the commit index and read rounds; a follower that lost its NEWLEADER
//!   answers a ping with its ACK-E again and is re-synchronised.
//! - **Reads** (`reads.rs`). Read index, exactly as Paxos: a read takes the leader's history
//!   length and is served once a quorum acknowledged a ping round started after it arrived.
//!
//! Rules every part keeps:
//! - A message that promises durable state goes in [`Outbox::after_persist`] behind the
//!   record: NEWEPOCH (behind the leader's own `acceptedEpoch`), ACK-E, ACK-LD, ACK, and the
//!   leader's acknowledgements of its own epoch, history and proposals (sent to itself).
//! - `acceptedEpoch` and `currentEpoch` never decrease, and `currentEpoch <= acceptedEpoch`.
//! - In an epoch, a synchronised follower's history is a prefix of the leader's; it is only
//!   ever extended, so nothing it acknowledged is dropped.
//!
//! Pure: no I/O, clock or randomness. Time is `tick`s; jitter comes from a seed.

mod broadcast;
mod discovery;
mod election;
mod reads;
mod sync;

use std::collections::BTreeMap;

use super::message::{
    AcceptedEpoch, AckEpoch, Durable, LogSummary, Message, Outbox, Txn, Vote, ZabSnapshot, Zxid,
};
use crate::command::Command;
use crate::paxos::{NodeId, NotLeader, ReplayError, Snapshot};

/// Static parameters of a replica.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    pub me: NodeId,
    /// Every replica of the partition, including `me`.
    pub group: Vec<NodeId>,
    /// Minimum election timeout, ticks; each timeout is drawn from `[e, 2e)`.
    pub election_ticks: u64,
    /// Ping period of a leader and notification period of a LOOKING replica, ticks.
    pub heartbeat_ticks: u64,
    /// Seed for election jitter.
    pub seed: u64,
    /// Largest number of entries in one PROPOSAL.
    pub max_batch: usize,
    /// DELIBERATE BUG, for the bench to catch: a new leader neither adopts a more up-to-date
    /// history nor synchronises its followers (no DIFF, TRUNC or SNAP); it tells them its epoch
    /// and starts broadcasting at once, counting each follower's history as a prefix of its own.
    pub unsafe_skip_sync: bool,
}

/// A leader's view of one replica (itself included).
#[derive(Clone, Debug, Default)]
struct Peer {
    /// It acknowledged our epoch and has been sent a NEWLEADER.
    synced: bool,
    /// It acknowledged our NEWLEADER.
    acked_new_leader: bool,
    /// Its history `[0, matched)` is durable and equal to ours.
    matched: u64,
    /// Next entry to send it.
    next: u64,
    /// `matched` at the previous ping: no progress over a whole period means a loss.
    matched_at_ping: u64,
    /// Tick of its last message in this epoch.
    last_heard: u64,
    /// Highest read round it acknowledged.
    read_round: u64,
}

/// A read waiting for a quorum to acknowledge read round `round`; it is then served at
/// history index `index` (the leader's history length when it arrived).
struct PendingRead {
    id: u64,
    round: u64,
    index: u64,
}

/// Where a leader is in establishing its epoch.
enum Phase {
    /// Collecting CEPOCHs (`acceptedEpoch` of each follower).
    Discovery { cepochs: BTreeMap<NodeId, u64> },
    /// NEWEPOCH sent; collecting ACK-Es.
    NewEpoch { acks: BTreeMap<NodeId, AckEpoch> },
    /// History adopted: synchronising followers (established once a quorum acknowledged
    /// NEWLEADER) and broadcasting.
    Broadcast { established: bool },
}

/// A (prospective) leader's state.
struct Leading {
    phase: Phase,
    /// The epoch it leads, once chosen (0 during discovery).
    epoch: u64,
    /// Counter of the last zxid given in `epoch`.
    counter: u64,
    peers: BTreeMap<NodeId, Peer>,
    /// Ticks since its current phase began (discovery, NEWEPOCH, synchronisation): it gives
    /// up if a phase does not end within the election timeout. Each phase has its own
    /// deadline, as each of ZooKeeper's three waits has its own `initLimit`: together they
    /// take four fsyncs in a row, two on the leader's own disk, which one timeout need not
    /// cover.
    since_phase: u64,
    /// Latest read round started; whether it still awaits a quorum.
    read_round: u64,
    round_open: bool,
    reads: Vec<PendingRead>,
    /// Ticks since the last ping.
    since_ping: u64,
}

/// A follower's connection to its leader. Volatile: after a restart a replica looks for its
/// leader again and goes through discovery and synchronisation again.
struct Following {
    leader: NodeId,
    /// It acknowledged this leader's NEWEPOCH for this epoch.
    epoch: Option<u64>,
    /// It applied this leader's NEWLEADER: proposals and commits are taken.
    synced: bool,
}

/// Fast leader election in progress.
struct Looking {
    vote: Vote,
    /// Votes received in the current round (ours included).
    votes: BTreeMap<NodeId, Vote>,
    /// Replicas that reported following (or leading) a leader: replica -> its leader.
    out_of_election: BTreeMap<NodeId, NodeId>,
    since_broadcast: u64,
}

enum Role {
    Looking(Looking),
    Following(Following),
    Leading(Box<Leading>),
}

/// One replica's protocol state: its durable state (what [`Replica::recover`] rebuilds) and
/// its volatile role.
///
/// Invariants: `current_epoch <= accepted.epoch`, both never decrease; `committed` never
/// decreases; the entries below `offset` are replaced by `snapshot`, and `offset <= committed`;
/// zxids strictly increase along the history.
pub struct Replica {
    cfg: ReplicaConfig,
    // Durable state.
    accepted: AcceptedEpoch,
    current_epoch: u64,
    /// Index of `log[0]`; entries below it live in `snapshot`.
    offset: u64,
    log: Vec<Txn>,
    snapshot: Option<ZabSnapshot>,
    committed: u64,
    // Volatile state.
    role: Role,
    /// Fast leader election's logical clock.
    round: u64,
    now: u64,
    /// Tick the leader was last heard from (or the election timer was last reset).
    last_heard: u64,
    /// The current election timeout, ticks (jittered).
    timeout: u64,
    /// Timeouts drawn so far: the input of the next jitter.
    draws: u64,
}

impl Replica {
    /// A replica with empty durable state.
    pub fn new(cfg: ReplicaConfig) -> Replica {
        Replica::recover(cfg, std::iter::empty()).expect("no records, nothing to refuse")
    }

    /// Rebuilds a replica from its durable records, in the order they were written. An append
    /// past the end of the history (a hole) is refused, as for Paxos. The replica starts
    /// LOOKING.
    pub fn recover(
        cfg: ReplicaConfig,
        records: impl IntoIterator<Item = Durable>,
    ) -> Result<Replica, ReplayError> {
        assert!(
            cfg.group.contains(&cfg.me),
            "a replica belongs to its group"
        );
        assert!(
            cfg.election_ticks > cfg.heartbeat_ticks,
            "pings must come more often than elections"
        );
        let mut r = Replica {
            cfg,
            accepted: AcceptedEpoch::default(),
            current_epoch: 0,
            offset: 0,
            log: Vec::new(),
            snapshot: None,
            committed: 0,
            role: Role::Following(Following {
                leader: 0,
                epoch: None,
                synced: false,
            }),
            round: 0,
            now: 0,
            last_heard: 0,
            timeout: 0,
            draws: 0,
        };
        for (index, rec) in records.into_iter().enumerate() {
            r.replay(rec)
                .map_err(|hole| ReplayError { index, ..hole })?;
        }
        r.committed = r.committed.min(r.log_len());
        // Looking from the start; the first tick sends the vote (`recover` has no outbox).
        r.round = 1;
        r.reset_timer();
        r.role = Role::Looking(r.fresh_looking());
        if let Role::Looking(l) = &mut r.role {
            l.since_broadcast = r.cfg.heartbeat_ticks;
        }
        Ok(r)
    }

    fn replay(&mut self, rec: Durable) -> Result<(), ReplayError> {
        match rec {
            Durable::AcceptedEpoch(a) => self.accepted = a,
            Durable::CurrentEpoch(e) => self.current_epoch = e,
            Durable::Append { start, entries } => {
                if start > self.log_len() {
                    return Err(ReplayError {
                        index: 0,
                        start,
                        len: self.log_len(),
                    });
                }
                self.replace_from(start, entries);
            }
            Durable::Committed(c) => self.committed = self.committed.max(c),
            Durable::Snapshot(s) => self.install(s),
        }
        Ok(())
    }

    // ----- Queries -------------------------------------------------------------------------

    pub fn log_len(&self) -> u64 {
        self.offset + self.log.len() as u64
    }

    /// Entries below this index are committed (named as Paxos's, so the runtime reads both
    /// alike).
    pub fn decided(&self) -> u64 {
        self.committed
    }

    /// First index still held as an entry (entries below are in the snapshot).
    pub fn first_index(&self) -> u64 {
        self.offset
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref().map(|s| &s.snapshot)
    }

    /// The command at `index`, if held (`first_index() <= index < log_len()`).
    pub fn entry(&self, index: u64) -> Option<&Command> {
        self.txn(index).map(|t| &t.cmd)
    }

    /// The zxid of the entry at `index`, if known (held, or the last one a snapshot covers).
    pub fn zxid(&self, index: u64) -> Option<Zxid> {
        if let Some(t) = self.txn(index) {
            return Some(t.zxid);
        }
        match &self.snapshot {
            Some(s) if index + 1 == self.offset => Some(s.last),
            _ => None,
        }
    }

    /// The zxid of the last entry of the history (zero for an empty one).
    pub fn last_zxid(&self) -> Zxid {
        match (self.log.last(), &self.snapshot) {
            (Some(t), _) => t.zxid,
            (None, Some(s)) => s.last,
            (None, None) => Zxid::default(),
        }
    }

    /// A leader whose history is adopted (it accepts proposals and reads), established or not.
    pub fn is_leader(&self) -> bool {
        matches!(&self.role, Role::Leading(l) if matches!(l.phase, Phase::Broadcast { .. }))
    }

    /// A leader that a quorum has synchronised with (its initial history is committed).
    pub fn is_established(&self) -> bool {
        matches!(&self.role, Role::Leading(l) if matches!(l.phase, Phase::Broadcast { established: true }))
    }

    /// Whether fast leader election is running here.
    pub fn is_looking(&self) -> bool {
        matches!(self.role, Role::Looking(_))
    }

    /// Who leads, as far as this replica knows (a hint for clients); `None` while looking.
    pub fn leader(&self) -> Option<NodeId> {
        match &self.role {
            Role::Looking(_) => None,
            Role::Following(f) => Some(f.leader),
            Role::Leading(_) => Some(self.cfg.me),
        }
    }

    /// The paper's `acceptedEpoch`: the last epoch this replica acknowledged in discovery.
    pub fn accepted_epoch(&self) -> u64 {
        self.accepted.epoch
    }

    /// The paper's `currentEpoch`: the last epoch whose NEWLEADER this replica acknowledged.
    pub fn current_epoch(&self) -> u64 {
        self.current_epoch
    }

    /// Records that rebuild this replica's current state (for rewriting the log compactly).
    pub fn checkpoint(&self) -> Vec<Durable> {
        let mut records = vec![
            Durable::AcceptedEpoch(self.accepted),
            Durable::CurrentEpoch(self.current_epoch),
        ];
        if let Some(s) = &self.snapshot {
            records.push(Durable::Snapshot(s.clone()));
        }
        records.push(Durable::Append {
            start: self.offset,
            entries: self.log.clone(),
        });
        records.push(Durable::Committed(self.committed));
        records
    }

    fn quorum(&self) -> usize {
        self.cfg.group.len() / 2 + 1
    }

    /// This replica's vote for itself.
    fn own_vote(&self) -> Vote {
        Vote {
            leader: self.cfg.me,
            current_epoch: self.current_epoch,
            last_zxid: self.last_zxid(),
        }
    }

    /// Describes the history for a leader: the zxids above the committed prefix.
    fn summary(&self) -> LogSummary {
        let tail_start = self.committed.max(self.offset);
        LogSummary {
            current_epoch: self.current_epoch,
            last_zxid: self.last_zxid(),
            committed: self.committed,
            len: self.log_len(),
            tail_start,
            tail: self.log[(tail_start - self.offset) as usize..]
                .iter()
                .map(|t| t.zxid)
                .collect(),
        }
    }

    // ----- Inputs from the runtime ---------------------------------------------------------

    /// Advances logical time by one tick: a LOOKING replica re-sends its vote; a follower whose
    /// leader has been silent for its timeout starts looking (one not yet answered with
    /// NEWEPOCH re-sends its CEPOCH every ping period); a leader that is not established
    /// in time, or no longer hears from a quorum, starts looking; a leader pings.
    pub fn tick(&mut self, out: &mut Outbox) {
        self.now += 1;
        match &mut self.role {
            Role::Looking(l) => {
                l.since_broadcast += 1;
                if l.since_broadcast >= self.cfg.heartbeat_ticks {
                    self.broadcast_vote(out);
                }
                self.decide(out);
            }
            Role::Following(f) => {
                let silent = self.now - self.last_heard;
                if silent >= self.timeout {
                    self.start_looking(out);
                } else if f.epoch.is_none() && silent.is_multiple_of(self.cfg.heartbeat_ticks) {
                    self.send_cepoch(out);
                }
            }
            Role::Leading(_) => self.leader_tick(out),
        }
    }

    /// Handles a message from `from`, which may be this replica itself.
    pub fn on_message(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        match msg {
            Message::Notification(m) => self.on_notification(from, m, out),
            Message::CEpoch(m) => self.on_cepoch(from, m, out),
            Message::NewEpoch(m) => self.on_new_epoch(from, m, out),
            Message::AckEpoch(m) => self.on_ack_epoch(from, m, out),
            Message::NewLeader(m) => self.on_new_leader(from, m, out),
            Message::AckNewLeader(m) => self.on_ack_new_leader(from, m, out),
            Message::Proposal(m) => self.on_proposal(from, m, out),
            Message::Ack(m) => self.on_ack(from, m, out),
            Message::Commit(m) => self.on_commit(from, m, out),
            Message::Ping(m) => self.on_ping(from, m, out),
            Message::PingAck(m) => self.on_ping_ack(from, m, out),
        }
    }

    /// Why a request cannot be taken here.
    fn not_leader(&self) -> NotLeader {
        NotLeader {
            hint: self.leader().filter(|&l| l != self.cfg.me),
        }
    }

    // ----- Helpers -------------------------------------------------------------------------

    fn txn(&self, index: u64) -> Option<&Txn> {
        index
            .checked_sub(self.offset)
            .and_then(|i| self.log.get(i as usize))
    }

    /// The leader's record of `from` if we lead `epoch` (a reply to us); marks it heard.
    fn leader_peer(&mut self, from: NodeId, epoch: u64) -> Option<&mut Peer> {
        let now = self.now;
        match &mut self.role {
            Role::Leading(l) if l.epoch == epoch && epoch > 0 => {
                let p = l.peers.entry(from).or_default();
                p.last_heard = now;
                Some(p)
            }
            _ => None,
        }
    }

    /// The connection to `from` if we follow it and acknowledged its `epoch`, our accepted one
    /// (promised to it, or to another leader of that epoch: then our ACK-E was late).
    fn following(&mut self, from: NodeId, epoch: u64) -> Option<&mut Following> {
        match &mut self.role {
            Role::Following(f)
                if f.leader == from && f.epoch == Some(epoch) && self.accepted.epoch == epoch =>
            {
                Some(f)
            }
            _ => None,
        }
    }

    /// Entries from `start` on become `entries` (`start <= log_len()`). Committed entries
    /// only ever get replaced by themselves.
    fn replace_from(&mut self, start: u64, entries: Vec<Txn>) {
        debug_assert!(start <= self.log_len());
        debug_assert!(
            (start.max(self.offset)..self.committed.min(self.log_len()))
                .all(|i| entries.get((i - start) as usize).map(|t| t.zxid) == self.zxid(i)),
            "replacing the history from {start} changes committed entries (committed {})",
            self.committed
        );
        if start < self.offset {
            // A prefix we compacted (committed, hence identical): skip it.
            let skip = ((self.offset - start) as usize).min(entries.len());
            self.log.clear();
            self.log.extend(entries.into_iter().skip(skip));
            return;
        }
        self.log.truncate((start - self.offset) as usize);
        self.log.extend(entries);
    }

    /// Replaces the history prefix below the snapshot's index, and everything if the history
    /// is shorter.
    fn install(&mut self, s: ZabSnapshot) {
        let index = s.snapshot.index;
        if index >= self.log_len() {
            self.log.clear();
        } else if index > self.offset {
            self.log.drain(..(index - self.offset) as usize);
        }
        self.offset = index;
        self.committed = self.committed.max(index);
        self.snapshot = Some(s);
    }
}
