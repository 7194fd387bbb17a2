//! The thread that makes records durable: group commit, then release of the messages that
//! waited for them.

use tokio::sync::{mpsc, oneshot};
use tracing::info;

use std::sync::Arc;

use super::Input;
use super::core::WalBatch;
use super::net::PeerLink;
use super::stats::Counters;
use crate::paxos::NodeId;
use crate::wal::{FileWal, LogStore, WalError};
use crate::wire::PeerMessage;

/// Makes `batches` durable in order, group-committed: appends every record, syncs once, and only
/// then hands the held messages to `release`. A checkpoint inside a batch syncs what came
/// before it, releases those messages, and replaces the log by its records.
///
/// On error nothing more is released: what reached the disk is unknown, and the node must stop.
pub fn write_batches(
    log: &mut impl LogStore,
    batches: Vec<WalBatch>,
    mut release: impl FnMut(Vec<(NodeId, PeerMessage)>),
) -> Result<(), WalError> {
    let mut held = Vec::new();
    for batch in batches {
        for r in &batch.records {
            log.append(r)?;
        }
        held.extend(batch.held);
        if let Some(records) = batch.checkpoint {
            log.sync()?;
            release(std::mem::take(&mut held));
            log.rewrite(&records)?;
        }
    }
    log.sync()?;
    release(held);
    Ok(())
}

/// Starts the WAL thread. It reports `Synced` and `CheckpointWanted` to the core through `core`,
/// and a failure (after which it stops) through the returned receiver.
pub(crate) fn spawn(
    mut log: FileWal,
    core: mpsc::UnboundedSender<Input>,
    peers: Vec<Option<PeerLink>>,
    me: NodeId,
    checkpoint_bytes: u64,
    counters: Arc<Counters>,
) -> (mpsc::UnboundedSender<WalBatch>, oneshot::Receiver<String>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<WalBatch>();
    let (failed_tx, failed_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("wal".into())
        .spawn(move || {
            let release = |held: Vec<(NodeId, PeerMessage)>| {
                for (to, msg) in held {
                    if to == me {
                        let _ = core.send(Input::Peer { from: me, msg });
                    } else if let Some(Some(link)) = peers.get(to as usize) {
                        link.send(msg);
                    }
                }
            };
            let mut asked = false;
            while let Some(first) = rx.blocking_recv() {
                let mut batches = vec![first];
                while let Ok(batch) = rx.try_recv() {
                    batches.push(batch);
                }
                let last = batches.last().map_or(0, |b| b.seq);
                let checkpoints = batches.iter().filter(|b| b.checkpoint.is_some()).count();
                let checkpointed = checkpoints > 0;
                if let Err(e) = write_batches(&mut log, batches, release) {
                    let _ = failed_tx.send(e.to_string());
                    return;
                }
                // As `write_batches` syncs: once before each checkpoint, once at the end.
                counters.synced(1 + checkpoints as u64);
                if checkpointed {
                    info!(
                        bytes = log.size(),
                        "rewrote the write-ahead log as a checkpoint"
                    );
                    asked = false;
                }
                let _ = core.send(Input::Synced { batch: last });
                if !asked && log.size() > checkpoint_bytes {
                    asked = true;
                    let _ = core.send(Input::CheckpointWanted);
                }
            }
        })
        .expect("spawn the WAL thread");
    (tx, failed_rx)
}
