//! The two-node tie-break of layer2, in pure code (no kube client, no file, no clock: time is a
//! `Duration` on this speaker's monotonic timeline, passed in).
//!
//! With two expected speakers a majority is two, so a speaker that hears no peer (the peer died,
//! or the two are partitioned) needs the apiserver to decide. Each speaker renews a Lease of its
//! own (`oxelb-speaker-<node>`) every [`LeaseTiming::renew_every`] and reads its peer's. A speaker
//! left alone may answer ([`alone_may_answer`]):
//!
//! - only while it **reaches the apiserver**: a renewal of its own Lease that *started* within
//!   [`LeaseTiming::reach_valid`] succeeded, and its renewals have succeeded without a gap for
//!   [`LeaseTiming::rejoin_hold`] ([`Reach`]);
//! - and then if the **peer's Lease expired**: this speaker has seen its content unchanged for
//!   [`LeaseTiming::duration`], by its own clock, from the moment it first saw that content, and
//!   its latest read of it started within [`LeaseTiming::read_valid`] ([`PeerLease`]); wall clocks
//!   of the two nodes are never compared (clock skew between nodes does not matter);
//! - else only if its name is the smaller of the two.
//!
//! So the smaller-named node's death is answered within the Lease duration, a clean partition
//! (both reach the apiserver, both renew) leaves the smaller name answering, and a node cut from
//! the apiserver as well as from its peer goes silent while the other takes over.
//!
//! # Why two never answer
//! Let A and B be alone at the same instant `t`, both answering. Only one of them can win by name,
//! so (naming them so) B answers because it judged A's Lease expired, and A answers because it
//! reaches the apiserver. Write `R` = renew period, `T` = [`LeaseTiming::request_timeout`] (a
//! request's longest duration), `V` = `reach_valid`, `Q` = `read_valid`, `H` = `rejoin_hold`,
//! `D` = `duration`.
//!
//! - B's judgment: B first saw the current content of A's Lease when a read completed at `seen`
//!   (so every write B saw happened before `seen`), `t - seen >= D`, and a read of B's that
//!   started at `q >= t - Q` still returned that content: A wrote nothing in `(seen, q)`.
//! - A's answering: its latest successful renewal started at `s >= t - V`, and its renewals have
//!   succeeded since a streak start `s0 <= t - H`, consecutive starts at most `V` apart. Each
//!   renewal's write lands within `T` of its start, so writes of the streak are at most `V + T`
//!   apart, the first within `T` of `s0`, the last after `t - V`.
//! - If `s0 <= seen`: the window `(seen, q)` lies inside the streak, is longer than
//!   `D - Q > V + T`, so it holds a write: contradiction. If `s0 > seen`: the streak's first write
//!   lands after `seen` and by `s0 + T`, before `q` (`q >= t - Q >= s0 + H - Q > s0 + T`, as
//!   `H > Q + T`): contradiction. Writes of an earlier streak end A's answering by
//!   `seen + V < t`.
//!
//! Hence [`LeaseTiming::new`] demands `D - Q > V + T` and `H > Q + T`; with `T = R/2`,
//! `V = 5R/2` (one failed renewal is survived), `Q = 3R/2` and `H = 5R/2` that is `D >= 5R`,
//! leaving `D - 9R/2` (200 ms at the defaults) of margin for the decision to reach the sockets. Both speakers must run the same timing (one
//! DaemonSet). The renewal itself is the reachability proof, so the tie-break needs no other probe.
//!
//! A speaker newly alone also waits [`alone_grace`] past the detection time before it takes the
//! peer's IPs, so that a peer that noticed the silence one heartbeat later has stopped answering
//! them first (its heartbeats arrive up to one interval, plus send jitter, apart from ours).

use std::time::Duration;

/// How often a speaker renews its Lease by default.
pub const DEFAULT_RENEW_EVERY: Duration = Duration::from_millis(400);
/// The default Lease duration: a survivor takes over from a dead smaller-named peer about this
/// long after the peer's last renewal.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(2);

