//! `results.xml`: the verdict in JUnit XML, so that CI systems show it natively.
//!
//! The shape follows the common JUnit schema (Ant's / Jenkins' `junit-10.xsd`): `<testsuites>`
//! holding one `<testsuite>` with `name`, `tests`, `failures`, `errors`, `skipped`, `time`,
//! `timestamp` and `hostname`, its `<properties>` (system under test, seed, profile, nemesis, counts with CAS
//! misses apart from failures, node args, whether the run was interrupted), one
//! `<testcase name="linearizable">`, `<system-out>` (a summary) and `<system-err>`. An anomaly
//! is a `<failure>` carrying the checker's explanation of every invalid key; an unknown verdict
//! is an `<error>` (the check could not be done, which is not a pass).

use std::fmt::Write;

use checker::Verdict;
use quick_xml::escape::escape;

use crate::results::RunResults;

pub fn junit_xml(r: &RunResults) -> String {
    let (failures, errors) = match r.verdict {
        Verdict::Valid => (0, 0),
        Verdict::Invalid => (1, 0),
        Verdict::Unknown => (0, 1),
    };
    let time = format!("{:.3}", r.duration_s + r.checker.elapsed_ms / 1e3);
    // The schema's timestamp is an ISO 8601 date-time without a zone (UTC here).
    let timestamp = r
        .started_at
        .as_deref()
        .map(|s| {
            s.trim_end_matches('Z')
                .split('.')
                .next()
                .unwrap_or(s)
                .to_owned()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00".to_owned());
    let name = escape(r.test.as_str());
    let mut x = String::new();
    let _ = writeln!(x, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        x,
        r#"<testsuites name="kvlab" tests="1" failures="{failures}" errors="{errors}" time="{time}">"#
    );
    let _ = writeln!(
        x,
        r#"  <testsuite name="{name}" tests="1" failures="{failures}" errors="{errors}" skipped="0" time="{time}" timestamp="{timestamp}" hostname="localhost">"#
    );
    let _ = writeln!(x, "    <properties>");
    let props: [(&str, String); 12] = [
        ("system", r.system().to_owned()),
        ("seed", r.seed.to_string()),
        ("profile", r.profile.clone()),
        ("nemesis", r.nemesis.clone()),
        ("operations", r.operations.to_string()),
        ("ok", r.ok.to_string()),
        ("cas_miss", r.cas_miss.to_string()),
        ("fail", r.fail.to_string()),
        ("info", r.info.to_string()),
        ("faults", r.faults.len().to_string()),
        ("node_args", r.node_args.join(" ")),
        ("interrupted", r.interrupted.to_string()),
    ];
    for (k, v) in props {
        let _ = writeln!(
            x,
            r#"      <property name="{k}" value="{}"/>"#,
            escape(v.as_str())
        );
    }
    let _ = writeln!(x, "    </properties>");
    let _ = write!(
        x,
        r#"    <testcase name="linearizable" classname="kvlab.{name}" time="{:.3}">"#,
        r.checker.elapsed_ms / 1e3
    );
    match r.verdict {
        Verdict::Valid => {}
        Verdict::Invalid => {
            let explanations: Vec<String> = r
                .checker
                .keys
                .iter()
                .filter_map(|k| {
                    k.anomaly
                        .as_ref()
                        .map(|a| format!("key {}: {}", k.key, a.explanation))
                })
                .collect();
            let message = format!(
                "not linearizable: {} key(s): {}",
                r.checker.invalid_keys.len(),
                r.checker.invalid_keys.join(", ")
            );
            let _ = write!(
                x,
                "\n      <failure message=\"{}\" type=\"anomaly\">{}</failure>\n    ",
                escape(message.as_str()),
                escape(explanations.join("\n").as_str())
            );
        }
        Verdict::Unknown => {
            let reasons: Vec<String> = r
                .checker
                .keys
                .iter()
                .filter(|k| k.verdict == Verdict::Unknown)
                .map(|k| {
                    format!(
                        "key {}: {}",
                        k.key,
                        k.reason.as_deref().unwrap_or("unknown")
                    )
                })
                .collect();
            let _ = write!(
                x,
                "\n      <error message=\"the checker could not decide {} key(s)\" type=\"unknown\">{}</error>\n    ",
                r.checker.unknown_keys.len(),
                escape(reasons.join("\n").as_str())
            );
        }
    }
    let _ = writeln!(x, "</testcase>");
    let _ = writeln!(
        x,
        "    <system-out>{}</system-out>",
        escape(
            format!(
                "{} operations (ok {}, CAS miss {}, fail {}, info {}), {:.0} ops/s, {} faults, seed {}{}",
                r.operations,
                r.ok,
                r.cas_miss,
                r.fail,
                r.info,
                r.throughput_ops_per_s,
                r.faults.len(),
                r.seed,
                if r.interrupted {
                    ", interrupted: partial history"
                } else {
                    ""
                }
            )
            .as_str()
        )
    );
    let _ = writeln!(x, "    <system-err/>");
    let _ = writeln!(x, "  </testsuite>");
    let _ = writeln!(x, "</testsuites>");
    x
}
