//! Partitions for etcd without root: one HTTP-aware TCP proxy per member, in front of its peer
//! listener.
//!
//! etcd members dial one another at the peer URLs each member advertises, and every member dials
//! the same URL for member B, so the per-link proxies of [`crate::proxy`] cannot tell who is
//! talking. Here member B advertises its proxy ([`PeerProxies::addr`]) as its peer URL
//! (`--initial-advertise-peer-urls`), the proxy forwards to B's real listener
//! (`--listen-peer-urls`), and the proxy reads the head of every HTTP request to learn the sender
//! A and the directed link (from, to) that the request's payload travels on:
//!
//! - `GET /raft/stream/...` (etcd's `msgapp` and `message` streams): the response body carries
//!   B's raft messages to A for as long as the connection lives, so the link is B → A;
//! - anything else (`POST /raft` pipeline messages, `POST /raft/snapshot`, `/raft/probing`,
//!   `/version`, ...): the link is A → B.
//!
//! The sender is the member whose proxy address appears in the `X-PeerURLs` header (the sender's
//! advertised peer URLs, all of them proxies this set created), else the member whose id is in
//! `X-Server-From`, as taught by [`PeerProxies::learn_ids`]. etcd's rafthttp sets both on every
//! stream, pipeline and snapshot request. A TCP connection has one sender for its whole life, so
//! once one of its requests names the sender, the requests after it on the same connection are
//! that sender's too. Keep-alive connections are followed request by request (the proxy tracks
//! HTTP/1.1 framing, `Content-Length` and chunked bodies, on the way to the member), because etcd's
//! probes and pipeline share one connection pool: a connection opened by a header-less probe may
//! carry raft messages later, and is cut from its first request that names the sender.
//!
//! Contract of the controls, all effective when they return:
//! - a cut link resets, at once, every connection whose latest request travels on it, and resets
//!   every later request on it right after reading its head (the sender sees a reset connection,
//!   as when a peer is unreachable); a request's bytes already forwarded are not recalled;
//! - healing lets new requests through; reset connections stay reset, etcd redials;
//! - a request whose sender cannot be told (no usable header and nothing earlier on its
//!   connection: etcd's `/raft/probing`, `/version`, `/members` and lease forwarding, or bytes that
//!   are not HTTP) is let through whatever the cuts, and its connection is counted in
//!   [`PeerProxies::unidentified`].
//!
//! Exact and approximate: every raft message (stream, pipeline, snapshot) is cut exactly on its
//! link. Not cut are the unidentified requests above (liveness probes and version checks, but also
//! lease renewals forwarded to the leader) and the small messages against the payload's direction
//! (a `204` to a pipeline POST travels B → A even when only B → A is cut, and a stream's GET
//! request travels A → B even when only A → B is cut; neither carries a raft message).
//!
//! Everything listens on 127.0.0.1. Dropping the [`PeerProxies`] closes its listeners and resets
//! every connection through it.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::NemesisError;

/// Bytes read at once from either side.
const CHUNK: usize = 16 << 10;
/// Longest request head (request line and headers) or chunk-size line the proxy waits for.
const MAX_HEAD: usize = 64 << 10;

/// A directed link as member indices: `(from, to)`.
type Link = (usize, usize);

/// The running proxies. Invariant: member `i` is `names[i]`, its proxy listens at `addrs[i]`,
/// and names are distinct.
pub struct PeerProxies {
    names: Vec<String>,
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    /// The cut links; connection tasks watch it, and its drop tells them to reset and exit.
    cuts: watch::Sender<BTreeSet<Link>>,
    /// The accept loops; dropping the set aborts them, which closes the listeners.
    _accept: JoinSet<()>,
}

/// What every connection task needs to tell senders apart.
struct Shared {
    names: Vec<String>,
    /// Proxy address → member, for `X-PeerURLs`.
    by_proxy: HashMap<SocketAddr, usize>,
    /// Member id (as a number) → member, for `X-Server-From`.
    ids: RwLock<HashMap<u64, usize>>,
    unidentified: AtomicU64,
}

