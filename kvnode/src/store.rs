//! The replicated state machine of one partition: a map, plus client sessions that make
//! retried commands exactly-once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::{Command, Op, Reply};

/// Session of one client: the last sequence number applied and its reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    seq: u64,
    reply: Reply,
}

/// Contract: every replica applies the same commands in the same order and so holds the same
/// map and sessions. A command whose `(client, seq)` was already applied is not applied again;
/// it gets the reply recorded the first time (exactly-once retries). Sequence numbers of a
/// client must increase; an older one gets [`Reply::Stale`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    data: BTreeMap<String, String>,
    sessions: BTreeMap<u64, Session>,
}

impl Store {
    pub fn get(&self, key: &str) -> Option<&String> {
        self.data.get(key)
    }

    /// Applies a command from the decided log and returns its reply.
    pub fn apply(&mut self, cmd: &Command) -> Reply {
        if let Some(s) = self.sessions.get(&cmd.client) {
            if cmd.seq == s.seq {
                return s.reply.clone();
            }
            if cmd.seq < s.seq {
                return Reply::Stale;
            }
        }
        let reply = match &cmd.op {
            Op::Get { key } => Reply::Value(self.data.get(key).cloned()),
            Op::Put { key, value } => {
                self.data.insert(key.clone(), value.clone());
                Reply::Done
            }
            Op::Delete { key } => {
                self.data.remove(key);
                Reply::Done
            }
            Op::Cas { key, expected, new } => {
                let current = self.data.get(key);
                if current == expected.as_ref() {
                    self.data.insert(key.clone(), new.clone());
                    Reply::Swapped
                } else {
                    Reply::Mismatch {
                        current: current.cloned(),
                    }
                }
            }
        };
        self.sessions.insert(
            cmd.client,
            Session {
                seq: cmd.seq,
                reply: reply.clone(),
            },
        );
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(client: u64, seq: u64, op: Op) -> Command {
        Command { client, seq, op }
    }

    fn put(k: &str, v: &str) -> Op {
        Op::Put {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn a_retried_command_is_applied_once_and_gets_the_first_reply() {
        let mut s = Store::default();
        let cas = Op::Cas {
            key: "k".into(),
            expected: None,
            new: "a".into(),
        };
        assert_eq!(s.apply(&cmd(1, 1, cas.clone())), Reply::Swapped);
        s.apply(&cmd(2, 1, put("k", "b")));
        // The retry must not swap again, and must still report success.
        assert_eq!(s.apply(&cmd(1, 1, cas)), Reply::Swapped);
        assert_eq!(s.get("k").map(String::as_str), Some("b"));
    }

    #[test]
    fn an_older_sequence_number_is_stale_and_changes_nothing() {
        let mut s = Store::default();
        s.apply(&cmd(1, 5, put("k", "new")));
        assert_eq!(s.apply(&cmd(1, 4, put("k", "old"))), Reply::Stale);
        assert_eq!(s.get("k").map(String::as_str), Some("new"));
    }

    #[test]
    fn cas_reports_the_current_value_when_the_precondition_fails() {
        let mut s = Store::default();
        s.apply(&cmd(1, 1, put("k", "x")));
        let r = s.apply(&cmd(
            2,
            1,
            Op::Cas {
                key: "k".into(),
                expected: Some("y".into()),
                new: "z".into(),
            },
        ));
        assert_eq!(
            r,
            Reply::Mismatch {
                current: Some("x".into())
            }
        );
    }
}
