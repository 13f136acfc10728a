//! Which BGP sessions this node must hold, in pure code: BgpConf `default`, the BgpPeers and this
//! node's facts in, one fully resolved [`SessionConfig`] per peer out. Comparing two plans
//! ([`diff`]) tells which sessions to start, stop or restart, so a change to one BgpPeer touches only
//! its session, and a BgpConf change restarts exactly the sessions whose resolved configuration it
//! changed (a new `listenPort`, for example, restarts none). OpenELB restarts every session on any
//! change.
//!
//! Field meanings follow GoBGP's API, as OpenELB passes them to an embedded GoBGP
//! (`openelb-compat.md`, BgpConf and BgpPeer).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr},
};

use oxelb_crds::{
    names,
    v1alpha2::{BgpConf, BgpPeer},
};

use crate::node::{NodeFacts, selector_matches};

/// The BGP port (RFC 4271 section 8.2.1).
pub const BGP_PORT: u16 = 179;
/// Hold time when `timers.config.holdTime` is unset (GoBGP's default).
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// Connect retry when unset: 5 s, not GoBGP's 120 s, so a session to a restarted router comes back
/// quickly (routes of a load balancer are the traffic).
pub const DEFAULT_CONNECT_RETRY: u16 = 5;

/// An address family this speaker announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4 unicast (AFI 1, SAFI 1).
    Ipv4Unicast,
    /// IPv6 unicast (AFI 2, SAFI 1).
    Ipv6Unicast,
}

/// One session, every value resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// The BgpPeer's name.
    pub peer: String,
    /// `conf.neighborAddress`.
    pub neighbor: IpAddr,
    /// `transport.remotePort`, else 179.
    pub remote_port: u16,
    /// `conf.peerAs`.
    pub peer_as: u32,
    /// `conf.localAs`, else the AS of this node's rack (`asPerRack`), else BgpConf `as`.
    pub local_as: u32,
    /// BgpConf `routerId` (unless the rack's AS applies), else the node's IPv4 InternalIP.
    pub router_id: Ipv4Addr,
    /// `transport.passiveMode`: only accept, never connect.
    pub passive: bool,
    /// `conf.authPassword`: TCP-MD5 (RFC 2385).
    pub md5_password: Option<String>,
    /// IP TTL of the session's packets: 1 for eBGP, `ebgpMultihop.multihopTtl` when enabled, 255 for
    /// iBGP.
    pub ttl: u8,
    /// `transport.tcpMss` when set and not 0: the TCP maximum segment size (`TCP_MAXSEG`) of the
    /// session's socket, set before connect so the SYN carries it; held to
    /// [`oxelb_crds::v1alpha2::Transport::TCP_MSS`] (the webhook refuses others; the `dir:`
    /// source has none).
    pub tcp_mss: Option<u16>,
    /// `transport.mtuDiscovery` when set: path MTU discovery on (`true`, `IP_PMTUDISC_DO`) or off
    /// (`false`, `IP_PMTUDISC_DONT`) on the session's socket; unset: the kernel's setting.
    pub mtu_discovery: Option<bool>,
    /// Hold time offered in OPEN (0 or >= 3).
    pub hold_time: u16,
    /// Keepalive interval (`keepaliveInterval`, else a third of the hold time).
    pub keepalive: u16,
    /// Seconds between connection attempts.
    pub connect_retry: u16,
    /// The families to offer (from `afiSafis`, else the neighbor's family).
    pub families: BTreeSet<Family>,
    /// ADD-PATH send maximum per family when `afiSafis[].addPaths.config.sendMax` is set and not
    /// 0 (GoBGP's "no ADD-PATH").
    pub add_path_send_max: Option<u8>,
    /// Graceful restart time to advertise (RFC 4724), when enabled on the peer or the BgpConf.
    pub graceful_restart_time: Option<u16>,
    /// `conf.adminDown`: configured, but kept down.
    pub admin_down: bool,
    /// `conf.description`: free text, reported in the status as GoBGP does. A change to it
    /// alone restarts nothing ([`diff`]).
    pub description: Option<String>,
    /// `spec.bfd` (oxelb extension) when enabled. A change to it alone restarts only the BFD
    /// session, never the BGP session ([`diff`]).
    pub bfd: Option<BfdConfig>,
}

