//! The layer2 responder: answers ARP and Neighbor Solicitations for exactly the IPs this node wins,
//! announces them on take-over (gratuitous ARP in the request form and unsolicited NA, repeated),
//! and stops answering an IP the moment it loses it.
//!
//! **Liveness**: with heartbeats on (`--heartbeat-key-file`, [`super::heartbeat`]) a speaker is alive
//! while its heartbeats arrive (dead after 400 ms of silence), each candidate's pools are the ones
//! its heartbeats list, and a speaker without standing (no majority, see [`crate::liveness`]) answers
//! nothing. The whole choice is re-evaluated every 100 ms. Without heartbeats a speaker counts as
//! alive while its Node is Ready, and every node is assumed to have each pool's interface: failover
//! is then as slow as the Node turning NotReady.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::{Arc, RwLock},
    time::Duration,
};

use oxelb_crds::v1alpha2::EipProtocol;
use tokio::{sync::watch, task::JoinHandle};
use tracing::{debug, info, warn};

use super::{frames, socket::PacketSocket};
use crate::{
    election::{Candidate, Contest, announced_by, elect},
    interface::{Nic, resolve},
    liveness::Standing,
    planner::SpeakerState,
};

/// When a take-over is announced, after the take-over (RFC 5227's announce spacing is 2 s; clients
/// with a fresh entry ignore some repeats within their 1 s locktime, so there are several).
const ANNOUNCE_AT: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(3),
];

/// What the heartbeats say about the other speakers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerView {
    /// The speakers alive, this one included.
    pub alive: BTreeSet<String>,
    /// The pools each live peer can serve.
    pub serving: BTreeMap<String, BTreeSet<String>>,
}

/// The IPs this node must answer for, with their pool (pure). `my_pools` are the layer2/vip pools
/// whose interface this node has; `view` what heartbeats say (`None`: heartbeats off).
pub fn my_ips(
    state: &SpeakerState,
    me: &str,
    my_pools: &BTreeSet<String>,
    view: Option<&PeerView>,
) -> BTreeMap<IpAddr, String> {
    let layer2: BTreeMap<IpAddr, &crate::desired::Announcement> = state
        .announcements
        .iter()
        .filter(|(_, a)| matches!(a.protocol, EipProtocol::Layer2 | EipProtocol::Vip))
        .map(|(ip, a)| (*ip, a))
        .collect();
    let all_pools: BTreeSet<String> = layer2.values().map(|a| a.pool.clone()).collect();
    let candidates: Vec<Candidate> = state
        .nodes
        .iter()
        .map(|n| Candidate {
            name: n.name.clone(),
            alive: match view {
                Some(view) => n.name == me || view.alive.contains(&n.name),
                None => n.ready,
            },
            ready: n.ready && !n.network_unavailable,
            excluded: n.excluded,
            pools: if n.name == me {
                my_pools.clone()
            } else {
                match view {
                    Some(view) => view.serving.get(&n.name).cloned().unwrap_or_default(),
                    None => all_pools.clone(),
                }
            },
        })
        .collect();
    let contests: Vec<Contest> = layer2
        .values()
        .map(|a| Contest {
            ip: a.ip,
            pool: a.pool.clone(),
            local_nodes: a.local_nodes.clone(),
        })
        .collect();
    let outcomes = elect(&candidates, &contests);
    announced_by(&outcomes, me)
        .into_iter()
        .filter_map(|ip| Some((ip, layer2.get(&ip)?.pool.clone())))
        .collect()
}

