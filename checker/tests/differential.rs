//! Differential tests of the linearizability search.
//!
//! The checker's search is clever (memoised Wing–Gong with dominance pruning over `info`
//! operations), so it is compared with something too simple to be wrong: an exhaustive
//! enumeration of linearisation orders per key, written from Jepsen's rules alone. Random small
//! histories must get the same verdict from both; histories recorded from a simulated
//! linearizable store must be valid; corrupting one read must be caught and explained; and a
//! budget that runs out must give `unknown`, never a guess.

mod support;

use std::time::Duration;

use checker::{Anomaly, Call, CheckOptions, History, Operation, Outcome, Value, Verdict, check};
use rand::prelude::*;
use support::*;

fn verdict(h: &History) -> Verdict {
    check(h, &CheckOptions::default()).verdict
}

fn expected(valid: bool) -> Verdict {
    if valid {
        Verdict::Valid
    } else {
        Verdict::Invalid
    }
}

/// Panics with a shrunk counterexample if the checker and the oracle disagree on `h`.
fn assert_agrees(seed: u64, h: &History) -> bool {
    let valid = oracle(h);
    let disagrees = |h: &History| verdict(h) != expected(oracle(h));
    if disagrees(h) {
        let small = shrink(h.clone(), disagrees);
        panic!(
            "seed {seed}: checker says {:?}, brute force says {:?}\nhistory:\n{}shrunk to ({:?} vs {:?}):\n{}",
            verdict(h),
            expected(valid),
            dump(h),
            verdict(&small),
            expected(oracle(&small)),
            dump(&small)
        );
    }
    valid
}

fn assert_healthy_mix(valid: usize, total: usize) {
    let share = valid as f64 / total as f64;
    assert!(
        (0.1..=0.9).contains(&share),
        "{valid} of {total} histories valid: the test would not tell a broken checker apart"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn oracle_knows_the_basic_rules() {
    let shape = Shape {
        keys: 1,
        processes: 2,
        ops: 0,
        values: 3,
    };
    let d = |process, call, invoke, complete: Option<u64>| Draft {
        process,
        key: 0,
        call,
        fate: Fate::Ok,
        invoke,
        complete,
    };
    let h = |ops: Vec<(Draft, Outcome)>| {
        let (drafts, outcomes) = ops.into_iter().unzip();
        history(&shape, drafts, outcomes, None)
    };
    let write = |v| Call::Write(Value::Int(v));
    let read = |v: i64| Outcome::Ok(Some(Value::Int(v)));
    // A read after a completed write must see it...
    let stale = h(vec![
        (d(0, write(1), 0, Some(1)), Outcome::Ok(None)),
        (d(1, Call::Read, 2, Some(3)), Outcome::Ok(None)),
    ]);
    // ...unless they overlap.
    let concurrent = h(vec![
        (d(0, write(1), 0, Some(2)), Outcome::Ok(None)),
        (d(1, Call::Read, 1, Some(3)), Outcome::Ok(None)),
    ]);
    // An info write may take effect long after it completed; a failed one never does.
    let late = |outcome| {
        h(vec![
            (d(0, write(1), 0, Some(1)), outcome),
            (d(1, Call::Read, 2, Some(3)), Outcome::Ok(None)),
            (d(1, Call::Read, 4, Some(5)), read(1)),
        ])
    };
    for (h, valid) in [
        (stale, false),
        (concurrent, true),
        (late(Outcome::Info), true),
        (late(Outcome::Fail), false),
    ] {
        assert_eq!(oracle(&h), valid, "{}", dump(&h));
        assert_agrees(0, &h);
    }
}

#[test]
fn fast_search_agrees_with_brute_force_on_random_histories() {
    const SEEDS: u64 = 3000;
    let mut valid = 0;
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape = Shape {
            keys: rng.random_range(1..=2),
            processes: rng.random_range(2..=4),
            ops: rng.random_range(1..=8),
            values: 3,
        };
        let h = random_history(&mut rng, &shape);
        valid += usize::from(assert_agrees(seed, &h));
    }
    assert_healthy_mix(valid, SEEDS as usize);
}

/// Appends build values: the key-value model refutes a read before searching when it lacks an
/// append completed before it began, and otherwise searches with a prefix lookahead. Both must
/// agree with brute force.
#[test]
fn fast_search_agrees_with_brute_force_on_append_histories() {
    const SEEDS: u64 = 3000;
    let mut valid = 0;
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape = Shape {
            keys: rng.random_range(1..=2),
            processes: rng.random_range(2..=4),
            ops: rng.random_range(1..=10),
            values: 3,
        };
        let h = append_history(&mut rng, &shape, seed % 3 != 0);
        valid += usize::from(assert_agrees(seed, &h));
    }
    assert_healthy_mix(valid, SEEDS as usize);
}

