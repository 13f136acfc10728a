//! An in-memory index of the objects of one kind, kept current by [`IndexEvent`]s.
//!
//! An index holds either the API objects themselves (trimmed on arrival, see [`crate::shape`]) or a
//! compact view of each that a binary defines ([`Indexed`], [`View`]): at 10,000 Services the
//! difference is tens of megabytes, because a k8s-openapi `Service` carries every field of the API
//! inline and a `BTreeMap` for each of its label, annotation and selector sets.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use kube::Resource;

use crate::{object::ObjectKey, source::event::ObjectEvent};

/// Defined beneath the pure crates (`oxelb_crds::object`), so that they can make their compact views
/// indexable; re-exported here.
pub use oxelb_crds::object::Indexed;

/// Turns an arriving API object into what an index keeps of it, or `None`: not kept (an object
/// that was kept before is then removed, exactly as if it had been deleted).
pub type View<K, V> = Arc<dyn Fn(K) -> Option<V> + Send + Sync>;

/// A change to an index: what the source's [`ObjectEvent`]s become once each object is viewed.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexEvent<V> {
    /// An object was created or changed.
    Apply(V),
    /// The object with this key was deleted, or is no longer kept.
    Delete(ObjectKey),
    /// The complete current set (after the initial list and after any re-list).
    Resync(Vec<V>),
}

impl<V> IndexEvent<V> {
    /// The event's name as used in the `event` metric label and logs.
    pub fn name(&self) -> &'static str {
        match self {
            IndexEvent::Apply(_) => "apply",
            IndexEvent::Delete(_) => "delete",
            IndexEvent::Resync(_) => "resync",
        }
    }
}

impl<V: Indexed> From<ObjectEvent<V>> for IndexEvent<V> {
    fn from(event: ObjectEvent<V>) -> Self {
        match event {
            ObjectEvent::Apply(obj) => IndexEvent::Apply(obj),
            ObjectEvent::Delete(obj) => IndexEvent::Delete(obj.index_key()),
            ObjectEvent::Resync(all) => IndexEvent::Resync(all),
        }
    }
}

/// Views one source event (see [`View`]): an `Apply` the view does not keep becomes a `Delete`.
pub fn view_event<K: Resource, V>(view: &View<K, V>, event: ObjectEvent<K>) -> IndexEvent<V> {
    match event {
        ObjectEvent::Apply(obj) => {
            let key = ObjectKey::of(&obj);
            match view(obj) {
                Some(kept) => IndexEvent::Apply(kept),
                None => IndexEvent::Delete(key),
            }
        }
        ObjectEvent::Delete(obj) => IndexEvent::Delete(ObjectKey::of(&obj)),
        ObjectEvent::Resync(all) => {
            let mut kept: Vec<V> = all.into_iter().filter_map(|obj| view(obj)).collect();
            kept.shrink_to_fit();
            IndexEvent::Resync(kept)
        }
    }
}

/// The objects of one kind by namespace/name, replaced wholesale on [`IndexEvent::Resync`].
///
/// Each object is held behind an `Arc`, so a reader that needs a copy of the objects for one
/// computation ([`iter_shared`](Self::iter_shared)) shares them instead of cloning them.
///
/// An index can also remember which objects changed since a reader last asked
/// ([`track_changes`](Self::track_changes), [`take_changes`](Self::take_changes)), so that the
/// reader's cost follows the change, not the number of objects.
#[derive(Clone, Debug)]
pub struct Index<K> {
    objects: BTreeMap<ObjectKey, Arc<K>>,
    synced: bool,
    changes: Option<Changes>,
}

impl<K> Default for Index<K> {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            synced: false,
            changes: None,
        }
    }
}

/// What changed in an index since [`Index::take_changes`] was last called.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Changes {
    /// Nothing.
    #[default]
    None,
    /// The objects with these keys were created, changed or deleted.
    Keys(BTreeSet<ObjectKey>),
    /// Possibly everything (a re-list replaced the whole set, or tracking just started).
    All,
}

/// Past this many changed keys, [`Changes`] becomes [`Changes::All`]: a reader that has not asked
/// for a long while (a standby replica) holds no growing set, and deciding that many objects one by
/// one would cost as much as deciding all.
pub const MAX_TRACKED_KEYS: usize = 4096;

