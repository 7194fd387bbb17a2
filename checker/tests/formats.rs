//! The readers: what each format means, and located errors for what it must not contain.

use checker::{Call, Format, History, ModelKind, Outcome, ReadError, ReadOptions, Value, read_str};

fn read(text: &str, format: Format) -> Result<History, ReadError> {
    read_str(
        text,
        &ReadOptions {
            format: Some(format),
            ..ReadOptions::default()
        },
    )
    .map(|(h, _)| h)
}

fn line_of(err: ReadError) -> u64 {
    match err {
        ReadError::Malformed { line, .. } => line,
        other => panic!("expected a located error, got {other}"),
    }
}

#[test]
fn jsonl_pairs_events_by_process_and_skips_the_nemesis() {
    let h = read(
        r#"{"time":5,"process":0,"type":"invoke","f":"cas","key":"a","value":["x","y"]}
{"time":6,"process":"nemesis","type":"info","f":"kill","value":"n1"}
{"time":7,"process":1,"type":"invoke","f":"delete","key":"a"}
{"time":8,"process":0,"type":"fail","f":"cas","key":"a","value":["x","y"],"error":"precondition"}
{"time":9,"process":1,"type":"info","f":"delete","key":"a","error":"timeout"}
{"time":10,"process":2,"type":"invoke","f":"read","key":"a"}"#,
        Format::Jsonl,
    )
    .unwrap();
    assert!(h.timed);
    assert_eq!(h.ops.len(), 3);
    let cas = &h.ops[0];
    assert_eq!(
        cas.call,
        Call::Cas {
            expected: Some(Value::Str("x".into())),
            new: Value::Str("y".into())
        }
    );
    assert_eq!(cas.outcome, Outcome::PreconditionFailed);
    assert_eq!(
        (
            cas.invoke.time,
            cas.complete.unwrap().time,
            cas.complete.unwrap().line
        ),
        (5, 8, 4)
    );
    assert_eq!(h.ops[1].outcome, Outcome::Info);
    // Still pending at the end: unknown, with no completion.
    assert_eq!(
        (h.ops[2].outcome.clone(), h.ops[2].complete),
        (Outcome::Info, None)
    );
}

#[test]
fn jsonl_refuses_a_process_that_continues_after_info() {
    let err = read(
        r#"{"time":1,"process":3,"type":"invoke","f":"write","key":"a","value":1}
{"time":2,"process":3,"type":"info","f":"write","key":"a","value":1}
{"time":3,"process":3,"type":"invoke","f":"read","key":"a"}"#,
        Format::Jsonl,
    )
    .unwrap_err();
    assert_eq!(line_of(err), 3);
}

#[test]
fn jsonl_errors_name_the_line_and_the_problem() {
    let cases = [
        (
            r#"{"time":1,"process":0,"type":"start","f":"read","key":"a"}"#,
            "unknown type",
        ),
        (
            r#"{"time":1,"process":0,"type":"invoke","f":"incr","key":"a"}"#,
            "unknown f",
        ),
        (
            r#"{"time":1,"process":-1,"type":"invoke","f":"read","key":"a"}"#,
            "process",
        ),
        (
            r#"{"time":1,"process":0,"type":"invoke","f":"cas","key":"a","value":"x"}"#,
            "[expected, new]",
        ),
        (
            r#"{"time":1,"process":0,"type":"invoke","f":"write","key":"a","value":1.5}"#,
            "integer",
        ),
        (
            r#"{"time":1,"process":0,"type":"invoke","f":"read"}"#,
            "without a key",
        ),
        ("not json", "not a history event"),
    ];
    for (text, words) in cases {
        let input = format!("\n{text}\n");
        let err = read(&input, Format::Jsonl).unwrap_err().to_string();
        assert!(
            err.starts_with("line 2: ") && err.contains(words),
            "{text}: {err}"
        );
    }
}

