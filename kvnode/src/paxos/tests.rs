//! Deterministic scenarios against the replica's inputs and outputs.
//!
//! A [`Group`] wires replicas together by hand: every record a replica asks to persist waits in
//! its `pending` list until the test calls [`Group::sync`] (or a helper that syncs), messages held
//! for persistence are released only then, and a crash keeps exactly the records the test says.
//! Each scenario is one the simulation found (or could find) with the whole node; here it is
//! pinned down step by step so that a regression names the protocol rule it breaks.

use std::collections::{BTreeSet, VecDeque};

use super::message::{Ballot, Durable, Event, Message, Nack, NodeId, Outbox, Prepare, Snapshot};
use super::replica::{Replica, ReplicaConfig};
use crate::command::{Command, Op};

const ELECTION: u64 = 10;
const HEARTBEAT: u64 = 3;

struct Node {
    replica: Replica,
    /// Records that survived: what a restart replays.
    disk: Vec<Durable>,
    /// Records asked for but not yet synced, in order.
    pending: Vec<Durable>,
    /// Messages that may leave once `pending` is synced.
    held: Vec<(NodeId, Message)>,
}

struct Group {
    nodes: Vec<Node>,
    /// In flight: (from, to, message), delivered in order.
    net: VecDeque<(NodeId, NodeId, Message)>,
    /// Nodes cut off from everyone else (their messages, both ways, are lost).
    isolated: BTreeSet<NodeId>,
    /// Every message delivered so far.
    delivered: Vec<(NodeId, NodeId, Message)>,
    /// Every event a replica reported, with the replica.
    events: Vec<(NodeId, Event)>,
}

fn config(me: NodeId, n: usize) -> ReplicaConfig {
    ReplicaConfig {
        me,
        group: (0..n as NodeId).collect(),
        election_ticks: ELECTION,
        heartbeat_ticks: HEARTBEAT,
        seed: 7,
        max_batch: 64,
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

impl Group {
    fn new(n: usize) -> Group {
        Group {
            nodes: (0..n as NodeId)
                .map(|me| Node {
                    replica: Replica::new(config(me, n)),
                    disk: Vec::new(),
                    pending: Vec::new(),
                    held: Vec::new(),
                })
                .collect(),
            net: VecDeque::new(),
            isolated: BTreeSet::new(),
            delivered: Vec::new(),
            events: Vec::new(),
        }
    }

    fn replica(&self, n: NodeId) -> &Replica {
        &self.nodes[n as usize].replica
    }

    /// Takes a replica's wishes: records wait for a sync, messages in `send` leave at once.
    fn absorb(&mut self, n: NodeId, out: Outbox) {
        let node = &mut self.nodes[n as usize];
        node.pending.extend(out.persist);
        node.held.extend(out.after_persist);
        for (to, msg) in out.send {
            self.net.push_back((n, to, msg));
        }
        self.events.extend(out.events.into_iter().map(|e| (n, e)));
    }

    /// Whether node `n` reported read `id` ready.
    fn read_ready(&self, n: NodeId, id: u64) -> bool {
        self.events
            .iter()
            .any(|(m, e)| *m == n && matches!(e, Event::ReadReady { id: i, .. } if *i == id))
    }

    /// Makes node `n`'s pending records durable and releases what waited for them.
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

    /// Delivers one message; false if none was in flight.
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
                assert!(
                    self.delivered.len() < limit,
                    "the group never falls quiet (livelock)"
                );
            }
            let waiting: Vec<NodeId> = (0..self.nodes.len() as NodeId)
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
            for n in 0..self.nodes.len() as NodeId {
                self.with(n, |r, out| r.tick(out));
            }
            self.run();
        }
    }

    /// Ticks only node `n` until it campaigns, then runs the election to its end.
    fn elect(&mut self, n: NodeId) {
        for _ in 0..2 * ELECTION {
            self.with(n, |r, out| r.tick(out));
            if !self.net.is_empty() || !self.nodes[n as usize].held.is_empty() {
                break;
            }
        }
        self.run();
        assert!(self.replica(n).is_leader(), "n{n} won its election");
    }

    /// Proposes `value` at leader `n` and flushes it; returns its index.
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
        let size = self.nodes.len();
        let node = &mut self.nodes[n as usize];
        let kept: Vec<Durable> = node.pending.drain(..).take(keep).collect();
        node.disk.extend(kept);
        node.held.clear();
        node.replica = Replica::recover(config(n, size), node.disk.iter().cloned())
            .expect("a replica's own records replay");
    }

    /// Restarts every node from its disk (after syncing everything), as a power cycle would.
    fn restart_all(&mut self) {
        for n in 0..self.nodes.len() as NodeId {
            self.sync(n);
            self.crash(n, 0);
        }
        self.net.clear();
    }

    /// Agreement: no two replicas hold different commands at an index both count as decided.
    fn assert_agreement(&self) {
        for a in &self.nodes {
            for b in &self.nodes {
                let (a, b) = (&a.replica, &b.replica);
                let from = a.first_index().max(b.first_index());
                for i in from..a.decided().min(b.decided()) {
                    assert_eq!(
                        a.entry(i),
                        b.entry(i),
                        "index {i} is decided on two replicas with different commands"
                    );
                }
            }
        }
    }

    /// A replica's log, read back from what it made durable, must equal the one it works with.
    fn assert_durable_log(&self, n: NodeId) {
        let node = &self.nodes[n as usize];
        assert!(node.pending.is_empty(), "sync first");
        let back = Replica::recover(config(n, self.nodes.len()), node.disk.iter().cloned())
            .expect("a replica's own records replay");
        let live = &node.replica;
        assert_eq!(
            (back.first_index(), back.log_len()),
            (live.first_index(), live.log_len()),
            "n{n}: the durable log's extent differs from the live one's"
        );
        for i in live.first_index()..live.log_len() {
            assert_eq!(
                back.entry(i),
                live.entry(i),
                "n{n}: index {i} differs on disk"
            );
        }
    }
}

