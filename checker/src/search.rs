//! The linearisability search for one key: Wing & Gong's algorithm with Lowe's memoisation,
//! generic over the key's [`Model`] (monomorphised: the register models pay for no generality).
//!
//! Calls and returns of the key's operations form a doubly linked list in real-time order. The
//! search walks it from the front: at a call it tries to linearise that operation next (apply it
//! to the state, unlink its call and return, restart from the front); at a return it has hit an
//! operation that must already have taken effect, so it backtracks, undoing the most recent
//! choice. A set of `(linearised operations, state)` pairs already reached means that no
//! configuration is ever explored twice.
//!
//! Two refinements keep the memo small and the search short:
//! - The set of linearised *required* operations is stored compactly: `hi`, one past the highest
//!   linearised required operation, and the few required operations below it that are not
//!   linearised. That list is bounded by the concurrency, not by the length of the history.
//! - Optional operations (`info` writes, CASes, ...) are tracked as a bitset beside it, and the
//!   memo prunes by dominance: a configuration with the same state and required set but a
//!   *superset* of optional operations already used can do nothing the other could not (an
//!   optional operation never has to happen, and never blocks another), so it is skipped. This
//!   is what keeps histories with many timed-out writes from exploding.
//!
//! The search is resumable: [`Search::run`] does a bounded number of steps, so a scheduler can
//! interleave many keys and stop at a budget.

use crate::memo::Memo;
use crate::model::{KeyHistory, Model, Pending, StateId};

const NONE: u32 = u32::MAX;
const HEAD: u32 = 0;

/// Where the search stands after [`Search::run`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Budget of steps used up; call `run` again to continue.
    Paused,
    Linearizable,
    /// No linearisation exists. `prefix`: the longest sequence of operations (local indices)
    /// that could be linearised; `culprit`: the operation that could not come after it (the
    /// unlinearised operation that completed first).
    NotLinearizable {
        prefix: Vec<u32>,
        culprit: u32,
        /// The key's state after the prefix.
        state: StateId,
    },
}

struct Frame {
    op: u32,
    prev_state: StateId,
    /// One past the highest linearised required operation, including this one (0: none).
    hi: u32,
    /// Required operations linearised, including this one.
    required: u32,
}

/// A resumable search over one key.
pub(crate) struct Search<M: Model> {
    key: KeyHistory<M>,
    /// Per list node (0 is the head): the operation it belongs to, and whether it is its call.
    node_op: Vec<u32>,
    node_is_call: Vec<bool>,
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Per operation: its call node and return node (`NONE` for optional operations).
    call_node: Vec<u32>,
    ret_node: Vec<u32>,
    /// Per operation: its bit among optional operations (`NONE` for required ones).
    optional_bit: Vec<u32>,
    /// Per optional operation: the next optional operation (by invocation) with an equal step,
    /// or `NONE`; empty when no two optional operations have equal steps.
    twin: Vec<u32>,
    /// During the optional pass: the event index of the first pending return (`u64::MAX`:
    /// none), before which every operation tried was invoked. Kept only when `twin` is not
    /// empty, with its value at each frame of `stack` in `frontiers`.
    frontier: u64,
    frontiers: Vec<u64>,
    /// Optional operations linearised, as a bitset.
    used: Vec<u64>,
    stack: Vec<Frame>,
    state: StateId,
    cursor: u32,
    /// Which operations the scan tries: required ones first, then (second pass) optional ones,
    /// so that configurations using fewer optional operations are reached first and dominate.
    optional_pass: bool,
    /// Optional operations not linearised.
    optional_left: usize,
    /// Operations with a return node not yet linearised; the search succeeds at zero.
    remaining: usize,
    seen: Memo,
    scratch: Vec<u32>,
    /// The prefix that linearised the most required operations so far (`info` operations do
    /// not count: they never have to happen); `best[..low_water]` always equals the stack's
    /// bottom.
    best: Vec<u32>,
    best_required: u32,
    low_water: usize,
    /// A required operation that observes a value no operation writes: refuted without search.
    impossible: Option<u32>,
    steps: u64,
}

