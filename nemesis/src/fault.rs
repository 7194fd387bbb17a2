//! The fault vocabulary shared by schedules, the bench's history and its reports.
//!
//! A [`Fault`] names the start of a fault; its end is implied (kill → restart, pause → resume,
//! partition → heal, network trouble → calm) and named by [`Fault::end_name`]. Names follow
//! Jepsen's nemesis so that a history reads the same to people who know Jepsen.
//!
//! Most faults act on processes or on TCP links and so apply to every system the bench runs.
//! [`Fault::Network`] is *message-level* ([`Fault::message_level`]): it delays, drops, duplicates
//! or reorders single messages, which only a router that sees every message can do, so it
//! applies only to nodes whose messages pass through the bench (Maelstrom mode).
//!
//! A partition is stored as a *grudge*, as in Jepsen: for each node, the nodes whose traffic it
//! drops. A grudge can express asymmetric shapes (the majorities ring on an even or large node
//! count is one), which a list of mutually connected groups cannot; [`Fault::cut_links`] turns it
//! into the directed links for the link layer to cut.

use std::collections::BTreeMap;

use rand::prelude::*;
use serde::{Deserialize, Serialize};

/// For each node, the nodes it cannot hear from. Every node of the cluster is a key.
pub type Grudge = BTreeMap<String, Vec<String>>;

/// Which nodes a process fault hits; resolved against the node list with the run's RNG.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// One node.
    #[default]
    One,
    /// The largest minority (one less than a majority), and at least one node.
    Minority,
    /// The smallest majority.
    Majority,
    /// Every node.
    All,
    /// The current leader. Only the runner knows who leads, so the plan names the node
    /// [`LEADER`] and the runner substitutes the real one when the fault starts.
    Leader,
}

/// Placeholder node name for [`Target::Leader`] in a planned fault.
pub const LEADER: &str = "<leader>";

impl Target {
    /// How many of `n` nodes this target hits.
    pub fn count(self, n: usize) -> usize {
        let majority = n / 2 + 1;
        match self {
            Target::One | Target::Leader => 1,
            Target::Minority => (majority - 1).max(1),
            Target::Majority => majority,
            Target::All => n,
        }
        .min(n)
    }

    /// Picks [`Target::count`] distinct nodes at random; they come back in the order of `nodes`.
    pub fn resolve<R: Rng + ?Sized>(self, nodes: &[String], rng: &mut R) -> Vec<String> {
        if self == Target::Leader {
            return vec![LEADER.to_owned()];
        }
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.shuffle(rng);
        order.truncate(self.count(nodes.len()));
        order.sort_unstable();
        order.into_iter().map(|i| nodes[i].clone()).collect()
    }
}

/// The named network shapes, after Jepsen's `partition-halves`, `partition-random-node`,
/// `partition-majorities-ring` and `bridge`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// A random split into two sides; the smaller side has `n / 2` nodes.
    Halves,
    /// One random node hears nobody and nobody hears it.
    IsolateOne,
    /// Every node hears a majority (itself included), and no two nodes hear the same majority.
    MajoritiesRing,
    /// Two halves that cannot hear each other plus one node that hears and is heard by all.
    Bridge,
    /// One random node hears nobody, but everybody still hears it (a one-way partition).
    OneWay,
    /// The current leader hears nobody and nobody hears it. Only the runner knows who leads, so
    /// the plan carries an empty grudge and the runner fills it in with [`isolate`] when the
    /// fault starts.
    IsolateLeader,
}

/// The grudge that cuts `node` off from every other node, both ways.
pub fn isolate(node: &str, nodes: &[String]) -> Grudge {
    nodes
        .iter()
        .map(|n| {
            let deaf_to = if n == node {
                nodes.iter().filter(|o| *o != node).cloned().collect()
            } else {
                vec![node.to_owned()]
            };
            (n.clone(), deaf_to)
        })
        .collect()
}

/// The grudge in which `node` hears nobody while every other node still hears it (one way).
pub fn deafen(node: &str, nodes: &[String]) -> Grudge {
    nodes
        .iter()
        .map(|n| {
            let deaf_to = if n == node {
                nodes.iter().filter(|o| *o != node).cloned().collect()
            } else {
                Vec::new()
            };
            (n.clone(), deaf_to)
        })
        .collect()
}

