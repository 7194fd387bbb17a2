//! The sequential specification of one key, and a key's operations compiled for the search.
//!
//! Values are interned per key so that a state is one `u32` and a step is a comparison.
//! How outcomes become search operations (Jepsen's rules):
//!
//! | outcome | in the search |
//! |---|---|
//! | `ok` | must be linearised between its invocation and completion |
//! | `fail` | dropped: it did not happen |
//! | failed CAS precondition | must be linearised at a point where the key did not hold `expected` |
//! | `info` read | dropped: it changed nothing and returned nothing |
//! | `info` write, delete, CAS, append | may be linearised at any point after its invocation, or never |

use std::borrow::Cow;

use hashbrown::HashTable;
use rustc_hash::FxHashMap;

use crate::history::{Call, History, Operation, Outcome, Value};

/// An interned value of one key; [`ABSENT`] is the missing key.
pub(crate) type StateId = u32;
pub(crate) const ABSENT: StateId = 0;

/// What one operation does to, or requires of, the key's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
pub(crate) struct Values {
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

/// Table hash of a value from its text hash; integers and strings with the same text differ.
fn table_hash(poly: u64, is_int: bool) -> u64 {
    let x = poly ^ if is_int { 0x9e37_79b9_7f4a_7c15 } else { 0 };
    // splitmix64's finaliser spreads the polynomial hash over all bits.
    let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn text(v: &Option<Value>) -> Cow<'_, str> {
    match v {
        None => Cow::Borrowed(""),
        Some(Value::Str(s)) => Cow::Borrowed(s),
        Some(Value::Int(i)) => Cow::Owned(i.to_string()),
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
            Value::Int(i) => poly(&i.to_string()),
        };
        let th = table_hash(h, matches!(v, Value::Int(_)));
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
            let is_int = matches!(values[id as usize], Some(Value::Int(_)));
            table_hash(poly[id as usize].0, is_int)
        });
        id
    }

    fn intern_opt(&mut self, v: &Option<Value>) -> StateId {
        v.as_ref().map_or(ABSENT, |v| self.intern(v))
    }

    pub(crate) fn get(&self, id: StateId) -> &Option<Value> {
        &self.values[id as usize]
    }

    /// Whether the text of `a` is a prefix of the text of `b`.
    pub(crate) fn is_prefix(&self, a: StateId, b: StateId) -> bool {
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
        let th = table_hash(joined.0, false);
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

/// One operation of a key, as the search sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyOp {
    /// Index in [`History::ops`].
    pub(crate) op: u32,
    /// Event index of the invocation.
    pub(crate) call: u64,
    /// Event index of the completion; `None` for an operation that may take effect at any point
    /// after its invocation, or never.
    pub(crate) ret: Option<u64>,
    pub(crate) step: Step,
}

/// The operations of one key that constrain linearisability, sorted by invocation.
pub(crate) struct KeyHistory {
    pub(crate) ops: Vec<KeyOp>,
    pub(crate) values: Values,
    pub(crate) initial: StateId,
    /// Whether any operation appends (enables the search's prefix lookahead).
    pub(crate) has_appends: bool,
}

impl KeyHistory {
    /// Compiles the operations `ids` (indices into `history.ops`, sorted, all on one key).
    pub(crate) fn compile(history: &History, ids: &[u32]) -> KeyHistory {
        let mut values = Values::new();
        let initial = values.intern_opt(&history.initial);
        let ops = ids
            .iter()
            .filter_map(|&id| {
                let op = &history.ops[id as usize];
                let (step, required) = compile_op(&mut values, op)?;
                Some(KeyOp {
                    op: id,
                    call: op.invoke.index,
                    ret: if required {
                        Some(
                            op.complete
                                .expect("a completed outcome has a completion")
                                .index,
                        )
                    } else {
                        None
                    },
                    step,
                })
            })
            .collect::<Vec<KeyOp>>();
        KeyHistory {
            has_appends: ops.iter().any(|o| matches!(o.step, Step::Append(_))),
            ops,
            values,
            initial,
        }
    }

    /// Applies `step` to `state`: the new state, or `None` if the step cannot happen there.
    #[inline]
    pub(crate) fn apply(&mut self, state: StateId, step: Step) -> Option<StateId> {
        match step {
            Step::Read(v) => (state == v).then_some(state),
            Step::Write(v) => Some(v),
            Step::Cas(expected, new) => (state == expected).then_some(new),
            Step::NotEqual(v) => (state != v).then_some(state),
            Step::Append(suffix) => Some(self.values.append(state, suffix)),
        }
    }
}

/// The search step of an operation and whether it must be linearised; `None` when the operation
/// constrains nothing.
fn compile_op(values: &mut Values, op: &Operation) -> Option<(Step, bool)> {
    let required = match op.outcome {
        Outcome::Ok(_) | Outcome::PreconditionFailed => true,
        Outcome::Info => false,
        Outcome::Fail => return None,
    };
    let step = match (&op.call, &op.outcome) {
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
        (Call::Append(v), _) => Step::Append(values.intern(v)),
    };
    Some((step, required))
}
