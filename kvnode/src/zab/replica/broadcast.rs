//! Broadcast (Zab phase 3): PROPOSAL, ACK, COMMIT, pings, compaction, and the leader's tick.
//!
//! Rules:
//! - Proposals get zxids `(epoch, counter)` in order; they are persisted once per flush and
//!   sent in pipelined PROPOSALs of at most `max_batch` entries and about [`PROPOSAL_BYTES`].
//! - A follower takes proposals and commits only from the leader it synchronised with in this
//!   epoch, only extends its history, and ACKs (cumulatively: its durable history length) after
//!   the entries are durable. The leader counts its own history the same way, through an ACK
//!   to itself.
//! - The leader commits, once established, the longest prefix a quorum acknowledged in its
//!   epoch; a follower commits the leader's index, never beyond its own history.
//! - A lost PROPOSAL is re-sent only to a follower that made no progress over a whole ping
//!   period; a follower that needs compacted entries is sent the snapshot.

use super::{Phase, Replica, Role};
use crate::command::Command;
use crate::paxos::{Event, NodeId, NotLeader, Snapshot};
use crate::zab::message::{
    Ack, AckEpoch, CEpoch, Commit, Durable, Message, Outbox, Ping, PingAck, Proposal, Txn,
    ZabSnapshot, Zxid,
};

/// Payload bytes after which a PROPOSAL is closed (entries are at most 1 MiB each, frames
/// 16 MiB), as for Paxos's Accept.
const PROPOSAL_BYTES: usize = 4 << 20;

