//! The fields of a BgpConf or BgpPeer that oxelb accepts but does not apply, in pure code: a spec
//! in, the list of (field path, why) out, so that nothing OpenELB users set is dropped silently.
//! The speaker says the list once per object and generation, as a Warning Event
//! `FieldsIgnored` and a `FieldsIgnored` condition in the object's status.
//!
//! Every path this module can report is in [`BGP_CONF_FIELDS`] or [`BGP_PEER_FIELDS`], and those
//! lists agree, path by path and behaviour by behaviour, with the `no effect` and `not yet` rows of
//! `docs/openelb-fields.md` (a test in `tests/tests/docs.rs` compares them). A field counts as set
//! when it holds a value other than OpenELB's (GoBGP's) default: a boolean `true`, a number other
//! than 0, a non-empty string or list; the exceptions (e.g. `removePrivateAs: NONE`) are named in
//! the table.

use Behaviour::{NoEffect, NotYet};
use oxelb_crds::v1alpha2::{BgpConfSpec, BgpPeerSpec, GracefulRestart};

/// Why a field is not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Behaviour {
    /// It has no meaning for a speaker that only originates routes (it concerns routes learned
    /// from the router, which oxelb never keeps, or GoBGP's own state).
    NoEffect,
    /// It has a meaning for oxelb, and oxelb does not implement it yet.
    NotYet,
}

impl Behaviour {
    /// As the table in `docs/openelb-fields.md` writes it: `no effect` or `not yet`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoEffect => "no effect",
            Self::NotYet => "not yet",
        }
    }
}

/// One field a spec sets that oxelb does not apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Unapplied {
    /// The field's path in the reference schema's notation: `spec.conf.vrf`,
    /// `spec.afiSafis[].addPaths.config.receive` (`[]`: any element of a list).
    pub path: &'static str,
    /// No effect, or not yet.
    pub behaviour: Behaviour,
    /// Why, in a few words (said in the Event and the condition).
    pub reason: &'static str,
}

/// The condition type and Event reason the speaker uses.
pub const FIELDS_IGNORED: &str = "FieldsIgnored";

const fn field(path: &'static str, behaviour: Behaviour, reason: &'static str) -> Unapplied {
    Unapplied {
        path,
        behaviour,
        reason,
    }
}

/// Graceful restart options oxelb does not apply, under `prefix` (`spec.gracefulRestart`), as a
/// table: path suffix, behaviour, reason.
const GRACEFUL_RESTART: [(&str, Behaviour, &str); 9] = [
    (
        "deferralTime",
        NoEffect,
        "defers best-path selection after a restart; oxelb selects no paths, it sends its table and End-of-RIB once its watches have synced",
    ),
    (
        "helperOnly",
        NoEffect,
        "helping a restarting router keep the routes it sent concerns learned routes, and oxelb keeps none; oxelb's own graceful restart follows enabled",
    ),
    (
        "localRestarting",
        NoEffect,
        "state GoBGP reports, not configuration",
    ),
    (
        "longlivedEnabled",
        NotYet,
        "long-lived graceful restart (RFC 9494) is not implemented",
    ),
    ("mode", NoEffect, "state GoBGP reports, not configuration"),
    (
        "notificationEnabled",
        NotYet,
        "graceful restart after a NOTIFICATION (RFC 8538) is not implemented",
    ),
    (
        "peerRestartTime",
        NoEffect,
        "state GoBGP reports (the router's restart time), not configuration",
    ),
    (
        "peerRestarting",
        NoEffect,
        "state GoBGP reports, not configuration",
    ),
    (
        "staleRoutesTime",
        NoEffect,
        "how long a helper keeps a restarting router's routes; oxelb keeps no routes from the router",
    ),
];

