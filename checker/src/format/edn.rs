//! EDN histories: Jepsen / Knossos `history.edn` files and Porcupine's key-value logs.
//!
//! Both are sequences of op maps such as `{:type :invoke, :f :cas, :value [1 2], :process 3}`
//! (or `#jepsen.history.Op{...}` records), either one per line or inside one top-level vector or
//! list. They differ in meaning:
//! - Knossos (`--format edn`): any of Knossos's models, read as Knossos reads them
//!   (`knossos.rs`): `:fail` operations did not happen, and a register read that completed with
//!   `nil` carries no information. Keys come from Jepsen's `independent` tuples
//!   (`:value [key value]`); a history without tuples is one object.
//! - Porcupine (`--format porcupine-kv`): `:key` names the key, `:f` is get, put or append, and a
//!   missing key reads as the empty string.

use std::borrow::Cow;

use clojure_reader::edn::{self, Edn};

use super::edn_scan::{self, Atom, Op};
use super::knossos::{Dialect, RawOp, Reader};
use crate::builder::Builder;
use crate::error::ReadError;
use crate::history::{Call, Func, History, Outcome, Value};
use crate::model::ModelKind;

static NIL: Edn<'static> = Edn::Nil;

pub(super) fn read_knossos(
    text: &str,
    model: ModelKind,
    initial: Option<Value>,
) -> Result<History, ReadError> {
    knossos(Forms::new(text), model, initial)
}

fn knossos(
    mut forms: Forms,
    model: ModelKind,
    initial: Option<Value>,
) -> Result<History, ReadError> {
    let mut reader = Reader::new(model, Dialect::Edn);
    reader.reserve_for(forms.text);
    let mut op = Op::default();
    let mut names = Names::default();
    while let Some(line) = forms.next_op(&mut op)? {
        let Some(header) = header(&op, line, &mut names)? else {
            continue;
        };
        let value = op.value.as_ref().map_or(Cow::Borrowed(&NIL), Atom::to_edn);
        reader.op(RawOp {
            line,
            time: header.time,
            process: header.process,
            kind: header.kind,
            f: op.f.as_ref().and_then(Atom::keyword),
            value: &value,
        })?;
    }
    Ok(reader.finish(initial))
}

pub(super) fn read_porcupine_kv(text: &str) -> Result<History, ReadError> {
    porcupine_kv(Forms::new(text))
}

