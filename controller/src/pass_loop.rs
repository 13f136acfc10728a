//! The reconcile loop ([`reconcile_loop`]): waits until every watch has synced, then, while this
//! replica leads, runs a pass whenever an object changes (debounced), after a failed write (with
//! backoff), and every [`RESYNC`](crate::RESYNC) as a safety net; a burst is decided at most
//! [`MAX_TOUCHED_PER_PASS`](crate::MAX_TOUCHED_PER_PASS) Services a pass. What to pass over and how long to wait is decided in
//! [`crate::pacing`]; this module does the waiting, the reading and the writing.

use std::time::Instant;

use oxelb_runtime::{feed::SyncTracker, shutdown::Shutdown, source::Writer};
use tracing::{info, warn};

use crate::{
    apply::Applier,
    indexes::Indexes,
    leader::Leadership,
    metrics::ControllerMetrics,
    pacing::{DEBOUNCE, Pacing},
    reconcile::Reconciler,
};

/// The reconcile loop: waits for every watch to sync, then passes while this replica leads, with a
/// new reconciler from `new_reconciler` each term.
pub async fn reconcile_loop(
    indexes: Indexes,
    writer: Writer,
    tracker: SyncTracker,
    shutdown: Shutdown,
    mut leadership: Leadership,
    metrics: ControllerMetrics,
    new_reconciler: impl Fn() -> Reconciler,
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
        let mut reconciler = new_reconciler();
        let mut applier = Applier::new(writer.clone(), metrics.clone());
        let mut pacing = Pacing::new(Instant::now());
        loop {
            changes.borrow_and_update();
            let started = Instant::now();
            let plan = pacing.begin(started, indexes.touched_by(indexes.take_changes(), &reconciler));
            let whole = plan.whole;
            let snapshot = indexes.snapshot_of(plan.touched);
            let report = reconciler.pass_deferring(&snapshot, plan.defer_eips);
            metrics.record_pass(&report);
            let needs_whole_pass = report.needs_whole_pass;
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
            let wait = pacing.end(
                needs_whole_pass,
                summary.errors,
                summary.conflicts,
                Instant::now(),
            );
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
