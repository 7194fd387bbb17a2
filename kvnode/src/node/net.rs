//! Connections: outgoing peer links, incoming peer and client connections. Each reads or writes
//! frames and hands messages to the node core over a channel; none knows the protocol.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, error, info, warn};

use super::Input;
use super::stats::Counters;
use crate::paxos::NodeId;
use crate::wire::{self, PeerMessage, Request, Response};

/// Most client connections served at once; more wait in the listen backlog.
const MAX_CLIENT_CONNECTIONS: usize = 4096;

/// Reads frames from `stream` and hands each decoded message to `each`; returns when the peer
/// closes, on an I/O error, or on a malformed frame (logged with the peer's address).
async fn read_frames<T: serde::de::DeserializeOwned>(
    stream: &mut tokio::net::tcp::OwnedReadHalf,
    peer: SocketAddr,
    what: &str,
    mut each: impl FnMut(T) -> bool,
) {
    let mut buf = Vec::with_capacity(64 << 10);
    let mut start = 0;
    loop {
        loop {
            match wire::decode::<T>(&buf[start..]) {
                Ok(Some((msg, used))) => {
                    start += used;
                    if !each(msg) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let len = buf.len() - start;
                    warn!(%peer, buffered = len, "closing {what} connection: {e}");
                    return;
                }
            }
        }
        buf.drain(..start);
        start = 0;
        if buf.capacity() - buf.len() < 16 << 10 {
            buf.reserve(64 << 10);
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                debug!(%peer, "{what} connection read error: {e}");
                return;
            }
        }
    }
}

/// Writes every message from `rx` to `stream`, coalescing whatever is queued into one write;
/// counts what it wrote in `counters` (peer links; not client connections).
async fn write_frames<T: serde::Serialize>(
    stream: &mut tokio::net::tcp::OwnedWriteHalf,
    rx: &mut mpsc::UnboundedReceiver<T>,
    counters: Option<&Counters>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(64 << 10);
    while let Some(msg) = rx.recv().await {
        buf.clear();
        encode_or_drop(&msg, &mut buf);
        let mut messages = 1;
        while buf.len() < 1 << 20 {
            match rx.try_recv() {
                Ok(msg) => {
                    encode_or_drop(&msg, &mut buf);
                    messages += 1;
                }
                Err(_) => break,
            }
        }
        stream.write_all(&buf).await?;
        if let Some(c) = counters {
            c.sent(messages, buf.len() as u64);
        }
    }
    Ok(())
}

/// Appends `msg` as a frame, or drops it with an error in the log if it is too large to send
/// (the link stays up for everything else).
fn encode_or_drop<T: serde::Serialize>(msg: &T, buf: &mut Vec<u8>) {
    if let Err(e) = wire::encode(msg, buf) {
        error!("not sending a message: {e}");
    }
}

/// The sending side of a link to one peer. Messages queued while the link is down are dropped
/// (the protocol retransmits what matters).
#[derive(Clone)]
pub(crate) struct PeerLink {
    tx: mpsc::UnboundedSender<PeerMessage>,
    up: Arc<AtomicBool>,
}

impl PeerLink {
    pub(crate) fn send(&self, msg: PeerMessage) {
        let _ = self.tx.send(msg);
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Starts the task that keeps a connection from `me` to `addr` open.
    pub(crate) fn spawn(
        me: NodeId,
        to: NodeId,
        addr: SocketAddr,
        counters: Arc<Counters>,
    ) -> PeerLink {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let up = Arc::new(AtomicBool::new(false));
        let link = PeerLink { tx, up: up.clone() };
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(20);
            loop {
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        info!(peer = to, %addr, "connected to peer");
                        backoff = Duration::from_millis(20);
                        up.store(true, Ordering::Relaxed);
                        let (_read, mut write) = stream.into_split();
                        let mut hello = Vec::new();
                        wire::encode(&PeerMessage::Hello { from: me }, &mut hello)
                            .expect("a hello fits in a frame");
                        let result = match write.write_all(&hello).await {
                            Ok(()) => write_frames(&mut write, &mut rx, Some(&counters)).await,
                            Err(e) => Err(e),
                        };
                        up.store(false, Ordering::Relaxed);
                        match result {
                            Ok(()) => return, // the node is shutting down
                            Err(e) => info!(peer = to, %addr, "peer link lost: {e}"),
                        }
                    }
                    Err(e) => debug!(peer = to, %addr, "cannot connect to peer: {e}"),
                }
                // Drop what queued up while the link was down, then retry.
                while rx.try_recv().is_ok() {}
                if rx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(100));
            }
        });
        link
    }
}

/// Accepts peer connections; each starts with `Hello` and then carries messages to the core.
pub(crate) async fn serve_peers(
    listener: TcpListener,
    core: mpsc::UnboundedSender<Input>,
    nodes: usize,
) {
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let core = core.clone();
        tokio::spawn(async move {
            let (mut read, _write) = stream.into_split();
            let mut from = None;
            read_frames::<PeerMessage>(&mut read, addr, "peer", |msg| match (from, msg) {
                (None, PeerMessage::Hello { from: f }) if (f as usize) < nodes => {
                    from = Some(f);
                    true
                }
                (Some(f), msg) => core.send(Input::Peer { from: f, msg }).is_ok(),
                (None, _) => {
                    warn!(peer = %addr, "closing peer connection: it did not introduce itself");
                    false
                }
            })
            .await;
        });
    }
}

/// Accepts client connections (at most [`MAX_CLIENT_CONNECTIONS`] at once).
pub(crate) async fn serve_clients(listener: TcpListener, core: mpsc::UnboundedSender<Input>) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENT_CONNECTIONS));
    loop {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let core = core.clone();
        tokio::spawn(async move {
            let (mut read, mut write) = stream.into_split();
            let (tx, mut rx) = mpsc::unbounded_channel::<Response>();
            let writer = tokio::spawn(async move {
                let _ = write_frames(&mut write, &mut rx, None).await;
            });
            read_frames::<Request>(&mut read, addr, "client", |req| {
                core.send(Input::Client {
                    request: req,
                    reply: tx.clone(),
                })
                .is_ok()
            })
            .await;
            drop(tx);
            let _ = writer.await;
            drop(permit);
        });
    }
}
