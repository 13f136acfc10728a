//! Turns Kubernetes objects into the allocator's inputs: an Eip into a [`PoolSpec`], a Service (with
//! its Namespace's labels) into a [`ServiceRequest`].
//!
//! Pure functions: the reconcile loop calls them on objects from its indexes and turns an error into a
//! Warning Event and a log line on the object it names. Nothing here decides *whether* a Service is
//! handled (annotation, `loadBalancerClass`): that depends on the controller's flags.
//!
//! Read, per `openelb-compat.md` ("Service contract"):
//! - `eip.openelb.kubesphere.io/v1alpha1` (the exact IP) overrides `spec.loadBalancerIP`. As an
//!   extension for dual-stack, the annotation may hold one IP per family separated by a comma.
//! - `eip.openelb.kubesphere.io/v1alpha2` names the pool.
//! - `spec.ipFamilies` gives the families; when it is absent (objects that no apiserver defaulted,
//!   as in the `dir:` source) the families of the requested IPs are used, else IPv4.

use std::net::IpAddr;

use oxelb_crds::{address::AddressError, names, v1alpha2::Eip};
use oxelb_ipam::{IpFamily, LabelSet, PoolSpec, ServiceKey, ServiceRequest, TrafficPolicy};

use crate::view::ServiceView;

/// Why an Eip cannot be used as a pool. The pool is left out of allocation until the Eip is fixed;
/// Services it holds keep their IPs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The Eip has no `metadata.name` (only possible for objects not from an apiserver).
    #[error("Eip without metadata.name: ignored")]
    MissingName,
    /// `spec.address` does not parse.
    #[error("Eip {eip}: spec.address: {source}; the pool is not used until it is fixed")]
    Address {
        /// The Eip's name.
        eip: String,
        /// What is wrong with the address.
        source: AddressError,
    },
}

/// Why a Service's request cannot be built. Nothing is assigned to the Service until it is fixed;
/// an IP it already holds is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A requested IP does not parse.
    #[error(
        "Service {service}: {field}: {value:?} is not an IP address; nothing is assigned until it is fixed"
    )]
    BadIp {
        /// The Service.
        service: ServiceKey,
        /// Where the value came from (the annotation or `spec.loadBalancerIP`).
        field: String,
        /// The value as written.
        value: String,
    },
    /// More than one IP of one family requested.
    #[error(
        "Service {service}: {field}: {value:?} requests two IPs of one family; give at most one IPv4 and one IPv6"
    )]
    TwoIpsOfOneFamily {
        /// The Service.
        service: ServiceKey,
        /// Where the value came from.
        field: String,
        /// The value as written.
        value: String,
    },
    /// A port's protocol is not TCP, UDP or SCTP.
    #[error("Service {service}: spec.ports[{index}].protocol: {value:?} is not TCP, UDP or SCTP")]
    BadProtocol {
        /// The Service.
        service: ServiceKey,
        /// The port's index in `spec.ports`.
        index: usize,
        /// The value as written.
        value: String,
    },
    /// A port number outside 1..=65535.
    #[error("Service {service}: spec.ports[{index}].port: {value} is not in 1..=65535")]
    BadPort {
        /// The Service.
        service: ServiceKey,
        /// The port's index in `spec.ports`.
        index: usize,
        /// The value as written.
        value: i32,
    },
    /// An `ipFamilies` entry other than `IPv4`/`IPv6`.
    #[error("Service {service}: spec.ipFamilies: {value:?} is not IPv4 or IPv6")]
    BadFamily {
        /// The Service.
        service: ServiceKey,
        /// The value as written.
        value: String,
    },
}

/// The pool an Eip defines.
pub fn pool_from_eip(eip: &Eip) -> Result<PoolSpec, PoolError> {
    let name = eip.metadata.name.clone().ok_or(PoolError::MissingName)?;
    let range = eip.spec.parsed_address().map_err(|source| PoolError::Address {
        eip: name.clone(),
        source,
    })?;
    let mut pool = PoolSpec::new(name, range);
    pool.disabled = eip.spec.is_disabled();
    pool.priority = eip.spec.priority;
    pool.namespaces = eip.spec.namespaces.clone().unwrap_or_default();
    pool.namespace_selector = eip.spec.namespace_selector.clone().unwrap_or_default();
    pool.is_default = eip.is_default();
    Ok(pool)
}

