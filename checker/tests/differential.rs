//! Differential tests of the linearizability search.
//!
//! The checker's search is clever (memoised Wing–Gong with dominance pruning over `info`
//! operations), so it is compared with something too simple to be wrong: an exhaustive
//! enumeration of linearisation orders per key, written from Jepsen's rules alone. Random small
//! histories must get the same verdict from both; histories recorded from a simulated
//! linearizable store must be valid; corrupting one read must be caught and explained; and a
//! budget that runs out must give `unknown`, never a guess.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use checker::{Call, CheckOptions, Event, History, Operation, Outcome, Value, Verdict, check};
use rand::prelude::*;

// ---------------------------------------------------------------------------------------------
// The oracle: brute force over linearisation orders, one key at a time.

/// What an operation requires of, or does to, its key in the sequential specification.
enum Effect {
    Read(Option<Value>),
    Set(Option<Value>),
    Cas(Value, Value),
    /// A CAS whose precondition failed: the key did not hold this value.
    NotEqual(Value),
}

struct OracleOp {
    invoke: u64,
    /// `None` for an operation that may take effect at any point after its invocation, or never.
    complete: Option<u64>,
    effect: Effect,
}

/// The operation as the oracle sees it; `None` when it constrains nothing.
fn oracle_op(op: &Operation) -> Option<OracleOp> {
    let effect = match (&op.call, &op.outcome) {
        (_, Outcome::Fail) | (Call::Read, Outcome::Info) => return None,
        (Call::Read, Outcome::Ok(v)) => Effect::Read(v.clone()),
        (Call::Cas { expected, .. }, Outcome::PreconditionFailed) => {
            Effect::NotEqual(expected.clone())
        }
        (Call::Write(v), Outcome::Ok(_) | Outcome::Info) => Effect::Set(Some(v.clone())),
        (Call::Delete, Outcome::Ok(_) | Outcome::Info) => Effect::Set(None),
        (Call::Cas { expected, new }, Outcome::Ok(_) | Outcome::Info) => {
            Effect::Cas(expected.clone(), new.clone())
        }
        (call, outcome) => panic!("the oracle does not model {call:?} -> {outcome:?}"),
    };
    let complete = match op.outcome {
        Outcome::Info => None,
        _ => Some(
            op.complete
                .expect("a definite outcome has a completion")
                .index,
        ),
    };
    Some(OracleOp {
        invoke: op.invoke.index,
        complete,
        effect,
    })
}

/// The state after `effect`, or `None` if it cannot happen in `state`.
fn apply(state: &Option<Value>, effect: &Effect) -> Option<Option<Value>> {
    match effect {
        Effect::Read(v) => (state == v).then(|| state.clone()),
        Effect::Set(v) => Some(v.clone()),
        Effect::Cas(expected, new) => (state.as_ref() == Some(expected)).then(|| Some(new.clone())),
        Effect::NotEqual(v) => (state.as_ref() != Some(v)).then(|| state.clone()),
    }
}

/// Whether the oracle finds a linearisation of every key.
fn oracle(h: &History) -> bool {
    (0..h.keys.len() as u32).all(|key| {
        let ops: Vec<OracleOp> = h
            .ops
            .iter()
            .filter(|op| op.key == key)
            .filter_map(oracle_op)
            .collect();
        assert!(ops.len() <= 20, "too many operations for brute force");
        place(&ops, 0, h.initial.clone(), &mut HashSet::new())
    })
}

/// Tries every operation that may come next: one not yet placed whose invocation precedes the
/// earliest completion of the required operations not yet placed. Done when all required ones
/// are placed (optional ones may stay out). `dead`: (placed set, state) pairs known to fail.
fn place(
    ops: &[OracleOp],
    placed: u32,
    state: Option<Value>,
    dead: &mut HashSet<(u32, Option<Value>)>,
) -> bool {
    let unplaced = |i: &usize| placed & (1 << i) == 0;
    let Some(deadline) = (0..ops.len())
        .filter(unplaced)
        .filter_map(|i| ops[i].complete)
        .min()
    else {
        return true;
    };
    if dead.contains(&(placed, state.clone())) {
        return false;
    }
    for i in (0..ops.len()).filter(unplaced) {
        if ops[i].invoke < deadline
            && let Some(next) = apply(&state, &ops[i].effect)
            && place(ops, placed | 1 << i, next, dead)
        {
            return true;
        }
    }
    dead.insert((placed, state));
    false
}

// ---------------------------------------------------------------------------------------------
// Generators.

#[derive(Clone, Copy, PartialEq)]
enum Fate {
    Ok,
    Fail,
    Info,
}

/// An operation whose outcome is not settled yet.
struct Draft {
    process: u64,
    key: u32,
    call: Call,
    fate: Fate,
    invoke: u64,
    complete: Option<u64>,
}

struct Shape {
    keys: u32,
    processes: usize,
    ops: usize,
    /// Values are `Int(0..values)`.
    values: i64,
}

