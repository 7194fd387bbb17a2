//! Nemesis schedules: which faults to inject and when, and the seeded plan that turns a
//! schedule into concrete [`Step`]s for one run.
//!
//! A schedule is a built-in name ([`builtin_names`]) or a TOML file in one of two forms. A
//! *periodic* schedule draws a fault at random at a steady pace:
//!
//! ```toml
//! interval = "5s"                  # quiet time before each fault (default 5s; may be 0s)
//! duration = "5s"                  # how long each fault lasts (default 5s; must be positive)
//! faults = ["kill", "partition"]   # drawn at random for each step; [] means no faults
//! target = "one"                   # kill/pause: "one", "minority", "majority", "all" or "leader"
//! ```
//!
//! A *timed* schedule lists its faults ([`StepSpec`]), one `[[step]]` table each, in time order:
//!
//! ```toml
//! [[step]]
//! at = "5s"              # since the run started
//! fault = "kill"         # any fault kind
//! duration = "3s"
//! nodes = ["n1"]         # optional: kill/pause these, or cut off this one (partition-one(-way))
//!
//! [[step]]
//! at = "12s"
//! fault = "partition"    # the halves are drawn from the run's seed
//! duration = "4s"
//! ```
//!
//! Fault kinds: `kill`, `pause`, `partition` (halves), `partition-one` (isolate one node),
//! `partition-ring` (majorities ring), `partition-bridge`, `partition-one-way` (one node stops
//! hearing the others), `partition-leader` (isolate the current leader; resolved by the runner),
//! and the message-level `delay`, `loss`, `duplicate` and `reorder` ([`FaultKind::message_level`]),
//! which only nodes whose messages pass through the bench can suffer. Their settings have
//! built-in values that a periodic schedule's `[trouble]` table or a step's `trouble` may change
//! ([`TroubleSettings`]):
//!
//! ```toml
//! faults = ["delay", "loss"]
//! [trouble]
//! delay_ms = 100       # delay's own keys change delay faults ...
//! loss_pct = 5         # ... and loss's keys loss faults
//! ```
//!
//! A file is checked on its own when read ([`ScheduleSpec::from_toml`]); whether a timed
//! schedule fits a run (its node names, its node count, its time limit) is checked by
//! [`ScheduleSpec::check`], which the runner calls before it plans.

mod file;
mod timed;
mod trouble;

use std::path::Path;
use std::time::Duration;

use rand::prelude::*;
use serde::{Deserialize, Serialize};

use crate::NemesisError;
use crate::fault::{Fault, Shape, Target};

pub use timed::StepSpec;
pub use trouble::TroubleSettings;

/// One kind of fault a schedule may draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Kill,
    Pause,
    /// Halves.
    Partition,
    PartitionOne,
    PartitionRing,
    PartitionBridge,
    PartitionOneWay,
    PartitionLeader,
    /// Every message between nodes is held back a while (message-level).
    Delay,
    /// Some messages between nodes are dropped (message-level).
    Loss,
    /// Some messages between nodes are delivered twice (message-level).
    Duplicate,
    /// Some messages between nodes are held back so that later ones overtake them
    /// (message-level).
    Reorder,
}

impl FaultKind {
    fn shape(self) -> Option<Shape> {
        match self {
            FaultKind::Kill
            | FaultKind::Pause
            | FaultKind::Delay
            | FaultKind::Loss
            | FaultKind::Duplicate
            | FaultKind::Reorder => None,
            FaultKind::Partition => Some(Shape::Halves),
            FaultKind::PartitionOne => Some(Shape::IsolateOne),
            FaultKind::PartitionRing => Some(Shape::MajoritiesRing),
            FaultKind::PartitionBridge => Some(Shape::Bridge),
            FaultKind::PartitionOneWay => Some(Shape::OneWay),
            FaultKind::PartitionLeader => Some(Shape::IsolateLeader),
        }
    }