impl Shape {
    /// The shape's name as schedules spell it.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Halves => "halves",
            Shape::IsolateOne => "isolate-one",
            Shape::MajoritiesRing => "majorities-ring",
            Shape::Bridge => "bridge",
            Shape::OneWay => "one-way",
            Shape::IsolateLeader => "isolate-leader",
        }
    }

    /// The fewest nodes for which the shape is a real partition.
    pub fn min_nodes(self) -> usize {
        match self {
            Shape::Halves | Shape::IsolateOne | Shape::OneWay | Shape::IsolateLeader => 2,
            Shape::MajoritiesRing | Shape::Bridge => 3,
        }
    }

    /// Draws this shape over `nodes`. Panics if there are fewer than [`Shape::min_nodes`].
    pub fn grudge<R: Rng + ?Sized>(self, nodes: &[String], rng: &mut R) -> Grudge {
        let n = nodes.len();
        assert!(
            n >= self.min_nodes(),
            "{self:?} needs at least {} nodes, got {n}",
            self.min_nodes()
        );
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        // views[i]: the nodes node i hears from, itself included.
        let mut views: Vec<Vec<usize>> = vec![Vec::new(); n];
        match self {
            Shape::Halves => {
                let (a, b) = order.split_at(n / 2);
                for side in [a, b] {
                    for &x in side {
                        views[x] = side.to_vec();
                    }
                }
            }
            Shape::IsolateOne => {
                let (lonely, rest) = order.split_at(1);
                views[lonely[0]] = lonely.to_vec();
                for &x in rest {
                    views[x] = rest.to_vec();
                }
            }
            Shape::MajoritiesRing => {
                // Jepsen's construction: each window of `m` consecutive ring nodes is the view of
                // its middle node; every node is the middle of exactly one window.
                let m = n / 2 + 1;
                for i in 0..n {
                    let window: Vec<usize> = (0..m).map(|j| order[(i + j) % n]).collect();
                    let middle = window[m / 2];
                    views[middle] = window;
                }
            }
            Shape::Bridge => {
                let (a, rest) = order.split_at(n / 2);
                let (bridge, b) = (rest[0], &rest[1..]);
                for side in [a, b] {
                    for &x in side {
                        views[x] = side.iter().copied().chain([bridge]).collect();
                    }
                }
                views[bridge] = order.clone();
            }
            Shape::OneWay => {
                for (x, view) in views.iter_mut().enumerate() {
                    *view = if x == order[0] {
                        vec![x]
                    } else {
                        (0..n).collect()
                    };
                }
            }
            Shape::IsolateLeader => return Grudge::new(),
        }
        (0..n)
            .map(|x| {
                let deaf_to = (0..n).filter(|y| !views[x].contains(y));
                (
                    nodes[x].clone(),
                    deaf_to.map(|y| nodes[y].clone()).collect(),
                )
            })
            .collect()
    }
}

/// The start of one fault. Serialised with a `kind` tag, e.g. `{"kind":"kill","nodes":["n2"]}`
/// or `{"kind":"network","trouble":{"delay_ms":20,...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL the nodes; the end restarts them.
    Kill { nodes: Vec<String> },
    /// SIGSTOP the nodes; the end sends SIGCONT.
    Pause { nodes: Vec<String> },
    /// Cut the links in the grudge; the end heals every link.
    Partition { shape: Shape, grudge: Grudge },
    /// Trouble every message between two nodes; the end delivers messages promptly again.
    /// Message-level: only for nodes whose messages pass through the bench.
    Network { trouble: Trouble },
}

/// Message-level trouble on every link between two nodes (client links are untouched). The
/// bench's router applies it to each message independently of the others. A field at 0 turns
/// its kind of trouble off, so the default troubles nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trouble {
    /// Every message is held back this long ...
    pub delay_ms: u32,
    /// ... plus a uniformly drawn 0..=jitter_ms.
    pub jitter_ms: u32,
    /// Percent of messages dropped.
    pub loss_pct: u8,
    /// Percent of messages delivered twice (the copy with its own delay).
    pub duplicate_pct: u8,
    /// Percent of messages held back an extra 0..=reorder_window_ms so later ones overtake them.
    pub reorder_pct: u8,
    /// The most a reordered message is held back beyond its delay.
    pub reorder_window_ms: u32,
}

