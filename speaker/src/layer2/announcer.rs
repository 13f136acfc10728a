//! The layer2 announcer: at every change, decides exactly which IPs this node answers ARP and
//! Neighbor Solicitations for (the decision is pure: [`oxelb_speaker_core::layer2`] and
//! [`oxelb_speaker_core::liveness`]) and hands them to one [`super::responder`] per NIC, which
//! announces them on take-over (gratuitous ARP in the request form and unsolicited NA, repeated)
//! and stops answering an IP the moment it is lost.
//!
//! **Liveness**: with heartbeats on (`--heartbeat-key-file`, [`super::heartbeat`]) a speaker is alive
//! while its heartbeats arrive (dead after `--heartbeat-dead-after`, 200 ms by default), each
//! candidate's pools are the ones its heartbeats list, and a speaker without standing (no majority,
//! see [`oxelb_speaker_core::liveness`]) answers nothing. The choice is re-evaluated when the objects change,
//! when a heartbeat changes something, and at the exact moment a peer's deadline passes (a tick
//! every heartbeat interval only renews the deadline of what is answered, see
//! [`super::responder`]); the take-over announcement goes out in that same pass. A newly won IP is begun only once
//! the peers' applied views agree ([`oxelb_speaker_core::liveness::Handover`]), so speakers that learn a change at
//! different moments never answer one IP together.
//!
//! **Stuck views** (issue 24): a peer whose API watch hangs keeps its heartbeats going but never
//! learns new Services. Its claims ([`super::heartbeat::Applied`]) prove which IPs its view lacks
//! and how far its Service watch has got; the others elect around it for those IPs
//! ([`oxelb_speaker_core::standin`]) and answer them once the settle bound has passed, and the
//! stuck speaker says it is stale ([`super::staleness`]). Without heartbeats a speaker counts as alive
//! while its Node is Ready, and every node is assumed to have each pool's interface: failover is
//! then as slow as the Node turning NotReady.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::Arc,
    time::Duration,
};

