//! The anomaly section: every key that is not linearizable, the earliest drawn in full.
//!
//! The earliest anomaly (its culprit invoked first) is the first sign that something went
//! wrong, so it gets the timeline plot and the node log lines of its moment. Every other invalid
//! key gets the same words and table (the checker's explanation, what became of the write it
//! missed, the faults in force, its operations), folded so that a run with many invalid keys
//! stays readable.
//!
//! When the checker shrank a key's counterexample to its core (the few operations that cannot
//! be ordered on their own), the core comes before the operations around the failure: its
//! sentence, its own small timeline (for the first [`CORE_DRAWN`] keys) and its table.
//!
//! Every time in the section is seconds since the run started, to the microsecond, as in the
//! checker's explanations: the timeline's axis, the tables, the faults and the log lines (whose
//! wall-clock stamps are placed with `results.started_at`).

use std::path::PathBuf;
use std::time::Duration;

use checker::{Anomaly, Core, Func, KeyResult, OpSummary};
use serde::Serialize;

use crate::error::ReportError;
use crate::faults;
use crate::logs::lines_between;
use crate::results::FaultWindow;
use crate::run::{Run, Status, seconds};
use crate::timeline::{self, Bar, Mark};

/// Node log lines shown with the earliest anomaly: this long before the culprit's invocation …
const LOG_BEFORE: Duration = Duration::from_secs(2);
/// … to this long after its completion, at most this many.
const LOG_AFTER: Duration = Duration::from_secs(1);
const LOG_LIMIT: usize = 200;
/// Cores drawn as a timeline: the earliest anomaly's and those of the next keys, so that a run
/// with many invalid keys does not carry as many pictures (each core still has its table).
pub const CORE_DRAWN: usize = 10;

#[derive(Serialize)]
pub struct AnomalyView {
    key: String,
    /// The element id of this key's part of the page.
    anchor: String,
    /// The culprit in a few words, for a folded key's summary line.
    culprit: String,
    explanation: String,
    /// What became of the acknowledged write the culprit missed, one sentence per fault.
    missed: Vec<String>,
    /// Which faults were in force while the culprit ran, in words.
    faults_then: String,
    /// The counterexample shrunk to its core, when the checker did it.
    core: Option<CoreView>,
    ops: Vec<OpRow>,
    /// Refuted before any search: there is no longest prefix to tell.
    refuted: bool,
    prefix_len: usize,
    value_after: String,
    prefix_tail: Vec<String>,
    /// The timeline and the node logs; only for the earliest anomaly.
    drawn: Option<Drawn>,
}

#[derive(Serialize)]
struct CoreView {
    /// What the core is, as `bench check` says it: `These 3 operations cannot be ordered, and
    /// none of them can be left out:`.
    sentence: String,
    /// How it was found: from how many operations, in how many checks.
    found: String,
    ops: Vec<OpRow>,
    /// Its timeline as a data URI; only for the first [`CORE_DRAWN`] keys.
    timeline: Option<String>,
}

#[derive(Serialize)]
struct Drawn {
    timeline: String,
    logs: Vec<LogRow>,
    log_window: String,
    no_logs: String,
}

#[derive(Serialize)]
struct OpRow {
    index: usize,
    process: u64,
    text: String,
    /// `ok`, `CAS miss`, `fail` or `info`, as the rest of the report counts them.
    outcome: &'static str,
    /// The badge's CSS class suffix.
    badge: &'static str,
    invoke: String,
    complete: String,
    took: String,
    lines: String,
    culprit: bool,
    missed: bool,
}

#[derive(Serialize)]
struct LogRow {
    at: String,
    node: String,
    text: String,
}

/// Every invalid key's view, the earliest anomaly first, the others by their culprit's
/// invocation. `png` gives the path of a timeline to draw (`anomaly.png`, `anomaly-core.png`,
/// `anomaly-1-core.png`, ...).
pub fn views(
    run: &Run,
    png: &mut dyn FnMut(&str) -> PathBuf,
) -> Result<Vec<AnomalyView>, ReportError> {
    let mut keys: Vec<(&KeyResult, &Anomaly)> = run
        .results
        .checker
        .keys
        .iter()
        .filter_map(|k| k.anomaly.as_ref().map(|a| (k, a)))
        .collect();
    // Stable, so that the first is the one `earliest_anomaly` names.
    keys.sort_by_key(|(_, a)| a.culprit.invoke);
    keys.iter()
        .enumerate()
        .map(|(i, (k, a))| {
            let story = missed_story(&run.results.faults, a);
            let drawn = if i == 0 {
                let path = png("anomaly.png");
                // `around` holds the culprit (the checker's contract).
                timeline::timeline(
                    "anomaly timeline",
                    &format!(
                        "Operations on key {} around the anomaly (red: cannot be linearized)",
                        k.key
                    ),
                    &bars(run, a, &a.around),
                    &story.marks,
                    &path,
                )?;
                Some(drawn(run, a, &path)?)
            } else {
                None
            };
            let core = match &a.core {
                Some(core) => {
                    let timeline = if i < CORE_DRAWN {
                        let name = match i {
                            0 => "anomaly-core.png".to_owned(),
                            _ => format!("anomaly-{i}-core.png"),
                        };
                        let path = png(&name);
                        let marks = core_marks(&run.results.faults, &core.ops);
                        timeline::timeline(
                            "core timeline",
                            &core_caption(&k.key, core),
                            &bars(run, a, &core.ops),
                            &marks,
                            &path,
                        )?;
                        Some(crate::html::data_uri(&path)?)
                    } else {
                        None
                    };
                    Some(core_view(run, k, a, core, timeline))
                }
                None => None,
            };
            Ok(view(run, &k.key, i, a, story.sentences, core, drawn))
        })
        .collect()
}

