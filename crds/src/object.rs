//! How objects are named within their kind, and what an in-memory index can hold.
//!
//! These live here, beneath both the runtime (which keeps the indexes) and the pure deciding crates
//! (whose compact views the indexes hold), so that a pure crate can make its own types indexable
//! without depending on the runtime and its async I/O.

use std::fmt;

/// The identity of an object within its kind: namespace (for namespaced kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// `metadata.namespace`; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(namespace: Option<&str>, name: &str) -> Self {
        Self {
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// The key of an object (an object without a name gets the empty name, which no API object has).
    #[cfg(feature = "api")]
    pub fn of<K: kube::Resource>(obj: &K) -> Self {
        Self {
            namespace: obj.meta().namespace.clone(),
            name: obj.meta().name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// What an index can hold: an API object, or a binary's compact view of one.
pub trait Indexed: Send + Sync + 'static {
    /// The object's namespace and name.
    fn index_key(&self) -> ObjectKey;

    /// Whether `self`, a newer version of `old`, differs from it only where no reader looks
    /// (its `resourceVersion`). `self` may be changed while comparing, but must be left as it was.
    fn same_as(&mut self, old: &Self) -> bool;
}

/// Every API object can be indexed as it is; its `resourceVersion` alone makes no change.
#[cfg(feature = "api")]
impl<K: kube::Resource + PartialEq + Send + Sync + 'static> Indexed for K {
    fn index_key(&self) -> ObjectKey {
        ObjectKey::of(self)
    }

    fn same_as(&mut self, old: &Self) -> bool {
        // Equal but for the resourceVersion? Compare with the old one's in place.
        let version = self.meta_mut().resource_version.take();
        self.meta_mut().resource_version = old.meta().resource_version.clone();
        let same = *old == *self;
        self.meta_mut().resource_version = version;
        same
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_displays_as_kubectl_names_it() {
        assert_eq!(ObjectKey::new(Some("default"), "web").to_string(), "default/web");
        assert_eq!(ObjectKey::new(None, "pool").to_string(), "pool");
    }
}
