//! A one-request HTTP/1.1 client: the CLI's calls to a node and the driver's HTTP health checks.
//!
//! Both talk plain HTTP to one address and want one answer with a deadline, nothing more: no
//! connection pool, no redirects, no proxies, no TLS (hera's API is plain HTTP on loopback or
//! a private network, and health checks of HTTPS endpoints were never supported). hyper's
//! connection-level client does exactly that and is already in the tree under axum; a
//! general-purpose client would add its pool, URL parser and middleware to the resident pages
//! of every idle node for features nobody uses here.

use std::fmt;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// An answer: its status and up to the requested number of body bytes.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
    /// The body went on past the byte limit; `body` holds its start.
    pub truncated: bool,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request to send.
#[derive(Debug)]
pub struct Call<'a> {
    pub method: Method,
    pub url: &'a str,
    /// Extra headers, e.g. the API token.
    pub headers: Vec<(String, String)>,
    /// A JSON body.
    pub json: Option<Vec<u8>>,
    /// For the whole exchange: resolve, connect, send, read.
    pub timeout: Duration,
    /// Body bytes kept; the rest is not read.
    pub body_limit: usize,
}

#[derive(Debug)]
pub enum ClientError {
    BadUrl { url: String, why: String },
    Resolve { host: String, why: String },
    Connect { addr: String, why: std::io::Error },
    Timeout(Duration),
    Protocol(hyper::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::BadUrl { url, why } => write!(f, "invalid URL {url:?}: {why}"),
            ClientError::Resolve { host, why } => write!(f, "cannot resolve {host}: {why}"),
            ClientError::Connect { addr, why } => write!(f, "cannot connect to {addr}: {why}"),
            ClientError::Timeout(t) => write!(f, "no answer within {t:?}"),
            ClientError::Protocol(e) => write!(f, "HTTP error: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Where a URL points: the host header and the address to dial.
struct Target {
    host_header: String,
    host: String,
    port: u16,
    path: String,
}

/// Refuse, before it is stored, a URL this client could never call (another scheme than
/// `http`, no host): a health check on it would only ever read critical.
pub fn check_url(url: &str) -> Result<(), ClientError> {
    target(url).map(|_| ())
}

fn target(url: &str) -> Result<Target, ClientError> {
    let bad = |why: &str| ClientError::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(bad(&format!(
                "scheme {other} is not supported, only http (hera has no TLS client)"
            )))
        }
        None => return Err(bad("no scheme; expected http://host:port/path")),
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    let host = authority.host();
    // `[::1]` in a URL is the address `::1`.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    Ok(Target {
        host_header: authority.as_str().to_string(),
        host: bare.to_string(),
        port: authority.port_u16().unwrap_or(80),
        path: uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
    })
}

/// Send one request and read the answer, all within `call.timeout`.
pub async fn send(call: Call<'_>) -> Result<Response, ClientError> {
    let deadline = call.timeout;
    tokio::time::timeout(deadline, exchange(call))
        .await
        .unwrap_or(Err(ClientError::Timeout(deadline)))
}

