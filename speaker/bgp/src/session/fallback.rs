//! Capability fallback after a NOTIFICATION OPEN Message Error / Unsupported Capability (2/7), in
//! pure code: what we offered and the NOTIFICATION's data in, what the next OPEN leaves out (and
//! why nothing else can be left out) out.
//!
//! RFC 5492 section 5 says the data of a 2/7 "MUST list the set of capabilities that causes the
//! speaker to send the message", each "encoded in the same way as it would be encoded in the OPEN
//! message" (code, length, value). Routers use it two ways:
//! - naming capabilities of *our* OPEN they refuse (FRR's `strict-capability-match` lists the
//!   multiprotocol capabilities of families it has not activated; RFC 2842, the first capability
//!   RFC, told the sender to reconnect without them): each such capability is left out of every
//!   later OPEN of the session, down to a multiprotocol capability per family;
//! - naming capabilities *they* require and we did not send (RFC 5492 section 3, e.g. BIRD's
//!   `require ...`): nothing we can leave out helps; they are reported.
//!
//! Decisions, each with a test in `tests`:
//! - **Bounded**: a capability left out stays out for the session's life (until its configuration
//!   changes: the speaker then makes a new session), so each 2/7 either shrinks what we offer or
//!   changes nothing. A refusal of the fallback OPEN that names nothing new leaves the session
//!   retrying with the same OPEN every ConnectRetry (RFC 4271 section 8.1.1 automatic restart),
//!   saying why: at most [`Capability`]'s few values are ever left out, never a loop of guesses.
//! - **Empty data**: nothing is left out. RFC 5492 requires the list, and guessing would drop
//!   capabilities users rely on (graceful restart, ADD-PATH) without cause; the session says that
//!   the router named none (a router that requires a capability we lack sends this too: FRR
//!   `strict-capability-match` with a family we do not offer, BIRD `require ...`).
//! - **Malformed data** (a length running past the end): the whole entries before it are used,
//!   the rest is reported as malformed.
//! - **4-octet AS** is left out only when the peer names it; our OPEN then carries `AS_TRANS` for
//!   an AS above 65535 and UPDATEs carry AS4_PATH (RFC 6793 section 4.2.2), which the encoder
//!   already does toward a peer without the capability.
//! - **The last family** is never left out: a session offering no family would come up and carry
//!   nothing; it is kept and reported instead.
//! - A multiprotocol entry that is not exactly AFI, reserved, SAFI (RFC 4760 section 8), or names a
//!   family we did not offer, leaves nothing out and is reported.

use std::{collections::BTreeSet, fmt};

use crate::wire::Family;

/// A capability this speaker offers in its OPEN, as a refusal can name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// Multiprotocol Extensions for one family (code 1, RFC 4760).
    Multiprotocol(Family),
    /// Route refresh (code 2, RFC 2918).
    RouteRefresh,
    /// Graceful restart (code 64, RFC 4724).
    GracefulRestart,
    /// 4-octet AS numbers (code 65, RFC 6793).
    FourOctetAs,
    /// ADD-PATH (code 69, RFC 7911).
    AddPath,
}

impl Capability {
    /// The capability code (IANA "Capability Codes").
    pub fn code(self) -> u8 {
        match self {
            Self::Multiprotocol(_) => 1,
            Self::RouteRefresh => 2,
            Self::GracefulRestart => 64,
            Self::FourOctetAs => 65,
            Self::AddPath => 69,
        }
    }

    /// A short name for logs and status: `multiprotocol-ipv6-unicast`, `graceful-restart`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Multiprotocol(Family::Ipv4Unicast) => "multiprotocol-ipv4-unicast",
            Self::Multiprotocol(Family::Ipv6Unicast) => "multiprotocol-ipv6-unicast",
            Self::RouteRefresh => "route-refresh",
            Self::GracefulRestart => "graceful-restart",
            Self::FourOctetAs => "four-octet-as",
            Self::AddPath => "add-path",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.name(), self.code())
    }
}

/// One entry of a 2/7's data that leaves nothing out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotLeftOut {
    /// A capability we did not offer: the peer may require it (RFC 5492 section 3).
    NotOffered {
        /// Its code.
        code: u8,
        /// Its value.
        value: Vec<u8>,
    },
    /// Already left out by an earlier refusal: the fallback OPEN was refused for it again.
    AlreadyLeftOut(Capability),
    /// The session's last family: kept, or the session would carry nothing.
    LastFamily(Capability),
}

impl fmt::Display for NotLeftOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOffered { code, value } => {
                write!(f, "code {code}")?;
                if !value.is_empty() {
                    write!(f, " value 0x")?;
                    for b in value {
                        write!(f, "{b:02x}")?;
                    }
                }
                write!(f, ", which oxelb did not offer (the router may require it)")
            }
            Self::AlreadyLeftOut(c) => write!(f, "{c}, already left out"),
            Self::LastFamily(c) => write!(
                f,
                "{c}, the session's last family (kept: without it the session carries nothing)"
            ),
        }
    }
}