#[test]
fn edn_reads_vectors_lists_comments_discards_and_one_op_per_line() {
    let forms = [
        "[{:process 0 :type :invoke :f :write :value 1}\n {:process 0 :type :ok :f :write :value 1}]",
        "({:process 0, :type :invoke, :f :write, :value 1} ; a comment\n #_{:ignored true}\n {:process 0, :type :ok, :f :write, :value 1})",
        "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1}\n",
    ];
    for text in forms {
        let h = read(text, Format::Edn).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(h.ops.len(), 1, "{text}");
        assert_eq!(h.ops[0].call, Call::Write(Value::Int(1)));
        assert_eq!(h.ops[0].outcome, Outcome::Ok(None));
    }
}

#[test]
fn edn_reads_as_knossos_does() {
    let h = read(
        "[{:process 0 :type :invoke :f :read :value nil}
          {:process 0 :type :ok :f :read :value nil}
          {:process 1 :type :invoke :f :cas :value [1 2]}
          {:process 1 :type :fail :f :cas :value [1 2]}
          {:process :nemesis :type :info :f :start :value nil}]",
        Format::Edn,
    )
    .unwrap();
    // A nil read tells nothing; a failed CAS did not happen (no observation, unlike kvlab).
    assert_eq!(h.ops[0].outcome, Outcome::Info);
    assert_eq!(h.ops[1].outcome, Outcome::Fail);
    assert_eq!(h.ops.len(), 2);
}

/// Knossos histories as Jepsen writes them for a cas-register: nil reads are common (a read
/// before the first write, or one whose value the client dropped), and the process goes on.
#[test]
fn edn_nil_reads_complete_and_the_process_goes_on() {
    use checker::{CheckOptions, Verdict, check};
    let options = ReadOptions {
        format: Some(Format::Edn),
        model: ModelKind::CasRegister,
        initial_value: Some(Value::Int(0)),
    };
    let verdict = |text: &str| {
        let (h, _) = read_str(text, &options).unwrap_or_else(|e| panic!("refused: {e}\n{text}"));
        check(&h, &CheckOptions::default()).verdict
    };
    // One process reads nil again and again, then goes on writing and reading.
    let mut many = String::new();
    for _ in 0..5 {
        many += "{:process 12, :type :invoke, :f :read, :value nil}\n";
        many += "{:process 12, :type :ok, :f :read, :value nil}\n";
    }
    many += "{:process 12, :type :invoke, :f :write, :value 3}\n";
    many += "{:process 12, :type :ok, :f :write, :value 3}\n";
    many += "{:process 12, :type :invoke, :f :read, :value nil}\n";
    many += "{:process 12, :type :ok, :f :read, :value 3}\n";
    assert_eq!(verdict(&many), Verdict::Valid);
    // Nil reads between writes, and a stale read after them still caught.
    let between = "{:process 1, :type :invoke, :f :write, :value 1}
        {:process 1, :type :ok, :f :write, :value 1}
        {:process 2, :type :invoke, :f :read, :value nil}
        {:process 2, :type :ok, :f :read, :value nil}
        {:process 1, :type :invoke, :f :cas, :value [1 2]}
        {:process 1, :type :ok, :f :cas, :value [1 2]}
        {:process 2, :type :invoke, :f :read, :value nil}
        {:process 2, :type :ok, :f :read, :value nil}
        {:process 2, :type :invoke, :f :read, :value nil}
        {:process 2, :type :ok, :f :read, :value STALE}";
    assert_eq!(verdict(&between.replace("STALE", "2")), Verdict::Valid);
    assert_eq!(verdict(&between.replace("STALE", "1")), Verdict::Invalid);
    // Nil reads of independent keys: the tuple's value is nil.
    let independent = "{:process 0, :type :invoke, :f :read, :value [5 nil]}
        {:process 0, :type :ok, :f :read, :value [5 nil]}
        {:process 0, :type :invoke, :f :write, :value [5 4]}
        {:process 0, :type :ok, :f :write, :value [5 4]}
        {:process 0, :type :invoke, :f :read, :value [6 nil]}
        {:process 0, :type :ok, :f :read, :value [6 nil]}
        {:process 0, :type :invoke, :f :read, :value [5 nil]}
        {:process 0, :type :ok, :f :read, :value [5 4]}";
    assert_eq!(verdict(independent), Verdict::Valid);
    // A real info still retires the process, as in Jepsen.
    let info = "{:process 3, :type :invoke, :f :write, :value 1}
        {:process 3, :type :info, :f :write, :value 1}
        {:process 3, :type :invoke, :f :read, :value nil}";
    let err = read_str(info, &options).unwrap_err().to_string();
    assert!(
        err.contains("invokes again after its outcome became unknown"),
        "{err}"
    );
}

