//! An in-memory index of the objects of one kind, kept current by [`ObjectEvent`]s.

use std::{collections::BTreeMap, sync::Arc};

use kube::Resource;

use crate::{object::ObjectKey, source::ObjectEvent};

/// The objects of one kind by namespace/name, replaced wholesale on [`ObjectEvent::Resync`].
///
/// Each object is held behind an `Arc`, so a reader that needs a copy of the objects for one
/// computation ([`iter_shared`](Self::iter_shared)) shares them instead of cloning them.
#[derive(Clone, Debug)]
pub struct Index<K> {
    objects: BTreeMap<ObjectKey, Arc<K>>,
    synced: bool,
}

impl<K> Default for Index<K> {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            synced: false,
        }
    }
}

impl<K: Resource> Index<K> {
    /// An empty, not yet synced index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event. Returns `true` when this was the first [`ObjectEvent::Resync`], i.e. the
    /// index just became synced.
    pub fn apply(&mut self, event: ObjectEvent<K>) -> bool {
        match event {
            ObjectEvent::Apply(obj) => {
                self.objects.insert(ObjectKey::of(&obj), Arc::new(obj));
                false
            }
            ObjectEvent::Delete(obj) => {
                self.objects.remove(&ObjectKey::of(&obj));
                false
            }
            ObjectEvent::Resync(objs) => {
                self.objects = objs
                    .into_iter()
                    .map(|obj| (ObjectKey::of(&obj), Arc::new(obj)))
                    .collect();
                !std::mem::replace(&mut self.synced, true)
            }
        }
    }

    /// Whether a complete set has been received.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The object with this key.
    pub fn get(&self, key: &ObjectKey) -> Option<&K> {
        self.objects.get(key).map(Arc::as_ref)
    }

    /// The number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// All objects in key order (namespace, then name).
    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &K)> {
        self.objects.iter().map(|(key, obj)| (key, obj.as_ref()))
    }

    /// All objects in key order, as shared references: cloning one clones the `Arc`, not the
    /// object.
    pub fn iter_shared(&self) -> impl Iterator<Item = (&ObjectKey, &Arc<K>)> {
        self.objects.iter()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{api::core::v1::Service, apimachinery::pkg::apis::meta::v1::ObjectMeta};

    use super::*;

    fn svc(ns: &str, name: &str, rv: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn rv(index: &Index<Service>, ns: &str, name: &str) -> Option<String> {
        index
            .get(&ObjectKey::new(Some(ns), name))
            .and_then(|s| s.metadata.resource_version.clone())
    }

    #[test]
    fn resync_replaces_and_marks_synced_once() {
        let mut index = Index::new();
        assert!(!index.is_synced());
        assert!(!index.apply(ObjectEvent::Apply(svc("a", "stale", "1"))));
        assert!(index.apply(ObjectEvent::Resync(vec![svc("a", "x", "1"), svc("b", "x", "1")])));
        assert!(index.is_synced());
        assert_eq!(index.len(), 2);
        assert_eq!(
            rv(&index, "a", "stale"),
            None,
            "resync drops objects it does not list"
        );
        assert!(
            !index.apply(ObjectEvent::Resync(vec![svc("a", "x", "2")])),
            "second resync"
        );
        assert_eq!(index.len(), 1);
        assert_eq!(rv(&index, "a", "x").as_deref(), Some("2"));
    }

    #[test]
    fn apply_and_delete() {
        let mut index = Index::new();
        index.apply(ObjectEvent::Resync(vec![]));
        index.apply(ObjectEvent::Apply(svc("a", "x", "1")));
        index.apply(ObjectEvent::Apply(svc("a", "x", "2")));
        assert_eq!(index.len(), 1);
        assert_eq!(rv(&index, "a", "x").as_deref(), Some("2"));
        index.apply(ObjectEvent::Apply(svc("b", "x", "1")));
        index.apply(ObjectEvent::Delete(svc("a", "x", "2")));
        let keys: Vec<String> = index.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(keys, vec!["b/x".to_string()]);
        let shared: Vec<Arc<Service>> = index.iter_shared().map(|(_, s)| s.clone()).collect();
        assert!(Arc::ptr_eq(&shared[0], index.iter_shared().next().unwrap().1));
        index.apply(ObjectEvent::Delete(svc("b", "x", "1")));
        assert!(index.is_empty());
    }
}
