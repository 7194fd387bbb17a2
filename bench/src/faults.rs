//! Drives the nemesis: applies each planned fault to the cluster at its time, records its start
//! and end in the history, and fills in what only the running cluster knows (who leads).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kvnode::client::Client;
use nemesis::fault::{Fault, LEADER, Shape};
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
    let mut windows = Vec::new();
    for step in plan {
        if !sleep_until(&ctx, ctx.start + step.at).await {
            break;
        }
        let fault = resolve(&ctx, &cluster, step.fault).await;
        let started = apply(&ctx, &cluster, &fault, true).await?;
        *ctx.fault.lock().expect("fault lock") = fault.label();
        let ended = sleep_until(&ctx, ctx.start + step.at + step.duration).await;
        let end_ns = apply(&ctx, &cluster, &fault, false).await?;
        *ctx.fault.lock().expect("fault lock") = "none".into();
        windows.push(FaultWindow {
            fault: serde_json::to_value(&fault)?,
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

/// Fills in what only the running cluster can tell: who leads now (for faults that target the
/// leader: [`Shape::IsolateLeader`] partitions and kills or pauses of [`LEADER`]).
async fn resolve(ctx: &Ctx, cluster: &Mutex<Cluster>, fault: Fault) -> Fault {
    let wants_leader = match &fault {
        Fault::Partition { shape, .. } => *shape == Shape::IsolateLeader,
        Fault::Kill { nodes } | Fault::Pause { nodes } => nodes.iter().any(|n| n == LEADER),
    };
    if !wants_leader {
        return fault;
    }
    let names = cluster.lock().await.names();
    // The leader of the partition holding key k0, as a fresh client learns it.
    let probe = Client::new(&ctx.cluster_config, 0, u64::MAX - 3, Duration::from_secs(2));
    let _ = probe.get("k0").await;
    let partition = ctx.cluster_config.partition_of("k0");
    let leader = probe
        .leader_of(partition)
        .map_or_else(|| names[0].clone(), str::to_owned);
    let named = |nodes: Vec<String>| -> Vec<String> {
        nodes
            .into_iter()
            .map(|n| if n == LEADER { leader.clone() } else { n })
            .collect()
    };
    match fault {
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
    }
}

/// Starts (`begin`) or ends a fault and records it; returns the event's time.
async fn apply(
    ctx: &Ctx,
    cluster: &Mutex<Cluster>,
    fault: &Fault,
    begin: bool,
) -> anyhow::Result<u64> {
    let mut c = cluster.lock().await;
    match fault {
        Fault::Kill { nodes } => {
            for n in nodes {
                if begin {
                    c.kill(n);
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
        value: serde_json::to_value(fault)?,
        error: None,
    }))
}
