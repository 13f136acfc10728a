//! What the runtime needs to know about an object type, and how objects are named.

use std::fmt;

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::{Api, Client, Resource};
use serde::{Serialize, de::DeserializeOwned};

/// Whether a resource scope is namespaced, known at compile time.
///
/// k8s-openapi's `ResourceScope` is a marker without this information; the dir source needs it to
/// default `metadata.namespace` the way kubectl does.
pub trait KnownScope: Sized {
    /// `true` for namespaced kinds (Service), `false` for cluster-scoped ones (Node, Eip).
    const NAMESPACED: bool;

    /// The `Api` for writing one object: namespaced kinds need `namespace` (`None` if it is
    /// missing); cluster-scoped kinds ignore it.
    fn api_for<K>(client: Client, namespace: Option<&str>) -> Option<Api<K>>
    where
        K: Resource<Scope = Self, DynamicType = ()>;
}

impl KnownScope for NamespaceResourceScope {
    const NAMESPACED: bool = true;

    fn api_for<K>(client: Client, namespace: Option<&str>) -> Option<Api<K>>
    where
        K: Resource<Scope = Self, DynamicType = ()>,
    {
        namespace.map(|ns| Api::namespaced(client, ns))
    }
}

impl KnownScope for ClusterResourceScope {
    const NAMESPACED: bool = false;

    fn api_for<K>(client: Client, _namespace: Option<&str>) -> Option<Api<K>>
    where
        K: Resource<Scope = Self, DynamicType = ()>,
    {
        Some(Api::all(client))
    }
}

/// A Kubernetes object type the source can watch and the writer can patch: any k8s-openapi type or
/// kube `CustomResource` with a static type (the OpenELB CRDs included).
pub trait Object:
    Resource<DynamicType = (), Scope: KnownScope>
    + Clone
    + PartialEq
    + DeserializeOwned
    + Serialize
    + fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Object for K where
    K: Resource<DynamicType = (), Scope: KnownScope>
        + Clone
        + PartialEq
        + DeserializeOwned
        + Serialize
        + fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// Whether `K` is a namespaced kind.
pub fn is_namespaced<K: Object>() -> bool {
    <K::Scope as KnownScope>::NAMESPACED
}

/// The kind name used in logs and metric labels, e.g. `Service`.
pub fn kind_of<K: Object>() -> String {
    K::kind(&()).into_owned()
}

/// Moved beneath the pure crates (`oxelb_crds::object`); re-exported here for the runtime's users.
pub use oxelb_crds::object::ObjectKey;

/// 64-bit FNV-1a: a tiny hash whose output is the same in every process and Rust release, so the
/// synthetic uids and resourceVersions of the dir source agree between the controller and speakers.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A stable, UUID-shaped uid for an object of the dir source, derived from apiVersion, kind,
/// namespace and name (so it survives restarts and is the same in every process).
pub(crate) fn synthetic_uid(api_version: &str, kind: &str, key: &ObjectKey) -> String {
    let id = format!(
        "{api_version}/{kind}/{}/{}",
        key.namespace.as_deref().unwrap_or(""),
        key.name
    );
    let hi = fnv1a64(id.as_bytes());
    let lo = fnv1a64(format!("oxelb:{id}").as_bytes());
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Node, Service};

    use super::*;

    #[test]
    fn scope_is_known() {
        assert!(is_namespaced::<Service>());
        assert!(!is_namespaced::<Node>());
    }

    #[test]
    fn uid_is_stable_and_distinct() {
        let a = synthetic_uid("v1", "Service", &ObjectKey::new(Some("default"), "a"));
        assert_eq!(
            a,
            synthetic_uid("v1", "Service", &ObjectKey::new(Some("default"), "a"))
        );
        assert_ne!(
            a,
            synthetic_uid("v1", "Service", &ObjectKey::new(Some("other"), "a"))
        );
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn key_display() {
        assert_eq!(ObjectKey::new(Some("ns"), "n").to_string(), "ns/n");
        assert_eq!(ObjectKey::new(None, "n").to_string(), "n");
    }
}
