//! When the reconcile loop passes, and over what: the pure part of [`crate::pass_loop`]. Whole
//! pass or the touched Services only, at most [`MAX_TOUCHED_PER_PASS`] of them a pass
//! ([`next_touched`]); whether a pass defers the Eips' status; and how long the loop waits before
//! the next pass (debounce, conflict retry, error backoff, [`RESYNC`]). No tokio, no clock: the
//! loop passes the time in.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use oxelb_ipam::ServiceKey;

/// A pass runs at least this often, even when nothing changed (a safety net; changes trigger
/// passes at once).
pub const RESYNC: Duration = Duration::from_secs(60);

/// Changes arriving within this time are decided in one pass.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(20);

/// While passes over a burst follow one another, the Eips' status is written at most this often
/// (and after the last of them): each write sends a pool's whole `status.used` to every watcher.
/// The bound keeps what a leader that dies in a burst leaves unlisted small (the next leader adopts
/// it from the Services' status, with a Warning on the Eip).
pub(crate) const EIP_STATUS_EVERY: Duration = Duration::from_secs(2);

/// After a 409, the next pass waits this long for the watch to deliver the newer object.
pub(crate) const CONFLICT_RETRY: Duration = Duration::from_millis(200);

/// The backoff after failed writes: doubling from the first value up to the second.
pub(crate) const ERROR_BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));

/// The most Services one pass over changes decides; the rest wait for the next pass, which
/// follows at once. A pass holds all its writes until they are made (a few hundred bytes to
/// kilobytes each), so a burst of ten thousand creates must not become one pass.
pub const MAX_TOUCHED_PER_PASS: usize = 1000;

/// The Services the next pass over changes decides: those that changed (`changed`; `None` calls
/// for a whole pass, which decides everything and so empties `carry`) plus those carried over
/// from earlier passes, at most `max` of them, in key order (the order a single pass would
/// allocate in); the rest are left in `carry`.
pub fn next_touched(
    changed: Option<BTreeSet<ServiceKey>>,
    carry: &mut BTreeSet<ServiceKey>,
    max: usize,
) -> Option<BTreeSet<ServiceKey>> {
    let Some(changed) = changed else {
        carry.clear();
        return None;
    };
    carry.extend(changed);
    let rest = match carry.iter().nth(max) {
        Some(first_left) => {
            let first_left = first_left.clone();
            carry.split_off(&first_left)
        }
        None => BTreeSet::new(),
    };
    Some(std::mem::replace(carry, rest))
}

/// What a pass decides over, from [`Pacing::begin`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassPlan {
    /// A whole pass: every Service.
    pub whole: bool,
    /// The Services a pass over changes decides (`None` for a whole pass).
    pub touched: Option<BTreeSet<ServiceKey>>,
    /// The Eips' status waits for a later pass of the burst (at most every two seconds in a burst, see `EIP_STATUS_EVERY`).
    pub defer_eips: bool,
}

/// The loop's pacing state over one term of leadership.
#[derive(Clone, Debug)]
pub struct Pacing {
    /// A whole pass is due (first, re-registration; or after what a pass over changes cannot
    /// cover).
    whole_due: bool,
    /// When the safety-net whole pass is due.
    next_whole: Instant,
    /// Changed Services a pass left for the next (see [`MAX_TOUCHED_PER_PASS`]).
    carry: BTreeSet<ServiceKey>,
    /// When the last pass wrote the Eips it moved IPs of.
    eips_written: Instant,
    /// The wait after the next failed pass.
    backoff: Duration,
}

impl Pacing {
    /// A new term starting at `now`: a whole pass first (re-registration), then passes over changes,
    /// with a whole pass as the safety net every [`RESYNC`] and after anything a pass over a change
    /// cannot cover.
    pub fn new(now: Instant) -> Self {
        Self {
            whole_due: true,
            next_whole: now,
            carry: BTreeSet::new(),
            eips_written: now,
            backoff: ERROR_BACKOFF.0,
        }
    }

    /// Plans the pass starting at `started`, given the Services that changed (`None`: a whole
    /// pass is called for).
    pub fn begin(&mut self, started: Instant, changed: Option<BTreeSet<ServiceKey>>) -> PassPlan {
        let changed = next_touched(changed, &mut self.carry, MAX_TOUCHED_PER_PASS);
        let whole = self.whole_due || started >= self.next_whole || changed.is_none();
        if whole {
            self.carry.clear();
            self.next_whole = started + RESYNC;
        }
        // While a burst is decided chunk by chunk, the Eips' status follows at most every
        // EIP_STATUS_EVERY (and after the last chunk).
        let defer_eips = !self.carry.is_empty() && started < self.eips_written + EIP_STATUS_EVERY;
        if !defer_eips {
            self.eips_written = started;
        }
        PassPlan {
            whole,
            touched: if whole { None } else { changed },
            defer_eips,
        }
    }

    /// After a pass whose report asked for a whole pass (`needs_whole_pass`) and whose writes
    /// had `errors` failures and `conflicts` conflicts: how long to wait, at `now`, before the next
    /// pass (a change arriving meanwhile starts it earlier).
    pub fn end(&mut self, needs_whole_pass: bool, errors: usize, conflicts: usize, now: Instant) -> Duration {
        self.whole_due = needs_whole_pass;
        if errors > 0 {
            // The failed writes' objects did not change: only a whole pass decides them again.
            self.whole_due = true;
            let wait = self.backoff;
            self.backoff = (self.backoff * 2).min(ERROR_BACKOFF.1);
            wait
        } else {
            self.backoff = ERROR_BACKOFF.0;
            if conflicts > 0 {
                // The conflicting objects changed: the watch brings them as touched.
                CONFLICT_RETRY
            } else if self.whole_due {
                DEBOUNCE
            } else if !self.carry.is_empty() {
                Duration::ZERO
            } else {
                self.next_whole.saturating_duration_since(now)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
