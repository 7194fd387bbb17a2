//! Deterministic simulation of one partition's replicas, driven through the same
//! [`Partition`] code as the real node.
//!
//! Everything random (delays, loss, duplication, faults, client choices) comes from one seeded
//! RNG, and time is virtual (microseconds), so a seed replays exactly. The network loses,
//! duplicates and reorders messages and can be partitioned; a crash drops the node's memory and
//! every record it had not yet synced, and a restart rebuilds it from its durable records.
//! Clients record a history in kvlab's model, which the real checker then judges.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use checker::{Call, Event as HEvent, History, Operation, Outcome, Value};
use kvnode::command::{Command, Op, Reply};
use kvnode::partition::{Partition, PartitionConfig, Refusal, RequestId, Response};
use kvnode::paxos::{Durable, Message, NodeId, Outbox, ReplicaConfig};
use rand::prelude::*;
use rand::rngs::StdRng;

const TICK: u64 = 1_000;
const CLIENT_TIMEOUT: u64 = 150_000;

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    pub clients: usize,
    pub ops_per_client: usize,
    pub keys: usize,
    /// Probability that a message is lost / delivered twice.
    pub loss: f64,
    pub duplicate: f64,
    /// Crashes and network partitions.
    pub faults: bool,
    /// Small snapshot interval so compaction and snapshot catch-up are exercised.
    pub snapshot_every: u64,
    pub unsafe_read_local: bool,
    pub unsafe_early_ack: bool,
}

impl SimConfig {
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            nodes: 3,
            clients: 4,
            ops_per_client: 25,
            keys: 2,
            loss: 0.02,
            duplicate: 0.02,
            faults: true,
            snapshot_every: 16,
            unsafe_read_local: false,
            unsafe_early_ack: false,
        }
    }
}

pub struct SimResult {
    pub history: History,
    /// Operations that completed `ok`.
    pub ok: usize,
    /// Virtual time the run took, microseconds.
    pub elapsed: u64,
}

enum Ev {
    Tick(usize),
    Sync(usize),
    Deliver {
        to: usize,
        from: usize,
        msg: Message,
    },
    Request {
        node: usize,
        request: RequestId,
        cmd: Command,
    },
    Response {
        request: RequestId,
        response: Response,
    },
    Timeout {
        client: usize,
        request: RequestId,
    },
    Next(usize),
    Crash(usize),
    Restart(usize),
    Cut(Vec<bool>),
    Heal,
    Fault,
}

struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Node {
    part: Option<Partition>,
    disk: Vec<Durable>,
    unsynced: Vec<Durable>,
    held: Vec<(NodeId, Message)>,
    sync_pending: bool,
}

struct Client {
    process: u64,
    seq: u64,
    done: usize,
    target: usize,
    /// Request in flight and the index of its operation in the history.
    pending: Option<(RequestId, usize)>,
}

struct Sim {
    cfg: SimConfig,
    rng: StdRng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<Node>,
    /// side[i]: which side of a partition node i is on; equal sides talk.
    side: Vec<bool>,
    clients: Vec<Client>,
    /// Request -> client.
    requests: BTreeMap<RequestId, usize>,
    next_request: RequestId,
    next_value: u64,
    history: History,
    events: u64,
    ok: usize,
}

pub fn run(cfg: &SimConfig) -> SimResult {
    let mut sim = Sim::new(cfg.clone());
    sim.run();
    SimResult {
        ok: sim.ok,
        elapsed: sim.now,
        history: sim.history,
    }
}

impl Sim {
    fn new(cfg: SimConfig) -> Sim {
        let rng = StdRng::seed_from_u64(cfg.seed);
        let nodes = (0..cfg.nodes)
            .map(|_| Node {
                part: None,
                disk: Vec::new(),
                unsynced: Vec::new(),
                held: Vec::new(),
                sync_pending: false,
            })
            .collect();
        let clients = (0..cfg.clients)
            .map(|c| Client {
                process: c as u64,
                seq: 0,
                done: 0,
                target: c % cfg.nodes,
                pending: None,
            })
            .collect();
        let history = History {
            keys: (0..cfg.keys).map(|k| format!("k{k}")).collect(),
            timed: true,
            ..History::default()
        };
        Sim {
            side: vec![false; cfg.nodes],
            cfg,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            clients,
            requests: BTreeMap::new(),
            next_request: 0,
            next_value: 0,
            history,
            events: 0,
            ok: 0,
        }
    }

    fn partition_config(&self, node: usize) -> PartitionConfig {
        PartitionConfig {
            replica: ReplicaConfig {
                me: node as NodeId,
                group: (0..self.cfg.nodes as NodeId).collect(),
                election_ticks: 10,
                heartbeat_ticks: 3,
                seed: self.cfg.seed,
                max_batch: 8,
            },
            snapshot_every: self.cfg.snapshot_every,
            unsafe_read_local: self.cfg.unsafe_read_local,
            unsafe_early_ack: self.cfg.unsafe_early_ack,
        }
    }