/// How an operation ended, as the report counts it: a CAS miss apart from a failure. From the
/// run's operations (indexed as the history's), else from the checker's outcome.
fn status(run: &Run, o: &OpSummary) -> Status {
    match run.ops.get(o.index) {
        Some(op) => op.status,
        None => match o.outcome.as_str() {
            "ok" => Status::Ok,
            "info" => Status::Info,
            _ => Status::Fail,
        },
    }
}

fn bars<'a>(run: &Run, a: &Anomaly, ops: &'a [OpSummary]) -> Vec<Bar<'a>> {
    ops.iter()
        .map(|o| Bar {
            op: o,
            status: status(run, o),
            culprit: o.index == a.culprit.index,
            missed: a.missed.as_ref().is_some_and(|m| m.index == o.index),
        })
        .collect()
}

fn rows(run: &Run, a: &Anomaly, ops: &[OpSummary]) -> Vec<OpRow> {
    ops.iter()
        .map(|o| {
            let status = status(run, o);
            OpRow {
                index: o.index,
                process: o.process,
                text: o.text.clone(),
                outcome: status.name(),
                badge: match status {
                    Status::Ok => "ok",
                    Status::CasMiss => "miss",
                    Status::Fail => "fail",
                    Status::Info => "info",
                },
                invoke: seconds(o.invoke),
                complete: o.complete.map_or("never".into(), seconds),
                took: o.complete.map_or(String::new(), |c| {
                    format!("{:.2}", c.saturating_sub(o.invoke) as f64 / 1e6)
                }),
                lines: match o.complete_line {
                    Some(c) => format!("{}, {c}", o.invoke_line),
                    None => o.invoke_line.to_string(),
                },
                culprit: o.index == a.culprit.index,
                missed: a.missed.as_ref().is_some_and(|m| m.index == o.index),
            }
        })
        .collect()
}

/// The core's sentence, as `bench check` words it.
fn core_sentence(core: &Core) -> String {
    let n = checker::counted(core.ops.len() as u64, "operation", "operations");
    if core.ops.len() == 1 {
        "This operation cannot happen on its own:".to_owned()
    } else if core.minimal {
        format!("These {n} cannot be ordered, and none of them can be left out:")
    } else {
        format!(
            "These {n} cannot be ordered (shrinking ran out of time: perhaps not the smallest):"
        )
    }
}

fn core_caption(key: &str, core: &Core) -> String {
    match core.ops.len() {
        1 => format!("The core of key {key}: 1 operation that cannot happen on its own"),
        n => format!("The core of key {key}: {n} operations that cannot be ordered"),
    }
}

fn core_view(
    run: &Run,
    k: &KeyResult,
    a: &Anomaly,
    core: &Core,
    timeline: Option<String>,
) -> CoreView {
    CoreView {
        sentence: core_sentence(core),
        found: format!(
            "Found by shrinking the key's {} with the checker as the judge ({} in {:.0} ms).",
            checker::counted(k.ops as u64, "operation", "operations"),
            checker::counted(core.checks, "check", "checks"),
            core.elapsed_ms
        ),
        ops: rows(run, a, &core.ops),
        timeline,
    }
}

/// The faults to mark on the core's timeline: each that began during the core's operations, or
/// was in force when the first of them was invoked.
fn core_marks(faults: &[FaultWindow], ops: &[OpSummary]) -> Vec<Mark> {
    let from = ops.iter().map(|o| o.invoke).min().unwrap_or(0);
    let to = ops
        .iter()
        .map(|o| o.complete.unwrap_or(o.invoke))
        .max()
        .unwrap_or(from);
    faults
        .iter()
        .filter(|w| w.start_ns <= to && w.end_ns >= from)
        .map(|w| Mark {
            at_ns: w.start_ns,
            label: format!("{} began", faults::described(w)),
        })
        .collect()
}

fn view(
    run: &Run,
    key: &str,
    i: usize,
    a: &Anomaly,
    missed: Vec<String>,
    core: Option<CoreView>,
    drawn: Option<Drawn>,
) -> AnomalyView {
    let c = &a.culprit;
    AnomalyView {
        key: key.to_owned(),
        anchor: format!("anomaly-{i}"),
        culprit: format!(
            "{} by process {}, invoked at {}",
            c.text,
            c.process,
            seconds(c.invoke)
        ),
        explanation: a.explanation.clone(),
        missed,
        faults_then: faults_then(&run.results.faults, c),
        core,
        // `around` is sorted by invocation (the checker's contract).
        ops: rows(run, a, &a.around),
        refuted: a.refuted_before_search,
        prefix_len: a.prefix_len,
        value_after: a.state_after(),
        prefix_tail: a.prefix_tail.iter().map(|o| o.text.clone()).collect(),
        drawn,
    }
}