async fn exchange(call: Call<'_>) -> Result<Response, ClientError> {
    let target = target(call.url)?;
    let addrs: Vec<_> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| ClientError::Resolve {
            host: target.host.clone(),
            why: e.to_string(),
        })?
        .collect();
    let mut last_error = None;
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let stream = stream.ok_or_else(|| ClientError::Connect {
        addr: format!("{}:{}", target.host, target.port),
        why: last_error.unwrap_or_else(|| std::io::Error::other("the name resolved to no address")),
    })?;
    let _ = stream.set_nodelay(true);

    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(ClientError::Protocol)?;
    // The connection task ends when the exchange does (the sender is dropped) or on error.
    tokio::spawn(async move {
        let _ = connection.await;
    });

    let mut request = Request::builder()
        .method(call.method)
        .uri(target.path.as_str())
        .header(HOST, target.host_header.as_str())
        .header(USER_AGENT, concat!("hera/", env!("CARGO_PKG_VERSION")));
    for (name, value) in &call.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let body = match call.json {
        Some(json) => {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Full::new(Bytes::from(json))
        }
        None => Full::new(Bytes::new()),
    };
    let request = request.body(body).map_err(|e| ClientError::BadUrl {
        url: call.url.to_string(),
        why: e.to_string(),
    })?;
    let response = sender
        .send_request(request)
        .await
        .map_err(ClientError::Protocol)?;
    let status = response.status();
    let mut incoming = response.into_body();
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(ClientError::Protocol)?;
        if let Some(data) = frame.data_ref() {
            let room = call.body_limit - body.len();
            if data.len() > room {
                body.extend_from_slice(&data[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(data);
        }
    }
    Ok(Response {
        status,
        body: Bytes::from(body),
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_target() {
        let t = target("http://127.0.0.1:8500/v1/agent/members?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8500, "/v1/agent/members?x=1")
        );
        let t = target("http://[::1]:9/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.host_header.as_str()),
            ("::1", 9, "[::1]:9")
        );
        let t = target("http://example.test").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
    }

    #[test]
    fn unsupported_urls_are_refused_with_a_reason() {
        for url in ["https://x:1/", "127.0.0.1:8500/v1", "http://", "ht tp://x/"] {
            let err = target(url)
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"));
            assert!(matches!(err, ClientError::BadUrl { .. }), "{url}: {err}");
        }
    }

    /// A one-connection server on loopback: it reads the request head (and as many body bytes
    /// as its Content-Length says), hands the raw request back, and writes `answer`, or
    /// nothing at all when `answer` is None.
    async fn serve_once(
        answer: Option<&'static str>,
    ) -> (String, tokio::sync::oneshot::Receiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            loop {
                let n = stream.read(&mut chunk).await.unwrap();
                request.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if request.len() >= head_end + 4 + length || n == 0 {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let _ = seen_tx.send(String::from_utf8_lossy(&request).to_string());
            match answer {
                Some(answer) => stream.write_all(answer.as_bytes()).await.unwrap(),
                // Hold the connection open, silent, until the client gives up.
                None => {
                    let _ = stream.read(&mut chunk).await;
                }
            }
        });
        (url, seen_rx)
    }

    fn call(url: &str) -> Call<'_> {
        Call {
            method: Method::GET,
            url,
            headers: Vec::new(),
            json: None,
            timeout: Duration::from_secs(10),
            body_limit: 1 << 20,
        }
    }

    #[tokio::test]
    async fn sends_headers_and_body_and_reads_the_answer() {
        let (url, seen) = serve_once(Some(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 5\r\n\r\nslow!",
        ))
        .await;
        let target = format!("{url}/v1/x?y=1");
        let mut put = call(&target);
        put.method = Method::PUT;
        put.headers
            .push(("X-Consul-Token".to_string(), "secret".to_string()));
        put.json = Some(br#"{"a":1}"#.to_vec());
        let response = send(put).await.unwrap();
        assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            (response.text().as_str(), response.truncated),
            ("slow!", false)
        );
        let request = seen.await.unwrap();
        assert!(
            request.starts_with("PUT /v1/x?y=1 HTTP/1.1\r\n"),
            "{request}"
        );
        let lower = request.to_ascii_lowercase();
        assert!(lower.contains("x-consul-token: secret\r\n"), "{request}");
        assert!(
            lower.contains("content-type: application/json\r\n"),
            "{request}"
        );
        assert!(request.ends_with(r#"{"a":1}"#), "{request}");
    }

    #[tokio::test]
    async fn keeps_only_the_start_of_a_long_body() {
        let (url, _) = serve_once(Some(
            "HTTP/1.1 200 OK\r\ncontent-length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz",
        ))
        .await;
        let mut get = call(&url);
        get.body_limit = 10;
        let response = send(get).await.unwrap();
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(
            (response.text().as_str(), response.truncated),
            ("abcdefghij", true)
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (url, _) = serve_once(None).await;
        let mut get = call(&url);
        get.timeout = Duration::from_millis(200);
        let err = send(get).await.unwrap_err();
        assert!(matches!(err, ClientError::Timeout(_)), "{err}");
    }

    #[tokio::test]
    async fn nobody_listening_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let err = send(call(&url)).await.unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
    }
}
