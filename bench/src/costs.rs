//! What kvnode's nodes spent in a run (write-ahead log syncs, peer messages and bytes), summed
//! from the `stats` lines of their logs ([`kvnode::node::NodeCosts`]).
//!
//! A node's counts are cumulative per process, and its log is appended across restarts: each
//! process (incarnation) begins with [`LOG_RECOVERED`], and its last stats line holds its total.
//! One that ended cleanly logged its final counts just before [`LOG_SHUTTING_DOWN`]; one killed
//! lost up to a second of counts, which [`reports::Costs::cut_short`] counts.

use std::io::{self, BufRead};
use std::path::Path;

use kvnode::node::{LOG_RECOVERED, LOG_SHUTTING_DOWN, NodeCosts};
use reports::Costs;

/// One incarnation's last counts, and whether it ended cleanly.
#[derive(Default)]
struct Incarnation {
    last: NodeCosts,
    clean: bool,
}

/// Adds the incarnations of one node log to `total`.
fn add_log(log: impl BufRead, total: &mut Costs) -> io::Result<()> {
    let mut current: Option<Incarnation> = None;
    let close = |i: Incarnation, total: &mut Costs| {
        total.wal_syncs += i.last.wal_syncs;
        total.peer_messages += i.last.peer_messages;
        total.peer_bytes += i.last.peer_bytes;
        total.incarnations += 1;
        total.cut_short += u64::from(!i.clean);
    };
    for line in log.split(b'\n') {
        // A node killed mid-write can leave a torn, non-UTF-8 last line.
        let line = String::from_utf8_lossy(&line?).into_owned();
        if line.contains(LOG_RECOVERED) {
            if let Some(done) = current.take() {
                close(done, total);
            }
            current = Some(Incarnation::default());
        } else if let Some(i) = current.as_mut() {
            if let Some(costs) = NodeCosts::parse(&line) {
                i.last = costs;
            } else if line.contains(LOG_SHUTTING_DOWN) {
                i.clean = true;
            }
        }
    }
    if let Some(done) = current {
        close(done, total);
    }
    Ok(())
}

/// Sums the logs `{dir}/{name}.log` (a node without a log counts nothing) and divides by the
/// `completed` workload operations.
pub(crate) fn of_run(dir: &Path, names: &[String], completed: u64) -> io::Result<Costs> {
    let mut total = Costs::default();
    crate::compaction::for_each_node_log(dir, names, |log| add_log(log, &mut total))?;
    Ok(per_op(total, completed))
}

/// Fills in [`Costs::per_op`] (zero when no operation completed).
pub(crate) fn per_op(mut costs: Costs, completed: u64) -> Costs {
    let per = |n: u64| {
        if completed == 0 {
            0.0
        } else {
            n as f64 / completed as f64
        }
    };
    costs.per_op = reports::CostsPerOp {
        wal_syncs: per(costs.wal_syncs),
        peer_messages: per(costs.peer_messages),
        peer_bytes: per(costs.peer_bytes),
    };
    costs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(w: u64, m: u64, b: u64) -> String {
        let line = NodeCosts {
            wal_syncs: w,
            peer_messages: m,
            peer_bytes: b,
        }
        .log_line();
        format!("2026-12-02T11:00:00.001Z  INFO kvnode::node: {line}\n")
    }

    #[test]
    fn each_incarnation_counts_its_last_stats_line_and_a_killed_one_is_cut_short() {
        let log = [
            format!("INFO {LOG_RECOVERED} records=0\n"),
            stats(1, 10, 100),
            stats(5, 50, 500),
            // Killed here: 5/50/500 is all that is known of the first process.
            format!("INFO {LOG_RECOVERED} records=40\n"),
            stats(2, 20, 200),
            stats(3, 30, 300),
            format!("INFO {LOG_SHUTTING_DOWN} node=n1\n"),
        ]
        .concat();
        let mut total = Costs::default();
        add_log(log.as_bytes(), &mut total).unwrap();
        assert_eq!(
            (total.wal_syncs, total.peer_messages, total.peer_bytes),
            (8, 80, 800)
        );
        assert_eq!((total.incarnations, total.cut_short), (2, 1));
        let total = per_op(total, 40);
        assert_eq!(total.per_op.wal_syncs, 0.2);
        assert_eq!(total.per_op.peer_messages, 2.0);
        assert_eq!(per_op(Costs::default(), 0).per_op.peer_bytes, 0.0);
    }

    #[test]
    fn a_run_sums_its_nodes_and_a_missing_log_counts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let one = format!("{LOG_RECOVERED}\n{}", stats(4, 40, 400));
        std::fs::write(dir.path().join("n1.log"), &one).unwrap();
        std::fs::write(dir.path().join("n2.log"), &one).unwrap();
        let names = ["n1", "n2", "n3"].map(String::from);
        let total = of_run(dir.path(), &names, 8).unwrap();
        assert_eq!(total.wal_syncs, 8);
        assert_eq!(total.incarnations, 2);
        assert_eq!(total.per_op.peer_messages, 10.0);
    }
}