/// The same, over adversarial append histories: overlapping, repeated and empty appended
/// strings, integers among strings, `info` and `fail` appends, writes, deletes and CASes, CASes
/// that miss, initial values. The refutation before search must never fire on a linearizable
/// key, and must not hide an invalid one.
#[test]
fn fast_search_agrees_with_brute_force_on_adversarial_append_histories() {
    const SEEDS: u64 = 6000;
    let (mut valid, mut refuted) = (0, 0);
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape = Shape {
            keys: 1,
            processes: rng.random_range(2..=4),
            ops: rng.random_range(1..=11),
            values: 3,
        };
        let h = adversarial_append_history(&mut rng, &shape, seed % 4 != 0);
        valid += usize::from(assert_agrees(seed, &h));
        let result = check(&h, &CheckOptions::default());
        refuted += result
            .keys
            .iter()
            .filter_map(|k| k.anomaly.as_ref())
            .filter(|a| a.refuted_before_search)
            .count();
    }
    assert_healthy_mix(valid, SEEDS as usize);
    // The refutation is exercised, not only the search.
    assert!(refuted > 200, "only {refuted} refuted before search");
}

#[test]
fn histories_from_a_sequential_execution_are_valid() {
    for seed in 0..200 {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape = Shape {
            keys: 3,
            processes: 8,
            ops: rng.random_range(200..=500),
            values: 5,
        };
        let h = linearizable_history(&mut rng, &shape);
        let result = check(&h, &CheckOptions::default());
        assert_eq!(
            result.verdict,
            Verdict::Valid,
            "seed {seed}: {:?}\n{}",
            result.keys,
            dump(&h)
        );
    }
}

/// The indices of the `ok` reads of `h`.
fn ok_reads(h: &History) -> Vec<usize> {
    (0..h.ops.len())
        .filter(|&i| h.ops[i].call == Call::Read && matches!(h.ops[i].outcome, Outcome::Ok(_)))
        .collect()
}

/// A large recorded history in which one `ok` read (index returned) saw a value nobody wrote.
fn with_phantom_read(seed: u64) -> (History, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let shape = Shape {
        keys: 3,
        processes: 8,
        ops: rng.random_range(200..=500),
        values: 5,
    };
    let mut h = linearizable_history(&mut rng, &shape);
    let read = *ok_reads(&h)
        .choose(&mut rng)
        .expect("hundreds of ops include a read");
    h.ops[read].outcome = Outcome::Ok(Some(Value::Int(1_000_000)));
    (h, read)
}

/// The anomaly reported for the key of operation `op`.
fn anomaly_at(h: &History, op: usize) -> Option<Anomaly> {
    let key = h.key_name(&h.ops[op]);
    let result = check(h, &CheckOptions::default());
    assert_eq!(result.verdict, Verdict::Invalid, "{}", dump(h));
    result.keys.into_iter().find(|k| k.key == key)?.anomaly
}