#[test]
fn replay_refuses_an_append_past_the_end_of_the_log() {
    let records = vec![
        Durable::Append {
            start: 0,
            entries: vec![put("a")],
        },
        // Index 1 was never written: appending at 2 would shift "Y" down to index 1.
        Durable::Append {
            start: 2,
            entries: vec![put("Y")],
        },
    ];
    let err = Replica::recover(config(0, 3), records).err();
    assert_eq!(
        err.map(|e| (e.index, e.start, e.len)),
        Some((1, 2, 1)),
        "the hole is named"
    );
}

fn nack_from(n: NodeId, ballot: Ballot, round: u64) -> Message {
    Message::Nack(Nack {
        ballot,
        promised: Ballot { round, node: n },
    })
}

#[test]
fn a_leader_replicates_and_every_replica_decides() {
    let mut g = Group::new(3);
    g.elect(0);
    for v in ["a", "b", "c"] {
        g.propose(0, v);
    }
    g.run();
    g.settle(HEARTBEAT);
    for n in 0..3 {
        assert_eq!(g.replica(n).decided(), 3, "n{n}");
        g.assert_durable_log(n);
    }
    g.assert_agreement();
}

/// Defect 1: entries proposed in a batch that also made the leader step down were never
/// persisted, yet the node later reported and counted them.
#[test]
fn proposals_flushed_after_stepping_down_are_still_made_durable() {
    let mut g = Group::new(3);
    g.elect(0);
    g.propose(0, "a");
    g.run();
    let ballot = g.replica(0).promised();
    // In one batch: a client's write arrives, then a Nack for a higher ballot (a node that
    // campaigned while cut off); the batch ends with a flush.
    g.with(0, |r, out| {
        r.propose(put("X")).expect("still the leader");
        r.on_message(2, nack_from(2, ballot, ballot.round + 5), out);
        r.flush(out);
    });
    g.run();
    g.assert_durable_log(0);
    // The node wins again and goes on; after a power cycle every replica must agree.
    assert!(
        g.replica(0).is_leader(),
        "n0 re-elected itself above the nack"
    );
    g.propose(0, "Y");
    g.run();
    g.settle(HEARTBEAT);
    g.restart_all();
    g.assert_agreement();
    for n in 0..3 {
        g.assert_durable_log(n);
    }
}

