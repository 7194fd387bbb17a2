//! Sequential specifications: what each key of a history holds, and how its operations act on it.
//!
//! The search (`search.rs`) knows nothing of registers or locks: it asks a [`Model`] to compile
//! each operation into a small [`Model::Step`], and to apply steps to states interned as
//! [`StateId`]s. Seven models are built in, the ones Knossos has ([`ModelKind`]); a Rust user adds
//! one by implementing [`Model`] and calling [`crate::check_model`] (`docs/checker-models.md` has
//! a worked example).
//!
//! How outcomes become search operations (Jepsen's rules, the same for every built-in model):
//!
//! | outcome | in the search |
//! |---|---|
//! | `ok` | must take effect between its invocation and completion |
//! | `fail` | dropped: it did not happen |
//! | `info` (or no completion) | may take effect at any point after its invocation, or never |
//!
//! Each model then says what an operation requires and does; some outcomes carry no constraint
//! (a read that returned nothing) and are dropped too.

mod intern;
mod kv;
mod multi_register;
mod mutex;
mod queue;
mod set;

use std::fmt;
use std::str::FromStr;

pub(crate) use kv::Kv;
pub(crate) use multi_register::MultiRegister;
pub(crate) use mutex::Mutex;
pub(crate) use queue::{FifoQueue, UnorderedQueue};
pub(crate) use set::Set;

use crate::explain::{Explanation, Failure};
use crate::history::{History, Operation, Outcome};

/// A state of one key, interned by its model: equal states should get equal ids, so that the
/// search's memo recognises configurations it has reached before.
pub type StateId = u32;

/// How an operation takes part in the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compiled<S> {
    /// It took effect between its invocation and completion (`ok`).
    Required(S),
    /// It may have taken effect at any point after its invocation, or never (`info`).
    Optional(S),
}

impl<S> Compiled<S> {
    /// Jepsen's rule for `op`'s outcome: `ok` required, `info` optional, `fail` dropped. A CAS
    /// whose precondition failed is required (it observed something); models without CAS never
    /// see one.
    pub fn by_outcome(op: &Operation, step: S) -> Option<Compiled<S>> {
        match op.outcome {
            Outcome::Ok(_) | Outcome::PreconditionFailed => Some(Compiled::Required(step)),
            Outcome::Info => Some(Compiled::Optional(step)),
            Outcome::Fail => None,
        }
    }
}

/// A sequential specification, instantiated once per key of the history.
///
/// Rules an implementation must keep:
/// - [`Model::apply`] is a function of `(state, step)`: the same arguments always give the same
///   answer (the search memoises on it). It may intern new states as it goes.
/// - States are interned: equal states should have equal [`StateId`]s. (Unequal ids for equal
///   states cost search time, never correctness.)
/// - An operation compiled as [`Compiled::Required`] has a completion (its outcome is not
///   `info`): the search must place it before that completion.
/// - Steps are small and `Copy`: the search copies one at every move. Keep bulky data (a
///   transaction's micro-operations) in the model and put an index in the step.
///
/// The hooks with default bodies are optional: pruning ([`Model::tighten`], [`Model::refute`],
/// [`Model::viable`]), plain-words explanations ([`Model::explain`]) and the shrinker's rule for
/// what a core must keep ([`Model::sources`]).
pub trait Model: Send {
    /// What one operation requires of the state and does to it. Equal steps must act alike
    /// (the search treats pending optional operations with equal steps as interchangeable).
    type Step: Copy + Send + Eq + std::hash::Hash + fmt::Debug;

    /// How `op` takes part in the search; `None` if it constrains nothing (a `fail`, a read that
    /// returned no value). Called once per operation of the key, in invocation order, before
    /// [`Model::initial`].
    fn compile(&mut self, op: &Operation) -> Option<Compiled<Self::Step>>;

    /// The state before the first operation. Called after [`Model::tighten`].
    fn initial(&mut self) -> StateId;

