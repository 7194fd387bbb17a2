//! Drawing a [`Selection`] as SVG, by hand: lifelines (nodes `n1`… first, then clients), an
//! arrow per message, the window's operations as bars on their clients' lifelines with their
//! names in a column at the right, and the faults as shaded bands named in the last columns.
//!
//! Time runs down, but not to scale: every send, arrival, drop, invocation and completion gets
//! a row of its own, in time order (so that a burst of messages sent at one instant stays
//! legible), and the rows are spaced further apart in proportion to the time between them, up
//! to a limit (so that an idle second does not take the page). The times are written at the
//! left.

use std::fmt::Write;

use crate::faults::{described, natural};
use crate::lamport::{Drawn, Role, Selection, is_client};
use crate::messages::Fate;
use crate::results::FaultWindow;
use crate::run::seconds;

/// Pixels between rows of events …
const ROW: f64 = 11.0;
/// … plus up to this much in proportion to the time between them, over the whole diagram …
const STRETCH_TOTAL: f64 = 360.0;
/// … and at most this much between two rows.
const STRETCH_MAX: f64 = 90.0;
/// The time axis at the left.
const LEFT: f64 = 96.0;
/// Where the rows begin (under the legend and the lifelines' names).
const TOP: f64 = 86.0;
/// The column of operation names at the right.
const OPS_W: f64 = 270.0;
/// Each fault's column.
const FAULT_W: f64 = 24.0;
/// The width the diagram aims at; lifelines are spaced to fit it, within these bounds.
const TARGET_W: f64 = 1160.0;
const SPACING_MIN: f64 = 64.0;
const SPACING_MAX: f64 = 170.0;

const CULPRIT: &str = "#d62728";
const MISSED: &str = "#7828c8";
const CORE: &str = "#1d2430";
const NODE_MSG: &str = "#5c6570";
const CLIENT_MSG: &str = "#3b7fb6";
const FAULT: &str = "#e67700";
const DROP: &str = "#c92a2a";

/// What happens on a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum What {
    // Ordered so that at one instant an operation is invoked before its request leaves, a
    // message leaves before it arrives, and the reply arrives before the operation completes;
    // then by message or operation.
    Invoke(usize),
    Send(usize),
    Arrive(usize),
    Complete(usize),
}

/// Rows down the page: a y for each event, and a y for any time (between the rows around it).
struct Rows {
    /// `(time, y)` of every row, in order.
    at: Vec<(u64, f64)>,
    /// y of each message's send and arrival (or drop), and of each operation's invocation and
    /// completion.
    send: Vec<f64>,
    arrive: Vec<f64>,
    invoke: Vec<Option<f64>>,
    complete: Vec<Option<f64>>,
}

impl Rows {
    fn new(s: &Selection) -> Rows {
        let mut events: Vec<(u64, What)> = Vec::new();
        for (i, d) in s.drawn.iter().enumerate() {
            events.push((d.m.t_ns, What::Send(i)));
            events.push((d.m.arrival().unwrap_or(d.m.t_ns), What::Arrive(i)));
        }
        for (i, f) in s.window.focus.iter().enumerate() {
            if (s.window.from..=s.window.to).contains(&f.invoke) {
                events.push((f.invoke, What::Invoke(i)));
            }
            if let Some(c) = f
                .complete
                .filter(|c| (s.window.from..=s.window.to).contains(c))
            {
                events.push((c, What::Complete(i)));
            }
        }
        events.sort_unstable();
        let first = events.first().map_or(s.window.from, |e| e.0);
        let last = events.last().map_or(s.window.to, |e| e.0);
        let scale = STRETCH_TOTAL / (last - first).max(1) as f64;
        let mut rows = Rows {
            at: Vec::with_capacity(events.len()),
            send: vec![0.0; s.drawn.len()],
            arrive: vec![0.0; s.drawn.len()],
            invoke: vec![None; s.window.focus.len()],
            complete: vec![None; s.window.focus.len()],
        };
        let mut y = TOP;
        let mut prev = first;
        for (n, &(t, what)) in events.iter().enumerate() {
            if n > 0 {
                y += ROW + ((t - prev) as f64 * scale).min(STRETCH_MAX);
            }
            prev = t;
            rows.at.push((t, y));
            match what {
                What::Invoke(i) => rows.invoke[i] = Some(y),
                What::Send(i) => rows.send[i] = y,
                What::Arrive(i) => rows.arrive[i] = y,
                What::Complete(i) => rows.complete[i] = Some(y),
            }
        }
        rows
    }

