//! The one module of the workspace that calls the kernel directly (`unsafe`): socket options that
//! neither std, tokio nor socket2 offer. Every `unsafe` block is a single `setsockopt` call on a
//! borrowed, open descriptor with a value that lives across the call; each says why it is sound.
//!
//! - TCP-MD5 signatures for BGP sessions (RFC 2385, Linux `TCP_MD5SIG`), on connecting sockets and
//!   on the listener (accepted sockets inherit the listener's keys).
//! - The minimum TTL (hop limit) of received packets, for BFD's single-hop GTSM check (RFC 5881
//!   section 5): the kernel drops what arrives with less than 255.
//! - Path MTU discovery on or off (`IP_MTU_DISCOVER`, `IPV6_MTU_DISCOVER`) for BgpPeer
//!   `transport.mtuDiscovery`: socket2 has no call for it (it has one for `TCP_MAXSEG`, which
//!   `bgp::transport` uses).
//! - [`packet`]: the layer2 AF_PACKET sockets (ARP; NS behind a BPF filter) under tokio, re-exported
//!   as `layer2::socket`.

pub mod packet;

use std::{
    io,
    mem::size_of,
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd, BorrowedFd},
};

use socket2::SockAddr;

/// `TCP_MD5SIG_MAXKEYLEN` of `linux/tcp.h`.
pub const TCP_MD5_MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` of `linux/tcp.h`: libc has the option's constant but not the struct.
#[repr(C)]
struct TcpMd5Sig {
    /// `struct __kernel_sockaddr_storage`: the peer, port ignored.
    addr: libc::sockaddr_storage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; TCP_MD5_MAX_KEY_LEN],
}

/// Why an MD5 key could not be set.
#[derive(Debug, thiserror::Error)]
pub enum Md5Error {
    /// The password is longer than the kernel accepts.
    #[error("TCP-MD5 password for {peer} is {len} bytes; the kernel accepts at most 80")]
    TooLong {
        /// The peer.
        peer: IpAddr,
        /// Its length.
        len: usize,
    },
    /// The kernel refused (no `CONFIG_TCP_MD5SIG`, or a bad descriptor).
    #[error("TCP-MD5 for {peer}: setsockopt(TCP_MD5SIG) failed ({source})")]
    Setsockopt {
        /// The peer.
        peer: IpAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Sets (`Some`) or removes (`None`) the TCP-MD5 key for segments to and from `peer` on `socket`.
/// On a listener it applies to connections accepted from `peer`.
pub fn set_tcp_md5(socket: BorrowedFd<'_>, peer: IpAddr, password: Option<&[u8]>) -> Result<(), Md5Error> {
    let key = password.unwrap_or_default();
    if key.len() > TCP_MD5_MAX_KEY_LEN {
        return Err(Md5Error::TooLong { peer, len: key.len() });
    }
    let address = SockAddr::from(SocketAddr::new(peer, 0));
    // SAFETY: an all-zero `sockaddr_storage` is a valid (unspecified-family) value; the bytes of
    // `address` are then copied in, and `SockAddr::len` never exceeds `sockaddr_storage`'s size.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = (address.len() as usize).min(size_of::<libc::sockaddr_storage>());
    // SAFETY: both pointers are valid for `len` bytes and do not overlap (distinct values).
    unsafe {
        std::ptr::copy_nonoverlapping(
            address.as_ptr().cast::<u8>(),
            (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
            len,
        );
    }
    let mut sig = TcpMd5Sig {
        addr: storage,
        flags: 0,
        prefix_len: 0,
        // Fits: checked against 80 above. A zero length removes the key (tcp_v4_parse_md5_keys).
        key_len: key.len() as u16,
        ifindex: 0,
        key: [0; TCP_MD5_MAX_KEY_LEN],
    };
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: `socket` is an open descriptor for the duration of the borrow; `sig` is a properly
    // initialised `#[repr(C)] struct tcp_md5sig` that outlives the call, and the length passed is its
    // exact size, so the kernel reads only memory we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&sig as *const TcpMd5Sig).cast::<libc::c_void>(),
            size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Md5Error::Setsockopt {
            peer,
            source: io::Error::last_os_error(),
        })
    }
}

