//! Workload profiles: what the clients do. Built-ins (listed by `bench profiles`) or TOML files
//! with the same fields, e.g.
//!
//! ```toml
//! name = "my-profile"
//! mix = { read = 50, write = 30, cas = 15, delete = 5 }
//! keys = 20
//! distribution = { kind = "zipfian", theta = 0.99 }
//! value_size = 16
//! concurrency = 10
//! rate = 500          # operations per second over all clients (open loop); omit for closed loop
//! timeout = "1s"      # per operation
//! ```

use std::path::Path;
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub mix: Mix,
    pub keys: u64,
    #[serde(default)]
    pub distribution: Distribution,
    #[serde(default = "default_value_size")]
    pub value_size: usize,
    pub concurrency: usize,
    /// Target operations per second over all clients (open loop: latency counts from the
    /// intended start, so a slow store cannot hide behind fewer requests). `None`: closed loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Stop after this many operations (besides the time limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_limit: Option<u64>,
    #[serde(with = "duration_serde")]
    pub timeout: Duration,
    /// Clients stay with the node they start on (as in Jepsen) rather than following leader
    /// hints: faults then hit them where they are.
    #[serde(default)]
    pub sticky: bool,
    /// A lock workload instead of the key-value one: each client acquires one of `keys` named
    /// locks, holds it, releases it, and again; `mix` is unused. Recorded as the mutex model's
    /// acquire and release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockSpec>,
}

/// How a lock workload holds its locks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockSpec {
    /// How long a client holds a lock once it has it.
    #[serde(with = "duration_serde")]
    pub hold: Duration,
    /// The time to live of the lease a lock is held under, kept alive while held (etcd's lock
    /// API ties a lock to a lease: if the lease expires, the lock is released).
    #[serde(with = "duration_serde")]
    pub lease_ttl: Duration,
}

fn default_value_size() -> usize {
    8
}

/// Relative weights of the operations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mix {
    pub read: u32,
    pub write: u32,
    pub cas: u32,
    pub delete: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Distribution {
    #[default]
    Uniform,
    /// Key `i` (from 0) has weight `1 / (i + 1)^theta`.
    Zipfian { theta: f64 },
    /// A `fraction` of the keys receives a `probability` of the operations.
    Hotspot { fraction: f64, probability: f64 },
}

/// Durations as humantime strings ("500ms", "2s") in TOML.
pub mod duration_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Read,
    Write,
    Cas,
    Delete,
}

/// Built-in profiles: (name, description).
pub const BUILTINS: &[(&str, &str)] = &[
    (
        "register",
        "Jepsen-like contended registers: 8 keys, reads, writes and CAS, 10 sticky clients, 400 ops/s",
    ),
    (
        "registers",
        "many registers: 1000 keys, reads, writes and CAS, 10 sticky clients, 500 ops/s (a stale \
         copy of a key lives long enough to be read)",
    ),
    (
        "ycsb-a",
        "update heavy: 50% read, 50% write, zipfian over 1000 keys, 32 clients, closed loop",
    ),
    (
        "ycsb-b",
        "read mostly: 95% read, 5% write, zipfian over 1000 keys, 32 clients, closed loop",
    ),
    (
        "ycsb-c",
        "read only: 100% read, zipfian over 1000 keys, 32 clients, closed loop",
    ),
    (
        "ycsb-f",
        "read-modify-write: 50% read, 50% CAS, zipfian over 1000 keys, 32 clients, closed loop",
    ),
    (
        "lock",
        "one named lock: 5 clients acquire it under a 2 s lease kept alive, hold it 200 ms, \
         release it (etcd only)",
    ),
];

fn ycsb(name: &str, read: u32, write: u32, cas: u32) -> Profile {
    Profile {
        name: name.into(),
        mix: Mix {
            read,
            write,
            cas,
            delete: 0,
        },
        keys: 1000,
        distribution: Distribution::Zipfian { theta: 0.99 },
        value_size: 100,
        concurrency: 32,
        rate: None,
        op_limit: None,
        timeout: Duration::from_secs(2),
        sticky: false,
        lock: None,
    }
}

impl Profile {
    pub fn builtin(name: &str) -> Option<Profile> {
        Some(match name {
            "register" => Profile {
                name: "register".into(),
                mix: Mix {
                    read: 50,
                    write: 30,
                    cas: 20,
                    delete: 0,
                },
                keys: 8,
                distribution: Distribution::Uniform,
                value_size: 8,
                concurrency: 10,
                rate: Some(400.0),
                op_limit: None,
                timeout: Duration::from_millis(1000),
                sticky: true,
                lock: None,
            },
            // Each key is written about once every 5 s: a replica that missed a write, or kept one
            // it should have dropped, goes on answering with it long after, where `register`'s
            // 8 keys are overwritten within milliseconds and hide it.
            "registers" => Profile {
                name: "registers".into(),
                mix: Mix {
                    read: 50,
                    write: 40,
                    cas: 10,
                    delete: 0,
                },
                keys: 1000,
                rate: Some(500.0),
                ..Profile::builtin("register").expect("built in")
            },
            "lock" => Profile {
                name: "lock".into(),
                mix: Mix::default(),
                keys: 1,
                distribution: Distribution::Uniform,
                value_size: 8,
                concurrency: 5,
                rate: None,
                op_limit: None,
                // Waiting for the lock is part of acquiring it: up to the other four's holds.
                timeout: Duration::from_secs(5),
                sticky: true,
                lock: Some(LockSpec {
                    hold: Duration::from_millis(200),
                    lease_ttl: Duration::from_secs(2),
                }),
            },
            "ycsb-a" => ycsb("ycsb-a", 50, 50, 0),
            "ycsb-b" => ycsb("ycsb-b", 95, 5, 0),
            "ycsb-c" => ycsb("ycsb-c", 100, 0, 0),
            "ycsb-f" => ycsb("ycsb-f", 50, 0, 50),
            _ => return None,
        })
    }

