//! Deterministic scenarios against the Zab replica's inputs and outputs.
//!
//! As in `paxos/tests.rs`, a [`Group`] wires replicas together by hand: every record a replica
//! asks to persist waits in its `pending` list until the test calls [`Group::sync`] (or a helper
//! that syncs), messages held for persistence are released only then, and a crash keeps exactly
//! the records the test says. Single-replica tests feed one replica messages by hand and read
//! its outbox.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::message::{
    AckEpoch, AckNewLeader, CEpoch, Durable, LogSummary, Message, NewEpoch, NewLeader,
    Notification, Outbox, PeerState, Suffix, SyncKind, Txn, Vote, Zxid,
};
use super::replica::{Replica, ReplicaConfig};
use crate::command::{Command, Op};
use crate::paxos::{Event, NodeId, ReplayError, Snapshot};

const ELECTION: u64 = 10;
const HEARTBEAT: u64 = 3;

fn config(me: NodeId, n: usize, unsafe_skip_sync: bool) -> ReplicaConfig {
    ReplicaConfig {
        me,
        group: (0..n as NodeId).collect(),
        election_ticks: ELECTION,
        heartbeat_ticks: HEARTBEAT,
        seed: 7,
        max_batch: 64,
        unsafe_skip_sync,
    }
}

fn put(value: &str) -> Command {
    Command {
        client: 1,
        seq: 0,
        op: Op::Put {
            key: "k".into(),
            value: value.into(),
        },
    }
}

fn txn(epoch: u64, counter: u64, value: &str) -> Txn {
    Txn {
        zxid: Zxid { epoch, counter },
        cmd: put(value),
    }
}

struct Node {
    replica: Replica,
    disk: Vec<Durable>,
    pending: Vec<Durable>,
    held: Vec<(NodeId, Message)>,
}

struct Group {
    nodes: Vec<Node>,
    unsafe_skip_sync: bool,
    /// In flight: (from, to, message), delivered in order.
    net: VecDeque<(NodeId, NodeId, Message)>,
    /// Nodes cut off from everyone else (their messages, both ways, are lost).
    isolated: BTreeSet<NodeId>,
    delivered: Vec<(NodeId, NodeId, Message)>,
    events: Vec<(NodeId, Event)>,
}

impl Group {
    fn new(n: usize) -> Group {
        Group::with_flag(n, false)
    }

    fn with_flag(n: usize, unsafe_skip_sync: bool) -> Group {
        Group {
            nodes: (0..n as NodeId)
                .map(|me| Node {
                    replica: Replica::new(config(me, n, unsafe_skip_sync)),
                    disk: Vec::new(),
                    pending: Vec::new(),
                    held: Vec::new(),
                })
                .collect(),
            unsafe_skip_sync,
            net: VecDeque::new(),
            isolated: BTreeSet::new(),
            delivered: Vec::new(),
            events: Vec::new(),
        }
    }

    fn size(&self) -> usize {
        self.nodes.len()
    }

    fn replica(&self, n: NodeId) -> &Replica {
        &self.nodes[n as usize].replica
    }

    fn absorb(&mut self, n: NodeId, out: Outbox) {
        let node = &mut self.nodes[n as usize];
        node.pending.extend(out.persist);
        node.held.extend(out.after_persist);
        for (to, msg) in out.send {
            self.net.push_back((n, to, msg));
        }
        self.events.extend(out.events.into_iter().map(|e| (n, e)));
    }

    fn sync(&mut self, n: NodeId) {
        let node = &mut self.nodes[n as usize];
        node.disk.append(&mut node.pending);
        for (to, msg) in std::mem::take(&mut node.held) {
            self.net.push_back((n, to, msg));
        }
    }

    fn with(&mut self, n: NodeId, f: impl FnOnce(&mut Replica, &mut Outbox)) {
        let mut out = Outbox::default();
        f(&mut self.nodes[n as usize].replica, &mut out);
        self.absorb(n, out);
    }

    fn deliver_one(&mut self) -> bool {
        let Some((from, to, msg)) = self.net.pop_front() else {
            return false;
        };
        if from != to && (self.isolated.contains(&from) || self.isolated.contains(&to)) {
            return true;
        }
        self.delivered.push((from, to, msg.clone()));
        self.with(to, |r, out| r.on_message(from, msg, out));
        true
    }

    /// Delivers and syncs until nothing moves.
    fn run(&mut self) {
        let limit = self.delivered.len() + 100_000;
        loop {
            while self.deliver_one() {
                assert!(self.delivered.len() < limit, "the group never falls quiet");
            }
            let waiting: Vec<NodeId> = (0..self.size() as NodeId)
                .filter(|&n| {
                    let node = &self.nodes[n as usize];
                    !node.pending.is_empty() || !node.held.is_empty()
                })
                .collect();
            if waiting.is_empty() {
                return;
            }
            for n in waiting {
                self.sync(n);
            }
        }
    }

    /// Ticks every node `ticks` times, running the network to quiescence after each tick.
    fn settle(&mut self, ticks: u64) {
        for _ in 0..ticks {
            for n in 0..self.size() as NodeId {
                self.with(n, |r, out| r.tick(out));
            }
            self.run();
        }
    }

    /// Ticks node `n` alone, running the network after each tick, until `done` holds.
    fn tick_until(&mut self, n: NodeId, done: impl Fn(&Group) -> bool, what: &str) {
        for _ in 0..20 * ELECTION {
            if done(self) {
                return;
            }
            self.with(n, |r, out| r.tick(out));
            self.run();
        }
        panic!("n{n} was ticked but never: {what}");
    }

    /// The established leader among the nodes not isolated, if exactly one.
    fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<NodeId> = (0..self.size() as NodeId)
            .filter(|n| !self.isolated.contains(n) && self.replica(*n).is_established())
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    /// Ticks until a leader is established among the nodes not isolated; returns it.
    fn elect(&mut self) -> NodeId {
        for _ in 0..20 * ELECTION {
            if let Some(l) = self.leader() {
                // Let its followers finish synchronising.
                self.settle(HEARTBEAT);
                return l;
            }
            self.settle(1);
        }
        panic!("no leader was established");
    }

    fn propose(&mut self, n: NodeId, value: &str) -> u64 {
        let mut index = 0;
        self.with(n, |r, out| {
            index = r.propose(put(value)).expect("a leader");
            r.flush(out);
        });
        index
    }

    /// Node `n` crashes: it keeps its disk and the first `keep` pending records, loses the rest
    /// and everything held; then it restarts from what it kept.
    fn crash(&mut self, n: NodeId, keep: usize) {
        let (size, flag) = (self.size(), self.unsafe_skip_sync);
        let node = &mut self.nodes[n as usize];
        let kept: Vec<Durable> = node.pending.drain(..).take(keep).collect();
        node.disk.extend(kept);
        node.held.clear();
        node.replica = Replica::recover(config(n, size, flag), node.disk.iter().cloned())
            .expect("a replica's own records replay");
    }

    /// The first index at which two replicas hold different commands that both count as
    /// committed, if any.
    fn conflict(&self) -> Option<u64> {
        for a in &self.nodes {
            for b in &self.nodes {
                let (a, b) = (&a.replica, &b.replica);
                let from = a.first_index().max(b.first_index());
                for i in from..a.decided().min(b.decided()) {
                    if a.entry(i) != b.entry(i) {
                        return Some(i);
                    }
                }
            }
        }
        None
    }

