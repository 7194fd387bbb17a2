//! The brute-force oracle and the history generators of the differential tests.

use std::collections::HashSet;
use std::fmt::Write as _;

use checker::{Call, Event, History, Operation, Outcome, Value};
use rand::prelude::*;

// ---------------------------------------------------------------------------------------------
// The oracle: brute force over linearisation orders, one key at a time.

/// What an operation requires of, or does to, its key in the sequential specification.
enum Effect {
    Read(Option<Value>),
    Set(Option<Value>),
    Cas(Option<Value>, Value),
    /// A CAS whose precondition failed: the key did not hold this value.
    NotEqual(Option<Value>),
    /// Appends to the key's text (a missing key counts as "").
    Append(Value),
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
        (Call::Append(v), Outcome::Ok(_) | Outcome::Info) => Effect::Append(v.clone()),
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
        Effect::Cas(expected, new) => (state == expected).then(|| Some(new.clone())),
        Effect::NotEqual(v) => (state != v).then(|| state.clone()),
        Effect::Append(v) => Some(Some(appended(state, v))),
    }
}

/// `state`'s text followed by `piece`'s, as the key-value model appends.
pub fn appended(state: &Option<Value>, piece: &Value) -> Value {
    let text = |v: &Value| match v {
        Value::Str(s) => s.clone(),
        other => other.to_string(),
    };
    let head = state.as_ref().map(text).unwrap_or_default();
    Value::Str(head + &text(piece))
}