/// Defect 2: a candidate's Prepare left before its own promise was durable; after a crash it
/// campaigned again with the same ballot and a follower kept the first incarnation's entries.
#[test]
fn a_ballot_is_never_used_by_two_incarnations() {
    let mut g = Group::new(3);
    // n0 campaigns; its own promise record stays unsynced while the others answer.
    for _ in 0..2 * ELECTION {
        g.with(0, |r, out| r.tick(out));
        if !g.nodes[0].pending.is_empty() || !g.net.is_empty() {
            break;
        }
    }
    for _ in 0..20 {
        // Deliver and sync everyone but n0.
        while g.deliver_one() {}
        g.sync(1);
        g.sync(2);
    }
    if g.replica(0).is_leader() {
        // It led on the others' promises alone: X reaches n1 only.
        g.isolated.insert(2);
        g.propose(0, "X");
        for _ in 0..5 {
            while g.deliver_one() {}
            g.sync(1);
        }
        g.isolated.clear();
    }
    // n0 crashes before its disk saw anything.
    g.crash(0, 0);
    g.net.clear();
    // n1 is cut off; n0 campaigns again with n2 and writes Y.
    g.isolated.insert(1);
    g.elect(0);
    g.propose(0, "Y");
    g.run();
    g.isolated.clear();
    g.settle(2 * HEARTBEAT);
    g.assert_agreement();
    // Whatever happened, no ballot may have led two different logs: n1 must hold Y.
    assert_eq!(g.replica(1).entry(0), Some(&put("Y")));
}

/// Defect 3: a follower of the current ballot whose log ends below the leader's snapshot
/// answered every re-sync with "gap" and never caught up.
#[test]
fn a_follower_behind_the_snapshot_in_the_same_ballot_catches_up() {
    let mut g = Group::new(3);
    g.elect(0);
    for i in 0..5 {
        g.propose(0, &format!("v{i}"));
    }
    g.run();
    g.settle(HEARTBEAT);
    assert_eq!(g.replica(2).decided(), 5);
    g.isolated.insert(2);
    for i in 5..30 {
        g.propose(0, &format!("v{i}"));
    }
    g.run();
    let decided = g.replica(0).decided();
    assert_eq!(decided, 30);
    g.with(0, |r, out| {
        r.compact(
            Snapshot {
                index: decided,
                data: b"state".to_vec(),
            },
            out,
        )
    });
    g.run();
    g.isolated.clear();
    g.settle(4 * HEARTBEAT);
    assert_eq!(g.replica(2).decided(), 30, "n2 caught up from the snapshot");
    assert_eq!(g.replica(2).snapshot().map(|s| s.index), Some(30));
    // And then the group falls quiet: no more re-syncs.
    let before = g.delivered.len();
    g.settle(4 * HEARTBEAT);
    let resyncs = g.delivered[before..]
        .iter()
        .filter(|(_, _, m)| matches!(m, Message::AcceptSync(_)))
        .count();
    assert_eq!(resyncs, 0, "a caught-up follower is not re-synced");
    g.assert_agreement();
}

/// A leader re-sends entries only to a follower that acknowledged nothing over a whole
/// heartbeat period; one that is making progress is not sent its pipeline a second time.
#[test]
fn a_heartbeat_resends_only_to_a_follower_that_made_no_progress() {
    let mut g = Group::new(3);
    g.elect(0);
    g.propose(0, "a");
    g.run();
    let accepts_from = |g: &Group, start: u64| {
        g.net
            .iter()
            .filter(|(_, _, m)| matches!(m, Message::Accept(a) if a.start == start))
            .count()
    };
    // Entry 1 is in flight to both followers; a heartbeat period passes with the followers
    // having acknowledged entry 0 since the previous heartbeat: nothing is sent twice.
    g.propose(0, "b");
    assert_eq!(accepts_from(&g, 1), 2);
    for _ in 0..HEARTBEAT {
        g.with(0, |r, out| r.tick(out));
    }
    assert_eq!(
        accepts_from(&g, 1),
        2,
        "a follower making progress is left alone"
    );
    // Another period without any acknowledgement: now it is sent again.
    for _ in 0..HEARTBEAT {
        g.with(0, |r, out| r.tick(out));
    }
    assert_eq!(
        accepts_from(&g, 1),
        4,
        "a silent follower gets the entries again"
    );
    g.run();
    g.settle(HEARTBEAT);
    g.assert_agreement();
    assert_eq!(g.replica(1).decided(), 2);
}

