//! Knossos's queues: `unordered-queue` (a dequeue takes any element present) and `fifo-queue`
//! (a dequeue takes the oldest).
//!
//! | operation | `ok` | `info` | `fail` |
//! |---|---|---|---|
//! | enqueue x | x joined the queue | may have, at any point after invocation | dropped |
//! | dequeue | took the element it returned (`nil` matches no element, as in Knossos) | see below | dropped |
//!
//! An `info` dequeue returned nothing, so Knossos can never place it. Here it may still have
//! taken an element: in a FIFO queue, the oldest, at any point after its invocation, or nothing
//! (a lost element would otherwise block the order of those behind it). In an unordered queue
//! taking an element can never help a later operation, so it is dropped, as in Knossos.

use rustc_hash::FxHashMap;

use super::intern::{Elements, States, braces};
use super::{Compiled, KeyOp, Model, Pending, StateId};
use crate::explain::{Explanation, Failure};
use crate::history::{Call, History, Operation, Outcome, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    Enqueue(u32),
    /// Takes this element (unordered: wherever it is; FIFO: it must be the oldest).
    Dequeue(u32),
    /// A dequeue that returned nothing: it matches no state.
    DequeueNothing,
    /// An `info` dequeue in a FIFO queue: takes the oldest element, if any.
    DequeueOldest,
}

/// The state of either queue, interned: a sorted multiset of element ids (unordered) or the
/// elements oldest first (FIFO).
struct Queue {
    elements: Elements,
    states: States,
    after: FxHashMap<(StateId, Step), Option<StateId>>,
    scratch: Vec<u32>,
    fifo: bool,
    /// Per element: whether it was enqueued more often than `ok` dequeues returned it, so that
    /// an `info` dequeue may have taken a copy (set by [`Queue::tighten`]).
    spare: Vec<bool>,
    /// Per element enqueued once and returned by one `ok` dequeue: that dequeue's invocation
    /// and completion (set by [`Queue::tighten`]).
    taken: Vec<Option<(u64, u64)>>,
    /// Per element: whether no `ok` dequeue returns it (only an `info` one can take it).
    never_taken: Vec<bool>,
}

impl Queue {
    fn new(fifo: bool) -> Queue {
        let mut states = States::default();
        states.intern(&[]);
        Queue {
            elements: Elements::default(),
            states,
            after: FxHashMap::default(),
            scratch: Vec::new(),
            fifo,
            spare: Vec::new(),
            taken: Vec::new(),
            never_taken: Vec::new(),
        }
    }

    /// See [`Model::tighten`]. An `info` enqueue of an element no `ok` dequeue returns can only
    /// get in the way (in a FIFO queue it blocks those behind it): dropped. The only enqueue of an
    /// element an `ok` dequeue returned took effect before that dequeue completed.
    fn tighten(&mut self, ops: &mut Vec<KeyOp<Step>>) {
        let elements = self.elements.len();
        let mut enqueued = vec![0usize; elements];
        let mut taken: Vec<Vec<u64>> = vec![Vec::new(); elements];
        let mut interval = vec![None; elements];
        for op in ops.iter() {
            match op.step {
                Step::Enqueue(e) => enqueued[e as usize] += 1,
                Step::Dequeue(e) => {
                    let ret = op.ret.expect("an ok dequeue is required");
                    taken[e as usize].push(ret);
                    interval[e as usize] = Some((op.call, ret));
                }
                _ => {}
            }
        }
        ops.retain(|op| {
            !(op.ret.is_none()
                && matches!(op.step, Step::Enqueue(e) if taken[e as usize].is_empty()))
        });
        for op in ops.iter_mut() {
            if op.ret.is_none()
                && let Step::Enqueue(e) = op.step
                && enqueued[e as usize] == 1
            {
                op.ret = taken[e as usize]
                    .iter()
                    .copied()
                    .filter(|&r| r > op.call)
                    .min();
            }
        }
        self.spare = (0..elements)
            .map(|e| enqueued[e] > taken[e].len())
            .collect();
        self.taken = (0..elements)
            .map(|e| interval[e].filter(|_| enqueued[e] == 1 && taken[e].len() == 1))
            .collect();
        self.never_taken = taken.iter().map(Vec::is_empty).collect();
    }