fn random_call(rng: &mut StdRng, values: i64) -> Call {
    let kind = rng.random_range(0..10);
    let mut value = || Value::Int(rng.random_range(0..values));
    match kind {
        0..=3 => Call::Read,
        4..=6 => Call::Write(value()),
        7 => Call::Delete,
        _ => Call::Cas {
            expected: value(),
            new: value(),
        },
    }
}

/// Random concurrent operations: processes invoke and complete in a random interleaving. A
/// process whose operation ends `info` (sometimes with no completion at all) never invokes
/// again; a fresh process takes its place, as in Jepsen.
fn drafts(rng: &mut StdRng, shape: &Shape) -> Vec<Draft> {
    let mut drafts: Vec<Draft> = Vec::new();
    // Per client slot: its current process and its operation in flight.
    let mut slots: Vec<(u64, Option<usize>)> =
        (0..shape.processes as u64).map(|p| (p, None)).collect();
    let mut next_process = shape.processes as u64;
    let mut clock = 0;
    loop {
        let (busy, idle): (Vec<usize>, Vec<usize>) =
            (0..slots.len()).partition(|&s| slots[s].1.is_some());
        let can_invoke = drafts.len() < shape.ops && !idle.is_empty();
        if busy.is_empty() && !can_invoke {
            return drafts;
        }
        if can_invoke && (busy.is_empty() || rng.random_bool(0.5)) {
            let slot = *idle.choose(rng).expect("an idle slot");
            slots[slot].1 = Some(drafts.len());
            drafts.push(Draft {
                process: slots[slot].0,
                key: rng.random_range(0..shape.keys),
                call: random_call(rng, shape.values),
                fate: Fate::Ok,
                invoke: clock,
                complete: None,
            });
        } else {
            let slot = *busy.choose(rng).expect("a busy slot");
            let d = &mut drafts[slots[slot].1.take().expect("in flight")];
            d.fate = match rng.random_range(0..20) {
                0..=13 => Fate::Ok,
                14..=16 => Fate::Fail,
                _ => Fate::Info,
            };
            if d.fate == Fate::Info {
                slots[slot].0 = next_process;
                next_process += 1;
                if rng.random_bool(0.5) {
                    continue; // the client crashed: no completion is recorded
                }
            }
            d.complete = Some(clock);
        }
        clock += 1;
    }
}

fn event(index: u64) -> Event {
    Event {
        index,
        time: index,
        line: index + 1,
    }
}

fn history(
    shape: &Shape,
    drafts: Vec<Draft>,
    outcomes: Vec<Outcome>,
    initial: Option<Value>,
) -> History {
    let ops = drafts
        .into_iter()
        .zip(outcomes)
        .map(|(d, outcome)| Operation {
            process: d.process,
            key: d.key,
            call: d.call,
            outcome,
            invoke: event(d.invoke),
            complete: d.complete.map(event),
        })
        .collect();
    History {
        keys: (0..shape.keys).map(|k| format!("k{k}")).collect(),
        ops,
        initial,
        timed: false,
    }
}

fn random_value(rng: &mut StdRng, values: i64) -> Option<Value> {
    let v = rng.random_range(0..=values);
    (v < values).then_some(Value::Int(v))
}

fn random_initial(rng: &mut StdRng) -> Option<Value> {
    rng.random_bool(0.3).then_some(Value::Int(0))
}

/// A history whose reads return arbitrary values and whose CASes succeed at random: often not
/// linearizable, sometimes so.
fn random_history(rng: &mut StdRng, shape: &Shape) -> History {
    let drafts = drafts(rng, shape);
    let outcomes = drafts
        .iter()
        .map(|d| match (d.fate, &d.call) {
            (Fate::Fail, _) => Outcome::Fail,
            (Fate::Info, _) => Outcome::Info,
            (Fate::Ok, Call::Read) => Outcome::Ok(random_value(rng, shape.values)),
            (Fate::Ok, Call::Cas { .. }) if rng.random_bool(0.5) => Outcome::PreconditionFailed,
            (Fate::Ok, _) => Outcome::Ok(None),
        })
        .collect();
    let initial = random_initial(rng);
    history(shape, drafts, outcomes, initial)
}

/// A history recorded from a linearizable store: every operation that takes effect does so at
/// a random instant inside its interval (an `info` one at any instant after its invocation, or
/// not at all), and reads and CASes see the effects in the order of those instants.
fn linearizable_history(rng: &mut StdRng, shape: &Shape) -> History {
    const SCALE: u64 = 1000;
    let drafts = drafts(rng, shape);
    let end = drafts
        .iter()
        .map(|d| d.complete.unwrap_or(d.invoke))
        .max()
        .unwrap_or(0)
        + 2;
    let mut points: Vec<(u64, usize)> = drafts
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let from = d.invoke * SCALE + 1;
            let point = match d.fate {
                Fate::Ok => rng.random_range(from..d.complete.expect("completed") * SCALE),
                Fate::Info if rng.random_bool(0.5) => rng.random_range(from..end * SCALE),
                _ => return None,
            };
            Some((point, i))
        })
        .collect();
    points.sort_unstable();
    let initial = random_initial(rng);
    let mut state = vec![initial.clone(); shape.keys as usize];
    let mut outcomes: Vec<Outcome> = drafts
        .iter()
        .map(|d| match d.fate {
            Fate::Ok => Outcome::Ok(None),
            Fate::Fail => Outcome::Fail,
            Fate::Info => Outcome::Info,
        })
        .collect();
    for (_, i) in points {
        let (d, value) = (&drafts[i], &mut state[drafts[i].key as usize]);
        let seen = match &d.call {
            Call::Read => Outcome::Ok(value.clone()),
            Call::Write(v) => {
                *value = Some(v.clone());
                Outcome::Ok(None)
            }
            Call::Delete => {
                *value = None;
                Outcome::Ok(None)
            }
            Call::Cas { expected, new } if value.as_ref() == Some(expected) => {
                *value = Some(new.clone());
                Outcome::Ok(None)
            }
            Call::Cas { .. } => Outcome::PreconditionFailed,
            Call::Append(_) => unreachable!("not generated"),
        };
        if d.fate == Fate::Ok {
            outcomes[i] = seen;
        }
    }
    history(shape, drafts, outcomes, initial)
}

