//! Real BGP routers in lab namespaces: FRR (zebra + bgpd), BIRD 2 and GoBGP, from Debian's packages,
//! started in the foreground so the [`Lab`] stops them (recipes measured in `LAB-NOTES.md`).
//!
//! Each router type has a small config builder for the common case (eBGP/iBGP neighbors, IPv4 and
//! IPv6 unicast) and raw text for anything else.

mod bird;
mod common;
mod frr;
mod gobgp;

use serde_json::Value;

pub use self::{
    bird::{Bird, bird_conf},
    common::Neighbor,
    frr::{Frr, frr_bfdd_conf, frr_bgpd_conf},
    gobgp::{GOBGP_API_PORT, Gobgp, gobgp_conf},
};
use crate::lab::{Lab, LabError, Ns};

/// A router's view of one BFD session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdView {
    /// The session is Up.
    pub up: bool,
    /// What the peer (the speaker) advertises: (desired TX ms, required RX ms, multiplier),
    /// where the router shows it (FRR).
    pub remote: Option<(u64, u64, u64)>,
    /// The router's negotiated transmit interval, ms (BIRD).
    pub interval_ms: Option<u64>,
    /// The router's detection time, ms (BIRD).
    pub timeout_ms: Option<u64>,
}

/// The three real routers a BGP scenario runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouterKind {
    /// FRR 8.4 (zebra installs its routes in the kernel).
    Frr,
    /// BIRD 2.0 (its kernel protocol installs them, multipath merged).
    Bird,
    /// gobgpd 3.10 (no kernel routes: its table is the figure).
    Gobgp,
}

/// What a scenario asks of its router, whichever kind runs it.
#[derive(Clone, Debug)]
pub struct RouterSetup {
    /// The router's AS.
    pub asn: u32,
    /// Its router ID (and IPv4 address on the LAN).
    pub router_id: String,
    /// Its IPv6 address on the LAN, when it has IPv6 neighbors.
    pub ipv6: Option<String>,
    /// Its neighbors (the nodes).
    pub neighbors: Vec<Neighbor>,
    /// The port it listens on (179 when `None`).
    pub listen_port: Option<u16>,
}

/// One path of a prefix in a router's BGP table, with the attributes a per-pool policy sets
/// (`Eip.spec.advertisement`), the same for every kind of router.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathView {
    /// The next hop.
    pub next_hop: String,
    /// Standard communities as `ASN:VALUE` (numbers, well-known names resolved), sorted.
    pub communities: Vec<String>,
    /// Large communities as `A:B:C`, sorted.
    pub large_communities: Vec<String>,
    /// LOCAL_PREF as the router holds it.
    pub local_pref: Option<u32>,
}

fn community_text(value: u32) -> String {
    format!("{}:{}", value >> 16, value & 0xffff)
}

/// FRR's community string (`65000:100 no-export`): each word, well-known names resolved.
fn frr_communities(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|word| match oxelb_crds::community::parse_community(word) {
            Ok(c) => community_text(c.0),
            Err(_) => word.to_owned(),
        })
        .collect()
}

/// The numbers inside BIRD's parenthesised tuples: `(65000,100) (65535,65281)` -> `65000:100`, ...
fn bird_tuples(text: &str) -> Vec<String> {
    text.split('(')
        .filter_map(|part| part.split(')').next())
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.split(',').map(str::trim).collect::<Vec<_>>().join(":"))
        .collect()
}

/// A running router of any [`RouterKind`], queried the same way for every kind.
pub enum Router {
    /// FRR.
    Frr(Frr),
    /// BIRD, with its neighbors' addresses in protocol order (`peer0`, `peer1`, ...).
    Bird(Bird, Vec<String>),
    /// gobgpd.
    Gobgp(Gobgp),
}

