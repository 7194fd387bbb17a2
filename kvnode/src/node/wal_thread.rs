//! The thread that makes records durable: group commit, then release of the messages that
//! waited for them.

use tokio::sync::mpsc;
use tracing::info;

use super::Input;
use super::net::PeerLink;
use crate::paxos::NodeId;
use crate::wal::{FileWal, LogStore};
use crate::wire::PeerMessage;

/// One batch from the core.
#[derive(Default)]
pub(crate) struct Job {
    pub(crate) records: Vec<Vec<u8>>,
    /// Messages that may leave only once `records` (and everything before) are durable.
    pub(crate) held: Vec<(NodeId, PeerMessage)>,
    /// Replace the whole log by these records (after writing everything queued before).
    pub(crate) checkpoint: Option<Vec<Vec<u8>>>,
}

impl Job {
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty() && self.held.is_empty() && self.checkpoint.is_none()
    }
}

pub(crate) fn spawn(
    mut log: FileWal,
    core: mpsc::UnboundedSender<Input>,
    peers: Vec<Option<PeerLink>>,
    me: NodeId,
    checkpoint_bytes: u64,
) -> mpsc::UnboundedSender<Job> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
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
                let mut jobs = vec![first];
                while let Ok(job) = rx.try_recv() {
                    jobs.push(job);
                }
                let result = (|| {
                    let mut held = Vec::new();
                    for job in jobs {
                        for r in &job.records {
                            log.append(r)?;
                        }
                        held.extend(job.held);
                        if let Some(records) = job.checkpoint {
                            log.sync()?;
                            release(std::mem::take(&mut held));
                            log.rewrite(&records)?;
                            info!(
                                bytes = log.size(),
                                "rewrote the write-ahead log as a checkpoint"
                            );
                            asked = false;
                        }
                    }
                    log.sync()?;
                    release(held);
                    Ok::<(), crate::wal::WalError>(())
                })();
                if let Err(e) = result {
                    let _ = core.send(Input::LogFailed(e.to_string()));
                    return;
                }
                let _ = core.send(Input::Synced);
                if !asked && log.size() > checkpoint_bytes {
                    asked = true;
                    let _ = core.send(Input::CheckpointWanted);
                }
            }
        })
        .expect("spawn the WAL thread");
    tx
}
