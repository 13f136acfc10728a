//! The poller of a dir source: scans the directory every interval and publishes a [`Snapshot`]
//! when something changed, optionally delivering each one late. Shared by the source's watches and
//! its writer's store (which reads the latest snapshot to check what it writes against).

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::Duration,
};

use tokio::sync::watch;
use tracing::{debug, warn};

use super::scan::{Scanner, Snapshot};

/// The directory, how it is polled, and the receiver of its snapshots (the poller starts on first
/// use).
pub(super) struct Poller {
    root: PathBuf,
    poll_interval: Duration,
    /// Every snapshot is delivered this late (labs: skewed views between processes).
    pub(super) delay: Duration,
    snapshots: OnceLock<watch::Receiver<Option<Arc<Snapshot>>>>,
}

impl Poller {
    /// A poller of `root` every `poll_interval`, not started yet.
    pub(super) fn new(root: PathBuf, poll_interval: Duration) -> Self {
        Self {
            root,
            poll_interval,
            delay: Duration::ZERO,
            snapshots: OnceLock::new(),
        }
    }

    /// The directory.
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// The receiver of snapshots; starts the poller on first use (must run inside a tokio runtime).
    pub(super) fn snapshots(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.snapshots
            .get_or_init(|| {
                let (tx, rx) = watch::channel(None);
                let delay = self.delay;
                if delay.is_zero() {
                    tokio::spawn(poll(Scanner::new(self.root.clone()), tx, self.poll_interval));
                } else {
                    let (early_tx, early_rx) = watch::channel(None);
                    tokio::spawn(poll(
                        Scanner::new(self.root.clone()),
                        early_tx,
                        self.poll_interval,
                    ));
                    tokio::spawn(deliver_late(early_rx, tx, delay));
                }
                rx
            })
            .clone()
    }

    /// The latest snapshot (waits for the first scan).
    pub(super) async fn latest(&self) -> Arc<Snapshot> {
        let mut rx = self.snapshots();
        match rx.wait_for(Option::is_some).await {
            Ok(snapshot) => snapshot.clone().unwrap_or_default(),
            // The poller only stops when every receiver is gone, and `rx` is one.
            Err(_) => Arc::default(),
        }
    }
}

/// Forwards each snapshot of `early` to `late`, `delay` after it was published, in order. Stops
/// when the poller stops or nobody listens any more.
async fn deliver_late(
    mut early: watch::Receiver<Option<Arc<Snapshot>>>,
    late: watch::Sender<Option<Arc<Snapshot>>>,
    delay: Duration,
) {
    // Snapshots in flight, oldest first, with when they are due.
    let mut queue: VecDeque<(tokio::time::Instant, Option<Arc<Snapshot>>)> = VecDeque::new();
    let mut open = true;
    loop {
        let due = queue.front().map(|(at, _)| *at);
        tokio::select! {
            changed = early.changed(), if open => match changed {
                Ok(()) => {
                    let snapshot = early.borrow_and_update().clone();
                    queue.push_back((tokio::time::Instant::now() + delay, snapshot));
                }
                Err(_) => open = false,
            },
            () = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some((_, snapshot)) = queue.pop_front() {
                    late.send_replace(snapshot);
                }
            }
            () = late.closed() => return,
        }
        if !open && queue.is_empty() {
            return;
        }
    }
}

/// The poller: scans every `interval` and publishes a snapshot when something changed; stops when
/// nobody listens any more.
async fn poll(scanner: Scanner, tx: watch::Sender<Option<Arc<Snapshot>>>, interval: Duration) {
    let mut scanner = Some(scanner);
    loop {
        let Some(mut s) = scanner.take() else { return };
        // File I/O blocks; keep it off the async workers.
        match tokio::task::spawn_blocking(move || {
            let snapshot = s.scan();
            (s, snapshot)
        })
        .await
        {
            Ok((s, snapshot)) => {
                scanner = Some(s);
                if let Some(snapshot) = snapshot {
                    debug!(
                        documents = snapshot.documents.len(),
                        overlays = snapshot.overlays.len(),
                        "directory changed"
                    );
                    tx.send_replace(Some(Arc::new(snapshot)));
                }
            }
            Err(error) => {
                warn!(%error, "directory scan panicked; the dir source stops updating");
                return;
            }
        }
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
