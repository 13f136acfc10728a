//! The BFD Control packet (RFC 5880 section 4.1): decoding what peers send, with every
//! context-free reception check of section 6.8.6, and encoding what we send.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! Intervals are in microseconds. oxelb sends no Authentication Section and accepts none
//! (section 6.8.6: a packet with the A bit on a session without authentication is discarded).

use thiserror::Error;

/// UDP port of single-hop BFD Control packets (RFC 5881 section 4).
pub const PORT_SINGLE_HOP: u16 = 3784;
/// UDP port of multihop BFD Control packets (RFC 5883 section 5).
pub const PORT_MULTIHOP: u16 = 4784;
/// The protocol version (RFC 5880 section 4.1).
pub const VERSION: u8 = 1;
/// Length of a Control packet without an Authentication Section.
pub const LEN: usize = 24;
/// Single-hop packets are sent with TTL (hop limit) 255 and a received one with any other value
/// is discarded (RFC 5881 section 5, the GTSM of RFC 5082).
pub const TTL: u8 = 255;

/// A session state as carried in the Sta field (RFC 5880 section 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Administratively down: not a failure (RFC 5882 section 3.2).
    AdminDown,
    /// Down.
    Down,
    /// Initializing: heard the peer, not yet known to be heard by it.
    Init,
    /// Up.
    Up,
}

impl State {
    /// Every state, for exhaustive tests.
    pub const ALL: [State; 4] = [State::AdminDown, State::Down, State::Init, State::Up];

    /// The two-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// From the two-bit wire value (higher bits ignored).
    pub fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// The name as BgpPeer status and logs write it (FRR's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

/// The Diagnostic field (RFC 5880 section 4.1): why the sender's session last changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    /// 0: no diagnostic.
    None,
    /// 1: Control Detection Time Expired.
    DetectionTimeExpired,
    /// 2: Echo Function Failed.
    EchoFailed,
    /// 3: Neighbor Signaled Session Down.
    NeighborDown,
    /// 4: Forwarding Plane Reset.
    ForwardingPlaneReset,
    /// 5: Path Down.
    PathDown,
    /// 6: Concatenated Path Down.
    ConcatenatedPathDown,
    /// 7: Administratively Down.
    AdminDown,
    /// 8: Reverse Concatenated Path Down.
    ReverseConcatenatedPathDown,
    /// 9-31: reserved values, kept as received.
    Reserved(u8),
}

impl Diagnostic {
    /// The five-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            Diagnostic::None => 0,
            Diagnostic::DetectionTimeExpired => 1,
            Diagnostic::EchoFailed => 2,
            Diagnostic::NeighborDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdminDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Reserved(v) => v & 0x1f,
        }
    }

    /// From the five-bit wire value (higher bits ignored).
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0x1f {
            0 => Diagnostic::None,
            1 => Diagnostic::DetectionTimeExpired,
            2 => Diagnostic::EchoFailed,
            3 => Diagnostic::NeighborDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdminDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            v => Diagnostic::Reserved(v),
        }
    }

    /// A short name for logs and Events.
    pub fn as_str(self) -> &'static str {
        match self {
            Diagnostic::None => "none",
            Diagnostic::DetectionTimeExpired => "detection time expired",
            Diagnostic::EchoFailed => "echo failed",
            Diagnostic::NeighborDown => "neighbor signaled down",
            Diagnostic::ForwardingPlaneReset => "forwarding plane reset",
            Diagnostic::PathDown => "path down",
            Diagnostic::ConcatenatedPathDown => "concatenated path down",
            Diagnostic::AdminDown => "administratively down",
            Diagnostic::ReverseConcatenatedPathDown => "reverse concatenated path down",
            Diagnostic::Reserved(_) => "reserved",
        }
    }
}

/// One Control packet (without Authentication Section, which oxelb neither sends nor accepts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlPacket {
    /// Diag.
    pub diagnostic: Diagnostic,
    /// Sta.
    pub state: State,
    /// P: the sender starts a Poll Sequence (section 6.5).
    pub poll: bool,
    /// F: the answer to a Poll.
    pub final_: bool,
    /// C: the sender's BFD is independent of its control plane.
    pub control_plane_independent: bool,
    /// A: an Authentication Section follows (decoded packets with it are refused).
    pub authenticated: bool,
    /// D: the sender wants Demand mode.
    pub demand: bool,
    /// Detect Mult (never 0 in a decoded packet).
    pub detect_mult: u8,
    /// My Discriminator (never 0 in a decoded packet).
    pub my_discriminator: u32,
    /// Your Discriminator (0 only with state Down or AdminDown in a decoded packet).
    pub your_discriminator: u32,
    /// Desired Min TX Interval, microseconds.
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, microseconds (0: send me no periodic packets).
    pub required_min_rx_us: u32,
    /// Required Min Echo RX Interval, microseconds (oxelb sends 0: no Echo function).
    pub required_min_echo_rx_us: u32,
}

