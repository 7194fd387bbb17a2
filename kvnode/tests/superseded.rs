//! Regression: a write was told `Fail(Superseded)` ("definitely did not take effect") as soon as
//! a new proposal reused its log slot, although a leader that has just adopted a log (Paxos
//! after its promises, Zab before it is established) does not know that the entry it displaced
//! is dead: another replica may still hold it, and a later leader may choose it.
//!
//! Five replicas run the real [`Partition`] of either protocol, with messages delivered at
//! once, records durable at once, and the schedule steered by cutting the network, pausing
//! replicas (not ticking them) and losing chosen messages:
//!
//! 1. L leads everyone; write C goes into slot 0 and reaches only N.
//! 2. M leads M, Y and Z (its sync to Y and Z is lost, so nothing is decided); L rejoins and
//!    is synchronised by M, which drops C from L's log. M is then gone.
//! 3. L leads L, Y and Z with its own log, without C (its sync to Y and Z is lost too), and
//!    write D takes slot 0 on L. This is where C was answered `Superseded`.
//! 4. L is cut off; N leads N, Y and Z with the log that holds C, and C is chosen at slot 0.
//! 5. L rejoins, follows N and applies C: C took effect, D did not.

use std::collections::VecDeque;

use kvnode::command::{Command, Op, Reply};
use kvnode::config::Protocol;
use kvnode::partition::{Partition, PartitionConfig, Refusal, RequestId, Response};
use kvnode::paxos::{self, NodeId};
use kvnode::replica::{Message, Outbox, Replica, ReplicaConfig};
use kvnode::zab;

// Zab elects by vote order (current epoch, last zxid, id), so the ids do the steering there:
// L leads the fresh group, M the group M, Y, Z.
const Y: NodeId = 0;
const Z: NodeId = 1;
const M: NodeId = 2;
const N: NodeId = 3;
const L: NodeId = 4;
const ALL: [NodeId; 5] = [Y, Z, M, N, L];

/// Messages the schedule loses on chosen links.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Paxos Accept, Zab PROPOSAL.
    Replicate,
    /// Paxos AcceptSync, Zab NEWLEADER.
    Sync,
}

impl Kind {
    fn matches(self, msg: &Message) -> bool {
        matches!(
            (self, msg),
            (Kind::Replicate, Message::Paxos(paxos::Message::Accept(_)))
                | (Kind::Replicate, Message::Zab(zab::Message::Proposal(_)))
                | (Kind::Sync, Message::Paxos(paxos::Message::AcceptSync(_)))
                | (Kind::Sync, Message::Zab(zab::Message::NewLeader(_)))
        )
    }
}

struct Cluster {
    nodes: Vec<Partition>,
    /// Each replica's side of the network: messages cross only within a side.
    side: [u8; 5],
    /// Lost on their link: (from, to, kind).
    lost: Vec<(NodeId, NodeId, Kind)>,
    /// Only this replica's Paxos Prepares arrive anywhere (steers Paxos elections).
    campaigner: NodeId,
    net: VecDeque<(NodeId, NodeId, Message)>,
    /// Every answer a replica gave: (replica, request, response).
    answers: Vec<(NodeId, RequestId, Response)>,
    batch: u64,
}

fn config(protocol: Protocol, me: NodeId) -> PartitionConfig {
    let group = ALL.to_vec();
    let replica = match protocol {
        Protocol::Paxos => ReplicaConfig::Paxos(paxos::ReplicaConfig {
            me,
            group,
            election_ticks: 10,
            heartbeat_ticks: 3,
            seed: 1,
            max_batch: 64,
        }),
        Protocol::Zab => ReplicaConfig::Zab(zab::ReplicaConfig {
            me,
            group,
            election_ticks: 10,
            heartbeat_ticks: 3,
            seed: 1,
            max_batch: 64,
            unsafe_skip_sync: false,
        }),
    };
    PartitionConfig {
        replica,
        snapshot_every: 1_000,
        unsafe_read_local: false,
        unsafe_early_ack: false,
    }
}