// ---------------------------------------------------------------------------------------------
// Reporting.

fn dump(h: &History) -> String {
    let mut s = format!("initial {:?}\n", h.initial);
    for (i, op) in h.ops.iter().enumerate() {
        let complete = op.complete.map_or("-".to_owned(), |c| c.index.to_string());
        let _ = writeln!(
            s,
            "  #{i} p{} {} [{}, {complete}] {:?} -> {:?}",
            op.process, h.keys[op.key as usize], op.invoke.index, op.call, op.outcome
        );
    }
    s
}

/// Drops operations one at a time while `bad` still holds, for a small counterexample. Dropping
/// an operation keeps a history well formed.
fn shrink(mut h: History, bad: impl Fn(&History) -> bool) -> History {
    let mut i = 0;
    while i < h.ops.len() {
        let mut smaller = h.clone();
        smaller.ops.remove(i);
        if bad(&smaller) {
            h = smaller;
        } else {
            i += 1;
        }
    }
    h
}

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

/// Small recorded histories (brute force can judge them) and the index of one `ok` read.
fn small_with_a_read(seed: u64) -> Option<(History, usize)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let shape = Shape {
        keys: 1,
        processes: rng.random_range(2..=4),
        ops: 9,
        values: 3,
    };
    let h = linearizable_history(&mut rng, &shape);
    let reads: Vec<usize> = (0..h.ops.len())
        .filter(|&i| h.ops[i].call == Call::Read && matches!(h.ops[i].outcome, Outcome::Ok(_)))
        .collect();
    let read = *reads.choose(&mut rng)?;
    Some((h, read))
}

#[test]
fn a_mutated_read_is_caught_when_nothing_explains_it() {
    // Small histories: any other value from the domain, judged by brute force.
    let (mut total, mut valid) = (0, 0);
    for seed in 0..2000 {
        let Some((mut h, read)) = small_with_a_read(seed) else {
            continue;
        };
        assert!(
            oracle(&h),
            "seed {seed}: the recorded history is valid\n{}",
            dump(&h)
        );
        let Outcome::Ok(was) = h.ops[read].outcome.clone() else {
            unreachable!()
        };
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let now = loop {
            let v = random_value(&mut rng, 3);
            if v != was {
                break v;
            }
        };
        h.ops[read].outcome = Outcome::Ok(now);
        total += 1;
        valid += usize::from(assert_agrees(seed, &h));
    }
    assert!(total > 1000, "only {total} histories had a read");
    assert_healthy_mix(valid, total);

    // Large histories: a value nobody wrote, and the explanation must say so.
    for seed in 0..100 {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape = Shape {
            keys: 3,
            processes: 8,
            ops: rng.random_range(200..=500),
            values: 5,
        };
        let mut h = linearizable_history(&mut rng, &shape);
        let reads: Vec<usize> = (0..h.ops.len())
            .filter(|&i| h.ops[i].call == Call::Read && matches!(h.ops[i].outcome, Outcome::Ok(_)))
            .collect();
        let read = *reads
            .choose(&mut rng)
            .expect("hundreds of operations include a read");
        h.ops[read].outcome = Outcome::Ok(Some(Value::Int(1_000_000)));
        let result = check(&h, &CheckOptions::default());
        assert_eq!(
            result.verdict,
            Verdict::Invalid,
            "seed {seed}, read #{read}"
        );
        let key = &result
            .keys
            .iter()
            .find(|k| k.key == h.key_name(&h.ops[read]))
            .expect("key");
        let anomaly = key.anomaly.as_ref().expect("an invalid key has an anomaly");
        assert!(
            anomaly
                .explanation
                .contains("no operation ever wrote 1000000"),
            "seed {seed}: {}",
            anomaly.explanation
        );
        assert_eq!(anomaly.culprit.index, read, "seed {seed}: {anomaly:?}");
    }
}

/// Many concurrent writes and a read of a value none of them wrote: to refute it the search
/// must try every subset of the writes.
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
    History {
        keys: vec!["k0".to_owned()],
        ops,
        initial: Some(Value::Int(0)),
        timed: false,
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
