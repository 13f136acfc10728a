//! oxelb speaker: announces the allocated IPs of this node by layer2 (ARP/NDP) or BGP.
//!
//! This crate is the I/O around the pure decisions of `oxelb-speaker-core`: the start-up (flags,
//! logging, metrics/health server, the object source and an index per kind the speaker reads:
//! Services, Nodes, EndpointSlices, Eips, BgpConfs, BgpPeers, Secrets), and the adapters:
//!
//! - [`planner`]: recomputes the desired state ([`oxelb_speaker_core::plan`]) on every change and
//!   publishes it.
//! - [`bgp`]: BGP sessions (TCP, TCP-MD5, timers) around the sans-IO `oxelb-bgp` state machine.
//! - [`bfd`]: BFD sessions (UDP) around the sans-IO `oxelb-bfd` state machine.
//! - [`layer2`]: ARP/NDP answering and announcing, heartbeats between speakers.
//! - [`reach`]: the speaker's own Lease (the two-node tie-break's API side).
//! - [`sys`]: the workspace's one module of raw syscalls.
//! - [`unapplied`]: the BgpConf/BgpPeer fields set and not applied, said as a Warning Event and a
//!   `FieldsIgnored` condition.

pub mod bfd;
pub mod bgp;
mod clock;
pub mod layer2;
pub mod planner;
pub mod reach;
// The workspace's one module of raw syscalls (see its docs and every SAFETY comment).
#[allow(unsafe_code)]
pub mod sys;
pub mod unapplied;

use clap::Parser;
use k8s_openapi::api::{
    core::v1::{Node, Secret, Service},
    discovery::v1::EndpointSlice,
};
use oxelb_crds::v1alpha2::{BgpConf, BgpPeer, Eip};
use oxelb_runtime::{
    app::{App, AppError},
    cli::CommonArgs,
    feed::SharedIndex,
    index::View,
};
use oxelb_speaker_core::{liveness, node::NodeFacts, plan, tiebreak, view};
use prometheus_client::registry::Registry;

/// Default `--metrics-addr` of the speaker: it runs with hostNetwork, so it avoids 8080 (often
/// taken on nodes) and uses a port of its own.
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9641";

/// The component name in Events and logs.
pub const COMPONENT: &str = "oxelb-speaker";

/// The speaker's flags.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "oxelb-speaker",
    version,
    about = "oxelb speaker: announces LoadBalancer IPs by layer2 or BGP"
)]
pub struct Args {
    /// Flags shared with the controller.
    #[command(flatten)]
    pub common: CommonArgs,

    /// The name of the Node this speaker announces for (the DaemonSet sets it from
    /// `spec.nodeName`); default: the host name.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,

    /// A file holding the key all speakers share for their layer2 heartbeats (a Secret mounted into
    /// the pod). Without it heartbeats are off, and layer2 failover waits for the Node to turn
    /// NotReady.
    #[arg(long, env = "OXELB_HEARTBEAT_KEY_FILE")]
    pub heartbeat_key_file: Option<std::path::PathBuf>,

    /// The speakers' namespace: BgpPeer `spec.conf.authPasswordSecret` names a Secret in it (the
    /// DaemonSet sets it from `metadata.namespace`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "oxelb-system")]
    pub namespace: String,

    /// UDP port of the heartbeats (on every node's InternalIP, IPv4 or IPv6).
    #[arg(long, env = "OXELB_HEARTBEAT_PORT", default_value_t = 9643)]
    pub heartbeat_port: u16,

    /// Milliseconds between heartbeats. Each node sends (nodes - 1) datagrams per interval.
    #[arg(long, env = "OXELB_HEARTBEAT_INTERVAL_MS", default_value_t = 50)]
    pub heartbeat_interval_ms: u64,

    /// Milliseconds of silence after which a peer is dead (detection time; at least twice the
    /// interval). A dead node's IPs move within this time.
    #[arg(long, env = "OXELB_HEARTBEAT_DEAD_AFTER_MS", default_value_t = 200)]
    pub heartbeat_dead_after_ms: u64,

    /// Milliseconds between renewals of this speaker's Lease (`oxelb-speaker-<node>`), which
    /// breaks the tie when the two speakers of a two-node layer2 cluster cannot hear each other.
    /// Renewed only then: with layer2 in use and exactly two expected speakers.
    #[arg(long, env = "OXELB_LEASE_RENEW_MS", default_value_t = 400)]
    pub lease_renew_ms: u64,

