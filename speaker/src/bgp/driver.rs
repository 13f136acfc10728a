//! One tokio task per BGP session: the I/O around `oxelb_bgp::session::Session`. It turns the
//! session's outputs into TCP (connect, send, close) and timers, and feeds back what happens
//! (connected, bytes, closed, timer fired); the manager feeds routes, accepted connections and stop.
//!
//! With BFD configured for the peer (BgpPeer `spec.bfd`) the driver follows the BFD session's
//! reports: BFD going Down from Up (a failure: not the peer's AdminDown, which RFC 5882 section
//! 3.2 says is no failure) stops the BGP session at once (Cease), and BGP is not started while
//! BFD is not Up; it starts as soon as BFD is Up again.

use std::{collections::BTreeMap, net::IpAddr, net::SocketAddr, time::Duration};

use oxelb_bgp::{
    session::{Capability, Input, MessageCounts, Output, Session, SessionConfig as FsmConfig, State, Timer},
    wire::Family,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{mpsc, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::{debug, info, warn};

use super::transport::{Dial, connect, set_mtu_discovery, set_ttl};
use crate::{
    bfd::Reports,
    clock::{now_rfc3339, sleep_until},
};
use oxelb_speaker_core::sessions::{self, SessionConfig};

/// What the manager tells a session.
#[derive(Debug)]
pub enum Command {
    /// The complete set of routes to announce to this peer, with their attributes.
    Routes(oxelb_bgp::wire::Routes),
    /// The route set is complete (initial table and End-of-RIB may go out).
    TableReady,
    /// The router connected to our listener.
    Accepted(TcpStream),
    /// Whether BFD is configured for the peer now (a change of `spec.bfd` alone does not
    /// restart the BGP session).
    Bfd(bool),
    /// The speaker process is stopping (SIGTERM, e.g. a DaemonSet rolling update): with
    /// graceful restart negotiated, close the connection without a NOTIFICATION so the router
    /// keeps our routes for the restart time (RFC 4724 section 4.2) and the next speaker process
    /// takes them over without a withdrawal; otherwise Cease, as on any stop.
    Shutdown,
}

/// What a session reports (metrics, BgpPeer status).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionStatus {
    /// The FSM state.
    pub state: Option<State>,
    /// Messages sent.
    pub sent: MessageCounts,
    /// Messages received.
    pub received: MessageCounts,
    /// The negotiated hold time while up.
    pub negotiated_hold_time: Option<u16>,
    /// When it came up (RFC 3339), while up.
    pub up_since: Option<String>,
    /// When it last went down (RFC 3339).
    pub down_since: Option<String>,
    /// Why it last went down.
    pub last_error: Option<String>,
    /// Routes the peer has from us.
    pub advertised: usize,
}

/// A running session.
pub struct SessionHandle {
    /// Commands to the task.
    pub commands: mpsc::UnboundedSender<Command>,
    /// Its reports.
    pub status: watch::Receiver<SessionStatus>,
    /// Dropping the sender stops the session (Cease) and ends the task.
    pub task: JoinHandle<()>,
}

fn fsm_config(config: &SessionConfig, node_ips: &[IpAddr], restarting: bool) -> FsmConfig {
    FsmConfig {
        local_as: config.local_as,
        peer_as: config.peer_as,
        router_id: config.router_id,
        hold_time: config.hold_time,
        keepalive: Some(config.keepalive),
        connect_retry: config.connect_retry,
        families: config
            .families
            .iter()
            .map(|f| match f {
                sessions::Family::Ipv4Unicast => Family::Ipv4Unicast,
                sessions::Family::Ipv6Unicast => Family::Ipv6Unicast,
            })
            .collect(),
        graceful_restart: config.graceful_restart_time,
        restarting,
        add_path_send: config.add_path_send_max.is_some(),
        passive: config.passive,
        next_hop_v4: node_ips.iter().find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        }),
        next_hop_v6: node_ips.iter().find_map(|ip| match ip {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        }),
    }
}