/// One NIC's responder: its sockets' tasks and the IPs it answers for.
struct Responder {
    nic: Nic,
    served: Arc<RwLock<BTreeSet<IpAddr>>>,
    tasks: Vec<JoinHandle<()>>,
    v6: Option<Arc<PacketSocket>>,
    arp: Arc<PacketSocket>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Runs the responders of this node until the state channel closes. `heartbeat`: the UDP port and
/// shared key of the heartbeats (`None`: off).
pub async fn run(
    mut states: watch::Receiver<Arc<SpeakerState>>,
    node_name: String,
    heartbeat: Option<(u16, Vec<u8>)>,
) {
    let (serving_tx, serving_rx) = watch::channel(BTreeSet::new());
    let liveness = match heartbeat {
        Some((port, key)) => {
            match super::heartbeat::start(node_name.clone(), port, key, states.clone(), serving_rx).await {
                Ok(liveness) => Some(liveness),
                Err(error) => {
                    warn!(port, %error, "cannot bind the heartbeat port: layer2 liveness falls back to Node readiness");
                    None
                }
            }
        }
        None => None,
    };
    let mut responders: BTreeMap<String, Responder> = BTreeMap::new();
    let mut warned: BTreeMap<String, String> = BTreeMap::new();
    let mut standing_lost = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            changed = states.changed() => if changed.is_err() { break },
            _ = tick.tick(), if liveness.is_some() => {}
        }
        let state = states.borrow_and_update().clone();
        // This node's NIC for each layer2 pool.
        let mut nics: BTreeMap<String, Nic> = BTreeMap::new();
        for a in state
            .announcements
            .values()
            .filter(|a| matches!(a.protocol, EipProtocol::Layer2 | EipProtocol::Vip))
        {
            let Some(Ok(selector)) = &a.interface else {
                continue;
            };
            match resolve(selector, std::path::Path::new("/")) {
                Ok(nic) => {
                    warned.remove(&a.pool);
                    nics.insert(a.pool.clone(), nic);
                }
                Err(error) => {
                    let message = error.to_string();
                    if warned.get(&a.pool) != Some(&message) {
                        warn!(eip = %a.pool, %error, "layer2 interface unusable on this node: its IPs are not answered here");
                        warned.insert(a.pool.clone(), message);
                    }
                }
            }
        }
        let my_pools: BTreeSet<String> = nics.keys().cloned().collect();
        serving_tx.send_if_modified(|s| {
            let changed = *s != my_pools;
            *s = my_pools.clone();
            changed
        });
        let view = liveness.as_ref().map(|l| PeerView {
            alive: l.alive(),
            serving: l.serving(),
        });
        let mut mine = my_ips(&state, &node_name, &my_pools, view.as_ref());
        if let Some(liveness) = &liveness {
            let expected: BTreeSet<String> = state
                .nodes
                .iter()
                .filter(|n| n.ready && !n.network_unavailable && !n.excluded)
                .map(|n| n.name.clone())
                .collect();
            match liveness.standing(&expected) {
                Standing::Good { .. } => {
                    if standing_lost {
                        info!("standing regained: answering again");
                    }
                    standing_lost = false;
                }
                Standing::Lost { seen, needed } => {
                    if !standing_lost {
                        warn!(
                            seen,
                            needed,
                            "lost standing (sees no majority of the speakers): answering nothing until it returns"
                        );
                    }
                    standing_lost = true;
                    mine.clear();
                }
            }
        }
        let mut by_nic: BTreeMap<String, (Nic, BTreeSet<IpAddr>)> = BTreeMap::new();
        for (ip, pool) in &mine {
            if let Some(nic) = nics.get(pool) {
                by_nic
                    .entry(nic.name.clone())
                    .or_insert_with(|| (nic.clone(), BTreeSet::new()))
                    .1
                    .insert(*ip);
            }
        }
        // A NIC with nothing left to answer for: stop answering everything on it, then close it.
        let idle: Vec<String> = responders
            .keys()
            .filter(|name| !by_nic.contains_key(*name))
            .cloned()
            .collect();
        for name in idle {
            if let Some(mut responder) = responders.remove(&name) {
                responder.update(BTreeSet::new());
                info!(interface = %name, "no IP to answer for: layer2 sockets closed");
            }
        }
        for (name, (nic, ips)) in by_nic {
            if !responders.contains_key(&name) {
                match Responder::start(nic.clone()) {
                    Ok(responder) => {
                        responders.insert(name.clone(), responder);
                    }
                    Err(error) => {
                        warn!(interface = %name, %error, "cannot open layer2 sockets: its IPs are not answered");
                        continue;
                    }
                }
            }
            if let Some(responder) = responders.get_mut(&name) {
                responder.update(ips);
            }
        }
    }
}

impl Responder {
    fn start(nic: Nic) -> Result<Self, super::socket::SocketError> {
        let arp = Arc::new(PacketSocket::arp(nic.index)?);
        let v6 = match PacketSocket::neighbor_solicitation(nic.index) {
            Ok(socket) => Some(Arc::new(socket)),
            Err(error) => {
                warn!(interface = %nic.name, %error, "no IPv6 neighbor socket: IPv6 IPs are not answered here");
                None
            }
        };
        let served: Arc<RwLock<BTreeSet<IpAddr>>> = Arc::default();
        let mac = frames::MacAddr::from(nic.mac);
        let mut tasks = vec![tokio::spawn(answer(arp.clone(), served.clone(), mac))];
        if let Some(v6) = &v6 {
            tasks.push(tokio::spawn(answer(v6.clone(), served.clone(), mac)));
        }
        info!(interface = %nic.name, "answering ARP/NDP");
        Ok(Self {
            nic,
            served,
            tasks,
            v6,
            arp,
        })
    }

