//! The UDP socket, built with socket2 so that buffer sizes and address reuse can be set.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Kernel buffers large enough for a burst of push-pull datagrams (a 10,000-member table is
/// about 300 datagrams) without drops on a busy node.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Bind a non-blocking UDP socket for the gossip protocol.
pub fn bind_udp(addr: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Bind [::] to IPv6 only, so the same port can be bound on 0.0.0.0 separately.
        socket.set_only_v6(true)?;
    }
    // Best effort: the kernel may cap these, which is fine.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    // ICMP port-unreachable reports speed up detecting a crashed process (`unreachable`);
    // without them probes only wait longer, so a refusal is logged, not fatal.
    if let Err(e) = super::unreachable::enable(&socket, addr.is_ipv6()) {
        tracing::warn!(error = %e, "cannot read ICMP errors on the gossip socket");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}
