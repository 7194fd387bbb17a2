//! Readers for the history formats the checker understands.
//!
//! | format | produced by | what a line holds |
//! |---|---|---|
//! | [`Format::Jsonl`] | kvlab's bench | one JSON event per line: key-value or lock operations (`docs/history.md`) |
//! | [`Format::PorcupineKv`] | Porcupine's key-value tests | one EDN op map per line: get / put / append |
//! | [`Format::JepsenLog`] | Jepsen's textual logs | `INFO  jepsen.util - <process> <type> <f> <value>` |
//! | [`Format::Edn`] | Jepsen / Knossos `history.edn` | a vector, list or sequence of EDN op maps |
//!
//! Every reader feeds the same [`Builder`](crate::builder::Builder), so pairing and process rules
//! are enforced the same way whatever the source. EDN histories and Jepsen logs may hold any of
//! Knossos's models ([`ModelKind`], read by `knossos.rs`); Porcupine's format holds key-value
//! histories; kvlab's holds key-value histories or locks (a mutex per key), told apart by their
//! events (`jsonl.rs`).

mod edn;
mod edn_scan;
mod jepsen_log;
mod jsonl;
mod jsonl_scan;
mod knossos;

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use crate::error::ReadError;
use crate::history::{History, Value};
use crate::model::ModelKind;

/// A history file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Jsonl,
    PorcupineKv,
    JepsenLog,
    Edn,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format::Jsonl,
        Format::PorcupineKv,
        Format::JepsenLog,
        Format::Edn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::PorcupineKv => "porcupine-kv",
            Format::JepsenLog => "jepsen-log",
            Format::Edn => "edn",
        }
    }

    /// What histories of this format hold, for [`ReadError::ModelNotSupported`].
    pub(crate) fn holds(self) -> &'static str {
        match self {
            Format::Jsonl => {
                "key-value histories (checked as a cas-register) or lock histories (checked as a \
                 mutex)"
            }
            Format::PorcupineKv => "key-value histories (checked as a cas-register)",
            Format::JepsenLog | Format::Edn => "histories of any model",
        }
    }

    /// Recognises a format from the input's first meaningful line (for Jepsen logs, whose
    /// first lines are often other log output: any of the first 200 lines).
    pub fn detect(text: &str) -> Result<Format, ReadError> {
        let Some(first) = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with(';'))
        else {
            // Nothing but blank lines and comments: an empty history in any format.
            return Ok(Format::Jsonl);
        };
        if let Some(rest) = first.strip_prefix('{') {
            let rest = rest.trim_start();
            if rest.starts_with('"') || rest.starts_with('}') {
                return Ok(Format::Jsonl);
            }
            if rest.starts_with(':') {
                let porcupine = [":f :get", ":f :put", ":f :append"]
                    .iter()
                    .any(|f| first.contains(f));
                return Ok(if porcupine {
                    Format::PorcupineKv
                } else {
                    Format::Edn
                });
            }
        }
        if first.starts_with(['[', '(', '#']) {
            return Ok(Format::Edn);
        }
        if text.lines().take(200).any(|l| l.contains("jepsen.util - ")) {
            return Ok(Format::JepsenLog);
        }
        Err(ReadError::UnknownFormat {
            first_line: first.chars().take(80).collect(),
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!("unknown format {s:?} (expected jsonl, porcupine-kv, jepsen-log or edn)")
            })
    }
}

/// How to read a history.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// `None`: recognise the format from the input.
    pub format: Option<Format>,
    /// The model the history was recorded against. EDN and Jepsen logs: any. kvlab's JSONL:
    /// the default, cas-register, reads a key-value history, or a lock history (its first
    /// client event an `acquire` or `release`) as a mutex per key; mutex reads lock histories
    /// only; any other model is refused. Porcupine's: cas-register only.
    pub model: ModelKind,
    /// EDN only: every register's value before the first operation (`None`: absent), in the
    /// register models and the multi-register (the other models start empty). The other
    /// formats define their own (kvlab and Jepsen logs: absent; Porcupine: the empty string).
    pub initial_value: Option<Value>,
}