    /// The kind as schedules spell it (`partition-one`).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::PartitionOne => "partition-one",
            FaultKind::PartitionRing => "partition-ring",
            FaultKind::PartitionBridge => "partition-bridge",
            FaultKind::PartitionOneWay => "partition-one-way",
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::Delay => "delay",
            FaultKind::Loss => "loss",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Reorder => "reorder",
        }
    }

    /// Whether this kind acts on single messages between nodes, and so applies only to nodes
    /// whose messages pass through the bench (it draws a [`Fault::Network`]).
    pub fn message_level(self) -> bool {
        matches!(
            self,
            FaultKind::Delay | FaultKind::Loss | FaultKind::Duplicate | FaultKind::Reorder
        )
    }

    /// Whether this kind means anything on `n` nodes (a partition needs at least two or three;
    /// message-level trouble needs a link between two nodes).
    pub fn possible(self, n: usize) -> bool {
        let min = if self.message_level() { 2 } else { 1 };
        n >= self.shape().map_or(min, Shape::min_nodes)
    }

    /// Draws a concrete fault; a message-level kind gets its built-in settings (see
    /// [`TroubleSettings`]) and draws nothing. Panics unless [`FaultKind::possible`] holds for
    /// `nodes.len()`.
    pub fn draw<R: Rng + ?Sized>(self, nodes: &[String], target: Target, rng: &mut R) -> Fault {
        self.draw_with(nodes, target, &TroubleSettings::default(), rng)
    }

    /// [`FaultKind::draw`] with a schedule's settings for the message-level kinds.
    fn draw_with<R: Rng + ?Sized>(
        self,
        nodes: &[String],
        target: Target,
        settings: &TroubleSettings,
        rng: &mut R,
    ) -> Fault {
        if let Some(trouble) = settings.trouble(self) {
            return Fault::Network { trouble };
        }
        match (self, self.shape()) {
            (_, Some(shape)) => Fault::partition(shape, nodes, rng),
            (FaultKind::Kill, None) => Fault::Kill {
                nodes: target.resolve(nodes, rng),
            },
            (FaultKind::Pause, None) => Fault::Pause {
                nodes: target.resolve(nodes, rng),
            },
            (kind, None) => unreachable!("{kind:?} is message-level, drawn above"),
        }
    }
}

/// One planned fault: it starts `at` (since the run started) and ends `duration` later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    #[serde(with = "duration_text")]
    pub at: Duration,
    pub fault: Fault,
    #[serde(with = "duration_text")]
    pub duration: Duration,
}

impl Step {
    /// When the fault ends.
    pub fn end(&self) -> Duration {
        self.at + self.duration
    }
}

/// A resolved schedule. Serialises (with durations as text like `"5s"`) to the same TOML a
/// schedule file holds, so a run's recorded configuration can be fed back in; reading it back
/// checks it as a file is checked.
///
/// Invariant: either `steps` is empty and the schedule is periodic (`interval`, `duration`,
/// `faults`, `target` and `trouble` apply), or it is timed: `steps` are valid on their own, in
/// time order and never overlap, `faults` is empty, `trouble` is empty (each step has its own)
/// and `interval`, `duration` and `target` are unused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "file::SpecFile", into = "file::SpecFile")]
pub struct ScheduleSpec {
    /// The built-in name or the file path this spec came from.
    pub name: String,
    pub interval: Duration,
    pub duration: Duration,
    pub faults: Vec<FaultKind>,
    pub target: Target,
    /// The `[trouble]` table of a periodic schedule: its settings for the message-level kinds.
    pub trouble: TroubleSettings,
    /// The `[[step]]` tables of a timed schedule; empty for a periodic one.
    pub steps: Vec<StepSpec>,
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}

