//! What the user sees of a run: the live progress line, results.json and the latency lines.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use reports::{CheckerSummary, FaultWindow, Quantiles, RunResults};

use crate::compaction::CompactionReport;
use crate::workload::{Ctx, Stats};

/// `results.json` as the bench writes it: the results the report reads, plus what only the bench
/// knows (readers that do not know a field ignore it).
#[derive(serde::Serialize)]
pub(crate) struct ResultsFile<'a> {
    #[serde(flatten)]
    pub results: &'a RunResults,
    /// Absent when the node logs could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compaction: Option<CompactionReport>,
}

/// The live progress line: rewritten in place on a terminal, one line every 5 s otherwise.
pub(crate) async fn progress(ctx: Arc<Ctx>) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let mut seconds = 0u64;
    let total = ctx.cfg.time_limit.as_secs_f64();
    let mut last_ops = 0u64;
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.tick().await;
    loop {
        interval.tick().await;
        let (ok, fail, info) = (
            ctx.ok.load(Ordering::Relaxed),
            ctx.fail.load(Ordering::Relaxed),
            ctx.info.load(Ordering::Relaxed),
        );
        let ops = ok + fail + info;
        let fault = ctx.fault.lock().expect("fault lock").clone();
        seconds += 1;
        let line = format!(
            "[{:>4.0}s / {:.0}s] {:>6} ops/s  ok {ok}  fail {fail}  info {info}  fault: {:<60.60}",
            ctx.start.elapsed().as_secs_f64().min(total),
            total,
            ops - last_ops,
            fault
        );
        if tty {
            eprint!("\r{line}");
        } else if seconds.is_multiple_of(5) {
            eprintln!("{}", line.trim_end());
        }
        last_ops = ops;
    }
}

fn quantiles(h: &Histogram<u64>) -> Quantiles {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Quantiles {
        count: h.len(),
        p50_ms: ms(0.5),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        max_ms: h.max() as f64 / 1000.0,
    }
}

pub(crate) struct RunFacts<'a> {
    pub history: &'a checker::History,
    pub result: &'a checker::CheckResult,
    pub stats: &'a Stats,
    pub windows: Vec<FaultWindow>,
    pub started_at: SystemTime,
    pub elapsed: Duration,
    pub events: u64,
}

pub(crate) fn results(ctx: &Ctx, facts: RunFacts<'_>) -> RunResults {
    let (ok, fail, info) = facts.history.outcome_counts();
    let run_secs = ctx
        .cfg
        .time_limit
        .as_secs_f64()
        .min(facts.elapsed.as_secs_f64());
    let completed = ctx.ok.load(Ordering::Relaxed)
        + ctx.fail.load(Ordering::Relaxed)
        + ctx.info.load(Ordering::Relaxed);
    RunResults {
        verdict: facts.result.verdict,
        test: ctx.cfg.test.clone(),
        seed: ctx.cfg.seed,
        profile: ctx.cfg.profile.name.clone(),
        nemesis: ctx.cfg.nemesis.name.clone(),
        started_at: Some(humantime::format_rfc3339_millis(facts.started_at).to_string()),
        duration_s: run_secs,
        operations: facts.history.ops.len(),
        events: facts.events,
        ok,
        fail,
        info,
        throughput_ops_per_s: completed as f64 / run_secs,
        latency: facts
            .stats
            .latency
            .iter()
            .map(|(f, h)| ((*f).to_owned(), quantiles(h)))
            .collect(),
        faults: facts.windows,
        checker: CheckerSummary::from(facts.result),
    }
}

pub(crate) fn print_latency(stats: &Stats) {
    let mut fs: Vec<_> = stats.latency.iter().collect();
    fs.sort_by_key(|(f, _)| **f);
    for (f, h) in fs {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "latency {f:<6} n={:<7} p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            h.len(),
            ms(0.5),
            ms(0.99),
            h.max() as f64 / 1000.0
        );
    }
}