/// Every BgpConf (v1alpha2) field [`bgp_conf`] can report.
pub const BGP_CONF_FIELDS: [Unapplied; 12] = [
    field(
        "spec.families[]",
        NotYet,
        "a global restriction of the families is not implemented; each session offers its BgpPeer's afiSafis (default: the neighbor's family)",
    ),
    gr_field("spec.gracefulRestart.deferralTime", 0),
    gr_field("spec.gracefulRestart.helperOnly", 1),
    gr_field("spec.gracefulRestart.localRestarting", 2),
    gr_field("spec.gracefulRestart.longlivedEnabled", 3),
    gr_field("spec.gracefulRestart.mode", 4),
    gr_field("spec.gracefulRestart.notificationEnabled", 5),
    gr_field("spec.gracefulRestart.peerRestartTime", 6),
    gr_field("spec.gracefulRestart.peerRestarting", 7),
    gr_field("spec.gracefulRestart.staleRoutesTime", 8),
    field(
        "spec.policy",
        NotYet,
        "import/export policy ConfigMaps are not implemented (oxelb imports nothing; per-pool export policy is Eip spec.advertisement)",
    ),
    field(
        "spec.useMultiplePaths",
        NoEffect,
        "ECMP among learned paths; oxelb installs no routes from the router",
    ),
];

/// Every BgpPeer (v1alpha2) field [`bgp_peer`] can report.
pub const BGP_PEER_FIELDS: [Unapplied; 22] = [
    field(
        "spec.afiSafis[].addPaths.config.receive",
        NoEffect,
        "receiving several paths per prefix; oxelb keeps no routes from the router",
    ),
    field(
        "spec.afiSafis[].mpGracefulRestart.config.enabled",
        NotYet,
        "leaving one family out of graceful restart (enabled: false) is not implemented: every family the session offers is in the graceful restart capability",
    ),
    field(
        "spec.conf.allowOwnAs",
        NoEffect,
        "accepting the own AS in received AS_PATHs; oxelb keeps no routes from the router",
    ),
    field(
        "spec.conf.neighborInterface",
        NotYet,
        "unnumbered BGP (peering over an interface's link-local address) is not implemented; set neighborAddress",
    ),
    field(
        "spec.conf.peerGroup",
        NoEffect,
        "names a GoBGP peer group to inherit settings from; OpenELB defines none",
    ),
    field(
        "spec.conf.peerType",
        NoEffect,
        "oxelb, like GoBGP, derives internal or external from peerAs and the local AS",
    ),
    field(
        "spec.conf.removePrivateAs",
        NoEffect,
        "the routes oxelb sends carry only the local AS, prepended after removal; there is no other AS to remove",
    ),
    field(
        "spec.conf.replacePeerAs",
        NoEffect,
        "the routes oxelb sends originate here and carry no AS of the neighbor to replace",
    ),
    field(
        "spec.conf.routeFlapDamping",
        NoEffect,
        "damps flapping learned routes; oxelb keeps no routes from the router",
    ),
    field(
        "spec.conf.sendCommunity",
        NotYet,
        "communities (Eip spec.advertisement) are sent to every peer; a per-peer switch is not implemented",
    ),
    field(
        "spec.conf.vrf",
        NotYet,
        "sessions in a VRF are not implemented; the session uses the node's main routing table",
    ),
    gr_field("spec.gracefulRestart.deferralTime", 0),
    gr_field("spec.gracefulRestart.helperOnly", 1),
    gr_field("spec.gracefulRestart.localRestarting", 2),
    gr_field("spec.gracefulRestart.longlivedEnabled", 3),
    gr_field("spec.gracefulRestart.mode", 4),
    gr_field("spec.gracefulRestart.notificationEnabled", 5),
    gr_field("spec.gracefulRestart.peerRestartTime", 6),
    gr_field("spec.gracefulRestart.peerRestarting", 7),
    gr_field("spec.gracefulRestart.staleRoutesTime", 8),
    field(
        "spec.timers.config.minimumAdvertisementInterval",
        NotYet,
        "UPDATEs are sent as soon as a change is planned; a minimum interval between them is not implemented",
    ),
    field(
        "spec.transport.remoteAddress",
        NotYet,
        "oxelb connects to conf.neighborAddress; connecting to another address is not implemented (reported only when it differs from neighborAddress, which GoBGP fills it in with)",
    ),
];

const fn gr_field(path: &'static str, index: usize) -> Unapplied {
    let (_, behaviour, reason) = GRACEFUL_RESTART[index];
    field(path, behaviour, reason)
}

