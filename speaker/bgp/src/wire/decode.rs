//! In: framing received bytes into messages (RFC 4271 section 6.1) and decoding each with
//! `netgauze-bgp-pkt`, reduced to [`Received`]; a refused message becomes the NOTIFICATION
//! that answers it.

use netgauze_bgp_pkt::{
    BgpMessage,
    capabilities::BgpCapability,
    wire::deserializer::{BgpMessageParsingError, BgpParsingContext},
};
use netgauze_parse_utils::{reader::SliceReader, traits::ParseFromWithOneInput};

use super::values::{
    Family, HEADER_LEN, KEEPALIVE, MAX_MESSAGE, NOTIFICATION, OPEN, PeerCapabilities, ROUTE_REFRESH,
    Received, UPDATE, WireError,
};

/// Splits whole messages off the front of `buffer`: `Ok(Some(frame))` for a complete message,
/// `Ok(None)` when more bytes are needed, `Err` for a bad header (RFC 4271 section 6.1).
pub fn next_frame(buffer: &mut Vec<u8>) -> Result<Option<Vec<u8>>, WireError> {
    if buffer.len() < HEADER_LEN {
        return Ok(None);
    }
    if buffer[..16].iter().any(|b| *b != 0xff) {
        return Err(WireError::header(
            1,
            Vec::new(),
            "connection not synchronized: bad marker",
        ));
    }
    let length = usize::from(u16::from_be_bytes([buffer[16], buffer[17]]));
    let kind = buffer[18];
    let minimum = match kind {
        OPEN => 29,
        UPDATE => 23,
        NOTIFICATION => 21,
        KEEPALIVE => 19,
        ROUTE_REFRESH => 23,
        _ => {
            return Err(WireError::header(
                3,
                vec![kind],
                format!("bad message type {kind}"),
            ));
        }
    };
    if !(minimum..=MAX_MESSAGE).contains(&length) || (kind == KEEPALIVE && length != 19) {
        return Err(WireError::header(
            2,
            buffer[16..18].to_vec(),
            format!("bad message length {length} for type {kind}"),
        ));
    }
    if buffer.len() < length {
        return Ok(None);
    }
    Ok(Some(buffer.drain(..length).collect()))
}

/// Decodes one framed message. `four_octet_as`: whether both sides negotiated 4-octet AS (AS_PATH
/// widths depend on it).
pub fn decode(frame: &[u8], four_octet_as: bool) -> Result<Received, WireError> {
    let kind = frame.get(18).copied().unwrap_or(0);
    if kind == NOTIFICATION {
        // Read directly: a NOTIFICATION is reported whatever its code, even ones a parser rejects.
        return Ok(Received::Notification {
            code: frame.get(19).copied().unwrap_or(0),
            subcode: frame.get(20).copied().unwrap_or(0),
            data: frame.get(21..).unwrap_or_default().to_vec(),
        });
    }
    // Path-attribute errors are collected, not fatal (RFC 7606 treat-as-withdraw); header, OPEN and
    // NLRI errors still fail.
    let mut ctx = BgpParsingContext::new(
        four_octet_as,
        Default::default(),
        Default::default(),
        false,
        false,
        false,
        false,
    );
    let mut reader = SliceReader::new(frame);
    let message = BgpMessage::parse(&mut reader, &mut ctx).map_err(|e| parse_error(frame, &e))?;
    Ok(match message {
        BgpMessage::Open(open) => {
            let mut capabilities = PeerCapabilities::default();
            let mut saw_mp = false;
            for capability in open.capabilities() {
                match capability {
                    BgpCapability::MultiProtocolExtensions(mp) => {
                        saw_mp = true;
                        if let Some(f) = Family::of_address_type(mp.address_type()) {
                            capabilities.families.insert(f);
                        }
                    }
                    BgpCapability::FourOctetAs(asn) => capabilities.four_octet_as = Some(asn.asn4()),
                    BgpCapability::RouteRefresh
                    | BgpCapability::EnhancedRouteRefresh
                    | BgpCapability::CiscoRouteRefresh => {
                        capabilities.route_refresh = true;
                    }
                    BgpCapability::GracefulRestartCapability(_) => capabilities.graceful_restart = true,
                    BgpCapability::AddPath(add_path) => {
                        for family in add_path.address_families() {
                            if family.receive()
                                && let Some(f) = Family::of_address_type(family.address_type())
                            {
                                capabilities.add_path_receive.insert(f);
                            }
                        }
                    }
                    _ => {}
                }
            }
            // RFC 4760 section 8: no multiprotocol capability means IPv4 unicast only.
            if !saw_mp {
                capabilities.families.insert(Family::Ipv4Unicast);
            }
            Received::Open {
                version: open.version(),
                peer_as: capabilities.four_octet_as.unwrap_or(u32::from(open.my_as())),
                hold_time: open.hold_time(),
                router_id: open.bgp_id(),
                capabilities,
            }
        }
        BgpMessage::Update(_) => Received::Update {
            treat_as_withdraw: ctx.reset_parsing_errors().path_attr_errors().len(),
        },
        BgpMessage::Notification(_) => Received::Notification {
            code: frame.get(19).copied().unwrap_or(0),
            subcode: frame.get(20).copied().unwrap_or(0),
            data: frame.get(21..).unwrap_or_default().to_vec(),
        },
        BgpMessage::KeepAlive => Received::Keepalive,
        BgpMessage::RouteRefresh(refresh) => {
            Received::RouteRefresh(Family::of_address_type(refresh.address_type()))
        }
    })
}

/// The NOTIFICATION for a message netgauze refused. For OPEN the raw fields give the precise
/// subcode (RFC 4271 section 6.2): version, hold time, identifier; else Unspecific.
fn parse_error(frame: &[u8], error: &BgpMessageParsingError) -> WireError {
    let kind = frame.get(18).copied().unwrap_or(0);
    let what = format!("malformed message of type {kind}: {error}");
    let (code, subcode, data) = match kind {
        OPEN => {
            let version = frame.get(19).copied();
            let hold = frame.get(22..24).map(|b| u16::from_be_bytes([b[0], b[1]]));
            let id = frame.get(24..28);
            if version != Some(4) {
                (2, 1, 4u16.to_be_bytes().to_vec())
            } else if matches!(hold, Some(1 | 2)) {
                (2, 6, Vec::new())
            } else if id == Some(&[0, 0, 0, 0][..]) {
                (2, 3, Vec::new())
            } else {
                (2, 0, Vec::new())
            }
        }
        // UPDATE Message Error / Malformed Attribute List (section 6.3): what still fails after
        // treat-as-withdraw is structural.
        UPDATE => (3, 1, Vec::new()),
        ROUTE_REFRESH => (7, 1, Vec::new()),
        _ => (1, 0, Vec::new()),
    };
    WireError {
        code,
        subcode,
        data,
        what,
    }
}
