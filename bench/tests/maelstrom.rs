//! `bench run --system maelstrom` against the Python nodes in `examples/maelstrom/`: a correct
//! one comes out valid under partitions, pauses and message trouble; the two buggy ones are
//! caught, explained, with their messages recorded. Skipped, saying so, without `python3`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn python() -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: python3 is not installed, and the example Maelstrom nodes need it");
    }
    found
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/maelstrom")
        .join(name)
}

fn bench(out: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("run")
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("run bench")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn latest(out: &Path) -> PathBuf {
    std::fs::canonicalize(out.join("latest")).expect("runs/latest points at the run")
}

fn schedule(dir: &Path, name: &str, toml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_owned()
}

fn results(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap()
}

fn maelstrom<'a>(node: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--system", "maelstrom", "--bin", node];
    args.extend_from_slice(rest);
    args
}

#[test]
fn a_linearizable_node_is_valid_under_partitions_pauses_and_delays() {
    if !python() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let nemesis = schedule(
        out.path(),
        "faults.toml",
        "interval = \"1s\"\nduration = \"1s\"\nfaults = [\"partition\", \"partition-one\", \"pause\", \"delay\", \"reorder\"]\n",
    );
    let node = example("lin_kv_single.py");
    let o = bench(
        out.path(),
        &maelstrom(
            node.to_str().unwrap(),
            &[
                "--nodes",
                "3",
                "--time-limit",
                "6s",
                "--nemesis",
                &nemesis,
                "--seed",
                "5",
            ],
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = latest(out.path());
    let r = results(&run);
    assert!(r["ok"].as_u64().unwrap() > 50, "{r}");
    let m = &r["messages"];
    assert!(m["between_nodes"].as_u64().unwrap() > 0, "{m}");
    assert!(m["by_node"]["n1"]["received"].as_u64().unwrap() > 0, "{m}");
    assert!(
        r["system"].as_str().unwrap().starts_with("maelstrom: "),
        "{r}"
    );
    // Every message recorded, one JSON object per line, in the history's time base.
    let lines = std::fs::read_to_string(run.join("messages.jsonl")).unwrap();
    let mut n = 0;
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for field in ["id", "t_ns", "src", "dest", "type", "fate"] {
            assert!(v.get(field).is_some(), "{field} missing in {line}");
        }
        n += 1;
    }
    assert_eq!(n, m["total"].as_u64().unwrap());
    // The config replays the system.
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("kind = \"maelstrom\""), "{config}");
    assert!(config.contains("lin_kv_single.py"), "{config}");
    // And replaying it runs the same node again, with the same seed.
    let again = tempfile::tempdir().unwrap();
    let config_path = run.join("config.toml");
    let o = bench(
        again.path(),
        &[
            "--config",
            config_path.to_str().unwrap(),
            "--time-limit",
            "2s",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let replayed = results(&latest(again.path()));
    assert_eq!(replayed["system"], r["system"]);
    assert_eq!(replayed["seed"], r["seed"]);
}

#[test]
fn stale_local_reads_under_a_partition_are_caught_and_explained() {
    if !python() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    // n3 is cut off for most of the run: writes at n1 and n2 never reach it, and its clients
    // read its copy.
    let nemesis = schedule(
        out.path(),
        "isolate.toml",
        "[[step]]\nat = \"500ms\"\nfault = \"partition-one\"\nduration = \"4s\"\nnodes = [\"n3\"]\n",
    );
    let node = example("replicate_read_local.py");
    let o = bench(
        out.path(),
        &maelstrom(
            node.to_str().unwrap(),
            &[
                "--nodes",
                "3",
                "--time-limit",
                "5s",
                "--nemesis",
                &nemesis,
                "--seed",
                "7",
            ],
        ),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("INVALID"), "{t}");
    // Explained: the impossible operation, and the fault it happened under.
    assert!(t.contains("cannot be linearized"), "{t}");
    assert!(t.contains("partition: isolate n3"), "{t}");
    let run = latest(out.path());
    let dropped = std::fs::read_to_string(run.join("messages.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"why\":\"partition\""))
        .count();
    assert!(dropped > 0, "the partition dropped no message");
}

#[test]
fn a_write_acknowledged_before_replication_is_caught_under_message_loss() {
    if !python() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let nemesis = schedule(
        out.path(),
        "loss.toml",
        "[[step]]\nat = \"500ms\"\nfault = \"loss\"\nduration = \"4s\"\n",
    );
    let node = example("ack_before_replicate.py");
    let o = bench(
        out.path(),
        &maelstrom(
            node.to_str().unwrap(),
            &[
                "--nodes",
                "3",
                "--time-limit",
                "5s",
                "--nemesis",
                &nemesis,
                "--seed",
                "3",
            ],
        ),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn bad_maelstrom_invocations_are_refused_in_one_line() {
    let out = tempfile::tempdir().unwrap();
    let missing = out.path().join("nope.py");
    let script = out.path().join("not-executable.py");
    std::fs::write(&script, "print('hi')\n").unwrap();
    for (args, says) in [
        (
            vec!["--system", "maelstrom"],
            "--system maelstrom needs --bin PATH",
        ),
        (
            vec!["--system", "maelstrom", "--bin", missing.to_str().unwrap()],
            "No such file",
        ),
        (
            vec!["--system", "maelstrom", "--bin", script.to_str().unwrap()],
            "not executable",
        ),
        (vec!["--system", "etcdd"], "--system etcdd: unknown"),
        (
            vec!["--nemesis", "delay"],
            "only systems whose messages pass through the bench",
        ),
        (
            vec!["--bin", "x"],
            "--bin and --bin-arg are for --system maelstrom",
        ),
    ] {
        let o = bench(out.path(), &args);
        assert_eq!(o.status.code(), Some(254), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn a_node_that_dies_at_start_is_named_with_its_log() {
    let out = tempfile::tempdir().unwrap();
    let script = out.path().join("dies.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'error: cannot start' >&2\nexit 3\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = bench(
        out.path(),
        &maelstrom(
            script.to_str().unwrap(),
            &["--nodes", "2", "--time-limit", "2s"],
        ),
    );
    assert_eq!(o.status.code(), Some(254), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("exited"), "{err}");
    assert!(err.contains("error: cannot start"), "{err}");
}
