//! A fast path for kvlab's JSONL lines: a scanner for the shape the bench writes (the known fields,
//! strings without escapes, integers, flat arrays), so that a line costs no general JSON parse.
//!
//! The contract: [`scan`] either returns exactly the fields `serde_json` would have read from the
//! line, or `None`, and then the line goes to `serde_json` (which also words the errors). So
//! anything unusual is declined rather than interpreted: escapes, control characters, unknown or
//! repeated fields, `null` where a field is optional, numbers with fractions or leading zeros,
//! objects, nesting beyond one array level.

use std::borrow::Cow;

/// The fields of one line, as [`super::jsonl`] reads them. `process` and `value` are raw JSON
/// text; the other strings are decoded.
pub(super) struct Fields<'a> {
    pub(super) index: Option<u64>,
    pub(super) time: Option<u64>,
    pub(super) process: &'a str,
    pub(super) kind: Cow<'a, str>,
    pub(super) f: Cow<'a, str>,
    pub(super) key: Option<Cow<'a, str>>,
    pub(super) value: Option<&'a str>,
    pub(super) error: Option<Cow<'a, str>>,
}

/// Reads `line` if it has the common shape; `None` leaves it to the general parser.
pub(super) fn scan(line: &str) -> Option<Fields<'_>> {
    let b = line.as_bytes();
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let mut seen = 0u8;
    let mut f = Fields {
        index: None,
        time: None,
        process: "",
        kind: Cow::Borrowed(""),
        f: Cow::Borrowed(""),
        key: None,
        value: None,
        error: None,
    };
    i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return None;
    }
    loop {
        let (name, next) = string(line, i)?;
        i = ws(b, next);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, i + 1);
        let field = match name {
            "index" => 0,
            "time" => 1,
            "process" => 2,
            "type" => 3,
            "f" => 4,
            "key" => 5,
            "value" => 6,
            "error" => 7,
            _ => return None,
        };
        if seen & (1 << field) != 0 {
            return None;
        }
        seen |= 1 << field;
        i = match field {
            0 | 1 => {
                let (n, next) = unsigned(b, i)?;
                if field == 0 {
                    f.index = Some(n);
                } else {
                    f.time = Some(n);
                }
                next
            }
            2 => {
                let end = if b[i] == b'"' {
                    string(line, i)?.1
                } else {
                    unsigned(b, i)?.1
                };
                f.process = &line[i..end];
                end
            }
            6 => {
                let end = value(b, i, 0)?;
                f.value = Some(&line[i..end]);
                end
            }
            _ => {
                let (s, next) = string(line, i)?;
                let s = Cow::Borrowed(s);
                match field {
                    3 => f.kind = s,
                    4 => f.f = s,
                    5 => f.key = Some(s),
                    _ => f.error = Some(s),
                }
                next
            }
        };
        i = ws(b, i);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b'}') => break,
            _ => return None,
        }
    }
    // process, type and f are required.
    (seen & 0b11100 == 0b11100 && ws(b, i + 1) == b.len()).then_some(f)
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// A string without escapes or control characters at `i`: its contents and the index past it.
fn string(line: &str, i: usize) -> Option<(&str, usize)> {
    let b = line.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let len = b[i + 1..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    let close = i + 1 + len;
    (b[close] == b'"').then(|| (&line[i + 1..close], close + 1))
}

/// A non-negative integer as JSON writes it (no leading zeros) that fits a `u64`.
fn unsigned(b: &[u8], i: usize) -> Option<(u64, usize)> {
    let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && b[i] == b'0') || digits > 19 {
        return None;
    }
    let end = i + digits;
    if matches!(b.get(end), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    let n = b[i..end]
        .iter()
        .fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
    Some((n, end))
}

/// The end of a value at `i`: `null`, a string without escapes, an integer, or an array of
/// those (one level deep).
fn value(b: &[u8], i: usize, depth: u8) -> Option<usize> {
    match *b.get(i)? {
        b'n' => b[i..].starts_with(b"null").then_some(i + 4),
        b'"' => {
            let len = b[i + 1..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            let close = i + 1 + len;
            (b[close] == b'"').then_some(close + 1)
        }
        b'-' => unsigned(b, i + 1).map(|(_, end)| end),
        b'0'..=b'9' => unsigned(b, i).map(|(_, end)| end),
        b'[' if depth == 0 => {
            let mut i = ws(b, i + 1);
            if b.get(i) == Some(&b']') {
                return Some(i + 1);
            }
            loop {
                i = ws(b, value(b, i, depth + 1)?);
                match b.get(i)? {
                    b',' => i = ws(b, i + 1),
                    b']' => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        _ => None,
    }
}

/// The two elements of a raw JSON array of two scalars (`["a","b"]`, `[null,"b"]`), as raw text;
/// `None` for anything else. `raw` must be valid JSON.
pub(super) fn pair(raw: &str) -> Option<(&str, &str)> {
    let b = raw.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let scalar = |i: usize| -> Option<usize> {
        match *b.get(i)? {
            b'"' => {
                let len = b[i + 1..].iter().position(|&c| c == b'"' || c == b'\\')?;
                (b[i + 1 + len] == b'"').then_some(i + len + 2)
            }
            b'[' | b'{' | b']' | b',' => None,
            _ => Some(
                i + b[i..]
                    .iter()
                    .position(|c| matches!(c, b',' | b']' | b' ' | b'\t' | b'\n' | b'\r'))?,
            ),
        }
    };
    let a = ws(b, 1);
    let a_end = scalar(a)?;
    let comma = ws(b, a_end);
    if b.get(comma) != Some(&b',') {
        return None;
    }
    let c = ws(b, comma + 1);
    let c_end = scalar(c)?;
    let close = ws(b, c_end);
    (b.get(close) == Some(&b']') && close + 1 == b.len()).then(|| (&raw[a..a_end], &raw[c..c_end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json reads from the line, every field shown in one string.
    fn general(line: &str) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct L<'a> {
            index: Option<u64>,
            time: Option<u64>,
            #[serde(borrow)]
            process: &'a serde_json::value::RawValue,
            #[serde(rename = "type")]
            kind: String,
            f: String,
            key: Option<String>,
            #[serde(borrow, default)]
            value: Option<&'a serde_json::value::RawValue>,
            error: Option<String>,
        }
        let l: L = serde_json::from_str(line).ok()?;
        Some(format!(
            "{:?} {:?} {} {} {} {:?} {:?} {}",
            l.index,
            l.time,
            l.process.get(),
            l.kind,
            l.f,
            l.key,
            l.error,
            l.value.map_or("null", |v| v.get()),
        ))
    }

    #[test]
    fn scanned_lines_read_as_serde_json_reads_them() {
        for line in [
            r#"{"index":0,"time":29783,"process":5,"type":"invoke","f":"read","key":"k998","value":null}"#,
            r#"{"index":5,"time":139798,"process":34,"type":"invoke","f":"cas","key":"k201","value":["v0","v531251"]}"#,
            r#"{"index":29,"time":37,"process":4,"type":"fail","f":"cas","key":"k1","value":[null,"w4-2...."],"error":"precondition"}"#,
            r#" { "process" : 0 , "type":"ok", "f":"read","key":"k","value":-12 } "#,
            r#"{"process":"nemesis","type":"info","f":"kill","value":[]}"#,
            r#"{"process":1,"type":"ok","f":"write","key":"k, ]","value":"a,] b"}"#,
        ] {
            let f = scan(line).unwrap_or_else(|| panic!("declined {line}"));
            let fast = format!(
                "{:?} {:?} {} {} {} {:?} {:?} {}",
                f.index,
                f.time,
                f.process,
                f.kind,
                f.f,
                f.key.map(|k| k.into_owned()),
                f.error.map(|e| e.into_owned()),
                f.value.unwrap_or("null"),
            );
            assert_eq!(Some(fast), general(line), "{line}");
        }
    }

    #[test]
    fn unusual_lines_are_left_to_serde_json() {
        for line in [
            r#"{"process":1,"type":"ok","f":"read","key":"a\"b","value":null}"#,
            r#"{"process":1,"type":"ok","f":"read","key":"k","value":"\u0041"}"#,
            r#"{"process":1,"type":"ok","f":"read","key":"k","value":1.5}"#,
            r#"{"process":01,"type":"ok","f":"read","key":"k"}"#,
            r#"{"process":1,"type":"ok","f":"read","key":"k","extra":1}"#,
            r#"{"process":1,"type":"ok","f":"read","key":"k","key":"j"}"#,
            r#"{"process":1,"type":"ok","f":"read","key":null}"#,
            r#"{"process":1,"type":"ok","key":"k"}"#,
            r#"{"process":1,"type":"ok","f":"read"} x"#,
            r#"{"process":1,"type":"ok","f":"read","value":{"a":1}}"#,
            r#"{"process":1,"type":"ok","f":"read","value":[[1]]}"#,
            r#"{"index":99999999999999999999,"process":1,"type":"ok","f":"read"}"#,
            r#"{"process":1,"type":"ok","f":"read","value":nul}"#,
            r#"{"process":1,"type":"ok","f":"read","#,
            "{}",
        ] {
            assert!(scan(line).is_none(), "{line}");
        }
    }

    #[test]
    fn pairs_split_flat_arrays_of_two_scalars() {
        assert_eq!(pair(r#"["a","b"]"#), Some((r#""a""#, r#""b""#)));
        assert_eq!(pair(r#"[ null , "x,]" ]"#), Some(("null", r#""x,]""#)));
        assert_eq!(pair("[1,-2]"), Some(("1", "-2")));
        for raw in [
            r#"["a"]"#,
            r#"["a","b","c"]"#,
            r#"["a\"","b"]"#,
            "[[1],2]",
            "[]",
        ] {
            assert_eq!(pair(raw), None, "{raw}");
        }
    }
}
