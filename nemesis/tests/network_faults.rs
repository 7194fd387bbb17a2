//! Message-level network faults (`delay`, `loss`, `duplicate`, `reorder`) through the public API
//! the bench uses: the fault as recorded, the built-in schedules, periodic and timed schedule
//! files that change the settings, and the errors for settings that make no sense.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use nemesis::fault::Shape;
use nemesis::{Fault, FaultKind, NemesisError, ScheduleSpec, Step, Trouble};
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

fn network(trouble: Trouble) -> Fault {
    Fault::Network { trouble }
}

const DELAY: Trouble = Trouble {
    delay_ms: 20,
    jitter_ms: 20,
    loss_pct: 0,
    duplicate_pct: 0,
    reorder_pct: 0,
    reorder_window_ms: 0,
};
const NONE: Trouble = Trouble {
    delay_ms: 0,
    jitter_ms: 0,
    ..DELAY
};
const LOSS: Trouble = Trouble {
    loss_pct: 20,
    ..NONE
};
const DUPLICATE: Trouble = Trouble {
    duplicate_pct: 20,
    ..NONE
};
const REORDER: Trouble = Trouble {
    reorder_pct: 50,
    reorder_window_ms: 20,
    ..NONE
};

#[test]
fn network_trouble_keeps_the_kind_tag_and_round_trips_through_json_and_toml() {
    let fault = network(Trouble {
        loss_pct: 5,
        ..DELAY
    });
    let json = serde_json::to_string(&fault).unwrap();
    assert_eq!(
        json,
        "{\"kind\":\"network\",\"trouble\":{\"delay_ms\":20,\"jitter_ms\":20,\"loss_pct\":5,\
         \"duplicate_pct\":0,\"reorder_pct\":0,\"reorder_window_ms\":0}}"
    );
    assert_eq!(serde_json::from_str::<Fault>(&json).unwrap(), fault);
    let toml_text = toml::to_string(&fault).unwrap();
    assert!(toml_text.contains("kind = \"network\""), "{toml_text}");
    assert_eq!(toml::from_str::<Fault>(&toml_text).unwrap(), fault);

    // A planned step, as `results.json` records it.
    let step = Step {
        at: secs(5),
        fault,
        duration: secs(5),
    };
    let json = serde_json::to_string(&step).unwrap();
    assert_eq!(serde_json::from_str::<Step>(&json).unwrap(), step);
    assert_eq!(
        toml::from_str::<Step>(&toml::to_string(&step).unwrap()).unwrap(),
        step
    );
}

#[test]
fn network_trouble_is_named_like_jepsens_packet_nemesis_and_labelled_by_what_it_does() {
    let fault = network(LOSS);
    assert_eq!(
        (fault.start_name(), fault.end_name()),
        ("start-packet", "stop-packet")
    );
    assert!(fault.message_level());
    assert!(fault.nodes().is_empty() && fault.cut_links().is_empty());
    assert!(!Fault::Kill { nodes: nodes(1) }.message_level());
    assert!(!Fault::Pause { nodes: nodes(1) }.message_level());
    let halves = Fault::Partition {
        shape: Shape::Halves,
        grudge: Default::default(),
    };
    assert!(!halves.message_level());

    assert_eq!(fault.label(), "network: loss 20%");
    for (trouble, label) in [
        (DELAY, "delay 20±20 ms"),
        (LOSS, "loss 20%"),
        (DUPLICATE, "duplicate 20%"),
        (REORDER, "reorder 50% within 20 ms"),
        (
            Trouble {
                jitter_ms: 0,
                ..DELAY
            },
            "delay 20 ms",
        ),
        (
            Trouble {
                delay_ms: 0,
                jitter_ms: 5,
                ..NONE
            },
            "delay 0±5 ms",
        ),
        (
            Trouble {
                delay_ms: 1,
                jitter_ms: 0,
                loss_pct: 3,
                duplicate_pct: 4,
                reorder_pct: 5,
                reorder_window_ms: 6,
            },
            "delay 1 ms, loss 3%, duplicate 4%, reorder 5% within 6 ms",
        ),
        (NONE, "no trouble"),
    ] {
        assert_eq!(trouble.label(), label);
    }
}

