//! kvlab's test bench. For now it checks histories (`bench check`); running a cluster under
//! faults arrives with the `run` command.
//!
//! Exit codes follow Jepsen: 0 valid, 1 anomaly, 2 unknown; 254 for bad arguments or input.

pub mod check;
pub mod cli;
