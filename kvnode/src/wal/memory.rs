//! [`MemWal`]: the in-memory twin of [`FileWal`](super::FileWal).

use super::file::{FRAME_HEADER_LEN, HEADER_LEN};
use super::{LogStore, WalError, check_record_len};

/// A log held in memory, for the deterministic simulator and tests.
///
/// It models the worst crash the contract allows: [`MemWal::crash`] loses every record not yet
/// synced. To restart a node, keep its `MemWal`, call `crash`, and replay [`MemWal::records`].
/// It never fails except on an oversized record, as [`FileWal`](super::FileWal) does.
#[derive(Debug, Clone, Default)]
pub struct MemWal {
    /// Durable: survives `crash`.
    synced: Vec<Vec<u8>>,
    /// Appended since the last sync; lost by `crash`.
    unsynced: Vec<Vec<u8>>,
}

impl MemWal {
    /// An empty log.
    pub fn new() -> MemWal {
        MemWal::default()
    }

    /// Loses everything appended since the last sync, as a process crash may.
    pub fn crash(&mut self) {
        self.unsynced.clear();
    }

    /// The durable records, in order: what a restart replays.
    pub fn records(&self) -> &[Vec<u8>] {
        &self.synced
    }
}

impl LogStore for MemWal {
    fn append(&mut self, record: &[u8]) -> Result<(), WalError> {
        check_record_len(record)?;
        self.unsynced.push(record.to_vec());
        Ok(())
    }

    fn sync(&mut self) -> Result<(), WalError> {
        self.synced.append(&mut self.unsynced);
        Ok(())
    }

    fn rewrite(&mut self, records: &[Vec<u8>]) -> Result<(), WalError> {
        for record in records {
            check_record_len(record)?;
        }
        self.synced = records.to_vec();
        self.unsynced.clear();
        Ok(())
    }

    /// Counted as [`FileWal`](super::FileWal) lays the records out on disk.
    fn size(&self) -> u64 {
        let frames: usize = self
            .synced
            .iter()
            .chain(&self.unsynced)
            .map(|r| FRAME_HEADER_LEN + r.len())
            .sum();
        (HEADER_LEN + frames) as u64
    }
}