    /// See [`Model::viable`]. In a FIFO queue an element leaves before every element behind it.
    /// Let N be the newest element, and its dequeue complete at G. Every element ahead of N
    /// must leave before G: one that an `ok` dequeue takes only if that dequeue began before G
    /// (else the state is a dead end), one that no `ok` dequeue returns only through a pending
    /// `info` dequeue invoked before G (one each). Only N is checked: every other pair was
    /// checked when its younger element joined.
    fn viable(&self, state: StateId, pending: Pending<'_, Step>) -> bool {
        if !self.fifo {
            return true;
        }
        let Some((&newest, ahead)) = self.states.get(state).split_last() else {
            return true;
        };
        let Some((_, gone)) = self.taken[newest as usize] else {
            return true;
        };
        let mut lost = 0;
        for &a in ahead {
            if let Some((leaves, _)) = self.taken[a as usize]
                && leaves > gone
            {
                return false;
            }
            lost += usize::from(self.never_taken[a as usize]);
        }
        lost == 0
            || pending
                .take_while(|e| e.index < gone)
                .filter(|e| e.call && e.step == Step::DequeueOldest)
                .nth(lost - 1)
                .is_some()
    }

    fn compile(&mut self, op: &Operation) -> Option<Compiled<Step>> {
        let step = match (&op.call, &op.outcome) {
            (Call::Enqueue(v), _) => Step::Enqueue(self.elements.intern(v)),
            (Call::Dequeue, Outcome::Ok(Some(v))) => Step::Dequeue(self.elements.intern(v)),
            (Call::Dequeue, Outcome::Ok(None)) => Step::DequeueNothing,
            (Call::Dequeue, Outcome::Info) if self.fifo => Step::DequeueOldest,
            (Call::Dequeue, _) => return None,
            (other, _) => panic!("a {} in a queue history", other.name()),
        };
        Compiled::by_outcome(op, step)
    }

    fn apply(&mut self, state: StateId, step: Step) -> Option<StateId> {
        if let Some(&next) = self.after.get(&(state, step)) {
            return next;
        }
        let current = self.states.get(state);
        self.scratch.clear();
        let ok = match step {
            Step::Enqueue(e) => {
                self.scratch.extend_from_slice(current);
                if self.fifo {
                    self.scratch.push(e);
                } else {
                    let at = current.partition_point(|&x| x <= e);
                    self.scratch.insert(at, e);
                }
                true
            }
            Step::Dequeue(e) => {
                let at = if self.fifo {
                    current.first().filter(|&&x| x == e).map(|_| 0)
                } else {
                    current.binary_search(&e).ok()
                };
                if let Some(at) = at {
                    self.scratch.extend_from_slice(current);
                    self.scratch.remove(at);
                }
                at.is_some()
            }
            // Taking an element whose every copy an `ok` dequeue returns would leave one of
            // them nothing to take.
            Step::DequeueOldest => match current.first() {
                Some(&head) if self.spare[head as usize] => {
                    self.scratch.extend_from_slice(&current[1..]);
                    true
                }
                _ => false,
            },
            Step::DequeueNothing => false,
        };
        let next = ok.then(|| {
            let scratch = std::mem::take(&mut self.scratch);
            let next = self.states.intern(&scratch);
            self.scratch = scratch;
            next
        });
        self.after.insert((state, step), next);
        next
    }

    fn values(&self, state: StateId) -> impl Iterator<Item = &Value> {
        self.states.get(state).iter().map(|&e| self.elements.get(e))
    }

    fn describe(&self, state: StateId) -> String {
        if self.fifo {
            let shown: Vec<String> = self.values(state).map(|v| v.to_string()).collect();
            format!("[{}] (oldest first)", shown.join(", "))
        } else {
            braces(self.values(state))
        }
    }

