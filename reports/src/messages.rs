//! `messages.jsonl`: every message the bench's router saw, for a system whose messages pass
//! through the bench (nodes speaking Maelstrom's protocol), one JSON object per line:
//!
//! ```json
//! {"id":17,"t_ns":1234567,"src":"c3","dest":"n1","type":"write","msg_id":4,"fate":"delivered","delay_ns":120000}
//! {"id":18,"t_ns":1250000,"src":"n1","dest":"n2","type":"replicate","msg_id":9,"fate":"dropped","why":"partition"}
//! ```
//!
//! `t_ns` is when the router received the message from its sender, in the history's time base;
//! a delivered message arrives `delay_ns` later. `msg_id`, `in_reply_to`, `duplicate_of` (the id
//! of the message this one is a copy of) and `code` (an error body's code) are optional; fields
//! this reader does not know are ignored, so that newer benches' files still read.
//!
//! The file can hold millions of lines: [`read`] streams it and hands each message to the caller,
//! which keeps what it draws. A line that does not parse is skipped and counted, with the first
//! one's line number kept for the report to mention: a run killed mid-write leaves a torn last
//! line, and one bad line should not cost the reader the diagram.

use std::io::BufRead;
use std::path::Path;

use serde::Deserialize;

use crate::error::ReportError;

/// One message as the router recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The router's number for it, unique in the run.
    pub id: u64,
    /// When the router received it from its sender.
    pub t_ns: u64,
    pub src: String,
    pub dest: String,
    /// The body's `type`.
    pub kind: String,
    pub msg_id: Option<u64>,
    pub in_reply_to: Option<u64>,
    pub fate: Fate,
    /// The message this one is a copy of, for a copy the nemesis added.
    pub duplicate_of: Option<u64>,
    /// An error body's code.
    pub code: Option<i64>,
}

/// What became of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    Delivered {
        delay_ns: u64,
    },
    /// `why`: `partition`, `loss`, `down` (the destination was not running) or `unknown
    /// destination`; empty when the line did not say.
    Dropped {
        why: String,
    },
}

impl Message {
    /// When it reached its destination, if it did.
    pub fn arrival(&self) -> Option<u64> {
        match self.fate {
            Fate::Delivered { delay_ns } => Some(self.t_ns.saturating_add(delay_ns)),
            Fate::Dropped { .. } => None,
        }
    }

    pub fn dropped(&self) -> bool {
        matches!(self.fate, Fate::Dropped { .. })
    }
}

/// A line as written; see the module docs.
#[derive(Deserialize)]
struct Line {
    id: u64,
    t_ns: u64,
    src: String,
    dest: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    msg_id: Option<u64>,
    #[serde(default)]
    in_reply_to: Option<u64>,
    fate: LineFate,
    #[serde(default)]
    why: Option<String>,
    #[serde(default)]
    delay_ns: u64,
    #[serde(default)]
    duplicate_of: Option<u64>,
    #[serde(default)]
    code: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum LineFate {
    Delivered,
    Dropped,
}

/// A line of `messages.jsonl` that is not a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct BadLine {
    /// 1-based.
    pub line: u64,
    pub reason: String,
}

/// Parses line number `line` (1-based, for the error) of `messages.jsonl`.
pub fn parse(line: u64, text: &str) -> Result<Message, BadLine> {
    let l: Line = serde_json::from_str(text).map_err(|e| BadLine {
        line,
        reason: e.to_string(),
    })?;
    Ok(Message {
        id: l.id,
        t_ns: l.t_ns,
        src: l.src,
        dest: l.dest,
        kind: l.kind,
        msg_id: l.msg_id,
        in_reply_to: l.in_reply_to,
        fate: match l.fate {
            LineFate::Delivered => Fate::Delivered {
                delay_ns: l.delay_ns,
            },
            LineFate::Dropped => Fate::Dropped {
                why: l.why.unwrap_or_default(),
            },
        },
        duplicate_of: l.duplicate_of,
        code: l.code,
    })
}

/// The lines [`read`] skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    pub lines: u64,
    /// The first of them.
    pub first: Option<BadLine>,
}

impl Skipped {
    /// A sentence for the report, or `None` when nothing was skipped.
    pub fn note(&self) -> Option<String> {
        let first = self.first.as_ref()?;
        Some(match self.lines {
            1 => format!("1 line of messages.jsonl was not a message and was skipped ({first})."),
            n => format!(
                "{n} lines of messages.jsonl were not messages and were skipped (the first: \
                 {first})."
            ),
        })
    }
}

