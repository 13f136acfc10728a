//! Reading OpenELB's Service contract off a Kubernetes Service (feature `api`): the fields the
//! controller writes and the speakers read, so both read them one way.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

/// The IPs in `status.loadBalancer.ingress`, in order (hostname entries and unparsable values
/// skipped).
pub fn ingress_ips(service: &Service) -> Vec<IpAddr> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_ips_and_skips_the_rest() {
        let service: Service =
            serde_json::from_value(serde_json::json!({"status": {"loadBalancer": {"ingress": [
            {"ip": "192.0.2.1"}, {"hostname": "lb.example"}, {"ip": "not-an-ip"}, {"ip": "2001:db8::1"}]}}}))
            .unwrap();
        assert_eq!(
            ingress_ips(&service),
            vec![
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        assert!(ingress_ips(&Service::default()).is_empty());
    }
}