/// The fields of `spec` (BgpConf v1alpha2) that are set and not applied, in path order.
pub fn bgp_conf(spec: &BgpConfSpec) -> Vec<Unapplied> {
    let mut out = Vec::new();
    let [
        families,
        deferral,
        helper,
        local,
        longlived,
        mode,
        notification,
        peer_time,
        peer_restarting,
        stale,
        policy,
        multiple,
    ] = BGP_CONF_FIELDS;
    if spec.families.as_ref().is_some_and(|f| !f.is_empty()) {
        out.push(families);
    }
    if let Some(gr) = &spec.graceful_restart {
        graceful_restart(
            gr,
            [
                deferral,
                helper,
                local,
                longlived,
                mode,
                notification,
                peer_time,
                peer_restarting,
                stale,
            ],
            &mut out,
        );
    }
    if text(spec.policy.as_deref()) {
        out.push(policy);
    }
    if spec.use_multiple_paths == Some(true) {
        out.push(multiple);
    }
    out
}

/// The fields of `spec` (BgpPeer v1alpha2) that are set and not applied, in path order, each
/// once (a field set in several `afiSafis` entries is named once).
pub fn bgp_peer(spec: &BgpPeerSpec) -> Vec<Unapplied> {
    let mut out = Vec::new();
    let [
        receive,
        mp_gr,
        allow_own_as,
        interface,
        peer_group,
        peer_type,
        remove_private,
        replace_peer_as,
        damping,
        send_community,
        vrf,
        deferral,
        helper,
        local,
        longlived,
        mode,
        notification,
        peer_time,
        peer_restarting,
        stale,
        mrai,
        remote_address,
    ] = BGP_PEER_FIELDS;
    let afi_safis = spec.afi_safis.as_deref().unwrap_or_default();
    if afi_safis.iter().any(|a| {
        a.add_paths
            .as_ref()
            .and_then(|p| p.config.as_ref())
            .is_some_and(|c| c.receive == Some(true))
    }) {
        out.push(receive);
    }
    if afi_safis.iter().any(|a| {
        a.mp_graceful_restart
            .as_ref()
            .and_then(|g| g.config.as_ref())
            .is_some_and(|c| c.enabled == Some(false))
    }) {
        out.push(mp_gr);
    }
    if let Some(conf) = &spec.conf {
        let checks = [
            (conf.allow_own_as.is_some_and(|n| n != 0), allow_own_as),
            (text(conf.neighbor_interface.as_deref()), interface),
            (text(conf.peer_group.as_deref()), peer_group),
            (conf.peer_type.is_some_and(|n| n != 0), peer_type),
            (
                conf.remove_private_as
                    .as_deref()
                    .map(str::trim)
                    .is_some_and(|mode| !mode.is_empty() && !is_none_mode(mode)),
                remove_private,
            ),
            (conf.replace_peer_as == Some(true), replace_peer_as),
            (conf.route_flap_damping == Some(true), damping),
            (conf.send_community.is_some_and(|n| n != 0), send_community),
            (text(conf.vrf.as_deref()), vrf),
        ];
        out.extend(checks.into_iter().filter(|(set, _)| *set).map(|(_, f)| f));
    }
    if let Some(gr) = &spec.graceful_restart {
        graceful_restart(
            gr,
            [
                deferral,
                helper,
                local,
                longlived,
                mode,
                notification,
                peer_time,
                peer_restarting,
                stale,
            ],
            &mut out,
        );
    }
    let mrai_set = spec
        .timers
        .as_ref()
        .and_then(|t| t.config.as_ref())
        .and_then(|c| c.minimum_advertisement_interval.as_deref())
        .map(str::trim)
        .is_some_and(|v| !v.is_empty() && v.parse::<u64>() != Ok(0));
    if mrai_set {
        out.push(mrai);
    }
    // transport.tcpMss and transport.mtuDiscovery are applied (`speaker/src/bgp/transport.rs`).
    if let Some(transport) = &spec.transport {
        let neighbor = spec
            .conf
            .as_ref()
            .and_then(|c| c.neighbor_address.as_deref())
            .map(str::trim);
        let remote = transport.remote_address.as_deref().map(str::trim);
        if remote.is_some_and(|r| !r.is_empty() && !same_address(Some(r), neighbor)) {
            out.push(remote_address);
        }
    }
    out.sort_by_key(|f| f.path);
    out
}

