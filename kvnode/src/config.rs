//! Cluster configuration: which nodes exist, where they listen, how keys map to partitions and
//! partitions to replicas.
//!
//! ```toml
//! partitions = 8          # key space split by a stable hash of the key
//! replication = 3         # replicas per partition, placed deterministically over the nodes
//! protocol = "paxos"      # what each partition runs: "paxos" (Sequence Paxos, the default) or "zab"
//! [[node]]
//! id = "n1"
//! client = "127.0.0.1:7101"   # clients connect here
//! peer = "127.0.0.1:7201"     # other nodes connect here
//! ```
//!
//! Optional: `[timing]` (`tick_ms`, `election_ticks`, `heartbeat_ticks`, `snapshot_every`) and
//! `[[link]]` entries (`from`, `to`, `addr`) that make node `from` reach node `to`'s peer port
//! through `addr` instead; the bench uses them to route each directed link through a proxy it
//! controls.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::paxos::NodeId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub partitions: u32,
    pub replication: usize,
    /// The replication protocol every partition runs; every node must be given the same.
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(rename = "node")]
    pub nodes: Vec<NodeConfig>,
    #[serde(default)]
    pub timing: Timing,
    #[serde(rename = "link", default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

/// The replication protocol of a partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Sequence Paxos ([`crate::paxos`]).
    #[default]
    Paxos,
    /// Zab, ZooKeeper's atomic broadcast ([`crate::zab`]).
    Zab,
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "paxos" => Ok(Protocol::Paxos),
            "zab" => Ok(Protocol::Zab),
            other => Err(format!("unknown protocol {other:?}: paxos or zab")),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Paxos => "paxos",
            Protocol::Zab => "zab",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: String,
    pub client: SocketAddr,
    pub peer: SocketAddr,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub from: String,
    pub to: String,
    pub addr: SocketAddr,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timing {
    /// Length of one protocol tick, milliseconds.
    pub tick_ms: u64,
    /// Minimum election timeout, ticks (each timeout is drawn from `[e, 2e)`).
    pub election_ticks: u64,
    /// Leader heartbeat period, ticks.
    pub heartbeat_ticks: u64,
    /// Snapshot and compact a partition's log every this many applied entries.
    pub snapshot_every: u64,
    /// Rewrite the node's write-ahead log as a checkpoint once it grows past this many bytes.
    pub wal_checkpoint_bytes: u64,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            tick_ms: 10,
            election_ticks: 15,
            heartbeat_ticks: 4,
            snapshot_every: 50_000,
            wal_checkpoint_bytes: 256 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

impl ClusterConfig {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        ClusterConfig::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<ClusterConfig, ConfigError> {
        let cfg: ClusterConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: toml_error(text, &e),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a configuration serialises")
    }

    /// Checks the rules no type can express; errors name the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.nodes.is_empty() {
            return Err(invalid("node", "at least one [[node]] is required"));
        }
        if self.partitions == 0 {
            return Err(invalid("partitions", "must be at least 1"));
        }
        if self.replication == 0 || self.replication > self.nodes.len() {
            return Err(invalid(
                "replication",
                format!(
                    "must be between 1 and the number of nodes ({}), not {}",
                    self.nodes.len(),
                    self.replication
                ),
            ));
        }
        let mut ids = BTreeMap::new();
        let mut addrs: BTreeMap<SocketAddr, String> = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.id.trim().is_empty() {
                return Err(invalid(format!("node[{i}].id"), "must not be empty"));
            }
            if let Some(j) = ids.insert(n.id.as_str(), i) {
                return Err(invalid(
                    format!("node[{i}].id"),
                    format!("{:?} is also node[{j}].id", n.id),
                ));
            }
            for (field, addr) in [("client", n.client), ("peer", n.peer)] {
                let here = format!("node[{i}].{field}");
                if let Some(other) = addrs.insert(addr, here.clone()) {
                    return Err(invalid(here, format!("{addr} is also {other}")));
                }
            }
        }
        let mut links = BTreeSet::new();
        for (i, l) in self.links.iter().enumerate() {
            for (field, id) in [("from", &l.from), ("to", &l.to)] {
                if !ids.contains_key(id.as_str()) {
                    return Err(invalid(
                        format!("link[{i}].{field}"),
                        format!("no node is named {id:?}"),
                    ));
                }
            }
            if !links.insert((&l.from, &l.to)) {
                return Err(invalid(
                    format!("link[{i}]"),
                    format!("a second link from {} to {}", l.from, l.to),
                ));
            }
        }
        let t = &self.timing;
        if t.tick_ms == 0 || t.heartbeat_ticks == 0 || t.election_ticks <= t.heartbeat_ticks {
            return Err(invalid(
                "timing",
                "need tick_ms >= 1, heartbeat_ticks >= 1 and election_ticks > heartbeat_ticks",
            ));
        }
        if t.snapshot_every == 0 {
            return Err(invalid("timing.snapshot_every", "must be at least 1"));
        }
        Ok(())
    }

    /// The index of the node named `id`.
    pub fn node_index(&self, id: &str) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .map(|i| i as NodeId)
    }

    pub fn node(&self, index: NodeId) -> &NodeConfig {
        &self.nodes[index as usize]
    }

    /// The partition a key belongs to (FNV-1a, stable across versions and platforms).
    pub fn partition_of(&self, key: &str) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % u64::from(self.partitions)) as u32
    }

    /// The replicas of a partition: `replication` consecutive nodes starting at the partition's
    /// position, so partitions spread their replicas (and leaders) over all nodes.
    pub fn replicas(&self, partition: u32) -> Vec<NodeId> {
        let n = self.nodes.len();
        let mut group: Vec<NodeId> = (0..self.replication)
            .map(|i| ((partition as usize + i) % n) as NodeId)
            .collect();
        group.sort_unstable();
        group
    }

    /// Where node `from` connects to reach node `to`'s peer port.
    pub fn peer_addr(&self, from: NodeId, to: NodeId) -> SocketAddr {
        let (f, t) = (&self.node(from).id, &self.node(to).id);
        self.links
            .iter()
            .find(|l| &l.from == f && &l.to == t)
            .map_or(self.node(to).peer, |l| l.addr)
    }
}

