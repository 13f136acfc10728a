//! The session state machine against RFC 5880: the reception table of section 6.8.6 for every
//! (local state, received state) pair, timers (sections 6.8.3, 6.8.4, 6.8.7), Poll Sequences
//! (section 6.5), AdminDown (section 6.8.16), and two sessions talking over a simulated link
//! with per-direction delays.
//!
//! Long because it walks the whole reception table and every timer rule, one scenario each; one
//! file keeps them in one test binary, which links once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use oxelb_bfd::{
    session::{Change, Config, Input, Output, Session},
    wire::{self, ControlPacket, Diagnostic, State},
};

const MS: u32 = 1000;

fn cfg(tx_ms: u32, rx_ms: u32, mult: u8) -> Config {
    Config {
        desired_min_tx_us: tx_ms * MS,
        required_min_rx_us: rx_ms * MS,
        detect_mult: mult,
    }
}

/// A packet from the scripted peer (discriminator 7) to our session (discriminator 42).
fn peer(state: State) -> ControlPacket {
    ControlPacket {
        diagnostic: Diagnostic::None,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        authenticated: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 7,
        your_discriminator: if matches!(state, State::Down | State::AdminDown) {
            0
        } else {
            42
        },
        desired_min_tx_us: 100 * MS,
        required_min_rx_us: 100 * MS,
        required_min_echo_rx_us: 0,
    }
}

/// A session brought to `state` by the scripted peer.
fn in_state(state: State, now: Instant) -> Session {
    let mut s = Session::new(cfg(100, 100, 3), 42, now);
    match state {
        State::Down => {}
        State::Init => {
            s.handle(Input::Received(peer(State::Down)), now);
        }
        State::Up => {
            s.handle(Input::Received(peer(State::Init)), now);
        }
        State::AdminDown => {
            s.handle(Input::AdminDown, now);
        }
    }
    assert_eq!(s.state(), state);
    s
}

/// A session Up whose first Poll Sequence (lowering the interval after Up) is over.
fn settled_up(now: Instant) -> Session {
    let mut s = in_state(State::Up, now);
    let mut fin = peer(State::Up);
    fin.final_ = true;
    s.handle(Input::Received(fin), now);
    assert!(!s.polling());
    s
}

fn states(out: &Output) -> Vec<(State, State, Diagnostic, bool)> {
    out.changes
        .iter()
        .filter_map(|c| match *c {
            Change::State {
                from,
                to,
                diagnostic,
                peer_admin_down,
            } => Some((from, to, diagnostic, peer_admin_down)),
            _ => None,
        })
        .collect()
}

#[test]
fn reception_table_of_section_6_8_6_for_every_pair() {
    use State::*;
    let now = Instant::now();
    for local in State::ALL {
        for received in State::ALL {
            let mut s = in_state(local, now);
            let out = s.handle(Input::Received(peer(received)), now);
            let expected = match (local, received) {
                (AdminDown, _) => AdminDown,
                (Down, Down) => Init,
                (Down, Init) => Up,
                (Down, _) => Down,
                (Init, AdminDown) => Down,
                (Init, Init | Up) => Up,
                (Init, Down) => Init,
                (Up, AdminDown | Down) => Down,
                (Up, _) => Up,
            };
            assert_eq!(s.state(), expected, "{local:?} receiving {received:?}");
            let changes = states(&out);
            if expected == local {
                assert!(changes.is_empty(), "{local:?}/{received:?}: {changes:?}");
            } else {
                assert_eq!(changes.len(), 1, "{local:?}/{received:?}");
                let (from, to, diag, admin) = changes[0];
                assert_eq!((from, to), (local, expected));
                if to == Down {
                    // Section 6.8.6: "Neighbor signaled session down".
                    assert_eq!(diag, Diagnostic::NeighborDown);
                    assert_eq!(admin, received == AdminDown, "RFC 5882: AdminDown is no failure");
                }
                // A state change is sent at once.
                assert!(
                    out.send.iter().any(|p| p.state == expected),
                    "{local:?}/{received:?}"
                );
            }
            if local != AdminDown {
                assert_eq!(s.remote_discriminator(), 7, "section 6.8.6: bfd.RemoteDiscr");
            }
        }
    }
}

