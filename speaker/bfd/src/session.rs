//! One BFD session in asynchronous mode as a sans-IO state machine (RFC 5880 section 6): an
//! [`Input`] and the current time in, an [`Output`] out (packets to send, state changes, and the
//! next moment the session needs [`Input::Tick`]). No socket and no clock inside: `now` is a value
//! the driver passes, so tests run hours of protocol time in microseconds.
//!
//! What it implements:
//! - the state machine of section 6.2 with the reception rules of section 6.8.6;
//! - transmission (section 6.8.7): the interval is the larger of our Desired Min TX and the peer's
//!   Required Min RX, reduced by 0-25 % jitter (10-25 % with Detect Mult 1); none at all while
//!   the peer's Required Min RX is 0 or it runs Demand mode; a Final at once when the peer polls;
//! - Desired Min TX of at least one second while not Up (section 6.8.3), lowered by a Poll
//!   Sequence (section 6.5) once Up; every later interval change also polls, using the
//!   conservative old/new values until the Final arrives (section 6.8.3);
//! - the Detection Time of section 6.8.4 (the peer's Detect Mult times the larger of our Required
//!   Min RX and its Desired Min TX) and its expiry, which also forgets the peer's discriminator
//!   (section 6.8.1);
//! - AdminDown (section 6.8.16) for a graceful stop: the peer goes Down with diagnostic 3, which
//!   RFC 5882 section 3.2 says its clients must not treat as a path failure;
//! - a hand-over to the next process of a restarting speaker ([`Input::Handover`],
//!   [`Session::snapshot`], [`Session::resume`]): the peer's Detection Time is raised to cover
//!   the restart, and the next process continues the same session (same discriminators) in Up,
//!   so the peer never sees it go down (see [`crate::handover`]).
//!
//! Beyond the RFC's minimum, a local state change is sent at once rather than at the next
//! periodic slot (FRR and BIRD do the same): it saves up to one interval when a session comes up.

mod timers;

use std::time::{Duration, Instant};

pub use crate::values::Config;
use crate::{
    values::Snapshot,
    wire::{ControlPacket, Diagnostic, State},
};

/// While not Up, Desired Min TX is at least one second (RFC 5880 section 6.8.3).
pub const SLOW_TX_US: u32 = 1_000_000;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A Control packet that [`crate::wire::decode`] accepted, from this session's peer.
    Received(ControlPacket),
    /// Time passed (call at [`Output::next_deadline`], or any time: it is idempotent).
    Tick,
    /// New timers (a Poll Sequence when Up: section 6.5).
    Configure(Config),
    /// Stop administratively (section 6.8.16): AdminDown, diagnostic 7, sent at once.
    AdminDown,
    /// Leave AdminDown: the session starts again from Down.
    Enable,
    /// This process is about to stop and hand the session to the next one: while Up, raise
    /// the Detect Mult we send (up to 255; section 6.8.1 lets it change at any time) and, when
    /// that is not enough, our Desired Min TX, so that the peer's Detection Time (section
    /// 6.8.4: our Detect Mult times the larger of its Required Min RX and our Desired Min TX)
    /// is at least `detection_us`; a Poll Sequence (section 6.5) carries the new values, and its
    /// Final ([`Session::polling`] turning false) says the peer has them. Ignored unless Up.
    /// [`Input::Configure`] brings the configured values back.
    Handover {
        /// The Detection Time the peer must have, microseconds (the restart window).
        detection_us: u64,
    },
}

/// Why a packet that decoded was not processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discard {
    /// Its Your Discriminator is neither 0 nor ours (section 6.8.6: select the session by it).
    WrongDiscriminator {
        /// The packet's Your Discriminator.
        received: u32,
        /// Ours.
        ours: u32,
    },
}

/// A change worth a log line, a metric or an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The local state changed.
    State {
        /// Before.
        from: State,
        /// After.
        to: State,
        /// Our diagnostic: why.
        diagnostic: Diagnostic,
        /// The peer said AdminDown: a graceful stop, not a failure (RFC 5882 section 3.2).
        peer_admin_down: bool,
    },
    /// The peer's discriminator changed while we knew one (it restarted, or something
    /// impersonates it).
    PeerDiscriminator {
        /// The one we knew.
        from: u32,
        /// The new one.
        to: u32,
    },
    /// The intervals in use changed (after a Poll Sequence, or the peer's new values).
    Negotiated(Negotiated),
    /// A packet was not processed.
    Discarded(Discard),
}

