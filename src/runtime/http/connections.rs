//! Open HTTP connections: how many, and how long each may sit idle.
//!
//! The guard bounds requests in flight, but a client can hold connections open without sending
//! a request (or between keep-alive requests), and each costs a socket, a task and buffers.
//! Past [`CONNECTIONS_MAX`] the listener stops accepting: further clients wait in the kernel's
//! accept backlog, and are accepted as soon as a connection closes, rather than the node
//! running out of file descriptors or memory.
//!
//! A bound alone would let silent clients hold every slot, so no connection may sit still:
//! a request's head must arrive whole within [`HEADER_READ_TIMEOUT`] of the connection opening
//! or of the previous answer (which is also the keep-alive idle timeout: hyper's header timer
//! runs from the moment it waits for a head), and a write the client does not read for
//! [`WRITE_STALL_TIMEOUT`] ends the connection. A request's body and handling are bounded by
//! the guard's time bound ([`super::guard`]).
//!
//! Timeouts alone would still let a crowd of silent clients, arriving faster than they time
//! out, keep a new client waiting up to [`HEADER_READ_TIMEOUT`]. So at the bound, a client
//! knocking at the door takes the slot of the oldest connection that has not yet sent a
//! complete request head ([`PreHead`]): a client that has said nothing yet is the cheapest to
//! refuse, and the one most likely to be hostile (as nginx's and Apache's reqtimeout-style
//! defences reason). Connections serving or having served a request are never evicted.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Open connections at once with the default bound on blocking queries
/// ([`ConnectionLimits::for_waiters`]).
pub const CONNECTIONS_MAX: usize = connections_max(super::guard::REQUESTS_MAX);

/// Open connections at once for `requests_max` requests in flight: every blocking query and
/// ordinary request in flight, with as much room again for idle keep-alive connections.
const fn connections_max(requests_max: usize) -> usize {
    requests_max.saturating_mul(2)
}

/// How long a client has to send a request's head whole, from the moment the connection opens
/// or the previous answer is written: slow-header and silent clients are cut off after this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an answer may wait for a client that does not read it.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The bounds a server holds its connections to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub open_max: usize,
    pub header_read_timeout: Duration,
    pub write_stall_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits that leave room for `waiters_max` blocking queries waiting at once (the
    /// setting `blocking_waiters_max`) besides ordinary requests and idle connections.
    pub fn for_waiters(waiters_max: usize) -> ConnectionLimits {
        ConnectionLimits {
            open_max: connections_max(super::guard::requests_max(waiters_max)),
            ..ConnectionLimits::default()
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            open_max: CONNECTIONS_MAX,
            header_read_timeout: HEADER_READ_TIMEOUT,
            write_stall_timeout: WRITE_STALL_TIMEOUT,
        }
    }
}

/// Serve `router` on `listener` within `limits` until `shutdown` completes; then stop
/// accepting, let each connection finish the request it is serving, and return once all have
/// closed.
pub async fn serve(
    listener: TcpListener,
    limits: ConnectionLimits,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut listener = BoundedListener::new(listener, limits.open_max);
    let pre_head = listener.pre_head.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection's task holds a sender; `recv` answers `None` once all are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let (mut io, _addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        io.write_stall_timeout = limits.write_stall_timeout;
        let (ticket, evicted) = pre_head.enter();
        // The router takes hyper's body as it is.
        let service = MarkHead {
            inner: TowerToHyperService::new(router.clone()),
            ticket,
        };
        let connection = http1.serve_connection(TokioIo::new(io), service);
        let mut stop = stop_rx.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let _open = open;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::trace!(error = %e, "HTTP connection ended");
                    }
                    return;
                }
                // Evicted before its first head: close at once (dropping it frees the slot).
                Ok(()) = evicted => {
                    tracing::debug!("HTTP connection evicted: no request head yet, and a new client waits");
                    return;
                }
                _ = stop.wait_for(|stopped| *stopped) => {}
            }
            connection.as_mut().graceful_shutdown();
            if let Err(e) = connection.await {
                tracing::trace!(error = %e, "HTTP connection ended");
            }
        });
    }
    let _ = stop_tx.send(true);
    drop(open_tx);
    let _ = open_rx.recv().await;
    Ok(())
}

/// The connections that have not yet sent a complete request head, oldest first: the ones a
/// new client may displace at the bound. At most one entry per open connection.
#[derive(Debug, Default)]
pub struct PreHead {
    waiting: Mutex<PreHeadState>,
}

#[derive(Debug, Default)]
struct PreHeadState {
    next: u64,
    /// By arrival: a sender that closes the connection.
    by_age: BTreeMap<u64, oneshot::Sender<()>>,
}

/// A connection's place in [`PreHead`]; it leaves at its first request head or when it closes.
#[derive(Debug)]
pub struct Ticket {
    pre_head: Arc<PreHead>,
    seq: u64,
}

impl PreHead {
    /// A new connection, silent so far: its ticket, and what tells it to close.
    fn enter(self: &Arc<Self>) -> (Arc<Ticket>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let seq = match self.waiting.lock() {
            Ok(mut w) => {
                let seq = w.next;
                w.next = w.next.wrapping_add(1);
                w.by_age.insert(seq, tx);
                seq
            }
            Err(_) => u64::MAX,
        };
        let ticket = Arc::new(Ticket {
            pre_head: self.clone(),
            seq,
        });
        (ticket, rx)
    }

