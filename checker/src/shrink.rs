//! Shrinking a counterexample to its core: a smallest set of one key's operations that is not
//! linearizable on its own.
//!
//! Delta debugging (Zeller and Hildebrandt's ddmin) over the key's operations, with the search
//! as the oracle. Any subset of a history's operations is itself a well-formed history (each
//! operation keeps its invocation and completion), so every candidate can be checked as is. The
//! algorithm tries chunks and their complements at growing granularity, keeps any candidate that
//! is still not linearizable, and stops when no single operation can be removed (1-minimal) or
//! when the time budget runs out (the result is then smaller, still invalid, but maybe not
//! minimal). Every kept candidate was checked, so the result is invalid whatever the heuristics.
//!
//! One rule keeps the core meaningful: a candidate must keep, for every value it observes, an
//! operation that put that value there (for a read of an appended string, every append it
//! contains; for a CAS whose precondition failed, a writer of some other value). Without it, a read alone would be a "core": on its own it saw a value nobody
//! wrote. A value that nobody in the whole history wrote needs no writer: that read is the
//! anomaly.

use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::history::{Call, History, Outcome, Value};
use crate::model::KeyHistory;
use crate::search::{Progress, Search};

/// Steps per slice of an oracle search, between deadline checks.
const SLICE: u64 = 1 << 14;

/// A core and how it was found.
pub(crate) struct Shrunk {
    /// Indices into the history's operations, in invocation order.
    pub(crate) ops: Vec<u32>,
    /// Removing any one operation makes the rest linearizable.
    pub(crate) minimal: bool,
    /// Searches run.
    pub(crate) checks: u64,
}

/// Shrinks `ops` (one key's operations, not linearizable) to a core. `guess`: a subset worth
/// trying first (it is kept only if it is still invalid). `memory_limit`: bytes one oracle search
/// may use before its answer counts as "don't know".
pub(crate) fn shrink(
    history: &History,
    ops: &[u32],
    guess: Option<Vec<u32>>,
    deadline: Instant,
    memory_limit: usize,
) -> Shrunk {
    let mut oracle = Oracle {
        history,
        needs: needs(history, ops),
        deadline,
        memory_limit,
        checks: 0,
    };
    let mut current = ops.to_vec();
    if let Some(guess) = guess.filter(|g| g.len() < current.len())
        && oracle.invalid(&guess) == Some(true)
    {
        current = guess;
    }
    let minimal = ddmin(&mut current, &mut oracle);
    Shrunk {
        ops: current,
        minimal,
        checks: oracle.checks,
    }
}

/// Which operations a candidate must keep alongside an operation that observes a value.
enum Need {
    /// At least one of these (the writers of the value it read or expected).
    AnyOf(Vec<u32>),
    /// Every one of these (the appends whose text a read's string contains).
    AllOf(Vec<u32>),
}

/// For each operation of `ops` that observes a value someone in `ops` wrote, what it needs.
fn needs(history: &History, ops: &[u32]) -> FxHashMap<u32, Need> {
    let op = |i: u32| &history.ops[i as usize];
    let mut writers: FxHashMap<&Value, Vec<u32>> = FxHashMap::default();
    let mut appends: Vec<(u32, &Value)> = Vec::new();
    for &i in ops {
        if matches!(op(i).outcome, Outcome::Fail | Outcome::PreconditionFailed) {
            continue;
        }
        match &op(i).call {
            Call::Write(v) | Call::Cas { new: v, .. } => writers.entry(v).or_default().push(i),
            Call::Append(v) => appends.push((i, v)),
            Call::Read | Call::Delete => {}
        }
    }
    let text = |v: &Value| match v {
        Value::Str(s) => s.clone(),
        Value::Int(n) => n.to_string(),
    };
    let mut needs = FxHashMap::default();
    for &i in ops {
        // A CAS whose precondition failed saw some other value: it needs a writer of one.
        if let (Call::Cas { expected, .. }, Outcome::PreconditionFailed) =
            (&op(i).call, &op(i).outcome)
        {
            let others: Vec<u32> = ops
                .iter()
                .copied()
                .filter(|&j| j != i)
                .filter(|&j| match (&op(j).call, &op(j).outcome) {
                    (_, Outcome::Fail | Outcome::PreconditionFailed) => false,
                    (Call::Write(v) | Call::Cas { new: v, .. }, _) => Some(v) != expected.as_ref(),
                    (Call::Delete, _) => expected.is_some(),
                    _ => false,
                })
                .collect();
            if !others.is_empty() && appends.is_empty() {
                needs.insert(i, Need::AnyOf(others));
            }
            continue;
        }
        let seen = match (&op(i).call, &op(i).outcome) {
            (Call::Read, Outcome::Ok(Some(v))) => v,
            (
                Call::Cas {
                    expected: Some(v), ..
                },
                Outcome::Ok(_),
            ) => v,
            _ => continue,
        };
        if history.initial.as_ref() == Some(seen) {
            continue;
        }
        if !appends.is_empty() {
            let s = text(seen);
            let inside: Vec<u32> = appends
                .iter()
                .filter(|(_, a)| s.contains(&text(a)))
                .map(|&(j, _)| j)
                .collect();
            if !inside.is_empty() {
                needs.insert(i, Need::AllOf(inside));
            }
        } else if let Some(w) = writers.get(seen) {
            needs.insert(i, Need::AnyOf(w.clone()));
        }
    }
    needs
}

