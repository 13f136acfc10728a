//! OpenELB-compatible API types for oxelb.
//!
//! - [`names`]: group, kinds, annotations, labels and finalizers of OpenELB's API (no feature needed).
//! - [`address`]: `Eip.spec.address` parsing into an [`address::IpRange`] (no feature needed).
//! - [`community`]: BGP community strings of `Eip.spec.advertisement` (no feature needed).
//! - [`interface`]: `Eip.spec.interface` parsing (no feature needed).
//! - [`object`]: [`object::ObjectKey`] and the [`object::Indexed`] trait of in-memory indexes (no
//!   feature needed; the blanket impl for API objects needs `api`).
//! - [`v1alpha2`] (storage version) and [`v1alpha1`]: the kube types (feature `api`).
//! - [`service`]: OpenELB's Service contract as read off a Service (feature `api`).
//! - [`crd`]: the merged CustomResourceDefinitions oxelb installs (feature `api`).
//! - [`manifests`]: what the `crdgen` binary writes: `config/crd/*.yaml` and `config/oxelb.yaml`
//!   (feature `api`).

pub mod address;
pub mod community;
pub mod interface;
pub mod names;
pub mod object;

#[cfg(feature = "api")]
pub mod crd;
#[cfg(feature = "api")]
pub mod manifests;
#[cfg(feature = "api")]
pub mod service;
#[cfg(feature = "api")]
pub mod v1alpha1;
#[cfg(feature = "api")]
pub mod v1alpha2;
