//! The messages around the earliest anomaly as a Lamport diagram (a message sequence chart): one
//! vertical lifeline per node and per client, time running downward, an arrow per message from
//! its sender when the router received it to its receiver when it was delivered.
//!
//! What is drawn is chosen here; how, in [`svg`]. The window runs from a little before the
//! invocation of the earliest operation of the anomaly's core (or of the impossible operation,
//! when the checker found no core) to a little after the impossible operation's completion. A
//! message belongs to it when it was sent or delivered inside it. At most [`MAX_DRAWN`] are
//! drawn: the client messages of the core's operations always (their requests, any copies, and
//! the replies to them), then node-to-node messages, nearest in time to those operations'
//! invocations and completions first, then other clients' messages the same way. The file is
//! streamed once and only the messages that may be drawn are kept.
//!
//! A client is named after the history's process: process `p` talks as client `c{p+1}` (the
//! final reads too: one process, so one client, per key; `c0` is the bench's own, for `init`).
//! A client's messages belong
//! to one of its operations when they leave it between the operation's invocation and its
//! completion; a message to it, when it replies to one of those (`in_reply_to`), or, lacking
//! that, when it arrives in between.

mod svg;

use std::collections::BinaryHeap;
use std::path::Path;

use checker::{Anomaly, OpSummary};

use crate::error::ReportError;
use crate::messages::{self, Message, Skipped};
use crate::run::{Run, seconds};

/// Messages drawn at most, unless the core's operations have more client messages than that.
pub const MAX_DRAWN: usize = 150;
/// The window reaches this share of its span before the first operation and after the last …
const MARGIN_SHARE: u64 = 10;
/// … but at least and at most this much (nanoseconds).
const MARGIN_MIN_NS: u64 = 2_000_000;
const MARGIN_MAX_NS: u64 = 200_000_000;

/// The client a history process talks as.
pub fn client(process: u64) -> String {
    format!("c{}", process + 1)
}

/// A name the router gives a client (`c0`, `c12`) rather than a node.
pub fn is_client(name: &str) -> bool {
    name.strip_prefix('c')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// What an operation of the diagram is to the anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The operation that cannot be linearized: red.
    Culprit,
    /// The acknowledged write it missed: purple.
    Missed,
    /// Another operation of the core.
    Core,
}

/// An operation the diagram is about.
#[derive(Clone, Debug)]
pub struct Focus {
    pub client: String,
    pub process: u64,
    pub index: usize,
    pub text: String,
    pub role: Role,
    pub invoke: u64,
    pub complete: Option<u64>,
    /// The `msg_id`s of the requests its client sent while it ran, as the selection meets them.
    requests: Vec<u64>,
}

impl Focus {
    fn new(o: &OpSummary, role: Role) -> Focus {
        Focus {
            client: client(o.process),
            process: o.process,
            index: o.index,
            text: o.text.clone(),
            role,
            invoke: o.invoke,
            complete: o.complete,
            requests: Vec::new(),
        }
    }

    /// Whether `m` is one of this operation's client messages, noting its request ids.
    fn claims(&mut self, m: &Message, window_end: u64) -> bool {
        let end = self.complete.unwrap_or(window_end);
        if m.src == self.client && (self.invoke..=end).contains(&m.t_ns) {
            if let Some(id) = m.msg_id {
                self.requests.push(id);
            }
            return true;
        }
        if m.dest != self.client {
            return false;
        }
        match m.in_reply_to {
            Some(id) => self.requests.contains(&id),
            None => (self.invoke..=end).contains(&m.arrival().unwrap_or(m.t_ns)),
        }
    }
}

/// The stretch of the run the diagram shows, and the operations it is about.
#[derive(Clone, Debug)]
pub struct Window {
    pub from: u64,
    pub to: u64,
    /// The impossible operation first, then the rest of the core by invocation.
    pub focus: Vec<Focus>,
}

impl Window {
    /// The window around `a` (see the module docs).
    pub fn around(a: &Anomaly) -> Window {
        let missed = a.missed.as_ref().map(|m| m.index);
        let mut focus = vec![Focus::new(&a.culprit, Role::Culprit)];
        for o in a.core.iter().flat_map(|c| &c.ops) {
            if o.index != a.culprit.index {
                let role = if Some(o.index) == missed {
                    Role::Missed
                } else {
                    Role::Core
                };
                focus.push(Focus::new(o, role));
            }
        }
        let first = focus.iter().map(|f| f.invoke).min().unwrap_or(0);
        let last = a.culprit.complete.unwrap_or_else(|| {
            focus
                .iter()
                .map(|f| f.complete.unwrap_or(f.invoke))
                .max()
                .unwrap_or(first)
        });
        let margin = ((last - first) / MARGIN_SHARE).clamp(MARGIN_MIN_NS, MARGIN_MAX_NS);
        Window {
            from: first.saturating_sub(margin),
            to: last + margin,
            focus,
        }
    }

    /// Sent or delivered inside the window.
    fn holds(&self, m: &Message) -> bool {
        let inside = |t: u64| (self.from..=self.to).contains(&t);
        inside(m.t_ns) || m.arrival().is_some_and(inside)
    }

    /// How far `m` is from the nearest invocation or completion of an operation of the window.
    fn distance(&self, m: &Message) -> u64 {
        let ends = self
            .focus
            .iter()
            .flat_map(|f| [Some(f.invoke), f.complete])
            .flatten();
        let times = [Some(m.t_ns), m.arrival()];
        ends.flat_map(|e| times.iter().flatten().map(move |&t| t.abs_diff(e)))
            .min()
            .unwrap_or(0)
    }
}

