//! The bench as the network of Maelstrom nodes: every message passes through [`Network`].
//!
//! A node's stdout is read line by line by a task of its own; each line is parsed just enough
//! to route it (`src`, `dest`, the body's `type`, `msg_id`, `in_reply_to`, `code`) and is
//! forwarded as the same bytes. Between nodes, the nemesis's faults apply: a cut link drops the
//! message; [`Trouble`] drops, delays (with jitter), duplicates or holds back messages so that
//! later ones overtake them. Messages between clients and nodes are never faulted (as in
//! Maelstrom, where partitions separate nodes), but a message to a node that is down is lost.
//! Every random choice comes from the run's seed.
//!
//! Every message is written to `messages.jsonl` once the run's time 0 is set
//! ([`Network::begin`]): `id`, `t_ns` (when the router got it, since time 0), `src`, `dest`,
//! `type`, `msg_id`, `in_reply_to`, `code` when present, `fate` (`delivered` after `delay_ns`,
//! or `dropped` with `why`: `partition`, `loss`, `down`, `starting` (a restarted node that has
//! not answered `init` yet), `client gone`, `unknown destination`),
//! and `duplicate_of` for a copy the nemesis made. A delivered message to a node that dies
//! before its delay is up is lost without another line.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nemesis::fault::Trouble;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reports::{MessageStats, NodeMessages};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Mixed into the run's seed for the network's own choices.
const NETWORK_STREAM: u64 = 0x6e65_7477_6f72_6b21;

/// What the router reads of a message.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    src: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    dest: std::borrow::Cow<'a, str>,
    body: Head<'a>,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    msg_id: Option<Value>,
    #[serde(default)]
    in_reply_to: Option<Value>,
    #[serde(default)]
    code: Option<Value>,
}

/// One line of `messages.jsonl`.
#[derive(Serialize)]
struct Record<'a> {
    id: u64,
    t_ns: u64,
    src: &'a str,
    dest: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg_id: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_reply_to: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a Value>,
    fate: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delay_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate_of: Option<u64>,
}

/// What becomes of one message.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    Deliver(Duration),
    Drop(&'static str),
}

/// Cut links and trouble, with the random stream that draws each message's fate.
struct Faults {
    /// `cut[from * n + to]`.
    cut: Vec<bool>,
    trouble: Option<Trouble>,
    rng: StdRng,
}

impl Faults {
    fn percent(&mut self, pct: u8) -> bool {
        pct > 0 && self.rng.random_range(0..100u8) < pct
    }

    fn millis(&mut self, up_to: u32) -> Duration {
        Duration::from_millis(if up_to == 0 {
            0
        } else {
            u64::from(self.rng.random_range(0..=up_to))
        })
    }

    /// The fate of a message from node `from` to node `to`, and of the copy the nemesis adds
    /// (if it adds one).
    fn decide(&mut self, n: usize, from: usize, to: usize) -> (Fate, Option<Fate>) {
        if self.cut[from * n + to] {
            return (Fate::Drop("partition"), None);
        }
        let Some(t) = self.trouble else {
            return (Fate::Deliver(Duration::ZERO), None);
        };
        let fate = |f: &mut Faults| {
            if f.percent(t.loss_pct) {
                return Fate::Drop("loss");
            }
            let mut delay = Duration::from_millis(u64::from(t.delay_ms)) + f.millis(t.jitter_ms);
            if f.percent(t.reorder_pct) {
                delay += f.millis(t.reorder_window_ms);
            }
            Fate::Deliver(delay)
        };
        let first = fate(self);
        let copy = self.percent(t.duplicate_pct).then(|| fate(self));
        (first, copy)
    }
}

/// `messages.jsonl` and the counts.
struct Log {
    out: Option<BufWriter<File>>,
    next_id: u64,
    stats: MessageStats,
    error: Option<std::io::Error>,
}

/// Where a message came from.
#[derive(Clone, Copy)]
enum From {
    Node(usize),
    Client,
}

