//! Checking a whole history: split by key, search keys in parallel, within budgets.
//!
//! Linearizability is compositional (Herlihy & Wing's locality; Horn & Kroening's
//! P-compositionality for maps): a history is linearizable iff each key's sub-history is. Each
//! key gets its own [`Search`]; worker threads run searches in short slices taken from a shared
//! round-robin queue, so one expensive key cannot hold back the others (a cheap refutation
//! elsewhere is found in milliseconds) and budgets are enforced between slices.
//!
//! [`check`] picks the built-in model the history names; [`check_model`] takes any [`Model`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::explain::Failure;
use crate::history::History;
use crate::model::{
    FifoQueue, KeyHistory, Kv, Model, ModelKind, MultiRegister, Mutex as Lock, Set, UnorderedQueue,
};
use crate::search::{Progress, Search};
use crate::verdict::{CheckResult, KeyResult, Verdict};

/// Steps one key may take before it goes to the back of the queue (a few milliseconds).
const SLICE: u64 = 1 << 15;

/// Budgets and parallelism of a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Wall-clock budget for the whole search; keys still open then are `unknown`.
    pub time_limit: Option<Duration>,
    /// Budget for the memo tables of all keys together, bytes. A key whose search would take
    /// more is `unknown`.
    pub memory_limit: usize,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Keep searching every key after one is found invalid. Otherwise keys that have already had
    /// one slice of search without a verdict are abandoned (`unknown`) once the history is known
    /// to be invalid.
    pub all_keys: bool,
    /// Stop at the first key found not linearizable, as Porcupine does: every key not finished
    /// by then is `unknown`. The verdict is the same (invalid), found sooner.
    pub fail_fast: bool,
    /// Time to spend shrinking each invalid key's counterexample to its core (see
    /// [`crate::Core`]); zero turns shrinking off.
    pub shrink_time: Duration,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            time_limit: None,
            memory_limit: 4 << 30,
            threads: 0,
            all_keys: false,
            fail_fast: false,
            shrink_time: Duration::from_secs(2),
        }
    }
}

struct Task<M: Model> {
    key: usize,
    search: Option<Search<M>>,
}

struct Queue<M: Model> {
    tasks: VecDeque<Task<M>>,
    /// Tasks taken by a worker and not yet finished or returned.
    running: usize,
}

struct Shared<'h, M: Model, F> {
    history: &'h History,
    /// A fresh model for one key.
    new_model: &'h F,
    by_key: Vec<Vec<u32>>,
    options: &'h CheckOptions,
    deadline: Option<Instant>,
    queue: Mutex<Queue<M>>,
    wake: Condvar,
    results: Mutex<Vec<Option<KeyResult>>>,
    invalid: AtomicBool,
    memory: AtomicUsize,
    peak_memory: AtomicUsize,
}

/// Checks `history` for linearizability against the model it names ([`History::model`]).
pub fn check(history: &History, options: &CheckOptions) -> CheckResult {
    let initial = &history.initial;
    match history.model {
        ModelKind::Register | ModelKind::CasRegister => {
            check_model(history, options, || Kv::new(initial))
        }
        ModelKind::Mutex => check_model(history, options, || Lock),
        ModelKind::Set => check_model(history, options, Set::default),
        ModelKind::UnorderedQueue => check_model(history, options, UnorderedQueue::default),
        ModelKind::FifoQueue => check_model(history, options, FifoQueue::default),
        ModelKind::MultiRegister => check_model(history, options, || MultiRegister::new(initial)),
    }
}

