//! One BGP session as a sans-IO state machine after RFC 4271 section 8: [`Input`]s in (TCP events,
//! received bytes, timer expiries, the desired route set), [`Output`]s out (connect, send, arm or
//! cancel a timer, established, down). No socket and no clock inside: the driver turns outputs into
//! I/O and timers, and feeds what happens back.
//!
//! Behaviour beyond the base FSM:
//! - **Routes**: the caller hands the complete desired set ([`Input::Routes`]: prefix to
//!   attributes); the session sends what changed since the last advertisement: withdrawals for
//!   prefixes gone, and announcements for prefixes new or whose attributes changed (a new UPDATE
//!   for a prefix replaces the old route, RFC 4271 section 3.1: no withdraw first), only for
//!   negotiated families with a next hop; the session itself is never reset for a route change. Routes the router sends (echoes of ours included) are accepted and ignored.
//! - **End-of-RIB and restarts**: the initial table and an End-of-RIB per family (RFC 4724
//!   section 2) go out only after [`Input::TableReady`]: an early, empty End-of-RIB would make a
//!   graceful-restart helper flush the routes it kept for us.
//! - **Errors**: a bad header, OPEN or FSM event is answered with the NOTIFICATION of RFC 4271
//!   section 6 and the session resets; path-attribute errors in received UPDATEs are
//!   treat-as-withdraw (RFC 7606), which for a speaker that keeps no received routes means ignore.
//! - **Capability fallback**: a NOTIFICATION 2/7 (Unsupported Capability, RFC 5492 section 5)
//!   in answer to our OPEN leaves the capabilities it names out of every later OPEN of this
//!   session ([`fallback`]: bounded, each refusal can only shrink the offer); the session retries
//!   on the ConnectRetry timer like after any other reset.
//! - **Automatic restart**: after any reset the session starts again when the ConnectRetry timer
//!   fires (RFC 4271 section 8.1.1, AutomaticStart), until [`Input::Stop`].

pub mod fallback;
mod interface;

use std::{collections::BTreeSet, net::IpAddr, time::Duration};

pub use self::{
    fallback::{Capability, Fallback},
    interface::{Input, MessageCounts, Negotiated, Output, SessionConfig, State, Timer},
};
use crate::wire::{self, Family, OpenParams, Prefix, Received, Routes, UpdateParams, WireError};

/// One session.
#[derive(Clone, Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    admin_stopped: bool,
    buffer: Vec<u8>,
    negotiated: Option<Negotiated>,
    local: Option<IpAddr>,
    desired: Routes,
    advertised: Routes,
    table_ready: bool,
    initial_sent: bool,
    /// Capabilities peers refused (2/7): left out of our OPENs for the session's life.
    left_out: BTreeSet<Capability>,
    /// Messages sent.
    pub sent: MessageCounts,
    /// Messages received.
    pub received: MessageCounts,
}

/// The hold time an OPEN's sender uses until the peer's OPEN arrives (RFC 4271 section 8.2.2).
const OPEN_HOLD: Duration = Duration::from_secs(240);

fn secs(s: u16) -> Duration {
    Duration::from_secs(u64::from(s))
}

