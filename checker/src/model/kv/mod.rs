//! The key-value model: each key a register with compare-and-set, delete and append. Knossos's
//! `register` and `cas-register`, kvlab's and Porcupine's key-value histories.
//!
//! Values are interned per key so that a state is one `u32` and a step is a comparison.
//! How outcomes become search operations:
//!
//! | outcome | in the search |
//! |---|---|
//! | `ok` | must be linearised between its invocation and completion |
//! | `fail` | dropped: it did not happen |
//! | failed CAS precondition | must be linearised at a point where the key did not hold `expected` |
//! | `info` read | dropped: it changed nothing and returned nothing |
//! | `info` write, delete, CAS, append | may be linearised at any point after its invocation, or never |

mod explain;
mod pieces;

use std::borrow::Cow;

use hashbrown::HashTable;
use rustc_hash::FxHashMap;

use super::{Compiled, KeyOp, Model, Pending, StateId};
use crate::explain::{Explanation, Failure};
use crate::history::{Call, History, Operation, Outcome, Shown, Value};

/// The interned missing key.
const ABSENT: StateId = 0;

/// What one operation does to, or requires of, the key's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    /// Requires the state to equal the value read.
    Read(StateId),
    /// Sets the state (a delete writes [`ABSENT`]).
    Write(StateId),
    /// Requires the state to equal `.0`, then sets it to `.1`.
    Cas(StateId, StateId),
    /// Requires the state to differ from `.0` (a CAS whose precondition failed).
    NotEqual(StateId),
    /// Appends the interned string `.0`.
    Append(StateId),
}

/// Interned values of one key. Id 0 is the absent value.
///
/// Appends build new strings, possibly long ones, at every step of the search. To intern them
/// without hashing or copying the whole text each time, every value carries a polynomial hash of
/// its text, from which the hash of a concatenation follows in O(1); the text is compared (and
/// built) only when the hash matches (or the value is new).
struct Values {
    values: Vec<Option<Value>>,
    /// Per id: polynomial hash of the text and `BASE^len(text)`.
    poly: Vec<(u64, u64)>,
    table: HashTable<StateId>,
    appended: FxHashMap<(StateId, StateId), StateId>,
}

const BASE: u64 = 0x100_0000_01b3;

fn poly(text: &str) -> (u64, u64) {
    text.bytes().fold((0, 1), |(h, p), b| {
        (
            h.wrapping_mul(BASE).wrapping_add(u64::from(b) + 1),
            p.wrapping_mul(BASE),
        )
    })
}

/// Table hash of a value from its text hash; integers, strings and lists with the same text
/// differ.
fn table_hash(poly: u64, v: Option<&Value>) -> u64 {
    let x = poly
        ^ match v {
            Some(Value::Int(_)) => 0x9e37_79b9_7f4a_7c15,
            Some(Value::List(_)) => 0x6a09_e667_f3bc_c908,
            _ => 0,
        };
    // splitmix64's finaliser spreads the polynomial hash over all bits.
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn text(v: &Option<Value>) -> Cow<'_, str> {
    v.as_ref().map_or(Cow::Borrowed(""), value_text)
}