fn put(client: u64, value: &str) -> Command {
    Command {
        client,
        seq: 1,
        op: Op::Put {
            key: "k".into(),
            value: value.into(),
        },
    }
}

impl Cluster {
    fn new(protocol: Protocol) -> Cluster {
        Cluster {
            nodes: ALL
                .iter()
                .map(|&me| Partition::new(config(protocol, me), []).unwrap())
                .collect(),
            side: [0; 5],
            lost: Vec::new(),
            campaigner: L,
            net: VecDeque::new(),
            answers: Vec::new(),
            batch: 0,
        }
    }

    fn replica(&self, n: NodeId) -> &Replica {
        self.nodes[n as usize].replica()
    }

    /// Leads with a log a quorum has confirmed (Zab: established).
    fn confirmed_leader(&self, n: NodeId) -> bool {
        match self.replica(n) {
            Replica::Paxos(r) => r.is_leader(),
            Replica::Zab(r) => r.is_established(),
        }
    }

    fn lose(&mut self, from: NodeId, to: &[NodeId], kind: Kind) {
        self.lost.extend(to.iter().map(|&t| (from, t, kind)));
    }

    fn delivers(&self, from: NodeId, to: NodeId, msg: &Message) -> bool {
        if from == to {
            return true;
        }
        let campaign = matches!(msg, Message::Paxos(paxos::Message::Prepare(_)));
        self.side[from as usize] == self.side[to as usize]
            && (!campaign || from == self.campaigner)
            && !self
                .lost
                .iter()
                .any(|&(f, t, k)| f == from && t == to && k.matches(msg))
    }

    /// Runs one step of replica `n`; its records count as durable at once.
    fn with(
        &mut self,
        n: NodeId,
        f: impl FnOnce(&mut Partition, &mut Outbox, &mut Vec<(RequestId, Response)>),
    ) {
        let mut out = Outbox::default();
        let mut responses = Vec::new();
        f(&mut self.nodes[n as usize], &mut out, &mut responses);
        for (to, msg) in out.after_persist.into_iter().chain(out.send) {
            self.net.push_back((n, to, msg));
        }
        self.answers
            .extend(responses.into_iter().map(|(id, r)| (n, id, r)));
    }

    /// Delivers, in order, until nothing is in flight.
    fn settle(&mut self) {
        for _ in 0..1_000_000 {
            let Some((from, to, msg)) = self.net.pop_front() else {
                return;
            };
            if self.delivers(from, to, &msg) {
                self.with(to, |p, out, rs| p.on_message(from, msg, out, rs));
            }
        }
        panic!("messages kept flowing");
    }

    /// Ticks the `running` replicas (the others are paused) until `done` holds.
    fn run_until(&mut self, running: &[NodeId], what: &str, done: impl Fn(&Cluster) -> bool) {
        for _ in 0..5_000 {
            if done(self) {
                return;
            }
            for &n in running {
                self.with(n, |p, out, rs| p.tick(out, rs));
            }
            self.settle();
        }
        panic!("{what}: did not happen");
    }

    fn request(&mut self, n: NodeId, id: RequestId, cmd: Command) {
        self.batch += 1;
        let batch = self.batch;
        self.with(n, |p, out, rs| {
            p.request(id, cmd, out, rs);
            p.flush(batch, out);
        });
        self.settle();
    }

    fn answers_to(&self, n: NodeId, id: RequestId) -> Vec<Response> {
        self.answers
            .iter()
            .filter(|(at, request, _)| (*at, *request) == (n, id))
            .map(|(_, _, r)| r.clone())
            .collect()
    }
}