/// A BFD session beside the BGP session, resolved from BgpPeer `spec.bfd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdConfig {
    /// Desired Min TX, milliseconds.
    pub desired_min_tx_ms: u32,
    /// Required Min RX, milliseconds.
    pub required_min_rx_ms: u32,
    /// Detect Mult.
    pub detect_mult: u8,
    /// Multihop (RFC 5883, UDP 4784) for `ebgpMultihop.enabled` peers; else single hop
    /// (RFC 5881, UDP 3784, TTL 255 both ways).
    pub multihop: bool,
}

/// `spec.bfd` resolved: defaults filled in and values held to the documented ranges (the
/// webhook refuses others; the `dir:` source has no webhook, so they are clamped, not fatal).
fn bfd_config(peer: &BgpPeer) -> Option<BfdConfig> {
    use oxelb_crds::v1alpha2::Bfd;
    let bfd = peer.spec.bfd.as_ref().filter(|b| b.is_enabled())?;
    let (tx, rx, mult) = bfd.resolved();
    let interval = |ms: u32| ms.clamp(*Bfd::INTERVAL_MS.start(), *Bfd::INTERVAL_MS.end());
    Some(BfdConfig {
        desired_min_tx_ms: interval(tx),
        required_min_rx_ms: interval(rx),
        detect_mult: u8::try_from(mult.clamp(*Bfd::MULTIPLIER.start(), *Bfd::MULTIPLIER.end()))
            .unwrap_or(u8::MAX),
        multihop: peer
            .spec
            .ebgp_multihop
            .as_ref()
            .is_some_and(|m| m.enabled == Some(true)),
    })
}

/// Where this speaker listens for routers that connect to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// `listenPort` (BgpConf), else 179.
    pub port: u16,
    /// `listenAddresses`, else every address.
    pub addresses: Vec<IpAddr>,
}

/// A BgpConf or BgpPeer that gives no session, and why (said as a Warning Event on it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `BgpConf/default`, `BgpPeer/<name>`.
    pub object: String,
    /// What is wrong, naming the field.
    pub message: String,
}

/// The BGP identity this node uses (written to `BgpConf.status.nodesConfStatus[<node>]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The router id.
    pub router_id: Ipv4Addr,
    /// The AS (the rack's, or BgpConf `as`).
    pub asn: u32,
}

/// What this node must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionPlan {
    /// The node's BGP identity; `None` without a usable BgpConf.
    pub identity: Option<Identity>,
    /// One session per BgpPeer that selects this node, by BgpPeer name.
    pub sessions: BTreeMap<String, SessionConfig>,
    /// The listener; `None` for `listenPort: -1` or without a usable BgpConf.
    pub listen: Option<Listen>,
    /// Objects that give no session.
    pub problems: Vec<Problem>,
}

