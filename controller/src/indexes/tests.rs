use super::*;
use crate::pacing::{MAX_TOUCHED_PER_PASS, next_touched};

/// A burst that overflows the Services' change tracking (or a re-list) is decided as touched
/// Services, those the index holds and those the reconciler still holds something of, once
/// the reconciler has registered what exists; pool changes call for a whole pass.
#[test]
fn every_service_changed_is_decided_as_touched_keys_once_bootstrapped() {
    use std::sync::RwLock;

    use oxelb_runtime::index::{Index, IndexEvent};

    let view = |name: &str| -> ServiceView {
        let service: Service = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "ns",
                    "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"}},
                "spec": {"type": "LoadBalancer"}}))
        .unwrap();
        ServiceView::of(&service).unwrap()
    };
    let indexes = Indexes {
        services: Arc::new(RwLock::new(Index::new())),
        namespaces: Arc::new(RwLock::new(Index::new())),
        eips: Arc::new(RwLock::new(Index::new())),
        eips_seen: Arc::default(),
    };
    {
        let mut services = indexes.services.write().unwrap();
        services.apply(IndexEvent::Resync(vec![view("waits")]));
        services.track_changes();
    }
    indexes.namespaces.write().unwrap().track_changes();
    indexes.eips.write().unwrap().track_changes();
    let _ = indexes.take_changes();
    assert_eq!(indexes.take_changes(), Changed::Services(BTreeSet::new()));

    let mut reconciler = Reconciler::new(Handling::default());
    assert_eq!(
        indexes.touched_by(Changed::AllServices, &reconciler),
        None,
        "nothing registered yet: a whole pass"
    );
    // No Eip: the Service waits for a pool, and the reconciler knows it.
    reconciler.pass(&indexes.snapshot());
    assert!(reconciler.bootstrapped());

    {
        let mut services = indexes.services.write().unwrap();
        services.apply(IndexEvent::Delete(ObjectKey::new(Some("ns"), "waits")));
        for i in 0..=oxelb_runtime::index::MAX_TRACKED_KEYS {
            services.apply(IndexEvent::Apply(view(&format!("s{i:05}"))));
        }
    }
    let changed = indexes.take_changes();
    assert_eq!(changed, Changed::AllServices, "too many to track one by one");
    let touched = indexes.touched_by(changed, &reconciler).unwrap();
    assert_eq!(touched.len(), oxelb_runtime::index::MAX_TRACKED_KEYS + 2);
    assert!(
        touched.contains(&ServiceKey::new("ns", "waits")),
        "a deleted Service the reconciler knows is decided too"
    );
    let mut carry = BTreeSet::new();
    let first = next_touched(Some(touched), &mut carry, MAX_TOUCHED_PER_PASS).unwrap();
    assert_eq!(first.len(), MAX_TOUCHED_PER_PASS, "at most this many a pass");

    let keys = BTreeSet::from([ServiceKey::new("ns", "x")]);
    assert_eq!(
        indexes.touched_by(Changed::Services(keys.clone()), &reconciler),
        Some(keys)
    );
    assert_eq!(indexes.touched_by(Changed::Pools, &reconciler), None);
    indexes
        .namespaces
        .write()
        .unwrap()
        .apply(IndexEvent::Apply(NamespaceView {
            name: "ns".into(),
            labels: Default::default(),
        }));
    assert_eq!(indexes.take_changes(), Changed::Pools);

    // An Eip's status alone (the controller's own write coming back) changes no pool.
    let eip = |address: &str, used: Option<&str>| -> Eip {
        let mut value = serde_json::json!({"apiVersion": "network.kubesphere.io/v1alpha2",
                "kind": "Eip", "metadata": {"name": "pool"}, "spec": {"address": address}});
        if let Some(ip) = used {
            value["status"] = serde_json::json!({"used": {ip: "ns/a"}});
        }
        serde_json::from_value(value).unwrap()
    };
    let apply = |eip: Eip| indexes.eips.write().unwrap().apply(IndexEvent::Apply(eip));
    apply(eip("192.0.2.0/24", None));
    assert_eq!(indexes.take_changes(), Changed::Pools, "a new Eip");
    apply(eip("192.0.2.0/24", Some("192.0.2.1")));
    assert_eq!(
        indexes.take_changes(),
        Changed::Services(BTreeSet::new()),
        "its status alone"
    );
    apply(eip("192.0.2.0/25", Some("192.0.2.1")));
    assert_eq!(indexes.take_changes(), Changed::Pools, "its address");
    indexes
        .eips
        .write()
        .unwrap()
        .apply(IndexEvent::Delete(ObjectKey::new(None, "pool")));
    assert_eq!(indexes.take_changes(), Changed::Pools, "gone");
}
