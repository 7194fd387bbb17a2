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
        let (explanation, missed) = self.explain(culprit);
        Anomaly {
            explanation,
            missed: missed.map(summary),
            culprit: summary(self.culprit),
            prefix_len: self.prefix.len(),
            prefix_tail: self.prefix[self.prefix.len().saturating_sub(TAIL)..]
                .iter()
                .map(|&i| summary(i))
                .collect(),
            value_after_prefix: serde_json::to_value(&self.value_after).expect("values serialise"),
            around: self.around(culprit).into_iter().map(summary).collect(),
            core: None,
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

    /// The explanation, and the acknowledged write the culprit failed to see, if it names one.
    fn explain(&self, c: &Operation) -> (String, Option<u32>) {
        let h = self.history;
        let key = h.key_name(c);
        let at = when(h, c.invoke, c.complete);
        let after = format!(
            "after the longest explainable order of {} operations, {key} held {}",
            self.prefix.len(),
            Shown(&self.value_after)
        );
        let sentence = match (&c.call, &c.outcome) {
            (Call::Read, Outcome::Ok(read)) => {
                let what = format!(
                    "read of {key} by process {} {at} returned {}",
                    c.process,
                    Shown(read)
                );
                return self.observation(c, read, &what, &after);
            }
            (Call::Cas { expected, new }, Outcome::Ok(_)) => {
                let what = format!(
                    "cas of {key} from {} to {new} by process {} {at} succeeded",
                    Shown(expected),
                    c.process
                );
                return self.observation(c, expected, &what, &after);
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
        };
        (sentence, None)
    }

    /// Explains why `c`, which observed `seen`, cannot be linearised; names the write `c` missed
    /// when the story is one of a value already overwritten.
    fn observation(
        &self,
        c: &Operation,
        seen: &Option<Value>,
        what: &str,
        after: &str,
    ) -> (String, Option<u32>) {
        let h = self.history;
        let unexplained = || {
            (
                format!("{what}, which no order of the concurrent operations explains: {after}"),
                None,
            )
        };
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
            return (
                format!("{what}, but no operation ever wrote {}", Shown(seen)),
                None,
            );
        }
        let possible: Vec<&&Operation> =
            writers.iter().filter(|w| w.invoke.index < c_end).collect();
        if possible.is_empty() && !initial {
            let first = writers
                .iter()
                .min_by_key(|w| w.invoke.index)
                .expect("writers is not empty");
            let sentence = format!(
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
            return (sentence, None);
        }
        // Every possible source of the value was overwritten before `c` began? The overwriting
        // operation, as an index into the history's operations.
        let shadow = |done: u64| {
            self.key_ops.iter().copied().find(|&i| {
                let x = &h.ops[i as usize];
                matches!(x.outcome, Outcome::Ok(_))
                    && writes(x).is_some_and(|v| v != *seen)
                    && x.invoke.index > done
                    && x.complete.is_some_and(|e| e.index < c_start)
            })
        };
        let mut latest: Option<(&Operation, u32)> = None;
        for w in &possible {
            let Some(done) = w.complete.filter(|_| matches!(w.outcome, Outcome::Ok(_))) else {
                return unexplained();
            };
            match shadow(done.index) {
                Some(x) => {
                    if latest.is_none_or(|(l, _)| l.complete < w.complete) {
                        latest = Some((w, x));
                    }
                }
                None => return unexplained(),
            }
        }
        if initial && shadow(0).is_none() {
            return unexplained();
        }
        match latest {
            Some((w, xi)) => {
                let x = &h.ops[xi as usize];
                let sentence = format!(
                    "{what}, but process {}'s {} completed {} and process {}'s {} had overwritten it \
                     (completed {}) before the {} began",
                    w.process,
                    crate::verdict::describe(w),
                    when(h, w.complete.expect("shadowed writers completed"), None),
                    x.process,
                    crate::verdict::describe(x),
                    when(h, x.complete.expect("shadows completed"), None),
                    c.call.func()
                );
                (sentence, Some(xi))
            }
            None => {
                let xi = shadow(0).expect("initial value shadowed");
                let x = &h.ops[xi as usize];
                let sentence = format!(
                    "{what}, the initial value, but process {}'s {} had already replaced it (completed {})",
                    x.process,
                    crate::verdict::describe(x),
                    when(h, x.complete.expect("shadows completed"), None),
                );
                (sentence, Some(xi))
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

/// "at 1.234567 s" / "(from 1.234567 s to 1.240001 s)": seconds since the history's time 0, to
/// the microsecond; by line for untimed histories.
fn when(h: &History, start: Event, end: Option<Event>) -> String {
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
