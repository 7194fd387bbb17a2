//! `bench compare`: the same seed, workload and fault schedule against several systems, one
//! after the other, each through `bench run`'s own code ([`crate::run::run_in`]); then one page
//! with them side by side (`reports::compare`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use checker::Verdict;
use kvnode::config::{ClusterConfig, Protocol};

use crate::cli::{CompareArgs, EXIT_USAGE, RunArgs};
use crate::config::RunConfig;
use crate::run::{new_latest, run_in};

/// Runs `bench compare`; returns the process exit code.
pub fn main(args: &CompareArgs) -> u8 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the async runtime");
    match runtime.block_on(compare(args)) {
        Ok(verdict) => verdict.exit_code() as u8,
        Err(e) => {
            eprintln!("bench compare: {e:#}");
            EXIT_USAGE
        }
    }
}

/// One side to run: its directory name and the flags of its `bench run`.
#[derive(Debug)]
struct SideSpec {
    slug: String,
    args: RunArgs,
}

/// `paxos`, `zab`, `kvnode:paxos`, `kvnode:zab`, `kvnode`, `etcd` or `maelstrom:PATH`, as the
/// flags of a `bench run` over `base`: the system's own, and of `base`'s only those that apply
/// to that system (`--node-arg` goes to kvnode sides, `--bin-arg` to Maelstrom ones).
fn side(spec: &str, base: &RunArgs) -> anyhow::Result<SideSpec> {
    let mut args = base.clone();
    let kvnode = |protocol: Protocol, mut args: RunArgs| {
        args.system = Some("kvnode".into());
        args.protocol = Some(protocol);
        args.bin_arg.clear();
        args.etcd_bin = None;
        args.etcd_serializable_reads = false;
        SideSpec {
            slug: protocol.to_string(),
            args,
        }
    };
    let not_kvnode = |args: &mut RunArgs| {
        args.kvnode = None;
        args.node_arg.clear();
        args.snapshot_every = None;
        args.wal_checkpoint_bytes = None;
    };
    Ok(match spec.strip_prefix("kvnode:").unwrap_or(spec) {
        "paxos" | "kvnode" => kvnode(Protocol::Paxos, args),
        "zab" => kvnode(Protocol::Zab, args),
        "etcd" => {
            not_kvnode(&mut args);
            args.bin_arg.clear();
            args.system = Some("etcd".into());
            SideSpec {
                slug: "etcd".into(),
                args,
            }
        }
        _ => match spec.strip_prefix("maelstrom:") {
            Some(bin) if !bin.is_empty() => {
                not_kvnode(&mut args);
                args.etcd_bin = None;
                args.etcd_serializable_reads = false;
                args.system = Some("maelstrom".into());
                args.bin = Some(PathBuf::from(bin));
                let stem = Path::new(bin)
                    .file_stem()
                    .map_or_else(|| "node".into(), |s| s.to_string_lossy().into_owned());
                SideSpec {
                    slug: format!("maelstrom-{stem}"),
                    args,
                }
            }
            _ => bail!(
                "--side {spec}: unknown; a side is paxos, zab (or kvnode:paxos, kvnode:zab), \
                 etcd or maelstrom:PATH"
            ),
        },
    })
}

