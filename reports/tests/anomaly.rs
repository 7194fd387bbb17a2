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
