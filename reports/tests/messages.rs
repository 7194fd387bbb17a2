//! Runs of systems whose messages pass through the bench: the system named, the router's counts,
//! and the Lamport diagram of the messages around the earliest anomaly.

mod fixture;

use fixture::{Fixture, assert_self_contained, message, message_stats, partition, stale_read_with};

const SYSTEM: &str = "maelstrom: examples/maelstrom/lin_kv_single.py";

/// A stale read (see `stale_read_run`) by Maelstrom nodes: results that name the system and
/// count the messages.
fn maelstrom_stale_read() -> Fixture {
    stale_read_with(vec![partition(1.5, 6.0)], |r| {
        r.system = SYSTEM.into();
        r.messages = Some(message_stats());
    })
}

/// Every operation of the stale-read run as messages: each client's request to a node (the
/// read's to n3, on the other side of the partition), the node's replication to the two others
/// (dropped across the partition), their acknowledgements and the reply. One replication is
/// duplicated.
fn stale_read_messages() -> Vec<String> {
    // (client, invoked ms, completed ms, node, request, reply)
    let ops = [
        ("c1", 100.0, 110.0, "n1", "write", "write_ok"),
        ("c2", 2000.0, 2010.0, "n1", "write", "write_ok"),
        ("c3", 3000.0, 3002.0, "n3", "read", "read_ok"),
        ("c4", 3100.0, 3101.0, "n1", "read", "read_ok"),
        ("c6", 4100.0, 4105.0, "n2", "cas", "error"),
    ];
    let mut lines = Vec::new();
    let mut id = 0;
    let mut next = || {
        id += 1;
        id
    };
    let in_partition = |a: &str, b: &str, t: f64| {
        let side = |n: &str| ["n1", "n2"].contains(&n);
        (1500.0..6000.0).contains(&t) && side(a) != side(b)
    };
    for (c, inv, comp, node, req, reply) in ops {
        let sent = inv + 0.2;
        lines.push(message(
            next(),
            sent,
            (c, node),
            req,
            (Some(1), None),
            Ok(0.1),
        ));
        for peer in ["n1", "n2", "n3"].into_iter().filter(|p| *p != node) {
            let t = sent + 0.2;
            let fate = if in_partition(node, peer, t) {
                Err("partition")
            } else {
                Ok(0.3)
            };
            lines.push(message(
                next(),
                t,
                (node, peer),
                "replicate",
                (Some(7), None),
                fate,
            ));
            if fate.is_ok() {
                lines.push(message(
                    next(),
                    t + 0.4,
                    (peer, node),
                    "replicate_ok",
                    (Some(2), Some(7)),
                    Ok(0.3),
                ));
            }
        }
        lines.push(message(
            next(),
            comp - 0.3,
            (node, c),
            reply,
            (Some(9), Some(1)),
            Ok(0.1),
        ));
    }
    // A copy the nemesis added of the first replication of the write of "v2".
    let mut copy: serde_json::Value = serde_json::from_str(&lines[7]).unwrap();
    copy["duplicate_of"] = copy["id"].clone();
    copy["id"] = 1000.into();
    copy["delay_ns"] = 900_000.into();
    lines.push(copy.to_string());
    lines.sort_by_key(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["t_ns"].as_u64());
    lines
}

#[test]
fn the_report_names_the_system_under_test_and_kvnode_for_runs_that_did_not() {
    // The template escapes `/` as `&#x2f;`, which browsers read as `/`.
    let html = maelstrom_stale_read().render().replace("&#x2f;", "/");
    let header = &html[..html.find("<main>").unwrap()];
    assert!(
        header.contains(&format!("system <b>{SYSTEM}</b>")),
        "{header}"
    );
    assert!(html.contains(&format!("System under test: <code>{SYSTEM}</code>")));

    // A run recorded before the system was named: kvnode, and no Messages section.
    let old = stale_read_with(vec![], |_| {});
    let path = old.path().join("results.json");
    let mut r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let fields = r.as_object_mut().unwrap();
    assert!(fields.remove("system").is_some());
    assert!(!fields.contains_key("messages"), "absent unless counted");
    std::fs::write(&path, r.to_string()).unwrap();
    let html = old.render();
    assert!(html.contains("system <b>kvnode</b>"), "{html}");
    assert!(!html.contains("id=\"messages\""));
    assert!(!html.contains("node messages per operation"));
}

#[test]
fn a_run_with_message_counts_has_a_messages_section_led_by_messages_per_operation() {
    let html = maelstrom_stale_read().render();
    assert!(html.contains(
        "<div class=\"fact\"><b>12.50</b><span>node messages per operation</span></div>"
    ));
    let section = &html[html
        .find("<section id=\"messages\">")
        .expect("a Messages section")..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(
        section.contains(
            "<p class=\"per-op\"><b>12.50</b> node-to-node messages per completed client \
             operation (75 between nodes in all)</p>"
        ),
        "{section}"
    );
    for fact in [
        "<b>1300</b><span>messages</span>",
        "<b>1290</b><span>delivered</span>",
        "<b>10</b><span>dropped (0.8%)</span>",
        "<b>4</b><span>duplicated</span>",
    ] {
        assert!(section.contains(fact), "{fact} in {section}");
    }
    // Per node in node order, n2 before n10.
    let n2 = section
        .find("<tr><td class=\"l\">n2</td><td>300</td><td>310</td></tr>")
        .expect("n2's row");
    let n10 = section
        .find("<tr><td class=\"l\">n10</td><td>1</td><td>2</td></tr>")
        .expect("n10's row");
    assert!(n2 < n10);
    // Per type, most first; equal counts by name.
    let rows: Vec<usize> = [
        "<td class=\"l\">replicate</td><td>60</td><td>4.6%</td>",
        "<td class=\"l\">read</td><td>12</td>",
        "<td class=\"l\">read_ok</td><td>12</td>",
        "<td class=\"l\">write</td><td>3</td>",
    ]
    .iter()
    .map(|row| {
        section
            .find(row)
            .unwrap_or_else(|| panic!("{row} in {section}"))
    })
    .collect();
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "{section}");
}