const BUILTINS: &[(&str, &str)] = &[
    ("none", "no faults"),
    ("kill", "every 3s, kill one node for 3s, then restart it"),
    (
        "pause",
        "every 5s, pause one node (SIGSTOP) for 5s, then resume it",
    ),
    (
        "partition",
        "every 5s, split the nodes into random halves for 5s",
    ),
    ("partition-one", "every 5s, isolate one random node for 5s"),
    (
        "partition-one-way",
        "every 5s, one random node stops hearing the others (they still hear it) for 5s",
    ),
    (
        "partition-leader",
        "every 5s, isolate the current leader of a partition drawn at random for 5s",
    ),
    (
        "leader-churn",
        "every 2s, isolate the current leader of a partition drawn at random for 1s",
    ),
    (
        "kill-leader",
        "every 5s, kill the current leader of a partition drawn at random for 5s",
    ),
    (
        "pause-leader",
        "every 5s, pause the current leader of a partition drawn at random for 5s",
    ),
    ("partition-ring", "every 5s, a majorities ring for 5s"),
    (
        "partition-bridge",
        "every 5s, two halves joined by one bridge node for 5s",
    ),
    (
        "mix",
        "every 5s, a random one of kill, pause and partition for 5s",
    ),
    (
        "delay",
        "every 5s, delay every message between nodes by 20 ms plus up to 20 ms for 5s \
         (message-level)",
    ),
    (
        "loss",
        "every 5s, drop 20% of the messages between nodes for 5s (message-level)",
    ),
    (
        "duplicate",
        "every 5s, deliver 20% of the messages between nodes twice for 5s (message-level)",
    ),
    (
        "reorder",
        "every 5s, hold back 50% of the messages between nodes by up to 20 ms for 5s \
         (message-level)",
    ),
    (
        "net-mix",
        "every 5s, a random one of partition, partition-one, delay, loss, duplicate and \
         reorder for 5s (message-level)",
    ),
];

/// The built-in schedules as `(name, description)`, for `--help` and error messages.
pub fn builtin_names() -> &'static [(&'static str, &'static str)] {
    BUILTINS
}

impl ScheduleSpec {
    /// The built-in schedule called `name`, if there is one.
    pub fn builtin(name: &str) -> Option<ScheduleSpec> {
        use FaultKind::*;
        let faults = match name {
            "none" => vec![],
            "kill" => vec![Kill],
            "pause" => vec![Pause],
            "partition" => vec![Partition],
            "partition-one" => vec![PartitionOne],
            "partition-ring" => vec![PartitionRing],
            "partition-bridge" => vec![PartitionBridge],
            "partition-one-way" => vec![PartitionOneWay],
            "partition-leader" | "leader-churn" => vec![PartitionLeader],
            "mix" => vec![Kill, Pause, Partition],
            "delay" => vec![Delay],
            "loss" => vec![Loss],
            "duplicate" => vec![Duplicate],
            "reorder" => vec![Reorder],
            "net-mix" => vec![Partition, PartitionOne, Delay, Loss, Duplicate, Reorder],
            "kill-leader" | "pause-leader" => {
                vec![if name == "kill-leader" { Kill } else { Pause }]
            }
            _ => return None,
        };
        // Kills come more often than other faults (every 3 s rather than 5 s): only a kill that
        // hits a leader tests failover, and leadership drifts away from restarted nodes.
        // Leader churn moves leadership every 2 s and leaves a second between faults for a healed
        // node to rejoin (and, with a bug, to show what it kept or missed) before the next.
        let (every, lasting) = match name {
            "kill" => (Duration::from_secs(3), Duration::from_secs(3)),
            "leader-churn" => (Duration::from_secs(2), Duration::from_secs(1)),
            _ => (five_seconds(), five_seconds()),
        };
        Some(ScheduleSpec {
            name: name.to_string(),
            interval: every,
            duration: lasting,
            faults,
            target: if name.ends_with("-leader") && name != "partition-leader" {
                Target::Leader
            } else {
                Target::One
            },
            trouble: TroubleSettings::default(),
            steps: Vec::new(),
        })
    }

    /// Whether any of this schedule's kinds, or any of its steps, is message-level
    /// ([`FaultKind::message_level`]): such a schedule can run only on nodes whose messages pass
    /// through the bench.
    pub fn message_level(&self) -> bool {
        let mut kinds = self
            .faults
            .iter()
            .chain(self.steps.iter().map(|s| &s.fault));
        kinds.any(|k| k.message_level())
    }

