//! Which Services this controller handles: `type: LoadBalancer`, then either its
//! `spec.loadBalancerClass` or, for class-less Services, OpenELB's annotation (or `--default-lb`).
//!
//! Kubernetes makes `spec.loadBalancerClass` authoritative: a Service with a class belongs to the
//! implementation of that class only, whatever its annotations say, so a class other than
//! `--lb-class` is never touched.

use k8s_openapi::api::core::v1::Service;
use oxelb_crds::names;

/// The flags that decide which Services are handled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Handling {
    /// `--lb-class`: Services with this `spec.loadBalancerClass` are handled without any annotation.
    /// `None`: Services with a class are never handled.
    pub lb_class: Option<String>,
    /// `--default-lb`: handle every class-less `LoadBalancer` Service, with or without the
    /// `lb.kubesphere.io/v1alpha1: openelb` annotation (users find the annotation tedious).
    pub default_lb: bool,
}

impl Handling {
    /// Whether `service` is handled: it is `type: LoadBalancer` and either has our class, or has no
    /// class and carries `lb.kubesphere.io/v1alpha1: openelb` (or `--default-lb` is set).
    pub fn handles(&self, service: &Service) -> bool {
        let Some(spec) = &service.spec else {
            return false;
        };
        if spec.type_.as_deref() != Some("LoadBalancer") {
            return false;
        }
        match spec.load_balancer_class.as_deref().filter(|c| !c.is_empty()) {
            Some(class) => self.lb_class.as_deref() == Some(class),
            None => self.default_lb || has_openelb_annotation(service),
        }
    }
}

/// Whether the Service carries `lb.kubesphere.io/v1alpha1: openelb`.
pub fn has_openelb_annotation(service: &Service) -> bool {
    service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::LB_ANNOTATION))
        .is_some_and(|v| v.trim() == names::LB_ANNOTATION_VALUE)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn service(type_: &str, class: Option<&str>, annotated: bool) -> Service {
        let mut value = serde_json::json!({
            "metadata": {"name": "s", "namespace": "default"},
            "spec": {"type": type_},
        });
        if let Some(class) = class {
            value["spec"]["loadBalancerClass"] = class.into();
        }
        if annotated {
            value["metadata"]["annotations"] = serde_json::json!({names::LB_ANNOTATION: "openelb"});
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn every_combination() {
        let ours = "oxelb.io/lb";
        for lb_class in [None, Some(ours.to_owned())] {
            for default_lb in [false, true] {
                let h = Handling {
                    lb_class: lb_class.clone(),
                    default_lb,
                };
                for annotated in [false, true] {
                    assert!(!h.handles(&service("ClusterIP", None, annotated)));
                    assert!(!h.handles(&service("NodePort", Some(ours), annotated)));
                    assert_eq!(
                        h.handles(&service("LoadBalancer", None, annotated)),
                        annotated || default_lb,
                        "class-less, annotated={annotated}, default_lb={default_lb}"
                    );
                    assert_eq!(
                        h.handles(&service("LoadBalancer", Some(ours), annotated)),
                        lb_class.is_some(),
                        "our class, lb_class={lb_class:?}"
                    );
                    assert!(
                        !h.handles(&service("LoadBalancer", Some("other.io/lb"), annotated)),
                        "another class is never ours, even annotated"
                    );
                }
            }
        }
    }

    #[test]
    fn annotation_value_must_be_openelb() {
        let mut s = service("LoadBalancer", None, true);
        s.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(names::LB_ANNOTATION.into(), "metallb".into());
        assert!(!Handling::default().handles(&s));
        assert!(!Handling::default().handles(&Service::default()));
    }
}
