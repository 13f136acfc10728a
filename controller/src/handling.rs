//! Which Services this controller handles: `type: LoadBalancer`, then either its
//! `spec.loadBalancerClass` or, for class-less Services, OpenELB's annotation (or `--default-lb`).
//!
//! Kubernetes makes `spec.loadBalancerClass` authoritative: a Service with a class belongs to the
//! implementation of that class only, whatever its annotations say, so a class other than
//! `--lb-class` is never touched.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use oxelb_crds::names;
use oxelb_runtime::index::View;

use crate::view::ServiceView;

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
    pub fn handles(&self, service: &ServiceView) -> bool {
        if !service.load_balancer {
            return false;
        }
        match service.class.as_deref() {
            Some(class) => self.lb_class.as_deref() == Some(class),
            None => self.default_lb || has_openelb_annotation(service),
        }
    }
}

/// Whether the Service carries `lb.kubesphere.io/v1alpha1: openelb`.
pub fn has_openelb_annotation(service: &ServiceView) -> bool {
    service.lb_annotation.as_deref() == Some(names::LB_ANNOTATION_VALUE)
}

/// The controller's Services: those it handles, and those it left a mark on (its finalizer or
/// pool label: it must clean them up), as views.
pub fn service_view(handling: Handling) -> View<Service, ServiceView> {
    Arc::new(move |service: Service| {
        let view = ServiceView::of(&service)?;
        (view.marked() || handling.handles(&view)).then_some(view)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn service(type_: &str, class: Option<&str>, annotated: bool) -> ServiceView {
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
        ServiceView::of(&serde_json::from_value::<Service>(value).unwrap()).unwrap()
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
        let mut s: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s", "namespace": "default",
                "annotations": {names::LB_ANNOTATION: "metallb"}},
            "spec": {"type": "LoadBalancer"},
        }))
        .unwrap();
        let view = |s: &Service| ServiceView::of(s).unwrap();
        assert!(!Handling::default().handles(&view(&s)));
        s.spec = None;
        assert!(!Handling::default().handles(&view(&s)));
    }
}