/// A `bird.conf` for `setup`: device and kernel protocols (merging multipath), one BGP protocol
/// per neighbor with its family's local address. BIRD is a graceful-restart receiving speaker by
/// default (`graceful restart aware`); `on` also makes it advertise a restart time.
fn bird_setup_conf(setup: &RouterSetup) -> String {
    let mut conf = format!(
        "router id {};\nprotocol device {{}}\nprotocol kernel {{ ipv4 {{ export all; }}; merge paths on; }}\nprotocol kernel {{ ipv6 {{ export all; }}; merge paths on; }}\n",
        setup.router_id
    );
    // BIRD's BFD sessions for BGP take their timers from `protocol bfd` (one setting for all).
    if let Some((ms, mult)) = setup.neighbors.iter().find_map(|n| n.bfd) {
        conf.push_str(&format!(
            "protocol bfd {{\n  interface \"*\" {{ min rx interval {ms} ms; min tx interval {ms} ms; idle tx interval 1000 ms; multiplier {mult}; }};\n  multihop {{ min rx interval {ms} ms; min tx interval {ms} ms; multiplier {mult}; }};\n}}\n"
        ));
    }
    for (i, n) in setup.neighbors.iter().enumerate() {
        let v6 = n.address.contains(':');
        let local = if let Some(local) = &n.local_address {
            local.as_str()
        } else if v6 {
            setup.ipv6.as_deref().unwrap_or("::")
        } else {
            &setup.router_id
        };
        let mut options = String::new();
        if let Some(password) = &n.password {
            options.push_str(&format!("  password \"{password}\";\n"));
        }
        if n.passive {
            options.push_str("  passive on;\n");
        }
        if n.graceful_restart {
            options.push_str("  graceful restart on;\n");
        }
        if n.asn == setup.asn {
            // iBGP: BIRD treats the session as multihop and resolves next hops through an IGP
            // table by default; the nodes share the router's LAN, so it is a direct session
            // (next hops directly connected).
            options.push_str("  direct;\n");
        }
        if n.bfd.is_some() {
            // After a session error (BFD Down is one) BIRD accepts and makes no connection for
            // its `error wait time`, 60 s at first by default: 1 s keeps a lab quick.
            options.push_str("  bfd on;\n  error wait time 1, 5;\n");
        }
        let listen = setup
            .listen_port
            .map(|p| format!(" port {p}"))
            .unwrap_or_default();
        let port = n.port.map(|p| format!(" port {p}")).unwrap_or_default();
        conf.push_str(&format!(
            "protocol bgp peer{i} {{\n  local {local}{listen} as {};\n  neighbor {}{port} as {};\n  connect retry time 1;\n{options}  {} {{ import all; export all; }};\n}}\n",
            setup.asn,
            n.address,
            n.asn,
            if v6 { "ipv6" } else { "ipv4" }
        ));
    }
    conf
}

impl Router {
    /// The FRR router, when this is one (for its `vtysh`).
    pub fn frr(&self) -> Option<&Frr> {
        match self {
            Self::Frr(frr) => Some(frr),
            _ => None,
        }
    }

    /// Starts a router of `kind` in `ns` (named `router` in the lab's logs) as `setup` asks.
    pub fn start(kind: RouterKind, lab: &mut Lab, ns: &Ns, setup: &RouterSetup) -> Result<Self, LabError> {
        let id = setup.router_id.as_str();
        Ok(match kind {
            RouterKind::Frr => {
                let extra = if setup.neighbors.iter().any(|n| n.graceful_restart) {
                    " bgp graceful-restart\n"
                } else {
                    ""
                };
                let conf = frr_bgpd_conf(setup.asn, id, &setup.neighbors, extra);
                let bfdd = setup
                    .neighbors
                    .iter()
                    .any(|n| n.bfd.is_some())
                    .then(|| frr_bfdd_conf(&setup.neighbors));
                Self::Frr(Frr::start_daemons(
                    lab,
                    ns,
                    "router",
                    &conf,
                    setup.listen_port.unwrap_or(179),
                    bfdd.as_deref(),
                )?)
            }
            RouterKind::Bird => Self::Bird(
                Bird::start(lab, ns, "router", &bird_setup_conf(setup))?,
                setup.neighbors.iter().map(|n| n.address.clone()).collect(),
            ),
            RouterKind::Gobgp => {
                let port = setup.listen_port.map_or(179, i32::from);
                Self::Gobgp(Gobgp::start(
                    lab,
                    ns,
                    "router",
                    &gobgp_conf(setup.asn, id, &setup.neighbors, port),
                )?)
            }
        })
    }

