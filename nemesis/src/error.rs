//! The one error type of the crate; every message fits on one line and names what is wrong.

use std::path::PathBuf;

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    /// Neither a built-in schedule name nor an existing file.
    #[error("unknown schedule `{name}` (built-ins: {known}; anything else must be a TOML file)")]
    UnknownSchedule { name: String, known: String },
    #[error("cannot read schedule file {}: {source}", path.display())]
    ScheduleRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid schedule; `line` is 1-based and 0 when the parser gave no place.
    #[error("schedule file {}{}: {message}", path.display(), at_line(*line))]
    ScheduleInvalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A valid schedule that cannot run as written on this run's nodes or within its time limit.
    #[error("schedule {name}: {message}")]
    ScheduleImpossible { name: String, message: String },
    /// The link layer has no proxy for this directed link.
    #[error("no link from {from} to {to} in the link layer")]
    UnknownLink { from: String, to: String },
    /// The process group no longer exists (the node already exited).
    #[error("no process group {pgid}")]
    NoSuchGroup { pgid: u32 },
    /// Signalling this group could hit the bench itself or every process of the user.
    #[error("refusing to signal process group {pgid}: {reason}")]
    RefusedGroup { pgid: u32, reason: &'static str },
    #[error("sending {signal} to process group {pgid} failed: {errno}")]
    Signal {
        pgid: u32,
        signal: &'static str,
        #[source]
        errno: Errno,
    },
}

/// `:7` after a file name, or nothing for line 0 (no place known).
fn at_line(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}
