//! Knossos's `mutex`: one lock, acquired and released. It does not know who holds it: an acquire
//! requires it free, a release requires it held, whoever releases.
//!
//! | operation | `ok` | `info` | `fail` |
//! |---|---|---|---|
//! | acquire | took the lock (it was free) | may have, at any point after invocation | dropped |
//! | release | freed the lock (it was held) | may have, at any point after invocation | dropped |

use super::{Compiled, Model, StateId};
use crate::explain::{Explanation, Failure};
use crate::history::{Call, Event, History, Operation, Outcome};

const FREE: StateId = 0;
const HELD: StateId = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    Acquire,
    Release,
}

#[derive(Default)]
pub(crate) struct Mutex;

impl Model for Mutex {
    type Step = Step;

    fn compile(&mut self, op: &Operation) -> Option<Compiled<Step>> {
        let step = match op.call {
            Call::Acquire => Step::Acquire,
            Call::Release => Step::Release,
            ref other => panic!("a {} in a mutex history", other.name()),
        };
        Compiled::by_outcome(op, step)
    }

    fn initial(&mut self) -> StateId {
        FREE
    }

    #[inline]
    fn apply(&mut self, state: StateId, step: Step) -> Option<StateId> {
        match step {
            Step::Acquire => (state == FREE).then_some(HELD),
            Step::Release => (state == HELD).then_some(FREE),
        }
    }

    fn describe(&self, state: StateId) -> String {
        if state == HELD { "held" } else { "free" }.to_owned()
    }

    fn to_json(&self, state: StateId) -> serde_json::Value {
        serde_json::Value::from(if state == HELD { "locked" } else { "free" })
    }

    fn refusal(&self, _: StateId, step: Step) -> String {
        match step {
            Step::Acquire => "the lock was already held".to_owned(),
            Step::Release => "the lock was not held".to_owned(),
        }
    }

    /// A core keeps each acquire with the same process's next release, and each release with
    /// the same process's acquire before it: a lock is taken and given back by one client, and
    /// a core of acquires whose releases were cut "cannot be ordered" for no reason worth
    /// showing. So a core is a few acquire-release pairs that overlap.
    const PRUNE_ORPHANS: bool = true;

    fn sources(history: &History, ops: &[u32]) -> Vec<(u32, Vec<Vec<u32>>)> {
        let mut needs = Vec::new();
        for (n, &i) in ops.iter().enumerate() {
            let op = &history.ops[i as usize];
            let same = |&&j: &&u32| history.ops[j as usize].process == op.process;
            let partner = match op.call {
                Call::Acquire => ops[n + 1..]
                    .iter()
                    .filter(same)
                    .find(|&&j| history.ops[j as usize].call == Call::Release),
                Call::Release => ops[..n]
                    .iter()
                    .rev()
                    .filter(same)
                    .find(|&&j| history.ops[j as usize].call == Call::Acquire),
                _ => None,
            };
            if let Some(&j) = partner {
                needs.push((i, vec![vec![j]]));
            }
        }
        needs
    }

    fn explain(&self, f: &Failure<'_>, state: StateId) -> Option<Explanation> {
        if let Some((a, b)) = double_hold(f) {
            return Some(two_holders(f, a, b));
        }
        // No pair that is certain on its own: tell the story of the longest explainable order.
        let c = f.op(f.culprit);
        match (&c.call, state) {
            (Call::Acquire, HELD) => {
                let holder = f
                    .prefix
                    .iter()
                    .rev()
                    .copied()
                    .find(|&i| f.op(i).call == Call::Acquire)?;
                Some(two_holders(f, f.culprit, holder))
            }
            (Call::Release, FREE) => {
                let last = f
                    .prefix
                    .iter()
                    .rev()
                    .copied()
                    .find(|&i| f.op(i).call == Call::Release);
                let since = match last {
                    Some(r) => format!(
                        "; the last release that can come before it, process {}'s, completed {}",
                        f.op(r).process,
                        span_end(f, f.op(r))
                    ),
                    None => "; no acquire can come before it".to_owned(),
                };
                Some(Explanation {
                    sentence: format!(
                        "the lock was released when no one held it: process {} released it {}, \
                         and in the longest explainable order of {} operations the lock was free \
                         by then{since}",
                        c.process,
                        f.when(c.invoke, c.complete),
                        f.prefix.len()
                    ),
                    missed: last,
                })
            }
            _ => None,
        }
    }
}

