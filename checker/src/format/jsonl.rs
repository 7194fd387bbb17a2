//! kvlab's own history format: one JSON event per line; every field is described in
//! `docs/history.md`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::builder::Builder;
use crate::error::ReadError;
use crate::history::{Call, Func, History, Outcome, Value};

/// One event. Fields whose shape depends on others stay raw JSON and are decoded only when
/// needed, so a line costs no allocation beyond the values it carries.
#[derive(Deserialize)]
struct Line<'a> {
    time: Option<u64>,
    #[serde(borrow)]
    process: &'a RawValue,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    f: Cow<'a, str>,
    #[serde(borrow, default)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<Cow<'a, str>>,
}

pub(super) fn read(text: &str) -> Result<History, ReadError> {
    let mut builder = Builder::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n as u64 + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let ev: Line = serde_json::from_str(raw)
            .map_err(|e| ReadError::at(line, format!("not a history event: {e}")))?;
        let process = match ev.process.get() {
            "\"nemesis\"" => continue,
            p => p.parse::<u64>().map_err(|_| {
                ReadError::at(
                    line,
                    format!("process must be a non-negative integer or \"nemesis\", not {p}"),
                )
            })?,
        };
        let value = ev.value.map_or("null", RawValue::get);
        let func = parse_func(&ev.f).ok_or_else(|| {
            ReadError::at(
                line,
                format!(
                    "unknown f {:?} (expected read, write, cas, delete or append)",
                    ev.f
                ),
            )
        })?;
        let time = ev.time;
        let key = ev.key.as_deref();
        match &*ev.kind {
            "invoke" => {
                let key = key.ok_or_else(|| ReadError::at(line, "invocation without a key"))?;
                let call = call(func, value).map_err(|m| ReadError::at(line, m))?;
                builder.invoke(line, time, process, key, call)?;
            }
            "ok" => {
                let outcome = match func {
                    Func::Read => Outcome::Ok(
                        value_or_null(value)
                            .map_err(|m| ReadError::at(line, format!("read returned {m}")))?,
                    ),
                    _ => Outcome::Ok(None),
                };
                builder.complete(line, time, process, func, key, outcome)?;
            }
            "fail" => {
                let outcome = if func == Func::Cas && ev.error.as_deref() == Some("precondition") {
                    Outcome::PreconditionFailed
                } else {
                    Outcome::Fail
                };
                builder.complete(line, time, process, func, key, outcome)?;
            }
            "info" => builder.complete(line, time, process, func, key, Outcome::Info)?,
            other => {
                return Err(ReadError::at(
                    line,
                    format!("unknown type {other:?} (expected invoke, ok, fail or info)"),
                ));
            }
        }
    }
    Ok(builder.finish(None))
}

fn parse_func(f: &str) -> Option<Func> {
    Some(match f {
        "read" => Func::Read,
        "write" => Func::Write,
        "delete" => Func::Delete,
        "cas" => Func::Cas,
        "append" => Func::Append,
        _ => return None,
    })
}

fn call(func: Func, value: &str) -> Result<Call, String> {
    Ok(match func {
        Func::Read => Call::Read,
        Func::Delete => Call::Delete,
        Func::Write => Call::Write(value_of(value).map_err(|m| format!("write of {m}"))?),
        Func::Append => Call::Append(value_of(value).map_err(|m| format!("append of {m}"))?),
        Func::Cas => match serde_json::from_str::<[&RawValue; 2]>(value) {
            Ok([expected, new]) => Call::Cas {
                expected: value_or_null(expected.get())
                    .map_err(|m| format!("cas expecting {m}"))?,
                new: value_of(new.get()).map_err(|m| format!("cas to {m}"))?,
            },
            Err(_) => return Err(format!("cas value must be [expected, new], not {value}")),
        },
    })
}

fn value_of(v: &str) -> Result<Value, String> {
    value_or_null(v)?.ok_or_else(|| "null: a value must be a string or an integer".to_owned())
}

/// Decodes a raw JSON value: a string, an integer, or null (absent).
fn value_or_null(v: &str) -> Result<Option<Value>, String> {
    match v.as_bytes().first() {
        Some(b'n') if v == "null" => Ok(None),
        Some(b'"') => serde_json::from_str::<String>(v)
            .map(|s| Some(Value::Str(s)))
            .map_err(|e| format!("{v}: {e}")),
        _ => v
            .parse::<i64>()
            .map(|i| Some(Value::Int(i)))
            .map_err(|_| format!("{v}: a value must be a string, an integer or null")),
    }
}
