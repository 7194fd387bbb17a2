//! The clients: each a [`Session`] with the system under test that draws operations from the
//! profile, records every invocation and completion, and classifies outcomes as ok / fail / info
//! (an `info` retires the process number, as in Jepsen).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

use crate::config::RunConfig;
use crate::profile::{KeyChooser, LockSpec, OpKind};
use crate::recorder::{Event, Process, Recorder};
use crate::system::{Capabilities, Operation, Outcome, Session};

/// Shared by the workers.
pub(crate) struct Ctx {
    pub(crate) cfg: RunConfig,
    pub(crate) keys: KeyChooser,
    pub(crate) recorder: Recorder,
    /// What the system under test can do (which operations the workload may send).
    pub(crate) caps: Capabilities,
    pub(crate) start: Instant,
    pub(crate) deadline: Instant,
    pub(crate) stop: AtomicBool,
    pub(crate) ops_left: AtomicU64,
    pub(crate) ok: AtomicU64,
    /// CAS operations whose precondition did not hold (not failures).
    pub(crate) cas_miss: AtomicU64,
    pub(crate) fail: AtomicU64,
    pub(crate) info: AtomicU64,
    pub(crate) fault: std::sync::Mutex<String>,
}

/// Microsecond histograms per function, of completed operations.
#[derive(Default)]
pub(crate) struct Stats {
    /// From the operation's intended start (its slot in an open-loop schedule, else its
    /// invocation) to its completion.
    pub(crate) latency: HashMap<&'static str, Histogram<u64>>,
    /// From the invocation to the completion.
    pub(crate) service: HashMap<&'static str, Histogram<u64>>,
}

impl Stats {
    pub(crate) fn record(&mut self, f: &'static str, latency: Duration, service: Duration) {
        for (map, d) in [(&mut self.latency, latency), (&mut self.service, service)] {
            // 1 µs to an hour at 3 significant digits; longer is recorded as an hour.
            map.entry(f)
                .or_insert_with(|| {
                    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
                })
                .saturating_record((d.as_micros() as u64).max(1));
        }
    }

    pub(crate) fn merge(&mut self, other: Stats) {
        for (mine, theirs) in [
            (&mut self.latency, other.latency),
            (&mut self.service, other.service),
        ] {
            for (f, h) in theirs {
                match mine.get_mut(f) {
                    Some(m) => m.add(h).expect("same bounds"),
                    None => {
                        mine.insert(f, h);
                    }
                }
            }
        }
    }
}

/// The operation for `kind`, with the history's `f` and invocation value. A CAS expecting the
/// key absent becomes a write on a system that cannot express it (Maelstrom's lin-kv).
fn op_for(
    kind: OpKind,
    key: &str,
    value: &str,
    expected: Option<&String>,
    caps: Capabilities,
) -> (Operation, &'static str, serde_json::Value) {
    let key = key.to_owned();
    match kind {
        OpKind::Read => (Operation::Read { key }, "read", serde_json::Value::Null),
        OpKind::Cas if expected.is_some() || caps.cas_from_absent => (
            Operation::Cas {
                key,
                expected: expected.cloned(),
                new: value.into(),
            },
            "cas",
            json!([expected, value]),
        ),
        OpKind::Write | OpKind::Cas => (
            Operation::Write {
                key,
                value: value.into(),
            },
            "write",
            json!(value),
        ),
        OpKind::Delete => (Operation::Delete { key }, "delete", serde_json::Value::Null),
    }
}

/// The error a CAS miss is recorded with (`docs/history.md`).
pub(crate) const PRECONDITION: &str = "precondition";

impl Ctx {
    /// Workload operations completed so far, every outcome.
    pub(crate) fn completed(&self) -> u64 {
        [&self.ok, &self.cas_miss, &self.fail, &self.info]
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }
}