    fn assert_agreement(&self) {
        if let Some(i) = self.conflict() {
            panic!("index {i} is committed on two replicas with different commands");
        }
    }

    /// A replica's history, read back from what it made durable, equals the one it works with.
    fn assert_durable_log(&self, n: NodeId) {
        let node = &self.nodes[n as usize];
        assert!(node.pending.is_empty(), "sync first");
        let back = Replica::recover(
            config(n, self.size(), self.unsafe_skip_sync),
            node.disk.iter().cloned(),
        )
        .expect("a replica's own records replay");
        let live = &node.replica;
        assert_eq!(
            (back.first_index(), back.log_len()),
            (live.first_index(), live.log_len()),
            "n{n}: the durable history's extent differs from the live one's"
        );
        for i in live.first_index()..live.log_len() {
            assert_eq!(
                back.zxid(i),
                live.zxid(i),
                "n{n}: index {i} differs on disk"
            );
            assert_eq!(
                back.entry(i),
                live.entry(i),
                "n{n}: index {i} differs on disk"
            );
        }
    }

    /// The NEWLEADER messages delivered to `n` since `since` (an index into `delivered`).
    fn syncs_to(&self, n: NodeId, since: usize) -> Vec<(SyncKind, u64)> {
        self.delivered[since..]
            .iter()
            .filter_map(|(_, to, m)| match m {
                Message::NewLeader(nl) if *to == n => Some((nl.kind.clone(), nl.start)),
                _ => None,
            })
            .collect()
    }
}

/// A replica recovered from `records` in a group of `n`.
fn recovered(me: NodeId, n: usize, records: Vec<Durable>) -> Replica {
    Replica::recover(config(me, n, false), records).expect("valid records")
}

/// Records of a replica that acknowledged `epoch` as current and holds `history`.
fn history(epoch: u64, entries: Vec<Txn>) -> Vec<Durable> {
    vec![
        Durable::AcceptedEpoch(super::message::AcceptedEpoch { epoch, leader: 0 }),
        Durable::CurrentEpoch(epoch),
        Durable::Append { start: 0, entries },
    ]
}

// ----- Election --------------------------------------------------------------------------------

#[test]
fn a_leader_is_elected_synchronises_and_replicates() {
    let mut g = Group::new(3);
    let l = g.elect();
    for v in ["a", "b", "c"] {
        g.propose(l, v);
    }
    g.run();
    g.settle(HEARTBEAT);
    for n in 0..3 {
        assert_eq!(g.replica(n).decided(), 3, "n{n}");
        assert_eq!(g.replica(n).current_epoch(), 1, "n{n}");
        g.assert_durable_log(n);
    }
    g.assert_agreement();
}

/// Votes are ordered by (currentEpoch, last zxid, id): the most up-to-date replica leads, even
/// with the lowest id; and currentEpoch outranks a longer stale history.
#[test]
fn election_picks_the_most_up_to_date_replica() {
    let mut g = Group::new(3);
    g.nodes[0].replica = recovered(0, 3, history(1, vec![txn(1, 1, "a"), txn(1, 2, "b")]));
    g.nodes[1].replica = recovered(1, 3, history(1, vec![txn(1, 1, "a")]));
    g.nodes[2].replica = recovered(2, 3, history(1, vec![txn(1, 1, "a")]));
    assert_eq!(g.elect(), 0, "n0 holds the highest zxid");

    let mut g = Group::new(3);
    // n1 acknowledged epoch 2's NEWLEADER (whose history ended at (1,1)); n0 still holds a
    // stale (1,2) from epoch 1 that epoch 2 did not keep.
    g.nodes[0].replica = recovered(0, 3, history(1, vec![txn(1, 1, "a"), txn(1, 2, "x")]));
    g.nodes[1].replica = recovered(1, 3, history(2, vec![txn(1, 1, "a")]));
    g.nodes[2].replica = recovered(2, 3, history(1, vec![txn(1, 1, "a")]));
    assert_eq!(g.elect(), 1, "currentEpoch outranks the zxid");
    g.settle(HEARTBEAT);
    assert_eq!(g.replica(0).log_len(), 1, "n0's stale tail was truncated");
    g.assert_agreement();
}

#[test]
fn a_replica_alone_in_its_group_leads_and_reads_at_once() {
    let mut g = Group::new(1);
    assert_eq!(g.elect(), 0);
    g.propose(0, "a");
    g.run();
    assert_eq!(g.replica(0).decided(), 1);
    g.with(0, |r, out| r.read(7, out).expect("the leader reads"));
    assert!(
        g.events
            .iter()
            .any(|(_, e)| matches!(e, Event::ReadReady { id: 7, index: 1 }))
    );
}

/// n1 ends the election following n2, which has not ended it yet (it does on its next tick).
fn follower_of_a_candidate() -> Replica {
    let mut r = recovered(1, 3, Vec::new());
    let for_n2 = Vote {
        leader: 2,
        ..Vote::default()
    };
    feed(
        &mut r,
        2,
        Message::Notification(Notification {
            round: 1,
            state: PeerState::Looking,
            vote: for_n2,
        }),
    );
    r.tick(&mut Outbox::default());
    assert_eq!(r.leader(), Some(2), "n1 follows n2");
    r
}

/// Regression (`zab_without_faults_every_operation_succeeds` with a 60 ms start-up: seeds 14,
/// 26, 49, 57, 65 failed operations until about 60 ms): a follower's CEPOCH reached its chosen
/// leader before that leader ended the election; the leader, still LOOKING, answered with its
/// state, and the follower took that for a leader that would not lead and looked again. The
/// leader then led alone until its deadline, refusing every request sent to it. A candidate
/// still voting for itself is kept.
#[test]
fn a_follower_keeps_a_leader_that_has_not_ended_its_election_yet() {
    let mut r = follower_of_a_candidate();
    let looking = |leader| {
        Message::Notification(Notification {
            round: 1,
            state: PeerState::Looking,
            vote: Vote {
                leader,
                ..Vote::default()
            },
        })
    };
    feed(&mut r, 2, looking(2));
    assert_eq!(r.leader(), Some(2), "n2 still votes for itself");
    // It heard of a better vote: it will not lead.
    feed(&mut r, 2, looking(0));
    assert!(r.is_looking(), "n2 votes for n0 now");
}

/// A CEPOCH that reached the leader before it led counted for nothing: the follower sends it
/// again every ping period until a NEWEPOCH answers it.
#[test]
fn a_follower_repeats_its_cepoch_until_the_leader_answers() {
    let mut r = follower_of_a_candidate();
    let cepochs = |r: &mut Replica, ticks| {
        let mut out = Outbox::default();
        for _ in 0..ticks {
            r.tick(&mut out);
        }
        out.send
            .iter()
            .filter(|(to, m)| *to == 2 && matches!(m, Message::CEpoch(_)))
            .count()
    };
    assert_eq!(cepochs(&mut r, HEARTBEAT), 1, "once a ping period");
    feed(
        &mut r,
        2,
        Message::NewEpoch(NewEpoch {
            epoch: 1,
            current_epoch: 0,
            last_zxid: Zxid::default(),
            committed: 0,
        }),
    );
    assert_eq!(cepochs(&mut r, 2 * HEARTBEAT), 0, "answered");
    assert_eq!(r.leader(), Some(2));
}