#[test]
fn edn_independent_tuples_become_keys() {
    let h = read(
        "{:process 0, :type :invoke, :f :write, :value [7 1]}
         {:process 1, :type :invoke, :f :cas, :value [8 [1 2]]}
         {:process 0, :type :ok, :f :write, :value [7 1]}
         {:process 1, :type :ok, :f :cas, :value [8 [1 2]]}
         {:process 0, :type :invoke, :f :read, :value [7 nil]}
         {:process 0, :type :ok, :f :read, :value [7 1]}",
        Format::Edn,
    )
    .unwrap();
    assert_eq!(h.keys, ["7", "8"]);
    assert_eq!(h.key_name(&h.ops[1]), "8");
    assert_eq!(
        h.ops[1].call,
        Call::Cas {
            expected: Some(Value::Int(1)),
            new: Value::Int(2)
        }
    );
    assert_eq!(h.ops[2].outcome, Outcome::Ok(Some(Value::Int(1))));
}

#[test]
fn edn_register_model_refuses_cas_and_initial_value_applies() {
    let text = "[{:process 0 :type :invoke :f :cas :value [0 1]} {:process 0 :type :ok :f :cas :value [0 1]}]";
    let options = ReadOptions {
        format: Some(Format::Edn),
        model: ModelKind::Register,
        initial_value: None,
    };
    let err = read_str(text, &options).unwrap_err().to_string();
    assert!(err.contains("cas-register"), "{err}");
    let options = ReadOptions {
        model: ModelKind::CasRegister,
        initial_value: Some(Value::Int(0)),
        ..options
    };
    let (h, _) = read_str(text, &options).unwrap();
    assert_eq!(h.initial, Some(Value::Int(0)));
    assert_eq!(
        checker::check(&h, &Default::default()).verdict,
        checker::Verdict::Valid
    );
}

#[test]
fn edn_errors_are_located_inside_a_vector() {
    let text = "[{:process 0 :type :invoke :f :write :value 1}\n {:process 0 :type :ok :f :write :value 1}\n {:process 0 :type :invoke :f :txn :value 1}]";
    assert_eq!(line_of(read(text, Format::Edn).unwrap_err()), 3);
    let text = "[{:process 0 :type :invoke :f :write :value 1}\n {:process 0 :type :ok";
    assert!(read(text, Format::Edn).is_err());
}

#[test]
fn jepsen_logs_accept_tabs_or_spaces_and_skip_other_lines() {
    let h = read(
        "INFO  jepsen.core - Running test\n\
         INFO  jepsen.util - 1   :invoke :cas    [1 2]\n\
         INFO  jepsen.util - 2\t:invoke\t:read\tnil\n\
         INFO  jepsen.util - 1   :fail   :cas    [1 2]\n\
         INFO  jepsen.util - 2\t:ok\t:read\tnil\n\
         INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
         INFO  jepsen.util - 3\t:invoke\t:write\t4\n\
         INFO  jepsen.util - 3\t:info\t:write\t:timed-out\n",
        Format::JepsenLog,
    )
    .unwrap();
    assert_eq!(h.ops.len(), 3);
    assert_eq!(h.ops[0].outcome, Outcome::PreconditionFailed);
    // In these logs a nil read means the key was absent.
    assert_eq!(h.ops[1].outcome, Outcome::Ok(None));
    assert_eq!(h.ops[2].outcome, Outcome::Info);
    assert_eq!(h.ops[2].invoke.line, 7);
}

