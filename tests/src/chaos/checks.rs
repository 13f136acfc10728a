//! What a chaos run reads of the cluster to check its invariants (see [`super`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{Cluster, SERVICES};
use crate::scale::rss_mib;

impl Cluster {
    /// The IPs the Services hold, and the Services holding each.
    pub(super) fn holders(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in self.api.list(SERVICES) {
            let name = s["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            if let Some(ingress) = s["status"]["loadBalancer"]["ingress"].as_array() {
                for i in ingress {
                    if let Some(ip) = i["ip"].as_str() {
                        out.entry(ip.to_owned()).or_default().push(name.clone());
                    }
                }
            }
        }
        out
    }

    pub(super) fn rss_all(&self) -> BTreeMap<String, f64> {
        self.speakers
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((format!("speaker-n{}", i + 1), r.as_ref()?.pid)))
            .chain(
                self.controllers
                    .iter()
                    .enumerate()
                    .filter_map(|(j, r)| Some((format!("controller-{j}"), r.as_ref()?.pid))),
            )
            .map(|(name, pid)| (name, rss_mib(pid)))
            .collect()
    }
}

pub(super) fn quiet_problems(cluster: &Cluster, live: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let holders = cluster.holders();
    for (ip, names) in &holders {
        match answerers(cluster, ip) {
            Ok(macs) if macs.len() == 1 => {}
            Ok(macs) => problems.push(format!(
                "{ip} ({}) answered by {} nodes",
                names.join(","),
                macs.len()
            )),
            Err(e) => problems.push(format!("{ip}: {e}")),
        }
    }
    let held: usize = holders.values().map(Vec::len).sum();
    if held < live.len().min(14) {
        problems.push(format!(
            "{} Services, {held} with an IP, the pool holds 14",
            live.len()
        ));
    }
    let eip = cluster.api.list("/apis/network.kubesphere.io/v1alpha2/eips");
    let usage = eip
        .first()
        .and_then(|e| e["status"]["usage"].as_u64())
        .unwrap_or(0);
    if usage != holders.len() as u64 {
        problems.push(format!("Eip usage {usage}, IPs held {}", holders.len()));
    }
    problems
}

/// The MACs that answer one ARP request for `ip` from the client.
fn answerers(cluster: &Cluster, ip: &str) -> Result<BTreeSet<String>, String> {
    let (_, text) = cluster.client.arping("eth0", ip).map_err(|e| e.to_string())?;
    Ok(cluster
        .nodes
        .iter()
        .filter_map(|n| n.mac("eth0").ok())
        .map(|m| m.to_lowercase())
        .filter(|m| text.contains(m))
        .collect())
}
