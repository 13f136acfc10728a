//! Heartbeats on the wire: the UDP adapter around [`oxelb_speaker_core::liveness`]. Every
//! [`LivenessConfig::interval`] this speaker sends an authenticated heartbeat (the layer2 pools it
//! can serve, whom it hears, the digest of its applied view) to every other node's InternalIP, IPv4
//! or IPv6 (one dual-stack socket, so IPv6-only and dual-stack node networks work alike), and it
//! records the ones it receives. The responder asks [`Liveness`] who is alive, what they serve,
//! whether the peers' views agree, and whether this speaker has standing; it is woken the moment a
//! heartbeat changes something ([`Liveness::changed`]) and at the next deadline
//! ([`Liveness::next_deadline`]), never by a periodic tick.
//!
//! After each heartbeat goes a claims datagram ([`oxelb_speaker_core::liveness::Claims`]): what
//! the applied view holds, what this speaker answers and wants to begin, and how far its Service
//! watch has got. A separate datagram, so that speakers of the previous version, which do not
//! know it, still read the heartbeats (they log it as malformed and go on).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{
    net::UdpSocket,
    sync::{Notify, watch},
    time::Instant,
};
use tracing::{debug, info, warn};

use oxelb_speaker_core::{
    liveness::{
        Claims, Heartbeat, HeartbeatError, HeartbeatKey, LivenessConfig, Membership, Recorded, SettleGate,
        Standing, decode, decode_claims, encode, encode_claims, is_claims, name_hash,
    },
    plan::SpeakerState,
    standin::Evidence,
    tiebreak::ApiFacts,
};

/// What this speaker has applied, for its heartbeats and claims: set by the announcer after each
/// decision is in force (an IP it lost is no longer answered by then).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The digest of the applied layer2 view.
    pub view: u64,
    /// The highest Service `resourceVersion` the view was built after (0: unknown).
    pub progress: u64,
    /// The layer2 IPs of the view.
    pub known: BTreeSet<IpAddr>,
    /// The IPs answered now.
    pub answering: BTreeSet<IpAddr>,
    /// The IPs won and waiting to begin.
    pub wanted: BTreeSet<IpAddr>,
}

/// How many leaving heartbeats are sent on shutdown (datagrams may be lost), and how far apart.
const LEAVING_REPEATS: u32 = 3;
const LEAVING_SPACING: Duration = Duration::from_millis(5);
/// At most one "heartbeat ignored" warning per sender address in this interval (a flapping or
/// misconfigured peer must not flood the log).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What the sender needs besides the membership.
struct Sender {
    socket: UdpSocket,
    key: HeartbeatKey,
    node_name: String,
    port: u16,
    incarnation: u64,
    seq: Mutex<u64>,
    /// Where each peer's heartbeats last came from, and when: peers this speaker hears are sent
    /// heartbeats even before its own object view lists their Node (a node re-joining must hear
    /// every live peer within its settle time, or it takes their IPs for dead ones').
    heard_from: Mutex<BTreeMap<String, (SocketAddr, Instant)>>,
}

/// The shared view of the other speakers, fed by the receiver.
#[derive(Clone)]
pub struct Liveness {
    membership: Arc<Mutex<Membership>>,
    gate: Arc<Mutex<SettleGate>>,
    origin: Instant,
    config: LivenessConfig,
    changed: Arc<Notify>,
    sender: Arc<Sender>,
    states: watch::Receiver<Arc<SpeakerState>>,
    serving: watch::Receiver<BTreeSet<String>>,
    applied: watch::Receiver<Arc<Applied>>,
}

impl Liveness {
    /// Time on the speaker's monotonic timeline (what the pure code takes).
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The instant of `at` on the same timeline.
    pub fn instant(&self, at: Duration) -> Instant {
        self.origin + at
    }

    /// The timing in force.
    pub fn config(&self) -> LivenessConfig {
        self.config
    }

    fn membership(&self) -> std::sync::MutexGuard<'_, Membership> {
        self.membership.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The speakers alive now, this one included.
    pub fn alive(&self) -> BTreeSet<String> {
        let now = self.now();
        self.membership().alive(now)
    }

    /// The pools each live peer can serve.
    pub fn serving(&self) -> BTreeMap<String, BTreeSet<String>> {
        let now = self.now();
        self.membership().serving(now)
    }

    /// The pools every peer last announced, dead or alive (for the view digest).
    pub fn last_serving(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.membership().last_serving()
    }

    /// Whether every peer heard announces `view` as its applied view; else who does not.
    pub fn agreement(&self, view: u64) -> Result<(), BTreeSet<String>> {
        let now = self.now();
        let m = self.membership();
        if m.agreed(now, view) {
            Ok(())
        } else {
            Err(m.disagreeing(now, view))
        }
    }

