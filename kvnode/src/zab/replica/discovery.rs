//! Discovery (Zab phase 1): CEPOCH, NEWEPOCH, ACK-E, and adopting the most up-to-date history.
//!
//! Rules:
//! - The new epoch is above the `acceptedEpoch` of a quorum and above every epoch this leader
//!   ever accepted, and the leader's own `acceptedEpoch` record is durable before any NEWEPOCH
//!   leaves: a leader that crashes mid-discovery never proposes the same epoch twice.
//! - A follower accepts a NEWEPOCH only from the leader it follows, for an epoch above its
//!   `acceptedEpoch` or equal to it from the same leader (a reconnection); it persists it before
//!   its ACK-E. So at most one leader gathers a quorum of ACK-Es for an epoch. A lower epoch
//!   from the leader it promised is from an attempt that leader gave up (its epochs only grow),
//!   overtaken in the network: it is ignored. A lower epoch from another leader sends the
//!   follower looking again. A follower that accepted the epoch from another leader may follow
//!   this one, but its promise stays with the first (so it holds across restarts and repeated
//!   NEWEPOCHs), and every ACK-E it sends this one is marked `late` and never counts towards
//!   the quorum: it only asks to be synchronised, which only the epoch's one leader with a
//!   quorum ever does.
//! - The leader adopts the history with the highest `(currentEpoch, last zxid)` among a quorum
//!   of ACK-Es that includes its own: that history holds every committed transaction. A
//!   follower sends its history only when it is more up to date than the leader's (the leader's
//!   position travels in NEWEPOCH), from the leader's commit index on: below it both hold the
//!   same committed prefix.

use std::collections::BTreeMap;

use super::{Leading, Peer, Phase, Replica, Role};
use crate::paxos::{Event, NodeId};
use crate::zab::message::{
    AcceptedEpoch, AckEpoch, AckNewLeader, CEpoch, Durable, Message, NewEpoch, Outbox, Suffix,
};

impl Replica {
    /// Ends the election as the prospective leader: discovery starts with our own CEPOCH.
    pub(super) fn lead(&mut self, out: &mut Outbox) {
        self.reset_timer();
        let peers = self
            .cfg
            .group
            .iter()
            .map(|&p| {
                let peer = Peer {
                    last_heard: self.now,
                    ..Peer::default()
                };
                (p, peer)
            })
            .collect();
        self.role = Role::Leading(Box::new(Leading {
            phase: Phase::Discovery {
                cepochs: BTreeMap::from([(self.cfg.me, self.accepted.epoch)]),
            },
            epoch: 0,
            counter: 0,
            peers,
            since_phase: 0,
            read_round: 0,
            round_open: false,
            reads: Vec::new(),
            since_ping: 0,
        }));
        self.choose_epoch(out);
    }

    /// A follower's CEPOCH: counted during discovery; later, answered with our epoch.
    pub(super) fn on_cepoch(&mut self, from: NodeId, m: CEpoch, out: &mut Outbox) {
        let now = self.now;
        let Role::Leading(l) = &mut self.role else {
            // It took us for its leader: tell it what we are, so it looks again (unless we are
            // still looking and vote for ourselves: then we are about to lead, and its next
            // CEPOCH counts).
            let reply = self.state_notification();
            out.send.push((from, Message::Notification(reply)));
            return;
        };
        // A follower that promised a later epoch is not with us: it must not keep a leader that
        // lost its quorum alive (the later epoch's leader needs that leader to step down).
        if matches!(l.phase, Phase::Discovery { .. }) || m.accepted_epoch <= l.epoch {
            l.peers.entry(from).or_default().last_heard = now;
        }
        match &mut l.phase {
            Phase::Discovery { cepochs } => {
                cepochs.insert(from, m.accepted_epoch);
                self.choose_epoch(out);
            }
            // A late or returning follower: it can accept our epoch unless it promised a later
            // one. Then it can never follow us, and the election keeps sending it back to us
            // while we lead: once established, we step down, so that a new election picks an
            // epoch above every promise and the whole group follows again. (Before, stepping
            // down makes rival candidates duel: each picks an epoch from a quorum, and the
            // third replica's promise to the other is always higher.)
            Phase::NewEpoch { .. } | Phase::Broadcast { .. } => {
                let epoch = l.epoch;
                if m.accepted_epoch <= epoch {
                    let msg = self.new_epoch(epoch);
                    out.after_persist.push((from, msg));
                } else if matches!(l.phase, Phase::Broadcast { established: true }) {
                    self.start_looking(out);
                }
            }
        }
    }