/// The TCP-MD5 passwords of the BgpPeers that take theirs from a Secret
/// (`spec.conf.authPasswordSecret`, an oxelb extension), written into `conf.authPassword`.
///
/// `secrets` holds the Secrets of the speakers' namespace: name to key to value. A peer whose
/// Secret or key is missing, whose value is not UTF-8, or that also sets `authPassword` gets no
/// session (a wrong or missing password would only fail silently at the router) and a problem
/// naming the field; the others pass unchanged. When the Secret changes, the session's
/// configuration changes, and only that session restarts.
pub fn resolve_passwords(
    peers: &[BgpPeer],
    secrets: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    namespace: &str,
) -> (Vec<BgpPeer>, Vec<Problem>) {
    let mut resolved = Vec::with_capacity(peers.len());
    let mut problems = Vec::new();
    for peer in peers {
        let name = peer.metadata.name.as_deref().unwrap_or_default();
        let Some(conf) = &peer.spec.conf else {
            resolved.push(peer.clone());
            continue;
        };
        let Some(reference) = &conf.auth_password_secret else {
            resolved.push(peer.clone());
            continue;
        };
        let field = "spec.conf.authPasswordSecret";
        let key = reference.key_or_default();
        let outcome = if conf.auth_password.as_deref().is_some_and(|p| !p.is_empty()) {
            Err(format!(
                "{field} and spec.conf.authPassword are both set; set one"
            ))
        } else {
            match secrets.get(&reference.name) {
                None => Err(format!(
                    "{field}: Secret {namespace}/{} does not exist (the speakers read Secrets of their own namespace only)",
                    reference.name
                )),
                Some(data) => match data.get(key) {
                    None => Err(format!(
                        "{field}: Secret {namespace}/{} has no key {key}",
                        reference.name
                    )),
                    Some(bytes) => match std::str::from_utf8(bytes) {
                        Ok(text) if !text.is_empty() => Ok(text.trim_end_matches(['\r', '\n']).to_owned()),
                        Ok(_) => Err(format!(
                            "{field}: key {key} of Secret {namespace}/{} is empty",
                            reference.name
                        )),
                        Err(_) => Err(format!(
                            "{field}: key {key} of Secret {namespace}/{} is not UTF-8 text",
                            reference.name
                        )),
                    },
                },
            }
        };
        match outcome {
            Ok(password) => {
                let mut peer = peer.clone();
                if let Some(conf) = peer.spec.conf.as_mut() {
                    conf.auth_password = Some(password);
                }
                resolved.push(peer);
            }
            Err(message) => problems.push(Problem {
                object: format!("BgpPeer/{name}"),
                message: format!("{message}; no session starts"),
            }),
        }
    }
    (resolved, problems)
}

/// The sessions and listener for `node`.
pub fn plan(confs: &[BgpConf], peers: &[BgpPeer], node: &NodeFacts) -> SessionPlan {
    let mut out = SessionPlan::default();
    let conf = confs
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(names::DEFAULT_BGP_CONF_NAME) && !is_cni(&c.metadata));
    let Some(conf) = conf else {
        if !peers.is_empty() {
            out.problems.push(Problem {
                object: format!("BgpConf/{}", names::DEFAULT_BGP_CONF_NAME),
                message: "missing: BgpPeers exist but no BgpConf named default gives the local AS; no session starts".into(),
            });
        }
        return out;
    };
    let spec = &conf.spec;
    let rack_as = node
        .rack
        .as_ref()
        .and_then(|rack| spec.as_per_rack.as_ref()?.get(rack).copied());
    let Some(global_as) = rack_as.or(spec.as_number).filter(|asn| *asn != 0) else {
        out.problems.push(Problem {
            object: "BgpConf/default".into(),
            message: "spec.as: missing or 0; no session starts".into(),
        });
        return out;
    };
    let node_v4 = node.internal_ips.iter().find_map(|ip| match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    });
    let configured_id = spec.router_id.as_deref().filter(|id| !id.is_empty());
    // With a per-rack AS the node's own address is the router id (OpenELB's rule).
    let router_id = match (rack_as, configured_id) {
        (None, Some(id)) => match id.parse::<Ipv4Addr>() {
            Ok(id) => Some(id),
            Err(_) => {
                out.problems.push(Problem {
                    object: "BgpConf/default".into(),
                    message: format!(
                        "spec.routerId: {id:?} is not an IPv4 address; using the node's InternalIP"
                    ),
                });
                node_v4
            }
        },
        _ => node_v4,
    };
    let Some(router_id) = router_id else {
        out.problems.push(Problem {
            object: "BgpConf/default".into(),
            message: format!("node {} has no IPv4 InternalIP for the router id and spec.routerId is empty; no session starts", node.name),
        });
        return out;
    };
    out.identity = Some(Identity {
        router_id,
        asn: global_as,
    });
    out.listen = match spec.listen_port {
        Some(-1) => None,
        port => Some(Listen {
            port: port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .unwrap_or(BGP_PORT),
            addresses: spec
                .listen_addresses
                .iter()
                .flatten()
                .filter_map(|a| a.parse().ok())
                .collect(),
        }),
    };
    let conf_gr = spec
        .graceful_restart
        .as_ref()
        .filter(|gr| gr.enabled == Some(true))
        .map(|gr| gr.restart_time.and_then(|t| u16::try_from(t).ok()).unwrap_or(120));

    for peer in peers {
        if is_cni(&peer.metadata) {
            continue; // Left to the CNI (openelb.kubesphere.io/cni).
        }
        let name = peer.metadata.name.clone().unwrap_or_default();
        if !selector_matches(peer.spec.node_selector.as_ref(), &node.labels) {
            continue;
        }
        match session(&name, peer, global_as, router_id, conf_gr) {
            Ok(session) => {
                out.sessions.insert(name, session);
            }
            Err(message) => out.problems.push(Problem {
                object: format!("BgpPeer/{name}"),
                message,
            }),
        }
    }
    out
}

