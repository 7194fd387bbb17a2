//! Knossos's `set`: elements are added; a read returns the whole set, which must be exactly the
//! elements added before it.
//!
//! | operation | `ok` | `info` | `fail` |
//! |---|---|---|---|
//! | add x | x is in every later read | may have been added at any point after invocation | dropped |
//! | read | the set held exactly these elements (a read of `nil` matches no set, as in Knossos) | dropped | dropped |

use rustc_hash::FxHashMap;

use super::intern::{Elements, States, braces};
use super::{Compiled, KeyOp, Model, StateId};
use crate::explain::{Explanation, Failure};
use crate::history::{Call, History, Operation, Outcome, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    Add(u32),
    /// Requires the set to be this state (its elements, interned as a state).
    Read(StateId),
    /// A read that returned no set at all: it matches no state.
    ReadNothing,
}

/// States are sorted lists of element ids.
pub(crate) struct Set {
    elements: Elements,
    states: States,
    added: FxHashMap<(StateId, u32), StateId>,
    scratch: Vec<u32>,
}

impl Default for Set {
    fn default() -> Set {
        let mut states = States::default();
        states.intern(&[]);
        Set {
            elements: Elements::default(),
            states,
            added: FxHashMap::default(),
            scratch: Vec::new(),
        }
    }
}

impl Set {
    fn values(&self, state: StateId) -> impl Iterator<Item = &Value> {
        self.states.get(state).iter().map(|&e| self.elements.get(e))
    }
}

impl Model for Set {
    type Step = Step;

    fn compile(&mut self, op: &Operation) -> Option<Compiled<Step>> {
        let step = match (&op.call, &op.outcome) {
            (Call::Add(v), _) => Step::Add(self.elements.intern(v)),
            (Call::Read, Outcome::Ok(Some(read))) => {
                let mut ids: Vec<u32> = elements(read)
                    .iter()
                    .map(|v| self.elements.intern(v))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                Step::Read(self.states.intern(&ids))
            }
            (Call::Read, Outcome::Ok(None)) => Step::ReadNothing,
            (Call::Read, _) => return None,
            (other, _) => panic!("a {} in a set history", other.name()),
        };
        Compiled::by_outcome(op, step)
    }

    /// An `info` add of an element no `ok` read returns can only spoil reads: dropped. The only
    /// add of an element a read returned took effect before that read completed.
    fn tighten(&mut self, ops: &mut Vec<KeyOp<Step>>) {
        let elements = self.elements.len();
        let mut added = vec![0usize; elements];
        let mut seen: Vec<Vec<u64>> = vec![Vec::new(); elements];
        for op in ops.iter() {
            match op.step {
                Step::Add(e) => added[e as usize] += 1,
                Step::Read(s) => {
                    let ret = op.ret.expect("an ok read is required");
                    for &e in self.states.get(s) {
                        seen[e as usize].push(ret);
                    }
                }
                Step::ReadNothing => {}
            }
        }
        ops.retain(|op| {
            !(op.ret.is_none() && matches!(op.step, Step::Add(e) if seen[e as usize].is_empty()))
        });
        for op in ops.iter_mut() {
            if op.ret.is_none()
                && let Step::Add(e) = op.step
                && added[e as usize] == 1
            {
                op.ret = seen[e as usize]
                    .iter()
                    .copied()
                    .filter(|&r| r > op.call)
                    .min();
            }
        }
    }

    fn initial(&mut self) -> StateId {
        0
    }

    fn apply(&mut self, state: StateId, step: Step) -> Option<StateId> {
        match step {
            Step::Read(s) => (s == state).then_some(state),
            Step::ReadNothing => None,
            Step::Add(e) => {
                if let Some(&next) = self.added.get(&(state, e)) {
                    return Some(next);
                }
                let current = self.states.get(state);
                let next = match current.binary_search(&e) {
                    Ok(_) => state,
                    Err(at) => {
                        self.scratch.clear();
                        self.scratch.extend_from_slice(&current[..at]);
                        self.scratch.push(e);
                        self.scratch.extend_from_slice(&current[at..]);
                        let scratch = std::mem::take(&mut self.scratch);
                        let next = self.states.intern(&scratch);
                        self.scratch = scratch;
                        next
                    }
                };
                self.added.insert((state, e), next);
                Some(next)
            }
        }
    }