    /// What the live peers' claims say, for the stand-in election and the begin rule;
    /// `progress` is this speaker's own ([`oxelb_speaker_core::standin`]).
    pub fn evidence(&self, progress: u64) -> Evidence {
        let now = self.now();
        self.membership().evidence(now, progress)
    }

    /// Whether this speaker may answer, given the speakers expected to run and what the
    /// apiserver tells (the two-node tie-break, [`oxelb_speaker_core::tiebreak`]).
    pub fn standing(&self, expected: &BTreeSet<String>, api: ApiFacts) -> Standing {
        let now = self.now();
        self.membership().standing(now, expected, api)
    }

    /// Whether this speaker may answer now, given whether it has standing: only once it has held
    /// standing for one `dead_after` (see [`SettleGate`]).
    pub fn settled(&self, standing: bool) -> bool {
        let now = self.now();
        self.gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .open(now, standing)
    }

    /// The next moment the decision may change with no heartbeat arriving: a peer's expiry or the
    /// settle gate opening.
    pub fn next_deadline(&self) -> Option<Duration> {
        let now = self.now();
        let expiry = self.membership().next_expiry(now);
        let gate = self
            .gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .opens_at()
            .filter(|at| *at > now);
        [expiry, gate].into_iter().flatten().min()
    }

    /// Resolves when a heartbeat changed the membership (a new, revived or leaving peer, new
    /// facts, a new view).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Sends one heartbeat to every other node now (`leaving`: the last ones, on shutdown).
    async fn beat(&self, leaving: bool) {
        let hears = {
            let now = self.now();
            self.membership()
                .hearing(now)
                .iter()
                .map(|n| name_hash(n))
                .collect()
        };
        let seq = {
            let mut seq = self.sender.seq.lock().unwrap_or_else(|e| e.into_inner());
            *seq += 1;
            *seq
        };
        let applied = self.applied.borrow().clone();
        let beat = Heartbeat {
            node: self.sender.node_name.clone(),
            incarnation: self.sender.incarnation,
            seq,
            serving: self.serving.borrow().clone(),
            hears,
            view: Some(applied.view),
            leaving,
        };
        let bytes = match encode(&beat, &self.sender.key) {
            Ok(bytes) => bytes,
            Err(error) => {
                warn!(%error, "heartbeat not sent");
                return;
            }
        };
        // A leaving speaker answers nothing and is gone: its heartbeat says all.
        let claims = if leaving {
            None
        } else {
            let claims = Claims::new(
                self.sender.node_name.clone(),
                self.sender.incarnation,
                seq,
                applied.view,
                applied.progress,
                &applied.known,
                &applied.answering,
                &applied.wanted,
            );
            match encode_claims(&claims, &self.sender.key) {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    warn!(%error, "claims not sent");
                    None
                }
            }
        };
        let state = self.states.borrow().clone();
        let mut targets: BTreeMap<String, SocketAddr> = BTreeMap::new();
        for node in state.nodes.iter().filter(|n| n.name != self.sender.node_name) {
            // The first InternalIP (IPv4 first on dual-stack nodes, see `NodeFacts`), IPv4 as a
            // mapped address on the dual-stack socket.
            if let Some(ip) = node.internal_ips.first().copied() {
                targets.insert(
                    node.name.clone(),
                    SocketAddr::new(IpAddr::V6(mapped(ip)), self.sender.port),
                );
            }
        }
        {
            let now = Instant::now();
            let mut heard = self.sender.heard_from.lock().unwrap_or_else(|e| e.into_inner());
            heard.retain(|_, (_, at)| now.duration_since(*at) < self.config.dead_after);
            for (name, (from, _)) in heard.iter() {
                targets.entry(name.clone()).or_insert(*from);
            }
        }
        for (peer, to) in targets {
            if let Err(error) = self.sender.socket.send_to(&bytes, to).await {
                debug!(%peer, %to, %error, "heartbeat not sent");
            }
            if let Some(claims) = &claims
                && let Err(error) = self.sender.socket.send_to(claims, to).await
            {
                debug!(%peer, %to, %error, "claims not sent");
            }
        }
    }

    /// Tells the peers this speaker is leaving (they take its IPs over at once). The caller has
    /// already stopped answering.
    pub async fn leave(&self) {
        for i in 0..LEAVING_REPEATS {
            if i > 0 {
                tokio::time::sleep(LEAVING_SPACING).await;
            }
            self.beat(true).await;
        }
        info!("told the peers this speaker is leaving");
    }
}

