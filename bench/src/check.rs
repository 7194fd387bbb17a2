//! `bench check FILE`: read a history in any supported format, check it, print the verdict.

use std::fmt::Write as _;
use std::time::Instant;

use checker::{
    Anomaly, CheckOptions, CheckResult, History, OpSummary, ReadOptions, Value, Verdict,
};

use crate::cli::{CheckArgs, EXIT_USAGE};

/// How many invalid keys to show in full, and how many unknown keys to list.
const SHOW_INVALID: usize = 3;
const SHOW_UNKNOWN: usize = 10;
/// How many operations of a core to list (a value built by hundreds of appends needs them all).
const SHOW_CORE: usize = 30;

pub fn run(args: &CheckArgs) -> u8 {
    let options = ReadOptions {
        format: args.format,
        model: args.model,
        initial_value: args.initial_value.as_deref().map(parse_value),
    };
    let read_started = Instant::now();
    let (history, format) = match checker::read_file(&args.file, &options) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("bench check: {}: {e}", args.file.display());
            return EXIT_USAGE;
        }
    };
    let read_ms = read_started.elapsed().as_secs_f64() * 1e3;
    let mut result = checker::check(
        &history,
        &CheckOptions {
            time_limit: args.time_limit,
            memory_limit: args.memory_limit_mib << 20,
            threads: args.threads,
            all_keys: args.all_keys,
            fail_fast: args.fail_fast,
            shrink_time: args.shrink_time,
        },
    );
    let nothing = nothing_checked(&mut result, history.ops.len() as u64)
        .then_some("the history records none, so nothing was checked");
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).expect("results serialise")
        );
    } else {
        let source = format!("{} ({format})", args.file.display());
        print!("{}", render(&source, &history, &result, read_ms, nothing));
    }
    result.verdict.exit_code() as u8
}

/// An integer if it parses as one, else a string: how EDN registers spell their values.
fn parse_value(s: &str) -> Value {
    s.parse()
        .map_or_else(|_| Value::Str(s.to_owned()), Value::Int)
}

/// An empty history is trivially linearizable, but a file or a run without operations tested
/// nothing, and calling it valid (exit 0) would pass it as a success: its verdict becomes
/// unknown (exit 2). `operations` are those that test the store. Returns whether it did.
pub(crate) fn nothing_checked(result: &mut CheckResult, operations: u64) -> bool {
    if operations > 0 {
        return false;
    }
    result.verdict = Verdict::Unknown;
    true
}

/// The human-readable report of a check. `nothing`: why there was nothing to check (see
/// [`nothing_checked`]), said in place of a verdict on the keys.
pub fn render(
    source: &str,
    history: &History,
    result: &CheckResult,
    read_ms: f64,
    nothing: Option<&str>,
) -> String {
    let mut out = String::new();
    let n = history.outcome_counts();
    let _ = writeln!(
        out,
        "{source}: {} ({} ok, {} CAS miss, {} fail, {} info) on {}, read in {read_ms:.1} ms",
        checker::counted(history.ops.len() as u64, "operation", "operations"),
        n.ok,
        n.cas_miss,
        n.fail,
        n.info,
        checker::counted(history.keys.len() as u64, "key", "keys"),
    );
    let keys = result.keys.len();
    let searched = format!(
        "{} states searched in {:.1} ms",
        result.states, result.elapsed_ms
    );
    if let Some(why) = nothing {
        let _ = writeln!(out, "UNKNOWN: no operations: {why}");
        return out;
    }
    match result.verdict {
        Verdict::Valid => {
            let _ = writeln!(
                out,
                "VALID: every key is linearizable ({}, {searched})",
                checker::counted(keys as u64, "key", "keys")
            );
        }
        Verdict::Invalid => {
            let _ = writeln!(
                out,
                "INVALID: {} not linearizable ({searched})",
                of_keys(result.count(Verdict::Invalid), keys)
            );
        }
        Verdict::Unknown => {
            let _ = writeln!(
                out,
                "UNKNOWN: {} could not be decided ({searched})",
                of_keys(result.count(Verdict::Unknown), keys)
            );
        }
    }
    let invalid: Vec<_> = result
        .keys
        .iter()
        .filter(|k| k.verdict == Verdict::Invalid)
        .collect();
    for key in invalid.iter().take(SHOW_INVALID) {
        let anomaly = key.anomaly.as_ref().expect("invalid keys carry an anomaly");
        render_anomaly(&mut out, &key.key, anomaly, history.timed);
    }
    if invalid.len() > SHOW_INVALID {
        let rest: Vec<&str> = invalid[SHOW_INVALID..]
            .iter()
            .map(|k| k.key.as_str())
            .collect();
        let _ = writeln!(
            out,
            "\nalso not linearizable: {} (--json shows them all)",
            rest.join(", ")
        );
    }
    let unknown: Vec<_> = result
        .keys
        .iter()
        .filter(|k| k.verdict == Verdict::Unknown)
        .collect();
    if !unknown.is_empty() {
        let _ = writeln!(out, "\nundecided keys:");
        for key in unknown.iter().take(SHOW_UNKNOWN) {
            let reason = key.reason.as_deref().unwrap_or("");
            let _ = writeln!(out, "  {:?}: {reason}", key.key);
        }
        if unknown.len() > SHOW_UNKNOWN {
            let _ = writeln!(out, "  ... and {} more", unknown.len() - SHOW_UNKNOWN);
        }
    }
    out
}

