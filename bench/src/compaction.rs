//! Compaction in a run: the thresholds the nodes run with ([`Compaction`]), and how often they
//! compacted ([`CompactionCounts`]), counted from their logs.
//!
//! Each node logs one line per snapshot it takes, per snapshot it installs from a leader and per
//! write-ahead log checkpoint, with phrases that kvnode exports for this purpose. Log lines are
//! counted rather than asked of the nodes because a killed node's counters die with it, while its
//! log (appended across restarts) keeps every line.

use std::io::{self, BufRead, BufReader};
use std::path::Path;

use kvnode::config::Timing;
use kvnode::node::{LOG_CHECKPOINT, LOG_SNAPSHOT_INSTALLED, LOG_SNAPSHOT_TAKEN};
use serde::{Deserialize, Serialize};

use crate::profile::Profile;

/// When nodes compact: the two thresholds of [`Timing`] that a bench run chooses and records.
///
/// kvnode's own defaults are sized for production and never trigger in a run of a minute, so a
/// run with them would never exercise snapshots, snapshot installs or log checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compaction {
    /// A partition snapshots and compacts its log every this many applied entries.
    pub snapshot_every: u64,
    /// A node rewrites its write-ahead log as a checkpoint once it grows past this many bytes.
    pub wal_checkpoint_bytes: u64,
}

impl Compaction {
    /// The bench's default for a workload. Measured with the default run (`register` at
    /// 400 ops/s, nemesis `mix`, 60 s, 2 cores): each partition applies about 25 entries a second,
    /// so every 100 entries each node snapshots each partition every 4 s or so (about 300
    /// snapshots a minute over 3 nodes), a node killed or cut off for 3 s is usually behind a
    /// snapshot of its leader (20 to 40 installs a minute), and each node's log grows by about
    /// 9 KB a second past a checkpoint of about 10 KB, so 64 KiB checkpoints it every 7 s.
    ///
    /// A checkpoint rewrites all of a node's data, and the log asks for the next one as soon as it
    /// is past the threshold again: a threshold below the checkpoint's own size checkpoints every
    /// other batch (it halved `ycsb-a`'s throughput at 64 KiB). So the threshold is at least four
    /// times a generous estimate of the profile's data.
    pub fn for_profile(profile: &Profile) -> Compaction {
        let data = profile.keys * (profile.value_size as u64 + 64);
        Compaction {
            snapshot_every: 100,
            wal_checkpoint_bytes: (4 * data).max(64 << 10),
        }
    }

    /// kvnode's defaults: what runs recorded before the bench chose its own ran with.
    pub fn kvnode_default() -> Compaction {
        let t = Timing::default();
        Compaction {
            snapshot_every: t.snapshot_every,
            wal_checkpoint_bytes: t.wal_checkpoint_bytes,
        }
    }

    /// kvnode's default timing with these thresholds.
    pub fn timing(self) -> Timing {
        Timing {
            snapshot_every: self.snapshot_every,
            wal_checkpoint_bytes: self.wal_checkpoint_bytes,
            ..Timing::default()
        }
    }
}

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
        for_each_node_log(dir, names, |log| {
            let c = CompactionCounts::count(log)?;
            total.snapshots_taken += c.snapshots_taken;
            total.snapshots_installed += c.snapshots_installed;
            total.wal_checkpoints += c.wal_checkpoints;
            Ok(())
        })?;
        Ok(total)
    }
}

/// Calls `read` with each node's log `{dir}/{name}.log` that exists (a node that never started
/// has none); an error names the file.
pub(crate) fn for_each_node_log(
    dir: &Path,
    names: &[String],
    mut read: impl FnMut(BufReader<std::fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    for name in names {
        let path = dir.join(format!("{name}.log"));
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        match std::fs::File::open(&path) {
            Ok(file) => read(BufReader::new(file)).map_err(named)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(named(e)),
        }
    }
    Ok(())
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
            "compaction: {} taken, {} installed, {} \
             (snapshot every {} entries, checkpoint past {} bytes)",
            checker::counted(c.snapshots_taken, "snapshot", "snapshots"),
            checker::counted(c.snapshots_installed, "snapshot", "snapshots"),
            checker::counted(c.wal_checkpoints, "WAL checkpoint", "WAL checkpoints"),
            self.thresholds.snapshot_every,
            self.thresholds.wal_checkpoint_bytes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_thresholds_stay_well_above_the_profile_data() {
        let register = Profile::builtin("register").unwrap();
        assert_eq!(
            Compaction::for_profile(&register).wal_checkpoint_bytes,
            64 << 10
        );
        // ycsb-a's checkpoints measured about 150 KB: a threshold below that checkpoints
        // every other batch.
        let ycsb = Profile::builtin("ycsb-a").unwrap();
        assert!(Compaction::for_profile(&ycsb).wal_checkpoint_bytes >= 600_000);
    }

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