    /// With a quorum of CEPOCHs, picks the new epoch, persists it as accepted, and sends
    /// NEWEPOCH behind that record (our own ACK-E goes to ourselves behind it too).
    fn choose_epoch(&mut self, out: &mut Outbox) {
        let quorum = self.quorum();
        let me = self.cfg.me;
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        let Phase::Discovery { cepochs } = &l.phase else {
            return;
        };
        if cepochs.len() < quorum {
            return;
        }
        let highest = cepochs.values().copied().max().unwrap_or(0);
        let epoch = highest.max(self.accepted.epoch) + 1;
        let followers: Vec<NodeId> = cepochs.keys().copied().filter(|&p| p != me).collect();
        l.epoch = epoch;
        l.since_phase = 0;
        l.phase = Phase::NewEpoch {
            acks: BTreeMap::new(),
        };
        self.accepted = AcceptedEpoch { epoch, leader: me };
        out.persist.push(Durable::AcceptedEpoch(self.accepted));
        for to in followers {
            let msg = self.new_epoch(epoch);
            out.after_persist.push((to, msg));
        }
        let own = Message::AckEpoch(AckEpoch {
            epoch,
            summary: self.summary(),
            history: None,
            late: false,
        });
        out.after_persist.push((me, own));
    }

    fn new_epoch(&self, epoch: u64) -> Message {
        Message::NewEpoch(NewEpoch {
            epoch,
            current_epoch: self.current_epoch,
            last_zxid: self.last_zxid(),
            committed: self.committed,
        })
    }

    /// A follower's answer to its leader's NEWEPOCH: persists the epoch, then ACK-E with its
    /// history's position (and the history itself if it is more up to date than the leader's).
    /// A NEWEPOCH it may not accept sends it looking again.
    pub(super) fn on_new_epoch(&mut self, from: NodeId, m: NewEpoch, out: &mut Outbox) {
        let proposed = AcceptedEpoch {
            epoch: m.epoch,
            leader: from,
        };
        let Role::Following(f) = &mut self.role else {
            return;
        };
        if f.leader != from || from == self.cfg.me {
            return;
        }
        if f.epoch == Some(m.epoch) && f.synced {
            // A duplicate: we already follow this epoch.
            return;
        }
        if m.epoch < self.accepted.epoch {
            // (Following `from` in our accepted epoch, promised or late, `from` proposed it.)
            if self.accepted.leader == from || f.epoch == Some(self.accepted.epoch) {
                // An older attempt of this same leader, overtaken by a later one (a leader's
                // epochs only grow): a stale message, not a reason to leave it.
                return;
            }
            // We promised a later leader: this one cannot count on us.
            self.start_looking(out);
            return;
        }
        // We promised this epoch to another prospective leader: we may still follow this one,
        // but our ACK-E must not count towards its quorum (else two leaders could both count
        // us for one epoch). Only the leader with a quorum of fresh promises for the epoch ever
        // synchronises anyone in it, so following it is safe. Without this a replica that
        // accepted the epoch from a leader that lost is shut out of the group for the whole
        // epoch. The promise itself stays with the first leader, durably: were it switched to
        // this one, its next NEWEPOCH (a duplicate, or one after we restart) would find the
        // epoch promised to it, and our ACK-E would count for both leaders.
        let late = m.epoch == self.accepted.epoch && self.accepted != proposed;
        f.epoch = Some(m.epoch);
        f.synced = false;
        self.reset_timer();
        if m.epoch > self.accepted.epoch {
            self.accepted = proposed;
            out.persist.push(Durable::AcceptedEpoch(proposed));
        }
        let history = ((self.current_epoch, self.last_zxid()) > (m.current_epoch, m.last_zxid))
            .then(|| self.suffix_from(m.committed));
        out.after_persist.push((
            from,
            Message::AckEpoch(AckEpoch {
                epoch: m.epoch,
                summary: self.summary(),
                history,
                late,
            }),
        ));
    }

