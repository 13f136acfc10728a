//! The layer2 responder: answers ARP and Neighbor Solicitations for exactly the IPs this node wins,
//! announces them on take-over (gratuitous ARP in the request form and unsolicited NA, repeated),
//! and stops answering an IP the moment it loses it.
//!
//! **Liveness**: with heartbeats on (`--heartbeat-key-file`, [`super::heartbeat`]) a speaker is alive
//! while its heartbeats arrive (dead after `--heartbeat-dead-after`, 200 ms by default), each
//! candidate's pools are the ones its heartbeats list, and a speaker without standing (no majority,
//! see [`oxelb_speaker_core::liveness`]) answers nothing. The choice is re-evaluated when the objects change,
//! when a heartbeat changes something, and at the exact moment a peer's deadline passes (no periodic
//! tick); the take-over announcement goes out in that same pass. A newly won IP is begun only once
//! the peers' applied views agree ([`oxelb_speaker_core::liveness::Handover`]), so speakers that learn a change at
//! different moments never answer one IP together. Without heartbeats a speaker counts as alive
//! while its Node is Ready, and every node is assumed to have each pool's interface: failover is
//! then as slow as the Node turning NotReady.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::{Arc, RwLock},
    time::Duration,
};

use k8s_openapi::api::core::v1::ObjectReference;
use oxelb_crds::v1alpha2::EipProtocol;
use oxelb_runtime::{
    shutdown::Shutdown,
    source::{EventRecord, EventType, Writer},
};
use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::{sync::watch, task::JoinHandle};
use tracing::{debug, info, warn};

use super::{frames, socket::PacketSocket};
use crate::{
    layer2::interface::{Nic, resolve},
    reach::Leases,
};
use oxelb_speaker_core::{
    election::{Candidate, Contest, announced_by, elect},
    liveness::{Handover, LivenessConfig, Standing},
    plan::SpeakerState,
    tiebreak::ApiFacts,
};

/// The heartbeats' settings (`None` in [`run`]: heartbeats off).
#[derive(Clone, Debug)]
pub struct Heartbeats {
    /// The UDP port, on every node.
    pub port: u16,
    /// The shared key.
    pub key: Vec<u8>,
    /// Interval and detection time.
    pub timing: LivenessConfig,
}

/// The digest of this speaker's layer2 view, as heartbeats carry it (pure): every layer2/vip IP
/// with its pool and Local nodes, every Node's facts, every node's serving pools (this node's
/// own, the others' as last heard, dead or alive), and the nodes each pool's `nodeSelector`
/// admits (`spec.advertisement`). Liveness is left out, so a failover does not
/// make views disagree. SHA-256, first 8 bytes, over a canonical text.
pub fn view_digest(
    state: &SpeakerState,
    me: &str,
    my_pools: &BTreeSet<String>,
    serving: &BTreeMap<String, BTreeSet<String>>,
) -> u64 {
    use std::fmt::Write as _;
    let mut text = String::new();
    for a in state
        .announcements
        .values()
        .filter(|a| matches!(a.protocol, EipProtocol::Layer2 | EipProtocol::Vip))
    {
        let _ = write!(text, "ip {} {} ", a.ip, a.pool);
        match &a.local_nodes {
            None => text.push_str("cluster\n"),
            Some(nodes) => {
                text.push_str("local");
                for n in nodes.iter() {
                    let _ = write!(text, " {n}");
                }
                text.push('\n');
            }
        }
    }
    let mut nodes: Vec<&oxelb_speaker_core::node::NodeFacts> = state.nodes.iter().collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let empty = BTreeSet::new();
    for n in nodes {
        let pools = if n.name == me {
            my_pools
        } else {
            serving.get(&n.name).unwrap_or(&empty)
        };
        let _ = write!(
            text,
            "node {} {} {} {}",
            n.name, n.ready, n.network_unavailable, n.excluded
        );
        for pool in pools {
            let _ = write!(text, " {pool}");
        }
        text.push('\n');
    }
    for (pool, nodes) in &state.layer2_nodes {
        let _ = write!(text, "select {pool}");
        for n in nodes {
            let _ = write!(text, " {n}");
        }
        text.push('\n');
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// When a take-over is announced, after the take-over (RFC 5227's announce spacing is 2 s; clients
/// with a fresh entry ignore some repeats within their 1 s locktime, so there are several).
const ANNOUNCE_AT: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(3),
];

/// What the heartbeats say about the other speakers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerView {
    /// The speakers alive, this one included.
    pub alive: BTreeSet<String>,
    /// The pools each live peer can serve.
    pub serving: BTreeMap<String, BTreeSet<String>>,
}

