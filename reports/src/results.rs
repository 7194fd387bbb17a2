//! `results.json`: what a run concluded, written by `bench run` and read back by the report.
//!
//! The type is the contract between the two: bench fills it in and serialises it; the report,
//! the JUnit file and the runs index deserialise it. Fields are only ever added.

use std::collections::BTreeMap;

use checker::{CheckResult, KeyResult, Verdict};
use serde::{Deserialize, Serialize};

/// The whole of `results.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResults {
    pub verdict: Verdict,
    /// The test's name (the run directory's parent).
    pub test: String,
    /// What the system under test is, e.g. `kvnode` or
    /// `maelstrom: examples/maelstrom/lin_kv_single.py`; empty for older runs, which all tested
    /// kvnode (see [`RunResults::system`]).
    #[serde(default)]
    pub system: String,
    pub seed: u64,
    /// Workload profile name.
    pub profile: String,
    /// Nemesis schedule name.
    pub nemesis: String,
    /// Wall-clock time at which the history's time 0 was taken, RFC 3339 UTC with milliseconds.
    /// Node logs are stamped in the same clock, which is how the report finds their lines.
    #[serde(default)]
    pub started_at: Option<String>,
    /// Length of the workload phase, seconds (the history goes on with the final reads).
    #[serde(default)]
    pub duration_s: f64,
    /// Operations in the history, all outcomes.
    pub operations: usize,
    /// Events written to the history (invocations, completions and nemesis events).
    pub events: u64,
    pub ok: usize,
    /// Operations that definitely did not take effect, CAS precondition misses excepted.
    pub fail: usize,
    /// CAS operations whose precondition did not hold: the store answered them correctly and
    /// they changed nothing. Not failures. (Absent from runs before it was counted apart; their
    /// `fail` includes these.)
    #[serde(default)]
    pub cas_miss: usize,
    pub info: usize,
    pub throughput_ops_per_s: f64,
    /// Latency from intended start, per function, over completed operations (hdrhistogram): from
    /// the instant the workload's schedule meant the operation to start (open loop, a profile with
    /// `rate`) or from its invocation (closed loop) to its completion. Under an open-loop
    /// workload it includes the time an operation waited behind slow ones: what a user would see.
    pub latency: BTreeMap<String, Quantiles>,
    /// Service time, per function: from the invocation to the completion, as the client measured
    /// it: how long the store took to answer. Empty for runs before it was recorded.
    #[serde(default)]
    pub service_time: BTreeMap<String, Quantiles>,
    /// The `--node-arg` flags every node ran with (e.g. a deliberate bug), in order.
    #[serde(default)]
    pub node_args: Vec<String>,
    /// The run was interrupted (Ctrl-C, SIGTERM): the history stops where it was, no final
    /// reads ran, and the verdict is over what was recorded.
    #[serde(default)]
    pub interrupted: bool,
    /// Every fault the nemesis injected, in order.
    pub faults: Vec<FaultWindow>,
    /// Message counts, for systems whose messages pass through the bench.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<MessageStats>,
    /// What the nodes spent (write-ahead log syncs, peer messages), for systems that count it
    /// (kvnode, from its logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub costs: Option<Costs>,
    pub checker: CheckerSummary,
}

/// What the nodes of a run spent, summed over every node and every process incarnation (a
/// restarted node starts counting again), as the nodes logged it.
///
/// Approximate when an incarnation was killed: a node logs its counts once a second, so a kill
/// loses up to its last second of counts (`cut_short` says how many incarnations ended so).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Costs {
    /// Syncs (fsyncs) of the nodes' write-ahead logs.
    pub wal_syncs: u64,
    /// Messages the nodes sent each other.
    pub peer_messages: u64,
    /// Their bytes on the wire.
    pub peer_bytes: u64,
    /// Node processes counted (each start and each restart is one).
    pub incarnations: u64,
    /// Of those, the ones that ended without logging their final counts (killed).
    pub cut_short: u64,
    /// The same per completed workload operation.
    pub per_op: CostsPerOp,
}

/// [`Costs`] per completed workload operation.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CostsPerOp {
    pub wal_syncs: f64,
    pub peer_messages: f64,
    pub peer_bytes: f64,
}

/// What the bench's router counted of the messages of a run whose system's messages pass
/// through it (`messages.jsonl` has each of them).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MessageStats {
    /// Every message the router saw, client ones too (duplicates counted).
    pub total: u64,
    pub delivered: u64,
    pub dropped: u64,
    /// Copies the nemesis added.
    pub duplicated: u64,
    /// Node-to-node messages sent (the figure people compare protocols by) ...
    pub between_nodes: u64,
    /// ... per completed client operation.
    pub per_operation: f64,
    /// Per node: sent, received (all messages).
    pub by_node: BTreeMap<String, NodeMessages>,
    /// Per body type, all messages.
    pub by_type: BTreeMap<String, u64>,
}

/// One node's messages, client ones included.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeMessages {
    pub sent: u64,
    pub received: u64,
}

/// Latency quantiles of one function, milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Quantiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One fault, from the event that started it to the one that ended it (history time).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FaultWindow {
    /// The fault as the nemesis describes it (`nemesis::fault::Fault`).
    pub fault: serde_json::Value,
    /// A few words for plots: `kill n2`, `partition halves`.
    #[serde(default)]
    pub label: String,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// What the checker found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckerSummary {
    pub elapsed_ms: f64,
    pub states: u64,
    pub invalid_keys: Vec<String>,
    pub unknown_keys: Vec<String>,
    /// Per key; an invalid key carries its counterexample.
    pub keys: Vec<KeyResult>,
}

impl From<&CheckResult> for CheckerSummary {
    fn from(r: &CheckResult) -> CheckerSummary {
        let keys_with = |v: Verdict| {
            r.keys
                .iter()
                .filter(|k| k.verdict == v)
                .map(|k| k.key.clone())
                .collect()
        };
        CheckerSummary {
            elapsed_ms: r.elapsed_ms,
            states: r.states,
            invalid_keys: keys_with(Verdict::Invalid),
            unknown_keys: keys_with(Verdict::Unknown),
            keys: r.keys.clone(),
        }
    }
}

impl RunResults {
    /// The system under test in a few words: `kvnode` for runs recorded before it was named.
    pub fn system(&self) -> &str {
        if self.system.is_empty() {
            "kvnode"
        } else {
            &self.system
        }
    }

    /// The invalid key whose impossible operation was invoked first, if any: the one the report
    /// draws (the earliest sign that something went wrong).
    pub fn earliest_anomaly(&self) -> Option<&KeyResult> {
        self.checker
            .keys
            .iter()
            .filter(|k| k.anomaly.is_some())
            .min_by_key(|k| k.anomaly.as_ref().map(|a| a.culprit.invoke))
    }
}
