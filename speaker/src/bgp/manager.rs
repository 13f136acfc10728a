//! The BGP sessions of this node: follows the planner's state, starting, stopping and restarting
//! only the sessions whose resolved configuration changed (OpenELB restarts all on any change),
//! hands every session the route set, accepts routers' connections on the BgpConf `listenPort`, and
//! writes this node's entry of each `BgpPeer.status.nodesPeerStatus` (rate-limited, merge-patching
//! only its own key, so other nodes' entries are never clobbered). It also runs the BFD sessions
//! the BgpPeers ask for (`crate::bfd`), reports them in the same status entry and as Events
//! (`BfdUp`, `BfdDown`), and on shutdown hands the BFD sessions over to the next process
//! (`crate::bfd`, module notes), or sends BFD AdminDown after the BGP sessions closed when the
//! hand-over is off or fails.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use oxelb_bgp::session::{MessageCounts, State};
use oxelb_crds::v1alpha2::BgpPeer;
use oxelb_runtime::{
    shutdown::Shutdown,
    source::{EventRecord, EventType, Writer},
};
use prometheus_client::{
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use serde_json::json;
use tokio::{net::TcpListener, sync::mpsc, sync::watch, task::JoinHandle};
use tracing::{debug, info, warn};

use super::{
    driver::{self, Command, SessionHandle, SessionStatus},
    transport::{listen, set_listener_mss, update_listener_keys},
};
use crate::bfd::{
    BfdMetrics, BfdPeer, BfdService, HandoverSettings, Report, load_handover, store_handover, unix_ms,
};
use oxelb_speaker_core::{
    plan::SpeakerState,
    sessions::{Listen, SessionConfig, diff},
};

/// BgpPeer status is written at most this often per session.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);

type Labels = Vec<(&'static str, String)>;

/// The BGP metrics.
#[derive(Clone, Debug, Default)]
pub struct BgpMetrics {
    up: Family<Labels, Gauge>,
    announced: Family<Labels, Gauge>,
    updates_sent: Family<Labels, Gauge>,
    updates_received: Family<Labels, Gauge>,
    pool_prefixes: Family<Labels, Gauge>,
}

impl BgpMetrics {
    /// Creates and registers the families.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "oxelb_bgp_session_up",
            "1 while the session to the BgpPeer is Established",
            m.up.clone(),
        );
        registry.register(
            "oxelb_bgp_prefixes_announced",
            "Host routes the peer has from this node",
            m.announced.clone(),
        );
        registry.register(
            "oxelb_bgp_updates_sent",
            "UPDATE messages sent in the current process",
            m.updates_sent.clone(),
        );
        registry.register(
            "oxelb_bgp_updates_received",
            "UPDATE messages received in the current process",
            m.updates_received.clone(),
        );
        registry.register(
            "oxelb_bgp_pool_prefixes",
            "Prefixes (host routes or aggregates) of each Eip in this node's route set for the peer (families the session carries or not); 0 while the session is not Established",
            m.pool_prefixes.clone(),
        );
        m
    }

    /// Sets `oxelb_bgp_pool_prefixes{peer,eip}` for every session: the prefixes of each pool in
    /// the session's route set while it is Established (0 otherwise, so the series stays).
    fn record_pools(&self, state: &SpeakerState, established: &BTreeMap<String, bool>) {
        self.pool_prefixes.clear();
        for (peer, routes) in &state.peer_routes {
            let up = established.get(peer).copied().unwrap_or(false);
            let mut per_pool: BTreeMap<&str, i64> = BTreeMap::new();
            for prefix in routes.keys() {
                if let Some(route) = state.bgp_routes.get(prefix) {
                    *per_pool.entry(&*route.pool).or_default() += i64::from(up);
                }
            }
            for (pool, count) in per_pool {
                self.pool_prefixes
                    .get_or_create(&vec![("peer", peer.clone()), ("eip", pool.to_owned())])
                    .set(count);
            }
        }
    }

    fn record(&self, peer: &str, status: &SessionStatus) {
        let labels = vec![("peer", peer.to_owned())];
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.up
            .get_or_create(&labels)
            .set(i64::from(status.state == Some(State::Established)));
        self.announced
            .get_or_create(&labels)
            .set(n(status.advertised as u64));
        self.updates_sent
            .get_or_create(&labels)
            .set(n(status.sent.update));
        self.updates_received
            .get_or_create(&labels)
            .set(n(status.received.update));
    }

    fn forget(&self, peer: &str) {
        let labels = vec![("peer", peer.to_owned())];
        self.up.remove(&labels);
        self.announced.remove(&labels);
        self.updates_sent.remove(&labels);
        self.updates_received.remove(&labels);
    }
}

