//! Knossos's histories for every model, one op at a time, from EDN op maps (`edn.rs`) or Jepsen
//! log lines (`jepsen_log.rs`).
//!
//! As Knossos reads them: `:fail` operations did not happen; an `:ok` operation's value is the
//! one its completion carries (a transaction's reads), an `:info` one's the one it was invoked
//! with; a register read that completed with `nil` carries no information. Keys come from
//! Jepsen's `independent` tuples (`:value [key value]`, decided by the invocation's shape); a
//! history without tuples is one object.

use std::borrow::Cow;

use clojure_reader::edn::Edn;
use rustc_hash::FxHashMap;

use super::edn::{Kind, get, list, required, scalar, show};
use crate::builder::Builder;
use crate::error::ReadError;
use crate::history::{Call, History, MicroOp, Outcome, Value};
use crate::model::ModelKind;

/// Where the ops come from: their meaning differs for register reads and failed CASes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `history.edn`: a read of `nil` tells nothing; a failed CAS did not happen.
    Edn,
    /// Jepsen's text logs of etcd's register: a read of `nil` found the key absent; a failed CAS
    /// observed that the value was not the expected one.
    Log,
}

/// One op as its source spells it.
pub(super) struct RawOp<'a, 'e> {
    pub(super) line: u64,
    pub(super) time: Option<u64>,
    pub(super) process: u64,
    pub(super) kind: Kind,
    /// The function's name without its colon; `None` when missing.
    pub(super) f: Option<&'a str>,
    pub(super) value: &'a Edn<'e>,
}

pub(super) struct Reader {
    builder: Builder,
    model: ModelKind,
    dialect: Dialect,
    /// Per process with an operation in progress: whether its invocation was an independent
    /// tuple (its completion is then one too).
    tuple: FxHashMap<u64, bool>,
}

impl Reader {
    pub(super) fn new(model: ModelKind, dialect: Dialect) -> Reader {
        Reader {
            builder: Builder::new(),
            model,
            dialect,
            tuple: FxHashMap::default(),
        }
    }

    /// Makes room for the operations of `text`, at most one per two lines: growing them by
    /// doubling would copy them all.
    pub(super) fn reserve_for(&mut self, text: &str) {
        self.builder.reserve_for(text);
    }

    pub(super) fn finish(self, initial: Option<Value>) -> History {
        let initial = match self.model {
            ModelKind::Register | ModelKind::CasRegister | ModelKind::MultiRegister => initial,
            _ => None,
        };
        let mut history = self.builder.finish(initial);
        history.model = self.model;
        history
    }

    pub(super) fn op(&mut self, op: RawOp<'_, '_>) -> Result<(), ReadError> {
        let at = |m: String| ReadError::at(op.line, m);
        let f = self.function(op.f).map_err(at)?;
        if op.kind == Kind::Invoke {
            let (key, value) = match split(f, op.value) {
                Some((k, v)) => (Some(k), v),
                None => (None, op.value),
            };
            let call = self.call(f, value).map_err(at)?;
            let tuple = key.is_some();
            let key: Cow<str> = match key {
                Some(k) => Cow::Owned(key_text(k).map_err(at)?),
                None => Cow::Borrowed(self.model.single_key()),
            };
            self.builder
                .invoke(op.line, op.time, op.process, &key, call)?;
            self.tuple.insert(op.process, tuple);
            return Ok(());
        }
        let Some(tuple) = self.tuple.remove(&op.process) else {
            if op.kind == Kind::Info {
                // An info with no invocation (Knossos keeps it as an op that changes nothing).
                return Ok(());
            }
            // The builder says what is wrong.
            let outcome = match op.kind {
                Kind::Ok => Outcome::Ok(None),
                _ => Outcome::Fail,
            };
            return self
                .builder
                .complete_call(op.line, op.time, op.process, f, None, outcome, None);
        };
        let outcome = match op.kind {
            Kind::Fail if self.dialect == Dialect::Log && f == "cas" => Outcome::PreconditionFailed,
            Kind::Fail => Outcome::Fail,
            Kind::Info => Outcome::Info,
            _ => return self.ok(op, f, tuple),
        };
        // Knossos keeps the invocation's value for these: the completion's is not read.
        self.builder
            .complete_call(op.line, op.time, op.process, f, None, outcome, None)
    }

