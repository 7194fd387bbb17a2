//! The write-ahead log conformance suite, then `FileWal`'s recovery on damaged disks.
//!
//! Each property in the suite is one generic function over a [`Harness`], run against both
//! implementations by `conformance!`: for `FileWal` a crash drops the log without syncing and
//! reopens its directory; for `MemWal` it is `MemWal::crash`.

use std::fs;
use std::path::{Path, PathBuf};

use kvnode::wal::{self, FileWal, LogStore, MAX_RECORD_LEN, MemWal, Recovery, WalError};
use tempfile::TempDir;

/// One implementation under test, with its own notion of a crash.
trait Harness: Sized {
    type Log: LogStore;
    /// A new, empty log and what opening it replayed.
    fn new() -> (Self, Vec<Vec<u8>>);
    fn log(&mut self) -> &mut Self::Log;
    /// Crashes (losing what the implementation may lose) and restarts; returns the replay.
    fn crash_and_restart(&mut self) -> Vec<Vec<u8>>;
}

struct FileHarness {
    dir: TempDir,
    wal: Option<FileWal>,
}

impl Harness for FileHarness {
    type Log = FileWal;

    fn new() -> (Self, Vec<Vec<u8>>) {
        let dir = TempDir::new().unwrap();
        let (wal, recovery) = wal::open(dir.path()).unwrap();
        let harness = FileHarness {
            dir,
            wal: Some(wal),
        };
        (harness, recovery.records)
    }

    fn log(&mut self) -> &mut FileWal {
        self.wal.as_mut().unwrap()
    }

    fn crash_and_restart(&mut self) -> Vec<Vec<u8>> {
        // Dropping without sync discards the append buffer, as a crash does.
        drop(self.wal.take());
        let (wal, recovery) = wal::open(self.dir.path()).unwrap();
        assert_eq!(recovery.truncated_bytes, 0, "nothing was torn");
        self.wal = Some(wal);
        recovery.records
    }
}

struct MemHarness(MemWal);

impl Harness for MemHarness {
    type Log = MemWal;

    fn new() -> (Self, Vec<Vec<u8>>) {
        let wal = MemWal::new();
        let replay = wal.records().to_vec();
        (MemHarness(wal), replay)
    }

    fn log(&mut self) -> &mut MemWal {
        &mut self.0
    }

    fn crash_and_restart(&mut self) -> Vec<Vec<u8>> {
        self.0.crash();
        self.0.records().to_vec()
    }
}