fn porcupine_kv(mut forms: Forms) -> Result<History, ReadError> {
    let mut builder = Builder::new();
    builder.reserve_for(forms.text);
    let mut op = Op::default();
    let mut names = Names::default();
    while let Some(line) = forms.next_op(&mut op)? {
        let at = |m: String| ReadError::at(line, m);
        let Some(header) = header(&op, line, &mut names)? else {
            continue;
        };
        let func = match op.f.as_ref().and_then(Atom::keyword) {
            Some("get") => Func::Read,
            Some("put") => Func::Write,
            Some("append") => Func::Append,
            _ => {
                return Err(at(format!(
                    "unsupported :f {} (expected :get, :put or :append)",
                    show_atom(op.f.as_ref())
                )));
            }
        };
        let key = match &op.key {
            Some(Atom::Str(k)) => k.as_ref(),
            other => {
                return Err(at(format!(
                    ":key must be a string, not {}",
                    show_atom(other.as_ref())
                )));
            }
        };
        let value = op.value.as_ref().unwrap_or(&Atom::Nil);
        match header.kind {
            Kind::Invoke => {
                let call = match func {
                    Func::Read => Call::Read,
                    Func::Write => {
                        Call::Write(value.required().map_err(|m| at(format!("put of {m}")))?)
                    }
                    _ => Call::Append(value.required().map_err(|m| at(format!("append of {m}")))?),
                };
                builder.invoke(line, header.time, header.process, key, call)?;
            }
            kind => {
                let outcome = match kind {
                    // A missing key reads as the empty string.
                    Kind::Ok if func == Func::Read => Outcome::Ok(Some(
                        value
                            .scalar()
                            .map_err(|m| at(format!("get returned {m}")))?
                            .unwrap_or_else(|| Value::Str(String::new())),
                    )),
                    Kind::Ok => Outcome::Ok(None),
                    Kind::Fail => Outcome::Fail,
                    _ => Outcome::Info,
                };
                builder.complete(line, header.time, header.process, func, Some(key), outcome)?;
            }
        }
    }
    Ok(builder.finish(Some(Value::Str(String::new()))))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

struct Header {
    process: u64,
    kind: Kind,
    time: Option<u64>,
}

/// Processes named otherwise than by a non-negative integer (`:a`, `"client-1"`, `-1`), which
/// Knossos accepts as any value: numbered from [`Names::FIRST`] in order of appearance.
#[derive(Default)]
struct Names(rustc_hash::FxHashMap<String, u64>);

impl Names {
    const FIRST: u64 = 1_000_000_000;

    fn id(&mut self, name: String) -> u64 {
        let next = Names::FIRST + self.0.len() as u64;
        *self.0.entry(name).or_insert(next)
    }
}

/// The fields every op shares. `None` for the nemesis's ops, which the checker ignores.
fn header(op: &Op, line: u64, names: &mut Names) -> Result<Option<Header>, ReadError> {
    let at = |m: String| ReadError::at(line, m);
    let process = match &op.process {
        Some(Atom::Int(p)) if *p >= 0 && (*p as u64) < Names::FIRST => *p as u64,
        Some(Atom::Key(k)) if k == "nemesis" => return Ok(None),
        None | Some(Atom::Nil) => {
            return Err(at(":process is missing: every operation needs one".into()));
        }
        Some(other) => names.id(other.to_edn().to_string()),
    };
    let kind = match op.kind.as_ref().and_then(Atom::keyword) {
        Some("invoke") => Kind::Invoke,
        Some("ok") => Kind::Ok,
        Some("fail") => Kind::Fail,
        Some("info") => Kind::Info,
        _ => {
            return Err(at(format!(
                ":type must be :invoke, :ok, :fail or :info, not {}",
                show_atom(op.kind.as_ref())
            )));
        }
    };
    let time = match op.time {
        Some(Atom::Int(t)) if t >= 0 => Some(t as u64),
        _ => None,
    };
    Ok(Some(Header {
        process,
        kind,
        time,
    }))
}

pub(super) fn required(v: &Edn) -> Result<Value, String> {
    scalar(v)?.ok_or_else(|| "nil: a value is required".into())
}

/// A value as the models compare it: integers as integers; strings, keywords, symbols and
/// booleans by their text; vectors, lists and sets as lists of values; maps, floats, ratios and
/// characters by their EDN text (Knossos compares any values; maps and sets print in a fixed
/// order, so equal ones have equal text). `None` for `nil`.
pub(super) fn scalar(v: &Edn) -> Result<Option<Value>, String> {
    Ok(Some(match v {
        Edn::Nil => return Ok(None),
        Edn::Int(i) => Value::Int(*i),
        Edn::Str(s) => Value::Str(s.to_string()),
        Edn::Key(k) => Value::Str(format!(":{k}")),
        Edn::Symbol(s) => Value::Str(s.to_string()),
        Edn::Bool(b) => Value::Str(b.to_string()),
        Edn::Vector(items) | Edn::List(items) => list(items.iter())?,
        Edn::Set(items) => list(items.iter())?,
        Edn::Map(_) | Edn::Tagged(..) | Edn::Double(_) | Edn::Rational(_) | Edn::Char(_) => {
            Value::Str(v.to_string())
        }
        other => {
            return Err(format!(
                "{}: not a value the checker can compare",
                show(Some(other))
            ));
        }
    }))
}

/// The items of a collection, as a list value; `nil` inside one is refused.
pub(super) fn list<'a, 'e: 'a>(items: impl Iterator<Item = &'a Edn<'e>>) -> Result<Value, String> {
    items
        .map(|i| scalar(i)?.ok_or_else(|| "nil inside a collection".to_owned()))
        .collect::<Result<Vec<Value>, String>>()
        .map(Value::List)
}

/// The field `key` of an op map, or of a record such as `#jepsen.history.Op{...}`.
pub(super) fn get<'a, 'e>(map: &'a Edn<'e>, key: &'static str) -> Option<&'a Edn<'e>> {
    let key = Edn::Key(Cow::Borrowed(key));
    match map {
        Edn::Tagged(_, record) => record.get(&key),
        map => map.get(&key),
    }
}

/// [`show`] for a field's value.
fn show_atom(v: Option<&Atom>) -> String {
    show(v.map(Atom::to_edn).as_deref())
}

pub(super) fn show(v: Option<&Edn>) -> String {
    match v {
        None => "nothing".into(),
        Some(v) => {
            let s = v.to_string();
            if s.len() > 60 {
                format!("{}...", &s[..s.floor_char_boundary(60)])
            } else {
                s
            }
        }
    }
}