#[test]
fn a_mutated_read_is_caught_when_nothing_explains_it() {
    // Small recorded histories: change one read to any other value; brute force judges.
    let (mut total, mut valid) = (0, 0);
    for seed in 0..2000 {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape = Shape {
            keys: 1,
            processes: rng.random_range(2..=4),
            ops: 9,
            values: 3,
        };
        let mut h = linearizable_history(&mut rng, &shape);
        assert!(oracle(&h), "seed {seed}: recorded, yet\n{}", dump(&h));
        let Some(&read) = ok_reads(&h).choose(&mut rng) else {
            continue;
        };
        let was = h.ops[read].outcome.clone();
        while h.ops[read].outcome == was {
            h.ops[read].outcome = Outcome::Ok(random_value(&mut rng, shape.values));
        }
        total += 1;
        valid += usize::from(assert_agrees(seed, &h));
    }
    assert!(total > 1000, "only {total} histories had a read");
    assert_healthy_mix(valid, total);

    // Large ones: a value nobody wrote is always caught, and when the read is blamed (see the
    // ignored test below for when it is not) the explanation says what is wrong with it.
    for seed in 0..100 {
        let (h, read) = with_phantom_read(seed);
        let anomaly = anomaly_at(&h, read).expect("the read's key has the anomaly");
        if anomaly.culprit.index == read {
            let said = &anomaly.explanation;
            assert!(
                said.contains("no operation ever wrote 1000000"),
                "seed {seed}: {said}"
            );
        }
    }
}

/// Regression: the culprit is chosen after the longest prefix found, and that length used to
/// count `info` operations, so a prefix padded with them left an innocent operation (here the
/// delete) as the first one that "cannot be placed". The value read is written, but only after
/// the read, so the search (not the up-front refutation of never-written values) must find it.
#[test]
fn the_culprit_of_a_phantom_read_is_that_read() {
    let op = |call, outcome, invoke: u64, complete: Option<u64>| Operation {
        process: invoke,
        key: 0,
        call,
        outcome,
        invoke: event(invoke),
        complete: complete.map(event),
    };
    let h = History {
        keys: vec!["k".to_owned()],
        ops: vec![
            op(Call::Write(Value::Int(3)), Outcome::Ok(None), 0, Some(4)),
            op(Call::Delete, Outcome::Ok(None), 1, Some(5)),
            op(
                Call::Cas {
                    expected: Some(Value::Int(3)),
                    new: Value::Int(1),
                },
                Outcome::Info,
                2,
                None,
            ),
            op(Call::Delete, Outcome::Info, 3, None),
            op(
                Call::Read,
                Outcome::Ok(Some(Value::Int(1_000_000))),
                6,
                Some(7),
            ),
            op(
                Call::Write(Value::Int(1_000_000)),
                Outcome::Ok(None),
                8,
                Some(9),
            ),
        ],
        initial: None,
        timed: false,
        ..History::default()
    };
    let cases = std::iter::once((h, 4)).chain((0..100).map(with_phantom_read));
    for (h, read) in cases {
        let anomaly = anomaly_at(&h, read).expect("the read's key has the anomaly");
        assert_eq!(
            anomaly.culprit.index,
            read,
            "{}\n{}",
            anomaly.explanation,
            dump(&h)
        );
    }
}

/// Many concurrent writes and a read of a value none of them wrote (it is written only after
/// the read, so nothing refutes it up front): the search must try every subset of the writes.
fn hard_invalid_history(writers: u64) -> History {
    let mut ops: Vec<Operation> = (0..writers)
        .map(|p| Operation {
            process: p,
            key: 0,
            call: Call::Write(Value::Int(p as i64)),
            outcome: Outcome::Ok(None),
            invoke: event(p),
            complete: Some(event(2 * writers + 1 - p)),
        })
        .collect();
    ops.push(Operation {
        process: writers,
        key: 0,
        call: Call::Read,
        outcome: Outcome::Ok(Some(Value::Int(-1))),
        invoke: event(writers),
        complete: Some(event(writers + 1)),
    });
    ops.push(Operation {
        process: writers + 1,
        key: 0,
        call: Call::Write(Value::Int(-1)),
        outcome: Outcome::Ok(None),
        invoke: event(2 * writers + 2),
        complete: Some(event(2 * writers + 3)),
    });
    History {
        keys: vec!["k0".to_owned()],
        ops,
        initial: Some(Value::Int(0)),
        timed: false,
        ..History::default()
    }
}