/// Found in review: a new leader that keeps its own log, because it beats every promise it
/// counted (its own promise not yet among them), labelled that log with the best promise's
/// older accepted ballot; a follower whose log was accepted in that older ballot was then synced
/// as if it were a prefix of the leader's, and kept a conflicting entry that got decided.
#[test]
fn a_leader_that_keeps_its_own_log_syncs_followers_by_that_log_s_ballot() {
    let mut g = Group::new(3);
    // Ballot A: n1 leads; x is decided everywhere.
    g.elect(1);
    g.propose(1, "x");
    g.run();
    g.settle(HEARTBEAT);
    for n in 0..3 {
        assert_eq!(g.replica(n).decided(), 1, "n{n}");
    }
    let a = g.replica(1).promised();
    // y1 reaches n1's log only.
    g.isolated.insert(1);
    g.propose(1, "y1");
    g.run();
    g.crash(1, 0);
    // n2 restarts (forgets its leader); n0 campaigns for A' with n2, whose AcceptSync is lost.
    g.crash(2, 0);
    g.net.clear();
    for _ in 0..4 * ELECTION {
        g.with(0, |r, out| r.tick(out));
        if g.replica(0).promised() > a {
            break;
        }
    }
    for _ in 0..100 {
        g.net
            .retain(|(_, to, m)| !(*to == 2 && matches!(m, Message::AcceptSync(_))));
        if !g.deliver_one() {
            if g.nodes
                .iter()
                .all(|n| n.held.is_empty() && n.pending.is_empty())
            {
                break;
            }
            for n in 0..3 {
                g.sync(n);
            }
        }
    }
    assert!(g.replica(0).is_leader(), "n0 leads A'");
    let a_prime = g.replica(0).promised();
    assert_eq!(
        g.replica(2).accepted(),
        a,
        "n2 promised A' but is not synced in it"
    );
    // y2 reaches n0's log only.
    g.isolated.insert(2);
    g.propose(0, "y2");
    g.run();
    assert_eq!(g.replica(0).accepted(), a_prime);
    assert_eq!(g.replica(0).entry(1), Some(&put("y2")));
    assert_eq!(g.replica(1).entry(1), Some(&put("y1")));
    // n0 loses its quorum and campaigns for B.
    for _ in 0..6 * ELECTION {
        g.with(0, |r, out| r.tick(out));
        if g.replica(0).promised() > a_prime {
            break;
        }
    }
    assert!(g.replica(0).promised() > a_prime, "n0 campaigns for B");
    g.net.clear();
    g.isolated.clear();
    // Its Prepares leave; its own promise waits for its next sync while n1's and n2's arrive.
    g.sync(0);
    for _ in 0..3 {
        assert!(g.deliver_one());
    }
    g.sync(1);
    g.sync(2);
    while g.deliver_one() {}
    assert!(
        g.replica(0).is_leader(),
        "n0 leads B on n1's and n2's promises"
    );
    g.run();
    g.settle(2 * HEARTBEAT);
    g.assert_agreement();
}

/// Ticks every replica of a fresh group together, delivering nothing, and returns the tick at
/// which each first campaigned.
fn first_campaigns(g: &mut Group) -> Vec<u64> {
    let mut at = vec![None; g.nodes.len()];
    for t in 1..=4 * ELECTION {
        for (i, first) in at.iter_mut().enumerate() {
            let id = i as NodeId;
            g.with(id, |r, out| r.tick(out));
            if first.is_none() && g.replica(id).promised() > Ballot::default() {
                *first = Some(t);
            }
        }
    }
    at.into_iter()
        .map(|t| t.expect("every replica campaigns within two timeouts"))
        .collect()
}

/// Election timeouts are jittered per replica, so replicas that lose their leader together do
/// not campaign in lockstep.
#[test]
fn replicas_draw_different_election_timeouts() {
    let mut g = Group::new(3);
    let at = first_campaigns(&mut g);
    let distinct: BTreeSet<u64> = at.iter().copied().collect();
    assert!(distinct.len() > 1, "all campaigned at tick {}", at[0]);
    for t in at {
        assert!(
            (ELECTION..2 * ELECTION).contains(&t),
            "timeout {t} outside [e, 2e)"
        );
    }
}

/// A promise counts only for the ballot it was given for: a late promise for a candidate's
/// earlier ballot must not make it leader of the new one.
#[test]
fn a_promise_for_an_earlier_ballot_does_not_count() {
    let mut g = Group::new(3);
    // n0 campaigns; n1 promises, but the promise is held up.
    for _ in 0..2 * ELECTION {
        g.with(0, |r, out| r.tick(out));
        if !g.nodes[0].pending.is_empty() {
            break;
        }
    }
    g.sync(0);
    let first = g.replica(0).promised();
    let to_n1 = g
        .net
        .iter()
        .position(|(_, to, _)| *to == 1)
        .expect("a prepare to n1");
    let (from, to, prepare) = g.net.remove(to_n1).expect("there");
    g.net.clear();
    g.with(to, |r, out| r.on_message(from, prepare, out));
    g.sync(1);
    let late: Vec<_> = g.net.drain(..).collect();
    assert_eq!(late.len(), 1, "n1's promise");
    // n0 times out and campaigns again; only its own promise for the new ballot arrives, then
    // n1's promise for the first.
    for _ in 0..2 * ELECTION {
        g.with(0, |r, out| r.tick(out));
        if g.replica(0).promised() > first {
            break;
        }
    }
    assert!(g.replica(0).promised() > first);
    g.sync(0);
    g.net.retain(|(_, to, _)| *to == 0);
    g.run();
    g.net.extend(late);
    while g.deliver_one() {}
    assert!(
        !g.replica(0).is_leader(),
        "n0 led its second ballot on a promise for its first"
    );
}

