//! A fast path for EDN op maps written one per line, as Porcupine's key-value logs and most
//! Jepsen / Knossos histories write them: `{:process 2, :type :invoke, :f :get, :key "0",
//! :value nil}` (or a `#jepsen.history.Op{...}` record), keywords to scalars and vectors of them.
//!
//! The contract: [`scan`] either returns exactly the fields the EDN reader (`clojure_reader`)
//! would read from the form, with the bytes the form takes, or `None`, and then the form goes to
//! the EDN reader (which also words the errors). So anything unusual is declined rather than
//! interpreted: a map over several lines, a repeated key, tags other than `jepsen.history.Op`,
//! sets, maps and lists as values, numbers other than plain integers, symbols, escapes other than
//! `\"`, `\\`, `\n`, `\t` and `\r`, comments and discarded forms inside the map.
//!
//! Only the fields the readers use ([`Op`]) are kept; the others are read (so that a malformed
//! one is still declined) and dropped.

use std::borrow::Cow;

use clojure_reader::edn::Edn;

use super::edn::{get, scalar};
use crate::history::Value;

/// The value of one field: scalars held directly, anything else as the EDN reader's value.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Atom<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Str(Cow<'a, str>),
    /// A keyword's name, without its colon.
    Key(Cow<'a, str>),
    /// Any other value (vectors, maps, symbols, ...): never a scalar above.
    Edn(Edn<'a>),
}

impl<'a> Atom<'a> {
    /// The atom for an EDN value (scalars unwrapped, so that both paths agree on a field).
    pub(super) fn from_edn(v: &Edn<'a>) -> Atom<'a> {
        match v {
            Edn::Nil => Atom::Nil,
            Edn::Bool(b) => Atom::Bool(*b),
            Edn::Int(i) => Atom::Int(*i),
            Edn::Str(s) => Atom::Str(s.clone()),
            Edn::Key(k) => Atom::Key(k.clone()),
            other => Atom::Edn(other.clone()),
        }
    }

    /// The EDN value this atom stands for (borrowed when it is one already).
    pub(super) fn to_edn(&self) -> Cow<'_, Edn<'a>> {
        Cow::Owned(match self {
            Atom::Nil => Edn::Nil,
            Atom::Bool(b) => Edn::Bool(*b),
            Atom::Int(i) => Edn::Int(*i),
            Atom::Str(s) => Edn::Str(s.clone()),
            Atom::Key(k) => Edn::Key(k.clone()),
            Atom::Edn(v) => return Cow::Borrowed(v),
        })
    }

    /// The EDN value this atom stands for.
    pub(super) fn into_edn(self) -> Edn<'a> {
        match self {
            Atom::Nil => Edn::Nil,
            Atom::Bool(b) => Edn::Bool(b),
            Atom::Int(i) => Edn::Int(i),
            Atom::Str(s) => Edn::Str(s),
            Atom::Key(k) => Edn::Key(k),
            Atom::Edn(v) => v,
        }
    }

    /// The keyword's name, if this is a keyword.
    pub(super) fn keyword(&self) -> Option<&str> {
        match self {
            Atom::Key(k) => Some(k),
            _ => None,
        }
    }

    /// As [`scalar`] reads the EDN value, without building it for the common scalars.
    pub(super) fn scalar(&self) -> Result<Option<Value>, String> {
        Ok(Some(match self {
            Atom::Nil => return Ok(None),
            Atom::Int(i) => Value::Int(*i),
            Atom::Str(s) => Value::Str(s.to_string()),
            Atom::Key(k) => Value::Str(format!(":{k}")),
            Atom::Bool(b) => Value::Str(b.to_string()),
            Atom::Edn(v) => return scalar(v),
        }))
    }

    /// As [`super::edn::required`]: a scalar that is not `nil`.
    pub(super) fn required(&self) -> Result<Value, String> {
        self.scalar()?
            .ok_or_else(|| "nil: a value is required".into())
    }
}

/// The fields of an op map the readers use; `None` when the map does not have them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Op<'a> {
    pub(super) process: Option<Atom<'a>>,
    pub(super) kind: Option<Atom<'a>>,
    pub(super) f: Option<Atom<'a>>,
    pub(super) key: Option<Atom<'a>>,
    pub(super) value: Option<Atom<'a>>,
    pub(super) time: Option<Atom<'a>>,
}

