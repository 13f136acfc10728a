//! The admission rules for Eip, BgpConf and BgpPeer, in pure code: the object (and, on UPDATE, the old
//! one, and for Eips the other Eips) in, the list of violations out, each naming the field.
//!
//! Rules (`openelb-compat.md`, "Webhook", and issue 7):
//! - Eip: `spec.address` parses; it overlaps no other Eip (the message names it); at most one Eip of
//!   each IP family is annotated `eip.openelb.kubesphere.io/is-default-eip: "true"` (OpenELB allows one
//!   in all; a dual-stack cluster needs one per family, and a single IPv4 default stays valid);
//!   `spec.address` is immutable; `layer2`/`vip` need `spec.interface`, which must parse
//!   (`can_reach:` a valid, non-loopback IP; not `lo`); `namespaces` are DNS-1123 labels and
//!   `namespaceSelector` a map of valid label keys and values; `advertisement` (extension, issue 14):
//!   communities `ASN:VALUE` or a well-known name, large communities `A:B:C`, `localPref` and the
//!   aggregation lengths in range, aggregation no shorter than the pool's blocks, BGP-only fields
//!   only on bgp pools, selectors that can be evaluated with valid label keys and values.
//! - BgpConf: named `default` (the only one speakers read); `as` in 1..=4294967295; `routerId` an
//!   IPv4 address; `listenPort` in 1..=65535 or -1; `asPerRack` ASes in range.
//! - BgpPeer: `conf.neighborAddress` an IP; `conf.peerAs` (and `localAs`) in range; timers numeric
//!   strings, hold time 0 or >= 3 (RFC 4271 section 4.2), keepalive below the hold time;
//!   `transport.remotePort` in 1..=65535; `transport.tcpMss` 0 or in 88..=32767 (what Linux
//!   accepts for `TCP_MAXSEG`); `ebgpMultihop.multihopTtl` in 1..=255;
//!   `conf.authPasswordSecret` (extension) a Secret name, not set together with `authPassword`;
//!   `bfd` (extension) intervals in 50..=60000 ms and a multiplier in 2..=255.

use std::net::{IpAddr, Ipv4Addr};

use oxelb_crds::{
    address::IpRange,
    names,
    v1alpha2::{BgpConf, BgpPeer, Eip, Transport},
};

/// One violation: the field path and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The field, as `kubectl explain` writes it (`spec.address`).
    pub field: String,
    /// What is wrong, and what to do.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn violation(field: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks an Eip on CREATE (`old` is `None`) or UPDATE against the other Eips of the cluster (the
/// object itself, by name, is skipped among them).
pub fn validate_eip(eip: &Eip, old: Option<&Eip>, others: &[Eip]) -> Vec<Violation> {
    let mut out = Vec::new();
    let name = eip.metadata.name.as_deref().unwrap_or_default();
    let range = match eip.spec.parsed_address() {
        Ok(range) => Some(range),
        Err(error) => {
            out.push(violation("spec.address", error.to_string()));
            None
        }
    };

    if let Some(old) = old
        && old.spec.address.trim() != eip.spec.address.trim()
    {
        out.push(violation(
            "spec.address",
            format!(
                "is immutable (was {:?}); create a new Eip, and drain this one with spec.disable: true",
                old.spec.address
            ),
        ));
    }

    let others: Vec<&Eip> = others
        .iter()
        .filter(|other| other.metadata.name.as_deref() != Some(name))
        // An Eip being deleted still holds its addresses until it is gone.
        .collect();
    if let Some(range) = &range {
        for other in &others {
            let Ok(theirs) = other.spec.parsed_address() else {
                continue;
            };
            if overlap(range, &theirs) {
                out.push(violation(
                    "spec.address",
                    format!(
                        "{} overlaps Eip {} ({}); pools must not share addresses",
                        eip.spec.address,
                        other.metadata.name.as_deref().unwrap_or_default(),
                        other.spec.address
                    ),
                ));
            }
        }
        if eip.is_default() {
            for other in others.iter().filter(|o| o.is_default()) {
                let Ok(theirs) = other.spec.parsed_address() else {
                    continue;
                };
                if theirs.family() == range.family() {
                    out.push(violation(
                        format!("metadata.annotations[{}]", names::IS_DEFAULT_EIP_ANNOTATION),
                        format!(
                            "Eip {} is already the default {} Eip; at most one per IP family",
                            other.metadata.name.as_deref().unwrap_or_default(),
                            range.family()
                        ),
                    ));
                }
            }
        }
    }

    match eip.spec.interface() {
        None if eip.spec.protocol().needs_interface() => out.push(violation(
            "spec.interface",
            format!(
                "is required for protocol {}: a NIC name (eth0) or can_reach:<IP>",
                eip.spec.protocol()
            ),
        )),
        Some(Err(error)) => out.push(violation("spec.interface", error.to_string())),
        _ => {}
    }

    for (i, namespace) in eip.spec.namespaces.iter().flatten().enumerate() {
        if let Err(why) = dns1123_label(namespace) {
            out.push(violation(
                format!("spec.namespaces[{i}]"),
                format!("{namespace:?} {why}"),
            ));
        }
    }
    if let Err(errors) = eip.spec.announce_policy() {
        out.extend(
            errors
                .into_iter()
                .map(|e| violation(e.field, e.problem.to_string())),
        );
    }
    if let Some(block) = &eip.spec.advertisement {
        for (name, selector) in [
            ("peerSelector", &block.peer_selector),
            ("nodeSelector", &block.node_selector),
        ] {
            let field = format!("spec.advertisement.{name}");
            out.extend(selector_labels(selector.as_ref(), &field));
        }
    }
    for (key, value) in eip.spec.namespace_selector.iter().flatten() {
        if let Err(why) = label_key(key) {
            out.push(violation(
                format!("spec.namespaceSelector[{key:?}]"),
                format!("key {why}"),
            ));
        }
        if let Err(why) = label_value(value) {
            out.push(violation(
                format!("spec.namespaceSelector[{key:?}]"),
                format!("value {value:?} {why}"),
            ));
        }
    }
    out
}

