//! The BGP sessions of this node: follows the planner's state, starting, stopping and restarting
//! only the sessions whose resolved configuration changed (OpenELB restarts all on any change),
//! hands every session the route set, accepts routers' connections on the BgpConf `listenPort`, and
//! writes this node's entry of each `BgpPeer.status.nodesPeerStatus` (rate-limited, merge-patching
//! only its own key, so other nodes' entries are never clobbered).

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use oxelb_bgp::session::{MessageCounts, State};
use oxelb_crds::v1alpha2::BgpPeer;
use oxelb_runtime::{shutdown::Shutdown, source::Writer};
use prometheus_client::{
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use serde_json::json;
use tokio::{net::TcpListener, sync::mpsc, sync::watch, task::JoinHandle};
use tracing::{debug, info, warn};

use super::{
    driver::{self, Command, SessionHandle, SessionStatus},
    transport::{listen, update_listener_keys},
};
use crate::{
    planner::SpeakerState,
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
        m
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
    written: Option<SessionStatus>,
}

/// Runs the sessions until shutdown.
pub async fn run(
    mut states: watch::Receiver<Arc<SpeakerState>>,
    writer: Writer,
    node_name: String,
    metrics: BgpMetrics,
    shutdown: Shutdown,
) {
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
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
                apply(&state, &applied, &mut running, &inbound, restarting, &metrics);
                listener = relisten(listener, &state, &inbound).await;
                applied = state;
            }
            _ = tick.tick() => {
                for (name, session) in &mut running {
                    let status = session.handle.status.borrow().clone();
                    metrics.record(name, &status);
                    if session.written.as_ref() != Some(&status) {
                        let patch = json!({"nodesPeerStatus": {node_name.clone(): peer_status(&session.config, &status)}});
                        match writer.patch_status::<BgpPeer>(name, None, patch).await {
                            Ok(()) => session.written = Some(status),
                            Err(error) => debug!(peer = %name, %error, "BgpPeer status not written; retried"),
                        }
                    }
                }
            }
            _ = shutdown.wait() => break,
        }
    }
    // Shutdown: every session sends Cease and closes (a graceful-restart helper keeps our routes).
    for (name, session) in running {
        stop(&name, session).await;
    }
    if let Some((_, _, _, task)) = listener {
        task.abort();
    }
}

fn apply(
    state: &SpeakerState,
    applied: &SpeakerState,
    running: &mut BTreeMap<String, Running>,
    inbound: &Inbound,
    restarting: bool,
    metrics: &BgpMetrics,
) {
    let changes = diff(&applied.sessions, &state.sessions);
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
        let handle = driver::spawn(config.clone(), node_ips.clone(), restarting);
        let _ = handle.commands.send(Command::Routes(state.bgp_routes.clone()));
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
            },
        );
    }
    if state.bgp_routes != applied.bgp_routes {
        for session in running.values() {
            let _ = session
                .handle
                .commands
                .send(Command::Routes(state.bgp_routes.clone()));
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

/// The listener: its settings, the MD5 keys set on it, the socket, the accept task.
type Listener = (Listen, BTreeMap<IpAddr, String>, Arc<TcpListener>, JoinHandle<()>);

/// (Re)binds the listener when the BgpConf listen settings changed, and keeps its MD5 keys current.
async fn relisten(current: Option<Listener>, state: &SpeakerState, inbound: &Inbound) -> Option<Listener> {
    let keys: BTreeMap<IpAddr, String> = state
        .sessions
        .sessions
        .values()
        .filter_map(|s| Some((s.neighbor, s.md5_password.clone()?)))
        .collect();
    let wanted = state.sessions.listen.clone();
    if let Some((listen, old_keys, socket, task)) = current {
        if wanted.as_ref() == Some(&listen) {
            if old_keys != keys
                && let Err(error) = update_listener_keys(&socket, &old_keys, &keys)
            {
                warn!(%error, "cannot update the listener's TCP-MD5 keys");
            }
            return Some((listen, keys, socket, task));
        }
        task.abort();
    }
    let wanted = wanted?;
    // Without listenAddresses, `::` (Linux' dual-stack sockets accept IPv4 too); else the first.
    let ip = wanted
        .addresses
        .first()
        .copied()
        .unwrap_or(IpAddr::from([0u8; 16]));
    let addr = SocketAddr::new(ip, wanted.port);
    match listen(addr, &keys) {
        Ok(socket) => {
            info!(%addr, "accepting BGP connections");
            let socket = Arc::new(socket);
            let task = tokio::spawn(accept_loop(socket.clone(), inbound.clone()));
            Some((wanted, keys, socket, task))
        }
        Err(error) => {
            warn!(%addr, %error, "cannot listen for BGP connections (BgpConf spec.listenPort); routers must be dialled");
            None
        }
    }
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

/// This node's `nodesPeerStatus` entry, in OpenELB's (GoBGP's) shape.
fn peer_status(config: &SessionConfig, status: &SessionStatus) -> serde_json::Value {
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
            "messages": {"sent": counts(&status.sent), "received": counts(&status.received)},
        },
        "timersState": timers,
    })
}
