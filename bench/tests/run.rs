//! `bench run` against real kvnode processes on 127.0.0.1, each test in a fresh directory:
//! verdicts, the run directory, deliberate bugs caught, and no process left behind.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{latest, processes, text};

/// Processes whose command line mentions `dir` (the nodes of a run under it).
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    processes(|cmd| cmd.contains(&needle))
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

#[test]
fn a_short_run_is_valid_and_leaves_a_complete_run_directory() {
    let out = tempfile::tempdir().unwrap();
    let schedule = out.path().join("quick.toml");
    std::fs::write(
        &schedule,
        "interval = \"1s\"\nduration = \"1s\"\nfaults = [\"kill\", \"pause\", \"partition\"]\n",
    )
    .unwrap();
    let nemesis = schedule.to_str().unwrap();
    let o = bench(
        out.path(),
        &["--time-limit", "6s", "--nemesis", nemesis, "--seed", "11"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("VALID"), "{}", text(&o));
    let run = latest(out.path());
    // Named after the schedule file's stem, not nested under its absolute path.
    assert_eq!(
        run.parent(),
        Some(out.path().join("register-quick").as_path())
    );
    for f in [
        "config.toml",
        "cluster.toml",
        "history.jsonl",
        "results.json",
        "n1.log",
        "n2.log",
        "n3.log",
        "report.html",
        "results.xml",
        "latency.png",
        "throughput.png",
        "quantiles.png",
    ] {
        assert!(run.join(f).is_file(), "{f} missing in {}", run.display());
    }
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(run.join("config.toml")).unwrap()).unwrap();
    assert_eq!(results["verdict"], "valid");
    assert_eq!(results["seed"], 11);
    assert!(results["ok"].as_u64().unwrap() > 100, "{results}");
    // Both latency figures, and CAS misses counted apart from failures.
    for figure in ["latency", "service_time"] {
        assert!(
            results[figure]["read"]["p50_ms"].as_f64().is_some(),
            "{figure}: {results}"
        );
    }
    let history = std::fs::read_to_string(run.join("history.jsonl")).unwrap();
    let misses = history
        .lines()
        .filter(|l| l.contains(r#""type":"fail""#) && l.contains(r#""error":"precondition""#))
        .count() as u64;
    assert!(misses > 0, "the register profile's CAS never missed");
    assert_eq!(results["cas_miss"].as_u64(), Some(misses), "{results}");
    let fails = history
        .lines()
        .filter(|l| l.contains(r#""type":"fail""#))
        .count() as u64;
    assert_eq!(results["fail"].as_u64(), Some(fails - misses), "{results}");
    assert_eq!(results["interrupted"], false);
    // The compaction thresholds the nodes ran with, and what they did with them.
    let compaction = &results["compaction"];
    assert_eq!(
        compaction["snapshot_every"].as_u64(),
        config["compaction"]["snapshot_every"]
            .as_integer()
            .map(|n| n as u64),
        "{results}"
    );
    for count in ["snapshots_taken", "snapshots_installed", "wal_checkpoints"] {
        assert!(compaction[count].as_u64().is_some(), "{results}");
    }
    // Every fault start has its end, and the nemesis events are in the history.
    assert!(
        history.contains(r#""process":"nemesis""#),
        "no nemesis events"
    );
    assert!(
        !results["faults"].as_array().unwrap().is_empty(),
        "{results}"
    );
    assert!(
        processes_under(out.path()).is_empty(),
        "{:?}",
        processes_under(out.path())
    );
}

#[test]
fn stale_local_reads_are_caught_and_explained() {
    let out = tempfile::tempdir().unwrap();
    let o = bench(
        out.path(),
        &[
            "--time-limit",
            "6s",
            "--nemesis",
            "partition",
            "--seed",
            "12",
            "--node-arg=--unsafe-read-local",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("is not linearizable"), "{}", text(&o));
    let run = latest(out.path());
    let results = std::fs::read_to_string(run.join("results.json")).unwrap();
    assert!(results.contains(r#""verdict": "invalid""#), "{results}");
    // The report leads with the anomaly; the JUnit file fails; the index lists the run.
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("INVALID: not linearizable"));
    assert!(html.contains("class=\"culprit\""));
    assert!(run.join("anomaly.png").is_file());
    let junit = std::fs::read_to_string(run.join("results.xml")).unwrap();
    assert!(junit.contains(r#"failures="1""#), "{junit}");
    let index = std::fs::read_to_string(out.path().join("index.html")).unwrap();
    assert!(index.contains("register-partition"), "{index}");

    // `bench report` renders it again from the run directory alone.
    std::fs::remove_file(run.join("report.html")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("report")
        .arg(out.path().join("latest"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(run.join("report.html").is_file());
    let o = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["report", "/no/such/run"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(254), "{}", text(&o));
    assert!(text(&o).contains("/no/such/run"), "{}", text(&o));
}

#[test]
fn zab_runs_under_faults_and_its_protocol_is_recorded_and_replayed() {
    let out = tempfile::tempdir().unwrap();
    let schedule = out.path().join("quick.toml");
    std::fs::write(
        &schedule,
        "interval = \"1s\"\nduration = \"1s\"\nfaults = [\"kill\", \"partition-leader\"]\n\
         target = \"leader\"\n",
    )
    .unwrap();
    let nemesis = schedule.to_str().unwrap();
    let o = bench(
        out.path(),
        &[
            "--protocol",
            "zab",
            "--time-limit",
            "5s",
            "--nemesis",
            nemesis,
            "--seed",
            "17",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("kvnode (zab)"), "{}", text(&o));
    let run = latest(out.path());
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(run.join("config.toml")).unwrap()).unwrap();
    assert_eq!(config["system"]["kind"].as_str(), Some("kvnode"));
    assert_eq!(config["system"]["protocol"].as_str(), Some("zab"));
    let cluster = std::fs::read_to_string(run.join("cluster.toml")).unwrap();
    assert!(cluster.contains("protocol = \"zab\""), "{cluster}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["system"], "kvnode (zab)");
    assert!(results["ok"].as_u64().unwrap() > 100, "{results}");
    // The recorded configuration runs Zab again; --protocol on top of it switches back.
    let recorded = run.join("config.toml");
    let o = bench(
        out.path(),
        &["--config", recorded.to_str().unwrap(), "--time-limit", "2s"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("kvnode (zab)"), "{}", text(&o));
    let o = bench(
        out.path(),
        &[
            "--config",
            recorded.to_str().unwrap(),
            "--time-limit",
            "2s",
            "--protocol",
            "paxos",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("kvnode (paxos)"), "{}", text(&o));
    // Zab's deliberate bug is refused for Paxos nodes, in one line that names it.
    let o = bench(
        out.path(),
        &["--time-limit", "2s", "--node-arg=--unsafe-skip-sync"],
    );
    assert_eq!(o.status.code(), Some(254), "{}", text(&o));
    assert!(text(&o).contains("add --protocol zab"), "{}", text(&o));
    assert_eq!(text(&o).trim().lines().count(), 1, "{}", text(&o));
    assert!(processes_under(out.path()).is_empty());
}

#[test]
fn a_recorded_config_repeats_the_run_and_bad_names_are_refused() {
    let out = tempfile::tempdir().unwrap();
    let o = bench(
        out.path(),
        &[
            "--time-limit",
            "2s",
            "--nemesis",
            "none",
            "--seed",
            "5",
            "--test",
            "t",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let first = latest(out.path()).join("config.toml");
    let recorded = std::fs::read_to_string(&first).unwrap();
    let o = bench(out.path(), &["--config", first.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let again = std::fs::read_to_string(latest(out.path()).join("config.toml")).unwrap();
    assert_eq!(recorded, again);
    let o = bench(out.path(), &["--profile", "no-such-profile"]);
    assert_eq!(o.status.code(), Some(254));
    assert!(
        text(&o).contains("no profile named \"no-such-profile\""),
        "{}",
        text(&o)
    );
    let o = bench(out.path(), &["--nemesis", "no-such-nemesis"]);
    assert_eq!(o.status.code(), Some(254), "{}", text(&o));
}

fn interrupted_run_leaves_nothing(signal: nix::sys::signal::Signal) {
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("run")
        .arg("--out")
        .arg(out.path())
        .args(["--time-limit", "60s", "--nemesis", "pause"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the workload is running (operations recorded), then interrupt.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = std::fs::canonicalize(out.path().join("latest"))
            .ok()
            .and_then(|d| std::fs::metadata(d.join("history.jsonl")).ok())
            .is_some_and(|m| m.len() > 0);
        if started && processes_under(out.path()).len() >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "an interrupted run is not a verdict");
    if signal != nix::sys::signal::Signal::SIGKILL {
        // What is known is written: a partial history, checked and reported, is unknown.
        assert_eq!(status.code(), Some(2), "{status}");
        let run = latest(out.path());
        let results: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(results["interrupted"], true, "{results}");
        assert!(results["operations"].as_u64().unwrap() > 0, "{results}");
        assert!(run.join("report.html").is_file());
    }
    // Signals are delivered asynchronously: wait (bounded) for the nodes to be gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_under(out.path()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = processes_under(out.path());
    assert!(left.is_empty(), "left behind after {signal}: {left:?}");
}

#[test]
fn no_node_survives_ctrl_c() {
    interrupted_run_leaves_nothing(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn no_node_survives_sigterm() {
    interrupted_run_leaves_nothing(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn no_node_survives_sigkill_of_the_bench() {
    interrupted_run_leaves_nothing(nix::sys::signal::Signal::SIGKILL);
}

#[test]
fn lost_early_acknowledged_writes_are_caught_when_the_leader_is_cut_off() {
    // An isolated leader goes on acknowledging the writes of the clients connected to it until
    // it notices it lost its majority; with early acknowledgement those writes are lost when
    // the majority elects another leader. Every isolation does it, so the catch is certain.
    let out = tempfile::tempdir().unwrap();
    let schedule = out.path().join("isolate-leader.toml");
    std::fs::write(
        &schedule,
        "interval = \"1500ms\"\nduration = \"1s\"\nfaults = [\"partition-leader\"]\n",
    )
    .unwrap();
    let profile = out.path().join("busy-register.toml");
    std::fs::write(
        &profile,
        "name = \"busy-register\"\nmix = { read = 50, write = 40, cas = 10 }\nkeys = 8\nconcurrency = 10\n\
         rate = 1500\ntimeout = \"1s\"\nsticky = true\n",
    )
    .unwrap();
    let o = bench(
        out.path(),
        &[
            "--time-limit",
            "10s",
            "--nemesis",
            schedule.to_str().unwrap(),
            "--profile",
            profile.to_str().unwrap(),
            "--seed",
            "13",
            "--node-arg=--unsafe-early-ack",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("is not linearizable"), "{}", text(&o));
    // When the checker names the write that went missing, the bench says which fault preceded
    // it, in the terminal as in the report.
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(latest(out.path()).join("results.json")).unwrap(),
    )
    .unwrap();
    let earliest = results["checker"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| !k["anomaly"].is_null())
        .min_by_key(|k| k["anomaly"]["culprit"]["invoke"].as_u64())
        .expect("an anomaly");
    if !earliest["anomaly"]["missed"].is_null() {
        assert!(text(&o).contains(" is missing"), "{}", text(&o));
    }
}

#[test]
fn a_node_that_cannot_start_is_named_and_nothing_is_left_behind() {
    let out = tempfile::tempdir().unwrap();
    let o = bench(
        out.path(),
        &["--time-limit", "5s", "--node-arg=--no-such-flag"],
    );
    assert_eq!(o.status.code(), Some(254), "{}", text(&o));
    assert!(text(&o).contains("exited while starting"), "{}", text(&o));
    // The cause is in the message itself: the run's directory may be gone by the time anyone
    // reads it (a test's temporary directory is).
    assert!(text(&o).contains("--no-such-flag"), "{}", text(&o));
    assert!(
        processes_under(out.path()).is_empty(),
        "{:?}",
        processes_under(out.path())
    );
}

#[test]
fn a_run_whose_workload_completes_nothing_is_unknown_not_valid() {
    let out = tempfile::tempdir().unwrap();
    let profile = out.path().join("idle.toml");
    std::fs::write(
        &profile,
        "name = \"idle\"\nmix = { read = 1 }\nkeys = 2\nconcurrency = 2\ntimeout = \"1s\"\n\
         op_limit = 0\n",
    )
    .unwrap();
    let o = bench(
        out.path(),
        &[
            "--time-limit",
            "1s",
            "--nemesis",
            "none",
            "--profile",
            profile.to_str().unwrap(),
            "--seed",
            "4",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("UNKNOWN: no operations"), "{}", text(&o));
    let results = std::fs::read_to_string(latest(out.path()).join("results.json")).unwrap();
    assert!(results.contains(r#""verdict": "unknown""#), "{results}");
}

#[test]
fn runs_that_cannot_test_anything_are_refused_in_one_line() {
    let out = tempfile::tempdir().unwrap();
    let timed = |name: &str, step: &str| {
        let path = out.path().join(name);
        std::fs::write(&path, format!("[[step]]\n{step}\n")).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let ghost = timed(
        "ghost.toml",
        "at = \"1s\"\nfault = \"kill\"\nduration = \"1s\"\nnodes = [\"n9\"]",
    );
    let late = timed(
        "late.toml",
        "at = \"5s\"\nfault = \"pause\"\nduration = \"10s\"",
    );
    for (args, needle) in [
        (
            &["--nemesis", ghost.as_str()][..],
            "no node `n9` in this run",
        ),
        (
            &["--time-limit", "10s", "--nemesis", late.as_str()][..],
            "step 1 (pause at 5s)",
        ),
        (
            &["--nodes", "1", "--nemesis", "partition"][..],
            "--nemesis partition can do nothing with --nodes 1",
        ),
        (
            &["--time-limit", "0s"][..],
            "--time-limit must be more than 0s",
        ),
    ] {
        let o = bench(out.path(), args);
        assert_eq!(o.status.code(), Some(254), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(
        !out.path().join("latest").exists(),
        "a refused run leaves no run directory"
    );
}

/// Lines of a child's output, read on a thread, so that a test waits with a deadline.
fn lines_of(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded) for a line containing `needle`; returns it.
fn line_with(rx: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?}; got: {seen:#?}");
}

#[test]
fn bench_cluster_prints_a_kvctl_command_that_works_and_says_when_a_node_dies() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["cluster", "--nodes", "3", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lines_of(child.stdout.take().unwrap());
    let stderr = lines_of(child.stderr.take().unwrap());
    // The printed command, run as printed, with no kvctl on PATH.
    let command = line_with(&stdout, " kvctl --config ");
    let words = shell_words::split(command.trim()).unwrap();
    let out = Command::new(&words[0]).args(&words[1..]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    // A node killed behind the bench's back is reported, naming it.
    let n2 = processes_under(dir.path())
        .into_iter()
        .find(|p| p.contains("--id n2"))
        .expect("n2 runs");
    let pid: i32 = n2.split(':').next().unwrap().parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let said = line_with(&stderr, "node n2 exited");
    assert!(said.contains("the others keep serving"), "{said}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_under(dir.path()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(processes_under(dir.path()).is_empty());
}