    fn ok(&mut self, op: RawOp<'_, '_>, f: &str, tuple: bool) -> Result<(), ReadError> {
        let at = |m: String| ReadError::at(op.line, m);
        let (key, value) = if tuple {
            let (k, v) = split(f, op.value).ok_or_else(|| {
                at(format!(
                    "expected an independent tuple [key value], as in the invocation, not {}",
                    show(Some(op.value))
                ))
            })?;
            (Some(key_text(k).map_err(at)?), v)
        } else {
            (None, op.value)
        };
        let key = key.as_deref();
        let (line, time, process) = (op.line, op.time, op.process);
        let mut completed = None;
        let outcome = match (self.model, f) {
            (ModelKind::Register | ModelKind::CasRegister, "read") => {
                match scalar(value).map_err(|m| at(format!("read returned {m}")))? {
                    Some(v) => Outcome::Ok(Some(v)),
                    None if self.dialect == Dialect::Log => Outcome::Ok(None),
                    // Knossos: a read of nil tells nothing about the register. It did
                    // complete, though: the process goes on.
                    None => {
                        return self
                            .builder
                            .complete_uninformative_read(line, time, process, key);
                    }
                }
            }
            (ModelKind::Set, "read") => Outcome::Ok(match value {
                Edn::Nil => None,
                Edn::Vector(items) | Edn::List(items) => Some(list(items.iter()).map_err(at)?),
                Edn::Set(items) => Some(list(items.iter()).map_err(at)?),
                other => {
                    return Err(at(format!(
                        "a read of a set must return a collection, not {}",
                        show(Some(other))
                    )));
                }
            }),
            (_, "dequeue") => {
                Outcome::Ok(scalar(value).map_err(|m| at(format!("dequeue returned {m}")))?)
            }
            (_, "txn") => {
                completed = Some(Call::Txn(micro_ops(value).map_err(at)?));
                Outcome::Ok(None)
            }
            _ => Outcome::Ok(None),
        };
        self.builder
            .complete_call(line, time, process, f, key, outcome, completed)
    }

    /// The function's name as [`Call::name`] spells it, if the model has it.
    fn function(&self, f: Option<&str>) -> Result<&'static str, String> {
        let names: &[&'static str] = match self.model {
            ModelKind::Register => &["read", "write"],
            ModelKind::CasRegister => &["read", "write", "cas"],
            ModelKind::Mutex => &["acquire", "release"],
            ModelKind::Set => &["add", "read"],
            ModelKind::UnorderedQueue | ModelKind::FifoQueue => &["enqueue", "dequeue"],
            ModelKind::MultiRegister => &["txn"],
        };
        if let Some(name) = names.iter().find(|&&n| Some(n) == f) {
            return Ok(name);
        }
        if self.model == ModelKind::Register && f == Some("cas") {
            return Err("cas in a history checked as a register (use --model cas-register)".into());
        }
        let expected: Vec<String> = names.iter().map(|n| format!(":{n}")).collect();
        Err(format!(
            "unsupported :f {} in a {} history (expected {})",
            f.map_or_else(|| "(none)".to_owned(), |f| format!(":{f}")),
            self.model,
            expected.join(" or ")
        ))
    }

    /// The call an invocation of `f` with `value` (its tuple unwrapped) makes.
    fn call(&self, f: &str, value: &Edn) -> Result<Call, String> {
        Ok(match f {
            "read" => Call::Read,
            "write" => Call::Write(required(value).map_err(|m| format!("write of {m}"))?),
            "cas" => cas_call(value)?,
            "acquire" => Call::Acquire,
            "release" => Call::Release,
            "add" => Call::Add(
                scalar(value)
                    .and_then(|v| v.ok_or_else(|| "nil: an element is required".into()))
                    .map_err(|m| format!("add of {m}"))?,
            ),
            "enqueue" => Call::Enqueue(
                scalar(value)
                    .and_then(|v| v.ok_or_else(|| "nil: an element is required".into()))
                    .map_err(|m| format!("enqueue of {m}"))?,
            ),
            "dequeue" => Call::Dequeue,
            // Some tests invoke a read-only transaction as `:value :read`: what it reads is
            // known only when it completes.
            "txn" if matches!(value, Edn::Nil | Edn::Key(_)) => Call::Txn(Vec::new()),
            "txn" => Call::Txn(micro_ops(value)?),
            other => unreachable!("{other} is not a function of any model"),
        })
    }
}

