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
