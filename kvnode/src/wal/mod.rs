//! The write-ahead log: one per kvnode process, shared by all its partitions.
//!
//! Records are opaque byte strings; the runtime encodes a partition's replica record into them
//! (`crate::replica::encode_record`).
//! The log only promises to hand them back, in order, after a restart.
//!
//! # Contract: persist before you promise
//!
//! - [`LogStore::append`] only buffers. A record is durable once a later [`LogStore::sync`]
//!   returns `Ok`; the runtime appends a whole batch, syncs once (group commit), and only then
//!   sends the messages and replies that depend on that batch.
//! - A crash loses at most the records appended since the last successful `sync`, and always a
//!   suffix of them: a restart replays every synced record, in append order, possibly followed by
//!   some unsynced ones.
//! - [`LogStore::rewrite`] replaces the whole log with a checkpoint, atomically and durably.
//! - After `sync` or `rewrite` fails, what reached the disk is unknown (a failed fsync may have
//!   dropped pages that an earlier write reported as written), so [`FileWal`] refuses further
//!   work with [`WalError::Poisoned`]: the process must restart and replay to learn what survived.
//!
//! # Implementations
//!
//! - [`FileWal`] ([`open`]): the real log, a single segment file on disk; its recovery rules
//!   (what counts as a torn tail and what as corruption) are documented on [`FileWal`].
//! - [`MemWal`]: the in-memory twin for the deterministic simulator and tests. `crash` drops what
//!   was not synced.
//!
//! Both pass the same conformance suite, `kvnode/tests/wal.rs`.
//!
//! # On-disk format
//!
//! A directory holds one active segment, `wal-<generation>.log`, the generation zero-padded to
//! 20 digits. A rewrite writes generation + 1 as `wal-<generation>.log.tmp`, syncs it, renames
//! it into place, syncs the directory and deletes the old generation; [`open`] takes the highest
//! generation and deletes temporary files and older generations. A segment is:
//!
//! ```text
//! segment = header frame*
//! header  = "KVLABWAL" (8 bytes) | version: u32 LE (= 1)
//! frame   = len: u32 LE | crc: u32 LE | payload (len bytes, at most MAX_RECORD_LEN)
//! crc     = CRC-32 (IEEE) of the 4 length bytes followed by the payload
//! ```
//!
//! The checksum covers the length as well as the payload so that a damaged length is caught,
//! and so that a run of zeros (a file extended by a crash before its data reached the disk)
//! never reads as a valid empty record.

mod file;
mod memory;

use std::io;
use std::path::PathBuf;

pub use file::{FileWal, Recovery, open};
pub use memory::MemWal;

/// The largest record either log accepts. It bounds what a damaged length field can make
/// recovery allocate; a batch of commands is far smaller.
pub const MAX_RECORD_LEN: usize = 64 << 20;

/// Durable storage for a sequence of opaque records.
///
/// Rules an implementation must keep:
/// - Records are replayed in the order they were appended, each byte-for-byte.
/// - Once `sync` (or `rewrite`) has returned `Ok`, a crash never loses those records.
/// - A crash may lose any suffix of the records appended after the last successful `sync`, and
///   nothing else.
/// - `rewrite` is atomic: after a crash at any point, a restart replays either the old log or
///   exactly the new records, never a mix.
/// - Records longer than [`MAX_RECORD_LEN`] are refused with [`WalError::RecordTooLarge`], and
///   the log is unchanged.
pub trait LogStore {
    /// Buffers a record; it is not durable until `sync` returns `Ok`.
    fn append(&mut self, record: &[u8]) -> Result<(), WalError>;

    /// Makes every appended record durable (group commit: one flush for the whole batch).
    fn sync(&mut self) -> Result<(), WalError>;

    /// Replaces the whole log by `records`: a checkpoint, so the caller passes the records that
    /// rebuild its current state. Records appended but not yet synced are discarded, since the
    /// checkpoint supersedes them. Atomic (after a crash at any point either the old log or the
    /// new one is read back) and durable on return.
    fn rewrite(&mut self, records: &[Vec<u8>]) -> Result<(), WalError>;

    /// Bytes the log occupies once everything appended is synced: the caller rewrites when this
    /// grows past its threshold. Both implementations count the same on-disk format, so a
    /// threshold behaves alike in the simulator and in the real node.
    fn size(&self) -> u64;
}

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The operating system refused; `source` says why (e.g. no space left on device).
    #[error("write-ahead log: {action} {}: {source}", path.display())]
    Io {
        /// What the log was doing, e.g. "syncing".
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    /// A damaged record is followed by intact ones, so this is not a torn final write:
    /// truncating here would silently drop acknowledged records.
    #[error(
        "write-ahead log {} is corrupt: damaged record at byte {offset} is followed by intact records",
        path.display()
    )]
    Corrupt { path: PathBuf, offset: u64 },

    /// The file does not start with the write-ahead log magic.
    #[error("{} is not a kvlab write-ahead log (bad header)", path.display())]
    BadHeader { path: PathBuf },

    /// The file was written by a format version this build cannot read.
    #[error("write-ahead log {} has format version {version}, this build reads version {supported}", path.display())]
    UnsupportedVersion {
        path: PathBuf,
        version: u32,
        supported: u32,
    },

    /// The record is longer than [`MAX_RECORD_LEN`].
    #[error("write-ahead log record of {len} bytes exceeds the {max}-byte limit")]
    RecordTooLarge { len: usize, max: usize },

    /// An earlier `sync` or `rewrite` failed, so what is durable is unknown.
    #[error(
        "write-ahead log unusable after an earlier failure; restart to recover what is durable"
    )]
    Poisoned,
}

/// Refuses a record longer than [`MAX_RECORD_LEN`], for both implementations alike.
fn check_record_len(record: &[u8]) -> Result<(), WalError> {
    if record.len() > MAX_RECORD_LEN {
        return Err(WalError::RecordTooLarge {
            len: record.len(),
            max: MAX_RECORD_LEN,
        });
    }
    Ok(())
}
