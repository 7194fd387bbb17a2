//! Zab (ZooKeeper's atomic broadcast) for one partition, as a pure state machine beside
//! [`crate::paxos`].
//!
//! [`Replica`] has the same shape as Paxos's and is driven the same way: `on_message`, `tick`,
//! `propose` + `flush`, `read`, `compact`; each returns its wishes in an [`Outbox`]: records to
//! persist ([`Durable`]), messages that may only leave once those records are durable,
//! messages that may leave at once, and events (Paxos's [`crate::paxos::Event`], so the
//! partition above handles both alike). Indexes are positions in the history, as Paxos's log
//! indexes; each entry also carries its zxid.
//!
//! Where to read on: `replica/mod.rs` summarises the protocol (fast leader election,
//! discovery, synchronisation, broadcast, reads) and the rules every part keeps; one file per
//! phase beside it; `message.rs` holds what replicas say to each other and make durable.
//! `tests.rs` drives each phase step by step, and a seeded random schedule checks agreement.

mod message;
mod replica;

pub use message::{
    AcceptedEpoch, Ack, AckEpoch, AckNewLeader, CEpoch, Commit, Durable, LogSummary, Message,
    NewEpoch, NewLeader, Notification, Outbox, PeerState, Ping, PingAck, Proposal, Suffix,
    SyncKind, Txn, Vote, ZabSnapshot, Zxid,
};
pub use replica::{Replica, ReplicaConfig};

#[cfg(test)]
mod tests;