    /// Our history from `index` on (from our snapshot if we compacted past it).
    fn suffix_from(&self, index: u64) -> Suffix {
        let start = index.min(self.log_len());
        if start < self.offset {
            return Suffix {
                start: self.offset,
                entries: self.log.clone(),
                snapshot: self.snapshot.clone(),
            };
        }
        Suffix {
            start,
            entries: self.log[(start - self.offset) as usize..].to_vec(),
            snapshot: None,
        }
    }

    /// An ACK-E: counted during discovery; once synchronising, a request to be synchronised
    /// (a late follower, or one that lost its NEWLEADER).
    pub(super) fn on_ack_epoch(&mut self, from: NodeId, m: AckEpoch, out: &mut Outbox) {
        let (quorum, me) = (self.quorum(), self.cfg.me);
        if self.leader_peer(from, m.epoch).is_none() {
            return;
        }
        let Role::Leading(l) = &mut self.role else {
            unreachable!("leader_peer found us leading");
        };
        match &mut l.phase {
            Phase::Discovery { .. } => {}
            Phase::NewEpoch { acks } => {
                if m.late {
                    return;
                }
                acks.insert(from, m);
                if acks.len() >= quorum && acks.contains_key(&me) {
                    self.adopt(out);
                }
            }
            Phase::Broadcast { .. } => {
                if from != me {
                    self.sync_peer(from, &m.summary, out);
                }
            }
        }
    }

    /// With a quorum of ACK-Es (ours among them): takes the most up-to-date history, makes it
    /// and our epoch current and durable, and synchronises every follower that acknowledged.
    fn adopt(&mut self, out: &mut Outbox) {
        let me = self.cfg.me;
        let Role::Leading(l) = &mut self.role else {
            unreachable!("only a leader adopts");
        };
        // The deliberate bug starts broadcasting at once, before anyone is synchronised.
        let established = self.cfg.unsafe_skip_sync;
        l.since_phase = 0;
        let Phase::NewEpoch { acks } =
            std::mem::replace(&mut l.phase, Phase::Broadcast { established })
        else {
            unreachable!("adopting ends discovery");
        };
        let epoch = l.epoch;
        let (&best_from, best) = acks
            .iter()
            .max_by_key(|(_, a)| (a.summary.current_epoch, a.summary.last_zxid))
            .expect("a quorum is not empty");
        let theirs_better = best_from != me
            && (best.summary.current_epoch, best.summary.last_zxid)
                > (self.current_epoch, self.last_zxid());
        if theirs_better && !self.cfg.unsafe_skip_sync {
            let h = best
                .history
                .clone()
                .expect("a follower more up to date than its leader sends its history");
            if let Some(s) = h.snapshot
                && s.snapshot.index > self.offset
            {
                out.persist.push(Durable::Snapshot(s.clone()));
                out.events.push(Event::InstallSnapshot(s.snapshot.clone()));
                self.install(s);
            }
            let start = h.start.max(self.offset);
            let skip = ((start - h.start) as usize).min(h.entries.len());
            let entries = h.entries[skip..].to_vec();
            self.replace_from(start, entries.clone());
            out.persist.push(Durable::Append { start, entries });
        }
        self.current_epoch = epoch;
        out.persist.push(Durable::CurrentEpoch(epoch));
        let len = self.log_len();
        let Role::Leading(l) = &mut self.role else {
            unreachable!("still leading");
        };
        let own = l.peers.get_mut(&me).expect("a leader tracks itself");
        own.synced = true;
        own.next = len;
        // Our own NEWLEADER acknowledgement counts once the history and epoch are durable.
        out.after_persist
            .push((me, Message::AckNewLeader(AckNewLeader { epoch, len })));
        for (from, ack) in acks {
            if from != me {
                self.sync_peer(from, &ack.summary, out);
            }
        }
    }
}
