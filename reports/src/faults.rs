//! A fault in words: its label and which nodes it hit; for a partition, who could hear whom.
//!
//! A partition is recorded as its grudge (`nemesis::fault::Fault`): for each node, the nodes it
//! cannot hear from. Where the grudge splits the nodes into groups that hear each other and
//! nobody else (halves, one node isolated, the leader isolated) the report names the groups,
//! `n1 n2 | n3 n4 n5`; nodes that hear and are heard by everybody (a bridge) are named after
//! them. Other grudges are not a set of sides: a one-way partition is named per deaf node
//! (`n3 cannot hear n1, n2`), a symmetric one that is not transitive (a majorities ring) by its
//! cut pairs (`n1–n3, n2–n4 cannot hear each other`).
//!
//! The report reads the fault as JSON rather than as `nemesis::fault::Fault` so that it renders
//! runs recorded by other versions of the bench; anything it does not recognise keeps its label.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::results::FaultWindow;

/// The fault's label (its JSON when it has none), with its nodes when the label does not name
/// them: `partition halves (n1 n2 | n3 n4 n5)`, `kill n2`.
pub fn described(w: &FaultWindow) -> String {
    let label = label(w);
    match partition_sides(&w.fault) {
        Some(sides) => format!("{label} ({sides})"),
        None => label,
    }
}

/// The fault's label, or its JSON when the run recorded none.
pub fn label(w: &FaultWindow) -> String {
    if w.label.is_empty() {
        w.fault.to_string()
    } else {
        w.label.clone()
    }
}

/// Which nodes the fault hit, for the faults table: the sides of a partition, the nodes of a
/// kill or a pause; empty when the record does not say.
pub fn nodes(w: &FaultWindow) -> String {
    if let Some(sides) = partition_sides(&w.fault) {
        return sides;
    }
    match w.fault.get("nodes").and_then(Value::as_array) {
        Some(nodes) => nodes
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        None => String::new(),
    }
}

/// Who could hear whom during a partition, from its grudge; `None` for another kind of fault or
/// a partition recorded without one.
pub fn partition_sides(fault: &Value) -> Option<String> {
    if fault.get("kind").and_then(Value::as_str) != Some("partition") {
        return None;
    }
    let grudge: BTreeMap<String, Vec<String>> =
        serde_json::from_value(fault.get("grudge")?.clone()).ok()?;
    sides(&grudge)
}

/// See the module docs. `None` for an empty grudge (a leader isolation the runner did not fill
/// in).
pub fn sides(grudge: &BTreeMap<String, Vec<String>>) -> Option<String> {
    let mut nodes: Vec<&str> = grudge
        .iter()
        .flat_map(|(n, deaf)| std::iter::once(n).chain(deaf))
        .map(String::as_str)
        .collect();
    nodes.sort_by_key(|n| natural(n));
    nodes.dedup();
    if nodes.is_empty() {
        return None;
    }
    // `deaf(x, y)`: x cannot hear y.
    let deaf = |x: &str, y: &str| x != y && grudge.get(x).is_some_and(|d| d.iter().any(|n| n == y));
    let pairs = || {
        nodes
            .iter()
            .flat_map(|&x| nodes.iter().map(move |&y| (x, y)))
            .filter(|&(x, y)| deaf(x, y))
    };
    if pairs().next().is_none() {
        return Some("every node hears every other".to_owned());
    }
    let symmetric = pairs().all(|(x, y)| deaf(y, x));
    if !symmetric {
        let clauses: Vec<String> = nodes
            .iter()
            .filter_map(|&x| {
                let cannot: Vec<&str> = nodes.iter().copied().filter(|&y| deaf(x, y)).collect();
                (!cannot.is_empty()).then(|| format!("{x} cannot hear {}", cannot.join(", ")))
            })
            .collect();
        return Some(clauses.join("; "));
    }
    let hears_all = |x: &str| nodes.iter().all(|&y| !deaf(x, y));
    let (bridges, rest): (Vec<&str>, Vec<&str>) = nodes.iter().partition(|&&x| hears_all(x));
    let group = |x: &str| -> Vec<&str> { rest.iter().copied().filter(|&y| !deaf(x, y)).collect() };
    let transitive = rest
        .iter()
        .all(|&x| group(x).iter().all(|&y| group(y) == group(x)));
    if !transitive {
        let cut: Vec<String> = pairs()
            .filter(|&(x, y)| natural(x) < natural(y))
            .map(|(x, y)| format!("{x}–{y}"))
            .collect();
        return Some(format!("{} cannot hear each other", cut.join(", ")));
    }
    let mut groups: Vec<Vec<&str>> = Vec::new();
    for &x in &rest {
        if !groups.iter().any(|g| g.contains(&x)) {
            groups.push(group(x));
        }
    }
    let mut text = groups
        .iter()
        .map(|g| g.join(" "))
        .collect::<Vec<_>>()
        .join(" | ");
    if !bridges.is_empty() {
        let verb = if bridges.len() == 1 { "hears" } else { "hear" };
        let sides = if groups.len() == 2 {
            "both sides"
        } else {
            "every side"
        };
        text = format!("{text}; {} {verb} {sides}", bridges.join(" "));
    }
    Some(text)
}