/// The Lease timing of the two-node tie-break (see the module docs for what each bound is for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How often this speaker renews its Lease and reads its peer's.
    pub renew_every: Duration,
    /// How long a peer's Lease seen unchanged counts as expired.
    pub duration: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            renew_every: DEFAULT_RENEW_EVERY,
            duration: DEFAULT_DURATION,
        }
    }
}

/// Why a Lease timing is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseTimingError {
    /// The renew period is below 10 ms.
    #[error("lease renew period {renew_ms} ms is below 10 ms")]
    RenewTooShort {
        /// The period asked for.
        renew_ms: u128,
    },
    /// The duration leaves no margin between the loser's stop and the winner's start.
    #[error(
        "lease duration {duration_ms} ms must be at least five renew periods ({renew_ms} ms), or a speaker cut from the apiserver may still answer when its peer takes over"
    )]
    DurationTooShort {
        /// The duration asked for.
        duration_ms: u128,
        /// The renew period asked for.
        renew_ms: u128,
    },
}

impl LeaseTiming {
    /// A timing of `renew_every` and `duration`, checked (`duration >= 5 * renew_every`).
    pub fn new(renew_every: Duration, duration: Duration) -> Result<Self, LeaseTimingError> {
        if renew_every < Duration::from_millis(10) {
            return Err(LeaseTimingError::RenewTooShort {
                renew_ms: renew_every.as_millis(),
            });
        }
        if duration < renew_every * 5 {
            return Err(LeaseTimingError::DurationTooShort {
                duration_ms: duration.as_millis(),
                renew_ms: renew_every.as_millis(),
            });
        }
        Ok(Self {
            renew_every,
            duration,
        })
    }

    /// The longest a renewal or read may take (`T`): later is a failure.
    pub fn request_timeout(&self) -> Duration {
        self.renew_every / 2
    }

    /// How long a successful renewal proves the apiserver reachable, from its start (`V`): two
    /// periods plus the request time, so one failed (or slow) renewal in a row costs nothing.
    pub fn reach_valid(&self) -> Duration {
        self.renew_every * 2 + self.request_timeout()
    }

    /// How recent the latest read of the peer's Lease must be (by its start) for an expiry
    /// judgment (`Q`).
    pub fn read_valid(&self) -> Duration {
        self.renew_every + self.request_timeout()
    }

    /// How long renewals must have succeeded without a gap before a speaker answers alone (`H`):
    /// longer than a peer needs to see the first renewal of the streak (`Q + T`).
    pub fn rejoin_hold(&self) -> Duration {
        self.read_valid() + self.request_timeout() + self.renew_every / 2
    }
}

/// This speaker's reachability of the apiserver, from the outcomes of its own Lease renewals.
#[derive(Clone, Debug)]
pub struct Reach {
    timing: LeaseTiming,
    /// The start of the latest successful renewal.
    last_ok: Option<Duration>,
    /// The start of the first renewal of the current gapless streak of successes.
    streak_since: Option<Duration>,
}

impl Reach {
    /// No renewal yet: unreachable.
    pub fn new(timing: LeaseTiming) -> Self {
        Self {
            timing,
            last_ok: None,
            streak_since: None,
        }
    }

    /// Records the outcome of a renewal that *started* at `started` (failures change nothing:
    /// reachability lapses by itself `reach_valid` after the last success).
    pub fn renewed(&mut self, started: Duration, ok: bool) {
        if !ok {
            return;
        }
        let gapless = self
            .last_ok
            .is_some_and(|last| started.saturating_sub(last) <= self.timing.reach_valid());
        if !gapless {
            self.streak_since = Some(started);
        }
        self.last_ok = Some(self.last_ok.map_or(started, |last| last.max(started)));
    }

    /// Whether this speaker may count on the apiserver at `now`: the latest success started within
    /// `reach_valid`, and the streak is at least `rejoin_hold` old.
    pub fn reachable(&self, now: Duration) -> bool {
        self.fresh(now)
            && self
                .streak_since
                .is_some_and(|since| now >= since + self.timing.rejoin_hold())
    }