#[test]
fn packets_for_another_session_are_discarded() {
    let now = Instant::now();
    let mut s = in_state(State::Up, now);
    let mut p = peer(State::Down);
    p.your_discriminator = 43;
    let out = s.handle(Input::Received(p), now);
    assert_eq!(s.state(), State::Up);
    assert!(out.changes.iter().any(|c| matches!(c, Change::Discarded(_))));
    assert_eq!(s.counters().discarded, 1);
}

#[test]
fn a_peer_changing_its_discriminator_is_reported_and_restarts_cleanly() {
    let now = Instant::now();
    let mut s = in_state(State::Up, now);
    // The peer restarted: a new discriminator, Down, Your Discriminator 0.
    let mut p = peer(State::Down);
    p.my_discriminator = 99;
    let out = s.handle(Input::Received(p), now);
    assert!(
        out.changes
            .contains(&Change::PeerDiscriminator { from: 7, to: 99 })
    );
    assert_eq!(s.state(), State::Down);
    assert_eq!(s.counters().down, 1);
    // And it comes back up with the new one.
    let mut p = peer(State::Init);
    p.my_discriminator = 99;
    s.handle(Input::Received(p), now);
    assert_eq!((s.state(), s.remote_discriminator()), (State::Up, 99));
}

#[test]
fn slow_until_up_then_a_poll_lowers_the_interval() {
    let now = Instant::now();
    let mut s = Session::new(cfg(100, 100, 3), 42, now);
    let out = s.handle(Input::Tick, now);
    // Section 6.8.3: at least 1 s while not Up.
    assert_eq!(out.send[0].desired_min_tx_us, 1_000_000);
    assert_eq!(out.send[0].required_min_rx_us, 100 * MS);
    let out = s.handle(Input::Received(peer(State::Init)), now);
    assert_eq!(s.state(), State::Up);
    let poll = out.send.iter().find(|p| p.poll).expect("a Poll on Up");
    assert_eq!(poll.desired_min_tx_us, 100 * MS);
    assert!(s.polling());
    // Until the Final, the transmit interval may not grow, and polls continue.
    let next = s.next_deadline().unwrap();
    let out = s.handle(Input::Tick, next);
    assert!(out.send.iter().all(|p| p.poll));
    let mut fin = peer(State::Up);
    fin.final_ = true;
    s.handle(Input::Received(fin), next);
    assert!(!s.polling());
    let n = s.negotiated().unwrap();
    assert_eq!(n.tx_interval_us, 100_000);
    assert_eq!(n.detection_time_us, 300_000);
    let next = s.next_deadline().unwrap();
    assert!(
        next <= now + Duration::from_millis(200),
        "fast once the poll ended"
    );
    let out = s.handle(Input::Tick, next);
    assert!(
        out.send
            .iter()
            .all(|p| !p.poll && p.desired_min_tx_us == 100 * MS)
    );
}

#[test]
fn interval_changes_while_up_use_the_conservative_values_until_the_final() {
    let now = Instant::now();
    let mut s = settled_up(now);
    let mut fin = peer(State::Up);
    fin.final_ = true;
    // Slower TX and faster RX at once: TX keeps the old (faster) value, and detection keeps
    // the old (longer) receive interval, until the peer's Final (section 6.8.3).
    s.handle(Input::Configure(cfg(500, 50, 3)), now);
    assert!(s.polling());
    let n = s.negotiated().unwrap();
    assert_eq!(n.tx_interval_us, 100_000);
    assert_eq!(n.detection_time_us, 300_000);
    s.handle(Input::Received(fin), now);
    let n = s.negotiated().unwrap();
    assert_eq!(n.tx_interval_us, 500_000);
    // Detection: the peer's 3 x max(our 50 ms, its 100 ms).
    assert_eq!(n.detection_time_us, 300_000);
    // A change during a poll is polled again after the Final.
    s.handle(Input::Configure(cfg(200, 200, 3)), now);
    s.handle(Input::Configure(cfg(300, 300, 3)), now);
    let out = s.handle(Input::Received(fin), now);
    assert!(s.polling(), "the second change needs its own poll");
    assert!(out.send.iter().any(|p| p.poll && p.desired_min_tx_us == 300 * MS));
    s.handle(Input::Received(fin), now);
    assert!(!s.polling());
    assert_eq!(s.negotiated().unwrap().detection_time_us, 900_000);
}