/// Orders node names as people number them: `n2` before `n10`.
pub(crate) fn natural(name: &str) -> (&str, u64, &str) {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    (stem, name[stem.len()..].parse().unwrap_or(0), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grudge from `(node, [nodes it cannot hear])`.
    fn grudge(spec: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        spec.iter()
            .map(|(n, deaf)| (n.to_string(), deaf.iter().map(|d| d.to_string()).collect()))
            .collect()
    }

    #[test]
    fn halves_are_two_sides_in_node_order() {
        let g = grudge(&[
            ("n1", &["n2", "n4", "n10"]),
            ("n2", &["n1", "n3"]),
            ("n3", &["n2", "n4", "n10"]),
            ("n4", &["n1", "n3"]),
            ("n10", &["n1", "n3"]),
        ]);
        assert_eq!(sides(&g).unwrap(), "n1 n3 | n2 n4 n10");
    }

    #[test]
    fn an_isolated_node_is_a_side_of_its_own() {
        let g = grudge(&[("n1", &["n3"]), ("n2", &["n3"]), ("n3", &["n1", "n2"])]);
        assert_eq!(sides(&g).unwrap(), "n1 n2 | n3");
    }

    #[test]
    fn a_one_way_partition_names_the_deaf_node() {
        let g = grudge(&[("n1", &[]), ("n2", &[]), ("n3", &["n1", "n2"])]);
        assert_eq!(sides(&g).unwrap(), "n3 cannot hear n1, n2");
    }

    #[test]
    fn a_bridge_hears_both_sides() {
        let g = grudge(&[
            ("n1", &["n4", "n5"]),
            ("n2", &["n4", "n5"]),
            ("n3", &[]),
            ("n4", &["n1", "n2"]),
            ("n5", &["n1", "n2"]),
        ]);
        assert_eq!(sides(&g).unwrap(), "n1 n2 | n4 n5; n3 hears both sides");
    }

    #[test]
    fn a_majorities_ring_is_named_by_its_cut_pairs() {
        // Ring n1 n2 n3 n4 n5: each node hears itself and its two neighbours.
        let g = grudge(&[
            ("n1", &["n3", "n4"]),
            ("n2", &["n4", "n5"]),
            ("n3", &["n5", "n1"]),
            ("n4", &["n1", "n2"]),
            ("n5", &["n2", "n3"]),
        ]);
        assert_eq!(
            sides(&g).unwrap(),
            "n1–n3, n1–n4, n2–n4, n2–n5, n3–n5 cannot hear each other"
        );
    }

    #[test]
    fn a_partition_without_a_grudge_and_other_faults_have_no_sides() {
        assert_eq!(sides(&BTreeMap::new()), None);
        let leader =
            serde_json::json!({"kind": "partition", "shape": "isolate-leader", "grudge": {}});
        assert_eq!(partition_sides(&leader), None);
        let kill = serde_json::json!({"kind": "kill", "nodes": ["n2"]});
        assert_eq!(partition_sides(&kill), None);
        let w = FaultWindow {
            fault: kill,
            label: "kill n2".into(),
            start_ns: 0,
            end_ns: 1,
        };
        assert_eq!(described(&w), "kill n2");
        assert_eq!(nodes(&w), "n2");
    }
}
