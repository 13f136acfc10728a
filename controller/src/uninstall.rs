//! Uninstall mode (`--uninstall`): the controller lets go of every object it holds, so that deleting
//! oxelb afterwards leaves nothing stuck.
//!
//! oxelb puts finalizers on Services that hold an IP (`finalizer.lb.kubesphere.io/v1alpha1`) and on
//! Eips (`finalizer.ipam.kubesphere.io/v1alpha1`). Once no controller runs, nothing removes them: a
//! user can no longer delete their Service (nor its namespace), and deleting the CRDs hangs on the
//! Eips. In this mode a controller allocates nothing and adds nothing; it removes both finalizers
//! wherever they are, on every change, and reports ready once a pass found none left.
//!
//! Everything else stays as it is: the Services keep their `status.loadBalancer.ingress` and pool
//! label, the Eips their `status.used`, so a later install adopts the same IPs (the controller
//! re-registers them before allocating). Removing a finalizer is idempotent and carries the
//! object's `resourceVersion`, so this mode needs no leader election: several replicas (or an old
//! replica still leading during the rollout) at worst cause a 409 and a re-read.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use oxelb_crds::names;
use oxelb_runtime::source::MetadataPatch;

use crate::reconcile::{Action, Snapshot, Target};

/// The metadata patch that removes `finalizer` from an object (pure), `None` when it has none.
pub fn without_finalizer(meta: &ObjectMeta, finalizer: &str) -> Option<MetadataPatch> {
    finalizers_without(
        meta.finalizers.iter().flatten(),
        meta.resource_version.as_deref(),
        finalizer,
    )
}

/// The metadata patch that removes `finalizer` from an object with these finalizers and this
/// `resourceVersion` (pure), `None` when it has none.
fn finalizers_without<S: AsRef<str>>(
    finalizers: impl Iterator<Item = S> + Clone,
    resource_version: Option<&str>,
    finalizer: &str,
) -> Option<MetadataPatch> {
    if !finalizers.clone().any(|f| f.as_ref() == finalizer) {
        return None;
    }
    Some(MetadataPatch {
        finalizers: Some(
            finalizers
                .filter(|f| f.as_ref() != finalizer)
                .map(|f| f.as_ref().to_owned())
                .collect(),
        ),
        resource_version: resource_version.map(str::to_owned),
        ..Default::default()
    })
}

/// The writes that remove oxelb's finalizers from every Service and Eip of the snapshot (pure):
/// Services first (a user waiting to delete one is the urgent case), then Eips. Empty when nothing
/// is held any more.
pub fn release_actions(snapshot: &Snapshot) -> Vec<Action> {
    let services = snapshot.services.iter().filter_map(|service| {
        let version = service.resource_version.as_deref();
        let patch = finalizers_without(service.finalizers.iter(), version, names::SERVICE_FINALIZER)?;
        Some(Action::Metadata {
            target: Target::Service(service.key.clone()),
            base_version: version.map(str::to_owned),
            patch,
        })
    });
    let eips = snapshot.eips.iter().filter_map(|eip| {
        let meta = &eip.metadata;
        let patch = without_finalizer(meta, names::EIP_FINALIZER)?;
        Some(Action::Metadata {
            target: Target::Eip(meta.name.clone().unwrap_or_default()),
            base_version: meta.resource_version.clone(),
            patch,
        })
    });
    services.chain(eips).collect()
}

