//! The history model: operations on keys, each an invocation paired with its completion.
//!
//! This follows Jepsen's op model (`docs/history.md` describes kvlab's own format): a client
//! process invokes an operation and exactly one completion follows for that process: `ok` (it
//! happened), `fail` (it definitely did not happen) or `info` (unknown: it may have happened at
//! any point after its invocation, or never). Readers of the supported formats all produce a
//! [`History`], which names the sequential object its operations act on ([`ModelKind`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::ModelKind;

/// A value stored under a key. Histories written by kvlab use strings; Jepsen's register tests use
/// integers. A list is what a read of a whole set returns.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Str(String),
    List(Vec<Value>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    item.fmt(f)?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Shows an optional value the way the explanations speak of it: `absent` for a missing key.
pub(crate) struct Shown<'a>(pub &'a Option<Value>);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("absent"),
        }
    }
}

/// A register's name as the history spells it: keywords unquoted (`:x`), anything else as a
/// value.
pub(crate) struct Name<'a>(pub &'a Value);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Str(s) if s.starts_with(':') => f.write_str(s),
            other => other.fmt(f),
        }
    }
}

/// The function an operation calls, without its arguments, as the run's plots and tables group
/// operations: the key-value model's five. An operation of another model counts as the one it
/// acts like (see [`Call::func`]); [`Call::name`] is its own name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Func {
    Read,
    Write,
    Delete,
    Cas,
    Append,
}

impl Func {
    pub fn name(self) -> &'static str {
        match self {
            Func::Read => "read",
            Func::Write => "write",
            Func::Delete => "delete",
            Func::Cas => "cas",
            Func::Append => "append",
        }
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a client asked for: the function and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Read,
    Write(Value),
    Delete,
    /// Set the key to `new` if it currently holds `expected` (`None`: if it is absent).
    Cas {
        expected: Option<Value>,
        new: Value,
    },
    /// Append to the key's string (a missing key counts as the empty string). Porcupine's
    /// key-value model.
    Append(Value),
    /// Take the lock (mutex); it must be free.
    Acquire,
    /// Give the lock back (mutex); it must be held.
    Release,
    /// Add an element to the set. A read of the set is a [`Call::Read`] that returns the list
    /// of its elements.
    Add(Value),
    /// Put an element in the queue.
    Enqueue(Value),
    /// Take an element from the queue; an `ok` one returns it, or nothing if the queue was empty.
    Dequeue,
    /// A transaction over several registers (multi-register), its micro-operations in order. An
    /// `ok` transaction holds them as completed (its reads carry the values they returned); any
    /// other, as invoked (its reads carry nothing).
    Txn(Vec<MicroOp>),
}

/// One step of a [`Call::Txn`]. A read of `None` constrains nothing (it returned no value, or
/// has not returned yet); a write of `None` empties the register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MicroOp {
    Read {
        register: Value,
        value: Option<Value>,
    },
    Write {
        register: Value,
        value: Option<Value>,
    },
}

impl MicroOp {
    pub fn register(&self) -> &Value {
        match self {
            MicroOp::Read { register, .. } | MicroOp::Write { register, .. } => register,
        }
    }

    pub fn value(&self) -> &Option<Value> {
        match self {
            MicroOp::Read { value, .. } | MicroOp::Write { value, .. } => value,
        }
    }
}

impl fmt::Display for MicroOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MicroOp::Read {
                register,
                value: Some(v),
            } => write!(f, "read {} -> {v}", Name(register)),
            MicroOp::Read { register, .. } => write!(f, "read {}", Name(register)),
            MicroOp::Write {
                register,
                value: Some(v),
            } => write!(f, "write {} <- {v}", Name(register)),
            MicroOp::Write { register, .. } => write!(f, "write {} <- nil", Name(register)),
        }
    }
}