/// Streams the messages of the file at `path` to `each`, in the file's order (the router's,
/// by `t_ns`). Blank lines are ignored; malformed ones are skipped and returned.
pub fn read(path: &Path, mut each: impl FnMut(Message)) -> Result<Skipped, ReportError> {
    let file = std::fs::File::open(path).map_err(ReportError::io(path))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut skipped = Skipped::default();
    let mut buf = String::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = reader.read_line(&mut buf).map_err(ReportError::io(path))?;
        if n == 0 {
            return Ok(skipped);
        }
        line += 1;
        let text = buf.trim();
        if text.is_empty() {
            continue;
        }
        match parse(line, text) {
            Ok(m) => each(m),
            Err(bad) => {
                skipped.lines += 1;
                skipped.first.get_or_insert(bad);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivered_message_reads_with_every_field() {
        let m = parse(
            1,
            r#"{"id":20,"t_ns":1260000,"src":"n1","dest":"n2","type":"replicate","msg_id":9,"in_reply_to":3,"fate":"delivered","delay_ns":3000000,"duplicate_of":18,"code":11}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            Message {
                id: 20,
                t_ns: 1_260_000,
                src: "n1".into(),
                dest: "n2".into(),
                kind: "replicate".into(),
                msg_id: Some(9),
                in_reply_to: Some(3),
                fate: Fate::Delivered {
                    delay_ns: 3_000_000
                },
                duplicate_of: Some(18),
                code: Some(11),
            }
        );
        assert_eq!(m.arrival(), Some(4_260_000));
        assert!(!m.dropped());
    }

    #[test]
    fn optional_fields_may_be_missing_and_unknown_ones_are_ignored() {
        let m = parse(
            7,
            r#"{"id":18,"t_ns":1250000,"src":"n1","dest":"n2","type":"replicate","fate":"dropped","why":"partition","body":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(
            (m.msg_id, m.in_reply_to, m.duplicate_of, m.code),
            (None, None, None, None)
        );
        assert_eq!(
            m.fate,
            Fate::Dropped {
                why: "partition".into()
            }
        );
        assert_eq!(m.arrival(), None);
        // A delivered message without a delay arrived at once; a drop without a reason has an
        // empty one.
        let m = parse(
            8,
            r#"{"id":1,"t_ns":5,"src":"c1","dest":"n1","type":"read","fate":"delivered"}"#,
        )
        .unwrap();
        assert_eq!(m.arrival(), Some(5));
        let m = parse(
            9,
            r#"{"id":2,"t_ns":5,"src":"n1","dest":"n9","type":"x","fate":"dropped"}"#,
        )
        .unwrap();
        assert_eq!(m.fate, Fate::Dropped { why: String::new() });
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_its_line_number() {
        for (text, says) in [
            (
                r#"{"id":1,"t_ns":5,"src":"c1","dest":"n1","type":"read","fate":"lost"}"#,
                "unknown variant",
            ),
            (
                r#"{"id":1,"t_ns":5,"src":"c1","dest":"n1","type":"read"}"#,
                "missing field `fate`",
            ),
            (r#"{"id":1,"t_ns":5,"src":"c1","de"#, "EOF"),
            ("not json", "expected"),
        ] {
            let err = parse(42, text).unwrap_err();
            assert_eq!(err.line, 42);
            let shown = err.to_string();
            assert!(shown.starts_with("line 42: "), "{shown}");
            assert!(shown.contains(says), "{text}: {shown}");
        }
    }

    #[test]
    fn reading_a_file_skips_blank_and_malformed_lines_and_names_the_first_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages.jsonl");
        let ok = |id: u64| {
            format!(
                r#"{{"id":{id},"t_ns":{id},"src":"n1","dest":"n2","type":"t","fate":"delivered"}}"#
            )
        };
        let torn = r#"{"id":4,"t_ns":4,"src":"n1""#;
        std::fs::write(
            &path,
            format!("{}\n\n{}\ngarbage\n{}\n{torn}", ok(1), ok(2), ok(3)),
        )
        .unwrap();
        let mut ids = Vec::new();
        let skipped = read(&path, |m| ids.push(m.id)).unwrap();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(skipped.lines, 2);
        assert_eq!(skipped.first.as_ref().unwrap().line, 4);
        let note = skipped.note().unwrap();
        assert!(
            note.starts_with(
                "2 lines of messages.jsonl were not messages and were skipped (the first: line 4: "
            ),
            "{note}"
        );
        assert_eq!(Skipped::default().note(), None);
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = read(Path::new("/nonexistent/messages.jsonl"), |_| {}).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/messages.jsonl"));
    }
}
