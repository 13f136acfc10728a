//! The CustomResourceDefinitions oxelb installs: one per kind, both OpenELB versions merged.
//!
//! `v1alpha2` is the storage version, `v1alpha1` is served too (conversion strategy `None`: the
//! apiserver only rewrites `apiVersion`). Versions are listed in OpenELB's order (v1alpha1 first).
//! Like OpenELB, only v1alpha2 has a status subresource.
//!
//! Use these functions rather than `CustomResourceExt::crd()` of the individual types: they merge the
//! versions and normalize the schemas:
//! - Integer fields carry the bounds of their Rust type (`u32`: `format: int64`, 0..=4294967295;
//!   `i32`: `format: int32` with its bounds). OpenAPI 3.0 has no `uint32` format, and an apiserver
//!   that accepted a value the Rust type cannot hold would break every list/watch of the kind (one
//!   undecodable object fails the whole list), so the schema is exactly as strict as the types.
//!   OpenELB's Go types are the same (`uint32`/`int32`), so no object OpenELB can read is rejected.
//! - `BgpPeer.spec.nodeSelector` is `x-kubernetes-map-type: atomic`, as in OpenELB (a label selector
//!   is replaced as a whole by server-side apply, never merged key by key).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray,
    JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;
use kube::core::crd::{MergeError, merge_crds};

use crate::names::VERSION_V1ALPHA2;
use crate::{v1alpha1, v1alpha2};

/// Why the per-version CRDs of one kind could not be merged (a bug in this crate's type attributes).
#[derive(Debug, thiserror::Error)]
#[error("cannot merge the v1alpha1 and v1alpha2 CRDs of {kind}: {source}")]
pub struct CrdError {
    /// The kind whose CRDs disagree.
    pub kind: &'static str,
    /// What kube's merge found.
    #[source]
    pub source: MergeError,
}

fn merged(
    kind: &'static str,
    versions: Vec<CustomResourceDefinition>,
) -> Result<CustomResourceDefinition, CrdError> {
    let mut crd = merge_crds(versions, VERSION_V1ALPHA2).map_err(|source| CrdError { kind, source })?;
    crd.spec.versions.sort_by(|a, b| a.name.cmp(&b.name));
    for version in &mut crd.spec.versions {
        if version.name != VERSION_V1ALPHA2 {
            // OpenELB's v1alpha1 has no status subresource: status is part of the main resource there.
            version.subresources = None;
        }
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            normalize(schema);
            mark_atomic(schema, &["spec", "nodeSelector"]);
        }
    }
    crd.spec.conversion = Some(CustomResourceConversion {
        strategy: "None".to_owned(),
        webhook: None,
    });
    Ok(crd)
}

/// Rewrites integer formats to OpenAPI 3.0 ones with the Rust type's bounds, recursively.
fn normalize(schema: &mut JSONSchemaProps) {
    if schema.type_.as_deref() == Some("integer") {
        match schema.format.as_deref() {
            Some("uint32") => {
                schema.format = Some("int64".to_owned());
                schema.minimum = Some(0.0);
                schema.maximum = Some(f64::from(u32::MAX));
            }
            Some("int32") => {
                schema.minimum = Some(schema.minimum.unwrap_or(f64::from(i32::MIN)));
                schema.maximum = Some(schema.maximum.unwrap_or(f64::from(i32::MAX)));
            }
            _ => {}
        }
    }
    for property in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        normalize(property);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(items)) => normalize(items),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(normalize),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = schema.additional_properties.as_mut() {
        normalize(values);
    }
}

/// Sets `x-kubernetes-map-type: atomic` on the property at `path`, if the schema has it.
fn mark_atomic(schema: &mut JSONSchemaProps, path: &[&str]) {
    let mut node = Some(schema);
    for key in path {
        node = node
            .and_then(|n| n.properties.as_mut())
            .and_then(|p| p.get_mut(*key));
    }
    if let Some(node) = node {
        node.x_kubernetes_map_type = Some("atomic".to_owned());
    }
}

/// The `eips.network.kubesphere.io` CRD.
pub fn eips() -> Result<CustomResourceDefinition, CrdError> {
    merged("Eip", vec![v1alpha2::Eip::crd(), v1alpha1::Eip::crd()])
}

/// The `bgpconfs.network.kubesphere.io` CRD.
pub fn bgp_confs() -> Result<CustomResourceDefinition, CrdError> {
    merged(
        "BgpConf",
        vec![v1alpha2::BgpConf::crd(), v1alpha1::BgpConf::crd()],
    )
}

/// The `bgppeers.network.kubesphere.io` CRD.
pub fn bgp_peers() -> Result<CustomResourceDefinition, CrdError> {
    merged(
        "BgpPeer",
        vec![v1alpha2::BgpPeer::crd(), v1alpha1::BgpPeer::crd()],
    )
}

/// All three CRDs, in the order eips, bgpconfs, bgppeers.
pub fn all() -> Result<Vec<CustomResourceDefinition>, CrdError> {
    Ok(vec![eips()?, bgp_confs()?, bgp_peers()?])
}