impl Changes {
    fn add(&mut self, key: ObjectKey) {
        match self {
            Changes::None => *self = Changes::Keys(BTreeSet::from([key])),
            Changes::Keys(keys) if keys.len() >= MAX_TRACKED_KEYS => *self = Changes::All,
            Changes::Keys(keys) => {
                keys.insert(key);
            }
            Changes::All => {}
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        matches!(self, Changes::None)
    }
}

/// What applying one event did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// This was the first [`IndexEvent::Resync`]: the index just became synced.
    pub became_synced: bool,
    /// Something a reader can see changed. An `Apply` that differs from the held object only in its
    /// `resourceVersion` (a change to a field the shape trimmed away, a kubelet heartbeat) is stored
    /// but is no change.
    pub changed: bool,
}

impl<K: Indexed> Index<K> {
    /// An empty, not yet synced index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event. Returns `true` when this was the first resync, i.e. the index just
    /// became synced.
    pub fn apply(&mut self, event: impl Into<IndexEvent<K>>) -> bool {
        self.update(event).became_synced
    }

    /// Applies one event and says what it did (see [`Update`]).
    pub fn update(&mut self, event: impl Into<IndexEvent<K>>) -> Update {
        match event.into() {
            IndexEvent::Apply(mut obj) => {
                let key = obj.index_key();
                let changed = match self.objects.get(&key) {
                    Some(old) => !obj.same_as(old),
                    None => true,
                };
                if changed && let Some(changes) = self.changes.as_mut() {
                    changes.add(key.clone());
                }
                self.objects.insert(key, Arc::new(obj));
                Update {
                    became_synced: false,
                    changed,
                }
            }
            IndexEvent::Delete(key) => {
                let changed = self.objects.remove(&key).is_some();
                if changed && let Some(changes) = self.changes.as_mut() {
                    changes.add(key);
                }
                Update {
                    became_synced: false,
                    changed,
                }
            }
            IndexEvent::Resync(objs) => {
                self.objects = objs
                    .into_iter()
                    .map(|obj| (obj.index_key(), Arc::new(obj)))
                    .collect();
                if let Some(changes) = self.changes.as_mut() {
                    *changes = Changes::All;
                }
                Update {
                    became_synced: !std::mem::replace(&mut self.synced, true),
                    changed: true,
                }
            }
        }
    }
}

impl<K> Index<K> {
    /// Starts remembering which objects change; the first [`take_changes`](Self::take_changes)
    /// answers [`Changes::All`].
    pub fn track_changes(&mut self) {
        self.changes = Some(Changes::All);
    }

    /// What changed since the last call (or since [`track_changes`](Self::track_changes)); always
    /// [`Changes::All`] when changes are not tracked.
    pub fn take_changes(&mut self) -> Changes {
        match self.changes.as_mut() {
            Some(changes) => std::mem::take(changes),
            None => Changes::All,
        }
    }

