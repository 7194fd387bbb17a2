//! Drives the nemesis: applies each planned fault to the system at its time, records its start
//! and end in the history, and fills in what only the running system knows (who leads the
//! partition a leader-targeted fault was aimed at).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nemesis::fault::{Fault, LEADER, Shape};
use rand::SeedableRng;
use rand::rngs::StdRng;
use reports::FaultWindow;
use tokio::sync::Mutex;

use crate::recorder::{Event, Process};
use crate::system::{LeaderHint, System};
use crate::workload::Ctx;

pub(crate) async fn drive_nemesis<S: System>(
    plan: Vec<nemesis::schedule::Step>,
    ctx: Arc<Ctx>,
    cluster: Arc<Mutex<S>>,
) -> anyhow::Result<Vec<FaultWindow>> {
    // The plan has its own stream from the seed; the choices made as faults start have theirs,
    // so the plan stays the same whatever is chosen here.
    let mut rng = StdRng::seed_from_u64(ctx.cfg.seed ^ NEMESIS_STREAM);
    let mut windows = Vec::new();
    for step in plan {
        if !sleep_until(&ctx, ctx.start + step.at).await {
            break;
        }
        let fault = resolve(&cluster, step.fault, &mut rng).await;
        let started = apply(&ctx, &cluster, &fault, true).await?;
        *ctx.fault.lock().expect("fault lock") = fault.label();
        let ended = sleep_until(&ctx, ctx.start + step.at + step.duration).await;
        let end_ns = apply(&ctx, &cluster, &fault, false).await?;
        *ctx.fault.lock().expect("fault lock") = "none".into();
        windows.push(FaultWindow {
            fault: fault.value()?,
            label: fault.label(),
            start_ns: started,
            end_ns,
        });
        if !ended {
            break;
        }
    }
    Ok(windows)
}

/// Mixed into the run's seed for the nemesis's own choices (workers mix in `(w + 1) << 32`).
const NEMESIS_STREAM: u64 = 0x6e65_6d65_7369_7321;

/// A planned fault with what the runner filled in: for a leader-targeted fault, whom the system
/// named as leader (and of which key partition).
struct Resolved {
    fault: Fault,
    /// `None` for a fault not aimed at a leader. A hint without a node: the system named no
    /// leader (an election under way, or a system that does not say), so the fault hit the
    /// first node instead.
    leader_of: Option<LeaderHint>,
}

impl Resolved {
    /// `kill n2 (leader of key partition 5)`: the fault's label, plus the key partition whose
    /// leader it was aimed at (not to be confused with a network partition).
    fn label(&self) -> String {
        let Some(hint) = &self.leader_of else {
            return self.fault.label();
        };
        let of = match hint.partition {
            Some(p) => format!("leader of key partition {p}"),
            None => "leader".to_owned(),
        };
        let unknown = if hint.node.is_some() { "" } else { " unknown" };
        format!("{} ({of}{unknown})", self.fault.label())
    }

    /// The fault as recorded in the history and results: the nemesis's own form, plus
    /// `"partition"` when it was aimed at a partition's leader.
    fn value(&self) -> serde_json::Result<serde_json::Value> {
        let mut value = serde_json::to_value(&self.fault)?;
        if let (
            Some(LeaderHint {
                partition: Some(p), ..
            }),
            Some(fields),
        ) = (&self.leader_of, value.as_object_mut())
        {
            fields.insert("partition".into(), (*p).into());
        }
        Ok(value)
    }
}

/// Sleeps until `at`, the deadline or a stop; true if `at` was reached.
async fn sleep_until(ctx: &Ctx, at: Instant) -> bool {
    let at = at.min(ctx.deadline);
    while Instant::now() < at {
        if ctx.stop.load(Ordering::Relaxed) {
            return false;
        }
        let step = (at - Instant::now()).min(Duration::from_millis(50));
        tokio::time::sleep(step).await;
    }
    !ctx.stop.load(Ordering::Relaxed) && at < ctx.deadline
}

