//! Deterministic simulation: the node's own core (batching, asynchronous persistence, several
//! partitions sharing one WAL, compaction, checkpoints) in a simulated network with loss,
//! duplication, reordering, partitions and crashes that tear the WAL's last group commit.
//! Agreement is checked after every step, liveness after the final heal, and every history
//! goes through the real checker. A failing seed prints the command that replays it.

mod sim;

use checker::{CheckOptions, Outcome, Verdict};
use kvnode::config::Protocol;
use sim::{SimConfig, run};

/// Seeds per configuration (`KVLAB_SIM_SEEDS` overrides).
fn seeds(default: u64) -> u64 {
    std::env::var("KVLAB_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// What went wrong in a run, if anything: an invariant violation or a non-linearizable history.
fn failure(cfg: &SimConfig) -> (Option<String>, sim::SimResult) {
    let result = run(cfg);
    if let Some(v) = &result.violation {
        return (Some(v.clone()), result);
    }
    let check = checker::check(&result.history, &CheckOptions::default());
    let problem = match check.verdict {
        Verdict::Valid => None,
        Verdict::Invalid => Some(
            check
                .keys
                .iter()
                .find_map(|k| k.anomaly.as_ref())
                .map_or("not linearizable".into(), |a| {
                    format!("not linearizable: {}", a.explanation)
                }),
        ),
        Verdict::Unknown => Some("the checker gave up".into()),
    };
    (problem, result)
}

fn replay_hint(cfg: &SimConfig) -> String {
    format!(
        "replay with: KVLAB_SIM_SEED={} KVLAB_SIM_NODES={} KVLAB_SIM_REPLICATION={} KVLAB_SIM_PROTOCOL={}{} cargo test -p kvnode --test simulation replay -- --ignored --nocapture",
        cfg.seed,
        cfg.nodes,
        cfg.replication,
        cfg.protocol,
        if cfg.unsafe_skip_sync {
            " KVLAB_SIM_UNSAFE_SKIP_SYNC=1"
        } else {
            ""
        }
    )
}

fn env_number(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|n| n.parse().ok())
}

/// The configuration `replay` and `search` run for `seed`: `KVLAB_SIM_NODES` nodes (3), the
/// replication factor `KVLAB_SIM_REPLICATION` or, without it, drawn from the seed as the
/// test suite draws it, the protocol `KVLAB_SIM_PROTOCOL` (`paxos` or `zab`; paxos), and Zab's
/// deliberate bug if `KVLAB_SIM_UNSAFE_SKIP_SYNC` is set.
fn config_from_env(seed: u64) -> SimConfig {
    let nodes = env_number("KVLAB_SIM_NODES").unwrap_or(3);
    let mut cfg = match env_number("KVLAB_SIM_REPLICATION") {
        Some(r) => {
            let mut cfg = SimConfig::new(seed);
            cfg.nodes = nodes;
            cfg.replication = r;
            cfg
        }
        None => SimConfig::with_nodes(seed, nodes),
    };
    cfg.protocol = match std::env::var("KVLAB_SIM_PROTOCOL").as_deref() {
        Ok("zab") => Protocol::Zab,
        Ok("paxos") | Err(_) => Protocol::Paxos,
        Ok(other) => panic!("KVLAB_SIM_PROTOCOL={other}: paxos or zab"),
    };
    cfg.unsafe_skip_sync = std::env::var_os("KVLAB_SIM_UNSAFE_SKIP_SYNC").is_some();
    cfg
}

/// Every seed below `seeds` passes, except the `open` ones: known failures not fixed yet.
fn all_pass(nodes: usize, seeds: u64, protocol: Protocol, open: &[u64]) {
    let mut stats = sim::Stats::default();
    let started = std::time::Instant::now();
    for seed in (0..seeds).filter(|s| !open.contains(s)) {
        let mut cfg = SimConfig::with_nodes(seed, nodes);
        cfg.protocol = protocol;
        let (problem, result) = failure(&cfg);
        if let Some(p) = problem {
            panic!("seed {seed}: {p}\n{cfg:?}\n{}", replay_hint(&cfg));
        }
        stats.crashes += result.stats.crashes;
        stats.traps += result.stats.traps;
        stats.snapshots += result.stats.snapshots;
        stats.installs += result.stats.installs;
        stats.checkpoints += result.stats.checkpoints;
    }
    eprintln!(
        "{protocol}: {seeds} seeds of {nodes} nodes in {:.1?}: {} crashes ({} just after an election), {} snapshots, {} installs, {} checkpoints",
        started.elapsed(),
        stats.crashes,
        stats.traps,
        stats.snapshots,
        stats.installs,
        stats.checkpoints
    );
    // The simulation must exercise what it claims to.
    assert!(
        stats.crashes > 0 && stats.snapshots > 0 && stats.installs > 0 && stats.checkpoints > 0
    );
}

#[test]
fn three_nodes_keep_agreement_linearizability_and_liveness() {
    all_pass(3, seeds(2000), Protocol::Paxos, &[]);
}

#[test]
fn five_nodes_keep_agreement_linearizability_and_liveness() {
    all_pass(5, seeds(1000), Protocol::Paxos, &[]);
}

#[test]
fn zab_three_nodes_keep_agreement_linearizability_and_liveness() {
    all_pass(3, seeds(2000), Protocol::Zab, &[]);
}

#[test]
fn zab_five_nodes_keep_agreement_linearizability_and_liveness() {
    all_pass(5, seeds(1000), Protocol::Zab, &[]);
}

#[test]
fn without_faults_every_operation_succeeds() {
    without_faults_every_operation_succeeds_with(Protocol::Paxos);
}

#[test]
fn zab_without_faults_every_operation_succeeds() {
    without_faults_every_operation_succeeds_with(Protocol::Zab);
}

fn without_faults_every_operation_succeeds_with(protocol: Protocol) {
    // The first leader is established well within this, with either protocol. (Zab once needed
    // 120 ms, for bugs, not for its extra round trips: a leader gave up when discovery and
    // synchronisation together outlasted one election timeout, a follower gave up on a leader
    // that had not ended its election yet, and a replica led on followers of its old vote.)
    let startup = 60_000;
    for seed in 0..50 {
        let mut cfg = SimConfig::new(seed);
        cfg.protocol = protocol;
        cfg.faults = false;
        cfg.loss = 0.0;
        cfg.duplicate = 0.0;
        // A disk whose syncs take as long as an election timeout is a fault too: a candidate
        // on it times out before its Prepare may leave.
        cfg.slow_disk = None;
        let (problem, result) = failure(&cfg);
        assert_eq!(problem, None, "{}", replay_hint(&cfg));
        // Operations sent before the first election may be refused; after it, none may be.
        let late: Vec<_> = result
            .history
            .ops
            .iter()
            .filter(|o| o.invoke.time > startup)
            .collect();
        let failed = late
            .iter()
            .filter(|o| !matches!(o.outcome, Outcome::Ok(_) | Outcome::PreconditionFailed))
            .count();
        assert!(
            late.len() >= 40,
            "seed {seed}: only {} operations after start-up",
            late.len()
        );
        assert_eq!(
            failed,
            0,
            "seed {seed}: {failed} of {} operations failed; {}",
            late.len(),
            replay_hint(&cfg)
        );
    }
}

/// Finds a seed for which a run fails, proving the simulation can see this bug at all.
fn caught(configure: impl Fn(&mut SimConfig)) -> Option<u64> {
    (0..300).find(|&seed| {
        let mut cfg = SimConfig::new(seed);
        configure(&mut cfg);
        failure(&cfg).0.is_some()
    })
}

#[test]
fn unsafe_local_reads_are_caught() {
    let seed = caught(|c| c.unsafe_read_local = true);
    assert!(seed.is_some(), "no seed exposed --unsafe-read-local");
}

#[test]
fn zab_unsafe_skip_sync_is_caught() {
    let seed = caught(|c| {
        c.protocol = Protocol::Zab;
        c.unsafe_skip_sync = true;
    });
    assert!(seed.is_some(), "no seed exposed --unsafe-skip-sync");
}

#[test]
fn unsafe_early_acknowledgement_is_caught() {
    let seed = caught(|c| c.unsafe_early_ack = true);
    assert!(seed.is_some(), "no seed exposed --unsafe-early-ack");
}

#[test]
#[ignore = "replays one seed: KVLAB_SIM_SEED=N [KVLAB_SIM_NODES=3] [KVLAB_SIM_REPLICATION=R] [KVLAB_SIM_HISTORY=1]"]
fn replay() {
    let seed = std::env::var("KVLAB_SIM_SEED")
        .expect("set KVLAB_SIM_SEED")
        .parse()
        .expect("a number");
    let cfg = config_from_env(seed);
    let (problem, result) = failure(&cfg);
    if std::env::var_os("KVLAB_SIM_HISTORY").is_some() {
        for op in &result.history.ops {
            eprintln!("{op:?}");
        }
    }
    eprintln!(
        "{cfg:?}\n{} ops, {} ok, {} us simulated, {:?}",
        result.history.ops.len(),
        result.ok,
        result.elapsed,
        result.stats
    );
    assert_eq!(problem, None);
}

/// The first failing seed the simulation found for each defect of issue 9 (with the others
/// fixed), replayed on every run. They were found with three replicas per partition
/// (`KVLAB_SIM_REPLICATION=3`).
#[test]
fn regression_seeds() {
    let found = [
        // Proposals never persisted after a step-down, then counted (agreement).
        (177, 3),
        (227, 5),
        // A ballot reused after a crash (one proposer per ballot).
        (376, 3),
        (341, 5),
        // A follower behind the snapshot in the current ballot (liveness).
        (0, 3),
        (7, 5),
        // A leader that kept its own log synced followers by another log's ballot (agreement;
        // found in review, then by the simulation at this seed, the first of 16,795 searched).
        (16_794, 3),
    ];
    for (seed, nodes) in found {
        let mut cfg = SimConfig::new(seed);
        cfg.nodes = nodes;
        if let (Some(p), _) = failure(&cfg) {
            panic!("seed {seed}: {p}\n{}", replay_hint(&cfg));
        }
    }
}

#[test]
#[ignore = "searches seeds for the first failure: KVLAB_SIM_SEEDS=N [KVLAB_SIM_NODES=3] [KVLAB_SIM_REPLICATION=R] [KVLAB_SIM_ALL=1]"]
fn search() {
    // With KVLAB_SIM_ALL, go on past the first failure and count them (a bug's catch rate).
    let all = std::env::var_os("KVLAB_SIM_ALL").is_some();
    let started = std::time::Instant::now();
    let total = seeds(10_000);
    let mut failed = 0;
    for seed in 0..total {
        let cfg = config_from_env(seed);
        if let (Some(p), _) = failure(&cfg) {
            failed += 1;
            if failed == 1 {
                eprintln!("seed {seed} (after {:.1?}): {p}", started.elapsed());
                eprintln!("{cfg:?}");
            } else {
                eprintln!("seed {seed}: {}", p.lines().next().unwrap_or_default());
            }
            if !all {
                return;
            }
        }
    }
    eprintln!(
        "{failed} of {total} seeds failed, {:.1?}",
        started.elapsed()
    );
}