/// Who may connect to the listener: neighbor address -> its session's command channel.
type Inbound = Arc<Mutex<BTreeMap<IpAddr, mpsc::UnboundedSender<Command>>>>;

struct Running {
    config: SessionConfig,
    handle: SessionHandle,
    written: Option<(SessionStatus, Option<Report>)>,
    /// The BFD state last said in an Event.
    said: Option<oxelb_bfd::wire::State>,
}

/// Runs the sessions until shutdown.
pub async fn run(
    mut states: watch::Receiver<Arc<SpeakerState>>,
    writer: Writer,
    node_name: String,
    metrics: BgpMetrics,
    bfd_metrics: BfdMetrics,
    handover: HandoverSettings,
    shutdown: Shutdown,
) {
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let resumed = if handover.window.is_zero() {
        None
    } else {
        load_handover(&handover.state_dir, &handover.node, unix_ms())
    };
    let bfd = BfdService::spawn(bfd_metrics, resumed);
    let inbound: Inbound = Arc::default();
    let mut listener: Option<Listener> = None;
    // This process restarted if it finds sessions to hold on its first state (RFC 4724 R bit).
    let restarting = true;
    // The state last applied (the planner's `Arc`, not a copy).
    let mut applied = Arc::new(SpeakerState::default());
    let mut tick = tokio::time::interval(STATUS_INTERVAL);
    loop {
        tokio::select! {
            changed = states.changed() => {
                if changed.is_err() { break; }
                let state = states.borrow_and_update().clone();
                apply(&state, &applied, &mut running, &inbound, restarting, &metrics, &bfd);
                listener = relisten(listener, &state, &inbound).await;
                applied = state;
            }
            _ = tick.tick() => {
                let reports = bfd.reports().borrow().clone();
                let established: BTreeMap<String, bool> = running
                    .iter()
                    .map(|(name, s)| (name.clone(), s.handle.status.borrow().state == Some(State::Established)))
                    .collect();
                metrics.record_pools(&applied, &established);
                for (name, session) in &mut running {
                    let status = session.handle.status.borrow().clone();
                    metrics.record(name, &status);
                    if status.state == Some(State::Established) {
                        // A BFD session continued from the previous process returns to its
                        // configured timers (a no-op for the others).
                        bfd.settle(name);
                    }
                    let report = reports.get(name).cloned();
                    bfd_event(&writer, name, &node_name, session, report.as_ref()).await;
                    let current = (status, report);
                    if session.written.as_ref() != Some(&current) {
                        let patch = json!({"nodesPeerStatus": {node_name.clone(): peer_status(&session.config, &current.0, current.1.as_ref())}});
                        match writer.patch_status::<BgpPeer>(name, None, patch).await {
                            Ok(()) => session.written = Some(current),
                            Err(error) => debug!(peer = %name, %error, "BgpPeer status not written; retried"),
                        }
                    }
                }
            }
            _ = shutdown.wait() => break,
        }
    }
    // Shutdown (SIGTERM, e.g. a rolling update). Sessions with graceful restart negotiated close
    // without NOTIFICATION, so the router keeps our routes as stale until the next process has
    // sent its table and End-of-RIB (RFC 4724): no withdrawal, no second ECMP reshuffle. The
    // others send Cease.
    // BFD must not go down meanwhile: BIRD 2.0 flushes the stale routes on any BFD Down, even
    // AdminDown (RFC 5882 section 3.2 asks otherwise), and FRR 8.4 ends an Established session
    // on one. So the peers' Detection Time is first raised to the restart window, and the
    // sessions are handed to the next process, which continues them in Up (measured against
    // FRR and BIRD in tests/tests/bgp_upgrade.rs). A speaker that does not come back is
    // detected by the peers when the window ends.
    let with_bfd = !bfd.reports().borrow().is_empty();
    let handing_over = with_bfd && !handover.window.is_zero();
    if handing_over {
        bfd.prepare_handover(handover.window).await;
    }
    for (name, session) in running {
        let _ = session.handle.commands.send(Command::Shutdown);
        stop(&name, session).await;
    }
    let handed = if handing_over {
        hand_over(&bfd, &handover).await
    } else {
        false
    };
    if with_bfd && !handed {
        // AdminDown only once the router has seen the BGP sessions end (FRR 8.4 keeps the
        // routes of a session already in graceful restart).
        tokio::time::sleep(Duration::from_millis(100)).await;
        bfd.admin_down(Duration::from_millis(50)).await;
    }
    bfd.stop();
    for (_, task) in listener.map(|(_, _, sockets)| sockets).into_iter().flatten() {
        task.abort();
    }
}