/// Regression (`zab_without_faults_every_operation_succeeds` with a 60 ms start-up, seed 31):
/// n0 ended the election on n1's vote for itself; n1 then heard n2's better vote and voted for
/// n2, which ended the election as leader with n1's vote. n0's report that it follows n1 made
/// n1 lead too, and n2 led alone until its discovery deadline, refusing every request.
#[test]
fn a_replica_voting_for_another_does_not_lead_on_followers_of_its_old_vote() {
    let mut r = recovered(1, 3, Vec::new());
    let from_n2 = Notification {
        round: 1,
        state: PeerState::Looking,
        vote: Vote {
            leader: 2,
            ..Vote::default()
        },
    };
    feed(&mut r, 2, Message::Notification(from_n2));
    let n0_follows_n1 = Notification {
        round: 1,
        state: PeerState::Following,
        vote: Vote {
            leader: 1,
            ..Vote::default()
        },
    };
    feed(&mut r, 0, Message::Notification(n0_follows_n1.clone()));
    assert!(!r.is_leader() && r.leader() != Some(1), "n1 votes for n2");
    r.tick(&mut Outbox::default());
    assert_eq!(r.leader(), Some(2), "n1 and n2 agree on n2");

    // Still voting for itself, it leads with a follower's backing (a restarted leader rejoins
    // this way).
    let mut r = recovered(1, 3, Vec::new());
    feed(&mut r, 0, Message::Notification(n0_follows_n1));
    assert_eq!(r.leader(), Some(1));
}

// ----- Discovery -------------------------------------------------------------------------------

/// Feeds `r` a message and returns what it asked for.
fn feed(r: &mut Replica, from: NodeId, msg: Message) -> Outbox {
    let mut out = Outbox::default();
    r.on_message(from, msg, &mut out);
    out
}

/// `leader`'s notification that it leads.
fn leads(leader: NodeId) -> Message {
    Message::Notification(Notification {
        round: 1,
        state: PeerState::Leading,
        vote: Vote {
            leader,
            ..Vote::default()
        },
    })
}

/// A LOOKING replica's vote for `leader` (with an empty history), in round 1.
fn votes_for(leader: NodeId) -> Message {
    Message::Notification(Notification {
        round: 1,
        state: PeerState::Looking,
        vote: Vote {
            leader,
            ..Vote::default()
        },
    })
}

/// Makes `r` (n0, LOOKING in round 1) the prospective leader: a peer votes for it, and the
/// next tick ends the election.
fn make_lead(r: &mut Replica, voter: NodeId) {
    let me_vote = Vote {
        leader: 0,
        current_epoch: r.current_epoch(),
        last_zxid: r.last_zxid(),
    };
    feed(
        r,
        voter,
        Message::Notification(Notification {
            round: 1,
            state: PeerState::Looking,
            vote: me_vote,
        }),
    );
    r.tick(&mut Outbox::default());
    assert_eq!(r.leader(), Some(0), "n0 leads");
}

/// The leader persists its new epoch before NEWEPOCH leaves, and picks an epoch above every
/// acceptedEpoch of its quorum.
#[test]
fn the_new_epoch_is_above_the_quorum_s_and_durable_before_newepoch_leaves() {
    let mut r = recovered(0, 3, Vec::new());
    make_lead(&mut r, 2);
    let out = feed(&mut r, 2, Message::CEpoch(CEpoch { accepted_epoch: 4 }));
    assert!(
        out.persist
            .contains(&Durable::AcceptedEpoch(super::message::AcceptedEpoch {
                epoch: 5,
                leader: 0
            })),
        "the leader's own acceptedEpoch record: {:?}",
        out.persist
    );
    assert!(
        out.after_persist
            .iter()
            .any(|(to, m)| *to == 2 && matches!(m, Message::NewEpoch(e) if e.epoch == 5)),
        "NEWEPOCH waits for that record"
    );
    assert!(
        !out.send
            .iter()
            .any(|(_, m)| matches!(m, Message::NewEpoch(_))),
        "no NEWEPOCH leaves at once"
    );
}

/// Follower side: the ACK-E is in the after-durable part, behind the acceptedEpoch record; a
/// crash before the sync loses both, so the epoch was never acknowledged.
#[test]
fn an_epoch_is_never_acknowledged_before_it_is_persisted() {
    let mut r = recovered(1, 3, Vec::new());
    // n0 tells us it leads: with us that is a quorum, so we follow it and send CEPOCH.
    let out = feed(
        &mut r,
        0,
        Message::Notification(Notification {
            round: 1,
            state: PeerState::Leading,
            vote: Vote::default(),
        }),
    );
    assert!(
        out.send
            .iter()
            .any(|(to, m)| *to == 0 && matches!(m, Message::CEpoch(_)))
    );
    let out = feed(
        &mut r,
        0,
        Message::NewEpoch(NewEpoch {
            epoch: 3,
            current_epoch: 0,
            last_zxid: Zxid::default(),
            committed: 0,
        }),
    );
    assert_eq!(
        out.persist,
        vec![Durable::AcceptedEpoch(super::message::AcceptedEpoch {
            epoch: 3,
            leader: 0
        })]
    );
    assert!(
        out.after_persist
            .iter()
            .any(|(to, m)| *to == 0 && matches!(m, Message::AckEpoch(a) if a.epoch == 3)),
        "ACK-E waits for the record"
    );
    assert!(
        !out.send
            .iter()
            .any(|(_, m)| matches!(m, Message::AckEpoch(_))),
        "no ACK-E leaves at once"
    );
    // The same epoch from another leader (the one it promised lost): it follows, but its ACK-E
    // is late (counts towards no quorum) and its promise stays with n0; a lower epoch from
    // that same leader is from an attempt it gave up (ignored), and nothing is acknowledged.
    let mut r2 = recovered(
        1,
        3,
        vec![Durable::AcceptedEpoch(super::message::AcceptedEpoch {
            epoch: 3,
            leader: 0,
        })],
    );
    feed(
        &mut r2,
        2,
        Message::Notification(Notification {
            round: 1,
            state: PeerState::Leading,
            vote: Vote {
                leader: 2,
                ..Vote::default()
            },
        }),
    );
    assert_eq!(r2.leader(), Some(2));
    let new_epoch = |epoch| {
        Message::NewEpoch(NewEpoch {
            epoch,
            current_epoch: 0,
            last_zxid: Zxid::default(),
            committed: 0,
        })
    };
    let out = feed(&mut r2, 2, new_epoch(3));
    assert_eq!(out.persist, Vec::new(), "the promise to n0 stands");
    assert!(
        out.after_persist
            .iter()
            .any(|(to, m)| *to == 2 && matches!(m, Message::AckEpoch(a) if a.epoch == 3 && a.late)),
        "a late ACK-E"
    );
    assert_eq!(r2.leader(), Some(2));
    let out = feed(&mut r2, 2, new_epoch(2));
    assert!(out.after_persist.is_empty() && out.persist.is_empty());
    assert_eq!(
        r2.leader(),
        Some(2),
        "n2's own older attempt changes nothing"
    );
    // A lower epoch than one promised to another leader is refused: it looks again, and
    // nothing is acknowledged.
    let mut r3 = recovered(
        1,
        3,
        vec![Durable::AcceptedEpoch(super::message::AcceptedEpoch {
            epoch: 3,
            leader: 0,
        })],
    );
    feed(
        &mut r3,
        2,
        Message::Notification(Notification {
            round: 1,
            state: PeerState::Leading,
            vote: Vote {
                leader: 2,
                ..Vote::default()
            },
        }),
    );
    assert_eq!(r3.leader(), Some(2));
    let out = feed(&mut r3, 2, new_epoch(2));
    assert!(out.after_persist.is_empty() && out.persist.is_empty());
    assert!(r3.is_looking(), "epoch 3 was promised to n0, 2 is below it");
}