/// The label keys and values of a selector that are not valid labels.
fn selector_labels(
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    field: &str,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(selector) = selector else { return out };
    for (key, value) in selector.match_labels.iter().flatten() {
        let here = format!("{field}.matchLabels[{key:?}]");
        // An empty key is reported by the policy's own selector check.
        if !key.is_empty()
            && let Err(why) = label_key(key)
        {
            out.push(violation(here.clone(), format!("key {why}")));
        }
        if let Err(why) = label_value(value) {
            out.push(violation(here, format!("value {value:?} {why}")));
        }
    }
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        if !e.key.is_empty()
            && let Err(why) = label_key(&e.key)
        {
            out.push(violation(
                format!("{field}.matchExpressions[{i}].key"),
                format!("{:?} {why}", e.key),
            ));
        }
        for (j, value) in e.values.iter().flatten().enumerate() {
            if let Err(why) = label_value(value) {
                out.push(violation(
                    format!("{field}.matchExpressions[{i}].values[{j}]"),
                    format!("{value:?} {why}"),
                ));
            }
        }
    }
    out
}

/// Whether two pools share an address (only possible within one family).
fn overlap(a: &IpRange, b: &IpRange) -> bool {
    a.family() == b.family() && a.first() <= b.last() && b.first() <= a.last()
}

/// Checks a BgpConf.
pub fn validate_bgp_conf(conf: &BgpConf) -> Vec<Violation> {
    let mut out = Vec::new();
    let name = conf.metadata.name.as_deref().unwrap_or_default();
    if name != names::DEFAULT_BGP_CONF_NAME {
        out.push(violation(
            "metadata.name",
            format!(
                "{name:?}: speakers read only the BgpConf named {:?}; rename it",
                names::DEFAULT_BGP_CONF_NAME
            ),
        ));
    }
    match conf.spec.as_number {
        None | Some(0) => out.push(violation("spec.as", "the local AS is required, 1..=4294967295")),
        Some(_) => {}
    }
    if let Some(id) = conf.spec.router_id.as_deref().filter(|id| !id.is_empty())
        && id.parse::<Ipv4Addr>().is_err()
    {
        out.push(violation(
            "spec.routerId",
            format!("{id:?} is not an IPv4 address (leave it empty for the node's InternalIP)"),
        ));
    }
    if let Some(port) = conf.spec.listen_port
        && port != -1
        && !(1..=65535).contains(&port)
    {
        out.push(violation(
            "spec.listenPort",
            format!("{port} is not in 1..=65535, or -1 (do not listen)"),
        ));
    }
    for (i, address) in conf.spec.listen_addresses.iter().flatten().enumerate() {
        if address.parse::<IpAddr>().is_err() {
            out.push(violation(
                format!("spec.listenAddresses[{i}]"),
                format!("{address:?} is not an IP address"),
            ));
        }
    }
    for (rack, asn) in conf.spec.as_per_rack.iter().flatten() {
        if *asn == 0 {
            out.push(violation(
                format!("spec.asPerRack[{rack:?}]"),
                "AS 0 is reserved (RFC 7607); use 1..=4294967295",
            ));
        }
    }
    out
}