    /// Whether the session with `neighbor` is Established.
    pub fn established(&self, neighbor: &str) -> Result<bool, LabError> {
        match self {
            Self::Frr(frr) => Ok(frr.neighbor_state(neighbor)? == "Established"),
            Self::Bird(bird, neighbors) => match neighbors.iter().position(|n| n == neighbor) {
                Some(index) => bird.established(index),
                None => Err(LabError::Unexpected(format!("BIRD has no neighbor {neighbor}"))),
            },
            Self::Gobgp(gobgp) => Ok(gobgp
                .neighbor_state(neighbor)?
                .eq_ignore_ascii_case("established")),
        }
    }

    /// The next hops of `prefix` in the router's BGP table, sorted (empty when absent; one per
    /// path, so ECMP paths from two nodes give two).
    pub fn next_hops(&self, prefix: &str) -> Result<Vec<String>, LabError> {
        let mut hops = match self {
            Self::Frr(frr) => frr.bgp_next_hops(prefix)?,
            // `show route all` prints a prefix once, then each of its routes with a `via` line
            // (indented), until the next prefix or table; `show route <prefix>` fails when absent.
            Self::Bird(bird, _) => {
                let table = bird.birdc(&["show", "route", "all"])?;
                let mut inside = false;
                let mut hops = Vec::new();
                for line in table.lines() {
                    if !line.starts_with(char::is_whitespace) {
                        inside = line.split_whitespace().next() == Some(prefix);
                    }
                    if let Some(via) = line.trim().strip_prefix("via ").filter(|_| inside) {
                        hops.extend(via.split_whitespace().next().map(str::to_owned));
                    }
                }
                hops
            }
            // Rows such as `*> 203.0.113.5/32  198.51.100.2  64512  00:00:03  [{Origin: i}]`; a
            // stale path's flags run into the prefix (`S*>203.0.113.5/32`).
            Self::Gobgp(gobgp) => {
                let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
                gobgp
                    .cli(&["global", "rib", "-a", family, prefix])?
                    .lines()
                    .filter_map(|l| {
                        let mut words = l
                            .split_whitespace()
                            .skip_while(|w| w.trim_start_matches(['S', '*', '>', ' ']) != prefix);
                        words.next()?;
                        words.next().map(str::to_owned)
                    })
                    .collect()
            }
        };
        hops.sort();
        hops.dedup();
        Ok(hops)
    }