async fn compare(args: &CompareArgs) -> anyhow::Result<Verdict> {
    let out = args
        .run
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs"));
    if !args.runs.is_empty() {
        return render_recorded(&args.runs, &out);
    }
    let base = &args.run;
    for (flag, given) in [
        ("--system", base.system.is_some()),
        ("--protocol", base.protocol.is_some()),
        ("--bin", base.bin.is_some()),
    ] {
        if given {
            bail!(
                "{flag} is not for bench compare: name each system with --side (paxos, zab, etcd, maelstrom:PATH)"
            );
        }
    }
    let specs: Vec<String> = if args.sides.is_empty() {
        vec!["paxos".into(), "zab".into()]
    } else {
        args.sides.clone()
    };
    let mut sides: Vec<SideSpec> = Vec::new();
    let mut slugs: Vec<String> = Vec::new();
    for spec in &specs {
        let mut s = side(spec, base)?;
        // The same system twice: each run gets a directory of its own (zab, zab-2).
        let before = slugs.iter().filter(|t| **t == s.slug).count();
        slugs.push(s.slug.clone());
        if before > 0 {
            s.slug = format!("{}-{}", s.slug, before + 1);
        }
        sides.push(s);
    }
    // One seed for every side, drawn once (or the recorded one of --config).
    let seed = match (base.seed, &base.config) {
        (Some(seed), _) => Some(seed),
        (None, Some(_)) => None,
        (None, None) => Some(RunConfig::fresh_seed()),
    };
    // Every side resolved before any runs: a bad flag for the last side must not cost the
    // others' run time.
    let mut configs = Vec::new();
    for s in &mut sides {
        if seed.is_some() {
            s.args.seed = seed;
        }
        let cfg = RunConfig::resolve(&s.args).with_context(|| format!("side {}", s.slug))?;
        configs.push(cfg);
    }
    let test = configs[0].test.clone();
    let dir = new_latest(&out.join("compare"), &test)?;
    eprintln!(
        "bench compare: {} with seed {}, one after the other -> {}",
        sides
            .iter()
            .map(|s| s.slug.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        configs[0].seed,
        dir.display()
    );
    let mut dirs = Vec::new();
    for (s, cfg) in sides.iter().zip(configs) {
        let side_dir = dir.join(&s.slug);
        std::fs::create_dir_all(&side_dir)
            .with_context(|| format!("create {}", side_dir.display()))?;
        eprintln!("\nbench compare: side {}", s.slug);
        run_in(cfg, s.args.kvnode.as_deref(), &side_dir, None)
            .await
            .with_context(|| format!("side {}", s.slug))?;
        dirs.push(side_dir.clone());
        let interrupted =
            reports::read_results(&side_dir.join("results.json")).is_ok_and(|r| r.interrupted);
        if interrupted {
            eprintln!(
                "bench compare: interrupted: the sides after {} do not run",
                s.slug
            );
            break;
        }
    }
    let verdict = render(&dir, &dirs)?;
    write_index(&out);
    if dirs.len() < sides.len() {
        return Ok(Verdict::Unknown.max_by_severity(verdict));
    }
    Ok(verdict)
}

/// `--runs`: the page from recorded run directories, into a compare directory of its own.
fn render_recorded(runs: &[PathBuf], out: &Path) -> anyhow::Result<Verdict> {
    let first = reports::read_results(&runs[0].join("results.json"))?;
    let dir = new_latest(&out.join("compare"), &first.test)?;
    let dirs = runs
        .iter()
        .map(|r| std::path::absolute(r).with_context(|| r.display().to_string()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let verdict = render(&dir, &dirs)?;
    write_index(out);
    Ok(verdict)
}

/// The runs index under `out` lists the comparison and its sides' runs; a failure to write it
/// is told, not fatal (the page is written).
fn write_index(out: &Path) {
    if let Err(e) = reports::write_index(out) {
        eprintln!("bench compare: no runs index: {e}");
    }
}

/// Writes the page into `dir`, prints each side's verdict and the page's path; returns the
/// worst verdict.
fn render(dir: &Path, runs: &[PathBuf]) -> anyhow::Result<Verdict> {
    let mut sides = Vec::new();
    let mut worst = Verdict::Valid;
    println!();
    for run in runs {
        let results = reports::read_results(&run.join("results.json"))?;
        println!(
            "{:<24} {:<8} {:>7.0} ops/s  {}",
            results.system(),
            results.verdict.name().to_uppercase(),
            results.throughput_ops_per_s,
            run.display()
        );
        worst = worst.max_by_severity(results.verdict);
        sides.push(reports::compare::Side {
            dir: run.clone(),
            partition_of: partition_map(run),
        });
    }
    let page = reports::compare::render(dir, &sides)?;
    println!("compare: {}", page.html.display());
    Ok(worst)
}

/// kvnode's key-to-partition map, from the run's `cluster.toml`; `None` for other systems.
fn partition_map(run: &Path) -> Option<reports::compare::PartitionOf> {
    let text = std::fs::read_to_string(run.join("cluster.toml")).ok()?;
    let config = ClusterConfig::parse(&text).ok()?;
    Some(Box::new(move |key| config.partition_of(key)))
}

/// The order of verdicts by how bad they are, for the worst of several runs.
trait Severity {
    fn max_by_severity(self, other: Verdict) -> Verdict;
}

impl Severity for Verdict {
    /// Invalid over unknown over valid (the exit codes 1, 2, 0).
    fn max_by_severity(self, other: Verdict) -> Verdict {
        let rank = |v: Verdict| match v {
            Verdict::Valid => 0,
            Verdict::Unknown => 1,
            Verdict::Invalid => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_take_only_the_flags_of_their_system() {
        let base = RunArgs {
            node_arg: vec!["--unsafe-read-local".into()],
            bin_arg: vec!["-v".into()],
            ..RunArgs::default()
        };
        let zab = side("kvnode:zab", &base).unwrap();
        assert_eq!(zab.slug, "zab");
        assert_eq!(zab.args.protocol, Some(Protocol::Zab));
        assert_eq!(zab.args.node_arg, ["--unsafe-read-local"]);
        assert!(zab.args.bin_arg.is_empty());
        let etcd = side("etcd", &base).unwrap();
        assert!(etcd.args.node_arg.is_empty() && etcd.args.protocol.is_none());
        let m = side("maelstrom:examples/lin_kv.py", &base).unwrap();
        assert_eq!(m.slug, "maelstrom-lin_kv");
        assert_eq!(m.args.bin_arg, ["-v"]);
        let err = side("raft", &base).unwrap_err().to_string();
        assert!(
            err.starts_with("--side raft: unknown") && !err.contains('\n'),
            "{err}"
        );
        assert!(side("maelstrom:", &base).is_err());
    }

    #[test]
    fn the_worst_verdict_wins() {
        use Verdict::*;
        assert_eq!(Valid.max_by_severity(Unknown), Unknown);
        assert_eq!(Invalid.max_by_severity(Unknown), Invalid);
        assert_eq!(Unknown.max_by_severity(Valid), Unknown);
    }
}
