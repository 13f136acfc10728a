//! AF_PACKET sockets for the layer2 responder: one per interface for ARP, one for IPv6 Neighbor
//! Solicitations, non-blocking under tokio's [`AsyncFd`], sending and receiving whole Ethernet
//! frames (parsed and built by [`super::frames`]).
//!
//! Why not a capture of everything (pnet's datalink channel, `ETH_P_ALL`): it hands every frame of
//! the interface to user space and cost ~20% of a core under heavy unrelated traffic (LAB-NOTES).
//! Here the kernel filters: the ARP socket is bound to `ETH_P_ARP`, and the IPv6 one to
//! `ETH_P_IPV6` with a classic BPF program that keeps only ICMPv6 type 135 directly after the fixed
//! IPv6 header, so only the frames we may answer ever reach user space.
//!
//! This module calls the kernel directly where socket2 has no safe API (`bind` to a
//! `sockaddr_ll`, `SOL_PACKET` options, `if_nametoindex`); each `unsafe` block says why it is sound.

use std::{
    ffi::CString,
    io::{self, Read as _, Write as _},
    mem::size_of,
    os::fd::AsRawFd as _,
};

use socket2::{Domain, SockAddr, SockAddrStorage, SockFilter, Socket, Type};
use tokio::io::{Interest, unix::AsyncFd};

use crate::layer2::frames::MacAddr;

/// `ETH_P_ARP` (`linux/if_ether.h`).
const ETH_P_ARP: u16 = 0x0806;
/// `ETH_P_IPV6` (`linux/if_ether.h`).
const ETH_P_IPV6: u16 = 0x86dd;

/// A receive buffer that holds any frame of a standard 1500-byte MTU link (frames larger than the
/// buffer given to [`PacketSocket::recv`] are truncated; ARP and NS frames are under 100 bytes).
pub const RECV_BUFFER_LEN: usize = 1514;

/// What a [`PacketSocket`] receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Every ARP frame of the interface.
    Arp,
    /// IPv6 frames carrying an ICMPv6 Neighbor Solicitation right after the fixed header.
    NeighborSolicitation,
}

