//! The clients: each a kvnode session that draws operations from the profile, records every
//! invocation and completion, and classifies outcomes as ok / fail / info (an `info` retires the
//! process number, as in Jepsen).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kvnode::client::{Client, ClientError};
use kvnode::command::{Op, Reply};
use nemesis::schedule::ScheduleSpec;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

use crate::compaction::Compaction;
use crate::profile::{KeyChooser, OpKind, Profile};
use crate::recorder::{Event, Process, Recorder};
use crate::run::RunConfig;

/// Shared by the workers.
pub(crate) struct Ctx {
    pub(crate) cfg: RunConfig,
    pub(crate) keys: KeyChooser,
    pub(crate) recorder: Recorder,
    pub(crate) cluster_config: kvnode::config::ClusterConfig,
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

/// What a workload achieved (for the recorder benchmark).
pub struct Throughput {
    pub ops: u64,
    pub seconds: f64,
    pub events: u64,
}

/// Drives `profile` against a running cluster for `length`, recording into `history` (`None`:
/// recording off), with no faults. The same client code as `bench run`.
pub async fn measure_workload(
    cluster_config: &kvnode::config::ClusterConfig,
    profile: Profile,
    length: Duration,
    history: Option<&std::path::Path>,
) -> anyhow::Result<Throughput> {
    let start = Instant::now();
    let recorder = match history {
        Some(p) => Recorder::create(p, start)?,
        None => Recorder::null(start),
    };
    let ctx = Arc::new(Ctx {
        keys: KeyChooser::new(&profile),
        recorder,
        cluster_config: cluster_config.clone(),
        start,
        deadline: start + length,
        stop: AtomicBool::new(false),
        ops_left: AtomicU64::new(profile.op_limit.unwrap_or(u64::MAX)),
        ok: AtomicU64::new(0),
        cas_miss: AtomicU64::new(0),
        fail: AtomicU64::new(0),
        info: AtomicU64::new(0),
        fault: std::sync::Mutex::new("none".into()),
        cfg: RunConfig {
            test: "measure".into(),
            seed: 1,
            time_limit: length,
            nodes: cluster_config.nodes.len(),
            partitions: cluster_config.partitions,
            replication: cluster_config.replication,
            node_args: Vec::new(),
            compaction: Compaction {
                snapshot_every: cluster_config.timing.snapshot_every,
                wal_checkpoint_bytes: cluster_config.timing.wal_checkpoint_bytes,
            },
            profile,
            nemesis: ScheduleSpec::from_name_or_file("none")?,
        },
    });
    let workers: Vec<_> = (0..ctx.cfg.profile.concurrency)
        .map(|w| tokio::spawn(worker(w, ctx.clone())))
        .collect();
    for w in workers {
        w.await?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let events = ctx.recorder.finish()?;
    let ops = ctx.completed();
    Ok(Throughput {
        ops,
        seconds,
        events,
    })
}

fn op_for(
    kind: OpKind,
    key: &str,
    value: &str,
    expected: Option<&String>,
) -> (Op, &'static str, serde_json::Value) {
    match kind {
        OpKind::Read => (Op::Get { key: key.into() }, "read", serde_json::Value::Null),
        OpKind::Write => (
            Op::Put {
                key: key.into(),
                value: value.into(),
            },
            "write",
            json!(value),
        ),
        OpKind::Cas => (
            Op::Cas {
                key: key.into(),
                expected: expected.cloned(),
                new: value.into(),
            },
            "cas",
            json!([expected, value]),
        ),
        OpKind::Delete => (
            Op::Delete { key: key.into() },
            "delete",
            serde_json::Value::Null,
        ),
    }
}

/// The error a CAS miss is recorded with (`docs/history.md`).
const PRECONDITION: &str = "precondition";

impl Ctx {
    /// Workload operations completed so far, every outcome.
    pub(crate) fn completed(&self) -> u64 {
        [&self.ok, &self.cas_miss, &self.fail, &self.info]
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }
}

pub(crate) async fn worker(w: usize, ctx: Arc<Ctx>) -> Stats {
    let profile = &ctx.cfg.profile;
    let nodes = ctx.cluster_config.nodes.len();
    let mut client = Client::new(
        &ctx.cluster_config,
        w % nodes,
        w as u64 + 1,
        profile.timeout,
    );
    if profile.sticky {
        client = client.sticky();
    }
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
        let mut value = format!("w{w}-{n}");
        while value.len() < profile.value_size {
            value.push('.');
        }
        let (op, f, arg) = op_for(kind, &key, &value, last.get(&key));
        let invoked = Instant::now();
        ctx.recorder.record(&Event {
            process: Process::Client(process),
            kind: "invoke",
            f,
            key: Some(&key),
            value: arg.clone(),
            error: None,
        });
        let result = client.execute(op).await;
        let (kind_name, value, error) = match &result {
            Ok(Reply::Value(v)) => {
                if let Some(v) = v {
                    last.insert(key.clone(), v.clone());
                }
                ("ok", json!(v), None)
            }
            Ok(Reply::Done | Reply::Swapped) => {
                if matches!(kind, OpKind::Write | OpKind::Cas) {
                    last.insert(key.clone(), value.clone());
                } else {
                    last.remove(&key);
                }
                ("ok", arg, None)
            }
            Ok(Reply::Mismatch { current }) => {
                match current {
                    Some(c) => last.insert(key.clone(), c.clone()),
                    None => last.remove(&key),
                };
                ("fail", arg, Some(PRECONDITION.to_owned()))
            }
            Ok(Reply::Stale) => ("fail", arg, Some("stale session".to_owned())),
            Err(ClientError::Failed(why)) => ("fail", arg, Some(why.clone())),
            Err(ClientError::Unknown(why)) => ("info", arg, Some(why.clone())),
        };
        ctx.recorder.record(&Event {
            process: Process::Client(process),
            kind: kind_name,
            f,
            key: Some(&key),
            value,
            error: error.as_deref(),
        });
        stats.record(f, began.elapsed(), invoked.elapsed());
        match kind_name {
            "ok" => &ctx.ok,
            "fail" if error.as_deref() == Some(PRECONDITION) => &ctx.cas_miss,
            "fail" => &ctx.fail,
            _ => {
                // Jepsen's rule: a process whose operation's fate is unknown never invokes again.
                process += profile.concurrency as u64;
                &ctx.info
            }
        }
        .fetch_add(1, Ordering::Relaxed);
    }
    stats
}

pub(crate) async fn final_reads(ctx: &Ctx) {
    let client = Client::new(&ctx.cluster_config, 0, u64::MAX - 2, Duration::from_secs(5));
    let base = 1_000_000u64;
    for k in 0..ctx.cfg.profile.keys {
        let key = format!("k{k}");
        let process = Process::Client(base + k);
        ctx.recorder.record(&Event {
            process,
            kind: "invoke",
            f: "read",
            key: Some(&key),
            value: serde_json::Value::Null,
            error: None,
        });
        let (kind, value, error) = match client.get(&key).await {
            Ok(v) => ("ok", json!(v), None),
            Err(ClientError::Failed(why)) => ("fail", serde_json::Value::Null, Some(why)),
            Err(ClientError::Unknown(why)) => ("info", serde_json::Value::Null, Some(why)),
        };
        ctx.recorder.record(&Event {
            process: Process::Client(base + k),
            kind,
            f: "read",
            key: Some(&key),
            value,
            error: error.as_deref(),
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
