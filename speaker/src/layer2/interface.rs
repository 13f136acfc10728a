//! Finding the NIC an Eip's `spec.interface` names on this node: by name, or `can_reach:<IP>` (the
//! NIC the kernel routes that IP through, by longest-prefix match over the main routing table, then
//! the lowest metric). `lo` is never a layer2 interface.
//!
//! The route choice and the table parsing are pure; [`resolve`] reads `/proc/net/route`,
//! `/proc/net/ipv6_route` and `/sys/class/net/<nic>/{ifindex,address}` under a root directory
//! (`/` on a node, a prepared tree in tests). The main table is what `can_reach` users mean; policy
//! routing rules are not consulted (a proposal for later: an `RTM_GETROUTE` lookup).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use oxelb_crds::interface::InterfaceSelector;

/// `RTF_UP` of the route flags.
const RTF_UP: u32 = 0x1;

/// A NIC of this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    /// Its name.
    pub name: String,
    /// Its interface index.
    pub index: u32,
    /// Its MAC address (what this node answers ARP/NDP with).
    pub mac: [u8; 6],
}

/// Why the interface cannot be used (an Event on the Eip; never a crash).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No NIC of that name on this node.
    #[error("interface {0:?} does not exist on this node")]
    NoSuchInterface(String),
    /// No route to the `can_reach` IP.
    #[error("can_reach:{0}: the kernel has no route to it on this node")]
    NoRoute(IpAddr),
    /// The route goes through the loopback.
    #[error("can_reach:{0}: routed through lo, which cannot answer ARP/NDP for the LAN")]
    Loopback(IpAddr),
    /// The name is `lo`.
    #[error("interface lo cannot answer ARP/NDP for the LAN")]
    LoopbackName,
    /// A kernel file could not be read or parsed.
    #[error("{path}: {problem}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
}

/// The NIC of the best IPv4 route to `ip` in `/proc/net/route` text.
pub fn route_v4(table: &str, ip: Ipv4Addr) -> Option<String> {
    let target = u32::from(ip);
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, flags, metric, mask) = (f.first()?, f.get(1)?, f.get(3)?, f.get(6)?, f.get(7)?);
            // The kernel prints the network-order word as a native integer: its native-endian bytes
            // are the address bytes.
            let dest = u32::from_be_bytes(u32::from_str_radix(dest, 16).ok()?.to_ne_bytes());
            let mask = u32::from_be_bytes(u32::from_str_radix(mask, 16).ok()?.to_ne_bytes());
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let metric: u32 = metric.parse().ok()?;
            (flags & RTF_UP != 0 && target & mask == dest & mask)
                .then(|| (mask.count_ones(), metric, (*iface).to_owned()))
        })
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(_, _, iface)| iface)
}

/// The NIC of the best IPv6 route to `ip` in `/proc/net/ipv6_route` text.
pub fn route_v6(table: &str, ip: Ipv6Addr) -> Option<String> {
    let target = u128::from(ip);
    table
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u128::from_str_radix(f.first()?, 16).ok()?;
            let len = u32::from_str_radix(f.get(1)?, 16).ok()?.min(128);
            let metric = u32::from_str_radix(f.get(5)?, 16).ok()?;
            let flags = u32::from_str_radix(f.get(8)?, 16).ok()?;
            let iface = f.get(9)?;
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            (flags & RTF_UP != 0 && target & mask == dest & mask).then(|| (len, metric, (*iface).to_owned()))
        })
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(_, _, iface)| iface)
}

fn read(root: &Path, rel: &str) -> Result<String, ResolveError> {
    let path = root.join(rel);
    std::fs::read_to_string(&path).map_err(|e| ResolveError::Unreadable {
        path,
        problem: e.to_string(),
    })
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = text
        .trim()
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    parts.try_into().ok()
}