/// The timers both sides agreed on, as they are in use now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Our transmit interval before jitter, microseconds (0: we send no periodic packets).
    pub tx_interval_us: u64,
    /// How long without a packet before we declare the peer down, microseconds.
    pub detection_time_us: u64,
    /// The peer's Detect Mult.
    pub peer_detect_mult: u8,
    /// The peer's Desired Min TX, microseconds.
    pub peer_desired_min_tx_us: u32,
    /// The peer's Required Min RX, microseconds.
    pub peer_required_min_rx_us: u32,
}

/// What the session decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Packets to send now, in order.
    pub send: Vec<ControlPacket>,
    /// What changed.
    pub changes: Vec<Change>,
    /// When to call [`Input::Tick`] next (`None`: nothing is timed; wait for packets).
    pub next_deadline: Option<Instant>,
}

/// Counters for status and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets sent.
    pub sent: u64,
    /// Packets received and processed.
    pub received: u64,
    /// Packets received and discarded by the session.
    pub discarded: u64,
    /// Transitions to Up.
    pub up: u64,
    /// Transitions from Up to anything else (flaps).
    pub down: u64,
}

/// A Poll Sequence in progress (section 6.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Poll {
    /// The intervals before the change (what the peer last acknowledged).
    previous_tx_us: u32,
    previous_rx_us: u32,
    /// The intervals the poll carries; a later change restarts the poll after its Final.
    polled_tx_us: u32,
    polled_rx_us: u32,
}

/// One session.
#[derive(Clone, Debug)]
pub struct Session {
    config: Config,
    local_discriminator: u32,
    state: State,
    diagnostic: Diagnostic,
    remote_discriminator: u32,
    remote_state: State,
    remote_demand: bool,
    remote_min_rx_us: u32,
    remote_desired_tx_us: u32,
    remote_detect_mult: u8,
    /// bfd.DesiredMinTxInterval and bfd.RequiredMinRxInterval: what we advertise.
    tx_us: u32,
    rx_us: u32,
    /// bfd.DetectMult as advertised: the configured one, or a raised one during a hand-over.
    detect_mult: u8,
    poll: Option<Poll>,
    next_tx: Option<Instant>,
    detect_at: Option<Instant>,
    negotiated: Option<Negotiated>,
    rng: u64,
    counters: Counters,
}

impl Session {
    /// A session in Down with `local_discriminator` (non-zero and unique among the speaker's
    /// sessions: the driver's job), sending its first packet at `now`.
    pub fn new(config: Config, local_discriminator: u32, now: Instant) -> Self {
        let mut session = Self {
            config,
            local_discriminator: local_discriminator.max(1),
            state: State::Down,
            diagnostic: Diagnostic::None,
            remote_discriminator: 0,
            remote_state: State::Down,
            remote_demand: false,
            // Section 6.8.1: bfd.RemoteMinRxInterval starts at 1 (microsecond).
            remote_min_rx_us: 1,
            remote_desired_tx_us: 0,
            remote_detect_mult: 0,
            tx_us: 0,
            rx_us: 0,
            detect_mult: config.detect_mult,
            poll: None,
            next_tx: Some(now),
            detect_at: None,
            negotiated: None,
            // Jitter needs no cryptographic randomness, only different phases per session.
            rng: u64::from(local_discriminator).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            counters: Counters::default(),
        };
        session.tx_us = session.wanted_tx_us();
        session.rx_us = config.required_min_rx_us;
        session
    }

    /// The local state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Our current diagnostic.
    pub fn diagnostic(&self) -> Diagnostic {
        self.diagnostic
    }

    /// Our discriminator.
    pub fn local_discriminator(&self) -> u32 {
        self.local_discriminator
    }

