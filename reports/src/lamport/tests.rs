use checker::Anomaly;

use super::*;
use crate::messages::Fate;
use crate::results::FaultWindow;

const MS: u64 = 1_000_000;

/// An operation as the checker summarises it; times in milliseconds.
fn op(
    index: usize,
    process: u64,
    text: &str,
    invoke_ms: u64,
    complete_ms: Option<u64>,
) -> serde_json::Value {
    serde_json::json!({
        "index": index, "process": process, "f": "read", "value": null, "outcome": "ok",
        "invoke": invoke_ms * MS, "complete": complete_ms.map(|c| c * MS),
        "invoke_line": 1, "complete_line": 2, "text": text,
    })
}

/// A stale read: process 2 (client c3) reads "v1" from 300 to 310 ms after process 1's write
/// of "v2" (200 to 210 ms) was acknowledged; the core is the two writes and the read.
fn stale_read() -> Anomaly {
    let culprit = op(5, 2, "read -> \"v1\" <stale>", 300, Some(310));
    let missed = op(3, 1, "write \"v2\"", 200, Some(210));
    serde_json::from_value(serde_json::json!({
        "explanation": "stale",
        "culprit": culprit,
        "missed": missed,
        "prefix_len": 2,
        "prefix_tail": [],
        "value_after_prefix": "v2",
        "around": [culprit],
        "core": {
            "ops": [op(1, 0, "write \"v1\"", 100, Some(110)), missed, culprit],
            "minimal": true, "checks": 3, "elapsed_ms": 1.0,
        },
    }))
    .unwrap()
}

fn msg(id: u64, t_ms: f64, src: &str, dest: &str, kind: &str) -> Message {
    Message {
        id,
        t_ns: (t_ms * MS as f64) as u64,
        src: src.into(),
        dest: dest.into(),
        kind: kind.into(),
        msg_id: None,
        in_reply_to: None,
        fate: Fate::Delivered { delay_ns: MS / 10 },
        duplicate_of: None,
        code: None,
    }
}

fn with_ids(mut m: Message, msg_id: Option<u64>, in_reply_to: Option<u64>) -> Message {
    m.msg_id = msg_id;
    m.in_reply_to = in_reply_to;
    m
}

/// The culprit's request and reply, the missed write's, and a node message between.
fn around_the_read() -> Vec<Message> {
    vec![
        with_ids(msg(1, 200.5, "c2", "n1", "write"), Some(1), None),
        with_ids(msg(2, 201.0, "n1", "n2", "replicate"), Some(7), None),
        with_ids(msg(3, 205.0, "n1", "c2", "write_ok"), Some(8), Some(1)),
        with_ids(msg(4, 300.5, "c3", "n3", "read"), Some(1), None),
        Message {
            fate: Fate::Dropped {
                why: "partition".into(),
            },
            ..with_ids(msg(5, 300.7, "n3", "n1", "replicate"), Some(2), None)
        },
        with_ids(msg(6, 301.0, "n3", "c3", "read_ok"), Some(3), Some(1)),
    ]
}

fn selection(messages: Vec<Message>, cap: usize) -> Selection {
    let mut s = Selector::new(Window::around(&stale_read()), cap);
    for m in messages {
        s.offer(m);
    }
    s.finish()
}

#[test]
fn clients_are_named_as_the_bench_names_them() {
    assert_eq!(client(0), "c1");
    assert_eq!(client(2), "c3");
    assert_eq!(client(1_000_004), "c1000005");
    assert!(is_client("c0") && is_client("c12"));
    assert!(!is_client("n1") && !is_client("c") && !is_client("client") && !is_client("c1x"));
}

#[test]
fn the_window_runs_from_before_the_core_to_after_the_impossible_operation() {
    let w = Window::around(&stale_read());
    // From 100 ms to 310 ms, a tenth of that on either side.
    assert_eq!((w.from, w.to), (79 * MS, 331 * MS));
    let roles: Vec<_> = w
        .focus
        .iter()
        .map(|f| (f.index, f.role, f.client.as_str()))
        .collect();
    assert_eq!(
        roles,
        [
            (5, Role::Culprit, "c3"),
            (1, Role::Core, "c1"),
            (3, Role::Missed, "c2")
        ]
    );

    // Without a core, the impossible operation alone, with the smallest margin.
    let mut a = stale_read();
    a.core = None;
    let w = Window::around(&a);
    assert_eq!((w.from, w.to), (298 * MS, 312 * MS));
    assert_eq!(w.focus.len(), 1);
}