/// Why a socket could not be opened or configured.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The interface name contains a NUL byte.
    #[error("interface name {0:?} is not a valid C string")]
    InvalidName(String),
    /// No interface of that name in this network namespace.
    #[error("no interface {name}: {source}")]
    NoSuchInterface {
        /// The name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A step of opening the socket failed (`CAP_NET_RAW` is needed for AF_PACKET; a refusal says
    /// so, naming the capability).
    #[error(
        "{kind:?} AF_PACKET socket on interface index {ifindex}: {step} failed: {source}{}",
        needs_capability(source)
    )]
    Open {
        /// Which socket.
        kind: Kind,
        /// The interface.
        ifindex: u32,
        /// The step: socket, filter, bind, ...
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Joining or leaving a multicast MAC failed.
    #[error("{op} of {mac} on interface index {ifindex} failed: {source}")]
    Membership {
        /// `PACKET_ADD_MEMBERSHIP` or `PACKET_DROP_MEMBERSHIP`.
        op: &'static str,
        /// The group MAC.
        mac: MacAddr,
        /// The interface.
        ifindex: u32,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The index of interface `name` in this network namespace.
pub fn interface_index(name: &str) -> Result<u32, SocketError> {
    let c_name = CString::new(name).map_err(|_| SocketError::InvalidName(name.to_owned()))?;
    // SAFETY: `c_name` is a valid NUL-terminated string that outlives the call; the function only
    // reads it.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        return Err(SocketError::NoSuchInterface {
            name: name.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(index)
}

// Classic BPF opcodes (`linux/bpf_common.h`, a stable kernel ABI).
/// BPF_LD (0x00) | BPF_H (0x08) | BPF_ABS (0x20): load the 16-bit word at k.
const BPF_LD_H_ABS: u16 = 0x28;
/// BPF_LD (0x00) | BPF_B (0x10) | BPF_ABS (0x20): load the byte at k.
const BPF_LD_B_ABS: u16 = 0x30;
/// BPF_JMP (0x05) | BPF_JEQ (0x10) | BPF_K (0x00): jump by jt if the accumulator equals k, else jf.
const BPF_JEQ_K: u16 = 0x15;
/// BPF_RET (0x06) | BPF_K (0x00): return k (bytes to keep; 0 drops).
const BPF_RET_K: u16 = 0x06;

/// The filter of the NS socket, as (code, jump if true, jump if false, k). Offsets count from the
/// Ethernet header (SOCK_RAW): ethertype at 12, IPv6 next header at 14 + 6, ICMPv6 type at 14 + 40.
/// NS behind extension headers are dropped: Linux sends none, and [`super::frames::parse`] would
/// ignore them anyway.
const NS_FILTER: [(u16, u8, u8, u32); 8] = [
    (BPF_LD_H_ABS, 0, 0, 12),
    (BPF_JEQ_K, 0, 5, 0x86dd), // IPv6, else drop
    (BPF_LD_B_ABS, 0, 0, 20),
    (BPF_JEQ_K, 0, 3, 58), // next header ICMPv6, else drop
    (BPF_LD_B_ABS, 0, 0, 54),
    (BPF_JEQ_K, 0, 1, 135),      // Neighbor Solicitation, else drop
    (BPF_RET_K, 0, 0, u32::MAX), // accept the whole frame
    (BPF_RET_K, 0, 0, 0),        // drop
];

fn filter(program: &[(u16, u8, u8, u32)]) -> Vec<SockFilter> {
    program
        .iter()
        .map(|&(code, jt, jf, k)| SockFilter::new(code, jt, jf, k))
        .collect()
}

/// Sets a socket option whose value is a plain C struct or integer.
fn set_option<T>(socket: &Socket, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the descriptor is open (borrowed from `socket` for the call); `value` points to a
    // live, initialised `T` of exactly `len` bytes, which the kernel only reads.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What to add to an error of opening an AF_PACKET socket: a refusal (`EPERM`, `EACCES`) means the
/// process lacks `CAP_NET_RAW` in its network namespace's user namespace, which the message names
/// (a container started without it, or with `drop: [NET_RAW]`, fails here).
fn needs_capability(source: &io::Error) -> &'static str {
    if source.kind() == io::ErrorKind::PermissionDenied {
        " (opening an AF_PACKET socket needs CAP_NET_RAW: grant it, e.g. securityContext.capabilities.add: [NET_RAW])"
    } else {
        ""
    }
}

/// An AF_PACKET SOCK_RAW socket bound to one interface and one protocol.
#[derive(Debug)]
pub struct PacketSocket {
    io: AsyncFd<Socket>,
    ifindex: u32,
    kind: Kind,
}

impl PacketSocket {
    /// Opens the ARP socket of interface `ifindex`.
    pub fn arp(ifindex: u32) -> Result<Self, SocketError> {
        Self::open(ifindex, Kind::Arp)
    }

    /// Opens the Neighbor Solicitation socket of interface `ifindex`.
    pub fn neighbor_solicitation(ifindex: u32) -> Result<Self, SocketError> {
        Self::open(ifindex, Kind::NeighborSolicitation)
    }

    /// Opens a socket of `kind` on interface `ifindex`. Needs `CAP_NET_RAW`, and a tokio runtime with
    /// IO enabled.
    pub fn open(ifindex: u32, kind: Kind) -> Result<Self, SocketError> {
        let step = |step: &'static str| {
            move |source: io::Error| SocketError::Open {
                kind,
                ifindex,
                step,
                source,
            }
        };
        let protocol = match kind {
            Kind::Arp => ETH_P_ARP,
            Kind::NeighborSolicitation => ETH_P_IPV6,
        };
        // Index 0 in bind means "every interface": never what a caller wants here.
        if ifindex == 0 || libc::c_int::try_from(ifindex).is_err() {
            return Err(step("interface index")(io::Error::from(
                io::ErrorKind::InvalidInput,
            )));
        }
        // Protocol 0 receives nothing until bind names the protocol and the interface, so no frame
        // of another interface or protocol is queued in between (packet(7)).
        let socket = Socket::new(Domain::PACKET, Type::RAW.cloexec(), None).map_err(step("socket"))?;
        if kind == Kind::NeighborSolicitation {
            // Before bind: no frame is ever queued unfiltered.
            socket
                .attach_filter(&filter(&NS_FILTER))
                .map_err(step("SO_ATTACH_FILTER"))?;
        }
        // Our own frames (replies, announcements) must not come back as requests. A socket bound to
        // one protocol never sees outgoing frames (the kernel copies outgoing traffic only to
        // ETH_P_ALL taps; measured in the lab test), so this is belt and braces, and a kernel before
        // 4.20 without the option (ENOPROTOOPT) is fine.
        let one: libc::c_int = 1;
        if let Err(error) = set_option(&socket, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one) {
            tracing::debug!(ifindex, ?kind, %error, "PACKET_IGNORE_OUTGOING not supported");
        }
        socket
            .bind(&link_address(ifindex, protocol))
            .map_err(step("bind"))?;
        socket.set_nonblocking(true).map_err(step("O_NONBLOCK"))?;
        // AsyncFd::register panics outside a runtime: say so as an error instead.
        tokio::runtime::Handle::try_current().map_err(|e| step("tokio runtime")(io::Error::other(e)))?;
        // SAFETY: `socket2::Socket` owns its descriptor, which stays open and the same until the
        // socket is dropped with the AsyncFd; this module never swaps it (only `get_ref` is used).
        let io = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE | Interest::WRITABLE) }
            .map_err(|e| step("AsyncFd")(e.into()))?;
        Ok(Self { io, ifindex, kind })
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// What this socket receives.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Receives one frame (from the Ethernet header on) into `buf`, returning its length; a longer
    /// frame is truncated to `buf` (see [`RECV_BUFFER_LEN`]). An error such as `ENETDOWN` after the
    /// link went down is reported once; the socket stays usable.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.io.readable().await?;
            match guard.try_io(|inner| {
                let mut socket: &Socket = inner.get_ref();
                socket.read(buf)
            }) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one whole frame (Ethernet header included) out of the interface.
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.io.writable().await?;
            match guard.try_io(|inner| {
                let mut socket: &Socket = inner.get_ref();
                socket.write(frame)
            }) {
                Ok(Ok(sent)) if sent == frame.len() => return Ok(()),
                Ok(Ok(sent)) => {
                    return Err(io::Error::other(format!("sent {sent} of {} bytes", frame.len())));
                }
                Ok(Err(error)) => return Err(error),
                Err(_would_block) => continue,
            }
        }
    }

    /// Makes the interface accept frames to multicast `mac` (`PACKET_ADD_MEMBERSHIP`), e.g. the
    /// solicited-node MAC of an announced IPv6 address, which a NIC otherwise may filter out. The
    /// kernel counts joins per socket: call [`leave`](Self::leave) once per join.
    pub fn join(&self, mac: MacAddr) -> Result<(), SocketError> {
        self.membership(libc::PACKET_ADD_MEMBERSHIP, "PACKET_ADD_MEMBERSHIP", mac)
    }

    /// Undoes one [`join`](Self::join) of `mac` (`PACKET_DROP_MEMBERSHIP`).
    pub fn leave(&self, mac: MacAddr) -> Result<(), SocketError> {
        self.membership(libc::PACKET_DROP_MEMBERSHIP, "PACKET_DROP_MEMBERSHIP", mac)
    }

    fn membership(&self, option: libc::c_int, op: &'static str, mac: MacAddr) -> Result<(), SocketError> {
        let error = |source: io::Error| SocketError::Membership {
            op,
            mac,
            ifindex: self.ifindex,
            source,
        };
        let request = libc::packet_mreq {
            mr_ifindex: libc::c_int::try_from(self.ifindex)
                .map_err(|_| error(io::Error::from(io::ErrorKind::InvalidInput)))?,
            mr_type: libc::PACKET_MR_MULTICAST as libc::c_ushort,
            mr_alen: 6,
            mr_address: [mac.0, mac.1, mac.2, mac.3, mac.4, mac.5, 0, 0],
        };
        set_option(self.io.get_ref(), libc::SOL_PACKET, option, &request).map_err(error)
    }
}