impl Session {
    /// A stopped session.
    pub fn new(config: SessionConfig) -> Self {
        Self {
            config,
            state: State::Idle,
            admin_stopped: true,
            buffer: Vec::new(),
            negotiated: None,
            local: None,
            desired: Routes::new(),
            advertised: Routes::new(),
            table_ready: false,
            initial_sent: false,
            left_out: BTreeSet::new(),
            sent: MessageCounts::default(),
            received: MessageCounts::default(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// What was negotiated, while the session is up.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The routes the peer has from us.
    pub fn advertised(&self) -> &Routes {
        &self.advertised
    }

    /// The capabilities our OPENs leave out because a peer refused them (NOTIFICATION 2/7).
    pub fn left_out(&self) -> &BTreeSet<Capability> {
        &self.left_out
    }

    /// Every capability the configuration offers, before any is left out.
    fn configured_capabilities(&self) -> BTreeSet<Capability> {
        fallback::offered(
            &self.config.families,
            self.config.graceful_restart.is_some(),
            self.config.add_path_send,
        )
    }

    /// Whether our OPEN offers `c` (configured, and not refused by the peer).
    fn offers(&self, c: Capability) -> bool {
        !self.left_out.contains(&c) && self.configured_capabilities().contains(&c)
    }

    /// The families our OPEN offers.
    fn offered_families(&self) -> BTreeSet<Family> {
        self.config
            .families
            .iter()
            .copied()
            .filter(|f| !self.left_out.contains(&Capability::Multiprotocol(*f)))
            .collect()
    }

    /// Our OPEN: the configuration less what peers refused (RFC 5492 section 5).
    fn open_params(&self) -> OpenParams {
        OpenParams {
            local_as: self.config.local_as,
            hold_time: self.config.hold_time,
            router_id: self.config.router_id,
            families: self.offered_families(),
            graceful_restart: self
                .config
                .graceful_restart
                .filter(|_| self.offers(Capability::GracefulRestart))
                .map(|t| (t, self.config.restarting)),
            add_path_send: self.offers(Capability::AddPath),
            route_refresh: self.offers(Capability::RouteRefresh),
            four_octet_as: self.offers(Capability::FourOctetAs),
        }
    }

    /// Handles one input.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                self.admin_stopped = false;
                if self.state == State::Idle {
                    self.begin(&mut out);
                }
            }
            Input::Stop => {
                self.admin_stopped = true;
                if matches!(
                    self.state,
                    State::OpenSent | State::OpenConfirm | State::Established
                ) {
                    // Cease / Administrative Shutdown (RFC 4486).
                    self.send(&mut out, wire::notification(6, 2, &[]));
                }
                if self.state != State::Idle {
                    out.push(Output::Disconnect);
                    out.push(Output::Down("stopped by configuration".into()));
                }
                self.go_idle(&mut out);
            }
            Input::Connected { local } => {
                if matches!(self.state, State::Connect | State::Active) {
                    self.local = Some(local);
                    out.push(Output::Cancel(Timer::ConnectRetry));
                    let open = wire::open(&self.open_params());
                    self.send(&mut out, open);
                    out.push(Output::Arm(Timer::Hold, OPEN_HOLD));
                    self.state = State::OpenSent;
                } else {
                    // A second connection while one is in use (collision, RFC 4271 section 6.8):
                    // the driver offered it; keep the one we have.
                    out.push(Output::Disconnect);
                }
            }
            Input::ConnectFailed => {
                // Stay in Connect: the ConnectRetry timer tries again.
            }
            Input::Closed => {
                if self.state != State::Idle && !matches!(self.state, State::Connect | State::Active) {
                    out.push(Output::Down("TCP connection closed by the peer".into()));
                    self.reset(&mut out);
                }
            }
            Input::Received(bytes) => self.receive(bytes, &mut out),
            Input::Fired(timer) => self.fired(timer, &mut out),
            Input::Routes(routes) => {
                self.desired = routes;
                if self.state == State::Established && self.initial_sent {
                    self.sync_routes(&mut out);
                }
            }
            Input::TableReady => {
                self.table_ready = true;
                if self.state == State::Established && !self.initial_sent {
                    self.send_initial(&mut out);
                }
            }
        }
        out
    }

    fn begin(&mut self, out: &mut Vec<Output>) {
        self.buffer.clear();
        if self.config.passive {
            self.state = State::Active;
        } else {
            self.state = State::Connect;
            out.push(Output::Connect);
            out.push(Output::Arm(
                Timer::ConnectRetry,
                secs(self.config.connect_retry.max(1)),
            ));
        }
    }

    fn go_idle(&mut self, out: &mut Vec<Output>) {
        self.state = State::Idle;
        self.negotiated = None;
        self.advertised.clear();
        self.initial_sent = false;
        self.buffer.clear();
        out.push(Output::Cancel(Timer::Hold));
        out.push(Output::Cancel(Timer::Keepalive));
        out.push(Output::Cancel(Timer::ConnectRetry));
    }

    /// Back to Idle after an error, with the automatic restart armed.
    fn reset(&mut self, out: &mut Vec<Output>) {
        out.push(Output::Disconnect);
        self.go_idle(out);
        if !self.admin_stopped {
            out.push(Output::Arm(
                Timer::ConnectRetry,
                secs(self.config.connect_retry.max(1)),
            ));
        }
    }