#[test]
fn unknown_is_reported_instead_of_a_wrong_answer_when_the_budget_is_tiny() {
    let h = hard_invalid_history(14);
    assert_eq!(verdict(&h), Verdict::Invalid);

    let no_time = CheckOptions {
        time_limit: Some(Duration::ZERO),
        ..CheckOptions::default()
    };
    let result = check(&h, &no_time);
    assert_eq!(result.verdict, Verdict::Unknown);
    let reason = result.keys[0]
        .reason
        .as_deref()
        .expect("an unknown key says why");
    assert!(reason.contains("time limit"), "{reason}");

    // Too little memory: the search may finish within its first slice, but must never guess.
    let no_memory = CheckOptions {
        memory_limit: 0,
        ..CheckOptions::default()
    };
    let result = check(&h, &no_memory);
    assert_ne!(result.verdict, Verdict::Valid);
    if result.verdict == Verdict::Unknown {
        let reason = result.keys[0]
            .reason
            .as_deref()
            .expect("an unknown key says why");
        assert!(reason.contains("memory limit"), "{reason}");
    }
}

/// `h` restricted to the operations `keep` (indices into `h.ops`, any order).
fn restricted(h: &History, keep: &[usize]) -> History {
    let mut keep = keep.to_vec();
    keep.sort_by_key(|&i| h.ops[i].invoke.index);
    History {
        ops: keep.iter().map(|&i| h.ops[i].clone()).collect(),
        ..h.clone()
    }
}

/// The value an operation observes (an `ok` read's value, an `ok` CAS's expected value).
fn observed(op: &Operation) -> Option<&Value> {
    match (&op.call, &op.outcome) {
        (Call::Read, Outcome::Ok(Some(v))) => Some(v),
        (
            Call::Cas {
                expected: Some(v), ..
            },
            Outcome::Ok(_),
        ) => Some(v),
        _ => None,
    }
}

/// The value an operation that took effect (or may have) leaves.
fn written(op: &Operation) -> Option<&Value> {
    match (&op.call, &op.outcome) {
        (_, Outcome::Fail | Outcome::PreconditionFailed) => None,
        (Call::Write(v) | Call::Cas { new: v, .. }, _) => Some(v),
        _ => None,
    }
}

/// Whether `part` (a sub-history of `whole`) observes a value that `whole` wrote but `part`
/// left its writers out: a trivial refutation the core's definition excludes.
fn orphaned(whole: &History, part: &History) -> bool {
    let read_orphan = part.ops.iter().filter_map(observed).any(|v| {
        part.initial.as_ref() != Some(v)
            && whole.ops.iter().any(|o| written(o) == Some(v))
            && !part.ops.iter().any(|o| written(o) == Some(v))
    });
    // A CAS that missed saw another value: some writer of another value must remain.
    let miss_orphan = part.ops.iter().any(|c| match (&c.call, &c.outcome) {
        (Call::Cas { expected, .. }, Outcome::PreconditionFailed) => {
            let other = |o: &&Operation| {
                !std::ptr::eq(*o, c)
                    && match (&o.call, &o.outcome) {
                        (_, Outcome::Fail | Outcome::PreconditionFailed) => false,
                        (Call::Delete, _) => expected.is_some(),
                        _ => written(o).is_some_and(|v| Some(v) != expected.as_ref()),
                    }
            };
            whole.ops.iter().any(|o| other(&o)) && !part.ops.iter().any(|o| other(&o))
        }
        _ => false,
    });
    read_orphan || miss_orphan
}

/// The core is not linearizable on its own, and removing any one operation makes it so (or
/// leaves a read of a value whose every writer was removed).
fn assert_minimal_core(seed: u64, h: &History, judge: impl Fn(&History) -> bool) -> usize {
    assert_minimal_core_by(seed, h, judge, orphaned)
}

/// [`assert_minimal_core`] with another rule for what a core must keep.
fn assert_minimal_core_by(
    seed: u64,
    h: &History,
    judge: impl Fn(&History) -> bool,
    orphaned: impl Fn(&History, &History) -> bool,
) -> usize {
    let result = check(h, &CheckOptions::default());
    let key = result
        .keys
        .iter()
        .find(|k| k.verdict == Verdict::Invalid)
        .expect("an invalid key");
    let core = key.anomaly.as_ref().unwrap().core.as_ref().expect("a core");
    assert!(
        core.minimal,
        "seed {seed}: not minimal after {} checks",
        core.checks
    );
    let ops: Vec<usize> = core.ops.iter().map(|o| o.index).collect();
    let whole = restricted(h, &ops);
    assert!(
        !judge(&whole),
        "seed {seed}: the core is linearizable\n{}",
        dump(&whole)
    );
    assert!(
        !orphaned(h, &whole),
        "seed {seed}: the core lost a writer\n{}",
        dump(&whole)
    );
    for drop in 0..ops.len() {
        let mut fewer = ops.clone();
        fewer.remove(drop);
        let smaller = restricted(h, &fewer);
        assert!(
            judge(&smaller) || orphaned(h, &smaller),
            "seed {seed}: the core without op {} is still not linearizable\n{}",
            ops[drop],
            dump(&smaller)
        );
    }
    ops.len()
}