/// The IPs this node must answer for, with their pool (pure). `my_pools` are the layer2/vip pools
/// whose interface this node has; `view` what heartbeats say (`None`: heartbeats off).
pub fn my_ips(
    state: &SpeakerState,
    me: &str,
    my_pools: &BTreeSet<String>,
    view: Option<&PeerView>,
) -> BTreeMap<IpAddr, String> {
    let outcomes = layer2_outcomes(state, me, my_pools, view);
    announced_by(&outcomes, me)
        .into_iter()
        .filter_map(|ip| Some((ip, state.announcements.get(&ip)?.pool.to_string())))
        .collect()
}

/// The election outcome of every layer2/vip IP, as this node sees it (pure).
pub fn layer2_outcomes(
    state: &SpeakerState,
    me: &str,
    my_pools: &BTreeSet<String>,
    view: Option<&PeerView>,
) -> BTreeMap<IpAddr, oxelb_speaker_core::election::Outcome> {
    let layer2: BTreeMap<IpAddr, &oxelb_speaker_core::desired::Announcement> = state
        .announcements
        .iter()
        .filter(|(_, a)| matches!(a.protocol, EipProtocol::Layer2 | EipProtocol::Vip))
        .map(|(ip, a)| (*ip, a))
        .collect();
    let all_pools: BTreeSet<String> = layer2.values().map(|a| a.pool.to_string()).collect();
    let candidates: Vec<Candidate> = state
        .nodes
        .iter()
        .map(|n| {
            let mut pools = if n.name == me {
                my_pools.clone()
            } else {
                match view {
                    Some(view) => view.serving.get(&n.name).cloned().unwrap_or_default(),
                    None => all_pools.clone(),
                }
            };
            // A pool's `nodeSelector` (spec.advertisement): a node it does not select is no
            // candidate for the pool, computed from Node labels every speaker sees alike.
            pools.retain(|pool| {
                state
                    .layer2_nodes
                    .get(pool)
                    .is_none_or(|selected| selected.contains(&n.name))
            });
            Candidate {
                name: n.name.clone(),
                alive: match view {
                    Some(view) => n.name == me || view.alive.contains(&n.name),
                    None => n.ready,
                },
                ready: n.ready && !n.network_unavailable,
                excluded: n.excluded,
                pools,
            }
        })
        .collect();
    let contests: Vec<Contest> = layer2
        .values()
        .map(|a| Contest {
            ip: a.ip,
            pool: a.pool.to_string(),
            local_nodes: a
                .local_nodes
                .as_ref()
                .map(|nodes| nodes.iter().map(str::to_owned).collect()),
        })
        .collect();
    elect(&candidates, &contests)
}

type Labels = Vec<(&'static str, String)>;

/// The layer2 metrics.
#[derive(Clone, Debug, Default)]
pub struct Layer2Metrics {
    requests: Family<Labels, Counter>,
    replies: Family<Labels, Counter>,
    announcements: Counter,
    foreign: Counter,
    answered: Gauge,
    standing: Gauge,
    answering: Family<Labels, Gauge>,
    takeovers: Family<Labels, Counter>,
}

impl Layer2Metrics {
    /// Creates and registers the families.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "oxelb_layer2_requests",
            "ARP requests and Neighbor Solicitations received for IPs this node answers, by family",
            m.requests.clone(),
        );
        registry.register(
            "oxelb_layer2_replies",
            "ARP replies and Neighbor Advertisements sent, by family",
            m.replies.clone(),
        );
        registry.register(
            "oxelb_layer2_announcements",
            "Gratuitous ARPs and unsolicited Neighbor Advertisements sent on take-over",
            m.announcements.clone(),
        );
        registry.register(
            "oxelb_layer2_foreign_claims",
            "ARP from another MAC claiming an IP this node answers for (split brain, or kube-proxy IPVS without strictARP)",
            m.foreign.clone(),
        );
        registry.register(
            "oxelb_layer2_ips_answered",
            "IPs this node answers ARP/NDP for",
            m.answered.clone(),
        );
        registry.register(
            "oxelb_layer2_standing",
            "1 while this speaker has standing (sees a majority, or heartbeats are off)",
            m.standing.clone(),
        );
        registry.register(
            "oxelb_layer2_answering",
            "1 for each IP this node answers ARP/NDP for, by ip and eip (summed over nodes: answerers per IP)",
            m.answering.clone(),
        );
        registry.register(
            "oxelb_layer2_takeovers",
            "IPs this node started answering (a failover, a new IP, or a restart), by eip",
            m.takeovers.clone(),
        );
        m
    }

    /// Records the IPs answered now; those not answered before are take-overs.
    fn record_answering(&self, now: &BTreeSet<IpAddr>, before: &BTreeSet<IpAddr>, state: &SpeakerState) {
        let eip = |ip: &IpAddr| {
            state
                .announcements
                .get(ip)
                .map(|a| a.pool.to_string())
                .unwrap_or_default()
        };
        self.answered.set(i64::try_from(now.len()).unwrap_or(i64::MAX));
        self.answering.clear();
        for ip in now {
            self.answering
                .get_or_create(&vec![("ip", ip.to_string()), ("eip", eip(ip))])
                .set(1);
        }
        for ip in now.difference(before) {
            self.takeovers.get_or_create(&vec![("eip", eip(ip))]).inc();
        }
    }

    fn family(ip: IpAddr) -> Labels {
        vec![("family", if ip.is_ipv4() { "ipv4" } else { "ipv6" }.to_owned())]
    }
}

