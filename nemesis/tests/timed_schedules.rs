//! Timed schedules (`[[step]]` tables) through the public API the bench uses: read a file,
//! check it against the run, plan it, record it and read the record back.

use std::path::Path;
use std::time::Duration;

use nemesis::fault::{Fault, LEADER, Shape};
use nemesis::{FaultKind, NemesisError, ScheduleSpec, Target};
use serde::{Deserialize, Serialize};

fn nodes(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

fn parse(text: &str) -> Result<ScheduleSpec, NemesisError> {
    ScheduleSpec::from_toml(text, Path::new("t.toml"))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const KILL_THEN_PARTITION: &str = r#"
[[step]]
at = "5s"
fault = "kill"
duration = "3s"
nodes = ["n2"]

[[step]]
at = "12s"
fault = "partition"
duration = "4s"

[[step]]
at = "16s"
fault = "pause"
duration = "1s 500ms"
target = "majority"

[[step]]
at = "20s"
fault = "partition-one-way"
duration = "2s"
nodes = ["n3"]
"#;

#[test]
fn a_timed_file_gives_its_steps_as_written() {
    let spec = parse(KILL_THEN_PARTITION).unwrap();
    assert_eq!(spec.name, "t.toml");
    assert!(spec.faults.is_empty(), "nothing is drawn at random pace");
    let written: Vec<_> = spec
        .steps
        .iter()
        .map(|s| (s.at, s.fault, s.end(), s.target, s.nodes.clone()))
        .collect();
    assert_eq!(
        written,
        [
            (
                secs(5),
                FaultKind::Kill,
                secs(8),
                None,
                Some(vec!["n2".into()])
            ),
            (secs(12), FaultKind::Partition, secs(16), None, None),
            (
                secs(16),
                FaultKind::Pause,
                Duration::from_millis(17_500),
                Some(Target::Majority),
                None
            ),
            (
                secs(20),
                FaultKind::PartitionOneWay,
                secs(22),
                None,
                Some(vec!["n3".into()])
            ),
        ]
    );
}

#[test]
fn bad_timed_files_give_one_line_errors_naming_file_line_and_step() {
    let step = |at: &str, fault: &str, rest: &str| {
        format!("[[step]]\nat = \"{at}\"\nfault = \"{fault}\"\nduration = \"3s\"\n{rest}")
    };
    let kill5 = step("5s", "kill", "");
    for (text, expected) in [
        (
            format!("{kill5}{}", step("6s", "pause", "")),
            "t.toml:5: step 2 (pause at 6s): starts before step 1 ends at 8s; steps run one at \
             a time, in the order listed",
        ),
        (
            format!("{kill5}{}", step("1s", "pause", "")),
            "t.toml:5: step 2 (pause at 1s): starts before step 1 ends at 8s; steps run one at \
             a time, in the order listed",
        ),
        (
            "[[step]]\nat = \"5s\"\nfault = \"kill\"\nduration = \"0s\"\n".into(),
            "t.toml:1: step 1 (kill at 5s): duration must be positive",
        ),
        (
            "[[step]]\nat = \"5s\"\nfault = \"kill\"\nfor = \"3s\"\n".into(),
            "t.toml:4: unknown field `for`, expected one of `at`, `fault`, `duration`, \
             `target`, `nodes`, `trouble`",
        ),
        (
            "[[step]]\nat = \"5s\"\nfault = \"kill\"\n".into(),
            "t.toml:1: missing field `duration`",
        ),
        (
            format!("faults = [\"kill\"]\n{kill5}"),
            "t.toml:1: `faults` cannot be mixed with `[[step]]`: a schedule is either periodic \
             (`faults`, `interval`, `duration`, `target`, `trouble`) or timed (`[[step]]` \
             tables, each with its own `duration`, `target` and `trouble`)",
        ),
        (
            format!("name = \"x\"\ninterval = \"1s\"\n{kill5}"),
            "t.toml:2: `interval` cannot be mixed with `[[step]]`: a schedule is either \
             periodic (`faults`, `interval`, `duration`, `target`, `trouble`) or timed \
             (`[[step]]` tables, each with its own `duration`, `target` and `trouble`)",
        ),
        (
            step("5s", "partition", "target = \"all\"\n"),
            "t.toml:1: step 1 (partition at 5s): `target` applies only to kill and pause",
        ),
        (
            step("5s", "kill", "target = \"all\"\nnodes = [\"n1\"]\n"),
            "t.toml:1: step 1 (kill at 5s): give `target` or `nodes`, not both",
        ),
        (
            step("5s", "partition-ring", "nodes = [\"n1\"]\n"),
            "t.toml:1: step 1 (partition-ring at 5s): `nodes` applies only to kill, pause, \
             partition-one and partition-one-way",
        ),
        (
            step("5s", "partition-one", "nodes = [\"n1\", \"n2\"]\n"),
            "t.toml:1: step 1 (partition-one at 5s): partition-one cuts off exactly one node, \
             but `nodes` names 2",
        ),
        (
            step("5s", "pause", "nodes = [\"n1\", \"n1\"]\n"),
            "t.toml:1: step 1 (pause at 5s): `nodes` names `n1` twice",
        ),
        (
            step("5s", "kill", "nodes = []\n"),
            "t.toml:1: step 1 (kill at 5s): `nodes` is empty",
        ),
        (
            "step = []\n".into(),
            "t.toml:1: `step` is empty; for no faults write `faults = []`",
        ),
    ] {
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(err, NemesisError::ScheduleInvalid { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("schedule file {expected}"),
            "{text}"
        );
    }
}

#[test]
fn check_refuses_strange_nodes_impossible_kinds_and_steps_past_the_time_limit() {
    let spec = parse(KILL_THEN_PARTITION).unwrap();
    assert!(
        spec.check(&nodes(3), secs(22)).is_ok(),
        "ending at the limit fits"
    );
    let ring =
        parse("[[step]]\nat = \"1s\"\nfault = \"partition-ring\"\nduration = \"1s\"\n").unwrap();
    for (spec, n, total, expected) in [
        (
            &ring,
            2,
            secs(60),
            "schedule t.toml: step 1 (partition-ring at 1s): partition-ring needs at least 3 \
             nodes, but the run has 2",
        ),
        (
            &spec,
            1,
            secs(60),
            "schedule t.toml: step 1 (kill at 5s): no node `n2` in this run (its nodes are n1)",
        ),
        (
            &spec,
            2,
            secs(60),
            "schedule t.toml: step 4 (partition-one-way at 20s): no node `n3` in this run (its \
             nodes are n1, n2)",
        ),
        (
            &spec,
            5,
            secs(21),
            "schedule t.toml: step 4 (partition-one-way at 20s): ends at 22s, after the run's \
             time limit of 21s; a timed schedule must fit in the run",
        ),
    ] {
        let err = spec.check(&nodes(n), total).unwrap_err();
        assert!(
            matches!(err, NemesisError::ScheduleImpossible { .. }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn a_timed_plan_keeps_times_and_named_nodes_and_draws_the_rest_from_the_seed() {
    let spec = parse(KILL_THEN_PARTITION).unwrap();
    let (five, total) = (nodes(5), secs(30));
    let plan = spec.plan(&five, 7, total);
    let times: Vec<_> = plan.iter().map(|s| (s.at, s.end())).collect();
    assert_eq!(
        times,
        [
            (secs(5), secs(8)),
            (secs(12), secs(16)),
            (secs(16), Duration::from_millis(17_500)),
            (secs(20), secs(22)),
        ]
    );
    assert_eq!(
        plan[0].fault,
        Fault::Kill {
            nodes: vec!["n2".into()]
        }
    );
    assert_eq!(plan[2].fault.nodes().len(), 3, "a majority of five");
    assert_eq!(
        plan[3].fault.cut_links(),
        [("n1", "n3"), ("n2", "n3"), ("n4", "n3"), ("n5", "n3")]
            .map(|(a, b)| (a.to_string(), b.to_string())),
        "n3 hears nobody; everybody hears n3"
    );
    assert_eq!(plan, spec.plan(&five, 7, total), "same seed, same plan");
    let drawn = |p: &[nemesis::Step]| (p[1].fault.clone(), p[2].fault.clone());
    assert!(
        (0..10).any(|seed| drawn(&spec.plan(&five, seed, total)) != drawn(&plan)),
        "the halves and the paused majority come from the seed"
    );
    for seed in 0..10 {
        let other = spec.plan(&five, seed, total);
        assert_eq!(other[0], plan[0], "named nodes do not depend on the seed");
        assert_eq!(other[3], plan[3]);
    }
}

#[test]
fn a_timed_step_aimed_at_the_leader_leaves_the_leader_to_the_runner() {
    let spec = parse(
        "[[step]]\nat = \"0s\"\nfault = \"kill\"\nduration = \"2s\"\ntarget = \"leader\"\n\
         [[step]]\nat = \"2s\"\nfault = \"partition-leader\"\nduration = \"2s\"\n",
    )
    .unwrap();
    let plan = spec.plan(&nodes(3), 1, secs(10));
    assert_eq!(
        plan[0].fault,
        Fault::Kill {
            nodes: vec![LEADER.into()]
        }
    );
    assert!(matches!(
        plan[1].fault,
        Fault::Partition {
            shape: Shape::IsolateLeader,
            ..
        }
    ));
}

#[test]
#[should_panic(expected = "no node `n3` in this run")]
fn planning_a_timed_schedule_that_does_not_fit_panics_rather_than_skip_a_step() {
    parse(KILL_THEN_PARTITION)
        .unwrap()
        .plan(&nodes(2), 1, secs(60));
}

/// The shape of a run's `config.toml`: the schedule is its `[nemesis]` table.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct RunConfig {
    seed: u64,
    nemesis: ScheduleSpec,
}

#[test]
fn a_recorded_timed_schedule_reads_back_as_the_same_schedule_and_plan() {
    let spec = parse(KILL_THEN_PARTITION).unwrap();
    let config = RunConfig {
        seed: 3,
        nemesis: spec.clone(),
    };
    let text = toml::to_string(&config).unwrap();
    assert!(text.contains("[[nemesis.step]]"), "{text}");
    assert!(text.contains("duration = \"1s 500ms\""), "{text}");
    for periodic in ["faults", "interval", "target = \"one\""] {
        assert!(!text.contains(periodic), "{periodic} in\n{text}");
    }
    let back: RunConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, config);
    assert_eq!(
        back.nemesis.plan(&nodes(5), 3, secs(30)),
        spec.plan(&nodes(5), 3, secs(30))
    );
    // The schedule alone, as a file, reads back too.
    let alone = toml::to_string(&spec).unwrap();
    assert_eq!(parse(&alone).unwrap(), spec);
}

#[test]
fn a_recorded_periodic_schedule_still_reads_back() {
    let config = RunConfig {
        seed: 3,
        nemesis: ScheduleSpec::builtin("kill-leader").unwrap(),
    };
    let text = toml::to_string(&config).unwrap();
    assert!(!text.contains("step"), "{text}");
    assert_eq!(toml::from_str::<RunConfig>(&text).unwrap(), config);
}

#[test]
fn an_edited_config_is_checked_as_a_file_is() {
    let text = "seed = 1\n[nemesis]\nname = \"t\"\nfaults = []\n\
                [[nemesis.step]]\nat = \"1s\"\nfault = \"kill\"\nduration = \"1s\"\n";
    let err = toml::from_str::<RunConfig>(text).unwrap_err().to_string();
    assert!(
        err.contains("`faults` cannot be mixed with `[[step]]`"),
        "{err}"
    );
}

#[test]
fn the_timed_example_in_the_docs_reads_and_fits_a_three_node_run() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/nemesis.md");
    let doc = std::fs::read_to_string(doc).unwrap();
    let section = &doc[doc.find("## Timed schedules").expect("the section")..];
    let start = section.find("```toml\n").expect("an example") + "```toml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    let spec = parse(example).unwrap();
    assert_eq!(spec.name, "kill-then-partition");
    assert_eq!(spec.steps.len(), 4);
    spec.check(&nodes(3), secs(30)).unwrap();
}

#[test]
fn check_also_refuses_overlapping_steps_built_in_code() {
    let mut spec = parse(KILL_THEN_PARTITION).unwrap();
    spec.steps[1].at = secs(7);
    assert_eq!(
        spec.check(&nodes(3), secs(60)).unwrap_err().to_string(),
        "schedule t.toml: step 2 (partition at 7s): starts before step 1 ends at 8s; steps run \
         one at a time, in the order listed"
    );
}