    fn send(&mut self, out: &mut Vec<Output>, bytes: Vec<u8>) {
        self.sent.count(&bytes);
        out.push(Output::Send(bytes));
    }

    fn fail(&mut self, out: &mut Vec<Output>, error: WireError) {
        self.send(out, wire::notification(error.code, error.subcode, &error.data));
        out.push(Output::Down(format!(
            "sent NOTIFICATION {}/{} ({}): {}",
            error.code,
            error.subcode,
            notification_name(error.code, error.subcode),
            error.what
        )));
        self.reset(out);
    }

    fn fired(&mut self, timer: Timer, out: &mut Vec<Output>) {
        match (timer, self.state) {
            (Timer::ConnectRetry, State::Connect) => {
                out.push(Output::Connect);
                out.push(Output::Arm(
                    Timer::ConnectRetry,
                    secs(self.config.connect_retry.max(1)),
                ));
            }
            (Timer::ConnectRetry, State::Idle) if !self.admin_stopped => self.begin(out),
            (Timer::Hold, State::OpenSent | State::OpenConfirm | State::Established) => {
                self.send(out, wire::notification(4, 0, &[]));
                out.push(Output::Down(
                    "hold timer expired: no message from the peer in time (sent NOTIFICATION 4/0)".into(),
                ));
                self.reset(out);
            }
            (Timer::Keepalive, State::OpenConfirm | State::Established) => {
                self.send(out, wire::keepalive());
                if let Some(n) = &self.negotiated
                    && n.keepalive > 0
                {
                    out.push(Output::Arm(Timer::Keepalive, secs(n.keepalive)));
                }
            }
            _ => {} // A timer of another state: stale, ignore.
        }
    }

    fn receive(&mut self, bytes: Vec<u8>, out: &mut Vec<Output>) {
        if matches!(self.state, State::Idle | State::Connect | State::Active) {
            return; // Nothing to talk to: bytes of a connection we no longer use.
        }
        self.buffer.extend_from_slice(&bytes);
        loop {
            let frame = match wire::next_frame(&mut self.buffer) {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(error) => return self.fail(out, error),
            };
            self.received.count(&frame);
            let four = self.negotiated.as_ref().is_some_and(|n| n.four_octet_as);
            let message = match wire::decode(&frame, four) {
                Ok(message) => message,
                Err(error) => return self.fail(out, error),
            };
            if let Received::Notification { code, subcode, data } = message {
                let mut reason = format!(
                    "peer sent NOTIFICATION {code}/{subcode} ({})",
                    notification_name(code, subcode)
                );
                // RFC 5492 section 5: the answer to our OPEN (in OpenSent, or in OpenConfirm
                // when the peer's OPEN came first) naming capabilities it does not support.
                if (code, subcode) == (2, 7) && matches!(self.state, State::OpenSent | State::OpenConfirm) {
                    let decision = fallback::fallback(&self.configured_capabilities(), &self.left_out, &data);
                    self.left_out.extend(decision.left_out.iter().copied());
                    reason = format!("{reason}: {}", decision.describe());
                    out.push(Output::Fallback(decision));
                }
                out.push(Output::Down(reason));
                self.reset(out);
                return;
            }
            self.message(message, out);
            if self.state == State::Idle {
                return; // Reset: the rest of the buffer belongs to a dead connection.
            }
        }
    }

