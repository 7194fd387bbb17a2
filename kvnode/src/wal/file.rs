//! [`FileWal`]: the write-ahead log as one segment file in a directory.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{LogStore, MAX_RECORD_LEN, WalError, check_record_len};

/// First bytes of every segment.
const MAGIC: [u8; 8] = *b"KVLABWAL";
/// Format version written after the magic; bump it when the layout changes.
const VERSION: u32 = 1;
/// Magic plus version.
pub(super) const HEADER_LEN: usize = MAGIC.len() + 4;
/// Length and checksum in front of every payload.
pub(super) const FRAME_HEADER_LEN: usize = 8;
/// Capacity of the append buffer kept across syncs.
const PENDING_CAPACITY_KEPT: usize = 1 << 20;

/// The file-backed log: a single active segment `wal-<generation>.log` in its directory.
///
/// The byte layout is documented in the [module docs](super#on-disk-format).
///
/// # Recovery
///
/// [`open`] reads the highest generation and checks every frame. At the first damaged frame
/// (incomplete, longer than [`MAX_RECORD_LEN`], or failing its checksum) it looks for an intact
/// frame at any later offset:
/// - none: the damage is a torn final write (records never acknowledged). The file is
///   truncated to the last whole record and [`Recovery::truncated_bytes`] says how much went.
/// - some: acknowledged data is damaged. [`open`] fails with [`WalError::Corrupt`] naming the
///   damaged record's offset and leaves the file untouched.
///
/// A limit of this rule: if power fails during a write whose pages reach the disk out of order,
/// an intact frame can follow a hole inside the unsynced tail, and that reads as corruption.
/// Refusing to start is the safe answer when the two cannot be told apart.
///
/// # Invariants
///
/// `len` is the length of the segment on disk and everything in it is durable; `pending` holds
/// whole frames appended since the last sync, which go to the end of the file.
pub struct FileWal {
    dir: PathBuf,
    generation: u64,
    /// The active segment, `dir/wal-<generation>.log`.
    path: PathBuf,
    /// The active segment, positioned at its end.
    file: File,
    len: u64,
    pending: Vec<u8>,
    /// Set when a sync or rewrite failed; see [`WalError::Poisoned`].
    poisoned: bool,
}

/// What [`open`] found: the records to replay, and how much torn tail it cut off.
///
/// A nonzero `truncated_bytes` is expected after a crash during a sync and needs no action, but
/// the runtime should log it: there is no logging inside the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Every intact record, in append order.
    pub records: Vec<Vec<u8>>,
    /// Bytes of incomplete or damaged final write removed from the end of the segment.
    pub truncated_bytes: u64,
}

/// Opens the log in `dir`, creating the directory and an empty log if needed, and returns it
/// with the records to replay.
///
/// Leftovers of an interrupted rewrite are removed: temporary files (the rewrite never
/// completed, so the older generation holds the log) and generations older than the highest
/// (the rewrite completed but did not get to delete them).
pub fn open(dir: &Path) -> Result<(FileWal, Recovery), WalError> {
    fs::create_dir_all(dir).map_err(io_error("creating directory", dir))?;
    let listing = Listing::read(dir)?;
    for temp in &listing.temps {
        remove_if_present(temp)?;
    }
    let Some(generation) = listing.generations.iter().copied().max() else {
        let (file, path, len) = install(dir, 1, &[])?;
        // `dir` may be new: make its own entry durable too, or a crash could take the whole
        // log with it.
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        sync_dir(parent.unwrap_or(Path::new(".")))?;
        let wal = FileWal::new(dir, 1, path, file, len);
        let recovery = Recovery {
            records: Vec::new(),
            truncated_bytes: 0,
        };
        return Ok((wal, recovery));
    };

    let path = segment_path(dir, generation);
    let bytes = fs::read(&path).map_err(io_error("reading", &path))?;
    let (records, end) = scan(&path, &bytes)?;
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io_error("opening", &path))?;
    let end = end as u64;
    let truncated_bytes = bytes.len() as u64 - end;
    if truncated_bytes > 0 {
        file.set_len(end)
            .map_err(io_error("truncating torn tail of", &path))?;
    }
    // Even an intact file may hold writes that a crashed process never synced (they survive in
    // the page cache): sync before the caller acts on them, or a power failure could still
    // take back records that were replayed.
    file.sync_data().map_err(io_error("syncing", &path))?;
    for &older in listing.generations.iter().filter(|&&g| g < generation) {
        remove_if_present(&segment_path(dir, older))?;
    }

    let wal = FileWal::new(dir, generation, path, file, end);
    let recovery = Recovery {
        records,
        truncated_bytes,
    };
    Ok((wal, recovery))
}

impl FileWal {
    fn new(dir: &Path, generation: u64, path: PathBuf, file: File, len: u64) -> FileWal {
        FileWal {
            dir: dir.to_path_buf(),
            generation,
            path,
            file,
            len,
            pending: Vec::new(),
            poisoned: false,
        }
    }

    /// The active segment file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_usable(&self) -> Result<(), WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        Ok(())
    }

    /// Passes on the result of a step whose failure leaves the disk in an unknown state,
    /// poisoning the log if it failed.
    fn or_poison<T>(&mut self, result: Result<T, WalError>) -> Result<T, WalError> {
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }
}

