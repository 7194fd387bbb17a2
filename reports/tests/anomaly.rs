//! The anomaly section: every invalid key, one time base, and what became of the missed write.

mod fixture;

use fixture::{Fixture, kill, one_way, partition, png_size, stale_read_run, stale_read_with};

#[test]
fn every_time_in_the_anomaly_section_is_seconds_since_the_start_to_the_microsecond() {
    let html = stale_read_run().render();
    let section = &html[html.find("id=\"anomaly\"").unwrap()..];
    let section = &section[..section.find("</section>").unwrap()];
    // The operations table.
    assert!(
        section.contains("<td class=\"t\">3.000000 s</td><td class=\"t\">3.002000 s</td>"),
        "{section}"
    );
    // The faults in force.
    assert!(
        section.contains(
            "In force while the impossible operation ran: partition halves (n1 n2 | n3 n4 n5) \
             from 1.500000 s to 6.000000 s."
        ),
        "{section}"
    );
    // The node log lines, stamped in wall-clock time, placed with results.started_at.
    assert!(
        section.contains("[   1.600000 s n1] 2026-11-23T10:00:01.600Z  WARN partition 3"),
        "{section}"
    );
    assert!(
        section.contains("node log lines from 1.000000 s to 4.002000 s"),
        "{section}"
    );
    // The checker's own sentence uses the same base.
    assert!(section.contains("3.000000 s"), "{section}");
}

#[test]
fn the_missed_write_is_named_with_each_fault_that_began_before_the_stale_read() {
    let html = stale_read_with(vec![partition(1.5, 6.0), kill("n1", 2.5, 2.8)], |_| {}).render();
    assert!(
        html.contains(
            "The write of &quot;v2&quot; by process 1 acknowledged at 2.010000 s is missing; it \
             was acknowledged during partition halves (n1 n2 | n3 n4 n5), which began at \
             1.500000 s and ended at 6.000000 s."
        ),
        "{html}"
    );
    assert!(
        html.contains(
            "The write of &quot;v2&quot; by process 1 acknowledged at 2.010000 s is missing after \
             kill n1 began at 2.500000 s, before the read invoked at 3.000000 s."
        ),
        "{html}"
    );
    assert!(
        html.contains("class=\"missed\"><td>#1</td>"),
        "the missed write is marked in the table: {html}"
    );
}

#[test]
fn a_missed_write_with_no_fault_in_between_says_so() {
    // The only fault ended before the write was acknowledged.
    let html = stale_read_with(vec![one_way(0.5, 1.0)], |_| {}).render();
    assert!(
        html.contains(
            "The write of &quot;v2&quot; by process 1 acknowledged at 2.010000 s is missing, and \
             no fault began or was in force between its acknowledgement and the read invoked at \
             3.000000 s."
        ),
        "{html}"
    );
}

#[test]
fn the_fault_starts_before_the_stale_read_are_marked_on_the_timeline() {
    // The marks get a band of their own above the lanes.
    let marked = stale_read_with(vec![kill("n1", 2.5, 2.8)], |_| {});
    let unmarked = stale_read_with(vec![one_way(0.5, 1.0)], |_| {});
    let height = |f: &Fixture| {
        reports::render(f.path()).unwrap();
        png_size(&f.path().join("anomaly.png")).1
    };
    assert!(height(&marked) > height(&unmarked));
}

