//! The replication protocol a partition runs, Sequence Paxos or Zab, behind one type.
//!
//! Both protocols are pure state machines with the same shape (`recover`, `tick`,
//! `on_message`, `propose` + `flush`, `read`, `compact`, and an outbox of records to persist,
//! messages to hold until those are durable, messages that may leave at once, and the shared
//! [`Event`]s). [`Replica`] maps each call one to one onto the protocol the cluster
//! configuration chose; [`Durable`] and [`Message`] tag the protocol's records and messages, so
//! the write-ahead log and the wire carry either.
//!
//! Mixing protocols is refused where it can come from outside: a record of the other protocol
//! in a node's log stops its recovery ([`decode_record`]), and a message of the other protocol
//! from a peer (a node started with another configuration) is dropped with a warning.
//!
//! # Record encoding
//! A write-ahead log record is postcard's encoding of `(partition, paxos::Durable)` for Paxos,
//! exactly as before Zab existed (so existing logs stay readable), and of
//! `(partition, ZAB_RECORD, zab::Durable)` for Zab. In both the second varint tells them
//! apart: for Paxos it is the variant index of `paxos::Durable` (a handful), for Zab the
//! marker [`ZAB_RECORD`], far above any Paxos variant. Framing and checksums are the log's.

use crate::command::Command;
use crate::config::Protocol;
use crate::paxos::{self, Event, NodeId, NotLeader, ReplayError, Snapshot};
use crate::zab;

/// The second varint of a Zab record: no `paxos::Durable` variant has this index.
pub const ZAB_RECORD: u32 = 1_000;

/// Static parameters of a replica of either protocol.
#[derive(Clone, Debug)]
pub enum ReplicaConfig {
    Paxos(paxos::ReplicaConfig),
    Zab(zab::ReplicaConfig),
}

impl ReplicaConfig {
    pub fn protocol(&self) -> Protocol {
        match self {
            ReplicaConfig::Paxos(_) => Protocol::Paxos,
            ReplicaConfig::Zab(_) => Protocol::Zab,
        }
    }
}

/// A change to a replica's durable state, tagged with its protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Durable {
    Paxos(paxos::Durable),
    Zab(zab::Durable),
}

impl Durable {
    pub fn protocol(&self) -> Protocol {
        match self {
            Durable::Paxos(_) => Protocol::Paxos,
            Durable::Zab(_) => Protocol::Zab,
        }
    }
}

/// A message between the replicas of one partition, tagged with its protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Paxos(paxos::Message),
    Zab(zab::Message),
}

/// Everything one step of a replica asks the runtime to do; the contract of
/// [`paxos::Outbox`]: append `persist` to stable storage, sync it, and only then send
/// `after_persist`; `send` may leave at once.
#[derive(Debug, Default)]
pub struct Outbox {
    pub persist: Vec<Durable>,
    pub after_persist: Vec<(NodeId, Message)>,
    pub send: Vec<(NodeId, Message)>,
    pub events: Vec<Event>,
}

impl Outbox {
    /// Runs one step of a Paxos replica and adds its wishes to this outbox, in order.
    fn paxos(&mut self, step: impl FnOnce(&mut paxos::Outbox)) {
        let mut o = paxos::Outbox::default();
        step(&mut o);
        self.persist
            .extend(o.persist.into_iter().map(Durable::Paxos));
        let tag = |(to, m)| (to, Message::Paxos(m));
        self.after_persist
            .extend(o.after_persist.into_iter().map(tag));
        self.send.extend(o.send.into_iter().map(tag));
        self.events.extend(o.events);
    }

    /// Runs one step of a Zab replica and adds its wishes to this outbox, in order.
    fn zab(&mut self, step: impl FnOnce(&mut zab::Outbox)) {
        let mut o = zab::Outbox::default();
        step(&mut o);
        self.persist.extend(o.persist.into_iter().map(Durable::Zab));
        let tag = |(to, m)| (to, Message::Zab(m));
        self.after_persist
            .extend(o.after_persist.into_iter().map(tag));
        self.send.extend(o.send.into_iter().map(tag));
        self.events.extend(o.events);
    }
}