#[test]
fn a_core_is_invalid_and_one_minimal_on_random_histories() {
    let mut cores = 0;
    for seed in 0..400 {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape = Shape {
            keys: 1,
            processes: rng.random_range(2..=4),
            ops: rng.random_range(2..=9),
            values: 3,
        };
        let h = random_history(&mut rng, &shape);
        if oracle(&h) {
            continue;
        }
        // Judged by brute force, not by the checker that found the core.
        assert_minimal_core(seed, &h, oracle);
        cores += 1;
    }
    assert!(cores > 50, "only {cores} invalid histories");
}

/// Whether `part` (a sub-history of `whole`, from [`append_history`]) has a read whose value
/// `whole`'s writes and appends can build but `part`'s cannot: a value is an optional written
/// `w<i>w` followed by appended `x<i>y` pieces.
fn append_orphaned(whole: &History, part: &History) -> bool {
    let builds = |h: &History, v: &str| {
        let has = |call: Call| {
            h.ops
                .iter()
                .any(|o| o.call == call && !matches!(o.outcome, Outcome::Fail))
        };
        let (base, rest) = match v.strip_prefix('w') {
            Some(after) => {
                let end = after.find('w').expect("a written value ends in w") + 2;
                (Some(&v[..end]), &v[end..])
            }
            None => (None, v),
        };
        base.is_none_or(|b| has(Call::Write(Value::Str(b.to_owned()))))
            && rest
                .split_inclusive('y')
                .all(|piece| has(Call::Append(Value::Str(piece.to_owned()))))
    };
    part.ops.iter().any(|o| match (&o.call, &o.outcome) {
        (Call::Read, Outcome::Ok(Some(Value::Str(v)))) => builds(whole, v) && !builds(part, v),
        _ => false,
    })
}

#[test]
fn a_core_of_an_append_history_keeps_what_its_reads_need_and_is_one_minimal() {
    let mut cores = 0;
    for seed in 0..400 {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape = Shape {
            keys: 1,
            processes: rng.random_range(2..=4),
            ops: rng.random_range(2..=10),
            values: 3,
        };
        let h = append_history(&mut rng, &shape, true);
        if oracle(&h) {
            continue;
        }
        assert_minimal_core_by(seed, &h, oracle, append_orphaned);
        cores += 1;
    }
    assert!(cores > 50, "only {cores} invalid histories");
}

#[test]
fn a_stale_read_in_a_long_history_shrinks_to_a_handful_of_operations() {
    let mut sizes = Vec::new();
    for seed in 0..20 {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape = Shape {
            keys: 1,
            processes: 4,
            ops: 150,
            values: 4,
        };
        let mut h = linearizable_history(&mut rng, &shape);
        // Change one read to another value until the history is not linearizable.
        let reads = ok_reads(&h);
        let original = h.clone();
        while verdict(&h) == Verdict::Valid {
            h = original.clone();
            let r = *reads.choose(&mut rng).unwrap();
            h.ops[r].outcome = Outcome::Ok(Some(Value::Int(rng.random_range(0..4))));
        }
        let size = assert_minimal_core(seed, &h, |h| verdict(h) == Verdict::Valid);
        sizes.push(size);
    }
    sizes.sort();
    // The whole history has 150 operations; a core is a few.
    assert!(sizes[sizes.len() / 2] <= 6, "core sizes {sizes:?}");
}