/// What `service` asks of the allocator; `namespace_labels` are the labels of its Namespace (empty
/// when the Namespace is not known).
pub fn request_from_service(
    service: &ServiceView,
    namespace_labels: &LabelSet,
) -> Result<ServiceRequest, RequestError> {
    let key = &service.key;
    let requested_ips = match &service.ip_annotation {
        Some(value) => parse_ips(key, &format!("annotation {}", names::EIP_IP_ANNOTATION), value)?,
        None => match &service.load_balancer_ip {
            Some(value) => parse_ips(key, "spec.loadBalancerIP", value)?,
            None => Vec::new(),
        },
    };

    let mut ports = std::collections::BTreeSet::new();
    for (index, (protocol, port)) in service.ports.iter().enumerate() {
        let protocol = match protocol {
            Ok(protocol) => *protocol,
            Err(other) => {
                return Err(RequestError::BadProtocol {
                    service: key.clone(),
                    index,
                    value: other.to_string(),
                });
            }
        };
        let number = u16::try_from(*port)
            .ok()
            .filter(|n| *n != 0)
            .ok_or(RequestError::BadPort {
                service: key.clone(),
                index,
                value: *port,
            })?;
        ports.insert((protocol, number));
    }

    let families = if !service.ip_families.is_empty() {
        service
            .ip_families
            .iter()
            .map(|family| match family {
                Ok(family) => Ok(*family),
                Err(other) => Err(RequestError::BadFamily {
                    service: key.clone(),
                    value: other.to_string(),
                }),
            })
            .collect::<Result<_, _>>()?
    } else if !requested_ips.is_empty() {
        requested_ips.iter().map(|ip| IpFamily::of(*ip)).collect()
    } else {
        [IpFamily::V4].into_iter().collect()
    };

    let mut request = ServiceRequest::new(key.clone());
    request.namespace_labels = namespace_labels.clone();
    request.requested_ips = requested_ips;
    // One pool for every family, or (extension, for dual-stack) one per family: `v4pool,v6pool`.
    let pools: Vec<String> = service
        .pool_annotation
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect();
    match pools.as_slice() {
        [] => {}
        [one] => request.pool = Some(one.clone()),
        _ => request.family_pools = pools,
    }
    request.ports = ports;
    request.families = families;
    request.traffic_policy = if service.local_traffic {
        TrafficPolicy::Local
    } else {
        TrafficPolicy::Cluster
    };
    request.selector = service.selector.clone();
    Ok(request)
}

