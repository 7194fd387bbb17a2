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
    index: Option<u64>,
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

/// One line, parsed: what the builder needs from it, with its line number within its chunk.
enum Parsed<'a> {
    Invoke {
        line: u64,
        time: Option<u64>,
        process: u64,
        key: Cow<'a, str>,
        call: Call,
    },
    Complete {
        line: u64,
        time: Option<u64>,
        process: u64,
        func: Func,
        key: Option<Cow<'a, str>>,
        outcome: Outcome,
    },
}

/// Input below this size is parsed on the calling thread.
const PARALLEL_BYTES: usize = 1 << 18;

pub(super) fn read(text: &str) -> Result<History, ReadError> {
    let mut reader = Reader::new();
    reader.feed(text)?;
    Ok(reader.finish())
}

/// Reads a JSONL history piece by piece: each piece (whole lines) is parsed in parallel, one
/// chunk per core, and its events fed to the builder in order, so a large file needs neither
/// one thread nor its whole text in memory at once.
pub(super) struct Reader {
    builder: Builder,
    /// Lines consumed so far.
    lines: u64,
    /// The last `index` field seen, with its line.
    last_index: Option<(u64, u64)>,
    threads: usize,
}

impl Reader {
    pub(super) fn new() -> Reader {
        Reader {
            builder: Builder::new(),
            lines: 0,
            last_index: None,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    /// Reads `text`, which must end at a line boundary (or be the end of the input).
    pub(super) fn feed(&mut self, text: &str) -> Result<(), ReadError> {
        let chunks = split_lines(text, self.threads, PARALLEL_BYTES);
        let parsed: Vec<Chunk> = if chunks.len() == 1 {
            vec![parse_chunk(chunks[0])]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = chunks
                    .iter()
                    .map(|&c| s.spawn(move || parse_chunk(c)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a parser thread panicked"))
                    .collect()
            })
        };
        let events: usize = parsed.iter().map(|c| c.events.len()).sum();
        // Each operation is two events; growing the operations by doubling copies them all.
        self.builder.reserve(events / 2);
        for chunk in parsed {
            let offset = self.lines;
            // The index runs on from the previous chunk's last.
            if let (Some(prev), Some((line, index))) = (self.last_index, chunk.first_index)
                && let Some(e) = index_error(prev, index)
            {
                return Err(ReadError::at(offset + line, e));
            }
            if let Some((line, index)) = chunk.last_index {
                self.last_index = Some((offset + line, index));
            }
            let b = &mut self.builder;
            for event in chunk.events {
                match event {
                    Parsed::Invoke {
                        line,
                        time,
                        process,
                        key,
                        call,
                    } => b.invoke(offset + line, time, process, &key, call)?,
                    Parsed::Complete {
                        line,
                        time,
                        process,
                        func,
                        key,
                        outcome,
                    } => b.complete(offset + line, time, process, func, key.as_deref(), outcome)?,
                }
            }
            if let Some((line, message)) = chunk.error {
                return Err(ReadError::at(offset + line, message));
            }
            self.lines += chunk.lines;
        }
        Ok(())
    }

    pub(super) fn finish(self) -> History {
        self.builder.finish(None)
    }
}

/// Splits `text` into at most `parts` pieces of whole lines, none smaller than `min` bytes
/// (except the last).
fn split_lines(text: &str, parts: usize, min: usize) -> Vec<&str> {
    let size = (text.len() / parts.max(1)).max(min);
    let mut pieces = Vec::with_capacity(parts);
    let mut rest = text;
    while rest.len() > size {
        let cut = match rest.as_bytes()[size..].iter().position(|&b| b == b'\n') {
            Some(i) => size + i + 1,
            None => rest.len(),
        };
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece);
        rest = tail;
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest);
    }
    pieces
}

/// What a chunk parsed to: its events, how many lines it had, and the first malformed line
/// (line numbers within the chunk, from 1).
struct Chunk<'a> {
    events: Vec<Parsed<'a>>,
    lines: u64,
    error: Option<(u64, String)>,
    /// The first and the last `index` field, with their lines.
    first_index: Option<(u64, u64)>,
    last_index: Option<(u64, u64)>,
}

/// The rule for the `index` field: where present, one more than the previous line's.
fn index_error(prev: (u64, u64), next: u64) -> Option<String> {
    let (line, index) = prev;
    (index.checked_add(1) != Some(next)).then(|| {
        format!(
            "index {next} follows index {index} (line {line}): the events are out of order or \
             some are missing; each index must be one more than the last"
        )
    })
}

fn parse_chunk(text: &str) -> Chunk<'_> {
    // About 100 bytes per event.
    let mut chunk = Chunk {
        events: Vec::with_capacity(text.len() / 96),
        lines: 0,
        error: None,
        first_index: None,
        last_index: None,
    };
    for raw in text.split_terminator('\n') {
        chunk.lines += 1;
        let line = chunk.lines;
        let parsed = parse_line(raw, line).and_then(|(index, event)| {
            if let Some(index) = index {
                if let Some(e) = chunk.last_index.and_then(|prev| index_error(prev, index)) {
                    return Err(e);
                }
                chunk.first_index.get_or_insert((line, index));
                chunk.last_index = Some((line, index));
            }
            Ok(event)
        });
        match parsed {
            Ok(Some(event)) => chunk.events.push(event),
            Ok(None) => {}
            Err(message) => {
                chunk.error = Some((line, message));
                break;
            }
        }
    }
    chunk
}

/// Parses one line: its `index` field, and its event (`None` for a blank line or a nemesis
/// event).
fn parse_line(raw: &str, line: u64) -> Result<(Option<u64>, Option<Parsed<'_>>), String> {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    if raw.trim().is_empty() {
        return Ok((None, None));
    }
    let ev: Line = serde_json::from_str(raw).map_err(|e| format!("not a history event: {e}"))?;
    let index = ev.index;
    let process = match ev.process.get() {
        "\"nemesis\"" => return Ok((index, None)),
        p => p.parse::<u64>().map_err(|_| {
            format!("process must be a non-negative integer or \"nemesis\", not {p}")
        })?,
    };
    let value = ev.value.map_or("null", RawValue::get);
    let func = parse_func(&ev.f).ok_or_else(|| {
        format!(
            "unknown f {:?} (expected read, write, cas, delete or append)",
            ev.f
        )
    })?;
    let time = ev.time;
    let complete = |outcome| {
        Ok((
            index,
            Some(Parsed::Complete {
                line,
                time,
                process,
                func,
                key: ev.key.clone(),
                outcome,
            }),
        ))
    };
    match &*ev.kind {
        "invoke" => {
            let key = ev.key.clone().ok_or("invocation without a key")?;
            let call = call(func, value)?;
            Ok((
                index,
                Some(Parsed::Invoke {
                    line,
                    time,
                    process,
                    key,
                    call,
                }),
            ))
        }
        "ok" => complete(match func {
            Func::Read => {
                Outcome::Ok(value_or_null(value).map_err(|m| format!("read returned {m}"))?)
            }
            _ => Outcome::Ok(None),
        }),
        "fail" => complete(
            if func == Func::Cas && ev.error.as_deref() == Some("precondition") {
                Outcome::PreconditionFailed
            } else {
                Outcome::Fail
            },
        ),
        "info" => complete(Outcome::Info),
        other => Err(format!(
            "unknown type {other:?} (expected invoke, ok, fail or info)"
        )),
    }
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