/// The explanation's "lacks" story (the up-front refutation's rule, told over the history's
/// operations) must hold: an `info` write may take effect after its completion event, so an
/// `info` write completed before the append began can still fall between the append and the
/// read. Here the read of "zq" is impossible (nobody wrote or appended "q"), but not because it
/// lacks "a": the `info` write of "z" may come after the append.
#[test]
fn an_info_write_completed_before_an_append_may_still_replace_it() {
    let op = |process, call, outcome, invoke: u64, complete: u64| Operation {
        process,
        key: 0,
        call,
        outcome,
        invoke: event(invoke),
        complete: Some(event(complete)),
    };
    let s = |s: &str| Value::Str(s.to_owned());
    let h = History {
        keys: vec!["k".to_owned()],
        ops: vec![
            op(0, Call::Write(s("z")), Outcome::Info, 0, 1),
            op(1, Call::Append(s("a")), Outcome::Ok(None), 2, 3),
            op(2, Call::Read, Outcome::Ok(Some(s("zq"))), 4, 5),
        ],
        ..History::default()
    };
    assert!(!oracle(&h));
    let anomaly = anomaly_at(&h, 2).expect("an anomaly");
    assert!(
        !anomaly.explanation.contains("which lacks"),
        "{}",
        anomaly.explanation
    );
    // Without the read's impossible "q", the history is linearizable: append, write, read.
    let mut fine = h.clone();
    fine.ops[2].outcome = Outcome::Ok(Some(s("z")));
    assert!(oracle(&fine));
    assert_eq!(verdict(&fine), Verdict::Valid);
}

/// An operation on key "k" invoked at `invoke` and completed at `complete`, for hand-written
/// histories.
fn at(process: u64, call: Call, outcome: Outcome, invoke: u64, complete: u64) -> Operation {
    Operation {
        process,
        key: 0,
        call,
        outcome,
        invoke: event(invoke),
        complete: Some(event(complete)),
    }
}

fn text(s: &str) -> Value {
    Value::Str(s.to_owned())
}

/// The core of `h`'s only invalid key, as indices into `h.ops`.
fn core_of(h: &History) -> Vec<usize> {
    let result = check(h, &CheckOptions::default());
    let key = result
        .keys
        .iter()
        .find(|k| k.verdict == Verdict::Invalid)
        .expect("an invalid key");
    let core = key.anomaly.as_ref().unwrap().core.as_ref().expect("a core");
    core.ops.iter().map(|o| o.index).collect()
}

/// The shrinker's rule for a read built by appends must keep what builds it, as many times as
/// it is appended: a read of "aa" needs both appends of "a". Here the read is stale (it missed
/// the write of "x"); a core of one append of "a" and the read is "invalid" merely because the
/// other append was cut, and tells nothing about the anomaly.
#[test]
fn a_core_keeps_as_many_appends_of_a_string_as_the_read_holds() {
    let ok = || Outcome::Ok(None);
    let h = History {
        keys: vec!["k".to_owned()],
        ops: vec![
            at(0, Call::Append(text("a")), ok(), 0, 1),
            at(0, Call::Append(text("a")), ok(), 2, 3),
            at(1, Call::Write(text("x")), ok(), 4, 5),
            at(2, Call::Read, Outcome::Ok(Some(text("aa"))), 6, 7),
        ],
        ..History::default()
    };
    assert!(!oracle(&h));
    let core = core_of(&h);
    assert!(
        !core.contains(&3) || (core.contains(&0) && core.contains(&1)),
        "the core {core:?} reads \"aa\" with one append of \"a\""
    );
}

/// The shrinker's rule for a read built by appends must keep what builds it whichever base it
/// keeps. "wab" is the write of "w" followed by the appends of "a" and "b", or the write of "wa"
/// followed by the append of "b"; here the read of it is stale (it missed the write of "x").
/// A core that keeps the write of "w" but not the append of "a" ("w", "b", the read) is
/// "invalid" merely because "a" was cut: no order of its operations builds "wab".
#[test]
fn a_core_keeps_every_append_between_the_base_it_keeps_and_the_read() {
    let ok = || Outcome::Ok(None);
    let h = History {
        keys: vec!["k".to_owned()],
        ops: vec![
            at(0, Call::Write(text("wa")), ok(), 0, 1),
            at(0, Call::Write(text("w")), ok(), 2, 3),
            at(0, Call::Append(text("a")), ok(), 4, 5),
            at(0, Call::Append(text("b")), ok(), 6, 7),
            at(1, Call::Write(text("x")), ok(), 8, 9),
            at(2, Call::Read, Outcome::Ok(Some(text("wab"))), 10, 11),
        ],
        ..History::default()
    };
    assert!(!oracle(&h));
    let core = core_of(&h);
    assert!(
        !(core.contains(&5) && core.contains(&1) && !core.contains(&0)) || core.contains(&2),
        "the core {core:?} reads \"wab\" from \"w\" without the append of \"a\""
    );
}