/// One replica of a partition, running the protocol its configuration names.
pub enum Replica {
    Paxos(paxos::Replica),
    Zab(zab::Replica),
}

/// Calls the same method on whichever protocol runs.
macro_rules! either {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            Replica::Paxos($r) => $e,
            Replica::Zab($r) => $e,
        }
    };
}

impl Replica {
    /// Rebuilds a replica from its durable records, in the order they were written.
    ///
    /// Panics on a record of the other protocol: the caller checks each record's protocol as
    /// it decodes it ([`decode_record`]).
    pub fn recover(
        cfg: ReplicaConfig,
        records: impl IntoIterator<Item = Durable>,
    ) -> Result<Replica, ReplayError> {
        let other = "records of the partition's own protocol (checked when decoded)";
        Ok(match cfg {
            ReplicaConfig::Paxos(cfg) => {
                let records = records.into_iter().map(|d| match d {
                    Durable::Paxos(d) => d,
                    Durable::Zab(_) => panic!("{other}"),
                });
                Replica::Paxos(paxos::Replica::recover(cfg, records)?)
            }
            ReplicaConfig::Zab(cfg) => {
                let records = records.into_iter().map(|d| match d {
                    Durable::Zab(d) => d,
                    Durable::Paxos(_) => panic!("{other}"),
                });
                Replica::Zab(zab::Replica::recover(cfg, records)?)
            }
        })
    }

    pub fn protocol(&self) -> Protocol {
        match self {
            Replica::Paxos(_) => Protocol::Paxos,
            Replica::Zab(_) => Protocol::Zab,
        }
    }

    pub fn log_len(&self) -> u64 {
        either!(self, r => r.log_len())
    }

    /// Entries below this index are chosen (Paxos) or committed (Zab).
    pub fn decided(&self) -> u64 {
        either!(self, r => r.decided())
    }

    /// First index still held as an entry (entries below are in the snapshot).
    pub fn first_index(&self) -> u64 {
        either!(self, r => r.first_index())
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        either!(self, r => r.snapshot())
    }

    pub fn entry(&self, index: u64) -> Option<&Command> {
        either!(self, r => r.entry(index))
    }

    /// Whether this replica takes proposals and reads.
    pub fn is_leader(&self) -> bool {
        either!(self, r => r.is_leader())
    }

    /// Who leads, as far as this replica knows (a hint for clients).
    pub fn leader(&self) -> Option<NodeId> {
        either!(self, r => r.leader())
    }

    /// Records that rebuild this replica's current state (for rewriting the log compactly).
    pub fn checkpoint(&self) -> Vec<Durable> {
        match self {
            Replica::Paxos(r) => r.checkpoint().into_iter().map(Durable::Paxos).collect(),
            Replica::Zab(r) => r.checkpoint().into_iter().map(Durable::Zab).collect(),
        }
    }

    pub fn tick(&mut self, out: &mut Outbox) {
        match self {
            Replica::Paxos(r) => out.paxos(|o| r.tick(o)),
            Replica::Zab(r) => out.zab(|o| r.tick(o)),
        }
    }

    /// Handles a message from `from`; one of the other protocol is dropped (see the module
    /// docs).
    pub fn on_message(&mut self, from: NodeId, msg: Message, out: &mut Outbox) {
        match (self, msg) {
            (Replica::Paxos(r), Message::Paxos(m)) => out.paxos(|o| r.on_message(from, m, o)),
            (Replica::Zab(r), Message::Zab(m)) => out.zab(|o| r.on_message(from, m, o)),
            (r, m) => tracing::warn!(
                from,
                "dropped a {:?} message: this node runs {:?} (is the whole cluster configured alike?): {m:?}",
                match m {
                    Message::Paxos(_) => Protocol::Paxos,
                    Message::Zab(_) => Protocol::Zab,
                },
                r.protocol()
            ),
        }
    }

    /// Appends a command if this replica leads; returns the index it will occupy if chosen.
    pub fn propose(&mut self, cmd: Command) -> Result<u64, NotLeader> {
        either!(self, r => r.propose(cmd))
    }

