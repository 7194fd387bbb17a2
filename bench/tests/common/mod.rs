//! Helpers the `bench run` test files share.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::Output;

/// stdout and stderr together, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Live processes (not this test, not zombies) whose command line satisfies `matches`, as
/// `pid: command line`.
pub fn processes(matches: impl Fn(&str) -> bool) -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid = e.ok()?.file_name().into_string().ok()?;
            pid.parse::<u32>().ok()?;
            if pid == me {
                return None;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Zombies are dead; only their parent's wait is missing.
            if stat
                .rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z'))
            {
                return None;
            }
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            matches(&cmd).then(|| format!("{pid}: {cmd}"))
        })
        .collect()
}

/// The run `runs/latest` points at, under `out`.
pub fn latest(out: &Path) -> PathBuf {
    std::fs::canonicalize(out.join("latest")).expect("runs/latest points at the run")
}

/// Writes a schedule file `name` into `dir`; its path.
pub fn schedule(dir: &Path, name: &str, toml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_owned()
}