/// Client `w`: draws and performs operations until the deadline, a stop or the op limit.
pub(crate) async fn worker<S: Session>(w: usize, ctx: Arc<Ctx>, mut session: S) -> Stats {
    let profile = &ctx.cfg.profile;
    let mut rng = StdRng::seed_from_u64(ctx.cfg.seed ^ ((w as u64 + 1) << 32));
    let mut stats = Stats::default();
    let mut process = w as u64;
    let mut last: HashMap<String, String> = HashMap::new();
    let interval = profile
        .rate
        .map(|r| Duration::from_secs_f64(profile.concurrency as f64 / r));
    let mut n = 0u64;
    loop {
        let intended = interval
            .map(|i| ctx.start + i.mul_f64(n as f64 + (w as f64 / profile.concurrency as f64)));
        if let Some(at) = intended {
            if at >= ctx.deadline {
                break;
            }
            tokio::time::sleep_until(at.into()).await;
        }
        if ctx.stop.load(Ordering::Relaxed) || Instant::now() >= ctx.deadline {
            break;
        }
        if ctx
            .ops_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| x.checked_sub(1))
            .is_err()
        {
            break;
        }
        n += 1;
        let began = intended.unwrap_or_else(Instant::now);
        let kind = profile.pick_op(&mut rng);
        let key = format!("k{}", ctx.keys.pick(&mut rng));
        let value = written_value(w, n, profile.value_size);
        let (op, f, arg) = op_for(kind, &key, &value, last.get(&key), ctx.caps);
        let invoked = Instant::now();
        ctx.recorder.record(&Event {
            process: Process::Client(process),
            kind: "invoke",
            f,
            key: Some(&key),
            value: arg.clone(),
            error: None,
        });
        let outcome = session.perform(&op).await;
        let (kind_name, value, error) = match &outcome {
            Outcome::Ok(read) => match &op {
                Operation::Read { .. } => {
                    match read {
                        Some(v) => last.insert(key.clone(), v.clone()),
                        None => last.remove(&key),
                    };
                    ("ok", json!(read), None)
                }
                Operation::Delete { .. } => {
                    last.remove(&key);
                    ("ok", arg, None)
                }
                Operation::Write { .. } | Operation::Cas { .. } => {
                    last.insert(key.clone(), value.clone());
                    ("ok", arg, None)
                }
                Operation::Acquire { .. } | Operation::Release { .. } => ("ok", arg, None),
            },
            Outcome::CasMiss(current) => {
                match current {
                    Some(Some(c)) => {
                        last.insert(key.clone(), c.clone());
                    }
                    Some(None) => {
                        last.remove(&key);
                    }
                    None => {}
                }
                ("fail", arg, Some(PRECONDITION))
            }
            Outcome::Fail(why) => ("fail", arg, Some(why.as_str())),
            Outcome::Info(why) => ("info", arg, Some(why.as_str())),
        };
        ctx.recorder.record(&Event {
            process: Process::Client(process),
            kind: kind_name,
            f,
            key: Some(&key),
            value,
            error,
        });
        stats.record(f, began.elapsed(), invoked.elapsed());
        match &outcome {
            Outcome::Ok(_) => &ctx.ok,
            Outcome::CasMiss(_) => &ctx.cas_miss,
            Outcome::Fail(_) => &ctx.fail,
            Outcome::Info(_) => {
                // Jepsen's rule: a process whose operation's fate is unknown never invokes again.
                process += profile.concurrency as u64;
                &ctx.info
            }
        }
        .fetch_add(1, Ordering::Relaxed);
    }
    stats
}

/// Client `w` of a lock workload: acquires one of the profile's named locks, holds it, releases
/// it, and again, until the deadline, a stop or the op limit. A process whose acquire or release
/// ended unknown is retired, as in the key-value workload.
pub(crate) async fn lock_worker<S: Session>(
    w: usize,
    ctx: Arc<Ctx>,
    mut session: S,
    lock: LockSpec,
) -> Stats {
    let profile = &ctx.cfg.profile;
    let mut rng = StdRng::seed_from_u64(ctx.cfg.seed ^ ((w as u64 + 1) << 32));
    let mut stats = Stats::default();
    let mut process = w as u64;
    let take = |ctx: &Ctx| {
        ctx.ops_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| x.checked_sub(1))
            .is_ok()
    };
    while !ctx.stop.load(Ordering::Relaxed) && Instant::now() < ctx.deadline && take(&ctx) {
        let key = format!("k{}", ctx.keys.pick(&mut rng));
        let acquire = Operation::Acquire { key: key.clone() };
        match recorded(&ctx, &mut session, process, &acquire, &mut stats).await {
            Outcome::Ok(_) => {}
            Outcome::Info(_) => {
                process += profile.concurrency as u64;
                continue;
            }
            _ => continue,
        }
        // Held: for the profile's hold time, or less if the run stops meanwhile.
        let until = (Instant::now() + lock.hold).min(ctx.deadline);
        while Instant::now() < until && !ctx.stop.load(Ordering::Relaxed) {
            tokio::time::sleep((until - Instant::now()).min(Duration::from_millis(50))).await;
        }
        // Released even past the op limit: a held lock is given back.
        let release = Operation::Release { key };
        if let Outcome::Info(_) = recorded(&ctx, &mut session, process, &release, &mut stats).await
        {
            process += profile.concurrency as u64;
        }
    }
    stats
}

