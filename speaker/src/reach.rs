//! Whether this speaker reaches the apiserver: the tie-break of two-node layer2 clusters (see
//! [`crate::liveness`]). A thin adapter: a probe every [`PROBE_EVERY`] (`GET /version`, bounded by
//! [`PROBE_TIMEOUT`]) feeds a watch channel of "reached within [`REACH_VALID`]".

use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

/// How often the apiserver is probed.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// A success counts this long: a node cut off from the apiserver stops answering alone within it.
pub const REACH_VALID: Duration = Duration::from_millis(1500);

/// The reachability signal: `true` while the apiserver answered within [`REACH_VALID`]. Without a
/// Kubernetes client (the `dir:` source: the directory is local) it is always `true`.
pub fn start(client: Option<kube::Client>) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(true);
    let Some(client) = client else {
        return rx;
    };
    tokio::spawn(async move {
        let mut last_ok = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await {
                Ok(Ok(_)) => last_ok = tokio::time::Instant::now(),
                Ok(Err(error)) => warn!(%error, "apiserver probe failed"),
                Err(_) => warn!(timeout_ms = 500u64, "apiserver probe timed out"),
            }
            let reachable = last_ok.elapsed() < REACH_VALID;
            let changed = tx.send_if_modified(|r| {
                let changed = *r != reachable;
                *r = reachable;
                changed
            });
            if changed {
                info!(
                    reachable,
                    "apiserver reachability changed (two-node layer2 tie-break)"
                );
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    rx
}