/// Whether a datagram from `from` that was ignored deserves a warning: at most one per sender
/// address every [`WARN_EVERY`].
fn should_warn(warned: &mut BTreeMap<IpAddr, Instant>, from: IpAddr) -> bool {
    let now = Instant::now();
    if warned
        .get(&from)
        .is_some_and(|at| now.duration_since(*at) < WARN_EVERY)
    {
        return false;
    }
    warned.retain(|_, at| now.duration_since(*at) < WARN_EVERY);
    warned.insert(from, now);
    true
}

/// `ip` as an IPv6 address: IPv4 as IPv4-mapped (RFC 4291 section 2.5.5.2), which a dual-stack
/// socket sends as IPv4.
fn mapped(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// One UDP socket for both families: `[::]:port` with `IPV6_V6ONLY` off.
fn bind(port: u16) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV6,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_only_v6(false)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
    UdpSocket::from_std(socket.into())
}

/// Binds the heartbeat port and starts sending and receiving; returns the shared view.
/// `applied`: what the caller has applied (its view's digest goes into every heartbeat, the rest
/// into the claims).
pub async fn start(
    node_name: String,
    port: u16,
    key: Vec<u8>,
    config: LivenessConfig,
    states: watch::Receiver<Arc<SpeakerState>>,
    serving: watch::Receiver<BTreeSet<String>>,
    applied: watch::Receiver<Arc<Applied>>,
) -> std::io::Result<Liveness> {
    let socket = bind(port)?;
    let incarnation = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let liveness = Liveness {
        membership: Arc::new(Mutex::new(Membership::new(node_name.clone(), config))),
        gate: Arc::new(Mutex::new(SettleGate::new(config.dead_after))),
        origin: Instant::now(),
        config,
        changed: Arc::new(Notify::new()),
        sender: Arc::new(Sender {
            socket,
            key: HeartbeatKey::new(&key),
            node_name,
            port,
            incarnation,
            seq: Mutex::new(0),
            heard_from: Mutex::new(BTreeMap::new()),
        }),
        states,
        serving,
        applied,
    };
    info!(
        port,
        interval_ms = u64::try_from(config.interval.as_millis()).unwrap_or(u64::MAX),
        dead_after_ms = u64::try_from(config.dead_after.as_millis()).unwrap_or(u64::MAX),
        "heartbeats on (IPv4 and IPv6)"
    );
    // Sender: every interval, and at once when what is applied changes (peers waiting for the
    // view to agree, or for an IP to be let go, need not wait an interval).
    {
        let liveness = liveness.clone();
        let mut applied = liveness.applied.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(config.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    changed = applied.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        applied.borrow_and_update();
                        tick.reset();
                    }
                }
                liveness.beat(false).await;
            }
        });
    }
    // Receiver.
    {
        let liveness = liveness.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let mut warned: BTreeMap<IpAddr, Instant> = BTreeMap::new();
            loop {
                let (n, from) = match liveness.sender.socket.recv_from(&mut buf).await {
                    Ok(got) => got,
                    Err(error) => {
                        debug!(%error, "heartbeat receive failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let Some(datagram) = buf.get(..n) else {
                    continue;
                };
                if is_claims(datagram) {
                    match decode_claims(datagram, &liveness.sender.key) {
                        Ok(claims) => {
                            if liveness.membership().record_claims(&claims) == Recorded::Changed {
                                liveness.changed.notify_one();
                            }
                        }
                        Err(error) => {
                            if should_warn(&mut warned, from.ip()) {
                                warn!(%from, %error, "claims ignored");
                            }
                        }
                    }
                    continue;
                }
                match decode(datagram, &liveness.sender.key) {
                    Ok(beat) => {
                        let now = liveness.now();
                        let recorded = liveness.membership().record(&beat, now);
                        if recorded != Recorded::Ignored && !beat.leaving {
                            liveness
                                .sender
                                .heard_from
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(beat.node.clone(), (from, Instant::now()));
                        }
                        match recorded {
                            Recorded::Changed => {
                                if beat.leaving {
                                    info!(peer = %beat.node, "peer is leaving: taking over its IPs now");
                                }
                                liveness.changed.notify_one();
                            }
                            Recorded::Refreshed => {}
                            Recorded::Ignored if beat.node != liveness.sender.node_name => {
                                debug!(peer = %beat.node, seq = beat.seq, "stale or replayed heartbeat ignored");
                            }
                            Recorded::Ignored => {}
                        }
                    }
                    Err(error) => {
                        if should_warn(&mut warned, from.ip()) {
                            let peer = match &error {
                                HeartbeatError::BadMac { node } => node.as_str(),
                                HeartbeatError::Malformed(_) => "",
                            };
                            warn!(%from, peer, %error, "heartbeat ignored");
                        }
                    }
                }
            }
        });
    }
    Ok(liveness)
}
