//! `kvctl --config cluster.toml get K | put K V | delete K | cas K OLD NEW`; with no command, an
//! interactive prompt (`help` lists the commands).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kvnode::client::{Client, ClientError};
use kvnode::config::ClusterConfig;

#[derive(Parser)]
#[command(version, about = "Client for a kvnode cluster")]
struct Args {
    /// Cluster configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Node to talk to first (default: the first in the configuration).
    #[arg(long)]
    node: Option<String>,
    /// Give up on an operation after this long, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug, PartialEq, Eq)]
enum Command {
    /// Print the value of KEY.
    Get { key: String },
    /// Set KEY to VALUE.
    Put { key: String, value: String },
    /// Remove KEY.
    Delete { key: String },
    /// Set KEY to NEW if it holds OLD (with --absent: if it does not exist; omit OLD).
    Cas {
        key: String,
        #[arg(required_unless_present = "absent")]
        old: Option<String>,
        new: Option<String>,
        #[arg(long)]
        absent: bool,
    },
}

const HELP: &str = "commands:
  get KEY               print the value of KEY
  put KEY VALUE         set KEY to VALUE
  delete KEY            remove KEY
  cas KEY OLD NEW       set KEY to NEW if it holds OLD
  cas --absent KEY NEW  set KEY to NEW if it does not exist
  help                  this list
  quit                  leave (also Ctrl-D)";

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match ClusterConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kvctl: {e}");
            return ExitCode::from(2);
        }
    };
    let first = match &args.node {
        None => 0,
        Some(id) => match config.node_index(id) {
            Some(i) => i as usize,
            None => {
                eprintln!("kvctl: no node named {id:?} in {}", args.config.display());
                return ExitCode::from(2);
            }
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("start the async runtime");
    // A random session id: two kvctl runs must not share one.
    let id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 48;
    let client = Client::new(&config, first, id, args.timeout);
    runtime.block_on(async {
        match args.command {
            Some(cmd) => match run(&client, cmd).await {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("kvctl: {e}");
                    ExitCode::FAILURE
                }
            },
            None => interactive(&client).await,
        }
    })
}

async fn run(client: &Client, cmd: Command) -> Result<String, ClientError> {
    Ok(match cmd {
        Command::Get { key } => client.get(&key).await?.unwrap_or_else(|| "(absent)".into()),
        Command::Put { key, value } => {
            client.put(&key, &value).await?;
            "OK".into()
        }
        Command::Delete { key } => {
            client.delete(&key).await?;
            "OK".into()
        }
        Command::Cas {
            key,
            old,
            new,
            absent,
        } => {
            // With --absent the single value given is the new one.
            let (expected, new) = if absent {
                (None, old.or(new))
            } else {
                (old, new)
            };
            let Some(new) = new else {
                return Ok("usage: cas KEY OLD NEW | cas --absent KEY NEW".into());
            };
            match client.cas(&key, expected.as_deref(), &new).await? {
                Ok(()) => "OK".into(),
                Err(current) => format!(
                    "NOT SET: current value is {}",
                    current.unwrap_or_else(|| "(absent)".into())
                ),
            }
        }
    })
}

async fn interactive(client: &Client) -> ExitCode {
    println!("kvctl: connected lazily; type help for commands");
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        print!("> ");
        let _ = std::io::stdout().flush();
        let Some(Ok(line)) = lines.next() else {
            return ExitCode::SUCCESS;
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            None => continue,
            Some("help") => println!("{HELP}"),
            Some("quit" | "exit") => return ExitCode::SUCCESS,
            Some(_) => {
                let argv = std::iter::once("kvctl").chain(words.iter().copied());
                match Prompt::try_parse_from(argv) {
                    Ok(p) => match run(client, p.command).await {
                        Ok(out) => println!("{out}"),
                        Err(e) => println!("error: {e}"),
                    },
                    Err(_) => println!("unknown command {line:?}; type help"),
                }
            }
        }
    }
}

/// The prompt accepts the same commands as the command line.
#[derive(Parser)]
#[command(no_binary_name = false)]
struct Prompt {
    #[command(subcommand)]
    command: Command,
}