impl Trouble {
    /// What this trouble does, in a few words joined by `, `: `delay 20±20 ms`, `loss 20%`,
    /// `duplicate 20%`, `reorder 50% within 20 ms`; `no trouble` if every field is 0.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        match (self.delay_ms, self.jitter_ms) {
            (0, 0) => {}
            (delay, 0) => parts.push(format!("delay {delay} ms")),
            (delay, jitter) => parts.push(format!("delay {delay}±{jitter} ms")),
        }
        if self.loss_pct > 0 {
            parts.push(format!("loss {}%", self.loss_pct));
        }
        if self.duplicate_pct > 0 {
            parts.push(format!("duplicate {}%", self.duplicate_pct));
        }
        if self.reorder_pct > 0 {
            parts.push(format!(
                "reorder {}% within {} ms",
                self.reorder_pct, self.reorder_window_ms
            ));
        }
        if parts.is_empty() {
            return "no trouble".to_owned();
        }
        parts.join(", ")
    }
}

impl Fault {
    /// Draws a partition of `shape` over `nodes` (see [`Shape::grudge`]).
    pub fn partition<R: Rng + ?Sized>(shape: Shape, nodes: &[String], rng: &mut R) -> Fault {
        Fault::Partition {
            shape,
            grudge: shape.grudge(nodes, rng),
        }
    }

