//! Jepsen's textual logs, as in Porcupine's etcd test data:
//! `INFO  jepsen.util - <process>\t<type>\t<f>\t<value>` (tabs or runs of spaces).
//!
//! Lines that are not op lines (Jepsen's other log output) are skipped; the nemesis's op lines
//! too. The ops are read as in EDN histories (`knossos.rs`), for any model, except that a register
//! read means what etcd's tests meant by it: the register starts absent, `:ok :read nil` means it
//! was absent, a `:fail :cas` observed that the register did not hold the expected value, and a
//! `:fail :read` (a timed-out read) carries no information.

use clojure_reader::edn::Edn;
use memchr::memmem;

use super::edn::{Kind, parse_value};
use super::edn_scan;
use super::knossos::{Dialect, RawOp, Reader};
use crate::error::ReadError;
use crate::history::History;
use crate::model::ModelKind;

const MARKER: &str = "jepsen.util - ";

pub(super) fn read(text: &str, model: ModelKind) -> Result<History, ReadError> {
    read_values(text, model, true)
}

/// [`read`], with the values scanned by [`edn_scan::value`] when `scan` (always, but in the tests
/// that compare it with the EDN reader) or else all read by the EDN reader.
fn read_values(text: &str, model: ModelKind, scan: bool) -> Result<History, ReadError> {
    let mut reader = Reader::new(model, Dialect::Log);
    reader.reserve_for(text);
    let marker = memmem::Finder::new(MARKER);
    let mut spare = Vec::new();
    for (n, raw) in lines(text).enumerate() {
        let line = n as u64 + 1;
        let at = |m: String| ReadError::at(line, m);
        let Some(start) = find_marker(raw, &marker) else {
            continue;
        };
        let [process, kind, f, value] = columns(&raw[start + MARKER.len()..]);
        if process == ":nemesis" {
            continue;
        }
        let process: u64 = process.parse().map_err(|_| {
            at(format!(
                "process must be a non-negative integer or :nemesis, not {process:?}"
            ))
        })?;
        let kind = match kind {
            ":invoke" => Kind::Invoke,
            ":ok" => Kind::Ok,
            ":fail" => Kind::Fail,
            ":info" => Kind::Info,
            _ => {
                return Err(at(format!(
                    "type must be :invoke, :ok, :fail or :info, not {kind:?}"
                )));
            }
        };
        // Values are nearly always nil, an integer, a keyword or a pair: scanned directly.
        let scanned = if scan {
            edn_scan::value(value, &mut spare)
        } else {
            None
        };
        let mut value = match scanned {
            Some(v) => v.into_edn(),
            None => parse_value(value).map_err(at)?,
        };
        reader.op(RawOp {
            line,
            time: None,
            process,
            kind,
            f: f.strip_prefix(':'),
            value: &value,
        })?;
        // The next vector's items go where this one's were.
        if let Edn::Vector(items) = &mut value {
            spare = std::mem::take(items);
        }
    }
    Ok(reader.finish(None))
}

/// Where Jepsen writes the marker: after `INFO  `.
const USUAL_START: usize = 6;

/// The first occurrence of [`MARKER`] in `line`. Two occurrences cannot overlap (no proper
/// prefix of the marker is also a suffix of it), so one found at [`USUAL_START`], closer to the
/// start than the marker is long, is the first: checked there before searching.
fn find_marker(line: &str, marker: &memmem::Finder) -> Option<usize> {
    const _: () = assert!(USUAL_START < MARKER.len());
    let usual = USUAL_START..USUAL_START + MARKER.len();
    if line.as_bytes().get(usual) == Some(MARKER.as_bytes()) {
        return Some(USUAL_START);
    }
    marker.find(line.as_bytes())
}

/// The lines of `text`, as [`str::lines`] splits them (a `\r` before a `\n` is not part of the
/// line), found with memchr.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let line = match memchr::memchr(b'\n', rest.as_bytes()) {
            Some(end) => {
                let line = &rest[..end];
                rest = &rest[end + 1..];
                line.strip_suffix('\r').unwrap_or(line)
            }
            None => std::mem::take(&mut rest),
        };
        Some(line)
    })
}

/// The process, type and function (the first three whitespace-separated tokens) after the
/// marker, and the rest of the line, the value, without its trailing whitespace.
fn columns(s: &str) -> [&str; 4] {
    if s.is_ascii() {
        return ascii_columns(s);
    }
    let (process, rest) = token(s);
    let (kind, rest) = token(rest);
    let (f, value) = token(rest);
    [process, kind, f, value.trim_end()]
}

