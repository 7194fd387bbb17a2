//! The `kvnode` command line, shared by the `kvnode` binary and `bench kvnode` (which lets the
//! bench run nodes from its own executable when no separate `kvnode` binary is at hand).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::ClusterConfig;
use crate::node::{self, NodeOptions};
use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "One node of a partitioned, replicated (Multi-Paxos or Zab) key-value store"
)]
pub struct Args {
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
    /// Deliberate bug: acknowledge PUT/DELETE once the leader's own log has it durably, before
    /// a quorum does.
    #[arg(long)]
    unsafe_early_ack: bool,
    /// Deliberate bug, with `protocol = "zab"` only: a new leader starts broadcasting without
    /// synchronising its followers (no DIFF, TRUNC or SNAP).
    #[arg(long)]
    unsafe_skip_sync: bool,
}

/// Parses `args` (without the program name) and runs the node; returns the exit code.
pub fn main_from<I: IntoIterator<Item = String>>(args: I) -> ExitCode {
    crate::logging::init();
    let args = match Args::try_parse_from(std::iter::once("kvnode".to_owned()).chain(args)) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
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
    if args.unsafe_skip_sync && config.protocol != crate::config::Protocol::Zab {
        anyhow::bail!(
            "--unsafe-skip-sync is a Zab bug, but {} says protocol = \"{}\"",
            args.config.display(),
            config.protocol
        );
    }
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
            core: node::CoreOptions {
                unsafe_read_local: args.unsafe_read_local,
                unsafe_early_ack: args.unsafe_early_ack,
                unsafe_skip_sync: args.unsafe_skip_sync,
            },
        };
        // Ctrl-C or SIGTERM (how the bench stops a cluster) end the node cleanly: it logs its
        // last costs line (`node::NodeCosts`) on the way out.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("install the SIGTERM handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        node::run(config, options, clients, peers, shutdown).await?;
        Ok(())
    })
}
