//! The TCP side of a BGP session: connect and listen with TCP-MD5 (RFC 2385), the session's TTL,
//! its TCP maximum segment size (`transport.tcpMss`, `TCP_MAXSEG`) and path MTU discovery
//! (`transport.mtuDiscovery`), as the session plan resolved them
//! ([`oxelb_speaker_core::sessions::SessionConfig`]).
//!
//! The MSS goes on the socket before connect, so the SYN's MSS option (RFC 9293 section 3.7.1)
//! carries it. On connections the router makes, Linux takes the SYN-ACK's MSS from the listening
//! socket, which every peer shares: the listener gets the smallest `tcpMss` of the node's
//! sessions ([`set_listener_mss`]).
//!
//! A wrong MD5 password gives no error anywhere: the router drops our SYNs silently, so the only
//! symptom is a connect timeout (`LAB-NOTES.md`). [`TransportError::Timeout`] says so in its message,
//! naming the peer and the field to check, so the log line points at the cause.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    os::fd::AsFd,
    time::Duration,
};

use socket2::SockRef;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::sys::{Md5Error, set_pmtu_discovery, set_tcp_md5};

/// How to reach one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dial {
    /// The peer's address and port.
    pub peer: SocketAddr,
    /// The local address to bind to (the node's address), if any.
    pub local: Option<IpAddr>,
    /// TCP-MD5 password.
    pub md5_password: Option<String>,
    /// IP TTL (IPv4) / hop limit (IPv6) of the session's packets.
    pub ttl: u8,
    /// TCP maximum segment size (`TCP_MAXSEG`), when set; else the kernel's.
    pub tcp_mss: Option<u16>,
    /// Path MTU discovery on or off, when set; else the kernel's setting.
    pub mtu_discovery: Option<bool>,
}

/// Why a connection could not be made or served.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A socket call failed.
    #[error("BGP peer {peer}: {what} failed ({source})")]
    Io {
        /// The peer (or the listen address).
        peer: SocketAddr,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The MD5 key could not be set.
    #[error(transparent)]
    Md5(#[from] Md5Error),
    /// No answer in time.
    #[error("BGP peer {peer}: no TCP answer within {after:?}{hint}; retrying")]
    Timeout {
        /// The peer.
        peer: SocketAddr,
        /// How long we waited.
        after: Duration,
        /// What to check.
        hint: &'static str,
    },
}

fn io_error(peer: SocketAddr, what: &'static str) -> impl FnOnce(std::io::Error) -> TransportError {
    move |source| TransportError::Io { peer, what, source }
}

/// Connects to `dial.peer` with its MD5 key and TTL, within `timeout`.
pub async fn connect(dial: &Dial, timeout: Duration) -> Result<TcpStream, TransportError> {
    let peer = dial.peer;
    let socket = if peer.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(io_error(peer, "socket"))?;
    if let Some(password) = &dial.md5_password {
        // Before connect: the SYN itself must carry the signature.
        set_tcp_md5(socket.as_fd(), peer.ip(), Some(password.as_bytes()))?;
    }
    set_ttl(&socket, peer, dial.ttl)?;
    if let Some(mss) = dial.tcp_mss {
        // Before connect: the SYN announces it.
        set_mss(&socket, peer, mss)?;
    }
    if let Some(on) = dial.mtu_discovery {
        set_mtu_discovery(&socket, peer, on)?;
    }
    socket.set_nodelay(true).map_err(io_error(peer, "TCP_NODELAY"))?;
    if let Some(local) = dial.local {
        socket
            .bind(SocketAddr::new(local, 0))
            .map_err(io_error(peer, "bind to the node address"))?;
    }
    match tokio::time::timeout(timeout, socket.connect(peer)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(source)) => Err(TransportError::Io {
            peer,
            what: "connect",
            source,
        }),
        Err(_) => Err(TransportError::Timeout {
            peer,
            after: timeout,
            hint: if dial.md5_password.is_some() {
                " (with TCP-MD5 on, a wrong or missing password on either side looks exactly like this: the router drops the unsigned or mis-signed SYNs silently; check BgpPeer spec.conf.authPassword and the router's neighbor password)"
            } else {
                " (if the router expects a TCP-MD5 password, set BgpPeer spec.conf.authPassword; otherwise check the address, port and reachability)"
            },
        }),
    }
}