/// Checks a BgpPeer.
pub fn validate_bgp_peer(peer: &BgpPeer) -> Vec<Violation> {
    let mut out = Vec::new();
    let conf = peer.spec.conf.clone().unwrap_or_default();
    match conf.neighbor_address.as_deref().map(str::trim) {
        None | Some("") => out.push(violation(
            "spec.conf.neighborAddress",
            "is required: the router's IP address",
        )),
        Some(address) if address.parse::<IpAddr>().is_err() => {
            out.push(violation(
                "spec.conf.neighborAddress",
                format!("{address:?} is not an IP address"),
            ));
        }
        Some(_) => {}
    }
    match conf.peer_as {
        None | Some(0) => out.push(violation(
            "spec.conf.peerAs",
            "the router's AS is required, 1..=4294967295",
        )),
        Some(_) => {}
    }
    if let Some(reference) = &conf.auth_password_secret {
        if conf.auth_password.as_deref().is_some_and(|p| !p.is_empty()) {
            out.push(violation(
                "spec.conf.authPasswordSecret",
                "and spec.conf.authPassword are both set; set one (the Secret keeps the password out of the object)",
            ));
        }
        if reference.name.split('.').any(|part| dns1123_label(part).is_err()) {
            out.push(violation(
                "spec.conf.authPasswordSecret.name",
                format!("{:?} is not a Secret name (a DNS subdomain)", reference.name),
            ));
        }
    }
    if conf.local_as == Some(0) {
        out.push(violation(
            "spec.conf.localAs",
            "AS 0 is reserved (RFC 7607); use 1..=4294967295 or leave it unset",
        ));
    }

    let timers = peer
        .spec
        .timers
        .clone()
        .and_then(|t| t.config)
        .unwrap_or_default();
    let seconds = |field: &str, value: &Option<String>, out: &mut Vec<Violation>| -> Option<u64> {
        let value = value.as_deref()?.trim();
        match value.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                out.push(violation(
                    format!("spec.timers.config.{field}"),
                    format!("{value:?} is not a whole number of seconds (write it as a string, e.g. \"90\")"),
                ));
                None
            }
        }
    };
    let hold = seconds("holdTime", &timers.hold_time, &mut out);
    let keepalive = seconds("keepaliveInterval", &timers.keepalive_interval, &mut out);
    seconds("connectRetry", &timers.connect_retry, &mut out);
    seconds(
        "minimumAdvertisementInterval",
        &timers.minimum_advertisement_interval,
        &mut out,
    );
    if let Some(hold) = hold
        && (hold == 1 || hold == 2 || hold > 65535)
    {
        out.push(violation(
            "spec.timers.config.holdTime",
            format!("{hold} must be 0 or 3..=65535 (RFC 4271 section 4.2)"),
        ));
    }
    if let (Some(hold), Some(keepalive)) = (hold, keepalive)
        && hold > 0
        && keepalive >= hold
    {
        out.push(violation(
            "spec.timers.config.keepaliveInterval",
            format!("{keepalive} must be below the hold time {hold} (one third of it is usual)"),
        ));
    }

    let transport = peer.spec.transport.clone().unwrap_or_default();
    if let Some(port) = transport.remote_port
        && !(1..=65535).contains(&port)
    {
        out.push(violation(
            "spec.transport.remotePort",
            format!("{port} is not in 1..=65535"),
        ));
    }
    if let Some(address) = transport.remote_address.as_deref().filter(|a| !a.is_empty())
        && address.parse::<IpAddr>().is_err()
    {
        out.push(violation(
            "spec.transport.remoteAddress",
            format!("{address:?} is not an IP address"),
        ));
    }
    if let Some(ttl) = peer.spec.ebgp_multihop.as_ref().and_then(|m| m.multihop_ttl)
        && !(1..=255).contains(&ttl)
    {
        out.push(violation(
            "spec.ebgpMultihop.multihopTtl",
            format!("{ttl} is not in 1..=255"),
        ));
    }
    if let Some(mss) = peer.spec.transport.as_ref().and_then(|t| t.tcp_mss)
        && mss != 0
        && !Transport::TCP_MSS.contains(&mss)
    {
        out.push(violation(
            "spec.transport.tcpMss",
            format!(
                "{mss} is not in {}..={} (the TCP maximum segment sizes Linux accepts; 0 or unset: the kernel's)",
                Transport::TCP_MSS.start(),
                Transport::TCP_MSS.end()
            ),
        ));
    }
    if let Some(bfd) = &peer.spec.bfd {
        out.extend(validate_bfd(bfd));
    }
    out
}

