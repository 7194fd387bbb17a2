//! Runs of systems whose messages pass through the bench: the system named, the router's counts.

mod fixture;

use fixture::{Fixture, message_stats, partition, stale_read_with};

const SYSTEM: &str = "maelstrom: examples/maelstrom/lin_kv_single.py";

/// A stale read (see `stale_read_run`) by Maelstrom nodes: results that name the system and
/// count the messages.
fn maelstrom_stale_read() -> Fixture {
    stale_read_with(vec![partition(1.5, 6.0)], |r| {
        r.system = SYSTEM.into();
        r.messages = Some(message_stats());
    })
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
