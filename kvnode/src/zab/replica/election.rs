//! Fast leader election, in the manner of ZooKeeper's `FastLeaderElection`.
//!
//! Rules:
//! - Votes are totally ordered by `(currentEpoch, last zxid, id)` ([`Vote::key`]); in a round a
//!   replica votes for the best vote it has heard, its own included, so votes converge.
//! - A higher round (logical clock) wins: the replica joins it, forgets the votes of its old
//!   round and votes again. A LOOKING replica that hears a lower round answers with its own
//!   notification so the sender catches up.
//! - The election ends when a quorum of the round's votes (ours included) equal ours: the voted
//!   replica leads, the others follow it. Nothing here is needed for safety (discovery adopts
//!   the most up-to-date history of a quorum whoever leads); the order only makes it likely that
//!   the leader already holds that history, so that discovery transfers nothing.
//! - A replica that ended the election as a follower sends its CEPOCH to the leader it chose,
//!   and again every ping period until the leader answers (the leader may end the election
//!   on a later tick; a CEPOCH that arrives before counts for nothing). It looks again if that
//!   replica says it follows another, or still looks with a vote for another; still looking
//!   with a vote for itself, it has just not ended its election yet.
//! - A replica that follows or leads answers a LOOKING replica with its state; a LOOKING replica
//!   that hears a leader say it leads, and enough followers of it to make a quorum with itself,
//!   joins it (a replica that restarts, or comes back from a partition, rejoins this way and is
//!   then synchronised). Replicas that say they follow us make us lead only while we still
//!   vote for ourselves.
//! - A leader stepping down keeps its unflushed proposals (they are persisted like any entry)
//!   and fails the pending reads, which had no effect.

use std::collections::BTreeMap;

use super::{Following, Looking, Replica, Role};
use crate::paxos::{Event, NodeId};
use crate::zab::message::{CEpoch, Message, Notification, Outbox, PeerState, Vote};

