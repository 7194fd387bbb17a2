//! Message-level network faults through the public API the bench uses: the fault as recorded.

use std::time::Duration;

use nemesis::fault::Shape;
use nemesis::{Fault, Step, Trouble};

fn nodes(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
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
