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
        let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
        let ops = ctx.completed();
        let fault = ctx.fault.lock().expect("fault lock").clone();
        seconds += 1;
        let line = format!(
            "[{:>4.0}s / {:.0}s] {:>6} ops/s  ok {}  CAS miss {}  fail {}  info {}  fault: {fault}",
            ctx.start.elapsed().as_secs_f64().min(total),
            total,
            ops - last_ops,
            load(&ctx.ok),
            load(&ctx.cas_miss),
            load(&ctx.fail),
            load(&ctx.info),
        );
        if tty {
            // Rewritten in place: never longer than the terminal is wide, or it would wrap.
            let width = terminal_size::terminal_size_of(std::io::stderr())
                .map_or(80, |(w, _)| usize::from(w.0));
            let fitted: String = line.chars().take(width.saturating_sub(1)).collect();
            eprint!("\r{fitted:<0$}", width.saturating_sub(1));
        } else if seconds.is_multiple_of(5) {
            eprintln!("{line}");
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
    pub interrupted: bool,
    pub messages: Option<reports::MessageStats>,
    pub costs: Option<reports::Costs>,
}

fn by_function(
    hs: &std::collections::HashMap<&'static str, Histogram<u64>>,
) -> std::collections::BTreeMap<String, Quantiles> {
    hs.iter()
        .map(|(f, h)| ((*f).to_owned(), quantiles(h)))
        .collect()
}

pub(crate) fn results(ctx: &Ctx, facts: RunFacts<'_>) -> RunResults {
    let n = facts.history.outcome_counts();
    let run_secs = ctx
        .cfg
        .time_limit
        .as_secs_f64()
        .min(facts.elapsed.as_secs_f64());
    let completed = ctx.completed();
    RunResults {
        verdict: facts.result.verdict,
        test: ctx.cfg.test.clone(),
        system: ctx.cfg.system.describe(),
        seed: ctx.cfg.seed,
        profile: ctx.cfg.profile.name.clone(),
        nemesis: ctx.cfg.nemesis.name.clone(),
        started_at: Some(humantime::format_rfc3339_millis(facts.started_at).to_string()),
        duration_s: run_secs,
        operations: facts.history.ops.len(),
        events: facts.events,
        ok: n.ok,
        fail: n.fail,
        cas_miss: n.cas_miss,
        info: n.info,
        // Guarded: a run interrupted in its first instant has no length to divide by.
        throughput_ops_per_s: if run_secs > 0.0 {
            completed as f64 / run_secs
        } else {
            0.0
        },
        latency: by_function(&facts.stats.latency),
        service_time: by_function(&facts.stats.service),
        node_args: ctx.cfg.node_args.clone(),
        interrupted: facts.interrupted,
        faults: facts.windows,
        messages: facts.messages.map(|mut m| {
            // Node-to-node messages per completed workload operation.
            m.per_operation = if completed > 0 {
                m.between_nodes as f64 / completed as f64
            } else {
                0.0
            };
            m
        }),
        costs: facts.costs.map(|c| crate::costs::per_op(c, completed)),
        checker: CheckerSummary::from(facts.result),
    }
}

/// Both latency figures per function: from the intended start, and service time.
pub(crate) fn print_latency(stats: &Stats) {
    let mut fs: Vec<_> = stats.latency.keys().copied().collect();
    fs.sort();
    for f in fs {
        let line = |what: &str, h: &Histogram<u64>| {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "{f:<6} {what:<27} n={:<7} p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
                h.len(),
                ms(0.5),
                ms(0.99),
                h.max() as f64 / 1000.0
            );
        };
        line("latency from intended start", &stats.latency[f]);
        if let Some(h) = stats.service.get(f) {
            line("service time", h);
        }
    }
}