#[test]
fn an_invalid_run_with_its_messages_draws_them_around_the_anomaly_inline_and_as_a_file() {
    let run = maelstrom_stale_read();
    run.messages(&stale_read_messages());
    let report = reports::render(run.path()).unwrap();
    let html = std::fs::read_to_string(&report.html).unwrap();
    assert_self_contained(&html);

    // Inline, in the anomaly section, before the node logs.
    let anomaly = &html[html.find("id=\"anomaly\"").unwrap()..];
    let anomaly = &anomaly[..anomaly.find("</section>").unwrap()];
    let svg_at = anomaly
        .find("<div class=\"lamport\"><svg class=\"lamport\"")
        .expect("the diagram inline");
    assert!(svg_at < anomaly.find("node log lines").unwrap());
    assert!(anomaly.contains("<h3>Messages around the failure</h3>"));
    // The window: from 200 ms before the core's first operation (invoked at 0.1 s) to 200 ms
    // after the stale read completed (3.002 s): every message of the run but the last
    // operation's.
    assert!(
        anomaly.contains(
            "Messages from 0.000000 s to 3.202000 s around the read -&gt; &quot;v1&quot; by \
             process 2 (client c3) that cannot be linearized (red: its time on c3&#x27;s \
             lifeline, its request and reply; black: the rest of the core; purple: the write it \
             missed)."
        ),
        "{anomaly}"
    );
    assert!(anomaly.contains("21 messages drawn."), "{anomaly}");
    assert!(anomaly.contains("<a href=\"messages.svg\">messages.svg</a>"));

    // The read's request and reply in red, the drop across the partition crossed, the copy.
    let svg = std::fs::read_to_string(report.messages_svg.as_ref().unwrap()).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"lamport\""));
    let red_arrows = svg
        .split("<g data-id=")
        .skip(1)
        .map(|g| &g[..g.find("</g>").unwrap()])
        .filter(|g| g.contains("<line") && g.contains("stroke=\"#d62728\""))
        .count();
    assert_eq!(red_arrows, 2, "{svg}");
    assert!(svg.contains(">read<tspan class=\"ids\"> #1</tspan>"));
    assert!(svg.contains(">read_ok<tspan class=\"ids\"> #9 ↩1</tspan>"));
    // Across the partition: the writes' replication to n3 and the read's from it.
    assert_eq!(
        svg.matches("class=\"halo ids\">partition</text>").count(),
        4,
        "{svg}"
    );
    assert!(svg.contains("(copy)"));
    assert!(svg.contains("c3 #2 read -&gt; &quot;v1&quot;"), "{svg}");
    assert!(
        svg.contains("partition halves (n1 n2 | n3 n4 n5) from 1.500000 s"),
        "{svg}"
    );
    // The page's copy is the file's, without the namespace HTML does not need.
    assert!(html.contains(&svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)));
}

#[test]
fn a_crowded_window_says_how_many_messages_it_left_out_and_a_torn_line_is_noted() {
    let run = maelstrom_stale_read();
    let mut lines = stale_read_messages();
    // Gossip every millisecond between 2.5 s and 2.9 s: 400 more messages in the window.
    for i in 0..400u64 {
        let t = 2500.0 + i as f64;
        lines.push(message(
            5000 + i,
            t,
            ("n4", "n5"),
            "gossip",
            (None, None),
            Ok(0.1),
        ));
    }
    lines.sort_by_key(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["t_ns"].as_u64());
    lines.push(r#"{"id":9999,"t_ns":9000000000,"src":"n1""#.to_owned());
    run.messages(&lines);
    let html = run.render();
    assert!(
        html.contains("150 messages drawn; 271 more in this window not drawn."),
        "{html}"
    );
    let torn = lines.len();
    assert!(
        html.contains(&format!(
            "1 line of messages.jsonl was not a message and was skipped (line {torn}: "
        )),
        "{html}"
    );
}

#[test]
fn a_valid_run_or_one_without_messages_has_no_diagram() {
    // Without messages.jsonl.
    let run = maelstrom_stale_read();
    let report = reports::render(run.path()).unwrap();
    assert!(report.messages_svg.is_none());
    assert!(!run.path().join("messages.svg").exists());
    let html = std::fs::read_to_string(&report.html).unwrap();
    assert!(!html.contains("<svg"));

    // Valid, with messages.jsonl.
    let run = Fixture::with(
        "fine",
        &[(0, "write", "k", "a", 10.0, 20.0, "ok")],
        vec![],
        |r| r.messages = Some(message_stats()),
    );
    run.messages(&[message(
        1,
        10.1,
        ("c1", "n1"),
        "write",
        (Some(1), None),
        Ok(0.1),
    )]);
    let report = reports::render(run.path()).unwrap();
    assert!(report.messages_svg.is_none());
    let html = std::fs::read_to_string(&report.html).unwrap();
    assert!(!html.contains("<svg") && html.contains("id=\"messages\""));
}