/// The names of [`Op`]'s fields, in the order of [`Op::field`]'s indices.
const FIELDS: [&str; 6] = ["process", "type", "f", "key", "value", "time"];

impl<'a> Op<'a> {
    /// The fields of an op map or record (`#jepsen.history.Op{...}`) as the EDN reader read it.
    pub(super) fn from_edn(form: &Edn<'a>) -> Op<'a> {
        let mut op = Op::default();
        for (i, name) in FIELDS.into_iter().enumerate() {
            *op.field(i) = get(form, name).map(Atom::from_edn);
        }
        op
    }

    /// The field named `FIELDS[i]`.
    fn field(&mut self, i: usize) -> &mut Option<Atom<'a>> {
        match i {
            0 => &mut self.process,
            1 => &mut self.kind,
            2 => &mut self.f,
            3 => &mut self.key,
            4 => &mut self.value,
            _ => &mut self.time,
        }
    }
}

/// The one record tag read here: Jepsen's op records.
const RECORD: &str = "#jepsen.history.Op{";

/// The most fields other than [`Op`]'s a map may have; a longer one goes to the EDN reader.
const MAX_OTHERS: usize = 16;

/// Reads the op map at the start of `text` into `op` if it has the common shape (on one line),
/// and returns the bytes the map takes; `None` leaves it to the EDN reader (`op` then holds
/// nothing useful). `op` is the caller's so that a line's fields are written once, not moved.
pub(super) fn scan<'a>(text: &'a str, op: &mut Op<'a>) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = match b.first()? {
        b'{' => 1,
        b'#' if text.starts_with(RECORD) => RECORD.len(),
        _ => return None,
    };
    *op = Op::default();
    let mut seen = 0u8;
    let mut others = [""; MAX_OTHERS];
    let mut n_others = 0;
    loop {
        i = skip_blanks(b, i)?;
        if b[i] == b'}' {
            return Some(i + 1);
        }
        if b[i] != b':' {
            return None;
        }
        let (name, next) = keyword(text, i + 1)?;
        let (value, next) = atom(text, skip_blanks(b, next)?, 0)?;
        i = next;
        // A repeated key is an error for the EDN reader: leave it that.
        if let Some(f) = field_index(name) {
            if seen & (1 << f) != 0 {
                return None;
            }
            seen |= 1 << f;
            *op.field(f) = Some(value);
        } else {
            if n_others == MAX_OTHERS || others[..n_others].contains(&name) {
                return None;
            }
            others[n_others] = name;
            n_others += 1;
        }
    }
}

/// The index in [`FIELDS`] of the field `name`.
fn field_index(name: &str) -> Option<usize> {
    Some(match name {
        "process" => 0,
        "type" => 1,
        "f" => 2,
        "key" => 3,
        "value" => 4,
        "time" => 5,
        _ => return None,
    })
}

/// Reads one EDN value (a scalar or a vector of them) that is the whole of `text`; `None` for
/// anything else, which the EDN reader then reads.
///
/// A vector's items go in `spare` (emptied first), so that a caller reading many values can
/// hand back the last one's and spare an allocation per vector.
pub(super) fn value<'a>(text: &'a str, spare: &mut Vec<Edn<'a>>) -> Option<Atom<'a>> {
    let (v, used) = match text.as_bytes().first()? {
        b'[' => {
            spare.clear();
            let (items, used) = vector(text, 0, 0, std::mem::take(spare))?;
            (Atom::Edn(Edn::Vector(items)), used)
        }
        _ => atom(text, 0, 0)?,
    };
    (used == text.len()).then_some(v)
}

/// Skips spaces, tabs and commas on the current line; `None` at a line's or the text's end.
#[inline(always)]
fn skip_blanks(b: &[u8], mut i: usize) -> Option<usize> {
    while i < b.len() && matches!(b[i], b' ' | b',' | b'\t') {
        i += 1;
    }
    (i < b.len() && b[i] != b'\n' && b[i] != b'\r').then_some(i)
}

