//! What clients ask of the store, and what they get back.

use serde::{Deserialize, Serialize};

/// A replicated key-value operation. Keys and values are UTF-8 strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Get {
        key: String,
    },
    Put {
        key: String,
        value: String,
    },
    Delete {
        key: String,
    },
    /// Set `key` to `new` if it holds `expected` (`None`: if it is absent).
    Cas {
        key: String,
        expected: Option<String>,
        new: String,
    },
}

impl Op {
    /// Bytes of key and values it carries (what bounds its size on the wire).
    pub fn payload_len(&self) -> usize {
        match self {
            Op::Get { key } | Op::Delete { key } => key.len(),
            Op::Put { key, value } => key.len() + value.len(),
            Op::Cas { key, expected, new } => {
                key.len() + expected.as_ref().map_or(0, String::len) + new.len()
            }
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Op::Get { key } | Op::Put { key, .. } | Op::Delete { key } | Op::Cas { key, .. } => key,
        }
    }
}

/// An update as it goes through the replicated log: the client's session and sequence number
/// make retries exactly-once (see [`crate::store::Store`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub client: u64,
    pub seq: u64,
    pub op: Op,
}

/// The result of an operation that took effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A GET: the value, or `None` if the key is absent.
    Value(Option<String>),
    /// A PUT or DELETE.
    Done,
    /// A CAS whose precondition held.
    Swapped,
    /// A CAS whose precondition did not hold; nothing changed. Carries the current value.
    Mismatch { current: Option<String> },
    /// A retry of a sequence number older than the session's latest: it was not applied now.
    /// The client had already moved on, so this only reaches a confused client.
    Stale,
}
