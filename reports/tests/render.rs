//! Rendering whole run directories: what the page says, what it links, what it leaves out.

mod fixture;

use fixture::{
    Fixture, assert_self_contained, kill, one_way, partition, png_size, stale_read_run,
    stale_read_with,
};
use reports::Quantiles;

#[test]
fn an_invalid_run_leads_with_the_anomaly_its_timeline_and_the_node_logs_of_that_moment() {
    let run = stale_read_run();
    let report = reports::render(run.path()).unwrap();
    let html = std::fs::read_to_string(&report.html).unwrap();
    assert_self_contained(&html);
    assert!(
        html.contains("INVALID: not linearizable (1 of 2 keys)"),
        "{html}"
    );
    // The explanation comes before any plot: the anomaly is the first thing on the page.
    let explanation = html.find("class=\"explanation\"").expect("an explanation");
    let first_plot = html
        .find("alt=\"service time over time\"")
        .expect("a service time plot");
    assert!(explanation < first_plot);
    assert!(
        html.contains("read of k1 by process 2"),
        "the checker's sentence is shown"
    );
    assert!(
        html.contains("class=\"culprit\""),
        "the impossible operation is highlighted"
    );
    // Logs from 2 s before the culprit (invoked at 3.0 s) to 1 s after it completed.
    assert!(html.contains("lost quorum, still serving local reads"));
    assert!(html.contains("became leader at ballot 7"));
    assert!(
        !html.contains("n1 started"),
        "a log line from before the window"
    );
    assert!(
        !html.contains("much later"),
        "a log line from after the window"
    );
    assert!(
        html.contains("partition halves"),
        "the fault table names the fault"
    );

    let names: Vec<_> = report
        .plots
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "latency.png",
            "throughput.png",
            "quantiles.png",
            "anomaly.png",
            "anomaly-core.png"
        ]
    );
    for p in &report.plots {
        let (w, h) = png_size(p);
        assert_eq!(w, 1200, "{}", p.display());
        assert!(h >= 150, "{}", p.display());
    }
}

#[test]
fn a_valid_run_has_no_anomaly_section_and_counts_every_outcome() {
    let run = valid_run_with(|_| {});
    let report = reports::render(run.path()).unwrap();
    let html = std::fs::read_to_string(&report.html).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("VALID: linearizable (5 operations, 1 fault)"));
    assert!(!html.contains("id=\"anomaly\""));
    assert!(!run.path().join("anomaly.png").exists());
    assert_eq!(report.plots.len(), 3);
}

#[test]
fn the_nodes_costs_per_operation_are_shown_and_said_to_be_approximate_after_kills() {
    let run = valid_run_with(|r| {
        r.costs = Some(reports::Costs {
            wal_syncs: 11,
            peer_messages: 23,
            peer_bytes: 2300,
            incarnations: 4,
            cut_short: 1,
            per_op: reports::CostsPerOp {
                wal_syncs: 2.2,
                peer_messages: 4.6,
                peer_bytes: 460.0,
            },
        });
    });
    let html = std::fs::read_to_string(reports::render(run.path()).unwrap().html).unwrap();
    assert!(
        html.contains("<b>2.20</b><span>fsyncs per operation (about"),
        "{html}"
    );
    assert!(html.contains("<b>4.60</b><span>node messages per operation"));
    let without = valid_run_with(|_| {});
    let html = std::fs::read_to_string(reports::render(without.path()).unwrap().html).unwrap();
    assert!(!html.contains("fsyncs per operation"));
}

/// Five operations on one key before a partition at 1 s: a write and a read ok, a CAS that
/// failed, a write whose outcome is unknown and a CAS whose precondition did not hold.
fn valid_run_with(edit: impl FnOnce(&mut reports::RunResults)) -> Fixture {
    Fixture::with(
        "fine",
        &[
            (0, "write", "k", "a", 10.0, 20.0, "ok"),
            (1, "read", "k", "a", 30.0, 31.0, "ok"),
            (2, "cas", "k", "z", 40.0, 41.0, "fail"),
            (3, "write", "k", "b", 50.0, 4000.0, "info"),
            (4, "cas", "k", "y", 60.0, 62.0, "miss"),
        ],
        vec![partition(1.0, 2.0)],
        edit,
    )
}

#[test]
fn a_cas_miss_is_counted_apart_from_failures_and_as_an_answered_request() {
    let run = valid_run_with(|_| {});
    let report = reports::render(run.path()).unwrap();
    let html = std::fs::read_to_string(&report.html).unwrap();
    // Per function: ok, CAS miss, fail, info.
    assert!(
        html.contains("<td class=\"l\">cas</td><td>0</td><td>1</td><td>1</td><td>0</td>"),
        "{html}"
    );
    // Availability: the write, the read and the CAS miss were answered; the failed CAS and the
    // write of unknown outcome were not.
    assert!(
        html.contains(
            "<td class=\"l\">no fault in force</td><td>9.0</td><td>5</td><td>3</td><td>60.0%</td>"
        ),
        "{html}"
    );
    assert!(html.contains("a CAS miss (the store answered that the value was not the expected one), so both count as available"));
    // Throughput: one panel per outcome, CAS misses apart from failures (ok, CAS miss, fail,
    // info).
    let throughput = run.path().join("throughput.png");
    assert_eq!(png_size(&throughput), (1200, 60 + 230 * 4));
}

#[test]
fn the_summary_tile_has_one_labelled_number_per_outcome_that_does_not_wrap() {
    let html = valid_run_with(|_| {}).render();
    assert!(
        html.contains(
            "<div class=\"fact outcomes\"><div><b>2</b><span>ok</span></div>\
             <div><b>1</b><span>CAS miss</span></div><div><b>1</b><span>fail</span></div>\
             <div><b>1</b><span>info</span></div></div>"
        ),
        "{html}"
    );
    assert!(html.contains(".outcomes > div { white-space: nowrap; }"));
    assert!(!html.contains("ok / fail / info"));
}

