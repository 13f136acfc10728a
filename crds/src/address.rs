//! Parsing of `Eip.spec.address` into a typed, arithmetic-friendly [`IpRange`].
//!
//! # Accepted forms
//! `spec.address` is one of (IPv4 or IPv6; surrounding whitespace is trimmed):
//! - a single IP: `192.0.2.10`, `2001:db8::10`;
//! - a CIDR: `192.0.2.0/24`, `2001:db8::/120`;
//! - a range `a-b` (both ends included): `192.0.2.10-192.0.2.20`.
//!
//! Zone identifiers (`fe80::1%eth0`), IPv4 octets with leading zeros and whitespace inside the value
//! are rejected, as Go's `net.ParseIP`/`net.ParseCIDR` (which OpenELB uses) reject them.
//!
//! # CIDR semantics (decided here, relied on by the allocator)
//! - **Host bits are accepted and masked**: `192.0.2.5/24` means `192.0.2.0/24`, as OpenELB's
//!   `net.ParseCIDR` does. [`IpRange`]'s `Display` prints the masked network (`192.0.2.0/24`).
//! - **IPv4, prefix <= /30**: the network address (first) and the broadcast address (last) are part of
//!   the pool ([`IpRange::contains`], [`IpRange::size`]) but never handed out automatically
//!   ([`IpRange::is_assignable`]); OpenELB skips them too. A user may still request them explicitly;
//!   that decision belongs to the caller.
//! - **IPv4 /31 and /32**: every address is assignable (RFC 3021 point-to-point /31 has no network or
//!   broadcast address).
//! - **IPv6, prefix <= /126**: the first address, the Subnet-Router anycast address (RFC 4291 section
//!   2.6.1), is not assignable; IPv6 has no broadcast, so the last address is. /127 (RFC 6164) and /128
//!   use every address.
//! - **Ranges `a-b` and single IPs** use every address exactly as written (the user chose the bounds).
//!
//! # Sizes
//! Sizes are `u128` and never overflow, and nothing is allocated per address (a /64 costs O(1)). The
//! only pool whose size does not fit in `u128` is the whole IPv6 space (`::/0` or
//! `::-ffff:...:ffff`, 2^128 addresses): [`IpRange::size`] saturates at `u128::MAX` for it. Its
//! assignable size is exactly `u128::MAX` (the anycast address is skipped), so no other value saturates.
//!
//! # Offsets
//! The assignable addresses form one contiguous sub-range, so an allocator can work with offsets:
//! [`IpRange::nth_assignable`] maps an offset in `0..assignable_size()` to an address and
//! [`IpRange::assignable_offset`] maps an assignable address back to its offset.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The separator between the two ends of a range, as in OpenELB (`constant.EipRangeSeparator`).
pub const RANGE_SEPARATOR: char = '-';

/// Why an Eip address could not be parsed. Every message quotes the input and names the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The input was empty or only whitespace.
    #[error(
        "Eip address is empty: expected an IP (192.0.2.10), a CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20)"
    )]
    Empty,
    /// A part that must be an IP address is not one.
    #[error("{input:?}: {part:?} is not an IP address")]
    InvalidIp {
        /// The whole (trimmed) input.
        input: String,
        /// The part that failed to parse.
        part: String,
    },
    /// The CIDR prefix length is not a number in `0..=max`.
    #[error("{input:?}: bad prefix length {prefix:?}, expected a number from 0 to {max}")]
    InvalidPrefixLength {
        /// The whole (trimmed) input.
        input: String,
        /// The text after `/`.
        prefix: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// A range whose first address is after its last.
    #[error("{input:?}: range start is after end")]
    StartAfterEnd {
        /// The whole (trimmed) input.
        input: String,
    },
    /// A range with one IPv4 and one IPv6 end.
    #[error("{input:?}: range mixes IPv4 and IPv6 addresses")]
    MixedFamilies {
        /// The whole (trimmed) input.
        input: String,
    },
}

/// IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// Number of bits in an address of this family (32 or 128).
    pub fn bits(self) -> u8 {
        match self {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        }
    }

    fn max_value(self) -> u128 {
        match self {
            IpFamily::V4 => u128::from(u32::MAX),
            IpFamily::V6 => u128::MAX,
        }
    }

    fn addr(self, value: u128) -> IpAddr {
        match self {
            // Values of an IPv4 range never exceed u32::MAX (checked at construction).
            IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(u32::MAX))),
            IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