    /// The shared object with this key.
    pub fn get_shared(&self, key: &ObjectKey) -> Option<&Arc<K>> {
        self.objects.get(key)
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

    #[test]
    fn a_new_resource_version_alone_is_no_change() {
        let mut index = Index::new();
        index.apply(ObjectEvent::Resync(vec![svc("a", "x", "1")]));
        let update = index.update(ObjectEvent::Apply(svc("a", "x", "2")));
        assert!(!update.changed);
        assert_eq!(
            rv(&index, "a", "x").as_deref(),
            Some("2"),
            "the newer version is kept"
        );
        let mut labelled = svc("a", "x", "3");
        labelled.metadata.labels = Some([("k".to_owned(), "v".to_owned())].into());
        assert!(index.update(ObjectEvent::Apply(labelled)).changed);
        assert!(
            index.update(ObjectEvent::Apply(svc("a", "y", "1"))).changed,
            "a new object"
        );
        assert!(index.update(ObjectEvent::Delete(svc("a", "y", "1"))).changed);
        assert!(
            !index.update(ObjectEvent::Delete(svc("a", "y", "1"))).changed,
            "already gone"
        );
    }

    #[test]
    fn changes_are_tracked_by_key_until_taken() {
        let mut index = Index::new();
        assert_eq!(index.take_changes(), Changes::All, "untracked: always everything");
        index.apply(ObjectEvent::Resync(vec![svc("a", "x", "1"), svc("a", "y", "1")]));
        index.track_changes();
        assert_eq!(
            index.take_changes(),
            Changes::All,
            "tracking starts with everything"
        );
        assert_eq!(index.take_changes(), Changes::None);
        index.apply(ObjectEvent::Apply(svc("a", "x", "2"))); // resourceVersion only: no change
        assert!(index.take_changes().is_empty());
        let mut changed = svc("a", "x", "3");
        changed.metadata.finalizers = Some(vec!["f".into()]);
        index.apply(ObjectEvent::Apply(changed));
        index.apply(ObjectEvent::Delete(svc("a", "y", "1")));
        index.apply(ObjectEvent::Apply(svc("b", "z", "1")));
        let keys = ["a/x", "a/y", "b/z"]
            .iter()
            .map(|k| {
                let (ns, n) = k.split_once('/').unwrap();
                ObjectKey::new(Some(ns), n)
            })
            .collect();
        assert_eq!(index.take_changes(), Changes::Keys(keys));
        index.apply(ObjectEvent::Resync(vec![]));
        assert_eq!(
            index.take_changes(),
            Changes::All,
            "a re-list may change anything"
        );
        for i in 0..=MAX_TRACKED_KEYS {
            index.apply(ObjectEvent::Apply(svc("a", &format!("s{i}"), "1")));
        }
        assert_eq!(index.take_changes(), Changes::All, "too many to track one by one");
    }

    /// A compact view as a binary would define one: the name and one label, its version ignored.
    #[derive(Debug, PartialEq)]
    struct AppOf {
        name: String,
        version: Option<String>,
        app: String,
    }

    impl Indexed for AppOf {
        fn index_key(&self) -> ObjectKey {
            ObjectKey::new(Some("a"), &self.name)
        }

        fn same_as(&mut self, old: &Self) -> bool {
            self.name == old.name && self.app == old.app
        }
    }

    fn app_view() -> View<Service, AppOf> {
        Arc::new(|s: Service| {
            let app = s.metadata.labels?.remove("app")?;
            Some(AppOf {
                name: s.metadata.name?,
                version: s.metadata.resource_version,
                app,
            })
        })
    }

    fn labelled(name: &str, rv: &str, app: &str) -> Service {
        let mut s = svc("a", name, rv);
        s.metadata.labels = Some([("app".to_owned(), app.to_owned())].into());
        s
    }

    #[test]
    fn views_keep_what_they_choose_and_drop_the_rest_by_key() {
        let view = app_view();
        let mut index: Index<AppOf> = Index::new();
        let resync = view_event(
            &view,
            ObjectEvent::Resync(vec![labelled("x", "1", "web"), svc("a", "plain", "1")]),
        );
        assert!(index.apply(resync));
        assert_eq!(index.len(), 1, "an object the view does not keep is left out");
        let update = index.update(view_event(&view, ObjectEvent::Apply(labelled("x", "2", "web"))));
        assert!(!update.changed, "what the view ignores is no change");
        assert_eq!(
            index
                .get(&ObjectKey::new(Some("a"), "x"))
                .and_then(|v| v.version.as_deref()),
            Some("2"),
            "the newer version is kept"
        );
        assert!(
            index
                .update(view_event(&view, ObjectEvent::Apply(labelled("x", "3", "db"))))
                .changed
        );
        // The label goes: the view no longer keeps it, so it leaves the index as if deleted.
        let dropped = view_event(&view, ObjectEvent::Apply(svc("a", "x", "4")));
        assert_eq!(dropped, IndexEvent::Delete(ObjectKey::new(Some("a"), "x")));
        assert!(index.update(dropped).changed);
        assert!(index.is_empty());
        assert_eq!(
            view_event(&view, ObjectEvent::Delete(svc("a", "y", "1"))),
            IndexEvent::Delete(ObjectKey::new(Some("a"), "y"))
        );
    }
}