/// Whether `c` ends a token (as the EDN reader splits them, of the bytes accepted here).
#[inline(always)]
fn delimiter(c: Option<&u8>) -> bool {
    matches!(
        c,
        None | Some(b' ' | b',' | b'\t' | b'\n' | b'\r' | b'}' | b']')
    )
}

/// The value at `i` (`depth` vectors deep) and the index past it.
#[inline(always)]
fn atom(text: &str, i: usize, depth: usize) -> Option<(Atom<'_>, usize)> {
    let b = text.as_bytes();
    match b[i] {
        b'[' => vector(text, i, depth, Vec::new()).map(|(v, e)| (Atom::Edn(Edn::Vector(v)), e)),
        b':' => keyword(text, i + 1).map(|(name, e)| (Atom::Key(Cow::Borrowed(name)), e)),
        b'"' => string(text, i),
        b'-' | b'0'..=b'9' => integer(text, i),
        _ => {
            let e = i + b[i..].iter().take_while(|c| !delimiter(Some(c))).count();
            let v = match &text[i..e] {
                "nil" => Atom::Nil,
                "true" => Atom::Bool(true),
                "false" => Atom::Bool(false),
                _ => return None,
            };
            Some((v, e))
        }
    }
}

/// A vector at `i` of scalars and vectors (at most three deep in all), as EDN values, pushed
/// onto `items` (empty).
fn vector<'a>(
    text: &'a str,
    i: usize,
    depth: usize,
    mut items: Vec<Edn<'a>>,
) -> Option<(Vec<Edn<'a>>, usize)> {
    if depth > 2 {
        return None;
    }
    let b = text.as_bytes();
    let mut i = i + 1;
    loop {
        i = skip_blanks(b, i)?;
        if b[i] == b']' {
            return Some((items, i + 1));
        }
        let (item, next) = atom(text, i, depth + 1)?;
        items.push(item.into_edn());
        i = next;
    }
}

/// The name of a plain keyword starting at `i` (after its colon), and the index past it.
#[inline(always)]
fn keyword(text: &str, i: usize) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    let len = b[i..]
        .iter()
        .take_while(|&&c| {
            c.is_ascii_alphanumeric()
                || matches!(c, b'-' | b'_' | b'?' | b'!' | b'.' | b'*' | b'+' | b'/')
        })
        .count();
    let e = i + len;
    (len > 0 && delimiter(b.get(e))).then(|| (&text[i..e], e))
}

/// A string on one line at `i`, its escapes decoded as the EDN reader decodes them.
#[inline(always)]
fn string(text: &str, i: usize) -> Option<(Atom<'_>, usize)> {
    let b = text.as_bytes();
    let start = i + 1;
    let mut j = start;
    let mut escaped = false;
    loop {
        match *b.get(j)? {
            b'"' => break,
            b'\n' => return None,
            b'\\' => {
                if !matches!(b.get(j + 1)?, b'"' | b'\\' | b'n' | b't' | b'r') {
                    return None;
                }
                escaped = true;
                j += 2;
            }
            _ => j += 1,
        }
    }
    let raw = &text[start..j];
    let s = if escaped {
        Cow::Owned(unescape(raw))
    } else {
        Cow::Borrowed(raw)
    };
    Some((Atom::Str(s), j + 1))
}

/// `raw` with its escapes (already checked to be `\"`, `\\`, `\n`, `\t` or `\r`) replaced by
/// the characters they stand for.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some(other) => other,
            None => '\\',
        });
    }
    out
}

/// An integer at `i` as EDN writes it plainly (`-?[0-9]+`, no leading zeros, no `-0`) that fits
/// an `i64`.
#[inline(always)]
fn integer(text: &str, i: usize) -> Option<(Atom<'_>, usize)> {
    let b = text.as_bytes();
    let e = i + b[i..].iter().take_while(|c| !delimiter(Some(c))).count();
    let token = &text[i..e];
    let digits = token.strip_prefix('-').unwrap_or(token).as_bytes();
    let plain = match digits {
        [] => false,
        [b'0'] => token.len() == 1,
        [first, ..] => *first != b'0' && digits.iter().all(u8::is_ascii_digit),
    };
    if !plain {
        return None;
    }
    token.parse().ok().map(|n| (Atom::Int(n), e))
}