/// Which of the three accepted forms an address was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressForm {
    /// A single IP address.
    Single,
    /// A CIDR with this prefix length (host bits already masked off).
    Cidr {
        /// The prefix length, `0..=32` or `0..=128`.
        prefix_len: u8,
    },
    /// An inclusive range `a-b`.
    Range,
}

/// A parsed Eip address: a contiguous, inclusive range of IP addresses of one family.
///
/// See the [module docs](self) for which addresses are assignable and how sizes saturate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    family: IpFamily,
    first: u128,
    last: u128,
    form: AddressForm,
}

/// The host bits of a prefix of length `len` in a family of `bits` bits.
fn host_mask(bits: u8, len: u8) -> u128 {
    let host_bits = u32::from(bits.saturating_sub(len));
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

/// The network address of the prefix of length `len` holding `ip` (`len` is held to the family's
/// width): the aggregate an IP is announced under.
pub fn covering(ip: IpAddr, len: u8) -> IpAddr {
    let family = IpFamily::of(ip);
    let len = len.min(family.bits());
    family.addr(to_u128(ip) & !host_mask(family.bits(), len))
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Parses an Eip address (`spec.address`): a single IP, a CIDR or a range `a-b`; IPv4 or IPv6.
///
/// Surrounding whitespace is trimmed. See the [module docs](self) for the exact semantics.
pub fn parse(input: &str) -> Result<IpRange, AddressError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(AddressError::Empty);
    }
    let parse_ip = |part: &str| {
        part.parse::<IpAddr>().map_err(|_| AddressError::InvalidIp {
            input: input.to_owned(),
            part: part.to_owned(),
        })
    };

    if let Some((addr, prefix)) = input.split_once('/') {
        let ip = parse_ip(addr)?;
        let family = IpFamily::of(ip);
        let max = family.bits();
        // Only plain decimal digits: `u8::from_str` would also accept a leading `+`.
        let prefix_len =
            (!prefix.is_empty() && prefix.len() <= 3 && prefix.bytes().all(|b| b.is_ascii_digit()))
                .then(|| prefix.parse::<u8>().ok())
                .flatten()
                .filter(|len| *len <= max)
                .ok_or_else(|| AddressError::InvalidPrefixLength {
                    input: input.to_owned(),
                    prefix: prefix.to_owned(),
                    max,
                })?;
        let host_bits = u32::from(max - prefix_len);
        // A mask of `host_bits` ones; `checked_shl` covers the /0 case (shift by 128).
        let host_mask = 1u128.checked_shl(host_bits).map_or(u128::MAX, |v| v - 1);
        let first = to_u128(ip) & !host_mask;
        let last = first | (host_mask & family.max_value());
        return Ok(IpRange {
            family,
            first,
            last,
            form: AddressForm::Cidr { prefix_len },
        });
    }

    if let Some((start, end)) = input.split_once(RANGE_SEPARATOR) {
        let start = parse_ip(start)?;
        let end = parse_ip(end)?;
        if IpFamily::of(start) != IpFamily::of(end) {
            return Err(AddressError::MixedFamilies {
                input: input.to_owned(),
            });
        }
        let (first, last) = (to_u128(start), to_u128(end));
        if first > last {
            return Err(AddressError::StartAfterEnd {
                input: input.to_owned(),
            });
        }
        return Ok(IpRange {
            family: IpFamily::of(start),
            first,
            last,
            form: AddressForm::Range,
        });
    }

    let ip = parse_ip(input)?;
    Ok(IpRange::single(ip))
}

impl FromStr for IpRange {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl IpRange {
    /// A range holding exactly `ip`, in [`AddressForm::Single`] form.
    pub fn single(ip: IpAddr) -> Self {
        let value = to_u128(ip);
        IpRange {
            family: IpFamily::of(ip),
            first: value,
            last: value,
            form: AddressForm::Single,
        }
    }

    /// The first address of the range (for a CIDR: the network address).
    pub fn first(&self) -> IpAddr {
        self.family.addr(self.first)
    }

    /// The last address of the range (for an IPv4 CIDR: the broadcast address).
    pub fn last(&self) -> IpAddr {
        self.family.addr(self.last)
    }

    /// The address family of the range.
    pub fn family(&self) -> IpFamily {
        self.family
    }

    /// Whether this is an IPv4 range (what OpenELB reports as `status.v4`).
    pub fn is_ipv4(&self) -> bool {
        self.family == IpFamily::V4
    }

    /// The form the address was written in.
    pub fn form(&self) -> AddressForm {
        self.form
    }

    /// Whether `ip` lies in the range (assignable or not). Addresses of the other family never do.
    pub fn contains(&self, ip: IpAddr) -> bool {
        IpFamily::of(ip) == self.family && (self.first..=self.last).contains(&to_u128(ip))
    }