/// Finds the NIC `selector` names, reading the kernel's files under `root`.
pub fn resolve(selector: &InterfaceSelector, root: &Path) -> Result<Nic, ResolveError> {
    let name = match selector {
        InterfaceSelector::Name(name) => name.clone(),
        InterfaceSelector::CanReach(ip) => {
            let found = match ip {
                IpAddr::V4(v4) => route_v4(&read(root, "proc/net/route")?, *v4),
                IpAddr::V6(v6) => route_v6(&read(root, "proc/net/ipv6_route")?, *v6),
            };
            let name = found.ok_or(ResolveError::NoRoute(*ip))?;
            if name == "lo" {
                return Err(ResolveError::Loopback(*ip));
            }
            name
        }
    };
    if name == "lo" {
        return Err(ResolveError::LoopbackName);
    }
    // A name with a path separator cannot be a NIC and must not escape /sys/class/net.
    if name.contains('/') || name == "." || name == ".." || !root.join("sys/class/net").join(&name).exists() {
        return Err(ResolveError::NoSuchInterface(name));
    }
    let index_text = read(root, &format!("sys/class/net/{name}/ifindex"))?;
    let index = index_text.trim().parse().map_err(|_| ResolveError::Unreadable {
        path: root.join(format!("sys/class/net/{name}/ifindex")),
        problem: format!("{:?} is not an interface index", index_text.trim()),
    })?;
    let mac_text = read(root, &format!("sys/class/net/{name}/address"))?;
    let mac = parse_mac(&mac_text).ok_or_else(|| ResolveError::Unreadable {
        path: root.join(format!("sys/class/net/{name}/address")),
        problem: format!("{:?} is not a MAC address", mac_text.trim()),
    })?;
    Ok(Nic { name, index, mac })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// As a little-endian machine prints it: 192.0.2.0/24 on eth0, a default route via eth1,
    /// 198.51.100.0/24 on eth2 with two metrics (eth3 worse), a down route.
    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth3\t006433C6\t00000000\t0001\t0\t0\t200\t00FFFFFF\t0\t0\t0
eth2\t006433C6\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
down\t007100CB\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    const ROUTE6: &str = "20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8000000000000000000000001 00000400 00000002 00000000 00000003     eth1
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
";

    #[test]
    fn longest_prefix_then_metric() {
        if cfg!(target_endian = "little") {
            assert_eq!(
                route_v4(ROUTE, "192.0.2.77".parse().unwrap()).as_deref(),
                Some("eth0")
            );
            assert_eq!(
                route_v4(ROUTE, "198.51.100.7".parse().unwrap()).as_deref(),
                Some("eth2")
            );
            assert_eq!(
                route_v4(ROUTE, "203.0.113.9".parse().unwrap()).as_deref(),
                Some("eth1"),
                "down route skipped: default"
            );
        }
        assert_eq!(
            route_v4("Iface\tDestination\n", "192.0.2.1".parse().unwrap()),
            None
        );
        assert_eq!(
            route_v6(ROUTE6, "2001:db8::42".parse().unwrap()).as_deref(),
            Some("eth0")
        );
        assert_eq!(
            route_v6(ROUTE6, "2001:db9::1".parse().unwrap()).as_deref(),
            Some("eth1")
        );
        assert_eq!(route_v6(ROUTE6, "::1".parse().unwrap()).as_deref(), Some("lo"));
        assert_eq!(route_v6("garbage\n\n1 2 3", "::1".parse().unwrap()), None);
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("proc/net")).unwrap();
        std::fs::write(root.join("proc/net/route"), ROUTE).unwrap();
        std::fs::write(root.join("proc/net/ipv6_route"), ROUTE6).unwrap();
        for (name, index, mac) in [
            ("eth0", "2", "02:00:00:00:00:0a"),
            ("eth1", "3", "02:00:00:00:00:0b"),
            ("lo", "1", "00:00:00:00:00:00"),
            ("bad", "x", "zz"),
        ] {
            let nic = root.join("sys/class/net").join(name);
            std::fs::create_dir_all(&nic).unwrap();
            std::fs::write(nic.join("ifindex"), format!("{index}\n")).unwrap();
            std::fs::write(nic.join("address"), format!("{mac}\n")).unwrap();
        }
        dir
    }

    #[test]
    fn resolves_names_and_can_reach() {
        let dir = tree();
        let root = dir.path();
        let eth0 = resolve(&InterfaceSelector::Name("eth0".into()), root).unwrap();
        assert_eq!(
            eth0,
            Nic {
                name: "eth0".into(),
                index: 2,
                mac: [2, 0, 0, 0, 0, 0x0a]
            }
        );
        let via = resolve(&InterfaceSelector::CanReach("2001:db8::9".parse().unwrap()), root).unwrap();
        assert_eq!(via.name, "eth0");
        assert!(matches!(
            resolve(&InterfaceSelector::Name("eth9".into()), root),
            Err(ResolveError::NoSuchInterface(_))
        ));
        assert!(matches!(
            resolve(&InterfaceSelector::Name("../../etc".into()), root),
            Err(ResolveError::NoSuchInterface(_))
        ));
        assert!(matches!(
            resolve(&InterfaceSelector::Name("lo".into()), root),
            Err(ResolveError::LoopbackName)
        ));
        assert!(matches!(
            resolve(&InterfaceSelector::CanReach("::1".parse().unwrap()), root),
            Err(ResolveError::Loopback(_))
        ));
        assert!(matches!(
            resolve(&InterfaceSelector::Name("bad".into()), root),
            Err(ResolveError::Unreadable { .. })
        ));
    }

    #[test]
    fn this_machines_own_tables_parse() {
        // The real kernel files: whatever they hold, parsing them must not fail or panic, and the
        // loopback resolves to lo.
        if let Ok(table) = std::fs::read_to_string("/proc/net/ipv6_route") {
            let _ = route_v6(&table, "2001:db8::1".parse().unwrap());
        }
        if let Ok(table) = std::fs::read_to_string("/proc/net/route") {
            let _ = route_v4(&table, "192.0.2.1".parse().unwrap());
        }
        assert!(matches!(
            resolve(&InterfaceSelector::Name("lo".into()), Path::new("/")),
            Err(ResolveError::LoopbackName)
        ));
        assert_eq!(parse_mac("02:00:00:00:00:0A"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
    }
}