/// The `sockaddr_ll` naming interface `ifindex` and `protocol` (packet(7)).
fn link_address(ifindex: u32, protocol: u16) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `sockaddr_ll` is one of this platform's socket address types, smaller than the
    // storage (view_as asserts it) and with no stricter alignment than `sockaddr_storage`.
    let address = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    address.sll_family = libc::AF_PACKET as libc::c_ushort;
    address.sll_protocol = protocol.to_be();
    // `open` checked that the index is a positive `int`.
    address.sll_ifindex = libc::c_int::try_from(ifindex).unwrap_or(0);
    // SAFETY: the storage holds an initialised `sockaddr_ll` (the rest zeroed), and the length given
    // is that of a `sockaddr_ll`.
    unsafe { SockAddr::new(storage, size_of::<libc::sockaddr_ll>() as libc::socklen_t) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_socket_names_the_capability() {
        let refused = SocketError::Open {
            kind: Kind::Arp,
            ifindex: 2,
            step: "socket",
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        let message = refused.to_string();
        assert!(
            message.starts_with("Arp AF_PACKET socket on interface index 2: socket failed: "),
            "{message}"
        );
        assert!(message.contains("needs CAP_NET_RAW"), "{message}");
        let other = SocketError::Open {
            kind: Kind::Arp,
            ifindex: 2,
            step: "bind",
            source: io::Error::from_raw_os_error(libc::ENODEV),
        };
        assert!(!other.to_string().contains("CAP_NET_RAW"), "{other}");
    }

    /// Runs a classic BPF program of loads, equality jumps and returns, as the kernel would.
    fn run(program: &[(u16, u8, u8, u32)], frame: &[u8]) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let (code, jt, jf, k) = program[pc];
            let at = k as usize;
            match code {
                BPF_LD_H_ABS => match frame.get(at..at + 2) {
                    Some(b) => acc = u32::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return 0, // The kernel drops on an out-of-bounds load.
                },
                BPF_LD_B_ABS => match frame.get(at) {
                    Some(b) => acc = u32::from(*b),
                    None => return 0,
                },
                BPF_JEQ_K => {
                    pc += usize::from(if acc == k { jt } else { jf });
                }
                BPF_RET_K => return k,
                other => panic!("opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn ns_filter_keeps_only_neighbor_solicitations() {
        use crate::layer2::frames::{
            Request, neighbor_solicitation, parse, unsolicited_neighbor_advertisement,
        };
        let mac = MacAddr::new(2, 0, 0, 0, 0, 1);
        let ns = neighbor_solicitation(
            mac,
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        assert!(matches!(parse(&ns), Ok(Request::NeighborSolicitation(_))));
        assert_eq!(run(&NS_FILTER, &ns), u32::MAX);
        let na = unsolicited_neighbor_advertisement("2001:db8::2".parse().unwrap(), mac);
        assert_eq!(run(&NS_FILTER, &na), 0);
        // Linux's MLDv2 report (hop-by-hop header first) and router solicitation.
        let mld = hex(
            "33330000001602000000000b86dd600000000038000100000000000000000000000000000000ff02000000000000\
             00000000000000163a000502000001008f006d630000000204000000ff0200000000000000000001ff00000b\
             04000000ff0200000000000000000001ff000002",
        );
        assert_eq!(run(&NS_FILTER, &mld), 0);
        let mut rs = ns.clone();
        rs[54] = 133;
        assert_eq!(run(&NS_FILTER, &rs), 0);
        // An ARP frame, and a runt.
        let arp = crate::layer2::frames::gratuitous_arp("192.0.2.1".parse().unwrap(), mac);
        assert_eq!(run(&NS_FILTER, &arp), 0);
        assert_eq!(run(&NS_FILTER, &ns[..40]), 0);
    }

    #[test]
    fn unknown_interface_is_an_error() {
        assert!(matches!(
            interface_index("oxelb-no-such0"),
            Err(SocketError::NoSuchInterface { .. })
        ));
        assert!(matches!(
            interface_index("a\0b"),
            Err(SocketError::InvalidName(_))
        ));
        assert_eq!(interface_index("lo").unwrap(), 1);
    }

    #[tokio::test]
    async fn index_zero_would_mean_every_interface_and_is_refused() {
        for ifindex in [0, u32::MAX] {
            let error = PacketSocket::arp(ifindex).unwrap_err();
            assert!(
                matches!(
                    error,
                    SocketError::Open {
                        step: "interface index",
                        ..
                    }
                ),
                "{error}"
            );
        }
    }
}