fn graceful_restart(gr: &GracefulRestart, fields: [Unapplied; 9], out: &mut Vec<Unapplied>) {
    let [
        deferral,
        helper,
        local,
        longlived,
        mode,
        notification,
        peer_time,
        peer_restarting,
        stale,
    ] = fields;
    let checks = [
        (gr.deferral_time.is_some_and(|n| n != 0), deferral),
        (gr.helper_only == Some(true), helper),
        (gr.local_restarting == Some(true), local),
        (gr.longlived_enabled == Some(true), longlived),
        (text(gr.mode.as_deref()), mode),
        (gr.notification_enabled == Some(true), notification),
        (gr.peer_restart_time.is_some_and(|n| n != 0), peer_time),
        (gr.peer_restarting == Some(true), peer_restarting),
        (gr.stale_routes_time.is_some_and(|n| n != 0), stale),
    ];
    out.extend(checks.into_iter().filter(|(set, _)| *set).map(|(_, f)| f));
}

/// A string that is set: present and not blank.
fn text(value: Option<&str>) -> bool {
    value.is_some_and(|v| !v.trim().is_empty())
}

/// GoBGP's spellings of "remove no private AS".
fn is_none_mode(mode: &str) -> bool {
    ["none", "remove_private_as_option_none"]
        .iter()
        .any(|none| mode.eq_ignore_ascii_case(none))
}

/// Whether two address strings name the same IP (compared as text when either does not parse).
fn same_address(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => match (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        },
        _ => false,
    }
}

/// The condition's message and the Event's note: each path with its reason, `; `-separated.
pub fn message(fields: &[Unapplied]) -> String {
    fields
        .iter()
        .map(|f| format!("{} ({}): {}", f.path, f.behaviour.as_str(), f.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The longest Event note the API accepts (events.k8s.io/v1 `note`: 1 kB).
pub const NOTE_MAX: usize = 1024;

/// The Event's note: the [`message`] when it fits in [`NOTE_MAX`] bytes; else the paths and a
/// pointer to the condition, which has the reasons (cut at a path boundary if even that does not
/// fit).
pub fn note(fields: &[Unapplied]) -> String {
    let full = message(fields);
    if full.len() <= NOTE_MAX {
        return full;
    }
    let tail = "; why: the FieldsIgnored condition, docs/openelb-fields.md";
    let mut out = String::from("fields not applied: ");
    for (i, f) in fields.iter().enumerate() {
        let item = format!("{}{}", if i == 0 { "" } else { ", " }, f.path);
        if out.len() + item.len() + tail.len() + ", ...".len() > NOTE_MAX {
            out.push_str(", ...");
            break;
        }
        out.push_str(&item);
    }
    out.push_str(tail);
    out
}

/// What the speaker does about one object this pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Publish the Warning Event (`FieldsIgnored`, the [`message`] as its note).
    pub event: bool,
    /// Write the `FieldsIgnored` condition: True with the message, or False when no field is
    /// ignored any more.
    pub write: bool,
}

/// The object's current `FieldsIgnored` condition, as read from its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Current<'a> {
    /// `True` or `False` (or anything a user wrote).
    pub status: &'a str,
    /// The generation it was written for.
    pub observed_generation: Option<i64>,
    /// Its message.
    pub message: &'a str,
}

/// What to do about an object whose `metadata.generation` is `generation`, whose ignored fields
/// give `message` (`None`: none ignored), whose status holds `current`, and about which this
/// speaker last published the Event for `said` (generation, message).
///
/// The condition is written when it differs from what it should say (missing, other fields, other
/// generation; or still True when nothing is ignored). The Event is published with that write,
/// once per generation and message: not again while the write is pending, and not at all when
/// the status already says it (after a speaker restart, or when another speaker reported it).
pub fn decide(
    message: Option<&str>,
    generation: Option<i64>,
    current: Option<Current<'_>>,
    said: Option<(Option<i64>, &str)>,
) -> Report {
    let write = match (message, current) {
        (None, None) => false,
        (None, Some(c)) => c.status == "True",
        (Some(_), None) => true,
        (Some(message), Some(c)) => {
            c.status != "True" || c.message != message || c.observed_generation != generation
        }
    };
    let event = write && message.is_some_and(|m| said != Some((generation, m)));
    Report { event, write }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