fn faults_then(faults: &[FaultWindow], c: &OpSummary) -> String {
    let (from, to) = (c.invoke, c.complete.unwrap_or(c.invoke));
    let overlapping: Vec<String> = faults
        .iter()
        .filter(|w| w.start_ns <= to && from <= w.end_ns)
        .map(|w| {
            format!(
                "{} from {} to {}",
                faults::described(w),
                seconds(w.start_ns),
                seconds(w.end_ns)
            )
        })
        .collect();
    if overlapping.is_empty() {
        "No fault was in force while the impossible operation ran.".to_owned()
    } else {
        format!(
            "In force while the impossible operation ran: {}.",
            overlapping.join("; ")
        )
    }
}

/// In words, what became of the write `a`'s culprit missed, against the run's faults: each fault
/// that began between the write's acknowledgement and the culprit's invocation (or was in force
/// across the acknowledgement), or that none did. Empty when the anomaly names no missed write.
pub fn missed_write(faults: &[FaultWindow], a: &Anomaly) -> Vec<String> {
    missed_story(faults, a).sentences
}

/// What became of the write the culprit missed, and the fault starts to mark on the timeline.
struct Story {
    sentences: Vec<String>,
    marks: Vec<Mark>,
}

/// For an anomaly that names the acknowledged write its culprit missed: each fault that began
/// between the write's acknowledgement and the culprit's invocation, or was in force across the
/// acknowledgement, in one sentence; or a sentence saying that none did.
fn missed_story(faults: &[FaultWindow], a: &Anomaly) -> Story {
    let Some(m) = &a.missed else {
        return Story {
            sentences: Vec::new(),
            marks: Vec::new(),
        };
    };
    let acked = m.complete.unwrap_or(m.invoke);
    let c = &a.culprit;
    if acked > c.invoke {
        // Not a write the culprit came too late to see (a lock's two holders overlap): the
        // story of what became of it does not apply.
        return Story {
            sentences: Vec::new(),
            marks: Vec::new(),
        };
    }
    let write = match m.f {
        Func::Write => format!("The write of {} by process {}", m.value, m.process),
        _ => format!("Process {}'s {}", m.process, m.text),
    };
    let culprit = format!("the {} invoked at {}", c.f.name(), seconds(c.invoke));
    let mut sentences = Vec::new();
    let mut marks = Vec::new();
    for w in faults
        .iter()
        .filter(|w| w.start_ns <= c.invoke && w.end_ns >= acked)
    {
        let fault = faults::described(w);
        sentences.push(if w.start_ns >= acked {
            format!(
                "{write} acknowledged at {} is missing after {fault} began at {}, before {culprit}.",
                seconds(acked),
                seconds(w.start_ns)
            )
        } else {
            format!(
                "{write} acknowledged at {} is missing; it was acknowledged during {fault}, which \
                 began at {} and ended at {}.",
                seconds(acked),
                seconds(w.start_ns),
                seconds(w.end_ns)
            )
        });
        marks.push(Mark {
            at_ns: w.start_ns,
            label: format!("{fault} began"),
        });
    }
    if sentences.is_empty() {
        sentences.push(format!(
            "{write} acknowledged at {} is missing, and no fault began or was in force between \
             its acknowledgement and {culprit}.",
            seconds(acked)
        ));
    }
    Story { sentences, marks }
}

/// The earliest anomaly's timeline and the node log lines from around its culprit.
fn drawn(run: &Run, a: &Anomaly, timeline: &std::path::Path) -> Result<Drawn, ReportError> {
    let from_ns = a.culprit.invoke;
    let to_ns = a.culprit.complete.unwrap_or(a.culprit.invoke);
    let (logs, log_window, no_logs) = match (run.started_at(), run.wall(from_ns), run.wall(to_ns)) {
        (Some(start), Some(from), Some(to)) => {
            let from = from.checked_sub(LOG_BEFORE).unwrap_or(from);
            let logs = lines_between(&run.dir, start, from, to + LOG_AFTER, LOG_LIMIT);
            let window = format!(
                "from {} to {}",
                seconds(from_ns.saturating_sub(LOG_BEFORE.as_nanos() as u64)),
                seconds(to_ns + LOG_AFTER.as_nanos() as u64)
            );
            (
                logs,
                window,
                "The nodes logged nothing in this window.".to_owned(),
            )
        }
        _ => (
            Vec::new(),
            "around the anomaly".to_owned(),
            "results.json does not record when the run started, so node logs cannot be matched."
                .to_owned(),
        ),
    };
    Ok(Drawn {
        timeline: crate::html::data_uri(timeline)?,
        logs: logs
            .into_iter()
            .map(|l| LogRow {
                at: format!("{:>11.6} s", l.at_s),
                node: l.node,
                text: l.text,
            })
            .collect(),
        log_window,
        no_logs,
    })
}
