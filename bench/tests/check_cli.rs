//! `bench check` as a user runs it: exit codes, format detection, located errors, JSON output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().expect("temp dir"))
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).expect("write fixture");
        path
    }
}

fn bench(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("check")
        .args(args)
        .arg(file)
        .output()
        .expect("run bench")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A write of v1, then a read that overlaps a write of v2 and returns `read`.
fn jsonl(read: &str) -> String {
    [
        r#"{"index":0,"time":10,"process":0,"type":"invoke","f":"write","key":"k","value":"v1"}"#,
        r#"{"index":1,"time":20,"process":0,"type":"ok","f":"write","key":"k","value":"v1"}"#,
        r#"{"index":2,"time":30,"process":1,"type":"invoke","f":"read","key":"k","value":null}"#,
        r#"{"index":3,"time":35,"process":0,"type":"invoke","f":"write","key":"k","value":"v2"}"#,
        r#"{"index":4,"time":38,"process":"nemesis","type":"info","f":"start-partition","value":"halves"}"#,
        &format!(
            r#"{{"index":5,"time":40,"process":1,"type":"ok","f":"read","key":"k","value":{read}}}"#
        ),
        r#"{"index":6,"time":50,"process":0,"type":"ok","f":"write","key":"k","value":"v2"}"#,
    ]
    .join("\n")
}

#[test]
fn a_valid_history_exits_0_and_says_valid() {
    let dir = Dir::new();
    for read in [r#""v1""#, r#""v2""#] {
        let out = bench(&[], &dir.file("h.jsonl", &jsonl(read)));
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        assert!(stdout(&out).contains("VALID"), "{}", stdout(&out));
    }
}

#[test]
fn an_impossible_read_exits_1_with_an_explanation() {
    let dir = Dir::new();
    let out = bench(&[], &dir.file("h.jsonl", &jsonl(r#""v9""#)));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("INVALID"), "{text}");
    assert!(text.contains("no operation ever wrote \"v9\""), "{text}");
    assert!(text.contains("<- cannot be linearized"), "{text}");
    // Found without searching: no "longest linearizable prefix" of 0 operations is claimed.
    assert!(
        text.contains("refuted before searching: no order of the operations can place it"),
        "{text}"
    );
    assert!(!text.contains("longest linearizable prefix"), "{text}");
}

#[test]
fn a_stale_read_is_explained_by_the_write_that_overwrote_it() {
    let dir = Dir::new();
    let history = [
        r#"{"time":1,"process":0,"type":"invoke","f":"write","key":"k","value":"a"}"#,
        r#"{"time":2,"process":0,"type":"ok","f":"write","key":"k","value":"a"}"#,
        r#"{"time":3,"process":0,"type":"invoke","f":"write","key":"k","value":"b"}"#,
        r#"{"time":4,"process":0,"type":"ok","f":"write","key":"k","value":"b"}"#,
        r#"{"time":5,"process":1,"type":"invoke","f":"read","key":"k"}"#,
        r#"{"time":6,"process":1,"type":"ok","f":"read","key":"k","value":"a"}"#,
    ]
    .join("\n");
    let file = dir.file("h.jsonl", &history);
    let out = bench(&[], &file);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("had overwritten it"), "{text}");
    // One time base: seconds since the history's start, to the microsecond.
    assert!(text.contains("(completed at 0.000000 s)"), "{text}");
    // The write the read missed is named, for the report to place faults against.
    let out = bench(&["--json"], &file);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert!(
        text.contains("the longest linearizable prefix has 2 operations"),
        "{text}"
    );
    assert_eq!(
        v["keys"][0]["anomaly"].get("refuted_before_search"),
        None,
        "{v}"
    );
    let missed = &v["keys"][0]["anomaly"]["missed"];
    assert_eq!(missed["f"], "write", "{v}");
    assert_eq!(missed["value"], "b", "{v}");
}

/// Porcupine's key-value format: a put, then two appends, then a read that lacks the second
/// although it completed before the read began.
#[test]
fn a_read_that_lacks_a_completed_append_is_explained_by_that_append_and_its_core_keeps_the_put() {
    let dir = Dir::new();
    let history = [
        r#"{:process 0, :type :invoke, :f :put, :key "k", :value "p"}"#,
        r#"{:process 0, :type :ok, :f :put, :key "k", :value "p"}"#,
        r#"{:process 1, :type :invoke, :f :append, :key "k", :value "x1y"}"#,
        r#"{:process 1, :type :ok, :f :append, :key "k", :value "x1y"}"#,
        r#"{:process 2, :type :invoke, :f :append, :key "k", :value "x2y"}"#,
        r#"{:process 2, :type :ok, :f :append, :key "k", :value "x2y"}"#,
        r#"{:process 3, :type :invoke, :f :get, :key "k", :value nil}"#,
        r#"{:process 3, :type :ok, :f :get, :key "k", :value "px1y"}"#,
    ]
    .join("\n");
    let out = bench(&["--json"], &dir.file("kv.txt", &history));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let anomaly = &v["keys"][0]["anomaly"];
    let said = anomaly["explanation"].as_str().expect("an explanation");
    assert!(
        said.contains("which lacks \"x2y\": process 2's append \"x2y\" completed at line 6"),
        "{said}"
    );
    assert_eq!(anomaly["missed"]["value"], "x2y", "{v}");
    // The read needs the put it starts with and the append it holds; the missing append
    // makes it impossible: all four, and nothing less.
    let core: Vec<&str> = anomaly["core"]["ops"]
        .as_array()
        .expect("a core")
        .iter()
        .map(|o| o["f"].as_str().expect("f"))
        .collect();
    assert_eq!(core, ["write", "append", "append", "read"], "{v}");
    assert_eq!(anomaly["core"]["minimal"], true);
}

/// A read of a value written only later: the search finds no first step, and the state it
/// leaves is told in the model's words ("absent", not JSON's "null").
#[test]
fn a_read_from_the_future_leaves_the_key_absent_in_words() {
    let dir = Dir::new();
    let history = [
        r#"{"time":1,"process":1,"type":"invoke","f":"read","key":"k"}"#,
        r#"{"time":2,"process":1,"type":"ok","f":"read","key":"k","value":"a"}"#,
        r#"{"time":3,"process":0,"type":"invoke","f":"write","key":"k","value":"a"}"#,
        r#"{"time":4,"process":0,"type":"ok","f":"write","key":"k","value":"a"}"#,
    ]
    .join("\n");
    let out = bench(&[], &dir.file("h.jsonl", &history));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("wrote \"a\" only later"), "{text}");
    assert!(
        text.contains(
            "the longest linearizable prefix has 0 operations and leaves the value absent"
        ),
        "{text}"
    );
}

#[test]
fn json_output_carries_the_verdict_and_the_counterexample() {
    let dir = Dir::new();
    let out = bench(&["--json"], &dir.file("h.jsonl", &jsonl(r#""v9""#)));
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["verdict"], "invalid");
    assert_eq!(v["keys"][0]["key"], "k");
    let anomaly = &v["keys"][0]["anomaly"];
    assert_eq!(anomaly["culprit"]["f"], "read");
    assert_eq!(anomaly["culprit"]["value"], "v9");
    assert_eq!(anomaly["refuted_before_search"], true);
    assert!(anomaly["around"].as_array().is_some_and(|a| a.len() >= 2));
}

#[test]
fn malformed_input_exits_254_naming_the_file_and_line() {
    let dir = Dir::new();
    let mut lines: Vec<String> = jsonl(r#""v1""#).lines().map(str::to_owned).collect();
    lines[2] = r#"{"index":2,"time":30,"process":1,"type":"invoke","f":"read""#.to_owned();
    let file = dir.file("broken.jsonl", &lines.join("\n"));
    let out = bench(&[], &file);
    assert_eq!(out.status.code(), Some(254));
    let err = stderr(&out);
    assert!(err.contains("broken.jsonl: line 3:"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_completion_without_invocation_is_refused_with_its_line() {
    let dir = Dir::new();
    let file = dir.file(
        "h.jsonl",
        r#"{"time":1,"process":4,"type":"ok","f":"write","key":"k","value":"a"}"#,
    );
    let out = bench(&[], &file);
    assert_eq!(out.status.code(), Some(254));
    assert!(
        stderr(&out).contains(
            "line 1: ok completion of a write for process 4, which has no operation in progress"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_file_and_bad_arguments_exit_254() {
    let dir = Dir::new();
    let missing = dir.0.path().join("nope.jsonl");
    let out = bench(&[], &missing);
    assert_eq!(out.status.code(), Some(254));
    assert!(stderr(&out).contains("nope.jsonl"), "{}", stderr(&out));
    let file = dir.file("h.jsonl", &jsonl(r#""v1""#));
    let out = bench(&["--format", "xml"], &file);
    assert_eq!(out.status.code(), Some(254));
}

#[test]
fn formats_are_recognised_without_being_named() {
    let dir = Dir::new();
    let edn = dir.file(
        "history.edn",
        "; a register\n[{:type :invoke, :f :write, :value 1, :process 0}\n \
         {:type :ok, :f :write, :value 1, :process 0}\n \
         {:type :invoke, :f :read, :value nil, :process 1}\n \
         {:type :ok, :f :read, :value 2, :process 1}]\n",
    );
    let out = bench(&[], &edn);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("(edn)"));
    let log = dir.file(
        "jepsen.log",
        "INFO  jepsen.core - starting\n\
         INFO  jepsen.util - 0\t:invoke\t:write\t3\n\
         INFO  jepsen.util - 0\t:ok\t:write\t3\n\
         INFO  jepsen.util - 1\t:invoke\t:read\tnil\n\
         INFO  jepsen.util - 1\t:ok\t:read\t3\n",
    );
    let out = bench(&[], &log);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("(jepsen-log)"));
    let kv = dir.file(
        "kv.txt",
        "{:process 0, :type :invoke, :f :append, :key \"a\", :value \"x\"}\n\
         {:process 0, :type :ok, :f :append, :key \"a\", :value \"x\"}\n\
         {:process 1, :type :invoke, :f :get, :key \"a\", :value nil}\n\
         {:process 1, :type :ok, :f :get, :key \"a\", :value \"xx\"}\n",
    );
    let out = bench(&[], &kv);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("(porcupine-kv)"));
}

#[test]
fn an_exhausted_budget_is_unknown_not_a_guess() {
    let dir = Dir::new();
    let out = bench(
        &["--time-limit", "0s"],
        &dir.file("h.jsonl", &jsonl(r#""v1""#)),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).contains("time limit"), "{}", stdout(&out));
}

#[test]
fn a_history_without_operations_is_unknown_not_valid() {
    let dir = Dir::new();
    let nemesis_only = r#"{"index":0,"time":5,"process":"nemesis","type":"info","f":"kill","value":{"kind":"kill","nodes":["n1"]}}"#;
    for (name, text) in [("empty.jsonl", ""), ("nemesis-only.jsonl", nemesis_only)] {
        let file = dir.file(name, text);
        let out = bench(&[], &file);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stdout(&out));
        assert!(
            stdout(&out).contains("UNKNOWN: no operations"),
            "{name}: {}",
            stdout(&out)
        );
        assert!(!stdout(&out).contains("VALID"), "{name}: {}", stdout(&out));
        let out = bench(&["--json"], &file);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stdout(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
        assert_eq!(v["verdict"], "unknown", "{name}: {v}");
    }
}

#[test]
fn fail_fast_stops_at_the_first_invalid_key() {
    let dir = Dir::new();
    // Two keys, each with a read of a value nobody wrote.
    let history = ["a", "b"]
        .iter()
        .enumerate()
        .flat_map(|(p, k)| {
            [
                format!(r#"{{"process":{p},"type":"invoke","f":"read","key":"{k}"}}"#),
                format!(r#"{{"process":{p},"type":"ok","f":"read","key":"{k}","value":"x"}}"#),
            ]
        })
        .collect::<Vec<_>>()
        .join("\n");
    let file = dir.file("two.jsonl", &history);
    let all = bench(&["--all-keys", "--threads", "1"], &file);
    assert_eq!(all.status.code(), Some(1));
    assert!(
        stdout(&all).contains("2 of 2 keys are not linearizable"),
        "{}",
        stdout(&all)
    );
    let fast = bench(&["--fail-fast", "--threads", "1"], &file);
    assert_eq!(fast.status.code(), Some(1), "{}", stdout(&fast));
    let text = stdout(&fast);
    assert!(text.contains("1 of 2 keys is not linearizable"), "{text}");
    assert!(text.contains("--fail-fast stopped"), "{text}");
}
