//! How often the nodes compacted during a run, counted from their logs.
//!
//! Each node logs one line per snapshot it takes, per snapshot it installs from a leader and per
//! write-ahead log checkpoint, with phrases that kvnode exports for this purpose. Log lines are
//! counted rather than asked of the nodes because a killed node's counters die with it, while its
//! log (appended across restarts) keeps every line.

use std::io::{self, BufRead, BufReader};
use std::path::Path;

use kvnode::node::{LOG_CHECKPOINT, LOG_SNAPSHOT_INSTALLED, LOG_SNAPSHOT_TAKEN};
use serde::Serialize;

use crate::cluster::Compaction;

/// Compaction events over every node of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CompactionCounts {
    pub snapshots_taken: u64,
    pub snapshots_installed: u64,
    pub wal_checkpoints: u64,
}

impl CompactionCounts {
    /// Counts the lines of one node log that carry each phrase.
    pub fn count(log: impl BufRead) -> io::Result<CompactionCounts> {
        let mut counts = CompactionCounts::default();
        for line in log.split(b'\n') {
            // A node killed mid-write can leave a torn, non-UTF-8 last line.
            let line = String::from_utf8_lossy(&line?).into_owned();
            counts.snapshots_taken += u64::from(line.contains(LOG_SNAPSHOT_TAKEN));
            counts.snapshots_installed += u64::from(line.contains(LOG_SNAPSHOT_INSTALLED));
            counts.wal_checkpoints += u64::from(line.contains(LOG_CHECKPOINT));
        }
        Ok(counts)
    }

    /// Sums the counts of the logs `{dir}/{name}.log`; a node without a log counts nothing.
    pub fn of_run(dir: &Path, names: &[String]) -> io::Result<CompactionCounts> {
        let mut total = CompactionCounts::default();
        for name in names {
            let path = dir.join(format!("{name}.log"));
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            };
            let c = CompactionCounts::count(BufReader::new(file))
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            total.snapshots_taken += c.snapshots_taken;
            total.snapshots_installed += c.snapshots_installed;
            total.wal_checkpoints += c.wal_checkpoints;
        }
        Ok(total)
    }
}

/// The `compaction` section of `results.json`: the thresholds the nodes ran with and what they
/// did with them.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct CompactionReport {
    #[serde(flatten)]
    pub thresholds: Compaction,
    #[serde(flatten)]
    pub counts: CompactionCounts,
}

impl std::fmt::Display for CompactionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        write!(
            f,
            "compaction: {} snapshots taken, {} snapshots installed, {} WAL checkpoints \
             (snapshot every {} entries, checkpoint past {} bytes)",
            c.snapshots_taken,
            c.snapshots_installed,
            c.wal_checkpoints,
            self.thresholds.snapshot_every,
            self.thresholds.wal_checkpoint_bytes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lines_with_the_exported_phrases_are_counted() {
        let mut log = format!(
            "2026-12-02T11:00:00.001Z  INFO serving node=n1\n\
             2026-12-02T11:00:01.002Z  INFO {LOG_SNAPSHOT_TAKEN}\n\
             2026-12-02T11:00:01.003Z  INFO {LOG_SNAPSHOT_TAKEN}\n\
             2026-12-02T11:00:02.004Z  INFO {LOG_CHECKPOINT}\n\
             2026-12-02T11:00:03.000Z  INFO recovered from the write-ahead log records=12\n\
             2026-12-02T11:00:03.005Z  INFO {LOG_SNAPSHOT_INSTALLED}\n\
             2026-12-02T11:00:04.006Z  INFO {LOG_SNAPSHOT_TAKEN}\n\
             a snapshot was not taken here\n"
        )
        .into_bytes();
        // The last line is not valid UTF-8 (as if torn by a kill) and still counts.
        log.extend_from_slice(b"2026-12-02T11:00:05.\xff  INFO ");
        log.extend_from_slice(LOG_CHECKPOINT.as_bytes());
        let counts = CompactionCounts::count(&log[..]).unwrap();
        assert_eq!(
            counts,
            CompactionCounts {
                snapshots_taken: 3,
                snapshots_installed: 1,
                wal_checkpoints: 2,
            }
        );
    }

    #[test]
    fn a_run_sums_its_node_logs_and_a_missing_log_counts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("n1.log"), format!("{LOG_SNAPSHOT_TAKEN}\n")).unwrap();
        std::fs::write(
            dir.path().join("n2.log"),
            format!("{LOG_SNAPSHOT_TAKEN}\n{LOG_SNAPSHOT_INSTALLED}\n"),
        )
        .unwrap();
        let names = ["n1", "n2", "n3"].map(String::from);
        let counts = CompactionCounts::of_run(dir.path(), &names).unwrap();
        assert_eq!(counts.snapshots_taken, 2);
        assert_eq!(counts.snapshots_installed, 1);
        assert_eq!(counts.wal_checkpoints, 0);
    }
}
