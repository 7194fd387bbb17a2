//! kvlab's linearizability checker for key-value histories, and for every model Knossos has.
//!
//! Start with [`read_file`] (or [`read_str`]) to get a [`History`] from any supported format
//! ([`Format`]), then [`check`] it; the [`CheckResult`] holds the [`Verdict`] overall and per
//! key, and an [`Anomaly`] (a readable counterexample) for every key that is not linearizable.
//!
//! How it decides:
//! - A history is linearizable iff the sub-history of every key is (locality), so keys are
//!   checked separately and in parallel (`check.rs`).
//! - Within a key, a Wing–Gong search with Lowe's memoisation of (linearised set, state) pairs
//!   (`search.rs`), over a sequential specification: a [`Model`] (`model/`). The history names
//!   one of Knossos's seven ([`ModelKind`]: registers, a mutex, a set, queues, a multi-register);
//!   [`check_model`] takes one of your own.
//! - Jepsen's rules for uncertain outcomes: an `info` operation may take effect at any point
//!   after its invocation or never; a `fail` did not happen, except that a CAS whose
//!   precondition failed observed that the value was not the expected one.
//! - Budgets of time and memory: when one runs out the key's verdict is `unknown` with the
//!   reason, never a guess.
//!
//! The crate does no I/O beyond reading the history file.

mod builder;
mod check;
mod error;
mod explain;
mod format;
mod history;
mod memo;
mod model;
mod search;
mod shrink;
mod verdict;

pub use check::{CheckOptions, check, check_model};
pub use error::ReadError;
pub use explain::{Explanation, Failure, counted};
pub use format::{Format, ReadOptions, read_file, read_str};
pub use history::{Call, Event, Func, History, MicroOp, Operation, Outcome, OutcomeCounts, Value};
pub use model::{Compiled, KeyOp, Model, ModelKind, Pending, PendingEvent, StateId};
pub use verdict::{Anomaly, CheckResult, Core, KeyResult, OpSummary, Verdict};
