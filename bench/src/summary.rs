//! What the user sees of a run: the live progress line, results.json and the latency lines.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use checker::Verdict;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::faults::FaultWindow;
use crate::workload::{Ctx, Stats};

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

fn quantiles(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({"count": h.len(), "p50_ms": ms(0.5), "p95_ms": ms(0.95), "p99_ms": ms(0.99), "max_ms": h.max() as f64 / 1000.0})
}

pub(crate) fn results_json(
    ctx: &Ctx,
    history: &checker::History,
    result: &checker::CheckResult,
    stats: &Stats,
    windows: &[FaultWindow],
    elapsed: Duration,
    events: u64,
) -> serde_json::Value {
    let (ok, fail, info) = history.outcome_counts();
    let run_secs = ctx.cfg.time_limit.as_secs_f64().min(elapsed.as_secs_f64());
    let latency: serde_json::Map<String, serde_json::Value> = stats
        .latency
        .iter()
        .map(|(f, h)| ((*f).to_owned(), quantiles(h)))
        .collect();
    json!({
        "verdict": result.verdict,
        "test": ctx.cfg.test,
        "seed": ctx.cfg.seed,
        "profile": ctx.cfg.profile.name,
        "nemesis": ctx.cfg.nemesis.name.clone(),
        "operations": history.ops.len(),
        "events": events,
        "ok": ok,
        "fail": fail,
        "info": info,
        "throughput_ops_per_s": (ctx.ok.load(Ordering::Relaxed) + ctx.fail.load(Ordering::Relaxed) + ctx.info.load(Ordering::Relaxed)) as f64 / run_secs,
        "latency": latency,
        "faults": windows,
        "checker": {
            "elapsed_ms": result.elapsed_ms,
            "states": result.states,
            "invalid_keys": result.keys.iter().filter(|k| k.verdict == Verdict::Invalid).map(|k| &k.key).collect::<Vec<_>>(),
            "unknown_keys": result.keys.iter().filter(|k| k.verdict == Verdict::Unknown).map(|k| &k.key).collect::<Vec<_>>(),
            "keys": result.keys,
        },
    })
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