impl PeerProxies {
    /// One proxy per member, each on a fresh 127.0.0.1 port, forwarding to the member's real
    /// peer address. All links start healed. Must be called inside a tokio runtime.
    ///
    /// # Panics
    ///
    /// If two members share a name (a caller bug), or if a listener cannot be bound on
    /// 127.0.0.1 (no [`NemesisError`] variant describes an I/O failure yet).
    pub async fn start(members: Vec<(String, SocketAddr)>) -> Result<PeerProxies, NemesisError> {
        let mut names = Vec::new();
        let mut addrs = Vec::new();
        let mut listeners = Vec::new();
        for (name, _) in &members {
            assert!(!names.contains(name), "member {name} given twice");
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("binding a peer proxy on 127.0.0.1");
            let addr = listener
                .local_addr()
                .expect("a bound listener has an address");
            names.push(name.clone());
            addrs.push(addr);
            listeners.push(listener);
        }
        let shared = Arc::new(Shared {
            names: names.clone(),
            by_proxy: addrs.iter().enumerate().map(|(i, a)| (*a, i)).collect(),
            ids: RwLock::default(),
            unidentified: AtomicU64::new(0),
        });
        let (cuts, watch) = watch::channel(BTreeSet::new());
        let mut accept = JoinSet::new();
        for (member, (listener, (_, target))) in listeners.into_iter().zip(members).enumerate() {
            let proxy = Proxy {
                member,
                target,
                shared: shared.clone(),
                cuts: watch.clone(),
            };
            accept.spawn(proxy.accept_loop(listener));
        }
        Ok(PeerProxies {
            names,
            addrs,
            shared,
            cuts,
            _accept: accept,
        })
    }

