//! Real `kvnode` processes on 127.0.0.1, in a fresh temporary directory each: all operations
//! from any node, SIGKILL of nodes, recovery from the write-ahead log, malformed input.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kvnode::client::{Client, ClientError};
use kvnode::config::ClusterConfig;

struct Cluster {
    dir: tempfile::TempDir,
    config: ClusterConfig,
    config_path: PathBuf,
    nodes: Vec<Option<Child>>,
    runtime: tokio::runtime::Runtime,
    next_client: u64,
}

fn free_port() -> u16 {
    kvnode::ports::unused_loopback_addr()
        .expect("a free loopback port")
        .port()
}

impl Cluster {
    fn start(nodes: usize, partitions: u32, replication: usize) -> Cluster {
        Cluster::start_with(nodes, partitions, replication, 64, 256 << 20)
    }

    fn start_with(
        nodes: usize,
        partitions: u32,
        replication: usize,
        snapshot_every: u64,
        checkpoint_bytes: u64,
    ) -> Cluster {
        Cluster::start_protocol(
            nodes,
            partitions,
            replication,
            snapshot_every,
            checkpoint_bytes,
            "paxos",
        )
    }

    fn start_protocol(
        nodes: usize,
        partitions: u32,
        replication: usize,
        snapshot_every: u64,
        checkpoint_bytes: u64,
        protocol: &str,
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut text = format!(
            "partitions = {partitions}\nreplication = {replication}\nprotocol = \"{protocol}\"\n[timing]\ntick_ms = 10\nelection_ticks = 15\nheartbeat_ticks = 4\nsnapshot_every = {snapshot_every}\nwal_checkpoint_bytes = {checkpoint_bytes}\n"
        );
        for i in 1..=nodes {
            text += &format!(
                "[[node]]\nid = \"n{i}\"\nclient = \"127.0.0.1:{}\"\npeer = \"127.0.0.1:{}\"\n",
                free_port(),
                free_port()
            );
        }
        let config_path = dir.path().join("cluster.toml");
        std::fs::write(&config_path, &text).unwrap();
        let config = ClusterConfig::parse(&text).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let mut c = Cluster {
            dir,
            config,
            config_path,
            nodes: (0..nodes).map(|_| None).collect(),
            runtime,
            next_client: 1,
        };
        for i in 0..nodes {
            c.start_node(i);
        }
        c
    }

