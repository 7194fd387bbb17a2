//! One replica of a partition: acceptor, and proposer when it leads. Sequence Paxos (the
//! log-as-a-whole variant of Multi-Paxos used by OmniPaxos):
//!
//! - **Election.** A follower that hears nothing from a leader for its (jittered) election
//!   timeout becomes a candidate with a higher ballot and sends `Prepare`. Acceptors promise
//!   and return the part of their log the candidate may lack. With a majority of promises the
//!   candidate adopts the log of the promise with the highest `(accepted ballot, length)`:
//!   every possibly chosen entry is in it.
//! - **Sync.** The new leader re-accepts its whole log in its ballot, sending each follower an
//!   `AcceptSync` that makes the follower's log equal to its own. From then on logs in one
//!   ballot are prefixes of the leader's, so an entry acknowledged by a majority in the current
//!   ballot is chosen.
//! - **Replication.** Proposals are batched into pipelined `Accept`s; `Accepted` carries the
//!   follower's durable log length; the leader decides the majority's length.
//! - **Reads.** Read-index: a read takes the leader's log length, and is served once a majority
//!   has acknowledged a heartbeat round started after it arrived and the state machine has
//!   applied that many entries.
//! - **Stability.** An acceptor that heard from its leader within the minimum election timeout
//!   ignores other candidates (so a node coming back from a partition cannot depose a healthy
//!   leader), and a leader that has not heard from a majority for that long steps down.
//!
//! The code follows the same seams. This file holds the replica's state, recovery from its
//! records, the queries, and the dispatch of ticks and messages; `election.rs` holds the
//! election (campaigns, promises, adopting a log, stepping down); `replication.rs` the sync,
//! replication and the leader's heartbeat; `reads.rs` the read-index confirmation.
//!
//! Rules every part keeps:
//! - A message that depends on a record of the same step goes in [`Outbox::after_persist`]
//!   behind it: promises (and a candidate's own Prepare), and every `Accepted`, including the
//!   leader's count of its own log. `AcceptSync`, `Accept`, heartbeats and refusals leave at
//!   once: a follower's acceptance counts only once the follower has made it durable.
//! - `promised` never decreases, and `accepted <= promised`.
//! - A log synced in ballot `b` (`accepted == b`) is a prefix of the log of `b`'s leader.
//!
//! Pure: no I/O, clock or randomness. Time is `tick`s; jitter comes from a seed.

mod election;
mod reads;
mod replication;

use std::collections::BTreeMap;

use super::message::{Ballot, Durable, Message, NodeId, Outbox, Promise, Snapshot};
use crate::command::Command;

/// Static parameters of a replica.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    pub me: NodeId,
    /// Every replica of the partition, including `me`.
    pub group: Vec<NodeId>,
    /// Minimum election timeout, ticks; each timeout is drawn from `[e, 2e)`.
    pub election_ticks: u64,
    /// Heartbeat period of a leader, ticks.
    pub heartbeat_ticks: u64,
    /// Seed for election jitter.
    pub seed: u64,
    /// Largest number of entries in one Accept.
    pub max_batch: usize,
}

/// A leader's view of one replica (itself included).
#[derive(Clone, Debug, Default)]
struct Peer {
    /// It promised this ballot and has been sent an AcceptSync.
    synced: bool,
    /// Its log `[0, matched)` is durable and equal to ours.
    matched: u64,
    /// Next entry to send it.
    next: u64,
    /// `matched` at the previous heartbeat: no progress over a whole period means a loss.
    matched_at_heartbeat: u64,
    /// Tick of its last message in this ballot.
    last_heard: u64,
    /// Highest read round it acknowledged.
    read_round: u64,
}

/// A read waiting for a majority to acknowledge read round `round`; it is then served at
/// log index `index` (the leader's log length when it arrived).
struct PendingRead {
    id: u64,
    round: u64,
    index: u64,
}