/// A TOML error on one line: `line 2, column 8: unclosed array, expected `]``. (The error's own
/// text spans several lines with a drawing of the source, which a log line or a one-line error
/// cannot carry.)
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str = r#"
partitions = 8
replication = 3
[[node]]
id = "n1"
client = "127.0.0.1:7101"
peer = "127.0.0.1:7201"
[[node]]
id = "n2"
client = "127.0.0.1:7102"
peer = "127.0.0.1:7202"
[[node]]
id = "n3"
client = "127.0.0.1:7103"
peer = "127.0.0.1:7203"
"#;

    fn err(text: &str) -> String {
        ClusterConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_toml_syntax_error_is_one_line_naming_line_and_column() {
        let e = err("partitions = 8\nfoo = [\n");
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("line 2, column 8: "), "{e}");
        assert!(e.contains("unclosed array"), "{e}");
    }

    #[test]
    fn a_good_config_parses_and_places_every_partition_on_three_nodes() {
        let c = ClusterConfig::parse(THREE).unwrap();
        assert_eq!(c.nodes.len(), 3);
        for p in 0..c.partitions {
            assert_eq!(c.replicas(p), vec![0, 1, 2]);
        }
        assert_eq!(c.partition_of("k7"), c.partition_of("k7"));
        let spread: BTreeSet<u32> = (0..100).map(|i| c.partition_of(&format!("k{i}"))).collect();
        assert_eq!(spread.len(), 8, "100 keys reach every partition");
    }

    #[test]
    fn bad_configs_are_refused_naming_the_field() {
        assert!(
            err(&THREE.replace("replication = 3", "replication = 4")).starts_with("replication:")
        );
        assert!(err(&THREE.replace("partitions = 8", "partitions = 0")).starts_with("partitions:"));
        assert!(err(&THREE.replace("\"n2\"", "\"n1\"")).starts_with("node[1].id:"));
        let dup = THREE.replace("127.0.0.1:7202", "127.0.0.1:7201");
        assert!(
            err(&dup).starts_with("node[1].peer: 127.0.0.1:7201 is also node[0].peer"),
            "{}",
            err(&dup)
        );
        assert!(
            err(&THREE.replace("client = \"127.0.0.1:7101\"", "client = \"nowhere\""))
                .contains("<config>")
        );
        assert!(err(&format!("{THREE}\ncolour = 1\n")).contains("colour"));
        let link =
            format!("{THREE}\n[[link]]\nfrom = \"n1\"\nto = \"n9\"\naddr = \"127.0.0.1:9000\"\n");
        assert!(err(&link).starts_with("link[0].to:"));
    }

    #[test]
    fn the_protocol_is_paxos_unless_zab_is_named() {
        assert_eq!(
            ClusterConfig::parse(THREE).unwrap().protocol,
            Protocol::Paxos
        );
        let text = THREE.replace("replication = 3\n", "replication = 3\nprotocol = \"zab\"\n");
        let c = ClusterConfig::parse(&text).unwrap();
        assert_eq!(c.protocol, Protocol::Zab);
        assert_eq!(ClusterConfig::parse(&c.to_toml()).unwrap(), c);
        let bad = THREE.replace(
            "replication = 3\n",
            "replication = 3\nprotocol = \"raft\"\n",
        );
        assert!(err(&bad).contains("raft"), "{}", err(&bad));
    }

    #[test]
    fn links_reroute_one_direction_only() {
        let text =
            format!("{THREE}\n[[link]]\nfrom = \"n1\"\nto = \"n2\"\naddr = \"127.0.0.1:9012\"\n");
        let c = ClusterConfig::parse(&text).unwrap();
        assert_eq!(c.peer_addr(0, 1), "127.0.0.1:9012".parse().unwrap());
        assert_eq!(c.peer_addr(1, 0), "127.0.0.1:7201".parse().unwrap());
        assert_eq!(ClusterConfig::parse(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn five_nodes_with_three_replicas_spread_the_partitions() {
        let mut text = String::from("partitions = 5\nreplication = 3\n");
        for i in 1..=5 {
            text += &format!(
                "[[node]]\nid = \"n{i}\"\nclient = \"127.0.0.1:71{i:02}\"\npeer = \"127.0.0.1:72{i:02}\"\n"
            );
        }
        let c = ClusterConfig::parse(&text).unwrap();
        let mut load = [0; 5];
        for p in 0..5 {
            let g = c.replicas(p);
            assert_eq!(g.len(), 3);
            for n in g {
                load[n as usize] += 1;
            }
        }
        assert_eq!(load, [3; 5]);
    }
}