/// Listens on `addr` for routers that connect to us, with each peer's MD5 key (connections from a
/// peer with a key must be signed with it) and the MSS of its SYN-ACKs (`mss`: the smallest
/// `tcpMss` of the sessions, set before the first SYN can arrive; see [`set_listener_mss`]).
pub fn listen(
    addr: SocketAddr,
    passwords: &BTreeMap<IpAddr, String>,
    mss: Option<u16>,
) -> Result<TcpListener, TransportError> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(io_error(addr, "socket"))?;
    socket
        .set_reuseaddr(true)
        .map_err(io_error(addr, "SO_REUSEADDR"))?;
    for (peer, password) in passwords {
        set_tcp_md5(socket.as_fd(), *peer, Some(password.as_bytes()))?;
    }
    if let Some(mss) = mss {
        set_mss(&socket, addr, mss)?;
    }
    socket.bind(addr).map_err(io_error(addr, "bind"))?;
    socket.listen(64).map_err(io_error(addr, "listen"))
}

/// Changes the listener's MD5 keys from `old` to `new` (removing keys of peers that are gone).
pub fn update_listener_keys(
    listener: &TcpListener,
    old: &BTreeMap<IpAddr, String>,
    new: &BTreeMap<IpAddr, String>,
) -> Result<(), TransportError> {
    for peer in old.keys().filter(|p| !new.contains_key(*p)) {
        set_tcp_md5(listener.as_fd(), *peer, None)?;
    }
    for (peer, password) in new.iter().filter(|(p, pw)| old.get(*p) != Some(*pw)) {
        set_tcp_md5(listener.as_fd(), *peer, Some(password.as_bytes()))?;
    }
    Ok(())
}

/// Sets the TTL of an accepted or connecting socket (RFC 4271 leaves it to configuration; eBGP
/// single-hop uses 1 so a session cannot cross a router).
pub fn set_ttl(socket: &impl AsFd, peer: SocketAddr, ttl: u8) -> Result<(), TransportError> {
    let sock = SockRef::from(socket);
    if peer.is_ipv4() {
        sock.set_ttl_v4(u32::from(ttl)).map_err(io_error(peer, "IP_TTL"))
    } else {
        sock.set_unicast_hops_v6(u32::from(ttl))
            .map_err(io_error(peer, "IPV6_UNICAST_HOPS"))
    }
}

/// Sets the TCP maximum segment size (`TCP_MAXSEG`): on a socket before connect it is the MSS
/// option of the SYN (and the largest segment sent); on a listener, that of its SYN-ACKs.
pub fn set_mss(socket: &impl AsFd, peer: SocketAddr, mss: u16) -> Result<(), TransportError> {
    SockRef::from(socket)
        .set_tcp_mss(u32::from(mss))
        .map_err(io_error(peer, "TCP_MAXSEG (BgpPeer spec.transport.tcpMss)"))
}

/// Sets the listener's MSS to the smallest of `mss` (the `tcpMss` of the node's sessions that
/// set one): Linux answers every router's SYN with the listener's value, so no session gets a
/// larger MSS than its BgpPeer asks for; sessions without `tcpMss` then get it too (a smaller
/// segment only costs a few more packets). None set: 0, the kernel's default again.
pub fn set_listener_mss(
    listener: &TcpListener,
    mss: impl IntoIterator<Item = u16>,
) -> Result<(), TransportError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    set_mss(listener, addr, mss.into_iter().min().unwrap_or(0))
}

/// Turns path MTU discovery on or off for a connecting or accepted socket.
pub fn set_mtu_discovery(socket: &impl AsFd, peer: SocketAddr, on: bool) -> Result<(), TransportError> {
    let ipv6 = SockRef::from(socket)
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or(peer.is_ipv6(), |a| a.is_ipv6());
    set_pmtu_discovery(socket.as_fd(), ipv6, on).map_err(io_error(
        peer,
        "IP_MTU_DISCOVER (BgpPeer spec.transport.mtuDiscovery)",
    ))
}
