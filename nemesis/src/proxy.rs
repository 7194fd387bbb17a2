//! The link layer: one TCP proxy per directed node-to-node link, owned by the bench, so that
//! network faults need neither root nor the node's cooperation.
//!
//! Node `from` reaches node `to` through [`LinkLayer::addr`]`(from, to)` instead of `to`'s peer
//! port (kvnode's `[[link]]` config entries). This relies on kvnode's connection discipline: a
//! node opens one outgoing connection per peer and sends only on it, so every byte through the
//! proxy of link (A, B) flows from A to B, and cutting that proxy cuts exactly A → B.
//!
//! Contract of the controls, all effective when they return:
//! - a cut link resets its live connections and every new one (the node sees a refused or reset
//!   connection, as when a peer is unreachable) until healed; bytes already accepted by the proxy
//!   but not yet delivered are dropped;
//! - a healed link accepts new connections; it does not reopen the old ones, the node reconnects;
//! - a delay holds each chunk from `from` back by the delay in force when the chunk arrived.
//!
//! Everything listens on 127.0.0.1. Dropping the [`LinkLayer`] closes its listeners and resets
//! every connection through it.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::NemesisError;

/// Bytes read at once from the sending side.
const CHUNK: usize = 16 << 10;
/// Chunks held back by a delay before the proxy stops reading (about 4 MiB per connection).
const IN_FLIGHT_CHUNKS: usize = 256;

/// A directed link to proxy: `from`'s traffic to `to`, whose peer port is `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub from: String,
    pub to: String,
    pub target: SocketAddr,
}