    fn at(&mut self, delay: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at: self.now + delay,
            seq: self.seq,
            ev,
        }));
    }

    fn run(&mut self) {
        for n in 0..self.cfg.nodes {
            let cfg = self.partition_config(n);
            self.nodes[n].part = Some(Partition::new(cfg, []));
            let phase = self.rng.random_range(0..TICK);
            self.at(phase, Ev::Tick(n));
        }
        for c in 0..self.cfg.clients {
            let d = self.rng.random_range(0..20_000);
            self.at(d, Ev::Next(c));
        }
        if self.cfg.faults {
            let d = self.rng.random_range(20_000..100_000);
            self.at(d, Ev::Fault);
        }
        let deadline = 120_000_000;
        while let Some(Reverse(s)) = self.queue.pop() {
            self.now = s.at;
            if self.now > deadline
                || self
                    .clients
                    .iter()
                    .all(|c| c.done >= self.cfg.ops_per_client && c.pending.is_none())
            {
                break;
            }
            self.handle(s.ev);
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Tick(n) => {
                self.with_node(n, |p, out, rs| p.tick(out, rs));
                self.at(TICK, Ev::Tick(n));
            }
            Ev::Sync(n) => self.sync(n),
            Ev::Deliver { to, from, msg } => {
                self.with_node(to, |p, out, rs| p.on_message(from as NodeId, msg, out, rs));
            }
            Ev::Request { node, request, cmd } => {
                self.with_node(node, |p, out, rs| p.request(request, cmd, out, rs));
            }
            Ev::Response { request, response } => self.complete(request, Some(response)),
            Ev::Timeout { client, request } => {
                if self.clients[client]
                    .pending
                    .is_some_and(|(r, _)| r == request)
                {
                    self.complete(request, None);
                }
            }
            Ev::Next(c) => self.next_op(c),
            Ev::Crash(n) => {
                let node = &mut self.nodes[n];
                node.part = None;
                node.unsynced.clear();
                node.held.clear();
            }
            Ev::Restart(n) => {
                let cfg = self.partition_config(n);
                let disk = self.nodes[n].disk.clone();
                self.nodes[n].part = Some(Partition::new(cfg, disk));
            }
            Ev::Cut(side) => self.side = side,
            Ev::Heal => self.side = vec![false; self.cfg.nodes],
            Ev::Fault => self.fault(),
        }
    }

    fn fault(&mut self) {
        let n = self.cfg.nodes;
        let crashed = self.nodes.iter().filter(|x| x.part.is_none()).count();
        if self.rng.random_bool(0.5) && crashed < (n - 1) / 2 {
            let victim = self.rng.random_range(0..n);
            if self.nodes[victim].part.is_some() {
                self.at(0, Ev::Crash(victim));
                let back = self.rng.random_range(10_000..150_000);
                self.at(back, Ev::Restart(victim));
            }
        } else {
            let side: Vec<bool> = (0..n).map(|_| self.rng.random_bool(0.5)).collect();
            self.at(0, Ev::Cut(side));
            let heal = self.rng.random_range(20_000..200_000);
            self.at(heal, Ev::Heal);
        }
        let next = self.rng.random_range(50_000..300_000);
        self.at(next, Ev::Fault);
    }

    /// Runs `f` on node `n`'s partition (if it is up), then performs the outbox.
    fn with_node(
        &mut self,
        n: usize,
        f: impl FnOnce(&mut Partition, &mut Outbox, &mut Vec<(RequestId, Response)>),
    ) {
        let Some(p) = self.nodes[n].part.as_mut() else {
            return;
        };
        let mut out = Outbox::default();
        let mut responses = Vec::new();
        f(p, &mut out, &mut responses);
        p.flush(&mut out);
        self.perform(n, out, responses);
    }

    fn perform(&mut self, n: usize, out: Outbox, responses: Vec<(RequestId, Response)>) {
        let node = &mut self.nodes[n];
        node.unsynced.extend(out.persist);
        node.held.extend(out.after_persist);
        if (!node.unsynced.is_empty() || !node.held.is_empty()) && !node.sync_pending {
            node.sync_pending = true;
            let d = self.rng.random_range(50..500);
            self.at(d, Ev::Sync(n));
        }
        for (to, msg) in out.send {
            self.send(n, to as usize, msg);
        }
        for (request, response) in responses {
            self.respond(request, response);
        }
    }

    fn sync(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.sync_pending = false;
        let Some(p) = node.part.as_mut() else { return };
        node.disk.append(&mut node.unsynced);
        let held = std::mem::take(&mut node.held);
        let mut responses = Vec::new();
        p.persisted(&mut responses);
        for (to, msg) in held {
            self.send(n, to as usize, msg);
        }
        for (request, response) in responses {
            self.respond(request, response);
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: Message) {
        if from == to {
            self.at(10, Ev::Deliver { to, from, msg });
            return;
        }
        if self.side[from] != self.side[to] || self.rng.random_bool(self.cfg.loss) {
            return;
        }
        if self.rng.random_bool(self.cfg.duplicate) {
            let d = self.rng.random_range(100..3_000);
            self.at(
                d,
                Ev::Deliver {
                    to,
                    from,
                    msg: msg.clone(),
                },
            );
        }
        let d = self.rng.random_range(100..3_000);
        self.at(d, Ev::Deliver { to, from, msg });
    }

    fn respond(&mut self, request: RequestId, response: Response) {
        if self.rng.random_bool(self.cfg.loss) {
            return;
        }
        let d = self.rng.random_range(50..1_000);
        self.at(d, Ev::Response { request, response });
    }

    fn next_op(&mut self, c: usize) {
        if self.clients[c].done >= self.cfg.ops_per_client {
            return;
        }
        let key = self.rng.random_range(0..self.cfg.keys);
        let k = format!("k{key}");
        let r: f64 = self.rng.random();
        self.next_value += 1;
        let fresh = format!("v{}", self.next_value);
        let (op, call) = if r < 0.45 {
            (Op::Get { key: k }, Call::Read)
        } else if r < 0.75 {
            (
                Op::Put {
                    key: k,
                    value: fresh.clone(),
                },
                Call::Write(Value::Str(fresh)),
            )
        } else if r < 0.95 {
            // Expect a recently written value, so that some CASes succeed.
            let back = self.rng.random_range(1..=4u64);
            let expected = format!("v{}", self.next_value.saturating_sub(back));
            (
                Op::Cas {
                    key: k,
                    expected: Some(expected.clone()),
                    new: fresh.clone(),
                },
                Call::Cas {
                    expected: Some(Value::Str(expected)),
                    new: Value::Str(fresh),
                },
            )
        } else {
            (Op::Delete { key: k }, Call::Delete)
        };
        let client = &mut self.clients[c];
        client.seq += 1;
        client.done += 1;
        let cmd = Command {
            client: c as u64 + 1,
            seq: client.seq,
            op,
        };
        let request = self.next_request;
        self.next_request += 1;
        let invoke = self.event();
        self.history.ops.push(Operation {
            process: self.clients[c].process,
            key: key as u32,
            call,
            outcome: Outcome::Info,
            invoke,
            complete: None,
        });
        self.clients[c].pending = Some((request, self.history.ops.len() - 1));
        self.requests.insert(request, c);
        let node = self.clients[c].target;
        if !self.rng.random_bool(self.cfg.loss) {
            let d = self.rng.random_range(50..1_000);
            self.at(d, Ev::Request { node, request, cmd });
        }
        self.at(CLIENT_TIMEOUT, Ev::Timeout { client: c, request });
    }

    fn event(&mut self) -> HEvent {
        let index = self.events;
        self.events += 1;
        HEvent {
            index,
            time: self.now,
            line: index + 1,
        }
    }

    /// Completes the client's operation for `request`; `None` is a timeout.
    fn complete(&mut self, request: RequestId, response: Option<Response>) {
        let Some(&c) = self.requests.get(&request) else {
            return;
        };
        let Some((pending, op)) = self.clients[c].pending else {
            return;
        };
        if pending != request {
            return;
        }
        self.requests.remove(&request);
        self.clients[c].pending = None;
        let outcome = match response {
            Some(Response::Ok(Reply::Value(v))) => Outcome::Ok(v.map(Value::Str)),
            Some(Response::Ok(Reply::Done | Reply::Swapped)) => Outcome::Ok(None),
            Some(Response::Ok(Reply::Mismatch { .. })) => Outcome::PreconditionFailed,
            Some(Response::Ok(Reply::Stale)) => Outcome::Fail,
            Some(Response::Fail(refusal)) => {
                if let Refusal::NotLeader { hint } = refusal {
                    self.clients[c].target = match hint {
                        Some(h) => h as usize,
                        None => self.rng.random_range(0..self.cfg.nodes),
                    };
                }
                Outcome::Fail
            }
            Some(Response::Unknown(_)) | None => Outcome::Info,
        };
        if matches!(outcome, Outcome::Ok(_) | Outcome::PreconditionFailed) {
            self.ok += 1;
        }
        if outcome == Outcome::Info {
            // Jepsen's rule: a process whose outcome is unknown never invokes again.
            self.clients[c].process += self.cfg.clients as u64;
            self.clients[c].target = self.rng.random_range(0..self.cfg.nodes);
        }
        let complete = self.event();
        let o = &mut self.history.ops[op];
        o.outcome = outcome;
        o.complete = Some(complete);
        let think = self.rng.random_range(0..3_000);
        self.at(think, Ev::Next(c));
    }
}
