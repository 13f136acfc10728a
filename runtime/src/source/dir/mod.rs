//! The directory adapter (`--source dir:PATH`): the same multi-document YAML a user would
//! `kubectl apply`, polled for changes, with the writer's results overlaid from `PATH/status/`.
//!
//! Rules (see also [`Overlay`] for the status file format):
//! - `*.yaml`/`*.yml` files under PATH, recursively, in path order; hidden entries and
//!   `PATH/status/` are not manifests. Documents match a kind by `apiVersion` and `kind`; `List`
//!   documents are expanded. Namespaced objects without a namespace get `default`.
//! - A file with a YAML syntax error is logged with its path and line and keeps its last good
//!   content (nothing if it never parsed), as `kubectl apply` rejects a whole file; a document that
//!   is valid YAML but not a valid object is logged and skipped on its own. Neither affects other
//!   files.
//! - Two documents defining the same object: the later one (path order, then file order) wins,
//!   with a warning naming both.
//! - Objects get a uid derived from apiVersion/kind/namespace/name and a resourceVersion derived
//!   from their content (manifest + overlay), so it changes exactly when the object does.
//! - The manifest's `status` is ignored, as the apiserver ignores it on create: status comes only
//!   from the overlay.
//! - The source never writes or deletes anything outside `PATH/status/`.

mod objects;
mod scan;
mod store;

use std::{
    collections::{BTreeMap, VecDeque},
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::Duration,
};

use futures::{StreamExt, stream::BoxStream};
use tokio::sync::watch;
use tracing::{debug, warn};

use self::{
    objects::{build_stored, select},
    scan::{Document, OverlayKey, Scanner, Snapshot, StoredOverlay},
};
pub use self::{
    scan::{EVENTS_FILE, Overlay, OverlayMeta, STATUS_DIR},
    store::{DirStore, WriteRecord, write_atomically},
};
use super::{ObjectEvent, SourceError};
use crate::object::{Object, ObjectKey, kind_of};

/// How often the directory is polled by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A directory of manifests, polled for changes. Cloning is cheap and shares the poller and the
/// writer's store.
#[derive(Clone)]
pub struct DirSource {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    poll_interval: Duration,
    /// Every snapshot is delivered this late (labs: skewed views between processes).
    delay: Duration,
    snapshots: OnceLock<watch::Receiver<Option<Arc<Snapshot>>>>,
    store: store::StoreState,
}

impl DirSource {
    /// Opens `root`, polled every [`DEFAULT_POLL_INTERVAL`].
    pub fn open(root: &Path) -> Result<Self, SourceError> {
        Self::open_with_interval(root, DEFAULT_POLL_INTERVAL)
    }

    /// Opens `root`, polled every `poll_interval` (tests use a short one).
    pub fn open_with_interval(root: &Path, poll_interval: Duration) -> Result<Self, SourceError> {
        std::fs::read_dir(root).map_err(|source| SourceError::DirNotFound {
            path: root.to_owned(),
            source,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                root: root.to_owned(),
                poll_interval,
                delay: Duration::ZERO,
                snapshots: OnceLock::new(),
                store: store::StoreState::default(),
            }),
        })
    }

    /// The same directory, delivering every change `delay` late (in order), as a watch of a
    /// real apiserver delivers a change to each client at its own moment. Labs give each process
    /// its own delay to test decisions shared between processes under skewed views. Call before
    /// the first watch.
    pub fn with_delay(self, delay: Duration) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.delay = delay;
                Self {
                    inner: Arc::new(inner),
                }
            }
            // Already shared: a clone is in use, keep it as it is.
            Err(inner) => Self { inner },
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The writer's store for this directory.
    pub fn store(&self) -> DirStore {
        DirStore::new(self.clone())
    }

    /// The receiver of snapshots; starts the poller on first use (must run inside a tokio runtime).
    fn snapshots(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.inner
            .snapshots
            .get_or_init(|| {
                let (tx, rx) = watch::channel(None);
                let delay = self.inner.delay;
                if delay.is_zero() {
                    tokio::spawn(poll(
                        Scanner::new(self.inner.root.clone()),
                        tx,
                        self.inner.poll_interval,
                    ));
                } else {
                    let (early_tx, early_rx) = watch::channel(None);
                    tokio::spawn(poll(
                        Scanner::new(self.inner.root.clone()),
                        early_tx,
                        self.inner.poll_interval,
                    ));
                    tokio::spawn(deliver_late(early_rx, tx, delay));
                }
                rx
            })
            .clone()
    }

    /// The latest snapshot (waits for the first scan).
    async fn latest(&self) -> Arc<Snapshot> {
        let mut rx = self.snapshots();
        match rx.wait_for(Option::is_some).await {
            Ok(snapshot) => snapshot.clone().unwrap_or_default(),
            // The poller only stops when every receiver is gone, and `rx` is one.
            Err(_) => Arc::default(),
        }
    }

    /// The stream of changes to objects of kind `K`: a `Resync` of the first scan, then `Apply` and
    /// `Delete` for each object whose resourceVersion changed, appeared or disappeared.
    pub fn watch<K: Object>(&self) -> BoxStream<'static, Result<ObjectEvent<K>, SourceError>> {
        let state = WatchState::<K> {
            rx: self.snapshots(),
            started: false,
            known: None,
            pending: VecDeque::new(),
        };
        futures::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(event) = st.pending.pop_front() {
                    return Some((Ok(event), st));
                }
                if st.started && st.rx.changed().await.is_err() {
                    return None;
                }
                st.started = true;
                let snapshot = st.rx.borrow_and_update().clone();
                if let Some(snapshot) = snapshot {
                    st.update(&snapshot);
                }
            }
        })
        .boxed()
    }
}

