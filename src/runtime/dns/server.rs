//! The listeners: one UDP socket and one TCP listener on the same address. Every query is
//! answered from the latest published snapshot; nothing here waits on the node's task.
//!
//! Bounds: a query is at most [`QUERY_MAX_BYTES`] (a longer datagram is dropped, a longer TCP
//! message closes the connection); at most [`TCP_CONNECTIONS_MAX`] TCP connections at once
//! (past it new ones are closed at once); a TCP connection idle for [`TCP_IDLE`] is closed,
//! and so is one whose client does not read its answer within it.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::cache::{AnswerCache, UDP_CACHE_RECORDS};
use super::query::{respond, Transport};
use super::DnsConfig;
use crate::runtime::driver::NodeHandle;

/// The longest query read: a question of the longest name (255 bytes) with an OPT record and
/// its padding fits in well under 512 bytes.
pub const QUERY_MAX_BYTES: usize = 512;

/// TCP connections served at once: DNS over TCP is the fallback for truncated answers, short
/// and rare; 64 leaves room for a burst of retries and bounds memory to ~64 small tasks.
pub const TCP_CONNECTIONS_MAX: usize = 64;

/// How long a TCP connection may sit between queries, or take to send one or read an answer
/// (RFC 7766 §6.2.3 asks servers to keep idle timeouts to seconds).
pub const TCP_IDLE: Duration = Duration::from_secs(5);

/// Binding port 0 (tests): tries at finding a port free for both UDP and TCP.
const PORT_TRIES: usize = 16;

/// The bound sockets of the face.
#[derive(Debug)]
pub struct Listeners {
    udp: UdpSocket,
    tcp: TcpListener,
    addr: SocketAddr,
}

/// Why the face could not listen.
#[derive(Debug)]
pub struct BindError {
    pub addr: SocketAddr,
    pub transport: Transport,
    pub source: std::io::Error,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        };
        write!(
            f,
            "cannot bind DNS ({transport}) on {}: {}",
            self.addr, self.source
        )
    }
}

impl std::error::Error for BindError {}

/// Bind UDP and TCP on `addr`, the same port for both (with port 0, one the kernel picks).
pub async fn bind(addr: SocketAddr) -> Result<Listeners, BindError> {
    let fail = |transport, source| BindError {
        addr,
        transport,
        source,
    };
    let mut tries = 0;
    loop {
        tries += 1;
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|e| fail(Transport::Udp, e))?;
        let bound = udp.local_addr().map_err(|e| fail(Transport::Udp, e))?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => {
                return Ok(Listeners {
                    udp,
                    tcp,
                    addr: bound,
                })
            }
            // The kernel's UDP port may be taken for TCP: pick again.
            Err(_) if addr.port() == 0 && tries < PORT_TRIES => continue,
            Err(e) => return Err(fail(Transport::Tcp, e)),
        }
    }
}

