//! The session's timers (RFC 5880 sections 6.8.2 to 6.8.4 and 6.8.7) and Poll Sequences
//! (section 6.5): the transmit interval and its jitter, the Detection Time, and how a change of
//! the advertised intervals reaches the peer. The state machine that calls them is in
//! [`super`].

use std::time::{Duration, Instant};

use super::{Change, Negotiated, Output, Poll, SLOW_TX_US, Session};
use crate::wire::State;

impl Session {
    /// Section 6.8.7: no periodic packets while the peer wants none (Required Min RX 0) or runs
    /// Demand mode with both sides Up.
    pub(super) fn periodic_allowed(&self) -> bool {
        let demand = self.remote_demand && self.state == State::Up && self.remote_state == State::Up;
        self.remote_min_rx_us != 0 && !demand
    }

    /// The transmit interval before jitter: the larger of what we may send at (during a poll, the
    /// smaller of old and new: an increase waits for the Final, section 6.8.3) and what the peer
    /// can take.
    pub(super) fn tx_interval_us(&self) -> u64 {
        let ours = match self.poll {
            Some(poll) => poll.previous_tx_us.min(self.tx_us),
            None => self.tx_us,
        };
        u64::from(ours.max(self.remote_min_rx_us)).max(1)
    }

    /// Our Detection Time (section 6.8.4): the peer's Detect Mult times the larger of our
    /// Required Min RX (during a poll, the larger of old and new: a decrease waits for the
    /// Final, section 6.8.3) and the peer's Desired Min TX.
    pub(super) fn detection_time_us(&self) -> u64 {
        let ours = match self.poll {
            Some(poll) => poll.previous_rx_us.max(self.rx_us),
            None => self.rx_us,
        };
        u64::from(self.remote_detect_mult) * u64::from(ours.max(self.remote_desired_tx_us))
    }

    pub(super) fn arm_detection(&mut self, now: Instant) {
        let time = self.detection_time_us();
        self.detect_at = (time > 0).then(|| now + Duration::from_micros(time));
    }

    /// Section 6.8.7: each interval is reduced by a random 0-25 %, or 10-25 % with Detect Mult 1
    /// (so that a single late packet does not expire the peer's Detection Time).
    pub(super) fn jitter(&mut self, interval_us: u64) -> u64 {
        // xorshift64*: deterministic per session, enough to desynchronise sessions.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let random = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33;
        let (low, span) = if self.detect_mult == 1 { (75, 15) } else { (75, 25) };
        let percent = low + random % (span + 1);
        interval_us * percent / 100
    }

    /// What we advertise as Desired Min TX: at least one second while not Up (section 6.8.3).
    pub(super) fn wanted_tx_us(&self) -> u32 {
        if self.state == State::Up {
            self.config.desired_min_tx_us
        } else {
            self.config.desired_min_tx_us.max(SLOW_TX_US)
        }
    }

    /// Brings the advertised intervals to what config and state want: at once while not Up, by
    /// a Poll Sequence while Up (section 6.8.3).
    /// Returns whether it sent a packet.
    pub(super) fn readvertise(&mut self, now: Instant, out: &mut Output) -> bool {
        let (tx, rx) = (self.wanted_tx_us(), self.config.required_min_rx_us);
        if (tx, rx) == (self.tx_us, self.rx_us) {
            return false;
        }
        let mut sent = false;
        if self.state == State::Up {
            if self.poll.is_none() {
                self.poll = Some(Poll {
                    previous_tx_us: self.tx_us,
                    previous_rx_us: self.rx_us,
                    polled_tx_us: tx,
                    polled_rx_us: rx,
                });
            }
            self.tx_us = tx;
            self.rx_us = rx;
            // The first Poll goes out at once; the next ones at the periodic slots.
            let packet = self.packet();
            self.counters.sent += 1;
            out.send.push(packet);
            sent = true;
        } else {
            self.poll = None;
            self.tx_us = tx;
            self.rx_us = rx;
        }
        self.reschedule(now);
        sent
    }

    /// A Final ends the poll (section 6.5); if the values changed since the poll began, a new
    /// poll carries them.
    pub(super) fn finish_poll(&mut self, now: Instant, out: &mut Output) {
        let Some(poll) = self.poll.take() else { return };
        if (poll.polled_tx_us, poll.polled_rx_us) != (self.tx_us, self.rx_us) {
            self.poll = Some(Poll {
                previous_tx_us: poll.polled_tx_us,
                previous_rx_us: poll.polled_rx_us,
                polled_tx_us: self.tx_us,
                polled_rx_us: self.rx_us,
            });
            let packet = self.packet();
            self.counters.sent += 1;
            out.send.push(packet);
        }
        self.reschedule(now);
    }

    /// After an interval change: the next periodic packet no later than one new interval away.
    pub(super) fn reschedule(&mut self, now: Instant) {
        let next = now + Duration::from_micros(self.tx_interval_us());
        self.next_tx = Some(self.next_tx.map_or(next, |at| at.min(next)));
    }

    /// Reports the intervals in use when they changed.
    pub(super) fn renegotiate(&mut self, out: &mut Output) {
        let negotiated = (self.remote_detect_mult != 0).then(|| Negotiated {
            tx_interval_us: if self.periodic_allowed() {
                self.tx_interval_us()
            } else {
                0
            },
            detection_time_us: self.detection_time_us(),
            peer_detect_mult: self.remote_detect_mult,
            peer_desired_min_tx_us: self.remote_desired_tx_us,
            peer_required_min_rx_us: self.remote_min_rx_us,
        });
        if negotiated != self.negotiated {
            self.negotiated = negotiated;
            if let Some(n) = negotiated {
                out.changes.push(Change::Negotiated(n));
            }
        }
    }
}