#[test]
fn the_selection_claims_each_operation_s_request_and_reply_and_keeps_the_window_only() {
    let mut messages = around_the_read();
    // Before the window, and after it.
    messages.push(msg(7, 50.0, "n1", "n2", "early"));
    messages.push(msg(8, 400.0, "n1", "n2", "late"));
    // Another client's request during the read: not the read's.
    messages.push(with_ids(msg(9, 300.6, "c4", "n3", "read"), Some(1), None));
    // A reply to c3 of another request id (an earlier operation's, late): not the read's.
    messages.push(with_ids(
        msg(10, 300.8, "n2", "c3", "read_ok"),
        Some(4),
        Some(99),
    ));
    let s = selection(messages, MAX_DRAWN);
    assert_eq!(s.in_window, 8);
    assert_eq!(s.not_drawn(), 0);
    let claimed: Vec<(u64, Option<Role>)> = s
        .drawn
        .iter()
        .map(|d| (d.m.id, d.focus.map(|f| s.window.focus[f].role)))
        .collect();
    assert_eq!(
        claimed,
        [
            (1, Some(Role::Missed)),
            (2, None),
            (3, Some(Role::Missed)),
            (4, Some(Role::Culprit)),
            (9, None),
            (5, None),
            (10, None),
            (6, Some(Role::Culprit)),
        ]
    );
}

#[test]
fn a_reply_that_arrives_after_its_operation_timed_out_is_still_its_own() {
    let mut a = stale_read();
    a.core = None;
    let mut s = Selector::new(Window::around(&a), MAX_DRAWN);
    s.offer(with_ids(msg(1, 300.5, "c3", "n1", "read"), Some(1), None));
    s.offer(with_ids(
        msg(2, 311.0, "n1", "c3", "read_ok"),
        Some(5),
        Some(1),
    ));
    // No ids at all: by its arrival while the operation ran.
    s.offer(msg(3, 305.0, "n1", "c3", "error"));
    let s = s.finish();
    assert!(s.drawn.iter().all(|d| d.focus == Some(0)), "{:?}", s.drawn);
}

#[test]
fn a_crowded_window_keeps_the_core_s_client_messages_and_the_node_messages_nearest_them() {
    let mut messages = around_the_read();
    // A thousand node messages, one every 0.2 ms from 80 ms, and other clients' chatter.
    for i in 0..1000u64 {
        messages.push(msg(100 + i, 80.0 + i as f64 * 0.2, "n4", "n5", "gossip"));
        messages.push(msg(5000 + i, 80.1 + i as f64 * 0.2, "c9", "n5", "read"));
    }
    messages.sort_by_key(|m| m.t_ns);
    let s = selection(messages, 20);
    assert_eq!(s.drawn.len(), 20);
    assert_eq!(s.in_window, 2006);
    assert_eq!(s.not_drawn(), 2006 - 20);
    // Every client message of the core's operations is drawn.
    for id in [1, 3, 4, 6] {
        assert!(
            s.drawn.iter().any(|d| d.m.id == id && d.focus.is_some()),
            "{id}"
        );
    }
    // The rest are node messages, none of the other client's, each within a few tenths of a
    // millisecond of an invocation or a completion of the core.
    let others: Vec<&Drawn> = s.drawn.iter().filter(|d| d.focus.is_none()).collect();
    assert_eq!(others.len(), 16);
    for d in others {
        assert!(!is_client(&d.m.src), "{:?}", d.m);
        assert!(s.window.distance(&d.m) <= MS, "{:?}", d.m);
    }
    // Drawn in time order.
    assert!(
        s.drawn
            .windows(2)
            .all(|w| (w[0].m.t_ns, w[0].m.id) <= (w[1].m.t_ns, w[1].m.id))
    );
}

#[test]
fn the_core_s_client_messages_are_drawn_even_past_the_cap() {
    let s = selection(around_the_read(), 2);
    assert_eq!(s.drawn.len(), 4, "the four client messages of the core");
    assert_eq!(s.not_drawn(), 2);
}