/// [`columns`] for ASCII text, in one pass over its bytes.
fn ascii_columns(s: &str) -> [&str; 4] {
    // The ASCII characters `char::is_whitespace` holds whitespace.
    let blank = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let b = s.as_bytes();
    let mut columns = [""; 4];
    let mut i = 0;
    for column in &mut columns[..3] {
        while i < b.len() && blank(b[i]) {
            i += 1;
        }
        let start = i;
        while i < b.len() && !blank(b[i]) {
            i += 1;
        }
        *column = &s[start..i];
    }
    while i < b.len() && blank(b[i]) {
        i += 1;
    }
    let mut end = b.len();
    while end > i && blank(b[end - 1]) {
        end -= 1;
    }
    columns[3] = &s[i..end];
    columns
}

/// Splits off the first whitespace-separated token.
fn token(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    (&s[..end], s[end..].trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_found_where_it_first_occurs() {
        // No proper prefix of the marker is also a suffix of it.
        for n in 1..MARKER.len() {
            assert_ne!(MARKER[..n], MARKER[MARKER.len() - n..], "{n}");
        }
        let marker = memmem::Finder::new(MARKER);
        for line in [
            "INFO  jepsen.util - 1\t:ok",
            "INFO  jepsen.util - jepsen.util - 1",
            "2017-01-01 INFO  jepsen.util - 1",
            "jepsen.util - INFO  jepsen.util - ",
            "INFO  jepsen.util -",
            "INFO",
            "",
        ] {
            assert_eq!(find_marker(line, &marker), line.find(MARKER), "{line:?}");
        }
    }

    #[test]
    fn lines_split_as_str_lines_does() {
        for text in [
            "",
            "\n",
            "a",
            "a\n",
            "a\r\nb\r\n",
            "a\r\n\r\nb",
            "a\rb\r",
            "\r",
            "\r\n",
            "a\n\nb\n\n",
        ] {
            assert_eq!(
                lines(text).collect::<Vec<_>>(),
                text.lines().collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn ascii_columns_split_as_unicode_ones_do() {
        for s in [
            "1\t:invoke\t:cas\t[1 2]",
            "  1   :ok :read  nil  ",
            "1 :ok :read 3 4 \r",
            "\x0b1\x0c:ok\r:read\x0b:v\x0c",
            "",
            " ",
            "x",
            ":nemesis\t:info",
        ] {
            let unicode = {
                let (process, rest) = token(s);
                let (kind, rest) = token(rest);
                let (f, value) = token(rest);
                [process, kind, f, value.trim_end()]
            };
            assert_eq!(ascii_columns(s), unicode, "{s:?}");
        }
    }

    #[test]
    fn logs_read_the_same_with_values_scanned_as_without() {
        let values = [
            "3",
            "-3",
            "007",
            "+3",
            "1.5",
            "99999999999999999999",
            "nil",
            ":timed-out",
            "[3 4]",
            "[3   4]",
            "[3,4]",
            "[3 4 5]",
            "[nil 4]",
            "[1",
            "3 4",
            "3 ; c",
            "#_ 4 3",
            ",3,",
            "\"str\"",
            "\"s\\\"t\"",
            "{:a 1}",
            "sym",
            "",
            "[[1 2] 3]",
        ];
        let mut errors = 0;
        for model in [ModelKind::CasRegister, ModelKind::Register] {
            for f in [":write", ":cas", ":read"] {
                for value in values {
                    for completion in [":ok", ":fail", ":info"] {
                        let text = format!(
                            "INFO  jepsen.util - 0\t:invoke\t:write\t1\n\
                             INFO  jepsen.util - 0\t:ok\t:write\t1\n\
                             INFO  jepsen.util - 1\t:invoke\t{f}\t{value}\n\
                             INFO  jepsen.util - 1 {completion}  {f}   {value}\n"
                        );
                        let outcome = |scan| match read_values(&text, model, scan) {
                            Ok(h) => format!("{h:?}"),
                            Err(e) => format!("error: {e}"),
                        };
                        let fast = outcome(true);
                        errors += usize::from(fast.starts_with("error"));
                        assert_eq!(fast, outcome(false), "{text}");
                    }
                }
            }
        }
        // Both readings are exercised.
        assert!(errors > 100 && errors < 400, "{errors} errors");
    }
}