    /// Sharpens the key's optional operations (those with `ret == None`) once all are compiled,
    /// from what the other operations show. Two moves keep the verdict:
    /// - drop one that no linearisation needs (an enqueue of an element no dequeue returns);
    /// - give one a `ret`, the event index of a completion before which it took effect in every
    ///   linearisation (the only enqueue of an element a dequeue returned took effect before
    ///   that dequeue completed): it then counts as required, with that deadline.
    ///
    /// Optional operations can fall anywhere after their invocation, so each one multiplies the
    /// states the search may meet; this is what keeps histories with many timeouts tractable.
    /// Required operations must be left as they are.
    fn tighten(&mut self, ops: &mut Vec<KeyOp<Self::Step>>) {
        let _ = ops;
    }

    /// The state after `step` in `state`, or `None` if the step cannot happen there.
    fn apply(&mut self, state: StateId, step: Self::Step) -> Option<StateId>;

    /// `state` in a few words, for explanations: `2`, `absent`, `held`, `{1, 3}`.
    fn describe(&self, state: StateId) -> String;

    /// `state` as JSON, for the anomaly's `value_after_prefix`.
    fn to_json(&self, state: StateId) -> serde_json::Value;

    /// Why `step` cannot happen in `state` (called only when [`Model::apply`] refused it), as a
    /// clause: "the lock was already held", "5 was not in the queue".
    fn refusal(&self, state: StateId, step: Self::Step) -> String {
        let _ = step;
        format!(
            "it cannot happen when the state is {}",
            self.describe(state)
        )
    }

    /// A sentence for a failure this model recognises (two holders of one lock, a lost element),
    /// and the operation to look at first; `None` leaves it to the generic explanation.
    fn explain(&self, failure: &Failure<'_>, state: StateId) -> Option<Explanation> {
        let _ = (failure, state);
        None
    }

    /// A required operation that can never take effect whatever the order (a read of a value no
    /// operation writes), found before searching: the search then fails at once, blaming it.
    /// Among several, return the one that completes first.
    fn refute(&self, ops: &[KeyOp<Self::Step>]) -> Option<usize> {
        let _ = ops;
        None
    }

    /// Lookahead after `step` changed the state to `state`: false if, with the operations still
    /// `pending` (every one of which comes later), no continuation can succeed. Must never
    /// return false wrongly.
    fn viable(&self, state: StateId, step: Self::Step, pending: Pending<'_, Self::Step>) -> bool {
        let _ = (state, step, pending);
        true
    }

    /// For the shrinker: for each operation of `ops` (indices into `history.ops`, one key's)
    /// that observes something other operations put there, groups of those operations; a core
    /// that keeps the observer must keep at least one operation of each group (else a read is
    /// "impossible" merely because its write was cut). At most one entry per operation.
    fn sources(history: &History, ops: &[u32]) -> Vec<(u32, Vec<Vec<u32>>)>
    where
        Self: Sized,
    {
        let _ = (history, ops);
        Vec::new()
    }

    /// Whether the shrinker, having cut an operation, also cuts those that need it (see
    /// [`Model::sources`]) rather than refusing the cut: for operations that come in pairs (a
    /// lock's acquire and its release), so that pairs go as one.
    const PRUNE_ORPHANS: bool = false;
}

/// One operation of a key, as the search sees it.
#[derive(Clone, Copy, Debug)]
pub struct KeyOp<S> {
    /// Index in [`History::ops`].
    pub op: u32,
    /// Event index of the invocation.
    pub call: u64,
    /// Event index of the completion; `None` for an optional operation.
    pub ret: Option<u64>,
    pub step: S,
}

/// An event of an operation not yet placed by the search, in real-time order.
#[derive(Clone, Copy, Debug)]
pub struct PendingEvent<S> {
    pub step: S,
    /// The invocation (true) or the completion (false).
    pub call: bool,
    /// The event's index in the history (its position in real time).
    pub index: u64,
}

/// The invocations and completions of the operations not yet placed, in real-time order.
#[derive(Clone, Copy)]
pub struct Pending<'a, S> {
    pub(crate) ops: &'a [KeyOp<S>],
    pub(crate) node_op: &'a [u32],
    pub(crate) node_is_call: &'a [bool],
    pub(crate) next: &'a [u32],
    /// The node last yielded (the list's head to begin with).
    pub(crate) node: u32,
}

