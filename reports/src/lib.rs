//! kvlab's reports: a finished run directory turned into one page people can share.
//!
//! [`render`] reads a run directory (`results.json`, `history.jsonl`, `config.toml`, the nodes'
//! logs and, for a system whose messages pass through the bench, `messages.jsonl`) and writes
//! into it:
//! - `report.html`: one self-contained file (plots inlined as PNG data, the message diagram as
//!   inline SVG) that opens offline: the verdict, the system under test (`kvnode` for runs that
//!   predate the field), the nodes' arguments (a deliberate `--unsafe-` bug said so at the top)
//!   and whether the run was interrupted; for an anomaly, the counterexample first (the checker's
//!   explanation, what became of the write it missed, the core the checker shrank it to with its
//!   own small timeline, a timeline of the key's operations around the failure with the
//!   impossible one in red and the faults that began marked, the messages around it as a Lamport
//!   diagram when the run recorded them, the node log lines from that moment), then every other
//!   invalid key's explanation, core and operations (see `anomaly`); then service time,
//!   throughput and quantile plots with the fault windows shaded; then, when `results.json`
//!   counts messages, a Messages section (node-to-node messages per operation, the figure
//!   protocols are compared by, then delivered, dropped and duplicated, per node and per body
//!   type); then tables of counts, both latency figures, availability during and outside faults,
//!   the faults with the sides of each partition (see `faults`) and the configuration;
//! - `latency.png`, `throughput.png`, `quantiles.png` and, for an anomaly, `anomaly.png` and
//!   the cores' timelines (`anomaly-core.png`, then `anomaly-1-core.png`, ... for the other keys);
//! - `messages.svg`, for an anomaly in a run with `messages.jsonl`: the Lamport diagram of the
//!   messages around the earliest anomaly (one lifeline per node and client, an arrow per
//!   message, drops crossed, the impossible operation's request and reply in red, the faults
//!   shaded; at most 150 messages, streamed from a file of any size: see `lamport`);
//! - `results.xml`: the verdict in JUnit XML.
//!
//! [`render_with`] does the same from results and a history already in memory.
//!
//! [`write_index`] writes `index.html` over a directory of runs, newest first, with each run's
//! system and, where counted, its node-to-node messages per operation.
//!
//! The crate does no async and starts no process; fonts are bundled (DejaVu Sans), so rendering
//! needs no system font libraries.

mod anomaly;
pub mod compare;
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
pub use results::{
    CheckerSummary, Costs, CostsPerOp, FaultWindow, MessageStats, NodeMessages, Quantiles,
    RunResults,
};
pub use run::read_results;