/// Starts the session `config` (of this node, whose InternalIPs are `node_ips`), following
/// `bfd` for its peer when `config.bfd` is set.
pub fn spawn(
    config: SessionConfig,
    node_ips: Vec<IpAddr>,
    restarting: bool,
    bfd: watch::Receiver<Reports>,
) -> SessionHandle {
    let (commands, rx) = mpsc::unbounded_channel();
    let (status_tx, status) = watch::channel(SessionStatus::default());
    let task = tokio::spawn(run(config, node_ips, restarting, rx, status_tx, bfd));
    SessionHandle {
        commands,
        status,
        task,
    }
}

struct Driver {
    name: String,
    peer: SocketAddr,
    dial: Dial,
    timeout: Duration,
    session: Session,
    stream: Option<TcpStream>,
    deadlines: BTreeMap<Timer, Instant>,
    connecting: bool,
    connect_results: mpsc::Sender<std::io::Result<TcpStream>>,
    status: watch::Sender<SessionStatus>,
    feedback: Vec<Input>,
    gate: Gate,
    /// Graceful restart negotiated on the current session: both sides advertised it.
    graceful: bool,
    /// Graceful restart time we advertise (configured).
    graceful_restart_time: Option<u16>,
    /// Our AS on this session (for the 4-octet AS fallback's warning).
    local_as: u32,
}

/// The coupling to BFD.
struct Gate {
    /// `conf.adminDown`: never started.
    admin_down: bool,
    /// BFD is configured for the peer.
    required: bool,
    /// BGP is stopped because of BFD.
    held: bool,
    /// The BFD state last seen.
    last: Option<oxelb_bfd::wire::State>,
}

async fn run(
    config: SessionConfig,
    node_ips: Vec<IpAddr>,
    restarting: bool,
    mut commands: mpsc::UnboundedReceiver<Command>,
    status: watch::Sender<SessionStatus>,
    mut bfd: watch::Receiver<Reports>,
) {
    let peer = SocketAddr::new(config.neighbor, config.remote_port);
    let (connect_results, mut results) = mpsc::channel(1);
    let mut driver = Driver {
        name: config.peer.clone(),
        peer,
        dial: Dial {
            peer,
            local: None,
            md5_password: config.md5_password.clone(),
            ttl: config.ttl,
            tcp_mss: config.tcp_mss,
            mtu_discovery: config.mtu_discovery,
        },
        timeout: Duration::from_secs(u64::from(config.connect_retry.max(1))),
        session: Session::new(fsm_config(&config, &node_ips, restarting)),
        stream: None,
        deadlines: BTreeMap::new(),
        connecting: false,
        connect_results,
        status,
        feedback: Vec::new(),
        graceful: false,
        graceful_restart_time: config.graceful_restart_time,
        local_as: config.local_as,
        gate: Gate {
            admin_down: config.admin_down,
            required: config.bfd.is_some(),
            held: false,
            last: None,
        },
    };
    // The BFD state now: a session continued from the previous process is Up from the start
    // and may never change before it fails, so its Up must count as seen (`follow_bfd`).
    let bfd_now = bfd.borrow_and_update().get(&config.peer).map(|r| r.state);
    driver.gate.last = bfd_now;
    if config.admin_down {
        info!(peer = %driver.name, neighbor = %peer, "BgpPeer is adminDown: session kept down");
    } else if driver.gate.required && bfd_now != Some(oxelb_bfd::wire::State::Up) {
        info!(peer = %driver.name, neighbor = %peer, "BGP session waits for its BFD session to come Up");
        driver.gate.held = true;
    } else {
        driver.input(Input::Start).await;
    }
    let mut buf = vec![0u8; 65536];
    loop {
        let next = driver.deadlines.values().min().copied();
        tokio::select! {
            command = commands.recv() => match command {
                None => {
                    driver.input(Input::Stop).await;
                    break;
                }
                Some(Command::Routes(routes)) => driver.input(Input::Routes(routes)).await,
                Some(Command::TableReady) => driver.input(Input::TableReady).await,
                Some(Command::Shutdown) => {
                    if driver.graceful && driver.session.state() == State::Established {
                        info!(peer = %driver.name, neighbor = %peer,
                            "stopping: closing the BGP connection without NOTIFICATION; graceful restart keeps our routes at the router until the next speaker process sends End-of-RIB");
                        driver.stream = None;
                    } else {
                        driver.input(Input::Stop).await;
                    }
                    break;
                }
                Some(Command::Bfd(required)) => {
                    driver.gate.required = required;
                    let report = bfd.borrow().get(&config.peer).cloned();
                    driver.follow_bfd(report.as_ref()).await;
                }
                Some(Command::Accepted(stream)) => {
                    if driver.stream.is_none() && matches!(driver.session.state(), State::Active | State::Connect) {
                        if let Err(error) = set_ttl(&stream, peer, config.ttl) {
                            warn!(peer = %driver.name, %error, "cannot set the TTL of an accepted connection");
                        }
                        // The MSS of an accepted connection was the listener's (`set_listener_mss`);
                        // path MTU discovery applies to the connection from here on.
                        if let Some(on) = config.mtu_discovery
                            && let Err(error) = set_mtu_discovery(&stream, peer, on)
                        {
                            warn!(peer = %driver.name, %error, "cannot set path MTU discovery on an accepted connection");
                        }
                        driver.attach(stream).await;
                    } else {
                        debug!(peer = %driver.name, "connection from the router while one is in use: closed (collision)");
                    }
                }
            },
            changed = bfd.changed() => {
                if changed.is_ok() {
                    let report = bfd.borrow_and_update().get(&config.peer).cloned();
                    driver.follow_bfd(report.as_ref()).await;
                }
            }
            result = results.recv() => {
                driver.connecting = false;
                match result {
                    Some(Ok(stream)) if driver.stream.is_none() && driver.session.state() == State::Connect => driver.attach(stream).await,
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        warn!(peer = %driver.name, neighbor = %peer, %error, "BGP connection failed");
                        driver.input(Input::ConnectFailed).await;
                    }
                    None => {}
                }
            },
            read = read_some(&mut driver.stream, &mut buf) => match read {
                Ok(0) | Err(_) => {
                    driver.stream = None;
                    driver.input(Input::Closed).await;
                }
                Ok(n) => driver.input(Input::Received(buf[..n].to_vec())).await,
            },
            _ = sleep_until(next) => {
                let now = Instant::now();
                let due: Vec<Timer> = driver.deadlines.iter().filter(|(_, at)| **at <= now).map(|(t, _)| *t).collect();
                for timer in due {
                    driver.deadlines.remove(&timer);
                    driver.input(Input::Fired(timer)).await;
                }
            }
        }
    }
}

