//! Jepsen's textual logs, as in Porcupine's etcd test data:
//! `INFO  jepsen.util - <process>\t<type>\t<f>\t<value>` (tabs or runs of spaces).
//!
//! One compare-and-set register that starts absent. Lines that are not op lines (Jepsen's other
//! log output) are skipped; the nemesis's op lines too. Unlike Knossos EDN, `:ok :read nil` means
//! the key was absent, a `:fail :cas` observed that the register did not hold the expected value,
//! and a `:fail :read` (a timed-out read) carries no information.

use super::edn::{REGISTER_KEY, cas_call, parse_value, scalar};
use crate::builder::Builder;
use crate::error::ReadError;
use crate::history::{Call, Func, History, Outcome};

const MARKER: &str = "jepsen.util - ";

pub(super) fn read(text: &str) -> Result<History, ReadError> {
    let mut builder = Builder::new();
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
        let (f, value) = token(rest);
        let func = match f {
            ":read" => Func::Read,
            ":write" => Func::Write,
            ":cas" => Func::Cas,
            _ => {
                return Err(at(format!(
                    "unsupported f {f:?} (expected :read, :write or :cas)"
                )));
            }
        };
        let value = parse_value(value.trim_end()).map_err(at)?;
        match kind {
            ":invoke" => {
                let call = match func {
                    Func::Read => Call::Read,
                    Func::Write => Call::Write(
                        scalar(&value)
                            .map_err(|m| at(format!("write of {m}")))?
                            .ok_or_else(|| at("write of nil".into()))?,
                    ),
                    _ => cas_call(&value).map_err(at)?,
                };
                builder.invoke(line, None, process, REGISTER_KEY, call)?;
            }
            ":ok" => {
                let outcome = match func {
                    Func::Read => {
                        Outcome::Ok(scalar(&value).map_err(|m| at(format!("read returned {m}")))?)
                    }
                    _ => Outcome::Ok(None),
                };
                builder.complete(line, None, process, func, None, outcome)?;
            }
            ":fail" => {
                let outcome = if func == Func::Cas {
                    Outcome::PreconditionFailed
                } else {
                    Outcome::Fail
                };
                builder.complete(line, None, process, func, None, outcome)?;
            }
            ":info" => builder.complete(line, None, process, func, None, Outcome::Info)?,
            _ => {
                return Err(at(format!(
                    "type must be :invoke, :ok, :fail or :info, not {kind:?}"
                )));
            }
        }
    }
    Ok(builder.finish(None))
}

/// Splits off the first whitespace-separated token.
fn token(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    (&s[..end], s[end..].trim_start())
}
