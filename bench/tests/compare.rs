//! `bench compare` against real kvnode processes on 127.0.0.1, each test in a fresh directory:
//! both protocols run with one seed, the page names both, and it re-renders from recorded runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::text;

fn bench(out: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("compare")
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("run bench")
}

/// The page `bench compare` printed the path of.
fn page(o: &Output) -> PathBuf {
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("compare: "))
        .unwrap_or_else(|| panic!("no compare: line in {}", text(o)));
    PathBuf::from(line)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn paxos_and_zab_run_with_one_seed_and_the_page_puts_them_side_by_side() {
    let out = tempfile::tempdir().unwrap();
    let o = bench(
        out.path(),
        &["--time-limit", "3s", "--nemesis", "none", "--seed", "7"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let html_path = page(&o);
    let dir = html_path.parent().unwrap();
    assert_eq!(
        std::fs::canonicalize(out.path().join("compare/latest")).unwrap(),
        std::fs::canonicalize(dir).unwrap()
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    for needle in [
        "kvnode (paxos)",
        "kvnode (zab)",
        "seed 7",
        "data:image/png;base64,",
    ] {
        assert!(
            html.contains(needle),
            "{needle} missing in {}",
            html_path.display()
        );
    }
    assert_eq!(html.matches(r#"class="verdict valid">VALID"#).count(), 2);
    assert!(dir.join("throughput.png").is_file());
    let mut sides = Vec::new();
    for (side, protocol) in [("paxos", "paxos"), ("zab", "zab")] {
        let run = dir.join(side);
        let results = json(&run.join("results.json"));
        assert_eq!(results["verdict"], "valid", "{side}");
        assert_eq!(results["seed"], 7, "{side}");
        assert_eq!(results["system"], format!("kvnode ({protocol})"));
        let costs = &results["costs"];
        for counted in ["wal_syncs", "peer_messages", "peer_bytes"] {
            assert!(costs[counted].as_u64().unwrap() > 0, "{side}: {results}");
            assert!(costs["per_op"][counted].as_f64().unwrap() > 0.0, "{side}");
        }
        // Every node stopped cleanly and logged its final counts.
        assert_eq!(costs["incarnations"], 3, "{side}: {results}");
        assert_eq!(costs["cut_short"], 0, "{side}: {results}");
        assert!(run.join("report.html").is_file(), "{side}");
        sides.push(run);
    }
    // The runs index lists the comparison and both sides' runs.
    let index = std::fs::read_to_string(out.path().join("index.html"))
        .unwrap()
        .replace("&#x2f;", "/");
    let at = dir.strip_prefix(out.path()).unwrap().display().to_string();
    for link in ["compare.html", "paxos/report.html", "zab/report.html"] {
        assert!(index.contains(&format!("{at}/{link}")), "{link}: {index}");
    }

    // Recorded runs render again without running anything.
    let again = bench(
        out.path(),
        &[
            "--runs",
            sides[1].to_str().unwrap(),
            sides[0].to_str().unwrap(),
        ],
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let html = std::fs::read_to_string(page(&again)).unwrap();
    let (zab, paxos) = (
        html.find("kvnode (zab)").unwrap(),
        html.find("kvnode (paxos)").unwrap(),
    );
    assert!(zab < paxos, "the sides are in the order given");
}

#[test]
fn an_unknown_side_is_refused_in_one_line_before_anything_runs() {
    let out = tempfile::tempdir().unwrap();
    let o = bench(out.path(), &["--side", "paxos", "--side", "raft"]);
    assert_eq!(o.status.code(), Some(254), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--side raft: unknown"), "{stderr}");
    assert!(!out.path().join("compare").exists(), "nothing ran");
    let o = bench(out.path(), &["--protocol", "zab"]);
    assert_eq!(o.status.code(), Some(254), "{}", text(&o));
    assert!(
        text(&o).contains("name each system with --side"),
        "{}",
        text(&o)
    );
}