/// Regression (liveness; found in the traces of 3-node simulation seeds 588 and 1976, which
/// this alone also fixes): a leader whose own `acceptedEpoch` is slow to sync gives up on an
/// attempt and starts another with a higher epoch, but the NEWEPOCH of the attempt it gave up
/// still leaves once that record is durable, and the network may deliver it after the new
/// attempt's. A follower that had accepted the new epoch took the old one for a promise to
/// another leader and looked again, so the leader lost it. A leader's epochs only grow: a
/// lower one from the leader we promised is stale.
#[test]
fn a_follower_ignores_a_newepoch_of_its_leader_s_abandoned_attempt() {
    let mut r = recovered(1, 3, Vec::new());
    feed(
        &mut r,
        0,
        Message::Notification(Notification {
            round: 1,
            state: PeerState::Leading,
            vote: Vote::default(),
        }),
    );
    assert_eq!(r.leader(), Some(0));
    let new_epoch = |epoch| {
        Message::NewEpoch(NewEpoch {
            epoch,
            current_epoch: 0,
            last_zxid: Zxid::default(),
            committed: 0,
        })
    };
    feed(&mut r, 0, new_epoch(5));
    let out = feed(&mut r, 0, new_epoch(4));
    assert!(out.persist.is_empty() && out.after_persist.is_empty() && out.send.is_empty());
    assert!(!r.is_looking(), "n1 still follows n0");
    assert_eq!((r.leader(), r.accepted_epoch()), (Some(0), 5));
    // The new attempt's synchronisation is still taken.
    let out = feed(
        &mut r,
        0,
        Message::NewLeader(NewLeader {
            epoch: 5,
            kind: SyncKind::Diff,
            start: 0,
            entries: Vec::new(),
            committed: 0,
            expect: Some((0, Zxid::default())),
        }),
    );
    assert!(
        out.after_persist
            .iter()
            .any(|(to, m)| *to == 0 && matches!(m, Message::AckNewLeader(a) if a.epoch == 5))
    );
    assert_eq!(r.current_epoch(), 5);
}

/// Regression (review: one follower counted towards two leaders' quorums for one epoch): n2
/// promised epoch 1 to n0, then followed n1, the other prospective leader of epoch 1. Its
/// ACK-E to n1 was late, but the switch rewrote its promise to (1, n1), so the next NEWEPOCH 1
/// from n1 (a duplicate, or one after n2 restarted, the switch being durable) got a counting
/// ACK-E. Every ACK-E for epoch 1 to n1 is late, across a restart too.
#[test]
fn an_epoch_promised_to_one_leader_never_counts_for_another() {
    let promised = vec![Durable::AcceptedEpoch(super::message::AcceptedEpoch {
        epoch: 1,
        leader: 0,
    })];
    let new_epoch = Message::NewEpoch(NewEpoch {
        epoch: 1,
        current_epoch: 0,
        last_zxid: Zxid::default(),
        committed: 0,
    });
    let mut r = recovered(2, 3, promised.clone());
    feed(&mut r, 1, leads(1));
    assert_eq!(r.leader(), Some(1));
    let mut outs = vec![
        feed(&mut r, 1, new_epoch.clone()),
        feed(&mut r, 1, new_epoch.clone()),
    ];
    // It restarts from what it made durable, follows n1 again and is asked again.
    let disk = promised
        .into_iter()
        .chain(outs.iter().flat_map(|o| o.persist.clone()))
        .collect();
    let mut r = recovered(2, 3, disk);
    feed(&mut r, 1, leads(1));
    assert_eq!(r.leader(), Some(1));
    outs.push(feed(&mut r, 1, new_epoch));
    let late: Vec<bool> = outs
        .iter()
        .flat_map(|o| o.after_persist.iter().chain(&o.send))
        .filter_map(|(to, m)| match m {
            Message::AckEpoch(a) if *to == 1 && a.epoch == 1 => Some(a.late),
            _ => None,
        })
        .collect();
    assert_eq!(
        late,
        vec![true; 3],
        "every ACK-E for epoch 1 to n1 (twice, then after a restart) is late"
    );
    assert_eq!(r.accepted_epoch(), 1);
}

/// Regression (review: two leaders established in one epoch, committing different commands at
/// one index). A, B and C; A and B both pick epoch 1, and C's promise goes to A. C follows B
/// late, then restarts: its ACK-E to B counted, so B was established with {B, C} and committed
/// x at index 0. Then C came back to A, still synchronising in epoch 1, which truncated x
/// from C and, established with {A, C}, committed y at index 0.
#[test]
fn a_late_follower_restarting_does_not_give_its_epoch_a_second_leader() {
    let (a, b, c) = (0, 1, 2);
    let mut g = Group::new(3);
    // 1. B leads with C's vote and picks epoch 1 from {B: 0, C: 0}; its NEWEPOCH to C is lost.
    g.isolated = BTreeSet::from([a]);
    g.with(b, |r, out| {
        r.on_message(c, votes_for(b), out);
        r.tick(out);
    });
    assert_eq!(g.replica(b).leader(), Some(b));
    g.with(c, |r, out| r.on_message(b, leads(b), out));
    g.run_losing(|_, to, m| to == c && matches!(m, Message::NewEpoch(_)));
    assert_eq!(g.replica(b).accepted_epoch(), 1);
    assert_eq!(g.replica(c).accepted_epoch(), 0);
    // 2. C times out and follows A, which picks epoch 1 from {A: 0, C: 0}. C promises it to A
    // and A adopts, but its NEWLEADER to C is lost. A is never ticked again (it stalls).
    g.isolated = BTreeSet::from([a, b]);
    g.tick_until(c, |g| g.replica(c).is_looking(), "looks again");
    g.isolated = BTreeSet::from([b]);
    g.with(a, |r, out| {
        r.on_message(c, votes_for(a), out);
        r.tick(out);
    });
    assert_eq!(g.replica(a).leader(), Some(a));
    g.with(c, |r, out| r.on_message(a, leads(a), out));
    g.run_losing(|_, to, m| to == c && matches!(m, Message::NewLeader(_)));
    assert!(g.replica(a).is_leader() && !g.replica(a).is_established());
    assert_eq!(g.replica(a).current_epoch(), 1);
    assert_eq!(g.replica(c).accepted_epoch(), 1);
    // 3. C times out again and follows B, still waiting for ACK-Es of epoch 1: its ACK-E is
    // late.
    g.isolated = BTreeSet::from([a]);
    let since = g.delivered.len();
    g.tick_until(
        c,
        |g| {
            g.delivered[since..]
                .iter()
                .any(|(from, to, m)| (*from, *to) == (c, b) && matches!(m, Message::AckEpoch(_)))
        },
        "acknowledges B's epoch",
    );
    assert!(!g.replica(b).is_leader(), "a late ACK-E does not count");
    // 4. C restarts and follows B again.
    g.crash(c, usize::MAX);
    for _ in 0..3 * ELECTION {
        if g.replica(b).is_established() {
            break;
        }
        g.with(c, |r, out| r.tick(out));
        g.run();
    }
    // 5. If B was established, it commits x at index 0; C does not learn that it is committed.
    // B is then cut off.
    g.with(b, |r, out| {
        if r.propose(put("x")).is_ok() {
            r.flush(out);
        }
    });
    g.run_losing(|_, to, m| to == c && matches!(m, Message::Commit(_)));
    g.isolated = BTreeSet::from([b]);
    // 6. C times out and follows A, still synchronising in epoch 1, which commits y.
    g.tick_until(c, |g| g.replica(a).is_established(), "makes A established");
    g.propose(a, "y");
    g.run();
    g.settle(HEARTBEAT);
    assert_eq!(g.replica(a).decided(), 1, "A commits y with C");
    g.assert_agreement();
}