    /// The peer's discriminator (0 while unknown).
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discriminator
    }

    /// The configured timers.
    pub fn config(&self) -> Config {
        self.config
    }

    /// The intervals in use, once the peer has been heard.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.negotiated
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// A Poll Sequence is in progress.
    pub fn polling(&self) -> bool {
        self.poll.is_some()
    }

    /// When the session needs [`Input::Tick`] next.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.next_tx, self.detect_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes one input at `now`.
    pub fn handle(&mut self, input: Input, now: Instant) -> Output {
        let mut out = Output::default();
        match input {
            Input::Received(packet) => self.receive(&packet, now, &mut out),
            Input::Tick => {}
            Input::Configure(config) => {
                self.config = config;
                let mult_changed = self.detect_mult != config.detect_mult;
                self.detect_mult = config.detect_mult;
                if !self.readvertise(now, &mut out) && mult_changed {
                    self.poll_now(&mut out);
                }
            }
            Input::Handover { detection_us } => {
                if self.state == State::Up {
                    self.raise_detection(detection_us, now, &mut out);
                }
            }
            Input::AdminDown => {
                if self.state != State::AdminDown {
                    self.poll = None;
                    self.set_state(State::AdminDown, Diagnostic::AdminDown, false, now, &mut out);
                }
            }
            Input::Enable => {
                if self.state == State::AdminDown {
                    self.set_state(State::Down, Diagnostic::None, false, now, &mut out);
                }
            }
        }
        self.expire(now, &mut out);
        self.transmit(now, &mut out);
        self.renegotiate(&mut out);
        out.next_deadline = self.next_deadline();
        out
    }

    /// The values the next process needs to continue this session (see [`crate::handover`]):
    /// only while Up with the peer known, as only an Up session is worth continuing.
    pub fn snapshot(&self) -> Option<Snapshot> {
        (self.state == State::Up && self.remote_discriminator != 0).then_some(Snapshot {
            local_discriminator: self.local_discriminator,
            remote_discriminator: self.remote_discriminator,
            desired_min_tx_us: self.tx_us,
            required_min_rx_us: self.rx_us,
            detect_mult: self.detect_mult,
            remote_desired_min_tx_us: self.remote_desired_tx_us,
            remote_required_min_rx_us: self.remote_min_rx_us,
            remote_detect_mult: self.remote_detect_mult,
        })
    }

    /// Continues a session the previous process handed over ([`Session::snapshot`]): Up, with
    /// the same discriminators and the values it advertised (the raised Detect Mult stays
    /// until [`Input::Configure`] brings `config` back by a Poll Sequence), sending at once
    /// and expecting the peer within its Detection Time. A peer that declared the session down
    /// meanwhile answers Down (with Your Discriminator 0), which takes this session Down as
    /// for any peer (section 6.8.6), and the ordinary bring-up follows.
    pub fn resume(config: Config, snapshot: &Snapshot, now: Instant) -> Self {
        let mut session = Self::new(config, snapshot.local_discriminator, now);
        session.state = State::Up;
        session.remote_discriminator = snapshot.remote_discriminator;
        session.remote_state = State::Up;
        session.remote_min_rx_us = snapshot.remote_required_min_rx_us;
        session.remote_desired_tx_us = snapshot.remote_desired_min_tx_us;
        session.remote_detect_mult = snapshot.remote_detect_mult;
        session.tx_us = snapshot.desired_min_tx_us;
        session.rx_us = snapshot.required_min_rx_us;
        session.detect_mult = snapshot.detect_mult.max(1);
        session.next_tx = Some(now);
        session.arm_detection(now);
        session
    }

    /// See [`Input::Handover`].
    fn raise_detection(&mut self, detection_us: u64, now: Instant, out: &mut Output) {
        let base = u64::from(self.tx_us.max(self.remote_min_rx_us)).max(1);
        let mult = detection_us
            .div_ceil(base)
            .clamp(u64::from(self.detect_mult), 255);
        self.detect_mult = u8::try_from(mult).unwrap_or(u8::MAX);
        let tx = if base * mult < detection_us {
            // Even 255 intervals are too short: send less often (the increase waits for the
            // Final, section 6.8.3, which `tx_interval_us` honours).
            u32::try_from(detection_us.div_ceil(255)).unwrap_or(u32::MAX)
        } else {
            self.tx_us
        };
        if tx != self.tx_us {
            self.poll.get_or_insert(Poll {
                previous_tx_us: self.tx_us,
                previous_rx_us: self.rx_us,
                polled_tx_us: tx,
                polled_rx_us: self.rx_us,
            });
            self.tx_us = tx;
            self.send_current(out);
            self.reschedule(now);
        } else {
            self.poll_now(out);
        }
    }

    /// Starts a Poll Sequence for values that need no conservative handling (the Detect Mult)
    /// and sends its first packet, unless one is running (its packets carry the new values).
    fn poll_now(&mut self, out: &mut Output) {
        if self.state != State::Up {
            return;
        }
        if self.poll.is_none() {
            self.poll = Some(Poll {
                previous_tx_us: self.tx_us,
                previous_rx_us: self.rx_us,
                polled_tx_us: self.tx_us,
                polled_rx_us: self.rx_us,
            });
        }
        self.send_current(out);
    }

    /// Sends the packet of the moment at once.
    fn send_current(&mut self, out: &mut Output) {
        let packet = self.packet();
        self.counters.sent += 1;
        out.send.push(packet);
    }

    /// Section 6.8.6, from "If the A bit is set" on (the earlier checks are in `wire::decode`).
    fn receive(&mut self, packet: &ControlPacket, now: Instant, out: &mut Output) {
        if packet.your_discriminator != 0 && packet.your_discriminator != self.local_discriminator {
            self.counters.discarded += 1;
            out.changes.push(Change::Discarded(Discard::WrongDiscriminator {
                received: packet.your_discriminator,
                ours: self.local_discriminator,
            }));
            return;
        }
        self.counters.received += 1;
        if self.remote_discriminator != 0 && self.remote_discriminator != packet.my_discriminator {
            out.changes.push(Change::PeerDiscriminator {
                from: self.remote_discriminator,
                to: packet.my_discriminator,
            });
        }
        self.remote_discriminator = packet.my_discriminator;
        self.remote_state = packet.state;
        self.remote_demand = packet.demand;
        self.remote_min_rx_us = packet.required_min_rx_us;
        self.remote_desired_tx_us = packet.desired_min_tx_us;
        self.remote_detect_mult = packet.detect_mult;
        if packet.final_ {
            self.finish_poll(now, out);
        }
        // The Detection Time is reset by every valid packet (section 6.8.4).
        self.arm_detection(now);
        if self.state == State::AdminDown {
            return;
        }
        if packet.state == State::AdminDown {
            if self.state != State::Down {
                self.set_state(State::Down, Diagnostic::NeighborDown, true, now, out);
            }
        } else {
            match (self.state, packet.state) {
                (State::Down, State::Down) => self.set_state(State::Init, Diagnostic::None, false, now, out),
                (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                    self.set_state(State::Up, Diagnostic::None, false, now, out)
                }
                (State::Up, State::Down) => {
                    self.set_state(State::Down, Diagnostic::NeighborDown, false, now, out)
                }
                _ => {}
            }
        }
        if packet.poll {
            // Section 6.8.7: a Final "as soon as practicable, without respect to the
            // transmission timer"; a packet with Final never carries Poll (section 6.5).
            let mut answer = self.packet();
            answer.poll = false;
            answer.final_ = true;
            self.counters.sent += 1;
            out.send.push(answer);
        }
    }

    /// Detection Time expiry (section 6.8.4) and the forgetting of the peer (section 6.8.1).
    fn expire(&mut self, now: Instant, out: &mut Output) {
        let Some(at) = self.detect_at else { return };
        if at > now {
            return;
        }
        self.detect_at = None;
        self.remote_discriminator = 0;
        self.remote_state = State::Down;
        self.remote_demand = false;
        self.remote_min_rx_us = 1;
        if matches!(self.state, State::Init | State::Up) {
            self.set_state(State::Down, Diagnostic::DetectionTimeExpired, false, now, out);
        }
    }

    /// Periodic transmission (section 6.8.7).
    fn transmit(&mut self, now: Instant, out: &mut Output) {
        if let Some(at) = self.next_tx
            && at <= now
        {
            if self.periodic_allowed() {
                let packet = self.packet();
                self.counters.sent += 1;
                out.send.push(packet);
            }
            self.next_tx = None;
        }
        if self.next_tx.is_none() && self.periodic_allowed() {
            let interval = self.tx_interval_us();
            self.next_tx = Some(now + Duration::from_micros(self.jitter(interval)));
        }
    }

    fn set_state(
        &mut self,
        to: State,
        diagnostic: Diagnostic,
        peer_admin_down: bool,
        now: Instant,
        out: &mut Output,
    ) {
        let from = self.state;
        self.state = to;
        self.diagnostic = diagnostic;
        if to == State::Up {
            self.counters.up += 1;
        } else if from == State::Up {
            self.counters.down += 1;
        }
        out.changes.push(Change::State {
            from,
            to,
            diagnostic,
            peer_admin_down,
        });
        if to != State::Up {
            self.poll = None;
            // A raised hand-over Detect Mult ends with the session it was raised for.
            self.detect_mult = self.config.detect_mult;
        }
        // A state change goes out at once (FRR and BIRD do so; see the module notes), unless
        // the Poll it starts already carries it.
        if !self.readvertise(now, out) {
            self.next_tx = Some(now);
        }
    }

    /// The packet we would send now (section 6.8.7: the Poll bit while a poll is in progress).
    fn packet(&self) -> ControlPacket {
        ControlPacket {
            diagnostic: self.diagnostic,
            state: self.state,
            poll: self.poll.is_some(),
            final_: false,
            control_plane_independent: false,
            authenticated: false,
            demand: false,
            detect_mult: self.detect_mult.max(1),
            my_discriminator: self.local_discriminator,
            your_discriminator: self.remote_discriminator,
            desired_min_tx_us: self.tx_us,
            required_min_rx_us: self.rx_us,
            // No Echo function (section 6.8.9: 0 says we do not take echoes).
            required_min_echo_rx_us: 0,
        }
    }
}