/// A message chosen to be drawn, and why.
#[derive(Clone, Debug)]
pub struct Drawn {
    pub m: Message,
    /// The operation of the window whose client message it is (an index into
    /// [`Window::focus`]).
    pub focus: Option<usize>,
}

/// A message that may be drawn, ranked: lower is kept first.
struct Ranked {
    /// Node-to-node messages (0) before other clients' messages (1), nearer first, then by id.
    key: (u8, u64, u64),
    m: Message,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// Chooses the messages to draw as they stream past (see the module docs).
pub struct Selector {
    window: Window,
    cap: usize,
    focused: Vec<Drawn>,
    /// The best `cap` others so far; the worst on top, to be dropped first.
    others: BinaryHeap<Ranked>,
    in_window: u64,
}

/// What the selection chose.
pub struct Selection {
    pub window: Window,
    /// By `t_ns`, then id.
    pub drawn: Vec<Drawn>,
    /// Messages sent or delivered in the window, drawn or not.
    pub in_window: u64,
}

impl Selection {
    pub fn not_drawn(&self) -> u64 {
        self.in_window - self.drawn.len() as u64
    }
}

impl Selector {
    pub fn new(window: Window, cap: usize) -> Selector {
        Selector {
            window,
            cap,
            focused: Vec::new(),
            others: BinaryHeap::new(),
            in_window: 0,
        }
    }

    pub fn offer(&mut self, m: Message) {
        if !self.window.holds(&m) {
            return;
        }
        self.in_window += 1;
        let to = self.window.to;
        if let Some(i) = self.window.focus.iter_mut().position(|f| f.claims(&m, to)) {
            self.focused.push(Drawn { m, focus: Some(i) });
            return;
        }
        let tier = u8::from(is_client(&m.src) || is_client(&m.dest));
        let key = (tier, self.window.distance(&m), m.id);
        if self.others.len() < self.cap {
            self.others.push(Ranked { key, m });
        } else if self.others.peek().is_some_and(|worst| key < worst.key) {
            self.others.pop();
            self.others.push(Ranked { key, m });
        }
    }

    pub fn finish(self) -> Selection {
        let room = self.cap.saturating_sub(self.focused.len());
        let mut others = self.others.into_sorted_vec();
        others.truncate(room);
        let mut drawn = self.focused;
        drawn.extend(others.into_iter().map(|r| Drawn {
            m: r.m,
            focus: None,
        }));
        drawn.sort_by_key(|d| (d.m.t_ns, d.m.id));
        Selection {
            window: self.window,
            drawn,
            in_window: self.in_window,
        }
    }
}

/// The diagram as the report shows it.
pub struct Diagram {
    /// An `<svg>` element for the page (HTML needs no namespace).
    pub inline: String,
    /// The same as a file of its own.
    pub file: String,
    /// One sentence saying what is drawn.
    pub caption: String,
}

/// The diagram of the messages around `a`, when the run has `messages.jsonl`.
pub fn diagram(run: &Run, a: &Anomaly) -> Result<Option<Diagram>, ReportError> {
    let path = run.dir.join("messages.jsonl");
    if !path.exists() {
        return Ok(None);
    }
    let (selection, skipped) = select(&path, Window::around(a), MAX_DRAWN)?;
    let nodes: Vec<String> = run
        .results
        .messages
        .iter()
        .flat_map(|m| m.by_node.keys())
        .filter(|n| !is_client(n))
        .cloned()
        .collect();
    let svg = svg::draw(&selection, &nodes, &run.results.faults);
    Ok(Some(Diagram {
        file: svg.replacen("<svg ", "<svg xmlns=\"http://www.w3.org/2000/svg\" ", 1),
        inline: svg,
        caption: caption(&selection, &skipped),
    }))
}

/// Streams `path` through a [`Selector`].
pub fn select(
    path: &Path,
    window: Window,
    cap: usize,
) -> Result<(Selection, Skipped), ReportError> {
    let mut selector = Selector::new(window, cap);
    let skipped = messages::read(path, |m| selector.offer(m))?;
    Ok((selector.finish(), skipped))
}

fn caption(s: &Selection, skipped: &Skipped) -> String {
    let w = &s.window;
    let c = &w.focus[0];
    let has = |role: Role| w.focus.iter().any(|f| f.role == role);
    let mut key = format!(
        "red: its time on {}'s lifeline, its request and reply",
        c.client
    );
    if has(Role::Core) {
        key.push_str("; black: the rest of the core");
    }
    if has(Role::Missed) {
        key.push_str("; purple: the write it missed");
    }
    let mut text = format!(
        "Messages from {} to {} around the {} by process {} (client {}) that cannot be \
         linearized ({key}). Time runs down, not to scale: a row per event, further apart the \
         longer between them. {} drawn",
        seconds(w.from),
        seconds(w.to),
        c.text,
        c.process,
        c.client,
        checker::counted(s.drawn.len() as u64, "message", "messages"),
    );
    match s.not_drawn() {
        0 => text.push('.'),
        n => text.push_str(&format!("; {n} more in this window not drawn.")),
    }
    if let Some(note) = skipped.note() {
        text.push(' ');
        text.push_str(&note);
    }
    text
}

#[cfg(test)]
mod tests;