    /// Number of addresses in the range, saturating at `u128::MAX` for the whole IPv6 space.
    pub fn size(&self) -> u128 {
        (self.last - self.first).saturating_add(1)
    }

    /// Whether every aggregate of prefix length `len` that holds an address of the range lies
    /// wholly inside it: the range starts and ends on a boundary of blocks of that size. An
    /// aggregate announced for such a pool never covers an address outside the pool. Lengths beyond
    /// the family's width are refused.
    pub fn aggregates_within(&self, len: u8) -> bool {
        let bits = self.family.bits();
        if len > bits {
            return false;
        }
        let host = host_mask(bits, len);
        self.first & host == 0 && self.last & host == host
    }

    /// Whether the two ranges share at least one address (same family and intersecting bounds).
    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.family == other.family && self.first <= other.last && other.first <= self.last
    }

    /// The inclusive bounds of the automatically assignable sub-range, or `None` if it is empty
    /// (which no valid range produces today, but callers must not assume it).
    fn assignable_bounds(&self) -> Option<(u128, u128)> {
        match (self.form, self.family) {
            (AddressForm::Cidr { prefix_len }, IpFamily::V4) if prefix_len <= 30 => {
                // Network and broadcast address are never handed out automatically.
                Some((self.first + 1, self.last - 1))
            }
            (AddressForm::Cidr { prefix_len }, IpFamily::V6) if prefix_len <= 126 => {
                // RFC 4291 section 2.6.1: the Subnet-Router anycast address is the first one.
                Some((self.first + 1, self.last))
            }
            _ => Some((self.first, self.last)),
        }
        .filter(|(first, last)| first <= last)
    }

    /// The first automatically assignable address, if any.
    pub fn first_assignable(&self) -> Option<IpAddr> {
        self.assignable_bounds().map(|(first, _)| self.family.addr(first))
    }

    /// The last automatically assignable address, if any.
    pub fn last_assignable(&self) -> Option<IpAddr> {
        self.assignable_bounds().map(|(_, last)| self.family.addr(last))
    }

    /// Number of automatically assignable addresses. Never saturates: at most `u128::MAX` (`::/0`).
    pub fn assignable_size(&self) -> u128 {
        self.assignable_bounds()
            .map_or(0, |(first, last)| (last - first).saturating_add(1))
    }

    /// Whether `ip` may be handed out automatically (see the [module docs](self)).
    pub fn is_assignable(&self, ip: IpAddr) -> bool {
        self.assignable_offset(ip).is_some()
    }

    /// The `n`-th assignable address (0-based), or `None` if `n >= assignable_size()`.
    pub fn nth_assignable(&self, n: u128) -> Option<IpAddr> {
        let (first, last) = self.assignable_bounds()?;
        let value = first.checked_add(n).filter(|value| *value <= last)?;
        Some(self.family.addr(value))
    }

    /// The offset of `ip` among the assignable addresses (inverse of [`IpRange::nth_assignable`]), or
    /// `None` if `ip` is not assignable in this range.
    pub fn assignable_offset(&self, ip: IpAddr) -> Option<u128> {
        if IpFamily::of(ip) != self.family {
            return None;
        }
        let (first, last) = self.assignable_bounds()?;
        let value = to_u128(ip);
        (first..=last).contains(&value).then(|| value - first)
    }

    /// Iterates over the assignable addresses in ascending order, lazily (O(1) memory).
    pub fn assignable(&self) -> AssignableIter {
        AssignableIter {
            family: self.family,
            next: self.assignable_bounds(),
        }
    }
}

/// Lazy iterator over a range's assignable addresses, from [`IpRange::assignable`].
#[derive(Debug, Clone)]
pub struct AssignableIter {
    family: IpFamily,
    /// The remaining inclusive bounds; `None` once exhausted.
    next: Option<(u128, u128)>,
}

impl Iterator for AssignableIter {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        let (current, last) = self.next?;
        self.next = (current < last).then(|| (current + 1, last));
        Some(self.family.addr(current))
    }
}

impl fmt::Display for IpRange {
    /// Prints the canonical form that [`parse`] reads back to an equal range: the IP, the masked
    /// network `a/n`, or `a-b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.form {
            AddressForm::Single => write!(f, "{}", self.first()),
            AddressForm::Cidr { prefix_len } => write!(f, "{}/{prefix_len}", self.first()),
            AddressForm::Range => write!(f, "{}{RANGE_SEPARATOR}{}", self.first(), self.last()),
        }
    }
}

#[cfg(test)]
mod tests;