#[test]
fn porcupine_kv_reads_missing_keys_as_the_empty_string() {
    let h = read(
        "{:process 0, :type :invoke, :f :get, :key \"a\", :value nil}\n\
         {:process 0, :type :ok, :f :get, :key \"a\", :value \"\"}\n\
         {:process 0, :type :invoke, :f :append, :key \"a\", :value \"x\"}\n\
         {:process 0, :type :ok, :f :append, :key \"a\", :value \"x\"}\n\
         {:process 0, :type :invoke, :f :get, :key \"a\", :value nil}\n\
         {:process 0, :type :ok, :f :get, :key \"a\", :value \"x\"}\n",
        Format::PorcupineKv,
    )
    .unwrap();
    assert_eq!(h.initial, Some(Value::Str(String::new())));
    assert_eq!(
        checker::check(&h, &Default::default()).verdict,
        checker::Verdict::Valid
    );
}

#[test]
fn detection_recognises_each_format() {
    let cases = [
        (
            r#"{"time":1,"process":0,"type":"invoke","f":"read","key":"a"}"#,
            Format::Jsonl,
        ),
        (
            "{:process 0, :type :invoke, :f :get, :key \"a\", :value nil}",
            Format::PorcupineKv,
        ),
        (
            "{:process 0, :type :invoke, :f :read, :value nil}",
            Format::Edn,
        ),
        (
            "; history\n[{:process 0 :type :invoke :f :read}]",
            Format::Edn,
        ),
        (
            "WARN other\nINFO  jepsen.util - 0\t:invoke\t:read\tnil",
            Format::JepsenLog,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(Format::detect(text).unwrap(), want, "{text}");
    }
    assert!(matches!(
        Format::detect("hello"),
        Err(ReadError::UnknownFormat { .. })
    ));
}

#[test]
fn a_cas_may_expect_the_key_to_be_absent() {
    let h = read(
        "[{:process 0 :type :invoke :f :cas :value [nil 3]}\n {:process 0 :type :ok :f :cas :value [nil 3]}\n \
         {:process 1 :type :invoke :f :read :value nil}\n {:process 1 :type :ok :f :read :value 3}]",
        Format::Edn,
    )
    .unwrap();
    assert_eq!(
        h.ops[0].call,
        Call::Cas {
            expected: None,
            new: Value::Int(3)
        }
    );
    assert_eq!(
        checker::check(&h, &Default::default()).verdict,
        checker::Verdict::Valid
    );
}

fn read_as(text: &str, format: Format, model: ModelKind) -> Result<History, ReadError> {
    read_str(
        text,
        &ReadOptions {
            format: Some(format),
            model,
            ..ReadOptions::default()
        },
    )
    .map(|(h, _)| h)
}

#[test]
fn edn_reads_every_model_and_names_the_history_s_model() {
    let cases = [
        (
            ModelKind::Mutex,
            "{:process 0 :type :invoke :f :acquire}\n{:process 0 :type :ok :f :acquire :value 17}",
            Call::Acquire,
            Outcome::Ok(None),
        ),
        (
            ModelKind::Set,
            "{:process 0 :type :invoke :f :read :value nil}\n{:process 0 :type :ok :f :read :value #{3 1}}",
            Call::Read,
            Outcome::Ok(Some(Value::List(vec![Value::Int(1), Value::Int(3)]))),
        ),
        (
            ModelKind::FifoQueue,
            "{:process 0 :type :invoke :f :dequeue :value nil}\n{:process 0 :type :ok :f :dequeue :value 4}",
            Call::Dequeue,
            Outcome::Ok(Some(Value::Int(4))),
        ),
        (
            ModelKind::MultiRegister,
            "{:process 0 :type :invoke :f :txn :value [[:r :x nil] [:w :y 2]]}\n{:process 0 :type :ok :f :txn :value [[:r :x 1] [:w :y 2]]}",
            Call::Txn(vec![
                checker::MicroOp::Read {
                    register: Value::Str(":x".into()),
                    value: Some(Value::Int(1)),
                },
                checker::MicroOp::Write {
                    register: Value::Str(":y".into()),
                    value: Some(Value::Int(2)),
                },
            ]),
            Outcome::Ok(None),
        ),
    ];
    let whole_read = (
        ModelKind::MultiRegister,
        "{:process 0 :type :invoke :f :txn :value :read}\n{:process 0 :type :ok :f :txn :value ([:read 1 5])}",
        Call::Txn(vec![checker::MicroOp::Read {
            register: Value::Int(1),
            value: Some(Value::Int(5)),
        }]),
        Outcome::Ok(None),
    );
    for (model, text, call, outcome) in cases.into_iter().chain([whole_read]) {
        let h = read_as(text, Format::Edn, model).unwrap_or_else(|e| panic!("{model}: {e}"));
        assert_eq!(h.model, model);
        assert_eq!(
            h.keys,
            [if model == ModelKind::FifoQueue {
                "queue"
            } else {
                model.name()
            }]
        );
        assert_eq!(
            (&h.ops[0].call, &h.ops[0].outcome),
            (&call, &outcome),
            "{model}"
        );
    }
}

#[test]
fn edn_refuses_what_the_model_does_not_have_naming_the_line() {
    let text = "{:process 0 :type :invoke :f :acquire}\n{:process 0 :type :ok :f :acquire}\n{:process 0 :type :invoke :f :lock}";
    let err = read_as(text, Format::Edn, ModelKind::Mutex).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 3: unsupported :f :lock in a mutex history (expected :acquire or :release)"
    );
    let txn = "{:process 0 :type :invoke :f :txn :value [[:append :x 1]]}";
    let err = read_as(txn, Format::Edn, ModelKind::MultiRegister).unwrap_err();
    assert!(
        err.to_string()
            .contains("unsupported micro-operation :append"),
        "{err}"
    );
    let scalar = "{:process 0 :type :invoke :f :read}\n{:process 0 :type :ok :f :read :value 3}";
    let err = read_as(scalar, Format::Edn, ModelKind::Set).unwrap_err();
    assert_eq!(line_of(err), 2);
    // A completion for another function of the same model.
    let mixed = "{:process 0 :type :invoke :f :acquire}\n{:process 0 :type :ok :f :release}";
    let err = read_as(mixed, Format::Edn, ModelKind::Mutex).unwrap_err();
    assert!(
        err.to_string()
            .contains("invoked an acquire at line 1 but this completion is for a release"),
        "{err}"
    );
}

