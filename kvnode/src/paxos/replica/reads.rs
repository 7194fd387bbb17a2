//! Linearizable reads by read index.
//!
//! A read takes the leader's log length when it arrives, and is ready once a majority has
//! acknowledged a heartbeat round started after it arrived. Those acknowledgements show that a
//! majority had not promised a higher ballot by then, so no later leader had decided anything
//! when the read arrived, and every write completed before it is below that index. The runtime
//! serves the read once its state machine has applied that many entries.
//!
//! Rules:
//! - One round is open at a time; a read that arrives while one is open waits for the next.
//! - A leader that steps down fails its pending reads (they had no effect).
//! - A single-replica group is its own majority: its reads are ready at once.

use super::{NotLeader, PendingRead, Replica, Role};
use crate::paxos::message::{Event, HeartbeatAck, NodeId, Outbox};

impl Replica {
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

    /// Opens the next read round (counting our own acknowledgement) and announces it in
    /// heartbeats.
    pub(super) fn start_read_round(&mut self, out: &mut Outbox) {
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

    /// A follower acknowledged our heartbeats up to `read_round`.
    pub(super) fn on_heartbeat_ack(&mut self, from: NodeId, m: HeartbeatAck, out: &mut Outbox) {
        if let Some(p) = self.leader_peer(from, m.ballot) {
            p.read_round = p.read_round.max(m.read_round);
            self.confirm_reads(out);
        }
    }

    /// Releases reads whose round a majority acknowledged; opens the next round if reads wait.
    pub(super) fn confirm_reads(&mut self, out: &mut Outbox) {
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
}
