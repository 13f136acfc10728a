//! The speaker's Lease: the apiserver side of the two-node layer2 tie-break ([`oxelb_speaker_core::tiebreak`]
//! decides; this is the thin adapter). While the layer2 announcer says it has exactly one peer to
//! break ties with ([`Leases::track`]), a task renews this speaker's Lease
//! (`coordination.k8s.io/v1`, `oxelb-speaker-<node>` in the speaker's namespace) every
//! [`LeaseTiming::renew_every`] and reads the peer's, each request bounded by
//! [`LeaseTiming::request_timeout`]. A successful renewal is this speaker's proof that it reaches the
//! apiserver; the peer's Lease content is compared by this speaker's own clock only.
//!
//! Requests are made only while they matter (layer2 in use and exactly two expected speakers): a
//! large cluster makes no Lease traffic at all; a two-node cluster makes two requests per node per
//! period (5 per second at the defaults).
//!
//! With the `dir:` source the "apiserver" is the directory: Leases are files
//! `PATH/.leases/<namespace>/oxelb-speaker-<node>.yaml` (hidden, so the source does not read them as
//! manifests), written atomically (a temporary file `<name>.tmp`, then a rename), so the labs run
//! the same logic.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use tokio::{
    sync::{Notify, watch},
    time::Instant,
};
use tracing::{debug, info, warn};

use oxelb_speaker_core::tiebreak::{ApiFacts, LeaseTiming, PeerLease, Reach};

/// The Lease name of `node`'s speaker.
pub fn lease_name(node: &str) -> String {
    format!("oxelb-speaker-{node}")
}

/// Where Leases live.
#[derive(Clone)]
pub enum LeaseStore {
    /// The Kubernetes API, in `namespace`.
    Kube {
        /// The client.
        client: Client,
        /// The speakers' namespace.
        namespace: String,
    },
    /// Files under `PATH/.leases/<namespace>/` of a `dir:` source.
    Dir {
        /// `PATH/.leases/<namespace>`.
        dir: PathBuf,
    },
}

/// Why a Lease request failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The apiserver refused or could not be reached.
    #[error("apiserver: {0}")]
    Kube(#[from] kube::Error),
    /// The Lease file could not be read or written.
    #[error("lease file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The request took longer than the request timeout.
    #[error("timed out after {0} ms")]
    Timeout(u128),
}

impl LeaseStore {
    /// The `dir:` store of a source directory `root`, for `namespace`.
    pub fn dir(root: &std::path::Path, namespace: &str) -> Self {
        Self::Dir {
            dir: root.join(".leases").join(namespace),
        }
    }

    /// Renews (or creates) `node`'s Lease; `seq` makes every write's content distinct.
    pub async fn renew(&self, node: &str, timing: LeaseTiming, seq: u64) -> Result<(), LeaseError> {
        let name = lease_name(node);
        // Informational for people reading the Lease; peers judge it by their own timing.
        let seconds = i32::try_from(timing.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let now = k8s_openapi::jiff::Timestamp::now();
        match self {
            Self::Kube { client, namespace } => {
                let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
                let patch = serde_json::json!({"spec": {
                    "holderIdentity": node,
                    "leaseDurationSeconds": seconds,
                    "renewTime": MicroTime(now),
                }});
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(status)) if status.is_not_found() => {
                        let lease = Lease {
                            metadata: ObjectMeta {
                                name: Some(name),
                                namespace: Some(namespace.clone()),
                                labels: Some(
                                    [
                                        ("app.kubernetes.io/name".to_owned(), "oxelb".to_owned()),
                                        ("app.kubernetes.io/component".to_owned(), "speaker".to_owned()),
                                    ]
                                    .into(),
                                ),
                                ..Default::default()
                            },
                            spec: Some(LeaseSpec {
                                holder_identity: Some(node.to_owned()),
                                lease_duration_seconds: Some(seconds),
                                acquire_time: Some(MicroTime(now)),
                                renew_time: Some(MicroTime(now)),
                                ..Default::default()
                            }),
                        };
                        api.create(&PostParams::default(), &lease).await?;
                        Ok(())
                    }
                    Err(error) => Err(error.into()),
                }
            }
            Self::Dir { dir } => {
                let path = dir.join(format!("{name}.yaml"));
                let tmp = dir.join(format!("{name}.yaml.tmp"));
                let file = |source| LeaseError::File {
                    path: path.clone(),
                    source,
                };
                let body = format!(
                    "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: {name}, resourceVersion: '{seq}'}}\nspec: {{holderIdentity: {node}, leaseDurationSeconds: {seconds}, renewTime: '{now}'}}\n"
                );
                tokio::fs::create_dir_all(dir).await.map_err(file)?;
                tokio::fs::write(&tmp, body).await.map_err(file)?;
                tokio::fs::rename(&tmp, &path).await.map_err(file)
            }
        }
    }

    /// Reads `node`'s Lease: a token that changes with every write (the resourceVersion and
    /// renewTime; the file's text), or `None` when there is no Lease.
    pub async fn read(&self, node: &str) -> Result<Option<String>, LeaseError> {
        let name = lease_name(node);
        match self {
            Self::Kube { client, namespace } => {
                let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
                Ok(api.get_opt(&name).await?.map(|lease| {
                    let renewed = lease
                        .spec
                        .and_then(|s| s.renew_time)
                        .map(|t| t.0.to_string())
                        .unwrap_or_default();
                    format!(
                        "{}/{renewed}",
                        lease.metadata.resource_version.unwrap_or_default()
                    )
                }))
            }
            Self::Dir { dir } => {
                let path = dir.join(format!("{name}.yaml"));
                match tokio::fs::read_to_string(&path).await {
                    Ok(text) => Ok(Some(text)),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(LeaseError::File { path, source }),
                }
            }
        }
    }
}

