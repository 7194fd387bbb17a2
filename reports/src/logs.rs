//! Node log lines from around a moment of the run.
//!
//! kvnode stamps every line with the UTC wall-clock time in RFC 3339 with milliseconds; the run
//! records the wall-clock time of the history's time 0 (`started_at`), so a history interval maps
//! to log lines. A line without a timestamp (a panic message, a continuation) belongs to the line
//! before it.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

/// One log line, attributed to its node.
#[derive(Clone, Debug, Serialize)]
pub struct LogLine {
    pub node: String,
    /// Seconds since the run started (history time), for reading it next to the plots.
    pub at_s: f64,
    pub text: String,
}

/// The lines of every `<node>.log` in `dir` stamped within `[from, to]`, in time order, at most
/// `limit` of them (the earliest). `start` is the wall-clock time of history time 0.
pub fn lines_between(
    dir: &Path,
    start: SystemTime,
    from: SystemTime,
    to: SystemTime,
    limit: usize,
) -> Vec<LogLine> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    let mut out: Vec<(SystemTime, LogLine)> = Vec::new();
    for path in files {
        let node = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut current: Option<SystemTime> = None;
        for line in text.lines() {
            if let Some(t) = stamp(line) {
                current = Some(t);
            }
            let Some(t) = current else { continue };
            if line.contains(COUNTERS) {
                // Bookkeeping every second, not something that happened.
                continue;
            }
            if t < from {
                continue;
            }
            if t > to {
                break;
            }
            let at_s = t
                .duration_since(start)
                .map_or_else(|e| -e.duration().as_secs_f64(), |d| d.as_secs_f64());
            out.push((
                t,
                LogLine {
                    node: node.clone(),
                    at_s,
                    text: line.to_owned(),
                },
            ));
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out.into_iter().take(limit).map(|(_, l)| l).collect()
}

/// What kvnode's periodic counter lines say (`stats wal_syncs=N peer_messages=M ...`): left out
/// of the excerpts, which are about what the nodes did.
const COUNTERS: &str = " stats wal_syncs=";

/// The timestamp a log line starts with, if it starts with one.
fn stamp(line: &str) -> Option<SystemTime> {
    let first = line.split_whitespace().next()?;
    if !first.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    humantime::parse_rfc3339_weak(first).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn picks_the_lines_of_every_node_inside_the_window_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("n1.log"),
            "2026-11-23T10:00:00.100Z  INFO started\n\
             2026-11-23T10:00:01.400Z  INFO stats wal_syncs=3 peer_messages=9 peer_bytes=400\n\
             2026-11-23T10:00:01.500Z  INFO became leader of p3\n\
             thread 'main' panicked\n\
             2026-11-23T10:00:09.000Z  INFO too late\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("n2.log"),
            "2026-11-23T10:00:01.200Z  WARN lost quorum\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("history.jsonl"),
            "2026-11-23T10:00:01.300Z x\n",
        )
        .unwrap();
        let start = humantime::parse_rfc3339("2026-11-23T10:00:00Z").unwrap();
        let lines = lines_between(
            dir.path(),
            start,
            start + Duration::from_secs(1),
            start + Duration::from_secs(2),
            10,
        );
        let texts: Vec<_> = lines
            .iter()
            .map(|l| (l.node.as_str(), l.text.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                ("n2", "2026-11-23T10:00:01.200Z  WARN lost quorum"),
                ("n1", "2026-11-23T10:00:01.500Z  INFO became leader of p3"),
                ("n1", "thread 'main' panicked"),
            ]
        );
        assert!((lines[0].at_s - 1.2).abs() < 1e-9);
    }
}