/// The prospective leader adopts the most up-to-date history among its quorum of ACK-Es, sent
/// by the follower that holds it.
#[test]
fn discovery_adopts_the_most_up_to_date_history_of_the_quorum() {
    let mut r = recovered(0, 3, history(1, vec![txn(1, 1, "a")]));
    make_lead(&mut r, 2);
    let out = feed(&mut r, 2, Message::CEpoch(CEpoch { accepted_epoch: 1 }));
    let (_, own) = out
        .after_persist
        .iter()
        .find(|(to, _)| *to == 0)
        .expect("our own ACK-E")
        .clone();
    feed(&mut r, 0, own);
    assert!(!r.is_leader(), "one ACK-E is not a quorum");
    let late = AckEpoch {
        epoch: 2,
        summary: LogSummary::default(),
        history: None,
        late: true,
    };
    feed(&mut r, 1, Message::AckEpoch(late));
    assert!(
        !r.is_leader(),
        "a late ACK-E does not count towards the quorum"
    );
    let theirs = AckEpoch {
        epoch: 2,
        summary: LogSummary {
            current_epoch: 1,
            last_zxid: Zxid {
                epoch: 1,
                counter: 3,
            },
            committed: 0,
            len: 3,
            tail_start: 0,
            tail: (1..=3).map(|counter| Zxid { epoch: 1, counter }).collect(),
        },
        history: Some(Suffix {
            start: 0,
            entries: vec![txn(1, 1, "a"), txn(1, 2, "b"), txn(1, 3, "c")],
            snapshot: None,
        }),
        late: false,
    };
    let out = feed(&mut r, 2, Message::AckEpoch(theirs));
    assert!(r.is_leader() && !r.is_established());
    assert_eq!(r.log_len(), 3);
    assert_eq!(r.entry(2), Some(&put("c")));
    assert!(out.persist.contains(&Durable::CurrentEpoch(2)));
    assert!(
        out.after_persist
            .iter()
            .any(|(to, m)| *to == 0 && matches!(m, Message::AckNewLeader(_))),
        "our own ACK-LD waits for the adopted history"
    );
    assert!(
        out.send
            .iter()
            .any(|(to, m)| *to == 2
                && matches!(m, Message::NewLeader(nl) if nl.kind == SyncKind::Diff)),
        "the follower it came from is synchronised by an empty DIFF"
    );
}

/// Regression (3-node simulation seeds 588, 799 and 1976, liveness): a prospective leader had
/// one election timeout for discovery and synchronisation together, four fsyncs in a row, two
/// of them on its own disk. On a slow disk it gave up every time, and, its vote still the
/// best, was elected again, for ever. Each phase now has a timeout of its own.
#[test]
fn a_leader_whose_phases_each_end_in_time_is_established_however_long_they_take_together() {
    let mut r = recovered(0, 3, Vec::new());
    make_lead(&mut r, 2);
    // Each phase takes nearly the shortest timeout; the three together more than the longest.
    let slow = |r: &mut Replica| {
        for _ in 0..ELECTION - 2 {
            r.tick(&mut Outbox::default());
            assert_eq!(r.leader(), Some(0), "n0 gave up");
        }
    };
    // Discovery: the follower's CEPOCH is slow to come.
    slow(&mut r);
    let out = feed(&mut r, 2, Message::CEpoch(CEpoch { accepted_epoch: 0 }));
    let own_ack_epoch = own_ack(&out);
    // NEWEPOCH: our own acceptedEpoch is slow to sync.
    slow(&mut r);
    feed(&mut r, 0, own_ack_epoch);
    let theirs = AckEpoch {
        epoch: 1,
        summary: LogSummary::default(),
        history: None,
        late: false,
    };
    let out = feed(&mut r, 2, Message::AckEpoch(theirs));
    assert!(r.is_leader());
    let own_ack_new_leader = own_ack(&out);
    // Synchronisation: our own currentEpoch is slow to sync.
    slow(&mut r);
    feed(&mut r, 0, own_ack_new_leader);
    feed(
        &mut r,
        2,
        Message::AckNewLeader(AckNewLeader { epoch: 1, len: 0 }),
    );
    assert!(r.is_established());
}

/// Only a CEPOCH that can follow the leader counts as hearing from its sender. An established
/// leader whose followers reach it only by CEPOCHs for its own epoch (their NEWEPOCH answers
/// are lost) still hears a quorum and keeps leading. But a CEPOCH from a replica that promised
/// a later epoch must not keep a leader that lost its quorum alive: n3's, arriving while n0
/// synchronises (so n0 does not step down at once), leaves n0's deadline where its last
/// follower's acknowledgement put it.
#[test]
fn only_cepochs_that_can_follow_the_leader_keep_it_alive() {
    // Same epoch: an established leader hearing only CEPOCHs for its epoch from a quorum.
    let mut g = Group::new(3);
    let l = g.elect();
    let epoch = g.replica(l).current_epoch();
    let followers: Vec<NodeId> = (0..3).filter(|&n| n != l).collect();
    g.isolated.extend(followers.iter().copied());
    for t in 0..5 * ELECTION {
        g.with(l, |r, out| r.tick(out));
        for &f in &followers {
            g.with(l, |r, out| {
                r.on_message(
                    f,
                    Message::CEpoch(CEpoch {
                        accepted_epoch: epoch,
                    }),
                    out,
                )
            });
        }
        g.run();
        assert!(
            g.replica(l).is_established(),
            "n{l} stepped down after {t} ticks though a quorum sends CEPOCHs for its epoch {epoch}"
        );
    }

    // A later epoch: n0 leads a group of 5 with n1 and n2.
    let mut r = recovered(0, 5, Vec::new());
    feed(&mut r, 1, votes_for(0));
    make_lead(&mut r, 2);
    feed(&mut r, 1, Message::CEpoch(CEpoch { accepted_epoch: 0 }));
    let out = feed(&mut r, 2, Message::CEpoch(CEpoch { accepted_epoch: 0 }));
    feed(&mut r, 0, own_ack(&out));
    let ack_epoch = AckEpoch {
        epoch: 1,
        summary: LogSummary::default(),
        history: None,
        late: false,
    };
    feed(&mut r, 1, Message::AckEpoch(ack_epoch.clone()));
    let out = feed(&mut r, 2, Message::AckEpoch(ack_epoch));
    feed(&mut r, 0, own_ack(&out));
    let ack_new_leader = || Message::AckNewLeader(AckNewLeader { epoch: 1, len: 0 });
    // n2 acknowledges NEWLEADER, then goes silent.
    feed(&mut r, 2, ack_new_leader());
    // n3 promised epoch 9 to another leader: it can never follow n0.
    const LATE: u64 = 4;
    for _ in 0..LATE {
        r.tick(&mut Outbox::default());
        feed(&mut r, 3, Message::CEpoch(CEpoch { accepted_epoch: 9 }));
        assert!(r.is_leader() && !r.is_established(), "n0 is synchronising");
    }
    feed(&mut r, 1, ack_new_leader());
    assert!(r.is_established());
    // Only n1 is still heard from: with n2 silent for an election timeout, n0 hears no quorum.
    for t in 0..ELECTION - LATE {
        assert!(
            r.is_leader(),
            "n0 stepped down after {t} ticks, n2 not yet silent for long"
        );
        r.tick(&mut Outbox::default());
        feed(
            &mut r,
            1,
            Message::Ack(super::message::Ack {
                epoch: 1,
                len: 0,
                gap: false,
            }),
        );
    }
    assert!(
        r.is_looking(),
        "n0 still leads {} ticks after it last heard n2: n3's CEPOCHs for a later epoch kept it alive",
        ELECTION
    );
}