/// A leader's state for its ballot.
struct Leading {
    ballot: Ballot,
    /// The accepted ballot of the log adopted at election, and that log's length.
    adopted: Ballot,
    adopted_len: u64,
    peers: BTreeMap<NodeId, Peer>,
    /// Latest read round started; whether it still awaits a majority.
    read_round: u64,
    round_open: bool,
    reads: Vec<PendingRead>,
    /// Ticks since the last heartbeat.
    since_heartbeat: u64,
}

/// What the replica does in the ballot it promised: a candidate's and a leader's ballot are
/// always `promised` (a higher promise makes them followers first).
enum Role {
    /// Accepts from the leader of `promised`, if any; campaigns when its timeout runs out.
    Follower,
    /// Collects promises for `ballot` until a majority has promised.
    Candidate {
        ballot: Ballot,
        promises: BTreeMap<NodeId, Promise>,
        since_start: u64,
    },
    Leader(Box<Leading>),
}

/// One replica's protocol state: its acceptor's durable state (what [`Replica::recover`]
/// rebuilds) and its volatile role.
///
/// Invariants: `promised` and `decided` never decrease; `accepted <= promised`; the entries
/// below `offset` are replaced by `snapshot`, and `offset <= decided`.
pub struct Replica {
    cfg: ReplicaConfig,
    // Durable state.
    promised: Ballot,
    accepted: Ballot,
    /// Index of `entries[0]`; entries below it live in `snapshot`.
    offset: u64,
    entries: Vec<Command>,
    snapshot: Option<Snapshot>,
    decided: u64,
    // Volatile state.
    role: Role,
    leader: Option<NodeId>,
    /// Ticks since start.
    now: u64,
    /// Tick the election timer was last reset (a message from our leader, a new promise, a
    /// campaign's start).
    last_heard: u64,
    /// The current election timeout, ticks (jittered).
    timeout: u64,
    /// Timeouts drawn so far: the input of the next jitter.
    elections: u64,
    /// Highest round seen in any ballot: a new campaign goes above it.
    max_round: u64,
}

/// A replica's records that no correct replica writes: recovery stops rather than guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "record {index} appends at index {start}, past the end of the log ({len}): the log has a hole"
)]
pub struct ReplayError {
    /// Position of the record among the replica's records.
    pub index: usize,
    pub start: u64,
    pub len: u64,
}

/// Why a request was refused before anything happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not the leader (leader: {hint:?})")]
pub struct NotLeader {
    pub hint: Option<NodeId>,
}

impl Replica {
    /// A replica with empty durable state.
    pub fn new(cfg: ReplicaConfig) -> Replica {
        Replica::recover(cfg, std::iter::empty()).expect("no records, nothing to refuse")
    }