    /// The address member `name` must advertise as its peer URL (its proxy).
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.index(name).map(|i| self.addrs[i])
    }

    /// Member ids (as etcd prints them: lowercase hex, no 0x) → names, for requests that carry
    /// only `X-Server-From`. Adds to what was learnt before; an id that is not hex or a name that
    /// is not a member is skipped with a warning.
    pub fn learn_ids(&self, ids: HashMap<String, String>) {
        let mut known = self.shared.ids.write().unwrap_or_else(|e| e.into_inner());
        for (id, name) in ids {
            match (parse_id(&id), self.index(&name)) {
                (Some(id), Some(member)) => {
                    known.insert(id, member);
                }
                _ => warn!(id, name, "peer proxy cannot learn this member id"),
            }
        }
    }

    /// Cuts exactly these directed links (from's messages to `to` are dropped); replaces any
    /// earlier cut. Fails, changing nothing, if a name is not a member.
    pub fn partition(&self, cuts: &[(String, String)]) -> Result<(), NemesisError> {
        let mut links = BTreeSet::new();
        for (from, to) in cuts {
            match (self.index(from), self.index(to)) {
                (Some(f), Some(t)) => links.insert((f, t)),
                _ => {
                    return Err(NemesisError::UnknownLink {
                        from: from.clone(),
                        to: to.clone(),
                    });
                }
            };
        }
        self.cuts.send_if_modified(|now| {
            let changed = *now != links;
            *now = links;
            changed
        });
        Ok(())
    }

    /// Heals every link.
    pub fn heal_all(&self) {
        self.cuts.send_if_modified(|now| {
            let changed = !now.is_empty();
            now.clear();
            changed
        });
    }

    /// Connections let through whose sender could not be told (for the run's notes).
    pub fn unidentified(&self) -> u64 {
        self.shared.unidentified.load(Ordering::Relaxed)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// etcd member ids are `u64`s printed in hex; parsing makes case and leading zeros irrelevant.
fn parse_id(text: &str) -> Option<u64> {
    u64::from_str_radix(text.trim(), 16).ok()
}

impl Shared {
    /// The member that sent a request with this head, if the head tells.
    fn sender(&self, head: &Head) -> Option<usize> {
        let by_urls = head.peer_urls.as_deref().and_then(|urls| {
            urls.split(',')
                .filter_map(url_addr)
                .find_map(|addr| self.by_proxy.get(&addr).copied())
        });
        by_urls.or_else(|| {
            let id = parse_id(head.server_from.as_deref()?)?;
            let ids = self.ids.read().unwrap_or_else(|e| e.into_inner());
            ids.get(&id).copied()
        })
    }
}

/// `127.0.0.1:2380` out of `http://127.0.0.1:2380` (or `https://...`, with or without a path).
fn url_addr(url: &str) -> Option<SocketAddr> {
    let url = url.trim();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next()?.parse().ok()
}

/// The proxy in front of one member.
struct Proxy {
    member: usize,
    /// The member's real peer listener.
    target: SocketAddr,
    shared: Arc<Shared>,
    cuts: watch::Receiver<BTreeSet<Link>>,
}

/// What one connection has learnt so far. Only the connection's task uses it (the mutex makes
/// the task `Send`; it is never contended).
#[derive(Default)]
struct ConnState(Mutex<Known>);

#[derive(Default)]
struct Known {
    sender: Option<usize>,
    /// The link of the latest request: the one a cut must look at.
    link: Option<Link>,
    /// Whether [`Shared::unidentified`] counts this connection already.
    counted: bool,
}

impl ConnState {
    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why the proxy stopped forwarding a connection early.
struct Cut;

impl Proxy {
    async fn accept_loop(self, listener: TcpListener) {
        let proxy = Arc::new(self);
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(proxy.clone().serve(stream));
                }
                Err(e) => {
                    // Out of file descriptors, most likely; do not spin.
                    warn!(target = %proxy.target, "peer proxy cannot accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Proxies one connection until both sides have closed, or until the link of its latest
    /// request is cut or the proxies dropped (then both sides are reset).
    async fn serve(self: Arc<Self>, mut inbound: TcpStream) {
        let conn = ConnState::default();
        let mut buf = Vec::new();
        let mut closed = self.cuts.clone();
        // The member is dialled only once the first request's head says it may be.
        let admitted = tokio::select! {
            admitted = self.first_head(&conn, &mut inbound, &mut buf) => admitted,
            () = dropped(&mut closed) => false,
        };
        if !admitted {
            return reset(inbound);
        }
        let Ok(mut outbound) = TcpStream::connect(self.target).await.inspect_err(
            |e| debug!(target = %self.target, "peer proxy cannot reach its member: {e}"),
        ) else {
            return reset(inbound);
        };
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        let mut cuts = self.cuts.clone();
        let cut = {
            let (in_read, mut in_write) = inbound.split();
            let (mut out_read, out_write) = outbound.split();
            let forward = self.forward(&conn, in_read, out_write, buf);
            let backward = async {
                let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
                let _ = in_write.shutdown().await;
                Ok::<(), Cut>(())
            };
            tokio::select! {
                done = async { tokio::try_join!(forward, backward) } => done.is_err(),
                () = cut_or_dropped(&conn, &mut cuts) => true,
            }
        };
        if cut {
            reset(inbound);
            reset(outbound);
        }
    }

    /// Reads until the first request head is complete and says whether it may pass. A peer that
    /// closes first is refused (there is nothing to forward); bytes that are not an HTTP request
    /// pass, to be forwarded unexamined.
    async fn first_head(
        &self,
        conn: &ConnState,
        inbound: &mut TcpStream,
        buf: &mut Vec<u8>,
    ) -> bool {
        let mut chunk = vec![0; CHUNK];
        loop {
            match parse_head(buf) {
                Ok(Some((head, _))) => return self.admit(conn, &head),
                Ok(None) => {}
                Err(_) => return true,
            }
            match inbound.read(&mut chunk).await {
                Ok(n @ 1..) => buf.extend_from_slice(&chunk[..n]),
                _ => return false,
            }
        }
    }

    /// Records what `head` says about the connection and whether its link is up now.
    fn admit(&self, conn: &ConnState, head: &Head) -> bool {
        let mut known = conn.known();
        if let Some(named) = self.shared.sender(head) {
            match known.sender {
                None => known.sender = Some(named),
                Some(known) if known != named => warn!(
                    first = self.shared.names[known],
                    now = self.shared.names[named],
                    "peer proxy saw two senders on one connection; keeping the first"
                ),
                Some(_) => {}
            }
        }
        let Some(sender) = known.sender else {
            self.count_unidentified(&mut known, &head.path);
            return true;
        };
        let link = if head.is_stream() {
            (self.member, sender)
        } else {
            (sender, self.member)
        };
        known.link = Some(link);
        let up = !self.cuts.borrow().contains(&link);
        if !up {
            let (from, to) = (&self.shared.names[link.0], &self.shared.names[link.1]);
            debug!(
                from,
                to,
                path = head.path,
                "peer proxy refused a request on a cut link"
            );
        }
        up
    }

    fn count_unidentified(&self, known: &mut Known, what: &str) {
        if !std::mem::replace(&mut known.counted, true) {
            self.shared.unidentified.fetch_add(1, Ordering::Relaxed);
            let to = &self.shared.names[self.member];
            debug!(
                to,
                what, "peer proxy let through a connection from an unknown sender"
            );
        }
    }

    /// Copies requests to the member, one by one, checking each head; `Err` when a request's
    /// link is cut.
    async fn forward(
        &self,
        conn: &ConnState,
        mut from: ReadHalf<'_>,
        mut to: WriteHalf<'_>,
        mut buf: Vec<u8>,
    ) -> Result<(), Cut> {
        let mut framer = Framer::default();
        let mut chunk = vec![0; CHUNK];
        loop {
            let forward = match framer.step(&buf) {
                Ok(Step::Head(head, len)) => {
                    if !self.admit(conn, &head) {
                        return Err(Cut);
                    }
                    len
                }
                Ok(Step::Body(len)) => len,
                Ok(Step::Need) => {
                    match from.read(&mut chunk).await {
                        Ok(n @ 1..) => buf.extend_from_slice(&chunk[..n]),
                        _ => {
                            // The sender is done (or gone): pass on what is left and the end.
                            let _ = to.write_all(&buf).await;
                            let _ = to.shutdown().await;
                            return Ok(());
                        }
                    }
                    continue;
                }
                Err(e) => {
                    let to_member = &self.shared.names[self.member];
                    warn!(
                        to = to_member,
                        "peer proxy forwards the rest unexamined: {e}"
                    );
                    {
                        let mut known = conn.known();
                        if known.sender.is_none() {
                            self.count_unidentified(&mut known, "bytes that are not HTTP");
                        }
                    }
                    if to.write_all(&buf).await.is_ok() {
                        let _ = tokio::io::copy(&mut from, &mut to).await;
                    }
                    let _ = to.shutdown().await;
                    return Ok(());
                }
            };
            if to.write_all(&buf[..forward]).await.is_err() {
                // The member closed; the backward copy sees it too.
                return Ok(());
            }
            buf.drain(..forward);
        }
    }
}

/// Returns when the connection's latest link is cut or the proxies are dropped.
async fn cut_or_dropped(conn: &ConnState, cuts: &mut watch::Receiver<BTreeSet<Link>>) {
    while cuts.changed().await.is_ok() {
        let link = conn.known().link;
        if link.is_some_and(|link| cuts.borrow().contains(&link)) {
            return;
        }
    }
}

/// Returns when the proxies are dropped.
async fn dropped(cuts: &mut watch::Receiver<BTreeSet<Link>>) {
    while cuts.changed().await.is_ok() {}
}

/// Closes with RST rather than FIN, so the member notices at once, as with an unreachable peer.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// What the proxy needs from a request head.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Head {
    method: String,
    path: String,
    server_from: Option<String>,
    peer_urls: Option<String>,
    body: BodyLength,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyLength {
    Fixed(u64),
    Chunked,
}

impl Head {
    /// etcd's streams (`/raft/stream/msgapp/<id>`, `/raft/stream/message/<id>`): the payload
    /// is the response.
    fn is_stream(&self) -> bool {
        self.method == "GET" && self.path.starts_with("/raft/stream/")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum FramingError {
    #[error("request head longer than {MAX_HEAD} bytes")]
    HeadTooLong,
    #[error("malformed request head: {0}")]
    BadHead(&'static str),
    #[error("malformed chunked body")]
    BadChunk,
}

/// Parses a request head at the start of `buf`: `Ok(None)` while it is incomplete, else the head
/// and its length including the blank line.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, FramingError> {
    let Some(end) = find(&buf[..buf.len().min(MAX_HEAD)], b"\r\n\r\n") else {
        return if buf.len() >= MAX_HEAD {
            Err(FramingError::HeadTooLong)
        } else {
            Ok(None)
        };
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| FramingError::BadHead("not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request = lines.next().unwrap_or_default();
    let mut parts = request.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(FramingError::BadHead("request line"));
    };
    if method.is_empty() || !version.starts_with("HTTP/1.") {
        return Err(FramingError::BadHead("request line"));
    }
    let mut head = Head {
        method: method.to_string(),
        path: path.to_string(),
        server_from: None,
        peer_urls: None,
        body: BodyLength::Fixed(0),
    };
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(FramingError::BadHead("header line"))?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "x-server-from" => head.server_from = Some(value.to_string()),
            "x-peerurls" => head.peer_urls = Some(value.to_string()),
            // Chunked wins over a length, as RFC 9112 says.
            "content-length" if head.body != BodyLength::Chunked => {
                let n = value
                    .parse()
                    .map_err(|_| FramingError::BadHead("content-length"))?;
                head.body = BodyLength::Fixed(n);
            }
            "transfer-encoding" if value.to_ascii_lowercase().ends_with("chunked") => {
                head.body = BodyLength::Chunked;
            }
            _ => {}
        }
    }
    Ok(Some((head, end + 4)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Where the framer is within the stream of requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Framing {
    #[default]
    Head,
    /// This many body bytes still to come.
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailer,
}

/// What the bytes at the start of the buffer are.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Too few bytes to tell; read more.
    Need,
    /// A request head of this length: check it, then forward it.
    Head(Head, usize),
    /// This many bytes of the current body (or chunk framing): forward them.
    Body(usize),
}

/// Splits the bytes a client sends into request heads and bodies (HTTP/1.1 framing), without
/// changing them. Pure: the caller feeds the unconsumed bytes and drops what each step covers.
#[derive(Debug, Default)]
struct Framer {
    state: Framing,
}

impl Framer {
    fn step(&mut self, buf: &[u8]) -> Result<Step, FramingError> {
        match self.state {
            Framing::Head => {
                let Some((head, len)) = parse_head(buf)? else {
                    return Ok(Step::Need);
                };
                self.state = match head.body {
                    BodyLength::Fixed(0) => Framing::Head,
                    BodyLength::Fixed(n) => Framing::Fixed(n),
                    BodyLength::Chunked => Framing::ChunkSize,
                };
                Ok(Step::Head(head, len))
            }
            Framing::Fixed(left) => Ok(self.body(buf, left, Framing::Fixed, Framing::Head)),
            Framing::ChunkData(left) => {
                Ok(self.body(buf, left, Framing::ChunkData, Framing::ChunkEnd))
            }
            Framing::ChunkSize => {
                let Some(line) = line(buf)? else {
                    return Ok(Step::Need);
                };
                let digits = buf[..line].split(|&b| b == b';').next().unwrap_or_default();
                let digits = std::str::from_utf8(digits).map_err(|_| FramingError::BadChunk)?;
                let size =
                    u64::from_str_radix(digits.trim(), 16).map_err(|_| FramingError::BadChunk)?;
                self.state = if size == 0 {
                    Framing::Trailer
                } else {
                    Framing::ChunkData(size)
                };
                Ok(Step::Body(line + 2))
            }
            Framing::ChunkEnd => match buf {
                [b'\r', b'\n', ..] => {
                    self.state = Framing::ChunkSize;
                    Ok(Step::Body(2))
                }
                [] | [b'\r'] => Ok(Step::Need),
                _ => Err(FramingError::BadChunk),
            },
            Framing::Trailer => {
                let Some(line) = line(buf)? else {
                    return Ok(Step::Need);
                };
                if line == 0 {
                    self.state = Framing::Head;
                }
                Ok(Step::Body(line + 2))
            }
        }
    }

    /// Up to `left` body bytes from `buf`, then `next`.
    fn body(&mut self, buf: &[u8], left: u64, more: fn(u64) -> Framing, next: Framing) -> Step {
        if buf.is_empty() {
            return Step::Need;
        }
        let n = left.min(buf.len() as u64);
        self.state = if n == left { next } else { more(left - n) };
        // n <= buf.len(), so it fits a usize.
        Step::Body(n as usize)
    }
}

/// The length of the first line of `buf` (without its CRLF), if complete.
fn line(buf: &[u8]) -> Result<Option<usize>, FramingError> {
    match find(&buf[..buf.len().min(MAX_HEAD)], b"\r\n") {
        Some(end) => Ok(Some(end)),
        None if buf.len() >= MAX_HEAD => Err(FramingError::HeadTooLong),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POST: &[u8] = b"POST /raft HTTP/1.1\r\nHost: b\r\nX-Server-From: 8e9e05c52164694d\r\n\
        X-PeerURLs: http://127.0.0.1:1,http://127.0.0.1:2\r\nContent-Length: 5\r\n\r\nhello";

    /// Runs the framer over `bytes` fed in pieces of `piece` bytes, as a connection would.
    fn frame(bytes: &[u8], piece: usize) -> Result<Vec<Step>, FramingError> {
        let mut framer = Framer::default();
        let mut steps = Vec::new();
        let mut buf = Vec::new();
        let mut rest = bytes;
        loop {
            match framer.step(&buf)? {
                Step::Need if rest.is_empty() => return Ok(steps),
                Step::Need => {
                    let n = piece.min(rest.len());
                    buf.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                }
                step => {
                    let n = match &step {
                        Step::Head(_, n) | Step::Body(n) => *n,
                        Step::Need => unreachable!(),
                    };
                    buf.drain(..n);
                    steps.push(step);
                }
            }
        }
    }

    fn heads(steps: &[Step]) -> Vec<(&str, &str)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Head(h, _) => Some((h.method.as_str(), h.path.as_str())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_head_is_parsed_with_its_sender_headers() {
        let (head, len) = parse_head(POST).unwrap().unwrap();
        assert_eq!(len, POST.len() - 5);
        assert_eq!(head.server_from.as_deref(), Some("8e9e05c52164694d"));
        assert_eq!(
            head.peer_urls.as_deref(),
            Some("http://127.0.0.1:1,http://127.0.0.1:2")
        );
        assert_eq!(head.body, BodyLength::Fixed(5));
        assert!(!head.is_stream());
    }

    #[test]
    fn an_incomplete_head_is_not_an_error() {
        assert_eq!(parse_head(&POST[..20]), Ok(None));
        assert_eq!(parse_head(b""), Ok(None));
    }

    #[test]
    fn bad_and_oversized_heads_are_errors() {
        assert!(parse_head(b"\x16\x03\x01 tls hello\r\n\r\n").is_err());
        assert!(parse_head(b"GET / SPDY/3\r\n\r\n").is_err());
        assert_eq!(
            parse_head(&vec![b'a'; MAX_HEAD]),
            Err(FramingError::HeadTooLong)
        );
    }

    #[test]
    fn keep_alive_requests_are_framed_one_by_one_in_any_pieces() {
        let stream = b"GET /raft/stream/msgapp/1 HTTP/1.1\r\nHost: b\r\n\r\n";
        let chunked = b"POST /raft/snapshot HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
            5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let probe = b"GET /raft/probing HTTP/1.1\r\n\r\n";
        let all = [POST, chunked, probe, stream].concat();
        for piece in [1, 2, 7, all.len()] {
            let steps = frame(&all, piece).unwrap();
            let expected = [
                ("POST", "/raft"),
                ("POST", "/raft/snapshot"),
                ("GET", "/raft/probing"),
                ("GET", "/raft/stream/msgapp/1"),
            ];
            assert_eq!(heads(&steps), expected, "pieces of {piece}");
            let covered: usize = steps
                .iter()
                .map(|s| match s {
                    Step::Head(_, n) | Step::Body(n) => *n,
                    Step::Need => 0,
                })
                .sum();
            assert_eq!(covered, all.len(), "pieces of {piece}");
        }
    }

    #[test]
    fn a_broken_chunk_is_an_error() {
        let bad = b"POST /raft/snapshot HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(frame(bad, 64), Err(FramingError::BadChunk));
        let no_crlf = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY";
        assert_eq!(frame(no_crlf, 64), Err(FramingError::BadChunk));
    }

    #[test]
    fn urls_give_their_socket_address() {
        let addr: SocketAddr = "127.0.0.1:2380".parse().unwrap();
        assert_eq!(url_addr("http://127.0.0.1:2380"), Some(addr));
        assert_eq!(url_addr(" https://127.0.0.1:2380/x"), Some(addr));
        assert_eq!(url_addr("http://localhost:2380"), None);
    }

    #[test]
    fn member_ids_parse_as_hex_numbers() {
        assert_eq!(parse_id("8e9e05c52164694d"), Some(0x8e9e05c52164694d));
        assert_eq!(parse_id("0A"), Some(10));
        assert_eq!(parse_id("n1"), None);
    }
}