impl<M: Model> Search<M> {
    pub(crate) fn new(key: KeyHistory<M>) -> Search<M> {
        let n = key.ops.len();
        let mut events: Vec<(u64, u32, bool)> = Vec::with_capacity(2 * n);
        for (i, op) in key.ops.iter().enumerate() {
            events.push((op.call, i as u32, true));
            if let Some(ret) = op.ret {
                events.push((ret, i as u32, false));
            }
        }
        // Event indices are unique within a history, except that a deadline given by
        // `Model::tighten` is another operation's completion: ties between returns are harmless
        // (both must come first), and broken by operation for a deterministic search.
        events.sort_unstable();
        let nodes = events.len() + 1;
        let mut node_op = vec![NONE; nodes];
        let mut node_is_call = vec![false; nodes];
        let mut call_node = vec![NONE; n];
        let mut ret_node = vec![NONE; n];
        for (k, &(_, op, is_call)) in events.iter().enumerate() {
            let node = k as u32 + 1;
            node_op[node as usize] = op;
            node_is_call[node as usize] = is_call;
            if is_call {
                call_node[op as usize] = node;
            } else {
                ret_node[op as usize] = node;
            }
        }
        let next = (0..nodes as u32)
            .map(|i| if i + 1 < nodes as u32 { i + 1 } else { NONE })
            .collect();
        let prev = (0..nodes as u32)
            .map(|i| if i == 0 { NONE } else { i - 1 })
            .collect();
        let remaining = key.ops.iter().filter(|o| o.ret.is_some()).count();
        let impossible = key.model.refute(&key.ops).map(|i| i as u32);
        let mut optional = 0;
        let optional_bit = key
            .ops
            .iter()
            .map(|o| match o.ret {
                Some(_) => NONE,
                None => {
                    optional += 1;
                    optional - 1
                }
            })
            .collect();
        let mut twin = vec![NONE; n];
        let mut later: rustc_hash::FxHashMap<M::Step, u32> = rustc_hash::FxHashMap::default();
        for (i, op) in key.ops.iter().enumerate().rev() {
            if op.ret.is_none() {
                if let Some(&next) = later.get(&op.step) {
                    twin[i] = next;
                }
                later.insert(op.step, i as u32);
            }
        }
        if twin.iter().all(|&t| t == NONE) {
            twin = Vec::new();
        }
        Search {
            state: key.initial,
            key,
            node_op,
            node_is_call,
            next,
            prev,
            call_node,
            ret_node,
            optional_bit,
            twin,
            frontier: u64::MAX,
            frontiers: Vec::new(),
            used: vec![0; (optional as usize).div_ceil(64)],
            stack: Vec::new(),
            cursor: if nodes > 1 { 1 } else { NONE },
            optional_pass: false,
            optional_left: optional as usize,
            remaining,
            seen: Memo::new((optional as usize).div_ceil(64)),
            scratch: Vec::new(),
            impossible,
            best: Vec::new(),
            best_required: 0,
            low_water: 0,
            steps: 0,
        }
    }

    pub(crate) fn key_mut(&mut self) -> &mut KeyHistory<M> {
        &mut self.key
    }

    /// Whether the model refuted an operation before any search ([`Model::refute`]).
    pub(crate) fn refuted(&self) -> bool {
        self.impossible.is_some()
    }

    /// Steps taken so far (configurations visited).
    pub(crate) fn steps(&self) -> u64 {
        self.steps
    }

    /// Approximate bytes held by the memo of visited configurations.
    pub(crate) fn memory(&self) -> usize {
        self.seen.bytes()
    }

    /// Runs at most `budget` steps.
    pub(crate) fn run(&mut self, budget: u64) -> Progress {
        if let Some(culprit) = self.impossible {
            return Progress::NotLinearizable {
                prefix: Vec::new(),
                culprit,
                state: self.key.initial,
            };
        }
        let end = self.steps + budget;
        while self.steps < end {
            self.steps += 1;
            if self.remaining == 0 {
                return Progress::Linearizable;
            }
            let node = self.cursor;
            if node != NONE && self.node_is_call[node as usize] {
                let op = self.node_op[node as usize];
                let optional = self.optional_bit[op as usize] != NONE;
                if optional == self.optional_pass && self.try_linearize(op) {
                    self.cursor = self.next[HEAD as usize];
                    self.optional_pass = false;
                } else {
                    self.cursor = self.next[node as usize];
                }
            } else if !self.optional_pass && self.optional_left > 0 {
                self.optional_pass = true;
                if !self.twin.is_empty() {
                    self.frontier = self.frontier_at(node);
                }
                self.cursor = self.next[HEAD as usize];
            } else if !self.backtrack() {
                return self.failure();
            }
        }
        if self.remaining == 0 {
            return Progress::Linearizable;
        }
        Progress::Paused
    }

    fn try_linearize(&mut self, op: u32) -> bool {
        let step = self.key.ops[op as usize].step;
        let Some(new_state) = self.key.model.apply(self.state, step) else {
            return false;
        };
        let bit = self.optional_bit[op as usize];
        if bit != NONE
            && (new_state == self.state || (!self.twin.is_empty() && self.twin_ahead(op)))
        {
            // An optional operation that changes nothing: not doing it dominates doing it.
            // One with a pending twin ahead: the twin will be tried instead.
            return false;
        }
        let (below, required) = self.stack.last().map_or((0, 0), |f| (f.hi, f.required));
        let hi = if bit == NONE {
            below.max(op + 1)
        } else {
            below
        };
        let required = required + u32::from(bit == NONE);
        self.lift(op);
        self.flip(bit);
        let dead_end =
            new_state != self.state && !self.key.model.viable(new_state, step, self.pending());
        if dead_end || !self.remember(new_state, hi) {
            self.flip(bit);
            self.unlift(op);
            return false;
        }
        if !self.twin.is_empty() {
            self.frontiers.push(self.frontier);
        }
        self.stack.push(Frame {
            op,
            prev_state: self.state,
            hi,
            required,
        });
        self.state = new_state;
        if bit == NONE {
            self.remaining -= 1;
        } else {
            self.optional_left -= 1;
        }
        true
    }

