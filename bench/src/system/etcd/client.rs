//! A client of etcd's v3 API through its JSON gateway (HTTP/1.1, JSON bodies, keys and values
//! in base64): no gRPC, so no `protoc` at build time.
//!
//! - read: `/v3/kv/range` (linearizable unless asked for serializable reads);
//! - write: `/v3/kv/put`;
//! - CAS: `/v3/kv/txn` comparing the value (or, from an absent key, the create revision with 0),
//!   reading the key when the comparison fails, so a miss says what the key held;
//! - delete: `/v3/kv/deleterange`.
//!
//! Outcomes: an answer is ok or a CAS miss; a request that could not be sent (connection
//! refused) certainly did not happen (`fail`); a read that failed in any way changed nothing
//! (`fail`); a write whose answer did not come, or came as an error, may still take effect
//! (`info`), save for the gateway's refusals of a malformed request (`fail`).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::system::{Operation, Outcome};

/// An HTTP client of one member's client URL.
#[derive(Clone)]
pub struct EtcdClient {
    http: Client<HttpConnector, Full<Bytes>>,
    base: String,
    timeout: Duration,
    serializable: bool,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum CallError {
    /// The request was never sent (no connection).
    NotSent(String),
    /// Sent, but no answer in time, or the connection broke.
    NoAnswer(String),
    /// An answer that is an error: HTTP status, gRPC code, message.
    Refused {
        status: u16,
        code: i64,
        text: String,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotSent(why) | CallError::NoAnswer(why) => f.write_str(why),
            CallError::Refused { status, code, text } => {
                write!(f, "HTTP {status}, gRPC code {code}: {text}")
            }
        }
    }
}

/// gRPC's InvalidArgument: the request was refused as malformed.
const INVALID_ARGUMENT: i64 = 3;

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

fn unb64(v: &Value) -> Option<String> {
    let bytes = B64.decode(v.as_str()?).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

impl EtcdClient {
    /// A client of the member whose client URL is `http://addr`.
    pub fn new(addr: std::net::SocketAddr, timeout: Duration, serializable: bool) -> EtcdClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        EtcdClient {
            http: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            base: format!("http://{addr}"),
            timeout,
            serializable,
        }
    }

    /// POSTs `body` to `path`; the answer's JSON.
    pub async fn call(&self, path: &str, body: &Value) -> Result<Value, CallError> {
        let request = hyper::Request::post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a well-formed request");
        self.send(request).await
    }

    /// GETs `path` (`/health`); the answer's JSON.
    pub async fn get(&self, path: &str) -> Result<Value, CallError> {
        let request = hyper::Request::get(format!("{}{path}", self.base))
            .body(Full::new(Bytes::new()))
            .expect("a well-formed request");
        self.send(request).await
    }

    async fn send(&self, request: hyper::Request<Full<Bytes>>) -> Result<Value, CallError> {
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                if e.is_connect() {
                    CallError::NotSent(format!("cannot connect to {}: {e}", self.base))
                } else {
                    CallError::NoAnswer(format!("{}: {e}", self.base))
                }
            })?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| CallError::NoAnswer(format!("{}: {e}", self.base)))?
                .to_bytes();
            let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
                CallError::NoAnswer(format!("{}: an answer that is not JSON: {e}", self.base))
            })?;
            if status != 200 {
                return Err(CallError::Refused {
                    status,
                    code: value.get("code").and_then(Value::as_i64).unwrap_or(-1),
                    text: value
                        .get("error")
                        .or_else(|| value.get("message"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                });
            }
            Ok(value)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(CallError::NoAnswer(format!(
                "no answer from {} within {:?}",
                self.base, self.timeout
            ))),
        }
    }

    /// Performs one workload operation.
    pub async fn perform(&self, op: &Operation) -> Outcome {
        match op {
            Operation::Read { key } => {
                let body = json!({"key": b64(key), "serializable": self.serializable});
                match self.call("/v3/kv/range", &body).await {
                    Ok(v) => Outcome::Ok(first_value(&v)),
                    // A read changes nothing: whatever went wrong, it did not happen.
                    Err(e) => Outcome::Fail(e.to_string()),
                }
            }
            Operation::Write { key, value } => {
                let body = json!({"key": b64(key), "value": b64(value)});
                match self.call("/v3/kv/put", &body).await {
                    Ok(_) => Outcome::Ok(None),
                    Err(e) => unanswered(e),
                }
            }
            Operation::Delete { key } => {
                let body = json!({"key": b64(key)});
                match self.call("/v3/kv/deleterange", &body).await {
                    Ok(_) => Outcome::Ok(None),
                    Err(e) => unanswered(e),
                }
            }
            Operation::Acquire { .. } | Operation::Release { .. } => {
                unreachable!("locks are the session's: EtcdSession::perform")
            }
            Operation::Cas { key, expected, new } => {
                let compare = match expected {
                    Some(v) => json!({
                        "key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(v)
                    }),
                    // Absent: never created (or deleted since).
                    None => json!({
                        "key": b64(key), "target": "CREATE", "result": "EQUAL",
                        "create_revision": "0"
                    }),
                };
                let body = json!({
                    "compare": [compare],
                    "success": [{"request_put": {"key": b64(key), "value": b64(new)}}],
                    "failure": [{"request_range": {"key": b64(key)}}],
                });
                let v = match self.call("/v3/kv/txn", &body).await {
                    Ok(v) => v,
                    Err(e) => return unanswered(e),
                };
                if v.get("succeeded").and_then(Value::as_bool) == Some(true) {
                    return Outcome::Ok(None);
                }
                let current = v
                    .get("responses")
                    .and_then(|r| r.get(0))
                    .and_then(|r| r.get("response_range"))
                    .map(first_value);
                Outcome::CasMiss(current)
            }
        }
    }
}