/// The BFD extension block: intervals within the documented floor and ceiling, a multiplier
/// FRR also accepts (checked whether or not `enabled` is set, so enabling later cannot fail).
fn validate_bfd(bfd: &oxelb_crds::v1alpha2::Bfd) -> Vec<Violation> {
    use oxelb_crds::v1alpha2::Bfd;
    let mut out = Vec::new();
    for (field, value) in [
        ("spec.bfd.desiredMinTxMs", bfd.desired_min_tx_ms),
        ("spec.bfd.requiredMinRxMs", bfd.required_min_rx_ms),
    ] {
        if let Some(ms) = value
            && !Bfd::INTERVAL_MS.contains(&ms)
        {
            out.push(violation(
                field,
                format!(
                    "{ms} ms is not in {}..={} ms",
                    Bfd::INTERVAL_MS.start(),
                    Bfd::INTERVAL_MS.end()
                ),
            ));
        }
    }
    if let Some(mult) = bfd.detect_multiplier
        && !Bfd::MULTIPLIER.contains(&mult)
    {
        out.push(violation(
            "spec.bfd.detectMultiplier",
            format!(
                "{mult} is not in {}..={}",
                Bfd::MULTIPLIER.start(),
                Bfd::MULTIPLIER.end()
            ),
        ));
    }
    out
}

/// A DNS-1123 label (a namespace name): 1..=63 of `a-z 0-9 -`, alphanumeric at both ends.
fn dns1123_label(value: &str) -> Result<(), &'static str> {
    let bytes = value.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || bytes.len() > 63 {
        return Err("must be 1 to 63 characters");
    }
    if !bytes.iter().all(|b| alnum(b) || *b == b'-') {
        return Err("may contain only lower-case letters, digits and '-'");
    }
    if !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

/// A label name part or value: up to 63 of `A-Z a-z 0-9 - _ .`, alphanumeric at both ends.
fn label_name(value: &str) -> Result<(), &'static str> {
    let bytes = value.as_bytes();
    if bytes.len() > 63 {
        return Err("is longer than 63 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("may contain only letters, digits, '-', '_' and '.'");
    }
    if let (Some(first), Some(last)) = (bytes.first(), bytes.last())
        && (!first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric())
    {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

/// A label key: `[prefix/]name`, prefix a DNS subdomain of up to 253 characters.
fn label_key(key: &str) -> Result<(), &'static str> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if name.is_empty() {
        return Err("has an empty name");
    }
    label_name(name)?;
    if let Some(prefix) = prefix {
        if prefix.is_empty() || prefix.len() > 253 {
            return Err("has a prefix that is not 1 to 253 characters");
        }
        for part in prefix.split('.') {
            dns1123_label(part).map_err(|_| "has a prefix that is not a DNS subdomain")?;
        }
    }
    Ok(())
}

fn label_value(value: &str) -> Result<(), &'static str> {
    label_name(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_syntax() {
        assert!(dns1123_label("team-a").is_ok());
        for bad in ["", "Team", "-a", "a-", "a_b", &"a".repeat(64)] {
            assert!(dns1123_label(bad).is_err(), "{bad:?}");
        }
        assert!(label_key("kubernetes.io/metadata.name").is_ok());
        assert!(label_key("team").is_ok());
        for bad in ["", "/x", "a/", "Bad_Prefix/x", "x/-y", "a b"] {
            assert!(label_key(bad).is_err(), "{bad:?}");
        }
        assert!(label_value("").is_ok(), "empty values are legal");
        assert!(label_value("v1.2_x").is_ok());
        assert!(label_value("-x").is_err());
    }
}