    /// The latest success started within `reach_valid` (the streak may still be young).
    fn fresh(&self, now: Duration) -> bool {
        self.last_ok
            .is_some_and(|last| now < last + self.timing.reach_valid())
    }

    /// The next moment [`Reach::reachable`] changes by itself (for the caller's timer).
    pub fn next_change(&self, now: Duration) -> Option<Duration> {
        let lapse = self.last_ok.map(|last| last + self.timing.reach_valid());
        let held = self
            .streak_since
            .map(|since| since + self.timing.rejoin_hold())
            .filter(|_| self.fresh(now));
        [lapse, held].into_iter().flatten().filter(|at| *at > now).min()
    }
}

/// What this speaker has seen of its peer's Lease.
#[derive(Clone, Debug)]
pub struct PeerLease {
    timing: LeaseTiming,
    /// The peer whose Lease is watched.
    peer: Option<String>,
    /// The content last read (`None` inside: no Lease), and when it was first seen.
    content: Option<(Option<String>, Duration)>,
    /// The start of the latest successful read.
    last_read: Option<Duration>,
}

impl PeerLease {
    /// Nothing seen yet.
    pub fn new(timing: LeaseTiming) -> Self {
        Self {
            timing,
            peer: None,
            content: None,
            last_read: None,
        }
    }

    /// Records a successful read of `peer`'s Lease that started at `started` and completed at
    /// `finished`, giving `content` (a token that changes with every write: the resourceVersion,
    /// or the file's text; `None`: there is no Lease). A new peer forgets the old one's.
    pub fn read(&mut self, peer: &str, started: Duration, finished: Duration, content: Option<String>) {
        if self.peer.as_deref() != Some(peer) {
            self.peer = Some(peer.to_owned());
            self.content = None;
            self.last_read = None;
        }
        match &self.content {
            Some((seen, _)) if *seen == content => {}
            // First seen at the read's completion: every write it reflects happened before.
            _ => self.content = Some((content, finished)),
        }
        self.last_read = Some(self.last_read.map_or(started, |last| last.max(started)));
    }

    /// Whether `peer`'s Lease counts as expired at `now`: its content seen unchanged for the
    /// Lease duration, confirmed by a read that started within `read_valid`.
    pub fn expired(&self, peer: &str, now: Duration) -> bool {
        self.peer.as_deref() == Some(peer)
            && self
                .content
                .as_ref()
                .is_some_and(|(_, since)| now >= *since + self.timing.duration)
            && self
                .last_read
                .is_some_and(|last| now < last + self.timing.read_valid())
    }

    /// The next moment [`PeerLease::expired`] changes by itself (for the caller's timer).
    pub fn next_change(&self, now: Duration) -> Option<Duration> {
        let expires = self
            .content
            .as_ref()
            .map(|(_, since)| *since + self.timing.duration);
        let stale = self.last_read.map(|last| last + self.timing.read_valid());
        [expires, stale]
            .into_iter()
            .flatten()
            .filter(|at| *at > now)
            .min()
    }
}

/// What the apiserver tells a speaker left alone in a two-node cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApiFacts {
    /// Its own renewals prove it reaches the apiserver ([`Reach::reachable`]).
    pub reachable: bool,
    /// Its peer's Lease expired ([`PeerLease::expired`]).
    pub peer_expired: bool,
}

/// Whether speaker `me`, alone with `peer` expected too, may answer (see the module docs): never
/// without the apiserver; with it, when the peer's Lease expired, else only the smaller name.
pub fn alone_may_answer(me: &str, peer: &str, facts: ApiFacts) -> bool {
    facts.reachable && (facts.peer_expired || me < peer)
}

/// How long past the detection time (`dead_after`) a speaker newly alone waits before it takes the
/// peer's IPs: two heartbeat intervals, so that the peer, which may notice the silence up to one
/// interval (plus send jitter) later, has stopped answering them.
pub fn alone_grace(interval: Duration) -> Duration {
    interval * 2
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