// ----- Synchronisation -------------------------------------------------------------------------

/// Nothing commits, not even the initial history, before a quorum acknowledged NEWLEADER.
#[test]
fn nothing_commits_before_a_quorum_has_synchronised() {
    let mut g = Group::new(3);
    // n0 holds an uncommitted entry of epoch 1 and is the most up to date.
    g.nodes[0].replica = recovered(0, 3, history(1, vec![txn(1, 1, "a")]));
    g.nodes[0].disk = history(1, vec![txn(1, 1, "a")]);
    // Every acknowledgement of synchronisation from a follower is lost (ACK-LD, and the ACKs
    // that would stand in for it).
    let lost = |from: NodeId, _: NodeId, m: &Message| {
        from != 0 && matches!(m, Message::AckNewLeader(_) | Message::Ack(_))
    };
    for _ in 0..20 * ELECTION {
        for n in 0..3 {
            g.with(n, |r, out| r.tick(out));
        }
        g.run_losing(lost);
        if g.replica(0).is_leader() && g.replica(1).current_epoch() == 2 {
            break;
        }
    }
    assert!(g.replica(0).is_leader(), "n0 leads");
    g.propose(0, "b");
    g.run_losing(lost);
    assert!(!g.replica(0).is_established());
    assert_eq!(
        g.replica(0).decided(),
        0,
        "no commit without synchronised followers"
    );
    for n in 1..3 {
        assert_eq!(g.replica(n).current_epoch(), 2, "n{n} synchronised");
        assert_eq!(g.replica(n).decided(), 0, "n{n}");
    }
    // The acknowledgements get through again: with the leader's own, a quorum.
    g.settle(2 * HEARTBEAT);
    assert!(g.replica(0).is_established());
    assert_eq!(
        g.replica(0).decided(),
        2,
        "the initial history and b commit"
    );
    g.assert_agreement();
}

impl Group {
    /// Like [`Group::run`], but messages for which `lost(from, to, message)` holds are lost.
    fn run_losing(&mut self, lost: impl Fn(NodeId, NodeId, &Message) -> bool) {
        for _ in 0..10_000 {
            self.net.retain(|(from, to, m)| !lost(*from, *to, m));
            if !self.deliver_one() {
                let busy = self
                    .nodes
                    .iter()
                    .any(|n| !n.pending.is_empty() || !n.held.is_empty());
                if !busy {
                    return;
                }
                for n in 0..self.size() as NodeId {
                    self.sync(n);
                }
            }
        }
        panic!("the group never falls quiet");
    }
}

/// A follower holding an uncommitted entry of an old epoch that the next epoch replaced gets a
/// TRUNC when it comes back, and ends with the committed history.
#[test]
fn trunc_drops_an_uncommitted_divergent_tail() {
    let mut g = Group::new(3);
    let old = g.elect();
    g.propose(old, "a");
    g.run();
    g.settle(HEARTBEAT);
    // x reaches the old leader's disk only.
    g.isolated.insert(old);
    g.propose(old, "x");
    g.run();
    assert_eq!(g.replica(old).entry(1), Some(&put("x")));
    g.crash(old, 0);
    g.net.clear();
    // The others elect a new leader and commit y at index 1.
    let new = g.elect();
    assert_ne!(new, old);
    g.propose(new, "y");
    g.run();
    g.settle(HEARTBEAT);
    assert_eq!(g.replica(new).decided(), 2);
    // The old leader comes back.
    let since = g.delivered.len();
    g.isolated.clear();
    g.settle(3 * ELECTION);
    let syncs = g.syncs_to(old, since);
    assert!(
        syncs.contains(&(SyncKind::Trunc, 1)),
        "a TRUNC at index 1: {syncs:?}"
    );
    assert_eq!(g.replica(old).entry(1), Some(&put("y")));
    assert_eq!(g.replica(old).decided(), 2);
    g.assert_agreement();
    g.assert_durable_log(old);
}

/// Regression (review): a NEWLEADER whose TRUNC would drop committed entries cannot come from a
/// leader this follower may follow (every later epoch's history holds them), but it made the
/// follower panic: a peer's message could crash it. It is refused: nothing changes and nothing
/// is acknowledged.
#[test]
fn a_trunc_below_the_commit_index_is_refused() {
    let mut records = history(1, vec![txn(1, 1, "x")]);
    records.push(Durable::Committed(1));
    let mut r = recovered(2, 3, records);
    feed(&mut r, 1, leads(1));
    feed(
        &mut r,
        1,
        Message::NewEpoch(NewEpoch {
            epoch: 2,
            current_epoch: 1,
            last_zxid: Zxid::default(),
            committed: 0,
        }),
    );
    let out = feed(
        &mut r,
        1,
        Message::NewLeader(NewLeader {
            epoch: 2,
            kind: SyncKind::Trunc,
            start: 0,
            entries: vec![txn(2, 1, "y")],
            committed: 1,
            expect: Some((
                1,
                Zxid {
                    epoch: 1,
                    counter: 1,
                },
            )),
        }),
    );
    assert!(out.persist.is_empty() && out.after_persist.is_empty() && out.send.is_empty());
    assert_eq!(r.entry(0), Some(&put("x")));
    assert_eq!((r.decided(), r.current_epoch()), (1, 1));
}

/// A follower whose history ends below the leader's compaction point is sent the snapshot.
#[test]
fn snap_for_a_follower_behind_the_compaction_point() {
    let mut g = Group::new(3);
    let l = g.elect();
    let behind = (l + 1) % 3;
    g.propose(l, "v0");
    g.run();
    g.settle(HEARTBEAT);
    g.isolated.insert(behind);
    g.crash(behind, 0);
    for i in 1..30 {
        g.propose(l, &format!("v{i}"));
    }
    g.run();
    g.settle(HEARTBEAT);
    assert_eq!(g.replica(l).decided(), 30);
    g.with(l, |r, out| {
        r.compact(
            Snapshot {
                index: 30,
                data: b"state".to_vec(),
            },
            out,
        )
    });
    g.run();
    let since = g.delivered.len();
    g.isolated.clear();
    g.settle(3 * ELECTION);
    let syncs = g.syncs_to(behind, since);
    assert!(
        syncs
            .iter()
            .any(|(k, start)| matches!(k, SyncKind::Snap(_)) && *start == 30),
        "a SNAP: {syncs:?}"
    );
    assert_eq!(g.replica(behind).snapshot().map(|s| s.index), Some(30));
    assert_eq!(g.replica(behind).decided(), 30);
    assert!(
        g.events
            .iter()
            .any(|(n, e)| *n == behind && matches!(e, Event::InstallSnapshot(_)))
    );
    g.assert_agreement();
}