/// The SplitMix64 finaliser: spreads the seed, node and draw count into a jitter draw.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Replica {
    /// Restarts the election timer with a fresh timeout from `[e, 2e)`.
    pub(super) fn reset_timer(&mut self) {
        self.last_heard = self.now;
        self.draws += 1;
        let e = self.cfg.election_ticks;
        let jitter = mix(self.cfg.seed ^ mix(u64::from(self.cfg.me) << 32 ^ self.draws)) % e;
        self.timeout = e + jitter;
    }

    /// Leaves whatever role we had and starts a new election round, voting for ourselves.
    pub(super) fn start_looking(&mut self, out: &mut Outbox) {
        self.step_down(out);
        self.round += 1;
        self.reset_timer();
        self.role = Role::Looking(self.fresh_looking());
        self.broadcast_vote(out);
    }

    /// A new round's state: we vote for ourselves.
    pub(super) fn fresh_looking(&self) -> Looking {
        let vote = self.own_vote();
        Looking {
            vote,
            votes: BTreeMap::from([(self.cfg.me, vote)]),
            out_of_election: BTreeMap::new(),
            since_broadcast: 0,
        }
    }

    /// Sends our vote to every other replica; a replica alone in its group leads at once.
    pub(super) fn broadcast_vote(&mut self, out: &mut Outbox) {
        if self.quorum() == 1 {
            self.lead(out);
            return;
        }
        let Role::Looking(l) = &mut self.role else {
            return;
        };
        l.since_broadcast = 0;
        let n = Notification {
            round: self.round,
            state: PeerState::Looking,
            vote: l.vote,
        };
        for &to in &self.cfg.group {
            if to != self.cfg.me {
                out.send.push((to, Message::Notification(n.clone())));
            }
        }
    }

    /// Our state as a notification (for a LOOKING replica that asked).
    pub(super) fn state_notification(&self) -> Notification {
        let (state, vote) = match &self.role {
            Role::Looking(l) => (PeerState::Looking, l.vote),
            Role::Following(f) => (
                PeerState::Following,
                Vote {
                    leader: f.leader,
                    ..Vote::default()
                },
            ),
            Role::Leading(_) => (PeerState::Leading, self.own_vote()),
        };
        Notification {
            round: self.round,
            state,
            vote,
        }
    }

    pub(super) fn on_notification(&mut self, from: NodeId, n: Notification, out: &mut Outbox) {
        if from == self.cfg.me {
            return;
        }
        let me = self.cfg.me;
        let quorum = self.quorum();
        let own = self.own_vote();
        let round = self.round;
        let Role::Looking(l) = &mut self.role else {
            // Still looking but voting for itself: it has not ended its election yet (it does
            // on its next tick), not given up on it.
            let finishing = n.state == PeerState::Looking && n.vote.leader == from;
            if let Role::Following(f) = &self.role
                && f.epoch.is_none()
                && f.leader == from
                && n.state != PeerState::Leading
                && !finishing
            {
                // We ended the election on a replica that does not lead (it heard of a
                // better vote and follows that one): look again, and learn whom to join.
                self.start_looking(out);
                return;
            }
            // Following or leading: tell a LOOKING replica whom to join.
            if n.state == PeerState::Looking {
                let reply = self.state_notification();
                out.send.push((from, Message::Notification(reply)));
            }
            return;
        };
        if n.state != PeerState::Looking {
            l.out_of_election.insert(from, n.vote.leader);
            let leader = n.vote.leader;
            // Replicas that say they follow us count only while we still vote for ourselves:
            // if we heard of a better vote since, they ended the election on our old one, and
            // the replica we vote for may end it too (two prospective leaders, one of them
            // alone until its deadline). Our vote, when it reaches them, sends them looking.
            let says_leads = if leader == me {
                l.vote.leader == me
            } else {
                l.out_of_election.get(&leader) == Some(&leader)
            };
            let backers = l.out_of_election.values().filter(|&&v| v == leader).count();
            if says_leads && backers + 1 >= quorum {
                if leader == me {
                    self.lead(out);
                } else {
                    self.follow(leader, out);
                }
            }
            return;
        }
        if n.round < round {
            let reply = Notification {
                round,
                state: PeerState::Looking,
                vote: l.vote,
            };
            out.send.push((from, Message::Notification(reply)));
            return;
        }
        let mut changed = false;
        if n.round > round {
            self.round = n.round;
            l.votes.clear();
            l.vote = if n.vote.key() > own.key() {
                n.vote
            } else {
                own
            };
            changed = true;
        } else if n.vote.key() > l.vote.key() {
            l.vote = n.vote;
            changed = true;
        }
        l.votes.insert(from, n.vote);
        l.votes.insert(me, l.vote);
        if changed {
            self.broadcast_vote(out);
        }
    }

    /// Ends the election if a quorum of this round's votes agree with ours. Called on a tick,
    /// not on each notification: like ZooKeeper's finalize wait, the votes that arrived
    /// meanwhile get their chance to change ours first.
    pub(super) fn decide(&mut self, out: &mut Outbox) {
        let (me, quorum) = (self.cfg.me, self.quorum());
        let Role::Looking(l) = &self.role else {
            return;
        };
        let vote = l.vote;
        let agreeing = l.votes.values().filter(|v| **v == vote).count();
        if agreeing >= quorum {
            if vote.leader == me {
                self.lead(out);
            } else {
                self.follow(vote.leader, out);
            }
        }
    }

    /// Ends the election as a follower of `leader`: discovery starts with our CEPOCH.
    fn follow(&mut self, leader: NodeId, out: &mut Outbox) {
        self.role = Role::Following(Following {
            leader,
            epoch: None,
            synced: false,
        });
        self.reset_timer();
        self.send_cepoch(out);
    }

    /// Sends our CEPOCH to the leader we follow. Until it answers with NEWEPOCH, we send it
    /// again every ping period, as ZooKeeper's learner retries its connection: it may reach
    /// the leader before the leader ended its own election, and then counts for nothing.
    pub(super) fn send_cepoch(&mut self, out: &mut Outbox) {
        if let Role::Following(f) = &self.role
            && f.leader != self.cfg.me
        {
            out.send.push((
                f.leader,
                Message::CEpoch(CEpoch {
                    accepted_epoch: self.accepted.epoch,
                }),
            ));
        }
    }

    /// Leaves leadership (if we lead): pending reads fail, proposals stay in the history (a
    /// later leader may still commit them).
    pub(super) fn step_down(&mut self, out: &mut Outbox) {
        // Proposals not yet flushed stay in the history, so they must reach the disk like every
        // other entry: a later ACK-E or vote reports them.
        self.persist_proposals(out);
        if let Role::Leading(l) = std::mem::replace(
            &mut self.role,
            Role::Following(Following {
                leader: self.cfg.me,
                epoch: None,
                synced: false,
            }),
        ) {
            for r in l.reads {
                out.events.push(Event::ReadFailed { id: r.id });
            }
        }
    }
}