    fn describe(&self, state: StateId) -> String {
        braces(self.values(state))
    }

    fn to_json(&self, state: StateId) -> serde_json::Value {
        let mut values: Vec<&Value> = self.values(state).collect();
        values.sort();
        serde_json::to_value(values).expect("values serialise")
    }

    fn refusal(&self, state: StateId, step: Step) -> String {
        match step {
            Step::Read(s) => format!(
                "the set held {}, not {}",
                self.describe(state),
                self.describe(s)
            ),
            _ => "a read that returned nothing matches no set".to_owned(),
        }
    }

    fn explain(&self, f: &Failure<'_>, _: StateId) -> Option<Explanation> {
        // The culprit first, then every other read by completion.
        let mut reads: Vec<u32> = f
            .key_ops
            .iter()
            .copied()
            .filter(|&i| f.op(i).call == Call::Read && matches!(f.op(i).outcome, Outcome::Ok(_)))
            .collect();
        reads.sort_by_key(|&i| (i != f.culprit, f.op(i).complete));
        reads.into_iter().find_map(|r| wrong_read(f, r))
    }

    fn sources(history: &History, ops: &[u32]) -> Vec<(u32, Vec<Vec<u32>>)> {
        let op = |i: u32| &history.ops[i as usize];
        let mut adds: FxHashMap<&Value, Vec<u32>> = FxHashMap::default();
        for &i in ops {
            if let (Call::Add(v), o) = (&op(i).call, &op(i).outcome)
                && *o != Outcome::Fail
            {
                adds.entry(v).or_default().push(i);
            }
        }
        ops.iter()
            .filter_map(|&i| match (&op(i).call, &op(i).outcome) {
                (Call::Read, Outcome::Ok(Some(read))) => Some((
                    i,
                    elements(read)
                        .iter()
                        .filter_map(|v| adds.get(v).cloned())
                        .collect(),
                )),
                _ => None,
            })
            .collect()
    }
}

/// The elements a read returned: a list's items, or one value.
fn elements(read: &Value) -> &[Value] {
    match read {
        Value::List(items) => items,
        one => std::slice::from_ref(one),
    }
}

/// What is plainly wrong with read `r`: an element nobody added, one added only later, or an
/// acknowledged add it misses.
fn wrong_read(f: &Failure<'_>, r: u32) -> Option<Explanation> {
    let read = f.op(r);
    let Outcome::Ok(returned) = &read.outcome else {
        return None;
    };
    let what = format!(
        "read of {} by process {} {}",
        f.key(),
        read.process,
        f.when(read.invoke, read.complete)
    );
    let Some(returned) = returned else {
        return Some(Explanation {
            sentence: format!("{what} returned nil, which is no set"),
            missed: None,
        });
    };
    let items = elements(returned);
    let adds_of = |v: &Value| {
        f.effective()
            .filter(move |&i| f.op(i).call == Call::Add(v.clone()))
            .collect::<Vec<u32>>()
    };
    let read_end = read.complete.map_or(u64::MAX, |c| c.index);
    for v in items {
        let adds = adds_of(v);
        if adds.is_empty() {
            return Some(Explanation {
                sentence: format!("{what} returned {returned}, which includes {v}, never added"),
                missed: None,
            });
        }
        if adds.iter().all(|&a| f.op(a).invoke.index > read_end) {
            let first = f.op(adds[0]);
            return Some(Explanation {
                sentence: format!(
                    "{what} returned {returned}, which includes {v}, whose add began only later \
                     (process {}, {})",
                    first.process,
                    f.when(first.invoke, None)
                ),
                missed: None,
            });
        }
    }
    let missed = f.effective().find(|&i| {
        let add = f.op(i);
        matches!(&add.call, Call::Add(v) if !items.contains(v))
            && matches!(add.outcome, Outcome::Ok(_))
            && add.complete.is_some_and(|c| c.index < read.invoke.index)
    })?;
    let add = f.op(missed);
    let Call::Add(v) = &add.call else {
        unreachable!("found among adds")
    };
    Some(Explanation {
        sentence: format!(
            "{what} misses {v}, whose add completed {} (process {}), before the read began: it \
             returned {returned}",
            f.when(add.complete.expect("an ok add completed"), None),
            add.process
        ),
        missed: Some(missed),
    })
}