impl Link {
    /// Every directed link between distinct peers, given each node's name and peer address.
    pub fn full_mesh(peers: &[(String, SocketAddr)]) -> Vec<Link> {
        let mut links = Vec::new();
        for (from, _) in peers {
            for (to, target) in peers.iter().filter(|(to, _)| to != from) {
                links.push(Link {
                    from: from.clone(),
                    to: to.clone(),
                    target: *target,
                });
            }
        }
        links
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct LinkState {
    cut: bool,
    delay: Duration,
}

struct Proxy {
    addr: SocketAddr,
    /// Connection tasks watch this; its drop tells them to reset and exit.
    state: watch::Sender<LinkState>,
}

/// The running proxies. Invariant: exactly one proxy per `(from, to)` given to [`LinkLayer::start`].
pub struct LinkLayer {
    proxies: BTreeMap<(String, String), Proxy>,
    /// The accept loops; dropping the set aborts them, which closes the listeners.
    _accept: JoinSet<()>,
}

impl LinkLayer {
    /// Binds one listener per link on 127.0.0.1 (ephemeral port) and starts proxying, all links
    /// healed and without delay. Must be called inside a tokio runtime. A link given twice is an
    /// `InvalidInput` error.
    pub async fn start(links: Vec<Link>) -> io::Result<LinkLayer> {
        let mut proxies = BTreeMap::new();
        let mut accept = JoinSet::new();
        for link in links {
            let key = (link.from, link.to);
            if proxies.contains_key(&key) {
                let msg = format!("link from {} to {} given twice", key.0, key.1);
                return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
            }
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
            let addr = listener.local_addr()?;
            let (state, watch) = watch::channel(LinkState::default());
            accept.spawn(accept_loop(listener, link.target, watch));
            proxies.insert(key, Proxy { addr, state });
        }
        Ok(LinkLayer {
            proxies,
            _accept: accept,
        })
    }

    /// Where node `from` must connect to reach node `to`; `None` if there is no such link.
    pub fn addr(&self, from: &str, to: &str) -> Option<SocketAddr> {
        self.proxies.get(&key(from, to)).map(|p| p.addr)
    }

    /// Every link as `(from, to, proxy address)`, sorted by `(from, to)`.
    pub fn links(&self) -> impl Iterator<Item = (&str, &str, SocketAddr)> {
        self.proxies
            .iter()
            .map(|((from, to), p)| (from.as_str(), to.as_str(), p.addr))
    }

    /// The links cut now, sorted.
    pub fn cuts(&self) -> Vec<(String, String)> {
        let cut = |(_, p): &(&(String, String), &Proxy)| p.state.borrow().cut;
        self.proxies
            .iter()
            .filter(cut)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Drops traffic from `from` to `to`: resets live connections and refuses new ones.
    pub fn cut(&self, from: &str, to: &str) -> Result<(), NemesisError> {
        self.proxy(from, to)?.set(|s| s.cut = true);
        Ok(())
    }

    /// Lets traffic from `from` to `to` through again.
    pub fn heal(&self, from: &str, to: &str) -> Result<(), NemesisError> {
        self.proxy(from, to)?.set(|s| s.cut = false);
        Ok(())
    }

    /// Heals every link (delays stay).
    pub fn heal_all(&self) {
        for proxy in self.proxies.values() {
            proxy.set(|s| s.cut = false);
        }
    }

    /// Makes `cuts` exactly the set of cut links (every other link is healed). Fails, changing
    /// nothing, if a link is unknown.
    pub fn partition(&self, cuts: &[(String, String)]) -> Result<(), NemesisError> {
        for (from, to) in cuts {
            self.proxy(from, to)?;
        }
        for (k, proxy) in &self.proxies {
            proxy.set(|s| s.cut = cuts.contains(k));
        }
        Ok(())
    }

    /// Adds `delay` to traffic from `from` to `to` (zero removes it). Affects bytes that arrive
    /// from now on, on live and new connections.
    pub fn set_delay(&self, from: &str, to: &str, delay: Duration) -> Result<(), NemesisError> {
        self.proxy(from, to)?.set(|s| s.delay = delay);
        Ok(())
    }

    fn proxy(&self, from: &str, to: &str) -> Result<&Proxy, NemesisError> {
        self.proxies
            .get(&key(from, to))
            .ok_or_else(|| NemesisError::UnknownLink {
                from: from.to_string(),
                to: to.to_string(),
            })
    }
}

fn key(from: &str, to: &str) -> (String, String) {
    (from.to_string(), to.to_string())
}

impl Proxy {
    /// Applies `change`, waking the connection tasks only if the state really changed.
    fn set(&self, change: impl FnOnce(&mut LinkState)) {
        self.state.send_if_modified(|s| {
            let before = *s;
            change(s);
            *s != before
        });
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, state: watch::Receiver<LinkState>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if state.borrow().cut {
                    reset(stream);
                } else {
                    tokio::spawn(relay(stream, target, state.clone()));
                }
            }
            Err(e) => {
                // Out of file descriptors, most likely; do not spin.
                warn!(%target, "link proxy cannot accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Closes with RST rather than FIN, so the node notices at once, as with an unreachable peer.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Proxies one connection until both sides have closed, or until the link is cut or the layer
/// dropped (then both sides are reset).
async fn relay(mut inbound: TcpStream, target: SocketAddr, mut state: watch::Receiver<LinkState>) {
    let connected = tokio::select! {
        _ = state.wait_for(|s| s.cut) => None,
        result = TcpStream::connect(target) => result
            .inspect_err(|e| debug!(%target, "link proxy cannot reach its target: {e}"))
            .ok(),
    };
    let Some(mut outbound) = connected else {
        return reset(inbound);
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let finished = {
        let (in_read, mut in_write) = inbound.split();
        let (mut out_read, out_write) = outbound.split();
        let forward = forward(in_read, out_write, state.clone());
        let backward = async {
            let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
            let _ = in_write.shutdown().await;
        };
        tokio::select! {
            _ = async { tokio::join!(forward, backward) } => true,
            // Ok: the link was cut; Err: the layer was dropped.
            _ = state.wait_for(|s| s.cut) => false,
        }
    };
    if !finished {
        reset(inbound);
        reset(outbound);
    }
}

/// Copies `from` to `to`, holding each chunk back by the link's delay at the time it arrived.
async fn forward(mut from: ReadHalf<'_>, mut to: WriteHalf<'_>, state: watch::Receiver<LinkState>) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT_CHUNKS);
    let read = async move {
        let mut buf = vec![0; CHUNK];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            let due = Instant::now() + state.borrow().delay;
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let write = async move {
        while let Some((due, chunk)) = rx.recv().await {
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bounds every wait so that a broken proxy fails the test instead of hanging it.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// A peer that echoes every connection back.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// Links a → b and b → a, each to its own echo peer.
    async fn two_links() -> LinkLayer {
        let peers = [
            ("a".to_string(), echo_server().await),
            ("b".to_string(), echo_server().await),
        ];
        LinkLayer::start(Link::full_mesh(&peers)).await.unwrap()
    }

    async fn connect(layer: &LinkLayer, from: &str, to: &str) -> TcpStream {
        let addr = layer.addr(from, to).unwrap();
        TcpStream::connect(addr).await.unwrap()
    }

    /// Sends `ping` and reads the echo.
    async fn ping(stream: &mut TcpStream) -> io::Result<()> {
        stream.write_all(b"ping").await?;
        let mut buf = [0; 4];
        let read = tokio::time::timeout(PATIENCE, stream.read_exact(&mut buf)).await;
        read.expect("echo within the patience")?;
        assert_eq!(&buf, b"ping");
        Ok(())
    }

    /// Waits until the proxy closes `stream`; fails if any byte comes through instead.
    async fn assert_closed(stream: &mut TcpStream) {
        let mut buf = [0; 16];
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await;
        match read.expect("closed within the patience") {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("{n} bytes came through a cut link"),
        }
    }

    /// A fresh connection over a cut link: it may be accepted, but nothing comes back.
    async fn assert_refused(layer: &LinkLayer, from: &str, to: &str) {
        let addr = layer.addr(from, to).unwrap();
        if let Ok(mut stream) = TcpStream::connect(addr).await {
            let _ = stream.write_all(b"ping").await;
            assert_closed(&mut stream).await;
        }
    }

    #[tokio::test]
    async fn data_flows_through_a_link() {
        let layer = two_links().await;
        let mut stream = connect(&layer, "a", "b").await;
        ping(&mut stream).await.unwrap();
        ping(&mut stream).await.unwrap();
        assert_eq!(layer.links().count(), 2);
        assert!(layer.cuts().is_empty());
    }

    #[tokio::test]
    async fn cut_closes_live_connections_and_refuses_new_ones() {
        let layer = two_links().await;
        let mut live = connect(&layer, "a", "b").await;
        ping(&mut live).await.unwrap();

        layer.cut("a", "b").unwrap();
        assert_closed(&mut live).await;
        assert_refused(&layer, "a", "b").await;
        assert_eq!(layer.cuts(), [key("a", "b")]);
    }

    #[tokio::test]
    async fn heal_lets_new_connections_through_again() {
        let layer = two_links().await;
        layer.cut("a", "b").unwrap();
        assert_refused(&layer, "a", "b").await;

        layer.heal("a", "b").unwrap();
        ping(&mut connect(&layer, "a", "b").await).await.unwrap();
    }

    #[tokio::test]
    async fn cutting_one_direction_leaves_the_other_up() {
        let layer = two_links().await;
        let mut back = connect(&layer, "b", "a").await;
        layer.cut("a", "b").unwrap();
        ping(&mut back).await.unwrap();
        ping(&mut connect(&layer, "b", "a").await).await.unwrap();
        assert_refused(&layer, "a", "b").await;
    }

    #[tokio::test]
    async fn partition_cuts_exactly_the_given_links() {
        let layer = two_links().await;
        layer.cut("b", "a").unwrap();
        layer.partition(&[key("a", "b")]).unwrap();
        assert_eq!(layer.cuts(), [key("a", "b")]);
        ping(&mut connect(&layer, "b", "a").await).await.unwrap();
        assert_refused(&layer, "a", "b").await;

        layer.heal_all();
        assert!(layer.cuts().is_empty());
        ping(&mut connect(&layer, "a", "b").await).await.unwrap();
    }

    #[tokio::test]
    async fn unknown_links_are_errors_that_change_nothing() {
        let layer = two_links().await;
        assert!(layer.addr("a", "c").is_none());
        let err = layer
            .partition(&[key("a", "b"), key("a", "c")])
            .unwrap_err();
        assert_eq!(err.to_string(), "no link from a to c in the link layer");
        assert!(layer.cuts().is_empty());
        assert!(matches!(
            layer.cut("c", "a"),
            Err(NemesisError::UnknownLink { .. })
        ));
    }

    #[tokio::test]
    async fn delay_holds_traffic_back() {
        let layer = two_links().await;
        let delay = Duration::from_millis(200);
        layer.set_delay("a", "b", delay).unwrap();
        let mut stream = connect(&layer, "a", "b").await;
        let start = Instant::now();
        ping(&mut stream).await.unwrap();
        assert!(start.elapsed() >= delay, "{:?}", start.elapsed());
    }

    #[tokio::test]
    async fn dropping_the_layer_resets_its_connections() {
        let layer = two_links().await;
        let mut live = connect(&layer, "a", "b").await;
        ping(&mut live).await.unwrap();
        drop(layer);
        assert_closed(&mut live).await;
    }

    #[tokio::test]
    async fn a_link_given_twice_is_rejected() {
        let target = echo_server().await;
        let link = Link {
            from: "a".into(),
            to: "b".into(),
            target,
        };
        let err = LinkLayer::start(vec![link.clone(), link])
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
