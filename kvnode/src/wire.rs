//! The wire protocol, for clients and for peers: length-prefixed, versioned frames carrying
//! postcard-encoded messages.
//!
//! A frame is `[u32 big-endian length N][u8 version][N-1 bytes of payload]`, with N at most
//! [`MAX_FRAME`]. Requests carry ids so that many can be in flight on one connection.
//!
//! The codec is pure: [`decode`] looks at a buffer and says "complete frame of this many bytes",
//! "incomplete" (not an error: wait for more) or why the bytes can never be a frame.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::command::{Op, Reply};
use crate::paxos::NodeId;

pub const VERSION: u8 = 1;
/// Largest frame accepted (length field value), bytes.
pub const MAX_FRAME: usize = 16 << 20;
/// Largest key plus value of one operation, bytes. Nodes refuse larger ones: entries travel
/// between replicas batched in frames, so one entry must stay well below [`MAX_FRAME`].
pub const MAX_OP_BYTES: usize = 1 << 20;

/// Why bytes cannot be a frame. The connection that sent them is closed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the maximum of {MAX_FRAME}")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("unsupported protocol version {0} (this node speaks {VERSION})")]
    Version(u8),
    #[error("malformed payload: {0}")]
    Malformed(String),
}

/// Appends one frame holding `msg` to `buf`. A message larger than [`MAX_FRAME`] is refused
/// (and `buf` left as it was): the receiver would close the connection on it.
pub fn encode<T: Serialize>(msg: &T, buf: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0, 0, 0, VERSION]);
    let buf_with = postcard::to_extend(msg, std::mem::take(buf)).expect("messages serialise");
    *buf = buf_with;
    let len = buf.len() - start - 4;
    if len > MAX_FRAME {
        buf.truncate(start);
        return Err(FrameError::TooLarge(len));
    }
    buf[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Decodes the frame at the start of `buf`: `Ok(None)` if more bytes are needed, else the
/// message and how many bytes it used.
pub fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, FrameError> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(header.try_into().expect("four bytes")) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    if body[0] != VERSION {
        return Err(FrameError::Version(body[0]));
    }
    let msg = postcard::from_bytes(&body[1..]).map_err(|e| FrameError::Malformed(e.to_string()))?;
    Ok(Some((msg, 4 + len)))
}

/// A client's request: `(client, seq)` identifies the operation across retries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub client: u64,
    pub seq: u64,
    pub op: Op,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    pub result: Outcome,
    /// The leader of the key's partition, if known: clients send there next time.
    pub leader: Option<NodeId>,
}

/// How a request ended, in the terms the bench records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Ok(Reply),
    /// Definitely did not take effect (safe to retry).
    Failed(String),
    /// May or may not have taken effect.
    Unknown(String),
}

/// Node-to-node traffic on the peer port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// First frame on a connection: who is calling.
    Hello { from: NodeId },
    /// A Paxos replica message.
    Paxos {
        partition: u32,
        msg: crate::paxos::Message,
    },
    /// A client request handed on towards the partition's leader; `hops` bounds the chain.
    Forward { id: u64, hops: u8, request: Request },
    ForwardReply {
        id: u64,
        result: Outcome,
        leader: Option<NodeId>,
    },
    /// A Zab replica message. (Last, so that the encoding of the variants above, Paxos's among
    /// them, is what it was before Zab existed.)
    Zab {
        partition: u32,
        msg: crate::zab::Message,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            id: 7,
            client: 1,
            seq: 2,
            op: Op::Put {
                key: "k".into(),
                value: "v".into(),
            },
        }
    }

    #[test]
    fn a_message_too_large_for_a_frame_is_refused_and_leaves_the_buffer_as_it_was() {
        let mut buf = Vec::new();
        encode(&request(), &mut buf).unwrap();
        let before = buf.clone();
        let huge = "x".repeat(MAX_FRAME);
        assert!(matches!(
            encode(&huge, &mut buf),
            Err(FrameError::TooLarge(n)) if n > MAX_FRAME
        ));
        assert_eq!(buf, before);
    }

    #[test]
    fn frames_round_trip_and_split_anywhere_is_incomplete() {
        let mut buf = Vec::new();
        encode(&request(), &mut buf).unwrap();
        encode(&request(), &mut buf).unwrap();
        let one = buf.len() / 2;
        for cut in 0..one {
            assert_eq!(decode::<Request>(&buf[..cut]), Ok(None), "cut at {cut}");
        }
        let (msg, used) = decode::<Request>(&buf).unwrap().unwrap();
        assert_eq!((msg, used), (request(), one));
        assert_eq!(
            decode::<Request>(&buf[used..]).unwrap().unwrap().0,
            request()
        );
    }

    #[test]
    fn oversized_empty_foreign_and_garbage_frames_are_errors() {
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert_eq!(
            decode::<Request>(&huge),
            Err(FrameError::TooLarge(MAX_FRAME + 1))
        );
        assert_eq!(decode::<Request>(&[0, 0, 0, 0]), Err(FrameError::Empty));
        assert_eq!(
            decode::<Request>(&[0, 0, 0, 2, 9, 0]),
            Err(FrameError::Version(9))
        );
        let garbage = [0, 0, 0, 4, VERSION, 0xff, 0xff, 0xff];
        assert!(matches!(
            decode::<Request>(&garbage),
            Err(FrameError::Malformed(_))
        ));
    }
}