/// An ARP frame in which another MAC claims an IP we answer for: a reply (RFC 826 operation 2) or a
/// gratuitous ARP. Reads the sender fields of a reply directly (bounds-checked): the request parser
/// only describes requests.
pub fn foreign_claim(
    frame: &[u8],
    served: &BTreeSet<IpAddr>,
    ours: frames::MacAddr,
) -> Option<(IpAddr, frames::MacAddr)> {
    let (mac, ip) = match frames::parse(frame) {
        Err(frames::Ignored::GratuitousArp { sender_mac, ip }) => (sender_mac, ip),
        Err(frames::Ignored::ArpNotRequest(2)) => {
            let m = frame.get(22..28)?;
            let i = frame.get(28..32)?;
            (
                frames::MacAddr(m[0], m[1], m[2], m[3], m[4], m[5]),
                std::net::Ipv4Addr::new(i[0], i[1], i[2], i[3]),
            )
        }
        _ => return None,
    };
    (mac != ours && served.contains(&IpAddr::V4(ip))).then_some((IpAddr::V4(ip), mac))
}

/// One NIC's responder: its sockets' tasks and the IPs it answers for.
struct Responder {
    nic: Nic,
    served: Arc<RwLock<BTreeSet<IpAddr>>>,
    tasks: Vec<JoinHandle<()>>,
    v6: Option<Arc<PacketSocket>>,
    arp: Arc<PacketSocket>,
    metrics: Layer2Metrics,
}

