//! kvlab's test bench: `bench run` starts the system under test ([`system`]: kvnode, or any
//! program speaking Maelstrom's protocol), drives a workload ([`profile`], [`workload`]) while
//! the nemesis injects faults, records the history ([`recorder`]), checks it and writes the
//! results ([`run`]); `bench check` checks any history file ([`check`]).
//!
//! `bench compare` ([`compare`]) runs several systems through [`run`] and renders them side by
//! side. Modules depend one way: [`commands`] → [`compare`] → [`run`] → [`workload`] → [`config`] → [`cli`].
//!
//! Exit codes follow Jepsen: 0 valid, 1 anomaly, 2 unknown; 254 for bad arguments or input.

pub mod check;
pub mod cli;
pub mod commands;
pub mod compaction;
mod compare;
pub mod config;
mod costs;
mod faults;
pub mod profile;
pub mod recorder;
pub mod run;
mod summary;
pub mod system;
pub mod workload;