#[test]
fn a_peer_poll_is_answered_at_once_with_final() {
    let now = Instant::now();
    let mut s = in_state(State::Up, now);
    let mut p = peer(State::Up);
    p.poll = true;
    let out = s.handle(Input::Received(p), now + Duration::from_millis(1));
    let fin: Vec<_> = out.send.iter().filter(|p| p.final_).collect();
    assert_eq!(fin.len(), 1);
    assert!(!fin[0].poll);
}

#[test]
fn detection_time_expiry_brings_the_session_down_and_forgets_the_peer() {
    let now = Instant::now();
    for state in [State::Init, State::Up] {
        let mut s = in_state(state, now);
        // Peer's 3 x max(our 100 ms, its 100 ms).
        let out = s.handle(Input::Tick, now + Duration::from_millis(299));
        assert!(states(&out).is_empty());
        let out = s.handle(Input::Tick, now + Duration::from_millis(300));
        assert_eq!(
            states(&out),
            vec![(state, State::Down, Diagnostic::DetectionTimeExpired, false)]
        );
        assert_eq!(s.remote_discriminator(), 0);
        // What goes out now is FRR's "down, diag 1, Your Discriminator 0", at the slow rate.
        let p = out.send.last().unwrap();
        assert_eq!(
            (p.state, p.diagnostic, p.your_discriminator),
            (State::Down, Diagnostic::DetectionTimeExpired, 0)
        );
        assert_eq!(p.desired_min_tx_us, 1_000_000);
    }
}

#[test]
fn periodic_transmission_respects_the_peer_and_jitters_within_75_to_100_percent() {
    for (mult, low, high) in [(3u8, 75, 100), (1, 75, 90)] {
        let now = Instant::now();
        let mut s = Session::new(cfg(100, 100, mult), 42, now);
        s.handle(Input::Received(peer(State::Init)), now);
        let mut fin = peer(State::Up);
        fin.final_ = true;
        // The peer can take only one packet per 200 ms: the interval is 200 ms.
        fin.required_min_rx_us = 200 * MS;
        s.handle(Input::Received(fin), now);
        let mut at = s.next_deadline().unwrap();
        s.handle(Input::Tick, at);
        let mut gaps = Vec::new();
        for _ in 0..400 {
            // Keep the peer alive so detection never fires.
            let mut keep = peer(State::Up);
            keep.required_min_rx_us = 200 * MS;
            s.handle(Input::Received(keep), at);
            let next = s.next_deadline().unwrap();
            let out = s.handle(Input::Tick, next);
            if !out.send.is_empty() {
                gaps.push((next - at).as_micros() as u64);
                at = next;
            }
        }
        assert!(gaps.len() > 300);
        let (min, max) = (*gaps.iter().min().unwrap(), *gaps.iter().max().unwrap());
        assert!(min >= 200_000 * low / 100, "mult {mult}: {min}");
        assert!(max <= 200_000 * high / 100, "mult {mult}: {max}");
        assert!(max - min > 10_000, "jitter present: {min}..{max}");
    }
}

