//! Parsing of BGP communities as written in `Eip.spec.advertisement` (an oxelb extension): standard
//! communities (RFC 1997) as `ASN:VALUE` or a well-known name, and large communities (RFC 8092) as
//! `GLOBAL:LOCAL1:LOCAL2`. Values in, typed values or an error naming what is wrong out.

use std::fmt;

/// The well-known communities by the names FRR and GoBGP accept, with their values from the IANA
/// registry "BGP Well-known Communities". `local-as` is FRR's (and Cisco's) name for
/// NO_EXPORT_SUBCONFED.
pub const WELL_KNOWN: &[(&str, u32)] = &[
    // RFC 8326 section 3.
    ("graceful-shutdown", 0xFFFF_0000),
    // RFC 7611 section 3.
    ("accept-own", 0xFFFF_0001),
    // RFC 9494 section 4.
    ("llgr-stale", 0xFFFF_0006),
    ("no-llgr", 0xFFFF_0007),
    // RFC 7999 section 5.
    ("blackhole", 0xFFFF_029A),
    // RFC 1997, "Well-known Communities".
    ("no-export", 0xFFFF_FF01),
    ("no-advertise", 0xFFFF_FF02),
    ("no-export-subconfed", 0xFFFF_FF03),
    ("local-as", 0xFFFF_FF03),
    // RFC 3765 section 2.
    ("no-peer", 0xFFFF_FF04),
];

/// A standard community (RFC 1997): 32 bits, written `ASN:VALUE` (each 0..=65535).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// A large community (RFC 8092 section 3): global administrator, local data 1, local data 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity(pub u32, pub u32, pub u32);

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.0, self.1, self.2)
    }
}

/// Why a community string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommunityError {
    /// Neither `ASN:VALUE` nor a known well-known name.
    #[error(
        "{input:?} is neither ASN:VALUE (each 0..=65535) nor a well-known name (graceful-shutdown, accept-own, llgr-stale, no-llgr, blackhole, no-export, no-advertise, no-export-subconfed, local-as, no-peer)"
    )]
    Unknown {
        /// The input.
        input: String,
    },
    /// A half of `ASN:VALUE` is not a number in 0..=65535.
    #[error("{input:?}: {part:?} is not a number in 0..=65535")]
    OutOfRange {
        /// The input.
        input: String,
        /// The offending half.
        part: String,
    },
    /// Not three colon-separated numbers in 0..=4294967295.
    #[error("{input:?} is not GLOBAL:LOCAL1:LOCAL2 with each part in 0..=4294967295 (RFC 8092)")]
    Large {
        /// The input.
        input: String,
    },
}

/// Parses a standard community: `ASN:VALUE` or a well-known name (case-insensitive, surrounding
/// whitespace trimmed).
pub fn parse_community(input: &str) -> Result<Community, CommunityError> {
    let text = input.trim();
    if let Some((_, value)) = WELL_KNOWN
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
    {
        return Ok(Community(*value));
    }
    let Some((high, low)) = text.split_once(':') else {
        return Err(CommunityError::Unknown {
            input: input.to_owned(),
        });
    };
    let half = |part: &str| {
        part.trim()
            .parse::<u16>()
            .map_err(|_| CommunityError::OutOfRange {
                input: input.to_owned(),
                part: part.to_owned(),
            })
    };
    Ok(Community((u32::from(half(high)?) << 16) | u32::from(half(low)?)))
}

/// Parses a large community `GLOBAL:LOCAL1:LOCAL2` (RFC 8092), each part a u32.
pub fn parse_large_community(input: &str) -> Result<LargeCommunity, CommunityError> {
    let error = || CommunityError::Large {
        input: input.to_owned(),
    };
    let parts: Vec<&str> = input.trim().split(':').collect();
    let [a, b, c] = parts.as_slice() else {
        return Err(error());
    };
    let n = |p: &str| p.trim().parse::<u32>().map_err(|_| error());
    Ok(LargeCommunity(n(a)?, n(b)?, n(c)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_well_known() {
        assert_eq!(parse_community("65000:100"), Ok(Community(0xFDE8_0064)));
        assert_eq!(parse_community(" 0:0 "), Ok(Community(0)));
        assert_eq!(parse_community("65535:65535"), Ok(Community(u32::MAX)));
        assert_eq!(parse_community("no-export"), Ok(Community(0xFFFF_FF01)));
        assert_eq!(parse_community("NO-ADVERTISE"), Ok(Community(0xFFFF_FF02)));
        assert_eq!(
            parse_community("local-as"),
            parse_community("no-export-subconfed")
        );
        assert_eq!(parse_community("blackhole"), Ok(Community(0xFFFF_029A)));
        assert_eq!(parse_community("graceful-shutdown"), Ok(Community(0xFFFF_0000)));
        assert_eq!(parse_community("no-peer"), Ok(Community(0xFFFF_FF04)));
        assert_eq!(Community(0xFDE8_0064).to_string(), "65000:100");
    }

    #[test]
    fn refusals_name_the_value() {
        for bad in ["no-exprot", "", "65000", "internet"] {
            assert!(
                matches!(parse_community(bad), Err(CommunityError::Unknown { .. })),
                "{bad:?}"
            );
        }
        for (bad, part) in [
            ("65536:1", "65536"),
            ("1:-1", "-1"),
            ("a:1", "a"),
            ("1:2:3", "2:3"),
        ] {
            assert_eq!(
                parse_community(bad),
                Err(CommunityError::OutOfRange {
                    input: bad.into(),
                    part: part.into()
                })
            );
        }
        let message = parse_community("no-exprot").unwrap_err().to_string();
        assert!(
            message.contains("no-exprot") && message.contains("no-export"),
            "{message}"
        );
    }

    #[test]
    fn large() {
        assert_eq!(
            parse_large_community("4200000000:1:4294967295"),
            Ok(LargeCommunity(4_200_000_000, 1, u32::MAX))
        );
        assert_eq!(LargeCommunity(64512, 1, 2).to_string(), "64512:1:2");
        for bad in ["1:2", "1:2:3:4", "4294967296:1:1", "a:b:c", "", "no-export"] {
            assert!(parse_large_community(bad).is_err(), "{bad:?}");
        }
    }
}
