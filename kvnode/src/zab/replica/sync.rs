//! Synchronisation (Zab phase 2): NEWLEADER with DIFF, TRUNC or SNAP, and ACK-LD.
//!
//! Rules:
//! - The leader finds where a follower's history leaves its own by zxid: below the follower's
//!   commit index the histories agree, above it the follower reported each entry's zxid, and
//!   the same zxid at the same index means the same prefix. The follower gets the missing
//!   suffix (DIFF), has its divergent tail dropped first (TRUNC; that tail is above its commit
//!   index, so uncommitted), or gets the leader's snapshot when the agreement point lies below
//!   the leader's compaction point (SNAP).
//! - A follower applies a NEWLEADER only for the epoch it acknowledged, from that epoch's
//!   leader, and only if its history is still the one the sync was computed from (`expect`):
//!   a NEWLEADER delayed past a restart or a later sync must not drop what the follower has
//!   acknowledged since. It persists the history (one record: a TRUNC never survives without
//!   the DIFF after it) and `currentEpoch` before ACK-LD.
//! - Once synchronised in an epoch, a follower only extends its history; a NEWLEADER then (a
//!   catch-up through a snapshot, or a duplicate) installs a snapshot of committed entries and
//!   appends what it lacks.
//! - The leader is established, and commits its initial history, once a quorum (possibly
//!   without it) acknowledged NEWLEADER.

use super::{Phase, Replica, Role};
use crate::paxos::{Event, NodeId};
use crate::zab::message::{
    Ack, AckNewLeader, Durable, LogSummary, Message, NewLeader, Outbox, SyncKind, Txn,
};

impl Replica {
    /// Sends `peer` a NEWLEADER that brings the history `s` describes to ours.
    pub(super) fn sync_peer(&mut self, peer: NodeId, s: &LogSummary, out: &mut Outbox) {
        let len = self.log_len();
        let (kind, start) = if self.cfg.unsafe_skip_sync {
            // The deliberate bug: the follower's history is taken to be ours as it is.
            (SyncKind::Diff, s.len)
        } else {
            // The length of the prefix the follower's history shares with ours.
            let mut agree = s.tail_start.min(len);
            for (i, z) in s.tail.iter().enumerate() {
                let index = s.tail_start + i as u64;
                match self.zxid(index) {
                    Some(ours) if index < len && ours == *z => agree = index + 1,
                    _ => break,
                }
            }
            if agree < self.offset {
                let snap = self
                    .snapshot
                    .clone()
                    .expect("a history compacted past index 0 has a snapshot");
                (SyncKind::Snap(snap), self.offset)
            } else if agree < s.len {
                (SyncKind::Trunc, agree)
            } else {
                (SyncKind::Diff, agree)
            }
        };
        let entries = self.entries_from(start);
        self.send_new_leader(peer, kind, start, entries, Some((s.len, s.last_zxid)), out);
    }

    /// Sends an already synchronised `peer` our snapshot and history: what it lacks was
    /// compacted.
    pub(super) fn snap_peer(&mut self, peer: NodeId, out: &mut Outbox) {
        let snap = self
            .snapshot
            .clone()
            .expect("a follower lacks compacted entries only if there is a snapshot");
        let entries = self.entries_from(self.offset);
        self.send_new_leader(peer, SyncKind::Snap(snap), self.offset, entries, None, out);
    }

    /// Our entries from `start` on (`start >= first_index()`; below the leader's history end
    /// or at it).
    fn entries_from(&self, start: u64) -> Vec<Txn> {
        let from = (start.max(self.offset) - self.offset) as usize;
        self.log
            .get(from..)
            .map(<[Txn]>::to_vec)
            .unwrap_or_default()
    }

    fn send_new_leader(
        &mut self,
        peer: NodeId,
        kind: SyncKind,
        start: u64,
        entries: Vec<Txn>,
        expect: Option<(u64, crate::zab::message::Zxid)>,
        out: &mut Outbox,
    ) {
        let (len, committed) = (self.log_len(), self.committed);
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        let epoch = l.epoch;
        let p = l.peers.entry(peer).or_default();
        p.synced = true;
        p.next = len;
        // Not `last_heard`: sending is not hearing. (A leader re-sending its snapshot to a
        // follower that had moved on to a later epoch counted it alive, and so never stepped
        // down.)
        out.send.push((
            peer,
            Message::NewLeader(NewLeader {
                epoch,
                kind,
                start,
                entries,
                committed,
                expect,
            }),
        ));
    }

    /// A follower's side of synchronisation; see the module rules.
    pub(super) fn on_new_leader(&mut self, from: NodeId, m: NewLeader, out: &mut Outbox) {
        if from == self.cfg.me {
            return;
        }
        let (len, last, committed) = (self.log_len(), self.last_zxid(), self.committed);
        let Some(f) = self.following(from, m.epoch) else {
            return;
        };
        let synced = f.synced;
        if !synced && m.expect != Some((len, last)) {
            // Computed from another history than ours: our next ping answer asks again.
            return;
        }
        if !synced && matches!(m.kind, SyncKind::Trunc) && m.start < committed {
            // It would drop committed entries: no leader we may follow sends this (every later
            // epoch's history holds them). A peer's message is refused, not trusted, and does
            // not crash us either.
            return;
        }
        f.synced = true;
        self.reset_timer();
        let NewLeader {
            epoch,
            kind,
            start,
            entries,
            committed,
            ..
        } = m;
        if let SyncKind::Snap(s) = &kind
            && s.snapshot.index > self.offset
        {
            out.persist.push(Durable::Snapshot(s.clone()));
            out.events.push(Event::InstallSnapshot(s.snapshot.clone()));
            self.install(s.clone());
        }
        if synced {
            let gap = self.extend(start, entries, out);
            self.learn_commit(committed, out);
            let len = self.log_len();
            out.after_persist
                .push((from, Message::Ack(Ack { epoch, len, gap })));
            return;
        }
        let start = start.min(self.log_len());
        self.replace_from(start, entries.clone());
        out.persist.push(Durable::Append { start, entries });
        self.current_epoch = epoch;
        out.persist.push(Durable::CurrentEpoch(epoch));
        self.learn_commit(committed, out);
        let len = self.log_len();
        out.after_persist
            .push((from, Message::AckNewLeader(AckNewLeader { epoch, len })));
    }

    /// Counts a follower's (or our own) ACK-LD; with a quorum the leader is established.
    pub(super) fn on_ack_new_leader(&mut self, from: NodeId, m: AckNewLeader, out: &mut Outbox) {
        let (len, quorum) = (self.log_len(), self.quorum());
        let Some(p) = self.leader_peer(from, m.epoch) else {
            return;
        };
        p.acked_new_leader = true;
        p.matched = p.matched.max(m.len.min(len));
        self.check_established(quorum);
        self.advance_commit(out);
    }

    /// The leader is established once a quorum acknowledged its NEWLEADER (an ACK in its
    /// epoch counts too: it leaves after the follower's `currentEpoch` record, so a lost
    /// ACK-LD is made up by the next ACK).
    pub(super) fn check_established(&mut self, quorum: usize) {
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        if let Phase::Broadcast { established } = &mut l.phase
            && !*established
            && l.peers.values().filter(|p| p.acked_new_leader).count() >= quorum
        {
            *established = true;
        }
    }
}
