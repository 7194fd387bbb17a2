//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Exit code for bad arguments or unreadable input.
pub const EXIT_USAGE: u8 = 254;

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    version,
    about = "kvlab: is this key-value store linearizable under faults?"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a history for linearizability (exit 0 valid, 1 invalid, 2 unknown).
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The history file.
    pub file: PathBuf,
    /// Input format: jsonl, porcupine-kv, jepsen-log or edn (recognised when omitted).
    #[arg(long, short)]
    pub format: Option<checker::Format>,
    /// EDN only: the model the history was recorded against (register or cas-register).
    #[arg(long, default_value = "cas-register")]
    pub model: checker::EdnModel,
    /// EDN only: the register's initial value (absent when not given). Integers are read as
    /// integers, anything else as a string.
    #[arg(long)]
    pub initial_value: Option<String>,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Give up (verdict unknown) on keys still open after this long, e.g. 30s or 2m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub time_limit: Option<Duration>,
    /// Memory budget of the search tables, MiB.
    #[arg(long, default_value_t = 4096)]
    pub memory_limit_mib: usize,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Search every key to the end even after one is found invalid.
    #[arg(long)]
    pub all_keys: bool,
}

/// Runs the command line; returns the process exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Check(args) => crate::check::run(&args),
    }
}