/// Refuses a model the format cannot hold.
fn check_model(format: Format, options: &ReadOptions) -> Result<(), ReadError> {
    let holds = match format {
        Format::Jsonl => matches!(options.model, ModelKind::CasRegister | ModelKind::Mutex),
        Format::PorcupineKv => options.model == ModelKind::CasRegister,
        Format::JepsenLog | Format::Edn => true,
    };
    if holds {
        Ok(())
    } else {
        Err(ReadError::ModelNotSupported {
            format,
            model: options.model,
        })
    }
}

/// Reads a history from text, returning it with the format it was read as.
pub fn read_str(text: &str, options: &ReadOptions) -> Result<(History, Format), ReadError> {
    let format = match options.format {
        Some(f) => f,
        None => Format::detect(text)?,
    };
    read_as(text, format, options)
}

/// Reads a history of a known format from text.
fn read_as(
    text: &str,
    format: Format,
    options: &ReadOptions,
) -> Result<(History, Format), ReadError> {
    check_model(format, options)?;
    let history = match format {
        Format::Jsonl => jsonl::read(text, options.model)?,
        Format::PorcupineKv => edn::read_porcupine_kv(text)?,
        Format::JepsenLog => jepsen_log::read(text, options.model)?,
        Format::Edn => edn::read_knossos(text, options.model, options.initial_value.clone())?,
    };
    Ok((history, format))
}

/// Bytes at the start of a file its format is recognised from.
const DETECT_HEAD: usize = 1 << 16;

/// Bytes of a JSONL file read and parsed at a time.
const JSONL_PIECE: usize = 32 << 20;

/// Reads a history file; see [`read_str`]. A JSONL file is read piece by piece, so its whole
/// text is never in memory at once.
pub fn read_file(path: &Path, options: &ReadOptions) -> Result<(History, Format), ReadError> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(JSONL_PIECE.min(file.metadata()?.len() as usize + 1));
    (&mut file).take(JSONL_PIECE as u64).read_to_end(&mut buf)?;
    let format = match options.format {
        Some(f) => f,
        None => {
            let head = &buf[..buf.len().min(DETECT_HEAD)];
            // Lossy only when needed: it costs several times a check.
            match std::str::from_utf8(head) {
                Ok(head) => Format::detect(head)?,
                Err(_) => Format::detect(&String::from_utf8_lossy(head))?,
            }
        }
    };
    check_model(format, options)?;
    if format != Format::Jsonl {
        if buf.len() == JSONL_PIECE {
            file.read_to_end(&mut buf)?;
        }
        let text = String::from_utf8(buf).map_err(|_| invalid_utf8())?;
        // A text longer than the head it was recognised from is recognised again, whole, as
        // `read_str` does.
        if options.format.is_none() && text.len() > DETECT_HEAD {
            return read_str(&text, options);
        }
        return read_as(&text, format, options);
    }
    let mut reader = jsonl::Reader::new(options.model);
    let mut eof = buf.len() < JSONL_PIECE;
    loop {
        // Whole lines now; a last partial line waits for the next piece (a line longer than
        // a piece makes the buffer grow).
        let cut = if eof {
            buf.len()
        } else {
            buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        let text = std::str::from_utf8(&buf[..cut]).map_err(|_| invalid_utf8())?;
        reader.feed(text)?;
        if eof {
            return Ok((reader.finish(), format));
        }
        buf.drain(..cut);
        let read = (&mut file).take(JSONL_PIECE as u64).read_to_end(&mut buf)?;
        eof = read < JSONL_PIECE;
    }
}

fn invalid_utf8() -> ReadError {
    ReadError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "stream did not contain valid UTF-8",
    ))
}
