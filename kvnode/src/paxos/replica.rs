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
//! Pure: no I/O, clock or randomness. Time is `tick`s; jitter comes from a seed.

use std::collections::BTreeMap;

use super::message::{
    Accept, AcceptSync, Accepted, Ballot, Durable, Event, Heartbeat, HeartbeatAck, Message, Nack,
    NodeId, Outbox, Prepare, Promise, Snapshot,
};
use crate::command::Command;

/// Payload bytes after which an Accept is closed (entries are at most 1 MiB each, frames 16 MiB).
const ACCEPT_BYTES: usize = 4 << 20;

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

/// What a leader knows of a follower's log: enough to tell where an AcceptSync to it must start.
#[derive(Clone, Copy, Debug)]
struct FollowerLog {
    /// The ballot in which its log was last synced, and that log's length.
    accepted: Ballot,
    log_len: u64,
    /// Its decided prefix agrees with our log whatever else it holds.
    decided: u64,
}

impl FollowerLog {
    /// The log a promise describes.
    fn promised(p: &Promise) -> FollowerLog {
        FollowerLog {
            accepted: p.accepted,
            log_len: p.log_len,
            decided: p.decided,
        }
    }

    /// A log known only up to `decided` (the follower lost its AcceptSync, or what it lacks was
    /// compacted): no sync computed from it starts above `decided`.
    fn unknown_beyond(decided: u64) -> FollowerLog {
        FollowerLog {
            accepted: Ballot::default(),
            log_len: 0,
            decided,
        }
    }
}

struct PendingRead {
    id: u64,
    round: u64,
    index: u64,
}

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
    since_heartbeat: u64,
}

