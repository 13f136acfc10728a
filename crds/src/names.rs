//! Well-known names of OpenELB's API: group, versions, kinds, annotations, labels, finalizers.
//!
//! These strings are the compatibility contract with OpenELB (see `openelb-compat.md`): an OpenELB
//! user's Services, Eips and Nodes keep working because oxelb reads and writes exactly these keys.
//! Every constant says who reads it and who writes it. This module needs no feature, so the pure
//! crates (oxelb-ipam) can use it without kube.

/// API group of every OpenELB custom resource (Eip, BgpConf, BgpPeer).
pub const GROUP: &str = "network.kubesphere.io";
/// The storage version of the OpenELB API; oxelb reads and writes objects in this version.
pub const VERSION_V1ALPHA2: &str = "v1alpha2";
/// The older served version (schemas kept for compatibility; never stored, never written by oxelb).
pub const VERSION_V1ALPHA1: &str = "v1alpha1";
/// `apiVersion` of objects in the storage version: `network.kubesphere.io/v1alpha2`.
pub const API_VERSION_V1ALPHA2: &str = "network.kubesphere.io/v1alpha2";
/// `apiVersion` of objects in the older served version: `network.kubesphere.io/v1alpha1`.
pub const API_VERSION_V1ALPHA1: &str = "network.kubesphere.io/v1alpha1";

/// Kind of an IP pool. Written by users; the controller reads it and writes its status.
pub const KIND_EIP: &str = "Eip";
/// Kind of the cluster-wide BGP configuration. Written by users; speakers read it and write its status.
pub const KIND_BGP_CONF: &str = "BgpConf";
/// Kind of a BGP neighbour. Written by users; speakers read it and write its status.
pub const KIND_BGP_PEER: &str = "BgpPeer";

/// Plural resource name of [`KIND_EIP`] (the REST path segment and RBAC resource).
pub const PLURAL_EIPS: &str = "eips";
/// Plural resource name of [`KIND_BGP_CONF`].
pub const PLURAL_BGP_CONFS: &str = "bgpconfs";
/// Plural resource name of [`KIND_BGP_PEER`].
pub const PLURAL_BGP_PEERS: &str = "bgppeers";

/// Service annotation that opts a `type: LoadBalancer` Service in to oxelb (value [`LB_ANNOTATION_VALUE`]).
/// Written by users; read by the controller (and the webhook).
pub const LB_ANNOTATION: &str = "lb.kubesphere.io/v1alpha1";
/// The value of [`LB_ANNOTATION`] that means "handled by OpenELB/oxelb".
pub const LB_ANNOTATION_VALUE: &str = "openelb";

/// Service annotation naming the Eip (pool) to allocate from. Written by users; read by the controller.
///
/// The same key is also the Service **label** the controller writes with the name of the Eip the
/// allocated IP came from (see [`EIP_POOL_LABEL`]).
pub const EIP_POOL_ANNOTATION: &str = "eip.openelb.kubesphere.io/v1alpha2";
/// Service label written by the controller: the name of the Eip the Service's IP came from.
/// Read by speakers and by users (`kubectl get svc -l`). Same key as [`EIP_POOL_ANNOTATION`].
pub const EIP_POOL_LABEL: &str = EIP_POOL_ANNOTATION;
/// Service annotation requesting one exact IP (overrides `spec.loadBalancerIP`). Written by users;
/// read by the controller.
pub const EIP_IP_ANNOTATION: &str = "eip.openelb.kubesphere.io/v1alpha1";
/// Service annotation of OpenELB v0.5 naming the announce protocol (`bgp`, `layer2`, `vip`). Written by
/// users of v0.5; the controller accepts it and warns when it contradicts the pool's protocol.
pub const PROTOCOL_ANNOTATION: &str = "protocol.openelb.kubesphere.io/v1alpha1";
/// Eip annotation marking the cluster's default pool (value [`IS_DEFAULT_EIP_VALUE`]; at most one Eip).
/// Written by users; read by the controller (pool choice) and the webhook (uniqueness).
pub const IS_DEFAULT_EIP_ANNOTATION: &str = "eip.openelb.kubesphere.io/is-default-eip";
/// The value of [`IS_DEFAULT_EIP_ANNOTATION`] that marks the default pool.
pub const IS_DEFAULT_EIP_VALUE: &str = "true";

/// Finalizer the controller puts on a Service while it holds an IP, so the IP is released before the
/// Service disappears. Written and removed by the controller only.
pub const SERVICE_FINALIZER: &str = "finalizer.lb.kubesphere.io/v1alpha1";
/// Finalizer the controller puts on an Eip, so a pool is not deleted while its IPs are still in use.
/// Written and removed by the controller only.
pub const EIP_FINALIZER: &str = "finalizer.ipam.kubesphere.io/v1alpha1";

/// Node label naming the node's rack. Written by users; read by speakers, which then use the rack's AS
/// from `BgpConf.spec.asPerRack` and the node's InternalIP as router id.
pub const RACK_LABEL: &str = "openelb.kubesphere.io/rack";
/// Label on Eips and BgpPeers meaning "this object belongs to the CNI" (e.g. Calico peers). Written by
/// users; speakers ignore objects that carry it.
pub const CNI_LABEL: &str = "openelb.kubesphere.io/cni";
/// Standard Kubernetes Node label excluding the node from external load balancers. Written by cluster
/// operators; speakers (and the layer2 election) skip such nodes.
pub const EXCLUDE_FROM_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The only BgpConf object that is used. Written by users; read by speakers (other names are ignored).
pub const DEFAULT_BGP_CONF_NAME: &str = "default";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_are_group_slash_version() {
        assert_eq!(API_VERSION_V1ALPHA2, format!("{GROUP}/{VERSION_V1ALPHA2}"));
        assert_eq!(API_VERSION_V1ALPHA1, format!("{GROUP}/{VERSION_V1ALPHA1}"));
    }

    #[test]
    fn pool_label_is_the_pool_annotation_key() {
        // OpenELB writes the pool name under the same key it reads the request from.
        assert_eq!(EIP_POOL_LABEL, "eip.openelb.kubesphere.io/v1alpha2");
    }
}