    /// A built-in if `s` names one, else the TOML file at path `s`.
    pub fn from_name_or_file(s: &str) -> Result<ScheduleSpec, NemesisError> {
        if let Some(spec) = ScheduleSpec::builtin(s) {
            return Ok(spec);
        }
        let path = Path::new(s);
        let looks_like_path = s.contains(std::path::MAIN_SEPARATOR) || s.ends_with(".toml");
        if !looks_like_path && !path.exists() {
            let known: Vec<&str> = BUILTINS.iter().map(|(name, _)| *name).collect();
            return Err(NemesisError::UnknownSchedule {
                name: s.to_string(),
                known: known.join(", "),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| NemesisError::ScheduleRead {
            path: path.to_path_buf(),
            source,
        })?;
        ScheduleSpec::from_toml(&text, path)
    }

    /// Parses a schedule file's text and checks it on its own (see [`ScheduleSpec::check`] for
    /// what needs the run); `path` names it in errors and becomes the spec's name unless the
    /// file sets `name`.
    pub fn from_toml(text: &str, path: &Path) -> Result<ScheduleSpec, NemesisError> {
        let invalid = |line, message: String| NemesisError::ScheduleInvalid {
            path: path.to_path_buf(),
            line,
            message,
        };
        let spec: file::SpecFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |span| file::line_at(text, span.start));
            invalid(line, e.message().trim().replace('\n', " "))
        })?;
        let mut spec = spec
            .resolve()
            .map_err(|e| invalid(e.line(text), e.message))?;
        if spec.name.is_empty() {
            spec.name = path.display().to_string();
        }
        Ok(spec)
    }

    /// Whether this schedule can run as written on `nodes` for `total`: every node a timed step
    /// names is one of `nodes`, every step's kind is possible on this many nodes, and the last
    /// step ends by `total`. A periodic schedule fits if its `trouble` keeps the rules of
    /// [`TroubleSettings`] (always, unless it was built in code): kinds it cannot draw are left
    /// out of its plan, and it plans only the faults that end in time.
    pub fn check(&self, nodes: &[String], total: Duration) -> Result<(), NemesisError> {
        let problem = if self.steps.is_empty() {
            self.trouble.problem(&self.faults).map_or(Ok(()), Err)
        } else {
            timed::check_run(&self.steps, nodes, total)
        };
        problem.map_err(|message| NemesisError::ScheduleImpossible {
            name: self.name.clone(),
            message,
        })
    }

    /// The faults of one run over `nodes`, lasting `total`. Contract: the same inputs give the
    /// same plan (for one version of `rand`); steps are in time order and never overlap.
    ///
    /// A periodic schedule starts each step after at least `interval` of quiet, and the last
    /// ends before `total`. Fault kinds impossible on this many nodes (partitions of one node)
    /// are left out; if none remain, or `duration` is zero, the plan is empty.
    ///
    /// A timed schedule gives its steps as written, with what they leave open (the nodes, the
    /// partition's sides) drawn in order from `seed`.
    ///
    /// Panics unless [`ScheduleSpec::check`] passes for `nodes` and `total`: a step the runner
    /// cannot apply, or trouble it cannot make, must be refused before the run, not skipped in
    /// silence.
    pub fn plan(&self, nodes: &[String], seed: u64, total: Duration) -> Vec<Step> {
        if let Err(e) = self.check(nodes, total) {
            panic!("planning a schedule that does not fit the run: {e}");
        }
        if !self.steps.is_empty() {
            return timed::plan(&self.steps, nodes, seed);
        }
        let kinds: Vec<FaultKind> = self
            .faults
            .iter()
            .copied()
            .filter(|k| k.possible(nodes.len()))
            .collect();
        let mut steps = Vec::new();
        if kinds.is_empty() || self.duration.is_zero() {
            return steps;
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut at = self.interval;
        while at + self.duration < total {
            let kind = *kinds.choose(&mut rng).expect("kinds is not empty");
            let fault = kind.draw_with(nodes, self.target, &self.trouble, &mut rng);
            steps.push(Step {
                at,
                fault,
                duration: self.duration,
            });
            at += self.duration + self.interval;
        }
        steps
    }
}