    /// Jepsen's name for the start of this fault (the history's `f`). Network trouble takes the
    /// name of Jepsen's packet nemesis, which does the same to packets with `tc netem`.
    pub fn start_name(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::Pause { .. } => "pause",
            Fault::Partition { .. } => "start-partition",
            Fault::Network { .. } => "start-packet",
        }
    }

    /// Jepsen's name for the end of this fault.
    pub fn end_name(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "restart",
            Fault::Pause { .. } => "resume",
            Fault::Partition { .. } => "stop-partition",
            Fault::Network { .. } => "stop-packet",
        }
    }

    /// Whether this fault acts on single messages ([`Fault::Network`]), and so applies only to
    /// nodes whose messages pass through the bench.
    pub fn message_level(&self) -> bool {
        matches!(self, Fault::Network { .. })
    }

    /// A few words for plots and progress lines: `kill n2`, `pause n1 n3`, `partition halves`,
    /// `network: loss 20%`.
    pub fn label(&self) -> String {
        match self {
            Fault::Network { trouble } => format!("network: {}", trouble.label()),
            Fault::Kill { nodes } => format!("kill {}", nodes.join(" ")),
            Fault::Pause { nodes } => format!("pause {}", nodes.join(" ")),
            Fault::Partition { shape, grudge } => {
                // The node cut off from all the others, for the shapes that single one out.
                let alone = || {
                    grudge
                        .iter()
                        .find(|(_, deaf_to)| deaf_to.len() + 1 == grudge.len())
                        .map(|(n, _)| n.as_str())
                };
                match (shape, alone()) {
                    (Shape::IsolateOne | Shape::IsolateLeader, Some(n)) => {
                        format!("partition: isolate {n}")
                    }
                    (Shape::OneWay, Some(n)) => format!("partition one-way: {n} hears nobody"),
                    _ => format!("partition {}", shape.name()),
                }
            }
        }
    }

    /// The nodes a process fault hits; empty for a partition and for network trouble.
    pub fn nodes(&self) -> &[String] {
        match self {
            Fault::Kill { nodes } | Fault::Pause { nodes } => nodes,
            Fault::Partition { .. } | Fault::Network { .. } => &[],
        }
    }

    /// The directed links `(from, to)` to cut, sorted: `from`'s traffic to `to` is dropped.
    /// Empty for a process fault and for network trouble (which cuts no link).
    pub fn cut_links(&self) -> Vec<(String, String)> {
        let Fault::Partition { grudge, .. } = self else {
            return Vec::new();
        };
        let mut cuts: Vec<(String, String)> = grudge
            .iter()
            .flat_map(|(to, froms)| froms.iter().map(|from| (from.clone(), to.clone())))
            .collect();
        cuts.sort();
        cuts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    /// For every node count and many seeds: `check(nodes, hears)` where `hears(x, y)` tells
    /// whether `x` hears from `y`.
    fn for_all(shape: Shape, check: impl Fn(&[String], &dyn Fn(&str, &str) -> bool)) {
        for n in shape.min_nodes()..=9 {
            let nodes = names(n);
            for seed in 0..50 {
                let Fault::Partition { grudge, .. } =
                    Fault::partition(shape, &nodes, &mut StdRng::seed_from_u64(seed))
                else {
                    unreachable!()
                };
                assert_eq!(grudge.len(), n, "every node is in the grudge");
                let hears = |x: &str, y: &str| !grudge[x].iter().any(|z| z == y);
                check(&nodes, &hears);
            }
        }
    }

    fn heard_by(nodes: &[String], x: &str, hears: &dyn Fn(&str, &str) -> bool) -> Vec<String> {
        nodes.iter().filter(|y| hears(x, y)).cloned().collect()
    }

    #[test]
    fn halves_split_into_two_sides_that_cannot_hear_each_other() {
        for_all(Shape::Halves, |nodes, hears| {
            let side = heard_by(nodes, &nodes[0], hears);
            let other: Vec<String> = nodes
                .iter()
                .filter(|x| !side.contains(x))
                .cloned()
                .collect();
            assert_eq!(side.len().min(other.len()), nodes.len() / 2);
            for x in nodes {
                let expected = if side.contains(x) { &side } else { &other };
                assert_eq!(&heard_by(nodes, x, hears), expected);
            }
        });
    }

    #[test]
    fn isolate_one_cuts_exactly_one_node_off_both_ways() {
        for_all(Shape::IsolateOne, |nodes, hears| {
            let lonely: Vec<&String> = nodes
                .iter()
                .filter(|x| heard_by(nodes, x, hears).len() == 1)
                .collect();
            // On two nodes both are alone: isolating one is the same as halves.
            assert_eq!(lonely.len(), if nodes.len() == 2 { 2 } else { 1 });
            for x in nodes.iter().filter(|x| *x != lonely[0]) {
                assert!(!hears(x, lonely[0]));
                assert_eq!(heard_by(nodes, x, hears).len(), nodes.len() - 1);
            }
        });
    }

    #[test]
    fn one_way_leaves_one_node_deaf_but_heard() {
        for_all(Shape::OneWay, |nodes, hears| {
            let deaf: Vec<&String> = nodes
                .iter()
                .filter(|x| heard_by(nodes, x, hears).len() == 1)
                .collect();
            assert_eq!(deaf.len(), 1);
            for x in nodes.iter().filter(|x| *x != deaf[0]) {
                assert!(hears(x, deaf[0]), "{x} still hears {}", deaf[0]);
                assert_eq!(heard_by(nodes, x, hears).len(), nodes.len());
            }
        });
    }

    #[test]
    fn isolating_a_named_node_cuts_it_off_both_ways_and_nothing_else() {
        let nodes = names(5);
        let grudge = isolate("n3", &nodes);
        let cuts = Fault::Partition {
            shape: Shape::IsolateLeader,
            grudge,
        }
        .cut_links();
        assert_eq!(cuts.len(), 8);
        assert!(cuts.iter().all(|(a, b)| a == "n3" || b == "n3"));
        assert!(
            Shape::IsolateLeader
                .grudge(&nodes, &mut rand::rngs::StdRng::seed_from_u64(1))
                .is_empty()
        );
    }

    #[test]
    fn deafening_a_named_node_cuts_only_what_it_hears() {
        let cuts = Fault::Partition {
            shape: Shape::OneWay,
            grudge: deafen("n2", &names(3)),
        }
        .cut_links();
        let link = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(cuts, vec![link("n1", "n2"), link("n3", "n2")]);
    }

    #[test]
    fn majorities_ring_gives_every_node_a_different_majority() {
        for_all(Shape::MajoritiesRing, |nodes, hears| {
            let mut views: Vec<Vec<String>> =
                nodes.iter().map(|x| heard_by(nodes, x, hears)).collect();
            for (x, view) in nodes.iter().zip(&views) {
                assert!(view.contains(x), "{x} hears itself");
                assert_eq!(view.len(), nodes.len() / 2 + 1, "{x} hears a majority");
            }
            views.sort();
            views.dedup();
            assert_eq!(
                views.len(),
                nodes.len(),
                "no two nodes see the same majority"
            );
        });
    }

    #[test]
    fn bridge_node_hears_and_is_heard_by_both_halves() {
        for_all(Shape::Bridge, |nodes, hears| {
            let bridges: Vec<&String> = nodes
                .iter()
                .filter(|b| nodes.iter().all(|x| hears(b, x) && hears(x, b)))
                .collect();
            assert_eq!(bridges.len(), 1);
            let rest: Vec<&String> = nodes.iter().filter(|x| *x != bridges[0]).collect();
            let side = heard_by(nodes, rest[0], hears);
            let cut = rest.iter().filter(|x| !side.contains(x)).count();
            assert!(cut >= 1, "the halves are really cut");
            for x in &rest {
                for y in &rest {
                    assert_eq!(hears(x, y), side.contains(x) == side.contains(y));
                }
            }
        });
    }

    #[test]
    fn cut_links_are_the_directed_complement_of_what_each_node_hears() {
        let grudge = Grudge::from([
            ("n1".into(), vec!["n3".into()]),
            ("n2".into(), vec![]),
            ("n3".into(), vec!["n1".into(), "n2".into()]),
        ]);
        let fault = Fault::Partition {
            shape: Shape::Halves,
            grudge,
        };
        let link = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            fault.cut_links(),
            vec![link("n1", "n3"), link("n2", "n3"), link("n3", "n1")]
        );
        assert!(Fault::Kill { nodes: names(1) }.cut_links().is_empty());
    }

    #[test]
    fn targets_pick_distinct_nodes_of_the_documented_size() {
        let nodes = names(5);
        let mut rng = StdRng::seed_from_u64(7);
        for (target, count) in [
            (Target::One, 1),
            (Target::Minority, 2),
            (Target::Majority, 3),
            (Target::All, 5),
        ] {
            let picked = target.resolve(&nodes, &mut rng);
            assert_eq!(picked.len(), count, "{target:?}");
            assert!(
                picked.windows(2).all(|w| w[0] < w[1]),
                "distinct, in node order"
            );
        }
        assert_eq!(Target::Minority.count(1), 1);
    }

    #[test]
    fn faults_use_jepsen_names_and_serialise_with_a_kind_tag() {
        let kill = Fault::Kill { nodes: names(1) };
        assert_eq!((kill.start_name(), kill.end_name()), ("kill", "restart"));
        let pause = Fault::Pause { nodes: names(1) };
        assert_eq!((pause.start_name(), pause.end_name()), ("pause", "resume"));
        let part = Fault::partition(Shape::IsolateOne, &names(3), &mut StdRng::seed_from_u64(1));
        assert_eq!(
            (part.start_name(), part.end_name()),
            ("start-partition", "stop-partition")
        );
        let text = toml::to_string(&kill).unwrap();
        assert!(text.contains("kind = \"kill\""), "{text}");
        assert_eq!(toml::from_str::<Fault>(&text).unwrap(), kill);
    }

    #[test]
    fn a_partition_that_singles_out_a_node_names_it_in_its_label() {
        let nodes = names(3);
        let part = |shape| Fault::Partition {
            shape,
            grudge: isolate("n2", &nodes),
        };
        assert_eq!(part(Shape::IsolateLeader).label(), "partition: isolate n2");
        assert_eq!(part(Shape::IsolateOne).label(), "partition: isolate n2");
        let deaf = Fault::partition(Shape::OneWay, &nodes, &mut StdRng::seed_from_u64(3));
        let Fault::Partition { grudge, .. } = &deaf else {
            unreachable!()
        };
        let alone = grudge.iter().find(|(_, d)| d.len() == 2).unwrap().0;
        assert_eq!(
            deaf.label(),
            format!("partition one-way: {alone} hears nobody")
        );
        let halves = Fault::partition(Shape::Halves, &nodes, &mut StdRng::seed_from_u64(3));
        assert_eq!(halves.label(), "partition halves");
    }
}