#[test]
fn zero_intervals_from_the_peer() {
    let now = Instant::now();
    let mut s = in_state(State::Up, now);
    // Required Min RX 0: the peer wants no periodic packets (section 6.8.7).
    let mut p = peer(State::Up);
    p.required_min_rx_us = 0;
    p.desired_min_tx_us = 0;
    s.handle(Input::Received(p), now);
    let n = s.negotiated().unwrap();
    assert_eq!(n.tx_interval_us, 0);
    // Desired Min TX 0 (reserved): detection falls back to our Required Min RX.
    assert_eq!(n.detection_time_us, 300_000);
    let mut sent = 0;
    let mut t = now;
    for _ in 0..10 {
        t += Duration::from_millis(50);
        sent += s.handle(Input::Tick, t).send.len();
        s.handle(Input::Received(p), t);
    }
    assert_eq!(sent, 0);
    // Silence then brings it down as usual.
    let out = s.handle(Input::Tick, t + Duration::from_millis(300));
    assert_eq!(s.state(), State::Down);
    assert!(
        !out.send.is_empty(),
        "the Down goes out again once the peer is forgotten"
    );
}

#[test]
fn admin_down_is_sent_at_once_and_the_peer_sees_a_graceful_stop() {
    let now = Instant::now();
    let (mut a, mut b, _) = pair(cfg(100, 100, 3), cfg(100, 100, 3), now);
    let out = a.handle(Input::AdminDown, now);
    let p = out.send.first().copied().unwrap();
    assert_eq!((p.state, p.diagnostic), (State::AdminDown, Diagnostic::AdminDown));
    let out = b.handle(Input::Received(p), now);
    assert_eq!(
        states(&out),
        vec![(State::Up, State::Down, Diagnostic::NeighborDown, true)]
    );
    // AdminDown ignores the peer; Enable starts again.
    a.handle(Input::Received(peer(State::Down)), now);
    assert_eq!(a.state(), State::AdminDown);
    a.handle(Input::Enable, now);
    assert_eq!(a.state(), State::Down);
}

/// Two sessions over a link with a one-way delay per direction; returns them Up and the time.
fn pair(ca: Config, cb: Config, start: Instant) -> (Session, Session, Instant) {
    let mut link = Link::new(ca, cb, start, Duration::from_millis(3), Duration::from_millis(11));
    let t = link.run_until(start + Duration::from_secs(5), |l| {
        l.a.state() == State::Up && l.b.state() == State::Up && !l.a.polling() && !l.b.polling()
    });
    assert!(t.is_some(), "a={:?} b={:?}", link.a.state(), link.b.state());
    (link.a, link.b, t.unwrap())
}

/// A simulated link: packets in flight with their arrival time, and a cut switch.
struct Link {
    a: Session,
    b: Session,
    now: Instant,
    delay_ab: Duration,
    delay_ba: Duration,
    in_flight: Vec<(Instant, bool, ControlPacket)>,
    cut: bool,
    changes_b: Vec<(Instant, Change)>,
}

impl Link {
    fn new(ca: Config, cb: Config, now: Instant, delay_ab: Duration, delay_ba: Duration) -> Self {
        Self {
            a: Session::new(ca, 1000, now),
            b: Session::new(cb, 2000, now),
            now,
            delay_ab,
            delay_ba,
            in_flight: Vec::new(),
            cut: false,
            changes_b: Vec::new(),
        }
    }

    fn deliver(&mut self, out: Output, from_a: bool) {
        if !from_a {
            let now = self.now;
            self.changes_b.extend(out.changes.iter().map(|c| (now, *c)));
        }
        if self.cut {
            return;
        }
        for p in out.send {
            // Over the wire and back: what is sent must decode to itself.
            let p = wire::decode(&wire::encode(&p)).unwrap();
            let delay = if from_a { self.delay_ab } else { self.delay_ba };
            self.in_flight.push((self.now + delay, from_a, p));
        }
    }

