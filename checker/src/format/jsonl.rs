//! kvlab's own history format: one JSON event per line (see `DESIGN.md`).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value as Json;

use crate::builder::Builder;
use crate::error::ReadError;
use crate::history::{Call, Func, History, Outcome, Value};

#[derive(Deserialize)]
struct Line<'a> {
    time: Option<u64>,
    process: Json,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    f: Cow<'a, str>,
    #[serde(borrow, default)]
    key: Option<Cow<'a, str>>,
    #[serde(default)]
    value: Json,
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
        let process = match &ev.process {
            Json::String(s) if s == "nemesis" => continue,
            Json::Number(n) if n.is_u64() => n.as_u64().expect("checked is_u64"),
            other => {
                return Err(ReadError::at(
                    line,
                    format!("process must be a non-negative integer or \"nemesis\", not {other}"),
                ));
            }
        };
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
                let call = call(func, &ev.value).map_err(|m| ReadError::at(line, m))?;
                builder.invoke(line, time, process, key, call)?;
            }
            "ok" => {
                let outcome = match func {
                    Func::Read => Outcome::Ok(
                        value_or_null(&ev.value)
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

fn call(func: Func, value: &Json) -> Result<Call, String> {
    Ok(match func {
        Func::Read => Call::Read,
        Func::Delete => Call::Delete,
        Func::Write => Call::Write(value_of(value).map_err(|m| format!("write of {m}"))?),
        Func::Append => Call::Append(value_of(value).map_err(|m| format!("append of {m}"))?),
        Func::Cas => match value.as_array().map(Vec::as_slice) {
            Some([expected, new]) => Call::Cas {
                expected: value_of(expected).map_err(|m| format!("cas expecting {m}"))?,
                new: value_of(new).map_err(|m| format!("cas to {m}"))?,
            },
            _ => return Err(format!("cas value must be [expected, new], not {value}")),
        },
    })
}

fn value_of(v: &Json) -> Result<Value, String> {
    value_or_null(v)?.ok_or_else(|| "null: a value must be a string or an integer".to_owned())
}

fn value_or_null(v: &Json) -> Result<Option<Value>, String> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) => Ok(Some(Value::Str(s.clone()))),
        Json::Number(n) => n
            .as_i64()
            .map(|i| Some(Value::Int(i)))
            .ok_or_else(|| format!("{n}: numbers must be integers")),
        other => Err(format!(
            "{other}: a value must be a string, an integer or null"
        )),
    }
}
