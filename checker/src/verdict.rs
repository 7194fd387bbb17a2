//! What the checker concludes: a verdict overall and per key, with a counterexample for every
//! key that is not linearizable. These types are the contract with the report renderer; they
//! serialise to the JSON that `bench check --json` prints.

use serde::{Deserialize, Serialize};

use crate::history::{Call, Func, History, Operation, Outcome, Shown};
use crate::model::ModelKind;

/// Jepsen's three answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// A linearisation exists.
    Valid,
    /// No linearisation exists.
    Invalid,
    /// The search stopped before it could decide (budget, or another key already failed).
    Unknown,
}

impl Verdict {
    /// Jepsen's exit code: 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Unknown => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        }
    }
}

/// The result of checking a whole history.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// Invalid if any key is, else unknown if any key is, else valid.
    pub verdict: Verdict,
    /// Operations in the history (all outcomes).
    pub ops: usize,
    /// Per key, in the order keys first appear in the history.
    pub keys: Vec<KeyResult>,
    /// Wall-clock time of the search, milliseconds.
    pub elapsed_ms: f64,
    /// Configurations visited over all keys.
    pub states: u64,
    /// Largest memory the memo tables held at once, bytes (approximate).
    pub peak_memo_bytes: usize,
}

impl CheckResult {
    pub fn count(&self, verdict: Verdict) -> usize {
        self.keys.iter().filter(|k| k.verdict == verdict).count()
    }
}

/// The result for one key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyResult {
    pub key: String,
    pub verdict: Verdict,
    /// Operations on this key (all outcomes).
    pub ops: usize,
    /// Configurations visited.
    pub states: u64,
    /// Why the verdict is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<Anomaly>,
}

/// A readable counterexample for a key that is not linearizable.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Anomaly {
    /// One sentence in plain words.
    pub explanation: String,
    /// The operation that could not be linearised after the longest linearisable prefix.
    pub culprit: OpSummary,
    /// The acknowledged write whose effect the culprit did not see, when the explanation is a
    /// value already overwritten (a lost or stale write): the operation to look at first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<OpSummary>,
    /// The culprit was refuted before any search (it observes what no order can give it, such
    /// as a value nobody wrote): then no prefix was searched for, and `prefix_len` is 0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refuted_before_search: bool,
    /// Length of the longest prefix of the key's operations that could be linearised.
    pub prefix_len: usize,
    /// The last operations of that prefix, in linearisation order.
    pub prefix_tail: Vec<OpSummary>,
    /// The key's value after that prefix.
    pub value_after_prefix: serde_json::Value,
    /// The same, in the model's words (`absent`, `"v2"`, `held`, `{x 0, y 2}`).
    #[serde(default)]
    pub state_after_prefix: String,
    /// The key's operations around the point of failure, sorted by invocation: every operation
    /// that overlaps the culprit (the culprit itself included), and a few before it.
    pub around: Vec<OpSummary>,
    /// The counterexample reduced to its core; absent when shrinking was off or had no time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<Core>,
}

impl Anomaly {
    /// The key's state after the longest prefix, in the model's words; for results recorded
    /// before the checker said it so, from the JSON value (`absent` for none).
    pub fn state_after(&self) -> String {
        match &self.value_after_prefix {
            _ if !self.state_after_prefix.is_empty() => self.state_after_prefix.clone(),
            serde_json::Value::Null => "absent".to_owned(),
            v => v.to_string(),
        }
    }
}

/// A smallest set of the key's operations that is not linearizable on its own, found by delta
/// debugging with the checker as the oracle.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Core {
    /// The operations, by invocation.
    pub ops: Vec<OpSummary>,
    /// Removing any one of them leaves a linearizable history (1-minimal). False when the time
    /// budget ran out first: then the core is smaller than the key's history and still not
    /// linearizable, but perhaps not minimal.
    pub minimal: bool,
    /// Searches run while shrinking, and the time they took.
    pub checks: u64,
    pub elapsed_ms: f64,
}