/// Checks `history` for linearizability against a model of your own: `new_model` makes the
/// model of one key (it is called once per key, and again for each search the shrinker runs).
/// Every call in the history must be one the model knows.
pub fn check_model<M: Model, F: Fn() -> M + Sync>(
    history: &History,
    options: &CheckOptions,
    new_model: F,
) -> CheckResult {
    let started = Instant::now();
    let mut by_key: Vec<Vec<u32>> = vec![Vec::new(); history.keys.len()];
    for (i, op) in history.ops.iter().enumerate() {
        by_key[op.key as usize].push(i as u32);
    }
    // Largest keys first, so the longest searches start early.
    let mut order: Vec<usize> = (0..by_key.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(by_key[k].len()));
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
    .min(by_key.len())
    .max(1);
    let shared = Shared {
        history,
        new_model: &new_model,
        options,
        deadline: options.time_limit.map(|t| started + t),
        queue: Mutex::new(Queue {
            tasks: order
                .into_iter()
                .map(|key| Task { key, search: None })
                .collect(),
            running: 0,
        }),
        wake: Condvar::new(),
        results: Mutex::new(vec![None; by_key.len()]),
        by_key,
        invalid: AtomicBool::new(false),
        memory: AtomicUsize::new(0),
        peak_memory: AtomicUsize::new(0),
    };
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| shared.work());
        }
    });
    let mut keys: Vec<KeyResult> = shared
        .results
        .into_inner()
        .expect("no worker panicked holding the results")
        .into_iter()
        .map(|r| r.expect("every key gets a result"))
        .collect();
    for (k, result) in keys.iter_mut().enumerate() {
        if let Some(anomaly) = result.anomaly.as_mut() {
            anomaly.core = core(
                history,
                &shared.by_key[k],
                anomaly,
                options,
                shared.deadline,
                &new_model,
            );
        }
    }
    let verdict = if keys.iter().any(|k| k.verdict == Verdict::Invalid) {
        Verdict::Invalid
    } else if keys.iter().any(|k| k.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Valid
    };
    CheckResult {
        verdict,
        ops: history.ops.len(),
        states: keys.iter().map(|k| k.states).sum(),
        keys,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        peak_memo_bytes: shared.peak_memory.into_inner(),
    }
}

