//! What a rolling update costs the traffic (issue 15's upgrade notes): the demo topology
//! (`examples/lab/`: an FRR router, three nodes with speakers, a LAN client and a routed client, the
//! controller), and in alternating rounds one component replaced the way a DaemonSet or Deployment
//! rollout replaces a pod: SIGTERM, 2 s without it (the new pod starting), the new process.
//! Meanwhile a client sends an HTTP GET every 10 ms (100 ms timeout) to the Service IP concerned.
//!
//! - `layer2`: the speaker answering the layer2 IP is replaced; the IP moves to another node, and
//!   back when the new speaker has settled (the winner is a hash of node and IP).
//! - `bgp`: the speaker of the node the routed client's traffic reaches is replaced (the lab's
//!   BgpPeer has graceful restart on, as examples/lab/bgppeer-router.yaml says).
//! - `controller`: the controller is replaced while a new Service waits; the data plane must not
//!   notice, and the new Service's IP comes once the new controller has synced.
//!
//! Prints every round and the medians and maxima. Needs root (network namespaces) and the release
//! binaries: `cargo build --release -p oxelb-controller -p oxelb-speaker -p oxelb-tests --bins`, then
//! `cargo bench -p oxelb-tests --bench rolling_update`. Addresses: 192.0.2.0/24, 198.51.100.0/24,
//! 203.0.113.0/24, inside the lab only.

use std::time::{Duration, SystemTime};

use oxelb_tests::{
    cluster::{Binaries, LabCluster, NODES, ProbeLog},
    lab::{LabError, lab_or_skip},
    workspace_root,
};

const ROUNDS: usize = 5;
/// How long a replaced pod is away.
const AWAY: Duration = Duration::from_secs(2);
/// How long each probe runs (s).
const PROBE_SECONDS: u64 = 10;

/// One round's figures.
#[derive(Debug)]
struct Round {
    failed: usize,
    sent: usize,
    longest_gap: Duration,
    /// Pauses between answers longer than 50 ms.
    gaps: Vec<u64>,
    /// The nodes that answered, in order, repeats merged.
    answerers: Vec<String>,
}

fn round_of(log: &ProbeLog) -> Round {
    let answers: Vec<(u64, &str)> = log
        .attempts
        .iter()
        .filter_map(|(ms, node)| node.as_deref().map(|n| (*ms, n)))
        .collect();
    let mut answerers: Vec<String> = Vec::new();
    for (_, node) in &answers {
        if answerers.last().map(String::as_str) != Some(*node) {
            answerers.push((*node).to_owned());
        }
    }
    Round {
        failed: log.failed(),
        sent: log.sent(),
        longest_gap: log.longest_gap(),
        gaps: answers
            .windows(2)
            .map(|w| w[1].0.saturating_sub(w[0].0))
            .filter(|gap| *gap > 50)
            .collect(),
        answerers,
    }
}

/// Prints one speaker round and returns its figures.
fn report(round: usize, kind: &str, node: usize, log: &ProbeLog) -> Round {
    let r = round_of(log);
    println!(
        "round {round} {kind}: speaker on {} replaced: {} of {} probes failed, longest pause {} ms, pauses > 50 ms {:?}, answered by {:?}",
        NODES[node].0,
        r.failed,
        r.sent,
        r.longest_gap.as_millis(),
        r.gaps,
        r.answerers
    );
    r
}

fn binaries() -> Result<Binaries, LabError> {
    Binaries::for_test(env!("CARGO_BIN_EXE_oxelb-lab"))
}

fn node_index(name: &str) -> Result<usize, LabError> {
    NODES
        .iter()
        .position(|(n, _)| *n == name)
        .ok_or_else(|| LabError::Command {
            command: "find node".into(),
            status: "unknown".into(),
            stderr: format!("no node {name}"),
        })
}

fn replace_speaker(cluster: &mut LabCluster, i: usize) -> Result<(), LabError> {
    cluster.stop_speaker(i)?;
    std::thread::sleep(AWAY);
    cluster.start_speaker(i)
}

