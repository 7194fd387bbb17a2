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
//! contains; for a dequeue, an enqueue of the element). Without it, a read alone would be a
//! "core": on its own it saw a value nobody wrote. A value that nobody in the whole history
//! wrote needs no writer: that read is the anomaly. Each model states the rule for its
//! operations ([`Model::sources`]).

use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::history::History;
use crate::model::{KeyHistory, Model};
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

/// Shrinks `ops` (one key's operations, not linearizable) to a core. `guesses`: subsets worth
/// trying first, best first; each is completed with the sources of what it observes
/// ([`Model::sources`]), and the first still invalid is where delta debugging starts.
/// `memory_limit`: bytes one oracle search may use before its answer counts as "don't know".
pub(crate) fn shrink<M: Model>(
    history: &History,
    ops: &[u32],
    guesses: Vec<Vec<u32>>,
    deadline: Instant,
    memory_limit: usize,
    new_model: &impl Fn() -> M,
) -> Shrunk {
    // Operations the model drops (a `fail`, a read that returned nothing) change nothing: they
    // are never part of a core, nor anyone's partner or source.
    let mut model = new_model();
    let ops: Vec<u32> = ops
        .iter()
        .copied()
        .filter(|&i| model.compile(&history.ops[i as usize]).is_some())
        .collect();
    let ops = &ops[..];
    let kept: rustc_hash::FxHashSet<u32> = ops.iter().copied().collect();
    let mut oracle = Oracle {
        history,
        needs: M::sources(history, ops).into_iter().collect(),
        deadline,
        memory_limit,
        checks: 0,
        new_model,
    };
    let mut current = ops.to_vec();
    // Delta debugging starts by halves; from a small first guess (a story: what the explanation
    // names and what it needs), which is usually the core already, one operation at a time.
    const STORY: usize = 24;
    let mut granularity = 2;
    for (n, mut guess) in guesses.into_iter().enumerate() {
        guess.retain(|i| kept.contains(i));
        let guess = oracle.complete(guess, ops);
        if guess.len() < current.len() && oracle.invalid(&guess) == Some(true) {
            current = guess;
            if n == 0 && current.len() <= STORY {
                granularity = current.len().max(2);
            }
            break;
        }
    }
    let minimal = ddmin(&mut current, granularity, &mut oracle);
    Shrunk {
        ops: current,
        minimal,
        checks: oracle.checks,
    }
}

struct Oracle<'h, F> {
    history: &'h History,
    /// Per operation that observes something: groups of operations, one of each to keep.
    needs: FxHashMap<u32, Vec<Vec<u32>>>,
    deadline: Instant,
    memory_limit: usize,
    checks: u64,
    new_model: &'h F,
}

impl<M: Model, F: Fn() -> M> Oracle<'_, F> {
    /// Whether `ops` alone are not linearizable; `None` when the budget ran out first.
    fn invalid(&mut self, ops: &[u32]) -> Option<bool> {
        if self.orphans(ops) {
            // Not a candidate: it observes a value whose writers it left out.
            return Some(false);
        }
        self.checks += 1;
        let mut search = Search::new(KeyHistory::compile(self.history, ops, (self.new_model)()));
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

    /// `ops` without the operations whose sources it left out, repeatedly, for models whose
    /// operations come in pairs that go together ([`Model::PRUNE_ORPHANS`]); `ops` as it is
    /// for the others (their orphaned candidates are refused instead).
    fn close(&self, ops: Vec<u32>) -> Vec<u32> {
        if !M::PRUNE_ORPHANS {
            return ops;
        }
        let mut kept = ops;
        loop {
            let set: rustc_hash::FxHashSet<u32> = kept.iter().copied().collect();
            let before = kept.len();
            kept.retain(|i| {
                self.needs
                    .get(i)
                    .is_none_or(|groups| groups.iter().all(|g| g.iter().any(|j| set.contains(j))))
            });
            if kept.len() == before {
                return kept;
            }
        }
    }

    /// `ops` with, for every group of sources one of its operations needs and lacks, one of the
    /// group, until nothing lacks one; in the order of `order` (the key's operations, by
    /// invocation). Of a group, the one invoked last before the observer completed: the source
    /// an explanation names (the latest write of the value a read returned).
    fn complete(&self, ops: Vec<u32>, order: &[u32]) -> Vec<u32> {
        let h = self.history;
        let mut kept: rustc_hash::FxHashSet<u32> = ops.iter().copied().collect();
        let mut todo = ops;
        while let Some(i) = todo.pop() {
            let end = h.ops[i as usize].complete.map_or(u64::MAX, |e| e.index);
            for group in self.needs.get(&i).into_iter().flatten() {
                if group.iter().any(|j| kept.contains(j)) {
                    continue;
                }
                let invoked = |j: &&u32| h.ops[**j as usize].invoke.index;
                let chosen = group
                    .iter()
                    .filter(|j| invoked(j) < end)
                    .max_by_key(invoked)
                    .or(group.first());
                if let Some(&j) = chosen {
                    kept.insert(j);
                    todo.push(j);
                }
            }
        }
        order.iter().copied().filter(|i| kept.contains(i)).collect()
    }

    /// Whether some operation of `ops` observes something none of whose sources is in `ops`.
    fn orphans(&self, ops: &[u32]) -> bool {
        let kept: rustc_hash::FxHashSet<u32> = ops.iter().copied().collect();
        ops.iter().any(|i| {
            self.needs
                .get(i)
                .is_some_and(|groups| groups.iter().any(|g| !g.iter().any(|j| kept.contains(j))))
        })
    }
}

/// Reduces `current` (invalid) in place, starting with `n` chunks; true if it ended 1-minimal.
fn ddmin<M: Model, F: Fn() -> M>(
    current: &mut Vec<u32>,
    mut n: usize,
    oracle: &mut Oracle<'_, F>,
) -> bool {
    while current.len() > 1 {
        let n_here = n.min(current.len());
        let size = current.len().div_ceil(n_here);
        let chunks: Vec<&[u32]> = current.chunks(size).collect();
        let mut next: Option<(Vec<u32>, usize)> = None;
        // A chunk alone still invalid: the biggest step down. (With one operation a chunk and
        // more than two chunks, the complements below try every candidate 1-minimality needs.)
        let alone = chunks.len() < current.len() || chunks.len() <= 2;
        for chunk in chunks.iter().filter(|_| alone) {
            let chunk = oracle.close(chunk.to_vec());
            if chunk.is_empty() {
                continue;
            }
            match oracle.invalid(&chunk) {
                Some(true) => {
                    next = Some((chunk, 2));
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
                let rest = oracle.close(rest);
                if rest.is_empty() || rest.len() == current.len() {
                    continue;
                }
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