/// Shrinks one invalid key's operations to a core, within the shrinking budget and what is
/// left of the check's.
fn core<M: Model>(
    history: &History,
    key_ops: &[u32],
    anomaly: &crate::verdict::Anomaly,
    options: &CheckOptions,
    deadline: Option<Instant>,
    new_model: &impl Fn() -> M,
) -> Option<crate::verdict::Core> {
    if options.shrink_time.is_zero() {
        return None;
    }
    let started = Instant::now();
    let until = deadline.map_or(started + options.shrink_time, |d| {
        d.min(started + options.shrink_time)
    });
    if until <= started {
        return None;
    }
    // First guess: what was invoked before the culprit completed (later operations cannot have
    // been needed to refute it, though the search only trusts what it checks).
    let culprit_end = history.ops[anomaly.culprit.index]
        .complete
        .map_or(u64::MAX, |c| c.index);
    let before: Vec<u32> = key_ops
        .iter()
        .copied()
        .filter(|&i| history.ops[i as usize].invoke.index <= culprit_end)
        .collect();
    // Better still, when the explanation names the write the culprit missed: the two of them
    // and what they need (the shrinker adds the writers of what they observe).
    let story = anomaly.missed.as_ref().map(|m| {
        let mut ops = vec![anomaly.culprit.index as u32, m.index as u32];
        ops.sort_unstable_by_key(|&i| history.ops[i as usize].invoke.index);
        ops
    });
    let shrunk = crate::shrink::shrink(
        history,
        key_ops,
        story.into_iter().chain([before]).collect(),
        until,
        options.memory_limit,
        new_model,
    );
    Some(crate::verdict::Core {
        ops: shrunk
            .ops
            .iter()
            .map(|&i| crate::verdict::OpSummary::new(history, i as usize))
            .collect(),
        minimal: shrunk.minimal,
        checks: shrunk.checks,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

impl<M: Model, F: Fn() -> M + Sync> Shared<'_, M, F> {
    fn work(&self) {
        while let Some(mut task) = self.take() {
            let done = self.slice(&mut task);
            let mut queue = self.queue.lock().expect("queue lock");
            queue.running -= 1;
            if !done {
                queue.tasks.push_back(task);
            }
            self.wake.notify_all();
        }
    }

    /// The next task, waiting while others run; `None` when all are finished.
    fn take(&self) -> Option<Task<M>> {
        let mut queue = self.queue.lock().expect("queue lock");
        loop {
            if let Some(task) = queue.tasks.pop_front() {
                queue.running += 1;
                return Some(task);
            }
            if queue.running == 0 {
                return None;
            }
            queue = self.wake.wait(queue).expect("queue lock");
        }
    }

    /// Runs one slice of `task`; true if the key now has its result.
    fn slice(&self, task: &mut Task<M>) -> bool {
        let started = task.search.is_some();
        if self.options.fail_fast && self.invalid.load(Ordering::Relaxed) {
            return self.give_up(
                task,
                "not searched to the end: --fail-fast stopped at the first key not linearizable",
            );
        }
        if started && self.invalid.load(Ordering::Relaxed) && !self.options.all_keys {
            return self.give_up(
                task,
                "not searched to the end: another key is already invalid (--all-keys checks every key)",
            );
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return self.give_up(task, "time limit reached before the search finished");
        }
        let search = task.search.get_or_insert_with(|| {
            Search::new(KeyHistory::compile(
                self.history,
                &self.by_key[task.key],
                (self.new_model)(),
            ))
        });
        let before = search.memory();
        let progress = search.run(SLICE);
        let after = search.memory();
        let total = if after >= before {
            self.memory.fetch_add(after - before, Ordering::Relaxed) + (after - before)
        } else {
            self.memory.fetch_sub(before - after, Ordering::Relaxed) - (before - after)
        };
        self.peak_memory.fetch_max(total, Ordering::Relaxed);
        match progress {
            Progress::Paused if total > self.options.memory_limit => self.give_up(
                task,
                &format!(
                    "memory limit reached: the search tables of all keys would exceed {} MiB",
                    self.options.memory_limit >> 20
                ),
            ),
            Progress::Paused => false,
            Progress::Linearizable => self.finish(task, Verdict::Valid, None, None),
            Progress::NotLinearizable {
                prefix,
                culprit,
                state,
            } => {
                self.invalid.store(true, Ordering::Relaxed);
                let search = task.search.as_mut().expect("just ran");
                let refuted = search.refuted();
                let key = search.key_mut();
                let prefix: Vec<u32> = prefix.iter().map(|&i| key.ops[i as usize].op).collect();
                let failure = Failure {
                    history: self.history,
                    key_ops: &self.by_key[task.key],
                    prefix: &prefix,
                    culprit: key.ops[culprit as usize].op,
                };
                let step = key.ops[culprit as usize].step;
                let mut anomaly = crate::explain::anomaly(&failure, &mut key.model, state, step);
                anomaly.refuted_before_search = refuted;
                self.finish(task, Verdict::Invalid, None, Some(anomaly))
            }
        }
    }

    fn give_up(&self, task: &mut Task<M>, reason: &str) -> bool {
        self.finish(task, Verdict::Unknown, Some(reason.to_owned()), None)
    }

    fn finish(
        &self,
        task: &mut Task<M>,
        verdict: Verdict,
        reason: Option<String>,
        anomaly: Option<crate::verdict::Anomaly>,
    ) -> bool {
        let (states, memory) = task
            .search
            .take()
            .map_or((0, 0), |s| (s.steps(), s.memory()));
        self.memory.fetch_sub(memory, Ordering::Relaxed);
        let result = KeyResult {
            key: self.history.keys[task.key].clone(),
            verdict,
            ops: self.by_key[task.key].len(),
            states,
            reason,
            anomaly,
        };
        self.results.lock().expect("results lock")[task.key] = Some(result);
        true
    }
}
