//! Conformance over histories produced by other tools (`shared/data/porcupine`, beside the
//! checkout in development and CI, absent from a user's clone). Ignored by default; `.ci/run`
//! runs it with `--ignored` when the folder is there. `KVLAB_DATA` overrides the location.
//!
//! Expected verdicts are those stated by the data's README.

use std::path::PathBuf;
use std::process::Command;

/// etcd logs that are linearizable, per the data README; every other one (except the empty
/// 095, which has no operations and so is trivially valid) is not.
const ETCD_LINEARIZABLE: [u32; 23] = [
    2, 5, 7, 18, 25, 31, 38, 45, 48, 49, 51, 53, 56, 67, 75, 76, 80, 87, 92, 98, 100, 101, 102,
];

fn data_dir() -> PathBuf {
    std::env::var_os("KVLAB_DATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/porcupine"),
        PathBuf::from,
    )
}

fn exit_code(format: &str, file: &std::path::Path) -> i32 {
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["check", "--format", format])
        .arg(file)
        .output()
        .expect("run bench");
    out.status.code().expect("bench exits normally")
}

#[test]
#[ignore = "needs shared/data beside the checkout; .ci/run runs it when present"]
fn porcupine_samples_get_the_verdicts_their_readme_states() {
    let dir = data_dir();
    assert!(dir.is_dir(), "{} not found (set KVLAB_DATA)", dir.display());
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (name, want) in [
        ("c01-ok", 0),
        ("c01-bad", 1),
        ("c10-ok", 0),
        ("c10-bad", 1),
        ("c50-ok", 0),
        ("c50-bad", 1),
    ] {
        let file = dir.join(format!("kv/{name}.txt"));
        let got = exit_code("porcupine-kv", &file);
        checked += 1;
        if got != want {
            wrong.push(format!("{}: exit {got}, expected {want}", file.display()));
        }
    }
    for n in 0..=102u32 {
        let file = dir.join(format!("jepsen/etcd_{n:03}.log"));
        // 095 is empty (its cluster never started): no operations, so nothing to decide.
        let want = if n == 95 {
            2
        } else if ETCD_LINEARIZABLE.contains(&n) {
            0
        } else {
            1
        };
        let got = exit_code("jepsen-log", &file);
        checked += 1;
        if got != want {
            wrong.push(format!("{}: exit {got}, expected {want}", file.display()));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The part of `history` made of the operations `keep` (indices into its operations).
fn restricted(history: &checker::History, keep: &[usize]) -> checker::History {
    checker::History {
        ops: keep.iter().map(|&i| history.ops[i].clone()).collect(),
        ..history.clone()
    }
}

/// The values an operation puts in its key, as text: a put's or CAS's value, or an appended
/// string (`None` for what sets nothing).
fn put(op: &checker::Operation) -> Option<String> {
    use checker::{Call, Outcome};
    if matches!(op.outcome, Outcome::Fail | Outcome::PreconditionFailed) {
        return None;
    }
    match &op.call {
        Call::Write(v) | Call::Append(v) | Call::Cas { new: v, .. } => Some(text(v)),
        _ => None,
    }
}

fn text(v: &checker::Value) -> String {
    match v {
        checker::Value::Str(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether `part` (a sub-history of `whole`) observes something that `whole` put in the key but
/// `part` left out: a read of a value, or a CAS expecting it (for Porcupine's appends, a piece
/// `x .. y` of the value), that no operation of `part` puts, although one of `whole` does; or a
/// CAS that found another value than it expected with every writer of another value left out. Such a part is refuted merely
/// because its writers were cut, which the core's definition excludes.
fn orphaned(whole: &checker::History, part: &checker::History) -> bool {
    use checker::{Call, Outcome, Value};
    let puts =
        |h: &checker::History, text: &str| h.ops.iter().any(|o| put(o).as_deref() == Some(text));
    part.ops.iter().any(|op| match (&op.call, &op.outcome) {
        (Call::Read, Outcome::Ok(Some(v)))
        | (
            Call::Cas {
                expected: Some(v), ..
            },
            Outcome::Ok(_),
        ) if Some(v) != whole.initial.as_ref() => {
            let text = text(v);
            let pieces: Vec<&str> = match v {
                Value::Str(s) if s.contains('y') => s.split_inclusive('y').collect(),
                _ => vec![text.as_str()],
            };
            pieces.iter().any(|p| puts(whole, p) && !puts(part, p))
        }
        (Call::Cas { expected, .. }, Outcome::PreconditionFailed) => {
            let other = |o: &checker::Operation| {
                !std::ptr::eq(o, op)
                    && match (&o.call, &o.outcome) {
                        (_, Outcome::Fail | Outcome::PreconditionFailed) => false,
                        (Call::Delete, _) => expected.is_some(),
                        (Call::Write(v) | Call::Cas { new: v, .. }, _) => {
                            Some(v) != expected.as_ref()
                        }
                        _ => false,
                    }
            };
            whole.ops.iter().any(&other) && !part.ops.iter().any(&other)
        }
        _ => false,
    })
}

/// Every core the checker gives for the invalid Porcupine samples is itself not linearizable,
/// and leaving out any one of its operations makes it linearizable or takes away a write that
/// the rest read. Judged by the checker's search on each part (the search itself is checked
/// against brute force by `checker/tests/differential.rs`).
#[test]
#[ignore = "needs shared/data beside the checkout; .ci/run runs it when present"]
fn cores_of_the_invalid_porcupine_samples_cannot_be_ordered_and_none_of_their_operations_can_go() {
    use checker::{CheckOptions, Format, ReadOptions, Verdict};
    let dir = data_dir();
    assert!(dir.is_dir(), "{} not found (set KVLAB_DATA)", dir.display());
    let no_shrinking = CheckOptions {
        shrink_time: std::time::Duration::ZERO,
        ..CheckOptions::default()
    };
    let verdict = |h: &checker::History| checker::check(h, &no_shrinking).verdict;
    let mut files: Vec<(PathBuf, Format)> = ["c01-bad", "c10-bad", "c50-bad"]
        .iter()
        .map(|n| (dir.join(format!("kv/{n}.txt")), Format::PorcupineKv))
        .collect();
    files.extend(
        (0..=102u32)
            .filter(|n| *n != 95 && !ETCD_LINEARIZABLE.contains(n))
            .map(|n| {
                (
                    dir.join(format!("jepsen/etcd_{n:03}.log")),
                    Format::JepsenLog,
                )
            }),
    );
    let mut cores = 0;
    let mut sizes = Vec::new();
    for (file, format) in files {
        let options = ReadOptions {
            format: Some(format),
            ..ReadOptions::default()
        };
        let (history, _) = checker::read_file(&file, &options).expect("a readable sample");
        let result = checker::check(&history, &CheckOptions::default());
        for key in result.keys.iter().filter(|k| k.verdict == Verdict::Invalid) {
            let core = key.anomaly.as_ref().and_then(|a| a.core.as_ref());
            let core =
                core.unwrap_or_else(|| panic!("{}: key {} has no core", file.display(), key.key));
            assert!(
                core.minimal,
                "{}: key {}: not minimal",
                file.display(),
                key.key
            );
            let ops: Vec<usize> = core.ops.iter().map(|o| o.index).collect();
            let part = restricted(&history, &ops);
            assert_eq!(
                verdict(&part),
                Verdict::Invalid,
                "{}: key {}: the core can be ordered",
                file.display(),
                key.key
            );
            assert!(
                !orphaned(&history, &part),
                "{}: key {}: the core lacks a writer",
                file.display(),
                key.key
            );
            for drop in 0..ops.len() {
                let mut fewer = ops.clone();
                fewer.remove(drop);
                let smaller = restricted(&history, &fewer);
                assert!(
                    verdict(&smaller) == Verdict::Valid || orphaned(&history, &smaller),
                    "{}: key {}: the core without operation {} still cannot be ordered",
                    file.display(),
                    key.key,
                    ops[drop]
                );
            }
            cores += 1;
            sizes.push(ops.len());
        }
    }
    sizes.sort_unstable();
    assert!(cores > 79, "only {cores} cores");
    println!(
        "{cores} cores, sizes: median {}, largest {}",
        sizes[sizes.len() / 2],
        sizes[sizes.len() - 1]
    );
}