#[test]
fn the_new_kinds_are_spelled_as_documented_and_only_they_are_message_level() {
    for (kind, name) in [
        (FaultKind::Delay, "delay"),
        (FaultKind::Loss, "loss"),
        (FaultKind::Duplicate, "duplicate"),
        (FaultKind::Reorder, "reorder"),
    ] {
        assert_eq!(kind.name(), name);
        assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(name));
        assert!(kind.message_level());
        assert!(!kind.possible(1) && kind.possible(2), "needs a link");
    }
    for kind in [FaultKind::Kill, FaultKind::Pause, FaultKind::Partition] {
        assert!(!kind.message_level(), "{kind:?}");
    }
}

/// The built-in message-level schedules and the faults each may plan.
fn advertised() -> Vec<(&'static str, Vec<Fault>)> {
    vec![
        ("delay", vec![network(DELAY)]),
        ("loss", vec![network(LOSS)]),
        ("duplicate", vec![network(DUPLICATE)]),
        ("reorder", vec![network(REORDER)]),
        (
            "net-mix",
            vec![
                network(DELAY),
                network(LOSS),
                network(DUPLICATE),
                network(REORDER),
            ],
        ),
    ]
}

#[test]
fn message_level_builtins_plan_only_their_advertised_faults_the_same_for_the_same_seed() {
    let (five, total) = (nodes(5), secs(600));
    for (name, troubles) in advertised() {
        let spec = ScheduleSpec::builtin(name).unwrap();
        assert!(spec.message_level(), "{name}");
        assert_eq!((spec.interval, spec.duration), (secs(5), secs(5)), "{name}");
        let plan = spec.plan(&five, 42, total);
        assert_eq!(
            plan.len(),
            59,
            "{name}: every 10 s from 5 s, ending before 600 s"
        );
        assert_eq!(
            plan,
            spec.plan(&five, 42, total),
            "{name}: same seed, same plan"
        );
        let mut seen = BTreeSet::new();
        for step in &plan {
            assert_eq!(step.duration, secs(5));
            let label = step.fault.label();
            match &step.fault {
                Fault::Partition { shape, .. } if name == "net-mix" => {
                    assert!(
                        [Shape::Halves, Shape::IsolateOne].contains(shape),
                        "{name}: {label}"
                    );
                    seen.insert(shape.name().to_owned());
                }
                fault => {
                    assert!(troubles.contains(fault), "{name}: {label}");
                    seen.insert(label);
                }
            }
        }
        let kinds = if name == "net-mix" { 6 } else { 1 };
        assert_eq!(seen.len(), kinds, "{name}: every advertised kind, {seen:?}");
    }
    let mix = ScheduleSpec::builtin("net-mix").unwrap();
    let plan = mix.plan(&five, 42, total);
    assert!(
        (0..5).any(|seed| mix.plan(&five, seed, total) != plan),
        "the kinds are drawn from the seed"
    );
}

#[test]
fn only_schedules_with_a_message_level_kind_or_step_are_message_level() {
    for name in ["none", "kill", "mix", "partition", "partition-leader"] {
        assert!(
            !ScheduleSpec::builtin(name).unwrap().message_level(),
            "{name}"
        );
    }
    let step = |fault: &str| {
        format!(
            "[[step]]\nat = \"1s\"\nfault = \"kill\"\nduration = \"1s\"\n\
                 [[step]]\nat = \"2s\"\nfault = \"{fault}\"\nduration = \"1s\"\n"
        )
    };
    assert!(parse(&step("reorder")).unwrap().message_level());
    assert!(!parse(&step("pause")).unwrap().message_level());
    assert!(
        parse("faults = [\"kill\", \"duplicate\"]")
            .unwrap()
            .message_level()
    );
}

#[test]
fn on_one_node_the_message_level_builtins_plan_nothing() {
    for (name, _) in advertised() {
        let spec = ScheduleSpec::builtin(name).unwrap();
        assert!(spec.plan(&nodes(1), 1, secs(60)).is_empty(), "{name}");
    }
}

const PERIODIC: &str = r#"
faults = ["delay", "loss", "kill"]
interval = "1s"
duration = "2s"

[trouble]
delay_ms = 100
jitter_ms = 0
loss_pct = 100
"#;

