//! The UDP sockets of BFD (RFC 5881 section 4, RFC 5883 section 5): where control packets are
//! received (single hop with GTSM, multihop; IPv4 and IPv6) and the two send sockets.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::AsFd,
    sync::Arc,
};

use oxelb_bfd::wire::{self, PORT_MULTIHOP, PORT_SINGLE_HOP};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tracing::warn;

/// The receive sockets (single hop v4, v6; multihop v4, v6) and the two send sockets.
#[derive(Default)]
pub(super) struct Sockets {
    pub(super) receive: [Option<Arc<UdpSocket>>; 4],
    pub(super) send4: Option<UdpSocket>,
    pub(super) send6: Option<UdpSocket>,
}

/// The sockets of RFC 5881 and 5883; each that cannot be opened is logged and left out (its
/// sessions then stay Down, and so do their BGP sessions: the log line says why). The send
/// sockets take the source ports of `ports` (IPv4, IPv6) when free: a continued session keeps
/// its port (RFC 5881 section 4).
pub(super) fn open_sockets(ports: (Option<u16>, Option<u16>)) -> Sockets {
    let mut sockets = Sockets::default();
    let plan = [
        (IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT_SINGLE_HOP, true),
        (IpAddr::V6(Ipv6Addr::UNSPECIFIED), PORT_SINGLE_HOP, true),
        (IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT_MULTIHOP, false),
        (IpAddr::V6(Ipv6Addr::UNSPECIFIED), PORT_MULTIHOP, false),
    ];
    for (slot, (ip, port, gtsm)) in plan.into_iter().enumerate() {
        match bind(SocketAddr::new(ip, port), gtsm) {
            Ok(socket) => sockets.receive[slot] = Some(Arc::new(socket)),
            Err(error) => {
                warn!(address = %SocketAddr::new(ip, port), %error, "cannot receive BFD packets there: BFD sessions on it stay Down, and so do their BGP sessions")
            }
        }
    }
    for ip in [
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    ] {
        let port = if ip.is_ipv4() { ports.0 } else { ports.1 };
        match bind_source(ip, port) {
            Ok(socket) if ip.is_ipv4() => sockets.send4 = Some(socket),
            Ok(socket) => sockets.send6 = Some(socket),
            Err(error) => {
                warn!(family = if ip.is_ipv4() { "IPv4" } else { "IPv6" }, %error, "cannot open a BFD send socket")
            }
        }
    }
    sockets
}

fn udp(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind(addr: SocketAddr, gtsm: bool) -> std::io::Result<UdpSocket> {
    let socket = udp(addr)?;
    socket.set_reuse_address(true)?;
    if gtsm {
        crate::sys::set_min_ttl(socket.as_fd(), addr.is_ipv6(), wire::TTL)?;
    }
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// A send socket on a source port in 49152..=65535 (RFC 5881 section 4), `preferred` when
/// given and free, TTL 255.
fn bind_source(ip: IpAddr, preferred: Option<u16>) -> std::io::Result<UdpSocket> {
    let socket = udp(SocketAddr::new(ip, 0))?;
    if ip.is_ipv6() {
        socket.set_unicast_hops_v6(u32::from(wire::TTL))?;
    } else {
        socket.set_ttl_v4(u32::from(wire::TTL))?;
    }
    if let Some(port) = preferred.filter(|p| *p >= 49152) {
        match socket.bind(&SocketAddr::new(ip, port).into()) {
            Ok(()) => return UdpSocket::from_std(socket.into()),
            Err(error) => {
                warn!(port, %error, "cannot keep the BFD source port of the previous process: another is used")
            }
        }
    }
    // Start at a per-process offset so that two speakers' sockets rarely probe the same ports.
    let start = 49152 + (std::process::id() % 16384) as u16;
    let mut last = None;
    for i in 0..16384u16 {
        let port = 49152 + (start - 49152 + i) % 16384;
        match socket.bind(&SocketAddr::new(ip, port).into()) {
            Ok(()) => return UdpSocket::from_std(socket.into()),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free source port")))
}

pub(super) async fn recv(
    socket: Option<Arc<UdpSocket>>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(socket) => socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

pub(super) fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}
