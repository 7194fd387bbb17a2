//! Drives the nemesis: applies each planned fault to the cluster at its time, records its start
//! and end in the history, and fills in what only the running cluster knows (who leads the
//! partition a leader-targeted fault was aimed at).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kvnode::client::Client;
use kvnode::config::ClusterConfig;
use nemesis::fault::{Fault, LEADER, Shape};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reports::FaultWindow;
use tokio::sync::Mutex;

use crate::cluster::Cluster;
use crate::recorder::{Event, Process};
use crate::workload::Ctx;

pub(crate) async fn drive_nemesis(
    plan: Vec<nemesis::schedule::Step>,
    ctx: Arc<Ctx>,
    cluster: Arc<Mutex<Cluster>>,
) -> anyhow::Result<Vec<FaultWindow>> {
    // The plan has its own stream from the seed; the choices made as faults start have theirs,
    // so the plan stays the same whatever is chosen here.
    let mut rng = StdRng::seed_from_u64(ctx.cfg.seed ^ NEMESIS_STREAM);
    let mut windows = Vec::new();
    for step in plan {
        if !sleep_until(&ctx, ctx.start + step.at).await {
            break;
        }
        let fault = resolve(&ctx, &cluster, step.fault, &mut rng).await;
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

/// A planned fault with what the runner filled in: for a leader-targeted fault, the partition
/// whose leader it hits.
struct Resolved {
    fault: Fault,
    leader_of: Option<LeaderOf>,
}

struct LeaderOf {
    partition: u32,
    /// False if the probe learned no leader (an election under way, say), so the fault hit the
    /// first node instead.
    known: bool,
}

impl Resolved {
    /// `kill n2 (leader of key partition 5)`: the fault's label, plus the key partition whose
    /// leader it was aimed at (not to be confused with a network partition).
    fn label(&self) -> String {
        match &self.leader_of {
            None => self.fault.label(),
            Some(LeaderOf {
                partition,
                known: true,
            }) => format!(
                "{} (leader of key partition {partition})",
                self.fault.label()
            ),
            Some(LeaderOf {
                partition,
                known: false,
            }) => format!(
                "{} (leader of key partition {partition} unknown)",
                self.fault.label()
            ),
        }
    }

    /// The fault as recorded in the history and results: the nemesis's own form, plus
    /// `"partition"` when it was aimed at a partition's leader.
    fn value(&self) -> serde_json::Result<serde_json::Value> {
        let mut value = serde_json::to_value(&self.fault)?;
        if let (Some(l), Some(fields)) = (&self.leader_of, value.as_object_mut()) {
            fields.insert("partition".into(), l.partition.into());
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

/// Fills in what only the running cluster can tell: who leads now, for faults that target the
/// leader ([`Shape::IsolateLeader`] partitions and kills or pauses of [`LEADER`]). Each such fault
/// aims at the leader of a partition drawn from `rng`, so that over a run the nemesis hits the
/// leaders of every partition rather than of one.
async fn resolve(ctx: &Ctx, cluster: &Mutex<Cluster>, fault: Fault, rng: &mut StdRng) -> Resolved {
    let wants_leader = match &fault {
        Fault::Partition { shape, .. } => *shape == Shape::IsolateLeader,
        Fault::Kill { nodes } | Fault::Pause { nodes } => nodes.iter().any(|n| n == LEADER),
    };
    if !wants_leader {
        return Resolved {
            fault,
            leader_of: None,
        };
    }
    let names = cluster.lock().await.names();
    let config = &ctx.cluster_config;
    let partition = rng.random_range(0..config.partitions);
    // The leader of that partition, as a fresh client learns it from a read of one of its keys.
    let probe = Client::new(config, 0, u64::MAX - 3, Duration::from_secs(2));
    let _ = probe.get(&key_in(config, partition)).await;
    let leader = probe.leader_of(partition).map(str::to_owned);
    let known = leader.is_some();
    let leader = leader.unwrap_or_else(|| names[0].clone());
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
    };
    Resolved {
        fault,
        leader_of: Some(LeaderOf { partition, known }),
    }
}

/// The first of the keys `k0`, `k1`, ... that belongs to `partition`. One exists for any
/// partition: the hash spreads keys evenly, so about `partitions` tries find one.
fn key_in(config: &ClusterConfig, partition: u32) -> String {
    (0u64..)
        .map(|i| format!("k{i}"))
        .find(|k| config.partition_of(k) == partition)
        .expect("the keys are endless")
}

/// Starts (`begin`) or ends a fault and records it; returns the event's time.
async fn apply(
    ctx: &Ctx,
    cluster: &Mutex<Cluster>,
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
                c.links.partition(&fault.cut_links())?;
            } else {
                c.links.heal_all();
            }
        }
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

    fn config(partitions: u32) -> ClusterConfig {
        let mut text = format!("partitions = {partitions}\nreplication = 3\n");
        for i in 1..=3 {
            text += &format!(
                "[[node]]\nid = \"n{i}\"\nclient = \"127.0.0.1:710{i}\"\npeer = \"127.0.0.1:720{i}\"\n"
            );
        }
        ClusterConfig::parse(&text).unwrap()
    }

    #[test]
    fn every_partition_has_a_key_to_find_its_leader_by() {
        for partitions in [1, 8, 61] {
            let c = config(partitions);
            for p in 0..partitions {
                assert_eq!(c.partition_of(&key_in(&c, p)), p);
            }
        }
    }

    #[test]
    fn a_leader_fault_names_its_partition_in_label_and_value() {
        let kill = |leader_of| Resolved {
            fault: Fault::Kill {
                nodes: vec!["n2".into()],
            },
            leader_of,
        };
        let hit = kill(Some(LeaderOf {
            partition: 5,
            known: true,
        }));
        assert_eq!(hit.label(), "kill n2 (leader of key partition 5)");
        assert_eq!(
            hit.value().unwrap(),
            serde_json::json!({"kind": "kill", "nodes": ["n2"], "partition": 5})
        );
        let guess = kill(Some(LeaderOf {
            partition: 3,
            known: false,
        }));
        assert_eq!(guess.label(), "kill n2 (leader of key partition 3 unknown)");
        let plain = kill(None);
        assert_eq!(plain.label(), "kill n2");
        assert_eq!(
            plain.value().unwrap(),
            serde_json::json!({"kind": "kill", "nodes": ["n2"]})
        );
    }
}
