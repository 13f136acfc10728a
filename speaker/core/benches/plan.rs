//! The cost of one speaker plan (`plan::compute`) over N Services, each with one EndpointSlice
//! on three nodes, half of them `externalTrafficPolicy: Local`, all in one bgp Eip: the shape of
//! `oxelb-scale`'s cluster. Prints, per size, the median and the largest time of a plan; no
//! assertion (figures for issue 16: a burst replans the whole state, paced by the plan's time).
//!
//! `cargo bench -p oxelb-speaker-core --bench plan [SIZES...]` (default 1000 10000 50000). Pure: no
//! socket, no lab. Service IPs come from 198.18.0.0/15 (RFC 2544's benchmarking range).

use std::{net::Ipv4Addr, sync::Arc, time::Instant};

use oxelb_crds::names;
use oxelb_speaker_core::{
    plan::{SpeakerSnapshot, compute},
    view::{self, Interner},
};
use serde_json::json;

/// Plans timed per size.
const ROUNDS: usize = 15;

fn snapshot(n: usize) -> Option<SpeakerSnapshot> {
    let interner = Interner::default();
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let mut services = Vec::with_capacity(n);
    let mut slices = Vec::with_capacity(n);
    for i in 0..n {
        let (ns, name) = (format!("ns{}", i % 10), format!("svc{i}"));
        let ip = Ipv4Addr::from(base + 1 + u32::try_from(i).ok()?);
        let service = json!({"metadata": {"name": name, "namespace": ns,
            "finalizers": [names::SERVICE_FINALIZER]},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": if i % 2 == 0 {"Local"} else {"Cluster"}},
            "status": {"loadBalancer": {"ingress": [{"ip": ip.to_string()}]}}});
        services.push(Arc::new(view::service(serde_json::from_value(service).ok()?)?));
        let endpoints: Vec<_> = (0..3)
            .map(|node| json!({"addresses": ["192.0.2.1"], "nodeName": format!("node-{node}")}))
            .collect();
        let slice = json!({"metadata": {"name": format!("{name}-abcde"), "namespace": ns,
            "labels": {view::SERVICE_NAME_LABEL: name}}, "addressType": "IPv4", "endpoints": endpoints});
        slices.push(Arc::new(view::endpoint_slice(
            serde_json::from_value(slice).ok()?,
            &interner,
        )?));
    }
    let nodes = (0..3)
        .map(|node| {
            let value = json!({"metadata": {"name": format!("node-{node}")},
                "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": format!("198.51.100.{}", node + 1)}]}});
            view::node(serde_json::from_value(value).ok()?)
        })
        .collect::<Option<Vec<_>>>()?;
    let eip = serde_json::from_value(
        json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
        "metadata": {"name": "bench"}, "spec": {"address": "198.18.0.0/15", "protocol": "bgp"}}),
    )
    .ok()?;
    Some(SpeakerSnapshot {
        services,
        nodes,
        endpoint_slices: slices,
        eips: vec![eip],
        namespace: "oxelb-system".into(),
        ..SpeakerSnapshot::default()
    })
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 50_000]
    } else {
        sizes
    };
    println!("| Services | plan median ms | plan max ms | announcements | BGP routes |");
    println!("|---:|---:|---:|---:|---:|");
    for n in sizes {
        let Some(snapshot) = snapshot(n) else {
            eprintln!("{n} Services: the snapshot could not be built");
            continue;
        };
        let mut times = Vec::with_capacity(ROUNDS);
        let mut last = None;
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let state = compute(&snapshot, "node-0");
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            last = Some(state);
        }
        times.sort_by(f64::total_cmp);
        let (announcements, routes) = last.map_or((0, 0), |s| (s.announcements.len(), s.bgp_routes.len()));
        println!(
            "| {n} | {:.1} | {:.1} | {announcements} | {routes} |",
            times[ROUNDS / 2],
            times[ROUNDS - 1]
        );
    }
}