    /// Sends what proposals since the last flush added.
    pub fn flush(&mut self, out: &mut Outbox) {
        match self {
            Replica::Paxos(r) => out.paxos(|o| r.flush(o)),
            Replica::Zab(r) => out.zab(|o| r.flush(o)),
        }
    }

    /// Starts a linearizable read; its outcome arrives as an [`Event`] with this `id`.
    pub fn read(&mut self, id: u64, out: &mut Outbox) -> Result<(), NotLeader> {
        let mut result = Ok(());
        match self {
            Replica::Paxos(r) => out.paxos(|o| result = r.read(id, o)),
            Replica::Zab(r) => out.zab(|o| result = r.read(id, o)),
        }
        result
    }

    /// Replaces the log prefix below `snapshot.index` (applied, so chosen) by the snapshot.
    pub fn compact(&mut self, snapshot: Snapshot, out: &mut Outbox) {
        match self {
            Replica::Paxos(r) => out.paxos(|o| r.compact(snapshot, o)),
            Replica::Zab(r) => out.zab(|o| r.compact(snapshot, o)),
        }
    }
}

/// Encodes a replica record as the write-ahead log stores it (see the module docs).
pub fn encode_record(partition: u32, d: &Durable) -> Vec<u8> {
    match d {
        Durable::Paxos(d) => postcard::to_allocvec(&(partition, d)),
        Durable::Zab(d) => postcard::to_allocvec(&(partition, ZAB_RECORD, d)),
    }
    .expect("records serialise")
}

/// Decodes a record written by [`encode_record`]: its partition and record.
pub fn decode_record(bytes: &[u8]) -> Result<(u32, Durable), postcard::Error> {
    let (_, kind): (u32, u32) = postcard::take_from_bytes::<(u32, u32)>(bytes)?.0;
    if kind == ZAB_RECORD {
        let (p, _, d): (u32, u32, zab::Durable) = postcard::from_bytes(bytes)?;
        Ok((p, Durable::Zab(d)))
    } else {
        let (p, d): (u32, paxos::Durable) = postcard::from_bytes(bytes)?;
        Ok((p, Durable::Paxos(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paxos::Ballot;
    use crate::zab::{AcceptedEpoch, Txn, Zxid};

    fn cmd() -> Command {
        Command {
            client: 1,
            seq: 2,
            op: crate::command::Op::Put {
                key: "k".into(),
                value: "v".into(),
            },
        }
    }

    #[test]
    fn paxos_records_keep_the_encoding_they_had_before_zab() {
        let d = paxos::Durable::Promise(Ballot { round: 3, node: 1 });
        let old = postcard::to_allocvec(&(7u32, &d)).unwrap();
        assert_eq!(encode_record(7, &Durable::Paxos(d.clone())), old);
        assert_eq!(decode_record(&old).unwrap(), (7, Durable::Paxos(d)));
    }

    #[test]
    fn records_of_both_protocols_round_trip_and_are_told_apart() {
        let records = [
            Durable::Paxos(paxos::Durable::Append {
                start: 4,
                entries: vec![cmd()],
            }),
            Durable::Paxos(paxos::Durable::Snapshot(Snapshot {
                index: 9,
                data: vec![1, 2, 3],
            })),
            Durable::Zab(zab::Durable::AcceptedEpoch(AcceptedEpoch {
                epoch: 5,
                leader: 2,
            })),
            Durable::Zab(zab::Durable::Append {
                start: 4,
                entries: vec![Txn {
                    zxid: Zxid {
                        epoch: 5,
                        counter: 1,
                    },
                    cmd: cmd(),
                }],
            }),
            Durable::Zab(zab::Durable::CurrentEpoch(0)),
        ];
        for d in records {
            let bytes = encode_record(3, &d);
            assert_eq!(decode_record(&bytes).unwrap(), (3, d));
        }
    }

    #[test]
    fn a_truncated_record_is_an_error_not_the_other_protocol() {
        let d = Durable::Zab(zab::Durable::Committed(12));
        let bytes = encode_record(0, &d);
        for cut in 0..bytes.len() {
            assert!(decode_record(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