impl LogStore for FileWal {
    fn append(&mut self, record: &[u8]) -> Result<(), WalError> {
        self.check_usable()?;
        check_record_len(record)?;
        encode_frame(&mut self.pending, record);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), WalError> {
        self.check_usable()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        let written = self
            .file
            .write_all(&self.pending)
            .and_then(|()| self.file.sync_data())
            .map_err(io_error("appending to", &self.path));
        self.or_poison(written)?;
        self.len += self.pending.len() as u64;
        self.pending.clear();
        // Keep the buffer for the next batch, but not the memory of one huge record.
        self.pending.shrink_to(PENDING_CAPACITY_KEPT);
        Ok(())
    }

    fn rewrite(&mut self, records: &[Vec<u8>]) -> Result<(), WalError> {
        self.check_usable()?;
        for record in records {
            check_record_len(record)?;
        }
        let next = self.generation + 1;
        let installed = install(&self.dir, next, records);
        let (file, path, len) = self.or_poison(installed)?;
        let old = std::mem::replace(&mut self.path, path);
        self.generation = next;
        self.file = file;
        self.len = len;
        self.pending.clear();
        // The new generation is durable and named: the old one is garbage whatever happens
        // now, and `open` deletes it if this does not.
        let _ = fs::remove_file(old);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.len + self.pending.len() as u64
    }
}

impl fmt::Debug for FileWal {
    // Not derived: the pending buffer can be megabytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileWal")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("pending_bytes", &self.pending.len())
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

/// Segment files found in a log directory.
struct Listing {
    generations: Vec<u64>,
    temps: Vec<PathBuf>,
}

impl Listing {
    fn read(dir: &Path) -> Result<Listing, WalError> {
        let mut listing = Listing {
            generations: Vec::new(),
            temps: Vec::new(),
        };
        let entries = fs::read_dir(dir).map_err(io_error("listing", dir))?;
        for entry in entries {
            let entry = entry.map_err(io_error("listing", dir))?;
            let name = entry.file_name();
            // Names the log did not write are not ours to judge or delete.
            let Some(name) = name.to_str() else { continue };
            if name
                .strip_suffix(".log.tmp")
                .and_then(parse_generation)
                .is_some()
            {
                listing.temps.push(entry.path());
            } else if let Some(generation) = name.strip_suffix(".log").and_then(parse_generation) {
                listing.generations.push(generation);
            }
        }
        Ok(listing)
    }
}

/// The generation in `wal-<digits>` (already stripped of its extension).
fn parse_generation(stem: &str) -> Option<u64> {
    let digits = stem.strip_prefix("wal-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn segment_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("wal-{generation:020}.log"))
}

/// Durably creates segment `generation` holding `records`, without ever exposing a partial
/// file under a segment name: write a temporary file, sync it, rename it into place, sync the
/// directory. Returns the file positioned at its end, its path and its length.
fn install(
    dir: &Path,
    generation: u64,
    records: &[Vec<u8>],
) -> Result<(File, PathBuf, u64), WalError> {
    let path = segment_path(dir, generation);
    let temp = path.with_extension("log.tmp");
    let mut bytes = Vec::with_capacity(
        HEADER_LEN
            + records
                .iter()
                .map(|r| FRAME_HEADER_LEN + r.len())
                .sum::<usize>(),
    );
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    for record in records {
        encode_frame(&mut bytes, record);
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(io_error("creating", &temp))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error("writing", &temp))?;
    fs::rename(&temp, &path).map_err(io_error("renaming into place", &temp))?;
    sync_dir(dir)?;
    Ok((file, path, bytes.len() as u64))
}

/// Makes renames and creations in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("syncing directory", dir))
}

fn remove_if_present(path: &Path) -> Result<(), WalError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(io_error("removing leftover", path)(e))
        }
        _ => Ok(()),
    }
}

/// Appends one frame; the caller has checked `payload` against [`MAX_RECORD_LEN`], so its
/// length fits the u32 field.
fn encode_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

fn checksum(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(payload);
    hasher.finalize()
}

/// The payload of the intact frame starting at `at`, if there is one.
fn frame_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let header = bytes.get(at..at.checked_add(FRAME_HEADER_LEN)?)?;
    let len = [header[0], header[1], header[2], header[3]];
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let payload_len = u32::from_le_bytes(len) as usize;
    if payload_len > MAX_RECORD_LEN {
        return None;
    }
    let start = at + FRAME_HEADER_LEN;
    let payload = bytes.get(start..start + payload_len)?;
    (checksum(len, payload) == crc).then_some(payload)
}

/// Checks a whole segment; returns its records and the offset where the intact part ends.
/// See "Recovery" on [`FileWal`] for how a torn tail is told from corruption.
fn scan(path: &Path, bytes: &[u8]) -> Result<(Vec<Vec<u8>>, usize), WalError> {
    if bytes.len() < HEADER_LEN || bytes[..MAGIC.len()] != MAGIC {
        return Err(WalError::BadHeader {
            path: path.to_path_buf(),
        });
    }
    let v = &bytes[MAGIC.len()..HEADER_LEN];
    let version = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
    if version != VERSION {
        return Err(WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
            supported: VERSION,
        });
    }

    let mut records = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        let Some(payload) = frame_at(bytes, at) else {
            if (at + 1..bytes.len()).any(|later| frame_at(bytes, later).is_some()) {
                return Err(WalError::Corrupt {
                    path: path.to_path_buf(),
                    offset: at as u64,
                });
            }
            break;
        };
        records.push(payload.to_vec());
        at += FRAME_HEADER_LEN + payload.len();
    }
    Ok((records, at))
}

/// Wraps an I/O error with what the log was doing and to which path.
fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