/// Splits Jepsen's `independent` tuples, `[key value]` or a
/// `#jepsen.independent.Tuple{:key k :value v}` record, when `value` of an op of `f` is one.
fn split<'a, 'e>(f: &str, value: &'a Edn<'e>) -> Option<(&'a Edn<'e>, &'a Edn<'e>)> {
    if let Edn::Tagged(tag, inner) = value
        && tag.ends_with("Tuple")
        && let (Some(k), Some(v)) = (get(inner, "key"), get(inner, "value"))
    {
        return Some((k, v));
    }
    let Edn::Vector(items) = value else {
        return None;
    };
    let [k, v] = &items[..] else {
        return None;
    };
    let tuple = match f {
        // [key [expected new]], not [expected new].
        "cas" => matches!(v, Edn::Vector(pair) if pair.len() == 2),
        // [key [[:read k v] ...]], not a transaction of two micro-operations.
        "txn" => !matches!(k, Edn::Vector(_) | Edn::List(_)),
        _ => true,
    };
    tuple.then_some((k, v))
}

pub(super) fn cas_call(value: &Edn) -> Result<Call, String> {
    match value {
        Edn::Vector(items) | Edn::List(items) if items.len() == 2 => Ok(Call::Cas {
            expected: scalar(&items[0]).map_err(|m| format!("cas expecting {m}"))?,
            new: required(&items[1]).map_err(|m| format!("cas to {m}"))?,
        }),
        other => Err(format!(
            "cas value must be [expected new], not {}",
            show(Some(other))
        )),
    }
}

fn key_text(k: &Edn) -> Result<String, String> {
    match scalar(k)? {
        Some(Value::Str(s)) => Ok(s),
        Some(Value::Int(i)) => Ok(i.to_string()),
        Some(other) => Ok(other.to_string()),
        None => Err("an independent key must not be nil".into()),
    }
}

/// A transaction's micro-operations: `[[:read k v] [:write k v] ...]` (also `:r` and `:w`).
fn micro_ops(value: &Edn) -> Result<Vec<MicroOp>, String> {
    let (Edn::Vector(ops) | Edn::List(ops)) = value else {
        return Err(format!(
            "a txn's value must be a list of [:read k v] / [:write k v] micro-operations, not {}",
            show(Some(value))
        ));
    };
    ops.iter()
        .map(|m| {
            let (Edn::Vector(parts) | Edn::List(parts)) = m else {
                return Err(format!(
                    "a micro-operation must be [f k v], not {}",
                    show(Some(m))
                ));
            };
            let [Edn::Key(f), k, v] = &parts[..] else {
                return Err(format!(
                    "a micro-operation must be [f k v], not {}",
                    show(Some(m))
                ));
            };
            let register = scalar(k)?.ok_or("a micro-operation's register must not be nil")?;
            let value = scalar(v)?;
            match f.as_ref() {
                "read" | "r" => Ok(MicroOp::Read { register, value }),
                "write" | "w" => Ok(MicroOp::Write { register, value }),
                other => Err(format!(
                    "unsupported micro-operation :{other} (expected :read or :write)"
                )),
            }
        })
        .collect()
}