    fn to_json(&self, state: StateId) -> serde_json::Value {
        let mut values: Vec<&Value> = self.values(state).collect();
        if !self.fifo {
            values.sort();
        }
        serde_json::to_value(values).expect("values serialise")
    }

    fn refusal(&self, state: StateId, step: Step) -> String {
        let held = self.describe(state);
        match step {
            Step::Dequeue(e) if self.states.get(state).is_empty() => format!(
                "the queue was empty, so {} was not in it",
                self.elements.get(e)
            ),
            Step::Dequeue(e) if self.fifo && self.states.get(state).contains(&e) => format!(
                "{} was not the oldest element: the queue held {held}",
                self.elements.get(e)
            ),
            Step::Dequeue(e) => format!(
                "{} was not in the queue, which held {held}",
                self.elements.get(e)
            ),
            _ => "a dequeue that returned nothing matches no element".to_owned(),
        }
    }
}

/// Knossos's `unordered-queue`.
pub(crate) struct UnorderedQueue(Queue);

/// Knossos's `fifo-queue`.
pub(crate) struct FifoQueue(Queue);

impl Default for UnorderedQueue {
    fn default() -> UnorderedQueue {
        UnorderedQueue(Queue::new(false))
    }
}

impl Default for FifoQueue {
    fn default() -> FifoQueue {
        FifoQueue(Queue::new(true))
    }
}

macro_rules! queue_model {
    ($model:ty) => {
        impl Model for $model {
            type Step = Step;

            fn compile(&mut self, op: &Operation) -> Option<Compiled<Step>> {
                self.0.compile(op)
            }

            fn tighten(&mut self, ops: &mut Vec<KeyOp<Step>>) {
                self.0.tighten(ops)
            }

            fn viable(&self, state: StateId, pending: Pending<'_, Step>) -> bool {
                self.0.viable(state, pending)
            }

            fn initial(&mut self) -> StateId {
                0
            }

            fn apply(&mut self, state: StateId, step: Step) -> Option<StateId> {
                self.0.apply(state, step)
            }

            fn describe(&self, state: StateId) -> String {
                self.0.describe(state)
            }

            fn to_json(&self, state: StateId) -> serde_json::Value {
                self.0.to_json(state)
            }

            fn refusal(&self, state: StateId, step: Step) -> String {
                self.0.refusal(state, step)
            }

            fn explain(&self, f: &Failure<'_>, _: StateId) -> Option<Explanation> {
                explain(f, self.0.fifo)
            }

            fn sources(history: &History, ops: &[u32]) -> Vec<(u32, Vec<Vec<u32>>)> {
                sources(history, ops)
            }
        }
    };
}

queue_model!(UnorderedQueue);
queue_model!(FifoQueue);

/// The value an `ok` dequeue returned.
fn dequeued<'h>(f: &Failure<'h>, i: u32) -> Option<&'h Value> {
    match (
        &f.history.ops[i as usize].call,
        &f.history.ops[i as usize].outcome,
    ) {
        (Call::Dequeue, Outcome::Ok(Some(v))) => Some(v),
        _ => None,
    }
}