    /// Steps events in time order until `done` holds or `until`; returns the time it held.
    fn run_until(&mut self, until: Instant, done: impl Fn(&Link) -> bool) -> Option<Instant> {
        for _ in 0..1_000_000 {
            if done(self) {
                return Some(self.now);
            }
            let arrival = self.in_flight.iter().map(|(t, _, _)| *t).min();
            let next = [self.a.next_deadline(), self.b.next_deadline(), arrival]
                .into_iter()
                .flatten()
                .min()?;
            if next > until {
                return None;
            }
            self.now = next;
            let (due, rest): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|(t, _, _)| *t <= next);
            self.in_flight = rest;
            for (_, from_a, p) in due {
                if from_a {
                    let out = self.b.handle(Input::Received(p), next);
                    self.deliver(out, false);
                } else {
                    let out = self.a.handle(Input::Received(p), next);
                    self.deliver(out, true);
                }
            }
            let out = self.a.handle(Input::Tick, next);
            self.deliver(out, true);
            let out = self.b.handle(Input::Tick, next);
            self.deliver(out, false);
        }
        panic!("bounded loop ran out");
    }
}

#[test]
fn two_sessions_come_up_negotiate_and_detect_a_dead_link_within_the_detection_time() {
    for (ca, cb) in [
        (cfg(100, 100, 3), cfg(100, 100, 3)),
        (cfg(300, 300, 3), cfg(300, 300, 3)),
        // Asymmetric: each sends at the larger of its wish and the other's RX.
        (cfg(50, 200, 5), cfg(300, 100, 2)),
    ] {
        let start = Instant::now();
        let mut link = Link::new(ca, cb, start, Duration::from_millis(2), Duration::from_millis(9));
        let up = link
            .run_until(start + Duration::from_secs(10), |l| {
                l.a.state() == State::Up && l.b.state() == State::Up && !l.a.polling() && !l.b.polling()
            })
            .expect("up");
        let na = link.a.negotiated().unwrap();
        let nb = link.b.negotiated().unwrap();
        let us = |v: u32| u64::from(v);
        assert_eq!(
            na.tx_interval_us,
            us(ca.desired_min_tx_us.max(cb.required_min_rx_us))
        );
        assert_eq!(
            nb.tx_interval_us,
            us(cb.desired_min_tx_us.max(ca.required_min_rx_us))
        );
        assert_eq!(
            nb.detection_time_us,
            u64::from(ca.detect_mult) * us(cb.required_min_rx_us.max(ca.desired_min_tx_us))
        );
        // Stays up for a minute of simulated time (no false detection under jitter and delay).
        let stable = link.run_until(up + Duration::from_secs(60), |l| {
            l.a.state() != State::Up || l.b.state() != State::Up
        });
        assert_eq!(stable, None, "flapped with {ca:?} / {cb:?}");
        // Cut the link: b detects within its detection time (plus one in-flight delay).
        link.cut = true;
        link.in_flight.clear();
        let cut_at = link.now;
        let down = link
            .run_until(cut_at + Duration::from_secs(10), |l| l.b.state() == State::Down)
            .expect("b detects");
        let took = (down - cut_at).as_micros() as u64;
        assert!(
            took <= nb.detection_time_us,
            "{took} us > {}",
            nb.detection_time_us
        );
        assert!(took >= nb.detection_time_us / 2, "{took} us: too early");
        assert!(link.changes_b.iter().any(|(_, c)| matches!(
            c,
            Change::State {
                to: State::Down,
                diagnostic: Diagnostic::DetectionTimeExpired,
                ..
            }
        )));
    }
}

// ---- Hand-over to the next process (oxelb_bfd::handover) ----

const WINDOW_US: u64 = 10_000_000;

#[test]
fn a_handover_raises_the_detect_mult_by_a_poll_and_the_final_confirms_it() {
    let now = Instant::now();
    let mut s = in_state(State::Up, now);
    let out = s.handle(
        Input::Handover {
            detection_us: WINDOW_US,
        },
        now,
    );
    let poll = out.send.iter().find(|p| p.poll).expect("a Poll goes out at once");
    // The peer's Required Min RX and our Desired Min TX are 100 ms: 100 of them make 10 s.
    assert_eq!(poll.detect_mult, 100);
    assert_eq!(poll.desired_min_tx_us, 100 * MS);
    assert_eq!(poll.state, State::Up);
    assert!(s.polling());
    let mut fin = peer(State::Up);
    fin.final_ = true;
    s.handle(Input::Received(fin), now + Duration::from_millis(5));
    assert!(!s.polling(), "the Final ends the poll");
    let snap = s.snapshot().expect("Up sessions hand over");
    assert_eq!(snap.detect_mult, 100);
    assert_eq!((snap.local_discriminator, snap.remote_discriminator), (42, 7));
    // Periodic packets keep the raised multiplier and the configured interval.
    let later = s.handle(Input::Tick, now + Duration::from_millis(200));
    assert!(later.send.iter().all(|p| p.detect_mult == 100 && !p.poll));
}