impl Listeners {
    /// The address both listen on (the port resolved if 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Answer queries until `shutdown` completes. `seed` seeds the answers' shuffles.
pub async fn serve(
    listeners: Listeners,
    node: NodeHandle,
    config: Arc<DnsConfig>,
    seed: u64,
    shutdown: impl Future<Output = ()>,
) {
    let Listeners { udp, tcp, .. } = listeners;
    let udp = Arc::new(udp);
    // One receive loop per runtime worker (one by default: HERA_WORKER_THREADS adds cores),
    // each with its own cache and shuffle stream, all on the one socket. Aborted with the set
    // when the face stops, as the TCP connections are.
    let mut udp_loops = JoinSet::new();
    let workers = tokio::runtime::Handle::current()
        .metrics()
        .num_workers()
        .max(1);
    for n in 1..workers {
        let (udp, node, config) = (udp.clone(), node.clone(), config.clone());
        let seed = seed ^ (n as u64).rotate_left(48);
        udp_loops.spawn(async move { serve_udp(&udp, &node, &config, seed).await });
    }
    let mut connections = JoinSet::new();
    tokio::select! {
        () = shutdown => {}
        () = serve_udp(&udp, &node, &config, seed) => {}
        () = serve_tcp(&tcp, &node, &config, seed, &mut connections) => {}
    }
}

async fn serve_udp(udp: &UdpSocket, node: &NodeHandle, config: &DnsConfig, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cache = AnswerCache::new(UDP_CACHE_RECORDS);
    // One byte more than a query may be: a datagram that fills it is too long.
    let mut buf = [0u8; QUERY_MAX_BYTES + 1];
    loop {
        let (len, from) = match udp.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems: not fatal.
                tracing::debug!(error = %e, "dns: udp receive failed");
                continue;
            }
        };
        let Some(query) = buf.get(..len).filter(|q| q.len() <= QUERY_MAX_BYTES) else {
            continue;
        };
        let snapshot = node.snapshot();
        if let Some(answer) = respond(
            &snapshot,
            config,
            &mut cache,
            query,
            Transport::Udp,
            &mut rng,
        ) {
            if let Err(e) = udp.send_to(&answer, from).await {
                tracing::debug!(error = %e, %from, "dns: udp send failed");
            }
        }
    }
}

async fn serve_tcp(
    tcp: &TcpListener,
    node: &NodeHandle,
    config: &Arc<DnsConfig>,
    seed: u64,
    connections: &mut JoinSet<()>,
) {
    let permits = Arc::new(Semaphore::new(TCP_CONNECTIONS_MAX));
    let mut accepted: u64 = 0;
    loop {
        // Reap finished connections so the set stays as small as the live ones.
        while connections.try_join_next().is_some() {}
        let (stream, from) = match tcp.accept().await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(error = %e, "dns: tcp accept failed");
                // Out of descriptors: give the others a moment to close theirs.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%from, "dns: too many tcp connections, closing a new one");
            continue;
        };
        accepted = accepted.wrapping_add(1);
        let rng = ChaCha8Rng::seed_from_u64(seed ^ accepted.rotate_left(32));
        let (node, config) = (node.clone(), config.clone());
        connections.spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(stream, &node, &config, rng).await {
                tracing::debug!(%from, error = %e, "dns: tcp connection closed");
            }
        });
    }
}

/// Queries on one connection, each a 2-byte length and the message (RFC 1035 §4.2.2), until
/// the client closes, idles, or sends something too long.
async fn connection(
    mut stream: TcpStream,
    node: &NodeHandle,
    config: &DnsConfig,
    mut rng: ChaCha8Rng,
) -> std::io::Result<()> {
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "idle");
    let mut buf = [0u8; QUERY_MAX_BYTES];
    // TCP is the rare fallback for truncated answers, and up to 64 connections at once: none
    // keeps answers (the UDP listener's cache is what the load meets).
    let mut no_cache = AnswerCache::new(0);
    loop {
        let mut prefix = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut prefix)).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(_)) => {}
        }
        let len = usize::from(u16::from_be_bytes(prefix));
        let Some(query) = buf.get_mut(..len) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "query too long",
            ));
        };
        tokio::time::timeout(TCP_IDLE, stream.read_exact(query))
            .await
            .map_err(|_| timed_out())??;
        let snapshot = node.snapshot();
        let Some(answer) = respond(
            &snapshot,
            config,
            &mut no_cache,
            query,
            Transport::Tcp,
            &mut rng,
        ) else {
            continue;
        };
        // The encoder keeps TCP answers within the 16-bit length.
        let Ok(answer_len) = u16::try_from(answer.len()) else {
            continue;
        };
        let mut framed = Vec::with_capacity(answer.len() + 2);
        framed.extend_from_slice(&answer_len.to_be_bytes());
        framed.extend_from_slice(&answer);
        tokio::time::timeout(TCP_IDLE, stream.write_all(&framed))
            .await
            .map_err(|_| timed_out())??;
    }
}