/// One operation, described for people and for the report's timeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpSummary {
    /// Index in the history's operations.
    pub index: usize,
    pub process: u64,
    /// The key-value function it is grouped with ([`Call::func`]); `text` names its own.
    pub f: Func,
    /// Argument: written, added or enqueued value, `[expected, new]` for a CAS, the
    /// micro-operations `[f, register, value]` of a transaction; for a read or dequeue, the
    /// value returned.
    pub value: serde_json::Value,
    /// `ok`, `fail` or `info`.
    pub outcome: String,
    /// Invocation and completion times (nanoseconds, or event positions for untimed formats).
    pub invoke: u64,
    pub complete: Option<u64>,
    /// Input lines of the invocation and completion.
    pub invoke_line: u64,
    pub complete_line: Option<u64>,
    /// The operation in a few words, e.g. `write "v3"`, `cas 1 -> 2`, `read -> absent`,
    /// `acquire`, `dequeue -> 5`, `txn [read :x -> 1, write :y <- 2]`.
    pub text: String,
}

impl OpSummary {
    pub fn new(history: &History, index: usize) -> OpSummary {
        let op = &history.ops[index];
        OpSummary {
            index,
            process: op.process,
            f: op.call.func(),
            value: op_value(op),
            outcome: op.outcome.name().to_owned(),
            invoke: op.invoke.time,
            complete: op.complete.map(|c| c.time),
            invoke_line: op.invoke.line,
            complete_line: op.complete.map(|c| c.line),
            text: describe(history, op),
        }
    }
}

fn json(v: &crate::history::Value) -> serde_json::Value {
    serde_json::to_value(v).expect("a value serialises")
}

fn op_value(op: &Operation) -> serde_json::Value {
    match (&op.call, &op.outcome) {
        (Call::Read | Call::Dequeue, Outcome::Ok(Some(v))) => json(v),
        (Call::Read | Call::Delete | Call::Dequeue | Call::Acquire | Call::Release, _) => {
            serde_json::Value::Null
        }
        (Call::Write(v) | Call::Append(v) | Call::Add(v) | Call::Enqueue(v), _) => json(v),
        (Call::Cas { expected, new }, _) => {
            serde_json::json!([expected.as_ref().map(json), json(new)])
        }
        (Call::Txn(micro), _) => micro
            .iter()
            .map(|m| {
                let f = match m {
                    crate::history::MicroOp::Read { .. } => "read",
                    crate::history::MicroOp::Write { .. } => "write",
                };
                serde_json::json!([f, json(m.register()), m.value().as_ref().map(json)])
            })
            .collect(),
    }
}

/// A few words for one operation of `history`.
pub(crate) fn describe(history: &History, op: &Operation) -> String {
    let base = match (&op.call, &op.outcome) {
        (Call::Read, Outcome::Ok(None)) if history.model == ModelKind::Set => {
            "read -> nil".to_owned()
        }
        (Call::Read, Outcome::Ok(v)) => format!("read -> {}", Shown(v)),
        (Call::Dequeue, Outcome::Ok(Some(v))) => format!("dequeue -> {v}"),
        (Call::Dequeue, Outcome::Ok(None)) => "dequeue -> nil".to_owned(),
        (Call::Read | Call::Delete | Call::Acquire | Call::Release | Call::Dequeue, _) => {
            op.call.name().to_owned()
        }
        (Call::Write(v), _) => format!("write {v}"),
        (Call::Cas { expected, new }, _) => format!("cas {} -> {new}", Shown(expected)),
        (Call::Append(v) | Call::Add(v) | Call::Enqueue(v), _) => {
            format!("{} {v}", op.call.name())
        }
        (Call::Txn(micro), _) => {
            let shown: Vec<String> = micro.iter().map(|m| m.to_string()).collect();
            format!("txn [{}]", shown.join(", "))
        }
    };
    match op.outcome {
        Outcome::Ok(_) => base,
        Outcome::Fail => format!("{base} (failed)"),
        Outcome::PreconditionFailed => {
            format!("{base} (failed: value was not {})", cas_expected(op))
        }
        Outcome::Info => format!("{base} (outcome unknown)"),
    }
}

fn cas_expected(op: &Operation) -> String {
    match &op.call {
        Call::Cas { expected, .. } => Shown(expected).to_string(),
        _ => String::new(),
    }
}