    fn message(&mut self, message: Received, out: &mut Vec<Output>) {
        match (self.state, message) {
            (
                State::OpenSent,
                Received::Open {
                    version,
                    peer_as,
                    hold_time,
                    router_id,
                    capabilities,
                },
            ) => {
                // RFC 4271 section 6.2.
                let error = |subcode: u8, data: Vec<u8>, what: String| WireError {
                    code: 2,
                    subcode,
                    data,
                    what,
                };
                if version != 4 {
                    return self.fail(
                        out,
                        error(
                            1,
                            4u16.to_be_bytes().to_vec(),
                            format!("peer speaks BGP version {version}"),
                        ),
                    );
                }
                if peer_as != self.config.peer_as {
                    return self.fail(
                        out,
                        error(
                            2,
                            Vec::new(),
                            format!("peer is AS {peer_as}, the BgpPeer says {}", self.config.peer_as),
                        ),
                    );
                }
                if hold_time == 1 || hold_time == 2 {
                    return self.fail(
                        out,
                        error(6, Vec::new(), format!("peer offers hold time {hold_time}")),
                    );
                }
                if router_id.is_unspecified() {
                    return self.fail(
                        out,
                        error(3, Vec::new(), "peer's BGP identifier is 0.0.0.0".into()),
                    );
                }
                let hold = self.config.hold_time.min(hold_time);
                let keepalive = if hold == 0 {
                    0
                } else {
                    self.config
                        .keepalive
                        .unwrap_or(hold / 3)
                        .clamp(1, (hold / 3).max(1))
                };
                let families: BTreeSet<Family> = self
                    .offered_families()
                    .intersection(&capabilities.families)
                    .copied()
                    .collect();
                let add_path = if self.offers(Capability::AddPath) {
                    families
                        .intersection(&capabilities.add_path_receive)
                        .copied()
                        .collect()
                } else {
                    BTreeSet::new()
                };
                self.negotiated = Some(Negotiated {
                    hold_time: hold,
                    keepalive,
                    families,
                    // RFC 6793 section 4: both sides must advertise it.
                    four_octet_as: capabilities.four_octet_as.is_some()
                        && self.offers(Capability::FourOctetAs),
                    add_path,
                    peer_router_id: router_id,
                    peer_graceful_restart: capabilities.graceful_restart,
                    graceful_restart: capabilities.graceful_restart
                        && self.offers(Capability::GracefulRestart),
                    peer_route_refresh: capabilities.route_refresh,
                });
                self.send(out, wire::keepalive());
                if hold > 0 {
                    out.push(Output::Arm(Timer::Hold, secs(hold)));
                    out.push(Output::Arm(Timer::Keepalive, secs(keepalive)));
                } else {
                    out.push(Output::Cancel(Timer::Hold));
                }
                self.state = State::OpenConfirm;
            }
            (State::OpenConfirm, Received::Keepalive) => {
                self.restart_hold(out);
                self.state = State::Established;
                if let Some(n) = &self.negotiated {
                    out.push(Output::Established(n.clone()));
                }
                if self.table_ready {
                    self.send_initial(out);
                }
            }
            (State::Established, Received::Keepalive | Received::Update { .. }) => {
                // Routes from the router (its own, or ours echoed back) are accepted and ignored.
                self.restart_hold(out);
            }
            (State::Established, Received::RouteRefresh(family)) => {
                self.restart_hold(out);
                // RFC 2918: send the Adj-RIB-Out of that family again, then End-of-RIB.
                if let Some(family) = family
                    && self
                        .negotiated
                        .as_ref()
                        .is_some_and(|n| n.families.contains(&family))
                    && self.initial_sent
                {
                    let routes: Routes = self
                        .advertised
                        .iter()
                        .filter(|(prefix, _)| prefix.family() == family)
                        .map(|(prefix, a)| (*prefix, a.clone()))
                        .collect();
                    if let Some(p) = self.update_params() {
                        for m in wire::announce(&routes, family, &p) {
                            self.send(out, m);
                        }
                    }
                    self.send(out, wire::end_of_rib(family));
                }
            }
            (state, message) => {
                // RFC 6608 subcodes: unexpected message in OpenSent (1), OpenConfirm (2),
                // Established (3).
                let subcode = match state {
                    State::OpenSent => 1,
                    State::OpenConfirm => 2,
                    _ => 3,
                };
                self.fail(
                    out,
                    WireError {
                        code: 5,
                        subcode,
                        data: Vec::new(),
                        what: format!("unexpected {} in state {}", kind_name(&message), state.as_str()),
                    },
                );
            }
        }
    }

    fn restart_hold(&self, out: &mut Vec<Output>) {
        if let Some(n) = &self.negotiated
            && n.hold_time > 0
        {
            out.push(Output::Arm(Timer::Hold, secs(n.hold_time)));
        }
    }

    fn update_params(&self) -> Option<UpdateParams> {
        let n = self.negotiated.as_ref()?;
        let (mut v4, mut v6) = (self.config.next_hop_v4, self.config.next_hop_v6);
        match self.local {
            Some(IpAddr::V4(local)) => v4 = Some(local),
            Some(IpAddr::V6(local)) => v6 = Some(local),
            None => {}
        }
        Some(UpdateParams {
            local_as: self.config.local_as,
            ibgp: self.config.local_as == self.config.peer_as,
            four_octet_as: n.four_octet_as,
            next_hop_v4: v4,
            next_hop_v6: v6,
            add_path: n.add_path.clone(),
        })
    }