/// "process A acquired it (from .. to ..) while process B held it (acquired .., released ..)".
fn two_holders(f: &Failure<'_>, second: u32, first: u32) -> Explanation {
    let (a, b) = (f.op(second), f.op(first));
    let released = next_release(f, b).map_or_else(
        || "never released".to_owned(),
        |r| format!("released {}", span_end(f, f.op(r))),
    );
    Explanation {
        sentence: format!(
            "the lock was held by two clients at once: process {} acquired it {} while process \
             {} held it (acquired {}, {released})",
            a.process,
            f.when(a.invoke, a.complete),
            b.process,
            span_end(f, b),
        ),
        missed: Some(first),
    }
}

/// "at 1.2 s" for a completed operation, "(invoked at 1.2 s, outcome unknown)" otherwise.
fn span_end(f: &Failure<'_>, op: &Operation) -> String {
    match (op.complete, &op.outcome) {
        (Some(done), Outcome::Ok(_)) => f.when(done, None),
        _ => format!("{} (invoked; outcome unknown)", f.when(op.invoke, None)),
    }
}

/// The first release by `holder`'s process invoked after its acquire, if any.
fn next_release(f: &Failure<'_>, holder: &Operation) -> Option<u32> {
    f.effective().find(|&i| {
        let r = f.op(i);
        r.call == Call::Release
            && r.process == holder.process
            && r.invoke.index > holder.invoke.index
    })
}

/// Two `ok` acquires that cannot both hold in any order: `b` completed before `a` was invoked,
/// and no release (that may have taken effect) can fall between them. Returns `(a, b)`: `a`
/// acquired while `b` held the lock. Among several, the one whose `a` completes first.
///
/// For each `a`, the best `b` is the one invoked last among those completed before `a` began
/// (a release between `b` and `a` must end after `b` begins), so a sweep finds every pair in
/// O(n log n).
fn double_hold(f: &Failure<'_>) -> Option<(u32, u32)> {
    let ok = |i: &u32| matches!(f.op(*i).outcome, Outcome::Ok(_));
    let mut acquires: Vec<u32> = f
        .key_ops
        .iter()
        .copied()
        .filter(|i| f.op(*i).call == Call::Acquire)
        .filter(ok)
        .collect();
    // Releases that may have taken effect, by invocation, with the latest end so far.
    let mut releases: Vec<(u64, u64)> = f
        .effective()
        .filter(|&i| f.op(i).call == Call::Release)
        .map(|i| {
            let r = f.op(i);
            let end = match r.outcome {
                Outcome::Ok(_) => r.complete.map_or(u64::MAX, |c| c.index),
                _ => u64::MAX,
            };
            (r.invoke.index, end)
        })
        .collect();
    releases.sort_unstable();
    let mut latest_end = Vec::with_capacity(releases.len());
    let mut max = 0;
    for &(_, end) in &releases {
        max = max.max(end);
        latest_end.push(max);
    }
    let done = |e: &Option<Event>| e.map_or(u64::MAX, |c| c.index);
    let mut by_completion = acquires.clone();
    by_completion.sort_unstable_by_key(|&i| done(&f.op(i).complete));
    acquires.sort_unstable_by_key(|&i| f.op(i).invoke.index);
    let mut next = 0;
    let mut best: Option<u32> = None;
    let mut found: Option<(u32, u32)> = None;
    for &a in &acquires {
        let a_op = f.op(a);
        while next < by_completion.len()
            && done(&f.op(by_completion[next]).complete) < a_op.invoke.index
        {
            let b = by_completion[next];
            if best.is_none_or(|x| f.op(x).invoke.index < f.op(b).invoke.index) {
                best = Some(b);
            }
            next += 1;
        }
        let Some(b) = best else { continue };
        // A release fits between b and a iff it is invoked before a completes and ends after b
        // begins.
        let a_end = done(&a_op.complete);
        let fits = releases.partition_point(|&(invoke, _)| invoke < a_end);
        let blocked = fits > 0 && latest_end[fits - 1] > f.op(b).invoke.index;
        if !blocked && found.is_none_or(|(x, _)| done(&f.op(x).complete) > a_end) {
            found = Some((a, b));
        }
    }
    found
}