impl Replica {
    /// Appends a command to the history with the next zxid if this replica leads (its history
    /// adopted); it is sent at the next [`Replica::flush`]. Returns the index it will occupy
    /// if committed.
    pub fn propose(&mut self, cmd: Command) -> Result<u64, NotLeader> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let Role::Leading(l) = &mut self.role else {
            unreachable!("is_leader");
        };
        l.counter += 1;
        let zxid = Zxid {
            epoch: l.epoch,
            counter: l.counter,
        };
        self.log.push(Txn { zxid, cmd });
        Ok(self.log_len() - 1)
    }

    /// Sends what proposals since the last flush added: one durable record for the new entries
    /// and pipelined PROPOSALs to every synchronised follower.
    pub fn flush(&mut self, out: &mut Outbox) {
        self.persist_proposals(out);
        self.send_proposals(out);
    }

    /// Persists the entries proposed since the last flush and counts our own ACK of them once
    /// they are durable.
    pub(super) fn persist_proposals(&mut self, out: &mut Outbox) {
        let len = self.log_len();
        let me = self.cfg.me;
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        let Some(own) = l.peers.get_mut(&me) else {
            return;
        };
        let start = own.next;
        if !matches!(l.phase, Phase::Broadcast { .. }) || start >= len {
            return;
        }
        own.next = len;
        out.persist.push(Durable::Append {
            start,
            entries: self.log[(start - self.offset) as usize..].to_vec(),
        });
        out.after_persist.push((
            me,
            Message::Ack(Ack {
                epoch: l.epoch,
                len,
                gap: false,
            }),
        ));
    }

    /// Replaces the history prefix below `snapshot.index` (which must be applied, so
    /// committed).
    pub fn compact(&mut self, snapshot: Snapshot, out: &mut Outbox) {
        assert!(
            snapshot.index <= self.committed,
            "only a committed prefix can be compacted"
        );
        if snapshot.index <= self.offset {
            return;
        }
        let last = self
            .zxid(snapshot.index - 1)
            .expect("a committed entry above the snapshot is held");
        let s = ZabSnapshot { snapshot, last };
        out.persist.push(Durable::Snapshot(s.clone()));
        self.install(s);
    }

    // ----- Follower side -------------------------------------------------------------------

    /// Appends the part of `entries` (from `start`) beyond our history; true if entries before
    /// `start` are missing (a gap: nothing is appended).
    pub(super) fn extend(&mut self, start: u64, entries: Vec<Txn>, out: &mut Outbox) -> bool {
        let len = self.log_len();
        if start > len {
            return true;
        }
        let end = start + entries.len() as u64;
        if end > len {
            let new = entries[(len - start) as usize..].to_vec();
            self.log.extend(new.iter().cloned());
            out.persist.push(Durable::Append {
                start: len,
                entries: new,
            });
        }
        false
    }

    pub(super) fn on_proposal(&mut self, from: NodeId, m: Proposal, out: &mut Outbox) {
        if from == self.cfg.me || !self.following(from, m.epoch).is_some_and(|f| f.synced) {
            return;
        }
        self.reset_timer();
        let gap = self.extend(m.start, m.entries, out);
        self.learn_commit(m.committed, out);
        let len = self.log_len();
        out.after_persist.push((
            from,
            Message::Ack(Ack {
                epoch: m.epoch,
                len,
                gap,
            }),
        ));
    }

    pub(super) fn on_commit(&mut self, from: NodeId, m: Commit, out: &mut Outbox) {
        if from == self.cfg.me || !self.following(from, m.epoch).is_some_and(|f| f.synced) {
            return;
        }
        self.reset_timer();
        self.learn_commit(m.committed, out);
    }

    /// A synchronised follower learns the leader's commit index (within its own history).
    pub(super) fn learn_commit(&mut self, committed: u64, out: &mut Outbox) {
        let c = committed.min(self.log_len());
        if c > self.committed {
            self.committed = c;
            out.persist.push(Durable::Committed(c));
            out.events.push(Event::Decided(c));
        }
    }

    /// A ping from our leader: a synchronised follower learns the commit index and answers; one
    /// that is not asks to be synchronised (ACK-E again); one that has not acknowledged the
    /// epoch sends its CEPOCH again.
    pub(super) fn on_ping(&mut self, from: NodeId, m: Ping, out: &mut Outbox) {
        if from == self.cfg.me {
            return;
        }
        let accepted = self.accepted.epoch;
        match &self.role {
            Role::Following(f) if f.leader == from => {}
            _ => return,
        }
        if m.epoch < accepted {
            // A leader of an epoch we promised to leave behind: we can never follow it, so its
            // pings must not hold off our election timeout (nor would our CEPOCH help it).
            return;
        }
        self.reset_timer();
        match self.following(from, m.epoch).map(|f| f.synced) {
            Some(true) => {
                self.learn_commit(m.committed, out);
                out.send.push((
                    from,
                    Message::PingAck(PingAck {
                        epoch: m.epoch,
                        read_round: m.read_round,
                    }),
                ));
            }
            Some(false) => {
                let ack = AckEpoch {
                    epoch: m.epoch,
                    summary: self.summary(),
                    history: None,
                    late: true,
                };
                out.after_persist.push((from, Message::AckEpoch(ack)));
            }
            None => out.send.push((
                from,
                Message::CEpoch(CEpoch {
                    accepted_epoch: accepted,
                }),
            )),
        }
    }

    // ----- Leader side ---------------------------------------------------------------------

    /// A follower's (or our own) durable history length in our epoch.
    pub(super) fn on_ack(&mut self, from: NodeId, m: Ack, out: &mut Outbox) {
        let (len, quorum) = (self.log_len(), self.quorum());
        let Some(p) = self.leader_peer(from, m.epoch) else {
            return;
        };
        p.acked_new_leader = true;
        p.matched = p.matched.max(m.len.min(len));
        if m.gap {
            p.next = p.matched;
            self.send_proposals(out);
        }
        self.check_established(quorum);
        self.advance_commit(out);
    }

    /// Once established, commits the longest prefix a quorum (ourselves included) holds
    /// durably in our epoch, and tells the synchronised followers.
    pub(super) fn advance_commit(&mut self, out: &mut Outbox) {
        let quorum = self.quorum();
        let me = self.cfg.me;
        let Role::Leading(l) = &self.role else {
            return;
        };
        if !matches!(l.phase, Phase::Broadcast { established: true }) {
            return;
        }
        let mut matched: Vec<u64> = l.peers.values().map(|p| p.matched).collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let c = matched.get(quorum - 1).copied().unwrap_or(0);
        if c <= self.committed {
            return;
        }
        self.committed = c;
        out.persist.push(Durable::Committed(c));
        out.events.push(Event::Decided(c));
        for (&id, p) in &l.peers {
            if id != me && p.synced {
                out.send.push((
                    id,
                    Message::Commit(Commit {
                        epoch: l.epoch,
                        committed: c,
                    }),
                ));
            }
        }
    }

    /// Sends every synchronised follower the entries it has not been sent yet; one that needs
    /// compacted entries gets the snapshot.
    pub(super) fn send_proposals(&mut self, out: &mut Outbox) {
        let len = self.log_len();
        let (offset, committed, max_batch, me) =
            (self.offset, self.committed, self.cfg.max_batch, self.cfg.me);
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        if !matches!(l.phase, Phase::Broadcast { .. }) {
            return;
        }
        let epoch = l.epoch;
        let mut behind = Vec::new();
        for (&id, p) in l.peers.iter_mut() {
            if id == me || !p.synced || p.next >= len {
                continue;
            }
            if p.next < offset {
                behind.push(id);
                continue;
            }
            while p.next < len {
                let mut end = p.next;
                let mut bytes = 0;
                while end < len && end - p.next < max_batch as u64 && bytes < PROPOSAL_BYTES {
                    bytes += self.log[(end - offset) as usize].cmd.op.payload_len();
                    end += 1;
                }
                out.send.push((
                    id,
                    Message::Proposal(Proposal {
                        epoch,
                        start: p.next,
                        entries: self.log[(p.next - offset) as usize..(end - offset) as usize]
                            .to_vec(),
                        committed,
                    }),
                ));
                p.next = end;
            }
        }
        for id in behind {
            self.snap_peer(id, out);
        }
    }

    /// A leader's tick: gives up if a phase of establishing its epoch does not end within the
    /// election timeout, or, once established, if it has not heard from a quorum within it;
    /// every ping period re-sends to stalled followers and pings (opening a read round if reads
    /// wait).
    pub(super) fn leader_tick(&mut self, out: &mut Outbox) {
        let (now, me, election, ping, quorum, timeout) = (
            self.now,
            self.cfg.me,
            self.cfg.election_ticks,
            self.cfg.heartbeat_ticks,
            self.quorum(),
            self.timeout,
        );
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        l.since_phase += 1;
        if let Some(own) = l.peers.get_mut(&me) {
            own.last_heard = now;
        }
        let gone = match l.phase {
            Phase::Broadcast { established: true } => {
                let alive = l
                    .peers
                    .values()
                    .filter(|p| now - p.last_heard < election)
                    .count();
                alive < quorum
            }
            _ => l.since_phase >= timeout,
        };
        if gone {
            self.start_looking(out);
            return;
        }
        if !matches!(l.phase, Phase::Broadcast { .. }) {
            return;
        }
        l.since_ping += 1;
        if l.since_ping < ping {
            return;
        }
        l.since_ping = 0;
        for (&id, p) in l.peers.iter_mut() {
            if p.synced && id != me {
                if p.next > p.matched && p.matched == p.matched_at_ping {
                    p.next = p.matched;
                }
                p.matched_at_ping = p.matched;
            }
        }
        if !l.round_open && !l.reads.is_empty() {
            self.start_read_round(out);
        } else {
            self.send_pings(out);
        }
        self.send_proposals(out);
    }

    /// A ping to every other replica of the group.
    pub(super) fn send_pings(&mut self, out: &mut Outbox) {
        let (committed, me) = (self.committed, self.cfg.me);
        let Role::Leading(l) = &self.role else {
            return;
        };
        let ping = Ping {
            epoch: l.epoch,
            committed,
            read_round: l.read_round,
        };
        for &id in &self.cfg.group {
            if id != me {
                out.send.push((id, Message::Ping(ping.clone())));
            }
        }
    }
}
