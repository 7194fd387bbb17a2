//! A node that finds its port taken at start-up (another process bound it between the bench's
//! choice and the node's bind) makes the start begin again with fresh ports, for every system
//! that listens on ports. The first port handed out here is one this test holds.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bench::system::kvnode::{Cluster, ClusterSpec, NodeBinary};
use bench::system::{PortPicker, System};

/// Hands out `taken` first, then fresh ports.
fn taken_first(taken: SocketAddr) -> PortPicker {
    let first = AtomicBool::new(true);
    Arc::new(move || {
        if first.swap(false, Ordering::SeqCst) {
            Ok(taken)
        } else {
            Ok(kvnode::ports::unused_loopback_addr()?)
        }
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_kvnode_whose_port_is_taken_is_started_again_on_fresh_ports() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = ClusterSpec {
        protocol: kvnode::config::Protocol::Paxos,
        nodes: 1,
        partitions: 1,
        replication: 1,
        timing: kvnode::config::Timing::default(),
        kvnode: NodeBinary::Bench(PathBuf::from(env!("CARGO_BIN_EXE_bench"))),
        node_args: Vec::new(),
        ports: taken_first(holder.local_addr().unwrap()),
    };
    runtime().block_on(async {
        let mut cluster = Cluster::start(spec, dir.path()).await.unwrap();
        cluster.shutdown().await;
    });
    let failed = dir.path().join("n1.log.failed-start-1");
    let log = std::fs::read_to_string(&failed).expect("the first start's log kept aside");
    assert!(kvnode::ports::is_addr_in_use(&log), "{log}");
}

#[test]
fn an_etcd_member_whose_port_is_taken_is_started_again_on_fresh_ports() {
    if bench::system::etcd::find_on_path("etcd").is_none() {
        eprintln!("skipped: no etcd on PATH (Debian: apt-get install etcd-server)");
        return;
    }
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let mut cluster = bench::system::etcd::Cluster::start(
            &bench::system::etcd::EtcdConfig::default(),
            1,
            1,
            dir.path(),
            taken_first(holder.local_addr().unwrap()),
        )
        .await
        .unwrap();
        cluster.shutdown().await;
    });
    let failed = dir.path().join("n1.log.failed-start-1");
    let log = std::fs::read_to_string(&failed).expect("the first start's log kept aside");
    assert!(
        log.to_ascii_lowercase().contains("address already in use"),
        "{log}"
    );
}