#[test]
fn every_invalid_key_is_on_the_page_the_earliest_drawn_in_full() {
    let run = Fixture::new(
        "two-keys",
        &[
            (0, "write", "k1", "v1", 100.0, 110.0, "ok"),
            (1, "write", "k1", "v2", 2000.0, 2010.0, "ok"),
            (2, "read", "k1", "v1", 3000.0, 3002.0, "ok"),
            (3, "write", "k3", "a", 5000.0, 5010.0, "ok"),
            (4, "write", "k3", "b", 6000.0, 6010.0, "ok"),
            (5, "read", "k3", "a", 7000.0, 7003.0, "ok"),
            (6, "read", "k2", "", 3100.0, 3101.0, "ok"),
        ],
        vec![partition(4.0, 8.0)],
    );
    let html = run.render();
    assert!(
        html.contains("INVALID: not linearizable (2 of 3 keys)"),
        "{html}"
    );
    assert_eq!(
        html.matches("alt=\"timeline of the operations").count(),
        1,
        "one drawing, of the earliest"
    );
    let first = html
        .find("Anomaly: key k1 is not linearizable")
        .expect("k1 first");
    let other = html
        .find("<details id=\"anomaly-1\" class=\"key\">")
        .expect("k3 folded");
    assert!(first < other);
    let k3 = &html[other..];
    let k3 = &k3[..k3.find("</details>").unwrap()];
    assert!(
        k3.contains("<summary>key k3: read -&gt; &quot;a&quot; by process 5, invoked at 7.000000 s</summary>"),
        "{k3}"
    );
    assert!(
        k3.contains("read of k3 by process 5"),
        "its explanation: {k3}"
    );
    assert!(
        k3.contains("is missing; it was acknowledged during partition halves (n1 n2 | n3 n4 n5)"),
        "{k3}"
    );
    assert!(
        k3.contains("<td class=\"t\">7.000000 s</td><td class=\"t\">7.003000 s</td>"),
        "its operations: {k3}"
    );
    assert!(k3.contains("class=\"culprit\""), "{k3}");
}

/// The anomaly section of a page: from its start to the end of its `<section>`.
fn anomaly_section(html: &str) -> &str {
    let section = &html[html.find("id=\"anomaly\"").unwrap()..];
    &section[..section.find("</section>").unwrap()]
}

/// Every key's anomaly in a run, for editing what the checker found.
fn anomalies(r: &mut reports::RunResults) -> impl Iterator<Item = &mut checker::Anomaly> {
    r.checker.keys.iter_mut().filter_map(|k| k.anomaly.as_mut())
}

#[test]
fn the_core_comes_first_with_its_sentence_its_timeline_and_its_operations() {
    let run = stale_read_run();
    let report = reports::render(run.path()).unwrap();
    let html = std::fs::read_to_string(&report.html).unwrap();
    let section = anomaly_section(&html);
    // The stale read and the two writes: without either write the read could have happened.
    let sentence = section
        .find("These 3 operations cannot be ordered, and none of them can be left out:")
        .expect(section);
    let core_picture = section
        .find("alt=\"timeline of the core of k1\"")
        .expect("the core drawn");
    let full_picture = section
        .find("alt=\"timeline of the operations on k1 around the anomaly\"")
        .expect("the operations around it drawn");
    assert!(sentence < core_picture && core_picture < full_picture);
    // Its table: the three operations, by invocation, in the section's time base.
    let core = &section[sentence..full_picture];
    let rows: Vec<&str> = core.split("<tr").skip(2).collect();
    assert_eq!(rows.len(), 3, "{core}");
    for (row, (op, text, invoked)) in rows.iter().zip([
        ("#0", "write &quot;v1&quot;", "0.100000 s"),
        ("#1", "write &quot;v2&quot;", "2.000000 s"),
        ("#2", "read -&gt; &quot;v1&quot;", "3.000000 s"),
    ]) {
        assert!(row.contains(&format!("<td>{op}</td>")), "{row}");
        assert!(row.contains(text), "{row}");
        assert!(
            row.contains(&format!("<td class=\"t\">{invoked}</td>")),
            "{row}"
        );
    }
    assert!(
        core.contains("Found by shrinking the key&#x27;s 3 operations"),
        "{core}"
    );
    let (w, _) = png_size(&run.path().join("anomaly-core.png"));
    assert_eq!(w, 1200);
    assert!(report.plots.iter().any(|p| p.ends_with("anomaly-core.png")));
}

#[test]
fn an_anomaly_without_a_core_renders_as_before() {
    // A run recorded before the checker shrank counterexamples, or with shrinking off.
    let run = stale_read_with(vec![partition(1.5, 6.0)], |r| {
        for a in anomalies(r) {
            a.core = None;
        }
    });
    let html = run.render();
    let section = anomaly_section(&html);
    assert!(section.contains("read of k1 by process 2"), "{section}");
    assert!(
        section.contains("alt=\"timeline of the operations on k1 around the anomaly\""),
        "{section}"
    );
    assert!(section.contains("class=\"culprit\""), "{section}");
    assert!(!section.contains("The core"), "{section}");
    assert!(!section.contains("cannot be ordered"), "{section}");
    assert!(!run.path().join("anomaly-core.png").exists());
}

