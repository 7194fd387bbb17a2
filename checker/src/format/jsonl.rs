//! kvlab's own history format: one JSON event per line; every field is described in
//! `docs/history.md`.
//!
//! A history holds key-value operations (read, write, cas, delete, append: checked as a
//! cas-register) or lock operations (acquire, release: a mutex per key), never both. Unless the
//! caller asked for the mutex model, the first client event decides which; the first event of
//! the other kind is refused, naming its line. Chunks are parsed apart, so each notes the first
//! event of each kind and the reader settles the kind in line order.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::jsonl_scan::{self, Fields};
use crate::builder::{Builder, article};
use crate::error::ReadError;
use crate::history::{Call, Func, History, Outcome, Value};
use crate::model::ModelKind;

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

impl<'a> Line<'a> {
    fn fields(self) -> Fields<'a> {
        Fields {
            index: self.index,
            time: self.time,
            process: self.process.get(),
            kind: self.kind,
            f: self.f,
            key: self.key,
            value: self.value.map(RawValue::get),
            error: self.error,
        }
    }
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
        func: Function,
        key: Option<Cow<'a, str>>,
        outcome: Outcome,
    },
}

impl Parsed<'_> {
    /// The function's kind and name.
    fn function(&self) -> (Kind, &'static str) {
        match self {
            Parsed::Invoke { call, .. } => match call {
                Call::Acquire | Call::Release => (Kind::Lock, call.name()),
                _ => (Kind::KeyValue, call.name()),
            },
            Parsed::Complete { func, .. } => (func.kind(), func.name()),
        }
    }
}

/// A function of `f`: a key-value operation or a lock's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Function {
    Kv(Func),
    Acquire,
    Release,
}

impl Function {
    fn parse(f: &str) -> Option<Function> {
        Some(match f {
            "read" => Function::Kv(Func::Read),
            "write" => Function::Kv(Func::Write),
            "delete" => Function::Kv(Func::Delete),
            "cas" => Function::Kv(Func::Cas),
            "append" => Function::Kv(Func::Append),
            "acquire" => Function::Acquire,
            "release" => Function::Release,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Function::Kv(func) => func.name(),
            Function::Acquire => "acquire",
            Function::Release => "release",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Function::Kv(_) => Kind::KeyValue,
            Function::Acquire | Function::Release => Kind::Lock,
        }
    }
}

/// What a history holds: key-value operations, or locks. `kind as usize` indexes
/// [`Chunk::first`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    KeyValue,
    Lock,
}

impl Kind {
    fn other(self) -> Kind {
        match self {
            Kind::KeyValue => Kind::Lock,
            Kind::Lock => Kind::KeyValue,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::KeyValue => "key-value",
            Kind::Lock => "lock",
        }
    }
}

/// The first event of one kind in a chunk.
#[derive(Clone, Copy)]
struct First {
    /// Position among the chunk's events.
    event: usize,
    /// Line within the chunk, from 1.
    line: u64,
    f: &'static str,
}

