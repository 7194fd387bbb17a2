//! Turns a failed search into a counterexample a person can read.
//!
//! The search hands over the longest prefix it could linearise and the culprit: the operation
//! that completed first among those left, so nothing could be placed after the prefix without
//! it. The explanation then looks for the simplest story behind a wrong observation: a value
//! nobody wrote, a value written only later, or a value already overwritten.

use crate::history::{Call, Event, History, Operation, Outcome, Shown, Value};
use crate::verdict::{Anomaly, OpSummary};

/// How many of the prefix's last operations, and of the operations before the culprit, to show.
const TAIL: usize = 8;

pub(crate) struct Failure<'a> {
    pub(crate) history: &'a History,
    /// Every operation on the key (indices into `history.ops`), by invocation.
    pub(crate) key_ops: &'a [u32],
    /// The longest linearisable prefix (indices into `history.ops`).
    pub(crate) prefix: Vec<u32>,
    pub(crate) culprit: u32,
    /// The key's value after the prefix.
    pub(crate) value_after: Option<Value>,
}

impl Failure<'_> {
    pub(crate) fn anomaly(&self) -> Anomaly {
        let h = self.history;
        let culprit = &h.ops[self.culprit as usize];
        let summary = |i: u32| OpSummary::new(h, i as usize);
        Anomaly {
            explanation: self.explain(culprit),
            culprit: summary(self.culprit),
            prefix_len: self.prefix.len(),
            prefix_tail: self.prefix[self.prefix.len().saturating_sub(TAIL)..]
                .iter()
                .map(|&i| summary(i))
                .collect(),
            value_after_prefix: serde_json::to_value(&self.value_after).expect("values serialise"),
            around: self.around(culprit).into_iter().map(summary).collect(),
        }
    }

    /// Operations overlapping the culprit, and the last few that completed before it began.
    fn around(&self, culprit: &Operation) -> Vec<u32> {
        let h = self.history;
        let end = culprit.complete.map_or(u64::MAX, |c| c.index);
        let start = culprit.invoke.index;
        let before: Vec<u32> = self
            .key_ops
            .iter()
            .copied()
            .filter(|&i| h.ops[i as usize].complete.is_some_and(|c| c.index < start))
            .collect();
        let mut shown: Vec<u32> = before[before.len().saturating_sub(TAIL)..].to_vec();
        shown.extend(self.key_ops.iter().copied().filter(|&i| {
            let op = &h.ops[i as usize];
            op.invoke.index <= end && op.complete.is_none_or(|c| c.index >= start)
        }));
        shown.sort_by_key(|&i| h.ops[i as usize].invoke.index);
        shown.dedup();
        shown
    }

    fn explain(&self, c: &Operation) -> String {
        let h = self.history;
        let key = h.key_name(c);
        let at = when(h, c.invoke, c.complete);
        let after = format!(
            "after the longest explainable order of {} operations, {key} held {}",
            self.prefix.len(),
            Shown(&self.value_after)
        );
        match (&c.call, &c.outcome) {
            (Call::Read, Outcome::Ok(read)) => {
                let what = format!(
                    "read of {key} by process {} {at} returned {}",
                    c.process,
                    Shown(read)
                );
                self.observation(c, read, &what, &after)
            }
            (Call::Cas { expected, new }, Outcome::Ok(_)) => {
                let what = format!(
                    "cas of {key} from {} to {new} by process {} {at} succeeded",
                    Shown(expected),
                    c.process
                );
                self.observation(c, expected, &what, &after)
            }
            (Call::Cas { expected, .. }, Outcome::PreconditionFailed) => format!(
                "cas of {key} by process {} {at} failed because the value was not {}, but \
                 no order of the operations around it lets {key} hold anything else during the \
                 call ({after})",
                c.process,
                Shown(expected)
            ),
            _ => format!(
                "{} by process {} on {key} {at} cannot be placed in any order consistent with the \
                 operations around it ({after})",
                crate::verdict::describe(c),
                c.process
            ),
        }
    }

    /// Explains why `c`, which observed `seen`, cannot be linearised.
    fn observation(&self, c: &Operation, seen: &Option<Value>, what: &str, after: &str) -> String {
        let h = self.history;
        let c_start = c.invoke.index;
        let c_end = c.complete.map_or(u64::MAX, |e| e.index);
        let writers: Vec<&Operation> = self
            .key_ops
            .iter()
            .map(|&i| &h.ops[i as usize])
            .filter(|w| !std::ptr::eq(*w, c) && writes(w).is_some_and(|v| v == *seen))
            .collect();
        let initial = h.initial == *seen;
        if writers.is_empty() && !initial {
            return format!("{what}, but no operation ever wrote {}", Shown(seen));
        }
        let possible: Vec<&&Operation> =
            writers.iter().filter(|w| w.invoke.index < c_end).collect();
        if possible.is_empty() && !initial {
            let first = writers
                .iter()
                .min_by_key(|w| w.invoke.index)
                .expect("writers is not empty");
            return format!(
                "{what}, but {} wrote {} only later: process {}'s {} began {}, after the {} had completed",
                if writers.len() == 1 {
                    "the only operation that"
                } else {
                    "every operation that"
                },
                Shown(seen),
                first.process,
                crate::verdict::describe(first),
                when(h, first.invoke, None),
                c.call.func()
            );
        }
        // Every possible source of the value was overwritten before `c` began?
        let shadow = |done: u64| {
            self.key_ops.iter().map(|&i| &h.ops[i as usize]).find(|x| {
                matches!(x.outcome, Outcome::Ok(_))
                    && writes(x).is_some_and(|v| v != *seen)
                    && x.invoke.index > done
                    && x.complete.is_some_and(|e| e.index < c_start)
            })
        };
        let mut latest: Option<(&Operation, &Operation)> = None;
        for w in &possible {
            let Some(done) = w.complete.filter(|_| matches!(w.outcome, Outcome::Ok(_))) else {
                return format!(
                    "{what}, which no order of the concurrent operations explains: {after}"
                );
            };
            match shadow(done.index) {
                Some(x) => {
                    if latest.is_none_or(|(l, _)| l.complete < w.complete) {
                        latest = Some((w, x));
                    }
                }
                None => {
                    return format!(
                        "{what}, which no order of the concurrent operations explains: {after}"
                    );
                }
            }
        }
        if initial && shadow(0).is_none() {
            return format!(
                "{what}, which no order of the concurrent operations explains: {after}"
            );
        }
        match latest {
            Some((w, x)) => format!(
                "{what}, but process {}'s {} completed {} and process {}'s {} had overwritten it \
                 (completed {}) before the {} began",
                w.process,
                crate::verdict::describe(w),
                when(h, w.complete.expect("shadowed writers completed"), None),
                x.process,
                crate::verdict::describe(x),
                when(h, x.complete.expect("shadows completed"), None),
                c.call.func()
            ),
            None => {
                let x = shadow(0).expect("initial value shadowed");
                format!(
                    "{what}, the initial value, but process {}'s {} had already replaced it (completed {})",
                    x.process,
                    crate::verdict::describe(x),
                    when(h, x.complete.expect("shadows completed"), None),
                )
            }
        }
    }
}

/// The value an operation leaves in the key, when it sets one outright.
fn writes(op: &Operation) -> Option<Option<Value>> {
    if matches!(op.outcome, Outcome::Fail | Outcome::PreconditionFailed) {
        return None;
    }
    match &op.call {
        Call::Write(v) => Some(Some(v.clone())),
        Call::Cas { new, .. } => Some(Some(new.clone())),
        Call::Delete => Some(None),
        Call::Read | Call::Append(_) => None,
    }
}

/// "at 1.234 s" / "between 1.234 s and 1.240 s", or by line for untimed histories.
fn when(h: &History, start: Event, end: Option<Event>) -> String {
    let point = |e: Event| {
        if h.timed {
            format!("{:.3} ms", e.time as f64 / 1e6)
        } else {
            format!("line {}", e.line)
        }
    };
    match end {
        Some(end) => format!("(from {} to {})", point(start), point(end)),
        None => format!("at {}", point(start)),
    }
}
