//! BFD for the BGP sessions that ask for it (BgpPeer `spec.bfd`, an oxelb extension): the UDP
//! I/O around the sans-IO sessions of `oxelb-bfd`, one task for all of this node's sessions.
//!
//! - Sockets (RFC 5881 section 4, RFC 5883 section 5): control packets are received on UDP 3784
//!   (single hop) and 4784 (multihop), IPv4 and IPv6, and sent from one socket per family bound
//!   to a source port in 49152..=65535, with TTL (hop limit) 255. Single-hop receive sockets drop
//!   anything that arrives with a TTL below 255 (`IP_MINTTL`, RFC 5881 section 5: GTSM), so a
//!   packet from off-link can never hold a session up.
//! - Demultiplexing (RFC 5880 section 6.8.6): by Your Discriminator when non-zero, else by the
//!   source address and the port it arrived on.
//! - The manager hands the complete set of wanted sessions ([`BfdService::set`]); a change to one
//!   peer's timers reconfigures only its BFD session (a Poll Sequence), never the BGP session.
//! - Each session's state is published ([`Reports`]) for the BGP drivers (the coupling), status,
//!   metrics and Events.
//! - [`BfdService::admin_down`] sends AdminDown on every session (a stopping speaker): RFC 5882
//!   section 3.2 says the peer must not treat it as a failure.
//! - Hand-over across a restart (`oxelb_bfd::handover`): [`BfdService::prepare_handover`]
//!   raises every Up session's Detect Mult so the peer's Detection Time covers the restart
//!   window, [`BfdService::hand_over`] gives their snapshots, which [`store_handover`] writes to
//!   the state directory; the next process reads it ([`load_handover`]), continues the sessions
//!   in Up from [`BfdService::spawn`] on, and [`BfdService::settle`] polls each back to its
//!   configured timers once its BGP session is Established again. Routers that take any BFD
//!   Down during graceful restart for a failure (BIRD 2.0) then keep the routes.
//!
//! Sockets are opened only when the first session is wanted, so a speaker without BFD binds
//! nothing and holds no memory for it.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::AsFd,
    path::Path,
    sync::Arc,
    time::Duration,
};

use oxelb_bfd::{
    handover::{FORMAT, Handover, SessionHandover},
    session::{Change, Config, Counters, Input, Negotiated, Session},
    wire::{self, Diagnostic, PORT_MULTIHOP, PORT_SINGLE_HOP, State},
};
use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::{debug, info, warn};

use crate::clock::{now_rfc3339, sleep_until};
use oxelb_speaker_core::sessions::BfdConfig;

/// One wanted BFD session: the BgpPeer's neighbour and its resolved timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdPeer {
    /// The neighbour (`conf.neighborAddress`).
    pub neighbor: IpAddr,
    /// Timers and hop mode.
    pub config: BfdConfig,
}

/// A session's state as the BGP driver, status, metrics and Events see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The local state.
    pub state: State,
    /// Why it last changed.
    pub diagnostic: Diagnostic,
    /// The last change to Down came from the peer's AdminDown: a graceful stop, not a failure
    /// (RFC 5882 section 3.2).
    pub peer_admin_down: bool,
    /// The intervals in use once the peer was heard.
    pub negotiated: Option<Negotiated>,
    /// Packet and transition counters.
    pub counters: Counters,
    /// When the state last changed (RFC 3339).
    pub last_change: Option<String>,
}

/// Every session's report, by BgpPeer name. A peer is in the map exactly while BFD is wanted
/// for it.
pub type Reports = BTreeMap<String, Report>;

/// The BFD metrics.
#[derive(Clone, Debug, Default)]
pub struct BfdMetrics {
    up: Family<Labels, Gauge>,
    transitions: Family<Labels, Gauge>,
    detection: Family<Labels, Gauge>,
    invalid: Counter,
}

