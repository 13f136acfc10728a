//! One NIC's responder: answers ARP requests and Neighbor Solicitations for the IPs it is given,
//! announces each newly given IP (gratuitous ARP and unsolicited NA, repeated), and notices
//! another MAC claiming one of them. Which IPs it is given is decided elsewhere
//! ([`oxelb_speaker_core::layer2`], by the announcer).
//!
//! With heartbeats on, the announcer's decision holds only until a deadline it renews every
//! heartbeat interval ([`Responder::renew`]): a speaker whose process was frozen (SIGSTOP, a VM
//! paused, a node starved of CPU) longer than the detection time may have lost its IPs to a peer
//! meanwhile, and must not answer a request queued during the freeze before its announcer has
//! looked at the peers again.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::{
    layer2::{frames, interface::Nic, metrics::Layer2Metrics},
    sys::packet::{PacketSocket, SocketError},
};

/// When a take-over is announced, after the take-over (RFC 5227's announce spacing is 2 s; clients
/// with a fresh entry ignore some repeats within their 1 s locktime, so there are several).
const ANNOUNCE_AT: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(3),
];

/// An ARP frame in which another MAC claims an IP we answer for: a reply (RFC 826 operation 2) or a
/// gratuitous ARP. Reads the sender fields of a reply directly (bounds-checked): the request parser
/// only describes requests.
pub fn foreign_claim(
    frame: &[u8],
    served: &BTreeSet<IpAddr>,
    ours: frames::MacAddr,
) -> Option<(IpAddr, frames::MacAddr)> {
    let (mac, ip) = match frames::parse(frame) {
        Err(frames::Ignored::GratuitousArp { sender_mac, ip }) => (sender_mac, ip),
        Err(frames::Ignored::ArpNotRequest(2)) => {
            let m = frame.get(22..28)?;
            let i = frame.get(28..32)?;
            (
                frames::MacAddr(m[0], m[1], m[2], m[3], m[4], m[5]),
                std::net::Ipv4Addr::new(i[0], i[1], i[2], i[3]),
            )
        }
        _ => return None,
    };
    (mac != ours && served.contains(&IpAddr::V4(ip))).then_some((IpAddr::V4(ip), mac))
}

/// One NIC's responder: its sockets' tasks and the IPs it answers for.
pub(super) struct Responder {
    nic: Nic,
    served: Arc<RwLock<BTreeSet<IpAddr>>>,
    valid_until: Arc<RwLock<Option<Instant>>>,
    tasks: Vec<JoinHandle<()>>,
    v6: Option<Arc<PacketSocket>>,
    arp: Arc<PacketSocket>,
    metrics: Layer2Metrics,
}

impl Drop for Responder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Responder {
    pub(super) fn start(nic: Nic, metrics: Layer2Metrics) -> Result<Self, SocketError> {
        let arp = Arc::new(PacketSocket::arp(nic.index)?);
        let v6 = match PacketSocket::neighbor_solicitation(nic.index) {
            Ok(socket) => Some(Arc::new(socket)),
            Err(error) => {
                warn!(interface = %nic.name, %error, "no IPv6 neighbor socket: IPv6 IPs are not answered here");
                None
            }
        };
        let served: Arc<RwLock<BTreeSet<IpAddr>>> = Arc::default();
        let valid_until: Arc<RwLock<Option<Instant>>> = Arc::default();
        let mac = frames::MacAddr::from(nic.mac);
        let mut tasks = vec![tokio::spawn(answer(
            arp.clone(),
            Answering {
                served: served.clone(),
                valid_until: valid_until.clone(),
            },
            mac,
            metrics.clone(),
        ))];
        if let Some(v6) = &v6 {
            tasks.push(tokio::spawn(answer(
                v6.clone(),
                Answering {
                    served: served.clone(),
                    valid_until: valid_until.clone(),
                },
                mac,
                metrics.clone(),
            )));
        }
        info!(interface = %nic.name, "answering ARP/NDP");
        Ok(Self {
            nic,
            served,
            valid_until,
            tasks,
            v6,
            arp,
            metrics,
        })
    }

