//! Reconcile-pass benchmark: how long the controller's pure pass takes over many Services, the
//! figure behind `oxelb_reconcile_duration_seconds`. Prints, for 1,000 and 10,000 annotated
//! Services on one default Eip:
//! - the first pass (restart registration of nothing, then every allocation and its writes),
//! - a pass after a restart (every Service already holds an IP in its status: registration only),
//! - a steady pass with nothing to do (what every watch event costs),
//! - a pass after one new Service (the common case), as a whole pass and as a pass over the change.
//!
//! Run with `cargo bench -p oxelb-controller --bench reconcile`. Pure code: no API, no packets.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Service;
use oxelb_controller::{
    handling::Handling,
    reconcile::{Action, Reconciler, Snapshot},
    view::ServiceView,
};
use oxelb_crds::v1alpha2::Eip;
use serde_json::json;

/// A Service as the index holds it: built as the API sends it, then viewed.
fn service(i: usize, ingress: Option<String>) -> Result<Arc<ServiceView>, Box<dyn std::error::Error>> {
    let mut value = json!({
        "metadata": {"name": format!("svc{i}"), "namespace": format!("ns{}", i % 50),
            "resourceVersion": "1",
            "annotations": {"lb.kubesphere.io/v1alpha1": "openelb"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": format!("a{i}")}},
    });
    if let Some(ip) = ingress {
        value["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
        value["metadata"]["finalizers"] = json!(["finalizer.lb.kubesphere.io/v1alpha1"]);
        value["metadata"]["labels"] = json!({"eip.openelb.kubesphere.io/v1alpha2": "pool"});
    }
    let service: Service = serde_json::from_value(value)?;
    Ok(Arc::new(
        ServiceView::of(&service).ok_or("a Service without a key")?,
    ))
}

fn eip() -> Result<Arc<Eip>, serde_json::Error> {
    // 198.18.0.0/16: RFC 2544's benchmarking range (the documentation ranges are /24s). Numbers only.
    serde_json::from_value(json!({
        "apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
        "metadata": {"name": "pool", "resourceVersion": "1",
            "finalizers": ["finalizer.ipam.kubesphere.io/v1alpha1"],
            "annotations": {"eip.openelb.kubesphere.io/is-default-eip": "true"}},
        "spec": {"address": "198.18.0.0/16"},
    }))
    .map(Arc::new)
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("reconcile pass benchmark (one default /16 Eip)");
    for n in [1_000usize, 10_000] {
        let fresh = Snapshot {
            services: (0..n).map(|i| service(i, None)).collect::<Result<_, _>>()?,
            eips: vec![eip()?],
            ..Default::default()
        };
        let mut reconciler = Reconciler::new(Handling::default());
        let (report, first) = timed(|| reconciler.pass(&fresh));
        let writes = report
            .actions
            .iter()
            .filter(|a| !matches!(a, Action::Event(_)))
            .count();

        // The world after those writes: every Service holds its IP in status.
        let assigned = Snapshot {
            services: (0..n)
                .map(|i| {
                    let ip = reconciler
                        .allocator()
                        .assignment(&oxelb_ipam::ServiceKey::new(
                            format!("ns{}", i % 50),
                            format!("svc{i}"),
                        ))
                        .and_then(|a| a.ips.first().map(|a| a.ip.to_string()));
                    service(i, ip)
                })
                .collect::<Result<_, _>>()?,
            ..fresh.clone()
        };
        let mut restarted = Reconciler::new(Handling::default());
        let (report_restart, restart) = timed(|| restarted.pass(&assigned));
        let restart_service_writes = report_restart
            .actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Metadata {
                        target: oxelb_controller::reconcile::Target::Service(_),
                        ..
                    } | Action::Status {
                        target: oxelb_controller::reconcile::Target::Service(_),
                        ..
                    }
                )
            })
            .count();
        // Steady state: take the min of a few runs, the figure least disturbed by the machine.
        let steady = (0..5)
            .map(|_| timed(|| restarted.pass(&assigned)).1)
            .min()
            .unwrap_or_default();
        let mut one_more = assigned.clone();
        one_more.services.push(service(n, None)?);
        let (report_one, one) = timed(|| restarted.pass(&one_more));
        // The same new Service decided as a pass over a change: only it is in the snapshot.
        let key = oxelb_ipam::ServiceKey::new(format!("ns{}", (n + 1) % 50), format!("svc{}", n + 1));
        let change = Snapshot {
            services: vec![service(n + 1, None)?],
            touched: Some(BTreeSet::from([key])),
            ..assigned.clone()
        };
        let (report_change, change_time) = timed(|| restarted.pass(&change));

        println!(
            "services={n:>6}  first pass {:>8.2} ms ({writes} writes)  after restart {:>8.2} ms ({restart_service_writes} Service writes)  steady {:>8.2} ms  one new Service {:>8.2} ms ({} actions)  as a pass over the change {:>8.3} ms ({} actions)",
            first.as_secs_f64() * 1e3,
            restart.as_secs_f64() * 1e3,
            steady.as_secs_f64() * 1e3,
            one.as_secs_f64() * 1e3,
            report_one.actions.len(),
            change_time.as_secs_f64() * 1e3,
            report_change.actions.len(),
        );
    }
    Ok(())
}
