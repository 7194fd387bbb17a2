//! The etcd peer proxies through their public API: fake HTTP members (written here) that record
//! what reaches them, stream GETs and keep-alive POSTs shaped like etcd's rafthttp, and, if etcd
//! is installed at /usr/bin/etcd, a real three-member cluster with one member isolated and healed.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nemesis::NemesisError;
use nemesis::peer_proxy::PeerProxies;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};

/// Bounds every wait so that a broken proxy fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

/// A request as a fake member saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    body: String,
}

/// A fake etcd member: answers stream GETs (`/raft/stream/...`) with a chunked body that never
/// ends and carries whatever [`Member::push`] sends, and every other request with `204`, on
/// keep-alive connections.
struct Member {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    push: broadcast::Sender<String>,
}

impl Member {
    async fn start() -> Member {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (push, _) = broadcast::channel(16);
        let pusher = push.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_fake(stream, seen_tx.clone(), pusher.clone()));
            }
        });
        Member { addr, seen, push }
    }

    /// The next request that reached this member.
    async fn next(&mut self) -> Seen {
        let next = tokio::time::timeout(PATIENCE, self.seen.recv()).await;
        next.expect("a request within the patience")
            .expect("member runs")
    }

    /// Sends `text` down every open stream.
    fn push(&self, text: &str) {
        self.push.send(text.to_string()).unwrap();
    }
}

async fn serve_fake(
    mut stream: TcpStream,
    seen: mpsc::UnboundedSender<Seen>,
    push: broadcast::Sender<String>,
) {
    let mut buf = Vec::new();
    loop {
        let Some((head, body_at)) = read_head(&mut stream, &mut buf).await else {
            return;
        };
        let mut lines = head.lines();
        let mut request = lines.next().unwrap().split(' ');
        let (method, path) = (request.next().unwrap(), request.next().unwrap());
        let length: usize = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.trim().parse().unwrap());
        buf.drain(..body_at);
        while buf.len() < length {
            if read_more(&mut stream, &mut buf).await == 0 {
                return;
            }
        }
        let body = String::from_utf8(buf.drain(..length).collect()).unwrap();
        let is_stream = method == "GET" && path.starts_with("/raft/stream/");
        // Subscribe before reporting the request, so that a push after `next` reaches it.
        let mut pushed = push.subscribe();
        let request = Seen {
            method: method.into(),
            path: path.into(),
            body,
        };
        if seen.send(request).is_err() {
            return;
        }
        if !is_stream {
            if stream
                .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        let ok = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        if stream.write_all(ok).await.is_err() {
            return;
        }
        while let Ok(text) = pushed.recv().await {
            let chunk = format!("{:x}\r\n{text}\r\n", text.len());
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
        return;
    }
}

/// Reads until `buf` holds a complete head; returns it and where the body starts.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, usize)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).unwrap();
            return Some((head, end + 4));
        }
        if read_more(stream, buf).await == 0 {
            return None;
        }
    }
}

/// Reads once into `buf`; 0 on end or error.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0; 4096];
    let n = stream.read(&mut chunk).await.unwrap_or(0);
    buf.extend_from_slice(&chunk[..n]);
    n
}

/// How a request names its sender.
#[derive(Clone)]
enum Sender {
    /// `X-PeerURLs`, as etcd sends it: the sender's advertised peer URL (its proxy).
    Urls(SocketAddr),
    /// Only `X-Server-From`: the sender's member id.
    Id(&'static str),
    /// Nothing, as etcd's `/raft/probing`.
    Nobody,
}

fn head(method: &str, path: &str, from: &Sender, body: &str) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: member\r\n");
    match from {
        Sender::Urls(addr) => {
            let urls = format!("X-PeerURLs: http://127.0.0.1:9,http://{addr}\r\n");
            head.push_str(&urls);
        }
        Sender::Id(id) => head.push_str(&format!("X-Server-From: {id}\r\n")),
        Sender::Nobody => {}
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head + "\r\n" + body
}

/// Three fake members a, b and c behind their proxies.
struct Cluster {
    proxies: PeerProxies,
    members: HashMap<&'static str, Member>,
}

impl Cluster {
    async fn start() -> Cluster {
        let mut members = HashMap::new();
        let mut addrs = Vec::new();
        for name in ["a", "b", "c"] {
            let member = Member::start().await;
            addrs.push((name.to_string(), member.addr));
            members.insert(name, member);
        }
        let proxies = PeerProxies::start(addrs).await.unwrap();
        Cluster { proxies, members }
    }