async fn read_some(stream: &mut Option<TcpStream>, buf: &mut [u8]) -> std::io::Result<usize> {
    match stream {
        Some(stream) => stream.read(buf).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    /// Section "coupling" of the module notes: BFD Down stops BGP, BFD Up starts it again.
    async fn follow_bfd(&mut self, report: Option<&crate::bfd::Report>) {
        use oxelb_bfd::wire::State as Bfd;
        if self.gate.admin_down {
            return;
        }
        let state = report.map(|r| r.state);
        if state == Some(Bfd::AdminDown) {
            // Our own AdminDown: this speaker is stopping, and the shutdown decides what BGP
            // does (graceful restart keeps the routes); not a path failure.
            self.gate.last = state;
            return;
        }
        let was_up = self.gate.last == Some(Bfd::Up);
        self.gate.last = state;
        if !self.gate.required || state == Some(Bfd::Up) {
            if self.gate.held {
                info!(peer = %self.name, neighbor = %self.peer, "BFD Up: starting the BGP session");
                self.gate.held = false;
                self.input(Input::Start).await;
            }
            return;
        }
        if self.gate.held {
            return;
        }
        let graceful = report.is_some_and(|r| r.peer_admin_down);
        if was_up && !graceful {
            warn!(peer = %self.name, neighbor = %self.peer, diagnostic = report.map_or("none", |r| r.diagnostic.as_str()),
                "BFD Down: bringing the BGP session down at once");
        } else if self.session.state() == State::Established {
            // Never Up since BFD was enabled, or the peer's AdminDown: not a failure, BGP stays.
            return;
        } else {
            debug!(peer = %self.name, "BFD not Up: the BGP session waits for it");
        }
        self.gate.held = true;
        self.input(Input::Stop).await;
    }

    async fn attach(&mut self, stream: TcpStream) {
        let local = stream.local_addr().map(|a| a.ip());
        self.stream = Some(stream);
        match local {
            Ok(local) => self.input(Input::Connected { local }).await,
            Err(_) => {
                self.stream = None;
                self.input(Input::Closed).await;
            }
        }
    }

    /// Feeds one input and performs the outputs (which may feed back more inputs).
    async fn input(&mut self, input: Input) {
        self.feedback.push(input);
        while let Some(input) = self.feedback.pop() {
            let outputs = self.session.handle(input);
            for output in outputs {
                self.output(output).await;
            }
        }
        self.report();
    }

    async fn output(&mut self, output: Output) {
        match output {
            Output::Connect => {
                if !self.connecting && self.stream.is_none() {
                    self.connecting = true;
                    let dial = self.dial.clone();
                    let timeout = self.timeout;
                    let results = self.connect_results.clone();
                    tokio::spawn(async move {
                        let result = connect(&dial, timeout)
                            .await
                            .map_err(|e| std::io::Error::other(e.to_string()));
                        let _ = results.send(result).await;
                    });
                }
            }
            Output::Disconnect => {
                if let Some(mut stream) = self.stream.take() {
                    let _ = stream.shutdown().await;
                }
            }
            Output::Send(bytes) => {
                if let Some(stream) = &mut self.stream
                    && let Err(error) = stream.write_all(&bytes).await
                {
                    warn!(peer = %self.name, %error, "BGP write failed");
                    self.stream = None;
                    self.feedback.push(Input::Closed);
                }
            }
            Output::Arm(timer, after) => {
                self.deadlines.insert(timer, Instant::now() + after);
            }
            Output::Cancel(timer) => {
                self.deadlines.remove(&timer);
            }
            Output::Established(negotiated) => {
                info!(peer = %self.name, neighbor = %self.peer, hold_time = negotiated.hold_time, families = ?negotiated.families,
                    four_octet_as = negotiated.four_octet_as, "BGP session established");
                self.graceful = negotiated.graceful_restart && self.graceful_restart_time.is_some();
                self.status.send_modify(|s| {
                    s.up_since = Some(now_rfc3339());
                    s.negotiated_hold_time = Some(negotiated.hold_time);
                    s.last_error = None;
                });
            }
            Output::Fallback(fallback) => {
                // RFC 5492 section 5: one line per capability left out, and one for what could
                // not be (the Down that follows has the whole story).
                for capability in &fallback.left_out {
                    warn!(peer = %self.name, neighbor = %self.peer, capability = capability.name(), code = capability.code(),
                        reason = "the router answered our OPEN with NOTIFICATION 2/7 (Unsupported Capability) naming it",
                        "leaving the capability out of this session's next OPENs");
                    if *capability == Capability::FourOctetAs && self.local_as > u32::from(u16::MAX) {
                        warn!(peer = %self.name, neighbor = %self.peer, local_as = self.local_as, as_trans = oxelb_bgp::wire::AS_TRANS,
                            "without 4-octet AS our OPEN carries AS_TRANS: the router must expect AS 23456 (RFC 6793 section 4.2)");
                    }
                }
                for entry in &fallback.not_left_out {
                    warn!(peer = %self.name, neighbor = %self.peer, capability = %entry,
                        "the router refused a capability oxelb cannot leave out");
                }
                if fallback.empty || fallback.malformed > 0 {
                    warn!(peer = %self.name, neighbor = %self.peer, empty = fallback.empty, malformed_bytes = fallback.malformed,
                        "the router's Unsupported Capability NOTIFICATION names no usable capability");
                }
            }
            Output::Down(reason) => {
                warn!(peer = %self.name, neighbor = %self.peer, reason = %reason, "BGP session down");
                self.graceful = false;
                self.status.send_modify(|s| {
                    s.up_since = None;
                    s.down_since = Some(now_rfc3339());
                    s.negotiated_hold_time = None;
                    s.last_error = Some(reason.clone());
                });
            }
        }
    }

    fn report(&self) {
        let state = self.session.state();
        let sent = self.session.sent;
        let received = self.session.received;
        let advertised = self.session.advertised().len();
        self.status.send_if_modified(|s| {
            let changed = s.state != Some(state)
                || s.sent != sent
                || s.received != received
                || s.advertised != advertised;
            s.state = Some(state);
            s.sent = sent;
            s.received = received;
            s.advertised = advertised;
            changed
        });
    }
}