    /// Milliseconds after which a peer's Lease seen unchanged counts as expired (at least five
    /// renew periods). When the smaller-named node of two dies, the other takes over about this
    /// long after its last renewal.
    #[arg(long, env = "OXELB_LEASE_DURATION_MS", default_value_t = 2000)]
    pub lease_duration_ms: u64,
    /// A directory that outlives the speaker process but not a reboot (the DaemonSet mounts the
    /// host's `/run/oxelb`, a tmpfs): a stopping speaker leaves its BFD sessions there for the
    /// next process.
    #[arg(long, env = "OXELB_STATE_DIR", default_value = "/run/oxelb")]
    pub state_dir: std::path::PathBuf,

    /// Milliseconds a restarting speaker's BFD sessions stay Up at the routers without packets:
    /// the next process continues them within this time, so graceful restart keeps the routes.
    /// A node that dies within this time after its speaker stopped is detected only when it
    /// ends. 0: no hand-over (BFD AdminDown on stop).
    #[arg(long, env = "OXELB_BFD_RESTART_WINDOW_MS", default_value_t = 10_000)]
    pub bfd_restart_window_ms: u64,
}

impl Args {
    /// The heartbeat timing, checked.
    pub fn timing(&self) -> Result<liveness::LivenessConfig, liveness::TimingError> {
        liveness::LivenessConfig::new(
            std::time::Duration::from_millis(self.heartbeat_interval_ms),
            std::time::Duration::from_millis(self.heartbeat_dead_after_ms),
        )
    }

    /// The Lease timing of the two-node tie-break, checked.
    pub fn lease_timing(&self) -> Result<tiebreak::LeaseTiming, tiebreak::LeaseTimingError> {
        tiebreak::LeaseTiming::new(
            std::time::Duration::from_millis(self.lease_renew_ms),
            std::time::Duration::from_millis(self.lease_duration_ms),
        )
    }

    /// `--node-name`, else the host name.
    pub fn node_name(&self) -> String {
        self.node_name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .unwrap_or_default()
    }
}

/// The objects the speaker reads.
#[derive(Clone)]
pub struct Indexes {
    /// The Services the speaker may announce, as their views ([`view::service`]).
    pub services: SharedIndex<view::ServiceView>,
    /// All Nodes, as their facts ([`view::node`]).
    pub nodes: SharedIndex<NodeFacts>,
    /// The EndpointSlices with a ready endpoint, as their nodes ([`view::endpoint_slice`]):
    /// `externalTrafficPolicy: Local` announces from those nodes only.
    pub endpoint_slices: SharedIndex<view::SliceView>,
    /// All Eips (network.kubesphere.io/v1alpha2), without their status ([`view::eip`]).
    pub eips: SharedIndex<Eip>,
    /// All BgpConfs.
    pub bgp_confs: SharedIndex<BgpConf>,
    /// All BgpPeers.
    pub bgp_peers: SharedIndex<BgpPeer>,
    /// The Secrets of the speakers' namespace (TCP-MD5 passwords by reference).
    pub secrets: SharedIndex<Secret>,
    /// That namespace.
    pub namespace: String,
}

impl Indexes {
    /// A copy of the current objects, for one computation. Services and EndpointSlices (the kinds
    /// that grow with the cluster) are shared with the indexes, not cloned.
    pub fn snapshot(&self) -> plan::SpeakerSnapshot {
        fn values<K: Clone>(index: &SharedIndex<K>) -> Vec<K> {
            // A poisoned lock means a reader panicked; the data is still a valid map.
            let guard = index.read().unwrap_or_else(|e| e.into_inner());
            guard.iter().map(|(_, v)| v.clone()).collect()
        }
        fn shared<K>(index: &SharedIndex<K>) -> Vec<std::sync::Arc<K>> {
            let guard = index.read().unwrap_or_else(|e| e.into_inner());
            guard.iter_shared().map(|(_, v)| v.clone()).collect()
        }
        plan::SpeakerSnapshot {
            services: shared(&self.services),
            nodes: values(&self.nodes),
            endpoint_slices: shared(&self.endpoint_slices),
            eips: values(&self.eips),
            bgp_confs: values(&self.bgp_confs),
            bgp_peers: values(&self.bgp_peers),
            secrets: values(&self.secrets),
            namespace: self.namespace.clone(),
        }
    }
}

/// The index views of the speaker (for `App::index_viewed`): Services, EndpointSlices (node names
/// shared by one [`view::Interner`]) and Nodes.
fn views() -> (
    View<Service, view::ServiceView>,
    View<EndpointSlice, view::SliceView>,
    View<Node, NodeFacts>,
) {
    let interner = std::sync::Arc::new(view::Interner::default());
    (
        std::sync::Arc::new(view::service),
        std::sync::Arc::new(move |slice| view::endpoint_slice(slice, &interner)),
        std::sync::Arc::new(view::node),
    )
}

