//! kvlab's operations as Maelstrom lin-kv bodies, and the answers back as outcomes.
//!
//! Maelstrom's clients send integer keys and values, and nodes written for Maelstrom expect
//! that. Key `k5` is sent as `5`. The value client `w` writes as its `n`th operation
//! (`w3-17...` in the history) is sent as `w * 10^9 + n`, and an integer read back is turned
//! into the same text, so the history shows which write a read saw. An integer that no client
//! could have written (negative, or `n = 0`) is kept as its digits: the checker then reports a
//! read of a value never written.

use serde_json::{Value, json};

use crate::system::{Operation, Outcome};
use crate::workload::written_value;

const PER_CLIENT: i64 = 1_000_000_000;

/// `k5` → 5.
pub fn key(key: &str) -> Result<i64, String> {
    key.strip_prefix('k')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("key {key:?} has no integer form (keys are k0, k1, ...)"))
}

/// `w3-17..` → 3000000017.
pub fn value(value: &str) -> Result<i64, String> {
    let bare = value.trim_end_matches('.');
    let parsed = bare.strip_prefix('w').and_then(|rest| {
        let (w, n) = rest.split_once('-')?;
        let (w, n): (i64, i64) = (w.parse().ok()?, n.parse().ok()?);
        (n > 0 && n < PER_CLIENT && w >= 0).then(|| w * PER_CLIENT + n)
    });
    parsed.ok_or_else(|| format!("value {value:?} has no integer form"))
}

/// The inverse of [`value`], for values read back; `size` is the profile's value size.
pub fn value_text(v: &Value, size: usize) -> String {
    match integer(v) {
        Some(i) if i > 0 && i % PER_CLIENT != 0 => {
            written_value((i / PER_CLIENT) as usize, (i % PER_CLIENT) as u64, size)
        }
        _ => v.to_string(),
    }
}

/// An integer, also when written as a float with no fraction (`5.0`), as some JSON libraries
/// write every number.
pub fn integer(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        let f = v.as_f64()?;
        (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
    })
}

/// The request body (without `msg_id`).
pub fn request(op: &Operation) -> Result<Value, String> {
    Ok(match op {
        Operation::Read { key: k } => json!({"type": "read", "key": key(k)?}),
        Operation::Write { key: k, value: v } => {
            json!({"type": "write", "key": key(k)?, "value": value(v)?})
        }
        Operation::Cas {
            key: k,
            expected: Some(from),
            new,
        } => json!({"type": "cas", "key": key(k)?, "from": value(from)?, "to": value(new)?}),
        Operation::Cas { expected: None, .. } => {
            return Err("lin-kv has no CAS from an absent key".into());
        }
        Operation::Delete { .. } => return Err("lin-kv has no delete".into()),
        Operation::Acquire { .. } | Operation::Release { .. } => {
            return Err("lin-kv has no locks".into());
        }
    })
}

/// Maelstrom's error codes that say the operation did not happen.
const DEFINITE: [i64; 9] = [1, 10, 11, 12, 14, 20, 21, 22, 30];
const KEY_DOES_NOT_EXIST: i64 = 20;
const PRECONDITION_FAILED: i64 = 22;

/// Maelstrom's name for an error code (`doc/protocol.md`), for the history's `error`.
fn code_name(code: i64) -> &'static str {
    match code {
        0 => "timeout",
        1 => "node-not-found",
        10 => "not-supported",
        11 => "temporarily-unavailable",
        12 => "malformed-request",
        13 => "crash",
        14 => "abort",
        20 => "key-does-not-exist",
        21 => "key-already-exists",
        22 => "precondition-failed",
        30 => "txn-conflict",
        _ => "unknown code",
    }
}

