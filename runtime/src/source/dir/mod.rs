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
mod poller;
mod scan;
mod store;

use std::{
    collections::{BTreeMap, VecDeque},
    path::Path,
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, stream::BoxStream};
use tokio::sync::watch;
use tracing::warn;

use self::{
    objects::{build_stored, select},
    poller::Poller,
    scan::{Document, OverlayKey, Snapshot, StoredOverlay},
};
pub use self::{
    scan::{EVENTS_FILE, Overlay, OverlayMeta, STATUS_DIR},
    store::{DirStore, WriteRecord, write_atomically},
};
use super::{error::SourceError, event::ObjectEvent};
use crate::object::{Object, ObjectKey, kind_of};

/// How often the directory is polled by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A directory of manifests, polled for changes. Cloning is cheap and shares the poller and the
/// writer's store.
#[derive(Clone)]
pub struct DirSource {
    poller: Arc<Poller>,
    store: Arc<store::StoreState>,
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
            poller: Arc::new(Poller::new(root.to_owned(), poll_interval)),
            store: Arc::default(),
        })
    }

    /// The same directory, delivering every change `delay` late (in order), as a watch of a
    /// real apiserver delivers a change to each client at its own moment. Labs give each process
    /// its own delay to test decisions shared between processes under skewed views. Call before
    /// the first watch.
    pub fn with_delay(self, delay: Duration) -> Self {
        let Self { poller, store } = self;
        match Arc::try_unwrap(poller) {
            Ok(mut poller) => {
                poller.delay = delay;
                Self {
                    poller: Arc::new(poller),
                    store,
                }
            }
            // Already shared: a clone is in use, keep it as it is.
            Err(poller) => Self { poller, store },
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        self.poller.root()
    }

    /// The writer's store for this directory.
    pub fn store(&self) -> DirStore {
        DirStore::new(self.poller.clone(), self.store.clone())
    }

    /// The stream of changes to objects of kind `K`: a `Resync` of the first scan, then `Apply` and
    /// `Delete` for each object whose resourceVersion changed, appeared or disappeared.
    pub fn watch<K: Object>(&self) -> BoxStream<'static, Result<ObjectEvent<K>, SourceError>> {
        let state = WatchState::<K> {
            rx: self.poller.snapshots(),
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