struct State {
    reach: Reach,
    peer: PeerLease,
}

/// The tie-break's view of the apiserver, kept current by the renewal task.
#[derive(Clone)]
pub struct Leases {
    state: Arc<Mutex<State>>,
    origin: Instant,
    changed: Arc<Notify>,
    track: Arc<watch::Sender<Option<String>>>,
}

impl Leases {
    /// Starts the renewal task of `node`'s Lease in `store`; it makes requests only while a peer
    /// is tracked.
    pub fn start(store: LeaseStore, node: String, timing: LeaseTiming) -> Self {
        let (track, mut peers) = watch::channel(None::<String>);
        let leases = Self {
            state: Arc::new(Mutex::new(State {
                reach: Reach::new(timing),
                peer: PeerLease::new(timing),
            })),
            origin: Instant::now(),
            changed: Arc::new(Notify::new()),
            track: Arc::new(track),
        };
        let task = leases.clone();
        tokio::spawn(async move {
            let timeout = timing.request_timeout();
            let timeout_ms = timeout.as_millis();
            let mut seq = 0u64;
            let mut last_facts: Option<(String, ApiFacts)> = None;
            let mut failing = false;
            loop {
                let Some(peer) = peers.borrow_and_update().clone() else {
                    if peers.changed().await.is_err() {
                        return;
                    }
                    continue;
                };
                let cycle = Instant::now();
                seq += 1;
                let started = task.now();
                let renewed = tokio::time::timeout(timeout, store.renew(&node, timing, seq))
                    .await
                    .unwrap_or(Err(LeaseError::Timeout(timeout_ms)));
                if let Err(error) = &renewed {
                    if !failing {
                        warn!(lease = %lease_name(&node), %error, "lease renewal failed (two-node layer2 tie-break)");
                    }
                } else if failing {
                    info!(lease = %lease_name(&node), "lease renewed again");
                }
                failing = renewed.is_err();
                task.lock().reach.renewed(started, renewed.is_ok());
                let read_started = task.now();
                match tokio::time::timeout(timeout, store.read(&peer)).await {
                    Ok(Ok(content)) => {
                        let finished = task.now();
                        task.lock().peer.read(&peer, read_started, finished, content);
                    }
                    Ok(Err(error)) => debug!(peer = %peer, %error, "peer's lease not read"),
                    Err(_) => debug!(peer = %peer, timeout_ms, "peer's lease read timed out"),
                }
                let facts = task.facts(&peer);
                if last_facts.as_ref() != Some(&(peer.clone(), facts)) {
                    info!(peer = %peer, reachable = facts.reachable, peer_lease_expired = facts.peer_expired,
                        "two-node tie-break facts changed");
                    if facts.peer_expired {
                        info!(peer = %peer, "peer's Lease expired: it is dead or cut from the apiserver");
                    }
                    last_facts = Some((peer.clone(), facts));
                    task.changed.notify_one();
                }
                tokio::select! {
                    () = tokio::time::sleep_until(cycle + timing.renew_every) => {}
                    changed = peers.changed() => if changed.is_err() { return },
                }
            }
        });
        leases
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Tracks `peer` (`Some`: this speaker and `peer` are the two expected speakers; renew and
    /// read), or nobody (`None`: no requests).
    pub fn track(&self, peer: Option<String>) {
        self.track.send_if_modified(|p| {
            let changed = *p != peer;
            *p = peer;
            changed
        });
    }

    /// What the apiserver tells now, about `peer`.
    pub fn facts(&self, peer: &str) -> ApiFacts {
        let now = self.now();
        let state = self.lock();
        ApiFacts {
            reachable: state.reach.reachable(now),
            peer_expired: state.peer.expired(peer, now),
        }
    }

    /// The next moment the facts change with no request completing.
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = self.now();
        let state = self.lock();
        [state.reach.next_change(now), state.peer.next_change(now)]
            .into_iter()
            .flatten()
            .min()
            .map(|at| self.origin + at)
    }

    /// Resolves when a request changed the facts.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}