    fn top(&self) -> f64 {
        self.at.first().map_or(TOP, |r| r.1) - ROW
    }

    fn bottom(&self) -> f64 {
        self.at.last().map_or(TOP, |r| r.1) + ROW
    }

    /// The y of time `t`: between the rows around it, or the top or bottom edge outside them.
    fn y(&self, t: u64) -> f64 {
        let i = self.at.partition_point(|r| r.0 <= t);
        if i == 0 {
            return self.top();
        }
        if i == self.at.len() {
            return if self.at[i - 1].0 == t {
                self.at[i - 1].1
            } else {
                self.bottom()
            };
        }
        let (t0, y0) = self.at[i - 1];
        let (t1, y1) = self.at[i];
        y0 + (y1 - y0) * (t - t0) as f64 / (t1 - t0).max(1) as f64
    }
}

/// Text for SVG, escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The lifelines, left to right: every node named by `nodes` or by a drawn message (`n2` before
/// `n10`), then every client.
fn lifelines(s: &Selection, nodes: &[String]) -> Vec<String> {
    let mut names: Vec<String> = nodes
        .iter()
        .cloned()
        .chain(
            s.drawn
                .iter()
                .flat_map(|d| [d.m.src.clone(), d.m.dest.clone()]),
        )
        .chain(s.window.focus.iter().map(|f| f.client.clone()))
        .collect();
    names.sort_by(|a, b| (is_client(a), natural(a)).cmp(&(is_client(b), natural(b))));
    names.dedup();
    names
}

/// A message's colour, stroke width and whether its label is bold.
fn style(s: &Selection, d: &Drawn) -> (&'static str, f64, bool) {
    match d.focus.map(|i| s.window.focus[i].role) {
        Some(Role::Culprit) => (CULPRIT, 2.2, true),
        Some(Role::Missed) => (MISSED, 1.8, true),
        Some(Role::Core) => (CORE, 1.6, true),
        None if is_client(&d.m.src) || is_client(&d.m.dest) => (CLIENT_MSG, 1.0, false),
        None => (NODE_MSG, 1.0, false),
    }
}

fn role_color(role: Role) -> &'static str {
    match role {
        Role::Culprit => CULPRIT,
        Role::Missed => MISSED,
        Role::Core => CORE,
    }
}

/// A message's label: its type, then its ids small; a copy said so.
fn label(d: &Drawn) -> String {
    let m = &d.m;
    let mut small = String::new();
    if let Some(id) = m.msg_id {
        let _ = write!(small, " #{id}");
    }
    if let Some(id) = m.in_reply_to {
        let _ = write!(small, " ↩{id}");
    }
    if let Some(code) = m.code {
        let _ = write!(small, " code {code}");
    }
    let mut text = format!(
        "{}<tspan class=\"ids\">{}</tspan>",
        esc(&m.kind),
        esc(&small)
    );
    if m.duplicate_of.is_some() {
        text.push_str("<tspan class=\"ids\"> (copy)</tspan>");
    }
    text
}

/// An arrowhead at `(x, y)` pointing along `(ux, uy)` (a unit vector).
fn head(out: &mut String, (x, y): (f64, f64), (ux, uy): (f64, f64), color: &str) {
    let (bx, by) = (x - 8.0 * ux, y - 8.0 * uy);
    let (px, py) = (-uy * 3.5, ux * 3.5);
    let _ = writeln!(
        out,
        r#"<polygon points="{x:.1},{y:.1} {:.1},{:.1} {:.1},{:.1}" fill="{color}"/>"#,
        bx + px,
        by + py,
        bx - px,
        by - py
    );
}

