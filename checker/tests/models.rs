//! Every model Knossos has, read from EDN histories written for these tests: what each operation
//! requires, how `ok`, `fail` and `info` count, and the sentence that explains a failure.

use checker::{
    Call, CheckOptions, CheckResult, Format, History, ModelKind, Outcome, ReadOptions, Value,
    Verdict, check, read_str,
};

fn read(model: ModelKind, initial: Option<Value>, text: &str) -> History {
    let options = ReadOptions {
        format: Some(Format::Edn),
        model,
        initial_value: initial,
    };
    read_str(text, &options)
        .unwrap_or_else(|e| panic!("refused: {e}\n{text}"))
        .0
}

fn checked(model: ModelKind, text: &str) -> CheckResult {
    check(&read(model, None, text), &CheckOptions::default())
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

/// Ops written compactly, one per line: `process type f value`, e.g. `3 invoke acquire nil`.
/// Times are the line numbers, in milliseconds.
fn edn(ops: &str) -> String {
    ops.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            let mut parts = l.splitn(4, ' ');
            let (p, t, f) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let v = parts.next().unwrap_or("nil");
            let p = if p == "nemesis" {
                ":nemesis".to_owned()
            } else {
                p.to_owned()
            };
            format!(
                "{{:type :{t}, :f :{f}, :value {v}, :process {p}, :time {}, :index {i}}}\n",
                (i + 1) * 1_000_000
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Mutex.

#[test]
fn mutex_handed_to_two_clients_at_once_is_invalid_and_said_so() {
    let result = checked(
        ModelKind::Mutex,
        &edn("0 invoke acquire
              0 ok acquire
              1 invoke acquire
              1 ok acquire
              0 invoke release
              0 ok release
              1 invoke release
              1 ok release"),
    );
    assert_eq!(
        explanation(&result),
        "the lock was held by two clients at once: process 1 acquired it (from 0.003000 s to \
         0.004000 s) while process 0 held it (acquired at 0.002000 s, released at 0.006000 s)"
    );
    let anomaly = result.keys[0].anomaly.as_ref().unwrap();
    assert_eq!(anomaly.missed.as_ref().map(|m| m.process), Some(0));
    assert_eq!(anomaly.culprit.text, "acquire");
    // Each acquire with its own release: two overlapping holds.
    let core = anomaly.core.as_ref().expect("a core");
    assert_eq!(core.ops.len(), 4, "{core:#?}");
}

/// When a value was written twice, the core keeps the write the sentence names (the latest
/// before the read), not another one that would do as well.
#[test]
fn the_core_keeps_the_write_the_explanation_names() {
    let result = checked(
        ModelKind::CasRegister,
        &edn("0 invoke write 4
              0 ok write 4
              1 invoke write 0
              1 ok write 0
              0 invoke write 4
              0 ok write 4
              1 invoke write 0
              1 ok write 0
              2 invoke read nil
              2 ok read 4"),
    );
    let said = explanation(&result);
    assert!(
        said.contains("process 0's write 4 completed at 0.006000 s"),
        "{said}"
    );
    let core = result.keys[0]
        .anomaly
        .as_ref()
        .unwrap()
        .core
        .as_ref()
        .unwrap();
    let lines: Vec<u64> = core.ops.iter().map(|o| o.invoke_line).collect();
    assert_eq!(lines, [5, 7, 9], "{core:#?}");
}

/// A failed operation did not happen: it is never part of a core, nor the partner that would
/// keep an acquire in one (here process 3's failed release would have paired with its acquire).
#[test]
fn a_failed_operation_is_never_part_of_a_core() {
    let result = checked(
        ModelKind::Mutex,
        &edn("3 invoke acquire
              3 ok acquire
              0 invoke acquire
              0 ok acquire
              3 invoke release
              3 fail release"),
    );
    assert!(
        explanation(&result).contains("held by two clients at once"),
        "{result:#?}"
    );
    let core = result.keys[0]
        .anomaly
        .as_ref()
        .unwrap()
        .core
        .as_ref()
        .unwrap();
    let ops: Vec<(u64, &str)> = core
        .ops
        .iter()
        .map(|o| (o.process, o.text.as_str()))
        .collect();
    assert_eq!(ops, [(3, "acquire"), (0, "acquire")], "{core:#?}");
    assert!(core.minimal);
}

#[test]
fn mutex_taken_in_turns_is_valid_even_when_acquires_overlap() {
    let result = checked(
        ModelKind::Mutex,
        &edn("0 invoke acquire
              1 invoke acquire
              0 ok acquire
              0 invoke release
              1 ok acquire
              0 ok release
              1 invoke release
              1 ok release"),
    );
    assert_eq!(result.verdict, Verdict::Valid, "{result:#?}");
}

#[test]
fn mutex_release_of_a_free_lock_is_invalid() {
    let result = checked(
        ModelKind::Mutex,
        &edn("0 invoke acquire
              0 ok acquire
              0 invoke release
              0 ok release
              1 invoke release
              1 ok release"),
    );
    let said = explanation(&result);
    assert!(
        said.starts_with("the lock was released when no one held it: process 1 released it"),
        "{said}"
    );
}

#[test]
fn mutex_fail_did_not_happen() {
    // A failed acquire did not take the lock, so the next one is fine; a failed release did not
    // free it, so the acquire after it is not.
    let free = edn("0 invoke acquire
                    0 fail acquire
                    1 invoke acquire
                    1 ok acquire");
    assert_eq!(checked(ModelKind::Mutex, &free).verdict, Verdict::Valid);
    let held = edn("0 invoke acquire
                    0 ok acquire
                    0 invoke release
                    0 fail release
                    1 invoke acquire
                    1 ok acquire");
    let said = explanation(&checked(ModelKind::Mutex, &held)).to_owned();
    assert!(said.contains("held by two clients at once"), "{said}");
}

#[test]
fn mutex_info_acquire_and_release_may_or_may_not_have_happened() {
    // An acquire that timed out may never have happened...
    let never = edn("0 invoke acquire
                     0 info acquire
                     1 invoke acquire
                     1 ok acquire");
    assert_eq!(checked(ModelKind::Mutex, &never).verdict, Verdict::Valid);
    // ...or it did, and a release by anyone then finds the lock held.
    let did = edn("0 invoke acquire
                   0 info acquire
                   1 invoke release
                   1 ok release");
    assert_eq!(checked(ModelKind::Mutex, &did).verdict, Verdict::Valid);
    // A release that timed out may have freed the lock for the next holder.
    let freed = edn("0 invoke acquire
                     0 ok acquire
                     0 invoke release
                     0 info release
                     1 invoke acquire
                     1 ok acquire");
    assert_eq!(checked(ModelKind::Mutex, &freed).verdict, Verdict::Valid);
    // But not before it was invoked.
    let early = edn("0 invoke acquire
                     0 ok acquire
                     1 invoke acquire
                     1 ok acquire
                     0 invoke release
                     0 info release");
    assert!(explanation(&checked(ModelKind::Mutex, &early)).contains("two clients at once"));
    // An operation still pending at the end counts as info.
    let pending = edn("0 invoke acquire
                       0 ok acquire
                       0 invoke release
                       1 invoke acquire
                       1 ok acquire");
    assert_eq!(checked(ModelKind::Mutex, &pending).verdict, Verdict::Valid);
}

#[test]
fn mutexes_of_independent_keys_are_checked_apart() {
    let text = edn("0 invoke acquire [1 nil]
                    1 invoke acquire [2 nil]
                    0 ok acquire [1 nil]
                    1 ok acquire [2 nil]
                    2 invoke acquire [2 nil]
                    2 ok acquire [2 nil]
                    0 invoke release [1 nil]
                    0 ok release [1 nil]");
    let h = read(ModelKind::Mutex, None, &text);
    assert_eq!(h.keys, ["1", "2"]);
    let result = check(
        &h,
        &CheckOptions {
            all_keys: true,
            ..CheckOptions::default()
        },
    );
    let verdicts: Vec<(&str, Verdict)> = result
        .keys
        .iter()
        .map(|k| (k.key.as_str(), k.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [("1", Verdict::Valid), ("2", Verdict::Invalid)],
        "{result:#?}"
    );
    assert!(explanation(&result).contains("process 2 acquired it"));
}

/// A lock service's history as Jepsen records it (etcd's lock workload): one lock, clients that
/// time out and come back under new process numbers, errors, nemesis lines, fencing tokens in
/// acquire results, and a partition after which the service hands the lock to a second client
/// while the first still holds it.
const LOCK_SERVICE: &str = r#"{:index 0, :time 10243311, :type :invoke, :process 0, :f :acquire, :value nil}
{:index 1, :time 10301178, :type :invoke, :process 1, :f :acquire, :value nil}
{:index 2, :time 10398872, :type :invoke, :process 2, :f :acquire, :value nil}
{:index 3, :time 31872201, :type :ok, :process 0, :f :acquire, :value 17}
{:index 4, :time 2009853422, :type :info, :process 1, :f :acquire, :value nil, :error [:timeout "etcdserver: request timed out"]}
{:index 5, :time 2010411090, :type :info, :process 2, :f :acquire, :value nil, :error :timeout}
{:index 6, :time 2110000000, :type :invoke, :process 0, :f :release, :value nil}
{:index 7, :time 2131440018, :type :ok, :process 0, :f :release, :value nil}
{:index 8, :time 2200000000, :type :invoke, :process 4, :f :acquire, :value nil}
{:index 9, :time 2231000000, :type :ok, :process 4, :f :acquire, :value 21}
{:index 10, :time 3000000000, :type :info, :process :nemesis, :f :start-partition, :value :majority}
{:index 11, :time 3000511000, :type :info, :process :nemesis, :f :start-partition, :value [:isolated {"n1" #{"n2" "n3"}}]}
{:index 12, :time 3100000000, :type :invoke, :process 0, :f :acquire, :value nil}
{:index 13, :time 3102000000, :type :fail, :process 0, :f :acquire, :value nil, :error :already-held}
{:index 14, :time 3500000000, :type :invoke, :process 3, :f :acquire, :value nil}
{:index 15, :time 3560000000, :type :ok, :process 3, :f :acquire, :value 22}
{:index 16, :time 4000000000, :type :invoke, :process 4, :f :release, :value nil}
{:index 17, :time 4020000000, :type :ok, :process 4, :f :release, :value nil}
{:index 18, :time 4100000000, :type :invoke, :process 3, :f :release, :value nil}
{:index 19, :time 4100500000, :type :fail, :process 3, :f :release, :value nil, :error :not-held}
{:index 20, :time 5000000000, :type :info, :process :nemesis, :f :stop-partition, :value nil}
"#;

#[test]
fn a_lock_service_that_handed_one_lock_to_two_clients_is_invalid() {
    let result = checked(ModelKind::Mutex, LOCK_SERVICE);
    assert_eq!(
        explanation(&result),
        "the lock was held by two clients at once: process 3 acquired it (from 3.500000 s to \
         3.560000 s) while process 4 held it (acquired at 2.231000 s, released at 4.020000 s)"
    );
    // Without the second grant, the same history is fine: the timed-out acquires of processes
    // 1 and 2 never took effect.
    let fixed: String = LOCK_SERVICE
        .lines()
        .filter(|l| !l.contains(":process 3,"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(checked(ModelKind::Mutex, &fixed).verdict, Verdict::Valid);
    // Newer Jepsen writes records; the verdict is the same.
    let records = LOCK_SERVICE.replace("{:index", "#jepsen.history.Op{:index");
    let said = explanation(&checked(ModelKind::Mutex, &records)).to_owned();
    assert!(said.contains("held by two clients at once"), "{said}");
}

// ---------------------------------------------------------------------------------------------
// Set.

#[test]
fn set_read_that_misses_an_acknowledged_add_is_invalid() {
    let result = checked(
        ModelKind::Set,
        &edn("0 invoke add 1
              0 ok add 1
              1 invoke add 2
              1 ok add 2
              2 invoke read
              2 ok read #{1}"),
    );
    assert_eq!(
        explanation(&result),
        "read of set by process 2 (from 0.005000 s to 0.006000 s) misses 2, whose add completed \
         at 0.004000 s (process 1), before the read began: it returned [1]"
    );
}

#[test]
fn set_reads_see_exactly_what_was_added() {
    // A concurrent add may or may not be seen; the order of elements does not matter.
    let valid = edn("0 invoke add 1
                     0 ok add 1
                     1 invoke add 2
                     2 invoke read
                     2 ok read [1]
                     3 invoke read
                     3 ok read [2 1]
                     1 ok add 2
                     2 invoke read
                     2 ok read #{1 2}");
    assert_eq!(checked(ModelKind::Set, &valid).verdict, Verdict::Valid);
    let phantom = edn("0 invoke add 1
                       0 ok add 1
                       1 invoke read
                       1 ok read [1 7]");
    assert!(explanation(&checked(ModelKind::Set, &phantom)).contains("includes 7, never added"));
    // Seen, then unseen: no order explains both reads.
    let flicker = edn("0 invoke add 1
                       1 invoke read
                       1 ok read [1]
                       1 invoke read
                       1 ok read []
                       0 ok add 1");
    assert_eq!(checked(ModelKind::Set, &flicker).verdict, Verdict::Invalid);
}

#[test]
fn set_info_add_may_show_up_later_and_failed_add_never() {
    let info = edn("0 invoke add 1
                    0 info add 1
                    1 invoke read
                    1 ok read []
                    1 invoke read
                    1 ok read [1]");
    assert_eq!(checked(ModelKind::Set, &info).verdict, Verdict::Valid);
    let failed = info.replace(":type :info", ":type :fail");
    assert!(explanation(&checked(ModelKind::Set, &failed)).contains("includes 1, never added"));
}

// ---------------------------------------------------------------------------------------------
// Queues.

#[test]
fn queue_that_dequeues_what_was_never_enqueued_is_invalid() {
    for model in [ModelKind::UnorderedQueue, ModelKind::FifoQueue] {
        let result = checked(
            model,
            &edn("0 invoke enqueue 1
                  0 ok enqueue 1
                  1 invoke dequeue
                  1 ok dequeue 5"),
        );
        assert_eq!(
            explanation(&result),
            "dequeue from queue by process 1 (from 0.003000 s to 0.004000 s) dequeued 5, which \
             was never enqueued"
        );
    }
}

#[test]
fn fifo_queue_that_dequeues_out_of_order_is_invalid_and_an_unordered_one_is_not() {
    let text = edn("0 invoke enqueue 1
                    0 ok enqueue 1
                    0 invoke enqueue 2
                    0 ok enqueue 2
                    1 invoke dequeue
                    1 ok dequeue 2
                    1 invoke dequeue
                    1 ok dequeue 1");
    assert_eq!(
        checked(ModelKind::UnorderedQueue, &text).verdict,
        Verdict::Valid
    );
    let result = checked(ModelKind::FifoQueue, &text);
    assert_eq!(
        explanation(&result),
        "dequeue from queue by process 1 (from 0.005000 s to 0.006000 s) dequeued 2 out of \
         order: 1 was enqueued before it (process 0's enqueue completed at 0.002000 s, process \
         0's enqueue of 2 began at 0.003000 s) and was still in the queue"
    );
}

#[test]
fn queue_dequeues_each_element_once_and_not_before_its_enqueue() {
    let twice = edn("0 invoke enqueue 1
                     0 ok enqueue 1
                     1 invoke dequeue
                     1 ok dequeue 1
                     2 invoke dequeue
                     2 ok dequeue 1");
    assert!(
        explanation(&checked(ModelKind::UnorderedQueue, &twice))
            .contains("dequeued 1, which was dequeued twice but enqueued once")
    );
    let early = edn("1 invoke dequeue
                     1 ok dequeue 1
                     0 invoke enqueue 1
                     0 ok enqueue 1");
    assert!(
        explanation(&checked(ModelKind::FifoQueue, &early))
            .contains("dequeued 1 before it was enqueued")
    );
}

#[test]
fn fifo_info_dequeue_may_have_taken_the_oldest_element() {
    // The timed-out dequeue took 1; the next one rightly finds 2 at the head.
    let text = edn("0 invoke enqueue 1
                    0 ok enqueue 1
                    0 invoke enqueue 2
                    0 ok enqueue 2
                    1 invoke dequeue
                    1 info dequeue
                    2 invoke dequeue
                    2 ok dequeue 2");
    assert_eq!(checked(ModelKind::FifoQueue, &text).verdict, Verdict::Valid);
    // A failed dequeue took nothing.
    let failed = text.replace(":type :info", ":type :fail");
    assert_eq!(
        checked(ModelKind::FifoQueue, &failed).verdict,
        Verdict::Invalid
    );
}

// ---------------------------------------------------------------------------------------------
// Multi-register.

#[test]
fn multi_register_txn_that_reads_a_torn_state_is_invalid() {
    let text = edn("0 invoke txn [[:write :x 1] [:write :y 1]]
                    1 invoke txn [[:read :x nil] [:read :y nil]]
                    0 ok txn [[:write :x 1] [:write :y 1]]
                    1 ok txn [[:read :x 1] [:read :y 0]]");
    let h = read(ModelKind::MultiRegister, Some(Value::Int(0)), &text);
    assert_eq!(h.keys, ["multi-register"]);
    let result = check(&h, &CheckOptions::default());
    let said = explanation(&result);
    assert!(
        said.starts_with(
            "txn on multi-register by process 1 (from 0.002000 s to 0.004000 s) read a torn \
             state: :x = 1, :y = 0"
        ),
        "{said}"
    );
    // Either both writes or neither is fine.
    for (x, y) in [(0, 0), (1, 1)] {
        let fine = text.replace(
            "[[:read :x 1] [:read :y 0]]",
            &format!("[[:read :x {x}] [:read :y {y}]]"),
        );
        let h = read(ModelKind::MultiRegister, Some(Value::Int(0)), &fine);
        assert_eq!(check(&h, &CheckOptions::default()).verdict, Verdict::Valid);
    }
}

#[test]
fn multi_register_nil_reads_constrain_nothing_and_outcomes_count_as_in_knossos() {
    // Reads of nil (unknown values) are always fine, and a txn's own writes are seen by its
    // later reads; the registers start nil without an initial value.
    let nil_reads = edn("0 invoke txn [[:read :x nil] [:write :x 2] [:read :x nil]]
                         0 ok txn [[:read :x nil] [:write :x 2] [:read :x 2]]
                         1 invoke txn [[:read :x nil] [:read :y nil]]
                         1 ok txn [[:read :x 2] [:read :y nil]]");
    assert_eq!(
        checked(ModelKind::MultiRegister, &nil_reads).verdict,
        Verdict::Valid
    );
    // An info txn may have written; a failed one did not.
    let info = edn("0 invoke txn [[:write :x 5]]
                    0 info txn [[:write :x 5]]
                    1 invoke txn [[:read :x nil]]
                    1 ok txn [[:read :x 5]]");
    assert_eq!(
        checked(ModelKind::MultiRegister, &info).verdict,
        Verdict::Valid
    );
    let failed = info.replace(":type :info", ":type :fail");
    assert_eq!(
        explanation(&checked(ModelKind::MultiRegister, &failed)),
        "txn on multi-register by process 1 (from 0.003000 s to 0.004000 s) read :x = 5, but \
         no transaction ever wrote 5 to :x"
    );
}

#[test]
fn multi_registers_of_independent_keys_are_checked_apart() {
    let text = edn("0 invoke txn [7 [[:write 0 1]]]
                    0 ok txn [7 [[:write 0 1]]]
                    1 invoke txn [8 [[:read 0 nil]]]
                    1 ok txn [8 [[:read 0 1]]]");
    let h = read(ModelKind::MultiRegister, None, &text);
    assert_eq!(h.keys, ["7", "8"]);
    let Call::Txn(micro) = &h.ops[1].call else {
        panic!("{:?}", h.ops[1].call)
    };
    assert_eq!(micro[0].value(), &Some(Value::Int(1)), "completed as read");
    let result = check(&h, &CheckOptions::default());
    assert_eq!(result.keys[0].verdict, Verdict::Valid);
    assert_eq!(result.keys[1].verdict, Verdict::Invalid);
}

// ---------------------------------------------------------------------------------------------
// Registers, through the same reader.

#[test]
fn cas_register_reads_of_nil_constrain_nothing_and_failed_cas_did_not_happen() {
    let text = edn("0 invoke write 1
                    0 ok write 1
                    1 invoke read
                    1 ok read nil
                    1 invoke cas [3 4]
                    1 fail cas [3 4]
                    1 invoke read
                    1 ok read 1");
    let h = read(ModelKind::CasRegister, None, &text);
    assert_eq!(h.ops[1].outcome, Outcome::Info);
    assert_eq!(h.ops[2].outcome, Outcome::Fail);
    assert_eq!(check(&h, &CheckOptions::default()).verdict, Verdict::Valid);
}