/// The outcome of `op` answered with `reply` (a body); `size` is the profile's value size.
pub fn outcome(op: &Operation, reply: &Value, size: usize) -> Outcome {
    let kind = reply.get("type").and_then(Value::as_str).unwrap_or("");
    match (op, kind) {
        (Operation::Read { .. }, "read_ok") => match reply.get("value") {
            None | Some(Value::Null) => Outcome::Ok(None),
            Some(v) => Outcome::Ok(Some(value_text(v, size))),
        },
        (Operation::Write { .. }, "write_ok") | (Operation::Cas { .. }, "cas_ok") => {
            Outcome::Ok(None)
        }
        (_, "error") => {
            let code = reply.get("code").and_then(integer).unwrap_or(-1);
            let text = reply.get("text").and_then(Value::as_str).unwrap_or("");
            let why = if text.is_empty() {
                format!("error {code} ({})", code_name(code))
            } else {
                format!("error {code} ({}): {text}", code_name(code))
            };
            match (op, code) {
                // The key is absent: a read saw nothing, a CAS saw the key not hold `from`.
                (Operation::Read { .. }, KEY_DOES_NOT_EXIST) => Outcome::Ok(None),
                (Operation::Cas { .. }, KEY_DOES_NOT_EXIST) => Outcome::CasMiss(Some(None)),
                (Operation::Cas { .. }, PRECONDITION_FAILED) => Outcome::CasMiss(None),
                (_, c) if DEFINITE.contains(&c) => Outcome::Fail(why),
                _ => Outcome::Info(why),
            }
        }
        // An answer of the wrong type: nothing says whether the operation happened.
        (_, other) => Outcome::Info(format!("unexpected reply type {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read() -> Operation {
        Operation::Read { key: "k3".into() }
    }

    fn cas() -> Operation {
        Operation::Cas {
            key: "k3".into(),
            expected: Some("w1-2".into()),
            new: "w1-3".into(),
        }
    }

    #[test]
    fn keys_and_written_values_go_both_ways() {
        assert_eq!(key("k0"), Ok(0));
        assert_eq!(key("k123"), Ok(123));
        assert!(key("x1").is_err());
        for (text, size) in [("w0-1", 4), ("w3-17...", 8), ("w12-999999999", 4)] {
            let i = value(text).unwrap();
            assert_eq!(value_text(&json!(i), size), text);
        }
        assert_eq!(value("w3-17..."), Ok(3_000_000_017));
        assert!(value("hello").is_err());
        assert!(value("w1-0").is_err());
    }

    #[test]
    fn an_integer_nobody_wrote_reads_as_its_digits() {
        assert_eq!(value_text(&json!(0), 8), "0");
        assert_eq!(value_text(&json!(-5), 8), "-5");
        assert_eq!(value_text(&json!(3_000_000_000i64), 8), "3000000000");
        assert_eq!(value_text(&json!("x"), 8), "\"x\"");
        // A float with no fraction is the integer it spells.
        assert_eq!(value_text(&json!(1_000_000_002.0), 4), "w1-2");
        assert_eq!(value_text(&json!(1_000_000_002.5), 4), "1000000002.5");
    }

    #[test]
    fn requests_are_lin_kv_bodies() {
        assert_eq!(
            request(&cas()).unwrap(),
            json!({"type": "cas", "key": 3, "from": 1_000_000_002i64, "to": 1_000_000_003i64})
        );
        assert_eq!(request(&read()).unwrap(), json!({"type": "read", "key": 3}));
        assert!(request(&Operation::Delete { key: "k1".into() }).is_err());
    }

    #[test]
    fn answers_are_classified_as_the_protocol_says() {
        let error = |code: i64| json!({"type": "error", "code": code, "text": "t"});
        assert_eq!(
            outcome(
                &read(),
                &json!({"type": "read_ok", "value": 1_000_000_002i64}),
                4
            ),
            Outcome::Ok(Some("w1-2".into()))
        );
        assert_eq!(outcome(&read(), &error(20), 4), Outcome::Ok(None));
        assert_eq!(outcome(&cas(), &error(20), 4), Outcome::CasMiss(Some(None)));
        assert_eq!(outcome(&cas(), &error(22), 4), Outcome::CasMiss(None));
        assert_eq!(
            outcome(&cas(), &json!({"type": "cas_ok"}), 4),
            Outcome::Ok(None)
        );
        for definite in [1, 10, 11, 12, 14, 21, 30] {
            assert!(
                matches!(outcome(&read(), &error(definite), 4), Outcome::Fail(_)),
                "{definite}"
            );
        }
        for indefinite in [0, 13, 1000, -1] {
            assert!(
                matches!(outcome(&cas(), &error(indefinite), 4), Outcome::Info(_)),
                "{indefinite}"
            );
        }
        let Outcome::Fail(why) = outcome(&read(), &error(11), 4) else {
            panic!()
        };
        assert_eq!(why, "error 11 (temporarily-unavailable): t");
        assert!(matches!(
            outcome(&read(), &json!({"type": "write_ok"}), 4),
            Outcome::Info(_)
        ));
    }
}
