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
    let mut reader = Reader::new(model, Dialect::Edn);
    for form in Forms::new(text) {
        let (line, op) = form?;
        let Some(header) = header(&op, line)? else {
            continue;
        };
        reader.op(RawOp {
            line,
            time: header.time,
            process: header.process,
            kind: header.kind,
            f: op.keyword("f"),
            value: op.get("value").unwrap_or(&NIL),
        })?;
    }
    Ok(reader.finish(initial))
}

pub(super) fn read_porcupine_kv(text: &str) -> Result<History, ReadError> {
    let mut builder = Builder::new();
    for form in Forms::new(text) {
        let (line, op) = form?;
        let at = |m: String| ReadError::at(line, m);
        let Some(header) = header(&op, line)? else {
            continue;
        };
        let func = match op.keyword("f") {
            Some("get") => Func::Read,
            Some("put") => Func::Write,
            Some("append") => Func::Append,
            _ => {
                return Err(at(format!(
                    "unsupported :f {} (expected :get, :put or :append)",
                    show(op.get("f"))
                )));
            }
        };
        let key = match op.get("key") {
            Some(Edn::Str(k)) => k.as_ref(),
            other => return Err(at(format!(":key must be a string, not {}", show(other)))),
        };
        let value = op.get("value").unwrap_or(&NIL);
        match header.kind {
            Kind::Invoke => {
                let call = match func {
                    Func::Read => Call::Read,
                    Func::Write => {
                        Call::Write(required(value).map_err(|m| at(format!("put of {m}")))?)
                    }
                    _ => Call::Append(required(value).map_err(|m| at(format!("append of {m}")))?),
                };
                builder.invoke(line, header.time, header.process, key, call)?;
            }
            kind => {
                let outcome = match kind {
                    // A missing key reads as the empty string.
                    Kind::Ok if func == Func::Read => Outcome::Ok(Some(
                        scalar(value)
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

/// The fields every op shares. `None` for the nemesis's ops, which the checker ignores.
fn header(op: &Form, line: u64) -> Result<Option<Header>, ReadError> {
    let at = |m: String| ReadError::at(line, m);
    if let Form::Edn(op) = op
        && !matches!(op, Edn::Map(_) | Edn::Tagged(..))
    {
        return Err(at(format!("expected an op map, found {}", show(Some(op)))));
    }
    let process = match op.get("process") {
        Some(Edn::Int(p)) if *p >= 0 => *p as u64,
        Some(Edn::Key(k)) if k == "nemesis" => return Ok(None),
        other => {
            return Err(at(format!(
                ":process must be a non-negative integer or :nemesis, not {}",
                show(other)
            )));
        }
    };
    let kind = match op.keyword("type") {
        Some("invoke") => Kind::Invoke,
        Some("ok") => Kind::Ok,
        Some("fail") => Kind::Fail,
        Some("info") => Kind::Info,
        _ => {
            return Err(at(format!(
                ":type must be :invoke, :ok, :fail or :info, not {}",
                show(op.get("type"))
            )));
        }
    };
    let time = match op.get("time") {
        Some(Edn::Int(t)) if *t >= 0 => Some(*t as u64),
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

pub(super) fn scalar(v: &Edn) -> Result<Option<Value>, String> {
    Ok(Some(match v {
        Edn::Nil => return Ok(None),
        Edn::Int(i) => Value::Int(*i),
        Edn::Str(s) => Value::Str(s.to_string()),
        Edn::Key(k) => Value::Str(format!(":{k}")),
        Edn::Symbol(s) => Value::Str(s.to_string()),
        Edn::Bool(b) => Value::Str(b.to_string()),
        other => {
            return Err(format!(
                "{}: values must be integers, strings, keywords or nil",
                show(Some(other))
            ));
        }
    }))
}

/// The field `key` of an op map, or of a record such as `#jepsen.history.Op{...}`.
pub(super) fn get<'a, 'e>(map: &'a Edn<'e>, key: &'static str) -> Option<&'a Edn<'e>> {
    let key = Edn::Key(Cow::Borrowed(key));
    match map {
        Edn::Tagged(_, record) => record.get(&key),
        map => map.get(&key),
    }
}

/// One op form: a flat op map read directly, or any other form as the EDN reader read it.
// One form at a time lives on the stack; boxing the flat map would cost the allocation per line
// it exists to avoid.
#[allow(clippy::large_enum_variant)]
enum Form<'a> {
    Flat(Flat<'a>),
    Edn(Edn<'a>),
}

/// The most fields a flat op map may have (Jepsen's ops have up to ten); a longer one goes to
/// the EDN reader.
const FLAT_FIELDS: usize = 12;

/// A flat op map's fields in the order written, without a map: a line costs no allocation beyond
/// the vectors in it.
struct Flat<'a> {
    len: usize,
    keys: [&'a str; FLAT_FIELDS],
    values: [Edn<'a>; FLAT_FIELDS],
}

impl<'a> Form<'a> {
    /// The field `key` (as [`get`]).
    fn get(&self, key: &'static str) -> Option<&Edn<'a>> {
        match self {
            Form::Flat(f) => f.keys[..f.len]
                .iter()
                .position(|k| *k == key)
                .map(|i| &f.values[i]),
            Form::Edn(op) => get(op, key),
        }
    }

    fn keyword(&self, key: &'static str) -> Option<&str> {
        match self.get(key) {
            Some(Edn::Key(k)) => Some(k),
            _ => None,
        }
    }
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

/// Iterates the op forms of an EDN text with the line each starts on: the top-level forms, and
/// the elements of any top-level vector or list. Skips whitespace, commas, `;` comments and
/// `#_` discarded forms.
struct Forms<'a> {
    text: &'a str,
    pos: usize,
    line: u64,
    /// The closing delimiter of the top-level collection being walked.
    inside: Option<char>,
    done: bool,
}

impl<'a> Forms<'a> {
    fn new(text: &'a str) -> Forms<'a> {
        Forms {
            text,
            pos: 0,
            line: 1,
            inside: None,
            done: false,
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
                self.read_form()?;
            } else {
                return Ok(Some(c));
            }
        }
    }

    fn read_form(&mut self) -> Result<(u64, Form<'a>), ReadError> {
        let line = self.line;
        let rest = &self.text[self.pos..];
        // Op maps are nearly always flat and on one line: read those directly, and leave
        // anything else (nesting beyond vectors, tags, sets, odd spacing) to the EDN reader.
        if let Some((form, used)) = flat_map(rest) {
            self.advance(used);
            return Ok((line, Form::Flat(form)));
        }
        let (form, remaining) = edn::read(rest).map_err(|e| {
            let at = line + e.line.unwrap_or(1) as u64 - 1;
            ReadError::at(at, format!("malformed EDN: {:?}", e.code))
        })?;
        self.advance(rest.len() - remaining.len());
        Ok((line, Form::Edn(form)))
    }

    fn next_form(&mut self) -> Result<Option<(u64, Form<'a>)>, ReadError> {
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
                _ => return self.read_form().map(Some),
            }
        }
    }
}

impl<'a> Iterator for Forms<'a> {
    type Item = Result<(u64, Form<'a>), ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_form().transpose();
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

/// Parses one EDN value (used by the Jepsen log reader for the value column).
pub(super) fn parse_value(text: &str) -> Result<Edn<'_>, String> {
    edn::read_string(text).map_err(|e| format!("malformed EDN value {text:?}: {:?}", e.code))
}

/// A one-line EDN map of keywords to scalars and vectors of them, as op maps are written, and the
/// bytes it took; `None` for anything else (the general reader then takes it, errors included).
fn flat_map(text: &str) -> Option<(Flat<'_>, usize)> {
    let b = text.as_bytes();
    let mut i = 1;
    if b.first() != Some(&b'{') {
        return None;
    }
    let mut map = Flat {
        len: 0,
        keys: [""; FLAT_FIELDS],
        values: std::array::from_fn(|_| Edn::Nil),
    };
    loop {
        i = skip_blanks(b, i)?;
        if b[i] == b'}' {
            return Some((map, i + 1));
        }
        if b[i] != b':' {
            return None;
        }
        let (key, next) = flat_keyword(text, i + 1)?;
        i = skip_blanks(b, next)?;
        let (value, next) = flat_value(text, i, 0)?;
        // The EDN reader refuses a repeated key: leave the map to it.
        if map.len == FLAT_FIELDS || map.keys[..map.len].contains(&key) {
            return None;
        }
        map.keys[map.len] = key;
        map.values[map.len] = value;
        map.len += 1;
        i = next;
    }
}

/// Skips spaces and commas on the current line; `None` at a line's or the text's end.
fn skip_blanks(b: &[u8], mut i: usize) -> Option<usize> {
    while i < b.len() && matches!(b[i], b' ' | b',' | b'\t') {
        i += 1;
    }
    (i < b.len() && b[i] != b'\n' && b[i] != b'\r').then_some(i)
}

fn flat_value(text: &str, i: usize, depth: usize) -> Option<(Edn<'_>, usize)> {
    let b = text.as_bytes();
    if b[i] != b'[' {
        return flat_scalar(text, i);
    }
    if depth > 2 {
        return None;
    }
    let mut items = Vec::new();
    let mut i = i + 1;
    loop {
        i = skip_blanks(b, i)?;
        if b[i] == b']' {
            return Some((Edn::Vector(items), i + 1));
        }
        let (item, next) = flat_value(text, i, depth + 1)?;
        items.push(item);
        i = next;
    }
}

/// The name of a plain keyword starting at `i` (after its colon), and the index past it.
fn flat_keyword(text: &str, i: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    let len = b[i..]
        .iter()
        .position(|&c| {
            !(c.is_ascii_alphanumeric()
                || matches!(c, b'-' | b'_' | b'?' | b'!' | b'.' | b'*' | b'+' | b'/'))
        })
        .unwrap_or(b.len() - i);
    let e = i + len;
    let delimited = matches!(
        b.get(e),
        None | Some(b' ' | b',' | b'\t' | b'\n' | b'\r' | b'}' | b']')
    );
    (len > 0 && delimited).then(|| (&text[i..e], e))
}

/// A keyword, an integer, a string without escapes, `nil`, `true` or `false`.
fn flat_scalar(text: &str, i: usize) -> Option<(Edn<'_>, usize)> {
    let b = text.as_bytes();
    let end = |from: usize| {
        from + b[from..]
            .iter()
            .position(|c| matches!(c, b' ' | b',' | b'\t' | b'\n' | b'\r' | b'}' | b']'))
            .unwrap_or(b.len() - from)
    };
    match b[i] {
        b':' => flat_keyword(text, i + 1).map(|(name, e)| (Edn::Key(Cow::Borrowed(name)), e)),
        b'"' => {
            let close = i
                + 1
                + b[i + 1..]
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || c == b'\n')?;
            (b[close] == b'"').then(|| (Edn::Str(Cow::Borrowed(&text[i + 1..close])), close + 1))
        }
        b'-' | b'0'..=b'9' => {
            let e = end(i);
            let digits = &text[i..e];
            let n: i64 = digits.parse().ok()?;
            // Leave 007, -0 and the like to the reader's own rules.
            (n.to_string() == digits).then_some((Edn::Int(n), e))
        }
        _ => {
            let e = end(i);
            match &text[i..e] {
                "nil" => Some((Edn::Nil, e)),
                "true" => Some((Edn::Bool(true), e)),
                "false" => Some((Edn::Bool(false), e)),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod flat_map_tests {
    use super::*;

    /// The fast path reads exactly what the EDN reader reads, and declines what it cannot.
    #[test]
    fn flat_maps_read_as_the_edn_reader_reads_them() {
        for text in [
            r#"{:process 6, :type :invoke, :f :append, :key "0", :value "x 6 0 y"}"#,
            r#"{:process 0 :type :ok :f :read :value nil :time 123 :index -4}"#,
            r#"{:type :invoke, :f :cas, :value [3 [1 2]], :process 7, :done? true}"#,
            r#"{:process :nemesis, :type :info, :f :start, :value [], :ok false}"#,
            "{}",
        ] {
            let (fast, used) = flat_map(text).unwrap_or_else(|| panic!("declined {text}"));
            let fast: std::collections::BTreeMap<Edn, Edn> = (0..fast.len)
                .map(|i| {
                    (
                        Edn::Key(Cow::Borrowed(fast.keys[i])),
                        fast.values[i].clone(),
                    )
                })
                .collect();
            let (general, _) = edn::read(text).unwrap();
            assert_eq!(Edn::Map(fast), general, "{text}");
            assert_eq!(used, text.len(), "{text}");
        }
        for text in [
            r#"{:value "a \"quoted\" word"}"#,
            "{:value 1.5}",
            "{:value #{1 2}}",
            "{:value {:a 1}}",
            "{:process 1\n :type :ok}",
            "{:f read}",
            "{:value 007}",
            "{:value +3}",
            "{:process 1, :type :ok, :process 2}",
        ] {
            assert!(flat_map(text).is_none(), "{text}");
        }
    }
}