    /// Answers exactly `ips` from now on; announces the new ones.
    fn update(&mut self, ips: BTreeSet<IpAddr>) {
        let previous = std::mem::replace(
            &mut *self.served.write().unwrap_or_else(|e| e.into_inner()),
            ips.clone(),
        );
        let mac = frames::MacAddr::from(self.nic.mac);
        for lost in previous.difference(&ips) {
            info!(ip = %lost, interface = %self.nic.name, "stopped answering (lost or released)");
            if let (IpAddr::V6(v6), Some(socket)) = (lost, &self.v6) {
                let _ = socket.leave(frames::solicited_node_mac(*v6));
            }
        }
        for won in ips.difference(&previous) {
            info!(ip = %won, interface = %self.nic.name, "announcing from this node");
            let frame = match won {
                IpAddr::V4(v4) => frames::gratuitous_arp(*v4, mac),
                IpAddr::V6(v6) => {
                    if let Some(socket) = &self.v6
                        && let Err(error) = socket.join(frames::solicited_node_mac(*v6))
                    {
                        warn!(ip = %won, %error, "cannot join the solicited-node group: NS to it are not seen");
                    }
                    frames::unsolicited_neighbor_advertisement(*v6, mac)
                }
            };
            let socket = match won {
                IpAddr::V4(_) => Some(self.arp.clone()),
                IpAddr::V6(_) => self.v6.clone(),
            };
            let (Some(socket), served, ip) = (socket, self.served.clone(), *won) else {
                continue;
            };
            self.tasks.push(tokio::spawn(async move {
                let start = tokio::time::Instant::now();
                for at in ANNOUNCE_AT {
                    tokio::time::sleep_until(start + at).await;
                    // Stop at once when the IP is lost meanwhile.
                    if !served.read().unwrap_or_else(|e| e.into_inner()).contains(&ip) {
                        return;
                    }
                    if let Err(error) = socket.send(&frame).await {
                        debug!(%ip, %error, "announcement not sent");
                    }
                }
            }));
        }
        self.tasks.retain(|t| !t.is_finished());
    }
}

/// Answers requests for served IPs on one socket.
async fn answer(socket: Arc<PacketSocket>, served: Arc<RwLock<BTreeSet<IpAddr>>>, mac: frames::MacAddr) {
    let mut buf = vec![0u8; 2048];
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            Err(error) => {
                warn!(%error, "layer2 socket receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(frame) = buf.get(..n) else { continue };
        let reply = match frames::parse(frame) {
            Ok(frames::Request::Arp(request))
                if served
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&IpAddr::V4(request.target_ip)) =>
            {
                frames::arp_reply(&request, mac)
            }
            Ok(frames::Request::NeighborSolicitation(ns))
                if served
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&IpAddr::V6(ns.target)) =>
            {
                frames::neighbor_advertisement(&ns, mac)
            }
            _ => continue,
        };
        if let Err(error) = socket.send(&reply).await {
            debug!(%error, "layer2 reply not sent");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;

    use super::*;
    use crate::{desired::Announcement, node::NodeFacts};

    fn node(name: &str, ready: bool) -> NodeFacts {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}))
        .unwrap();
        NodeFacts::of(&n)
    }

    fn state(nodes: Vec<NodeFacts>, protocol: EipProtocol) -> SpeakerState {
        let ip: IpAddr = "192.0.2.50".parse().unwrap();
        SpeakerState {
            nodes,
            announcements: [(
                ip,
                Announcement {
                    ip,
                    pool: "l2".into(),
                    protocol,
                    interface: None,
                    services: vec!["default/web".into()],
                    local_nodes: None,
                },
            )]
            .into(),
            ..SpeakerState::default()
        }
    }

    #[test]
    fn exactly_one_node_answers_and_only_for_layer2_ips() {
        let pools: BTreeSet<String> = ["l2".to_owned()].into();
        let s = state(
            vec![node("n1", true), node("n2", true), node("n3", true)],
            EipProtocol::Layer2,
        );
        let winners: Vec<&str> = ["n1", "n2", "n3"]
            .into_iter()
            .filter(|me| !my_ips(&s, me, &pools, None).is_empty())
            .collect();
        assert_eq!(winners.len(), 1, "{winners:?}");
        // The winner going NotReady moves the IP to exactly one other node.
        let down: Vec<NodeFacts> = ["n1", "n2", "n3"]
            .into_iter()
            .map(|n| node(n, n != winners[0]))
            .collect();
        let s2 = state(down, EipProtocol::Layer2);
        let next: Vec<&str> = ["n1", "n2", "n3"]
            .into_iter()
            .filter(|me| !my_ips(&s2, me, &pools, None).is_empty())
            .collect();
        assert_eq!(next.len(), 1);
        assert_ne!(next[0], winners[0]);
        // A node without the pool's interface never answers; BGP IPs are not layer2's.
        assert!(my_ips(&s, winners[0], &BTreeSet::new(), None).is_empty());
        let bgp = state(vec![node("n1", true)], EipProtocol::Bgp);
        assert!(my_ips(&bgp, "n1", &pools, None).is_empty());
        let vip = state(vec![node("n1", true)], EipProtocol::Vip);
        assert_eq!(
            my_ips(&vip, "n1", &pools, None).len(),
            1,
            "vip is announced like layer2"
        );
    }
}
