//! Parsing of `Eip.spec.interface`: which NIC a layer2/vip pool is announced on.
//!
//! OpenELB accepts a NIC name (`eth0`) or `can_reach:<IP>`, meaning "the NIC the kernel routes that IP
//! through" (resolved on each node by the speaker). The loopback interface is refused: an ARP/NDP
//! answer sent on `lo` never reaches the LAN, so such a pool could never be reachable.

use std::fmt;
use std::net::IpAddr;

/// Prefix of the `can_reach:<IP>` form, as written in OpenELB's documentation.
pub const CAN_REACH_PREFIX: &str = "can_reach:";
/// The loopback interface name, refused as an announce interface.
pub const LOOPBACK_INTERFACE: &str = "lo";
/// Longest Linux interface name (IFNAMSIZ 16 bytes including the terminating NUL).
pub const MAX_INTERFACE_NAME_LEN: usize = 15;

/// A parsed `spec.interface`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InterfaceSelector {
    /// A NIC by name, e.g. `eth0`.
    Name(String),
    /// The NIC through which the node's kernel routes this IP (`can_reach:<IP>`).
    CanReach(IpAddr),
}

/// Why `spec.interface` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterfaceError {
    /// The value is empty (layer2 and vip pools need an interface).
    #[error("interface is empty: expected a NIC name (eth0) or can_reach:<IP>")]
    Empty,
    /// `can_reach:` is followed by something that is not an IP address.
    #[error("{input:?}: {ip:?} after \"can_reach:\" is not an IP address")]
    InvalidCanReachIp {
        /// The whole (trimmed) input.
        input: String,
        /// The text after `can_reach:`.
        ip: String,
    },
    /// The loopback interface (`lo`, or `can_reach:` a loopback IP, which the kernel routes via `lo`).
    #[error("{input:?}: the loopback interface cannot announce addresses to the network")]
    Loopback {
        /// The whole (trimmed) input.
        input: String,
    },
    /// Not a possible Linux interface name (too long, or contains `/` or whitespace).
    #[error("{input:?}: not a valid interface name (at most 15 bytes, no '/' or whitespace)")]
    InvalidName {
        /// The whole (trimmed) input.
        input: String,
    },
}

/// Parses `spec.interface` (surrounding whitespace trimmed).
pub fn parse(input: &str) -> Result<InterfaceSelector, InterfaceError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(InterfaceError::Empty);
    }
    if let Some(ip) = input.strip_prefix(CAN_REACH_PREFIX) {
        let ip_text = ip.trim();
        let ip = ip_text
            .parse::<IpAddr>()
            .map_err(|_| InterfaceError::InvalidCanReachIp {
                input: input.to_owned(),
                ip: ip_text.to_owned(),
            })?;
        if ip.is_loopback() {
            return Err(InterfaceError::Loopback {
                input: input.to_owned(),
            });
        }
        return Ok(InterfaceSelector::CanReach(ip));
    }
    if input == LOOPBACK_INTERFACE {
        return Err(InterfaceError::Loopback {
            input: input.to_owned(),
        });
    }
    if input.len() > MAX_INTERFACE_NAME_LEN || input.contains('/') || input.contains(char::is_whitespace) {
        return Err(InterfaceError::InvalidName {
            input: input.to_owned(),
        });
    }
    Ok(InterfaceSelector::Name(input.to_owned()))
}

impl fmt::Display for InterfaceSelector {
    /// The form [`parse`] reads back: the name, or `can_reach:<IP>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterfaceSelector::Name(name) => f.write_str(name),
            InterfaceSelector::CanReach(ip) => write!(f, "{CAN_REACH_PREFIX}{ip}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name() {
        assert_eq!(parse("eth33"), Ok(InterfaceSelector::Name("eth33".into())));
        assert_eq!(parse(" enp0s3 "), Ok(InterfaceSelector::Name("enp0s3".into())));
    }

    #[test]
    fn can_reach() {
        let sel = parse("can_reach:192.0.2.1").unwrap();
        assert_eq!(sel, InterfaceSelector::CanReach("192.0.2.1".parse().unwrap()));
        assert_eq!(sel.to_string(), "can_reach:192.0.2.1");
        assert_eq!(
            parse("can_reach:2001:db8::1"),
            Ok(InterfaceSelector::CanReach("2001:db8::1".parse().unwrap()))
        );
    }

    #[test]
    fn can_reach_bad_ip() {
        let err = parse("can_reach:192.0.2").unwrap_err();
        assert_eq!(
            err,
            InterfaceError::InvalidCanReachIp {
                input: "can_reach:192.0.2".into(),
                ip: "192.0.2".into()
            }
        );
        assert_eq!(
            err.to_string(),
            r#""can_reach:192.0.2": "192.0.2" after "can_reach:" is not an IP address"#
        );
        assert!(matches!(
            parse("can_reach:"),
            Err(InterfaceError::InvalidCanReachIp { .. })
        ));
    }

    #[test]
    fn loopback_refused() {
        assert_eq!(parse("lo"), Err(InterfaceError::Loopback { input: "lo".into() }));
        assert!(matches!(
            parse("can_reach:127.0.0.1"),
            Err(InterfaceError::Loopback { .. })
        ));
        assert!(matches!(
            parse("can_reach:::1"),
            Err(InterfaceError::Loopback { .. })
        ));
    }

    #[test]
    fn empty_and_invalid_names() {
        assert_eq!(parse("  "), Err(InterfaceError::Empty));
        assert!(matches!(
            parse("a-very-long-interface0"),
            Err(InterfaceError::InvalidName { .. })
        ));
        assert!(matches!(parse("eth0/1"), Err(InterfaceError::InvalidName { .. })));
        assert!(matches!(parse("eth 0"), Err(InterfaceError::InvalidName { .. })));
    }
}
