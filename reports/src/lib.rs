//! kvlab's reports: a finished run directory turned into one page people can share.
//!
//! [`render`] reads a run directory (`results.json`, `history.jsonl`, `config.toml`, the nodes'
//! logs) and writes into it:
//! - `report.html`: one self-contained file (plots inlined as PNG data) that opens offline: the
//!   verdict, the nodes' arguments (a deliberate `--unsafe-` bug said so at the top) and whether
//!   the run was interrupted; for an anomaly, the counterexample first (the checker's
//!   explanation, what became of the write it missed, the core the checker shrank it to with its
//!   own small timeline, a timeline of the key's operations around the failure with the
//!   impossible one in red and the faults that began marked, the node log lines from that
//!   moment), then every other invalid key's explanation, core and operations (see `anomaly`); then
//!   service time, throughput and quantile plots with the fault windows shaded; then tables of
//!   counts, both latency figures, availability during and outside faults, the faults with the
//!   sides of each partition (see `faults`) and the configuration;
//! - `latency.png`, `throughput.png`, `quantiles.png` and, for an anomaly, `anomaly.png` and
//!   the cores' timelines (`anomaly-core.png`, then `anomaly-1-core.png`, ... for the other keys);
//! - `results.xml`: the verdict in JUnit XML.
//!
//! [`render_with`] does the same from results and a history already in memory.
//!
//! [`write_index`] writes `index.html` over a directory of runs, newest first.
//!
//! The crate does no async and starts no process; fonts are bundled (DejaVu Sans), so rendering
//! needs no system font libraries.

mod anomaly;
mod error;
mod faults;
mod html;
mod junit;
mod lamport;
mod logs;
mod messages;
mod plots;
mod results;
mod run;
mod tables;
mod timeline;

pub use anomaly::missed_write;
pub use error::ReportError;
pub use html::{Report, render, render_with, write_index};
pub use junit::junit_xml;
pub use results::{CheckerSummary, FaultWindow, MessageStats, NodeMessages, Quantiles, RunResults};
pub use run::read_results;
