//! What a node spent: write-ahead log syncs and peer messages, counted by the runtime (the pure
//! core knows neither) and logged so that a bench can add them up after the run.
//!
//! The counts are cumulative per process. A `stats ...` line ([`NodeCosts::log_line`]) is logged
//! every second when they changed and once at a clean shutdown; a process killed with SIGKILL
//! loses at most its last second. Each process begins with [`LOG_RECOVERED`], so a reader of a
//! log appended across restarts sums the last stats line of each incarnation.

use std::sync::atomic::{AtomicU64, Ordering};

/// The phrase a node logs once at the start of each process, after reading its log.
pub const LOG_RECOVERED: &str = "recovered from the write-ahead log";

/// The phrase a node logs last on a clean shutdown, after its final stats line.
pub const LOG_SHUTTING_DOWN: &str = "shutting down";

/// What [`NodeCosts::log_line`] starts with.
const PREFIX: &str = "stats wal_syncs=";

/// Counters shared by the runtime's tasks and the WAL thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    wal_syncs: AtomicU64,
    peer_messages: AtomicU64,
    peer_bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn synced(&self, syncs: u64) {
        self.wal_syncs.fetch_add(syncs, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, messages: u64, bytes: u64) {
        self.peer_messages.fetch_add(messages, Ordering::Relaxed);
        self.peer_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn now(&self) -> NodeCosts {
        NodeCosts {
            wal_syncs: self.wal_syncs.load(Ordering::Relaxed),
            peer_messages: self.peer_messages.load(Ordering::Relaxed),
            peer_bytes: self.peer_bytes.load(Ordering::Relaxed),
        }
    }
}

/// A node's costs since its process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeCosts {
    /// Syncs of the write-ahead log (one per group commit, plus one before each checkpoint).
    pub wal_syncs: u64,
    /// Messages written to peer connections (the connection's greeting excepted; messages a
    /// node sends itself never leave it and are not counted).
    pub peer_messages: u64,
    /// Their encoded size, frame headers included.
    pub peer_bytes: u64,
}

impl NodeCosts {
    /// `stats wal_syncs=N peer_messages=M peer_bytes=B`.
    pub fn log_line(&self) -> String {
        format!(
            "{PREFIX}{} peer_messages={} peer_bytes={}",
            self.wal_syncs, self.peer_messages, self.peer_bytes
        )
    }

    /// The counts of a log line carrying [`NodeCosts::log_line`] anywhere in it (after the
    /// logger's time stamp and level); `None` for any other line.
    pub fn parse(line: &str) -> Option<NodeCosts> {
        let at = line.find(PREFIX)?;
        let mut costs = NodeCosts::default();
        let mut seen = 0;
        for field in line[at + "stats ".len()..].split_whitespace() {
            let (name, value) = field.split_once('=')?;
            let slot = match name {
                "wal_syncs" => &mut costs.wal_syncs,
                "peer_messages" => &mut costs.peer_messages,
                "peer_bytes" => &mut costs.peer_bytes,
                _ => continue,
            };
            *slot = value.parse().ok()?;
            seen += 1;
        }
        (seen == 3).then_some(costs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stats_line_reads_back_after_the_loggers_prefix() {
        let costs = NodeCosts {
            wal_syncs: 12,
            peer_messages: 3400,
            peer_bytes: 56_789,
        };
        let line = format!(
            "2026-12-02T11:00:00.001Z  INFO kvnode::node: {}",
            costs.log_line()
        );
        assert_eq!(NodeCosts::parse(&line), Some(costs));
        assert_eq!(NodeCosts::parse("INFO serving node=n1"), None);
        assert_eq!(
            NodeCosts::parse("stats wal_syncs=1 peer_messages=x peer_bytes=2"),
            None
        );
        // A line torn by a kill is not a count.
        assert_eq!(NodeCosts::parse("INFO stats wal_syncs=1 peer_mess"), None);
    }
}