type Labels = Vec<(&'static str, String)>;

impl BfdMetrics {
    /// Creates and registers the families.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "oxelb_bfd_session_up",
            "1 while the BFD session to the BgpPeer is Up",
            m.up.clone(),
        );
        registry.register(
            "oxelb_bfd_session_down_transitions",
            "Times the BFD session went from Up to Down (flaps) in the current process",
            m.transitions.clone(),
        );
        registry.register(
            "oxelb_bfd_detection_time_milliseconds",
            "Negotiated BFD detection time: silence this long declares the peer down",
            m.detection.clone(),
        );
        registry.register(
            "oxelb_bfd_packets_invalid",
            "Received BFD packets that failed the RFC 5880 section 6.8.6 checks",
            m.invalid.clone(),
        );
        m
    }

    fn record(&self, peer: &str, report: &Report) {
        let labels = vec![("peer", peer.to_owned())];
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.up
            .get_or_create(&labels)
            .set(i64::from(report.state == State::Up));
        self.transitions
            .get_or_create(&labels)
            .set(n(report.counters.down));
        self.detection
            .get_or_create(&labels)
            .set(n(report.negotiated.map_or(0, |x| x.detection_time_us / 1000)));
    }

    fn forget(&self, peer: &str) {
        let labels = vec![("peer", peer.to_owned())];
        self.up.remove(&labels);
        self.transitions.remove(&labels);
        self.detection.remove(&labels);
    }
}

/// The running BFD task.
pub struct BfdService {
    wanted: watch::Sender<BTreeMap<String, BfdPeer>>,
    stopping: watch::Sender<bool>,
    requests: mpsc::UnboundedSender<Request>,
    reports: watch::Receiver<Reports>,
    task: JoinHandle<()>,
}

/// What the manager asks of the task beside the wanted set.
enum Request {
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
const PREPARE_WAIT: Duration = Duration::from_millis(500);

impl BfdService {
    /// Starts the task. Sessions of `handover` (read by [`load_handover`] from the previous
    /// process) are continued at once, in Up with their discriminators; the others start when
    /// wanted, and the sockets are bound when the first session is.
    pub fn spawn(metrics: BfdMetrics, handover: Option<Handover>) -> Self {
        let (wanted, wanted_rx) = watch::channel(BTreeMap::new());
        let (stopping, stopping_rx) = watch::channel(false);
        let (requests, requests_rx) = mpsc::unbounded_channel();
        let (reports_tx, reports) = watch::channel(Reports::new());
        let task = tokio::spawn(run(
            wanted_rx,
            stopping_rx,
            requests_rx,
            reports_tx,
            metrics,
            handover,
        ));
        Self {
            wanted,
            stopping,
            requests,
            reports,
            task,
        }
    }

    /// Before a hand-over: raises every Up session's Detection Time at its peer to
    /// `detection` (a Poll Sequence, `oxelb_bfd::session::Input::Handover`) and waits for the
    /// Finals, at most half a second.
    pub async fn prepare_handover(&self, detection: Duration) {
        let (done, wait) = oneshot::channel();
        if self.requests.send(Request::Prepare { detection, done }).is_ok() {
            let _ = tokio::time::timeout(PREPARE_WAIT + Duration::from_millis(100), wait).await;
        }
    }

    /// The snapshots of every Up session, to be written for the next process; the sessions
    /// keep running (with the raised Detect Mult) until the task stops, and no AdminDown is
    /// sent. Sessions not Up are sent AdminDown (there is nothing to continue).
    pub async fn hand_over(&self) -> Option<Handover> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(Request::HandOver { reply }).ok()?;
        answer.await.ok()
    }

    /// The BGP session of `peer` is Established: a session continued from the previous
    /// process goes back to its configured timers (a Poll Sequence). Any other call does
    /// nothing.
    pub fn settle(&self, peer: &str) {
        let _ = self.requests.send(Request::Settle(peer.to_owned()));
    }

    /// The complete set of wanted sessions, by BgpPeer name.
    pub fn set(&self, peers: BTreeMap<String, BfdPeer>) {
        self.wanted.send_if_modified(|w| {
            let changed = *w != peers;
            *w = peers;
            changed
        });
    }

    /// The sessions' reports.
    pub fn reports(&self) -> watch::Receiver<Reports> {
        self.reports.clone()
    }

    /// Sends AdminDown on every session and keeps sending it, waiting `linger` for the packets
    /// to leave (a stopping speaker; RFC 5880 section 6.8.16).
    pub async fn admin_down(&self, linger: Duration) {
        let _ = self.stopping.send(true);
        tokio::time::sleep(linger).await;
    }

    /// Ends the task.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Where and how a stopping speaker hands its BFD sessions to the next process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoverSettings {
    /// The state directory (`--state-dir`; a host directory on tmpfs, so a reboot forgets it).
    pub state_dir: std::path::PathBuf,
    /// The restart window (`--bfd-restart-window-ms`): the Detection Time the peers get while
    /// the speaker restarts. Zero turns the hand-over off: a stopping speaker then sends
    /// AdminDown, as before.
    pub window: Duration,
    /// This node.
    pub node: String,
}

