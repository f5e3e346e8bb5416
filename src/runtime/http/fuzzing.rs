//! The HTTP surface as a fuzz target: a real node, served on loopback, sent one raw request per
//! input. Shared by the cargo-fuzz target `http_request` and the seed replay in
//! `tests/fuzz_seeds.rs`.
//!
//! An input is `METHOD\nPATH-AND-QUERY\nBODY` (bytes, any of them). Whatever it holds, the node
//! must answer without dying: never a 5xx but the 503 of a bound, every 4xx a JSON
//! `{"error": ...}`, and the node still serving afterwards. Inputs that would make the node
//! leave, or reach beyond loopback (a join, a check URL on another host), are skipped: they
//! would end the run or touch the network, and prove nothing about the parser.

// A fuzz harness: its job is to panic when an invariant breaks, so the lints that keep
// panics out of the node do not apply here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::runtime::app::App;
use crate::runtime::settings::{Overrides, Settings};

/// How long one answer may take. A blocking query may legitimately wait longer: that is not a
/// failure, the harness just stops reading.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// Bytes of an answer read.
const ANSWER_BYTES_MAX: u64 = 1024 * 1024;

/// A node to fuzz, with the runtime it runs on.
pub struct HttpTarget {
    runtime: tokio::runtime::Runtime,
    app: Option<App>,
    addr: SocketAddr,
}

/// What an input asked, as the harness understood it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub request: Vec<u8>,
    /// `None`: skipped, or no answer within [`ANSWER_WITHIN`] (a blocking query).
    pub status: Option<u16>,
    pub body: Vec<u8>,
}

impl HttpTarget {
    /// Start a one-node cluster on loopback.
    pub fn start() -> HttpTarget {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the fuzz target");
        let settings = Settings::resolve(
            None,
            Overrides {
                name: Some("fuzz-0".to_string()),
                bind: Some("127.0.0.1:0".to_string()),
                http: Some("127.0.0.1:0".to_string()),
                preset: Some("local".to_string()),
                ..Default::default()
            },
        )
        .expect("fuzz settings");
        let app = runtime
            .block_on(App::start(settings, 1))
            .expect("the fuzz node starts");
        let addr = app.http_addr;
        HttpTarget {
            runtime,
            app: Some(app),
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The registry's size and change index: what a refused request must leave as it was.
    pub fn registry_state(&self) -> (usize, u64) {
        self.app.as_ref().map_or((0, 0), |app| {
            let s = app.handle.snapshot();
            (s.registry.len(), s.registry.index())
        })
    }

    /// Send one input and check the answer; panics (a fuzz crash) on a broken promise.
    pub fn check(&self, data: &[u8]) -> Exchange {
        let Some(request) = request_of(data) else {
            return Exchange {
                request: Vec::new(),
                status: None,
                body: Vec::new(),
            };
        };
        let exchange = self.send(request);
        if let Some(status) = exchange.status {
            let shown = String::from_utf8_lossy(&exchange.request);
            let shown: String = shown.chars().take(300).collect();
            assert!(
                status < 500 || status == 503,
                "{status} for {shown:?}: {}",
                String::from_utf8_lossy(&exchange.body)
            );
            let head = exchange.request.starts_with(b"HEAD ");
            if (400..500).contains(&status) && !head {
                let json: serde_json::Value = serde_json::from_slice(&exchange.body)
                    .unwrap_or_else(|_| {
                        panic!(
                            "{status} without JSON for {shown:?}: {:?}",
                            String::from_utf8_lossy(&exchange.body)
                        )
                    });
                assert!(json["error"].is_string(), "{status} for {shown:?}: {json}");
            }
        }
        self.assert_alive();
        exchange
    }

    /// The node still answers a plain read.
    pub fn assert_alive(&self) {
        let probe = b"GET /v1/agent/self HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
        let answer = self.send(probe.to_vec());
        assert_eq!(answer.status, Some(200), "the node stopped answering");
    }

    fn send(&self, request: Vec<u8>) -> Exchange {
        let mut exchange = Exchange {
            request,
            status: None,
            body: Vec::new(),
        };
        let Ok(mut stream) = TcpStream::connect_timeout(&self.addr, ANSWER_WITHIN) else {
            return exchange;
        };
        let _ = stream.set_read_timeout(Some(ANSWER_WITHIN));
        let _ = stream.set_write_timeout(Some(ANSWER_WITHIN));
        // The server may answer and close before the whole request is written.
        let _ = stream.write_all(&exchange.request);
        let mut answer = Vec::new();
        let _ = stream.take(ANSWER_BYTES_MAX).read_to_end(&mut answer);
        let text_head = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .and_then(|end| answer.get(..end).zip(answer.get(end + 4..)));
        if let Some((head, body)) = text_head {
            exchange.status = head
                .get(9..12)
                .and_then(|code| std::str::from_utf8(code).ok())
                .and_then(|code| code.parse().ok());
            exchange.body = body.to_vec();
        }
        exchange
    }
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTarget")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for HttpTarget {
    fn drop(&mut self) {
        if let Some(app) = self.app.take() {
            self.runtime.block_on(app.shutdown());
        }
    }
}

/// The raw HTTP/1.1 request an input stands for, or `None` when it is skipped (see the module
/// doc).
pub fn request_of(data: &[u8]) -> Option<Vec<u8>> {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let lower = |b: &[u8]| b.to_ascii_lowercase();
    let target_lower = lower(target);
    if target_lower.starts_with(b"/v1/agent/leave") || target_lower.starts_with(b"/v1/agent/join") {
        return None;
    }
    if reaches_out(&lower(body)) {
        return None;
    }
    let method = if method.is_empty() { b"GET" } else { method };
    let mut request = Vec::with_capacity(data.len().saturating_add(96));
    request.extend_from_slice(method);
    request.push(b' ');
    if !target.starts_with(b"/") {
        request.push(b'/');
    }
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n");
    request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    Some(request)
}

/// A URL in a body on another host than loopback: a health check would call it.
fn reaches_out(body_lower: &[u8]) -> bool {
    body_lower
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == b"://")
        .any(|(at, _)| {
            let host = body_lower.get(at.saturating_add(3)..).unwrap_or_default();
            !(host.starts_with(b"127.0.0.1") || host.starts_with(b"[::1]"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_become_requests_or_are_skipped() {
        let r = request_of(b"PUT\n/web/web-1\n{\"host\":\"h\"}").unwrap();
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("PUT /web/web-1 HTTP/1.1\r\n"), "{text}");
        assert!(
            text.ends_with("Content-Length: 12\r\n\r\n{\"host\":\"h\"}"),
            "{text}"
        );
        assert!(request_of(b"PUT\n/v1/agent/leave\n").is_none());
        assert!(request_of(b"PUT\n/v1/agent/join/10.0.0.1\n").is_none());
        assert!(request_of(b"PUT\n/r\n{\"HTTP\":\"http://10.0.0.1/\"}").is_none());
        assert!(request_of(b"PUT\n/r\n{\"HTTP\":\"http://127.0.0.1:1/\"}").is_some());
        assert!(request_of(b"").is_some());
    }
}
