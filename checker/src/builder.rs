//! Pairs invocations with completions and enforces Jepsen's process rules, for every format.

use rustc_hash::FxHashMap;

use crate::error::ReadError;
use crate::history::{Call, Event, Func, History, Operation, Outcome, Value};

/// Collects events in the order they happened and turns them into a [`History`].
#[derive(Default)]
pub(crate) struct Builder {
    key_ids: FxHashMap<String, u32>,
    keys: Vec<String>,
    ops: Vec<Operation>,
    /// Process -> index in `ops` of its operation in progress.
    pending: FxHashMap<u64, usize>,
    /// Process -> line of the `info` completion that retired it.
    retired: FxHashMap<u64, u64>,
    next_index: u64,
    /// Whether every event so far carried a time.
    all_timed: bool,
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder {
            all_timed: true,
            ..Builder::default()
        }
    }

    /// Makes room for `ops` more operations.
    pub(crate) fn reserve(&mut self, ops: usize) {
        self.ops.reserve(ops);
    }

    /// Makes room for the operations of a text with one event per line: at most one per two
    /// lines (growing them by doubling would copy them all).
    pub(crate) fn reserve_for(&mut self, text: &str) {
        let lines = memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1;
        self.reserve(lines / 2 + 1);
    }

    fn event(&mut self, line: u64, time: Option<u64>) -> Event {
        let index = self.next_index;
        self.next_index += 1;
        self.all_timed &= time.is_some();
        Event {
            index,
            time: time.unwrap_or(index),
            line,
        }
    }

    fn key_id(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.key_ids.get(key) {
            return id;
        }
        let id = u32::try_from(self.keys.len()).expect("more than 2^32 keys");
        self.key_ids.insert(key.to_owned(), id);
        self.keys.push(key.to_owned());
        id
    }

    pub(crate) fn invoke(
        &mut self,
        line: u64,
        time: Option<u64>,
        process: u64,
        key: &str,
        call: Call,
    ) -> Result<(), ReadError> {
        if let Some(&i) = self.pending.get(&process) {
            let prev = &self.ops[i];
            return Err(ReadError::at(
                line,
                format!(
                    "process {process} invokes {} {} while its {} from line {} has not completed",
                    article(call.name()),
                    call.name(),
                    prev.call.name(),
                    prev.invoke.line
                ),
            ));
        }
        if let Some(info_line) = self.retired.get(&process) {
            return Err(ReadError::at(
                line,
                format!(
                    "process {process} invokes again after its outcome became unknown (info at \
                     line {info_line}); a client must continue under a new process number"
                ),
            ));
        }
        let key = self.key_id(key);
        let invoke = self.event(line, time);
        self.pending.insert(process, self.ops.len());
        self.ops.push(Operation {
            process,
            key,
            call,
            outcome: Outcome::Info,
            invoke,
            complete: None,
        });
        Ok(())
    }

    /// Completes `process`'s operation in progress. `key`, when the format repeats it in
    /// completions, must match the invocation's.
    pub(crate) fn complete(
        &mut self,
        line: u64,
        time: Option<u64>,
        process: u64,
        func: Func,
        key: Option<&str>,
        outcome: Outcome,
    ) -> Result<(), ReadError> {
        let Some(i) = self.pending.remove(&process) else {
            return Err(ReadError::at(
                line,
                format!(
                    "{} completion of a {func} for process {process}, which has no operation in progress",
                    outcome.name()
                ),
            ));
        };
        let (invoked, invoke_line, invoked_key) = {
            let op = &self.ops[i];
            (op.call.func(), op.invoke.line, op.key)
        };
        if invoked != func {
            return Err(ReadError::at(
                line,
                format!(
                    "process {process} invoked a {invoked} at line {invoke_line} but this completion is for a {func}"
                ),
            ));
        }
        if let Some(key) = key
            && self.keys[invoked_key as usize] != key
        {
            return Err(ReadError::at(
                line,
                format!(
                    "process {process} invoked on key {:?} at line {invoke_line} but this completion names key {key:?}",
                    self.keys[invoked_key as usize]
                ),
            ));
        }
        if outcome == Outcome::Info {
            self.retired.insert(process, line);
        }
        let complete = self.event(line, time);
        let op = &mut self.ops[i];
        op.outcome = outcome;
        op.complete = Some(complete);
        Ok(())
    }

    /// Completes `process`'s operation in progress, for readers that name functions as
    /// [`Call::name`] does (several calls share a [`Func`]): the completion must be for the
    /// function invoked. `completed`, when given, replaces the call (a transaction's reads carry
    /// the values they returned only in its completion).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn complete_call(
        &mut self,
        line: u64,
        time: Option<u64>,
        process: u64,
        name: &str,
        key: Option<&str>,
        outcome: Outcome,
        completed: Option<Call>,
    ) -> Result<(), ReadError> {
        let Some(&i) = self.pending.get(&process) else {
            return Err(ReadError::at(
                line,
                format!(
                    "{} completion of {} {name} for process {process}, which has no operation in \
                     progress",
                    outcome.name(),
                    article(name)
                ),
            ));
        };
        let op = &mut self.ops[i];
        if op.call.name() != name {
            return Err(ReadError::at(
                line,
                format!(
                    "process {process} invoked {} {} at line {} but this completion is for {} {name}",
                    article(op.call.name()),
                    op.call.name(),
                    op.invoke.line,
                    article(name)
                ),
            ));
        }
        let func = op.call.func();
        if let Some(call) = completed {
            op.call = call;
        }
        self.complete(line, time, process, func, key, outcome)
    }

    /// Completes `process`'s read as one that returned nothing the checker can use (Knossos's
    /// read of `nil`): recorded as `info`, so the search lets it fall anywhere, but unlike a real
    /// `info` the operation did complete, so the process goes on.
    pub(crate) fn complete_uninformative_read(
        &mut self,
        line: u64,
        time: Option<u64>,
        process: u64,
        key: Option<&str>,
    ) -> Result<(), ReadError> {
        self.complete(line, time, process, Func::Read, key, Outcome::Info)?;
        self.retired.remove(&process);
        Ok(())
    }

    /// Operations still in progress at the end stay `info` with no completion, as in Jepsen.
    /// Unless every event carried a time, times become positions.
    pub(crate) fn finish(mut self, initial: Option<Value>) -> History {
        let timed = self.all_timed && self.next_index > 0;
        if !timed {
            for op in &mut self.ops {
                op.invoke.time = op.invoke.index;
                if let Some(c) = &mut op.complete {
                    c.time = c.index;
                }
            }
        }
        History {
            keys: self.keys,
            ops: self.ops,
            initial,
            timed,
            ..History::default()
        }
    }
}

/// "a" or "an", for a function's name.
pub(crate) fn article(name: &str) -> &'static str {
    if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}