    /// The routes of negotiated families that have a next hop.
    fn announceable(&self) -> Routes {
        let Some(n) = &self.negotiated else {
            return Routes::new();
        };
        let Some(p) = self.update_params() else {
            return Routes::new();
        };
        self.desired
            .iter()
            .filter(|(prefix, _)| n.families.contains(&prefix.family()))
            .filter(|(prefix, _)| match prefix.family() {
                Family::Ipv4Unicast => p.next_hop_v4.is_some(),
                Family::Ipv6Unicast => p.next_hop_v6.is_some(),
            })
            .map(|(prefix, a)| (*prefix, a.clone()))
            .collect()
    }

    fn send_initial(&mut self, out: &mut Vec<Output>) {
        self.initial_sent = true;
        self.sync_routes(out);
        let families: Vec<Family> = self
            .negotiated
            .iter()
            .flat_map(|n| n.families.iter().copied())
            .collect();
        for family in families {
            self.send(out, wire::end_of_rib(family));
        }
    }

    fn sync_routes(&mut self, out: &mut Vec<Output>) {
        let Some(p) = self.update_params() else { return };
        let target = self.announceable();
        let gone: BTreeSet<Prefix> = self
            .advertised
            .keys()
            .filter(|prefix| !target.contains_key(prefix))
            .copied()
            .collect();
        // New prefixes, and prefixes whose attributes changed (the UPDATE replaces the route).
        let new: Routes = target
            .iter()
            .filter(|(prefix, a)| self.advertised.get(prefix) != Some(a))
            .map(|(prefix, a)| (*prefix, a.clone()))
            .collect();
        for family in [Family::Ipv4Unicast, Family::Ipv6Unicast] {
            for m in wire::withdraw(&gone, family, &p) {
                self.send(out, m);
            }
            for m in wire::announce(&new, family, &p) {
                self.send(out, m);
            }
        }
        self.advertised = target;
    }
}

fn kind_name(message: &Received) -> &'static str {
    match message {
        Received::Open { .. } => "OPEN",
        Received::Update { .. } => "UPDATE",
        Received::Notification { .. } => "NOTIFICATION",
        Received::Keepalive => "KEEPALIVE",
        Received::RouteRefresh(_) => "ROUTE-REFRESH",
    }
}

/// A readable name of a NOTIFICATION code/subcode (RFC 4271 section 4.5, RFC 4486, RFC 6608).
pub fn notification_name(code: u8, subcode: u8) -> &'static str {
    match (code, subcode) {
        (1, 1) => "Message Header Error/Connection Not Synchronized",
        (1, 2) => "Message Header Error/Bad Message Length",
        (1, 3) => "Message Header Error/Bad Message Type",
        (1, _) => "Message Header Error",
        (2, 1) => "OPEN Message Error/Unsupported Version Number",
        (2, 2) => "OPEN Message Error/Bad Peer AS",
        (2, 3) => "OPEN Message Error/Bad BGP Identifier",
        (2, 4) => "OPEN Message Error/Unsupported Optional Parameter",
        (2, 6) => "OPEN Message Error/Unacceptable Hold Time",
        (2, 7) => "OPEN Message Error/Unsupported Capability",
        (2, _) => "OPEN Message Error",
        (3, _) => "UPDATE Message Error",
        (4, _) => "Hold Timer Expired",
        (5, _) => "Finite State Machine Error",
        (6, 1) => "Cease/Maximum Number of Prefixes Reached",
        (6, 2) => "Cease/Administrative Shutdown",
        (6, 3) => "Cease/Peer De-configured",
        (6, 4) => "Cease/Administrative Reset",
        (6, 5) => "Cease/Connection Rejected",
        (6, 6) => "Cease/Other Configuration Change",
        (6, 7) => "Cease/Connection Collision Resolution",
        (6, _) => "Cease",
        (7, _) => "ROUTE-REFRESH Message Error",
        _ => "unknown error",
    }
}
