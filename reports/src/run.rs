//! A finished run directory, loaded for rendering: its results, its configuration and its
//! operations in a compact form (a 1,000,000-operation history is about 32 MB here).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use checker::{Func, History, Outcome, ReadOptions};

use crate::error::ReportError;
use crate::results::RunResults;

/// How an operation ended, as the plots and tables group it. `status as usize` indexes
/// [`Status::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Ok,
    /// A CAS whose precondition did not hold: answered, correctly, and it changed nothing. Not a
    /// failure: the store was available.
    CasMiss,
    Fail,
    Info,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Ok, Status::CasMiss, Status::Fail, Status::Info];

    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::CasMiss => "CAS miss",
            Status::Fail => "fail",
            Status::Info => "info",
        }
    }

    /// The store answered: the operation took effect, or it was a CAS that found another value.
    pub fn answered(self) -> bool {
        matches!(self, Status::Ok | Status::CasMiss)
    }
}

/// The functions in the order the report lists them.
pub const FUNCS: [Func; 5] = [
    Func::Read,
    Func::Write,
    Func::Cas,
    Func::Delete,
    Func::Append,
];

/// One operation, reduced to what the plots and tables need.
#[derive(Clone, Copy, Debug)]
pub struct Op {
    pub f: Func,
    pub status: Status,
    /// Nanoseconds since the run started.
    pub invoke: u64,
    /// `None` when the history ended before the operation completed.
    pub complete: Option<u64>,
}

impl Op {
    /// Service time (invocation to completion) in milliseconds, for completed operations. The
    /// history does not record an open-loop operation's intended start, so this is the only
    /// latency the report can compute per operation.
    pub fn service_ms(&self) -> Option<f64> {
        self.complete
            .map(|c| c.saturating_sub(self.invoke) as f64 / 1e6)
    }
}

/// A run directory, read.
pub struct Run {
    pub dir: PathBuf,
    pub results: RunResults,
    /// `config.toml` as written by the run, if present.
    pub config: Option<String>,
    pub ops: Vec<Op>,
    /// End of the history, nanoseconds (the last event of any operation or fault).
    pub end_ns: u64,
}

impl Run {
    /// Reads `results.json`, `config.toml` and `history.jsonl` from `dir`.
    pub fn load(dir: &Path) -> Result<Run, ReportError> {
        let results = read_results(&dir.join("results.json"))?;
        let history_path = dir.join("history.jsonl");
        let (history, _) =
            checker::read_file(&history_path, &ReadOptions::default()).map_err(|source| {
                ReportError::History {
                    path: history_path.clone(),
                    source,
                }
            })?;
        Ok(Run::new(dir, results, &history))
    }

    /// The run in `dir` from results and a history already in memory; reads only `config.toml`.
    pub fn new(dir: &Path, results: RunResults, history: &History) -> Run {
        let ops: Vec<Op> = history
            .ops
            .iter()
            .map(|op| Op {
                f: op.call.func(),
                status: match op.outcome {
                    Outcome::Ok(_) => Status::Ok,
                    Outcome::PreconditionFailed => Status::CasMiss,
                    Outcome::Fail => Status::Fail,
                    Outcome::Info => Status::Info,
                },
                invoke: op.invoke.time,
                complete: op.complete.map(|c| c.time),
            })
            .collect();
        let end_ns = ops
            .iter()
            .map(|o| o.complete.unwrap_or(o.invoke))
            .chain(results.faults.iter().map(|w| w.end_ns))
            .max()
            .unwrap_or(0);
        Run {
            dir: dir.to_owned(),
            config: std::fs::read_to_string(dir.join("config.toml")).ok(),
            results,
            ops,
            end_ns,
        }
    }

    /// Wall-clock time of the history's time 0, when the results record it.
    pub fn started_at(&self) -> Option<SystemTime> {
        self.results
            .started_at
            .as_deref()
            .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
    }

    /// Wall-clock time of a history time.
    pub fn wall(&self, ns: u64) -> Option<SystemTime> {
        self.started_at().map(|t| t + Duration::from_nanos(ns))
    }
}

