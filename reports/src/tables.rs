//! The report's tables of figures: outcomes and both latencies per function, availability
//! while a fault was in force versus not, and the messages the bench's router counted.

use serde::Serialize;

use crate::faults::natural;
use crate::results::{MessageStats, Quantiles};
use crate::run::{FUNCS, Run, Status, quantile};

/// One function's line in the operations and latency table.
#[derive(Serialize)]
pub struct FuncRow {
    f: &'static str,
    ok: usize,
    /// Empty for a function that has no precondition.
    cas_miss: String,
    fail: usize,
    info: usize,
    /// p50, p95, p99 and max, milliseconds, from the intended start.
    latency: [String; 4],
    /// The same, from the invocation.
    service: [String; 4],
}

/// Per function that occurs in the history: counts by outcome, and both latency figures from
/// `results.json`; service time is computed from the history for runs that did not record it.
pub fn func_rows(run: &Run) -> Vec<FuncRow> {
    let r = &run.results;
    FUNCS
        .iter()
        .filter_map(|&f| {
            let ops: Vec<_> = run.ops.iter().filter(|o| o.f == f).collect();
            if ops.is_empty() {
                return None;
            }
            let count = |s: Status| ops.iter().filter(|o| o.status == s).count();
            let service = match r.service_time.get(f.name()) {
                Some(q) => figures(Some(q)),
                None if r.service_time.is_empty() => {
                    // As the bench measures it: every operation that completed, whatever its
                    // outcome.
                    let mut ms: Vec<f64> = ops.iter().filter_map(|o| o.service_ms()).collect();
                    ms.sort_unstable_by(f64::total_cmp);
                    if ms.is_empty() {
                        figures(None)
                    } else {
                        [0.5, 0.95, 0.99, 1.0].map(|q| format!("{:.2}", quantile(&ms, q)))
                    }
                }
                None => figures(None),
            };
            Some(FuncRow {
                f: f.name(),
                ok: count(Status::Ok),
                cas_miss: if f == checker::Func::Cas {
                    count(Status::CasMiss).to_string()
                } else {
                    String::new()
                },
                fail: count(Status::Fail),
                info: count(Status::Info),
                latency: figures(r.latency.get(f.name())),
                service,
            })
        })
        .collect()
}

fn figures(q: Option<&Quantiles>) -> [String; 4] {
    match q {
        Some(q) => [q.p50_ms, q.p95_ms, q.p99_ms, q.max_ms].map(|v| format!("{v:.2}")),
        None => std::array::from_fn(|_| "-".to_owned()),
    }
}

/// One phase's line in the availability table.
#[derive(Serialize)]
pub struct AvailabilityRow {
    phase: &'static str,
    seconds: String,
    invoked: usize,
    answered: usize,
    share: String,
    rate: String,
}

/// Operations invoked while a fault was in force versus outside, over the workload phase, and
/// how many of them the store answered (ok or a CAS miss: see [`Status::answered`]).
pub fn availability(run: &Run) -> Vec<AvailabilityRow> {
    let end = if run.results.duration_s > 0.0 {
        (run.results.duration_s * 1e9) as u64
    } else {
        run.end_ns
    };
    let mut windows: Vec<(u64, u64)> = run
        .results
        .faults
        .iter()
        .map(|w| (w.start_ns.min(end), w.end_ns.min(end)))
        .collect();
    windows.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (s, e) in windows {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let in_fault = |t: u64| {
        let i = merged.partition_point(|w| w.0 <= t);
        i > 0 && t < merged[i - 1].1
    };
    let fault_ns: u64 = merged.iter().map(|(s, e)| e - s).sum();
    let mut n = [(0usize, 0usize); 2];
    for op in run.ops.iter().filter(|o| o.invoke < end) {
        let slot = &mut n[usize::from(in_fault(op.invoke))];
        slot.0 += 1;
        slot.1 += usize::from(op.status.answered());
    }
    let row = |phase, ns: u64, (invoked, answered): (usize, usize)| {
        let secs = ns as f64 / 1e9;
        AvailabilityRow {
            phase,
            seconds: format!("{secs:.1}"),
            invoked,
            answered,
            share: if invoked == 0 {
                "-".to_owned()
            } else {
                format!("{:.1}%", 100.0 * answered as f64 / invoked as f64)
            },
            rate: if secs <= 0.0 {
                "-".to_owned()
            } else {
                format!("{:.0}", answered as f64 / secs)
            },
        }
    };
    vec![
        row("no fault in force", end - fault_ns, n[0]),
        row("a fault in force", fault_ns, n[1]),
    ]
}

/// The Messages section: the router's counts, for a system whose messages pass through the bench.
#[derive(Serialize)]
pub struct MessagesView {
    /// Node-to-node messages per completed client operation, the figure protocols are compared by.
    per_operation: String,
    between_nodes: u64,
    total: u64,
    delivered: u64,
    dropped: u64,
    /// Dropped, as a share of all messages.
    dropped_share: String,
    duplicated: u64,
    /// By node name, `n2` before `n10`.
    nodes: Vec<NodeRow>,
    /// By count, most first.
    types: Vec<TypeRow>,
}

#[derive(Serialize)]
struct NodeRow {
    node: String,
    sent: u64,
    received: u64,
}

#[derive(Serialize)]
struct TypeRow {
    kind: String,
    count: u64,
    share: String,
}

pub fn messages(m: &MessageStats) -> MessagesView {
    let share = |n: u64| {
        if m.total == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}%", 100.0 * n as f64 / m.total as f64)
        }
    };
    let mut nodes: Vec<NodeRow> = m
        .by_node
        .iter()
        .map(|(node, n)| NodeRow {
            node: node.clone(),
            sent: n.sent,
            received: n.received,
        })
        .collect();
    nodes.sort_by(|a, b| natural(&a.node).cmp(&natural(&b.node)));
    let mut types: Vec<TypeRow> = m
        .by_type
        .iter()
        .map(|(kind, &count)| TypeRow {
            kind: kind.clone(),
            count,
            share: share(count),
        })
        .collect();
    // Stable after the map's order: equal counts stay by name.
    types.sort_by_key(|t| std::cmp::Reverse(t.count));
    MessagesView {
        per_operation: format!("{:.2}", m.per_operation),
        between_nodes: m.between_nodes,
        total: m.total,
        delivered: m.delivered,
        dropped: m.dropped,
        dropped_share: share(m.dropped),
        duplicated: m.duplicated,
        nodes,
        types,
    }
}
