//! Knossos's `multi-register`: registers read and written together by transactions. A
//! transaction's micro-operations apply in order; a read of `nil` constrains nothing.
//!
//! | operation | `ok` | `info` | `fail` |
//! |---|---|---|---|
//! | txn | took effect at once, its reads as completed | may have, at any point after invocation (its writes; its reads returned nothing) | dropped |
//!
//! The whole history is one object: transactions span registers, so registers cannot be checked
//! apart (Jepsen's `independent` tuples, `[key txn]`, make separate multi-registers).

use rustc_hash::FxHashMap;

use super::intern::{Elements, States};
use super::{Compiled, KeyOp, Model, StateId};
use crate::explain::{Explanation, Failure};
use crate::history::{Call, History, MicroOp, Name, Operation, Outcome, Value};

/// Element id of `nil`.
const NIL: u32 = 0;

/// An index into the model's transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Step(u32);

/// One micro-operation, interned: register index and value id.
#[derive(Clone, Copy, Debug)]
enum Micro {
    Read(usize, u32),
    Write(usize, u32),
}

/// A state is the value id of every register, by register index.
pub(crate) struct MultiRegister {
    registers: Elements,
    /// Value ids; id [`NIL`] is reserved for `nil` (`values` holds a placeholder there).
    values: Elements,
    txns: Vec<Vec<Micro>>,
    states: States,
    after: FxHashMap<(StateId, Step), Option<StateId>>,
    initial: Option<Value>,
    scratch: Vec<u32>,
}

impl MultiRegister {
    pub(crate) fn new(initial: &Option<Value>) -> MultiRegister {
        let mut values = Elements::default();
        values.intern(&Value::List(Vec::new()));
        MultiRegister {
            registers: Elements::default(),
            values,
            txns: Vec::new(),
            states: States::default(),
            after: FxHashMap::default(),
            initial: initial.clone(),
            scratch: Vec::new(),
        }
    }

    fn value_id(&mut self, v: &Option<Value>) -> u32 {
        v.as_ref().map_or(NIL, |v| self.values.intern(v))
    }

    fn value(&self, id: u32) -> Option<&Value> {
        (id != NIL).then(|| self.values.get(id))
    }

    /// `x = 1, y = nil`, registers in order of first appearance.
    fn assignments(&self, state: StateId) -> String {
        let shown: Vec<String> = self
            .states
            .get(state)
            .iter()
            .enumerate()
            .map(|(r, &v)| {
                format!(
                    "{} = {}",
                    name(self.registers.get(r as u32)),
                    nil(self.value(v))
                )
            })
            .collect();
        if shown.is_empty() {
            "no registers".to_owned()
        } else {
            shown.join(", ")
        }
    }
}

fn name(register: &Value) -> String {
    Name(register).to_string()
}

fn nil(v: Option<&Value>) -> String {
    v.map_or_else(|| "nil".to_owned(), Value::to_string)
}

impl Model for MultiRegister {
    type Step = Step;

    fn compile(&mut self, op: &Operation) -> Option<Compiled<Step>> {
        let Call::Txn(micro) = &op.call else {
            panic!("a {} in a multi-register history", op.call.name());
        };
        let mut txn = Vec::with_capacity(micro.len());
        for m in micro {
            let register = self.registers.intern(m.register()) as usize;
            match m {
                // A read of nil constrains nothing.
                MicroOp::Read { value: None, .. } => {}
                MicroOp::Read { value, .. } => {
                    txn.push(Micro::Read(register, self.value_id(value)));
                }
                MicroOp::Write { value, .. } => {
                    txn.push(Micro::Write(register, self.value_id(value)));
                }
            }
        }
        if txn.is_empty() {
            return None;
        }
        let step = Step(u32::try_from(self.txns.len()).expect("fewer than 2^32 transactions"));
        self.txns.push(txn);
        Compiled::by_outcome(op, step)
    }

    /// An `info` transaction (it only writes: its reads returned nothing) none of whose writes
    /// any `ok` transaction reads can only spoil reads: dropped. The only writer of a value a
    /// transaction read (other than the initial one) took effect before that reader completed.
    fn tighten(&mut self, ops: &mut Vec<KeyOp<Step>>) {
        let initial = self.initial.clone();
        let initial = self.value_id(&initial);
        let mut writers: FxHashMap<(usize, u32), usize> = FxHashMap::default();
        let mut readers: FxHashMap<(usize, u32), Vec<u64>> = FxHashMap::default();
        for op in ops.iter() {
            let txn = &self.txns[op.step.0 as usize];
            let mut written = Vec::new();
            for &m in txn {
                match m {
                    Micro::Write(r, v) => {
                        if !written.contains(&(r, v)) {
                            *writers.entry((r, v)).or_default() += 1;
                            written.push((r, v));
                        }
                    }
                    // Reads after the transaction's own write of the register see that write.
                    Micro::Read(r, v) if !written.iter().any(|&(w, _)| w == r) => {
                        if let Some(ret) = op.ret {
                            readers.entry((r, v)).or_default().push(ret);
                        }
                    }
                    Micro::Read(..) => {}
                }
            }
        }
        let txns = &self.txns;
        let writes = |op: &KeyOp<Step>| {
            txns[op.step.0 as usize].iter().filter_map(|&m| match m {
                Micro::Write(r, v) => Some((r, v)),
                Micro::Read(..) => None,
            })
        };
        ops.retain(|op| op.ret.is_some() || writes(op).any(|w| readers.contains_key(&w)));
        for op in ops.iter_mut() {
            if op.ret.is_none() {
                op.ret = writes(op)
                    .filter(|&(r, v)| v != initial && writers[&(r, v)] == 1)
                    .filter_map(|w| readers.get(&w))
                    .flatten()
                    .copied()
                    .filter(|&r| r > op.call)
                    .min();
            }
        }
    }

