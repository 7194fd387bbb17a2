//! The client library (used by `kvctl` and the bench).
//!
//! A [`Client`] is one session: it has a client id and numbers its operations, so the store
//! applies each operation at most once however often it is retried. Requests are pipelined over
//! one connection per node; any node accepts any request.
//!
//! Every error says whether the operation definitely did not happen ([`ClientError::Failed`]) or
//! might have ([`ClientError::Unknown`]), which is what a history needs. Failures that are safe
//! to retry (no leader yet, a node unreachable) are retried, with the same sequence number, on
//! the next node until the deadline. Once an attempt's fate is unknown, a later failure can no
//! longer be reported as "did not happen": the earlier attempt may still take effect.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::command::{Op, Reply};
use crate::config::ClusterConfig;
use crate::wire::{self, Outcome, Request, Response};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The operation definitely did not take effect.
    #[error("failed: {0}")]
    Failed(String),
    /// The operation may or may not have taken effect.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// One pipelined connection to a node.
struct Conn {
    tx: mpsc::UnboundedSender<Request>,
    waiters: Waiters,
    /// Cleared when the reading side ends; the connection is then replaced.
    alive: Arc<AtomicBool>,
}

struct Node {
    name: String,
    addr: SocketAddr,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
}

pub struct Client {
    config: ClusterConfig,
    nodes: Vec<Node>,
    /// Partition -> node that led it at the last answer; requests go there first.
    leaders: Mutex<HashMap<u32, usize>>,
    /// Follow leader hints (false: always start at `first`, as a Jepsen client bound to a node).
    follow_leaders: bool,
    /// Index of the node tried first.
    first: usize,
    id: u64,
    seq: AtomicU64,
    next_request: AtomicU64,
    timeout: Duration,
    /// One attempt's patience: a node that does not answer (say, it forwarded to a leader that
    /// just died) is given up on and the operation retried elsewhere with the same sequence
    /// number, which the store deduplicates.
    attempt_timeout: Duration,
}

impl Client {
    /// A session against the cluster, sending first to node `first` (an index into the
    /// configuration's nodes). `id` must be unique among the cluster's clients.
    pub fn new(config: &ClusterConfig, first: usize, id: u64, timeout: Duration) -> Client {
        Client {
            config: config.clone(),
            leaders: Mutex::default(),
            follow_leaders: true,
            nodes: config
                .nodes
                .iter()
                .map(|n| Node {
                    name: n.id.clone(),
                    addr: n.client,
                    conn: tokio::sync::Mutex::new(None),
                })
                .collect(),
            first: first % config.nodes.len(),
            id,
            seq: AtomicU64::new(0),
            next_request: AtomicU64::new(0),
            timeout,
            attempt_timeout: (timeout / 4)
                .clamp(Duration::from_millis(100), Duration::from_secs(1)),
        }
    }

    /// Always sends to the first node (others only when it fails), ignoring leader hints: the
    /// node then forwards, as for a client bound to one node.
    pub fn sticky(mut self) -> Client {
        self.follow_leaders = false;
        self
    }

    /// The node that led `partition` at this client's last answer from it.
    pub fn leader_of(&self, partition: u32) -> Option<&str> {
        let i = *self.leaders.lock().expect("leaders lock").get(&partition)?;
        Some(&self.nodes[i].name)
    }

    pub async fn get(&self, key: &str) -> Result<Option<String>, ClientError> {
        match self.execute(Op::Get { key: key.into() }).await? {
            Reply::Value(v) => Ok(v),
            other => Err(ClientError::Unknown(format!("unexpected reply {other:?}"))),
        }
    }

    pub async fn put(&self, key: &str, value: &str) -> Result<(), ClientError> {
        self.execute(Op::Put {
            key: key.into(),
            value: value.into(),
        })
        .await
        .map(drop)
    }

    pub async fn delete(&self, key: &str) -> Result<(), ClientError> {
        self.execute(Op::Delete { key: key.into() }).await.map(drop)
    }

    /// Compare-and-set: `Ok(Ok(()))` if it swapped, `Ok(Err(current))` if the key did not
    /// hold `expected` (nothing changed).
    pub async fn cas(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
    ) -> Result<Result<(), Option<String>>, ClientError> {
        match self
            .execute(Op::Cas {
                key: key.into(),
                expected: expected.map(Into::into),
                new: new.into(),
            })
            .await?
        {
            Reply::Swapped => Ok(Ok(())),
            Reply::Mismatch { current } => Ok(Err(current)),
            other => Err(ClientError::Unknown(format!("unexpected reply {other:?}"))),
        }
    }