/// Parses one IP, or one per family separated by commas.
fn parse_ips(service: &ServiceKey, field: &str, value: &str) -> Result<Vec<IpAddr>, RequestError> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for part in value.split(',').map(str::trim) {
        let ip: IpAddr = part.parse().map_err(|_| RequestError::BadIp {
            service: service.clone(),
            field: field.to_owned(),
            value: value.to_owned(),
        })?;
        if ips.iter().any(|held| IpFamily::of(*held) == IpFamily::of(ip)) {
            return Err(RequestError::TwoIpsOfOneFamily {
                service: service.clone(),
                field: field.to_owned(),
                value: value.to_owned(),
            });
        }
        ips.push(ip);
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;
    use oxelb_ipam::Protocol;

    use super::*;

    /// Tests build k8s Services and convert them, as the index does.
    fn service(yaml: &str) -> ServiceView {
        ServiceView::of(&serde_yaml::from_str::<Service>(yaml).unwrap()).unwrap()
    }

    fn eip(yaml: &str) -> Eip {
        serde_yaml::from_str(yaml).unwrap()
    }

    const OPENELB_SERVICE: &str = "
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  annotations:
    lb.kubesphere.io/v1alpha1: openelb
    eip.openelb.kubesphere.io/v1alpha2: pool-a
    eip.openelb.kubesphere.io/v1alpha1: 192.0.2.10
spec:
  type: LoadBalancer
  loadBalancerIP: 192.0.2.99
  externalTrafficPolicy: Local
  selector: {app: web}
  ports:
  - {port: 80}
  - {port: 53, protocol: UDP}
";

    #[test]
    fn openelb_service_becomes_a_request_and_the_annotation_wins_over_load_balancer_ip() {
        let labels: LabelSet = [("team", "a")].into_iter().collect();
        let request = request_from_service(&service(OPENELB_SERVICE), &labels).unwrap();
        assert_eq!(request.key, ServiceKey::new("shop", "web"));
        assert_eq!(
            request.requested_ips,
            vec!["192.0.2.10".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(request.pool.as_deref(), Some("pool-a"));
        assert_eq!(
            request.ports.iter().copied().collect::<Vec<_>>(),
            vec![(Protocol::Tcp, 80), (Protocol::Udp, 53)]
        );
        assert_eq!(
            request.families.iter().copied().collect::<Vec<_>>(),
            vec![IpFamily::V4]
        );
        assert_eq!(request.traffic_policy, TrafficPolicy::Local);
        assert_eq!(request.selector.get("app"), Some("web"));
        assert_eq!(request.namespace_labels, labels);
    }

    #[test]
    fn load_balancer_ip_is_used_without_the_annotation_and_families_follow_the_ip() {
        let request = request_from_service(
            &service(
                "
metadata: {name: web, namespace: shop}
spec: {type: LoadBalancer, loadBalancerIP: '2001:db8::10'}
",
            ),
            &LabelSet::default(),
        )
        .unwrap();
        assert_eq!(
            request.requested_ips,
            vec!["2001:db8::10".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            request.families.iter().copied().collect::<Vec<_>>(),
            vec![IpFamily::V6]
        );
        assert_eq!(request.traffic_policy, TrafficPolicy::Cluster);
        assert_eq!(request.pool, None);
    }

    #[test]
    fn ip_families_and_a_dual_stack_annotation() {
        let request = request_from_service(
            &service(
                "
metadata:
  name: web
  namespace: shop
  annotations: {eip.openelb.kubesphere.io/v1alpha1: '192.0.2.10, 2001:db8::10'}
spec: {type: LoadBalancer, ipFamilies: [IPv6, IPv4]}
",
            ),
            &LabelSet::default(),
        )
        .unwrap();
        assert_eq!(request.requested_ips.len(), 2);
        assert_eq!(
            request.families.iter().copied().collect::<Vec<_>>(),
            vec![IpFamily::V4, IpFamily::V6]
        );
    }

    #[test]
    fn nothing_requested_means_ipv4_and_blank_values_are_absent() {
        let request = request_from_service(
            &service(
                "
metadata:
  name: web
  namespace: shop
  annotations: {eip.openelb.kubesphere.io/v1alpha1: ' ', eip.openelb.kubesphere.io/v1alpha2: ''}
spec: {type: LoadBalancer, loadBalancerIP: ''}
",
            ),
            &LabelSet::default(),
        )
        .unwrap();
        assert!(request.requested_ips.is_empty());
        assert_eq!(request.pool, None);
        assert_eq!(
            request.families.iter().copied().collect::<Vec<_>>(),
            vec![IpFamily::V4]
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases = [
            (
                "metadata: {name: web, namespace: shop, annotations: {eip.openelb.kubesphere.io/v1alpha1: 192.0.2.300}}",
                "Service shop/web: annotation eip.openelb.kubesphere.io/v1alpha1: \"192.0.2.300\" is not an IP address",
            ),
            (
                "metadata: {name: web, namespace: shop}\nspec: {loadBalancerIP: nope}",
                "Service shop/web: spec.loadBalancerIP: \"nope\" is not an IP address",
            ),
            (
                "metadata: {name: web, namespace: shop}\nspec: {loadBalancerIP: '192.0.2.1,192.0.2.2'}",
                "Service shop/web: spec.loadBalancerIP: \"192.0.2.1,192.0.2.2\" requests two IPs of one family",
            ),
            (
                "metadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}, {port: 81, protocol: QUIC}]}",
                "Service shop/web: spec.ports[1].protocol: \"QUIC\" is not TCP, UDP or SCTP",
            ),
            (
                "metadata: {name: web, namespace: shop}\nspec: {ports: [{port: 70000}]}",
                "Service shop/web: spec.ports[0].port: 70000 is not in 1..=65535",
            ),
            (
                "metadata: {name: web, namespace: shop}\nspec: {ports: [{port: 0}]}",
                "Service shop/web: spec.ports[0].port: 0 is not in 1..=65535",
            ),
            (
                "metadata: {name: web, namespace: shop}\nspec: {ipFamilies: [IPv5]}",
                "Service shop/web: spec.ipFamilies: \"IPv5\" is not IPv4 or IPv6",
            ),
        ];
        let keyless: Service = serde_yaml::from_str("metadata: {name: web}").unwrap();
        assert_eq!(
            ServiceView::of(&keyless),
            None,
            "nothing to decide without a namespace"
        );
        for (yaml, expected) in cases {
            let error = request_from_service(&service(yaml), &LabelSet::default()).unwrap_err();
            assert!(
                error.to_string().starts_with(expected),
                "for {yaml:?}: got {error:?}, expected it to start with {expected:?}"
            );
        }
    }

    #[test]
    fn eip_becomes_a_pool() {
        let pool = pool_from_eip(&eip("
apiVersion: network.kubesphere.io/v1alpha2
kind: Eip
metadata:
  name: pool-a
  annotations: {eip.openelb.kubesphere.io/is-default-eip: 'true'}
spec:
  address: 192.0.2.0/28
  disable: true
  priority: 5
  namespaces: [shop]
  namespaceSelector: {team: a}
"))
        .unwrap();
        assert_eq!(pool.name, "pool-a");
        assert_eq!(pool.range, "192.0.2.0/28".parse().unwrap());
        assert!(pool.disabled && pool.is_default);
        assert_eq!(pool.priority, Some(5));
        assert_eq!(pool.namespaces, vec!["shop".to_owned()]);
        assert_eq!(pool.namespace_selector.get("team").map(String::as_str), Some("a"));
    }

    #[test]
    fn a_minimal_eip_is_an_enabled_non_default_pool() {
        let pool = pool_from_eip(&eip("metadata: {name: p}\nspec: {address: 198.51.100.7}")).unwrap();
        assert!(!pool.disabled && !pool.is_default);
        assert_eq!(pool.priority, None);
        assert!(pool.namespaces.is_empty() && pool.namespace_selector.is_empty());
    }

    #[test]
    fn a_bad_eip_address_names_the_eip_and_the_field() {
        let error = pool_from_eip(&eip(
            "metadata: {name: p}\nspec: {address: 192.0.2.20-192.0.2.10}",
        ))
        .unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("Eip p: spec.address: \"192.0.2.20-192.0.2.10\": range start is after end"),
            "{text}"
        );
        assert_eq!(
            pool_from_eip(&eip("metadata: {}\nspec: {address: 192.0.2.1}")).unwrap_err(),
            PoolError::MissingName
        );
    }
}
