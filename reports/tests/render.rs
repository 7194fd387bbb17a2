//! Rendering whole run directories: what the page says, what it links, what it leaves out.

use std::path::Path;

use checker::{CheckOptions, ReadOptions};
use reports::{CheckerSummary, FaultWindow, RunResults};

/// A run directory built from a list of operations, checked by the real checker.
struct Fixture {
    dir: tempfile::TempDir,
}

/// `(process, f, key, value, invoke ms, complete ms, outcome)`; a read's value is what it returned.
type OpSpec<'a> = (u64, &'a str, &'a str, &'a str, f64, f64, &'a str);

const STARTED_AT: &str = "2026-11-23T10:00:00.000Z";

impl Fixture {
    fn new(test: &str, ops: &[OpSpec<'_>], faults: Vec<FaultWindow>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut events: Vec<(u64, String)> = Vec::new();
        for (p, f, key, value, inv, comp, outcome) in ops {
            let v = if *f == "read" {
                "null".to_owned()
            } else if *f == "cas" {
                format!("[{value:?},\"new\"]")
            } else {
                format!("{value:?}")
            };
            let ns = |ms: f64| (ms * 1e6) as u64;
            events.push((
                ns(*inv),
                format!(r#""process":{p},"type":"invoke","f":"{f}","key":"{key}","value":{v}"#),
            ));
            let done = if *f == "read" && *outcome == "ok" {
                if value.is_empty() {
                    "null".to_owned()
                } else {
                    format!("{value:?}")
                }
            } else {
                v
            };
            events.push((
                ns(*comp),
                format!(
                    r#""process":{p},"type":"{outcome}","f":"{f}","key":"{key}","value":{done}"#
                ),
            ));
        }
        events.sort_by_key(|e| e.0);
        let history: String = events
            .iter()
            .enumerate()
            .map(|(i, (t, rest))| format!("{{\"index\":{i},\"time\":{t},{rest}}}\n"))
            .collect();
        let path = dir.path().join("history.jsonl");
        std::fs::write(&path, history).unwrap();
        let (h, _) = checker::read_file(&path, &ReadOptions::default()).unwrap();
        let result = checker::check(&h, &CheckOptions::default());
        let n = h.outcome_counts();
        let results = RunResults {
            verdict: result.verdict,
            test: test.to_owned(),
            seed: 42,
            profile: "register".into(),
            nemesis: "partition".into(),
            started_at: Some(STARTED_AT.into()),
            duration_s: 10.0,
            operations: h.ops.len(),
            events: events.len() as u64,
            ok: n.ok,
            fail: n.fail,
            cas_miss: n.cas_miss,
            info: n.info,
            throughput_ops_per_s: h.ops.len() as f64 / 10.0,
            latency: Default::default(),
            service_time: Default::default(),
            node_args: Vec::new(),
            interrupted: false,
            faults,
            checker: CheckerSummary::from(&result),
        };
        std::fs::write(
            dir.path().join("results.json"),
            serde_json::to_string_pretty(&results).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("config.toml"), "seed = 42\n").unwrap();
        Fixture { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn log(&self, node: &str, lines: &str) {
        std::fs::write(self.path().join(format!("{node}.log")), lines).unwrap();
    }
}

fn partition(start_s: f64, end_s: f64) -> FaultWindow {
    FaultWindow {
        fault: serde_json::json!({"partition": {"shape": "halves"}}),
        label: "partition halves".into(),
        start_ns: (start_s * 1e9) as u64,
        end_ns: (end_s * 1e9) as u64,
    }
}

/// Width and height from a PNG's IHDR chunk, checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Every `src=` and stylesheet of the page is inline: it opens offline.
fn assert_self_contained(html: &str) {
    for (i, _) in html.match_indices("src=\"") {
        assert!(
            html[i + 5..].starts_with("data:image/png;base64,"),
            "external src at byte {i}: {}",
            &html[i..(i + 60).min(html.len())]
        );
    }
    assert!(!html.contains("<link"), "the page links a resource");
    assert!(!html.contains("http://") && !html.contains("https://"));
}

fn stale_read_run() -> Fixture {
    let f = Fixture::new(
        "read-local",
        &[
            (0, "write", "k1", "v1", 100.0, 110.0, "ok"),
            (1, "write", "k1", "v2", 2000.0, 2010.0, "ok"),
            (2, "read", "k1", "v1", 3000.0, 3002.0, "ok"),
            (3, "read", "k2", "", 3100.0, 3101.0, "ok"),
            (4, "write", "k2", "w", 4000.0, 9000.0, "info"),
            (5, "cas", "k2", "x", 4100.0, 4105.0, "fail"),
        ],
        vec![partition(1.5, 6.0)],
    );
    f.log(
        "n1",
        "2026-11-23T10:00:00.050Z  INFO n1 started\n\
         2026-11-23T10:00:01.600Z  WARN partition 3: lost quorum, still serving local reads\n\
         2026-11-23T10:00:08.000Z  INFO much later\n",
    );
    f.log(
        "n2",
        "2026-11-23T10:00:02.500Z  INFO partition 3: became leader at ballot 7\n",
    );
    f
}

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
        .find("alt=\"latency over time\"")
        .expect("a latency plot");
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
            "anomaly.png"
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
    let run = Fixture::new(
        "fine",
        &[
            (0, "write", "k", "a", 10.0, 20.0, "ok"),
            (1, "read", "k", "a", 30.0, 31.0, "ok"),
            (2, "cas", "k", "z", 40.0, 41.0, "fail"),
            (3, "write", "k", "b", 50.0, 4000.0, "info"),
        ],
        vec![partition(1.0, 2.0)],
    );
    let report = reports::render(run.path()).unwrap();
    let html = std::fs::read_to_string(&report.html).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("VALID: linearizable (4 operations, 1 faults)"));
    assert!(!html.contains("id=\"anomaly\""));
    assert!(!run.path().join("anomaly.png").exists());
    assert_eq!(report.plots.len(), 3);
    // The availability table splits the two writes invoked outside the fault from none inside.
    assert!(
        html.contains(
            "<td class=\"l\">no fault in force</td><td>9.0</td><td>4</td><td>2</td><td>50.0%</td>"
        ),
        "{html}"
    );
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

#[test]
fn the_index_lists_every_run_newest_first_with_a_link_to_its_report() {
    let root = tempfile::tempdir().unwrap();
    for (test, ts, started) in [
        ("old", "20261101T000000Z", "2026-11-01T00:00:00.000Z"),
        ("new", "20261122T000000Z", "2026-11-22T00:00:00.000Z"),
    ] {
        let run = stale_read_run();
        let mut r = reports::read_results(&run.path().join("results.json")).unwrap();
        r.test = test.into();
        r.started_at = Some(started.into());
        let dir = root.path().join(test).join(ts);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("results.json"), serde_json::to_string(&r).unwrap()).unwrap();
        std::fs::write(dir.join("report.html"), "x").unwrap();
    }
    std::fs::create_dir_all(root.path().join("broken/20261115T000000Z")).unwrap();
    std::fs::write(
        root.path().join("broken/20261115T000000Z/results.json"),
        "{",
    )
    .unwrap();
    std::os::unix::fs::symlink("new/20261122T000000Z", root.path().join("latest")).unwrap();

    let index = reports::write_index(root.path()).unwrap();
    // The template escapes `/` in attributes as `&#x2f;`, which browsers read as `/`.
    let html = std::fs::read_to_string(index)
        .unwrap()
        .replace("&#x2f;", "/");
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
        html.matches("<tr><td>").count(),
        3,
        "latest is not listed twice"
    );
}