    /// Runs one operation to its end (or the client's timeout). A session runs one operation
    /// at a time; concurrent operations on one `Client` may see [`Reply::Stale`] as a failure.
    pub async fn execute(&self, op: Op) -> Result<Reply, ClientError> {
        if op.payload_len() > wire::MAX_OP_BYTES {
            return Err(ClientError::Failed(format!(
                "key and value of {} bytes exceed the limit of {} bytes",
                op.payload_len(),
                wire::MAX_OP_BYTES
            )));
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let deadline = Instant::now() + self.timeout;
        let mut maybe_happened = false;
        let mut last_failure = String::from("no node could be reached");
        let mut backoff = Duration::from_millis(5);
        let partition = self.config.partition_of(op.key());
        let start = self
            .leaders
            .lock()
            .expect("leaders lock")
            .get(&partition)
            .copied();
        let start = start.unwrap_or(self.first);
        for attempt in 0.. {
            let node = &self.nodes[(start + attempt) % self.nodes.len()];
            let request = Request {
                id: self.next_request.fetch_add(1, Ordering::Relaxed),
                client: self.id,
                seq,
                op: op.clone(),
            };
            let attempt_deadline = deadline.min(Instant::now() + self.attempt_timeout);
            let answer = self.attempt(node, request, attempt_deadline).await;
            if let Ok(Response {
                leader: Some(l), ..
            }) = &answer
                && (*l as usize) < self.nodes.len()
            {
                self.leaders
                    .lock()
                    .expect("leaders lock")
                    .insert(partition, *l as usize);
            }
            match answer.map(|r| r.result) {
                Ok(Outcome::Ok(Reply::Stale)) => {
                    let why = "the store saw a newer request from this session".to_owned();
                    // An earlier attempt of ours may be what made it stale.
                    return Err(if maybe_happened {
                        ClientError::Unknown(why)
                    } else {
                        ClientError::Failed(why)
                    });
                }
                Ok(Outcome::Ok(reply)) => return Ok(reply),
                Ok(Outcome::Unknown(why)) => {
                    maybe_happened = true;
                    last_failure = format!("{}: {why}", node.name);
                }
                Ok(Outcome::Failed(why)) | Err(why) => {
                    last_failure = format!("{}: {why}", node.name)
                }
            }
            if Instant::now() + backoff >= deadline {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
        if maybe_happened {
            Err(ClientError::Unknown(last_failure))
        } else {
            Err(ClientError::Failed(last_failure))
        }
    }

    /// One attempt on one node. `Err` means the request was never sent.
    async fn attempt(
        &self,
        node: &Node,
        request: Request,
        deadline: Instant,
    ) -> Result<Response, String> {
        let conn = self.connection(node, deadline).await?;
        let (tx, rx) = oneshot::channel();
        let id = request.id;
        conn.waiters.lock().expect("waiters lock").insert(id, tx);
        if !conn.alive.load(Ordering::Relaxed) || conn.tx.send(request).is_err() {
            conn.waiters.lock().expect("waiters lock").remove(&id);
            *node.conn.lock().await = None;
            return Err("connection closed".into());
        }
        let unknown = |why: String| Response {
            id,
            result: Outcome::Unknown(why),
            leader: None,
        };
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Ok(unknown("connection lost before the answer".into())),
            Err(_) => {
                conn.waiters.lock().expect("waiters lock").remove(&id);
                Ok(unknown(format!(
                    "no answer within {:?}",
                    self.attempt_timeout
                )))
            }
        }
    }

    async fn connection(&self, node: &Node, deadline: Instant) -> Result<Arc<Conn>, String> {
        let mut slot = node.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && c.alive.load(Ordering::Relaxed)
        {
            return Ok(c.clone());
        }
        let stream = tokio::time::timeout_at(deadline, TcpStream::connect(node.addr))
            .await
            .map_err(|_| format!("cannot connect to {} in time", node.addr))?
            .map_err(|e| format!("cannot connect to {}: {e}", node.addr))?;
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(spawn_conn(stream));
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

fn spawn_conn(stream: TcpStream) -> Conn {
    let (mut read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Request>();
    let waiters: Waiters = Arc::default();
    tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Some(req) = rx.recv().await {
            buf.clear();
            // `execute` refuses operations too large for a frame, so none is dropped here.
            let _ = wire::encode(&req, &mut buf);
            while let Ok(req) = rx.try_recv() {
                let _ = wire::encode(&req, &mut buf);
            }
            if write.write_all(&buf).await.is_err() {
                return;
            }
        }
    });
    let w = waiters.clone();
    let alive = Arc::new(AtomicBool::new(true));
    let up = alive.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::with_capacity(64 << 10);
        'read: loop {
            match read.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let mut start = 0;
            loop {
                match wire::decode::<Response>(&buf[start..]) {
                    Ok(Some((resp, used))) => {
                        start += used;
                        if let Some(tx) = w.lock().expect("waiters lock").remove(&resp.id) {
                            let _ = tx.send(resp);
                        }
                    }
                    Ok(None) => break,
                    Err(_) => break 'read,
                }
            }
            buf.drain(..start);
        }
        // Dropping the waiters tells every request in flight that its answer is lost.
        up.store(false, Ordering::Relaxed);
        w.lock().expect("waiters lock").clear();
    });
    Conn { tx, waiters, alive }
}