/// Stickiness: a follower whose leader is alive does not promise another candidate, so a node
/// that comes back from a partition with a higher ballot cannot depose a healthy leader.
#[test]
fn a_follower_with_a_live_leader_ignores_other_candidates() {
    let mut g = Group::new(3);
    g.elect(0);
    g.propose(0, "a");
    g.run();
    let ours = g.replica(0).promised();
    let higher = Ballot {
        round: ours.round + 5,
        node: 2,
    };
    let prepare = Message::Prepare(Prepare {
        ballot: higher,
        decided: 0,
        accepted: Ballot::default(),
        log_len: 0,
    });
    g.with(1, |r, out| r.on_message(2, prepare, out));
    g.sync(1);
    assert_eq!(g.replica(1).promised(), ours, "n1 kept its promise to n0");
    assert!(
        !g.net.iter().any(|(_, to, _)| *to == 2),
        "n1 answered n2's prepare"
    );
    assert_eq!(g.replica(1).leader(), Some(0));
}

/// A new leader gives its followers a whole election timeout to answer before it counts them
/// as gone: it does not step down on its first tick.
#[test]
fn a_new_leader_does_not_step_down_before_its_followers_could_answer() {
    let mut g = Group::new(3);
    for _ in 0..2 * ELECTION {
        g.with(0, |r, out| r.tick(out));
        if !g.nodes[0].pending.is_empty() {
            break;
        }
    }
    g.sync(0);
    while g.deliver_one() {}
    for n in 0..3 {
        g.sync(n);
    }
    while !g.replica(0).is_leader() {
        assert!(g.deliver_one(), "n0 wins");
    }
    // From the moment it wins, nothing more is heard from the followers.
    g.net.clear();
    g.isolated.extend([1, 2]);
    for _ in 0..ELECTION - 1 {
        g.with(0, |r, out| r.tick(out));
    }
    assert!(g.replica(0).is_leader());
}

/// Read index: a read that arrives while a confirmation round is open waits for the next round
/// (the open one may have been acknowledged before the read arrived); a majority's
/// acknowledgement, not everyone's, confirms a round.
#[test]
fn a_read_waits_for_a_round_that_started_after_it_arrived() {
    let mut g = Group::new(3);
    g.elect(0);
    g.propose(0, "a");
    g.run();
    g.settle(HEARTBEAT);
    g.isolated.insert(2);
    g.with(0, |r, out| r.read(1, out).expect("the leader reads"));
    g.with(0, |r, out| r.read(2, out).expect("the leader reads"));
    while !g.read_ready(0, 1) {
        assert!(g.deliver_one(), "read 1 is confirmed by n0 and n1");
    }
    assert!(!g.read_ready(0, 2), "read 2 arrived after round 1 began");
    while g.deliver_one() {}
    assert!(g.read_ready(0, 2), "the next round confirms read 2");
}

#[test]
fn a_single_replica_serves_reads_at_once() {
    let mut g = Group::new(1);
    g.elect(0);
    g.with(0, |r, out| r.read(7, out).expect("the leader reads"));
    assert!(g.read_ready(0, 7));
    g.with(0, |r, out| r.read(8, out).expect("the leader reads"));
    assert!(g.read_ready(0, 8));
}

/// A leader that hears from a majority (itself and one of two followers) keeps leading.
#[test]
fn a_leader_with_one_follower_down_keeps_leading() {
    let mut g = Group::new(3);
    g.elect(0);
    g.isolated.insert(2);
    g.settle(3 * ELECTION);
    assert!(g.replica(0).is_leader());
    g.propose(0, "b");
    g.run();
    g.settle(HEARTBEAT);
    assert_eq!(g.replica(1).decided(), 1);
}
