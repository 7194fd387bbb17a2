//! `results.xml` against the common JUnit schema (Ant's `junit-10.xsd`, as Jenkins and GitLab
//! read it): required elements and attributes, their order and types, and counts that agree
//! with the children.

use checker::{Anomaly, KeyResult, OpSummary, Verdict};
use reports::{CheckerSummary, RunResults, junit_xml};

fn results(verdict: Verdict, test: &str) -> RunResults {
    let culprit = OpSummary {
        index: 3,
        process: 2,
        f: checker::Func::Read,
        value: serde_json::json!("v1"),
        outcome: "ok".into(),
        invoke: 3_000_000,
        complete: Some(3_100_000),
        invoke_line: 7,
        complete_line: Some(8),
        text: "read -> \"v1\"".into(),
    };
    let key = |name: &str, v: Verdict| KeyResult {
        key: name.into(),
        verdict: v,
        ops: 4,
        states: 9,
        reason: (v == Verdict::Unknown).then(|| "time budget of 1s spent".into()),
        // From JSON, as the report reads it, so that fields the checker adds later (with
        // their serde defaults) do not break this test.
        anomaly: (v == Verdict::Invalid).then(|| {
            serde_json::from_value::<Anomaly>(serde_json::json!({
                "explanation": "read of k<1> returned \"v1\" & more",
                "culprit": culprit,
                "prefix_len": 2,
                "prefix_tail": [],
                "value_after_prefix": "v2",
                "around": [culprit],
            }))
            .expect("an anomaly")
        }),
    };
    let keys = vec![key("k<1>", verdict), key("k2", Verdict::Valid)];
    RunResults {
        verdict,
        test: test.into(),
        system: String::new(),
        seed: 7,
        profile: "register".into(),
        nemesis: "kill".into(),
        started_at: Some("2026-11-23T10:00:00.123Z".into()),
        duration_s: 60.0,
        operations: 8,
        events: 16,
        ok: 6,
        fail: 1,
        cas_miss: 0,
        info: 1,
        throughput_ops_per_s: 0.13,
        latency: Default::default(),
        service_time: Default::default(),
        node_args: Vec::new(),
        interrupted: false,
        faults: vec![],
        messages: None,
        costs: None,
        checker: CheckerSummary {
            elapsed_ms: 12.5,
            states: 18,
            invalid_keys: if verdict == Verdict::Invalid {
                vec!["k<1>".into()]
            } else {
                vec![]
            },
            unknown_keys: if verdict == Verdict::Unknown {
                vec!["k<1>".into()]
            } else {
                vec![]
            },
            keys,
        },
    }
}

fn attr<'a>(n: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
    n.attribute(name)
        .unwrap_or_else(|| panic!("<{}> lacks required attribute {name}", n.tag_name().name()))
}

fn count(n: roxmltree::Node<'_, '_>, name: &str) -> usize {
    attr(n, name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a count"))
}

fn elements<'a, 'i>(n: roxmltree::Node<'a, 'i>) -> Vec<roxmltree::Node<'a, 'i>> {
    n.children().filter(|c| c.is_element()).collect()
}

/// Checks the document against the schema's rules; returns (failures, errors) of the suite.
fn validate(xml: &str) -> (usize, usize) {
    let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites = elements(root);
    assert_eq!(suites.len(), 1);
    let suite = suites[0];
    assert_eq!(suite.tag_name().name(), "testsuite");
    assert!(!attr(suite, "name").is_empty());
    let stamp = attr(suite, "timestamp");
    // xs:dateTime without a zone, as the schema's ISO8601_DATETIME_PATTERN wants.
    assert_eq!(stamp.len(), 19, "{stamp}");
    assert!(stamp.chars().enumerate().all(|(i, c)| match i {
        4 | 7 => c == '-',
        10 => c == 'T',
        13 | 16 => c == ':',
        _ => c.is_ascii_digit(),
    }));
    assert!(!attr(suite, "hostname").is_empty());
    attr(suite, "time").parse::<f64>().expect("time is decimal");
    let order: Vec<&str> = elements(suite)
        .iter()
        .map(|c| c.tag_name().name())
        .collect();
    let cases = order.iter().filter(|n| **n == "testcase").count();
    let mut expected = vec!["properties"];
    expected.extend(std::iter::repeat_n("testcase", cases));
    expected.extend(["system-out", "system-err"]);
    assert_eq!(order, expected, "element order of <testsuite>");
    assert_eq!(count(suite, "tests"), cases);
    for p in elements(elements(suite)[0]) {
        assert_eq!(p.tag_name().name(), "property");
        attr(p, "name");
        attr(p, "value");
    }
    let (mut failures, mut errors) = (0, 0);
    for case in elements(suite)
        .into_iter()
        .filter(|c| c.has_tag_name("testcase"))
    {
        attr(case, "name");
        attr(case, "classname");
        attr(case, "time").parse::<f64>().expect("time is decimal");
        for outcome in elements(case) {
            match outcome.tag_name().name() {
                "failure" => failures += 1,
                "error" => errors += 1,
                other => panic!("unexpected <{other}> in <testcase>"),
            }
            attr(outcome, "message");
            attr(outcome, "type");
        }
    }
    assert_eq!(count(suite, "failures"), failures);
    assert_eq!(count(suite, "errors"), errors);
    assert_eq!(count(root, "failures"), failures);
    (failures, errors)
}

#[test]
fn a_valid_run_is_one_passing_test_case() {
    assert_eq!(
        validate(&junit_xml(&results(Verdict::Valid, "register-kill"))),
        (0, 0)
    );
}

#[test]
fn an_anomaly_is_a_failure_carrying_the_explanation_escaped() {
    let xml = junit_xml(&results(Verdict::Invalid, "a<b>&\"c\""));
    assert_eq!(validate(&xml), (1, 0));
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert_eq!(
        failure.text(),
        Some("key k<1>: read of k<1> returned \"v1\" & more")
    );
    assert!(failure.attribute("message").unwrap().contains("k<1>"));
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("name"), Some("a<b>&\"c\""));
}

#[test]
fn the_properties_count_cas_misses_apart_and_name_the_node_args() {
    let mut r = results(Verdict::Invalid, "t");
    r.cas_miss = 3;
    r.node_args = vec!["--unsafe-early-ack".into()];
    r.interrupted = true;
    let xml = junit_xml(&r);
    validate(&xml);
    for p in [
        r#"<property name="cas_miss" value="3"/>"#,
        r#"<property name="node_args" value="--unsafe-early-ack"/>"#,
        r#"<property name="interrupted" value="true"/>"#,
    ] {
        assert!(xml.contains(p), "{p} in {xml}");
    }
    assert!(xml.contains("(ok 6, CAS miss 3, fail 1, info 1)"), "{xml}");
    // A run recorded before the system was named tested kvnode.
    assert!(
        xml.contains(r#"<property name="system" value="kvnode"/>"#),
        "{xml}"
    );
    r.system = "maelstrom: lin_kv.py".into();
    assert!(junit_xml(&r).contains(r#"<property name="system" value="maelstrom: lin_kv.py"/>"#));
    assert!(xml.contains("interrupted: partial history"), "{xml}");
}

#[test]
fn an_unknown_verdict_is_an_error_not_a_pass() {
    let xml = junit_xml(&results(Verdict::Unknown, "t"));
    assert_eq!(validate(&xml), (0, 1));
    assert!(xml.contains("time budget of 1s spent"));
}
