//! Multi-Paxos (Sequence Paxos) for one partition, as a pure state machine.
//!
//! [`Replica`] is driven by its runtime: `on_message`, `tick`, `propose` + `flush`, `read`,
//! `compact`; each returns its wishes in an [`Outbox`]: records to persist, messages that may
//! only leave once those records are durable, messages that may leave at once, and events.
//!
//! Where to read on: `replica/mod.rs` summarises the protocol and the rules every part keeps;
//! `replica/election.rs`, `replica/replication.rs` and `replica/reads.rs` hold its phases, and
//! `message.rs` what replicas say to each other and make durable. `tests.rs` pins each safety
//! defect found so far to a step-by-step scenario.

mod message;
mod replica;

pub use message::{
    Accept, AcceptSync, Accepted, Ballot, Durable, Event, Heartbeat, HeartbeatAck, Message, Nack,
    NodeId, Outbox, Prepare, Promise, Snapshot,
};
pub use replica::{NotLeader, ReplayError, Replica, ReplicaConfig};

#[cfg(test)]
mod tests;