/// Draws `s` (see the module docs). `nodes` are the run's nodes, drawn even when silent.
pub fn draw(s: &Selection, nodes: &[String], faults: &[FaultWindow]) -> String {
    let rows = Rows::new(s);
    let names = lifelines(s, nodes);
    let (top, bottom) = (rows.top(), rows.bottom());
    let t_top = rows.at.first().map_or(s.window.from, |r| r.0);
    let t_bottom = rows.at.last().map_or(s.window.to, |r| r.0);
    let faults: Vec<&FaultWindow> = faults
        .iter()
        .filter(|f| f.start_ns <= t_bottom && f.end_ns >= t_top)
        .collect();
    let gaps = names.len().saturating_sub(1).max(1) as f64;
    let room = TARGET_W - LEFT - 30.0 - OPS_W - FAULT_W * faults.len() as f64;
    let spacing = (room / gaps).clamp(SPACING_MIN, SPACING_MAX);
    let x_of = |name: &str| {
        let i = names
            .iter()
            .position(|n| n == name)
            .expect("every name has a lifeline");
        LEFT + 30.0 + i as f64 * spacing
    };
    let last_x = LEFT + 30.0 + (names.len().max(1) - 1) as f64 * spacing;
    let ops_x = last_x + 40.0;
    let faults_x = ops_x + OPS_W;
    let width = faults_x + FAULT_W * faults.len() as f64 + 10.0;
    let repeat_names = bottom - top > 600.0;
    let height = bottom + if repeat_names { 46.0 } else { 16.0 };

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg class="lamport" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Verdana, sans-serif" font-size="11">"#
    );
    out.push_str(
        "<style>.ids { font-size: 9px; } .halo { paint-order: stroke; stroke: white; \
         stroke-width: 3px; stroke-linejoin: round; } .name { font-size: 12px; font-weight: bold; }\
         </style>\n",
    );
    let _ = writeln!(
        out,
        r##"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>"##
    );
    legend(&mut out);

    // Faults: a shaded band over the lifelines and a named bar in its own column.
    for (k, f) in faults.iter().enumerate() {
        let y0 = if f.start_ns < t_top {
            top
        } else {
            rows.y(f.start_ns)
        };
        let y1 = if f.end_ns > t_bottom {
            bottom
        } else {
            rows.y(f.end_ns)
        };
        let _ = writeln!(
            out,
            r#"<rect x="{:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="{FAULT}" fill-opacity="0.07"/>"#,
            LEFT,
            faults_x + FAULT_W * k as f64 - LEFT,
            (y1 - y0).max(1.0)
        );
        let bx = faults_x + FAULT_W * k as f64 + 4.0;
        let _ = writeln!(
            out,
            r#"<rect x="{bx:.1}" y="{y0:.1}" width="5" height="{:.1}" fill="{FAULT}"/>"#,
            (y1 - y0).max(1.0)
        );
        let when = format!("from {} to {}", seconds(f.start_ns), seconds(f.end_ns));
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" transform="rotate(90 {:.1} {:.1})" fill="{FAULT}" class="halo">{} {}</text>"#,
            bx + 8.0,
            y0 + 2.0,
            bx + 8.0,
            y0 + 2.0,
            esc(&described(f)),
            esc(&when)
        );
    }

    // Lifelines with their names at the top (and again at the bottom of a tall diagram).
    for name in &names {
        let x = x_of(name);
        let client = is_client(name);
        let color = if client { "#a5c8e4" } else { "#adb5bd" };
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{bottom:.1}" stroke="{color}" stroke-width="1.2"/>"#,
            top - 14.0
        );
        name_box(&mut out, x, top - 34.0, name, client);
        if repeat_names {
            name_box(&mut out, x, bottom + 6.0, name, client);
        }
    }

    // The time axis: a time at each row where there is room for it, once.
    let mut last_label = f64::NEG_INFINITY;
    let mut last_t = None;
    for &(t, y) in &rows.at {
        if y - last_label >= 14.0 && last_t != Some(t) {
            last_t = Some(t);
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#5c6570" font-size="10">{}</text><line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ced4da"/>"##,
                LEFT - 4.0,
                y + 3.5,
                esc(&seconds(t)),
                LEFT,
                LEFT + 8.0
            );
            last_label = y;
        }
    }
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT:.1}" y1="{top:.1}" x2="{LEFT:.1}" y2="{bottom:.1}" stroke="#ced4da"/>"##
    );

    // The window's operations: a bar on the client's lifeline from invocation to completion,
    // named at the right.
    for (i, f) in s.window.focus.iter().enumerate() {
        let x = x_of(&f.client);
        let color = role_color(f.role);
        let y0 = rows.invoke[i].unwrap_or(top);
        let y1 = rows.complete[i].unwrap_or(bottom);
        let _ = writeln!(
            out,
            r#"<rect x="{:.1}" y="{y0:.1}" width="6" height="{:.1}" fill="{color}" fill-opacity="0.85"/>"#,
            x - 3.0,
            (y1 - y0).max(2.0)
        );
        let said = match f.role {
            Role::Culprit => " cannot be linearized",
            Role::Missed => " the write it missed",
            Role::Core => "",
        };
        let ended = match f.complete {
            Some(_) if rows.complete[i].is_some() => String::new(),
            Some(c) => format!(" (completed at {})", seconds(c)),
            None => " (never completed)".to_owned(),
        };
        let _ = writeln!(
            out,
            r#"<line x1="{:.1}" y1="{y0:.1}" x2="{:.1}" y2="{y0:.1}" stroke="{color}" stroke-opacity="0.5" stroke-dasharray="2 3"/>"#,
            x + 4.0,
            ops_x - 4.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{ops_x:.1}" y="{:.1}" fill="{color}" font-weight="bold" class="halo">{} #{} {}<tspan font-weight="normal">{}{}</tspan></text>"#,
            y0 + 4.0,
            esc(&f.client),
            f.index,
            esc(&f.text),
            said,
            esc(&ended)
        );
    }

    // The messages, the window's operations' last so that nothing covers them.
    let mut order: Vec<usize> = (0..s.drawn.len()).collect();
    order.sort_by_key(
        |&i| match s.drawn[i].focus.map(|f| s.window.focus[f].role) {
            None => 0,
            Some(Role::Core | Role::Missed) => 1,
            Some(Role::Culprit) => 2,
        },
    );
    let mut drops = Vec::new();
    let mut labels = String::new();
    for i in order {
        let cross = arrow(
            &mut out,
            &mut labels,
            s,
            &s.drawn[i],
            (rows.send[i], rows.arrive[i]),
            &x_of,
            spacing,
        );
        if let (Some(at), Fate::Dropped { why }) = (cross, &s.drawn[i].m.fate) {
            drops.push((s.drawn[i].m.id, at, why));
        }
    }
    // The labels over every line, the crosses over every label, so that no halo hides them.
    out.push_str(&labels);
    for (id, at, why) in drops {
        dropped(&mut out, id, at, why);
    }
    out.push_str("</svg>\n");
    out
}