/// A Service created while the controller is away (a new name each round: a status file outlives
/// its object in the `dir:` source).
fn waiting(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    lb.kubesphere.io/v1alpha1: openelb\n    eip.openelb.kubesphere.io/v1alpha2: lab-layer2\nspec:\n  type: LoadBalancer\n  ports: [{{name: http, port: 80, protocol: TCP}}]\n"
    )
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn main() -> Result<(), LabError> {
    let Some(lab) = lab_or_skip("rolling update benchmark")? else {
        return Ok(());
    };
    let mut cluster = LabCluster::build(lab, binaries()?, &workspace_root().join("examples/lab"))?;
    cluster.start_all()?;
    let layer2 = cluster.wait_service_ips("default", "web-layer2")?[0].clone();
    let bgp = cluster.wait_service_ips("default", "web-bgp")?[0].clone();
    let all: Vec<&str> = NODES.iter().map(|(_, ip)| *ip).collect();
    cluster.wait_next_hops(&bgp, &all)?;
    let lan = cluster.lan_client.clone();
    let routed = cluster.routed_client.clone();
    cluster.wait_reachable(&lan, &layer2)?;
    cluster.wait_reachable(&routed, &bgp)?;
    // Heartbeats settle before the first round.
    std::thread::sleep(Duration::from_secs(2));

    let mut results: Vec<(&str, Round)> = Vec::new();
    let mut allocation_ms = Vec::new();
    for round in 1..=ROUNDS {
        // layer2: the answering node's speaker is replaced.
        let winner = cluster.layer2_answerer(&layer2)?;
        let log = cluster.probe_while(&lan, &layer2, PROBE_SECONDS, |c| replace_speaker(c, winner))?;
        results.push(("layer2", report(round, "layer2", winner, &log)));
        std::thread::sleep(Duration::from_secs(2));

        // bgp: the speaker of the node carrying the routed client's traffic is replaced.
        let carrier = cluster.wait_reachable(&routed, &bgp)?;
        let i = node_index(carrier.trim())?;
        let log = cluster.probe_while(&routed, &bgp, PROBE_SECONDS, |c| replace_speaker(c, i))?;
        results.push(("bgp", report(round, "bgp", i, &log)));
        cluster.wait_next_hops(&bgp, &all)?;
        std::thread::sleep(Duration::from_secs(2));

        // controller: replaced while a new Service waits for an IP.
        let name = format!("during-update-{round}");
        let mut restarted = SystemTime::now();
        let log = cluster.probe_while(&lan, &layer2, PROBE_SECONDS, |c| {
            c.stop_controller();
            c.put_object(&format!("{name}.yaml"), &waiting(&name))?;
            std::thread::sleep(AWAY);
            restarted = SystemTime::now();
            c.start_controller()
        })?;
        cluster.wait_service_ips("default", &name)?;
        // When the controller wrote the IP: the status file's modification time (the dir source
        // writes it once per write).
        let status = cluster
            .objects()
            .join(format!("status/services.core/default/{name}.yaml"));
        let written = std::fs::metadata(&status)
            .and_then(|m| m.modified())
            .map_err(|source| LabError::Io { path: status, source })?;
        let since = written.duration_since(restarted).unwrap_or_default();
        let r = round_of(&log);
        println!(
            "round {round} controller replaced: {} of {} layer2 probes failed, longest pause {} ms; the waiting Service had its IP {} ms after the new controller started",
            r.failed,
            r.sent,
            r.longest_gap.as_millis(),
            since.as_millis()
        );
        allocation_ms.push(u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        results.push(("controller", r));
        cluster.remove_object(&format!("{name}.yaml"))?;
        std::thread::sleep(Duration::from_secs(2));
    }

    for kind in ["layer2", "bgp", "controller"] {
        let rounds: Vec<&Round> = results
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, r)| r)
            .collect();
        let failed: Vec<u64> = rounds.iter().map(|r| r.failed as u64).collect();
        let gaps: Vec<u64> = rounds
            .iter()
            .map(|r| u64::try_from(r.longest_gap.as_millis()).unwrap_or(u64::MAX))
            .collect();
        println!(
            "{kind:>10}: {} rounds, failed probes median {} max {}, longest pause median {} ms max {} ms",
            rounds.len(),
            median(failed.clone()),
            failed.iter().max().unwrap_or(&0),
            median(gaps.clone()),
            gaps.iter().max().unwrap_or(&0)
        );
    }
    println!(
        "controller: the waiting Service's IP {} ms (median) after the new controller's start",
        median(allocation_ms)
    );
    Ok(())
}
