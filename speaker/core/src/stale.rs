//! Noticing that this speaker's own API view is stale, in pure code (time is a `Duration` passed
//! in).
//!
//! A watch that hangs without an error delivers nothing, and nothing in the process tells a
//! quiet cluster from a hung connection (kube's watcher consumes bookmarks itself, so "no event"
//! alone says nothing). The peers' claims do: each carries the sender's progress, the highest
//! Service `resourceVersion` it has applied ([`crate::standin`]). When a live peer has applied a
//! version this speaker has not reached `after` later, this speaker's view is behind by more than
//! any watch lag the hand-over tolerates: it is **stale**. It stays stale until it reaches the
//! highest version its peers showed.
//!
//! Only a later version counts, never a mere digest difference: with two nodes a digest
//! difference cannot tell which side is behind, a version can.

use std::time::Duration;

/// Whether this speaker's view is stale, from its own progress and its live peers'.
#[derive(Clone, Debug)]
pub struct StaleView {
    after: Duration,
    /// The version a peer showed that this speaker has not reached, and since when.
    target: Option<(u64, Duration)>,
}

/// What [`StaleView::observe`] concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staleness {
    /// Up to date, or behind for less than the bound.
    Fresh,
    /// Behind a peer for longer than the bound.
    Stale {
        /// This speaker's progress.
        mine: u64,
        /// The version a peer had applied that this speaker has not.
        peer: u64,
        /// How long this speaker has been behind it.
        behind_for: Duration,
    },
}

impl StaleView {
    /// A detector that calls a view stale once it has been behind a peer's for `after`.
    pub fn new(after: Duration) -> Self {
        Self { after, target: None }
    }

    /// Records, at `now`, this speaker's progress `mine` and the highest progress among its live
    /// peers `peers` (0: none, or unknown). A progress of 0 on this side (no versions: the
    /// directory source) is never stale.
    pub fn observe(&mut self, now: Duration, mine: u64, peers: u64) -> Staleness {
        if mine == 0 {
            self.target = None;
            return Staleness::Fresh;
        }
        if self.target.is_some_and(|(target, _)| mine >= target) {
            self.target = None;
        }
        if self.target.is_none() && peers > mine {
            self.target = Some((peers, now));
        }
        match self.target {
            Some((peer, since)) if now.saturating_sub(since) >= self.after => Staleness::Stale {
                mine,
                peer,
                behind_for: now.saturating_sub(since),
            },
            _ => Staleness::Fresh,
        }
    }

    /// When the current lag becomes staleness if nothing changes (for the caller's timer).
    pub fn next_deadline(&self, now: Duration) -> Option<Duration> {
        self.target
            .map(|(_, since)| since + self.after)
            .filter(|at| *at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(2);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_lag_shorter_than_the_bound_is_fresh() {
        let mut s = StaleView::new(AFTER);
        assert_eq!(s.observe(ms(0), 10, 12), Staleness::Fresh);
        assert_eq!(s.next_deadline(ms(0)), Some(ms(2000)));
        // Caught up with the version seen, though the peers moved on: a new lag starts.
        assert_eq!(s.observe(ms(1500), 12, 14), Staleness::Fresh);
        assert_eq!(s.observe(ms(3000), 12, 14), Staleness::Fresh);
        assert_eq!(s.observe(ms(3499), 13, 15), Staleness::Fresh);
        assert_eq!(s.observe(ms(3500), 14, 15), Staleness::Fresh);
    }

    #[test]
    fn steady_churn_with_a_healthy_watch_is_never_stale() {
        let mut s = StaleView::new(AFTER);
        // Peers are always 5 versions ahead, but this speaker reaches each within 100 ms.
        for step in 0..1000u64 {
            let now = ms(step * 50);
            let mine = 100 + step;
            assert_eq!(s.observe(now, mine, mine + 2), Staleness::Fresh, "step {step}");
        }
    }

    #[test]
    fn a_view_that_stops_is_stale_after_the_bound_until_it_catches_up() {
        let mut s = StaleView::new(AFTER);
        assert_eq!(s.observe(ms(0), 50, 50), Staleness::Fresh);
        assert_eq!(s.next_deadline(ms(0)), None);
        assert_eq!(s.observe(ms(100), 50, 51), Staleness::Fresh);
        assert_eq!(s.observe(ms(2099), 50, 60), Staleness::Fresh);
        assert_eq!(
            s.observe(ms(2100), 50, 70),
            Staleness::Stale {
                mine: 50,
                peer: 51,
                behind_for: ms(2000)
            }
        );
        // Partly caught up (past what the peer first showed): fresh, then a new lag is timed.
        assert_eq!(s.observe(ms(5000), 55, 70), Staleness::Fresh);
        assert!(matches!(
            s.observe(ms(7000), 55, 70),
            Staleness::Stale { peer: 70, .. }
        ));
        assert_eq!(s.observe(ms(7001), 70, 70), Staleness::Fresh);
        assert_eq!(s.next_deadline(ms(7001)), None);
    }

    #[test]
    fn unknown_progress_is_never_stale() {
        let mut s = StaleView::new(AFTER);
        for step in 0..100u64 {
            assert_eq!(s.observe(ms(step * 100), 0, 99), Staleness::Fresh);
        }
        // Peers with unknown progress never make this one stale.
        for step in 100..200u64 {
            assert_eq!(s.observe(ms(step * 100), 10, 0), Staleness::Fresh);
        }
    }

    #[test]
    fn being_ahead_is_fresh() {
        let mut s = StaleView::new(AFTER);
        for step in 0..100u64 {
            assert_eq!(s.observe(ms(step * 100), 90, 80), Staleness::Fresh);
        }
    }
}
