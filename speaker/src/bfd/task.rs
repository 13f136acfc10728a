//! The BFD task: one loop for all of this node's sessions, driving the sans-IO sessions of
//! `oxelb-bfd` from the sockets, the timers, the wanted set and the manager's requests (see the
//! parent module for the rules it follows).

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use oxelb_bfd::{
    handover::{FORMAT, Handover, SessionHandover},
    session::{Change, Config, Input, Session},
    wire::{self, PORT_MULTIHOP, PORT_SINGLE_HOP, State},
};
use oxelb_speaker_core::sessions::BfdConfig;
use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot, watch},
    time::Instant,
};
use tracing::{debug, info, warn};

use crate::{
    bfd::{
        metrics::BfdMetrics,
        report::{BfdPeer, Report, Reports},
        sockets::{Sockets, open_sockets, recv, unmapped},
    },
    clock::{now_rfc3339, sleep_until},
};

/// What the manager asks of the task beside the wanted set.
pub(super) enum Request {
    /// Raise the peers' Detection Time to `detection` (see [`BfdService::prepare_handover`]).
    Prepare {
        detection: Duration,
        done: oneshot::Sender<()>,
    },
    /// The sessions' hand-over (see [`BfdService::hand_over`]).
    HandOver { reply: oneshot::Sender<Handover> },
    /// BGP is Established again for this peer (see [`BfdService::settle`]).
    Settle(String),
}

/// How long a stopping speaker waits for the peers' Finals (RFC 5880 section 6.5) after
/// raising their Detection Time: a peer answers a Poll at once, so this is only an upper bound
/// for a lossy path.
pub(super) const PREPARE_WAIT: Duration = Duration::from_millis(500);

struct Entry {
    peer: BfdPeer,
    session: Session,
    report: Report,
    /// Continued from the previous process and still on its raised Detect Mult.
    resumed: bool,
}

fn session_config(config: &BfdConfig) -> Config {
    Config {
        desired_min_tx_us: config.desired_min_tx_ms.saturating_mul(1000),
        required_min_rx_us: config.required_min_rx_ms.saturating_mul(1000),
        detect_mult: config.detect_mult,
    }
}

struct Task {
    sessions: BTreeMap<String, Entry>,
    sockets: Option<Sockets>,
    /// A hand-over being prepared: when to give up waiting for Finals, and whom to tell.
    preparing: Option<(std::time::Instant, oneshot::Sender<()>)>,
    next_discriminator: u32,
    reports: watch::Sender<Reports>,
    metrics: BfdMetrics,
    /// Invalid packets logged in the current second (the log is rate-limited, the metric not).
    logged: (std::time::Instant, u32),
}

pub(super) async fn run(
    mut wanted: watch::Receiver<BTreeMap<String, BfdPeer>>,
    mut stopping: watch::Receiver<bool>,
    mut requests: mpsc::UnboundedReceiver<Request>,
    reports: watch::Sender<Reports>,
    metrics: BfdMetrics,
    handover: Option<Handover>,
) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos())
        ^ std::process::id().rotate_left(16);
    let mut task = Task {
        sessions: BTreeMap::new(),
        sockets: None,
        preparing: None,
        next_discriminator: seed.max(1),
        reports,
        metrics,
        logged: (std::time::Instant::now(), 0),
    };
    if let Some(handover) = handover {
        task.resume(handover).await;
    }
    let mut bufs = [[0u8; 512]; 4];
    loop {
        task.prepared();
        let next = task
            .sessions
            .values()
            .filter_map(|e| e.session.next_deadline())
            .chain(task.preparing.as_ref().map(|(at, _)| *at))
            .min()
            .map(Instant::from_std);
        let sockets: [Option<Arc<UdpSocket>>; 4] = match &task.sockets {
            Some(s) => s.receive.clone(),
            None => Default::default(),
        };
        let [b0, b1, b2, b3] = &mut bufs;
        let [s0, s1, s2, s3] = sockets;
        tokio::select! {
            changed = wanted.changed() => {
                if changed.is_err() {
                    break;
                }
                let peers = wanted.borrow_and_update().clone();
                task.reconcile(peers).await;
            }
            changed = stopping.changed() => {
                if changed.is_err() || *stopping.borrow_and_update() {
                    task.admin_down_all().await;
                }
            }
            Some(request) = requests.recv() => task.request(request).await,
            r = recv(s0, b0) => task.received(r, b0, false).await,
            r = recv(s1, b1) => task.received(r, b1, false).await,
            r = recv(s2, b2) => task.received(r, b2, true).await,
            r = recv(s3, b3) => task.received(r, b3, true).await,
            _ = sleep_until(next) => {
                let now = std::time::Instant::now();
                let due: Vec<String> = task
                    .sessions
                    .iter()
                    .filter(|(_, e)| e.session.next_deadline().is_some_and(|at| at <= now))
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in due {
                    task.input(&name, Input::Tick, now).await;
                }
            }
        }
    }
}