    /// The IPs answered now.
    pub(super) fn served(&self) -> BTreeSet<IpAddr> {
        self.served.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The decision holds until `until` (`None`: until the next update, heartbeats off): past it,
    /// nothing is answered or announced until the next renewal.
    pub(super) fn renew(&self, until: Option<Instant>) {
        *self.valid_until.write().unwrap_or_else(|e| e.into_inner()) = until;
    }

    /// Answers exactly `ips` from now on; announces the new ones.
    pub(super) fn update(&mut self, ips: BTreeSet<IpAddr>) {
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
            let (Some(socket), served, ip, metrics) = (
                socket,
                Answering {
                    served: self.served.clone(),
                    valid_until: self.valid_until.clone(),
                },
                *won,
                self.metrics.clone(),
            ) else {
                continue;
            };
            self.tasks.push(tokio::spawn(async move {
                let start = tokio::time::Instant::now();
                for at in ANNOUNCE_AT {
                    tokio::time::sleep_until(start + at).await;
                    // Stop at once when the IP is lost meanwhile; skip a repeat while the
                    // decision is past its deadline (a frozen process).
                    if !served.ips().contains(&ip) {
                        return;
                    }
                    if !served.valid() {
                        continue;
                    }
                    match socket.send(&frame).await {
                        Ok(()) => {
                            metrics.announcements.inc();
                        }
                        Err(error) => debug!(%ip, %error, "announcement not sent"),
                    }
                }
            }));
        }
        self.tasks.retain(|t| !t.is_finished());
    }
}

/// What a responder's tasks share: the IPs to answer and until when the decision holds.
#[derive(Clone)]
struct Answering {
    served: Arc<RwLock<BTreeSet<IpAddr>>>,
    valid_until: Arc<RwLock<Option<Instant>>>,
}

impl Answering {
    fn ips(&self) -> BTreeSet<IpAddr> {
        self.served.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn valid(&self) -> bool {
        self.valid_until
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|until| Instant::now() < until)
    }
}

/// Answers requests for served IPs on one socket while the decision holds; warns (at most every
/// 10 s per IP and MAC) when another MAC claims one of them.
async fn answer(socket: Arc<PacketSocket>, served: Answering, mac: frames::MacAddr, metrics: Layer2Metrics) {
    let mut buf = vec![0u8; 2048];
    let mut warned: BTreeMap<(IpAddr, frames::MacAddr), tokio::time::Instant> = BTreeMap::new();
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
        let current = served.ips();
        let (ip, reply) = match frames::parse(frame) {
            Ok(frames::Request::Arp(request)) if current.contains(&IpAddr::V4(request.target_ip)) => {
                (IpAddr::V4(request.target_ip), frames::arp_reply(&request, mac))
            }
            Ok(frames::Request::NeighborSolicitation(ns)) if current.contains(&IpAddr::V6(ns.target)) => {
                (IpAddr::V6(ns.target), frames::neighbor_advertisement(&ns, mac))
            }
            _ => {
                if let Some((ip, other)) = foreign_claim(frame, &current, mac) {
                    metrics.foreign.inc();
                    let now = tokio::time::Instant::now();
                    if warned
                        .get(&(ip, other))
                        .is_none_or(|at| now.duration_since(*at) > Duration::from_secs(10))
                    {
                        warn!(%ip, other_mac = %other, our_mac = %mac,
                            "another MAC claims an IP this node answers for: split brain, or kube-proxy in IPVS mode without strictARP (arp_ignore=1, arp_announce=2)");
                        warned.insert((ip, other), now);
                    }
                }
                continue;
            }
        };
        metrics.requests.get_or_create(&Layer2Metrics::family(ip)).inc();
        if !served.valid() {
            debug!(%ip, "request not answered: this node's decision is past its deadline (was the process frozen?)");
            continue;
        }
        match socket.send(&reply).await {
            Ok(()) => {
                metrics.replies.get_or_create(&Layer2Metrics::family(ip)).inc();
            }
            Err(error) => debug!(%error, "layer2 reply not sent"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