impl Call {
    /// The key-value function this call is grouped with: acquire, release and dequeue are
    /// conditional updates like a CAS; add and enqueue grow a collection like an append; a
    /// transaction is a read if it only reads, a write if it only writes, else a CAS.
    pub fn func(&self) -> Func {
        match self {
            Call::Read => Func::Read,
            Call::Write(_) => Func::Write,
            Call::Delete => Func::Delete,
            Call::Cas { .. } | Call::Acquire | Call::Release | Call::Dequeue => Func::Cas,
            Call::Append(_) | Call::Add(_) | Call::Enqueue(_) => Func::Append,
            Call::Txn(ops) if ops.iter().all(|o| matches!(o, MicroOp::Read { .. })) => Func::Read,
            Call::Txn(ops) if ops.iter().all(|o| matches!(o, MicroOp::Write { .. })) => Func::Write,
            Call::Txn(_) => Func::Cas,
        }
    }

    /// The function's own name, as Jepsen spells it (`:acquire`, `:txn`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Call::Read => "read",
            Call::Write(_) => "write",
            Call::Delete => "delete",
            Call::Cas { .. } => "cas",
            Call::Append(_) => "append",
            Call::Acquire => "acquire",
            Call::Release => "release",
            Call::Add(_) => "add",
            Call::Enqueue(_) => "enqueue",
            Call::Dequeue => "dequeue",
            Call::Txn(_) => "txn",
        }
    }
}

/// How an operation completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It took effect. For a read, what it returned (`None`: the key was absent; a list: the
    /// elements of a set); for a dequeue, the element it took (`None`: the queue was empty);
    /// `None` for every other function.
    Ok(Option<Value>),
    /// It definitely did not take effect.
    Fail,
    /// A CAS whose precondition did not hold: it changed nothing, but it observed that the key
    /// did not hold `expected` at some instant between invocation and completion.
    PreconditionFailed,
    /// Unknown: it may have taken effect at any instant after its invocation, or never. Also used
    /// for operations still pending when the history ends, and for reads that returned no
    /// information.
    Info,
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ok(_) => "ok",
            Outcome::Fail | Outcome::PreconditionFailed => "fail",
            Outcome::Info => "info",
        }
    }
}

/// Where an event sits in its history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Event {
    /// Position among all events of the history; defines real-time order.
    pub index: u64,
    /// Nanoseconds since the run started, when the format records time; otherwise equal to
    /// `index`.
    pub time: u64,
    /// 1-based line of the input where the event was read.
    pub line: u64,
}

/// One operation: an invocation and (unless it never completed) its completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub process: u64,
    /// Index into [`History::keys`].
    pub key: u32,
    pub call: Call,
    pub outcome: Outcome,
    pub invoke: Event,
    /// `None` when the history ended before the operation completed (its outcome is then
    /// [`Outcome::Info`]).
    pub complete: Option<Event>,
}

/// How many operations of a history ended each way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub ok: usize,
    /// CAS operations whose precondition did not hold: answered correctly, changed nothing.
    pub cas_miss: usize,
    /// Operations that definitely did not take effect, for any other reason.
    pub fail: usize,
    pub info: usize,
}

/// A whole history, split into operations.
///
/// Invariants: `ops` is sorted by `invoke.index`; every `key` indexes `keys`; a completion's
/// index is larger than its invocation's; every call is one of `model`'s (a key-value call for
/// the register models).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The sequential object each key holds, which [`crate::check`] checks the history against.
    pub model: ModelKind,
    /// Key names; an operation's `key` indexes this list.
    pub keys: Vec<String>,
    pub ops: Vec<Operation>,
    /// Value every key holds before the first operation (`None`: absent); for a multi-register,
    /// every register. The other models start empty (a free lock, an empty set or queue).
    pub initial: Option<Value>,
    /// Whether [`Event::time`] is real time (nanoseconds) rather than a position.
    pub timed: bool,
}

impl History {
    pub fn key_name(&self, op: &Operation) -> &str {
        &self.keys[op.key as usize]
    }

    /// Operations counted by outcome, with CAS precondition misses apart from failures.
    pub fn outcome_counts(&self) -> OutcomeCounts {
        let mut n = OutcomeCounts::default();
        for op in &self.ops {
            match op.outcome {
                Outcome::Ok(_) => n.ok += 1,
                Outcome::PreconditionFailed => n.cas_miss += 1,
                Outcome::Fail => n.fail += 1,
                Outcome::Info => n.info += 1,
            }
        }
        n
    }
}