#[test]
fn a_window_beyond_255_intervals_also_raises_desired_min_tx_after_the_final() {
    let now = Instant::now();
    let mut s = settled_up(now);
    let mut fin = peer(State::Up);
    fin.final_ = true;
    let out = s.handle(
        Input::Handover {
            detection_us: 60_000_000,
        },
        now,
    );
    let poll = out.send.iter().find(|p| p.poll).expect("poll");
    assert_eq!(poll.detect_mult, 255);
    let tx = u64::from(poll.desired_min_tx_us);
    assert!(255 * tx >= 60_000_000, "{tx}");
    // Until the Final, the old (faster) interval is used (RFC 5880 section 6.8.3).
    assert_eq!(s.negotiated().unwrap().tx_interval_us, 100_000);
    s.handle(Input::Received(fin), now + Duration::from_millis(5));
    assert_eq!(s.negotiated().unwrap().tx_interval_us, tx);
}

#[test]
fn a_handover_is_ignored_and_nothing_is_handed_over_unless_up() {
    for state in [State::AdminDown, State::Down, State::Init] {
        let now = Instant::now();
        let mut s = in_state(state, now);
        let out = s.handle(
            Input::Handover {
                detection_us: WINDOW_US,
            },
            now,
        );
        assert!(
            out.send.iter().all(|p| p.detect_mult == 3 && !p.poll),
            "{state:?}"
        );
        assert_eq!(s.snapshot(), None, "{state:?}");
    }
}

/// A session handed over at `at - 2 s` and resumed at `at`.
fn resumed(at: Instant) -> Session {
    let before = at - Duration::from_secs(2);
    let mut old = in_state(State::Up, before);
    old.handle(
        Input::Handover {
            detection_us: WINDOW_US,
        },
        before,
    );
    let snap = old.snapshot().unwrap();
    Session::resume(cfg(100, 100, 3), &snap, at)
}

#[test]
fn a_resumed_session_is_up_at_once_with_the_same_discriminators_then_polls_back() {
    let now = Instant::now() + Duration::from_secs(2);
    let mut s = resumed(now);
    assert_eq!(s.state(), State::Up);
    let out = s.handle(Input::Tick, now);
    let first = out.send.first().expect("sends at once");
    assert_eq!(first.state, State::Up);
    assert_eq!((first.my_discriminator, first.your_discriminator), (42, 7));
    assert_eq!(first.detect_mult, 100, "the raised multiplier stays until told");
    // The peer, still Up (its Detection Time covered the gap), answers as before: no change.
    let out = s.handle(Input::Received(peer(State::Up)), now + Duration::from_millis(1));
    assert!(states(&out).is_empty(), "{:?}", out.changes);
    // BGP is back: the configured values return by a Poll Sequence.
    let out = s.handle(Input::Configure(cfg(100, 100, 3)), now + Duration::from_millis(2));
    let poll = out.send.iter().find(|p| p.poll).expect("poll back");
    assert_eq!(poll.detect_mult, 3);
    let mut fin = peer(State::Up);
    fin.final_ = true;
    s.handle(Input::Received(fin), now + Duration::from_millis(3));
    assert!(!s.polling());
    assert_eq!(s.state(), State::Up);
}