impl Drop for Responder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Runs the responders of this node until the state channel closes or `shutdown` fires; on
/// shutdown it stops answering and tells the peers it leaves (graceful hand-over). `heartbeat`:
/// the heartbeats' settings (`None`: off). `leases`: this speaker's Lease task, the apiserver's
/// side of the two-node tie-break ([`crate::reach`]; `None`: never reachable, so a lone speaker
/// of two never answers).
pub async fn run(
    mut states: watch::Receiver<Arc<SpeakerState>>,
    node_name: String,
    heartbeat: Option<Heartbeats>,
    writer: Writer,
    metrics: Layer2Metrics,
    shutdown: Shutdown,
    leases: Option<Leases>,
) {
    let mut announced: BTreeSet<IpAddr> = BTreeSet::new();
    let mut unannounceable: BTreeMap<IpAddr, String> = BTreeMap::new();
    let (serving_tx, serving_rx) = watch::channel(BTreeSet::new());
    let (view_tx, view_rx) = watch::channel(0u64);
    let mut handover = Handover::new(
        heartbeat
            .as_ref()
            .map_or(Duration::ZERO, |h| h.timing.settle_bound),
    );
    let liveness = match heartbeat {
        Some(Heartbeats { port, key, timing }) => {
            match super::heartbeat::start(
                node_name.clone(),
                port,
                key,
                timing,
                states.clone(),
                serving_rx,
                view_rx,
            )
            .await
            {
                Ok(liveness) => Some(liveness),
                Err(error) => {
                    warn!(port, %error, "cannot bind the heartbeat port: layer2 liveness falls back to Node readiness");
                    None
                }
            }
        }
        None => None,
    };
    let mut responders: BTreeMap<String, Responder> = BTreeMap::new();
    let mut warned: BTreeMap<String, String> = BTreeMap::new();
    let mut standing_lost = false;
    // At start nothing is answered until standing is gained and has settled.
    let mut settling = true;
    let mut waiting_logged = false;
    loop {
        // The next moment the decision may change by itself: a peer's expiry, the settle gate,
        // a held-back IP's bound. Woken exactly then, not by a tick.
        let deadline = liveness.as_ref().and_then(|l| {
            let lease = leases.as_ref().and_then(Leases::next_deadline);
            [l.next_deadline(), handover.next_deadline()]
                .into_iter()
                .flatten()
                .map(|at| l.instant(at))
                .chain(lease)
                .min()
        });
        tokio::select! {
            biased;
            () = shutdown.wait() => break,
            changed = states.changed() => if changed.is_err() { break },
            () = async {
                match &leases {
                    Some(l) => l.changed().await,
                    None => std::future::pending().await,
                }
            } => {}
            () = async {
                match &liveness {
                    Some(l) => l.changed().await,
                    None => std::future::pending().await,
                }
            } => {}
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        let state = states.borrow_and_update().clone();
        // This node's NIC for each layer2 pool.
        let mut nics: BTreeMap<String, Nic> = BTreeMap::new();
        for a in state
            .announcements
            .values()
            .filter(|a| matches!(a.protocol, EipProtocol::Layer2 | EipProtocol::Vip))
        {
            let Some(Ok(selector)) = a.interface.as_deref() else {
                continue;
            };
            match resolve(selector, std::path::Path::new("/")) {
                Ok(nic) => {
                    warned.remove(&*a.pool);
                    nics.insert(a.pool.to_string(), nic);
                }
                Err(error) => {
                    let message = error.to_string();
                    if warned.get(&*a.pool) != Some(&message) {
                        warn!(eip = %a.pool, %error, "layer2 interface unusable on this node: its IPs are not answered here");
                        let event = EventRecord {
                            regarding: ObjectReference {
                                api_version: Some(oxelb_crds::names::API_VERSION_V1ALPHA2.into()),
                                kind: Some(oxelb_crds::names::KIND_EIP.into()),
                                name: Some(a.pool.to_string()),
                                ..Default::default()
                            },
                            type_: EventType::Warning,
                            reason: "InterfaceMissing".into(),
                            action: "Announce".into(),
                            note: Some(format!(
                                "node {node_name}: {message}; this node does not answer for the Eip's IPs"
                            )),
                        };
                        if let Err(error) = writer.publish_event(event).await {
                            debug!(%error, "Event not published");
                        }
                        warned.insert(a.pool.to_string(), message);
                    }
                }
            }
        }
        let my_pools: BTreeSet<String> = nics.keys().cloned().collect();
        serving_tx.send_if_modified(|s| {
            let changed = *s != my_pools;
            *s = my_pools.clone();
            changed
        });
        // Standing first: a speaker newly alone in a two-node cluster holds its peer alive for a
        // grace (`Membership::standing`), and the election must leave the peer's IPs to it.
        let expected: BTreeSet<String> = state
            .nodes
            .iter()
            .filter(|n| n.ready && !n.network_unavailable && !n.excluded)
            .map(|n| n.name.clone())
            .collect();
        let facts = tie_break_facts(&state, &node_name, &expected, leases.as_ref());
        let standing = liveness.as_ref().map(|l| l.standing(&expected, facts));
        let view = liveness.as_ref().map(|l| {
            let mut alive = l.alive();
            let mut serving = l.serving();
            if let Some(Standing::Good { alive: held }) = &standing {
                let last = l.last_serving();
                for peer in held.difference(&alive.clone()) {
                    if let Some(pools) = last.get(peer) {
                        serving.insert(peer.clone(), pools.clone());
                    }
                    alive.insert(peer.clone());
                }
            }
            PeerView { alive, serving }
        });
        let outcomes = layer2_outcomes(&state, &node_name, &my_pools, view.as_ref());
        let mut mine: BTreeMap<IpAddr, String> = announced_by(&outcomes, &node_name)
            .into_iter()
            .filter_map(|ip| Some((ip, state.announcements.get(&ip)?.pool.to_string())))
            .collect();
        let digest = liveness
            .as_ref()
            .map(|l| view_digest(&state, &node_name, &my_pools, &l.last_serving()));
        report_unannounceable(&writer, &state, &node_name, &outcomes, &mut unannounceable).await;
        if let (Some(liveness), Some(standing)) = (&liveness, standing) {
            // Alone because the peer's Lease expired, there is no peer whose view could still be
            // half-learnt: the Lease duration was the wait, so no settle time on top.
            let alone_by_expiry =
                facts.peer_expired && matches!(&standing, Standing::Good { alive } if alive.len() == 1);
            let settled = liveness.settled(matches!(standing, Standing::Good { .. })) || alone_by_expiry;
            match standing {
                Standing::Good { alive } => {
                    metrics.standing.set(1);
                    if standing_lost {
                        info!(
                            alive = alive.len(),
                            "standing gained: answering once the view of the peers has settled"
                        );
                    }
                    standing_lost = false;
                    if !settled {
                        mine.clear();
                    } else if settling {
                        info!(alive = alive.len(), "view of the peers settled: answering");
                    }
                    settling = !settled;
                    // Begin a newly won IP only once the peers' views agree (hand-over).
                    let view = digest.unwrap_or_default();
                    let agreement = liveness.agreement(view);
                    let answering: BTreeSet<IpAddr> = responders
                        .values()
                        .flat_map(|r| r.served.read().unwrap_or_else(|e| e.into_inner()).clone())
                        .collect();
                    let won: BTreeSet<IpAddr> = mine.keys().copied().collect();
                    let allowed = handover.decide(liveness.now(), &won, &answering, agreement.is_ok());
                    mine.retain(|ip, _| allowed.contains(ip));
                    if let (Err(peers), false) = (&agreement, handover.forced().is_empty()) {
                        warn!(ips = ?handover.forced(), peers = ?peers,
                            "these peers' views did not agree within the settle bound: answering anyway");
                    }
                    match (&agreement, handover.waiting()) {
                        (Err(peers), waiting) if waiting > 0 => {
                            if !waiting_logged {
                                info!(waiting, peers = ?peers, view = format_args!("{view:016x}"),
                                    "won IPs wait until these peers' views agree (hand-over)");
                                waiting_logged = true;
                            }
                        }
                        _ => waiting_logged = false,
                    }
                }
                Standing::Lost { seen, needed } => {
                    if !standing_lost {
                        warn!(
                            seen,
                            needed,
                            "lost standing (sees no majority of the speakers): answering nothing until it returns"
                        );
                    }
                    standing_lost = true;
                    settling = true;
                    metrics.standing.set(0);
                    mine.clear();
                }
            }
        }
        let mut by_nic: BTreeMap<String, (Nic, BTreeSet<IpAddr>)> = BTreeMap::new();
        for (ip, pool) in &mine {
            if let Some(nic) = nics.get(pool) {
                by_nic
                    .entry(nic.name.clone())
                    .or_insert_with(|| (nic.clone(), BTreeSet::new()))
                    .1
                    .insert(*ip);
            }
        }
        // A NIC with nothing left to answer for: stop answering everything on it, then close it.
        let idle: Vec<String> = responders
            .keys()
            .filter(|name| !by_nic.contains_key(*name))
            .cloned()
            .collect();
        for name in idle {
            if let Some(mut responder) = responders.remove(&name) {
                responder.update(BTreeSet::new());
                info!(interface = %name, "no IP to answer for: layer2 sockets closed");
            }
        }
        for (name, (nic, ips)) in by_nic {
            if !responders.contains_key(&name) {
                match Responder::start(nic.clone(), metrics.clone()) {
                    Ok(responder) => {
                        responders.insert(name.clone(), responder);
                    }
                    Err(error) => {
                        warn!(interface = %name, %error, "cannot open layer2 sockets: its IPs are not answered");
                        continue;
                    }
                }
            }
            if let Some(responder) = responders.get_mut(&name) {
                responder.update(ips);
            }
        }
        // Newly announced IPs: an Event on each of their Services.
        let now: BTreeSet<IpAddr> = responders
            .values()
            .flat_map(|r| r.served.read().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        if liveness.is_none() {
            metrics.standing.set(1);
        }
        metrics.record_answering(&now, &announced, &state);
        for ip in now.difference(&announced) {
            let Some(a) = state.announcements.get(ip) else {
                continue;
            };
            let nic = nics.get(&*a.pool).map(|n| n.name.clone()).unwrap_or_default();
            for service in &a.services {
                let event = EventRecord {
                    regarding: service_ref(service),
                    type_: EventType::Normal,
                    reason: "AnnouncingFrom".into(),
                    action: "Announce".into(),
                    note: Some(format!("{ip} answered by node {node_name} on {nic} (ARP/NDP)")),
                };
                if let Err(error) = writer.publish_event(event).await {
                    debug!(%error, "Event not published");
                }
            }
        }
        announced = now;
        // Only now, with the view applied (IPs it lost no longer answered), tell the peers.
        if let Some(view) = digest {
            view_tx.send_if_modified(|v| {
                let changed = *v != view;
                *v = view;
                changed
            });
        }
    }
    // Graceful hand-over: stop answering first, then tell the peers, who take over at once.
    for (_, mut responder) in std::mem::take(&mut responders) {
        responder.update(BTreeSet::new());
    }
    if let Some(liveness) = &liveness
        && shutdown.is_triggered()
    {
        liveness.leave().await;
    }
}

/// What the apiserver tells this speaker for the two-node tie-break; also tells the Lease task
/// whom to track: the other speaker when exactly two are expected and layer2 is in use, else
/// nobody (no Lease requests).
fn tie_break_facts(
    state: &SpeakerState,
    me: &str,
    expected: &BTreeSet<String>,
    leases: Option<&Leases>,
) -> ApiFacts {
    let Some(leases) = leases else {
        return ApiFacts::default();
    };
    let mut pair = expected.clone();
    pair.insert(me.to_owned());
    let layer2 = state
        .announcements
        .values()
        .any(|a| matches!(a.protocol, EipProtocol::Layer2 | EipProtocol::Vip));
    let peer = pair
        .iter()
        .find(|n| *n != me)
        .filter(|_| pair.len() == 2 && layer2)
        .cloned();
    leases.track(peer.clone());
    peer.map_or_else(ApiFacts::default, |peer| leases.facts(&peer))
}

fn service_ref(key: &str) -> ObjectReference {
    let (namespace, name) = key.split_once('/').unwrap_or(("default", key));
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: Some(namespace.to_owned()),
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

/// One Warning per IP that no node may announce, published by one speaker only (the Ready node
/// first by name), so N speakers do not say it N times.
async fn report_unannounceable(
    writer: &Writer,
    state: &SpeakerState,
    me: &str,
    outcomes: &BTreeMap<IpAddr, oxelb_speaker_core::election::Outcome>,
    said: &mut BTreeMap<IpAddr, String>,
) {
    let reporter = state
        .nodes
        .iter()
        .filter(|n| n.ready)
        .map(|n| n.name.as_str())
        .min();
    let mut now: BTreeMap<IpAddr, String> = BTreeMap::new();
    for (ip, outcome) in outcomes {
        if let oxelb_speaker_core::election::Outcome::NoEligibleNode(reason) = outcome {
            now.insert(*ip, reason.to_string());
        }
    }
    for (ip, reason) in &now {
        if said.get(ip) == Some(reason) {
            continue;
        }
        warn!(%ip, reason = %reason, "no node may announce this IP");
        if reporter == Some(me)
            && let Some(a) = state.announcements.get(ip)
        {
            for service in &a.services {
                let event = EventRecord {
                    regarding: service_ref(service),
                    type_: EventType::Warning,
                    reason: "NoEligibleNode".into(),
                    action: "Announce".into(),
                    note: Some(format!("{ip} is not announced: {reason}")),
                };
                if let Err(error) = writer.publish_event(event).await {
                    debug!(%error, "Event not published");
                }
            }
        }
    }
    *said = now;
}

impl Responder {
    fn start(nic: Nic, metrics: Layer2Metrics) -> Result<Self, super::socket::SocketError> {
        let arp = Arc::new(PacketSocket::arp(nic.index)?);
        let v6 = match PacketSocket::neighbor_solicitation(nic.index) {
            Ok(socket) => Some(Arc::new(socket)),
            Err(error) => {
                warn!(interface = %nic.name, %error, "no IPv6 neighbor socket: IPv6 IPs are not answered here");
                None
            }
        };
        let served: Arc<RwLock<BTreeSet<IpAddr>>> = Arc::default();
        let mac = frames::MacAddr::from(nic.mac);
        let mut tasks = vec![tokio::spawn(answer(
            arp.clone(),
            served.clone(),
            mac,
            metrics.clone(),
        ))];
        if let Some(v6) = &v6 {
            tasks.push(tokio::spawn(answer(
                v6.clone(),
                served.clone(),
                mac,
                metrics.clone(),
            )));
        }
        info!(interface = %nic.name, "answering ARP/NDP");
        Ok(Self {
            nic,
            served,
            tasks,
            v6,
            arp,
            metrics,
        })
    }

    /// Answers exactly `ips` from now on; announces the new ones.
    fn update(&mut self, ips: BTreeSet<IpAddr>) {
        let previous = std::mem::replace(
            &mut *self.served.write().unwrap_or_else(|e| e.into_inner()),
            ips.clone(),
        );
        let mac = frames::MacAddr::from(self.nic.mac);
        for lost in previous.difference(&ips) {
            info!(ip = %lost, interface = %self.nic.name, "stopped answering (lost or released)");
            if let (IpAddr::V6(v6), Some(socket)) = (lost, &self.v6) {
                let _ = socket.leave(frames::solicited_node_mac(*v6));
            }
        }
        for won in ips.difference(&previous) {
            info!(ip = %won, interface = %self.nic.name, "announcing from this node");
            let frame = match won {
                IpAddr::V4(v4) => frames::gratuitous_arp(*v4, mac),
                IpAddr::V6(v6) => {
                    if let Some(socket) = &self.v6
                        && let Err(error) = socket.join(frames::solicited_node_mac(*v6))
                    {
                        warn!(ip = %won, %error, "cannot join the solicited-node group: NS to it are not seen");
                    }
                    frames::unsolicited_neighbor_advertisement(*v6, mac)
                }
            };
            let socket = match won {
                IpAddr::V4(_) => Some(self.arp.clone()),
                IpAddr::V6(_) => self.v6.clone(),
            };
            let (Some(socket), served, ip, metrics) =
                (socket, self.served.clone(), *won, self.metrics.clone())
            else {
                continue;
            };
            self.tasks.push(tokio::spawn(async move {
                let start = tokio::time::Instant::now();
                for at in ANNOUNCE_AT {
                    tokio::time::sleep_until(start + at).await;
                    // Stop at once when the IP is lost meanwhile.
                    if !served.read().unwrap_or_else(|e| e.into_inner()).contains(&ip) {
                        return;
                    }
                    match socket.send(&frame).await {
                        Ok(()) => {
                            metrics.announcements.inc();
                        }
                        Err(error) => debug!(%ip, %error, "announcement not sent"),
                    }
                }
            }));
        }
        self.tasks.retain(|t| !t.is_finished());
    }
}

/// Answers requests for served IPs on one socket; warns (at most every 10 s per IP and MAC) when
/// another MAC claims one of them.
async fn answer(
    socket: Arc<PacketSocket>,
    served: Arc<RwLock<BTreeSet<IpAddr>>>,
    mac: frames::MacAddr,
    metrics: Layer2Metrics,
) {
    let mut buf = vec![0u8; 2048];
    let mut warned: BTreeMap<(IpAddr, frames::MacAddr), tokio::time::Instant> = BTreeMap::new();
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            Err(error) => {
                warn!(%error, "layer2 socket receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(frame) = buf.get(..n) else { continue };
        let current = served.read().unwrap_or_else(|e| e.into_inner()).clone();
        let (ip, reply) = match frames::parse(frame) {
            Ok(frames::Request::Arp(request)) if current.contains(&IpAddr::V4(request.target_ip)) => {
                (IpAddr::V4(request.target_ip), frames::arp_reply(&request, mac))
            }
            Ok(frames::Request::NeighborSolicitation(ns)) if current.contains(&IpAddr::V6(ns.target)) => {
                (IpAddr::V6(ns.target), frames::neighbor_advertisement(&ns, mac))
            }
            _ => {
                if let Some((ip, other)) = foreign_claim(frame, &current, mac) {
                    metrics.foreign.inc();
                    let now = tokio::time::Instant::now();
                    if warned
                        .get(&(ip, other))
                        .is_none_or(|at| now.duration_since(*at) > Duration::from_secs(10))
                    {
                        warn!(%ip, other_mac = %other, our_mac = %mac,
                            "another MAC claims an IP this node answers for: split brain, or kube-proxy in IPVS mode without strictARP (arp_ignore=1, arp_announce=2)");
                        warned.insert((ip, other), now);
                    }
                }
                continue;
            }
        };
        metrics.requests.get_or_create(&Layer2Metrics::family(ip)).inc();
        match socket.send(&reply).await {
            Ok(()) => {
                metrics.replies.get_or_create(&Layer2Metrics::family(ip)).inc();
            }
            Err(error) => debug!(%error, "layer2 reply not sent"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;

    use super::*;
    use oxelb_speaker_core::{desired::Announcement, node::NodeFacts};

    fn node(name: &str, ready: bool) -> NodeFacts {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}))
        .unwrap();
        NodeFacts::of(&n)
    }

    fn state(nodes: Vec<NodeFacts>, protocol: EipProtocol) -> SpeakerState {
        let ip: IpAddr = "192.0.2.50".parse().unwrap();
        SpeakerState {
            nodes,
            announcements: [(
                ip,
                Announcement {
                    ip,
                    pool: "l2".into(),
                    protocol,
                    interface: None,
                    services: vec!["default/web".into()],
                    local_nodes: None,
                },
            )]
            .into(),
            ..SpeakerState::default()
        }
    }

    #[test]
    fn answered_ips_and_takeovers_are_counted_per_ip_and_eip() {
        let mut registry = Registry::default();
        let metrics = Layer2Metrics::register(&mut registry);
        let s = state(vec![node("n1", true)], EipProtocol::Layer2);
        let ip: IpAddr = "192.0.2.50".parse().unwrap();
        let encode = |registry: &Registry| {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
            text
        };
        let one: BTreeSet<IpAddr> = [ip].into();
        metrics.record_answering(&one, &BTreeSet::new(), &s);
        metrics.record_answering(&one, &one, &s);
        let text = encode(&registry);
        assert!(
            text.contains("oxelb_layer2_answering{ip=\"192.0.2.50\",eip=\"l2\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("oxelb_layer2_takeovers_total{eip=\"l2\"} 1"),
            "{text}"
        );
        assert!(text.contains("oxelb_layer2_ips_answered 1"), "{text}");
        // Lost: the per-IP series goes (so a sum over nodes counts only answerers).
        metrics.record_answering(&BTreeSet::new(), &one, &s);
        let text = encode(&registry);
        assert!(!text.contains("oxelb_layer2_answering{"), "{text}");
        assert!(text.contains("oxelb_layer2_ips_answered 0"), "{text}");
    }

    #[test]
    fn exactly_one_node_answers_and_only_for_layer2_ips() {
        let pools: BTreeSet<String> = ["l2".to_owned()].into();
        let s = state(
            vec![node("n1", true), node("n2", true), node("n3", true)],
            EipProtocol::Layer2,
        );
        let winners: Vec<&str> = ["n1", "n2", "n3"]
            .into_iter()
            .filter(|me| !my_ips(&s, me, &pools, None).is_empty())
            .collect();
        assert_eq!(winners.len(), 1, "{winners:?}");
        // The winner going NotReady moves the IP to exactly one other node.
        let down: Vec<NodeFacts> = ["n1", "n2", "n3"]
            .into_iter()
            .map(|n| node(n, n != winners[0]))
            .collect();
        let s2 = state(down, EipProtocol::Layer2);
        let next: Vec<&str> = ["n1", "n2", "n3"]
            .into_iter()
            .filter(|me| !my_ips(&s2, me, &pools, None).is_empty())
            .collect();
        assert_eq!(next.len(), 1);
        assert_ne!(next[0], winners[0]);
        // A node without the pool's interface never answers; BGP IPs are not layer2's.
        assert!(my_ips(&s, winners[0], &BTreeSet::new(), None).is_empty());
        assert!(
            my_ips(
                &state(vec![node("n1", true)], EipProtocol::Bgp),
                "n1",
                &pools,
                None
            )
            .is_empty()
        );
        assert_eq!(
            my_ips(
                &state(vec![node("n1", true)], EipProtocol::Vip),
                "n1",
                &pools,
                None
            )
            .len(),
            1,
            "vip is announced like layer2"
        );
    }

    #[test]
    fn a_node_outside_the_pools_node_selector_is_no_candidate_and_the_digest_says_so() {
        let pools: BTreeSet<String> = ["l2".to_owned()].into();
        let mut s = state(
            vec![node("n1", true), node("n2", true), node("n3", true)],
            EipProtocol::Layer2,
        );
        let before = view_digest(&s, "n1", &pools, &BTreeMap::new());
        for allowed in ["n1", "n2", "n3"] {
            s.layer2_nodes = [("l2".to_owned(), [allowed.to_owned()].into())].into();
            // Every speaker, with or without heartbeats, elects the selected node only.
            for me in ["n1", "n2", "n3"] {
                let answers = !my_ips(&s, me, &pools, None).is_empty();
                assert_eq!(answers, me == allowed, "{me} with only {allowed} selected");
                let view = PeerView {
                    alive: ["n1", "n2", "n3"].map(str::to_owned).into(),
                    serving: ["n1", "n2", "n3"].map(|n| (n.to_owned(), pools.clone())).into(),
                };
                let outcome = layer2_outcomes(&s, me, &pools, Some(&view));
                assert_eq!(outcome.values().next().and_then(|o| o.winner()), Some(allowed));
            }
            assert_ne!(
                view_digest(&s, "n1", &pools, &BTreeMap::new()),
                before,
                "the selection is part of the view speakers compare"
            );
        }
        s.layer2_nodes = [("l2".to_owned(), BTreeSet::new())].into();
        assert!(
            ["n1", "n2", "n3"]
                .iter()
                .all(|me| my_ips(&s, me, &pools, None).is_empty())
        );
    }

    #[test]
    fn with_heartbeats_only_live_speakers_with_the_pool_win() {
        let pools: BTreeSet<String> = ["l2".to_owned()].into();
        let s = state(
            vec![node("n1", true), node("n2", true), node("n3", true)],
            EipProtocol::Layer2,
        );
        // n1's view: n2 alive and serving l2, n3 silent. Exactly one of n1, n2 wins, never n3.
        let view = PeerView {
            alive: ["n1".to_owned(), "n2".to_owned()].into(),
            serving: [("n2".to_owned(), pools.clone())].into(),
        };
        let outcome = layer2_outcomes(&s, "n1", &pools, Some(&view));
        let winner = outcome
            .values()
            .next()
            .and_then(|o| o.winner())
            .unwrap()
            .to_owned();
        assert!(winner == "n1" || winner == "n2", "{winner}");
        // n2 alive but without the pool: only n1 may win.
        let no_pool = PeerView {
            serving: [("n2".to_owned(), BTreeSet::new())].into(),
            ..view
        };
        assert_eq!(my_ips(&s, "n1", &pools, Some(&no_pool)).len(), 1);
    }

    #[test]
    fn another_mac_claiming_our_ip_is_noticed() {
        let ours = frames::MacAddr(2, 0, 0, 0, 0, 1);
        let other = frames::MacAddr(2, 0, 0, 0, 0, 2);
        let ip: std::net::Ipv4Addr = "192.0.2.50".parse().unwrap();
        let served: BTreeSet<IpAddr> = [IpAddr::V4(ip)].into();
        // A reply from `other` to a client's request for our IP (IPVS without strictARP, say).
        let request = frames::ArpRequest {
            sender_mac: frames::MacAddr(2, 0, 0, 0, 0, 9),
            sender_ip: "192.0.2.100".parse().unwrap(),
            target_ip: ip,
        };
        let reply = frames::arp_reply(&request, other);
        assert_eq!(
            foreign_claim(&reply, &served, ours),
            Some((IpAddr::V4(ip), other))
        );
        assert_eq!(
            foreign_claim(&frames::gratuitous_arp(ip, other), &served, ours),
            Some((IpAddr::V4(ip), other))
        );
        // Our own frames, frames about other IPs, and requests are not claims.
        assert_eq!(
            foreign_claim(&frames::arp_reply(&request, ours), &served, ours),
            None
        );
        assert_eq!(
            foreign_claim(
                &frames::gratuitous_arp("192.0.2.51".parse().unwrap(), other),
                &served,
                ours
            ),
            None
        );
        assert_eq!(
            foreign_claim(
                &frames::arp_request(other, "192.0.2.100".parse().unwrap(), ip),
                &served,
                ours
            ),
            None
        );
        assert_eq!(foreign_claim(&reply[..25], &served, ours), None, "truncated");
    }
}
