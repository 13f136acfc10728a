//! Turning the documents of a snapshot into typed objects of one kind.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tracing::warn;

use super::scan::{Document, Overlay, OverlayKey, Snapshot};
use crate::object::{Object, ObjectKey, fnv1a64, is_namespaced, kind_of, synthetic_uid};

/// An object of the dir source and its synthetic resourceVersion.
#[derive(Clone, Debug)]
pub(crate) struct Materialized<K> {
    pub object: K,
    pub resource_version: String,
}

/// The documents of kind `K` by object, after namespace defaulting; with duplicates the last one
/// wins (logged when `log` is set).
pub(crate) fn select<K: Object>(snapshot: &Snapshot, log: bool) -> BTreeMap<ObjectKey, (&Document, Value)> {
    let api_version = K::api_version(&());
    let kind = K::kind(&());
    let namespaced = is_namespaced::<K>();
    let mut selected: BTreeMap<ObjectKey, (&Document, Value)> = BTreeMap::new();
    for doc in &snapshot.documents {
        if doc.value["apiVersion"].as_str() != Some(&api_version) || doc.value["kind"].as_str() != Some(&kind)
        {
            continue;
        }
        let mut value = doc.value.clone();
        let Some(name) = value["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
        else {
            if log {
                warn!(file = %doc.file.display(), line = doc.line, kind = %kind, "object without metadata.name; skipped");
            }
            continue;
        };
        let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        let namespace = if namespaced {
            // kubectl puts objects without a namespace into `default`.
            let ns = meta
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_owned();
            meta.insert("namespace".into(), Value::String(ns.clone()));
            Some(ns)
        } else {
            meta.remove("namespace");
            None
        };
        let key = ObjectKey { namespace, name };
        if let Some((previous, _)) = selected.get(&key)
            && log
        {
            warn!(
                kind = %kind, object = %key,
                file = %doc.file.display(), line = doc.line,
                previous_file = %previous.file.display(), previous_line = previous.line,
                "object defined twice; the later definition wins"
            );
        }
        selected.insert(key, (doc, value));
    }
    selected
}

/// All objects of kind `K` in the snapshot, with their overlays applied.
pub(crate) fn materialize<K: Object>(snapshot: &Snapshot) -> BTreeMap<ObjectKey, Materialized<K>> {
    let api_version = K::api_version(&()).into_owned();
    let kind = kind_of::<K>();
    select::<K>(snapshot, true)
        .into_iter()
        .filter_map(|(key, (doc, value))| {
            let overlay_key = OverlayKey {
                api_version: api_version.clone(),
                kind: kind.clone(),
                object: key.clone(),
            };
            match build::<K>(&key, value, snapshot.overlays.get(&overlay_key)) {
                Ok(m) => Some((key, m)),
                Err(error) => {
                    warn!(file = %doc.file.display(), line = doc.line, kind = %kind, object = %key, %error,
                        "document is not a valid object of its kind; skipped");
                    None
                }
            }
        })
        .collect()
}

/// Builds one object from its manifest and overlay: the manifest's `status` is dropped (the
/// apiserver ignores it too), the overlay's labels, finalizers and status applied, and uid and
/// resourceVersion synthesised (the latter from the content, so it changes when the content does).
pub(crate) fn build<K: Object>(
    key: &ObjectKey,
    mut value: Value,
    overlay: Option<&Overlay>,
) -> Result<Materialized<K>, serde_json::Error> {
    let api_version = K::api_version(&());
    let kind = K::kind(&());
    if let Some(obj) = value.as_object_mut() {
        obj.remove("status");
        if let Some(status) = overlay.and_then(|o| o.status.clone()) {
            obj.insert("status".into(), status);
        }
    }
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
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

fn apply_overlay_meta(meta: &mut Map<String, Value>, overlay: &Overlay) {
    if !overlay.metadata.labels.is_empty() {
        let labels = meta.entry("labels").or_insert_with(|| Value::Object(Map::new()));
        if !labels.is_object() {
            *labels = Value::Object(Map::new());
        }
        if let Some(labels) = labels.as_object_mut() {
            for (k, v) in &overlay.metadata.labels {
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
    if let Some(finalizers) = &overlay.metadata.finalizers {
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
