//! `bench run --system maelstrom` against the Python nodes in `examples/maelstrom/`: a correct
//! one comes out valid under partitions, pauses and message trouble; the two buggy ones are
//! caught, explained, with their messages recorded. Skipped, saying so, without `python3`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{latest, processes, schedule, text};

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
    // Recorded absolute, so that it replays from any directory.
    assert!(
        config.contains(&format!("bin = \"{}", node.display())),
        "{config}"
    );
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
        (
            vec![
                "--system",
                "maelstrom",
                "--bin",
                script.to_str().unwrap(),
                "--kvnode",
                "/x",
            ],
            "--kvnode is for --system kvnode",
        ),
        (
            vec![
                "--system",
                "maelstrom",
                "--bin",
                script.to_str().unwrap(),
                "--snapshot-every",
                "7",
            ],
            "--snapshot-every is for --system kvnode",
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

fn executable(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_node_that_crashes_mid_run_is_named_and_the_history_still_checked() {
    if !python() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    // A one-node store in memory that exits after 200 requests; what it started in the
    // background must not outlive the run.
    let marker = format!("{}", 3_000_000 + std::process::id());
    let store = executable(
        out.path(),
        "store.py",
        "#!/usr/bin/env python3\nimport json, sys\nkv, n = {}, 0\nfor line in sys.stdin:\n    m = json.loads(line)\n    b = m['body']\n    t = b['type']\n    n += 1\n    if n > 200:\n        sys.exit(3)\n    r = {'in_reply_to': b['msg_id']}\n    if t == 'init':\n        r['type'] = 'init_ok'\n    elif t == 'write':\n        kv[b['key']] = b['value']\n        r['type'] = 'write_ok'\n    elif t == 'read' and b['key'] in kv:\n        r.update(type='read_ok', value=kv[b['key']])\n    elif t == 'cas' and kv.get(b['key']) == b['from']:\n        kv[b['key']] = b['to']\n        r['type'] = 'cas_ok'\n    else:\n        r.update(type='error', code=20 if b['key'] not in kv else 22)\n    print(json.dumps({'src': m['dest'], 'dest': m['src'], 'body': r}), flush=True)\n",
    );
    let node = executable(
        out.path(),
        "crashes.sh",
        &format!("#!/bin/sh\nsleep {marker} &\n{}\n", store.display()),
    );
    let o = bench(
        out.path(),
        &maelstrom(
            node.to_str().unwrap(),
            &[
                "--nodes",
                "1",
                "--nemesis",
                "none",
                "--time-limit",
                "3s",
                "--seed",
                "1",
            ],
        ),
    );
    let t = text(&o);
    // Checked: its memory was lost, so reads after the restart miss acknowledged writes.
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("crash: node n1 exited by itself"), "{t}");
    assert!(latest(out.path()).join("results.json").exists());
    assert!(
        processes(|cmd| cmd.contains(&format!("sleep {marker}"))).is_empty(),
        "left behind"
    );
}

#[test]
fn a_started_node_reads_init_first_and_nothing_else_until_it_answers() {
    use bench::system::maelstrom::router::Network;
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let net =
            Network::new(vec!["n1".into()], 1, 8, &dir.path().join("messages.jsonl")).unwrap();
        net.begin(std::time::Instant::now());
        // A node that writes down what it reads and never answers.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("cat > {}", seen.display()))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        let request = r#"{"src":"c1","dest":"n1","body":{"type":"read","msg_id":1,"key":0}}"#;
        net.send_from_client(request);
        let init = r#"{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1}}"#;
        net.attach(0, stdin, stdout, init).unwrap();
        net.send_from_client(request);
        net.detach(0);
        let stats = net.finish().unwrap();
        assert_eq!(stats.dropped, 2, "{stats:?}");
        drop(net);
        child.wait().unwrap();
    });
    let lines = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(lines.lines().count(), 1, "{lines}");
    assert!(lines.contains("\"init\""), "{lines}");
    let log = std::fs::read_to_string(dir.path().join("messages.jsonl")).unwrap();
    assert!(log.contains("\"why\":\"down\""), "{log}");
    assert!(log.contains("\"why\":\"starting\""), "{log}");
}

#[test]
fn an_interrupt_during_the_final_reads_ends_the_run_promptly() {
    if !python() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    // Answers init and 100 requests, then nothing: every final read waits for its timeout.
    // It says on stderr (its log) when the first final read (process 1,000,000) reaches it.
    let node = executable(
        out.path(),
        "mute.py",
        "#!/usr/bin/env python3\nimport json, sys\nn = 0\nfor line in sys.stdin:\n    m = json.loads(line)\n    b = m['body']\n    n += 1\n    if m['src'] == 'c1000001':\n        print('FINAL READS', file=sys.stderr, flush=True)\n    if b['type'] == 'init' or n < 100:\n        t = 'init_ok' if b['type'] == 'init' else 'error'\n        r = {'type': t, 'in_reply_to': b['msg_id'], 'code': 20}\n        print(json.dumps({'src': m['dest'], 'dest': m['src'], 'body': r}), flush=True)\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["run", "--system", "maelstrom", "--bin"])
        .arg(&node)
        .args(["--nodes", "1", "--nemesis", "none", "--time-limit", "1s"])
        .args(["--profile", "ycsb-a", "--out"])
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let log = std::fs::read_dir(out.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir() && e.file_name() != "latest")
            .flat_map(|d| std::fs::read_dir(d.path()).unwrap().filter_map(|e| e.ok()))
            .map(|run| run.path().join("n1.log"))
            .find(|l| l.exists());
        if log.is_some_and(|l| std::fs::read_to_string(l).unwrap().contains("FINAL READS")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the final reads never began"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let interrupted = std::time::Instant::now();
    let status = child.wait().unwrap();
    // One final read in flight (5 s at most) finishes; the other 999 are not attempted.
    assert!(
        interrupted.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        interrupted.elapsed()
    );
    assert_eq!(status.code(), Some(2));
}
