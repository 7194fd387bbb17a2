//! Jepsen's textual logs, as in Porcupine's etcd test data:
//! `INFO  jepsen.util - <process>\t<type>\t<f>\t<value>` (tabs or runs of spaces).
//!
//! Lines that are not op lines (Jepsen's other log output) are skipped; the nemesis's op lines
//! too. The ops are read as in EDN histories (`knossos.rs`), for any model, except that a register
//! read means what etcd's tests meant by it: the register starts absent, `:ok :read nil` means it
//! was absent, a `:fail :cas` observed that the register did not hold the expected value, and a
//! `:fail :read` (a timed-out read) carries no information.

use super::edn::{Kind, parse_value};
use super::knossos::{Dialect, RawOp, Reader};
use crate::error::ReadError;
use crate::history::History;
use crate::model::ModelKind;

const MARKER: &str = "jepsen.util - ";

pub(super) fn read(text: &str, model: ModelKind) -> Result<History, ReadError> {
    let mut reader = Reader::new(model, Dialect::Log);
    for (n, raw) in text.lines().enumerate() {
        let line = n as u64 + 1;
        let at = |m: String| ReadError::at(line, m);
        let Some(start) = raw.find(MARKER) else {
            continue;
        };
        let (process, rest) = token(&raw[start + MARKER.len()..]);
        if process == ":nemesis" {
            continue;
        }
        let process: u64 = process.parse().map_err(|_| {
            at(format!(
                "process must be a non-negative integer or :nemesis, not {process:?}"
            ))
        })?;
        let (kind, rest) = token(rest);
        let kind = match kind {
            ":invoke" => Kind::Invoke,
            ":ok" => Kind::Ok,
            ":fail" => Kind::Fail,
            ":info" => Kind::Info,
            _ => {
                return Err(at(format!(
                    "type must be :invoke, :ok, :fail or :info, not {kind:?}"
                )));
            }
        };
        let (f, value) = token(rest);
        let value = parse_value(value.trim_end()).map_err(at)?;
        reader.op(RawOp {
            line,
            time: None,
            process,
            kind,
            f: f.strip_prefix(':'),
            value: &value,
        })?;
    }
    Ok(reader.finish(None))
}

/// Splits off the first whitespace-separated token.
fn token(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    (&s[..end], s[end..].trim_start())
}