impl Task {
    fn discriminator(&mut self) -> u32 {
        loop {
            self.next_discriminator = self.next_discriminator.wrapping_add(1).max(1);
            let candidate = self.next_discriminator;
            if !self
                .sessions
                .values()
                .any(|e| e.session.local_discriminator() == candidate)
            {
                return candidate;
            }
        }
    }

    /// Continues the sessions of the previous process (see the module notes).
    async fn resume(&mut self, handover: Handover) {
        let now = std::time::Instant::now();
        self.sockets = Some(open_sockets((handover.source_port_v4, handover.source_port_v6)));
        for (name, h) in handover.sessions {
            let peer = BfdPeer {
                neighbor: h.neighbor,
                config: BfdConfig {
                    desired_min_tx_ms: h.config.desired_min_tx_us / 1000,
                    required_min_rx_ms: h.config.required_min_rx_us / 1000,
                    detect_mult: h.config.detect_mult,
                    multihop: h.multihop,
                },
            };
            if self
                .sessions
                .values()
                .any(|e| e.session.local_discriminator() == h.snapshot.local_discriminator)
            {
                warn!(peer = %name, discriminator = h.snapshot.local_discriminator, "hand-over lists a discriminator twice: session not continued");
                continue;
            }
            let session = Session::resume(session_config(&peer.config), &h.snapshot, now);
            info!(peer = %name, neighbor = %peer.neighbor, discriminator = h.snapshot.local_discriminator,
                remote_discriminator = h.snapshot.remote_discriminator, detect_mult = h.snapshot.detect_mult,
                "BFD session continued from the previous speaker process (Up, same discriminators)");
            self.add(name, peer, session, true, now).await;
        }
        self.publish();
    }

    /// Adds a session (new, or `resumed` from the previous process) and lets it send.
    async fn add(
        &mut self,
        name: String,
        peer: BfdPeer,
        session: Session,
        resumed: bool,
        now: std::time::Instant,
    ) {
        let report = Report {
            state: session.state(),
            diagnostic: session.diagnostic(),
            peer_admin_down: false,
            negotiated: session.negotiated(),
            counters: session.counters(),
            last_change: resumed.then(now_rfc3339),
        };
        if resumed {
            self.metrics.record(&name, &report);
        }
        self.sessions.insert(
            name.clone(),
            Entry {
                peer,
                session,
                report,
                resumed,
            },
        );
        self.input(&name, Input::Tick, now).await;
    }

    async fn request(&mut self, request: Request) {
        let now = std::time::Instant::now();
        match request {
            Request::Prepare { detection, done } => {
                let detection_us = u64::try_from(detection.as_micros()).unwrap_or(u64::MAX);
                let names: Vec<String> = self.sessions.keys().cloned().collect();
                for name in names {
                    self.input(&name, Input::Handover { detection_us }, now).await;
                }
                info!(
                    window_ms = detection.as_millis() as u64,
                    "BFD: peers' detection time raised for the restart (Poll Sequence)"
                );
                self.preparing = Some((now + PREPARE_WAIT, done));
            }
            Request::HandOver { reply } => {
                let _ = reply.send(self.hand_over(now).await);
            }
            Request::Settle(name) => {
                if let Some(entry) = self.sessions.get_mut(&name)
                    && entry.resumed
                {
                    entry.resumed = false;
                    let config = session_config(&entry.peer.config);
                    info!(peer = %name, detect_mult = config.detect_mult, "BGP Established again: BFD back to its configured timers (Poll Sequence)");
                    self.input(&name, Input::Configure(config), now).await;
                }
            }
        }
    }