    fn start_node(&mut self, i: usize) {
        let id = format!("n{}", i + 1);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{id}.log")))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_kvnode"))
            .arg("--config")
            .arg(&self.config_path)
            .args(["--id", &id, "--data-dir"])
            .arg(self.dir.path().join(&id))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kvnode");
        self.nodes[i] = Some(child);
    }

    /// SIGKILL: no chance to flush or say goodbye.
    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn client(&mut self, node: usize) -> Client {
        self.next_client += 1;
        Client::new(
            &self.config,
            node,
            self.next_client,
            Duration::from_secs(10),
        )
    }

    fn logs(&self) -> String {
        (1..=self.nodes.len())
            .map(|i| {
                let log = std::fs::read_to_string(self.dir.path().join(format!("n{i}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!(
                    "--- n{i} (last lines) ---\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

fn exercise_all_operations(cluster: &mut Cluster) {
    for node in 0..cluster.nodes.len() {
        let c = cluster.client(node);
        let key = format!("key-from-n{node}");
        let result: Result<(), ClientError> = cluster.block_on(async {
            assert_eq!(c.get(&key).await?, None);
            c.put(&key, "a").await?;
            assert_eq!(c.get(&key).await?, Some("a".into()));
            assert_eq!(c.cas(&key, Some("b"), "c").await?, Err(Some("a".into())));
            assert_eq!(c.cas(&key, Some("a"), "c").await?, Ok(()));
            assert_eq!(c.get(&key).await?, Some("c".into()));
            c.delete(&key).await?;
            assert_eq!(c.get(&key).await?, None);
            assert_eq!(c.cas(&key, None, "d").await?, Ok(()));
            Ok(())
        });
        if let Err(e) = result {
            panic!("node {node}: {e}\n{}", cluster.logs());
        }
    }
}

#[test]
fn three_nodes_answer_all_four_operations_from_any_node() {
    let mut cluster = Cluster::start(3, 8, 3);
    exercise_all_operations(&mut cluster);
}

#[test]
fn zab_three_nodes_answer_all_four_operations_from_any_node() {
    let mut cluster = Cluster::start_protocol(3, 8, 3, 64, 256 << 20, "zab");
    exercise_all_operations(&mut cluster);
}

#[test]
fn zab_killing_every_node_loses_no_acknowledged_write_and_a_killed_node_is_replaced() {
    let mut cluster = Cluster::start_protocol(3, 4, 3, 64, 16 << 10, "zab");
    write_keys(&mut cluster, 0, "durable", 200);
    cluster.kill(0);
    write_keys(&mut cluster, 1, "after", 40);
    for i in 1..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.start_node(i);
    }
    assert_keys(&mut cluster, 2, "durable", 200);
    assert_keys(&mut cluster, 0, "after", 40);
}

#[test]
fn five_nodes_with_three_replicas_answer_from_any_node() {
    let mut cluster = Cluster::start(5, 5, 3);
    exercise_all_operations(&mut cluster);
}

fn write_keys(cluster: &mut Cluster, node: usize, prefix: &str, n: usize) {
    let c = cluster.client(node);
    let result: Result<(), ClientError> = cluster.block_on(async {
        for i in 0..n {
            c.put(&format!("{prefix}{i}"), &format!("value-{prefix}{i}"))
                .await?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("writing {prefix}*: {e}\n{}", cluster.logs());
    }
}

fn assert_keys(cluster: &mut Cluster, node: usize, prefix: &str, n: usize) {
    let c = cluster.client(node);
    for i in 0..n {
        let key = format!("{prefix}{i}");
        match cluster.block_on(c.get(&key)) {
            Ok(v) => assert_eq!(v, Some(format!("value-{key}")), "{key}\n{}", cluster.logs()),
            Err(e) => panic!("reading {key}: {e}\n{}", cluster.logs()),
        }
    }
}

#[test]
fn killing_a_node_keeps_every_partition_serving() {
    // With 8 partitions over 3 nodes, each node leads some partitions; SIGKILL one and every
    // partition must elect a new leader and serve again.
    let mut cluster = Cluster::start(3, 8, 3);
    write_keys(&mut cluster, 0, "before", 40);
    cluster.kill(0);
    // The client's 10 s deadline spans several election timeouts (150-300 ms each).
    write_keys(&mut cluster, 1, "after", 40);
    assert_keys(&mut cluster, 2, "before", 40);
    assert_keys(&mut cluster, 1, "after", 40);
}

#[test]
fn a_restarted_node_recovers_its_log_and_catches_up() {
    let mut cluster = Cluster::start(3, 4, 3);
    write_keys(&mut cluster, 0, "early", 100);
    cluster.kill(0);
    // Written while n1 is down: more than a snapshot interval, so n1 may need a snapshot.
    write_keys(&mut cluster, 1, "missed", 150);
    cluster.start_node(0);
    // Give n1 the data it missed, then take n2 away: n1 and n3 must hold everything.
    write_keys(&mut cluster, 0, "later", 20);
    cluster.kill(1);
    assert_keys(&mut cluster, 0, "early", 100);
    assert_keys(&mut cluster, 2, "missed", 150);
    assert_keys(&mut cluster, 0, "later", 20);
}

/// Issue 9, defect 3, with real processes: a follower restarted behind the leader's snapshot
/// (within the leader's ballot) must install it and catch up, or the group is one failure away
/// from losing its majority.
#[test]
fn a_follower_restarted_behind_the_snapshot_catches_up_and_keeps_the_majority() {
    follower_restarted_behind_the_snapshot_catches_up("paxos");
}

/// The same scenario with Zab: the restarted follower goes through discovery and
/// synchronisation again, and gets the leader's snapshot (SNAP) since it is behind it.
#[test]
fn zab_a_follower_restarted_behind_the_snapshot_catches_up_and_keeps_the_majority() {
    follower_restarted_behind_the_snapshot_catches_up("zab");
}

fn follower_restarted_behind_the_snapshot_catches_up(protocol: &str) {
    let mut cluster = Cluster::start_protocol(3, 1, 3, 16, 256 << 20, protocol);
    write_keys(&mut cluster, 0, "early", 10);
    cluster.kill(2);
    write_keys(&mut cluster, 0, "missed", 60);
    cluster.start_node(2);
    write_keys(&mut cluster, 0, "back", 5);
    // Each of the other two nodes in turn is killed, the follower first (killing the leader
    // would start a new ballot, whose sync hides the defect): the restarted node is needed for
    // every write, which it can only accept once it has caught up.
    let probe = cluster.client(0);
    cluster
        .block_on(probe.get("back0"))
        .expect("a read through the leader");
    let leader = probe
        .leader_of(0)
        .expect("the client learned the leader")
        .to_owned();
    let order = if leader == "n1" { [1, 0] } else { [0, 1] };
    for other in order {
        cluster.kill(other);
        let survivor = 1 - other;
        write_keys(
            &mut cluster,
            survivor,
            &format!("without-n{}-", other + 1),
            5,
        );
        assert_keys(&mut cluster, 2, "missed", 60);
        cluster.start_node(other);
    }
    let log = std::fs::read_to_string(cluster.dir.path().join("n3.log")).unwrap();
    assert!(
        log.contains(kvnode::node::LOG_SNAPSHOT_INSTALLED),
        "n3 caught up from a snapshot\n{}",
        cluster.logs()
    );
}

#[test]
fn killing_every_node_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3, 4, 3);
    write_keys(&mut cluster, 0, "durable", 300);
    for i in 0..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.start_node(i);
    }
    assert_keys(&mut cluster, 1, "durable", 300);
}

#[test]
fn log_checkpoints_keep_every_acknowledged_write_across_a_full_restart() {
    // A tiny threshold makes every node rewrite its log many times during the writes.
    let mut cluster = Cluster::start_with(3, 4, 3, 64, 16 << 10);
    write_keys(&mut cluster, 0, "cp", 400);
    for i in 0..3 {
        cluster.kill(i);
    }
    let logs = cluster.logs();
    for i in 0..3 {
        cluster.start_node(i);
    }
    assert_keys(&mut cluster, 2, "cp", 400);
    let n1 = std::fs::read_to_string(cluster.dir.path().join("n1.log")).unwrap();
    assert!(
        n1.contains("rewrote the write-ahead log as a checkpoint"),
        "no checkpoint happened:\n{logs}"
    );
}

#[test]
fn malformed_frames_close_that_connection_only() {
    use std::io::{Read, Write};
    let mut cluster = Cluster::start(3, 2, 3);
    write_keys(&mut cluster, 0, "ok", 1);
    let addr = cluster.config.nodes[0].client;
    for garbage in [
        &[0xff, 0xff, 0xff, 0xff, 1][..],       // length over the maximum
        &[0, 0, 0, 3, 99, 0, 0][..],            // unknown protocol version
        &[0, 0, 0, 4, 1, 0xff, 0xff, 0xff][..], // payload that decodes to nothing
    ] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(garbage).unwrap();
        let mut buf = [0u8; 16];
        // The node closes the connection (read returns 0) rather than hanging or crashing.
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    }
    assert_keys(&mut cluster, 0, "ok", 1);
    let log = std::fs::read_to_string(cluster.dir.path().join("n1.log")).unwrap();
    assert!(log.contains("closing client connection"), "{log}");
}

#[test]
fn a_bad_config_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "partitions = 8\nreplication = 5\n[[node]]\nid = \"n1\"\nclient = \"127.0.0.1:1\"\npeer = \"127.0.0.1:2\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kvnode"))
        .arg("--config")
        .arg(&path)
        .args(["--id", "n1", "--data-dir"])
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("replication: must be between 1 and the number of nodes (1), not 5"),
        "{err}"
    );
}

