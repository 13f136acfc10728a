//! The fake API the reconciler's scenario tests run against: it holds the objects as an
//! apiserver does and applies a pass's actions as the apiserver would (merge patches,
//! `resourceVersion` preconditions, finalizers that hold deletion); and the helpers the scenarios
//! share.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use oxelb_controller::{
    handling::Handling,
    reconcile::{Action, PassReport, Reconciler, Snapshot, Target},
    view::ServiceView,
};
use oxelb_crds::names;
use oxelb_runtime::source::EventType;
use oxelb_tests::apiserver::merge;
use serde_json::Value;

/// The objects, as an apiserver holds them; `apply` makes a pass's writes.
#[derive(Clone, Default)]
pub(crate) struct Api {
    pub(crate) services: BTreeMap<(String, String), Value>,
    pub(crate) eips: BTreeMap<String, Value>,
    pub(crate) namespaces: BTreeMap<String, BTreeMap<String, String>>,
    pub(crate) version: u64,
    /// Every write made, as (kind of write, target).
    pub(crate) writes: Vec<(String, String)>,
    pub(crate) events: Vec<(EventType, String, String, String)>,
}

impl Api {
    pub(crate) fn bump(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    pub(crate) fn put_service(&mut self, yaml: &str) {
        let mut value: Value = serde_yaml::from_str(yaml).unwrap();
        let rv = self.bump();
        value["metadata"]["resourceVersion"] = rv.into();
        if value["metadata"]["namespace"].is_null() {
            value["metadata"]["namespace"] = "default".into();
        }
        let key = (
            value["metadata"]["namespace"].as_str().unwrap().to_owned(),
            value["metadata"]["name"].as_str().unwrap().to_owned(),
        );
        // Like kubectl apply: status and finalizers written by the controller survive a spec edit.
        if let Some(old) = self.services.get(&key) {
            for field in ["status"] {
                if !old[field].is_null() && value[field].is_null() {
                    value[field] = old[field].clone();
                }
            }
            for field in ["finalizers", "labels"] {
                if !old["metadata"][field].is_null() && value["metadata"][field].is_null() {
                    value["metadata"][field] = old["metadata"][field].clone();
                }
            }
        }
        self.services.insert(key, value);
    }

    pub(crate) fn put_eip(&mut self, yaml: &str) {
        let mut value: Value = serde_yaml::from_str(yaml).unwrap();
        value["apiVersion"] = names::API_VERSION_V1ALPHA2.into();
        value["kind"] = "Eip".into();
        let rv = self.bump();
        value["metadata"]["resourceVersion"] = rv.into();
        let name = value["metadata"]["name"].as_str().unwrap().to_owned();
        if let Some(old) = self.eips.get(&name) {
            if value["status"].is_null() {
                value["status"] = old["status"].clone();
            }
            if value["metadata"]["finalizers"].is_null() {
                value["metadata"]["finalizers"] = old["metadata"]["finalizers"].clone();
            }
        }
        self.eips.insert(name, value);
    }

    /// `kubectl delete`: with finalizers, only marks the object.
    pub(crate) fn delete_service(&mut self, name: &str) {
        let key = ("default".to_owned(), name.to_owned());
        let svc = self.services.get_mut(&key).unwrap();
        let has_finalizers = svc["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            svc["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        } else {
            self.services.remove(&key);
        }
    }

    pub(crate) fn delete_eip(&mut self, name: &str) {
        let eip = self.eips.get_mut(name).unwrap();
        let has_finalizers = eip["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            eip["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        } else {
            self.eips.remove(name);
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            // As the index holds them: each Service through the controller's view.
            services: self
                .services
                .values()
                .map(|v| {
                    let service: Service = serde_json::from_value(v.clone()).unwrap();
                    std::sync::Arc::new(ServiceView::of(&service).unwrap())
                })
                .collect(),
            namespaces: self
                .namespaces
                .iter()
                .map(|(name, labels)| (name.clone(), labels.clone().into()))
                .collect(),
            touched: None,
            eips: self
                .eips
                .values()
                .map(|v| std::sync::Arc::new(serde_json::from_value(v.clone()).unwrap()))
                .collect(),
        }
    }

    pub(crate) fn object(&mut self, target: &Target) -> Option<&mut Value> {
        match target {
            Target::Service(key) => self
                .services
                .get_mut(&(key.namespace.to_string(), key.name.to_string())),
            Target::Eip(name) => self.eips.get_mut(name),
        }
    }

    /// Applies the actions; returns how many metadata writes hit a stale resourceVersion (409).
    pub(crate) fn apply(&mut self, report: &PassReport) -> usize {
        let mut conflicts = 0;
        for action in &report.actions {
            match action {
                Action::Event(e) => self.events.push((
                    e.type_,
                    e.reason.clone(),
                    format!(
                        "{}/{}",
                        e.regarding.kind.clone().unwrap_or_default(),
                        e.regarding.name.clone().unwrap_or_default()
                    ),
                    e.note.clone().unwrap_or_default(),
                )),
                Action::Status { target, status, .. } => {
                    self.writes.push(("status".into(), target.to_string()));
                    let rv = self.bump();
                    let obj = self.object(target).expect("status of a missing object");
                    merge(&mut obj["status"], status);
                    obj["metadata"]["resourceVersion"] = rv.into();
                }
                Action::Metadata { target, patch, .. } => {
                    self.writes.push(("metadata".into(), target.to_string()));
                    let rv = self.bump();
                    let obj = self.object(target).expect("metadata of a missing object");
                    if patch.resource_version.as_deref() != obj["metadata"]["resourceVersion"].as_str() {
                        conflicts += 1;
                        continue;
                    }
                    merge(obj, &patch.to_merge_patch());
                    obj["metadata"]["resourceVersion"] = rv.into();
                    // Deletion completes when the last finalizer goes.
                    let gone = !obj["metadata"]["deletionTimestamp"].is_null()
                        && obj["metadata"]["finalizers"]
                            .as_array()
                            .is_none_or(|f| f.is_empty());
                    if gone {
                        match target {
                            Target::Service(key) => {
                                self.services
                                    .remove(&(key.namespace.to_string(), key.name.to_string()));
                            }
                            Target::Eip(name) => {
                                self.eips.remove(name);
                            }
                        }
                    }
                }
            }
        }
        conflicts
    }

    pub(crate) fn ingress(&self, name: &str) -> Vec<String> {
        self.services[&("default".to_owned(), name.to_owned())]["status"]["loadBalancer"]["ingress"]
            .as_array()
            .map(|a| a.iter().map(|i| i["ip"].as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn eip_status(&self, name: &str) -> &Value {
        &self.eips[name]["status"]
    }

    pub(crate) fn warnings(&self) -> Vec<(String, String, String)> {
        self.events
            .iter()
            .filter(|e| e.0 == EventType::Warning)
            .map(|e| (e.1.clone(), e.2.clone(), e.3.clone()))
            .collect()
    }
}

/// Runs passes until one decides nothing (at most 5); returns the number of passes with actions.
/// A pass's own writes never conflict with each other (metadata goes before status).
pub(crate) fn settle(reconciler: &mut Reconciler, api: &mut Api) -> usize {
    for n in 0..5 {
        let report = reconciler.pass(&api.snapshot());
        if report.actions.is_empty() {
            return n;
        }
        assert_eq!(
            api.apply(&report),
            0,
            "a pass conflicted with itself: {:?}",
            report.actions
        );
    }
    panic!(
        "no fixed point after 5 passes: {:?}",
        reconciler.pass(&api.snapshot()).actions
    );
}

pub(crate) fn lb(name: &str, extra_annotations: &str, ports: &str) -> String {
    format!(
        "metadata:\n  name: {name}\n  annotations:\n    lb.kubesphere.io/v1alpha1: openelb\n{extra_annotations}spec:\n  type: LoadBalancer\n  selector: {{app: {name}}}\n  ports: {ports}\n"
    )
}

pub(crate) fn default_eip(api: &mut Api, address: &str) {
    api.put_eip(&format!(
        "metadata:\n  name: pool\n  annotations: {{eip.openelb.kubesphere.io/is-default-eip: \"true\"}}\nspec:\n  address: {address}\n"
    ));
}

pub(crate) fn handled() -> Reconciler {
    Reconciler::new(Handling::default())
}