    fn from(&self, name: &str) -> Sender {
        Sender::Urls(self.proxies.addr(name).unwrap())
    }

    fn member(&mut self, name: &str) -> &mut Member {
        self.members.get_mut(name).unwrap()
    }

    /// A new connection to `to`'s proxy, as any member would open it.
    async fn dial(&self, to: &str) -> TcpStream {
        TcpStream::connect(self.proxies.addr(to).unwrap())
            .await
            .unwrap()
    }

    fn cut(&self, links: &[(&str, &str)]) {
        let links: Vec<_> = links
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect();
        self.proxies.partition(&links).unwrap();
    }
}

/// Sends one request on `stream` and reads the response head; `Err` if the proxy closes or
/// resets the connection instead.
async fn request(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    from: &Sender,
    body: &str,
) -> Result<String, String> {
    let text = head(method, path, from, body);
    stream
        .write_all(text.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(PATIENCE, read_head(stream, &mut buf)).await;
    let head = read.expect("a response or a close within the patience");
    head.map(|(h, _)| h).ok_or_else(|| "closed".to_string())
}

async fn post(stream: &mut TcpStream, from: &Sender, body: &str) -> Result<String, String> {
    request(stream, "POST", "/raft", from, body).await
}

/// Opens a stream GET on a new connection to `to`, as `from` would; `None` if refused.
async fn open_stream(cluster: &mut Cluster, from: &Sender, to: &str) -> Option<TcpStream> {
    let mut stream = cluster.dial(to).await;
    let path = "/raft/stream/message/a1";
    match request(&mut stream, "GET", path, from, "").await {
        Ok(status) => {
            assert!(status.starts_with("HTTP/1.1 200"), "{status}");
            assert_eq!(cluster.member(to).next().await.path, path);
            Some(stream)
        }
        Err(_) => None,
    }
}

/// Reads from a stream until `text` has come through.
async fn expect_pushed(stream: &mut TcpStream, text: &str) {
    let mut buf = Vec::new();
    let read = async {
        while !String::from_utf8_lossy(&buf).contains(text) {
            assert!(read_more(stream, &mut buf).await > 0, "stream closed");
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("pushed text within the patience");
}

/// Waits until the proxy closes `stream`; fails if any byte comes through instead.
async fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0; 64];
    let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await;
    match read.expect("closed within the patience") {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("{n} bytes came through a cut link"),
    }
}

#[tokio::test]
async fn a_post_passes_when_healed_and_is_refused_while_its_link_is_cut() {
    let mut cluster = Cluster::start().await;
    let a = cluster.from("a");
    assert!(post(&mut cluster.dial("b").await, &a, "one").await.is_ok());
    let seen = cluster.member("b").next().await;
    assert_eq!((seen.method.as_str(), seen.body.as_str()), ("POST", "one"));

    cluster.cut(&[("a", "b")]);
    assert!(post(&mut cluster.dial("b").await, &a, "two").await.is_err());
    // The other direction and the other members are up.
    let b = cluster.from("b");
    assert!(
        post(&mut cluster.dial("a").await, &b, "b-to-a")
            .await
            .is_ok()
    );
    assert!(
        post(&mut cluster.dial("c").await, &a, "a-to-c")
            .await
            .is_ok()
    );

    cluster.proxies.heal_all();
    assert!(
        post(&mut cluster.dial("b").await, &a, "three")
            .await
            .is_ok()
    );
    // "two" never reached b: the next thing b saw is "three".
    assert_eq!(cluster.member("b").next().await.body, "three");
    assert_eq!(cluster.proxies.unidentified(), 0);
}

#[tokio::test]
async fn a_live_connection_is_reset_at_the_moment_of_the_cut() {
    let cluster = Cluster::start().await;
    let a = cluster.from("a");
    let mut live = cluster.dial("b").await;
    assert!(post(&mut live, &a, "one").await.is_ok());
    assert!(post(&mut live, &a, "two").await.is_ok());

    cluster.cut(&[("a", "b")]);
    // Nothing is sent: the proxy closes the idle keep-alive connection by itself.
    assert_closed(&mut live).await;
}

#[tokio::test]
async fn a_stream_is_reset_when_its_payload_direction_is_cut_not_its_request_direction() {
    let mut cluster = Cluster::start().await;
    let a = cluster.from("a");
    // a's stream GET to b carries b's messages to a.
    let mut stream = open_stream(&mut cluster, &a, "b").await.unwrap();
    cluster.member("b").push("m1");
    expect_pushed(&mut stream, "m1").await;

    cluster.cut(&[("a", "b")]);
    cluster.member("b").push("m2");
    expect_pushed(&mut stream, "m2").await;

    cluster.cut(&[("b", "a")]);
    assert_closed(&mut stream).await;
    assert!(open_stream(&mut cluster, &a, "b").await.is_none());
    // While b → a is cut, a's POSTs to b still pass.
    assert!(
        post(&mut cluster.dial("b").await, &a, "a-to-b")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn heal_lets_new_connections_through_again() {
    let mut cluster = Cluster::start().await;
    let a = cluster.from("a");
    cluster.cut(&[("a", "b"), ("b", "a")]);
    assert!(open_stream(&mut cluster, &a, "b").await.is_none());
    assert!(post(&mut cluster.dial("b").await, &a, "cut").await.is_err());

    cluster.proxies.heal_all();
    let mut stream = open_stream(&mut cluster, &a, "b").await.unwrap();
    cluster.member("b").push("healed");
    expect_pushed(&mut stream, "healed").await;
    assert!(post(&mut cluster.dial("b").await, &a, "up").await.is_ok());
    assert_eq!(cluster.member("b").next().await.body, "up");
}

#[tokio::test]
async fn a_sender_known_only_by_its_id_is_identified_once_the_id_is_learnt() {
    let mut cluster = Cluster::start().await;
    let a = Sender::Id("8e9e05c52164694d");
    cluster.cut(&[("a", "b")]);
    // Not yet learnt: the sender cannot be told, so the request passes and is counted.
    assert!(
        post(&mut cluster.dial("b").await, &a, "unknown")
            .await
            .is_ok()
    );
    assert_eq!(cluster.member("b").next().await.body, "unknown");
    assert_eq!(cluster.proxies.unidentified(), 1);

    let ids = HashMap::from([("8e9e05c52164694d".to_string(), "a".to_string())]);
    cluster.proxies.learn_ids(ids);
    assert!(
        post(&mut cluster.dial("b").await, &a, "known")
            .await
            .is_err()
    );
    assert!(post(&mut cluster.dial("c").await, &a, "to-c").await.is_ok());
    assert_eq!(cluster.member("c").next().await.body, "to-c");
    assert_eq!(cluster.proxies.unidentified(), 1);
}

#[tokio::test]
async fn an_unidentified_connection_passes_and_is_counted_once() {
    let mut cluster = Cluster::start().await;
    cluster.cut(&[("a", "b"), ("b", "a"), ("c", "b"), ("b", "c")]);
    let mut probe = cluster.dial("b").await;
    for _ in 0..2 {
        let answer = request(&mut probe, "GET", "/raft/probing", &Sender::Nobody, "").await;
        assert!(answer.is_ok());
        assert_eq!(cluster.member("b").next().await.path, "/raft/probing");
    }
    assert_eq!(cluster.proxies.unidentified(), 1);
}

/// etcd's probes and pipeline POSTs share a keep-alive pool, so a connection opened by a probe
/// (no sender headers) may carry raft messages later.
#[tokio::test]
async fn a_connection_that_names_its_sender_late_is_cut_from_then_on() {
    let mut cluster = Cluster::start().await;
    let a = cluster.from("a");
    let mut conn = cluster.dial("b").await;
    let probe = request(&mut conn, "GET", "/raft/probing", &Sender::Nobody, "").await;
    assert!(probe.is_ok());
    assert_eq!(cluster.member("b").next().await.path, "/raft/probing");

    cluster.cut(&[("a", "b")]);
    assert!(post(&mut conn, &a, "late").await.is_err());
    cluster.proxies.heal_all();
    assert!(
        post(&mut cluster.dial("b").await, &a, "after")
            .await
            .is_ok()
    );
    assert_eq!(cluster.member("b").next().await.body, "after");
}

#[tokio::test]
async fn partition_with_an_unknown_member_is_refused_and_changes_nothing() {
    let mut cluster = Cluster::start().await;
    let a = cluster.from("a");
    cluster.cut(&[("a", "b")]);
    let links = [("a", "c"), ("a", "zz")].map(|(f, t)| (f.to_string(), t.to_string()));
    let err = cluster.proxies.partition(&links).unwrap_err();
    assert!(matches!(err, NemesisError::UnknownLink { ref to, .. } if to == "zz"));
    assert!(cluster.proxies.addr("zz").is_none());
    assert!(post(&mut cluster.dial("b").await, &a, "cut").await.is_err());
    assert!(post(&mut cluster.dial("c").await, &a, "up").await.is_ok());
    assert_eq!(cluster.member("c").next().await.body, "up");
}

#[tokio::test]
async fn dropping_the_proxies_resets_their_connections() {
    let mut cluster = Cluster::start().await;
    let a = cluster.from("a");
    let mut stream = open_stream(&mut cluster, &a, "b").await.unwrap();
    let mut idle = cluster.dial("c").await;
    drop(cluster.proxies);
    assert_closed(&mut stream).await;
    assert_closed(&mut idle).await;
}

/// A real etcd cluster: three members on loopback, each advertising its proxy.
mod etcd {
    use super::*;

    use std::path::PathBuf;
    use std::time::{SystemTime, UNIX_EPOCH};

    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    use tokio::process::{Child, Command};

    const ETCD: &str = "/usr/bin/etcd";
    const NAMES: [&str; 3] = ["n1", "n2", "n3"];

    /// The members' processes; each is the leader of its own process group, which is killed on
    /// drop, so that a failing test leaves no etcd behind.
    struct Etcds {
        children: Vec<Child>,
        clients: Vec<SocketAddr>,
        _dir: TempDir,
    }

    /// A fresh directory under the system's temporary directory, removed on drop unless the test
    /// failed (then it is kept for the members' logs).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let name = format!("kvlab-peer-proxy-{}-{nanos}", std::process::id());
            let path = std::env::temp_dir().join(name);
            std::fs::create_dir(&path).unwrap();
            TempDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!("etcd data and logs kept in {}", self.0.display());
            } else {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    impl Etcds {
        /// Waits until every member answers `/health` with true; false if one exits first or
        /// they take too long.
        async fn healthy(&mut self) -> bool {
            let deadline = tokio::time::Instant::now() + PATIENCE * 3;
            let mut waiting = self.clients.clone();
            while tokio::time::Instant::now() < deadline {
                if self
                    .children
                    .iter_mut()
                    .any(|c| c.try_wait().ok().flatten().is_some())
                {
                    return false;
                }
                let mut still = Vec::new();
                for client in waiting {
                    let answer =
                        tokio::time::timeout(PATIENCE, http(client, "GET", "/health", "")).await;
                    if !matches!(answer, Ok(Ok((200, ref body))) if body.contains("\"true\"")) {
                        still.push(client);
                    }
                }
                if still.is_empty() {
                    return true;
                }
                waiting = still;
                // Polling a state the cluster reaches by itself.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    }

    impl Drop for Etcds {
        fn drop(&mut self) {
            for child in &self.children {
                if let Some(pid) = child.id() {
                    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                }
            }
        }
    }

    /// Listeners on `n` fresh 127.0.0.1 ports, to hold the ports until etcd is about to bind
    /// them (so that the proxies cannot get them meanwhile).
    async fn reserve_ports(n: usize) -> Vec<TcpListener> {
        let mut listeners = Vec::new();
        for _ in 0..n {
            listeners.push(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap());
        }
        listeners
    }

    /// Starts the members behind their proxies and waits until all are healthy. Another process
    /// (or test) may take a reserved port between its release and etcd's bind; then a member
    /// exits, and the cluster is started afresh on other ports.
    async fn start() -> (PeerProxies, Etcds) {
        for _ in 0..3 {
            let (proxies, mut etcds) = spawn().await;
            if etcds.healthy().await {
                return (proxies, etcds);
            }
        }
        panic!("no healthy etcd cluster in three attempts");
    }

    /// Starts the members, each advertising its proxy as its peer URL.
    async fn spawn() -> (PeerProxies, Etcds) {
        let reserved = reserve_ports(2 * NAMES.len()).await;
        let ports: Vec<_> = reserved.iter().map(|l| l.local_addr().unwrap()).collect();
        let (peers, clients) = ports.split_at(NAMES.len());
        let members = NAMES
            .iter()
            .map(|n| n.to_string())
            .zip(peers.iter().copied());
        let proxies = PeerProxies::start(members.collect()).await.unwrap();
        let advertised = |name: &str| format!("http://{}", proxies.addr(name).unwrap());
        let initial: Vec<_> = NAMES
            .iter()
            .map(|n| format!("{n}={}", advertised(n)))
            .collect();
        let dir = TempDir::new();
        drop(reserved);
        let mut children = Vec::new();
        for ((name, peer), client) in NAMES.iter().zip(peers).zip(clients) {
            let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
            let child = Command::new(ETCD)
                .args(["--name", name])
                .arg("--data-dir")
                .arg(dir.path().join(name))
                .args(["--listen-peer-urls", &format!("http://{peer}")])
                .args(["--initial-advertise-peer-urls", &advertised(name)])
                .args(["--listen-client-urls", &format!("http://{client}")])
                .args(["--advertise-client-urls", &format!("http://{client}")])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "peer-proxy-test"])
                .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            children.push(child);
        }
        let etcds = Etcds {
            children,
            clients: clients.to_vec(),
            _dir: dir,
        };
        (proxies, etcds)
    }

    /// One HTTP/1.1 request on a fresh connection; the status and the (de-chunked) body.
    async fn http(
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, String), String> {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response.split_once("\r\n\r\n").ok_or("no response head")?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("no status")?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok((status, body))
    }

    fn dechunk(mut body: &str) -> String {
        let mut out = String::new();
        while let Some((size, rest)) = body.split_once("\r\n") {
            let size =
                usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap_or(0);
            if size == 0 || rest.len() < size {
                break;
            }
            out.push_str(&rest[..size]);
            body = rest[size..].trim_start_matches("\r\n");
        }
        out
    }

    fn base64(bytes: &[u8]) -> String {
        const DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for group in bytes.chunks(3) {
            let n = group
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= group.len() {
                    out.push(DIGITS[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// Whether a put of `key` = `value` through `client` succeeded.
    async fn put(client: SocketAddr, key: &str, value: &str) -> bool {
        let body =
            serde_json::json!({"key": base64(key.as_bytes()), "value": base64(value.as_bytes())});
        let answer = http(client, "POST", "/v3/kv/put", &body.to_string()).await;
        matches!(answer, Ok((200, ref text)) if text.contains("\"header\""))
    }

    /// The value of `key` by a linearizable read through `client`, if the read succeeded and
    /// found it.
    async fn get(client: SocketAddr, key: &str) -> Option<String> {
        let body = serde_json::json!({"key": base64(key.as_bytes())});
        let (status, text) = http(client, "POST", "/v3/kv/range", &body.to_string())
            .await
            .ok()?;
        if status != 200 {
            return None;
        }
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        json["kvs"][0]["value"].as_str().map(str::to_string)
    }

    /// Tries `attempt` (each try bounded) until it returns true or `within` has passed.
    async fn eventually<F: Future<Output = bool>>(
        within: Duration,
        mut attempt: impl FnMut() -> F,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Ok(true) = tokio::time::timeout(Duration::from_secs(5), attempt()).await {
                return true;
            }
            // Polling a condition the cluster reaches by itself, not waiting for one to happen.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_isolated_etcd_member_cannot_write_and_catches_up_after_heal() {
        if !Path::new(ETCD).exists() {
            println!("skipped: {ETCD} is not installed");
            return;
        }
        let (proxies, etcds) = start().await;
        let (majority, isolated) = (etcds.clients[0], etcds.clients[2]);
        let mut cuts = Vec::new();
        for other in ["n1", "n2"] {
            cuts.push(("n3".to_string(), other.to_string()));
            cuts.push((other.to_string(), "n3".to_string()));
        }
        proxies.partition(&cuts).unwrap();

        let write = tokio::time::timeout(Duration::from_secs(3), put(isolated, "lost", "x")).await;
        assert!(
            !matches!(write, Ok(true)),
            "a write on the isolated member succeeded"
        );
        assert!(
            eventually(PATIENCE * 3, || put(majority, "k", "v")).await,
            "the majority side cannot write"
        );

        proxies.heal_all();
        let caught_up = || async { get(isolated, "k").await == Some(base64(b"v")) };
        assert!(
            eventually(PATIENCE * 3, caught_up).await,
            "the isolated member did not catch up after heal"
        );
        println!(
            "connections let through unidentified: {}",
            proxies.unidentified()
        );
    }
}
