//! The writer of the dir source: an in-memory record of every write, logged, and written back as
//! overlay files under `PATH/status/` so every dir source reading PATH (this process's and other
//! processes') sees the writes, as it would through an apiserver.

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde_json::Value;
use tokio::sync::Mutex;
use tracing::info;

use super::{
    objects::{build, find, merge_patch},
    poller::Poller,
    scan::{EVENTS_FILE, Overlay, OverlayKey, OverlayMeta, STATUS_DIR},
};
use crate::{
    object::{Object, ObjectKey, is_namespaced, kind_of},
    source::{
        error::WriteError,
        request::{EventRecord, MetadataPatch, object_name},
    },
};

/// One write, as recorded by the store.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteRecord {
    /// A status merge patch.
    Status {
        /// The kind written.
        kind: String,
        /// The object.
        object: ObjectKey,
        /// The patch.
        status: Value,
    },
    /// A metadata patch.
    Metadata {
        /// The kind written.
        kind: String,
        /// The object.
        object: ObjectKey,
        /// The patch.
        patch: MetadataPatch,
    },
    /// A published Event.
    Event(EventRecord),
}

#[derive(Default)]
pub(super) struct StoreState {
    inner: Mutex<Written>,
}

#[derive(Default)]
struct Written {
    writes: Vec<WriteRecord>,
    overlays: BTreeMap<OverlayKey, Overlay>,
}

/// The dir source's writer. Cloning is cheap; clones share the record.
#[derive(Clone)]
pub struct DirStore {
    poller: Arc<Poller>,
    state: Arc<StoreState>,
}

impl DirStore {
    pub(super) fn new(poller: Arc<Poller>, state: Arc<StoreState>) -> Self {
        Self { poller, state }
    }

    fn state(&self) -> &Mutex<Written> {
        &self.state.inner
    }

    /// Every write so far, in order.
    pub async fn writes(&self) -> Vec<WriteRecord> {
        self.state().lock().await.writes.clone()
    }

    /// What this store wrote for an object: its status, labels and finalizers.
    pub async fn overlay<K: Object>(&self, name: &str, namespace: Option<&str>) -> Option<Overlay> {
        let key = overlay_key::<K>(name, namespace);
        self.state().lock().await.overlays.get(&key).cloned()
    }

    pub(crate) async fn patch_status<K: Object>(
        &self,
        name: &str,
        namespace: Option<&str>,
        status: Value,
    ) -> Result<(), WriteError> {
        self.write::<K>(name, namespace, None, |overlay| {
            let mut current = overlay.status.take().unwrap_or(Value::Object(Default::default()));
            merge_patch(&mut current, &status);
            overlay.status = Some(current);
            WriteRecord::Status {
                kind: kind_of::<K>(),
                object: ObjectKey::new(namespace, name),
                status: status.clone(),
            }
        })
        .await
    }