/// A follower whose history ends exactly at the leader's compaction point (its last entry is the
/// last one the snapshot covers, committed there but not yet known committed here) lacks nothing
/// the snapshot holds: it gets a DIFF from the compaction point, not the snapshot. The leader
/// knows the zxid of that last covered entry only from the snapshot (`ZabSnapshot::last`).
#[test]
fn diff_for_a_follower_whose_history_ends_at_the_compaction_point() {
    const AT: u64 = 5;
    let mut g = Group::new(3);
    let l = g.elect();
    let behind = (l + 1) % 3;
    for i in 0..AT - 1 {
        g.propose(l, &format!("v{i}"));
    }
    g.run();
    g.settle(HEARTBEAT);
    // The last entry the snapshot will cover reaches `behind`, but not its commit.
    g.propose(l, &format!("v{}", AT - 1));
    g.run_losing(|_, to, m| to == behind && matches!(m, Message::Commit(_) | Message::Ping(_)));
    assert_eq!(g.replica(l).decided(), AT);
    assert_eq!(
        (g.replica(behind).log_len(), g.replica(behind).decided()),
        (AT, AT - 1),
        "behind holds every entry the snapshot will cover, the last uncommitted"
    );
    // It restarts, and looks for its leader again, once the leader has compacted.
    g.isolated.insert(behind);
    g.crash(behind, 0);
    g.with(l, |r, out| {
        r.compact(
            Snapshot {
                index: AT,
                data: b"state".to_vec(),
            },
            out,
        )
    });
    g.propose(l, "after");
    g.run();
    g.settle(HEARTBEAT);
    assert_eq!(g.replica(l).first_index(), AT);
    assert_eq!(g.replica(l).decided(), AT + 1);
    let since = g.delivered.len();
    g.isolated.clear();
    g.settle(3 * ELECTION);
    let syncs = g.syncs_to(behind, since);
    assert!(!syncs.is_empty(), "behind was synchronised again");
    assert!(
        syncs.iter().all(|s| *s == (SyncKind::Diff, AT)),
        "only DIFFs from the compaction point: {syncs:?}"
    );
    let r = g.replica(behind);
    assert!(r.snapshot().is_none(), "no snapshot was installed");
    assert_eq!(
        (r.first_index(), r.log_len(), r.decided()),
        (0, AT + 1, AT + 1)
    );
    assert_eq!(r.entry(AT), Some(&put("after")));
    g.assert_agreement();
    g.assert_durable_log(behind);
}

/// `zxid` answers for the entries held and for the last entry a snapshot covers (its `last`),
/// and for nothing else: not for earlier compacted entries, nor past the end.
#[test]
fn zxid_knows_the_last_compacted_entry_and_nothing_below_or_past_the_end() {
    let last = Zxid {
        epoch: 1,
        counter: 3,
    };
    let snapshot = super::message::ZabSnapshot {
        snapshot: Snapshot {
            index: 3,
            data: b"state".to_vec(),
        },
        last,
    };
    let mut records = history(1, vec![]);
    records.push(Durable::Snapshot(snapshot.clone()));
    records.push(Durable::Append {
        start: 3,
        entries: vec![txn(1, 4, "d")],
    });
    let r = recovered(0, 3, records);
    assert_eq!((r.first_index(), r.log_len()), (3, 4));
    assert_eq!(r.zxid(1), None, "compacted, and not the snapshot's last");
    assert_eq!(r.zxid(2), Some(last), "the snapshot's last entry");
    assert_eq!(
        r.zxid(3),
        Some(Zxid {
            epoch: 1,
            counter: 4
        })
    );
    assert_eq!(r.zxid(4), None, "past the end");
    // A snapshot and no entries after it.
    let mut records = history(1, vec![]);
    records.push(Durable::Snapshot(snapshot));
    let r = recovered(0, 3, records);
    assert_eq!((r.first_index(), r.log_len()), (3, 3));
    assert_eq!(r.zxid(0), None);
    assert_eq!(r.zxid(2), Some(last));
    assert_eq!(r.zxid(3), None, "past the end");
}

/// Recovery refuses an append that leaves a hole and names the record that does it: its
/// position among the records, where it appends, and how long the history was.
#[test]
fn recovery_names_the_record_that_leaves_a_hole() {
    let records = vec![
        Durable::CurrentEpoch(1),
        Durable::Append {
            start: 0,
            entries: vec![txn(1, 1, "a")],
        },
        Durable::Append {
            start: 2,
            entries: vec![txn(1, 3, "c")],
        },
        Durable::Committed(1),
    ];
    let err = match Replica::recover(config(0, 3, false), records) {
        Ok(_) => panic!("a hole at index 1 is refused"),
        Err(e) => e,
    };
    assert_eq!(
        err,
        ReplayError {
            index: 2,
            start: 2,
            len: 1
        }
    );
}

/// A follower that restarts (losing its volatile state) looks, rejoins the leader of the same
/// epoch, is synchronised again by DIFF, and then commits what it missed.
#[test]
fn a_restarted_follower_resynchronises() {
    let mut g = Group::new(3);
    let l = g.elect();
    let f = (l + 1) % 3;
    g.propose(l, "a");
    g.run();
    g.settle(HEARTBEAT);
    g.isolated.insert(f);
    g.crash(f, 0);
    g.propose(l, "b");
    g.propose(l, "c");
    g.run();
    let since = g.delivered.len();
    g.isolated.clear();
    g.settle(3 * ELECTION);
    assert_eq!(g.leader(), Some(l), "the leader kept leading");
    assert!(
        g.syncs_to(f, since).contains(&(SyncKind::Diff, 1)),
        "a DIFF from index 1: {:?}",
        g.syncs_to(f, since)
    );
    assert_eq!(g.replica(f).decided(), 3);
    assert_eq!(g.replica(f).current_epoch(), g.replica(l).current_epoch());
    g.assert_agreement();
    g.assert_durable_log(f);
}

// ----- Broadcast and leader changes ------------------------------------------------------------

/// Every entry committed before a leader crash is committed, at the same index, after it.
#[test]
fn a_leader_change_keeps_every_committed_entry() {
    let mut g = Group::new(5);
    let first = g.elect();
    for i in 0..6 {
        g.propose(first, &format!("v{i}"));
    }
    g.run();
    g.settle(HEARTBEAT);
    let before: Vec<Command> = (0..6)
        .map(|i| g.replica(first).entry(i).expect("held").clone())
        .collect();
    // Two more reach only the leader and one follower: possibly not committed.
    let f = (first + 1) % 5;
    g.isolated.extend((0..5).filter(|&n| n != first && n != f));
    g.propose(first, "w6");
    g.propose(first, "w7");
    g.run();
    g.isolated.clear();
    g.crash(first, 0);
    g.isolated.insert(first);
    g.net.clear();
    let second = g.elect();
    assert_ne!(second, first);
    g.propose(second, "after");
    g.run();
    g.settle(HEARTBEAT);
    for (i, cmd) in before.iter().enumerate() {
        assert_eq!(g.replica(second).entry(i as u64), Some(cmd), "index {i}");
    }
    assert!(g.replica(second).decided() >= 7);
    g.isolated.clear();
    g.settle(3 * ELECTION);
    for n in 0..5 {
        g.sync(n);
        g.crash(n, 0);
    }
    g.net.clear();
    g.elect();
    g.settle(HEARTBEAT);
    g.assert_agreement();
}