/// The uninstall loop: waits for every watch to sync, then removes oxelb's finalizers wherever they
/// appear, on every change (an old replica may still add one during the rollout), and opens `ready`
/// after the first pass that found nothing left to release.
pub async fn run(
    indexes: crate::indexes::Indexes,
    writer: oxelb_runtime::source::Writer,
    tracker: oxelb_runtime::feed::SyncTracker,
    shutdown: oxelb_runtime::shutdown::Shutdown,
    metrics: crate::metrics::ControllerMetrics,
    ready: Option<oxelb_runtime::app::ReadyGate>,
) {
    use tracing::{info, warn};

    // A partial view would miss objects still holding a finalizer, and report ready too early.
    tokio::select! {
        _ = tracker.wait() => {}
        _ = shutdown.wait() => return,
    }
    info!("uninstall mode: allocating nothing, removing oxelb's finalizers from every Service and Eip");
    metrics.set_leader(false);
    let leadership = crate::leader::Leadership::always();
    let mut applier = crate::apply::Applier::new(writer, metrics);
    let mut ready = ready;
    let mut changes = tracker.changes();
    let mut backoff = crate::pacing::ERROR_BACKOFF.0;
    loop {
        changes.borrow_and_update();
        let actions = release_actions(&indexes.snapshot());
        let wait = if actions.is_empty() {
            if let Some(gate) = ready.take() {
                info!("uninstall mode: no Service or Eip holds an oxelb finalizer; ready");
                gate.open();
            }
            backoff = crate::pacing::ERROR_BACKOFF.0;
            crate::pacing::RESYNC
        } else {
            let count = actions.len();
            let summary = applier.apply(actions, &leadership).await;
            info!(
                finalizers = count,
                removed = summary.written,
                conflicts = summary.conflicts,
                errors = summary.errors,
                "uninstall mode: releasing"
            );
            if summary.errors > 0 {
                warn!("uninstall mode: some finalizers could not be removed; retrying with backoff");
                let wait = backoff;
                backoff = (backoff * 2).min(crate::pacing::ERROR_BACKOFF.1);
                wait
            } else {
                backoff = crate::pacing::ERROR_BACKOFF.0;
                // Conflicts and our own writes arrive as changes; this is only the fallback.
                crate::pacing::CONFLICT_RETRY
            }
        };
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() { return; }
                tokio::time::sleep(crate::pacing::DEBOUNCE).await;
            }
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait() => return,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::Service;
    use oxelb_crds::v1alpha2::{Eip, EipSpec};

    use super::*;
    use crate::view::ServiceView;

    fn meta(name: &str, namespace: Option<&str>, finalizers: &[&str]) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: namespace.map(Into::into),
            resource_version: Some(format!("rv-{name}")),
            finalizers: (!finalizers.is_empty())
                .then(|| finalizers.iter().map(|f| (*f).to_owned()).collect()),
            ..Default::default()
        }
    }

    fn service(name: &str, finalizers: &[&str]) -> Arc<ServiceView> {
        let service = Service {
            metadata: meta(name, Some("default"), finalizers),
            ..Default::default()
        };
        Arc::new(ServiceView::of(&service).unwrap())
    }

    fn eip(name: &str, finalizers: &[&str]) -> Arc<Eip> {
        let mut eip = Eip::new(name, EipSpec::default());
        eip.metadata = meta(name, None, finalizers);
        Arc::new(eip)
    }

    fn released(actions: &[Action]) -> Vec<(String, Vec<String>, Option<String>)> {
        actions
            .iter()
            .map(|action| match action {
                Action::Metadata { target, patch, .. } => {
                    assert!(patch.labels.is_empty(), "only finalizers change: {patch:?}");
                    (
                        target.to_string(),
                        patch.finalizers.clone().unwrap_or_default(),
                        patch.resource_version.clone(),
                    )
                }
                other => panic!("not a metadata patch: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn removes_only_oxelbs_finalizers_and_keeps_the_others() {
        let snapshot = Snapshot {
            services: vec![
                service("held", &[names::SERVICE_FINALIZER]),
                service("shared", &["example.com/keep", names::SERVICE_FINALIZER]),
                service("free", &[]),
                service("foreign", &["example.com/keep"]),
            ],
            eips: vec![
                eip("pool", &[names::EIP_FINALIZER]),
                eip("bare", &[]),
                // A Service finalizer on an Eip is not ours to remove there.
                eip("odd", &[names::SERVICE_FINALIZER]),
            ],
            ..Default::default()
        };
        let actions = release_actions(&snapshot);
        assert_eq!(
            released(&actions),
            [
                (
                    "Service default/held".to_owned(),
                    vec![],
                    Some("rv-held".to_owned())
                ),
                (
                    "Service default/shared".to_owned(),
                    vec!["example.com/keep".to_owned()],
                    Some("rv-shared".to_owned())
                ),
                ("Eip pool".to_owned(), vec![], Some("rv-pool".to_owned())),
            ]
        );
    }

    #[test]
    fn nothing_to_do_once_released() {
        let snapshot = Snapshot {
            services: vec![service("a", &["example.com/keep"]), service("b", &[])],
            eips: vec![eip("pool", &[])],
            ..Default::default()
        };
        assert!(release_actions(&snapshot).is_empty());
        assert!(release_actions(&Snapshot::default()).is_empty());
    }
}