    pub(crate) async fn patch_metadata<K: Object>(
        &self,
        name: &str,
        namespace: Option<&str>,
        patch: MetadataPatch,
    ) -> Result<(), WriteError> {
        let precondition = patch.resource_version.clone();
        self.write::<K>(name, namespace, precondition, |overlay| {
            overlay
                .metadata
                .labels
                .extend(patch.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            if let Some(finalizers) = &patch.finalizers {
                overlay.metadata.finalizers = Some(finalizers.clone());
            }
            WriteRecord::Metadata {
                kind: kind_of::<K>(),
                object: ObjectKey::new(namespace, name),
                patch: patch.clone(),
            }
        })
        .await
    }

    pub(crate) async fn publish_event(&self, event: EventRecord) -> Result<(), WriteError> {
        let mut state = self.state().lock().await;
        info!(
            regarding_kind = event.regarding.kind.as_deref().unwrap_or_default(),
            regarding = %object_name(
                event.regarding.name.as_deref().unwrap_or_default(),
                event.regarding.namespace.as_deref(),
            ),
            event_type = ?event.type_,
            reason = %event.reason,
            action = %event.action,
            note = event.note.as_deref().unwrap_or_default(),
            "event"
        );
        state.writes.push(WriteRecord::Event(event.clone()));
        let path = self.poller.root().join(STATUS_DIR).join(EVENTS_FILE);
        let doc = serde_yaml::to_string(&event).unwrap_or_default();
        append(&path, &format!("---\n{doc}")).map_err(|source| WriteError::Io { path, source })
    }

    /// Read-modify-write of one object's overlay, under the store lock.
    async fn write<K: Object>(
        &self,
        name: &str,
        namespace: Option<&str>,
        precondition: Option<String>,
        change: impl FnOnce(&mut Overlay) -> WriteRecord,
    ) -> Result<(), WriteError> {
        let kind = kind_of::<K>();
        let namespace = if is_namespaced::<K>() {
            Some(namespace.ok_or_else(|| WriteError::MissingNamespace {
                kind: kind.clone(),
                name: name.to_owned(),
            })?)
        } else {
            None
        };
        let key = overlay_key::<K>(name, namespace);
        let snapshot = self.poller.latest().await;
        let mut state = self.state().lock().await;
        let mut overlay = state
            .overlays
            .get(&key)
            .cloned()
            .or_else(|| {
                // The stored status is JSON text the scanner wrote: parsing it back cannot fail.
                snapshot.overlays.get(&key).and_then(|o| o.to_overlay(&key).ok())
            })
            .unwrap_or_else(|| Overlay {
                api_version: key.api_version.clone(),
                kind: key.kind.clone(),
                metadata: OverlayMeta {
                    name: name.to_owned(),
                    namespace: namespace.map(str::to_owned),
                    ..Default::default()
                },
                status: None,
            });

        // The object must exist, and match the precondition, as the apiserver would check.
        let object = object_name(name, namespace);
        let Some(doc) = find::<K>(&snapshot, &key.object) else {
            return Err(WriteError::NotFound { kind, object });
        };
        if let Some(expected) = &precondition {
            let current = build::<K>(&key.object, doc, Some(&overlay.metadata), overlay.status.clone())
                .map(|m| m.resource_version)
                .ok();
            if current.as_ref() != Some(expected) {
                return Err(WriteError::Conflict {
                    kind,
                    object,
                    resource_version: precondition,
                });
            }
        }

        let record = change(&mut overlay);
        let path = overlay_path::<K>(self.poller.root(), name, namespace);
        info!(kind = %kind, object = %object, file = %path.display(), write = ?record, "write");
        state.writes.push(record);
        state.overlays.insert(key, overlay.clone());
        write_atomically(&path, render(&overlay)).map_err(|source| WriteError::Io { path, source })
    }
}

fn overlay_key<K: Object>(name: &str, namespace: Option<&str>) -> OverlayKey {
    OverlayKey {
        api_version: K::api_version(&()).into_owned(),
        kind: kind_of::<K>(),
        object: ObjectKey::new(namespace.filter(|_| is_namespaced::<K>()), name),
    }
}

/// `PATH/status/<plural>.<group or core>/[<namespace>/]<name>.yaml`.
pub(crate) fn overlay_path<K: Object>(root: &Path, name: &str, namespace: Option<&str>) -> PathBuf {
    let group = K::group(&());
    let group = if group.is_empty() { "core" } else { &group };
    let mut path = root.join(STATUS_DIR).join(format!("{}.{group}", K::plural(&())));
    if let Some(ns) = namespace {
        path.push(ns);
    }
    path.join(format!("{name}.yaml"))
}

fn render(overlay: &Overlay) -> String {
    let body = serde_yaml::to_string(overlay).unwrap_or_default();
    format!("# Written by the oxelb dir source: overlaid on this object's manifest by every reader.\n{body}")
}

/// Writes `content` to a hidden temporary file beside `path` (creating the directory) and renames
/// it over `path`, so readers see the old or the new file, never half of one (the dir source's
/// scanner skips hidden files). Also what a speaker leaves for its next process.
pub fn write_atomically(path: &Path, content: impl AsRef<[u8]>) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("object.yaml");
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}

fn append(path: &Path, content: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(content.as_bytes())
}
