//! Turns a failed search into a counterexample a person can read.
//!
//! The search hands over the longest prefix it could linearise and the culprit: the operation
//! that completed first among those left, so nothing could be placed after the prefix without
//! it. The model then tells the simplest story it knows behind the failure ([`Model::explain`]:
//! a value nobody wrote, a lock held twice, an element lost); otherwise the sentence says where
//! the longest explainable order ends and why the culprit cannot come next.

use crate::history::{Event, History, Operation};
use crate::model::{Model, StateId};
use crate::verdict::{Anomaly, OpSummary};

/// How many of the prefix's last operations, and of the operations before the culprit, to show.
const TAIL: usize = 8;

/// A key whose search failed, as [`Model::explain`] sees it.
pub struct Failure<'a> {
    pub history: &'a History,
    /// Every operation on the key (indices into `history.ops`), by invocation.
    pub key_ops: &'a [u32],
    /// The longest linearisable prefix found (indices into `history.ops`), in its order.
    pub prefix: &'a [u32],
    /// The operation that could not come after the prefix (index into `history.ops`).
    pub culprit: u32,
}

/// A model's account of a failure.
pub struct Explanation {
    /// One sentence in plain words.
    pub sentence: String,
    /// The operation to look at first, when the story names one (the write a stale read
    /// missed, the acquire a second holder ignored): index into `history.ops`.
    pub missed: Option<u32>,
}

impl Failure<'_> {
    pub fn op(&self, index: u32) -> &Operation {
        &self.history.ops[index as usize]
    }

    /// The name of the key.
    pub fn key(&self) -> &str {
        self.history.key_name(self.op(self.culprit))
    }

    /// The operation in a few words: `write 3`, `acquire (outcome unknown)`.
    pub fn describe(&self, index: u32) -> String {
        crate::verdict::describe(self.history, self.op(index))
    }

    /// "at 1.234567 s" / "(from 1.234567 s to 1.240001 s)": seconds since the history's time 0,
    /// to the microsecond; by line for untimed histories.
    pub fn when(&self, start: Event, end: Option<Event>) -> String {
        when(self.history, start, end)
    }

    /// The key's operations that may take effect (not `fail`), indices into `history.ops`.
    pub fn effective(&self) -> impl Iterator<Item = u32> + '_ {
        self.key_ops
            .iter()
            .copied()
            .filter(|&i| self.op(i).outcome != crate::history::Outcome::Fail)
    }
}

/// The anomaly of a failed search. `state`: the key's state after the prefix; `step`: the
/// culprit's.
pub(crate) fn anomaly<M: Model>(
    failure: &Failure<'_>,
    model: &mut M,
    state: StateId,
    step: M::Step,
) -> Anomaly {
    let h = failure.history;
    let summary = |i: u32| OpSummary::new(h, i as usize);
    let explanation = model
        .explain(failure, state)
        .unwrap_or_else(|| generic(failure, model, state, step));
    let prefix = failure.prefix;
    Anomaly {
        explanation: explanation.sentence,
        missed: explanation.missed.map(summary),
        culprit: summary(failure.culprit),
        refuted_before_search: false,
        prefix_len: prefix.len(),
        prefix_tail: prefix[prefix.len().saturating_sub(TAIL)..]
            .iter()
            .map(|&i| summary(i))
            .collect(),
        value_after_prefix: model.to_json(state),
        state_after_prefix: model.describe(state),
        around: around(failure).into_iter().map(summary).collect(),
        core: None,
    }
}

/// Where the longest explainable order ends, and why the culprit cannot come next.
fn generic<M: Model>(
    failure: &Failure<'_>,
    model: &mut M,
    state: StateId,
    step: M::Step,
) -> Explanation {
    let c = failure.op(failure.culprit);
    let why = match model.apply(state, step) {
        None => model.refusal(state, step),
        Some(_) => format!(
            "{} held {}, and nothing that can come next lets the {} follow",
            failure.key(),
            model.describe(state),
            c.call.name()
        ),
    };
    Explanation {
        sentence: format!(
            "{} by process {} on {} {} cannot be placed in any order consistent with the \
             operations around it: after the longest explainable order of {}, {why}",
            failure.describe(failure.culprit),
            c.process,
            failure.key(),
            failure.when(c.invoke, c.complete),
            counted(failure.prefix.len() as u64, "operation", "operations"),
        ),
        missed: None,
    }
}

/// Operations overlapping the culprit, and the last few that completed before it began.
fn around(failure: &Failure<'_>) -> Vec<u32> {
    let culprit = failure.op(failure.culprit);
    let end = culprit.complete.map_or(u64::MAX, |c| c.index);
    let start = culprit.invoke.index;
    let before: Vec<u32> = failure
        .key_ops
        .iter()
        .copied()
        .filter(|&i| failure.op(i).complete.is_some_and(|c| c.index < start))
        .collect();
    let mut shown: Vec<u32> = before[before.len().saturating_sub(TAIL)..].to_vec();
    shown.extend(failure.key_ops.iter().copied().filter(|&i| {
        let op = failure.op(i);
        op.invoke.index <= end && op.complete.is_none_or(|c| c.index >= start)
    }));
    shown.sort_by_key(|&i| failure.op(i).invoke.index);
    shown.dedup();
    shown
}

pub(crate) fn when(h: &History, start: Event, end: Option<Event>) -> String {
    let point = |e: Event| {
        if h.timed {
            format!("{:.6} s", e.time as f64 / 1e9)
        } else {
            format!("line {}", e.line)
        }
    };
    match end {
        Some(end) => format!("(from {} to {})", point(start), point(end)),
        None => format!("at {}", point(start)),
    }
}

/// `n` and the noun in the number it takes: `counted(1, "key", "keys")` is "1 key".
pub fn counted(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}
