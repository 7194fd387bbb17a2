//! `kvnode --config cluster.toml --id n1 --data-dir DIR`: runs one node of the cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use kvnode::config::ClusterConfig;
use kvnode::node::{self, NodeOptions};

#[derive(Parser)]
#[command(
    version,
    about = "One node of a partitioned, replicated (Multi-Paxos) key-value store"
)]
struct Args {
    /// Cluster configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// This node's id in the configuration.
    #[arg(long)]
    id: String,
    /// Where this node keeps its write-ahead log.
    #[arg(long)]
    data_dir: PathBuf,
    /// Deliberate bug: serve GET from the local replica without confirming leadership.
    #[arg(long)]
    unsafe_read_local: bool,
    /// Deliberate bug: acknowledge PUT/DELETE once the leader has logged it, before a quorum.
    #[arg(long)]
    unsafe_early_ack: bool,
}

fn main() -> ExitCode {
    kvnode::logging::init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = ClusterConfig::load(&args.config)?;
    let me = config
        .node_index(&args.id)
        .with_context(|| format!("{}: no node named {:?}", args.config.display(), args.id))?;
    let addrs = config.node(me).clone();
    // One thread: the core is a single task anyway, and cross-thread wake-ups cost more than
    // the network tasks gain; durability waits happen on the WAL's own thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async move {
        let clients = tokio::net::TcpListener::bind(addrs.client)
            .await
            .with_context(|| format!("listen for clients on {}", addrs.client))?;
        let peers = tokio::net::TcpListener::bind(addrs.peer)
            .await
            .with_context(|| format!("listen for peers on {}", addrs.peer))?;
        let options = NodeOptions {
            id: args.id,
            data_dir: args.data_dir,
            unsafe_read_local: args.unsafe_read_local,
            unsafe_early_ack: args.unsafe_early_ack,
        };
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        node::run(config, options, clients, peers, shutdown).await?;
        Ok(())
    })
}