    /// Close the oldest connection that has sent no request head; false if there is none.
    fn evict_oldest(&self) -> bool {
        let Ok(mut w) = self.waiting.lock() else {
            return false;
        };
        while let Some((_, close)) = w.by_age.pop_first() {
            if close.send(()).is_ok() {
                return true;
            }
        }
        false
    }

    /// Connections that have not yet sent a request head.
    pub fn len(&self) -> usize {
        self.waiting.lock().map_or(0, |w| w.by_age.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn leave(&self, seq: u64) {
        if let Ok(mut w) = self.waiting.lock() {
            w.by_age.remove(&seq);
        }
    }
}

impl Ticket {
    fn head_seen(&self) {
        self.pre_head.leave(self.seq);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.pre_head.leave(self.seq);
    }
}

/// The router's service, telling [`PreHead`] when the connection's first head has arrived
/// (hyper calls the service once a head is parsed whole).
#[derive(Debug)]
struct MarkHead<S> {
    inner: S,
    ticket: Arc<Ticket>,
}

impl<S, R> hyper::service::Service<R> for MarkHead<S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: R) -> Self::Future {
        self.ticket.head_seen();
        self.inner.call(request)
    }
}

/// A listener that holds one slot per open connection.
#[derive(Debug)]
pub struct BoundedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    pre_head: Arc<PreHead>,
}

impl BoundedListener {
    pub fn new(inner: TcpListener, connections_max: usize) -> BoundedListener {
        BoundedListener {
            inner,
            slots: Arc::new(Semaphore::new(connections_max.max(1))),
            pre_head: Arc::new(PreHead::default()),
        }
    }

    /// Accept the next client, retrying what axum's listener retries.
    async fn accept_raw(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok(accepted) => return accepted,
                // Out of descriptors, or a connection reset before it was accepted: axum's own
                // listener waits a moment and goes on; so do we.
                Err(e) => {
                    tracing::debug!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// An accepted connection; its slot is given back when it is dropped (closed).
#[derive(Debug)]
pub struct Counted {
    stream: TcpStream,
    _slot: Option<OwnedSemaphorePermit>,
    write_stall_timeout: Duration,
    /// Armed while a write waits on a client that does not read.
    write_stall: Option<Pin<Box<Sleep>>>,
    /// hyper's bare answer to a request it could not parse, rewritten as JSON
    /// ([`super::json_errors::rewrite_automatic`]), and how much of it is written.
    rewritten: Option<(Vec<u8>, usize)>,
}

impl Counted {
    /// A write that cannot go on: wait, unless it has waited [`WRITE_STALL_TIMEOUT`] already.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.write_stall_timeout;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read the answer",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Write what is left of a rewritten answer before anything else.
    fn drain_rewritten(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.rewritten {
            let Some(rest) = bytes.get(*written..).filter(|r| !r.is_empty()) else {
                self.rewritten = None;
                break;
            };
            match Pin::new(&mut self.stream).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    *written = written.saturating_add(n);
                    self.write_stall = None;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.stalled(cx),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Take `buf` as written if it is hyper's bare answer to a request it could not parse,
    /// and queue its JSON form instead.
    fn rewrite(&mut self, buf: &[u8]) -> bool {
        match super::json_errors::rewrite_automatic(buf) {
            Some(answer) => {
                self.rewritten = Some((answer, 0));
                true
            }
            None => false,
        }
    }

    /// A write went on (or failed): the next stall is timed afresh.
    fn progressed<T>(&mut self, done: io::Result<T>) -> Poll<io::Result<T>> {
        self.write_stall = None;
        Poll::Ready(done)
    }
}

impl BoundedListener {
    async fn accept(&mut self) -> (Counted, SocketAddr) {
        // A free slot, or (at the bound) a client knocking: it displaces the oldest connection
        // that has sent no request head yet, if any, and otherwise waits for a slot like the
        // rest of the backlog. The semaphore is never closed; if it were, connections would go
        // uncounted rather than the listener stopping.
        let slots = self.slots.clone();
        let (slot, (stream, addr)) = match slots.clone().try_acquire_owned() {
            Ok(slot) => (Some(slot), self.accept_raw().await),
            Err(_) => {
                let early = tokio::select! {
                    slot = slots.clone().acquire_owned() => Err(slot.ok()),
                    accepted = self.accept_raw() => Ok(accepted),
                };
                match early {
                    Err(slot) => (slot, self.accept_raw().await),
                    Ok(accepted) => {
                        self.pre_head.evict_oldest();
                        (slots.acquire_owned().await.ok(), accepted)
                    }
                }
            }
        };
        let _ = stream.set_nodelay(true);
        (
            Counted {
                stream,
                _slot: slot,
                write_stall_timeout: WRITE_STALL_TIMEOUT,
                write_stall: None,
                rewritten: None,
            },
            addr,
        )
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.drain_rewritten(cx))?;
        if self.rewrite(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Ready(done) => self.progressed(done),
            Poll::Pending => self.stalled(cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain_rewritten(cx))?;
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Ready(done) => self.progressed(done),
            Poll::Pending => self.stalled(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain_rewritten(cx))?;
        match Pin::new(&mut self.stream).poll_shutdown(cx) {
            Poll::Ready(done) => self.progressed(done),
            Poll::Pending => self.stalled(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.drain_rewritten(cx))?;
        // hyper's bare answer is a head alone: one slice that is not empty.
        let mut full = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (full.next(), full.next()) {
            if self.rewrite(only) {
                return Poll::Ready(Ok(only.len()));
            }
        }
        match Pin::new(&mut self.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(done) => self.progressed(done),
            Poll::Pending => self.stalled(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
