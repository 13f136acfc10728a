//! Writes: status, metadata (labels, finalizers) and Events, to the API or the dir store.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use serde::{Deserialize, Serialize};

use super::{dir::DirStore, kube::KubeWriter};
use crate::object::Object;

/// A metadata change, applied as a JSON merge patch (RFC 7386).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataPatch {
    /// Labels to set (`Some`) or remove (`None`); labels not named are left alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Option<String>>,
    /// The complete new finalizer list, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
    /// A precondition: the write fails with [`WriteError::Conflict`] unless the object still has
    /// this `metadata.resourceVersion` (optimistic concurrency, as the apiserver does it).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "resourceVersion")]
    pub resource_version: Option<String>,
}

impl MetadataPatch {
    /// The merge patch body: `{"metadata": {...}}`.
    pub fn to_merge_patch(&self) -> serde_json::Value {
        serde_json::json!({ "metadata": self })
    }
}

/// The severity of an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// Something happened as expected.
    Normal,
    /// Something needs a human's attention.
    Warning,
}

/// An Event (events.k8s.io/v1) about an object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The object the Event is about.
    pub regarding: ObjectReference,
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub type_: EventType,
    /// Why (PascalCase, at most 128 characters), e.g. `IPAllocated`.
    pub reason: String,
    /// What was done (PascalCase, at most 128 characters), e.g. `Allocate`.
    pub action: String,
    /// A human-readable description (at most 1 kB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl EventRecord {
    /// An Event about `obj`.
    pub fn about<K: Object>(
        obj: &K,
        type_: EventType,
        reason: impl Into<String>,
        action: impl Into<String>,
        note: Option<String>,
    ) -> Self {
        Self {
            regarding: obj.object_ref(&()),
            type_,
            reason: reason.into(),
            action: action.into(),
            note,
        }
    }
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The object changed since it was read (HTTP 409, or a stale `resourceVersion` in dir mode):
    /// re-read it and retry.
    #[error(
        "{kind} {object}: conflict, the object changed since resourceVersion {resource_version:?} was read; re-read and retry"
    )]
    Conflict {
        /// The kind written.
        kind: String,
        /// namespace/name.
        object: String,
        /// The precondition given, if any.
        resource_version: Option<String>,
    },
    /// The object does not exist (HTTP 404, or not in the directory).
    #[error("{kind} {object}: not found, nothing written")]
    NotFound {
        /// The kind written.
        kind: String,
        /// namespace/name.
        object: String,
    },
    /// A namespaced kind was written without a namespace.
    #[error("{kind} {name}: namespaced kind written without a namespace, nothing written")]
    MissingNamespace {
        /// The kind written.
        kind: String,
        /// The name.
        name: String,
    },
    /// The apiserver refused the write or could not be reached.
    #[error("{kind} {object}: {what} failed ({source}); nothing written")]
    Api {
        /// The kind written.
        kind: String,
        /// namespace/name.
        object: String,
        /// Which write (`patch status`, `patch metadata`, `publish event`).
        what: &'static str,
        /// The kube error.
        #[source]
        source: Box<::kube::Error>,
    },
    /// The dir store could not write its file.
    #[error("cannot write {path} ({source}); the write is kept in memory only")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

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
}

/// `namespace/name` or `name`, for error messages.
pub(crate) fn object_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}