    /// Tells a waiting [`BfdService::prepare_handover`] once no Up session polls any more, or
    /// its time is up.
    fn prepared(&mut self) {
        let Some((until, _)) = &self.preparing else {
            return;
        };
        let polling: Vec<&str> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.session.state() == State::Up && e.session.polling())
            .map(|(name, _)| name.as_str())
            .collect();
        let late = std::time::Instant::now() >= *until;
        if polling.is_empty() || late {
            if late {
                warn!(peers = ?polling, "no Final from these BFD peers: their detection time may not cover the restart");
            }
            if let Some((_, done)) = self.preparing.take() {
                let _ = done.send(());
            }
        }
    }

    /// Every Up session's snapshot; AdminDown for the others (nothing to continue).
    async fn hand_over(&mut self, now: std::time::Instant) -> Handover {
        let port = |socket: &Option<UdpSocket>| {
            socket
                .as_ref()
                .and_then(|s| s.local_addr().ok())
                .map(|a| a.port())
        };
        let (v4, v6) = self
            .sockets
            .as_ref()
            .map_or((None, None), |s| (port(&s.send4), port(&s.send6)));
        let mut sessions = BTreeMap::new();
        let names: Vec<String> = self.sessions.keys().cloned().collect();
        for name in names {
            let Some(entry) = self.sessions.get(&name) else {
                continue;
            };
            match entry.session.snapshot() {
                Some(snapshot) => {
                    sessions.insert(
                        name,
                        SessionHandover {
                            neighbor: entry.peer.neighbor,
                            multihop: entry.peer.config.multihop,
                            config: session_config(&entry.peer.config),
                            snapshot,
                        },
                    );
                }
                None => self.input(&name, Input::AdminDown, now).await,
            }
        }
        Handover {
            format: FORMAT,
            node: String::new(),
            written_unix_ms: 0,
            window_ms: 0,
            source_port_v4: v4,
            source_port_v6: v6,
            sessions,
        }
    }

    async fn reconcile(&mut self, peers: BTreeMap<String, BfdPeer>) {
        let now = std::time::Instant::now();
        let gone: Vec<String> = self
            .sessions
            .keys()
            .filter(|name| !peers.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            // Disabled or removed: say AdminDown once so the router does not see a failure.
            self.input(&name, Input::AdminDown, now).await;
            self.sessions.remove(&name);
            self.metrics.forget(&name);
            info!(peer = %name, "BFD session removed");
        }
        if !peers.is_empty() && self.sockets.is_none() {
            self.sockets = Some(open_sockets((None, None)));
        }
        for (name, peer) in peers {
            match self.sessions.get_mut(&name) {
                Some(entry) if entry.peer == peer => {}
                Some(entry)
                    if entry.peer.neighbor == peer.neighbor
                        && entry.peer.config.multihop == peer.config.multihop =>
                {
                    info!(peer = %name, desired_min_tx_ms = peer.config.desired_min_tx_ms, required_min_rx_ms = peer.config.required_min_rx_ms,
                        detect_mult = peer.config.detect_mult, "BFD timers changed: Poll Sequence, BGP session untouched");
                    entry.peer = peer;
                    entry.resumed = false;
                    let config = session_config(&peer.config);
                    self.input(&name, Input::Configure(config), now).await;
                }
                _ => {
                    if self.sessions.contains_key(&name) {
                        self.input(&name, Input::AdminDown, now).await;
                    }
                    let discriminator = self.discriminator();
                    let session = Session::new(session_config(&peer.config), discriminator, now);
                    info!(peer = %name, neighbor = %peer.neighbor, multihop = peer.config.multihop, discriminator,
                        desired_min_tx_ms = peer.config.desired_min_tx_ms, required_min_rx_ms = peer.config.required_min_rx_ms,
                        detect_mult = peer.config.detect_mult, "starting BFD session");
                    self.add(name, peer, session, false, now).await;
                }
            }
        }
        self.publish();
    }

    async fn admin_down_all(&mut self) {
        let now = std::time::Instant::now();
        let names: Vec<String> = self.sessions.keys().cloned().collect();
        for name in names {
            info!(peer = %name, "BFD AdminDown: this speaker is stopping (not a failure, RFC 5882)");
            self.input(&name, Input::AdminDown, now).await;
        }
    }

    async fn received(&mut self, result: std::io::Result<(usize, SocketAddr)>, buf: &[u8], multihop: bool) {
        let (len, from) = match result {
            Ok(r) => r,
            Err(error) => {
                debug!(%error, "BFD receive failed");
                return;
            }
        };
        let bytes = buf.get(..len).unwrap_or_default();
        let packet = match wire::decode(bytes) {
            Ok(packet) => packet,
            Err(error) => {
                self.metrics.invalid.inc();
                let now = std::time::Instant::now();
                if now.duration_since(self.logged.0) > Duration::from_secs(1) {
                    self.logged = (now, 0);
                }
                self.logged.1 += 1;
                if self.logged.1 <= 5 {
                    warn!(%from, len, %error, "BFD packet discarded (RFC 5880 section 6.8.6)");
                }
                return;
            }
        };
        let source = unmapped(from.ip());
        let target = if packet.your_discriminator != 0 {
            self.sessions
                .iter()
                .find(|(_, e)| e.session.local_discriminator() == packet.your_discriminator)
        } else {
            self.sessions
                .iter()
                .find(|(_, e)| e.peer.neighbor == source && e.peer.config.multihop == multihop)
        }
        .map(|(name, _)| name.clone());
        match target {
            Some(name) => {
                self.input(&name, Input::Received(packet), std::time::Instant::now())
                    .await
            }
            None => {
                debug!(%from, your_discriminator = packet.your_discriminator, "BFD packet for no session of this node")
            }
        }
    }

    /// Feeds one input to a session, sends its packets, logs its changes, publishes its report.
    async fn input(&mut self, name: &str, input: Input, now: std::time::Instant) {
        let Some(entry) = self.sessions.get_mut(name) else {
            return;
        };
        let out = entry.session.handle(input, now);
        let port = if entry.peer.config.multihop {
            PORT_MULTIHOP
        } else {
            PORT_SINGLE_HOP
        };
        let to = SocketAddr::new(entry.peer.neighbor, port);
        if let Some(sockets) = &self.sockets {
            let socket = if to.is_ipv4() {
                &sockets.send4
            } else {
                &sockets.send6
            };
            for packet in &out.send {
                if let Some(socket) = socket
                    && let Err(error) = socket.send_to(&wire::encode(packet), to).await
                {
                    debug!(peer = %name, %to, %error, "BFD send failed");
                }
            }
        }
        for change in &out.changes {
            match *change {
                Change::State {
                    from,
                    to,
                    diagnostic,
                    peer_admin_down,
                } => {
                    let (from, to) = (from.as_str(), to.as_str());
                    if peer_admin_down {
                        info!(peer = %name, from, to, "BFD session down: the peer said AdminDown (a graceful stop, not a failure)");
                    } else if to == "Down" && from == "Up" {
                        warn!(peer = %name, from, to, diagnostic = diagnostic.as_str(), "BFD session down");
                    } else {
                        info!(peer = %name, from, to, diagnostic = diagnostic.as_str(), "BFD state changed");
                    }
                    entry.report.peer_admin_down = peer_admin_down;
                    entry.report.last_change = Some(now_rfc3339());
                }
                Change::PeerDiscriminator { from, to } => {
                    warn!(peer = %name, from, to, "BFD peer changed its discriminator (it restarted, or another sender uses its address)");
                }
                Change::Negotiated(n) => {
                    info!(peer = %name, tx_interval_ms = n.tx_interval_us / 1000, detection_time_ms = n.detection_time_us / 1000,
                        peer_detect_mult = n.peer_detect_mult, peer_desired_min_tx_ms = n.peer_desired_min_tx_us / 1000,
                        peer_required_min_rx_ms = n.peer_required_min_rx_us / 1000, "BFD intervals in use");
                }
                Change::Discarded(reason) => {
                    debug!(peer = %name, ?reason, "BFD packet discarded by the session");
                }
            }
        }
        entry.report.state = entry.session.state();
        entry.report.diagnostic = entry.session.diagnostic();
        entry.report.negotiated = entry.session.negotiated();
        entry.report.counters = entry.session.counters();
        if !out.changes.is_empty() {
            self.metrics.record(name, &entry.report);
            self.publish();
        }
    }

    /// Publishes the reports when a state, diagnostic or negotiated value changed (packet
    /// counters alone do not wake the BGP drivers).
    fn publish(&self) {
        let reports: Reports = self
            .sessions
            .iter()
            .map(|(name, e)| (name.clone(), e.report.clone()))
            .collect();
        self.reports.send_if_modified(|current| {
            let key = |r: &Reports| {
                r.iter()
                    .map(|(n, r)| {
                        (
                            n.clone(),
                            r.state,
                            r.diagnostic,
                            r.peer_admin_down,
                            r.negotiated,
                            r.last_change.clone(),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            let changed = key(current) != key(&reports);
            if changed {
                *current = reports;
            }
            changed
        });
    }
}