/// Whether the oracle finds a linearisation of every key.
pub fn oracle(h: &History) -> bool {
    (0..h.keys.len() as u32).all(|key| {
        let ops: Vec<OracleOp> = h
            .ops
            .iter()
            .filter(|op| op.key == key)
            .filter_map(oracle_op)
            .collect();
        assert!(
            ops.len() <= 20,
            "too many operations on one key for brute force"
        );
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
pub enum Fate {
    Ok,
    Fail,
    Info,
}

/// An operation whose outcome is not settled yet.
pub struct Draft {
    pub process: u64,
    pub key: u32,
    pub call: Call,
    pub fate: Fate,
    pub invoke: u64,
    pub complete: Option<u64>,
}

pub struct Shape {
    pub keys: u32,
    pub processes: usize,
    pub ops: usize,
    /// Values are `Int(0..values)`.
    pub values: i64,
}

fn random_call(rng: &mut StdRng, values: i64) -> Call {
    let kind = rng.random_range(0..10);
    let mut value = || Value::Int(rng.random_range(0..values));
    match kind {
        0..=3 => Call::Read,
        4..=6 => Call::Write(value()),
        7 => Call::Delete,
        // Sometimes expect the key to be absent.
        8 => Call::Cas {
            expected: None,
            new: value(),
        },
        _ => Call::Cas {
            expected: Some(value()),
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

pub fn event(index: u64) -> Event {
    Event {
        index,
        time: index,
        line: index + 1,
    }
}

pub fn history(
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
        ..History::default()
    }
}

pub fn random_value(rng: &mut StdRng, values: i64) -> Option<Value> {
    let v = rng.random_range(0..=values);
    (v < values).then_some(Value::Int(v))
}

fn random_initial(rng: &mut StdRng) -> Option<Value> {
    rng.random_bool(0.3).then_some(Value::Int(0))
}

/// A history whose reads return arbitrary values and whose CASes succeed at random: often not
/// linearizable, sometimes so.
pub fn random_history(rng: &mut StdRng, shape: &Shape) -> History {
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
pub fn linearizable_history(rng: &mut StdRng, shape: &Shape) -> History {
    let drafts = drafts(rng, shape);
    let (outcomes, initial) = record(rng, &drafts, shape, random_initial);
    history(shape, drafts, outcomes, initial)
}

/// The outcomes of `drafts` run on a linearizable store: each operation that takes effect does
/// so at a random instant inside its interval (an `info` one at any instant after its
/// invocation, or not at all), in the order of those instants, from the initial value that
/// `initial` draws (after the instants, so that every generator draws in the same order).
/// Returns the outcomes and the initial value.
fn record(
    rng: &mut StdRng,
    drafts: &[Draft],
    shape: &Shape,
    initial: impl FnOnce(&mut StdRng) -> Option<Value>,
) -> (Vec<Outcome>, Option<Value>) {
    const SCALE: u64 = 1000;
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
    let initial = initial(rng);
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
            Call::Cas { expected, new } if value == expected => {
                *value = Some(new.clone());
                Outcome::Ok(None)
            }
            Call::Cas { .. } => Outcome::PreconditionFailed,
            Call::Append(v) => {
                *value = Some(appended(value, v));
                Outcome::Ok(None)
            }
            other => unreachable!("{other:?} is not generated"),
        };
        if d.fate == Fate::Ok {
            outcomes[i] = seen;
        }
    }
    (outcomes, initial)
}

/// A history of reads, appends (each of its own string, `x<i>y`) and a few writes, recorded
/// from a linearizable store as [`linearizable_history`] records one; then, when `tamper`, one
/// acknowledged read returns its value with one appended string cut out, or cut short (often
/// no longer linearizable, sometimes still so).
pub fn append_history(rng: &mut StdRng, shape: &Shape, tamper: bool) -> History {
    let mut drafts = drafts(rng, shape);
    for (i, d) in drafts.iter_mut().enumerate() {
        d.call = match rng.random_range(0..10) {
            0..=3 => Call::Read,
            4 => Call::Write(Value::Str(format!("w{i}w"))),
            _ => Call::Append(Value::Str(format!("x{i}y"))),
        };
    }
    let (mut outcomes, _) = record(rng, &drafts, shape, |_| None);
    if tamper {
        let reads: Vec<usize> = (0..drafts.len())
            .filter(
                |&i| matches!(&outcomes[i], Outcome::Ok(Some(Value::Str(s))) if s.contains('x')),
            )
            .collect();
        if let Some(&i) = reads.choose(rng)
            && let Outcome::Ok(Some(Value::Str(s))) = &outcomes[i]
        {
            let starts: Vec<usize> = s.match_indices('x').map(|(at, _)| at).collect();
            let at = *starts.choose(rng).expect("a piece");
            let tampered = if rng.random_bool(0.5) {
                let len = s[at..].find('y').expect("pieces end in y") + 1;
                format!("{}{}", &s[..at], &s[at + len..])
            } else {
                s[..at].to_owned()
            };
            outcomes[i] = Outcome::Ok((!tampered.is_empty()).then_some(Value::Str(tampered)));
        }
    }
    history(shape, drafts, outcomes, None)
}

/// A value the adversarial append histories read, write or append: short strings that
/// overlap and repeat (`"ab"` holds `"a"`, `"b"` and `"ba"` hold each other's ends), the empty
/// string, and integers whose text is a string's.
fn adversarial_value(rng: &mut StdRng) -> Value {
    const STRINGS: [&str; 6] = ["a", "b", "ab", "ba", "", "1"];
    if rng.random_bool(0.15) {
        Value::Int(rng.random_range(0..2))
    } else {
        Value::Str(STRINGS.choose(rng).expect("strings").to_string())
    }
}

/// A history of appends of overlapping, repeated and empty strings (and integers), mixed with
/// writes, deletes and CASes (some missing their precondition), every kind sometimes `info` or
/// `fail`, from a random initial value; recorded from a linearizable store as
/// [`linearizable_history`] records one, then, when `tamper`, one acknowledged read returns
/// something else (a prefix, a suffix, a character dropped, or an arbitrary value).
pub fn adversarial_append_history(rng: &mut StdRng, shape: &Shape, tamper: bool) -> History {
    let mut drafts = drafts(rng, shape);
    for d in drafts.iter_mut() {
        d.call = match rng.random_range(0..12) {
            0..=3 => Call::Read,
            4..=6 => Call::Append(adversarial_value(rng)),
            7 | 8 => Call::Write(adversarial_value(rng)),
            9 => Call::Delete,
            _ => Call::Cas {
                expected: rng.random_bool(0.8).then(|| adversarial_value(rng)),
                new: adversarial_value(rng),
            },
        };
    }
    let (mut outcomes, initial) = record(rng, &drafts, shape, |rng| match rng.random_range(0..4) {
        0 => Some(Value::Str("a".to_owned())),
        1 => Some(Value::Int(1)),
        _ => None,
    });
    let reads: Vec<usize> = (0..drafts.len())
        .filter(|&i| drafts[i].call == Call::Read && matches!(outcomes[i], Outcome::Ok(_)))
        .collect();
    if tamper && let Some(&i) = reads.choose(rng) {
        let Outcome::Ok(was) = &outcomes[i] else {
            unreachable!("an ok read")
        };
        let text = match was {
            None => String::new(),
            Some(Value::Str(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let n = text.chars().count();
        let cut = rng.random_range(0..=n);
        let chars: Vec<char> = text.chars().collect();
        let tampered = match rng.random_range(0..5) {
            0 => Some(Value::Str(chars[..cut].iter().collect())),
            1 => Some(Value::Str(chars[cut..].iter().collect())),
            2 if n > 0 => {
                let at = rng.random_range(0..n);
                Some(Value::Str(
                    chars[..at].iter().chain(&chars[at + 1..]).collect(),
                ))
            }
            3 => None,
            _ => Some(adversarial_value(rng)),
        };
        outcomes[i] = Outcome::Ok(tampered);
    }
    history(shape, drafts, outcomes, initial)
}

// ---------------------------------------------------------------------------------------------
// Reporting.

pub fn dump(h: &History) -> String {
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
pub fn shrink(mut h: History, bad: impl Fn(&History) -> bool) -> History {
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