enum Role {
    Follower,
    Candidate {
        ballot: Ballot,
        promises: BTreeMap<NodeId, Promise>,
        since_start: u64,
    },
    Leader(Box<Leading>),
}

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
    now: u64,
    last_heard: u64,
    timeout: u64,
    elections: u64,
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

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
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

    /// Advances logical time by one tick.
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

    /// Appends a command to the log if this replica leads; it is sent at the next
    /// [`Replica::flush`]. Returns the log index it will occupy if chosen.
    pub fn propose(&mut self, cmd: Command) -> Result<u64, NotLeader> {
        if !self.is_leader() {
            return Err(NotLeader { hint: self.leader });
        }
        self.entries.push(cmd);
        Ok(self.log_len() - 1)
    }

    /// Starts a linearizable read; its outcome arrives as [`Event::ReadReady`] or
    /// [`Event::ReadFailed`] with this `id`.
    pub fn read(&mut self, id: u64, out: &mut Outbox) -> Result<(), NotLeader> {
        let index = self.log_len();
        let single = self.cfg.group.len() == 1;
        let Role::Leader(l) = &mut self.role else {
            return Err(NotLeader { hint: self.leader });
        };
        l.reads.push(PendingRead {
            id,
            round: l.read_round + 1,
            index,
        });
        if single {
            l.read_round += 1;
            self.confirm_reads(out);
        } else if !l.round_open {
            self.start_read_round(out);
        }
        Ok(())
    }

    /// Sends what proposals since the last flush added: one durable record for the new
    /// entries and pipelined Accepts to every synced follower.
    pub fn flush(&mut self, out: &mut Outbox) {
        self.persist_proposals(out);
        self.send_accepts(out);
    }

    /// Persists the entries proposed since the last flush and counts our own acceptance of them
    /// once they are durable. Only a leader proposes, so only a leader has any.
    fn persist_proposals(&mut self, out: &mut Outbox) {
        let len = self.log_len();
        let me = self.cfg.me;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let own = l.peers.get_mut(&me).expect("leader tracks itself");
        let start = own.next;
        if start >= len {
            return;
        }
        own.next = len;
        out.persist.push(Durable::Append {
            start,
            entries: self.entries[(start - self.offset) as usize..].to_vec(),
        });
        out.after_persist.push((
            me,
            Message::Accepted(Accepted {
                ballot: l.ballot,
                log_len: len,
                decided: self.decided,
                synced: true,
                gap: false,
            }),
        ));
    }

    /// Replaces the log prefix below `snapshot.index` (which must be applied, so decided).
    pub fn compact(&mut self, snapshot: Snapshot, out: &mut Outbox) {
        assert!(
            snapshot.index <= self.decided,
            "only a decided prefix can be compacted"
        );
        if snapshot.index <= self.offset {
            return;
        }
        out.persist.push(Durable::Snapshot(snapshot.clone()));
        self.install(snapshot);
    }

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

    // ----- Election ------------------------------------------------------------------------

    fn reset_timer(&mut self) {
        self.last_heard = self.now;
        self.elections += 1;
        let e = self.cfg.election_ticks;
        let jitter = mix(self.cfg.seed ^ mix(u64::from(self.cfg.me) << 32 ^ self.elections)) % e;
        self.timeout = e + jitter;
    }

    fn start_election(&mut self, out: &mut Outbox) {
        self.step_down(out);
        self.max_round = self.max_round.max(self.promised.round);
        let ballot = Ballot {
            round: self.max_round + 1,
            node: self.cfg.me,
        };
        self.reset_timer();
        self.role = Role::Candidate {
            ballot,
            promises: BTreeMap::new(),
            since_start: 0,
        };
        // Our own promise is durable before anyone hears of the ballot: a node that crashes
        // mid-campaign restarts with `promised` at this ballot and never campaigns with it again,
        // so no ballot ever leads two different logs.
        self.promised = ballot;
        out.persist.push(Durable::Promise(ballot));
        self.leader = None;
        // Our own acceptor answers too (its promise counts like any other).
        for &to in &self.cfg.group {
            out.after_persist.push((to, self.prepare(ballot)));
        }
    }

    fn prepare(&self, ballot: Ballot) -> Message {
        Message::Prepare(Prepare {
            ballot,
            decided: self.decided,
            accepted: self.accepted,
            log_len: self.log_len(),
        })
    }

    /// Whether a leader we follow (or we ourselves, leading) was alive recently enough that
    /// other candidates should be ignored.
    fn leader_alive(&self) -> bool {
        match &self.role {
            Role::Leader(_) => true,
            Role::Candidate { .. } => false,
            Role::Follower => {
                self.leader.is_some() && self.now - self.last_heard < self.cfg.election_ticks
            }
        }
    }

    fn on_prepare(&mut self, from: NodeId, m: Prepare, out: &mut Outbox) {
        let Prepare {
            ballot,
            decided: their_decided,
            accepted: their_accepted,
            log_len: their_len,
        } = m;
        self.max_round = self.max_round.max(ballot.round);
        if ballot < self.promised {
            out.send.push((
                from,
                Message::Nack(Nack {
                    ballot,
                    promised: self.promised,
                }),
            ));
            return;
        }
        if ballot > self.promised {
            // Stickiness: while our leader is alive, only it (raising its own ballot) or we
            // ourselves may start a new ballot.
            if from != self.cfg.me && Some(from) != self.leader && self.leader_alive() {
                return;
            }
            // (Our own candidacy promised its ballot when it started, so this is another's.)
            self.step_down(out);
            self.promised = ballot;
            out.persist.push(Durable::Promise(ballot));
            self.leader = None;
            self.reset_timer();
        }
        let start = if self.accepted > their_accepted {
            their_decided
        } else if self.accepted == their_accepted && self.log_len() > their_len {
            their_len
        } else {
            self.log_len()
        };
        let (start, snapshot) = if start < self.offset {
            (self.offset, self.snapshot.clone())
        } else {
            (start, None)
        };
        let suffix = self.entries[(start - self.offset) as usize..].to_vec();
        out.after_persist.push((
            from,
            Message::Promise(Promise {
                ballot,
                accepted: self.accepted,
                decided: self.decided,
                log_len: self.log_len(),
                suffix_start: start,
                suffix,
                snapshot,
            }),
        ));
    }

    fn on_promise(&mut self, from: NodeId, m: Promise, out: &mut Outbox) {
        match &mut self.role {
            Role::Candidate {
                ballot, promises, ..
            } if *ballot == m.ballot => {
                promises.insert(from, m);
                if promises.len() >= self.majority() {
                    self.become_leader(out);
                }
            }
            // A late promise: sync that follower too.
            Role::Leader(l)
                if l.ballot == m.ballot && !l.peers.get(&from).is_some_and(|p| p.synced) =>
            {
                self.sync_peer(from, FollowerLog::promised(&m), out);
            }
            _ => {}
        }
    }

    fn become_leader(&mut self, out: &mut Outbox) {
        let Role::Candidate {
            ballot, promises, ..
        } = std::mem::replace(&mut self.role, Role::Follower)
        else {
            unreachable!("only candidates become leaders");
        };
        // Adopt the log of the promise with the highest (accepted ballot, length): it holds
        // every entry that may have been chosen.
        let (&best_from, best) = promises
            .iter()
            .max_by_key(|(_, p)| (p.accepted, p.log_len))
            .expect("a majority is not empty");
        if best_from != self.cfg.me
            && (best.accepted, best.log_len) > (self.accepted, self.log_len())
        {
            if let Some(s) = &best.snapshot
                && s.index > self.offset
            {
                out.persist.push(Durable::Snapshot(s.clone()));
                out.events.push(Event::InstallSnapshot(s.clone()));
                self.install(s.clone());
            }
            let start = best.suffix_start.max(self.offset);
            let skip = (start - best.suffix_start) as usize;
            self.truncate(start);
            self.entries.extend(best.suffix.iter().skip(skip).cloned());
            out.persist.push(Durable::Append {
                start,
                entries: best.suffix[skip..].to_vec(),
            });
        }
        let adopted = best.accepted;
        self.accepted = ballot;
        out.persist.push(Durable::Accepted(ballot));
        let len = self.log_len();
        let mut peers = BTreeMap::new();
        for &p in &self.cfg.group {
            peers.insert(
                p,
                Peer {
                    last_heard: self.now,
                    ..Peer::default()
                },
            );
        }
        self.role = Role::Leader(Box::new(Leading {
            ballot,
            adopted,
            adopted_len: len,
            peers,
            read_round: 0,
            round_open: false,
            reads: Vec::new(),
            since_heartbeat: 0,
        }));
        self.leader = Some(self.cfg.me);
        // Our own log is synced by the records above; count it once they are durable.
        let me = self.cfg.me;
        if let Role::Leader(l) = &mut self.role {
            let own = l.peers.get_mut(&me).expect("leader tracks itself");
            own.synced = true;
            own.next = len;
        }
        out.after_persist.push((
            me,
            Message::Accepted(Accepted {
                ballot,
                log_len: len,
                decided: self.decided,
                synced: true,
                gap: false,
            }),
        ));
        for (from, promise) in promises {
            if from != me {
                self.sync_peer(from, FollowerLog::promised(&promise), out);
            }
        }
    }

    /// Sends `peer` an AcceptSync that makes its log equal to ours.
    fn sync_peer(&mut self, peer: NodeId, known: FollowerLog, out: &mut Outbox) {
        let len = self.log_len();
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        // Logs accepted in the same ballot are prefixes of one another; otherwise only the
        // decided prefix is known to agree.
        let start = if known.accepted == l.adopted {
            known.log_len.min(l.adopted_len)
        } else {
            known.decided
        }
        .min(len);
        let ballot = l.ballot;
        let p = l.peers.entry(peer).or_default();
        p.synced = true;
        p.next = len;
        p.last_heard = self.now;
        let (start, snapshot) = if start < self.offset {
            (self.offset, self.snapshot.clone())
        } else {
            (start, None)
        };
        out.send.push((
            peer,
            Message::AcceptSync(AcceptSync {
                ballot,
                start,
                entries: self.entries[(start - self.offset) as usize..].to_vec(),
                decided: self.decided,
                snapshot,
            }),
        ));
    }

    fn on_nack(&mut self, m: Nack, out: &mut Outbox) {
        let Nack { ballot, promised } = m;
        self.max_round = self.max_round.max(promised.round);
        let ours = match &self.role {
            Role::Candidate { ballot: b, .. } => *b,
            Role::Leader(l) => l.ballot,
            Role::Follower => return,
        };
        if ballot == ours && promised > ours {
            if self.is_leader() {
                // A replica promised a higher ballot (e.g. it campaigned while cut off). Raise
                // ours above it at once; the others follow us, since we are their leader.
                self.start_election(out);
            } else {
                self.step_down(out);
            }
        }
    }

    /// Leaves candidacy or leadership: pending reads fail, proposals stay in the log (a later
    /// leader may still choose them).
    fn step_down(&mut self, out: &mut Outbox) {
        // Proposals not yet flushed stay in the log, so they must reach the disk like every
        // other entry: a Promise reports them, and a later leadership counts them as ours.
        self.persist_proposals(out);
        if let Role::Leader(l) = std::mem::replace(&mut self.role, Role::Follower) {
            for r in l.reads {
                out.events.push(Event::ReadFailed { id: r.id });
            }
            self.leader = None;
        }
    }

    // ----- Replication (follower side) -----------------------------------------------------

    /// Common checks for a message from the leader of `ballot`: false if it must be ignored.
    fn accept_leader(&mut self, from: NodeId, ballot: Ballot, out: &mut Outbox) -> bool {
        if ballot < self.promised {
            out.send.push((
                from,
                Message::Nack(Nack {
                    ballot,
                    promised: self.promised,
                }),
            ));
            return false;
        }
        if ballot > self.promised || from == self.cfg.me {
            // Not promised yet (the leader will prepare us), or our own leader's loopback.
            return false;
        }
        if !self.is_leader() {
            self.role = Role::Follower;
            self.leader = Some(from);
            self.reset_timer();
        }
        true
    }

    fn on_accept_sync(&mut self, from: NodeId, m: AcceptSync, out: &mut Outbox) {
        let AcceptSync {
            ballot,
            start,
            entries,
            decided,
            snapshot,
        } = m;
        if !self.accept_leader(from, ballot, out) {
            return;
        }
        // A snapshot covers a decided prefix, so it is safe to install whatever our log holds;
        // it must be installed even when we are already synced in this ballot, or a follower
        // whose log ends below the leader's snapshot could never catch up.
        if let Some(s) = snapshot
            && s.index > self.offset
        {
            out.persist.push(Durable::Snapshot(s.clone()));
            out.events.push(Event::InstallSnapshot(s.clone()));
            self.install(s);
        }
        let mut start = start;
        let mut entries = entries;
        if start < self.offset {
            // We compacted a decided prefix the leader still sent; it is identical.
            let skip = ((self.offset - start) as usize).min(entries.len());
            entries.drain(..skip);
            start = self.offset;
        }
        if self.accepted == ballot {
            // Already synced in this ballot (a duplicate or a re-sync): our log is a prefix of
            // the leader's, so only extend it; truncating could drop acknowledged entries.
            let accept = Accept {
                ballot,
                start,
                entries,
                decided,
            };
            self.on_accept(from, accept, out);
            return;
        }
        if start > self.log_len() {
            // Cannot happen for a sync computed from our own promise; ask for a re-sync.
            self.reply_accepted(from, ballot, false, false, out);
            return;
        }
        self.truncate(start);
        self.entries.extend(entries.iter().cloned());
        out.persist.push(Durable::Append { start, entries });
        self.accepted = ballot;
        out.persist.push(Durable::Accepted(ballot));
        self.learn_decided(decided, out);
        self.reply_accepted(from, ballot, true, false, out);
    }

    fn on_accept(&mut self, from: NodeId, m: Accept, out: &mut Outbox) {
        let Accept {
            ballot,
            start,
            entries,
            decided,
        } = m;
        if !self.accept_leader(from, ballot, out) {
            return;
        }
        if self.accepted != ballot {
            self.reply_accepted(from, ballot, false, false, out);
            return;
        }
        let len = self.log_len();
        if start > len {
            self.reply_accepted(from, ballot, true, true, out);
            return;
        }
        let end = start + entries.len() as u64;
        if end > len {
            let new = entries[(len - start) as usize..].to_vec();
            self.entries.extend(new.iter().cloned());
            out.persist.push(Durable::Append {
                start: len,
                entries: new,
            });
        }
        self.learn_decided(decided, out);
        self.reply_accepted(from, ballot, true, false, out);
    }

    fn reply_accepted(
        &mut self,
        to: NodeId,
        ballot: Ballot,
        synced: bool,
        gap: bool,
        out: &mut Outbox,
    ) {
        out.after_persist.push((
            to,
            Message::Accepted(Accepted {
                ballot,
                log_len: if synced { self.log_len() } else { 0 },
                decided: self.decided,
                synced,
                gap,
            }),
        ));
    }

    /// A follower learns the leader's decided index; only entries of a log synced in the
    /// leader's ballot may be taken as chosen.
    fn learn_decided(&mut self, decided: u64, out: &mut Outbox) {
        if self.accepted != self.promised {
            return;
        }
        let d = decided.min(self.log_len());
        if d > self.decided {
            self.decided = d;
            out.persist.push(Durable::Decided(d));
            out.events.push(Event::Decided(d));
        }
    }

    fn on_heartbeat(&mut self, from: NodeId, m: Heartbeat, out: &mut Outbox) {
        let Heartbeat {
            ballot,
            decided,
            read_round,
        } = m;
        if !self.accept_leader(from, ballot, out) {
            return;
        }
        self.learn_decided(decided, out);
        out.send.push((
            from,
            Message::HeartbeatAck(HeartbeatAck { ballot, read_round }),
        ));
    }

    // ----- Replication (leader side) -------------------------------------------------------

    fn on_accepted(&mut self, from: NodeId, m: Accepted, out: &mut Outbox) {
        let Accepted {
            ballot,
            log_len,
            decided: their_decided,
            synced,
            gap,
        } = m;
        let Some(p) = self.leader_peer(from, ballot) else {
            return;
        };
        if !synced {
            // It lost its AcceptSync: sync it again from what it knows is decided.
            self.sync_peer(from, FollowerLog::unknown_beyond(their_decided), out);
            return;
        }
        p.matched = p.matched.max(log_len);
        if gap {
            p.next = p.matched.max(log_len);
            self.send_accepts(out);
        }
        self.advance_decided(out);
    }

    fn advance_decided(&mut self, out: &mut Outbox) {
        let majority = self.majority();
        let Role::Leader(l) = &self.role else { return };
        let mut matched: Vec<u64> = l.peers.values().map(|p| p.matched).collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let chosen = matched.get(majority - 1).copied().unwrap_or(0);
        if chosen > self.decided {
            self.decided = chosen;
            out.persist.push(Durable::Decided(chosen));
            out.events.push(Event::Decided(chosen));
            self.confirm_reads(out);
        }
    }

    fn send_accepts(&mut self, out: &mut Outbox) {
        let len = self.log_len();
        let (offset, decided, max_batch, me) =
            (self.offset, self.decided, self.cfg.max_batch, self.cfg.me);
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let ballot = l.ballot;
        let mut resync = Vec::new();
        for (&id, p) in l.peers.iter_mut() {
            if id == me || !p.synced || p.next >= len {
                continue;
            }
            if p.next < offset {
                // What it lacks was compacted: sync it from the snapshot.
                resync.push(id);
                continue;
            }
            while p.next < len {
                // At most `max_batch` entries and about `ACCEPT_BYTES` of payload per Accept,
                // so that a batch always fits in one frame.
                let mut end = p.next;
                let mut bytes = 0;
                while end < len && end - p.next < max_batch as u64 && bytes < ACCEPT_BYTES {
                    bytes += self.entries[(end - offset) as usize].op.payload_len();
                    end += 1;
                }
                out.send.push((
                    id,
                    Message::Accept(Accept {
                        ballot,
                        start: p.next,
                        entries: self.entries[(p.next - offset) as usize..(end - offset) as usize]
                            .to_vec(),
                        decided,
                    }),
                ));
                p.next = end;
            }
        }
        for id in resync {
            self.resync_from_snapshot(id, out);
        }
    }

    /// Sends `peer` an AcceptSync from our snapshot on: what it lacks was compacted away.
    fn resync_from_snapshot(&mut self, peer: NodeId, out: &mut Outbox) {
        debug_assert!(self.offset > 0, "there is a snapshot to send");
        // Assuming nothing of its log, the sync starts at index 0, which lies in our snapshot.
        self.sync_peer(peer, FollowerLog::unknown_beyond(0), out);
    }

    fn leader_tick(&mut self, out: &mut Outbox) {
        let (now, me, election, heartbeat, majority) = (
            self.now,
            self.cfg.me,
            self.cfg.election_ticks,
            self.cfg.heartbeat_ticks,
            self.majority(),
        );
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        // Check quorum: without a majority heard from recently, stop serving.
        if let Some(own) = l.peers.get_mut(&me) {
            own.last_heard = now;
        }
        let alive = l
            .peers
            .values()
            .filter(|p| now - p.last_heard < election)
            .count();
        if alive < majority {
            self.step_down(out);
            self.reset_timer();
            return;
        }
        l.since_heartbeat += 1;
        if l.since_heartbeat < heartbeat {
            return;
        }
        l.since_heartbeat = 0;
        // A follower that acknowledged nothing over a whole heartbeat period while entries were
        // outstanding lost some: send again from what it has. One that is making progress is
        // left alone, so a long pipeline is not sent twice.
        for (&id, p) in l.peers.iter_mut() {
            if p.synced && id != me {
                if p.next > p.matched && p.matched == p.matched_at_heartbeat {
                    p.next = p.matched;
                }
                p.matched_at_heartbeat = p.matched;
            }
        }
        if !l.round_open && !l.reads.is_empty() {
            self.start_read_round(out);
        } else {
            self.send_heartbeats(out);
        }
        self.send_accepts(out);
    }

    fn send_heartbeats(&mut self, out: &mut Outbox) {
        let (decided, me) = (self.decided, self.cfg.me);
        let prepare_template = (self.accepted, self.log_len());
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        for (&id, p) in &l.peers {
            if id == me {
                continue;
            }
            let msg = if p.synced {
                Message::Heartbeat(Heartbeat {
                    ballot: l.ballot,
                    decided,
                    read_round: l.read_round,
                })
            } else {
                Message::Prepare(Prepare {
                    ballot: l.ballot,
                    decided,
                    accepted: prepare_template.0,
                    log_len: prepare_template.1,
                })
            };
            out.send.push((id, msg));
        }
    }

    fn start_read_round(&mut self, out: &mut Outbox) {
        let me = self.cfg.me;
        if let Role::Leader(l) = &mut self.role {
            l.read_round += 1;
            l.round_open = true;
            let round = l.read_round;
            l.peers
                .get_mut(&me)
                .expect("leader tracks itself")
                .read_round = round;
        }
        self.send_heartbeats(out);
    }

    fn on_heartbeat_ack(&mut self, from: NodeId, m: HeartbeatAck, out: &mut Outbox) {
        if let Some(p) = self.leader_peer(from, m.ballot) {
            p.read_round = p.read_round.max(m.read_round);
            self.confirm_reads(out);
        }
    }

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

    /// Releases reads whose round a majority acknowledged; opens the next round if reads wait.
    fn confirm_reads(&mut self, out: &mut Outbox) {
        let majority = self.majority();
        let single = self.cfg.group.len() == 1;
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let mut rounds: Vec<u64> = l.peers.values().map(|p| p.read_round).collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = if single {
            l.read_round
        } else {
            rounds.get(majority - 1).copied().unwrap_or(0)
        };
        let mut waiting = Vec::new();
        for r in l.reads.drain(..) {
            if r.round <= confirmed {
                out.events.push(Event::ReadReady {
                    id: r.id,
                    index: r.index,
                });
            } else {
                waiting.push(r);
            }
        }
        l.reads = waiting;
        if confirmed >= l.read_round {
            l.round_open = false;
            if !l.reads.is_empty() && !single {
                self.start_read_round(out);
            }
        }
    }

    // ----- Log helpers ---------------------------------------------------------------------

    fn truncate(&mut self, index: u64) {
        if index < self.offset {
            self.entries.clear();
            return;
        }
        self.entries.truncate((index - self.offset) as usize);
    }

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