/// The network of one cluster.
pub struct Network {
    names: Vec<String>,
    index: HashMap<String, usize>,
    value_size: usize,
    epoch: OnceLock<Instant>,
    /// Each node's stdin, while it runs.
    inputs: Vec<Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>>,
    /// Whether each node has answered its `init`: until then only the `init` reaches it, and
    /// what else is sent to it is dropped (`starting`), as if it were still down.
    ready: Vec<AtomicBool>,
    /// Destinations that are neither nodes nor clients already warned about (Maelstrom's own
    /// services, such as `lin-kv`, which kvlab does not provide).
    unknown: Mutex<std::collections::BTreeSet<String>>,
    clients: Mutex<HashMap<String, mpsc::UnboundedSender<Value>>>,
    faults: Mutex<Faults>,
    log: Mutex<Log>,
    /// Lines from nodes that were not messages, per node (only the first few are printed).
    malformed: Vec<AtomicU64>,
}

impl Network {
    pub fn new(
        names: Vec<String>,
        seed: u64,
        value_size: usize,
        log: &Path,
    ) -> anyhow::Result<Arc<Network>> {
        let n = names.len();
        let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
        Ok(Arc::new(Network {
            index: names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
            names,
            value_size,
            epoch: OnceLock::new(),
            inputs: (0..n).map(|_| Mutex::new(None)).collect(),
            ready: (0..n).map(|_| AtomicBool::new(false)).collect(),
            unknown: Mutex::new(std::collections::BTreeSet::new()),
            clients: Mutex::new(HashMap::new()),
            faults: Mutex::new(Faults {
                cut: vec![false; n * n],
                trouble: None,
                rng: StdRng::seed_from_u64(seed ^ NETWORK_STREAM),
            }),
            log: Mutex::new(Log {
                out: Some(BufWriter::with_capacity(1 << 20, out)),
                next_id: 0,
                stats: MessageStats::default(),
                error: None,
            }),
            malformed: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }))
    }

    pub fn value_size(&self) -> usize {
        self.value_size
    }

    /// Sets the run's time 0; messages are recorded from here on.
    pub fn begin(&self, start: Instant) {
        let _ = self.epoch.set(start);
    }