#[test]
fn the_svg_draws_the_impossible_operation_in_red_a_drop_with_a_cross_and_escapes_text() {
    let mut messages = around_the_read();
    messages.push(Message {
        duplicate_of: Some(2),
        ..with_ids(msg(11, 201.5, "n1", "n10", "replicate"), Some(7), None)
    });
    let s = selection(messages, MAX_DRAWN);
    let nodes = [
        "n10".to_owned(),
        "n2".to_owned(),
        "n1".to_owned(),
        "n3".to_owned(),
    ];
    let svg = svg::draw(&s, &nodes, &[]);
    assert!(svg.starts_with("<svg "), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    // The culprit's request and reply, in red.
    for id in [4, 6] {
        let g = group(&svg, id);
        assert!(
            g.contains("<line") && g.contains("stroke=\"#d62728\""),
            "{g}"
        );
        let l = label_of(&svg, id);
        assert!(
            l.contains("fill=\"#d62728\" class=\"halo\" font-weight=\"bold\""),
            "{l}"
        );
    }
    assert!(label_of(&svg, 4).ends_with(">read<tspan class=\"ids\"> #1</tspan>"));
    assert!(label_of(&svg, 6).ends_with(">read_ok<tspan class=\"ids\"> #3 ↩1</tspan>"));
    // Its lifeline segment and name.
    assert!(svg.contains("<rect x=\"") && svg.contains("fill=\"#d62728\" fill-opacity=\"0.85\""));
    assert!(
        svg.contains("c3 #5 read -&gt; &quot;v1&quot; &lt;stale&gt;"),
        "{svg}"
    );
    assert!(!svg.contains("<stale>"));
    // The drop stops short with a cross and says why; the copy is dashed and says so.
    assert!(
        !group(&svg, 5).contains("<polygon"),
        "no arrowhead on a drop: {svg}"
    );
    let cross = svg
        .find("<g class=\"drop\" data-id=\"5\">")
        .expect("a cross");
    let cross = &svg[cross..cross + svg[cross..].find("</g>").unwrap()];
    assert!(
        cross.contains("<path d=\"M") && cross.contains(">partition</text>"),
        "{cross}"
    );
    assert!(group(&svg, 11).contains("stroke-dasharray=\"5 3\""));
    assert!(label_of(&svg, 11).contains("(copy)"));
    // Nodes in their order, then clients.
    let at = |name: &str| {
        svg.find(&format!("class=\"name\">{name}<"))
            .unwrap_or_else(|| panic!("{name}"))
    };
    let order = ["n1", "n2", "n3", "n10", "c1", "c2", "c3"];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{svg}");
}

#[test]
fn the_svg_shades_a_fault_that_overlaps_the_window_and_names_it() {
    let s = selection(around_the_read(), MAX_DRAWN);
    let fault = |kind: &str, label: &str, from_ms: u64, to_ms: u64| FaultWindow {
        fault: serde_json::json!({"kind": kind, "nodes": ["n3"]}),
        label: label.into(),
        start_ns: from_ms * MS,
        end_ns: to_ms * MS,
    };
    let svg = svg::draw(
        &s,
        &[],
        &[
            fault("kill", "kill n3", 250, 900),
            fault("pause", "pause n2", 5, 6),
        ],
    );
    assert!(
        svg.contains("kill n3 from 0.250000 s to 0.900000 s"),
        "{svg}"
    );
    assert!(
        !svg.contains("pause n2"),
        "a fault long before the window: {svg}"
    );
}

/// The label of message `id`, up to its end.
fn label_of(svg: &str, id: u64) -> &str {
    let start = svg
        .find(&format!("<text data-id=\"{id}\""))
        .unwrap_or_else(|| panic!("message {id} labelled"));
    let end = start + svg[start..].find("</text>").unwrap();
    &svg[start..end]
}

/// The lines of message `id`.
fn group(svg: &str, id: u64) -> &str {
    let start = svg
        .find(&format!("<g data-id=\"{id}\">"))
        .unwrap_or_else(|| panic!("message {id} drawn"));
    let end = start + svg[start..].find("</g>").unwrap();
    &svg[start..end]
}