/// Writes the BFD hand-over for the next process; false (logged) when it could not.
async fn hand_over(bfd: &BfdService, settings: &HandoverSettings) -> bool {
    let Some(mut handover) = bfd.hand_over().await else {
        return false;
    };
    handover.node = settings.node.clone();
    handover.window_ms = u64::try_from(settings.window.as_millis()).unwrap_or(u64::MAX);
    handover.written_unix_ms = unix_ms();
    match store_handover(&settings.state_dir, &handover) {
        Ok(()) => {
            info!(dir = %settings.state_dir.display(), sessions = handover.sessions.len(), window_ms = handover.window_ms,
                "BFD sessions handed over to the next speaker process (no AdminDown)");
            true
        }
        Err(error) => {
            warn!(%error, "cannot write the BFD hand-over: sending AdminDown instead");
            false
        }
    }
}

fn apply(
    state: &SpeakerState,
    applied: &SpeakerState,
    running: &mut BTreeMap<String, Running>,
    inbound: &Inbound,
    restarting: bool,
    metrics: &BgpMetrics,
    bfd: &BfdService,
) {
    let changes = diff(&applied.sessions, &state.sessions);
    // BFD first: a starting BGP session with BFD then finds its BFD session wanted. A change of
    // `spec.bfd` alone reaches the BGP driver as a command; its session stays up.
    bfd.set(
        state
            .sessions
            .sessions
            .iter()
            .filter_map(|(name, c)| {
                let config = c.bfd?;
                (!c.admin_down).then(|| {
                    (
                        name.clone(),
                        BfdPeer {
                            neighbor: c.neighbor,
                            config,
                        },
                    )
                })
            })
            .collect(),
    );
    for name in &changes.bfd {
        if let (Some(session), Some(config)) = (running.get_mut(name), state.sessions.sessions.get(name)) {
            info!(peer = %name, bfd = config.bfd.is_some(), "BFD configuration changed: BGP session kept");
            let _ = session.handle.commands.send(Command::Bfd(config.bfd.is_some()));
            session.config = config.clone();
        }
    }
    let node_ips: Vec<IpAddr> = state
        .node
        .as_ref()
        .map(|n| n.internal_ips.clone())
        .unwrap_or_default();
    for name in changes.stop.iter().chain(changes.restart.iter()) {
        if let Some(session) = running.remove(name) {
            info!(peer = %name, "stopping BGP session (BgpPeer removed, changed or no longer selecting this node)");
            inbound
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&session.config.neighbor);
            metrics.forget(name);
            tokio::spawn(stop_detached(name.clone(), session));
        }
    }
    for name in changes.start.iter().chain(changes.restart.iter()) {
        let Some(config) = state.sessions.sessions.get(name) else {
            continue;
        };
        info!(peer = %name, neighbor = %config.neighbor, port = config.remote_port, local_as = config.local_as, peer_as = config.peer_as, passive = config.passive, "starting BGP session");
        let handle = driver::spawn(config.clone(), node_ips.clone(), restarting, bfd.reports());
        let routes = state
            .peer_routes
            .get(name)
            .map(|r| (**r).clone())
            .unwrap_or_default();
        let _ = handle.commands.send(Command::Routes(routes));
        // The planner publishes only after every watch synced: the table is complete.
        let _ = handle.commands.send(Command::TableReady);
        inbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(config.neighbor, handle.commands.clone());
        running.insert(
            name.clone(),
            Running {
                config: config.clone(),
                handle,
                written: None,
                said: None,
            },
        );
    }
    // A description alone changed: the session stays, the status says the new one.
    for (name, session) in running.iter_mut() {
        if let Some(config) = state.sessions.sessions.get(name)
            && session.config.description != config.description
        {
            session.config.description.clone_from(&config.description);
            session.written = None;
        }
    }
    // Only the sessions whose route set changed hear of it (a pool's policy change touches only
    // the peers it concerns); sessions just started have theirs already.
    for (name, session) in running.iter() {
        if changes.start.contains(name) || changes.restart.contains(name) {
            continue;
        }
        let now = state.peer_routes.get(name);
        if now != applied.peer_routes.get(name) {
            let routes = now.map(|r| (**r).clone()).unwrap_or_default();
            let _ = session.handle.commands.send(Command::Routes(routes));
        }
    }
}