/// The `--node-arg` flags the nodes ran with: from `results.json`, or, for a run recorded before
/// results carried them, from the `node_args = [...]` line of its `config.toml` (a TOML array of
/// plain strings reads as JSON), so that an old run with a deliberate bug is still flagged.
pub fn node_args(results: &RunResults, config: Option<&str>) -> Vec<String> {
    if !results.node_args.is_empty() {
        return results.node_args.clone();
    }
    config
        .into_iter()
        .flat_map(str::lines)
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "node_args")
        .and_then(|(_, v)| serde_json::from_str(v.trim()).ok())
        .unwrap_or_default()
}

/// A history time as the report states every time: seconds since the run started, to the
/// microsecond (`12.345678 s`), as the checker's explanations do.
pub fn seconds(ns: u64) -> String {
    format!("{:.6} s", ns as f64 / 1e9)
}

/// Reads and parses a `results.json`.
pub fn read_results(path: &Path) -> Result<RunResults, ReportError> {
    let text = std::fs::read_to_string(path).map_err(ReportError::io(path))?;
    serde_json::from_str(&text).map_err(|source| ReportError::Results {
        path: path.to_owned(),
        source,
    })
}

/// Time buckets for the over-time plots: a round width that gives at most about 120 buckets.
#[derive(Clone, Copy, Debug)]
pub struct Buckets {
    pub width_ns: u64,
    pub count: usize,
}

impl Buckets {
    pub fn over(span_ns: u64) -> Buckets {
        const WIDTHS_MS: [u64; 14] = [
            100, 200, 250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000,
            300_000, 600_000,
        ];
        let width_ns = WIDTHS_MS
            .iter()
            .map(|ms| ms * 1_000_000)
            .find(|w| span_ns / w < 120)
            .unwrap_or(span_ns.div_ceil(120).max(1));
        Buckets {
            width_ns,
            // A time exactly at the end belongs to the last bucket (see `index`).
            count: span_ns.div_ceil(width_ns).max(1) as usize,
        }
    }

    pub fn index(&self, ns: u64) -> usize {
        ((ns / self.width_ns) as usize).min(self.count - 1)
    }

    /// The bucket's middle, seconds.
    pub fn center_s(&self, i: usize) -> f64 {
        (i as f64 + 0.5) * self.width_ns as f64 / 1e9
    }

    pub fn width_s(&self) -> f64 {
        self.width_ns as f64 / 1e9
    }
}

/// Exact quantile of sorted values (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_stay_under_121_and_cover_the_span() {
        for span_s in [0.5, 1.0, 7.0, 60.0, 61.0, 600.0, 3600.0, 86_400.0] {
            let span = (span_s * 1e9) as u64;
            let b = Buckets::over(span);
            assert!(b.count <= 121, "{span_s}s: {b:?}");
            assert_eq!(b.index(span), b.count - 1);
            assert!(b.width_ns as f64 * b.count as f64 >= span as f64);
        }
    }

    #[test]
    fn node_args_of_an_old_run_come_from_its_config() {
        let results: RunResults = serde_json::from_value(serde_json::json!({
            "verdict": "valid", "test": "t", "seed": 1, "profile": "p", "nemesis": "n",
            "operations": 0, "events": 0, "ok": 0, "fail": 0, "info": 0,
            "throughput_ops_per_s": 0.0, "latency": {}, "faults": [],
            "checker": {"elapsed_ms": 0.0, "states": 0, "invalid_keys": [], "unknown_keys": [], "keys": []},
        }))
        .unwrap();
        let config =
            "seed = 1\nnode_args = [\"--unsafe-read-local\", \"-v\"]\n\n[profile]\nnode_args = 3\n";
        assert_eq!(
            node_args(&results, Some(config)),
            ["--unsafe-read-local", "-v"]
        );
        assert!(node_args(&results, Some("[profile]\nnode_args = [\"x\"]\n")).is_empty());
        assert!(node_args(&results, None).is_empty());
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.5), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
