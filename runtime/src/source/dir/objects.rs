//! Turning the documents of a snapshot into typed objects of one kind.

use std::{collections::BTreeMap, sync::Arc};

use serde_json::{Map, Value};
use tracing::warn;

use super::scan::{Document, OverlayMeta, Snapshot, StoredOverlay};
use crate::object::{Object, ObjectKey, fnv1a64, is_namespaced, synthetic_uid};

/// An object of the dir source and its synthetic resourceVersion.
#[derive(Clone, Debug)]
pub(crate) struct Materialized<K> {
    pub object: K,
    pub resource_version: String,
}

/// Which documents are of kind `K`, and their object keys.
struct Matcher {
    api_version: String,
    kind: String,
    namespaced: bool,
}

impl Matcher {
    fn of<K: Object>() -> Self {
        Self {
            api_version: K::api_version(&()).into_owned(),
            kind: K::kind(&()).into_owned(),
            namespaced: is_namespaced::<K>(),
        }
    }

    /// The namespace and name of `doc` when it is of this kind and named, after namespace
    /// defaulting (kubectl puts namespaced objects without a namespace into `default`;
    /// cluster-scoped ones have none).
    fn identity<'d>(&self, doc: &'d Document, log: bool) -> Option<(Option<&'d str>, &'d str)> {
        if doc.api_version.as_deref() != Some(self.api_version.as_str())
            || doc.kind.as_deref() != Some(self.kind.as_str())
        {
            return None;
        }
        let Some(name) = doc.name.as_deref().filter(|n| !n.is_empty()) else {
            if log {
                warn!(file = %doc.file.display(), line = doc.line, kind = %self.kind, "object without metadata.name; skipped");
            }
            return None;
        };
        let namespace = self.namespaced.then(|| {
            doc.namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
        });
        Some((namespace, name))
    }

    /// The key of `doc` when it is of this kind and named; see [`identity`](Self::identity).
    fn key(&self, doc: &Document, log: bool) -> Option<ObjectKey> {
        self.identity(doc, log)
            .map(|(namespace, name)| ObjectKey::new(namespace, name))
    }
}

/// The documents of kind `K` by object; with duplicates the last one wins (logged when `log` is
/// set).
pub(crate) fn select<K: Object>(snapshot: &Snapshot, log: bool) -> BTreeMap<ObjectKey, &Arc<Document>> {
    let matcher = Matcher::of::<K>();
    let mut selected: BTreeMap<ObjectKey, &Arc<Document>> = BTreeMap::new();
    for doc in &snapshot.documents {
        let Some(key) = matcher.key(doc, log) else {
            continue;
        };
        if let Some(previous) = selected.get(&key)
            && log
        {
            warn!(
                kind = %matcher.kind, object = %key,
                file = %doc.file.display(), line = doc.line,
                previous_file = %previous.file.display(), previous_line = previous.line,
                "object defined twice; the later definition wins"
            );
        }
        selected.insert(key, doc);
    }
    selected
}

/// The document that defines object `key` of kind `K` (the last one, as in [`select`]).
pub(crate) fn find<'a, K: Object>(snapshot: &'a Snapshot, key: &ObjectKey) -> Option<&'a Arc<Document>> {
    let matcher = Matcher::of::<K>();
    snapshot
        .documents
        .iter()
        .rev()
        .find(|doc| matcher.identity(doc, false) == Some((key.namespace.as_deref(), key.name.as_str())))
}

/// Builds one object from its manifest and stored overlay; see [`build`].
pub(crate) fn build_stored<K: Object>(
    key: &ObjectKey,
    doc: &Document,
    overlay: Option<&StoredOverlay>,
) -> Result<Materialized<K>, serde_json::Error> {
    let status = match overlay {
        Some(overlay) => overlay.status()?,
        None => None,
    };
    build::<K>(key, doc, overlay.map(|o| &o.metadata), status)
}

/// Builds one object from its manifest and overlay (metadata and status): the manifest's `status`
/// is dropped (the apiserver ignores it too), the overlay's labels, finalizers and status applied,
/// and uid and resourceVersion synthesised (the latter from the content, so it changes when the
/// content does).
pub(crate) fn build<K: Object>(
    key: &ObjectKey,
    doc: &Document,
    overlay: Option<&OverlayMeta>,
    status: Option<Value>,
) -> Result<Materialized<K>, serde_json::Error> {
    let api_version = K::api_version(&());
    let kind = K::kind(&());
    let mut value = doc.value()?;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("status");
        if let Some(status) = status {
            obj.insert("status".into(), status);
        }
    }
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        match &key.namespace {
            Some(ns) => meta.insert("namespace".into(), Value::String(ns.clone())),
            None => meta.remove("namespace"),
        };
        meta.remove("resourceVersion");
        meta.remove("uid");
        if let Some(overlay) = overlay {
            apply_overlay_meta(meta, overlay);
        }
    }
    let resource_version = fnv1a64(value.to_string().as_bytes()).to_string();
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(resource_version.clone()));
        meta.insert(
            "uid".into(),
            Value::String(synthetic_uid(&api_version, &kind, key)),
        );
    }
    let object = serde_json::from_value(value)?;
    Ok(Materialized {
        object,
        resource_version,
    })
}

fn apply_overlay_meta(meta: &mut Map<String, Value>, overlay: &OverlayMeta) {
    if !overlay.labels.is_empty() {
        let labels = meta.entry("labels").or_insert_with(|| Value::Object(Map::new()));
        if !labels.is_object() {
            *labels = Value::Object(Map::new());
        }
        if let Some(labels) = labels.as_object_mut() {
            for (k, v) in &overlay.labels {
                match v {
                    Some(v) => labels.insert(k.clone(), Value::String(v.clone())),
                    None => labels.remove(k),
                };
            }
            if labels.is_empty() {
                meta.remove("labels");
            }
        }
    }
    if let Some(finalizers) = &overlay.finalizers {
        if finalizers.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert(
                "finalizers".into(),
                Value::Array(finalizers.iter().cloned().map(Value::String).collect()),
            );
        }
    }
}

/// RFC 7386 JSON merge patch: `patch` applied to `target`.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(target) = target.as_object_mut() {
        for (k, v) in patch {
            if v.is_null() {
                target.remove(k);
            } else {
                merge_patch(target.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc7386() {
        // The example of RFC 7386 section 3.
        let mut target = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"], "content": "This will be unchanged"});
        let patch = json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": null}, "tags": ["example"]});
        merge_patch(&mut target, &patch);
        assert_eq!(
            target,
            json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
                "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"})
        );
    }
}
