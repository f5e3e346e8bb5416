//! A bound on open HTTP connections.
//!
//! The guard bounds requests in flight, but a client can hold connections open without sending
//! a request (or between keep-alive requests), and each costs a socket, a task and buffers.
//! Past [`CONNECTIONS_MAX`] the listener stops accepting: further clients wait in the kernel's
//! accept backlog, and are accepted as soon as a connection closes, rather than the node
//! running out of file descriptors or memory.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Open connections at once: every blocking query and ordinary request in flight, with room
/// to spare for idle keep-alive connections.
pub const CONNECTIONS_MAX: usize = 2 * super::guard::REQUESTS_MAX;

/// A listener that holds one slot per open connection.
#[derive(Debug)]
pub struct BoundedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
}

impl BoundedListener {
    pub fn new(inner: TcpListener, connections_max: usize) -> BoundedListener {
        BoundedListener {
            inner,
            slots: Arc::new(Semaphore::new(connections_max.max(1))),
        }
    }
}

/// An accepted connection; its slot is given back when it is dropped (closed).
#[derive(Debug)]
pub struct Counted {
    stream: TcpStream,
    _slot: Option<OwnedSemaphorePermit>,
}

impl axum::serve::Listener for BoundedListener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        // Wait for a slot. The semaphore is never closed; if it were, connections would go
        // uncounted rather than the listener stopping.
        let slot = self.slots.clone().acquire_owned().await.ok();
        let (stream, addr) = loop {
            match self.inner.accept().await {
                Ok(accepted) => break accepted,
                // Out of descriptors, or a connection reset before it was accepted: axum's own
                // listener waits a moment and goes on; so do we.
                Err(e) => {
                    tracing::debug!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        (
            Counted {
                stream,
                _slot: slot,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
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
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