/// Why received bytes are not a Control packet we may process (RFC 5880 section 6.8.6: each
/// of these packets "MUST be discarded").
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum WireError {
    /// Fewer bytes than the fixed header.
    #[error("{len} bytes, shorter than the 24-byte BFD Control packet")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// A version other than 1.
    #[error("BFD version {0}, only version 1 exists")]
    Version(u8),
    /// The Length field is below the minimum for the A bit, or beyond the bytes received.
    #[error("Length field {length} is invalid for {received} received bytes (A bit {authenticated})")]
    Length {
        /// The Length field.
        length: u8,
        /// Bytes received.
        received: usize,
        /// The A bit.
        authenticated: bool,
    },
    /// Detect Mult of zero.
    #[error("Detect Mult is 0")]
    DetectMultZero,
    /// The Multipoint bit is set.
    #[error("Multipoint bit set")]
    Multipoint,
    /// My Discriminator of zero.
    #[error("My Discriminator is 0")]
    MyDiscriminatorZero,
    /// Your Discriminator of zero in a state other than Down or AdminDown.
    #[error("Your Discriminator is 0 in state {0:?}")]
    YourDiscriminatorZero(State),
    /// An Authentication Section, which oxelb does not configure.
    #[error("authenticated packet, but no authentication is configured")]
    Authentication,
}

/// Decodes a Control packet from a UDP payload. Every check of RFC 5880 section 6.8.6 that needs
/// no session is done here; the rest (which session, its state) is [`crate::session`]'s.
pub fn decode(bytes: &[u8]) -> Result<ControlPacket, WireError> {
    let header: &[u8; LEN] = bytes
        .get(..LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(WireError::Truncated { len: bytes.len() })?;
    let version = header[0] >> 5;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let flags = header[1];
    let authenticated = flags & 0x04 != 0;
    let length = header[3];
    // Section 6.8.6: discard when Length is "less than the minimum correct value (24 if the A bit
    // is clear, 26 if the A bit is set)" or "greater than the payload of the encapsulating
    // protocol".
    let minimum = if authenticated { 26 } else { 24 };
    if usize::from(length) < minimum || usize::from(length) > bytes.len() {
        return Err(WireError::Length {
            length,
            received: bytes.len(),
            authenticated,
        });
    }
    let detect_mult = header[2];
    if detect_mult == 0 {
        return Err(WireError::DetectMultZero);
    }
    if flags & 0x01 != 0 {
        return Err(WireError::Multipoint);
    }
    let word = |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let my_discriminator = word(4);
    if my_discriminator == 0 {
        return Err(WireError::MyDiscriminatorZero);
    }
    let state = State::from_bits(flags >> 6);
    let your_discriminator = word(8);
    if your_discriminator == 0 && !matches!(state, State::Down | State::AdminDown) {
        return Err(WireError::YourDiscriminatorZero(state));
    }
    if authenticated {
        return Err(WireError::Authentication);
    }
    Ok(ControlPacket {
        diagnostic: Diagnostic::from_bits(header[0]),
        state,
        poll: flags & 0x20 != 0,
        final_: flags & 0x10 != 0,
        control_plane_independent: flags & 0x08 != 0,
        authenticated,
        demand: flags & 0x02 != 0,
        detect_mult,
        my_discriminator,
        your_discriminator,
        desired_min_tx_us: word(12),
        required_min_rx_us: word(16),
        required_min_echo_rx_us: word(20),
    })
}

/// Encodes a Control packet (the A and M bits are never sent: oxelb has no authentication and
/// Multipoint is reserved).
pub fn encode(packet: &ControlPacket) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[0] = (VERSION << 5) | packet.diagnostic.bits();
    out[1] = (packet.state.bits() << 6)
        | u8::from(packet.poll) << 5
        | u8::from(packet.final_) << 4
        | u8::from(packet.control_plane_independent) << 3
        | u8::from(packet.demand) << 1;
    out[2] = packet.detect_mult;
    out[3] = LEN as u8;
    out[4..8].copy_from_slice(&packet.my_discriminator.to_be_bytes());
    out[8..12].copy_from_slice(&packet.your_discriminator.to_be_bytes());
    out[12..16].copy_from_slice(&packet.desired_min_tx_us.to_be_bytes());
    out[16..20].copy_from_slice(&packet.required_min_rx_us.to_be_bytes());
    out[20..24].copy_from_slice(&packet.required_min_echo_rx_us.to_be_bytes());
    out
}