async fn stop(name: &str, session: Running) {
    drop(session.handle.commands);
    if tokio::time::timeout(Duration::from_secs(3), session.handle.task)
        .await
        .is_err()
    {
        warn!(peer = %name, "BGP session did not stop in time");
    }
}

async fn stop_detached(name: String, session: Running) {
    stop(&name, session).await;
}

/// The listener: its settings, the MD5 keys set on it, and a socket with its accept task per
/// address listened on.
type Listener = (
    Listen,
    BTreeMap<IpAddr, String>,
    Vec<(Arc<TcpListener>, JoinHandle<()>)>,
);

/// The MD5 keys a socket bound to `ip` takes: an IPv4 socket only IPv4 peers' (an IPv6 one, which
/// accepts IPv4 too when it is `::`, every peer's).
fn keys_for(ip: IpAddr, keys: &BTreeMap<IpAddr, String>) -> BTreeMap<IpAddr, String> {
    keys.iter()
        .filter(|(peer, _)| ip.is_ipv6() || peer.is_ipv4())
        .map(|(peer, key)| (*peer, key.clone()))
        .collect()
}

/// (Re)binds the listener when the BgpConf listen settings changed, and keeps its MD5 keys and its
/// MSS (the smallest `transport.tcpMss` of the sessions) current.
async fn relisten(current: Option<Listener>, state: &SpeakerState, inbound: &Inbound) -> Option<Listener> {
    let keys: BTreeMap<IpAddr, String> = state
        .sessions
        .sessions
        .values()
        .filter_map(|s| Some((s.neighbor, s.md5_password.clone()?)))
        .collect();
    let wanted = state.sessions.listen.clone();
    // Every call: cheap, and the sessions' tcpMss may have changed without a key change.
    let mss: Vec<u16> = state
        .sessions
        .sessions
        .values()
        .filter_map(|s| s.tcp_mss)
        .collect();
    let follow_mss = |socket: &TcpListener| {
        if let Err(error) = set_listener_mss(socket, mss.iter().copied()) {
            warn!(%error, "cannot set the listener's TCP MSS (BgpPeer spec.transport.tcpMss)");
        }
    };
    if let Some((listen, old_keys, sockets)) = current {
        if wanted.as_ref() == Some(&listen) {
            for (socket, _) in &sockets {
                follow_mss(socket);
            }
            if old_keys != keys {
                for (socket, _) in &sockets {
                    let Ok(local) = socket.local_addr() else { continue };
                    let (old, new) = (keys_for(local.ip(), &old_keys), keys_for(local.ip(), &keys));
                    if let Err(error) = update_listener_keys(socket, &old, &new) {
                        warn!(%local, %error, "cannot update the listener's TCP-MD5 keys");
                    }
                }
            }
            return Some((listen, keys, sockets));
        }
        for (_, task) in sockets {
            task.abort();
        }
    }
    let wanted = wanted?;
    // Without listenAddresses, `::` (Linux' dual-stack sockets accept IPv4 too); else each one.
    let ips = if wanted.addresses.is_empty() {
        vec![IpAddr::from([0u8; 16])]
    } else {
        wanted.addresses.clone()
    };
    let mut sockets = Vec::with_capacity(ips.len());
    for ip in ips {
        let addr = SocketAddr::new(ip, wanted.port);
        match listen(addr, &keys_for(ip, &keys), mss.iter().copied().min()) {
            Ok(socket) => {
                info!(%addr, "accepting BGP connections");
                let socket = Arc::new(socket);
                let task = tokio::spawn(accept_loop(socket.clone(), inbound.clone()));
                sockets.push((socket, task));
            }
            Err(error) => {
                warn!(%addr, %error, "cannot listen for BGP connections here (BgpConf spec.listenPort, spec.listenAddresses); routers must dial another address or be dialled");
            }
        }
    }
    // None bound: tried again on the next change.
    (!sockets.is_empty()).then_some((wanted, keys, sockets))
}