use k8s_openapi::api::core::v1::ObjectReference;
use oxelb_crds::v1alpha2::EipProtocol;
use oxelb_runtime::{
    shutdown::Shutdown,
    source::{EventRecord, EventType, Writer},
};
use oxelb_speaker_core::{
    election::{Outcome, announced_by},
    layer2::{PeerView, layer2_ips, layer2_outcomes, layer2_outcomes_standing_in, view_digest},
    liveness::{Handover, LivenessConfig, Standing},
    plan::SpeakerState,
    tiebreak::ApiFacts,
};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::{
    layer2::{
        heartbeat::Applied,
        interface::{Nic, resolve},
        metrics::Layer2Metrics,
        responder::Responder,
        staleness::{SourceView, StaleReporter},
    },
    reach::Leases,
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

/// Runs the responders of this node until the state channel closes or `shutdown` fires; on
/// shutdown it stops answering and tells the peers it leaves (graceful hand-over). `heartbeat`:
/// the heartbeats' settings (`None`: off). `leases`: this speaker's Lease task, the apiserver's
/// side of the two-node tie-break ([`crate::reach`]; `None`: never reachable, so a lone speaker
/// of two never answers). `source`: the object source's progress, readiness and watch restarts,
/// for the claims and for noticing a stale view (`None`: progress unknown, never stale).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    mut states: watch::Receiver<Arc<SpeakerState>>,
    node_name: String,
    heartbeat: Option<Heartbeats>,
    writer: Writer,
    metrics: Layer2Metrics,
    shutdown: Shutdown,
    leases: Option<Leases>,
    source: Option<SourceView>,
) {
    let mut announced: BTreeSet<IpAddr> = BTreeSet::new();
    let mut unannounceable: BTreeMap<IpAddr, String> = BTreeMap::new();
    let (serving_tx, serving_rx) = watch::channel(BTreeSet::new());
    let (applied_tx, applied_rx) = watch::channel(Arc::new(Applied::default()));
    let settle_bound = heartbeat
        .as_ref()
        .map_or(Duration::ZERO, |h| h.timing.settle_bound);
    let interval = heartbeat.as_ref().map_or(Duration::ZERO, |h| h.timing.interval);
    // How long a decision holds without renewal (see `super::responder`): ends before any peer
    // could count this speaker dead (its last heartbeat plus the detection time), with a heartbeat
    // interval to spare for scheduling; renewed every interval.
    let validity = heartbeat.as_ref().map(|h| {
        h.timing
            .dead_after
            .saturating_sub(h.timing.interval * 2)
            .max(h.timing.interval)
    });
    let mut handover = Handover::new(settle_bound);
    let mut stale = StaleReporter::new(settle_bound);
    let mut standing_in_for: BTreeSet<IpAddr> = BTreeSet::new();
    let liveness = match heartbeat {
        Some(Heartbeats { port, key, timing }) => {
            match super::heartbeat::start(
                node_name.clone(),
                port,
                key,
                timing,
                states.clone(),
                serving_rx,
                applied_rx,
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
        // a held-back IP's bound, a lag turning stale. Woken exactly then. While won IPs wait on
        // peers' claims, also every heartbeat interval: claims that only refresh (an IP let go,
        // a want withdrawn) wake nobody.
        let deadline = liveness.as_ref().and_then(|l| {
            let lease = leases.as_ref().and_then(Leases::next_deadline);
            let now = l.now();
            let recheck = (handover.waiting() > 0).then(|| now + interval);
            [
                l.next_deadline(),
                handover.next_deadline(),
                stale.next_deadline(now),
                recheck,
            ]
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
            // Renewal of what is answered, every interval: when nothing is due (no peer's
            // deadline has passed), the decision stands and only its deadline moves.
            () = async {
                match (&liveness, responders.is_empty()) {
                    (Some(_), false) => tokio::time::sleep(interval).await,
                    _ => std::future::pending().await,
                }
            } => {
                if let Some(l) = &liveness
                    && l.next_deadline().is_none_or(|at| at > l.now())
                {
                    let until = validity.map(|v| std::time::Instant::now() + v);
                    for responder in responders.values() {
                        responder.renew(until);
                    }
                    continue;
                }
            }
        }
        // Progress before the state: the claims never say more than the view holds.
        let progress = source.as_ref().map_or(0, SourceView::progress);
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
                        writer.spawn_event(event);
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
        let evidence = liveness.as_ref().map(|l| l.evidence(progress));
        let (outcomes, stood_in) = match &evidence {
            Some(evidence) => {
                layer2_outcomes_standing_in(&state, &node_name, &my_pools, view.as_ref(), evidence)
            }
            None => (
                layer2_outcomes(&state, &node_name, &my_pools, view.as_ref()),
                BTreeSet::new(),
            ),
        };
        if let (Some(evidence), Some(liveness), Some(source)) = (&evidence, &liveness, &source) {
            let peers = evidence.peers.values().map(|p| p.progress).max().unwrap_or(0);
            stale.observe(
                liveness.now(),
                progress,
                peers,
                source,
                &writer,
                &node_name,
                &metrics,
            );
        }
        let mut mine: BTreeMap<IpAddr, String> = announced_by(&outcomes, &node_name)
            .into_iter()
            .filter_map(|ip| Some((ip, state.announcements.get(&ip)?.pool.to_string())))
            .collect();
        if let Some(evidence) = &evidence {
            log_stand_ins(evidence, &stood_in, &mine, &mut standing_in_for);
        }
        let digest = liveness
            .as_ref()
            .map(|l| view_digest(&state, &node_name, &my_pools, &l.last_serving()));
        report_unannounceable(&writer, &state, &node_name, &outcomes, &mut unannounceable);
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
                    let answering: BTreeSet<IpAddr> = responders.values().flat_map(|r| r.served()).collect();
                    let won: BTreeSet<IpAddr> = mine.keys().copied().collect();
                    let allowed = handover.decide(
                        liveness.now(),
                        &won,
                        &answering,
                        agreement.is_ok(),
                        evidence.as_ref(),
                    );
                    if !handover.blocked().is_empty() {
                        let blocking: BTreeSet<String> = evidence
                            .iter()
                            .flat_map(|e| handover.blocked().iter().flat_map(|ip| e.blocking(*ip)))
                            .collect();
                        debug!(ips = ?handover.blocked(), peers = ?blocking,
                            "won IPs past the settle bound wait until these peers' claims let them go");
                    }
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
                    // Nothing is wanted either: the claims must not hold peers back.
                    handover.decide(liveness.now(), &BTreeSet::new(), &BTreeSet::new(), false, None);
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
        let until = validity.map(|v| std::time::Instant::now() + v);
        for responder in responders.values() {
            responder.renew(until);
        }
        // Newly announced IPs: an Event on each of their Services.
        let now: BTreeSet<IpAddr> = responders.values().flat_map(|r| r.served()).collect();
        if liveness.is_none() {
            metrics.standing.set(1);
        }
        metrics.record_answering(&now, &announced, &state);
        for ip in now.difference(&announced) {
            let Some(a) = state.announcements.get(ip) else {
                continue;
            };
            if standing_in_for.contains(ip) {
                info!(%ip, progress,
                    "answering in place of a live peer whose API view lacks this IP and is behind (stand-in); the IP goes back when its view catches up");
            }
            let nic = nics.get(&*a.pool).map(|n| n.name.clone()).unwrap_or_default();
            for service in &a.services {
                let event = EventRecord {
                    regarding: service_ref(service),
                    type_: EventType::Normal,
                    reason: "AnnouncingFrom".into(),
                    action: "Announce".into(),
                    note: Some(format!("{ip} answered by node {node_name} on {nic} (ARP/NDP)")),
                };
                writer.spawn_event(event);
            }
        }
        metrics
            .standing_in
            .set(i64::try_from(now.intersection(&standing_in_for).count()).unwrap_or(i64::MAX));
        // Only now, with the view applied (IPs it lost no longer answered), tell the peers.
        if let Some(view) = digest {
            let applied = Applied {
                view,
                progress,
                known: layer2_ips(&state),
                answering: now.clone(),
                wanted: handover.wanted(),
            };
            applied_tx.send_if_modified(|a| {
                let changed = **a != applied;
                if changed {
                    *a = Arc::new(applied);
                }
                changed
            });
        }
        announced = now;
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

/// Logs (debug: while a Service is being created every view is briefly behind another, and a
/// stand-in that never begins is routine) each IP this node wins standing in for a live peer
/// stuck without it, and the end of each stand-in; `current` holds the IPs this node stands in
/// for. The stand-ins that begin are logged at info when they do.
fn log_stand_ins(
    evidence: &oxelb_speaker_core::standin::Evidence,
    stood_in: &BTreeSet<IpAddr>,
    mine: &BTreeMap<IpAddr, String>,
    current: &mut BTreeSet<IpAddr>,
) {
    let now: BTreeSet<IpAddr> = stood_in
        .iter()
        .filter(|ip| mine.contains_key(ip))
        .copied()
        .collect();
    for ip in now.difference(current) {
        let stuck: Vec<&String> = evidence
            .peers
            .keys()
            .filter(|peer| evidence.stuck_without(peer, *ip))
            .collect();
        debug!(%ip, stuck = ?stuck, progress = evidence.progress,
            "standing in: the peer that wins this IP is alive but its API view lacks it and is behind");
    }
    for ip in current.difference(&now) {
        debug!(%ip, "stand-in over: the IP goes back to its winner (its view caught up) or was removed");
    }
    *current = now;
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
fn report_unannounceable(
    writer: &Writer,
    state: &SpeakerState,
    me: &str,
    outcomes: &BTreeMap<IpAddr, Outcome>,
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
        if let Outcome::NoEligibleNode(reason) = outcome {
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
                writer.spawn_event(event);
            }
        }
    }
    *said = now;
}