#[test]
fn a_periodic_trouble_table_changes_each_kinds_own_settings_only() {
    let spec = parse(PERIODIC).unwrap();
    assert!(spec.message_level());
    let delay = network(Trouble {
        delay_ms: 100,
        jitter_ms: 0,
        ..NONE
    });
    let loss = network(Trouble {
        loss_pct: 100,
        ..NONE
    });
    let plan = spec.plan(&nodes(3), 5, secs(120));
    let labels: BTreeSet<String> = plan.iter().map(|s| s.fault.label()).collect();
    assert!(labels.contains("network: delay 100 ms"), "{labels:?}");
    assert!(labels.contains("network: loss 100%"), "{labels:?}");
    for step in &plan {
        match &step.fault {
            Fault::Kill { nodes } => assert_eq!(nodes.len(), 1),
            fault => assert!(*fault == delay || *fault == loss, "{fault:?}"),
        }
    }
}

/// The shape of a run's `config.toml`: the schedule is its `[nemesis]` table.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct RunConfig {
    seed: u64,
    nemesis: ScheduleSpec,
}

#[test]
fn a_recorded_periodic_schedule_with_trouble_reads_back_from_toml_and_json() {
    let spec = parse(PERIODIC).unwrap();
    let config = RunConfig {
        seed: 9,
        nemesis: spec.clone(),
    };
    let text = toml::to_string(&config).unwrap();
    assert!(text.contains("[nemesis.trouble]"), "{text}");
    assert!(
        !text.contains("duplicate_pct"),
        "only what was given:\n{text}"
    );
    assert_eq!(toml::from_str::<RunConfig>(&text).unwrap(), config);
    assert_eq!(parse(&toml::to_string(&spec).unwrap()).unwrap(), spec);
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<ScheduleSpec>(&json).unwrap(), spec);

    // A built-in records no trouble table at all.
    let builtin = ScheduleSpec::builtin("net-mix").unwrap();
    let text = toml::to_string(&builtin).unwrap();
    assert!(!text.contains("trouble"), "{text}");
    assert_eq!(parse(&text).unwrap(), builtin);
}

const TIMED: &str = r#"
[[step]]
at = "2s"
fault = "delay"
duration = "3s"
trouble = { delay_ms = 50, jitter_ms = 10 }

[[step]]
at = "5s"
fault = "loss"
duration = "1s"

[[step]]
at = "8s"
fault = "reorder"
duration = "2s"
[step.trouble]
reorder_pct = 100

[[step]]
at = "10s"
fault = "kill"
duration = "1s"
nodes = ["n1"]
"#;

#[test]
fn timed_steps_of_the_new_kinds_take_their_own_settings() {
    let spec = parse(TIMED).unwrap();
    assert!(spec.message_level());
    let plan = spec.plan(&nodes(3), 1, secs(20));
    let faults: Vec<Fault> = plan.iter().map(|s| s.fault.clone()).collect();
    assert_eq!(
        faults,
        [
            network(Trouble {
                delay_ms: 50,
                jitter_ms: 10,
                ..NONE
            }),
            network(LOSS),
            network(Trouble {
                reorder_pct: 100,
                ..REORDER
            }),
            Fault::Kill {
                nodes: vec!["n1".into()]
            },
        ]
    );
    assert_eq!(
        plan.iter().map(|s| (s.at, s.end())).collect::<Vec<_>>(),
        [
            (secs(2), secs(5)),
            (secs(5), secs(6)),
            (secs(8), secs(10)),
            (secs(10), secs(11))
        ]
    );
    for seed in 0..5 {
        assert_eq!(spec.plan(&nodes(3), seed, secs(20)), plan, "nothing drawn");
    }

    let text = toml::to_string(&RunConfig {
        seed: 1,
        nemesis: spec.clone(),
    })
    .unwrap();
    let back: RunConfig = toml::from_str(&text).unwrap();
    assert_eq!(back.nemesis, spec, "{text}");
    assert_eq!(back.nemesis.steps[1].trouble, Default::default());

    let err = spec.check(&nodes(1), secs(20)).unwrap_err().to_string();
    assert_eq!(
        err,
        "schedule t.toml: step 1 (delay at 2s): delay needs at least 2 nodes, but the run has 1"
    );
}