/// "1 of 3 keys is" / "2 of 3 keys are" / "1 of 1 key is".
fn of_keys(n: usize, total: usize) -> String {
    let keys = if total == 1 { "key" } else { "keys" };
    let verb = if n == 1 { "is" } else { "are" };
    format!("{n} of {total} {keys} {verb}")
}

fn render_anomaly(out: &mut String, key: &str, a: &Anomaly, timed: bool) {
    let _ = writeln!(out, "\nkey {key:?} is not linearizable:");
    let _ = writeln!(out, "  {}", a.explanation);
    if let Some(core) = &a.core {
        let n = checker::counted(core.ops.len() as u64, "operation", "operations");
        if core.ops.len() == 1 {
            let _ = writeln!(out, "  the core: this operation cannot happen on its own:");
        } else if core.minimal {
            let _ = writeln!(
                out,
                "  the core: these {n} cannot be ordered, and none of them can be left out:"
            );
        } else {
            let _ = writeln!(
                out,
                "  these {n} cannot be ordered (shrinking ran out of time: perhaps not the smallest):"
            );
        }
        for op in core.ops.iter().take(SHOW_CORE) {
            let _ = writeln!(out, "    {}", op_line(op, timed));
        }
        if core.ops.len() > SHOW_CORE {
            let _ = writeln!(
                out,
                "    ... and {} more (--json lists them all)",
                core.ops.len() - SHOW_CORE
            );
        }
    }
    if a.refuted_before_search {
        let _ = writeln!(
            out,
            "  refuted before searching: no order of the operations can place it"
        );
    } else {
        let _ = writeln!(
            out,
            "  the longest linearizable prefix has {} and leaves the value {}{}",
            checker::counted(a.prefix_len as u64, "operation", "operations"),
            a.state_after(),
            if a.prefix_tail.is_empty() {
                ""
            } else {
                "; it ends with:"
            }
        );
    }
    for op in &a.prefix_tail {
        let _ = writeln!(out, "    {}", op_line(op, timed));
    }
    let _ = writeln!(out, "  operations around the failure (by invocation):");
    for op in &a.around {
        let mark = if op.index == a.culprit.index {
            "  <- cannot be linearized"
        } else {
            ""
        };
        let _ = writeln!(out, "    {}{mark}", op_line(op, timed));
    }
}

fn op_line(op: &OpSummary, timed: bool) -> String {
    let at = |t: u64, line: u64| {
        if timed {
            format!("{:>12.6} s", t as f64 / 1e9)
        } else {
            format!("line {line:>6}")
        }
    };
    let end = match (op.complete, op.complete_line) {
        (Some(t), Some(l)) => at(t, l),
        _ => format!("{:>14}", "never"),
    };
    format!(
        "process {:<4} {} .. {}  {}",
        op.process,
        at(op.invoke, op.invoke_line),
        end,
        op.text
    )
}
