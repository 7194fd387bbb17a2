//! kvlab's lock histories: JSONL events of `acquire` and `release` on named locks, recognised by
//! their events, and checked as Knossos's mutex, one per lock name.

use checker::{
    Call, CheckOptions, CheckResult, Format, History, ModelKind, Outcome, ReadError, ReadOptions,
    Verdict, check, read_file, read_str,
};

/// Events written compactly, one per line: `process type f key`, e.g. `3 invoke acquire L`, or
/// `nemesis info start-partition`. Times are the line numbers, in milliseconds.
fn jsonl(events: &str) -> String {
    events
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            let parts: Vec<&str> = l.split(' ').collect();
            let time = (i as u64 + 1) * 1_000_000;
            match parts[..] {
                ["nemesis", t, f] => format!(
                    r#"{{"index":{i},"time":{time},"process":"nemesis","type":"{t}","f":"{f}","value":{{"kind":"partition"}}}}"#
                ),
                [p, t, f, key] => format!(
                    r#"{{"index":{i},"time":{time},"process":{p},"type":"{t}","f":"{f}","key":"{key}","value":null}}"#
                ),
                _ => panic!("not an event: {l}"),
            }
        })
        .map(|l| l + "\n")
        .collect()
}

fn read(text: &str, model: ModelKind) -> Result<History, ReadError> {
    read_str(
        text,
        &ReadOptions {
            model,
            ..ReadOptions::default()
        },
    )
    .map(|(h, format)| {
        assert_eq!(format, Format::Jsonl);
        h
    })
}

fn checked(text: &str) -> CheckResult {
    let h = read(text, ModelKind::default()).unwrap_or_else(|e| panic!("refused: {e}\n{text}"));
    assert_eq!(h.model, ModelKind::Mutex);
    check(
        &h,
        &CheckOptions {
            all_keys: true,
            ..CheckOptions::default()
        },
    )
}

/// The explanation of the only invalid key.
fn explanation(result: &CheckResult) -> &str {
    assert_eq!(result.verdict, Verdict::Invalid, "{result:#?}");
    let key = result
        .keys
        .iter()
        .find(|k| k.verdict == Verdict::Invalid)
        .expect("an invalid key");
    &key.anomaly.as_ref().expect("an anomaly").explanation
}

#[test]
fn jsonl_lock_held_by_two_processes_at_once_is_invalid_and_said_so() {
    let result = checked(&jsonl(
        "0 invoke acquire L
         0 ok acquire L
         1 invoke acquire L
         1 ok acquire L
         nemesis info start-partition
         0 invoke release L
         0 ok release L
         1 invoke release L
         1 ok release L",
    ));
    assert_eq!(
        explanation(&result),
        "the lock was held by two clients at once: process 1 acquired it (from 0.003000 s to \
         0.004000 s) while process 0 held it (acquired at 0.002000 s, released at 0.007000 s)"
    );
    assert_eq!(result.keys[0].key, "L");
    let anomaly = result.keys[0].anomaly.as_ref().unwrap();
    assert_eq!(anomaly.culprit.text, "acquire");
    assert_eq!(anomaly.missed.as_ref().map(|m| m.process), Some(0));
    // The core keeps each acquire with its own release: two overlapping holds, not two
    // acquires whose releases were cut.
    let core = &anomaly.core.as_ref().expect("a core").ops;
    let names: Vec<(u64, &str)> = core.iter().map(|o| (o.process, o.text.as_str())).collect();
    assert_eq!(
        names,
        [
            (0, "acquire"),
            (1, "acquire"),
            (0, "release"),
            (1, "release")
        ]
    );
}

/// A failed acquire did not take the lock; an acquire whose outcome is unknown may never have;
/// a release whose outcome is unknown may have freed it.
const OUTCOMES: &str = "0 invoke acquire L
                        0 ok acquire L
                        1 invoke acquire L
                        1 fail acquire L
                        2 invoke acquire L
                        2 info acquire L
                        0 invoke release L
                        0 ok release L
                        3 invoke acquire L
                        3 ok acquire L
                        3 invoke release L
                        3 info release L
                        4 invoke acquire L
                        4 ok acquire L";

#[test]
fn jsonl_lock_with_failed_and_unknown_outcomes_is_valid() {
    let result = checked(&jsonl(OUTCOMES));
    assert_eq!(result.verdict, Verdict::Valid, "{result:#?}");
    // Each outcome counts: the same history is invalid if the failed acquire had succeeded...
    let took = OUTCOMES.replace("1 fail acquire", "1 ok acquire");
    let said = explanation(&checked(&jsonl(&took))).to_owned();
    assert!(said.contains("held by two clients at once"), "{said}");
    // ... or if the release of unknown outcome had definitely not happened.
    let kept = OUTCOMES.replace("3 info release", "3 fail release");
    let said = explanation(&checked(&jsonl(&kept))).to_owned();
    assert!(
        said.starts_with("the lock was held by two clients at once: process 4 acquired it"),
        "{said}"
    );
}