/// Performs `op` as `process`, recording its invocation and completion and counting it.
async fn recorded<S: Session>(
    ctx: &Ctx,
    session: &mut S,
    process: u64,
    op: &Operation,
    stats: &mut Stats,
) -> Outcome {
    let (f, key) = match op {
        Operation::Acquire { key } => ("acquire", key),
        Operation::Release { key } => ("release", key),
        other => unreachable!("the lock workload only acquires and releases, not {other:?}"),
    };
    let invoked = Instant::now();
    ctx.recorder.record(&Event {
        process: Process::Client(process),
        kind: "invoke",
        f,
        key: Some(key),
        value: serde_json::Value::Null,
        error: None,
    });
    let outcome = session.perform(op).await;
    let (kind, error, counter) = match &outcome {
        Outcome::Ok(_) => ("ok", None, &ctx.ok),
        Outcome::CasMiss(_) => ("fail", Some(PRECONDITION), &ctx.cas_miss),
        Outcome::Fail(why) => ("fail", Some(why.as_str()), &ctx.fail),
        Outcome::Info(why) => ("info", Some(why.as_str()), &ctx.info),
    };
    ctx.recorder.record(&Event {
        process: Process::Client(process),
        kind,
        f,
        key: Some(key),
        value: serde_json::Value::Null,
        error,
    });
    stats.record(f, invoked.elapsed(), invoked.elapsed());
    counter.fetch_add(1, Ordering::Relaxed);
    outcome
}

/// The `n`th value client `w` writes: unique in the run, padded to the profile's value size.
/// Systems that carry only integers (Maelstrom) map it both ways with
/// [`crate::system::maelstrom::codec`].
pub(crate) fn written_value(w: usize, n: u64, size: usize) -> String {
    let mut value = format!("w{w}-{n}");
    while value.len() < size {
        value.push('.');
    }
    value
}

/// The process numbers of the final reads: one per key from here.
pub(crate) const FINAL_READS_BASE: u64 = 1_000_000;

/// Reads every key once more through `session` (after healing, as Jepsen does), until done or
/// `interrupted`.
pub(crate) async fn final_reads<S: Session>(ctx: &Ctx, mut session: S, interrupted: &AtomicBool) {
    for k in 0..ctx.cfg.profile.keys {
        if interrupted.load(Ordering::SeqCst) {
            break;
        }
        let key = format!("k{k}");
        let process = Process::Client(FINAL_READS_BASE + k);
        ctx.recorder.record(&Event {
            process,
            kind: "invoke",
            f: "read",
            key: Some(&key),
            value: serde_json::Value::Null,
            error: None,
        });
        let outcome = session.perform(&Operation::Read { key: key.clone() }).await;
        let (kind, value, error) = match &outcome {
            Outcome::Ok(v) => ("ok", json!(v), None),
            Outcome::CasMiss(_) => unreachable!("a read is no CAS"),
            Outcome::Fail(why) => ("fail", serde_json::Value::Null, Some(why.as_str())),
            Outcome::Info(why) => ("info", serde_json::Value::Null, Some(why.as_str())),
        };
        ctx.recorder.record(&Event {
            process: Process::Client(FINAL_READS_BASE + k),
            kind,
            f: "read",
            key: Some(&key),
            value,
            error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_recorded_as_they_are_however_long() {
        let mut stats = Stats::default();
        stats.record(
            "read",
            Duration::from_millis(471),
            Duration::from_micros(650),
        );
        stats.record("read", Duration::from_micros(3), Duration::from_secs(30));
        let latency = &stats.latency["read"];
        let service = &stats.service["read"];
        // Within the histogram's 3 significant digits.
        assert!(
            (470_000..=472_000).contains(&latency.max()),
            "{}",
            latency.max()
        );
        assert!(
            (29_900_000..=30_100_000).contains(&service.max()),
            "{}",
            service.max()
        );
        assert!(
            service.min() >= 640 && service.min() <= 660,
            "{}",
            service.min()
        );
    }
}
