//! Writes: status, metadata (labels, finalizers) and Events, to the API or the dir store.

use super::{
    dir::DirStore,
    error::WriteError,
    kube::KubeWriter,
    request::{EventRecord, MetadataPatch},
};
use crate::object::Object;

/// Where writes go: the API (`--source kube`) or the dir source's store (`--source dir:PATH`).
/// Cloning is cheap.
#[derive(Clone)]
pub enum Writer {
    /// Writes to the apiserver.
    Kube(KubeWriter),
    /// Writes to the in-memory store and `PATH/status/`.
    Dir(DirStore),
}

impl Writer {
    pub(crate) fn kube(client: ::kube::Client, reporter: &str) -> Self {
        Writer::Kube(KubeWriter::new(client, reporter))
    }

    pub(crate) fn dir(store: DirStore) -> Self {
        Writer::Dir(store)
    }

    /// The dir store, in dir mode (tests read the writes from it).
    pub fn store(&self) -> Option<&DirStore> {
        match self {
            Writer::Dir(store) => Some(store),
            Writer::Kube(_) => None,
        }
    }

    /// Merge-patches `status` into the status subresource of the object.
    pub async fn patch_status<K: Object>(
        &self,
        name: &str,
        namespace: Option<&str>,
        status: serde_json::Value,
    ) -> Result<(), WriteError> {
        self.patch_status_versioned::<K>(name, namespace, status)
            .await
            .map(drop)
    }

    /// As [`patch_status`](Self::patch_status), answering the object's resourceVersion after the
    /// write when the source tells it (the apiserver does; the dir store does not).
    pub async fn patch_status_versioned<K: Object>(
        &self,
        name: &str,
        namespace: Option<&str>,
        status: serde_json::Value,
    ) -> Result<Option<String>, WriteError> {
        match self {
            Writer::Kube(w) => w.patch_status::<K>(name, namespace, status).await,
            Writer::Dir(s) => s.patch_status::<K>(name, namespace, status).await.map(|()| None),
        }
    }

    /// Merge-patches labels and finalizers of the object, optionally with a resourceVersion
    /// precondition.
    pub async fn patch_metadata<K: Object>(
        &self,
        name: &str,
        namespace: Option<&str>,
        patch: MetadataPatch,
    ) -> Result<(), WriteError> {
        self.patch_metadata_versioned::<K>(name, namespace, patch)
            .await
            .map(drop)
    }

    /// As [`patch_metadata`](Self::patch_metadata), answering the object's resourceVersion after
    /// the write when the source tells it.
    pub async fn patch_metadata_versioned<K: Object>(
        &self,
        name: &str,
        namespace: Option<&str>,
        patch: MetadataPatch,
    ) -> Result<Option<String>, WriteError> {
        match self {
            Writer::Kube(w) => w.patch_metadata::<K>(name, namespace, patch).await,
            Writer::Dir(s) => s.patch_metadata::<K>(name, namespace, patch).await.map(|()| None),
        }
    }

    /// Publishes an Event.
    pub async fn publish_event(&self, event: EventRecord) -> Result<(), WriteError> {
        match self {
            Writer::Kube(w) => w.publish_event(event).await,
            Writer::Dir(s) => s.publish_event(event).await,
        }
    }

    /// Publishes an Event in the background, giving up after [`DETACHED_EVENT_TIMEOUT`]: for
    /// loops that must never wait on the API (a layer2 announcer whose apiserver connection
    /// hangs would otherwise stop deciding until the client's read timeout, minutes). An Event
    /// that could not be published is logged at debug level; Events are best effort.
    pub fn spawn_event(&self, event: EventRecord) {
        let writer = self.clone();
        tokio::spawn(async move {
            let reason = event.reason.clone();
            match tokio::time::timeout(DETACHED_EVENT_TIMEOUT, writer.publish_event(event)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%reason, %error, "Event not published"),
                Err(_) => {
                    tracing::debug!(%reason, "Event not published: the apiserver did not answer in time")
                }
            }
        });
    }
}

/// How long [`Writer::spawn_event`] waits for the apiserver.
pub const DETACHED_EVENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