fn is_cni(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .is_some_and(|l| l.contains_key(names::CNI_LABEL))
}

fn session(
    name: &str,
    peer: &BgpPeer,
    global_as: u32,
    router_id: Ipv4Addr,
    conf_gr: Option<u16>,
) -> Result<SessionConfig, String> {
    let conf = peer.spec.conf.clone().unwrap_or_default();
    let neighbor: IpAddr = conf
        .neighbor_address
        .as_deref()
        .map(str::trim)
        .ok_or("spec.conf.neighborAddress: missing; no session")?
        .parse()
        .map_err(|_| {
            format!(
                "spec.conf.neighborAddress: {:?} is not an IP address; no session",
                conf.neighbor_address.unwrap_or_default()
            )
        })?;
    let peer_as = conf
        .peer_as
        .filter(|a| *a != 0)
        .ok_or("spec.conf.peerAs: missing or 0; no session")?;
    let local_as = conf.local_as.filter(|a| *a != 0).unwrap_or(global_as);

    let timers = peer
        .spec
        .timers
        .clone()
        .and_then(|t| t.config)
        .unwrap_or_default();
    let seconds = |field: &str, value: Option<String>| -> Result<Option<u16>, String> {
        match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse::<u16>().map(Some).map_err(|_| {
                format!(
                    "spec.timers.config.{field}: {v:?} is not a number of seconds (0..=65535); no session"
                )
            }),
        }
    };
    let hold_time = seconds("holdTime", timers.hold_time)?.unwrap_or(DEFAULT_HOLD_TIME);
    if hold_time == 1 || hold_time == 2 {
        return Err(format!(
            "spec.timers.config.holdTime: {hold_time} must be 0 or at least 3 (RFC 4271 section 4.2); no session"
        ));
    }
    let keepalive = seconds("keepaliveInterval", timers.keepalive_interval)?.unwrap_or(hold_time / 3);
    let connect_retry = seconds("connectRetry", timers.connect_retry)?
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_CONNECT_RETRY);

    let transport = peer.spec.transport.clone().unwrap_or_default();
    let remote_port = match transport.remote_port {
        None | Some(0) => BGP_PORT,
        Some(port) => u16::try_from(port)
            .map_err(|_| format!("spec.transport.remotePort: {port} is not a port; no session"))?,
    };
    let multihop = peer.spec.ebgp_multihop.clone().unwrap_or_default();
    let ttl = if peer_as == local_as {
        255
    } else if multihop.enabled == Some(true) {
        multihop
            .multihop_ttl
            .and_then(|t| u8::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(255)
    } else {
        1
    };

    let mut families = BTreeSet::new();
    let mut add_path_send_max = None;
    for afi_safi in peer.spec.afi_safis.iter().flatten() {
        let config = afi_safi.config.clone().unwrap_or_default();
        if config.enabled == Some(false) {
            continue;
        }
        let family = config.family.unwrap_or_default();
        match (family.afi.as_deref(), family.safi.as_deref()) {
            (Some("ipv4") | Some("AFI_IP"), Some("unicast") | Some("SAFI_UNICAST") | None) => {
                families.insert(Family::Ipv4Unicast);
            }
            (Some("ipv6") | Some("AFI_IP6"), Some("unicast") | Some("SAFI_UNICAST") | None) => {
                families.insert(Family::Ipv6Unicast);
            }
            _ => {} // Other families are not announced by a load balancer.
        }
        if let Some(max) = afi_safi
            .add_paths
            .as_ref()
            .and_then(|a| a.config.as_ref())
            .and_then(|c| c.send_max)
            .filter(|max| *max != 0)
        {
            add_path_send_max = Some(u8::try_from(max).unwrap_or(u8::MAX));
        }
    }
    if families.is_empty() {
        families.insert(if neighbor.is_ipv4() {
            Family::Ipv4Unicast
        } else {
            Family::Ipv6Unicast
        });
    }
    let peer_gr = peer
        .spec
        .graceful_restart
        .as_ref()
        .and_then(|gr| match gr.enabled {
            Some(true) => Some(gr.restart_time.and_then(|t| u16::try_from(t).ok()).unwrap_or(120)),
            _ => None,
        });
    Ok(SessionConfig {
        peer: name.to_owned(),
        neighbor,
        remote_port,
        peer_as,
        local_as,
        router_id,
        passive: transport.passive_mode == Some(true),
        md5_password: conf.auth_password.filter(|p| !p.is_empty()),
        ttl,
        tcp_mss: tcp_mss(transport.tcp_mss),
        mtu_discovery: transport.mtu_discovery,
        hold_time,
        keepalive,
        connect_retry,
        families,
        add_path_send_max,
        graceful_restart_time: peer_gr.or(conf_gr),
        admin_down: conf.admin_down == Some(true),
        description: conf.description.filter(|d| !d.trim().is_empty()),
        bfd: bfd_config(peer),
    })
}