/// What one NOTIFICATION 2/7 changes in the OPENs that follow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fallback {
    /// Capabilities left out from now on (named by the peer, offered, not yet left out).
    pub left_out: Vec<Capability>,
    /// Entries that leave nothing out, and why.
    pub not_left_out: Vec<NotLeftOut>,
    /// Bytes at the end of the data that are no whole capability (code, length, value).
    pub malformed: usize,
    /// The data was empty: the peer named no capability.
    pub empty: bool,
}

impl Fallback {
    /// What happened, in one sentence for the session's down reason.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.left_out.is_empty() {
            let names: Vec<String> = self.left_out.iter().map(ToString::to_string).collect();
            parts.push(format!(
                "the next OPEN leaves out {} (RFC 5492 section 5: the router named it unsupported)",
                names.join(", ")
            ));
        }
        if self.empty {
            parts.push(
                "the router named no capability (RFC 5492 section 5 requires the list): nothing to leave out; \
                 it may require one oxelb does not send, or families other than the BgpPeer's afiSafis"
                    .to_owned(),
            );
        }
        if !self.not_left_out.is_empty() {
            let names: Vec<String> = self.not_left_out.iter().map(ToString::to_string).collect();
            parts.push(format!("not left out: {}", names.join("; ")));
        }
        if self.malformed > 0 {
            parts.push(format!(
                "{} trailing byte(s) of the data are no whole capability (ignored)",
                self.malformed
            ));
        }
        if self.left_out.is_empty() {
            parts.push("the session retries with the same OPEN every connectRetry".to_owned());
        }
        parts.join("; ")
    }
}

/// The capabilities an OPEN offers for `families`, with graceful restart when `graceful_restart`
/// and ADD-PATH when `add_path`, before anything is left out.
pub fn offered(families: &BTreeSet<Family>, graceful_restart: bool, add_path: bool) -> BTreeSet<Capability> {
    let mut out: BTreeSet<Capability> = families.iter().map(|f| Capability::Multiprotocol(*f)).collect();
    out.insert(Capability::RouteRefresh);
    out.insert(Capability::FourOctetAs);
    if graceful_restart {
        out.insert(Capability::GracefulRestart);
    }
    if add_path {
        out.insert(Capability::AddPath);
    }
    out
}

/// The capability a data entry (code, value) names, among those we can offer; `None` for
/// others (another code, or a multiprotocol value that is no AFI/SAFI of ours).
fn named(code: u8, value: &[u8]) -> Option<Capability> {
    Some(match code {
        1 => match value {
            // RFC 4760 section 8: AFI (2 octets), reserved, SAFI; unicast is SAFI 1.
            [0, 1, _, 1] => Capability::Multiprotocol(Family::Ipv4Unicast),
            [0, 2, _, 1] => Capability::Multiprotocol(Family::Ipv6Unicast),
            _ => return None,
        },
        2 => Capability::RouteRefresh,
        64 => Capability::GracefulRestart,
        65 => Capability::FourOctetAs,
        69 => Capability::AddPath,
        _ => return None,
    })
}

/// What the 2/7 with `data` leaves out of the next OPEN, given the capabilities we offer before
/// any fallback (`offered`) and those already left out (`left_out`).
pub fn fallback(offered: &BTreeSet<Capability>, left_out: &BTreeSet<Capability>, data: &[u8]) -> Fallback {
    let mut out = Fallback {
        empty: data.is_empty(),
        ..Fallback::default()
    };
    let mut rest = data;
    // The families still offered, less those this refusal leaves out.
    let mut families = offered
        .iter()
        .filter(|c| matches!(c, Capability::Multiprotocol(_)) && !left_out.contains(c))
        .count();
    while let [code, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let Some(value) = tail.get(..len) else { break };
        rest = &tail[len..];
        match named(*code, value).filter(|c| offered.contains(c)) {
            None => out.not_left_out.push(NotLeftOut::NotOffered {
                code: *code,
                value: value.to_vec(),
            }),
            Some(c) if left_out.contains(&c) || out.left_out.contains(&c) => {
                if !out.not_left_out.contains(&NotLeftOut::AlreadyLeftOut(c)) && !out.left_out.contains(&c) {
                    out.not_left_out.push(NotLeftOut::AlreadyLeftOut(c));
                }
            }
            Some(c @ Capability::Multiprotocol(_)) if families <= 1 => {
                out.not_left_out.push(NotLeftOut::LastFamily(c));
            }
            Some(c) => {
                if matches!(c, Capability::Multiprotocol(_)) {
                    families -= 1;
                }
                out.left_out.push(c);
            }
        }
    }
    out.malformed = rest.len();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