/// The hand-over file in the state directory.
pub const HANDOVER_FILE: &str = "bfd-handover.json";

/// Why the hand-over file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// Reading, writing or renaming failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Serialization failed.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Milliseconds since the Unix epoch (the hand-over's clock: two processes read it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes `handover` to `dir`/[`HANDOVER_FILE`] atomically (a temporary file renamed over it),
/// so the next process reads all of it or nothing.
pub fn store_handover(dir: &Path, handover: &Handover) -> Result<(), HandoverError> {
    let path = dir.join(HANDOVER_FILE);
    let text = serde_json::to_vec_pretty(handover).map_err(|source| HandoverError::Json {
        path: path.clone(),
        source,
    })?;
    oxelb_runtime::source::dir::write_atomically(&path, text)
        .map_err(|source| HandoverError::Io { path, source })
}

/// Reads and removes `dir`/[`HANDOVER_FILE`], and returns it when node `node` may continue its
/// sessions at `now_unix_ms`; otherwise logs why not (naming the file) and returns `None`.
pub fn load_handover(dir: &Path, node: &str, now_unix_ms: u64) -> Option<Handover> {
    let path = dir.join(HANDOVER_FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            debug!(file = %path.display(), "no BFD hand-over from a previous speaker process");
            return None;
        }
        Err(error) => {
            warn!(file = %path.display(), %error, "BFD hand-over not read: sessions start afresh");
            return None;
        }
    };
    // Used once at most: a later start must not continue sessions from an older process.
    if let Err(error) = std::fs::remove_file(&path) {
        warn!(file = %path.display(), %error, "cannot remove the BFD hand-over file");
    }
    let handover: Handover = match serde_json::from_slice(&text) {
        Ok(h) => h,
        Err(error) => {
            warn!(file = %path.display(), %error, "BFD hand-over is corrupt: ignored, sessions start afresh");
            return None;
        }
    };
    match handover.check(node, now_unix_ms) {
        Ok(()) => {
            info!(file = %path.display(), sessions = handover.sessions.len(), age_ms = now_unix_ms.saturating_sub(handover.written_unix_ms),
                "BFD hand-over from the previous speaker process");
            Some(handover)
        }
        Err(reason) => {
            warn!(file = %path.display(), %reason, "BFD hand-over ignored: sessions start afresh");
            None
        }
    }
}

struct Entry {
    peer: BfdPeer,
    session: Session,
    report: Report,
    /// Continued from the previous process and still on its raised Detect Mult.
    resumed: bool,
}

/// The receive sockets (single hop v4, v6; multihop v4, v6) and the two send sockets.
#[derive(Default)]
struct Sockets {
    receive: [Option<Arc<UdpSocket>>; 4],
    send4: Option<UdpSocket>,
    send6: Option<UdpSocket>,
}

fn session_config(config: &BfdConfig) -> Config {
    Config {
        desired_min_tx_us: config.desired_min_tx_ms.saturating_mul(1000),
        required_min_rx_us: config.required_min_rx_ms.saturating_mul(1000),
        detect_mult: config.detect_mult,
    }
}

/// The sockets of RFC 5881 and 5883; each that cannot be opened is logged and left out (its
/// sessions then stay Down, and so do their BGP sessions: the log line says why). The send
/// sockets take the source ports of `ports` (IPv4, IPv6) when free: a continued session keeps
/// its port (RFC 5881 section 4).
fn open_sockets(ports: (Option<u16>, Option<u16>)) -> Sockets {
    let mut sockets = Sockets::default();
    let plan = [
        (IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT_SINGLE_HOP, true),
        (IpAddr::V6(Ipv6Addr::UNSPECIFIED), PORT_SINGLE_HOP, true),
        (IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT_MULTIHOP, false),
        (IpAddr::V6(Ipv6Addr::UNSPECIFIED), PORT_MULTIHOP, false),
    ];
    for (slot, (ip, port, gtsm)) in plan.into_iter().enumerate() {
        match bind(SocketAddr::new(ip, port), gtsm) {
            Ok(socket) => sockets.receive[slot] = Some(Arc::new(socket)),
            Err(error) => {
                warn!(address = %SocketAddr::new(ip, port), %error, "cannot receive BFD packets there: BFD sessions on it stay Down, and so do their BGP sessions")
            }
        }
    }
    for ip in [
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    ] {
        let port = if ip.is_ipv4() { ports.0 } else { ports.1 };
        match bind_source(ip, port) {
            Ok(socket) if ip.is_ipv4() => sockets.send4 = Some(socket),
            Ok(socket) => sockets.send6 = Some(socket),
            Err(error) => {
                warn!(family = if ip.is_ipv4() { "IPv4" } else { "IPv6" }, %error, "cannot open a BFD send socket")
            }
        }
    }
    sockets
}