/// The first plainly wrong dequeue (the culprit first, then by completion): of an element never
/// enqueued, or enqueued only later, or more often than enqueued; in a FIFO queue, one that
/// overtook an older element still in the queue.
fn explain(f: &Failure<'_>, fifo: bool) -> Option<Explanation> {
    let mut dequeues: Vec<u32> = f
        .key_ops
        .iter()
        .copied()
        .filter(|&i| dequeued(f, i).is_some())
        .collect();
    dequeues.sort_by_key(|&i| (i != f.culprit, f.op(i).complete));
    let enqueues_of = |v: &Value| -> Vec<u32> {
        f.effective()
            .filter(|&i| matches!(&f.op(i).call, Call::Enqueue(x) if x == v))
            .collect()
    };
    let said = |sentence: String, missed: Option<u32>| Some(Explanation { sentence, missed });
    for &d in &dequeues {
        let v = dequeued(f, d).expect("filtered");
        let op = f.op(d);
        let what = format!(
            "dequeue from {} by process {} {}",
            f.key(),
            op.process,
            f.when(op.invoke, op.complete)
        );
        let enqueues = enqueues_of(v);
        let end = op.complete.map_or(u64::MAX, |c| c.index);
        if enqueues.is_empty() {
            return said(
                format!("{what} dequeued {v}, which was never enqueued"),
                None,
            );
        }
        if enqueues.iter().all(|&e| f.op(e).invoke.index > end) {
            let e = f.op(enqueues[0]);
            return said(
                format!(
                    "{what} dequeued {v} before it was enqueued: process {}'s enqueue began {}",
                    e.process,
                    f.when(e.invoke, None)
                ),
                None,
            );
        }
        let taken = dequeues
            .iter()
            .filter(|&&x| dequeued(f, x) == Some(v))
            .count();
        if taken > enqueues.len() {
            return said(
                format!(
                    "{what} dequeued {v}, which was dequeued {} but enqueued {}",
                    times(taken),
                    times(enqueues.len())
                ),
                None,
            );
        }
        if fifo
            && enqueues.len() == 1
            && let Some(older) = overtaken(f, d, enqueues[0], &dequeues)
        {
            let (o, e) = (f.op(older), f.op(enqueues[0]));
            let Call::Enqueue(u) = &o.call else {
                unreachable!("an enqueue")
            };
            return said(
                format!(
                    "{what} dequeued {v} out of order: {u} was enqueued before it (process {}'s \
                     enqueue completed {}, process {}'s enqueue of {v} began {}) and was still \
                     in the queue",
                    o.process,
                    f.when(o.complete.expect("an ok enqueue completed"), None),
                    e.process,
                    f.when(e.invoke, None)
                ),
                Some(older),
            );
        }
    }
    None
}

/// An `ok` enqueue of another element that completed before `enqueue` began and that no dequeue
/// can have taken before dequeue `d` completed (every dequeue of it, and every `info` dequeue,
/// began after).
fn overtaken(f: &Failure<'_>, d: u32, enqueue: u32, dequeues: &[u32]) -> Option<u32> {
    let start = f.op(enqueue).invoke.index;
    let end = f.op(d).complete.map_or(u64::MAX, |c| c.index);
    let blind = f.effective().any(|i| {
        let x = f.op(i);
        x.call == Call::Dequeue && x.outcome == Outcome::Info && x.invoke.index < end
    });
    if blind {
        return None;
    }
    f.effective().find(|&i| {
        let o = f.op(i);
        let Call::Enqueue(u) = &o.call else {
            return false;
        };
        matches!(o.outcome, Outcome::Ok(_))
            && o.complete.is_some_and(|c| c.index < start)
            && !dequeues
                .iter()
                .any(|&x| dequeued(f, x) == Some(u) && f.op(x).invoke.index < end)
    })
}

fn times(n: usize) -> String {
    match n {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    }
}

/// The shrinker's rule: a dequeue of x needs an enqueue of x.
fn sources(history: &History, ops: &[u32]) -> Vec<(u32, Vec<Vec<u32>>)> {
    let op = |i: u32| &history.ops[i as usize];
    let mut enqueues: FxHashMap<&Value, Vec<u32>> = FxHashMap::default();
    for &i in ops {
        if let (Call::Enqueue(v), o) = (&op(i).call, &op(i).outcome)
            && *o != Outcome::Fail
        {
            enqueues.entry(v).or_default().push(i);
        }
    }
    ops.iter()
        .filter_map(|&i| match (&op(i).call, &op(i).outcome) {
            (Call::Dequeue, Outcome::Ok(Some(v))) => enqueues.get(v).map(|e| (i, vec![e.clone()])),
            _ => None,
        })
        .collect()
}
