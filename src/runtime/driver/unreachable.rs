//! ICMP port-unreachable reports, read from the gossip socket's error queue.
//!
//! A datagram sent to a host whose hera process is gone comes back as ICMP port unreachable.
//! With `IP_RECVERR` (`IPV6_RECVERR`) set, Linux queues that error on the sending socket, with
//! the address the datagram was sent to, and signals the socket (EPOLLERR). The driver reads
//! the queue then and tells the core which address had no listener, so a probe of a crashed
//! process asks its helpers at once instead of after its timeout (`Node::handle_port_unreachable`).
//! Where nothing comes back (a crashed host, a firewall that drops), probes wait as before.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

/// ICMP destination unreachable (type 3), port unreachable (code 3).
const ICMP_PORT_UNREACHABLE: (u8, u8) = (3, 3);
/// ICMPv6 destination unreachable (type 1), port unreachable (code 4).
const ICMP6_PORT_UNREACHABLE: (u8, u8) = (1, 4);

/// One entry of the error queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Nothing listened at this address: its process is gone.
    PortUnreachable(SocketAddr),
    /// Any other queued error (another ICMP type, a path MTU change, ...): not a sign of death.
    Other,
}

/// Ask the kernel to queue ICMP errors on `socket`, an IPv6 one if `ipv6`.
pub fn enable(socket: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    set(socket, ipv6, 1)
}

/// Stop queuing ICMP errors on `socket`; the kernel drops those still queued.
pub fn disable(socket: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    set(socket, ipv6, 0)
}

/// Whether a send failed with an earlier datagram's ICMP error rather than its own: with
/// `IP_RECVERR` on, Linux records the error on the socket as well as in its queue, and the
/// next send, to whatever address, returns it (once).
pub fn is_earlier_datagrams_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

fn set(socket: &impl AsRawFd, ipv6: bool, on: libc::c_int) -> io::Result<()> {
    let (level, name) = if ipv6 {
        (libc::SOL_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::SOL_IP, libc::IP_RECVERR)
    };
    // SAFETY: a plain setsockopt on a descriptor we own, with a pointer to a live c_int and
    // its exact length.
    #[allow(unsafe_code)]
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Take one entry off `fd`'s error queue without blocking; `WouldBlock` when it is empty.
pub fn read_one(fd: RawFd) -> io::Result<Report> {
    // The original datagram's first bytes come back as data; they are not needed.
    let mut data = [0u8; 16];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // u64s, so the buffer is aligned for `cmsghdr`; room for the extended error and the
    // offender's address, with margin.
    let mut control = [0u64; 32];
    // SAFETY: all-zero is a valid value of these plain C structs.
    #[allow(unsafe_code)]
    let (mut name, mut msg): (libc::sockaddr_storage, libc::msghdr) =
        unsafe { (zeroed(), zeroed()) };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` points at a live local buffer of the length given, and
    // they outlive the call.
    #[allow(unsafe_code)]
    let read = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if read < 0 {
        return Err(io::Error::last_os_error());
    }
    let Some(to) = address(&name, msg.msg_namelen) else {
        return Ok(Report::Other);
    };
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, within the length
    // it set (`msg_controllen`); each header is checked to hold a whole `sock_extended_err`
    // before it is read, unaligned.
    #[allow(unsafe_code)]
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            let is_error = (header.cmsg_level == libc::SOL_IP
                && header.cmsg_type == libc::IP_RECVERR)
                || (header.cmsg_level == libc::SOL_IPV6 && header.cmsg_type == libc::IPV6_RECVERR);
            let whole = header.cmsg_len as usize
                >= libc::CMSG_LEN(size_of::<libc::sock_extended_err>() as u32) as usize;
            if is_error && whole {
                let error: libc::sock_extended_err =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                let kind = (error.ee_type, error.ee_code);
                let unreachable = (error.ee_origin == libc::SO_EE_ORIGIN_ICMP
                    && kind == ICMP_PORT_UNREACHABLE)
                    || (error.ee_origin == libc::SO_EE_ORIGIN_ICMP6
                        && kind == ICMP6_PORT_UNREACHABLE);
                return Ok(if unreachable {
                    Report::PortUnreachable(to)
                } else {
                    Report::Other
                });
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Report::Other)
}

/// The address the failed datagram was sent to, from `recvmsg`'s name.
fn address(name: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    let storage = (name as *const libc::sockaddr_storage).cast::<u8>();
    match libc::c_int::from(name.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a sockaddr_in of this length into the storage, which
            // is larger; read unaligned to make no assumption.
            #[allow(unsafe_code)]
            let a: libc::sockaddr_in = unsafe { std::ptr::read_unaligned(storage.cast()) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a sockaddr_in6.
            #[allow(unsafe_code)]
            let a: libc::sockaddr_in6 = unsafe { std::ptr::read_unaligned(storage.cast()) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// Turn reports on for `sender`, send a datagram to a port on `local` that was bound a
    /// moment ago and is closed now, and wait (at most 5 s) until the socket signals the error.
    fn ping_a_closed_port(sender: &UdpSocket, local: &str) -> SocketAddr {
        enable(sender, sender.local_addr().unwrap().is_ipv6()).unwrap();
        let closed = UdpSocket::bind(local).unwrap().local_addr().unwrap();
        sender.send_to(b"ping", closed).unwrap();
        let mut pollfd = libc::pollfd {
            fd: sender.as_raw_fd(),
            events: 0,
            revents: 0,
        };
        // SAFETY: one live pollfd, count 1.
        #[allow(unsafe_code)]
        let ready = unsafe { libc::poll(&mut pollfd, 1, 5_000) };
        assert_eq!(ready, 1, "no error signalled within 5 s");
        closed
    }

    /// A datagram to a loopback port nobody listens on comes back as a report naming it; the
    /// queue is then empty.
    fn reports_a_closed_port(local: &str) {
        let sender = UdpSocket::bind(local).unwrap();
        let closed = ping_a_closed_port(&sender, local);
        assert_eq!(
            read_one(sender.as_raw_fd()).unwrap(),
            Report::PortUnreachable(closed)
        );
        let empty = read_one(sender.as_raw_fd()).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_closed_ipv4_port_is_reported() {
        reports_a_closed_port("127.0.0.1:0");
    }

    #[test]
    fn a_closed_ipv6_port_is_reported() {
        reports_a_closed_port("[::1]:0");
    }

    /// The kernel also fails the next send, to any address, with the pending error: that is
    /// what the driver's `send` retries. Turning reports off drops what is queued.
    #[test]
    fn the_next_send_carries_the_error_and_disable_drops_the_queue() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let live = UdpSocket::bind("127.0.0.1:0").unwrap();
        ping_a_closed_port(&sender, "127.0.0.1:0");
        let to_live = live.local_addr().unwrap();
        let failed = sender.send_to(b"ack", to_live).unwrap_err();
        assert!(is_earlier_datagrams_error(&failed), "{failed}");
        sender.send_to(b"ack", to_live).unwrap();
        disable(&sender, false).unwrap();
        let empty = read_one(sender.as_raw_fd()).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn an_empty_queue_would_block() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable(&socket, false).unwrap();
        let empty = read_one(socket.as_raw_fd()).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }
}
