//! Timed schedules: an explicit list of steps, each one fault kind at a given time for a given
//! length, with its nodes named or drawn from the run's seed.
//!
//! The runner applies one step at a time: it sleeps until a step's start, starts the fault,
//! sleeps until its end and ends it, then moves to the next. Overlapping steps would therefore
//! start late rather than together, so they are refused, as is every step the runner could not
//! apply as written.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::prelude::*;
use serde::{Deserialize, Serialize};

use super::file::{Invalid, Place};
use super::{FaultKind, Step, TroubleSettings, duration_text};
use crate::fault::{Fault, Shape, Target, deafen, isolate};

/// One `[[step]]` of a timed schedule as written: `fault` starts `at` (since the run started)
/// and lasts `duration`. What it leaves open (which node to kill, the sides of a partition) is
/// drawn from the run's seed when the run is planned.
///
/// Rules, checked when the schedule is read: `duration` is positive; `target` is given only for
/// a kill or pause, and not together with `nodes`; `nodes`, if given, is a non-empty list of
/// distinct names for a kill or pause, and exactly one name for `partition-one` and
/// `partition-one-way` (the node cut off); other kinds take no `nodes`; `trouble` keeps the rules
/// of [`TroubleSettings`] for this step's kind alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    #[serde(with = "duration_text")]
    pub at: Duration,
    pub fault: FaultKind,
    #[serde(with = "duration_text")]
    pub duration: Duration,
    /// Which nodes a kill or pause hits, drawn as in a periodic schedule; `one` if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// The exact nodes to kill or pause, or the one node that `partition-one` isolates or that
    /// `partition-one-way` deafens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,
    /// Changes to the settings of a message-level kind, for this step.
    #[serde(default, skip_serializing_if = "TroubleSettings::is_empty")]
    pub trouble: TroubleSettings,
}

impl StepSpec {
    /// When the fault ends.
    pub fn end(&self) -> Duration {
        self.at + self.duration
    }

    /// `step 2 (kill at 5s)`: how errors name the step at `index` (0-based).
    fn named(&self, index: usize) -> String {
        format!(
            "step {} ({} at {})",
            index + 1,
            self.fault.name(),
            humantime::format_duration(self.at)
        )
    }

    /// What is wrong with this step on its own, if anything.
    fn fault_in_itself(&self) -> Option<String> {
        let process = matches!(self.fault, FaultKind::Kill | FaultKind::Pause);
        if self.duration.is_zero() {
            return Some("duration must be positive".into());
        }
        if self.target.is_some() && !process {
            return Some("`target` applies only to kill and pause".into());
        }
        if let Some(problem) = self.trouble.problem(&[self.fault]) {
            return Some(problem);
        }
        let nodes = self.nodes.as_ref()?;
        if self.target.is_some() {
            return Some("give `target` or `nodes`, not both".into());
        }
        let mut seen = BTreeSet::new();
        if let Some(twice) = nodes.iter().find(|n| !seen.insert(*n)) {
            return Some(format!("`nodes` names `{twice}` twice"));
        }
        match self.fault {
            _ if process && nodes.is_empty() => Some("`nodes` is empty".into()),
            _ if process => None,
            FaultKind::PartitionOne | FaultKind::PartitionOneWay if nodes.len() != 1 => {
                Some(format!(
                    "{} cuts off exactly one node, but `nodes` names {}",
                    self.fault.name(),
                    nodes.len()
                ))
            }
            FaultKind::PartitionOne | FaultKind::PartitionOneWay => None,
            _ => Some(
                "`nodes` applies only to kill, pause, partition-one and partition-one-way".into(),
            ),
        }
    }

    /// The concrete step on `nodes`; draws from `rng` only what the step leaves open.
    fn draw<R: Rng + ?Sized>(&self, nodes: &[String], rng: &mut R) -> Step {
        let fault = match (&self.nodes, self.fault) {
            (None, kind) => {
                kind.draw_with(nodes, self.target.unwrap_or_default(), &self.trouble, rng)
            }
            (Some(named), FaultKind::Kill) => Fault::Kill {
                nodes: named.clone(),
            },
            (Some(named), FaultKind::Pause) => Fault::Pause {
                nodes: named.clone(),
            },
            (Some(named), FaultKind::PartitionOne) => Fault::Partition {
                shape: Shape::IsolateOne,
                grudge: isolate(&named[0], nodes),
            },
            (Some(named), FaultKind::PartitionOneWay) => Fault::Partition {
                shape: Shape::OneWay,
                grudge: deafen(&named[0], nodes),
            },
            (Some(_), kind) => unreachable!("{kind:?} takes no `nodes`; checked when read"),
        };
        Step {
            at: self.at,
            fault,
            duration: self.duration,
        }
    }
}

/// Checks the steps of a timed schedule on their own: each is valid, and each starts no
/// earlier than the one before it ends.
pub(super) fn check_steps(steps: &[StepSpec]) -> Result<(), Invalid> {
    let invalid = |index: usize, message: String| Invalid {
        place: Place::Step(index),
        message: format!("{}: {message}", steps[index].named(index)),
    };
    if steps.is_empty() {
        return Err(Invalid {
            place: Place::Key("step"),
            message: "`step` is empty; for no faults write `faults = []`".into(),
        });
    }
    for (i, step) in steps.iter().enumerate() {
        if let Some(message) = step.fault_in_itself() {
            return Err(invalid(i, message));
        }
        if let Some(before) = i.checked_sub(1).map(|j| &steps[j])
            && step.at < before.end()
        {
            return Err(invalid(
                i,
                format!(
                    "starts before step {i} ends at {}; steps run one at a time, in the order \
                     listed",
                    humantime::format_duration(before.end())
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that the steps can run as written over `nodes` in `total`; the message names the
/// first step that cannot. Also checks the steps on their own, for a spec built in code.
pub(super) fn check_run(
    steps: &[StepSpec],
    nodes: &[String],
    total: Duration,
) -> Result<(), String> {
    if steps.is_empty() {
        return Ok(());
    }
    check_steps(steps).map_err(|e| e.message)?;
    for (i, step) in steps.iter().enumerate() {
        let problem = if !step.fault.possible(nodes.len()) {
            let min = (1..)
                .find(|&n| step.fault.possible(n))
                .expect("every fault kind is possible on some number of nodes");
            Some(format!(
                "{} needs at least {min} nodes, but the run has {}",
                step.fault.name(),
                nodes.len()
            ))
        } else if let Some(stranger) = step.nodes.iter().flatten().find(|n| !nodes.contains(n)) {
            Some(format!(
                "no node `{stranger}` in this run (its nodes are {})",
                nodes.join(", ")
            ))
        } else if step.end() > total {
            Some(format!(
                "ends at {}, after the run's time limit of {}; a timed schedule must fit in the \
                 run",
                humantime::format_duration(step.end()),
                humantime::format_duration(total)
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(format!("{}: {problem}", step.named(i)));
        }
    }
    Ok(())
}

/// The steps made concrete over `nodes`, drawing in order from one stream seeded with `seed`.
pub(super) fn plan(steps: &[StepSpec], nodes: &[String], seed: u64) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    steps.iter().map(|s| s.draw(nodes, &mut rng)).collect()
}