/// Starts the indexes of every kind the speaker reads, the kinds that grow with the cluster as
/// compact views made on arrival ([`view`]); Secrets only in `namespace`.
pub fn watch_all(app: &mut App, namespace: &str) -> Indexes {
    let (services, endpoint_slices, nodes) = views();
    Indexes {
        services: app.index_viewed::<Service, _>(services),
        nodes: app.index_viewed::<Node, _>(nodes),
        endpoint_slices: app.index_viewed::<EndpointSlice, _>(endpoint_slices),
        eips: app.index_viewed::<Eip, _>(std::sync::Arc::new(view::eip)),
        bgp_confs: app.index::<BgpConf>(),
        bgp_peers: app.index::<BgpPeer>(),
        secrets: app.index_in::<Secret>(namespace),
        namespace: namespace.to_owned(),
    }
}

/// Runs the speaker until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<(), AppError> {
    let mut registry = Registry::default();
    let planner_metrics = planner::PlannerMetrics::register(&mut registry);
    let bgp_metrics = bgp::manager::BgpMetrics::register(&mut registry);
    let bfd_metrics = bfd::BfdMetrics::register(&mut registry);
    let layer2_metrics = layer2::metrics::Layer2Metrics::register(&mut registry);
    let mut app = App::start(&args.common, registry).await?;
    let indexes = watch_all(&mut app, &args.namespace);
    let node_name = args.node_name();
    tracing::info!(node = %node_name, "speaking for this node");
    // The announcers (layer2, BGP) subscribe to the planner's state.
    let (publish, states) = tokio::sync::watch::channel(std::sync::Arc::new(plan::SpeakerState::default()));
    let writer = app.source().writer(COMPONENT);
    let heartbeat = match &args.heartbeat_key_file {
        Some(path) => match std::fs::read(path) {
            Ok(key) if !key.is_empty() => Some(layer2::announcer::Heartbeats {
                port: args.heartbeat_port,
                key,
                timing: args.timing().unwrap_or_else(|error| {
                    tracing::warn!(%error, "heartbeat timing refused: the defaults apply");
                    liveness::LivenessConfig::default()
                }),
            }),
            Ok(_) => {
                tracing::warn!(file = %path.display(), "heartbeat key file is empty: heartbeats off");
                None
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot read the heartbeat key: heartbeats off");
                None
            }
        },
        None => None,
    };
    // The two-node tie-break's Lease, where the objects come from: the API, or the directory.
    let leases = heartbeat.as_ref().and_then(|_| {
        let store = match (app.source().kube_client(), &args.common.source) {
            (Some(client), _) => reach::LeaseStore::Kube {
                client,
                namespace: args.namespace.clone(),
            },
            (None, oxelb_runtime::cli::SourceSpec::Dir(path)) => {
                reach::LeaseStore::dir(path, &args.namespace)
            }
            (None, oxelb_runtime::cli::SourceSpec::Kube) => return None,
        };
        let timing = args.lease_timing().unwrap_or_else(|error| {
            tracing::warn!(%error, "lease timing refused: the defaults apply");
            tiebreak::LeaseTiming::default()
        });
        Some(reach::Leases::start(store, node_name.clone(), timing))
    });
    let tasks = [
        tokio::spawn(planner::run(
            indexes,
            writer.clone(),
            app.tracker().clone(),
            app.shutdown().clone(),
            node_name.clone(),
            planner_metrics,
            publish,
        )),
        tokio::spawn(layer2::announcer::run(
            states.clone(),
            node_name.clone(),
            heartbeat,
            writer.clone(),
            layer2_metrics,
            app.shutdown().clone(),
            leases,
            Some(layer2::staleness::SourceView {
                progress: app.source().progress(),
                health: app.health().clone(),
                restarter: app.watch_restarter(),
            }),
        )),
        tokio::spawn(bgp::manager::run(
            states,
            writer,
            node_name.clone(),
            bgp_metrics,
            bfd_metrics,
            bfd::HandoverSettings {
                state_dir: args.state_dir.clone(),
                window: std::time::Duration::from_millis(args.bfd_restart_window_ms),
                node: node_name,
            },
            app.shutdown().clone(),
        )),
    ];
    let result = app.run().await;
    for task in tasks {
        if tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .is_err()
        {
            tracing::warn!("a speaker task did not stop in time");
        }
    }
    result
}