    fn initial(&mut self) -> StateId {
        let initial = self.initial.clone();
        let v = self.value_id(&initial);
        let registers = vec![v; self.registers.len()];
        self.states.intern(&registers)
    }

    fn apply(&mut self, state: StateId, step: Step) -> Option<StateId> {
        if let Some(&next) = self.after.get(&(state, step)) {
            return next;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(self.states.get(state));
        let mut ok = true;
        for &m in &self.txns[step.0 as usize] {
            match m {
                Micro::Read(r, v) if self.scratch[r] != v => {
                    ok = false;
                    break;
                }
                Micro::Read(..) => {}
                Micro::Write(r, v) => self.scratch[r] = v,
            }
        }
        let next = ok.then(|| {
            let scratch = std::mem::take(&mut self.scratch);
            let next = self.states.intern(&scratch);
            self.scratch = scratch;
            next
        });
        self.after.insert((state, step), next);
        next
    }

    fn describe(&self, state: StateId) -> String {
        self.assignments(state)
    }

    fn to_json(&self, state: StateId) -> serde_json::Value {
        let registers = self.states.get(state).iter().enumerate().map(|(r, &v)| {
            let key = match self.registers.get(r as u32) {
                Value::Str(s) => s.clone(),
                other => other.to_string(),
            };
            let value = serde_json::to_value(self.value(v)).expect("values serialise");
            (key, value)
        });
        serde_json::Value::Object(registers.collect())
    }

    fn refusal(&self, state: StateId, step: Step) -> String {
        let mut registers = self.states.get(state).to_vec();
        for &m in &self.txns[step.0 as usize] {
            match m {
                Micro::Read(r, v) if registers[r] != v => {
                    return format!(
                        "it read {} = {}, but the register held {} (the registers held {})",
                        name(self.registers.get(r as u32)),
                        nil(self.value(v)),
                        nil(self.value(registers[r])),
                        self.assignments(state)
                    );
                }
                Micro::Read(..) => {}
                Micro::Write(r, v) => registers[r] = v,
            }
        }
        format!("the registers held {}", self.assignments(state))
    }

    fn explain(&self, f: &Failure<'_>, state: StateId) -> Option<Explanation> {
        let c = f.op(f.culprit);
        let Call::Txn(micro) = &c.call else {
            return None;
        };
        let what = format!(
            "txn on {} by process {} {}",
            f.key(),
            c.process,
            f.when(c.invoke, c.complete)
        );
        // Reads of values the transaction had not written itself.
        let mut written_here: Vec<&Value> = Vec::new();
        let mut reads: Vec<(&Value, &Value)> = Vec::new();
        for m in micro {
            match m {
                MicroOp::Write { register, .. } => written_here.push(register),
                MicroOp::Read {
                    register,
                    value: Some(v),
                } if !written_here.contains(&register) => reads.push((register, v)),
                MicroOp::Read { .. } => {}
            }
        }
        if reads.is_empty() {
            return None;
        }
        for &(register, v) in &reads {
            let initial = f.history.initial.as_ref() == Some(v);
            let written = f.effective().any(|i| {
                i != f.culprit
                    && matches!(&f.op(i).call, Call::Txn(ops) if ops.iter().any(|m| matches!(m,
                        MicroOp::Write { register: r, value: Some(x) } if r == register && x == v)))
            });
            if !initial && !written {
                return Some(Explanation {
                    sentence: format!(
                        "{what} read {} = {v}, but no transaction ever wrote {v} to {}",
                        name(register),
                        name(register)
                    ),
                    missed: None,
                });
            }
        }
        let seen: Vec<String> = reads
            .iter()
            .map(|(r, v)| format!("{} = {v}", name(r)))
            .collect();
        let after = format!(
            "after the longest explainable order of {}, the registers held {}",
            crate::explain::counted(f.prefix.len() as u64, "operation", "operations"),
            self.assignments(state)
        );
        let sentence = if reads.len() > 1 {
            format!(
                "{what} read a torn state: {}, values the registers never held together at any \
                 point of the transaction in any order of the transactions ({after})",
                seen.join(", ")
            )
        } else {
            format!(
                "{what} read {}, which no order of the concurrent transactions explains ({after})",
                seen[0]
            )
        };
        Some(Explanation {
            sentence,
            missed: None,
        })
    }

    fn sources(history: &History, ops: &[u32]) -> Vec<(u32, Vec<Vec<u32>>)> {
        let op = |i: u32| &history.ops[i as usize];
        let mut writers: FxHashMap<(&Value, &Value), Vec<u32>> = FxHashMap::default();
        for &i in ops {
            if let Call::Txn(micro) = &op(i).call
                && op(i).outcome != Outcome::Fail
            {
                for m in micro {
                    if let MicroOp::Write {
                        register,
                        value: Some(v),
                    } = m
                    {
                        writers.entry((register, v)).or_default().push(i);
                    }
                }
            }
        }
        let mut needs = Vec::new();
        for &i in ops {
            let (Call::Txn(micro), Outcome::Ok(_)) = (&op(i).call, &op(i).outcome) else {
                continue;
            };
            let groups: Vec<Vec<u32>> = micro
                .iter()
                .filter_map(|m| match m {
                    MicroOp::Read {
                        register,
                        value: Some(v),
                    } if history.initial.as_ref() != Some(v) => writers
                        .get(&(register, v))
                        .map(|w| w.iter().copied().filter(|&j| j != i).collect()),
                    _ => None,
                })
                .filter(|g: &Vec<u32>| !g.is_empty())
                .collect();
            if !groups.is_empty() {
                needs.push((i, groups));
            }
        }
        needs
    }
}
