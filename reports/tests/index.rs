//! The runs index: every run, newest first, with what a reader must know before opening one.

mod fixture;

use fixture::{message_stats, stale_read_run};

/// Writes a copy of a stale-read run's results under `root/test/ts`, edited as JSON.
fn add_run(
    root: &std::path::Path,
    test: &str,
    ts: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    let run = stale_read_run();
    let text = std::fs::read_to_string(run.path().join("results.json")).unwrap();
    let mut r: serde_json::Value = serde_json::from_str(&text).unwrap();
    r["test"] = test.into();
    edit(&mut r);
    let dir = root.join(test).join(ts);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("results.json"), r.to_string()).unwrap();
    std::fs::write(dir.join("report.html"), "x").unwrap();
}

/// The index's HTML. The template escapes `/` in attributes as `&#x2f;`, which browsers read
/// as `/`.
fn index(root: &std::path::Path) -> String {
    let path = reports::write_index(root).unwrap();
    std::fs::read_to_string(path)
        .unwrap()
        .replace("&#x2f;", "/")
}

#[test]
fn the_index_lists_every_run_newest_first_with_a_link_to_its_report() {
    let root = tempfile::tempdir().unwrap();
    for (test, ts, started) in [
        ("old", "20261101T000000Z", "2026-11-01T00:00:00.000Z"),
        ("new", "20261122T000000Z", "2026-11-22T00:00:00.000Z"),
    ] {
        add_run(root.path(), test, ts, |r| r["started_at"] = started.into());
    }
    std::fs::create_dir_all(root.path().join("broken/20261115T000000Z")).unwrap();
    std::fs::write(
        root.path().join("broken/20261115T000000Z/results.json"),
        "{",
    )
    .unwrap();
    std::os::unix::fs::symlink("new/20261122T000000Z", root.path().join("latest")).unwrap();

    let html = index(root.path());
    let new = html
        .find("new/20261122T000000Z/report.html")
        .expect("new run linked");
    let old = html
        .find("old/20261101T000000Z/report.html")
        .expect("old run linked");
    assert!(new < old, "newest first");
    assert!(
        html.contains("unreadable"),
        "a broken run is listed, not hidden"
    );
    assert_eq!(
        html.matches("<tr><td class=\"nw\">").count(),
        3,
        "latest is not listed twice"
    );
}

#[test]
fn the_index_shows_node_args_marks_deliberate_bugs_and_interrupted_runs() {
    let root = tempfile::tempdir().unwrap();
    add_run(root.path(), "buggy", "20261101T000000Z", |r| {
        r["node_args"] = serde_json::json!(["--unsafe-read-local"]);
        r["interrupted"] = true.into();
    });
    add_run(root.path(), "plain", "20261102T000000Z", |r| {
        r["node_args"] = serde_json::json!(["--verbose"]);
    });
    let html = index(root.path());
    assert!(html.contains("<th>node args</th>"));
    assert!(
        html.contains(
            "<span class=\"badge interrupted\">interrupted</span></td><td class=\"nw\">buggy</td>"
        ),
        "{html}"
    );
    assert!(
        html.contains("<td class=\"bug\">--unsafe-read-local (deliberate bug)</td>"),
        "{html}"
    );
    assert!(html.contains("<td>--verbose</td>"), "{html}");
    assert_eq!(html.matches("badge interrupted").count(), 1, "{html}");
}

#[test]
fn the_index_names_the_system_and_its_messages_per_operation_where_counted() {
    let root = tempfile::tempdir().unwrap();
    add_run(root.path(), "maelstrom", "20261102T000000Z", |r| {
        r["system"] = "maelstrom: lin_kv.py".into();
        r["messages"] = serde_json::to_value(message_stats()).unwrap();
    });
    add_run(root.path(), "kvnode", "20261101T000000Z", |_| {});
    let html = index(root.path());
    assert!(html.contains("<th>system</th>") && html.contains("<th>msgs/op</th>"));
    assert!(
        html.contains("<td class=\"nw\">maelstrom</td><td>maelstrom: lin_kv.py</td>"),
        "{html}"
    );
    assert!(html.contains("<td class=\"n\">12.50</td>"), "{html}");
    // A run without message counts (every kvnode run) has an empty cell.
    assert!(
        html.contains("<td class=\"nw\">kvnode</td><td>kvnode</td>"),
        "{html}"
    );
    assert_eq!(html.matches("<td class=\"n\"></td>").count(), 1, "{html}");
}

#[test]
fn runs_recorded_before_the_newer_fields_still_render_in_the_index_and_as_a_report() {
    let root = tempfile::tempdir().unwrap();
    let old = |r: &mut serde_json::Value| {
        let fields = r.as_object_mut().unwrap();
        for new in [
            "system",
            "cas_miss",
            "service_time",
            "node_args",
            "interrupted",
            "started_at",
        ] {
            assert!(fields.remove(new).is_some(), "{new} is in today's results");
        }
    };
    add_run(root.path(), "old", "20261101T000000Z", old);
    // Such a run's node args are in its config.toml only.
    let config =
        "seed = 1\nnode_args = [\"--unsafe-read-local\"]\n\n[profile]\nname = \"register\"\n";
    std::fs::write(root.path().join("old/20261101T000000Z/config.toml"), config).unwrap();
    let html = index(root.path());
    assert!(!html.contains("unreadable"), "{html}");
    assert!(html.contains("<td class=\"nw\">old</td>"), "{html}");
    assert!(
        html.contains("<td class=\"bug\">--unsafe-read-local (deliberate bug)</td>"),
        "{html}"
    );

    // And its report renders, with service time computed from the history.
    let run = stale_read_run();
    let path = run.path().join("results.json");
    let mut r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    old(&mut r);
    std::fs::write(&path, r.to_string()).unwrap();
    let page = run.render();
    assert!(page.contains("node args: none"), "{page}");
    std::fs::write(run.path().join("config.toml"), config).unwrap();
    let page = run.render();
    assert!(
        page.contains("nodes ran with --unsafe-read-local: a deliberate bug"),
        "{page}"
    );
    assert!(
        page.contains("<td class=\"l\">read</td><td>2</td><td></td><td>0</td><td>0</td><td>-</td><td>-</td><td>-</td><td>-</td><td>1.00</td>"),
        "{page}"
    );
}

/// A comparison's page is listed, and its sides' runs with the other runs.
#[test]
fn the_index_lists_comparisons_and_their_sides_runs() {
    let root = tempfile::tempdir().unwrap();
    add_run(root.path(), "solo", "20261101T000000Z", |_| {});
    let compare = root.path().join("compare/duel/20261120T000000Z");
    std::fs::create_dir_all(&compare).unwrap();
    std::fs::write(compare.join("compare.html"), "x").unwrap();
    for side in ["paxos", "zab"] {
        add_run(
            &root.path().join("compare/duel"),
            "20261120T000000Z",
            side,
            |r| r["test"] = "duel".into(),
        );
    }
    let html = index(root.path());
    assert!(html.contains("Comparisons"), "{html}");
    assert!(
        html.contains("compare/duel/20261120T000000Z/compare.html"),
        "{html}"
    );
    assert!(html.contains("paxos, zab"), "{html}");
    for side in ["paxos", "zab"] {
        assert!(
            html.contains(&format!("compare/duel/20261120T000000Z/{side}/report.html")),
            "{side}: {html}"
        );
    }
    assert!(html.contains("solo/20261101T000000Z/report.html"), "{html}");
    assert!(html.contains("3 runs"), "{html}");
}