fn name_box(out: &mut String, x: f64, y: f64, name: &str, client: bool) {
    let fill = if client { "#e7f5ff" } else { "#f1f3f5" };
    let w = 12.0 + 8.0 * name.chars().count() as f64;
    let _ = writeln!(
        out,
        r##"<rect x="{:.1}" y="{y:.1}" width="{w:.1}" height="20" rx="3" fill="{fill}" stroke="#adb5bd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" class="name">{}</text>"##,
        x - w / 2.0,
        y + 14.5,
        esc(name)
    );
}

/// The key to the marks, along the top.
fn legend(out: &mut String) {
    let y = 16.0;
    let mut x = LEFT;
    let mut item = |out: &mut String, color: &str, dash: &str, dropped: bool, text: &str| {
        let end = x + if dropped { 20.0 } else { 30.0 };
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{end:.1}" y2="{y:.1}" stroke="{color}" stroke-width="1.4"{dash}/>"#
        );
        if dropped {
            cross(out, (end, y));
        } else {
            head(out, (end + 2.0, y), (1.0, 0.0), color);
        }
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" fill="#1d2430">{text}</text>"##,
            x + 38.0,
            y + 4.0
        );
        x += 38.0 + 6.5 * text.chars().count() as f64 + 18.0;
    };
    item(out, NODE_MSG, "", false, "between nodes");
    item(out, CLIENT_MSG, "", false, "client request or reply");
    item(out, NODE_MSG, "", true, "dropped, and why");
    item(
        out,
        NODE_MSG,
        r#" stroke-dasharray="5 3""#,
        false,
        "a copy the nemesis added",
    );
    item(
        out,
        CULPRIT,
        "",
        false,
        "the operation that cannot be linearized",
    );
}