fn rec(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn append_all(log: &mut impl LogStore, records: &[Vec<u8>]) {
    for record in records {
        log.append(record).unwrap();
    }
}

/// Runs each property against both implementations, as `file_wal::<property>` and
/// `mem_wal::<property>`.
macro_rules! conformance {
    ($($property:ident),* $(,)?) => {
        mod file_wal {
            $( #[test] fn $property() { super::$property::<super::FileHarness>(); } )*
        }
        mod mem_wal {
            $( #[test] fn $property() { super::$property::<super::MemHarness>(); } )*
        }
    };
}

conformance!(
    empty_log_replays_nothing,
    synced_records_come_back_in_order,
    crash_keeps_synced_records_and_may_drop_unsynced_ones,
    rewrite_replaces_content_and_later_appends_follow_it,
    rewrite_discards_unsynced_appends,
    rewrite_to_no_records_empties_the_log,
    many_records_round_trip,
    large_records_round_trip,
    oversized_record_is_refused_and_log_stays_usable,
    size_counts_appends_and_rewrite_resets_it,
);

fn empty_log_replays_nothing<H: Harness>() {
    let (mut h, replay) = H::new();
    assert!(replay.is_empty());
    h.log().sync().unwrap();
    assert!(h.crash_and_restart().is_empty());
}

fn synced_records_come_back_in_order<H: Harness>() {
    let (mut h, _) = H::new();
    let records: Vec<Vec<u8>> = (0..10).map(|i| rec(&format!("record {i}"))).collect();
    append_all(h.log(), &records[..4]);
    h.log().sync().unwrap();
    append_all(h.log(), &records[4..]);
    h.log().sync().unwrap();
    assert_eq!(h.crash_and_restart(), records);
    // A second restart replays the same, and a clean restart loses nothing.
    assert_eq!(h.crash_and_restart(), records);
}

fn crash_keeps_synced_records_and_may_drop_unsynced_ones<H: Harness>() {
    let (mut h, _) = H::new();
    let appended = [rec("a"), rec("b"), rec("c"), rec("d")];
    append_all(h.log(), &appended[..2]);
    h.log().sync().unwrap();
    append_all(h.log(), &appended[2..]);

    let replay = h.crash_and_restart();
    assert!(
        replay.starts_with(&appended[..2]),
        "lost synced records: {replay:?}"
    );
    assert!(
        appended.starts_with(&replay),
        "not a prefix of what was appended: {replay:?}"
    );

    h.log().append(&rec("e")).unwrap();
    h.log().sync().unwrap();
    let mut expected = replay;
    expected.push(rec("e"));
    assert_eq!(h.crash_and_restart(), expected);
}

fn rewrite_replaces_content_and_later_appends_follow_it<H: Harness>() {
    let (mut h, _) = H::new();
    append_all(h.log(), &[rec("a"), rec("b"), rec("c")]);
    h.log().sync().unwrap();

    h.log().rewrite(&[rec("x"), rec("y")]).unwrap();
    // Durable on return, without a sync.
    assert_eq!(h.crash_and_restart(), [rec("x"), rec("y")]);

    h.log().append(&rec("z")).unwrap();
    h.log().sync().unwrap();
    assert_eq!(h.crash_and_restart(), [rec("x"), rec("y"), rec("z")]);

    // A second rewrite works from the new generation.
    h.log().rewrite(&[rec("w")]).unwrap();
    h.log().append(&rec("v")).unwrap();
    h.log().sync().unwrap();
    assert_eq!(h.crash_and_restart(), [rec("w"), rec("v")]);
}

fn rewrite_discards_unsynced_appends<H: Harness>() {
    let (mut h, _) = H::new();
    h.log().append(&rec("a")).unwrap();
    h.log().sync().unwrap();
    h.log().append(&rec("b")).unwrap();
    h.log().rewrite(&[rec("x")]).unwrap();
    h.log().sync().unwrap();
    assert_eq!(h.crash_and_restart(), [rec("x")]);
}

fn rewrite_to_no_records_empties_the_log<H: Harness>() {
    let (mut h, _) = H::new();
    append_all(h.log(), &[rec("a"), rec("b")]);
    h.log().sync().unwrap();
    h.log().rewrite(&[]).unwrap();
    assert!(h.crash_and_restart().is_empty());
}

fn many_records_round_trip<H: Harness>() {
    let (mut h, _) = H::new();
    // Lengths from 0 to 299, so empty records are among them.
    let records: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| (0..i % 300).map(|j| (i ^ j) as u8).collect())
        .collect();
    for batch in records.chunks(97) {
        append_all(h.log(), batch);
        h.log().sync().unwrap();
    }
    assert_eq!(h.crash_and_restart(), records);
}

fn large_records_round_trip<H: Harness>() {
    let (mut h, _) = H::new();
    let large = |len: usize, seed: u8| -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    };
    let records = vec![large(1 << 20, 1), rec("small"), large(8 << 20, 2)];
    append_all(h.log(), &records);
    h.log().sync().unwrap();
    assert_eq!(h.crash_and_restart(), records);

    h.log().rewrite(&records[1..]).unwrap();
    assert_eq!(h.crash_and_restart(), &records[1..]);
}

fn oversized_record_is_refused_and_log_stays_usable<H: Harness>() {
    let (mut h, _) = H::new();
    h.log().append(&rec("a")).unwrap();
    h.log().sync().unwrap();

    let oversized = vec![0u8; MAX_RECORD_LEN + 1];
    let err = h.log().append(&oversized).unwrap_err();
    assert!(
        matches!(err, WalError::RecordTooLarge { len, max } if len == MAX_RECORD_LEN + 1 && max == MAX_RECORD_LEN),
        "{err:?}"
    );
    let err = h.log().rewrite(&[rec("x"), oversized]).unwrap_err();
    assert!(matches!(err, WalError::RecordTooLarge { .. }), "{err:?}");

    h.log().append(&rec("b")).unwrap();
    h.log().sync().unwrap();
    assert_eq!(h.crash_and_restart(), [rec("a"), rec("b")]);
}

fn size_counts_appends_and_rewrite_resets_it<H: Harness>() {
    let (mut h, _) = H::new();
    let empty = h.log().size();
    h.log().append(&rec("a")).unwrap();
    let after_append = h.log().size();
    assert!(after_append > empty);
    h.log().sync().unwrap();
    assert_eq!(
        h.log().size(),
        after_append,
        "size counts appends before the sync"
    );

    append_all(h.log(), &[rec("bb"), rec("ccc")]);
    h.log().sync().unwrap();
    h.log().rewrite(&[rec("x")]).unwrap();
    let (mut fresh, _) = H::new();
    fresh.log().append(&rec("x")).unwrap();
    fresh.log().sync().unwrap();
    assert_eq!(h.log().size(), fresh.log().size());
    assert_eq!(
        h.log().size(),
        after_append,
        "one one-byte record either way"
    );

    h.crash_and_restart();
    assert_eq!(h.log().size(), after_append);
}

#[test]
fn mem_wal_counts_size_as_file_wal_lays_it_out() {
    let (mut file, _) = FileHarness::new();
    let (mut mem, _) = MemHarness::new();
    assert_eq!(file.log().size(), mem.log().size());
    for len in [0, 1, 100, 5000] {
        let record = vec![7u8; len];
        file.log().append(&record).unwrap();
        mem.log().append(&record).unwrap();
        assert_eq!(file.log().size(), mem.log().size());
    }
    file.log().rewrite(&[rec("x"), rec("yz")]).unwrap();
    mem.log().rewrite(&[rec("x"), rec("yz")]).unwrap();
    assert_eq!(file.log().size(), mem.log().size());
}

#[test]
fn mem_wal_crash_drops_exactly_the_unsynced_records() {
    let mut wal = MemWal::new();
    wal.append(b"a").unwrap();
    wal.sync().unwrap();
    wal.append(b"b").unwrap();
    assert_eq!(wal.records(), [rec("a")]);
    wal.crash();
    wal.sync().unwrap();
    assert_eq!(wal.records(), [rec("a")]);
}

/// `FileWal` on disks that crashed mid-write, were damaged, or were left mid-rewrite. Offsets
/// follow the format documented on `FileWal`.
mod file_wal_recovery {
    use super::*;

    /// Magic and version.
    const HEADER_LEN: u64 = 12;
    /// Length and checksum.
    const FRAME_HEADER_LEN: u64 = 8;

    fn frame_len(record: &[u8]) -> u64 {
        FRAME_HEADER_LEN + record.len() as u64
    }

    /// A log in `dir` holding `records`, synced and closed; returns its segment file.
    fn write_log(dir: &Path, records: &[Vec<u8>]) -> PathBuf {
        let (mut wal, _) = wal::open(dir).unwrap();
        append_all(&mut wal, records);
        wal.sync().unwrap();
        wal.path().to_path_buf()
    }

    /// Every file in `dir`, by name.
    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn open_ok(dir: &Path) -> (FileWal, Recovery) {
        wal::open(dir).unwrap()
    }

    fn abc() -> Vec<Vec<u8>> {
        vec![rec("first record"), rec("second"), rec("third record!")]
    }

    #[test]
    fn truncated_last_record_is_cut_back_to_the_last_whole_record() {
        let records = abc();
        let last = frame_len(&records[2]);
        for cut in 1..last {
            let dir = TempDir::new().unwrap();
            let segment = write_log(dir.path(), &records);
            let full = fs::metadata(&segment).unwrap().len();
            fs::File::options()
                .write(true)
                .open(&segment)
                .unwrap()
                .set_len(full - cut)
                .unwrap();

            let (mut wal, recovery) = open_ok(dir.path());
            assert_eq!(recovery.records, &records[..2], "cut {cut}");
            assert_eq!(recovery.truncated_bytes, last - cut, "cut {cut}");

            // The tail is gone from disk, so new appends follow the last whole record.
            wal.append(b"after").unwrap();
            wal.sync().unwrap();
            drop(wal);
            let (_, recovery) = open_ok(dir.path());
            assert_eq!(recovery.records, [&records[..2], &[rec("after")]].concat());
            assert_eq!(recovery.truncated_bytes, 0);
        }
    }

    #[test]
    fn half_frame_of_garbage_after_the_last_record_is_cut_off() {
        let dir = TempDir::new().unwrap();
        let segment = write_log(dir.path(), &abc());
        // A frame header announcing 100 bytes, followed by only 10.
        let mut garbage = 100u32.to_le_bytes().to_vec();
        garbage.extend_from_slice(&[0xAB; 14]);
        let mut bytes = fs::read(&segment).unwrap();
        bytes.extend_from_slice(&garbage);
        fs::write(&segment, &bytes).unwrap();

        let (_, recovery) = open_ok(dir.path());
        assert_eq!(recovery.records, abc());
        assert_eq!(recovery.truncated_bytes, garbage.len() as u64);
    }

    #[test]
    fn zero_filled_tail_is_cut_off_not_read_as_empty_records() {
        let dir = TempDir::new().unwrap();
        let segment = write_log(dir.path(), &abc());
        let mut bytes = fs::read(&segment).unwrap();
        bytes.extend_from_slice(&[0; 4096]);
        fs::write(&segment, &bytes).unwrap();

        let (_, recovery) = open_ok(dir.path());
        assert_eq!(recovery.records, abc());
        assert_eq!(recovery.truncated_bytes, 4096);
    }

    #[test]
    fn bad_checksum_on_the_last_record_is_a_torn_tail() {
        let records = abc();
        let dir = TempDir::new().unwrap();
        let segment = write_log(dir.path(), &records);
        let mut bytes = fs::read(&segment).unwrap();
        *bytes.last_mut().unwrap() ^= 0xFF;
        fs::write(&segment, &bytes).unwrap();

        let (_, recovery) = open_ok(dir.path());
        assert_eq!(recovery.records, &records[..2]);
        assert_eq!(recovery.truncated_bytes, frame_len(&records[2]));
    }

    #[test]
    fn flipped_byte_in_a_middle_record_is_reported_as_corruption_at_its_offset() {
        let records = vec![
            rec("one"),
            rec("the damaged record"),
            rec("three"),
            rec("four"),
        ];
        let dir = TempDir::new().unwrap();
        let segment = write_log(dir.path(), &records);
        let original = fs::read(&segment).unwrap();
        let damaged_at = HEADER_LEN + frame_len(&records[0]);

        // Every byte of the frame: its length, its checksum and its payload.
        for i in damaged_at..damaged_at + frame_len(&records[1]) {
            let mut bytes = original.clone();
            bytes[i as usize] ^= 0xFF;
            fs::write(&segment, &bytes).unwrap();

            let err = wal::open(dir.path()).unwrap_err();
            match &err {
                WalError::Corrupt { path, offset } => {
                    assert_eq!(path, &segment, "byte {i}");
                    assert_eq!(*offset, damaged_at, "byte {i}");
                }
                other => panic!("byte {i}: expected Corrupt, got {other:?}"),
            }
            assert!(err.to_string().contains(&segment.display().to_string()));
            assert_eq!(
                fs::read(&segment).unwrap(),
                bytes,
                "open must not repair corruption"
            );
        }
    }

    #[test]
    fn crash_after_rewrite_before_old_generation_is_deleted_opens_the_new_generation() {
        let dir = TempDir::new().unwrap();
        let (mut wal, _) = open_ok(dir.path());
        wal.append(b"old").unwrap();
        wal.sync().unwrap();
        let old_segment = wal.path().to_path_buf();
        let old_bytes = fs::read(&old_segment).unwrap();
        wal.rewrite(&[rec("new")]).unwrap();
        let new_segment = wal.path().to_path_buf();
        drop(wal);
        // Put back the old generation, as if the crash came before its deletion.
        fs::write(&old_segment, old_bytes).unwrap();

        let (_, recovery) = open_ok(dir.path());
        assert_eq!(recovery.records, [rec("new")]);
        let new_name = new_segment.file_name().unwrap().to_str().unwrap();
        assert_eq!(file_names(dir.path()), [new_name], "old generation removed");
    }

    #[test]
    fn crash_during_rewrite_before_rename_opens_the_old_generation() {
        // What the rewrite had written when it crashed: all of the new generation, or part.
        let other = TempDir::new().unwrap();
        let complete = {
            let (mut wal, _) = open_ok(other.path());
            wal.rewrite(&[rec("new")]).unwrap();
            fs::read(wal.path()).unwrap()
        };
        for temp_bytes in [&complete[..], &complete[..complete.len() / 2], &[][..]] {
            let dir = TempDir::new().unwrap();
            let segment = write_log(dir.path(), &[rec("old")]);
            let segment_name = segment.file_name().unwrap().to_str().unwrap().to_owned();
            assert_eq!(segment_name, format!("wal-{:020}.log", 1));
            let temp = dir.path().join(format!("wal-{:020}.log.tmp", 2));
            fs::write(&temp, temp_bytes).unwrap();

            let (_, recovery) = open_ok(dir.path());
            assert_eq!(recovery.records, [rec("old")]);
            assert_eq!(
                file_names(dir.path()),
                [segment_name],
                "temporary file removed"
            );
        }
    }

    #[test]
    fn crash_during_the_first_open_leaves_an_empty_log() {
        let dir = TempDir::new().unwrap();
        let temp = dir.path().join(format!("wal-{:020}.log.tmp", 1));
        fs::write(&temp, b"KVLAB").unwrap();

        let (wal, recovery) = open_ok(dir.path());
        assert!(recovery.records.is_empty());
        let name = wal.path().file_name().unwrap().to_str().unwrap();
        assert_eq!(file_names(dir.path()), [name]);
    }

    #[test]
    fn files_the_log_did_not_write_are_left_alone() {
        let dir = TempDir::new().unwrap();
        fs::write(dir.path().join("notes.txt"), b"keep me").unwrap();
        fs::write(dir.path().join("wal-backup.log"), b"keep me too").unwrap();
        let (mut wal, _) = open_ok(dir.path());
        wal.rewrite(&[rec("x")]).unwrap();
        drop(wal);
        open_ok(dir.path());
        let names = file_names(dir.path());
        assert!(names.contains(&"notes.txt".to_owned()), "{names:?}");
        assert!(names.contains(&"wal-backup.log".to_owned()), "{names:?}");
    }

    #[test]
    fn directory_that_cannot_be_created_gives_an_error_naming_the_path() {
        // A regular file in the way stops even root, unlike permission bits.
        let dir = TempDir::new().unwrap();
        let blocker = dir.path().join("blocker");
        fs::write(&blocker, b"").unwrap();
        let wal_dir = blocker.join("wal");

        let err = wal::open(&wal_dir).unwrap_err();
        assert!(
            matches!(&err, WalError::Io { path, .. } if path == &wal_dir),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&wal_dir.display().to_string()),
            "{message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }

    #[test]
    fn file_without_the_magic_is_refused() {
        let dir = TempDir::new().unwrap();
        let segment = dir.path().join(format!("wal-{:020}.log", 1));
        fs::write(&segment, b"this is not a write-ahead log").unwrap();

        let err = wal::open(dir.path()).unwrap_err();
        assert!(
            matches!(&err, WalError::BadHeader { path } if path == &segment),
            "{err:?}"
        );
    }

    #[test]
    fn file_from_a_newer_format_version_is_refused() {
        let dir = TempDir::new().unwrap();
        let segment = write_log(dir.path(), &abc());
        let mut bytes = fs::read(&segment).unwrap();
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        fs::write(&segment, &bytes).unwrap();

        let err = wal::open(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                WalError::UnsupportedVersion {
                    version: 2,
                    supported: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn size_is_the_segment_length_once_synced() {
        let dir = TempDir::new().unwrap();
        let (mut wal, _) = open_ok(dir.path());
        assert_eq!(wal.size(), HEADER_LEN);
        append_all(&mut wal, &abc());
        wal.sync().unwrap();
        assert_eq!(wal.size(), fs::metadata(wal.path()).unwrap().len());
        wal.rewrite(&[rec("x")]).unwrap();
        assert_eq!(wal.size(), fs::metadata(wal.path()).unwrap().len());
        assert_eq!(wal.size(), HEADER_LEN + frame_len(b"x"));
    }
}