/// How the history's kind was settled.
#[derive(Clone, Copy)]
struct Settled {
    kind: Kind,
    /// The line and function of the first client event, which decided it; `None` when the
    /// caller's model did.
    by: Option<(u64, &'static str)>,
}

/// Input below this size is parsed on the calling thread.
const PARALLEL_BYTES: usize = 1 << 18;

/// Chunks of a large piece per parser thread: enough that feeding the first chunks overlaps
/// parsing the rest.
const CHUNKS_PER_THREAD: usize = 4;

pub(super) fn read(text: &str, model: ModelKind) -> Result<History, ReadError> {
    let mut reader = Reader::new(model);
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
    /// What the history holds, once the caller's model or the first client event said.
    kind: Option<Settled>,
    threads: usize,
}

impl Reader {
    /// A reader for a history of `model`: cas-register (the default) for either kind, decided by
    /// the first client event; mutex for locks only.
    pub(super) fn new(model: ModelKind) -> Reader {
        let kind = match model {
            ModelKind::CasRegister => None,
            ModelKind::Mutex => Some(Settled {
                kind: Kind::Lock,
                by: None,
            }),
            other => panic!("a JSONL history checked as {other}: check_model lets none through"),
        };
        Reader {
            builder: Builder::new(),
            lines: 0,
            last_index: None,
            kind,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    /// Reads `text`, which must end at a line boundary (or be the end of the input).
    ///
    /// Large text is cut into several chunks per core; worker threads parse them while this
    /// thread feeds the ones already parsed to the builder, in order, so that feeding overlaps
    /// parsing instead of following it.
    pub(super) fn feed(&mut self, text: &str) -> Result<(), ReadError> {
        let chunks = split_lines(text, self.threads * CHUNKS_PER_THREAD, PARALLEL_BYTES);
        if chunks.len() == 1 || self.threads == 1 {
            for c in chunks {
                let chunk = parse_chunk(c);
                self.builder.reserve(chunk.events.len() / 2);
                self.feed_chunk(chunk)?;
            }
            return Ok(());
        }
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (send, parsed) = mpsc::channel();
        std::thread::scope(|s| {
            for _ in 0..self.threads.min(chunks.len()) {
                let (send, next, stop, chunks) = (send.clone(), &next, &stop, &chunks);
                s.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&c) = chunks.get(i) else { break };
                        if send.send((i, parse_chunk(c))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(send);
            let mut waiting: Vec<Option<Chunk>> = (0..chunks.len()).map(|_| None).collect();
            for i in 0..chunks.len() {
                while waiting[i].is_none() {
                    let (j, chunk) = parsed.recv().expect("a parser thread panicked");
                    waiting[j] = Some(chunk);
                }
                let chunk = waiting[i].take().expect("received above");
                if i == 0 {
                    // Each operation is two events; the first chunk tells how many the piece
                    // holds, and growing the operations by doubling would copy them all.
                    let per_byte = chunk.events.len() as f64 / chunks[0].len().max(1) as f64;
                    self.builder
                        .reserve((per_byte * text.len() as f64 / 2.0 * 1.05) as usize);
                }
                if let Err(e) = self.feed_chunk(chunk) {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            Ok(())
        })
    }

    /// Feeds one parsed chunk (the next in line order) to the builder.
    fn feed_chunk(&mut self, mut chunk: Chunk) -> Result<(), ReadError> {
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
        // The events before the first of the other kind are fed, then it is refused.
        let stray = self.stray(&chunk.first, offset);
        if let Some((event, _)) = &stray {
            chunk.events.truncate(*event);
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
                    func: Function::Kv(func),
                    key,
                    outcome,
                } => b.complete(offset + line, time, process, func, key.as_deref(), outcome)?,
                // Acquire and release share a `Func`: the builder compares their names.
                Parsed::Complete {
                    line,
                    time,
                    process,
                    func,
                    key,
                    outcome,
                } => b.complete_call(
                    offset + line,
                    time,
                    process,
                    func.name(),
                    key.as_deref(),
                    outcome,
                    None,
                )?,
            }
        }
        if let Some((_, error)) = stray {
            return Err(error);
        }
        if let Some((line, error)) = chunk.error {
            let message = match error {
                ChunkError::Line(message) => message,
                // The chunk counted lines from its own start.
                ChunkError::Index {
                    prev: (at, index),
                    next,
                } => index_error((offset + at, index), next).expect("a recorded index error"),
            };
            return Err(ReadError::at(offset + line, message));
        }
        self.lines += chunk.lines;
        Ok(())
    }

    /// The first event of the chunk whose events start after line `offset` that is of the
    /// other kind than the history's, as its position among the chunk's events and the error
    /// that refuses it. Settles the history's kind if no event has yet.
    fn stray(&mut self, first: &[Option<First>; 2], offset: u64) -> Option<(usize, ReadError)> {
        if self.kind.is_none() {
            let (kind, decider) = [Kind::KeyValue, Kind::Lock]
                .into_iter()
                .zip(first)
                .filter_map(|(kind, f)| Some((kind, (*f)?)))
                .min_by_key(|(_, f)| f.line)?;
            self.kind = Some(Settled {
                kind,
                by: Some((offset + decider.line, decider.f)),
            });
        }
        let settled = self.kind.expect("settled above");
        let stray = first[settled.kind.other() as usize]?;
        let message = match settled.by {
            Some((line, f)) => format!(
                "{} in a {} history (line {line} is {} {f}); a history holds either key-value \
                 operations (read, write, cas, delete, append) or lock operations (acquire, \
                 release), not both",
                stray.f,
                settled.kind.name(),
                article(f),
            ),
            None => format!(
                "unsupported f {} in a mutex history (expected acquire or release)",
                stray.f
            ),
        };
        Some((stray.event, ReadError::at(offset + stray.line, message)))
    }

    pub(super) fn finish(self) -> History {
        let mut history = self.builder.finish(None);
        if self.kind.is_some_and(|s| s.kind == Kind::Lock) {
            history.model = ModelKind::Mutex;
        }
        history
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
    error: Option<(u64, ChunkError)>,
    /// The first event of each [`Kind`].
    first: [Option<First>; 2],
    /// The first and the last `index` field, with their lines.
    first_index: Option<(u64, u64)>,
    last_index: Option<(u64, u64)>,
}

/// Why a chunk stopped, at a line counted from the chunk's start.
enum ChunkError {
    Line(String),
    /// The `index` field broke its rule; `prev` is the last index before it, with its line.
    /// Told once the chunk's place in the file is known (the message names `prev`'s line).
    Index {
        prev: (u64, u64),
        next: u64,
    },
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
        first: [None; 2],
        first_index: None,
        last_index: None,
    };
    for raw in text.split_terminator('\n') {
        chunk.lines += 1;
        let line = chunk.lines;
        let parsed = parse_line(raw, line)
            .map_err(ChunkError::Line)
            .and_then(|(index, event)| {
                if let Some(index) = index {
                    if let Some(prev) = chunk.last_index
                        && index_error(prev, index).is_some()
                    {
                        return Err(ChunkError::Index { prev, next: index });
                    }
                    chunk.first_index.get_or_insert((line, index));
                    chunk.last_index = Some((line, index));
                }
                Ok(event)
            });
        match parsed {
            Ok(Some(event)) => {
                let (kind, f) = event.function();
                chunk.first[kind as usize].get_or_insert(First {
                    event: chunk.events.len(),
                    line,
                    f,
                });
                chunk.events.push(event);
            }
            Ok(None) => {}
            Err(error) => {
                chunk.error = Some((line, error));
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
    let ev = match jsonl_scan::scan(raw) {
        Some(fields) => fields,
        None => serde_json::from_str::<Line>(raw)
            .map_err(|e| format!("not a history event: {e}"))?
            .fields(),
    };
    let index = ev.index;
    let process = match ev.process {
        "\"nemesis\"" => return Ok((index, None)),
        p => p.parse::<u64>().map_err(|_| {
            format!("process must be a non-negative integer or \"nemesis\", not {p}")
        })?,
    };
    let value = ev.value.unwrap_or("null");
    let func = Function::parse(&ev.f).ok_or_else(|| {
        format!(
            "unknown f {:?} (expected read, write, cas, delete, append, acquire or release)",
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
            Function::Kv(Func::Read) => {
                Outcome::Ok(value_or_null(value).map_err(|m| format!("read returned {m}"))?)
            }
            _ => Outcome::Ok(None),
        }),
        "fail" => complete(
            if func == Function::Kv(Func::Cas) && ev.error.as_deref() == Some("precondition") {
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

/// The call an invocation of `func` with `value` makes. A lock's `value` is not read.
fn call(func: Function, value: &str) -> Result<Call, String> {
    let func = match func {
        Function::Kv(func) => func,
        Function::Acquire => return Ok(Call::Acquire),
        Function::Release => return Ok(Call::Release),
    };
    Ok(match func {
        Func::Read => Call::Read,
        Func::Delete => Call::Delete,
        Func::Write => Call::Write(value_of(value).map_err(|m| format!("write of {m}"))?),
        Func::Append => Call::Append(value_of(value).map_err(|m| format!("append of {m}"))?),
        Func::Cas => {
            let (expected, new) = jsonl_scan::pair(value)
                .or_else(|| {
                    serde_json::from_str::<[&RawValue; 2]>(value)
                        .ok()
                        .map(|[e, n]| (e.get(), n.get()))
                })
                .ok_or_else(|| format!("cas value must be [expected, new], not {value}"))?;
            Call::Cas {
                expected: value_or_null(expected).map_err(|m| format!("cas expecting {m}"))?,
                new: value_of(new).map_err(|m| format!("cas to {m}"))?,
            }
        }
    })
}

fn value_of(v: &str) -> Result<Value, String> {
    value_or_null(v)?.ok_or_else(|| "null: a value must be a string or an integer".to_owned())
}

/// Decodes a raw JSON value: a string, an integer, or null (absent).
fn value_or_null(v: &str) -> Result<Option<Value>, String> {
    match v.as_bytes().first() {
        Some(b'n') if v == "null" => Ok(None),
        // `v` is valid JSON: a string without escapes is its text between the quotes.
        Some(b'"') if !v.contains('\\') => Ok(Some(Value::Str(v[1..v.len() - 1].to_owned()))),
        Some(b'"') => serde_json::from_str::<String>(v)
            .map(|s| Some(Value::Str(s)))
            .map_err(|e| format!("{v}: {e}")),
        _ => v
            .parse::<i64>()
            .map(|i| Some(Value::Int(i)))
            .map_err(|_| format!("{v}: a value must be a string, an integer or null")),
    }
}