    /// Connects node `i`'s freshly started process: `init` (one message, no newline) is the
    /// first line on its stdin, nothing else reaches it until it answers `init_ok`, and its
    /// stdout is read and routed by a task that ends when the process does.
    pub fn attach(
        self: &Arc<Self>,
        i: usize,
        stdin: std::process::ChildStdin,
        stdout: std::process::ChildStdout,
        init: &str,
    ) -> anyhow::Result<()> {
        let stdin =
            tokio::process::ChildStdin::from_std(stdin).context("connect to the node's stdin")?;
        let stdout = tokio::process::ChildStdout::from_std(stdout)
            .context("connect to the node's stdout")?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.ready[i].store(false, Ordering::SeqCst);
        // Queued before anyone else can reach the node.
        let _ = tx.send(format!("{init}\n").into_bytes());
        *self.inputs[i].lock().expect("inputs lock") = Some(tx);
        tokio::spawn(feed(stdin, rx));
        let net = self.clone();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::with_capacity(1 << 16, stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => net.route(From::Node(i), &line),
                }
            }
        });
        Ok(())
    }

    /// Node `i` is down: what is sent to it from now on is dropped.
    pub fn detach(&self, i: usize) {
        self.ready[i].store(false, Ordering::SeqCst);
        *self.inputs[i].lock().expect("inputs lock") = None;
    }

    /// A client named `name`: what nodes send it arrives on the returned receiver (bodies).
    pub fn register_client(&self, name: &str) -> mpsc::UnboundedReceiver<Value> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.clients
            .lock()
            .expect("clients lock")
            .insert(name.to_owned(), tx);
        rx
    }

    pub fn unregister_client(&self, name: &str) {
        self.clients.lock().expect("clients lock").remove(name);
    }

    /// Sends a message from a client (one JSON object, no newline).
    pub fn send_from_client(self: &Arc<Self>, message: &str) {
        let mut line = Vec::with_capacity(message.len() + 1);
        line.extend_from_slice(message.as_bytes());
        self.route(From::Client, &line);
    }

    /// Cuts the links `(from, to)`; heals every other.
    pub fn cut(&self, cuts: &[(String, String)]) -> anyhow::Result<()> {
        let n = self.names.len();
        let mut cut = vec![false; n * n];
        for (from, to) in cuts {
            let (Some(&f), Some(&t)) = (self.index.get(from), self.index.get(to)) else {
                bail!("cannot cut {from} -> {to}: no such node");
            };
            cut[f * n + t] = true;
        }
        self.faults.lock().expect("faults lock").cut = cut;
        Ok(())
    }

    pub fn set_trouble(&self, trouble: Option<Trouble>) {
        self.faults.lock().expect("faults lock").trouble = trouble;
    }

    /// Heals every link and ends the trouble.
    pub fn heal(&self) {
        let mut f = self.faults.lock().expect("faults lock");
        f.cut.iter_mut().for_each(|c| *c = false);
        f.trouble = None;
    }

    /// Flushes `messages.jsonl`; returns the counts (per-operation figure left to the caller).
    pub fn finish(&self) -> anyhow::Result<MessageStats> {
        let mut log = self.log.lock().expect("log lock");
        if let Some(e) = log.error.take() {
            return Err(e).context("write messages.jsonl");
        }
        if let Some(out) = log.out.as_mut() {
            out.flush().context("write messages.jsonl")?;
        }
        Ok(log.stats.clone())
    }

    /// Routes one line from a node or a client.
    fn route(self: &Arc<Self>, from: From, line: &[u8]) {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        if text.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let envelope: Envelope = match serde_json::from_slice(text) {
            Ok(e) => e,
            Err(e) => {
                if let From::Node(i) = from {
                    self.malformed_line(i, text, &e);
                }
                return;
            }
        };
        // A node's messages are from that node, whatever its `src` says.
        let src: &str = match from {
            From::Node(i) => &self.names[i],
            From::Client => &envelope.src,
        };
        let head = &envelope.body;
        let kind = head.kind.as_deref().unwrap_or("");
        if let From::Node(i) = from
            && kind == "init_ok"
        {
            self.ready[i].store(true, Ordering::SeqCst);
        }
        let dest: &str = &envelope.dest;
        let dest_node = self.index.get(dest).copied();
        let (fate, copy) = match (from, dest_node) {
            (From::Node(i), Some(j)) => {
                self.faults
                    .lock()
                    .expect("faults lock")
                    .decide(self.names.len(), i, j)
            }
            (_, Some(_)) => (Fate::Deliver(Duration::ZERO), None),
            (_, None) if dest.starts_with('c') => (Fate::Deliver(Duration::ZERO), None),
            (_, None) => {
                self.warn_unknown(src, dest);
                (Fate::Drop("unknown destination"), None)
            }
        };
        let mut payload = Vec::with_capacity(text.len() + 1);
        payload.extend_from_slice(text);
        payload.push(b'\n');
        let twin = copy.map(|fate| (fate, payload.clone()));
        let first = self.deliver(dest_node, dest, payload, fate);
        let id = self.record(src, dest, kind, head, first, None, from);
        if let Some((fate, payload)) = twin {
            let copy = self.deliver(dest_node, dest, payload, fate);
            self.record(src, dest, kind, head, copy, id, from);
        }
    }

    /// Hands the message to its destination now or after its delay; returns its fate as
    /// recorded (a message to a node that is down, or to a client no longer there, is dropped).
    fn deliver(
        self: &Arc<Self>,
        node: Option<usize>,
        dest: &str,
        payload: Vec<u8>,
        fate: Fate,
    ) -> Fate {
        let Fate::Deliver(delay) = fate else {
            return fate;
        };
        match node {
            Some(j) => {
                let input = self.inputs[j].lock().expect("inputs lock").clone();
                let Some(input) = input else {
                    return Fate::Drop("down");
                };
                if !self.ready[j].load(Ordering::SeqCst) {
                    return Fate::Drop("starting");
                }
                if delay.is_zero() {
                    let _ = input.send(payload);
                } else {
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = input.send(payload);
                    });
                }
                fate
            }
            None => {
                let inbox = self
                    .clients
                    .lock()
                    .expect("clients lock")
                    .get(dest)
                    .cloned();
                let Some(inbox) = inbox else {
                    return Fate::Drop("client gone");
                };
                let body = serde_json::from_slice::<Value>(&payload)
                    .ok()
                    .and_then(|mut m| m.get_mut("body").map(Value::take));
                if let Some(body) = body {
                    let _ = inbox.send(body);
                }
                fate
            }
        }
    }

    /// Counts a message and writes its line; returns its id (`None` before time 0).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        src: &str,
        dest: &str,
        kind: &str,
        head: &Head<'_>,
        fate: Fate,
        duplicate_of: Option<u64>,
        from: From,
    ) -> Option<u64> {
        let epoch = self.epoch.get()?;
        let t_ns = epoch.elapsed().as_nanos() as u64;
        let mut guard = self.log.lock().expect("log lock");
        let log = &mut *guard;
        let id = log.next_id;
        log.next_id += 1;
        let s = &mut log.stats;
        s.total += 1;
        if duplicate_of.is_some() {
            s.duplicated += 1;
        } else if matches!(from, From::Node(_)) && self.index.contains_key(dest) {
            s.between_nodes += 1;
        }
        if duplicate_of.is_none() && self.index.contains_key(src) {
            node_entry(&mut s.by_node, src).sent += 1;
        }
        match fate {
            Fate::Deliver(_) => {
                s.delivered += 1;
                if self.index.contains_key(dest) {
                    node_entry(&mut s.by_node, dest).received += 1;
                }
            }
            Fate::Drop(_) => s.dropped += 1,
        }
        *s.by_type.entry(kind.to_owned()).or_default() += 1;
        let (fate_name, why, delay_ns) = match fate {
            Fate::Deliver(d) => ("delivered", None, Some(d.as_nanos() as u64)),
            Fate::Drop(why) => ("dropped", Some(why), None),
        };
        let record = Record {
            id,
            t_ns,
            src,
            dest,
            kind,
            msg_id: head.msg_id.as_ref(),
            in_reply_to: head.in_reply_to.as_ref(),
            code: head.code.as_ref(),
            fate: fate_name,
            why,
            delay_ns,
            duplicate_of,
        };
        if let Some(out) = log.out.as_mut() {
            let written = serde_json::to_writer(&mut *out, &record)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"));
            if let Err(e) = written
                && log.error.is_none()
            {
                log.error = Some(e);
            }
        }
        Some(id)
    }

    fn warn_unknown(&self, src: &str, dest: &str) {
        if self
            .unknown
            .lock()
            .expect("unknown lock")
            .insert(dest.to_owned())
        {
            let service = ["lin-kv", "seq-kv", "lww-kv", "lin-tso"].contains(&dest);
            eprintln!(
                "bench: {src} sent a message to {dest:?}, {}; such messages are dropped",
                if service {
                    "one of Maelstrom's services, which kvlab does not provide"
                } else {
                    "which is neither a node nor a client"
                }
            );
        }
    }

    fn malformed_line(&self, i: usize, text: &[u8], e: &serde_json::Error) {
        let seen = self.malformed[i].fetch_add(1, Ordering::Relaxed);
        if seen < 3 {
            let shown: String = String::from_utf8_lossy(text).chars().take(120).collect();
            eprintln!(
                "bench: {} wrote a line that is not a Maelstrom message ({e}), dropped: {shown}{}",
                self.names[i],
                if seen == 2 {
                    " (further such lines are dropped silently)"
                } else {
                    ""
                }
            );
        }
    }
}

fn node_entry<'a>(
    by_node: &'a mut BTreeMap<String, NodeMessages>,
    name: &str,
) -> &'a mut NodeMessages {
    if !by_node.contains_key(name) {
        by_node.insert(name.to_owned(), NodeMessages::default());
    }
    by_node.get_mut(name).expect("just inserted")
}

/// Writes what the router hands a node to its stdin, flushing whenever nothing more is queued.
async fn feed(stdin: tokio::process::ChildStdin, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut out = tokio::io::BufWriter::with_capacity(1 << 16, stdin);
    while let Some(line) = rx.recv().await {
        if out.write_all(&line).await.is_err() {
            return;
        }
        while let Ok(more) = rx.try_recv() {
            if out.write_all(&more).await.is_err() {
                return;
            }
        }
        if out.flush().await.is_err() {
            return;
        }
    }
}
