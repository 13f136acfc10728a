//! The objects the controller reads ([`Indexes`], started by [`watch_all`]) and what changed in
//! them since a pass last asked ([`Changed`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
};

use k8s_openapi::api::core::v1::{Namespace, Service};
use oxelb_crds::v1alpha2::Eip;
use oxelb_ipam::ServiceKey;
use oxelb_runtime::{app::App, feed::SharedIndex, index::Changes, object::ObjectKey};

use crate::{
    handling::{Handling, service_view},
    hash::json_hash,
    reconcile::{Reconciler, Snapshot},
    view::{NamespaceView, ServiceView, namespace_view},
};

/// What changed in the indexes since a pass last asked ([`Indexes::take_changes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// An Eip or a Namespace: the pools, and so possibly any Service's choice (a whole pass).
    Pools,
    /// Possibly every Service: a re-list, or more changes than the index tracks one by one.
    AllServices,
    /// These Services (created, changed or deleted); none when nothing changed.
    Services(BTreeSet<ServiceKey>),
}

/// What of an Eip the pools and the reconciler's decisions rest on: everything but its status
/// (which the controller writes itself) and its resourceVersion, as a hash.
fn eip_fingerprint(eip: &Eip) -> u64 {
    let meta = &eip.metadata;
    json_hash(&(
        &meta.uid,
        &meta.labels,
        &meta.annotations,
        &meta.finalizers,
        &meta.deletion_timestamp,
        &eip.spec,
    ))
}

/// The objects the controller reads.
#[derive(Clone)]
pub struct Indexes {
    /// The Services the controller handles or must clean up (see [`crate::handling::service_view`]).
    pub services: SharedIndex<ServiceView>,
    /// All Namespaces' labels (Eips bound by `namespaces` / `namespaceSelector` match their names
    /// and labels).
    pub namespaces: SharedIndex<NamespaceView>,
    /// All Eips (network.kubesphere.io/v1alpha2).
    pub eips: SharedIndex<Eip>,
    /// Each Eip's fingerprint (everything but its status, hashed) when [`Indexes::take_changes`] last looked.
    pub eips_seen: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Indexes {
    /// The current objects, for one whole pass (shared with the indexes, not copied).
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_of(None)
    }

    /// The objects for one pass: every Service (`touched` = `None`), or only the touched ones that
    /// still exist; every Eip and Namespace either way.
    pub fn snapshot_of(&self, touched: Option<BTreeSet<ServiceKey>>) -> Snapshot {
        // A poisoned lock means a reader panicked; the data is still a valid map.
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        let namespaces = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        let eips = self.eips.read().unwrap_or_else(|e| e.into_inner());
        let services = match &touched {
            None => services.iter_shared().map(|(_, s)| s.clone()).collect(),
            Some(keys) => keys
                .iter()
                .filter_map(|k| {
                    services
                        .get_shared(&ObjectKey::new(Some(&k.namespace), &k.name))
                        .cloned()
                })
                .collect(),
        };
        Snapshot {
            services,
            namespaces: namespaces
                .iter()
                .map(|(key, ns)| (key.name.clone(), ns.labels.clone()))
                .collect::<BTreeMap<_, _>>(),
            eips: eips.iter_shared().map(|(_, e)| e.clone()).collect(),
            touched,
        }
    }

    /// What changed since the last call.
    pub fn take_changes(&self) -> Changed {
        let services = self
            .services
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take_changes();
        let namespaces = self
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take_changes();
        let eips = self
            .eips
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take_changes();
        if !namespaces.is_empty() || (!eips.is_empty() && self.eips_changed_beyond_status()) {
            return Changed::Pools;
        }
        match services {
            Changes::None => Changed::Services(BTreeSet::new()),
            Changes::Keys(keys) => Changed::Services(
                keys.into_iter()
                    .filter_map(|k| Some(ServiceKey::new(k.namespace?, k.name)))
                    .collect(),
            ),
            Changes::All => Changed::AllServices,
        }
    }

    /// Whether an Eip was created, deleted or changed in more than its status since the last
    /// call. The controller's own status writes come back as Eip changes during a burst; deciding
    /// a whole pass for each would decide every Service again and hold all their writes.
    fn eips_changed_beyond_status(&self) -> bool {
        let now: BTreeMap<String, u64> = {
            let eips = self.eips.read().unwrap_or_else(|e| e.into_inner());
            eips.iter()
                .map(|(key, eip)| (key.name.clone(), eip_fingerprint(eip)))
                .collect()
        };
        let mut seen = self.eips_seen.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *seen != now;
        *seen = now;
        changed
    }

    /// The keys of every Service the index holds.
    pub fn service_keys(&self) -> BTreeSet<ServiceKey> {
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        services.iter().map(|(_, s)| s.key.clone()).collect()
    }

    /// The Services the next pass must decide, from what changed (see [`Changed`]): `None` for a
    /// whole pass. When every Service may have changed, a reconciler that has registered the
    /// existing assignments decides them as touched ([`next_touched`](crate::next_touched) takes them
    /// [`MAX_TOUCHED_PER_PASS`](crate::MAX_TOUCHED_PER_PASS) at a time): every Service the index holds and every one the
    /// reconciler holds something of (one deleted in the meantime). One whole pass would decide
    /// them alike but hold all their writes at once: a burst of ten thousand creates overflows
    /// the index's change tracking, and such a pass held tens of megabytes.
    pub fn touched_by(&self, changed: Changed, reconciler: &Reconciler) -> Option<BTreeSet<ServiceKey>> {
        match changed {
            Changed::Pools => None,
            Changed::Services(keys) => Some(keys),
            Changed::AllServices if reconciler.bootstrapped() => {
                let mut keys = self.service_keys();
                keys.extend(reconciler.known_services().cloned());
                Some(keys)
            }
            Changed::AllServices => None,
        }
    }
}

/// Starts the indexes of every kind the controller reads, each object viewed on arrival as what a
/// decision reads (see [`crate::view`]): Services the controller never handles and holds nothing of are
/// not kept, Namespaces are kept as their labels.
pub fn watch_all(app: &mut App, handling: &Handling) -> Indexes {
    let services = app.index_viewed::<Service, ServiceView>(service_view(handling.clone()));
    let namespaces = app.index_viewed::<Namespace, NamespaceView>(namespace_view());
    let eips = app.index::<Eip>();
    // A pass over a change needs to know what changed.
    services
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .track_changes();
    namespaces
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .track_changes();
    eips.write().unwrap_or_else(|e| e.into_inner()).track_changes();
    Indexes {
        services,
        namespaces,
        eips,
        eips_seen: Arc::default(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
