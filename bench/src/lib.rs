//! kvlab's test bench: `bench run` starts a kvnode cluster ([`cluster`]), drives a workload
//! ([`profile`]) while the nemesis injects faults, records the history ([`recorder`]), checks
//! it and writes the results ([`run`]); `bench check` checks any history file ([`check`]).
//!
//! Exit codes follow Jepsen: 0 valid, 1 anomaly, 2 unknown; 254 for bad arguments or input.

pub mod check;
pub mod cli;
pub mod cluster;
pub mod compaction;
mod faults;
pub mod profile;
pub mod recorder;
pub mod run;
mod summary;
pub mod workload;