/// kvctl's exit code and everything it printed.
fn kvctl(cluster: &Cluster, args: &[&str], stdin: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvctl"))
        .arg("--config")
        .arg(&cluster.config_path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kvctl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn kvctl_runs_commands_and_an_interactive_prompt() {
    let cluster = Cluster::start(3, 4, 3);
    assert_eq!(
        kvctl(&cluster, &["put", "greeting", "hello"], ""),
        (Some(0), "OK\n".into())
    );
    assert_eq!(
        kvctl(&cluster, &["--node", "n3", "get", "greeting"], ""),
        (Some(0), "hello\n".into())
    );
    // A failed precondition is an answer, but not success: exit 3, apart from failures (1).
    let (code, text) = kvctl(&cluster, &["cas", "greeting", "bye", "x"], "");
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("NOT SET: current value is hello"), "{text}");
    assert_eq!(
        kvctl(&cluster, &["cas", "--absent", "fresh", "new"], ""),
        (Some(0), "OK\n".into())
    );
    let (code, text) = kvctl(
        &cluster,
        &[],
        "help\nput a 1\ncas a 1 2\nget a\ndelete a\nget a\nfrobnicate\nput a\n\
         put q \"good morning\"\nget q\ncas q 'good morning' 'good  night'\nget q\nquit\n",
    );
    assert_eq!(code, Some(0), "{text}");
    for expected in [
        "cas --absent KEY NEW",
        "OK",
        "2",
        "(absent)",
        "unknown command \"frobnicate\"",
        "usage: put KEY VALUE",
        "good morning",
        "good  night",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let (code, text) = kvctl(&cluster, &["--node", "n9", "get", "a"], "");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("no node named \"n9\""), "{text}");
    // Wrong argument counts print the command's usage and exit 2, before any node is asked.
    for (args, expected) in [
        (&["put", "k"][..], "put <KEY> <VALUE>"),
        (
            &["cas", "k", "old"][..],
            "usage: cas KEY OLD NEW | cas --absent KEY NEW",
        ),
    ] {
        let (code, text) = kvctl(&cluster, args, "");
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(text.contains(expected), "{args:?}: {text}");
    }
}