/// A drop's ×, centred on `(x, y)`, with why it was dropped above it.
fn dropped(out: &mut String, id: u64, (x, y): (f64, f64), why: &str) {
    let _ = writeln!(out, r#"<g class="drop" data-id="{id}">"#);
    cross(out, (x, y));
    let _ = writeln!(
        out,
        r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="{DROP}" class="halo ids">{}</text></g>"#,
        y - 7.0,
        esc(why)
    );
}

/// A ×, centred on `(x, y)`.
fn cross(out: &mut String, (x, y): (f64, f64)) {
    let r = 4.5;
    let _ = writeln!(
        out,
        r#"<path d="M{:.1},{:.1}L{:.1},{:.1}M{:.1},{:.1}L{:.1},{:.1}" stroke="{DROP}" stroke-width="2.2"/>"#,
        x - r,
        y - r,
        x + r,
        y + r,
        x - r,
        y + r,
        x + r,
        y - r
    );
}

/// One message: a line from its sender to its receiver ending in an arrowhead, or stopping
/// short for a drop (where the × goes: returned, to be drawn over every label); dashed for a
/// copy; labelled along it (into `labels`, drawn over every line).
fn arrow(
    out: &mut String,
    labels: &mut String,
    s: &Selection,
    d: &Drawn,
    (y0, y1): (f64, f64),
    x_of: &dyn Fn(&str) -> f64,
    spacing: f64,
) -> Option<(f64, f64)> {
    let (color, width, bold) = style(s, d);
    let dash = if d.m.duplicate_of.is_some() {
        r#" stroke-dasharray="5 3""#
    } else {
        ""
    };
    let (x0, x1) = (x_of(&d.m.src), x_of(&d.m.dest));
    let weight = if bold { r#" font-weight="bold""# } else { "" };
    let _ = writeln!(out, r#"<g data-id="{}">"#, d.m.id);
    if x0 == x1 {
        // To itself: a loop to the right.
        let _ = writeln!(
            out,
            r#"<path d="M{x0:.1},{y0:.1}h22V{y1:.1}h-14" fill="none" stroke="{color}" stroke-width="{width}"{dash}/>"#
        );
        if !d.m.dropped() {
            head(out, (x0 + 1.0, y1), (-1.0, 0.0), color);
        }
        out.push_str("</g>\n");
        let _ = writeln!(
            labels,
            r#"<text data-id="{}" x="{:.1}" y="{:.1}" fill="{color}" class="halo"{weight}>{}</text>"#,
            d.m.id,
            x0 + 26.0,
            (y0 + y1) / 2.0 + 4.0,
            label(d)
        );
        return d.m.dropped().then_some((x0 + 8.0, y1));
    }
    let (dx, dy) = (x1 - x0, y1 - y0);
    let len = (dx * dx + dy * dy).sqrt();
    let (ux, uy) = (dx / len, dy / len);
    // A drop stops short of its receiver by a third of the lifelines' spacing.
    let reach = if d.m.dropped() {
        (1.0 - spacing / 3.0 / dx.abs()).max(0.5)
    } else {
        1.0
    };
    let (ex, ey) = (x0 + dx * reach, y0 + dy * reach);
    let (lx, ly) = if d.m.dropped() {
        (ex, ey)
    } else {
        (ex - 6.0 * ux, ey - 6.0 * uy)
    };
    let _ = writeln!(
        out,
        r#"<line x1="{x0:.1}" y1="{y0:.1}" x2="{lx:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="{width}"{dash}/>"#
    );
    if !d.m.dropped() {
        head(out, (ex, ey), (ux, uy), color);
    }
    out.push_str("</g>\n");
    // Along the line, upright, a little above it, in the last gap between lifelines before its
    // end: a burst from one node to several then has its labels side by side, and replies
    // converging on one node have theirs one above the other, each on its own row. A drop's
    // ends before its ×, whose reason is written above it.
    let mut angle = dy.atan2(dx).to_degrees();
    let flipped = !(-90.0..=90.0).contains(&angle);
    if flipped {
        angle -= 180.0f64.copysign(angle);
    }
    let (along, anchor) = match &d.m.fate {
        Fate::Dropped { why } => {
            let back = why.chars().count() as f64 * 2.7 + 6.0;
            let along = 1.0 - back / len * (1.0 / reach);
            // Reading left to right, the label ends at that point on a rightward line and
            // starts there on a leftward one.
            (along.max(0.1), if flipped { "start" } else { "end" })
        }
        Fate::Delivered { .. } => {
            let drawn_dx = (ex - x0).abs();
            ((1.0 - spacing / 2.0 / drawn_dx.max(1.0)).max(0.5), "middle")
        }
    };
    let (mx, my) = (x0 + (ex - x0) * along, y0 + (ey - y0) * along);
    let _ = writeln!(
        labels,
        r#"<text data-id="{}" x="{mx:.1}" y="{:.1}" text-anchor="{anchor}" transform="rotate({angle:.1} {mx:.1} {my:.1})" fill="{color}" class="halo"{weight}>{}</text>"#,
        d.m.id,
        my - 3.0,
        label(d)
    );
    d.m.dropped().then_some((ex, ey))
}