#[cfg(test)]
mod tests {
    use clojure_reader::edn;
    use rand::prelude::*;
    use rand::rngs::StdRng;

    use super::*;

    /// The fields and length of the form at the start of `text` as the EDN reader reads it;
    /// `None` when it refuses it or it is not an op map.
    fn general(text: &str) -> Option<(Op<'_>, usize)> {
        let (form, rest) = edn::read(text).ok()?;
        matches!(form, Edn::Map(_) | Edn::Tagged(..))
            .then(|| (Op::from_edn(&form), text.len() - rest.len()))
    }

    fn scanned(text: &str) -> Option<(Op<'_>, usize)> {
        let mut op = Op::default();
        scan(text, &mut op).map(|used| (op, used))
    }

    /// A scanned map reads as the EDN reader reads it.
    fn agrees(text: &str) -> bool {
        let Some(fast) = scanned(text) else {
            return false;
        };
        assert_eq!(Some(&fast), general(text).as_ref(), "{text}");
        true
    }

    #[test]
    fn common_op_maps_are_scanned_as_the_edn_reader_reads_them() {
        for text in [
            r#"{:process 6, :type :invoke, :f :append, :key "0", :value "x 6 0 y"}"#,
            r#"{:value nil, :key "0", :f :get, :type :ok, :process 2}"#,
            r#"{:process 0 :type :ok :f :read :value nil :time 123 :index -4}"#,
            r#"{:type :invoke, :f :cas, :value [3 [1 2]], :process 7, :done? true}"#,
            r#"{:process :nemesis, :type :info, :f :start, :value [], :ok false}"#,
            r#"{:process 1, :type :ok, :f :put, :key "a \"quoted\" word", :value "\\ \n\t\r"}"#,
            r#"{:process 1, :type :ok, :f :put, :key "é✓", :value -9223372036854775808}"#,
            r#"#jepsen.history.Op{:index 0, :time 5, :type :invoke, :process 2, :f :write, :value 3}"#,
            r#"{:process 1, :type :fail, :f :cas, :value [nil "s" :k], :error [:timeout "x"]}"#,
            r#"{:process 1, :type :ok, :f :get, :key "a"} {:process 2}"#,
            "{:process 1,, :type :ok,\t:f :get ,}",
            "{}",
        ] {
            assert!(agrees(text), "declined {text}");
        }
    }

    #[test]
    fn unusual_forms_are_left_to_the_edn_reader() {
        for text in [
            r#"{:value "a \u0041"}"#,
            r#"{:value "unterminated}"#,
            "{:value 1.5}",
            "{:value 12N}",
            "{:value 9223372036854775808}",
            "{:value 007}",
            "{:value -0}",
            "{:value +3}",
            "{:value #{1 2}}",
            "{:value {:a 1}}",
            "{:value (1 2)}",
            "{:value [[[[1]]]]}",
            "{:value sym}",
            r"{:value \c}",
            "{:value #_ 3 4}",
            "{:value 3 ; comment\n}",
            "{:process 1\n :type :ok}",
            "{:process 1, :type :ok, :process 2}",
            "{:a 1, :b 2, :a 3}",
            "{:f read}",
            r#"{"f" :read}"#,
            "{:value nilx}",
            "{:key:value 1}",
            "#jepsen.history.Tuple{:key 1}",
            "#foo{:process 1}",
            "{:process 1",
            "[1 2]",
        ] {
            assert!(scanned(text).is_none(), "{text}");
        }
    }