/// Durations as humantime text (`"1m 30s"`), so files and recorded configs read naturally.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| D::Error::custom(format!("invalid duration `{text}`: {e}")))
    }

    /// For an optional key: use with `default` and `skip_serializing_if = "Option::is_none"`.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserializer, Serializer};

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn parse(text: &str) -> Result<ScheduleSpec, NemesisError> {
        ScheduleSpec::from_toml(text, Path::new("s.toml"))
    }

    #[test]
    fn every_builtin_name_resolves() {
        for (name, _) in builtin_names() {
            let spec = ScheduleSpec::from_name_or_file(name).unwrap();
            assert_eq!(spec.name, *name);
        }
    }

    #[test]
    fn unknown_name_gives_one_line_error_listing_builtins() {
        let err = ScheduleSpec::from_name_or_file("chaos")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("unknown schedule `chaos`"), "{err}");
        assert!(err.contains("partition-one"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let err = ScheduleSpec::from_name_or_file("no/such/schedule.toml").unwrap_err();
        assert!(err.to_string().contains("no/such/schedule.toml"), "{err}");
    }

    #[test]
    fn schedule_file_sets_every_field() {
        let spec =
            parse("interval = \"2s\"\nduration = \"1m\"\nfaults = [\"kill\", \"partition-ring\"]\ntarget = \"majority\"\n")
                .unwrap();
        assert_eq!(spec.interval, Duration::from_secs(2));
        assert_eq!(spec.duration, Duration::from_secs(60));
        assert_eq!(spec.faults, [FaultKind::Kill, FaultKind::PartitionRing]);
        assert_eq!(spec.target, Target::Majority);
        assert_eq!(spec.name, "s.toml");
    }

    #[test]
    fn bad_schedule_files_give_one_line_errors_with_the_line() {
        for (text, line, needle) in [
            ("faults = [\"kil\"]", 1, "unknown variant `kil`"),
            (
                "faults = []\ninterval = \"soon\"",
                2,
                "invalid duration `soon`",
            ),
            (
                "faults = []\ntarget = \"most\"",
                2,
                "unknown variant `most`",
            ),
            ("faults = []\nspeed = 3", 2, "unknown field `speed`"),
            (
                "interval = \"1s\"",
                0,
                "missing field `faults` (or `[[step]]` tables",
            ),
            (
                "faults = []\nduration = \"0s\"",
                2,
                "duration must be positive",
            ),
        ] {
            let err = parse(text).unwrap_err();
            let NemesisError::ScheduleInvalid { line: got, .. } = &err else {
                panic!("{err:?}")
            };
            let msg = err.to_string();
            assert!(msg.contains(needle) && !msg.contains('\n'), "{msg}");
            assert_eq!(*got, line, "{msg}");
            if line == 0 {
                assert!(msg.starts_with("schedule file s.toml: "), "{msg}");
            }
        }
    }

    #[test]
    fn recorded_spec_parses_back_to_itself() {
        let spec = ScheduleSpec::builtin("mix").unwrap();
        let text = toml::to_string(&spec).unwrap();
        assert!(text.contains("interval = \"5s\""), "{text}");
        assert_eq!(parse(&text).unwrap(), spec);
    }

    #[test]
    fn same_seed_gives_same_plan_and_other_seeds_differ() {
        let spec = ScheduleSpec::builtin("mix").unwrap();
        let total = Duration::from_secs(600);
        let plan = spec.plan(&nodes(5), 42, total);
        assert_eq!(plan, spec.plan(&nodes(5), 42, total));
        assert!((0..5).any(|seed| spec.plan(&nodes(5), seed, total) != plan));
    }

    #[test]
    fn planned_faults_never_overlap_and_end_before_the_total() {
        let spec = parse("interval = \"1s\"\nduration = \"3s\"\nfaults = [\"kill\", \"pause\", \"partition-bridge\"]").unwrap();
        let total = Duration::from_secs(30);
        let plan = spec.plan(&nodes(5), 9, total);
        assert_eq!(plan.len(), 7, "starts at 1s, 5s, ..., 25s");
        assert_eq!(plan[0].at, Duration::from_secs(1));
        for pair in plan.windows(2) {
            assert!(pair[0].end() + spec.interval <= pair[1].at);
        }
        assert!(plan.last().unwrap().end() < total);
    }

    #[test]
    fn none_and_partitions_of_one_node_plan_nothing() {
        let total = Duration::from_secs(60);
        assert!(
            ScheduleSpec::builtin("none")
                .unwrap()
                .plan(&nodes(3), 1, total)
                .is_empty()
        );
        let partition = ScheduleSpec::builtin("partition").unwrap();
        assert!(partition.plan(&nodes(1), 1, total).is_empty());
        let kill = ScheduleSpec::builtin("kill").unwrap();
        assert!(
            kill.plan(&nodes(1), 1, total)
                .iter()
                .all(|s| s.fault.nodes() == ["n1"])
        );
    }
}
