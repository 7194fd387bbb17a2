//! `bench run --system etcd` against real etcd members on 127.0.0.1: linearizable reads come out
//! valid under kills, pauses and partitions; serializable reads are caught under a partition;
//! no etcd outlives the bench. Skipped, saying so, where etcd is not installed (`.ci/run`
//! installs Debian's etcd-server).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{processes, schedule, text};

/// etcd processes whose command line mentions `dir`.
fn etcds_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    processes(|cmd| cmd.contains("etcd") && cmd.contains(&needle))
}

fn etcd() -> bool {
    let found = bench::system::etcd::find_on_path("etcd").is_some();
    if !found {
        eprintln!("skipped: no etcd on PATH (Debian: apt-get install etcd-server)");
    }
    found
}

fn bench(out: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["run", "--system", "etcd", "--out"])
        .arg(out)
        .args(args)
        .output()
        .expect("run bench")
}

#[test]
fn linearizable_reads_are_valid_under_kills_pauses_and_partitions() {
    if !etcd() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let nemesis = schedule(
        out.path(),
        "faults.toml",
        "interval = \"2s\"\nduration = \"2s\"\nfaults = [\"kill\", \"pause\", \"partition\", \"partition-one\"]\n",
    );
    let o = bench(
        out.path(),
        &["--time-limit", "10s", "--nemesis", &nemesis, "--seed", "2"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        etcds_under(out.path()).is_empty(),
        "{:?}",
        etcds_under(out.path())
    );
}

#[test]
fn serializable_reads_are_caught_serving_stale_values_under_a_partition() {
    if !etcd() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    // n3 is cut off for most of the run; its clients read its copy, which stops moving.
    let nemesis = schedule(
        out.path(),
        "isolate.toml",
        "[[step]]\nat = \"2s\"\nfault = \"partition-one\"\nduration = \"5s\"\nnodes = [\"n3\"]\n",
    );
    let o = bench(
        out.path(),
        &[
            "--etcd-serializable-reads",
            "--time-limit",
            "8s",
            "--nemesis",
            &nemesis,
            "--seed",
            "4",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("INVALID"), "{t}");
    assert!(t.contains("partition: isolate n3"), "{t}");
}

#[test]
fn no_etcd_outlives_a_bench_killed_with_sigkill() {
    if !etcd() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "run",
            "--system",
            "etcd",
            "--nemesis",
            "none",
            "--time-limit",
            "60s",
        ])
        .arg("--out")
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the members run (the bench is then past starting them).
    let deadline = Instant::now() + Duration::from_secs(60);
    while etcds_under(out.path()).len() < 3 {
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !etcds_under(out.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            etcds_under(out.path())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_missing_etcd_binary_is_named_in_one_line() {
    let out = tempfile::tempdir().unwrap();
    let missing = PathBuf::from("/nonexistent/etcd");
    let o = bench(
        out.path(),
        &[
            "--etcd-bin",
            missing.to_str().unwrap(),
            "--time-limit",
            "2s",
        ],
    );
    assert_eq!(o.status.code(), Some(254), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--etcd-bin /nonexistent/etcd: no such file"),
        "{err}"
    );
}

#[test]
fn a_lock_profile_needs_a_system_with_locks() {
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["run", "--profile", "lock", "--time-limit", "2s", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(254), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("a lock workload needs a system with locks (--system etcd)"),
        "{err}"
    );
}

#[test]
fn locks_without_faults_are_held_by_one_client_at_a_time() {
    if !etcd() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let o = bench(
        out.path(),
        &[
            "--profile",
            "lock",
            "--nemesis",
            "none",
            "--time-limit",
            "4s",
            "--seed",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = std::fs::canonicalize(out.path().join("latest")).unwrap();
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let acquired = history
        .lines()
        .filter(|l| l.contains("\"type\":\"ok\"") && l.contains("\"f\":\"acquire\""))
        .count();
    let released = history
        .lines()
        .filter(|l| l.contains("\"type\":\"ok\"") && l.contains("\"f\":\"release\""))
        .count();
    assert!(acquired >= 5, "{acquired} acquires");
    assert!(
        released + 5 >= acquired,
        "{acquired} acquired, {released} released"
    );
}
