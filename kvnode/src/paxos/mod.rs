//! Multi-Paxos (Sequence Paxos) for one partition, as a pure state machine.
//!
//! [`Replica`] is driven by its runtime: `on_message`, `tick`, `propose` + `flush`, `read`,
//! `compact`; each returns its wishes in an [`Outbox`]: records to persist, messages that may
//! only leave once those records are durable, messages that may leave at once, and events.

mod message;
mod replica;

pub use message::{
    Accept, AcceptSync, Accepted, Ballot, Durable, Event, Heartbeat, HeartbeatAck, Message, Nack,
    NodeId, Outbox, Prepare, Promise, Snapshot,
};
pub use replica::{NotLeader, ReplayError, Replica, ReplicaConfig};

#[cfg(test)]
mod tests;