/// Fills in what only the running system can tell: who leads now, for faults that target the
/// leader ([`Shape::IsolateLeader`] partitions and kills or pauses of [`LEADER`]). Each such fault
/// asks the system for a leader with `rng`, so that over a run the nemesis hits the leaders of
/// every key partition rather than of one.
async fn resolve<S: System>(cluster: &Mutex<S>, fault: Fault, rng: &mut StdRng) -> Resolved {
    let wants_leader = match &fault {
        Fault::Partition { shape, .. } => *shape == Shape::IsolateLeader,
        Fault::Kill { nodes } | Fault::Pause { nodes } => nodes.iter().any(|n| n == LEADER),
        Fault::Network { .. } => false,
    };
    if !wants_leader {
        return Resolved {
            fault,
            leader_of: None,
        };
    }
    let (names, hint) = {
        let c = cluster.lock().await;
        (c.names(), c.leader(rng).await)
    };
    let leader = hint.node.clone().unwrap_or_else(|| names[0].clone());
    let named = |nodes: Vec<String>| -> Vec<String> {
        nodes
            .into_iter()
            .map(|n| if n == LEADER { leader.clone() } else { n })
            .collect()
    };
    let fault = match fault {
        Fault::Partition { shape, .. } => Fault::Partition {
            shape,
            grudge: nemesis::fault::isolate(&leader, &names),
        },
        Fault::Kill { nodes } => Fault::Kill {
            nodes: named(nodes),
        },
        Fault::Pause { nodes } => Fault::Pause {
            nodes: named(nodes),
        },
        other @ Fault::Network { .. } => other,
    };
    Resolved {
        fault,
        leader_of: Some(hint),
    }
}

/// Starts (`begin`) or ends a fault and records it; returns the event's time.
async fn apply<S: System>(
    ctx: &Ctx,
    cluster: &Mutex<S>,
    resolved: &Resolved,
    begin: bool,
) -> anyhow::Result<u64> {
    let fault = &resolved.fault;
    let mut c = cluster.lock().await;
    match fault {
        Fault::Kill { nodes } => {
            for n in nodes {
                if begin {
                    c.kill(n).await;
                } else {
                    c.restart(n)?;
                }
            }
        }
        Fault::Pause { nodes } => {
            for n in nodes {
                if begin {
                    c.pause(n);
                } else {
                    c.resume(n);
                }
            }
        }
        Fault::Partition { .. } => {
            if begin {
                c.partition(&fault.cut_links())?;
            } else {
                c.heal_network();
            }
        }
        Fault::Network { trouble } => c.trouble(begin.then_some(*trouble))?,
    }
    let f = if begin {
        fault.start_name()
    } else {
        fault.end_name()
    };
    Ok(ctx.recorder.record(&Event {
        process: Process::Nemesis("nemesis"),
        kind: "info",
        f,
        key: None,
        value: resolved.value()?,
        error: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_fault_names_its_partition_in_label_and_value() {
        let kill = |leader_of| Resolved {
            fault: Fault::Kill {
                nodes: vec!["n2".into()],
            },
            leader_of,
        };
        let hit = kill(Some(LeaderHint {
            partition: Some(5),
            node: Some("n2".into()),
        }));
        assert_eq!(hit.label(), "kill n2 (leader of key partition 5)");
        assert_eq!(
            hit.value().unwrap(),
            serde_json::json!({"kind": "kill", "nodes": ["n2"], "partition": 5})
        );
        let guess = kill(Some(LeaderHint {
            partition: Some(3),
            node: None,
        }));
        assert_eq!(guess.label(), "kill n2 (leader of key partition 3 unknown)");
        let unpartitioned = kill(Some(LeaderHint {
            partition: None,
            node: None,
        }));
        assert_eq!(unpartitioned.label(), "kill n2 (leader unknown)");
        let plain = kill(None);
        assert_eq!(plain.label(), "kill n2");
        assert_eq!(
            plain.value().unwrap(),
            serde_json::json!({"kind": "kill", "nodes": ["n2"]})
        );
    }
}
