//! The client's command line, shared by the `kvctl` binary and `bench kvctl`.
//!
//! `kvctl --config cluster.toml get K | put K V | delete K | cas K OLD NEW | cas --absent K NEW`;
//! with no command, an interactive prompt (`help` lists the commands; a value with spaces is
//! quoted as in a shell: `put greeting "hello world"`).
//!
//! Exit status: 0 done, 1 the operation failed or its outcome is unknown, 2 bad arguments or
//! configuration, 3 a CAS found another value and set nothing ([`EXIT_NOT_SET`]).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::client::{Client, ClientError};
use crate::config::ClusterConfig;
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

/// The operation failed, or its outcome is unknown (it may still take effect).
pub const EXIT_FAILED: u8 = 1;
/// Bad arguments or configuration (clap exits with 2 for the errors it finds, too).
pub const EXIT_USAGE: u8 = 2;
/// A CAS whose precondition failed: the store answered, and the key was not set. Not 1, so that
/// a script can tell "someone else changed it" from "the cluster did not answer".
pub const EXIT_NOT_SET: u8 = 3;

const EXIT_STATUS: &str = "Exit status: 0 done; 1 the operation failed or its outcome is unknown \
(a timeout: it may still take effect); 2 bad arguments or configuration; 3 cas found another \
value and set nothing (NOT SET).";

#[derive(Parser)]
#[command(version, about = "Client for a kvnode cluster", after_help = EXIT_STATUS)]
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
    /// Set KEY to NEW if it holds OLD (with --absent: if it does not exist; omit OLD). Exits
    /// with 3 if it held something else.
    Cas {
        key: String,
        #[arg(required_unless_present = "absent")]
        old: Option<String>,
        new: Option<String>,
        #[arg(long)]
        absent: bool,
    },
}

/// Every command as `(name, usage, what it does)`: the prompt's help, and the answer to a
/// command given the wrong arguments.
const COMMANDS: &[(&str, &str, &str)] = &[
    ("get", "get KEY", "print the value of KEY"),
    ("put", "put KEY VALUE", "set KEY to VALUE"),
    ("delete", "delete KEY", "remove KEY"),
    ("cas", "cas KEY OLD NEW", "set KEY to NEW if it holds OLD"),
    (
        "cas",
        "cas --absent KEY NEW",
        "set KEY to NEW if it does not exist",
    ),
];

/// `usage: cas KEY OLD NEW | cas --absent KEY NEW`.
fn usage(command: &str) -> String {
    let forms: Vec<&str> = COMMANDS
        .iter()
        .filter(|(name, _, _)| *name == command)
        .map(|(_, usage, _)| *usage)
        .collect();
    format!("usage: {}", forms.join(" | "))
}

fn help() -> String {
    let mut text = String::from("commands:\n");
    for (_, usage, what) in COMMANDS {
        text += &format!("  {usage:<22}{what}\n");
    }
    text += "  help                  this list\n";
    text += "  quit                  leave (also Ctrl-D)\n";
    text += "quote a value with spaces: put greeting \"hello world\" (or 'hello world')";
    text
}

/// A command with its arguments checked.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Get {
        key: String,
    },
    Put {
        key: String,
        value: String,
    },
    Delete {
        key: String,
    },
    /// `expected: None`: set only if the key does not exist.
    Cas {
        key: String,
        expected: Option<String>,
        new: String,
    },
}

impl Command {
    /// The request, or the usage of the command when its arguments do not fit (clap cannot say
    /// that `cas` takes OLD NEW, or NEW alone with `--absent`).
    fn request(self) -> Result<Request, String> {
        Ok(match self {
            Command::Get { key } => Request::Get { key },
            Command::Put { key, value } => Request::Put { key, value },
            Command::Delete { key } => Request::Delete { key },
            Command::Cas {
                key,
                old,
                new,
                absent,
            } => match (absent, old, new) {
                (false, Some(old), Some(new)) => Request::Cas {
                    key,
                    expected: Some(old),
                    new,
                },
                // With --absent the single value given is the new one.
                (true, Some(new), None) => Request::Cas {
                    key,
                    expected: None,
                    new,
                },
                _ => return Err(usage("cas")),
            },
        })
    }
}

/// What the store answered.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Done(String),
    /// A CAS found another value: `NOT SET: current value is ...`.
    NotSet(String),
}

/// Runs kvctl with `args` (without the program name), calling itself `program` in usage
/// messages; returns its exit status.
pub fn main_from<I: IntoIterator<Item = String>>(program: &str, args: I) -> u8 {
    let args = match Args::try_parse_from(std::iter::once(program.to_owned()).chain(args)) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    let request = match args.command.map(Command::request).transpose() {
        Ok(r) => r,
        Err(usage) => {
            eprintln!("kvctl: {usage}");
            return EXIT_USAGE;
        }
    };
    let config = match ClusterConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kvctl: {e}");
            return EXIT_USAGE;
        }
    };
    let first = match &args.node {
        None => 0,
        Some(id) => match config.node_index(id) {
            Some(i) => i as usize,
            None => {
                eprintln!("kvctl: no node named {id:?} in {}", args.config.display());
                return EXIT_USAGE;
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
        match request {
            Some(request) => match run(&client, request).await {
                Ok(Answer::Done(line)) => {
                    println!("{line}");
                    0
                }
                Ok(Answer::NotSet(line)) => {
                    println!("{line}");
                    EXIT_NOT_SET
                }
                Err(e) => {
                    eprintln!("kvctl: {e}");
                    EXIT_FAILED
                }
            },
            None => interactive(&client).await,
        }
    })
}

