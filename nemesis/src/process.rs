//! Process faults through Unix signals, sent to a whole process group.
//!
//! The bench starts each node in its own process group (`Command::process_group(0)`, so the
//! group id equals the node's pid) and signals the group, which also reaches any children the
//! node started. Contract of every `*_group` function: it sends one signal and returns; delivery
//! is asynchronous, so a caller that needs the effect (a stopped state, an exit) waits for it
//! (`wait` on the child, or [`state`]). Group ids 0 and 1 and the bench's own group are refused,
//! since signalling them would hit the bench itself or every process of the user.

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, getpgrp};

use crate::NemesisError;

/// SIGKILL: the crash fault. The group cannot clean up; reap it with `wait`.
pub fn kill_group(pgid: u32) -> Result<(), NemesisError> {
    signal_group(pgid, Signal::SIGKILL)
}

/// SIGSTOP: the pause fault. The group stays stopped until [`resume_group`].
pub fn pause_group(pgid: u32) -> Result<(), NemesisError> {
    signal_group(pgid, Signal::SIGSTOP)
}

/// SIGCONT: ends a pause.
pub fn resume_group(pgid: u32) -> Result<(), NemesisError> {
    signal_group(pgid, Signal::SIGCONT)
}

/// SIGTERM: asks the group to shut down gracefully (a stopped group must be resumed first to
/// act on it).
pub fn terminate_group(pgid: u32) -> Result<(), NemesisError> {
    signal_group(pgid, Signal::SIGTERM)
}

fn signal_group(pgid: u32, signal: Signal) -> Result<(), NemesisError> {
    let refuse = |reason| Err(NemesisError::RefusedGroup { pgid, reason });
    let Ok(raw) = i32::try_from(pgid) else {
        return refuse("not a valid process group id");
    };
    if raw <= 1 {
        return refuse("0 and 1 would signal the bench's own group or init's");
    }
    if getpgrp().as_raw() == raw {
        return refuse("it is the bench's own process group");
    }
    killpg(Pid::from_raw(raw), signal).map_err(|errno| match errno {
        Errno::ESRCH => NemesisError::NoSuchGroup { pgid },
        errno => NemesisError::Signal {
            pgid,
            signal: signal.as_str(),
            errno,
        },
    })
}

/// The scheduler state letter of a process from `/proc/<pid>/stat` (`R`, `S`, `D`, `T` stopped,
/// `Z` zombie, ...), or `None` if there is no such process.
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may itself hold spaces and parentheses; the state is the
    // first field after the last `)`.
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// Whether `pid` is a live process. A zombie (exited, not yet reaped) counts as dead, unlike
/// `kill(pid, 0)`, which succeeds on zombies.
pub fn is_alive(pid: u32) -> bool {
    state(pid).is_some_and(|s| s != 'Z' && s != 'X')
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Child, Command};

    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};

    use super::*;

    /// A `sleep` in its own process group, killed and reaped even if the test fails.
    struct Sleeper(Child);

    impl Sleeper {
        fn spawn() -> Sleeper {
            let child = Command::new("sleep").arg("60").process_group(0).spawn();
            Sleeper(child.expect("spawn sleep"))
        }

        fn pid(&self) -> u32 {
            self.0.id()
        }

        fn nix_pid(&self) -> Pid {
            Pid::from_raw(self.pid() as i32)
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn pause_stops_the_group_and_resume_continues_it() {
        let sleeper = Sleeper::spawn();
        assert!(is_alive(sleeper.pid()));

        pause_group(sleeper.pid()).unwrap();
        // WUNTRACED blocks until the child has stopped, without reaping it.
        let status = waitpid(sleeper.nix_pid(), Some(WaitPidFlag::WUNTRACED)).unwrap();
        assert!(
            matches!(status, WaitStatus::Stopped(_, Signal::SIGSTOP)),
            "{status:?}"
        );
        assert_eq!(state(sleeper.pid()), Some('T'));
        assert!(is_alive(sleeper.pid()), "a paused process is alive");

        resume_group(sleeper.pid()).unwrap();
        let status = waitpid(sleeper.nix_pid(), Some(WaitPidFlag::WCONTINUED)).unwrap();
        assert!(matches!(status, WaitStatus::Continued(_)), "{status:?}");
        assert_ne!(state(sleeper.pid()), Some('T'));
    }

    #[test]
    fn killed_group_is_dead_while_still_a_zombie_and_wait_reaps_it() {
        let mut sleeper = Sleeper::spawn();
        kill_group(sleeper.pid()).unwrap();
        // WNOWAIT: block until it has exited but leave it a zombie.
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
        waitid(Id::Pid(sleeper.nix_pid()), flags).unwrap();
        assert_eq!(state(sleeper.pid()), Some('Z'));
        assert!(!is_alive(sleeper.pid()), "a zombie counts as dead");

        let status = sleeper.0.wait().unwrap();
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        assert_eq!(state(sleeper.pid()), None, "reaped");
    }

    #[test]
    fn terminate_ends_a_sleep() {
        let mut sleeper = Sleeper::spawn();
        terminate_group(sleeper.pid()).unwrap();
        let status = sleeper.0.wait().unwrap();
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
    }

    #[test]
    fn signalling_a_reaped_group_names_it_as_gone() {
        let mut sleeper = Sleeper::spawn();
        let pid = sleeper.pid();
        kill_group(pid).unwrap();
        sleeper.0.wait().unwrap();
        // SIGCONT, harmless should the pid already have been reused.
        let err = resume_group(pid).unwrap_err();
        assert!(
            matches!(err, NemesisError::NoSuchGroup { pgid } if pgid == pid),
            "{err}"
        );
    }

    #[test]
    fn refuses_groups_that_would_hit_the_bench_or_everyone() {
        let own = getpgrp().as_raw() as u32;
        for pgid in [0, 1, own, u32::MAX] {
            let err = kill_group(pgid).unwrap_err();
            assert!(
                matches!(err, NemesisError::RefusedGroup { .. }),
                "{pgid}: {err}"
            );
        }
    }
}