/// Reads the op forms of an EDN text one at a time, with the line each starts on: the top-level
/// forms, and the elements of any top-level vector or list. Skips whitespace, commas, `;`
/// comments and `#_` discarded forms. A form that is not an op map (or record) is an error.
struct Forms<'a> {
    text: &'a str,
    pos: usize,
    line: u64,
    /// The closing delimiter of the top-level collection being walked.
    inside: Option<char>,
    /// Whether op maps of the common shape are read by [`edn_scan`] (always, but in the tests
    /// that compare it with the EDN reader).
    scan: bool,
}

impl<'a> Forms<'a> {
    fn new(text: &'a str) -> Forms<'a> {
        Forms {
            text,
            pos: 0,
            line: 1,
            inside: None,
            scan: true,
        }
    }

    /// Forms read by the EDN reader alone.
    #[cfg(test)]
    fn general(text: &'a str) -> Forms<'a> {
        Forms {
            scan: false,
            ..Forms::new(text)
        }
    }

    fn advance(&mut self, n: usize) {
        let consumed = &self.text[self.pos..self.pos + n];
        self.line += consumed.bytes().filter(|&b| b == b'\n').count() as u64;
        self.pos += n;
    }

    /// Skips blanks and comments; returns the next character.
    fn skip(&mut self) -> Result<Option<char>, ReadError> {
        loop {
            let rest = &self.text[self.pos..];
            let Some(c) = rest.chars().next() else {
                return Ok(None);
            };
            if c.is_whitespace() || c == ',' {
                self.advance(c.len_utf8());
            } else if c == ';' {
                self.advance(rest.find('\n').unwrap_or(rest.len()));
            } else if rest.starts_with("#_") {
                self.advance(2);
                self.read_form(&mut Op::default())?;
            } else {
                return Ok(Some(c));
            }
        }
    }

    /// Reads the form at the current position into `op`: `Ok(None)` for an op map (or record),
    /// or the form as the EDN reader read it when it is anything else.
    fn read_form(&mut self, op: &mut Op<'a>) -> Result<Option<Edn<'a>>, ReadError> {
        let rest = &self.text[self.pos..];
        // Op maps are nearly always flat and on one line: read those directly, and leave
        // anything else (nesting beyond vectors, other tags, sets, odd spacing) to the EDN reader.
        if self.scan
            && let Some(used) = edn_scan::scan(rest, op)
        {
            // A scanned map is on one line: no newline to count.
            self.pos += used;
            return Ok(None);
        }
        let (form, remaining) = edn::read(rest).map_err(|e| {
            let at = self.line + e.line.unwrap_or(1) as u64 - 1;
            ReadError::at(at, format!("malformed EDN: {:?}", e.code))
        })?;
        self.advance(rest.len() - remaining.len());
        if matches!(form, Edn::Map(_) | Edn::Tagged(..)) {
            *op = Op::from_edn(&form);
            return Ok(None);
        }
        Ok(Some(form))
    }

    /// Reads the next op into `op` and returns the line it starts on; `None` at the end.
    fn next_op(&mut self, op: &mut Op<'a>) -> Result<Option<u64>, ReadError> {
        loop {
            let Some(c) = self.skip()? else {
                return match self.inside {
                    Some(close) => Err(ReadError::at(
                        self.line,
                        format!("missing closing {close:?} at end of input"),
                    )),
                    None => Ok(None),
                };
            };
            match (self.inside, c) {
                (None, '[' | '(') => {
                    self.inside = Some(if c == '[' { ']' } else { ')' });
                    self.advance(1);
                }
                (Some(close), c) if c == close => {
                    self.inside = None;
                    self.advance(1);
                }
                _ => {
                    let line = self.line;
                    return match self.read_form(op)? {
                        None => Ok(Some(line)),
                        Some(other) => Err(ReadError::at(
                            line,
                            format!("expected an op map, found {}", show(Some(&other))),
                        )),
                    };
                }
            }
        }
    }
}

/// Parses one EDN value (used by the Jepsen log reader for the value column).
pub(super) fn parse_value(text: &str) -> Result<Edn<'_>, String> {
    edn::read_string(text).map_err(|e| format!("malformed EDN value {text:?}: {:?}", e.code))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Third lines of a history (after a completed put or write by process 0), of every shape
    /// the readers meet: common, tricky and malformed.
    const LINES: &[&str] = &[
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value "v"}"#,
        r#"{:value 3, :key "a", :f :F, :type :invoke, :process 1}"#,
        r#"{:process 1 :type :invoke :f :F :key "a" :value -3 :time 5 :index 3}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a\"b", :value "q\\z\n"}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value "bad\x"}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value 007}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value 1.5}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value [1 2]}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value [:k [1 2]]}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value :kw}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value true}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value sym}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value nil}"#,
        r#"{:process 1, :type :invoke, :f :F, :key 3, :value 4}"#,
        r#"{:process 1, :type :invoke, :f :F, :value 4}"#,
        r#"{:process -1, :type :invoke, :f :F, :key "a", :value 4}"#,
        r#"{:process :nemesis, :type :info, :f :start, :value nil}"#,
        r#"{:process :other, :type :info, :f :start}"#,
        r#"{:process "1", :type :invoke, :f :F, :key "a"}"#,
        r#"{:process 1, :type :begin, :f :F, :key "a"}"#,
        r#"{:process 1, :type "invoke", :f :F, :key "a"}"#,
        r#"{:process 1, :type :invoke, :f :del, :key "a"}"#,
        r#"{:process 1, :type :invoke, :f "F", :key "a"}"#,
        r#"{:process 1, :type :invoke, :key "a"}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value 4, :process 2}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value 4, :time -4}"#,
        r#"{:process 99999999999999999999, :type :invoke, :f :F, :key "a", :value 4}"#,
        r#"#jepsen.history.Op{:process 1, :type :invoke, :f :F, :key "a", :value 4}"#,
        r#"#jepsen.history.Op {:process 1, :type :invoke, :f :F, :key "a", :value 4}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value 4"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value 4}}"#,
        r#"{:process 1, :type :invoke, :f :F, :key "a", :value 4, :extra {:a [1 #{2}]}}"#,
        "{:process 1, :type :invoke,\n :f :F, :key \"a\", :value 4}",
        "{:process 1, :type :invoke, :f :F, :key \"a\", :value 4} ; comment",
        "#_ {:process 1} {:process 1, :type :invoke, :f :F, :key \"a\", :value 4}",
        "{:process 1, :type :invoke, :f :F, :key \"a\", :value 4}\r",
        "[1 2 3]",
        ":kw",
        "{}",
    ];

    /// The next line, completing process 1's operation (or not).
    const COMPLETIONS: &[&str] = &[
        r#"{:process 1, :type :ok, :f :F, :key "a", :value 4}"#,
        r#"{:process 1, :type :ok, :f :G, :key "a", :value nil}"#,
        r#"{:process 1, :type :ok, :f :G, :key "a", :value [1 2]}"#,
        r#"{:process 1, :type :fail, :f :F, :key "a"}"#,
        r#"{:process 1, :type :info, :f :F, :key "b"}"#,
    ];

    /// A history's reading, or its error, as text.
    fn outcome(r: Result<History, ReadError>) -> String {
        match r {
            Ok(h) => format!("{h:?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn readers_give_the_same_histories_and_errors_with_the_scanner_as_without() {
        let mut errors = 0;
        for (write, read, model) in [
            (":put", ":get", None),
            (":write", ":read", Some(ModelKind::CasRegister)),
            (":write", ":read", Some(ModelKind::Register)),
        ] {
            for line in LINES {
                for completion in COMPLETIONS {
                    let body = format!(
                        "{{:process 0, :type :invoke, :f :F, :key \"a\", :value 1}}\n\
                         {{:process 0, :type :ok, :f :F, :key \"a\", :value 1}}\n\
                         {line}\n{completion}\n"
                    )
                    .replace(":F", write)
                    .replace(":G", read);
                    for text in [
                        body.clone(),
                        format!("[{body}]"),
                        body.replace('\n', "\r\n"),
                    ] {
                        let (fast, general) = match model {
                            None => (
                                porcupine_kv(Forms::new(&text)),
                                porcupine_kv(Forms::general(&text)),
                            ),
                            Some(m) => (
                                knossos(Forms::new(&text), m, None),
                                knossos(Forms::general(&text), m, None),
                            ),
                        };
                        let fast = outcome(fast);
                        errors += usize::from(fast.starts_with("error"));
                        assert_eq!(fast, outcome(general), "{text}");
                    }
                }
            }
        }
        // Both readings are exercised.
        assert!(errors > 300 && errors < 1500, "{errors} errors");
    }
}