struct Oracle<'h> {
    history: &'h History,
    needs: FxHashMap<u32, Need>,
    deadline: Instant,
    memory_limit: usize,
    checks: u64,
}

impl Oracle<'_> {
    /// Whether `ops` alone are not linearizable; `None` when the budget ran out first.
    fn invalid(&mut self, ops: &[u32]) -> Option<bool> {
        if self.orphans(ops) {
            // Not a candidate: it observes a value whose writers it left out.
            return Some(false);
        }
        self.checks += 1;
        let mut search = Search::new(KeyHistory::compile(self.history, ops));
        loop {
            if Instant::now() >= self.deadline || search.memory() > self.memory_limit {
                return None;
            }
            match search.run(SLICE) {
                Progress::Paused => {}
                Progress::Linearizable => return Some(false),
                Progress::NotLinearizable { .. } => return Some(true),
            }
        }
    }
}

impl Oracle<'_> {
    /// Whether some operation of `ops` observes a value none of whose writers is in `ops`.
    fn orphans(&self, ops: &[u32]) -> bool {
        let kept: rustc_hash::FxHashSet<u32> = ops.iter().copied().collect();
        ops.iter().any(|i| match self.needs.get(i) {
            Some(Need::AnyOf(w)) => !w.iter().any(|j| kept.contains(j)),
            Some(Need::AllOf(w)) => !w.iter().all(|j| kept.contains(j)),
            None => false,
        })
    }
}

/// Reduces `current` (invalid) in place; true if it ended 1-minimal.
fn ddmin(current: &mut Vec<u32>, oracle: &mut Oracle) -> bool {
    let mut n = 2usize;
    while current.len() > 1 {
        let n_here = n.min(current.len());
        let size = current.len().div_ceil(n_here);
        let chunks: Vec<&[u32]> = current.chunks(size).collect();
        let mut next: Option<(Vec<u32>, usize)> = None;
        // A chunk alone still invalid: the biggest step down.
        for chunk in &chunks {
            match oracle.invalid(chunk) {
                Some(true) => {
                    next = Some((chunk.to_vec(), 2));
                    break;
                }
                Some(false) => {}
                None => return false,
            }
        }
        // Else everything but one chunk.
        if next.is_none() && chunks.len() > 2 {
            for skip in 0..chunks.len() {
                let rest: Vec<u32> = chunks
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != skip)
                    .flat_map(|(_, c)| c.iter().copied())
                    .collect();
                match oracle.invalid(&rest) {
                    Some(true) => {
                        next = Some((rest, (n_here - 1).max(2)));
                        break;
                    }
                    Some(false) => {}
                    None => return false,
                }
            }
        }
        match next {
            Some((smaller, granularity)) => {
                *current = smaller;
                n = granularity;
            }
            // Every single operation was tried out: none can go.
            None if n_here >= current.len() => return true,
            None => n = (2 * n_here).min(current.len()),
        }
    }
    // One operation that cannot happen on its own (a read of a value nobody wrote).
    true
}
