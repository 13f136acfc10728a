//! Heartbeats on the wire: the UDP adapter around [`crate::liveness`]. Every
//! [`LivenessConfig::interval`] this speaker sends an authenticated heartbeat (with the layer2 pools
//! it can serve) to every other node's IPv4 InternalIP, and it records the ones it receives. The
//! responder asks [`Liveness`] who is alive, what they serve, and whether this speaker has standing.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{net::UdpSocket, sync::watch, time::Instant};
use tracing::{debug, info, warn};

use crate::{
    liveness::{
        Heartbeat, HeartbeatKey, LivenessConfig, Membership, SettleGate, Standing, decode, encode, name_hash,
    },
    planner::SpeakerState,
};

/// The shared view of the other speakers, fed by the receiver.
#[derive(Clone)]
pub struct Liveness {
    membership: Arc<Mutex<Membership>>,
    gate: Arc<Mutex<SettleGate>>,
    origin: Instant,
}

impl Liveness {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The speakers alive now, this one included.
    pub fn alive(&self) -> BTreeSet<String> {
        let now = self.now();
        self.membership
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .alive(now)
    }

    /// The pools each live peer can serve.
    pub fn serving(&self) -> BTreeMap<String, BTreeSet<String>> {
        let now = self.now();
        self.membership
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .serving(now)
    }

    /// Whether this speaker may answer, given the speakers expected to run.
    pub fn standing(&self, expected: &BTreeSet<String>) -> Standing {
        let now = self.now();
        // The dir source and the apiserver watch are both "reachable" while the process runs; a
        // real apiserver-reachability signal is a later refinement (two-node clusters only).
        self.membership
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .standing(now, expected, true)
    }

    /// Whether this speaker may answer now, given whether it has standing: only once it has held
    /// standing for one `dead_after` (see [`SettleGate`]).
    pub fn settled(&self, standing: bool) -> bool {
        let now = self.now();
        self.gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .open(now, standing)
    }
}

/// Binds the heartbeat port and starts sending and receiving; returns the shared view.
pub async fn start(
    node_name: String,
    port: u16,
    key: Vec<u8>,
    states: watch::Receiver<Arc<SpeakerState>>,
    serving: watch::Receiver<BTreeSet<String>>,
) -> std::io::Result<Liveness> {
    let config = LivenessConfig::default();
    let socket = Arc::new(UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port))).await?);
    let liveness = Liveness {
        membership: Arc::new(Mutex::new(Membership::new(node_name.clone(), config))),
        gate: Arc::new(Mutex::new(SettleGate::new(config.dead_after))),
        origin: Instant::now(),
    };
    let key = Arc::new(HeartbeatKey::new(&key));
    info!(
        port,
        interval_ms = config.interval.as_millis() as u64,
        dead_after_ms = config.dead_after.as_millis() as u64,
        "heartbeats on"
    );
    // Sender.
    {
        let socket = socket.clone();
        let key = key.clone();
        let liveness = liveness.clone();
        tokio::spawn(async move {
            let incarnation = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let mut seq = 0u64;
            let mut tick = tokio::time::interval(config.interval);
            loop {
                tick.tick().await;
                let state = states.borrow().clone();
                let hears = {
                    let now = liveness.now();
                    liveness
                        .membership
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .hearing(now)
                        .iter()
                        .map(|n| name_hash(n))
                        .collect()
                };
                let beat = Heartbeat {
                    node: node_name.clone(),
                    incarnation,
                    seq,
                    serving: serving.borrow().clone(),
                    hears,
                };
                seq += 1;
                let bytes = match encode(&beat, &key) {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        warn!(%error, "heartbeat not sent");
                        continue;
                    }
                };
                for node in state.nodes.iter().filter(|n| n.name != node_name) {
                    if let Some(ip @ IpAddr::V4(_)) = node.internal_ips.first().copied() {
                        let _ = socket.send_to(&bytes, SocketAddr::new(ip, port)).await;
                    }
                }
            }
        });
    }
    // Receiver.
    {
        let liveness = liveness.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                match buf.get(..n).map(|d| decode(d, &key)) {
                    Some(Ok(beat)) => {
                        let now = liveness.now();
                        liveness
                            .membership
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .heard(&beat, now);
                    }
                    Some(Err(error)) => debug!(%from, %error, "heartbeat ignored"),
                    None => {}
                }
            }
        });
    }
    Ok(liveness)
}
