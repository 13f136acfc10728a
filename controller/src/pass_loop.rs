//! The reconcile loop ([`reconcile_loop`]): waits until every watch has synced, then, while this
//! replica leads, runs a pass whenever an object changes (debounced), after a failed write (with
//! backoff), and every [`RESYNC`] as a safety net; a burst is decided at most
//! [`MAX_TOUCHED_PER_PASS`] Services a pass ([`next_touched`]).

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use oxelb_ipam::ServiceKey;
use oxelb_runtime::{feed::SyncTracker, shutdown::Shutdown, source::Writer};
use tracing::{info, warn};

use crate::{
    apply::Applier, handling::Handling, indexes::Indexes, leader::Leadership, metrics::ControllerMetrics,
    reconcile::Reconciler,
};

/// A pass runs at least this often, even when nothing changed (a safety net; changes trigger
/// passes at once).
pub const RESYNC: Duration = Duration::from_secs(60);

/// Changes arriving within this time are decided in one pass.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(20);

/// While passes over a burst follow one another, the Eips' status is written at most this often
/// (and after the last of them): each write sends a pool's whole `status.used` to every watcher.
/// The bound keeps what a leader that dies in a burst leaves unlisted small (the next leader adopts
/// it from the Services' status, with a Warning on the Eip).
const EIP_STATUS_EVERY: Duration = Duration::from_secs(2);

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

/// The reconcile loop: waits for every watch to sync, then passes while this replica leads.
pub async fn reconcile_loop(
    indexes: Indexes,
    writer: Writer,
    tracker: SyncTracker,
    shutdown: Shutdown,
    mut leadership: Leadership,
    metrics: ControllerMetrics,
    handling: Handling,
) {
    // Never decide on a partial view: an unsynced index could hide an existing assignment.
    tokio::select! {
        _ = tracker.wait() => {}
        _ = shutdown.wait() => return,
    }
    let mut changes = tracker.changes();
    loop {
        tokio::select! {
            _ = leadership.wait_leading() => {}
            _ = shutdown.wait() => return,
        }
        metrics.set_leader(true);
        info!("leading: re-registering existing assignments, then allocating");
        // A new term starts from the API's truth: the previous leader may have allocated.
        let mut reconciler = Reconciler::new(handling.clone());
        let mut applier = Applier::new(writer.clone(), metrics.clone());
        let mut backoff = ERROR_BACKOFF.0;
        // A whole pass first (re-registration), then passes over changes, with a whole pass as
        // the safety net every RESYNC and after anything a pass over a change cannot cover.
        let mut whole_due = true;
        let mut next_whole = Instant::now();
        // Changed Services a pass left for the next (see MAX_TOUCHED_PER_PASS).
        let mut carry: BTreeSet<ServiceKey> = BTreeSet::new();
        // When the last pass wrote the Eips it moved IPs of.
        let mut eips_written = Instant::now();
        loop {
            changes.borrow_and_update();
            let started = Instant::now();
            let changed = next_touched(
                indexes.touched_by(indexes.take_changes(), &reconciler),
                &mut carry,
                MAX_TOUCHED_PER_PASS,
            );
            let whole = whole_due || started >= next_whole || changed.is_none();
            if whole {
                carry.clear();
            }
            let snapshot = indexes.snapshot_of(if whole { None } else { changed });
            if whole {
                next_whole = started + RESYNC;
            }
            // While a burst is decided chunk by chunk, the Eips' status follows at most every
            // EIP_STATUS_EVERY (and after the last chunk).
            let defer_eips = !carry.is_empty() && started < eips_written + EIP_STATUS_EVERY;
            if !defer_eips {
                eips_written = started;
            }
            let report = reconciler.pass_deferring(&snapshot, defer_eips);
            metrics.record_pass(&report);
            whole_due = report.needs_whole_pass;
            let actions = report.actions.len();
            let summary = applier
                .apply_phases(report.actions, &report.phase_starts, &leadership)
                .await;
            let elapsed = started.elapsed();
            metrics.observe_pass(elapsed.as_secs_f64());
            if actions > 0 {
                info!(
                    whole,
                    services = snapshot.services.len(),
                    eips = snapshot.eips.len(),
                    written = summary.written,
                    skipped = summary.skipped,
                    conflicts = summary.conflicts,
                    errors = summary.errors,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "pass"
                );
            }
            if summary.fenced {
                break;
            }
            let wait = if summary.errors > 0 {
                // The failed writes' objects did not change: only a whole pass decides them again.
                whole_due = true;
                let wait = backoff;
                backoff = (backoff * 2).min(ERROR_BACKOFF.1);
                wait
            } else {
                backoff = ERROR_BACKOFF.0;
                if summary.conflicts > 0 {
                    // The conflicting objects changed: the watch brings them as touched.
                    CONFLICT_RETRY
                } else if whole_due {
                    DEBOUNCE
                } else if !carry.is_empty() {
                    Duration::ZERO
                } else {
                    next_whole.saturating_duration_since(Instant::now())
                }
            };
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() { return; }
                    tokio::time::sleep(DEBOUNCE).await;
                }
                _ = tokio::time::sleep(wait) => {}
                _ = leadership.lost() => break,
                _ = shutdown.wait() => return,
            }
        }
        metrics.set_leader(false);
        warn!("not leading any more: writes stopped; waiting to lead again");
    }
}

#[cfg(test)]
mod tests;