async fn accept_loop(socket: Arc<TcpListener>, inbound: Inbound) {
    loop {
        match socket.accept().await {
            Ok((stream, from)) => {
                let ip = match from.ip() {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                    v4 => v4,
                };
                let target = inbound
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&ip)
                    .cloned();
                match target {
                    Some(commands) => {
                        let _ = commands.send(Command::Accepted(stream));
                    }
                    None => {
                        debug!(%from, "BGP connection from an address that is no BgpPeer of this node: closed")
                    }
                }
            }
            Err(error) => {
                warn!(%error, "accepting a BGP connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn counts(m: &MessageCounts) -> serde_json::Value {
    json!({"open": m.open.to_string(), "update": m.update.to_string(), "notification": m.notification.to_string(),
        "keepalive": m.keepalive.to_string(), "refresh": m.refresh.to_string(), "total": m.total.to_string()})
}

/// A Normal Event `BfdUp` or a Warning `BfdDown` on the BgpPeer when its BFD state changed
/// since the last one.
async fn bfd_event(writer: &Writer, name: &str, node: &str, session: &mut Running, report: Option<&Report>) {
    use oxelb_bfd::wire::State as Bfd;
    let Some(report) = report else {
        session.said = None;
        return;
    };
    let up = report.state == Bfd::Up;
    // Only Up and the first Down after Up are said (not every Init on the way up).
    let worth = match session.said {
        None => up,
        Some(said) => (said == Bfd::Up) != up,
    };
    if !worth {
        return;
    }
    let note = match report.negotiated {
        Some(n) if up => format!(
            "node {node}: BFD session Up, sending every {} ms, detection time {} ms",
            n.tx_interval_us / 1000,
            n.detection_time_us / 1000
        ),
        _ if up => format!("node {node}: BFD session Up"),
        _ => format!(
            "node {node}: BFD session {} ({}){}",
            report.state.as_str(),
            report.diagnostic.as_str(),
            if report.peer_admin_down {
                "; the peer stopped administratively, BGP session kept"
            } else {
                "; BGP session brought down"
            }
        ),
    };
    let event = EventRecord {
        regarding: k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("network.kubesphere.io/v1alpha2".into()),
            kind: Some("BgpPeer".into()),
            name: Some(name.to_owned()),
            ..Default::default()
        },
        type_: if up { EventType::Normal } else { EventType::Warning },
        reason: if up { "BfdUp" } else { "BfdDown" }.into(),
        action: "Detect".into(),
        note: Some(note),
    };
    match writer.publish_event(event).await {
        Ok(()) => session.said = Some(report.state),
        Err(error) => debug!(peer = %name, %error, "BFD Event not published; retried"),
    }
}

/// This node's `nodesPeerStatus` entry, in OpenELB's (GoBGP's) shape, with the `bfd` extension.
fn peer_status(config: &SessionConfig, status: &SessionStatus, bfd: Option<&Report>) -> serde_json::Value {
    let mut timers = json!({"holdTime": config.hold_time.to_string(), "keepaliveInterval": config.keepalive.to_string(),
        "connectRetry": config.connect_retry.to_string()});
    if let Some(hold) = status.negotiated_hold_time {
        timers["negotiatedHoldTime"] = hold.to_string().into();
    }
    if let Some(up) = &status.up_since {
        timers["uptime"] = up.clone().into();
    }
    if let Some(down) = &status.down_since {
        timers["downtime"] = down.clone().into();
    }
    json!({
        "peerState": {
            "neighborAddress": config.neighbor.to_string(),
            "peerAs": config.peer_as,
            "localAs": config.local_as,
            "routerId": config.router_id.to_string(),
            "sessionState": status.state.map_or("Idle", State::as_str),
            "adminState": if config.admin_down { "Down" } else { "Up" },
            // `conf.description`, echoed as GoBGP does (null removes an old one).
            "description": config.description,
            "messages": {"sent": counts(&status.sent), "received": counts(&status.received)},
        },
        "timersState": timers,
        "bfd": bfd.map(|r| {
            let ms = |us: u64| u32::try_from(us / 1000).unwrap_or(u32::MAX);
            json!({
                "state": r.state.as_str(),
                "diagnostic": r.diagnostic.as_str(),
                "txIntervalMs": r.negotiated.map(|n| ms(n.tx_interval_us)),
                "detectionTimeMs": r.negotiated.map(|n| ms(n.detection_time_us)),
                "remoteDetectMultiplier": r.negotiated.map(|n| n.peer_detect_mult),
                "upCount": r.counters.up,
                "downCount": r.counters.down,
                "lastChange": r.last_change,
            })
        }),
    })
}