#[test]
fn a_core_says_when_it_may_not_be_the_smallest_and_when_it_is_one_operation() {
    let run = stale_read_with(vec![partition(1.5, 6.0)], |r| {
        for a in anomalies(r) {
            a.core.as_mut().unwrap().minimal = false;
        }
    });
    assert!(run.render().contains(
        "These 3 operations cannot be ordered (shrinking ran out of time: perhaps not the \
         smallest):"
    ));
    let run = stale_read_with(vec![partition(1.5, 6.0)], |r| {
        for a in anomalies(r) {
            a.core.as_mut().unwrap().ops.drain(..2);
        }
    });
    let html = run.render();
    assert!(
        html.contains("This operation cannot happen on its own:"),
        "{html}"
    );
}

#[test]
fn each_folded_key_shows_its_core() {
    let run = Fixture::new(
        "two-keys",
        &[
            (0, "write", "k1", "v1", 100.0, 110.0, "ok"),
            (1, "write", "k1", "v2", 2000.0, 2010.0, "ok"),
            (2, "read", "k1", "v1", 3000.0, 3002.0, "ok"),
            (3, "write", "k3", "a", 5000.0, 5010.0, "ok"),
            (4, "read", "k3", "a", 5500.0, 5501.0, "ok"),
            (5, "write", "k3", "b", 6000.0, 6010.0, "ok"),
            (6, "read", "k3", "a", 7000.0, 7003.0, "ok"),
        ],
        vec![partition(4.0, 8.0)],
    );
    let html = run.render();
    let k3 = &html[html
        .find("<details id=\"anomaly-1\" class=\"key\">")
        .unwrap()..];
    let k3 = &k3[..k3.find("</details>").unwrap()];
    let sentence = k3
        .find("These 3 operations cannot be ordered, and none of them can be left out:")
        .expect(k3);
    let around = k3.find("Around the failure").expect(k3);
    let core = &k3[sentence..around];
    assert!(
        core.contains("alt=\"timeline of the core of k3\""),
        "{core}"
    );
    assert!(run.path().join("anomaly-1-core.png").exists());
    // The core leaves out the read that saw "a" in time.
    assert!(!core.contains("<td>#4</td>"), "{core}");
    for op in ["#3", "#5", "#6"] {
        assert!(core.contains(&format!("<td>{op}</td>")), "{op}: {core}");
    }
}

#[test]
fn a_cas_that_found_another_value_is_a_cas_miss_in_the_anomaly_tables() {
    // The CAS expected "a", which was there: its miss cannot be ordered after the write.
    let run = Fixture::new(
        "cas-miss",
        &[
            (0, "write", "k1", "a", 100.0, 110.0, "ok"),
            (1, "cas", "k1", "a", 200.0, 210.0, "miss"),
        ],
        vec![],
    );
    let html = run.render();
    let section = anomaly_section(&html);
    assert_eq!(
        section
            .matches("<span class=\"badge b-miss\">CAS miss</span>")
            .count(),
        2,
        "in the core's table and in the table around the failure: {section}"
    );
    assert!(!section.contains("b-fail"), "{section}");
}

#[test]
fn an_operation_acknowledged_after_the_culprit_began_gets_no_missed_write_story() {
    // A lock's two holders overlap: the "missed" acquire completed after the culprit was
    // invoked, so what became of it "before" the culprit is no story to tell.
    let html = stale_read_with(vec![partition(1.5, 6.0)], |r| {
        for key in &mut r.checker.keys {
            if let Some(a) = key.anomaly.as_mut()
                && let Some(m) = a.missed.as_mut()
            {
                m.complete = Some(a.culprit.invoke + 1_000_000);
            }
        }
    })
    .render();
    assert!(!html.contains("is missing"), "{html}");
}
