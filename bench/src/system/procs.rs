//! The nodes' processes: each in its own process group, with a parent-death signal, killed and
//! reaped on every path out (shutdown, drop, the bench's own death).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};

/// One node's process slot: `child` is `None` while it is down.
pub(crate) struct NodeProc {
    pub(crate) name: String,
    pub(crate) child: Option<Child>,
    pub(crate) paused: bool,
    /// Its log (stderr, and stdout too where stdout is not the protocol).
    pub(crate) log: PathBuf,
}

/// The processes of a cluster's nodes, in node order.
pub(crate) struct NodeProcs {
    pub(crate) nodes: Vec<NodeProc>,
}

impl NodeProcs {
    pub(crate) fn new(names: Vec<String>, log: impl Fn(&str) -> PathBuf) -> NodeProcs {
        NodeProcs {
            nodes: names
                .into_iter()
                .map(|name| NodeProc {
                    log: log(&name),
                    name,
                    child: None,
                    paused: false,
                })
                .collect(),
        }
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    pub(crate) fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Spawns `cmd` as node `i` in a process group of its own that dies with the bench.
    pub(crate) fn spawn(
        &mut self,
        i: usize,
        mut cmd: Command,
        what: &str,
    ) -> anyhow::Result<&mut Child> {
        cmd.process_group(0);
        // SAFETY: only async-signal-safe calls (prctl) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("start {what} as {}: {e}", self.nodes[i].name))?;
        self.nodes[i].paused = false;
        Ok(self.nodes[i].child.insert(child))
    }

    pub(crate) fn is_up(&self, name: &str) -> bool {
        self.index(name)
            .is_some_and(|i| self.nodes[i].child.is_some())
    }

    /// SIGKILL to the node's process group; returns once it is reaped (so that a restart never
    /// races the dead node for its ports and data directory).
    pub(crate) async fn kill(&mut self, name: &str) {
        if let Some(i) = self.index(name)
            && let Some(child) = self.nodes[i].child.take()
        {
            if self.nodes[i].paused {
                let _ = nemesis::process::resume_group(child.id());
            }
            let _ = nemesis::process::kill_group(child.id());
            reap(vec![child]).await;
        }
    }

    pub(crate) fn pause(&mut self, name: &str) {
        if let Some(i) = self.index(name)
            && let Some(child) = &self.nodes[i].child
        {
            let _ = nemesis::process::pause_group(child.id());
            self.nodes[i].paused = true;
        }
    }

    pub(crate) fn resume(&mut self, name: &str) {
        if let Some(i) = self.index(name)
            && let Some(child) = &self.nodes[i].child
        {
            let _ = nemesis::process::resume_group(child.id());
            self.nodes[i].paused = false;
        }
    }

    /// Resumes every paused node; returns the indices of those that are down.
    pub(crate) fn resume_all(&mut self) -> Vec<usize> {
        for n in self.names() {
            self.resume(&n);
        }
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_none())
            .collect()
    }

    /// The nodes that exited by themselves since the last call (not those the bench killed),
    /// each with the last error line of its log.
    pub(crate) fn exited(&mut self) -> Vec<NodeExit> {
        let mut exits = Vec::new();
        for n in &mut self.nodes {
            if let Some(child) = n.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                // Whatever it started lives on in its process group: end it too.
                let _ = nemesis::process::kill_group(child.id());
                n.child = None;
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                // Its last error line says why (clap, for one, ends with a hint instead).
                let lines = || text.lines().rev().filter(|l| !l.trim().is_empty());
                let why = lines()
                    .find(|l| l.to_ascii_lowercase().contains("error"))
                    .or_else(|| lines().next())
                    .unwrap_or("(empty log)")
                    .to_owned();
                exits.push(NodeExit {
                    name: n.name.clone(),
                    status,
                    why,
                    log: n.log.clone(),
                });
            }
        }
        exits
    }

    /// Asks every node to stop (SIGTERM to its group, a paused one resumed first), waits up to
    /// `grace` in all for them to exit, kills whatever is left, and returns once each is reaped.
    /// Idempotent. For nodes that log something worth keeping on a clean exit.
    pub(crate) async fn stop(&mut self, grace: std::time::Duration) {
        let mut asked = Vec::new();
        for n in &mut self.nodes {
            if let Some(child) = n.child.take() {
                if n.paused {
                    let _ = nemesis::process::resume_group(child.id());
                }
                let _ = nemesis::process::terminate_group(child.id());
                asked.push(child);
            }
        }
        if asked.is_empty() {
            return;
        }
        let deadline = std::time::Instant::now() + grace;
        let reaped = tokio::task::spawn_blocking(move || {
            for mut child in asked {
                while matches!(child.try_wait(), Ok(None)) {
                    if std::time::Instant::now() >= deadline {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                // Whatever is left of its group (or it, if it did not stop in time) dies now.
                let _ = nemesis::process::kill_group(child.id());
                let _ = child.wait();
            }
        });
        let _ = reaped.await;
    }

    /// Kills every node and returns once each is reaped. Idempotent.
    pub(crate) async fn shutdown(&mut self) {
        reap(self.kill_all()).await;
    }

    /// SIGKILL to every node's process group; returns the children, for the caller to reap.
    fn kill_all(&mut self) -> Vec<Child> {
        let mut killed = Vec::new();
        for n in &mut self.nodes {
            if let Some(child) = n.child.take() {
                let pid = child.id();
                if n.paused {
                    let _ = nemesis::process::resume_group(pid);
                }
                let _ = nemesis::process::kill_group(pid);
                killed.push(child);
            }
        }
        killed
    }
}

impl Drop for NodeProcs {
    /// Drop cannot await, so it reaps in place; the nodes have just been sent SIGKILL, so the
    /// wait is short.
    fn drop(&mut self) {
        for mut child in self.kill_all() {
            let _ = child.wait();
        }
    }
}

/// Waits for killed nodes on tokio's blocking pool, so the runtime's workers (the clients, the
/// nemesis, the network) keep running meanwhile. The children move to the blocking thread, so
/// they are reaped even if the caller stops waiting.
async fn reap(killed: Vec<Child>) {
    if killed.is_empty() {
        return;
    }
    let reaped = tokio::task::spawn_blocking(move || {
        for mut child in killed {
            let _ = child.wait();
        }
    });
    let _ = reaped.await;
}

/// A node that exited by itself, as [`crate::system::System::exited`] reports it.
#[derive(Debug)]
pub struct NodeExit {
    pub name: String,
    pub status: std::process::ExitStatus,
    /// The last error line of its log (or its last line).
    pub why: String,
    pub log: PathBuf,
}

impl std::fmt::Display for NodeExit {
    /// `(exit status: 1): <why> (log: <path>)`: follows "node NAME exited ...".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "({}): {} (log: {})",
            self.status,
            self.why,
            self.log.display()
        )
    }
}