struct WatchState<K> {
    rx: watch::Receiver<Option<Arc<Snapshot>>>,
    started: bool,
    known: Option<BTreeMap<ObjectKey, Known>>,
    pending: VecDeque<ObjectEvent<K>>,
}

/// What a watch remembers of an object it reported: what it was built from (shared with the
/// snapshot, so an unchanged object is recognised by pointer without building it again, and a
/// deleted one can be built for its `Delete`) and its resourceVersion. The objects themselves live
/// only in the consumer's index, not here as well.
struct Known {
    doc: Arc<Document>,
    overlay: Option<Arc<StoredOverlay>>,
    resource_version: String,
}

impl Known {
    fn same_source(&self, doc: &Arc<Document>, overlay: Option<&Arc<StoredOverlay>>) -> bool {
        Arc::ptr_eq(&self.doc, doc)
            && match (&self.overlay, overlay) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

impl<K: Object> WatchState<K> {
    /// Queues the events that turn the known set into the objects of `snapshot`: a `Resync` the
    /// first time, then `Apply` for each object whose resourceVersion changed or that appeared and
    /// `Delete` for each that disappeared. Only objects whose document or overlay changed are built.
    fn update(&mut self, snapshot: &Snapshot) {
        let first = self.known.is_none();
        let mut before = self.known.take().unwrap_or_default();
        let mut current: BTreeMap<ObjectKey, Known> = BTreeMap::new();
        let mut all = Vec::new();
        let mut overlay_key = OverlayKey {
            api_version: K::api_version(&()).into_owned(),
            kind: kind_of::<K>(),
            object: ObjectKey::new(None, ""),
        };
        for (key, doc) in select::<K>(snapshot, true) {
            overlay_key.object = key.clone();
            let overlay = snapshot.overlays.get(&overlay_key);
            let previous = before.remove(&key);
            let previous = match previous {
                Some(known) if known.same_source(doc, overlay) => {
                    current.insert(key, known);
                    continue;
                }
                other => other,
            };
            let built = match build_stored::<K>(&key, doc, overlay.map(Arc::as_ref)) {
                Ok(built) => built,
                Err(error) => {
                    warn!(file = %doc.file.display(), line = doc.line, kind = %overlay_key.kind, object = %key, %error,
                        "document is not a valid object of its kind; skipped");
                    // No longer a valid object: it is deleted below if it was known.
                    if let Some(previous) = previous {
                        before.insert(key, previous);
                    }
                    continue;
                }
            };
            if first {
                all.push(built.object);
            } else if previous.as_ref().map(|p| &p.resource_version) != Some(&built.resource_version) {
                self.pending.push_back(ObjectEvent::Apply(built.object));
            }
            current.insert(
                key,
                Known {
                    doc: doc.clone(),
                    overlay: overlay.cloned(),
                    resource_version: built.resource_version,
                },
            );
        }
        if first {
            self.pending.push_back(ObjectEvent::Resync(all));
        }
        // What is left of the known set is gone: built once more, from what it was built from, for
        // its `Delete`.
        for (key, gone) in before {
            match build_stored::<K>(&key, &gone.doc, gone.overlay.as_deref()) {
                Ok(built) => self.pending.push_back(ObjectEvent::Delete(built.object)),
                Err(error) => {
                    warn!(kind = %overlay_key.kind, object = %key, %error, "deleted object cannot be rebuilt; its Delete is not sent");
                }
            }
        }
        self.known = Some(current);
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