/// `"k0"` as the gateway's base64.
pub fn key64(key: &str) -> String {
    b64(key)
}

/// The outcome of a write that got no successful answer.
fn unanswered(e: CallError) -> Outcome {
    match e {
        CallError::NotSent(_)
        | CallError::Refused {
            code: INVALID_ARGUMENT,
            ..
        } => Outcome::Fail(e.to_string()),
        _ => Outcome::Info(e.to_string()),
    }
}

/// The value of a range answer's first key, `None` when there is none.
fn first_value(range: &Value) -> Option<String> {
    range
        .get("kvs")
        .and_then(|kvs| kvs.get(0))
        .and_then(|kv| kv.get("value"))
        .and_then(unb64)
        // A key put with an empty value has no "value" field in the gateway's JSON.
        .or_else(|| {
            range
                .get("kvs")
                .and_then(|kvs| kvs.get(0))
                .map(|_| String::new())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_answers_are_read_as_the_gateway_writes_them() {
        let v =
            json!({"header": {}, "kvs": [{"key": b64("k1"), "value": b64("w1-2")}], "count": "1"});
        assert_eq!(first_value(&v), Some("w1-2".into()));
        assert_eq!(first_value(&json!({"header": {}})), None);
        assert_eq!(
            first_value(&json!({"kvs": [{"key": b64("k1")}]})),
            Some(String::new())
        );
    }

    #[test]
    fn a_write_that_may_have_happened_is_info_and_one_that_was_not_sent_is_fail() {
        assert!(matches!(
            unanswered(CallError::NotSent("refused".into())),
            Outcome::Fail(_)
        ));
        assert!(matches!(
            unanswered(CallError::NoAnswer("timeout".into())),
            Outcome::Info(_)
        ));
        assert!(matches!(
            unanswered(CallError::Refused {
                status: 503,
                code: 14,
                text: "etcdserver: request timed out".into()
            }),
            Outcome::Info(_)
        ));
        assert!(matches!(
            unanswered(CallError::Refused {
                status: 400,
                code: 3,
                text: "bad".into()
            }),
            Outcome::Fail(_)
        ));
    }
}