#[test]
fn the_latency_table_shows_latency_from_intended_start_and_service_time_with_their_meaning() {
    let q = |p50_ms: f64| Quantiles {
        count: 3,
        p50_ms,
        p95_ms: p50_ms * 2.0,
        p99_ms: p50_ms * 3.0,
        max_ms: p50_ms * 4.0,
    };
    let html = valid_run_with(|r| {
        r.latency.insert("write".into(), q(40.0));
        r.service_time.insert("write".into(), q(1.5));
    })
    .render();
    assert!(html.contains(">latency from intended start (ms)</th>"));
    assert!(html.contains(">service time (ms)</th>"));
    assert!(
        html.contains(
            "<td class=\"l\">write</td><td>1</td><td></td><td>0</td><td>1</td>\
             <td>40.00</td><td>80.00</td><td>120.00</td><td>160.00</td>\
             <td>1.50</td><td>3.00</td><td>4.50</td><td>6.00</td></tr>"
        ),
        "{html}"
    );
    // A function that results.json has no figures for (a run that recorded service time).
    assert!(
        html.contains("<td class=\"l\">read</td><td>1</td><td></td><td>0</td><td>0</td><td>-</td>")
    );
    assert!(html.contains("<b>latency from intended start</b>: from the instant the workload's schedule meant the operation to start"));
    assert!(html.contains("<b>service time</b>: from the invocation to the completion"));
}

#[test]
fn service_time_comes_from_the_history_for_runs_that_did_not_record_it() {
    let html = valid_run_with(|_| {}).render();
    // The CAS that missed took 2 ms and the one that failed 1 ms; no latency figures recorded.
    assert!(
        html.contains(
            "<td class=\"l\">cas</td><td>0</td><td>1</td><td>1</td><td>0</td>\
             <td>-</td><td>-</td><td>-</td><td>-</td>\
             <td>1.00</td><td>2.00</td><td>2.00</td><td>2.00</td></tr>"
        ),
        "{html}"
    );
}

#[test]
fn the_header_names_the_node_args_and_warns_of_a_deliberate_bug_before_anything_else() {
    let html = stale_read_with(vec![partition(1.5, 6.0)], |r| {
        r.node_args = vec!["--unsafe-early-ack".into(), "--verbose".into()];
    })
    .render();
    let warning = html
        .find("nodes ran with --unsafe-early-ack: a deliberate bug")
        .expect("a warning");
    assert!(warning < html.find("<main>").unwrap(), "in the header");
    assert!(html.contains("node args: <code>--unsafe-early-ack --verbose</code>"));

    let plain = valid_run_with(|r| r.node_args = vec!["--verbose".into()]).render();
    assert!(!plain.contains("deliberate bug"));
    assert!(plain.contains("node args: <code>--verbose</code>"));
}

#[test]
fn an_interrupted_run_says_its_history_is_partial() {
    let html = valid_run_with(|r| r.interrupted = true).render();
    let said = html.find("interrupted: partial history").expect("said");
    assert!(said < html.find("<main>").unwrap(), "in the header");
    assert!(!valid_run_with(|_| {}).render().contains("interrupted"));
}

#[test]
fn the_faults_table_names_the_sides_of_each_partition() {
    let run = Fixture::new(
        "sides",
        &[(0, "write", "k", "a", 10.0, 20.0, "ok")],
        vec![partition(1.0, 2.0), one_way(3.0, 4.0), kill("n2", 5.0, 6.5)],
    );
    let html = run.render();
    for row in [
        "<td class=\"l\">partition halves</td><td class=\"l\">n1 n2 | n3 n4 n5</td><td class=\"t\">1.000000 s</td>",
        "<td class=\"l\">partition one-way</td><td class=\"l\">n3 cannot hear n1, n2</td><td class=\"t\">3.000000 s</td>",
        "<td class=\"l\">kill n2</td><td class=\"l\">n2</td><td class=\"t\">5.000000 s</td><td class=\"t\">6.500000 s</td><td>1.50</td>",
    ] {
        assert!(html.contains(row), "{row} in {html}");
    }
}

#[test]
fn the_scatter_draws_one_point_per_pixel_and_series_however_many_operations_share_it() {
    // 20,000 reads with the same latency at almost the same time fall on a handful of pixels.
    let mut ops = Vec::new();
    for i in 0..20_000u64 {
        let t = 1000.0 + (i % 10) as f64 * 0.01;
        ops.push((i, "read", "k", "", t, t + 1.0, "ok"));
    }
    ops.push((99_999, "write", "k", "v", 5000.0, 5001.0, "ok"));
    let run = Fixture::new("dense", &ops, Vec::new());
    let report = reports::render(run.path()).unwrap();
    assert_eq!(report.operations, 20_001);
    assert!(
        (2..=20).contains(&report.scatter_points),
        "{} points drawn",
        report.scatter_points
    );
}

#[test]
fn a_missing_history_is_an_error_naming_the_file() {
    let run = stale_read_run();
    std::fs::remove_file(run.path().join("history.jsonl")).unwrap();
    let err = reports::render(run.path()).unwrap_err().to_string();
    assert!(err.contains("history.jsonl"), "{err}");
    std::fs::write(run.path().join("results.json"), "{\"verdict\": 3}").unwrap();
    let err = reports::render(run.path()).unwrap_err().to_string();
    assert!(
        err.contains("results.json") && err.contains("not a kvlab results file"),
        "{err}"
    );
}
