//! The nemesis: what faults kvlab injects, when, and how.
//!
//! Start with [`fault`]: the one vocabulary (kill/restart, pause/resume, partition shapes and
//! heal, message-level network trouble and its end, with Jepsen's names) that schedules, the
//! bench's history and its reports share. Network trouble (delay, loss, duplication, reordering
//! of single messages) is described here but applied by the bench's message router, so it
//! applies only to nodes whose messages pass through the bench. Then:
//!
//! - [`schedule`]: a [`ScheduleSpec`] (a built-in name or a TOML file; periodic, or timed with
//!   explicit [`StepSpec`]s) and its [`plan`](ScheduleSpec::plan): the concrete,
//!   non-overlapping [`Step`]s of one run, drawn from a caller-given seed so that a run's faults
//!   replay exactly. Pure: no clock, no I/O beyond reading the schedule file.
//! - [`process`]: process faults as signals to a node's process group (kill, pause, resume,
//!   terminate) and a zombie-aware liveness test.
//! - [`proxy`]: the [`LinkLayer`], one bench-owned TCP proxy per directed node-to-node link, which
//!   cuts, heals and delays links so that partitions need neither root nor the node's help.
//!
//! The crate performs faults but does not sequence them: the bench walks the plan, applies each
//! step's start at `at` and its end `duration` later, and records both in the history under
//! [`Fault::start_name`] and [`Fault::end_name`].

pub mod fault;
pub mod peer_proxy;
pub mod process;
pub mod proxy;
pub mod schedule;

mod error;

pub use error::NemesisError;
pub use fault::{Fault, Grudge, Shape, Target, Trouble};
pub use proxy::{Link, LinkLayer};
pub use schedule::{FaultKind, ScheduleSpec, Step, StepSpec, TroubleSettings, builtin_names};