#[test]
fn a_resumed_session_takes_every_peer_state_as_any_up_session_does() {
    let now = Instant::now() + Duration::from_secs(2);
    for (received, to, admin) in [
        (State::AdminDown, Some(State::Down), true),
        // The peer timed the session out meanwhile: Down, and the ordinary bring-up follows.
        (State::Down, Some(State::Down), false),
        (State::Init, None, false),
        (State::Up, None, false),
    ] {
        let mut s = resumed(now);
        let out = s.handle(Input::Received(peer(received)), now);
        let got = states(&out);
        match to {
            Some(to) => {
                assert_eq!(
                    got,
                    vec![(State::Up, to, Diagnostic::NeighborDown, admin)],
                    "{received:?}"
                );
                assert_eq!(
                    s.snapshot(),
                    None,
                    "nothing to hand over once down ({received:?})"
                );
            }
            None => assert!(got.is_empty(), "{received:?}: {got:?}"),
        }
    }
    // After the peer's Down: Down -> Init -> Up as for a new session, the multiplier configured.
    let mut s = resumed(now);
    s.handle(Input::Received(peer(State::Down)), now);
    let out = s.handle(Input::Received(peer(State::Down)), now + Duration::from_millis(1));
    assert_eq!(states(&out)[0].1, State::Init);
    assert!(out.send.iter().all(|p| p.detect_mult == 3));
    s.handle(Input::Received(peer(State::Up)), now + Duration::from_millis(2));
    assert_eq!(s.state(), State::Up);
}

#[test]
fn a_resumed_session_whose_peer_stays_silent_goes_down_after_the_peers_detection_time() {
    let start = Instant::now() + Duration::from_secs(2);
    let mut s = resumed(start);
    s.handle(Input::Tick, start);
    // The peer's Detect Mult (3) times the larger of our Required Min RX and its Desired Min TX.
    let out = s.handle(Input::Tick, start + Duration::from_millis(299));
    assert!(states(&out).is_empty());
    let out = s.handle(Input::Tick, start + Duration::from_millis(301));
    assert_eq!(
        states(&out),
        vec![(State::Up, State::Down, Diagnostic::DetectionTimeExpired, false)]
    );
}

#[test]
fn the_peer_never_sees_a_restart_shorter_than_the_window_and_times_out_a_longer_one() {
    for (gap, peer_goes_down) in [(Duration::from_secs(6), false), (Duration::from_secs(11), true)] {
        let start = Instant::now();
        let (a, b, up) = pair(cfg(100, 100, 3), cfg(100, 100, 3), start);
        let mut link = Link::new(
            cfg(100, 100, 3),
            cfg(100, 100, 3),
            up,
            Duration::from_millis(3),
            Duration::from_millis(11),
        );
        (link.a, link.b) = (a, b);
        let out = link.a.handle(
            Input::Handover {
                detection_us: WINDOW_US,
            },
            up,
        );
        link.deliver(out, true);
        let done = link.run_until(up + Duration::from_secs(1), |l| !l.a.polling());
        assert!(done.is_some(), "the Final arrives");
        let snap = link.a.snapshot().unwrap();
        // The old process stops (no AdminDown); the new one starts `gap` later.
        link.cut = true;
        link.in_flight.clear();
        let stop = link.now;
        assert_eq!(link.run_until(stop + gap, |_| false), None);
        link.cut = false;
        link.a = Session::resume(cfg(100, 100, 3), &snap, link.now);
        link.run_until(link.now + Duration::from_secs(5), |_| false);
        let b_down = link
            .changes_b
            .iter()
            .any(|(t, c)| *t > stop && matches!(c, Change::State { to: State::Down, .. }));
        assert_eq!(b_down, peer_goes_down, "gap {gap:?}: {:?}", link.changes_b);
        assert_eq!(link.a.state(), State::Up, "gap {gap:?}");
        assert_eq!(link.b.state(), State::Up, "gap {gap:?}");
        // Either way the configured timers come back.
        let out = link.a.handle(Input::Configure(cfg(100, 100, 3)), link.now);
        link.deliver(out, true);
        link.run_until(link.now + Duration::from_secs(1), |_| false);
        assert!(!link.a.polling());
        assert_eq!(
            link.b.negotiated().unwrap().detection_time_us,
            300_000,
            "gap {gap:?}"
        );
    }
}