async fn run(client: &Client, request: Request) -> Result<Answer, ClientError> {
    Ok(match request {
        Request::Get { key } => {
            Answer::Done(client.get(&key).await?.unwrap_or_else(|| "(absent)".into()))
        }
        Request::Put { key, value } => {
            client.put(&key, &value).await?;
            Answer::Done("OK".into())
        }
        Request::Delete { key } => {
            client.delete(&key).await?;
            Answer::Done("OK".into())
        }
        Request::Cas { key, expected, new } => {
            match client.cas(&key, expected.as_deref(), &new).await? {
                Ok(()) => Answer::Done("OK".into()),
                Err(current) => Answer::NotSet(format!(
                    "NOT SET: current value is {}",
                    current.unwrap_or_else(|| "(absent)".into())
                )),
            }
        }
    })
}

/// What one line typed at the prompt asks for.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Nothing,
    Help,
    Quit,
    Run(Request),
    /// A line that is not a command: what to tell the user.
    Wrong(String),
}

/// Splits the line as a shell would (quotes group words) and parses it as the command line does.
fn parse_line(line: &str) -> Line {
    let words = match shell_words::split(line) {
        Ok(words) => words,
        Err(e) => return Line::Wrong(format!("cannot read the line: {e}")),
    };
    let Some(first) = words.first() else {
        return Line::Nothing;
    };
    match first.as_str() {
        "help" => return Line::Help,
        "quit" | "exit" => return Line::Quit,
        name if !COMMANDS.iter().any(|(known, _, _)| *known == name) => {
            return Line::Wrong(format!("unknown command {name:?}; type help"));
        }
        _ => {}
    }
    let argv = std::iter::once("kvctl").chain(words.iter().map(String::as_str));
    match Prompt::try_parse_from(argv) {
        Ok(p) => match p.command.request() {
            Ok(request) => Line::Run(request),
            Err(usage) => Line::Wrong(usage),
        },
        Err(e) if e.kind() == ErrorKind::DisplayHelp => Line::Wrong(e.render().to_string()),
        Err(_) => Line::Wrong(usage(first)),
    }
}

async fn interactive(client: &Client) -> u8 {
    println!("kvctl: connected lazily; type help for commands");
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        print!("> ");
        let _ = std::io::stdout().flush();
        let Some(Ok(line)) = lines.next() else {
            return 0;
        };
        match parse_line(&line) {
            Line::Nothing => {}
            Line::Help => println!("{}", help()),
            Line::Quit => return 0,
            Line::Wrong(message) => println!("{}", message.trim_end()),
            Line::Run(request) => match run(client, request).await {
                Ok(Answer::Done(out) | Answer::NotSet(out)) => println!("{out}"),
                Err(e) => println!("error: {e}"),
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Line {
        Line::Run(Request::Put {
            key: key.into(),
            value: value.into(),
        })
    }

    #[test]
    fn quoted_values_keep_their_spaces() {
        assert_eq!(
            parse_line(r#"put greeting "hello world""#),
            put("greeting", "hello world")
        );
        assert_eq!(
            parse_line("put greeting 'hello world'"),
            put("greeting", "hello world")
        );
        assert_eq!(
            parse_line(r#"cas greeting "hello world" 'bye  now'"#),
            Line::Run(Request::Cas {
                key: "greeting".into(),
                expected: Some("hello world".into()),
                new: "bye  now".into(),
            })
        );
        assert_eq!(parse_line("put k ''"), put("k", ""));
    }

    #[test]
    fn an_unclosed_quote_is_reported_not_guessed() {
        let Line::Wrong(message) = parse_line(r#"put k "hello"#) else {
            panic!("an unclosed quote was accepted")
        };
        assert!(message.contains("cannot read the line"), "{message}");
    }

    #[test]
    fn wrong_argument_counts_print_that_commands_usage() {
        for (line, expected) in [
            ("put k", "usage: put KEY VALUE"),
            ("put k v extra", "usage: put KEY VALUE"),
            ("get", "usage: get KEY"),
            ("delete", "usage: delete KEY"),
            ("cas k", "usage: cas KEY OLD NEW | cas --absent KEY NEW"),
            ("cas k old", "usage: cas KEY OLD NEW | cas --absent KEY NEW"),
            (
                "cas --absent k",
                "usage: cas KEY OLD NEW | cas --absent KEY NEW",
            ),
            (
                "cas --absent k a b",
                "usage: cas KEY OLD NEW | cas --absent KEY NEW",
            ),
        ] {
            assert_eq!(parse_line(line), Line::Wrong(expected.into()), "{line}");
        }
    }

    #[test]
    fn unknown_commands_are_named() {
        assert_eq!(
            parse_line("frobnicate k"),
            Line::Wrong("unknown command \"frobnicate\"; type help".into())
        );
    }

    #[test]
    fn blank_help_and_quit_lines() {
        assert_eq!(parse_line("   "), Line::Nothing);
        assert_eq!(parse_line("help"), Line::Help);
        assert_eq!(parse_line("quit"), Line::Quit);
        assert_eq!(parse_line("exit"), Line::Quit);
        assert_eq!(
            parse_line("cas --absent k v"),
            Line::Run(Request::Cas {
                key: "k".into(),
                expected: None,
                new: "v".into(),
            })
        );
    }

    #[test]
    fn the_exit_status_is_in_the_help() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        assert!(help.contains("3 cas found another value"), "{help}");
    }
}