#[test]
fn edn_skips_an_info_with_no_invocation_as_knossos_does() {
    let text = "{:process 4 :type :info :f :acquire :error :crashed}
{:process 0 :type :invoke :f :acquire}
{:process 0 :type :ok :f :acquire}";
    let h = read_as(text, Format::Edn, ModelKind::Mutex).unwrap();
    assert_eq!(h.ops.len(), 1);
    let orphan = "{:process 4 :type :ok :f :acquire}";
    let err = read_as(orphan, Format::Edn, ModelKind::Mutex).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1: ok completion of an acquire for process 4, which has no operation in progress"
    );
}

#[test]
fn edn_reads_records_and_ops_without_a_value() {
    let text = "#jepsen.history.Op{:index 0, :time 5, :type :invoke, :process 2, :f :release}
#jepsen.history.Op{:index 1, :time 9, :type :fail, :process 2, :f :release, :error :not-held}
#jepsen.history.Op{:index 2, :time 12, :type :info, :process :nemesis, :f :kill, :value nil}";
    let h = read_as(text, Format::Edn, ModelKind::Mutex).unwrap();
    assert!(h.timed);
    assert_eq!(h.ops.len(), 1);
    assert_eq!(
        (&h.ops[0].call, &h.ops[0].outcome),
        (&Call::Release, &Outcome::Fail)
    );
}

#[test]
fn jepsen_logs_hold_any_model() {
    let text = "INFO  jepsen.util - 0\t:invoke\t:acquire\tnil
INFO  jepsen.util - 1\t:invoke\t:acquire\tnil
INFO  jepsen.util - 0\t:ok\t:acquire\tnil
INFO  jepsen.util - 1\t:ok\t:acquire\tnil";
    let h = read_as(text, Format::JepsenLog, ModelKind::Mutex).unwrap();
    assert_eq!(h.model, ModelKind::Mutex);
    let result = checker::check(&h, &Default::default());
    assert_eq!(result.verdict, checker::Verdict::Invalid);
    let said = &result.keys[0].anomaly.as_ref().unwrap().explanation;
    assert!(
        said.starts_with("the lock was held by two clients at once"),
        "{said}"
    );
}

