//! Streams the history to `history.jsonl` as events happen, one line each, with a global index
//! and nanoseconds since the run started. Every field is described in `docs/history.md`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

#[derive(Serialize)]
#[serde(untagged)]
pub enum Process {
    Client(u64),
    Nemesis(&'static str),
}

#[derive(Serialize)]
pub struct Event<'a> {
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub f: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    pub value: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

#[derive(Serialize)]
struct Line<'a> {
    index: u64,
    time: u64,
    #[serde(flatten)]
    event: &'a Event<'a>,
}

struct State {
    /// `None`: recording is off (the benchmark's baseline); events are numbered, not written.
    out: Option<BufWriter<File>>,
    index: u64,
    error: Option<std::io::Error>,
}

pub struct Recorder {
    start: Instant,
    state: Mutex<State>,
}

impl Recorder {
    pub fn create(path: &Path, start: Instant) -> std::io::Result<Recorder> {
        Ok(Recorder {
            start,
            state: Mutex::new(State {
                out: Some(BufWriter::with_capacity(1 << 20, File::create(path)?)),
                index: 0,
                error: None,
            }),
        })
    }

    /// A recorder that writes nothing: the same code path with recording off.
    pub fn null(start: Instant) -> Recorder {
        Recorder {
            start,
            state: Mutex::new(State {
                out: None,
                index: 0,
                error: None,
            }),
        }
    }

    /// Records an event now; returns its time (ns since the start). Events are numbered in the
    /// order they are recorded, which is the order they happened.
    pub fn record(&self, event: &Event) -> u64 {
        let mut guard = self.state.lock().expect("recorder lock");
        let s = &mut *guard;
        let time = self.start.elapsed().as_nanos() as u64;
        let line = Line {
            index: s.index,
            time,
            event,
        };
        s.index += 1;
        let Some(out) = s.out.as_mut() else {
            return time;
        };
        let result = serde_json::to_writer(&mut *out, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"));
        if let Err(e) = result
            && s.error.is_none()
        {
            s.error = Some(e);
        }
        time
    }

    /// Flushes the history; reports the first write error, if any (e.g. a full disk).
    pub fn finish(&self) -> std::io::Result<u64> {
        let mut s = self.state.lock().expect("recorder lock");
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        if let Some(out) = s.out.as_mut() {
            out.flush()?;
        }
        Ok(s.index)
    }
}
