//! The election (Paxos phase 1): campaigning, promising, taking over the best log, and
//! leaving candidacy or leadership.
//!
//! Rules:
//! - Nothing that depends on a ballot leaves before the own promise for it is durable: a
//!   candidate persists `Durable::Promise` and sends its Prepares (its own acceptor's included)
//!   behind it, and an acceptor's Promise waits for its promise record. A node that crashes
//!   mid-campaign restarts with `promised` at that ballot and never campaigns with it again, so
//!   no ballot leads two different logs.
//! - A new ballot is above every round this replica has seen (`max_round`), and `promised`
//!   only grows.
//! - Stickiness: while the leader we follow is alive, a Prepare from anyone else is ignored.
//! - A new leader adopts the log of the promise with the highest `(accepted, log_len)`, which
//!   holds every entry that may have been chosen, and counts its own log only once the adopted
//!   log is durable.
//! - Stepping down keeps unflushed proposals (they are persisted like any entry) and fails the
//!   pending reads, which had no effect.

use std::collections::BTreeMap;

use super::replication::FollowerLog;
use super::{Leading, Peer, Replica, Role};
use crate::paxos::message::{
    Accepted, Ballot, Durable, Event, Message, Nack, NodeId, Outbox, Prepare, Promise,
};

/// The SplitMix64 finaliser: spreads the seed, node and election count into a jitter draw.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Replica {
    /// Restarts the election timer with a fresh timeout from `[e, 2e)`; every call draws the
    /// next one, so nodes that time out together do not stay in step.
    pub(super) fn reset_timer(&mut self) {
        self.last_heard = self.now;
        self.elections += 1;
        let e = self.cfg.election_ticks;
        let jitter = mix(self.cfg.seed ^ mix(u64::from(self.cfg.me) << 32 ^ self.elections)) % e;
        self.timeout = e + jitter;
    }

    /// Campaigns with a ballot above every round seen so far.
    pub(super) fn start_election(&mut self, out: &mut Outbox) {
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

    /// A Prepare for `ballot` that tells acceptors how much of our log they need not send.
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

    /// An acceptor's answer to a Prepare: a Nack below our promise, silence while our leader is
    /// alive (stickiness), otherwise a promise with the part of our log the candidate may lack.
    pub(super) fn on_prepare(&mut self, from: NodeId, m: Prepare, out: &mut Outbox) {
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

    /// Counts a promise for our candidacy; a promise that arrives after we won gets its sync.
    pub(super) fn on_promise(&mut self, from: NodeId, m: Promise, out: &mut Outbox) {
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

    /// With a majority of promises: adopts the best log, re-accepts it in our ballot, and syncs
    /// every follower that promised.
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
        // Our own log counts too (our acceptor promised this ballot before anyone heard of it),
        // even when our own promise is not among the majority yet. `adopted` is the ballot in
        // which the log we lead with was accepted: followers synced in that ballot hold a
        // prefix of it, and only they.
        let adopt_theirs = best_from != self.cfg.me
            && (best.accepted, best.log_len) > (self.accepted, self.log_len());
        let adopted = if adopt_theirs {
            best.accepted
        } else {
            self.accepted
        };
        if adopt_theirs {
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

    /// A replica promised a higher ballot than ours: a candidate gives up, a leader campaigns
    /// again above it.
    pub(super) fn on_nack(&mut self, m: Nack, out: &mut Outbox) {
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
    pub(super) fn step_down(&mut self, out: &mut Outbox) {
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
}