#[test]
fn key_value_formats_refuse_another_model() {
    let jsonl = r#"{"process":0,"type":"invoke","f":"read","key":"a"}"#;
    let err = read_as(jsonl, Format::Jsonl, ModelKind::Set).unwrap_err();
    assert!(matches!(err, ReadError::ModelNotSupported { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "jsonl histories are key-value histories (checked as a cas-register) or lock histories \
         (checked as a mutex); the set model is read from edn and jepsen-log files"
    );
    let porcupine = r#"{:process 0, :type :invoke, :f :get, :key "a"}"#;
    let err = read_as(porcupine, Format::PorcupineKv, ModelKind::Mutex).unwrap_err();
    assert_eq!(
        err.to_string(),
        "porcupine-kv histories are key-value histories (checked as a cas-register); the mutex \
         model is read from edn and jepsen-log files"
    );
}

/// A JSONL history big enough to be parsed in parallel chunks: read the same as line by line,
/// and an error deep inside still names its line.
#[test]
fn jsonl_read_in_parallel_chunks_keeps_order_and_line_numbers() {
    let mut lines = Vec::new();
    for i in 0..6000u64 {
        let (p, k) = (i % 7, i % 13);
        lines.push(format!(
            r#"{{"index":{},"time":{},"process":{p},"type":"invoke","f":"write","key":"k{k}","value":"v{i}"}}"#,
            2 * i,
            2 * i
        ));
        lines.push(format!(
            r#"{{"index":{},"time":{},"process":{p},"type":"ok","f":"write","key":"k{k}","value":"v{i}"}}"#,
            2 * i + 1,
            2 * i + 1
        ));
    }
    let text = lines.join("\n");
    assert!(text.len() > 1 << 20, "big enough for several chunks");
    let h = read(&text, Format::Jsonl).unwrap();
    assert_eq!(h.ops.len(), 6000);
    for (i, op) in h.ops.iter().enumerate() {
        assert_eq!(op.call, Call::Write(Value::Str(format!("v{i}"))));
        assert_eq!(op.invoke.line, 2 * i as u64 + 1);
    }
    let mut broken = lines.clone();
    broken[9001] = "{not json".into();
    assert_eq!(
        line_of(read(&broken.join("\n"), Format::Jsonl).unwrap_err()),
        9002
    );
    // An index out of order deep in the file: both lines it names count from the file's start.
    let mut swapped = lines.clone();
    swapped.swap(9001, 9002);
    let err = read(&swapped.join("\n"), Format::Jsonl).unwrap_err();
    assert!(
        err.to_string()
            .contains("index 9002 follows index 9000 (line 9001)"),
        "{err}"
    );
    assert_eq!(line_of(err), 9002);
}

#[test]
fn jsonl_index_must_run_on_by_one_where_present() {
    let line = |index: u64, kind: &str| {
        format!(
            r#"{{"index":{index},"process":0,"type":"{kind}","f":"write","key":"k","value":"v"}}"#
        )
    };
    let ok = [
        line(0, "invoke"),
        line(1, "ok"),
        line(2, "invoke"),
        line(3, "ok"),
    ]
    .join("\n");
    assert_eq!(read(&ok, Format::Jsonl).unwrap().ops.len(), 2);
    let swapped = [
        line(0, "invoke"),
        line(2, "invoke"),
        line(1, "ok"),
        line(3, "ok"),
    ]
    .join("\n");
    let err = read(&swapped, Format::Jsonl).unwrap_err();
    assert!(
        err.to_string().contains("index 2 follows index 0 (line 1)"),
        "{err}"
    );
    assert_eq!(line_of(err), 2);
    // Without the field, the order of the lines is the order of the events.
    let bare = r#"{"process":0,"type":"invoke","f":"read","key":"k"}
{"process":0,"type":"ok","f":"read","key":"k","value":null}"#;
    assert_eq!(read(bare, Format::Jsonl).unwrap().ops.len(), 1);
}

#[test]
fn edn_refuses_a_repeated_key_on_one_line_as_over_several() {
    for (format, f) in [(Format::PorcupineKv, ":put"), (Format::Edn, ":write")] {
        let one_line = format!(
            "{{:process 0, :type :invoke, :f {f}, :key \"a\", :value \"x\"}}\n\
             {{:process 0, :type :ok, :f {f}, :key \"a\", :value \"x\", :process 1}}\n"
        );
        let two_lines = one_line.replace(", :process 1}", ",\n :process 1}");
        // Located at the repeated key's value.
        for (text, line) in [(one_line, 2), (two_lines, 3)] {
            let err = read(&text, format).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("line {line}: malformed EDN: HashMapDuplicateKey"),
                "{format}"
            );
        }
    }
}

/// Knossos compares register values with Clojure's `=`, whatever they are: floats, vectors,
/// maps and sets are values too, equal when equal (maps and sets whatever the order written).
#[test]
fn edn_registers_hold_any_value_knossos_compares() {
    let text = r#"[{:process 0 :type :invoke :f :write :value 1.5}
{:process 0 :type :ok :f :write :value 1.5}
{:process 1 :type :invoke :f :read :value nil}
{:process 1 :type :ok :f :read :value 1.5}
{:process 0 :type :invoke :f :write :value {:a 1 :b [2 3]}}
{:process 0 :type :ok :f :write :value {:a 1 :b [2 3]}}
{:process 1 :type :invoke :f :read :value nil}
{:process 1 :type :ok :f :read :value {:b [2 3] :a 1}}
{:process 0 :type :invoke :f :cas :value [{:a 1 :b [2 3]} #{3 1 2}]}
{:process 0 :type :ok :f :cas :value [{:a 1 :b [2 3]} #{3 1 2}]}
{:process 1 :type :invoke :f :read :value nil}
{:process 1 :type :ok :f :read :value #{1 2 3}}]"#;
    let h = read_as(text, Format::Edn, ModelKind::CasRegister).expect("every value is read");
    assert_eq!(h.ops.len(), 6);
    assert_eq!(
        h.ops[1].outcome,
        Outcome::Ok(Some(Value::Str("1.5".into())))
    );
    assert_eq!(
        checker::check(&h, &checker::CheckOptions::default()).verdict,
        checker::Verdict::Valid
    );
    // A read of 1 where 1.5 was written is not the same value.
    let wrong = text.replacen(":ok :f :read :value 1.5", ":ok :f :read :value 1", 1);
    let h = read_as(&wrong, Format::Edn, ModelKind::CasRegister).unwrap();
    assert_eq!(
        checker::check(&h, &checker::CheckOptions::default()).verdict,
        checker::Verdict::Invalid
    );
}

/// Knossos takes any value as a process: named processes are told apart by name, and a
/// process's operations pair up as numbered ones do.
#[test]
fn edn_processes_may_be_named() {
    let text = r#"[{:process :a :type :invoke :f :write :value 1}
{:process "b" :type :invoke :f :read :value nil}
{:process :a :type :ok :f :write :value 1}
{:process -1 :type :invoke :f :read :value nil}
{:process "b" :type :ok :f :read :value 1}
{:process -1 :type :ok :f :read :value 1}]"#;
    let h = read_as(text, Format::Edn, ModelKind::CasRegister).expect("named processes are read");
    assert_eq!(h.ops.len(), 3);
    let processes: std::collections::HashSet<u64> = h.ops.iter().map(|o| o.process).collect();
    assert_eq!(processes.len(), 3, "{:?}", h.ops);
    assert_eq!(
        checker::check(&h, &checker::CheckOptions::default()).verdict,
        checker::Verdict::Valid
    );
    let missing = "[{:type :invoke :f :read :value nil}]";
    let err = read_as(missing, Format::Edn, ModelKind::CasRegister).unwrap_err();
    assert!(err.to_string().contains(":process is missing"), "{err}");
}