    /// Random op maps of every shape the scanner meets, tricky and malformed ones included:
    /// whatever it reads, the EDN reader reads the same; and it reads the common shapes.
    #[test]
    fn random_op_maps_are_scanned_as_the_edn_reader_reads_them_or_left_to_it() {
        let keys = [
            ":process", ":type", ":f", ":key", ":value", ":time", ":index", ":error", ":a/b",
            ":node?", ":1", "::", ":", "\"s\"", "x",
        ];
        // The first `COMMON` are well-formed values the scanner reads.
        const COMMON: usize = 25;
        let values = [
            "nil",
            "true",
            "false",
            "0",
            "7",
            "-5",
            "9223372036854775807",
            "-9223372036854775808",
            r#""""#,
            r#""x 6 0 y""#,
            r#""a\"b""#,
            r#""a\\b""#,
            r#""\\\"""#,
            "\"tab\tin\"",
            r#""\n\r\t""#,
            "\"é✓\"",
            ":kw",
            ":timed-out",
            ":a/b",
            "[1 2]",
            "[]",
            "[ ]",
            r#"[nil "s" :k true]"#,
            "[[1 2] 3]",
            "[[[1]]]",
            // Left to the EDN reader.
            "-0",
            "007",
            "+3",
            "1.5",
            "12N",
            "-",
            "-x",
            "9223372036854775808",
            "0x10",
            "1e3",
            r#""bad\x""#,
            r#""\u0041""#,
            "\"unterminated",
            ":a//b",
            ":1",
            "::",
            ":",
            ":a:b",
            "[,]",
            "[[[[1]]]]",
            "[1 2",
            "{:a 1}",
            "#{1}",
            "(1 2)",
            "sym",
            "nilx",
            r"\c",
            "#_ 3 4",
        ];
        let seps = [" ", ", ", ",", "  ,\t", "\n", ""];
        let opens = [
            "{",
            "{ ",
            "#jepsen.history.Op{",
            "#jepsen.history.Op {",
            "#foo{",
        ];
        let closes = ["}", " }", ",}", "}}", "} ; c", "}\n{:a 1}", "", "]"];
        let mut rng = StdRng::seed_from_u64(11);
        let (mut read, mut declined) = (0, 0);
        for _ in 0..50_000 {
            // Half well-formed maps of distinct fields, half anything.
            let tricky = rng.random_bool(0.5);
            let mut text =
                opens[rng.random_range(0..if tricky { opens.len() } else { 1 })].to_owned();
            let mut fields = keys;
            fields[..6].shuffle(&mut rng);
            let mut distinct = fields.into_iter();
            for n in 0..rng.random_range(0..if tricky { 9 } else { 7 }) {
                if n > 0 {
                    text += if tricky {
                        seps.choose(&mut rng).unwrap()
                    } else {
                        ", "
                    };
                }
                text += if tricky {
                    keys.choose(&mut rng).unwrap()
                } else {
                    distinct.next().unwrap()
                };
                text += if tricky {
                    seps[rng.random_range(0..seps.len() - 1)]
                } else {
                    " "
                };
                text += values[rng.random_range(0..if tricky { values.len() } else { COMMON })];
            }
            text += if tricky {
                closes.choose(&mut rng).unwrap()
            } else {
                "}"
            };
            if agrees(&text) {
                read += 1;
            } else {
                assert!(tricky, "declined {text}");
                declined += 1;
            }
        }
        assert!(
            read > 10_000 && declined > 10_000,
            "{read} read, {declined} declined"
        );
    }

    #[test]
    fn atoms_read_as_the_edn_values_they_stand_for() {
        for text in [
            "nil",
            "true",
            "false",
            "-12",
            "0",
            r#""s""#,
            r#""a\"b""#,
            ":k",
            "[1 [2 3]]",
            "[]",
        ] {
            let atom =
                value(text, &mut vec![Edn::Nil]).unwrap_or_else(|| panic!("declined {text}"));
            let edn = edn::read_string(text).unwrap();
            assert_eq!(atom, Atom::from_edn(&edn), "{text}");
            assert_eq!(*atom.to_edn(), edn, "{text}");
            assert_eq!(atom.clone().into_edn(), edn, "{text}");
            assert_eq!(atom.scalar(), scalar(&edn), "{text}");
            assert_eq!(atom.required(), super::super::edn::required(&edn), "{text}");
        }
        for text in ["", " nil", "nil ", "1.5", "[1", "sym", "[1] x"] {
            assert_eq!(value(text, &mut Vec::new()), None, "{text}");
        }
    }
}