/// A value's text, as appends see it: a string as it is, anything else as it prints.
fn value_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Str(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

impl Values {
    fn new() -> Values {
        Values {
            values: vec![None],
            poly: vec![(0, 1)],
            table: HashTable::new(),
            appended: FxHashMap::default(),
        }
    }

    fn intern(&mut self, v: &Value) -> StateId {
        let (h, p) = match v {
            Value::Str(s) => poly(s),
            other => poly(&other.to_string()),
        };
        let th = table_hash(h, Some(v));
        let values = &self.values;
        if let Some(&id) = self
            .table
            .find(th, |&id| values[id as usize].as_ref() == Some(v))
        {
            return id;
        }
        self.push(v.clone(), th, (h, p))
    }

    fn push(&mut self, v: Value, th: u64, poly: (u64, u64)) -> StateId {
        let id = StateId::try_from(self.values.len()).expect("fewer than 2^32 values on one key");
        self.values.push(Some(v));
        self.poly.push(poly);
        let (poly, values) = (&self.poly, &self.values);
        self.table.insert_unique(th, id, |&id| {
            table_hash(poly[id as usize].0, values[id as usize].as_ref())
        });
        id
    }

    fn intern_opt(&mut self, v: &Option<Value>) -> StateId {
        v.as_ref().map_or(ABSENT, |v| self.intern(v))
    }

    fn get(&self, id: StateId) -> &Option<Value> {
        &self.values[id as usize]
    }

    /// Whether the text of `a` is a prefix of the text of `b`.
    fn is_prefix(&self, a: StateId, b: StateId) -> bool {
        text(&self.values[b as usize]).starts_with(&*text(&self.values[a as usize]))
    }

    /// The state after appending `suffix` to `state`; a missing key counts as "".
    fn append(&mut self, state: StateId, suffix: StateId) -> StateId {
        if let Some(&id) = self.appended.get(&(state, suffix)) {
            return id;
        }
        let (hs, ps) = self.poly[state as usize];
        let (ha, pa) = self.poly[suffix as usize];
        let joined = (hs.wrapping_mul(pa).wrapping_add(ha), ps.wrapping_mul(pa));
        let th = table_hash(joined.0, None);
        let head = text(&self.values[state as usize]);
        let tail = text(&self.values[suffix as usize]);
        let values = &self.values;
        let found = self.table.find(th, |&id| match &values[id as usize] {
            Some(Value::Str(t)) => {
                t.len() == head.len() + tail.len() && t.starts_with(&*head) && t.ends_with(&*tail)
            }
            _ => false,
        });
        let id = match found {
            Some(&id) => id,
            None => {
                let s = [&*head, &*tail].concat();
                self.push(Value::Str(s), th, joined)
            }
        };
        self.appended.insert((state, suffix), id);
        id
    }
}

/// One key of a key-value history.
pub(crate) struct Kv {
    values: Values,
    initial: StateId,
    /// Whether any operation appends (enables the prefix lookahead).
    has_appends: bool,
}

impl Kv {
    pub(crate) fn new(initial: &Option<Value>) -> Kv {
        let mut values = Values::new();
        let initial = values.intern_opt(initial);
        Kv {
            values,
            initial,
            has_appends: false,
        }
    }
}

impl Model for Kv {
    type Step = Step;

    fn compile(&mut self, op: &Operation) -> Option<Compiled<Step>> {
        let values = &mut self.values;
        let step = match (&op.call, &op.outcome) {
            (_, Outcome::Fail) => return None,
            (Call::Read, Outcome::Ok(v)) => Step::Read(values.intern_opt(v)),
            (Call::Read, _) => return None,
            (Call::Cas { expected, .. }, Outcome::PreconditionFailed) => {
                Step::NotEqual(values.intern_opt(expected))
            }
            // Only a CAS can fail its precondition; readers never produce this otherwise.
            (_, Outcome::PreconditionFailed) => return None,
            (Call::Write(v), _) => Step::Write(values.intern(v)),
            (Call::Delete, _) => Step::Write(ABSENT),
            (Call::Cas { expected, new }, _) => {
                Step::Cas(values.intern_opt(expected), values.intern(new))
            }
            (Call::Append(v), _) => {
                self.has_appends = true;
                Step::Append(values.intern(v))
            }
            (other, _) => panic!(
                "a {} in a key-value history (the register models know read, write, delete, cas \
                 and append)",
                other.name()
            ),
        };
        Compiled::by_outcome(op, step)
    }

    fn initial(&mut self) -> StateId {
        self.initial
    }

    #[inline]
    fn apply(&mut self, state: StateId, step: Step) -> Option<StateId> {
        match step {
            Step::Read(v) => (state == v).then_some(state),
            Step::Write(v) => Some(v),
            Step::Cas(expected, new) => (state == expected).then_some(new),
            Step::NotEqual(v) => (state != v).then_some(state),
            Step::Append(suffix) => Some(self.values.append(state, suffix)),
        }
    }

    fn describe(&self, state: StateId) -> String {
        Shown(self.values.get(state)).to_string()
    }

    fn to_json(&self, state: StateId) -> serde_json::Value {
        serde_json::to_value(self.values.get(state)).expect("values serialise")
    }

    fn explain(&self, failure: &Failure<'_>, state: StateId) -> Option<Explanation> {
        Some(explain::explain(failure, self.values.get(state)))
    }

    /// The required operation that completes first among those observing a value no operation
    /// in the key's history could ever have put there (a read of it, or a CAS expecting it).
    /// On keys with appends, where values are built rather than written: a read that lacks an
    /// append completed before it began ([`missing_append`]).
    fn refute(&self, ops: &[KeyOp<Step>]) -> Option<usize> {
        if self.has_appends {
            return missing_append(&self.values, ops).map(|(read, _)| read);
        }
        let mut written = rustc_hash::FxHashSet::default();
        written.insert(self.initial);
        for op in ops {
            if let Step::Write(v) | Step::Cas(_, v) = op.step {
                written.insert(v);
            }
        }
        ops.iter()
            .enumerate()
            .filter(|(_, o)| o.ret.is_some())
            .filter(|(_, o)| match o.step {
                Step::Read(v) | Step::Cas(v, _) => !written.contains(&v),
                _ => false,
            })
            .min_by_key(|(_, o)| o.ret)
            .map(|(i, _)| i)
    }

    /// Lookahead for keys with appends, where each order of concurrent appends is a distinct
    /// state. Let R be the first pending read to return, of value V. Only operations invoked
    /// before R returns can come before R, so at R the state is either `state` grown by appends,
    /// or the value of one of those puts (or CASes) grown by appends. Unless `state` or one of
    /// those values is a prefix of V, R can never be satisfied from here.
    #[inline(always)]
    fn viable(&self, state: StateId, _: Step, pending: Pending<'_, Step>) -> bool {
        !self.has_appends || appends_can_explain(&self.values, state, pending)
    }

    fn sources(history: &History, ops: &[u32]) -> Vec<(u32, Vec<Vec<u32>>)> {
        explain::sources(history, ops)
    }
}

/// A required read that lacks an appended string although the append completed before the
/// read began and nothing that sets the value outright (a write, CAS or delete, acknowledged or
/// not) can fall between them: then every order puts the append before the read, appends only
/// extend the value, and the read cannot hold. Returns `(read, append)` as indices into `ops`:
/// of the reads so refuted, the one that completes first, and the latest such append before it.
/// Only the latest appends before each read are looked at (`LOOKBACK`).
///
/// A necessary condition only (a value holding the string somewhere is not thereby explained),
/// so it never refutes a linearizable key; the search decides the rest.
fn missing_append(values: &Values, ops: &[KeyOp<Step>]) -> Option<(usize, usize)> {
    // Each read is checked against the latest appends before it only, so that a long key costs
    // O(reads), not O(reads × appends); an older missing append is left to the search.
    const LOOKBACK: usize = 256;
    let text_of = |id: StateId| text(values.get(id));
    let pieces = pieces::Pieces::new(ops.iter().filter_map(|o| match o.step {
        Step::Append(v) => Some(text_of(v)),
        _ => None,
    }));
    // Completed appends by completion, with their piece (empty appends change nothing).
    let mut appends: Vec<(u64, u64, u32, usize)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match (o.step, o.ret) {
            (Step::Append(v), Some(ret)) => {
                let id = pieces.id(&text_of(v))?;
                Some((ret, o.call, id, i))
            }
            _ => None,
        })
        .collect();
    if appends.is_empty() {
        return None;
    }
    appends.sort_unstable();
    // Writes, CASes and deletes by invocation, each with the latest completion among those
    // invoked no later (an optional one never completes): what a read's barrier is made of.
    let mut setters: Vec<(u64, u64)> = ops
        .iter()
        .filter(|o| matches!(o.step, Step::Write(_) | Step::Cas(..)))
        .map(|o| (o.call, o.ret.unwrap_or(u64::MAX)))
        .collect();
    setters.sort_unstable();
    let mut latest = 0;
    for (_, ret) in &mut setters {
        latest = latest.max(*ret);
        *ret = latest;
    }
    let mut reads: Vec<(u64, u64, StateId, usize)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match (o.step, o.ret) {
            (Step::Read(v), Some(ret)) => Some((ret, o.call, v, i)),
            _ => None,
        })
        .collect();
    reads.sort_unstable();
    let mut found = vec![0; pieces.len()];
    let mut scanned: Option<StateId> = None;
    for &(ret, call, value, read) in &reads {
        // An append invoked before a setter that may fall before the read completed may have
        // been replaced by it.
        let barrier = match setters.partition_point(|&(w_call, _)| w_call < ret) {
            0 => 0,
            n => setters[n - 1].1,
        };
        let done = appends.partition_point(|&(a_ret, ..)| a_ret < call);
        let mut lacking = appends[..done]
            .iter()
            .rev()
            .filter(|&&(_, a_call, ..)| a_call >= barrier)
            .take(LOOKBACK)
            .peekable();
        if lacking.peek().is_none() {
            continue;
        }
        if scanned != Some(value) {
            pieces.count(&text_of(value), &mut found);
            scanned = Some(value);
        }
        if let Some(&(.., append)) = lacking.find(|&&(_, _, id, _)| found[id as usize] == 0) {
            return Some((read, append));
        }
    }
    None
}

/// The lookahead of [`Kv::viable`] for a key with appends, out of line: most keys have none.
#[inline(never)]
fn appends_can_explain(values: &Values, state: StateId, pending: Pending<'_, Step>) -> bool {
    let mut before = 0;
    let target = pending.clone().find_map(|e| {
        before += 1;
        match e.step {
            Step::Read(v) if !e.call => Some(v),
            _ => None,
        }
    });
    let Some(target) = target else {
        return true;
    };
    pending.take(before - 1).any(|e| match e.step {
        Step::Write(v) | Step::Cas(_, v) => values.is_prefix(v, target),
        _ => false,
    }) || values.is_prefix(state, target)
}