/// The values some order of `h`'s operations that set or extend the value (each once at most,
/// real time ignored) can leave, from the initial value. A CAS only sets from its expected value.
fn reachable_values(h: &History) -> Vec<Option<Value>> {
    let effects: Vec<&Operation> = h
        .ops
        .iter()
        .filter(|o| !matches!(o.outcome, Outcome::Fail | Outcome::PreconditionFailed))
        .filter(|o| !matches!(o.call, Call::Read))
        .collect();
    assert!(effects.len() < 32, "too many operations to enumerate");
    let mut seen = std::collections::HashSet::new();
    let mut todo = vec![(0u32, h.initial.clone())];
    while let Some((used, state)) = todo.pop() {
        if !seen.insert((used, state.clone())) {
            continue;
        }
        for (i, o) in effects.iter().enumerate() {
            if used & (1 << i) != 0 {
                continue;
            }
            let next = match &o.call {
                Call::Write(v) => Some(v.clone()),
                Call::Delete => None,
                Call::Cas { expected, new } if *expected == state => Some(new.clone()),
                Call::Append(v) => Some(appended(&state, v)),
                _ => continue,
            };
            todo.push((used | (1 << i), next));
        }
    }
    let mut values: Vec<Option<Value>> = Vec::new();
    for (_, v) in seen {
        if !values.contains(&v) {
            values.push(v);
        }
    }
    values
}

/// Whether `part` (a sub-history of `whole`) has an `ok` read of a non-empty string that some
/// order of `whole`'s operations builds but no order of `part`'s does.
fn unbuilt(whole: &History, part: &History) -> bool {
    let (all, some) = (reachable_values(whole), reachable_values(part));
    part.ops.iter().any(|o| match (&o.call, &o.outcome) {
        (Call::Read, Outcome::Ok(v @ Some(Value::Str(s)))) if !s.is_empty() => {
            all.contains(v) && !some.contains(v)
        }
        _ => false,
    })
}

/// The shrinker's rule for reads built by appends, over adversarial histories of strings
/// (overlapping, repeated; written, deleted and appended, some `info` or `fail`): a core never
/// reads a string its own operations cannot build in any order, when the whole history can.
/// (Left out: integers among strings, whose text the rule compares; empty strings and absent
/// values, which the rule does not ask a source for; CASes, whose sources the rule does not
/// chase.)
#[test]
fn a_core_of_an_adversarial_append_history_keeps_what_builds_its_reads() {
    let mut cores = 0;
    for seed in 0..3000 {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape = Shape {
            keys: 1,
            processes: rng.random_range(2..=4),
            ops: rng.random_range(2..=9),
            values: 3,
        };
        let h = adversarial_append_history(&mut rng, &shape, true);
        let plain = |v: &Value| matches!(v, Value::Str(s) if !s.is_empty());
        let simple = h.initial.as_ref().is_none_or(plain)
            && h.ops.iter().all(|o| match &o.call {
                Call::Cas { .. } => false,
                Call::Write(v) | Call::Append(v) => plain(v),
                _ => true,
            });
        if !simple || oracle(&h) {
            continue;
        }
        let core = core_of(&h);
        let part = restricted(&h, &core);
        assert!(
            !oracle(&part),
            "seed {seed}: the core is linearizable\n{}",
            dump(&part)
        );
        assert!(
            !unbuilt(&h, &part),
            "seed {seed}: the core reads what it cannot build\n{}from\n{}",
            dump(&part),
            dump(&h)
        );
        cores += 1;
    }
    assert!(cores > 200, "only {cores} invalid histories");
}