    /// A built-in name, or a path to a TOML profile.
    pub fn from_name_or_file(s: &str) -> anyhow::Result<Profile> {
        if let Some(p) = Profile::builtin(s) {
            return Ok(p);
        }
        let path = Path::new(s);
        if !path.exists() {
            let names: Vec<&str> = BUILTINS.iter().map(|b| b.0).collect();
            anyhow::bail!(
                "no profile named {s:?} (built-ins: {}) and no such file",
                names.join(", ")
            );
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let p: Profile = toml::from_str(&text).map_err(|e| {
            let where_ = kvnode::config::toml_error(&text, &e);
            anyhow::anyhow!("{}: {where_}", path.display())
        })?;
        p.validate()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<(), String> {
        let m = &self.mix;
        if let Some(lock) = &self.lock {
            if lock.lease_ttl < Duration::from_secs(1) {
                return Err("lock.lease_ttl: etcd's leases last at least 1s".into());
            }
        } else if m.read + m.write + m.cas + m.delete == 0 {
            return Err("mix: at least one operation needs a weight".into());
        }
        if self.keys == 0 {
            return Err("keys: must be at least 1".into());
        }
        if self.concurrency == 0 {
            return Err("concurrency: must be at least 1".into());
        }
        if self.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return Err("rate: must be positive".into());
        }
        match self.distribution {
            Distribution::Zipfian { theta } if theta.is_nan() || theta <= 0.0 => {
                Err("distribution.theta: must be positive".into())
            }
            Distribution::Hotspot {
                fraction,
                probability,
            } if fraction.is_nan()
                || fraction <= 0.0
                || fraction >= 1.0
                || !(0.0..=1.0).contains(&probability) =>
            {
                Err("distribution: hotspot needs 0 < fraction < 1 and 0 <= probability <= 1".into())
            }
            _ => Ok(()),
        }
    }

    pub fn pick_op(&self, rng: &mut impl rand::Rng) -> OpKind {
        let m = &self.mix;
        let mut x = rng.random_range(0..m.read + m.write + m.cas + m.delete);
        for (w, kind) in [
            (m.read, OpKind::Read),
            (m.write, OpKind::Write),
            (m.cas, OpKind::Cas),
        ] {
            if x < w {
                return kind;
            }
            x -= w;
        }
        OpKind::Delete
    }
}

/// Draws key indices from a profile's distribution.
pub struct KeyChooser {
    keys: u64,
    /// Cumulative weights for zipfian keys.
    cdf: Vec<f64>,
    hotspot: Option<(u64, f64)>,
}

impl KeyChooser {
    pub fn new(profile: &Profile) -> KeyChooser {
        let keys = profile.keys;
        let mut cdf = Vec::new();
        let mut hotspot = None;
        match profile.distribution {
            Distribution::Uniform => {}
            Distribution::Zipfian { theta } => {
                let mut total = 0.0;
                for i in 0..keys {
                    total += 1.0 / ((i + 1) as f64).powf(theta);
                    cdf.push(total);
                }
                for c in &mut cdf {
                    *c /= total;
                }
            }
            Distribution::Hotspot {
                fraction,
                probability,
            } => {
                let hot = ((keys as f64 * fraction).ceil() as u64).clamp(1, keys);
                hotspot = Some((hot, probability));
            }
        }
        KeyChooser { keys, cdf, hotspot }
    }

    pub fn pick(&self, rng: &mut impl rand::Rng) -> u64 {
        if !self.cdf.is_empty() {
            let x: f64 = rng.random();
            return (self.cdf.partition_point(|&c| c < x) as u64).min(self.keys - 1);
        }
        if let Some((hot, p)) = self.hotspot
            && hot < self.keys
        {
            return if rng.random_bool(p) {
                rng.random_range(0..hot)
            } else {
                rng.random_range(hot..self.keys)
            };
        }
        rng.random_range(0..self.keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn every_builtin_is_valid_and_round_trips_through_toml() {
        for (name, _) in BUILTINS {
            let p = Profile::builtin(name).unwrap();
            p.validate().unwrap();
            let text = toml::to_string(&p).unwrap();
            assert_eq!(toml::from_str::<Profile>(&text).unwrap(), p, "{text}");
        }
    }

    #[test]
    fn zipfian_keys_favour_the_first_and_hotspots_their_hot_set() {
        let mut p = Profile::builtin("ycsb-a").unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let z = KeyChooser::new(&p);
        let first = (0..10_000).filter(|_| z.pick(&mut rng) == 0).count();
        assert!(first > 500, "key 0 drawn {first} times of 10000");
        p.distribution = Distribution::Hotspot {
            fraction: 0.1,
            probability: 0.9,
        };
        let h = KeyChooser::new(&p);
        let hot = (0..10_000).filter(|_| h.pick(&mut rng) < 100).count();
        assert!((8_500..9_500).contains(&hot), "{hot}");
    }

    #[test]
    fn the_mix_is_respected() {
        let p = Profile::builtin("ycsb-b").unwrap();
        let mut rng = StdRng::seed_from_u64(2);
        let reads = (0..10_000)
            .filter(|_| p.pick_op(&mut rng) == OpKind::Read)
            .count();
        assert!((9_300..9_700).contains(&reads), "{reads}");
    }
}