#[test]
fn jsonl_lock_names_are_independent_mutexes() {
    let result = checked(&jsonl(
        "0 invoke acquire a
         1 invoke acquire b
         0 ok acquire a
         1 ok acquire b
         2 invoke acquire b
         2 ok acquire b
         0 invoke release a
         0 ok release a",
    ));
    let verdicts: Vec<(&str, Verdict)> = result
        .keys
        .iter()
        .map(|k| (k.key.as_str(), k.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [("a", Verdict::Valid), ("b", Verdict::Invalid)],
        "{result:#?}"
    );
    let said = explanation(&result);
    assert!(
        said.contains("process 2 acquired it (from") && said.contains("while process 1 held it"),
        "{said}"
    );
}

#[test]
fn jsonl_lock_history_is_recognised_by_its_first_client_event() {
    let locks = jsonl(
        "nemesis info start-partition
         0 invoke release L
         0 fail release L
         1 invoke acquire L",
    );
    for model in [ModelKind::CasRegister, ModelKind::Mutex] {
        let h = read(&locks, model).unwrap();
        assert_eq!(h.model, ModelKind::Mutex, "read with {model}");
        assert_eq!(h.initial, None);
        let ops: Vec<(&Call, &Outcome)> = h.ops.iter().map(|o| (&o.call, &o.outcome)).collect();
        assert_eq!(
            ops,
            [
                (&Call::Release, &Outcome::Fail),
                (&Call::Acquire, &Outcome::Info)
            ]
        );
    }
    // Key-value histories are read as before, and refused where locks are asked for.
    let kv = jsonl("0 invoke read k\n0 ok read k");
    assert_eq!(
        read(&kv, ModelKind::default()).unwrap().model,
        ModelKind::CasRegister
    );
    assert_eq!(
        read(&kv, ModelKind::Mutex).unwrap_err().to_string(),
        "line 1: unsupported f read in a mutex history (expected acquire or release)"
    );
    // Nothing but the nemesis: nothing says locks.
    let quiet = jsonl("nemesis info start-partition");
    assert_eq!(
        read(&quiet, ModelKind::default()).unwrap().model,
        ModelKind::CasRegister
    );
    assert_eq!(
        read(&quiet, ModelKind::Mutex).unwrap().model,
        ModelKind::Mutex
    );
}

#[test]
fn jsonl_lock_history_file_is_recognised_and_other_models_refused() {
    let path = std::env::temp_dir().join(format!("kvlab-locks-{}.jsonl", std::process::id()));
    std::fs::write(&path, jsonl("0 invoke acquire L\n0 ok acquire L")).unwrap();
    let read = |model| {
        read_file(
            &path,
            &ReadOptions {
                model,
                ..ReadOptions::default()
            },
        )
    };
    let (h, format) = read(ModelKind::default()).unwrap();
    let set = read(ModelKind::Set);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        (format, h.model, h.ops.len()),
        (Format::Jsonl, ModelKind::Mutex, 1)
    );
    // Regression: a file (unlike text) was read as key-value whatever the model asked for.
    let err = set.unwrap_err();
    assert!(matches!(err, ReadError::ModelNotSupported { .. }), "{err}");
}

#[test]
fn jsonl_mixing_locks_and_key_value_operations_is_refused_naming_the_line() {
    let both = "; a history holds either key-value operations (read, write, cas, delete, append) \
                or lock operations (acquire, release), not both";
    let cases = [
        (
            "0 invoke acquire L\n0 ok acquire L\n1 invoke read L",
            format!("line 3: read in a lock history (line 1 is an acquire){both}"),
        ),
        (
            "nemesis info kill\n0 invoke delete k\n0 ok delete k\n1 invoke release k",
            format!("line 4: release in a key-value history (line 2 is a delete){both}"),
        ),
        // A completion of another kind than its invocation is refused the same way.
        (
            "0 invoke acquire L\n0 ok cas L",
            format!("line 2: cas in a lock history (line 1 is an acquire){both}"),
        ),
    ];
    for (events, message) in cases {
        let err = read(&jsonl(events), ModelKind::default()).unwrap_err();
        assert_eq!(err.to_string(), message);
    }
}

/// Big enough to be parsed in parallel chunks: the kind is settled by the first line, and a
/// stray deep in a later chunk is refused at its own line, after the events before it.
#[test]
fn jsonl_mixing_is_refused_at_its_line_across_parallel_chunks() {
    let mut events = String::new();
    for i in 0..6000 {
        let p = i % 7;
        events += &format!("{p} invoke acquire L{i}\n{p} ok acquire L{i}\n");
    }
    let text = jsonl(&events);
    assert!(text.len() > 1 << 20, "big enough for several chunks");
    let h = read(&text, ModelKind::default()).unwrap();
    assert_eq!((h.model, h.ops.len()), (ModelKind::Mutex, 6000));
    let mut lines: Vec<&str> = text.lines().collect();
    let stray = lines[9001].replace("acquire", "read");
    lines[9001] = &stray;
    let err = read(&lines.join("\n"), ModelKind::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("line 9002: read in a lock history (line 1 is an acquire)"),
        "{err}"
    );
    // An error on an earlier line is still the one reported.
    let pairing = lines[8999].replace("\"ok\"", "\"invoke\"");
    lines[8999] = &pairing;
    let err = read(&lines.join("\n"), ModelKind::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 9000: process 5 invokes an acquire while its acquire from line 8999 has not \
         completed"
    );
}

#[test]
fn jsonl_lock_completion_must_be_for_the_function_invoked() {
    let err = read(
        &jsonl("0 invoke acquire L\n0 ok release L"),
        ModelKind::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2: process 0 invoked an acquire at line 1 but this completion is for a release"
    );
}
