//! What a write carries: a metadata patch and an Event record, the same for the API and the dir
//! store (both adapters import this module; the [`Writer`](super::Writer) that chooses between
//! them is above both).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use serde::{Deserialize, Serialize};

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
    /// A precondition: the write fails with [`WriteError::Conflict`](super::WriteError::Conflict) unless the object still has
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

/// `namespace/name` or `name`, for error messages.
pub(crate) fn object_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}
