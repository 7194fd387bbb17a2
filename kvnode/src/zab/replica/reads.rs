//! Linearizable reads by read index, as Paxos does them (not leases: nothing here trusts a
//! clock).
//!
//! A read takes the leader's history length when it arrives, and is ready once a quorum has
//! acknowledged a ping round started after it arrived. A follower acknowledges pings only while
//! it follows this leader in this epoch (it has not accepted a later epoch), so those
//! acknowledgements show that no later leader had gathered a quorum of ACK-Es, let alone
//! committed anything, when the read arrived; every write completed before it is below that
//! index. The runtime serves the read once its state machine has applied that many entries.
//!
//! Rules:
//! - One round is open at a time; a read that arrives while one is open waits for the next.
//! - A leader that steps down fails its pending reads (they had no effect).
//! - A single-replica group is its own quorum: its reads are ready at once.

use super::{PendingRead, Replica, Role};
use crate::paxos::{Event, NodeId, NotLeader};
use crate::zab::message::{Outbox, PingAck};

impl Replica {
    /// Starts a linearizable read; its outcome arrives as [`Event::ReadReady`] or
    /// [`Event::ReadFailed`] with this `id`.
    pub fn read(&mut self, id: u64, out: &mut Outbox) -> Result<(), NotLeader> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let index = self.log_len();
        let single = self.cfg.group.len() == 1;
        let Role::Leading(l) = &mut self.role else {
            unreachable!("is_leader");
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

    /// Opens the next read round (counting our own acknowledgement) and announces it in pings.
    pub(super) fn start_read_round(&mut self, out: &mut Outbox) {
        let me = self.cfg.me;
        if let Role::Leading(l) = &mut self.role {
            l.read_round += 1;
            l.round_open = true;
            let round = l.read_round;
            l.peers.entry(me).or_default().read_round = round;
        }
        self.send_pings(out);
    }

    /// A follower acknowledged our pings up to `read_round`.
    pub(super) fn on_ping_ack(&mut self, from: NodeId, m: PingAck, out: &mut Outbox) {
        if let Some(p) = self.leader_peer(from, m.epoch) {
            p.read_round = p.read_round.max(m.read_round);
            self.confirm_reads(out);
        }
    }

    /// Releases reads whose round a quorum acknowledged; opens the next round if reads wait.
    pub(super) fn confirm_reads(&mut self, out: &mut Outbox) {
        let quorum = self.quorum();
        let single = self.cfg.group.len() == 1;
        let Role::Leading(l) = &mut self.role else {
            return;
        };
        let mut rounds: Vec<u64> = l.peers.values().map(|p| p.read_round).collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = if single {
            l.read_round
        } else {
            rounds.get(quorum - 1).copied().unwrap_or(0)
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
}