#[test]
fn bad_trouble_settings_give_one_line_errors_naming_the_key_and_the_line() {
    let periodic =
        |faults: &str, trouble: &str| format!("faults = [{faults}]\n[trouble]\n{trouble}\n");
    let step = |fault: &str, rest: &str| {
        format!("[[step]]\nat = \"5s\"\nfault = \"{fault}\"\nduration = \"3s\"\n{rest}")
    };
    for (text, expected) in [
        (
            periodic("\"loss\"", "loss_pct = 101"),
            "t.toml:2: `trouble.loss_pct` is 101, but a percentage is from 0 to 100",
        ),
        (
            periodic("\"duplicate\"", "duplicate_pct = 300"),
            "t.toml:2: `trouble.duplicate_pct` is 300, but a percentage is from 0 to 100",
        ),
        (
            periodic("\"reorder\"", "reorder_pct = -5"),
            "t.toml:2: `trouble.reorder_pct` is -5, but a percentage is from 0 to 100",
        ),
        (
            periodic("\"delay\"", "delay_ms = -1"),
            "t.toml:2: `trouble.delay_ms` is -1, but a time in milliseconds is from 0 to \
             4294967295",
        ),
        (
            periodic("\"loss\"", "loss = 5"),
            "t.toml:3: unknown field `loss`, expected one of `delay_ms`, `jitter_ms`, \
             `loss_pct`, `duplicate_pct`, `reorder_pct`, `reorder_window_ms`",
        ),
        (
            periodic("\"delay\", \"kill\"", "loss_pct = 5"),
            "t.toml:2: `trouble.loss_pct` applies only to loss, which `faults` does not include",
        ),
        (
            periodic("\"loss\"", "loss_pct = 0"),
            "t.toml:2: `trouble.loss_pct` is 0, so loss would do nothing",
        ),
        (
            step("loss", "trouble = { loss_pct = 150 }\n"),
            "t.toml:5: `trouble.loss_pct` is 150, but a percentage is from 0 to 100",
        ),
        (
            step("delay", "trouble = { loss_pct = 5 }\n"),
            "t.toml:1: step 1 (delay at 5s): `trouble.loss_pct` applies only to loss, not to \
             delay",
        ),
        (
            step("kill", "[step.trouble]\ndelay_ms = 5\n"),
            "t.toml:1: step 1 (kill at 5s): `trouble.delay_ms` applies only to delay, not to \
             kill",
        ),
        (
            step("reorder", "trouble = { reorder_window_ms = 0 }\n"),
            "t.toml:1: step 1 (reorder at 5s): `trouble.reorder_window_ms` is 0, so reorder \
             would do nothing",
        ),
        (
            step("delay", "nodes = [\"n1\"]\n"),
            "t.toml:1: step 1 (delay at 5s): `nodes` applies only to kill, pause, partition-one \
             and partition-one-way",
        ),
        (
            step("loss", "target = \"all\"\n"),
            "t.toml:1: step 1 (loss at 5s): `target` applies only to kill and pause",
        ),
        (
            format!("{}[trouble]\nloss_pct = 5\n", step("loss", "")),
            "t.toml:5: `trouble` cannot be mixed with `[[step]]`: a schedule is either periodic \
             (`faults`, `interval`, `duration`, `target`, `trouble`) or timed (`[[step]]` \
             tables, each with its own `duration`, `target` and `trouble`)",
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
fn a_periodic_schedule_built_in_code_with_a_bad_percentage_is_refused_before_planning() {
    let mut spec = ScheduleSpec::builtin("loss").unwrap();
    spec.trouble.loss_pct = Some(150);
    assert_eq!(
        spec.check(&nodes(3), secs(60)).unwrap_err().to_string(),
        "schedule loss: `trouble.loss_pct` is 150, but a percentage is from 0 to 100"
    );
    let planned = std::panic::catch_unwind(|| spec.plan(&nodes(3), 1, secs(60)));
    assert!(
        planned.is_err(),
        "planning it panics rather than drop 150% of messages"
    );
}

#[test]
fn the_message_level_examples_in_the_docs_read_and_are_message_level() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/nemesis.md");
    let doc = std::fs::read_to_string(doc).unwrap();
    let section = &doc[doc.find("## Message-level faults").expect("the section")..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut examples = 0;
    for block in section.split("```toml\n").skip(1) {
        let example = &block[..block.find("```").unwrap()];
        let spec = parse(example).unwrap_or_else(|e| panic!("{e}\n{example}"));
        assert!(spec.message_level(), "{example}");
        spec.check(&nodes(3), secs(60)).unwrap();
        examples += 1;
    }
    assert_eq!(examples, 2, "a periodic and a timed example");
}