    /// Rebuilds a replica from its durable records, in the order they were written. Records
    /// that cannot have been written by a correct replica (an append that would leave a hole in
    /// the log) are refused: applying them would silently shift entries to other indexes.
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
            "heartbeats must come more often than elections"
        );
        let mut r = Replica {
            cfg,
            promised: Ballot::default(),
            accepted: Ballot::default(),
            offset: 0,
            entries: Vec::new(),
            snapshot: None,
            decided: 0,
            role: Role::Follower,
            leader: None,
            now: 0,
            last_heard: 0,
            timeout: 0,
            elections: 0,
            max_round: 0,
        };
        for (index, rec) in records.into_iter().enumerate() {
            r.replay(rec)
                .map_err(|hole| ReplayError { index, ..hole })?;
        }
        r.decided = r.decided.min(r.log_len());
        r.max_round = r.promised.round;
        r.reset_timer();
        Ok(r)
    }

    fn replay(&mut self, rec: Durable) -> Result<(), ReplayError> {
        match rec {
            Durable::Promise(b) => self.promised = b,
            Durable::Accepted(b) => self.accepted = b,
            Durable::Append { start, entries } => {
                if start > self.log_len() {
                    return Err(ReplayError {
                        index: 0,
                        start,
                        len: self.log_len(),
                    });
                }
                self.truncate(start);
                self.entries.extend(entries);
            }
            Durable::Truncate(i) => self.truncate(i),
            Durable::Decided(d) => self.decided = self.decided.max(d),
            Durable::Snapshot(s) => self.install(s),
        }
        Ok(())
    }

    // ----- Queries -------------------------------------------------------------------------

    pub fn log_len(&self) -> u64 {
        self.offset + self.entries.len() as u64
    }

    /// Entries below this index are chosen.
    pub fn decided(&self) -> u64 {
        self.decided
    }

    /// First index still held as an entry (entries below are in the snapshot).
    pub fn first_index(&self) -> u64 {
        self.offset
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The entry at `index`, if held (`first_index() <= index < log_len()`).
    pub fn entry(&self, index: u64) -> Option<&Command> {
        index
            .checked_sub(self.offset)
            .and_then(|i| self.entries.get(i as usize))
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// Who leads, as far as this replica knows (a hint for clients); `None` while campaigning.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// The ballot in which this replica's log was last synced with a leader.
    pub fn accepted(&self) -> Ballot {
        self.accepted
    }

    fn majority(&self) -> usize {
        self.cfg.group.len() / 2 + 1
    }

    /// Records that rebuild this replica's current state (for rewriting the log compactly).
    pub fn checkpoint(&self) -> Vec<Durable> {
        let mut records = vec![
            Durable::Promise(self.promised),
            Durable::Accepted(self.accepted),
        ];
        if let Some(s) = &self.snapshot {
            records.push(Durable::Snapshot(s.clone()));
        }
        records.push(Durable::Append {
            start: self.offset,
            entries: self.entries.clone(),
        });
        records.push(Durable::Decided(self.decided));
        records
    }

    // ----- Inputs from the runtime ---------------------------------------------------------

    /// Advances logical time by one tick: a follower or candidate whose timeout ran out
    /// campaigns; a leader checks that a majority is still there and sends heartbeats.
    pub fn tick(&mut self, out: &mut Outbox) {
        self.now += 1;
        match &mut self.role {
            Role::Leader(_) => self.leader_tick(out),
            Role::Candidate { since_start, .. } => {
                *since_start += 1;
                if *since_start >= self.timeout {
                    self.start_election(out);
                }
            }
            Role::Follower => {
                if self.now - self.last_heard >= self.timeout {
                    self.start_election(out);
                }
            }
        }
    }

    /// Handles a message from `from`, which may be this replica itself.
    pub fn on_message(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        match msg {
            Message::Prepare(m) => self.on_prepare(from, m, out),
            Message::Promise(m) => self.on_promise(from, m, out),
            Message::Nack(m) => self.on_nack(m, out),
            Message::AcceptSync(m) => self.on_accept_sync(from, m, out),
            Message::Accept(m) => self.on_accept(from, m, out),
            Message::Accepted(m) => self.on_accepted(from, m, out),
            Message::Heartbeat(m) => self.on_heartbeat(from, m, out),
            Message::HeartbeatAck(m) => self.on_heartbeat_ack(from, m, out),
        }
    }

    // ----- Helpers -------------------------------------------------------------------------

    /// The leader's record of `from`, if we lead in `ballot` (a reply to us); marks it heard.
    fn leader_peer(&mut self, from: NodeId, ballot: Ballot) -> Option<&mut Peer> {
        let now = self.now;
        match &mut self.role {
            Role::Leader(l) if l.ballot == ballot => {
                let p = l.peers.entry(from).or_default();
                p.last_heard = now;
                Some(p)
            }
            _ => None,
        }
    }

    /// Drops the entries from `index` on.
    fn truncate(&mut self, index: u64) {
        if index < self.offset {
            self.entries.clear();
            return;
        }
        self.entries.truncate((index - self.offset) as usize);
    }

    /// Replaces the log prefix below `s.index`, and everything if the log is shorter.
    fn install(&mut self, s: Snapshot) {
        if s.index >= self.log_len() {
            self.entries.clear();
        } else if s.index > self.offset {
            self.entries.drain(..(s.index - self.offset) as usize);
        }
        self.offset = s.index;
        self.decided = self.decided.max(s.index);
        self.snapshot = Some(s);
    }
}