/// Read index: a read is ready once a quorum acknowledged a ping round started after it.
#[test]
fn a_read_waits_for_a_quorum_of_pings_started_after_it() {
    let mut g = Group::new(3);
    let l = g.elect();
    g.propose(l, "a");
    g.run();
    g.settle(HEARTBEAT);
    let ready = |g: &Group, id: u64| {
        g.events
            .iter()
            .any(|(n, e)| *n == l && matches!(e, Event::ReadReady { id: i, index: 1 } if *i == id))
    };
    g.isolated.extend((0..3).filter(|&n| n != l));
    g.with(l, |r, out| r.read(1, out).expect("the leader reads"));
    g.run();
    assert!(!ready(&g, 1), "no quorum acknowledged");
    g.isolated.clear();
    g.settle(HEARTBEAT);
    assert!(ready(&g, 1));
    let f = (l + 1) % 3;
    assert!(
        g.nodes[f as usize]
            .replica
            .read(2, &mut Outbox::default())
            .is_err()
    );
}

// ----- The deliberate bug ----------------------------------------------------------------------

/// The scenario of `unsafe_skip_sync`: an old leader comes back holding an uncommitted write of
/// its epoch; the new epoch has committed another write at that index. Returns the first index
/// two replicas committed differently, if any.
fn old_leader_returns_with_a_stale_write(unsafe_skip_sync: bool) -> Option<u64> {
    let mut g = Group::with_flag(3, unsafe_skip_sync);
    let old = g.elect();
    g.propose(old, "w1");
    g.run();
    g.settle(HEARTBEAT);
    // w2 reaches the old leader's disk only; it crashes.
    g.isolated.insert(old);
    g.propose(old, "w2");
    g.run();
    g.crash(old, 0);
    g.net.clear();
    // The others elect a new leader and commit w3 at the same index.
    let new = g.elect();
    g.propose(new, "w3");
    g.run();
    g.settle(HEARTBEAT);
    // The old leader rejoins; the new leader goes on.
    g.isolated.clear();
    g.settle(3 * ELECTION);
    g.propose(new, "w4");
    g.run();
    g.settle(2 * HEARTBEAT);
    g.conflict()
}

#[test]
fn unsafe_skip_sync_lets_a_stale_write_commit_where_synchronisation_truncates_it() {
    assert_eq!(
        old_leader_returns_with_a_stale_write(false),
        None,
        "the safe protocol keeps agreement"
    );
    assert_eq!(
        old_leader_returns_with_a_stale_write(true),
        Some(1),
        "skipping synchronisation commits the old leader's w2 where the others committed w3"
    );
}

// ----- Randomized schedules --------------------------------------------------------------------

/// A small xorshift generator: tests stay deterministic per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Everything ever committed, by index and by zxid, across all replicas and restarts.
#[derive(Default)]
struct Committed {
    by_index: BTreeMap<u64, Command>,
    by_zxid: BTreeMap<Zxid, Command>,
}

impl Committed {
    /// Records what each replica counts as committed; the first disagreement, if any.
    fn observe(&mut self, g: &Group) -> Result<(), String> {
        for (n, node) in g.nodes.iter().enumerate() {
            let r = &node.replica;
            for i in r.first_index()..r.decided() {
                let (Some(cmd), Some(z)) = (r.entry(i), r.zxid(i)) else {
                    continue;
                };
                if let Some(prev) = self.by_index.insert(i, cmd.clone())
                    && prev != *cmd
                {
                    return Err(format!(
                        "n{n} committed {cmd:?} at index {i}, before: {prev:?}"
                    ));
                }
                if let Some(prev) = self.by_zxid.insert(z, cmd.clone())
                    && prev != *cmd
                {
                    return Err(format!(
                        "n{n} committed {cmd:?} at zxid {z:?}, before: {prev:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One seeded schedule: N replicas, messages delivered out of order, dropped and duplicated,
/// durability completing late, crashes that keep a random prefix of what was not yet synced,
/// compaction, and proposals at whoever leads. Checks agreement after every step.
fn random_schedule(
    seed: u64,
    n: usize,
    steps: usize,
    unsafe_skip_sync: bool,
) -> Result<u64, String> {
    let mut g = Group::with_flag(n, unsafe_skip_sync);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut committed = Committed::default();
    let mut proposed = 0;
    for step in 0..steps {
        match rng.below(100) {
            // Deliver a random message (sometimes keep a duplicate in flight).
            0..=44 => {
                if !g.net.is_empty() {
                    let i = rng.below(g.net.len() as u64) as usize;
                    let m = g.net.remove(i).expect("in range");
                    if rng.below(10) == 0 {
                        g.net.push_back(m.clone());
                    }
                    g.net.push_front(m);
                    g.deliver_one();
                }
            }
            // Drop one.
            45..=49 => {
                if !g.net.is_empty() {
                    let i = rng.below(g.net.len() as u64) as usize;
                    g.net.remove(i);
                }
            }
            // Durability completes on one node.
            50..=69 => g.sync(rng.below(n as u64) as NodeId),
            // Time passes on one node.
            70..=89 => {
                let who = rng.below(n as u64) as NodeId;
                g.with(who, |r, out| r.tick(out));
            }
            // A client writes at a leader.
            90..=96 => {
                if let Some(l) = (0..n as NodeId).find(|&l| g.replica(l).is_leader()) {
                    proposed += 1;
                    let v = format!("s{seed}-{proposed}");
                    g.propose(l, &v);
                }
            }
            // A replica compacts its committed prefix.
            97 => {
                let who = rng.below(n as u64) as NodeId;
                let index = g.replica(who).decided();
                g.with(who, |r, out| {
                    let data = b"state".to_vec();
                    r.compact(Snapshot { index, data }, out)
                });
            }
            // A crash, keeping a random prefix of the unsynced records.
            _ => {
                let who = rng.below(n as u64) as NodeId;
                let keep = rng.below(g.nodes[who as usize].pending.len() as u64 + 1) as usize;
                g.crash(who, keep);
            }
        }
        committed
            .observe(&g)
            .map_err(|e| format!("seed {seed}, step {step}: {e}"))?;
    }
    Ok(committed.by_index.len() as u64)
}

#[test]
fn random_schedules_never_commit_two_commands_at_one_index_or_zxid() {
    let mut total = 0;
    for seed in 1..=60 {
        for n in [3, 5] {
            total += random_schedule(seed, n, 3000, false).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    assert!(total > 500, "the schedules commit something ({total})");
}

/// The same schedules find the deliberate bug: the property is strong enough to matter.
#[test]
fn random_schedules_catch_unsafe_skip_sync() {
    let caught = (1..=60)
        .filter(|&seed| random_schedule(seed, 3, 3000, true).is_err())
        .count();
    assert!(caught > 0, "no seed caught unsafe_skip_sync");
}

/// n0's acknowledgement to itself in `out`, sent once its records are durable.
fn own_ack(out: &Outbox) -> Message {
    out.after_persist
        .iter()
        .find(|(to, _)| *to == 0)
        .expect("our own acknowledgement")
        .1
        .clone()
}