    /// Every path of `prefix` in the router's BGP table with its communities, large communities
    /// and LOCAL_PREF (empty when absent), sorted by next hop.
    pub fn paths(&self, prefix: &str) -> Result<Vec<PathView>, LabError> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let mut out: Vec<PathView> = match self {
            Self::Frr(frr) => {
                let value = frr.json(&format!("show bgp {family} unicast {prefix} json"))?;
                value["paths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| PathView {
                        next_hop: p["nexthops"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .find(|h| h["scope"].as_str() != Some("link-local"))
                            .and_then(|h| h["ip"].as_str())
                            .unwrap_or_default()
                            .to_owned(),
                        communities: frr_communities(p["community"]["string"].as_str().unwrap_or_default()),
                        large_communities: p["largeCommunity"]["string"]
                            .as_str()
                            .unwrap_or_default()
                            .split_whitespace()
                            .map(str::to_owned)
                            .collect(),
                        local_pref: p["locPrf"].as_u64().and_then(|v| u32::try_from(v).ok()),
                    })
                    .collect()
            }
            // `show route <prefix> all` (exactly that prefix): each path starts with a `unicast [...]` line, then its
            // `via` and `BGP.*` lines.
            Self::Bird(bird, _) => {
                // birdc exits non-zero ("Network not found") when the prefix is absent.
                let text = match bird.birdc(&["show", "route", prefix, "all"]) {
                    Ok(text) => text,
                    Err(LabError::Command { .. }) => String::new(),
                    Err(other) => return Err(other),
                };
                let mut paths: Vec<PathView> = Vec::new();
                for line in text.lines() {
                    let trimmed = line.trim();
                    if line.contains("unicast [") {
                        paths.push(PathView::default());
                    }
                    let Some(path) = paths.last_mut() else { continue };
                    if let Some(via) = trimmed.strip_prefix("via ") {
                        path.next_hop = via.split_whitespace().next().unwrap_or_default().to_owned();
                    } else if let Some(v) = trimmed.strip_prefix("BGP.community:") {
                        path.communities = bird_tuples(v);
                    } else if let Some(v) = trimmed.strip_prefix("BGP.large_community:") {
                        path.large_communities = bird_tuples(v);
                    } else if let Some(v) = trimmed.strip_prefix("BGP.local_pref:") {
                        path.local_pref = v.trim().parse().ok();
                    }
                }
                paths
            }
            // `gobgp global rib -a <family> <prefix> -j`: {prefix: [{attrs: [{type, ...}], ...}]}.
            Self::Gobgp(gobgp) => {
                let text = gobgp.cli(&["global", "rib", "-a", family, prefix, "-j"])?;
                let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                value[prefix]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let mut view = PathView::default();
                        for a in p["attrs"].as_array().into_iter().flatten() {
                            match a["type"].as_u64() {
                                Some(3) => {
                                    view.next_hop = a["nexthop"].as_str().unwrap_or_default().to_owned()
                                }
                                Some(14) => {
                                    view.next_hop = a["nexthop"].as_str().unwrap_or_default().to_owned()
                                }
                                Some(5) => {
                                    view.local_pref = a["value"].as_u64().and_then(|v| u32::try_from(v).ok())
                                }
                                Some(8) => {
                                    view.communities = a["communities"]
                                        .as_array()
                                        .into_iter()
                                        .flatten()
                                        .filter_map(|c| c.as_u64().and_then(|c| u32::try_from(c).ok()))
                                        .map(community_text)
                                        .collect()
                                }
                                Some(32) => {
                                    view.large_communities = a["value"]
                                        .as_array()
                                        .into_iter()
                                        .flatten()
                                        // GoBGP's `LargeCommunity` has no JSON tags: its
                                        // field names are the keys.
                                        .map(|l| {
                                            format!("{}:{}:{}", l["ASN"], l["LocalData1"], l["LocalData2"])
                                        })
                                        .collect()
                                }
                                _ => {}
                            }
                        }
                        view
                    })
                    .collect()
            }
        };
        for p in &mut out {
            p.communities.sort();
            p.large_communities.sort();
        }
        out.sort_by(|a, b| a.next_hop.cmp(&b.next_hop));
        Ok(out)
    }

    /// The kernel's route to `prefix`, or `None` for a router that installs no kernel routes
    /// (gobgpd).
    pub fn kernel_route(&self, prefix: &str) -> Result<Option<String>, LabError> {
        match self {
            Self::Frr(frr) => frr.kernel_route(prefix).map(Some),
            Self::Bird(bird, _) => bird.kernel_route(prefix).map(Some),
            Self::Gobgp(_) => Ok(None),
        }
    }

    /// Whether the router holds `prefix` only as stale (kept for a restarting peer, RFC 4724
    /// §4.2), or `None` where the router does not say (BIRD's `show route` prints no stale mark).
    pub fn stale(&self, prefix: &str) -> Result<Option<bool>, LabError> {
        match self {
            Self::Frr(frr) => {
                let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
                let value = frr.json(&format!("show bgp {family} unicast {prefix} json"))?;
                let paths = value["paths"].as_array().cloned().unwrap_or_default();
                Ok(Some(
                    !paths.is_empty() && paths.iter().all(|p| p["stale"].as_bool() == Some(true)),
                ))
            }
            Self::Bird(..) => Ok(None),
            // Rows of a stale path start with the flag `S` (`S*>203.0.113.5/32 ...`).
            Self::Gobgp(gobgp) => {
                let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
                let rib = gobgp.cli(&["global", "rib", "-a", family, prefix])?;
                let rows: Vec<&str> = rib
                    .lines()
                    .map(str::trim)
                    .filter(|l| l.contains(prefix))
                    .collect();
                Ok(Some(!rows.is_empty() && rows.iter().all(|l| l.starts_with('S'))))
            }
        }
    }

    /// Asks `neighbor` for its routes again (ROUTE-REFRESH, RFC 2918) without resetting the
    /// session. Not for gobgpd: its `softresetin` re-reads its own Adj-RIB-In and sends nothing.
    pub fn refresh(&self, neighbor: &str) -> Result<(), LabError> {
        match self {
            Self::Frr(frr) => frr.vtysh(&format!("clear bgp {neighbor} soft in")).map(drop),
            Self::Bird(bird, neighbors) => {
                let index = neighbors
                    .iter()
                    .position(|n| n == neighbor)
                    .ok_or_else(|| LabError::Unexpected(format!("BIRD has no neighbor {neighbor}")))?;
                bird.birdc(&["reload", "in", &format!("peer{index}")]).map(drop)
            }
            Self::Gobgp(gobgp) => gobgp.cli(&["neighbor", neighbor, "softresetin"]).map(drop),
        }
    }

    /// The router's BFD session with `neighbor`, when it has one: FRR (`show bfd peers json`)
    /// and BIRD (`show bfd sessions`); gobgpd has no BFD.
    pub fn bfd(&self, neighbor: &str) -> Result<Option<BfdView>, LabError> {
        match self {
            Self::Frr(frr) => {
                let peers = frr.json("show bfd peers json")?;
                Ok(peers.as_array().into_iter().flatten().find_map(|p| {
                    (p["peer"].as_str() == Some(neighbor)).then(|| {
                        let n = |key: &str| p[key].as_u64().unwrap_or(0);
                        BfdView {
                            up: p["status"].as_str() == Some("up"),
                            remote: Some((
                                n("remote-transmit-interval"),
                                n("remote-receive-interval"),
                                n("remote-detect-multiplier"),
                            )),
                            interval_ms: None,
                            timeout_ms: None,
                        }
                    })
                }))
            }
            Self::Bird(bird, _) => {
                let text = bird.birdc(&["show", "bfd", "sessions"])?;
                Ok(text.lines().find_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    // IP address, Interface, State, Since, Interval, Timeout (seconds).
                    (fields.first() == Some(&neighbor) && fields.len() >= 6).then(|| {
                        let ms = |s: &str| s.parse::<f64>().map_or(0, |v| (v * 1000.0).round() as u64);
                        BfdView {
                            up: fields[2] == "Up",
                            remote: None,
                            interval_ms: Some(ms(fields[fields.len() - 2])),
                            timeout_ms: Some(ms(fields[fields.len() - 1])),
                        }
                    })
                }))
            }
            Self::Gobgp(_) => Ok(None),
        }
    }

    /// What the router says about its sessions, for failure messages.
    pub fn sessions(&self) -> String {
        match self {
            Self::Frr(frr) => frr.vtysh("show bgp summary"),
            Self::Bird(bird, _) => bird.birdc(&["show", "protocols", "all"]),
            Self::Gobgp(gobgp) => gobgp.cli(&["neighbor"]).map(|neighbors| {
                let rib = gobgp
                    .cli(&["global", "rib", "-a", "ipv4"])
                    .unwrap_or_else(|e| e.to_string());
                format!("{neighbors}\n{rib}")
            }),
        }
        .unwrap_or_else(|e| e.to_string())
    }
}