/// `transport.tcpMss` resolved: 0 or unset is the kernel's; others held to what Linux accepts.
fn tcp_mss(value: Option<u32>) -> Option<u16> {
    use oxelb_crds::v1alpha2::Transport;
    let mss = value.filter(|m| *m != 0)?;
    u16::try_from(mss.clamp(*Transport::TCP_MSS.start(), *Transport::TCP_MSS.end())).ok()
}

/// What to do to go from one plan to the next.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Sessions to start (new BgpPeers, or newly selecting this node).
    pub start: Vec<String>,
    /// Sessions to stop (BgpPeer deleted or no longer selecting this node).
    pub stop: Vec<String>,
    /// Sessions whose resolved configuration changed: stop, then start with the new one.
    pub restart: Vec<String>,
    /// Whether the listener changed (rebind; sessions stay up).
    pub listen_changed: bool,
    /// Sessions whose BFD configuration alone changed: the BFD session follows, BGP stays up.
    pub bfd: Vec<String>,
}

/// The changes from `old` to `new`; sessions whose resolved configuration is equal are untouched.
pub fn diff(old: &SessionPlan, new: &SessionPlan) -> Changes {
    let mut changes = Changes {
        listen_changed: old.listen != new.listen,
        ..Changes::default()
    };
    // What the BGP session is made of: not the BFD session beside it, nor the description.
    let bgp_only = |c: &SessionConfig| SessionConfig {
        bfd: None,
        description: None,
        ..c.clone()
    };
    for (name, config) in &new.sessions {
        match old.sessions.get(name) {
            None => changes.start.push(name.clone()),
            Some(before) if bgp_only(before) != bgp_only(config) => changes.restart.push(name.clone()),
            Some(before) if before.bfd != config.bfd => changes.bfd.push(name.clone()),
            Some(_) => {}
        }
    }
    changes.stop = old
        .sessions
        .keys()
        .filter(|n| !new.sessions.contains_key(*n))
        .cloned()
        .collect();
    changes
}

#[cfg(test)]
mod secret_tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