impl<S: Copy> Iterator for Pending<'_, S> {
    type Item = PendingEvent<S>;

    fn next(&mut self) -> Option<PendingEvent<S>> {
        let node = self.next[self.node as usize];
        if node == u32::MAX {
            return None;
        }
        self.node = node;
        let node = node as usize;
        let op = &self.ops[self.node_op[node] as usize];
        let call = self.node_is_call[node];
        Some(PendingEvent {
            step: op.step,
            call,
            index: if call {
                op.call
            } else {
                op.ret.expect("a completion event has an index")
            },
        })
    }
}

/// The operations of one key that take part in the search, sorted by invocation, with the model
/// that gives them meaning.
pub(crate) struct KeyHistory<M: Model> {
    pub(crate) ops: Vec<KeyOp<M::Step>>,
    pub(crate) model: M,
    pub(crate) initial: StateId,
}

impl<M: Model> KeyHistory<M> {
    /// Compiles the operations `ids` (indices into `history.ops`, sorted, all on one key).
    pub(crate) fn compile(history: &History, ids: &[u32], mut model: M) -> KeyHistory<M> {
        let mut ops = ids
            .iter()
            .filter_map(|&id| {
                let op = &history.ops[id as usize];
                let (step, ret) = match model.compile(op)? {
                    Compiled::Required(step) => (
                        step,
                        Some(
                            op.complete
                                .expect("a required operation has a completion")
                                .index,
                        ),
                    ),
                    Compiled::Optional(step) => (step, None),
                };
                Some(KeyOp {
                    op: id,
                    call: op.invoke.index,
                    ret,
                    step,
                })
            })
            .collect();
        model.tighten(&mut ops);
        let initial = model.initial();
        KeyHistory {
            ops,
            model,
            initial,
        }
    }
}

/// The sequential object a history was recorded against: Knossos's models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// Reads and writes.
    Register,
    /// Reads, writes and compare-and-set. kvlab's and Porcupine's key-value histories (with
    /// deletes and appends) are read as this model too.
    #[default]
    CasRegister,
    /// Acquire and release of one lock. kvlab's lock histories (acquire and release of named
    /// locks) are read as this model, each lock name a key.
    Mutex,
    /// Adds, and reads of the whole set.
    Set,
    /// Enqueues, and dequeues of any element present.
    UnorderedQueue,
    /// Enqueues, and dequeues of the oldest element.
    FifoQueue,
    /// Transactions of reads and writes over several registers.
    MultiRegister,
}

impl ModelKind {
    pub const ALL: [ModelKind; 7] = [
        ModelKind::Register,
        ModelKind::CasRegister,
        ModelKind::Mutex,
        ModelKind::Set,
        ModelKind::UnorderedQueue,
        ModelKind::FifoQueue,
        ModelKind::MultiRegister,
    ];

    /// Knossos's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Mutex => "mutex",
            ModelKind::Set => "set",
            ModelKind::UnorderedQueue => "unordered-queue",
            ModelKind::FifoQueue => "fifo-queue",
            ModelKind::MultiRegister => "multi-register",
        }
    }

    /// One line: the operations and what they require.
    pub fn about(self) -> &'static str {
        match self {
            ModelKind::Register => "a register: read, write (a read of nil tells nothing)",
            ModelKind::CasRegister => {
                "a register with compare-and-set: read, write, cas [expected new]"
            }
            ModelKind::Mutex => "a lock: acquire (it must be free), release (it must be held)",
            ModelKind::Set => "a set: add x, read (returns every element added, no other)",
            ModelKind::UnorderedQueue => {
                "a queue in any order: enqueue x, dequeue (returns an element enqueued and not yet dequeued)"
            }
            ModelKind::FifoQueue => {
                "a first-in first-out queue: enqueue x, dequeue (returns the oldest element)"
            }
            ModelKind::MultiRegister => {
                "registers read and written together: txn [[:read k v] [:write k v] ...] (a read of nil tells nothing)"
            }
        }
    }

    /// The key of a history that holds one object (no `independent` tuples).
    pub(crate) fn single_key(self) -> &'static str {
        match self {
            ModelKind::Register | ModelKind::CasRegister => "register",
            ModelKind::UnorderedQueue | ModelKind::FifoQueue => "queue",
            other => other.name(),
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelKind {
    type Err = String;

    fn from_str(s: &str) -> Result<ModelKind, String> {
        ModelKind::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ModelKind::ALL.iter().map(|m| m.name()).collect();
                format!("unknown model {s:?} (expected {})", names.join(", "))
            })
    }
}
