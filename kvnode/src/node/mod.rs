//! The node runtime: the thin tokio shell around [`NodeCore`].
//!
//! One task owns the [`NodeCore`] (every partition this node replicates, routing, batching) and
//! is the only code that touches it. Everything else talks to it through one channel of
//! [`core::Input`]s: client requests, peer messages, ticks, and "the log is durable through
//! batch N". The task hands the core whatever is queued (at most [`MAX_BATCH`] inputs), then
//! flushes it and carries out the batch's [`core::Output`]:
//! 1. the [`WalBatch`] goes to the WAL thread, which appends a whole queue of batches, syncs
//!    once (group commit), and only then releases the messages that waited for them
//!    ([`write_batches`]);
//! 2. the other messages leave at once, over one TCP link per peer;
//! 3. clients get their answers.
//!
//! The deterministic simulator drives the same [`NodeCore`] and [`write_batches`], with its own
//! choices of batch sizes, WAL latency and crash points.

pub mod core;
mod net;
mod stats;
mod wal_thread;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::config::ClusterConfig;
use crate::paxos::NodeId;
use crate::wal;
use crate::wire::Response as WireResponse;
pub use core::{CoreOptions, Housekeeping, MAX_BATCH, NodeCore, WalBatch};
use net::PeerLink;
pub use stats::{LOG_RECOVERED, LOG_SHUTTING_DOWN, NodeCosts};
pub use wal_thread::write_batches;

/// Per-node switches.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    pub id: String,
    pub data_dir: PathBuf,
    pub core: CoreOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("no node named {0:?} in the configuration")]
    UnknownNode(String),
    #[error("cannot use data directory {path}: {message}")]
    DataDir { path: PathBuf, message: String },
    #[error("write-ahead log in {path}: {message}")]
    Log { path: PathBuf, message: String },
}

/// Where the runtime sends a client's answer: the connection's writer task.
pub(crate) type ReplyTx = mpsc::UnboundedSender<WireResponse>;
/// What the connection tasks, the ticker and the WAL thread hand the core.
pub(crate) type Input = core::Input<ReplyTx>;

/// Runs a node until `shutdown` completes or the node fails. Listeners are bound by the caller
/// (so tests can use port 0 and the binary can report bind errors itself).
pub async fn run(
    config: ClusterConfig,
    options: NodeOptions,
    clients: TcpListener,
    peers: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    let log_error = |message: String| NodeError::Log {
        path: options.data_dir.clone(),
        message,
    };
    if config.node_index(&options.id).is_none() {
        return Err(NodeError::UnknownNode(options.id.clone()));
    }
    std::fs::create_dir_all(&options.data_dir).map_err(|e| NodeError::DataDir {
        path: options.data_dir.clone(),
        message: e.to_string(),
    })?;
    let lock = lock_data_dir(&options.data_dir)?;
    let (log, recovery) = wal::open(&options.data_dir).map_err(|e| log_error(e.to_string()))?;
    if recovery.truncated_bytes > 0 {
        warn!(
            bytes = recovery.truncated_bytes,
            "dropped the torn tail of the write-ahead log (a write cut short by a crash)"
        );
    }
    let mut core: NodeCore<ReplyTx> = NodeCore::recover(
        config.clone(),
        &options.id,
        &options.core,
        &recovery.records,
    )
    .map_err(|e| log_error(e.to_string()))?;
    let me = core.me();
    info!(
        node = %options.id,
        partitions = core.partitions().count(),
        records = recovery.records.len(),
        "{LOG_RECOVERED}"
    );
    drop(recovery);

    let (inbox, mut rx) = mpsc::unbounded_channel();
    let counters = Arc::new(stats::Counters::default());
    let links: Vec<Option<PeerLink>> = (0..config.nodes.len() as NodeId)
        .map(|n| {
            (n != me).then(|| PeerLink::spawn(me, n, config.peer_addr(me, n), counters.clone()))
        })
        .collect();
    let (wal, mut wal_failed) = wal_thread::spawn(
        log,
        inbox.clone(),
        links.clone(),
        me,
        config.timing.wal_checkpoint_bytes,
        counters.clone(),
    );
    let stats_task = tokio::spawn(log_stats(counters.clone()));
    tokio::spawn(net::serve_peers(peers, inbox.clone(), config.nodes.len()));
    tokio::spawn(net::serve_clients(clients, inbox.clone()));
    let tick = std::time::Duration::from_millis(config.timing.tick_ms);
    let ticker = inbox.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if ticker.send(Input::Tick).is_err() {
                return;
            }
        }
    });

    info!(node = %options.id, "serving");
    let mut housekeeping = core.housekeeping();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            reason = &mut wal_failed => {
                let reason = reason.unwrap_or_else(|_| "the write-ahead log thread stopped".into());
                error!("stopping: {reason}");
                return Err(log_error(reason));
            }
            input = rx.recv() => {
                let Some(input) = input else { break };
                for (n, link) in links.iter().enumerate() {
                    if let Some(link) = link {
                        core.set_reachable(n as NodeId, link.is_up());
                    }
                }
                core.handle(input);
                for _ in 1..MAX_BATCH {
                    match rx.try_recv() {
                        Ok(input) => core.handle(input),
                        Err(_) => break,
                    }
                }
                let out = core.flush();
                housekeeping = log_housekeeping(housekeeping, core.housekeeping());
                for (to, msg) in out.send {
                    if let Some(Some(link)) = links.get(to as usize) {
                        link.send(msg);
                    }
                }
                for (reply, response) in out.replies {
                    let _ = reply.send(response);
                }
                if let Some(batch) = out.wal
                    && wal.send(batch).is_err()
                {
                    let reason = "the write-ahead log thread stopped".to_string();
                    error!("stopping: {reason}");
                    return Err(log_error(reason));
                }
            }
        }
    }
    stats_task.abort();
    info!("{}", counters.now().log_line());
    info!(node = %options.id, "{LOG_SHUTTING_DOWN}");
    drop(lock);
    Ok(())
}

/// Logs the node's costs every second when they changed (see [`NodeCosts`]).
async fn log_stats(counters: Arc<stats::Counters>) {
    let mut last = NodeCosts::default();
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        interval.tick().await;
        let now = counters.now();
        if now != last {
            info!("{}", now.log_line());
            last = now;
        }
    }
}

/// Log phrases, one line per event, that the bench counts in node logs to show that compaction
/// happened during a run (counts in memory die with a killed process; log lines do not).
pub const LOG_SNAPSHOT_TAKEN: &str = "took a snapshot";
pub const LOG_SNAPSHOT_INSTALLED: &str = "installed a snapshot from the leader";
pub const LOG_CHECKPOINT: &str = "checkpointed the write-ahead log";

/// Logs one line per snapshot taken or installed and per checkpoint since `before`.
fn log_housekeeping(before: Housekeeping, now: Housekeeping) -> Housekeeping {
    for _ in before.snapshots..now.snapshots {
        info!("{LOG_SNAPSHOT_TAKEN}");
    }
    for _ in before.installs..now.installs {
        info!("{LOG_SNAPSHOT_INSTALLED}");
    }
    for _ in before.checkpoints..now.checkpoints {
        info!("{LOG_CHECKPOINT}");
    }
    now
}

/// Holds an exclusive lock on the data directory for as long as the node runs, so two nodes can
/// never share one log.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, NodeError> {
    let path = dir.join("LOCK");
    let err = |message: String| NodeError::DataDir {
        path: dir.to_owned(),
        message,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| err(e.to_string()))?;
    file.try_lock()
        .map_err(|_| err("another kvnode is using it (LOCK is held)".into()))?;
    Ok(file)
}