fn udp(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind(addr: SocketAddr, gtsm: bool) -> std::io::Result<UdpSocket> {
    let socket = udp(addr)?;
    socket.set_reuse_address(true)?;
    if gtsm {
        crate::sys::set_min_ttl(socket.as_fd(), addr.is_ipv6(), wire::TTL)?;
    }
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// A send socket on a source port in 49152..=65535 (RFC 5881 section 4), `preferred` when
/// given and free, TTL 255.
fn bind_source(ip: IpAddr, preferred: Option<u16>) -> std::io::Result<UdpSocket> {
    let socket = udp(SocketAddr::new(ip, 0))?;
    if ip.is_ipv6() {
        socket.set_unicast_hops_v6(u32::from(wire::TTL))?;
    } else {
        socket.set_ttl_v4(u32::from(wire::TTL))?;
    }
    if let Some(port) = preferred.filter(|p| *p >= 49152) {
        match socket.bind(&SocketAddr::new(ip, port).into()) {
            Ok(()) => return UdpSocket::from_std(socket.into()),
            Err(error) => {
                warn!(port, %error, "cannot keep the BFD source port of the previous process: another is used")
            }
        }
    }
    // Start at a per-process offset so that two speakers' sockets rarely probe the same ports.
    let start = 49152 + (std::process::id() % 16384) as u16;
    let mut last = None;
    for i in 0..16384u16 {
        let port = 49152 + (start - 49152 + i) % 16384;
        match socket.bind(&SocketAddr::new(ip, port).into()) {
            Ok(()) => return UdpSocket::from_std(socket.into()),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free source port")))
}

async fn recv(socket: Option<Arc<UdpSocket>>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(socket) => socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
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

async fn run(
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A hand-over as the file holds it (the format the next process must keep reading).
    fn handover(node: &str, written_unix_ms: u64) -> Handover {
        let json = format!(
            r#"{{"format": 1, "node": "{node}", "written_unix_ms": {written_unix_ms}, "window_ms": 10000,
              "source_port_v4": 50000, "source_port_v6": null,
              "sessions": {{"router": {{"neighbor": "192.0.2.1", "multihop": false,
                "config": {{"desired_min_tx_us": 300000, "required_min_rx_us": 300000, "detect_mult": 3}},
                "snapshot": {{"local_discriminator": 42, "remote_discriminator": 7,
                  "desired_min_tx_us": 300000, "required_min_rx_us": 300000, "detect_mult": 34,
                  "remote_desired_min_tx_us": 300000, "remote_required_min_rx_us": 300000,
                  "remote_detect_mult": 3}}}}}}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn a_stored_handover_is_read_back_once_by_its_node_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let written = handover("n1", 1_000_000);
        store_handover(&state, &written).unwrap();
        // Atomic: only the file itself is left, no temporary beside it.
        let names: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(HANDOVER_FILE)]);
        assert_eq!(load_handover(&state, "n1", 1_002_000), Some(written));
        assert_eq!(load_handover(&state, "n1", 1_002_000), None, "used once");
    }

    #[test]
    fn absent_corrupt_foreign_and_stale_handovers_are_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        assert_eq!(load_handover(state, "n1", 1_000_000), None);
        std::fs::write(state.join(HANDOVER_FILE), "{not json").unwrap();
        assert_eq!(load_handover(state, "n1", 1_000_000), None);
        assert!(!state.join(HANDOVER_FILE).exists());
        store_handover(state, &handover("n2", 1_000_000)).unwrap();
        assert_eq!(load_handover(state, "n1", 1_000_000), None);
        assert!(!state.join(HANDOVER_FILE).exists());
        store_handover(state, &handover("n1", 1_000_000)).unwrap();
        assert_eq!(load_handover(state, "n1", 1_010_000), None);
        assert!(!state.join(HANDOVER_FILE).exists());
    }
}