    /// The event index of return node `node` (`u64::MAX` for the end of the list).
    #[inline(never)]
    fn frontier_at(&self, node: u32) -> u64 {
        if node == NONE {
            return u64::MAX;
        }
        let op = self.node_op[node as usize] as usize;
        self.key.ops[op].ret.expect("a return node has an index")
    }

    /// Whether another pending optional operation with the same step as `op` is invoked after
    /// it and before the frontier. From here on the two are interchangeable, both being
    /// invoked: trying the last of them is enough. Without this, each subset of interchangeable
    /// timed-out operations (a queue's `info` dequeues) would be a configuration of its own.
    /// Out of line: most keys have no twins, and the hot loop stays as tight as without.
    #[inline(never)]
    fn twin_ahead(&self, op: u32) -> bool {
        let mut other = self.twin[op as usize];
        while other != NONE {
            if self.key.ops[other as usize].call >= self.frontier {
                return false;
            }
            let node = self.call_node[other as usize];
            if self.next[self.prev[node as usize] as usize] == node {
                return true;
            }
            other = self.twin[other as usize];
        }
        false
    }

    /// The events of the operations not yet linearised, for [`Model::viable`].
    #[inline(always)]
    fn pending(&self) -> Pending<'_, M::Step> {
        Pending {
            ops: &self.key.ops,
            node_op: &self.node_op,
            node_is_call: &self.node_is_call,
            next: &self.next,
            node: HEAD,
        }
    }

    fn flip(&mut self, bit: u32) {
        if bit != NONE {
            self.used[bit as usize / 64] ^= 1 << (bit % 64);
        }
    }

    /// Records the current configuration (with `state` and `hi`); false if it, or one that
    /// dominates it, was reached before.
    fn remember(&mut self, state: StateId, hi: u32) -> bool {
        self.fill_scratch(state, hi);
        self.seen.insert(&self.scratch, &self.used)
    }

    /// Undoes the most recent choice and moves the cursor past it. False if there is none.
    fn backtrack(&mut self) -> bool {
        let required = self.stack.last().map_or(0, |f| f.required);
        if required > self.best_required {
            self.best.truncate(self.low_water);
            self.best
                .extend(self.stack[self.low_water..].iter().map(|f| f.op));
            self.best_required = required;
            self.low_water = self.stack.len();
        }
        let Some(frame) = self.stack.pop() else {
            return false;
        };
        self.low_water = self.low_water.min(self.stack.len());
        self.state = frame.prev_state;
        if !self.twin.is_empty() {
            self.frontier = self.frontiers.pop().expect("one frontier per frame");
        }
        let bit = self.optional_bit[frame.op as usize];
        self.flip(bit);
        self.unlift(frame.op);
        if bit == NONE {
            self.remaining += 1;
        } else {
            self.optional_left += 1;
        }
        self.optional_pass = bit != NONE;
        self.cursor = self.next[self.call_node[frame.op as usize] as usize];
        true
    }

    fn failure(&mut self) -> Progress {
        let mut linearized = vec![false; self.key.ops.len()];
        for &op in &self.best {
            linearized[op as usize] = true;
        }
        let culprit = (0..self.key.ops.len() as u32)
            .filter(|&i| !linearized[i as usize])
            .filter_map(|i| self.key.ops[i as usize].ret.map(|r| (r, i)))
            .min()
            .map(|(_, i)| i)
            .expect("a search that fails leaves an operation that must be linearised");
        let mut state = self.key.initial;
        for &op in &self.best {
            let step = self.key.ops[op as usize].step;
            state = self
                .key
                .model
                .apply(state, step)
                .expect("the recorded prefix was linearised step by step");
        }
        Progress::NotLinearizable {
            prefix: self.best.clone(),
            culprit,
            state,
        }
    }

    /// The memo key of the required part: `[state, hi, unlinearised required operations below
    /// hi...]`. The list nodes still linked are exactly the unlinearised operations, in
    /// invocation order.
    fn fill_scratch(&mut self, state: StateId, hi: u32) {
        self.scratch.clear();
        self.scratch.push(state);
        self.scratch.push(hi);
        let mut node = self.next[HEAD as usize];
        while node != NONE {
            if self.node_is_call[node as usize] {
                let op = self.node_op[node as usize];
                if op >= hi {
                    break;
                }
                if self.optional_bit[op as usize] == NONE {
                    self.scratch.push(op);
                }
            }
            node = self.next[node as usize];
        }
    }

    fn lift(&mut self, op: u32) {
        self.unlink(self.call_node[op as usize]);
        let ret = self.ret_node[op as usize];
        if ret != NONE {
            self.unlink(ret);
        }
    }

    /// Relinks in the reverse order of [`Search::lift`], as dancing links require.
    fn unlift(&mut self, op: u32) {
        let ret = self.ret_node[op as usize];
        if ret != NONE {
            self.relink(ret);
        }
        self.relink(self.call_node[op as usize]);
    }

    fn unlink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = n;
        if n != NONE {
            self.prev[n as usize] = p;
        }
    }

    fn relink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = node;
        if n != NONE {
            self.prev[n as usize] = node;
        }
    }
}