fn a_displaced_write_is_failed_only_once_its_slot_is_decided(protocol: Protocol) {
    let (c_write, d_write) = (put(1, "C"), put(2, "D"));
    let mut c = Cluster::new(protocol);

    // 1. L leads everyone; C reaches only N.
    c.run_until(&ALL, "L leads everyone", |c| {
        c.confirmed_leader(L) && ALL.iter().all(|&n| c.replica(n).leader() == Some(L))
    });
    c.lose(L, &[M, Y, Z], Kind::Replicate);
    c.request(L, 1, c_write.clone());
    assert_eq!(c.replica(L).entry(0), Some(&c_write));
    assert_eq!(c.replica(N).entry(0), Some(&c_write));
    assert!(ALL.iter().all(|&n| c.replica(n).decided() == 0));

    // 2. M leads M, Y, Z, whose syncs are lost; L, back, is synchronised and drops C.
    c.side = [0, 0, 0, 2, 1];
    c.campaigner = M;
    c.lose(M, &[Y, Z], Kind::Sync);
    c.run_until(&[M, Y, Z], "M leads", |c| c.replica(M).is_leader());
    c.run_until(&[L], "L notices it lost its quorum", |c| {
        !c.replica(L).is_leader()
    });
    c.side[L as usize] = 0;
    c.run_until(&[L, M, Y, Z], "M's sync drops C from L", |c| {
        c.replica(L).leader() == Some(M) && c.replica(L).log_len() == 0
    });
    if let Replica::Zab(m) = c.replica(M) {
        assert!(
            !m.is_established(),
            "M never gets a quorum of NEWLEADER acknowledgements"
        );
    }
    assert!(ALL.iter().all(|&n| c.replica(n).decided() == 0));

    // 3. M is gone. L leads L, Y, Z with its own log (their syncs are lost) and puts D in slot 0.
    c.side[M as usize] = 3;
    c.campaigner = L;
    c.lose(L, &[Y, Z], Kind::Sync);
    c.run_until(&[L, Y, Z], "L leads again", |c| c.replica(L).is_leader());
    if let Replica::Zab(l) = c.replica(L) {
        assert!(
            !l.is_established(),
            "L leads with its own history, not yet established"
        );
    }
    c.request(L, 2, d_write.clone());
    assert_eq!(c.replica(L).entry(0), Some(&d_write), "D reuses C's slot");

    // 4. L is cut off; N leads N, Y, Z with the log that holds C, which is chosen.
    c.side[L as usize] = 4;
    c.side[N as usize] = 0;
    c.campaigner = N;
    c.run_until(&[N, Y, Z], "N decides slot 0", |c| {
        c.replica(N).decided() >= 1
    });
    assert_eq!(
        c.replica(N).entry(0),
        Some(&c_write),
        "C is chosen at slot 0"
    );
    assert!(
        !c.answers_to(L, 1)
            .contains(&Response::Fail(Refusal::Superseded)),
        "C's client was told it definitely did not happen, yet C is chosen: {:?}",
        c.answers_to(L, 1)
    );

    // 5. L rejoins, learns that C was chosen, and answers both writes, each once.
    c.side[L as usize] = 0;
    c.run_until(&[L, N, Y, Z], "L applies slot 0", |c| {
        c.replica(L).decided() >= 1
    });
    assert_eq!(c.replica(L).entry(0), Some(&c_write));
    assert_eq!(c.answers_to(L, 1), [Response::Ok(Reply::Done)]);
    assert_eq!(
        c.answers_to(L, 2),
        [Response::Fail(Refusal::Superseded)],
        "D's slot is decided with C: now D definitely did not happen"
    );
}

#[test]
fn paxos_answers_a_write_displaced_by_a_new_leader_only_once_its_slot_is_decided() {
    a_displaced_write_is_failed_only_once_its_slot_is_decided(Protocol::Paxos);
}

#[test]
fn zab_answers_a_write_displaced_by_an_unestablished_leader_only_once_its_slot_is_committed() {
    a_displaced_write_is_failed_only_once_its_slot_is_decided(Protocol::Zab);
}