/// Makes the kernel drop packets that arrive on `socket` with a TTL (IPv4, `IP_MINTTL`) or hop
/// limit (IPv6, `IPV6_MINHOPCOUNT`) below `min`.
pub fn set_min_ttl(socket: BorrowedFd<'_>, ipv6: bool, min: u8) -> io::Result<()> {
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT)
    } else {
        (libc::IPPROTO_IP, libc::IP_MINTTL)
    };
    set_int(socket, level, name, libc::c_int::from(min))
}

/// Turns path MTU discovery (RFC 1191, RFC 8201) on or off for `socket`: on is `IP_PMTUDISC_DO`
/// (`IPV6_PMTUDISC_DO`): the DF bit on every packet, the kernel follows the path MTU; off is
/// `IP_PMTUDISC_DONT` (`IPV6_PMTUDISC_DONT`): no DF bit, the packets may be fragmented on the
/// way (IPv6 fragments only at the source). `ipv6`: the socket is an IPv6 one; a dual-stack IPv6
/// socket carrying IPv4 gets both options.
pub fn set_pmtu_discovery(socket: BorrowedFd<'_>, ipv6: bool, on: bool) -> io::Result<()> {
    let v4 = if on {
        libc::IP_PMTUDISC_DO
    } else {
        libc::IP_PMTUDISC_DONT
    };
    if ipv6 {
        let v6 = if on {
            libc::IPV6_PMTUDISC_DO
        } else {
            libc::IPV6_PMTUDISC_DONT
        };
        set_int(socket, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, v6)?;
        // For IPv4-mapped traffic on the same socket; an IPv6-only socket may refuse it.
        let _ = set_int(socket, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v4);
        Ok(())
    } else {
        set_int(socket, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v4)
    }
}

/// `setsockopt(socket, level, name, &value, sizeof(int))`.
fn set_int(
    socket: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `socket` is an open descriptor for the duration of the borrow; `value` is a c_int
    // that outlives the call, and the length passed is its exact size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast::<libc::c_void>(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn path_mtu_discovery_is_set_on_real_sockets_of_both_families() {
        fn read(socket: &socket2::Socket, level: libc::c_int, name: libc::c_int) -> libc::c_int {
            let mut value: libc::c_int = -1;
            let mut len = size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: test-only getsockopt into a c_int of the length passed.
            let rc = unsafe {
                libc::getsockopt(
                    socket.as_raw_fd(),
                    level,
                    name,
                    (&mut value as *mut libc::c_int).cast::<libc::c_void>(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            value
        }
        let v4 = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        set_pmtu_discovery(v4.as_fd(), false, false).unwrap();
        assert_eq!(
            read(&v4, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
            libc::IP_PMTUDISC_DONT
        );
        set_pmtu_discovery(v4.as_fd(), false, true).unwrap();
        assert_eq!(
            read(&v4, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
            libc::IP_PMTUDISC_DO
        );
        let v6 = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).unwrap();
        set_pmtu_discovery(v6.as_fd(), true, false).unwrap();
        assert_eq!(
            read(&v6, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER),
            libc::IPV6_PMTUDISC_DONT
        );
        assert_eq!(
            read(&v6, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
            libc::IP_PMTUDISC_DONT
        );
    }

    #[test]
    fn struct_layout_matches_the_kernel() {
        // sizeof(struct tcp_md5sig) on Linux: 128 + 1 + 1 + 2 + 4 + 80.
        assert_eq!(size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn keys_are_set_and_removed_on_real_sockets_of_both_families() {
        for (domain, peer) in [
            (socket2::Domain::IPV4, "198.51.100.1".parse::<IpAddr>().unwrap()),
            (socket2::Domain::IPV6, "2001:db8::1".parse().unwrap()),
        ] {
            let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None).unwrap();
            set_tcp_md5(socket.as_fd(), peer, Some(b"s3cret")).unwrap();
            set_tcp_md5(socket.as_fd(), peer, None).unwrap();
        }
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let long = [b'x'; 81];
        assert!(matches!(
            set_tcp_md5(socket.as_fd(), "198.51.100.1".parse().unwrap(), Some(&long)),
            Err(Md5Error::TooLong { len: 81, .. })
        ));
    }
}
