//! kvnode: kvlab's system under test, a partitioned, replicated, linearizable key-value store.
//!
//! Where to start:
//! - [`paxos`] and [`zab`]: the two replication protocols, each a pure state machine (no I/O,
//!   clock or RNG); [`replica`] puts them behind one type, chosen by the configuration.
//! - [`store`]: the replicated map with exactly-once client sessions.
//! - [`partition`]: one partition on one node: a replica, its store, and the client requests
//!   waiting on them. Both the deterministic simulator and the real node drive this same code.
//! - [`node`]: the tokio runtime around the partitions (network, write-ahead log, forwarding).
//! - [`client`]: the client library; [`wire`]: the frames it and the nodes exchange.
//! - [`config`]: the cluster's TOML configuration, key-to-partition and replica placement.

pub mod cli;
pub mod client;
pub mod command;
pub mod config;
pub mod kvctl;
pub mod logging;
pub mod node;
pub mod partition;
pub mod paxos;
pub mod ports;
pub mod replica;
pub mod store;
pub mod wal;
pub mod wire;
pub mod zab;
