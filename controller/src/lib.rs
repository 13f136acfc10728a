//! oxelb controller: allocates IPs from Eip pools to LoadBalancer Services.
//!
//! - [`inputs`]: Eips and Services into the allocator's inputs (pure).
//! - [`handling`]: which Services are ours (`type`, class, annotation; pure).
//! - [`reconcile`]: one pass over a snapshot of the objects: registration after a restart, releases,
//!   allocations, and the writes that follow (pure).
//! - [`apply`]: makes those writes through the runtime's writer, fenced by [`leader`].
//! - [`leader`]: Lease election with self-fencing; only the holder writes.
//! - [`metrics`]: pool sizes and usage, failures, pending Services, writes, pass latency.
//! - [`webhook`]: the validating admission webhook with its self-managed certificate.
//! - [`heartbeat_key`]: the Secret holding the speakers' shared heartbeat key.
//! - [`uninstall`]: `--uninstall`, which removes oxelb's finalizers everywhere so that deleting
//!   oxelb leaves nothing stuck.
//! - [`view`]: what the indexes keep of each Service and Namespace (compact views, not the API
//!   structs).
//!
//! The loop ([`run`]) waits until every watch has synced, then, while this replica leads, runs a
//! pass whenever an object changes (debounced), after a failed write (with backoff), and every
//! [`RESYNC`] as a safety net.

pub mod apply;
pub mod handling;
pub mod heartbeat_key;
pub mod inputs;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod uninstall;
pub mod view;
pub mod webhook;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Parser;
use k8s_openapi::api::core::v1::{Namespace, Service};
use oxelb_crds::v1alpha2::Eip;
use oxelb_runtime::{
    app::{App, AppError},
    cli::{CommonArgs, SourceSpec},
    feed::{SharedIndex, SyncTracker},
    index::Changes,
    object::ObjectKey,
    shutdown::Shutdown,
    source::Writer,
};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{info, warn};

use oxelb_ipam::ServiceKey;

use crate::{
    apply::Applier,
    handling::Handling,
    leader::{Leadership, LeaseConfig},
    metrics::ControllerMetrics,
    reconcile::{Reconciler, Snapshot},
    view::{NamespaceView, ServiceView, namespace_view, service_view},
};

/// Default `--metrics-addr` of the controller (a Deployment: any port of the pod is free).
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:8080";

/// The component name in Events and logs.
pub const COMPONENT: &str = "oxelb-controller";

/// The Secret holding the speakers' shared heartbeat key (the speaker DaemonSet mounts it).
pub const HEARTBEAT_SECRET: &str = "oxelb-speaker-heartbeat";

/// A pass runs at least this often, even when nothing changed (a safety net; changes trigger
/// passes at once).
pub const RESYNC: Duration = Duration::from_secs(60);

/// Changes arriving within this time are decided in one pass.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// While passes over a burst follow one another, the Eips' status is written at most this often
/// (and after the last of them): each write sends a pool's whole `status.used` to every watcher.
/// The bound keeps what a leader that dies in a burst leaves unlisted small (the next leader adopts
/// it from the Services' status, with a Warning on the Eip).
const EIP_STATUS_EVERY: Duration = Duration::from_secs(2);

/// After a 409, the next pass waits this long for the watch to deliver the newer object.
const CONFLICT_RETRY: Duration = Duration::from_millis(200);

/// The backoff after failed writes: doubling from the first value up to the second.
const ERROR_BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));

/// The most Services one pass over changes decides; the rest wait for the next pass, which
/// follows at once. A pass holds all its writes until they are made (a few hundred bytes to
/// kilobytes each), so a burst of ten thousand creates must not become one pass.
pub const MAX_TOUCHED_PER_PASS: usize = 1000;

/// The Services the next pass over changes decides: those that changed (`changed`; `None` calls
/// for a whole pass, which decides everything and so empties `carry`) plus those carried over
/// from earlier passes, at most `max` of them, in key order (the order a single pass would
/// allocate in); the rest are left in `carry`.
pub fn next_touched(
    changed: Option<BTreeSet<ServiceKey>>,
    carry: &mut BTreeSet<ServiceKey>,
    max: usize,
) -> Option<BTreeSet<ServiceKey>> {
    let Some(changed) = changed else {
        carry.clear();
        return None;
    };
    carry.extend(changed);
    let rest = match carry.iter().nth(max) {
        Some(first_left) => {
            let first_left = first_left.clone();
            carry.split_off(&first_left)
        }
        None => BTreeSet::new(),
    };
    Some(std::mem::replace(carry, rest))
}

/// The controller's flags.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "oxelb-controller",
    version,
    about = "oxelb controller: allocates LoadBalancer IPs from Eip pools"
)]
pub struct Args {
    /// Flags shared with the speaker.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Handle Services whose `spec.loadBalancerClass` is this value, without any annotation.
    /// Services of any other class are never touched.
    #[arg(long, env = "OXELB_LB_CLASS")]
    pub lb_class: Option<String>,

    /// Handle every class-less `type: LoadBalancer` Service, with or without the
    /// `lb.kubesphere.io/v1alpha1: openelb` annotation (be the cluster's default load balancer).
    #[arg(long, env = "OXELB_DEFAULT_LB")]
    pub default_lb: bool,

    /// Elect a leader through a Lease (with `--source kube`); only the leader writes. With `dir:`
    /// there is one process and no election.
    #[arg(long, env = "OXELB_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "oxelb-system")]
    pub lease_namespace: String,

    /// Name of the leader-election Lease (the RBAC Role allows only this name).
    #[arg(long, default_value = "oxelb-controller")]
    pub lease_name: String,

    /// This replica's identity in the Lease (default: the pod name, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Seconds a Lease is valid after its last renewal.
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u64,

    /// Seconds after the start of its last successful renewal that the leader keeps writing; must
    /// be less than the lease duration (the difference is the margin against two writers).
    #[arg(long, default_value_t = 10)]
    pub renew_deadline_seconds: u64,

    /// Seconds between renewals (and between checks by standby replicas).
    #[arg(long, default_value_t = 2)]
    pub retry_period_seconds: u64,

    /// Serve the validating admission webhook (with `--source kube`; the `dir:` source has no
    /// apiserver to call it). The controller is ready only once it serves.
    #[arg(long, env = "OXELB_WEBHOOK", default_value_t = true, action = clap::ArgAction::Set)]
    pub webhook: bool,

    /// Where the webhook listens (HTTPS; the Service oxelb-webhook targets port 9443).
    #[arg(long, env = "OXELB_WEBHOOK_ADDR", default_value = "0.0.0.0:9443")]
    pub webhook_addr: std::net::SocketAddr,

    /// Namespace of the webhook Service and certificate Secret.
    #[arg(long, env = "POD_NAMESPACE", default_value = "oxelb-system")]
    pub webhook_namespace: String,

    /// The webhook Service (the certificate's DNS names).
    #[arg(long, default_value = "oxelb-webhook")]
    pub webhook_service: String,

    /// The Secret holding the webhook certificate (the RBAC Role allows only this name).
    #[arg(long, default_value = "oxelb-webhook-cert")]
    pub webhook_secret: String,

    /// The ValidatingWebhookConfiguration whose caBundle is kept current.
    #[arg(long, default_value = "oxelb-validating-webhook")]
    pub webhook_configuration: String,

    /// Uninstall mode: allocate nothing and remove oxelb's finalizers from every Service and Eip
    /// (status, labels and IPs stay), ready once none is left; then deleting oxelb's manifest leaves
    /// nothing stuck. No leader election: every replica removes them.
    #[arg(long, env = "OXELB_UNINSTALL", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub uninstall: bool,
}

impl Args {
    /// Which Services are handled.
    pub fn handling(&self) -> Handling {
        Handling {
            lb_class: self.lb_class.clone().filter(|c| !c.is_empty()),
            default_lb: self.default_lb,
        }
    }

    /// The webhook's object names.
    pub fn webhook_names(&self) -> webhook::bootstrap::WebhookNames {
        webhook::bootstrap::WebhookNames {
            namespace: self.webhook_namespace.clone(),
            secret: self.webhook_secret.clone(),
            service: self.webhook_service.clone(),
            configuration: self.webhook_configuration.clone(),
        }
    }

    /// The Lease configuration; errors name the flag.
    pub fn lease_config(&self) -> Result<LeaseConfig, String> {
        if self.renew_deadline_seconds == 0 || self.renew_deadline_seconds >= self.lease_duration_seconds {
            return Err(format!(
                "--renew-deadline-seconds {} must be above 0 and below --lease-duration-seconds {}",
                self.renew_deadline_seconds, self.lease_duration_seconds
            ));
        }
        if self.retry_period_seconds == 0 || self.retry_period_seconds >= self.renew_deadline_seconds {
            return Err(format!(
                "--retry-period-seconds {} must be above 0 and below --renew-deadline-seconds {}",
                self.retry_period_seconds, self.renew_deadline_seconds
            ));
        }
        let identity = self
            .identity
            .clone()
            .filter(|i| !i.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| format!("oxelb-controller-{}", std::process::id()));
        Ok(LeaseConfig {
            namespace: self.lease_namespace.clone(),
            name: self.lease_name.clone(),
            identity,
            lease_duration: Duration::from_secs(self.lease_duration_seconds),
            renew_deadline: Duration::from_secs(self.renew_deadline_seconds),
            retry_period: Duration::from_secs(self.retry_period_seconds),
        })
    }
}

/// What changed in the indexes since a pass last asked ([`Indexes::take_changes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// An Eip or a Namespace: the pools, and so possibly any Service's choice (a whole pass).
    Pools,
    /// Possibly every Service: a re-list, or more changes than the index tracks one by one.
    AllServices,
    /// These Services (created, changed or deleted); none when nothing changed.
    Services(BTreeSet<ServiceKey>),
}

/// The hash of a value as its JSON text, computed as it is serialized: a large value (an Eip
/// status patch at tens of thousands of IPs) is megabytes of text that need not exist at once.
pub(crate) fn json_hash(value: &impl serde::Serialize) -> u64 {
    use std::hash::Hasher;
    struct HashWriter(std::collections::hash_map::DefaultHasher);
    impl std::io::Write for HashWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.write(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut writer = HashWriter(std::collections::hash_map::DefaultHasher::new());
    // Serializing into a writer that never fails cannot fail; were it to, the hash of what was
    // written only makes a comparison see a difference (a write made again, a whole pass), never
    // hide one.
    let _ = serde_json::to_writer(&mut writer, value);
    writer.0.finish()
}

/// What of an Eip the pools and the reconciler's decisions rest on: everything but its status
/// (which the controller writes itself) and its resourceVersion, as a hash.
fn eip_fingerprint(eip: &Eip) -> u64 {
    let meta = &eip.metadata;
    json_hash(&(
        &meta.uid,
        &meta.labels,
        &meta.annotations,
        &meta.finalizers,
        &meta.deletion_timestamp,
        &eip.spec,
    ))
}

/// The objects the controller reads.
#[derive(Clone)]
pub struct Indexes {
    /// The Services the controller handles or must clean up (see [`view::service_view`]).
    pub services: SharedIndex<ServiceView>,
    /// All Namespaces' labels (Eips bound by `namespaces` / `namespaceSelector` match their names
    /// and labels).
    pub namespaces: SharedIndex<NamespaceView>,
    /// All Eips (network.kubesphere.io/v1alpha2).
    pub eips: SharedIndex<Eip>,
    /// Each Eip's [`eip_fingerprint`] when [`Indexes::take_changes`] last looked.
    pub eips_seen: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Indexes {
    /// The current objects, for one whole pass (shared with the indexes, not copied).
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_of(None)
    }

    /// The objects for one pass: every Service (`touched` = `None`), or only the touched ones that
    /// still exist; every Eip and Namespace either way.
    pub fn snapshot_of(&self, touched: Option<BTreeSet<ServiceKey>>) -> Snapshot {
        // A poisoned lock means a reader panicked; the data is still a valid map.
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        let namespaces = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        let eips = self.eips.read().unwrap_or_else(|e| e.into_inner());
        let services = match &touched {
            None => services.iter_shared().map(|(_, s)| s.clone()).collect(),
            Some(keys) => keys
                .iter()
                .filter_map(|k| {
                    services
                        .get_shared(&ObjectKey::new(Some(&k.namespace), &k.name))
                        .cloned()
                })
                .collect(),
        };
        Snapshot {
            services,
            namespaces: namespaces
                .iter()
                .map(|(key, ns)| (key.name.clone(), ns.labels.clone()))
                .collect::<BTreeMap<_, _>>(),
            eips: eips.iter_shared().map(|(_, e)| e.clone()).collect(),
            touched,
        }
    }

    /// What changed since the last call.
    pub fn take_changes(&self) -> Changed {
        let services = self
            .services
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take_changes();
        let namespaces = self
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take_changes();
        let eips = self
            .eips
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take_changes();
        if !namespaces.is_empty() || (!eips.is_empty() && self.eips_changed_beyond_status()) {
            return Changed::Pools;
        }
        match services {
            Changes::None => Changed::Services(BTreeSet::new()),
            Changes::Keys(keys) => Changed::Services(
                keys.into_iter()
                    .filter_map(|k| Some(ServiceKey::new(k.namespace?, k.name)))
                    .collect(),
            ),
            Changes::All => Changed::AllServices,
        }
    }

    /// Whether an Eip was created, deleted or changed in more than its status since the last
    /// call. The controller's own status writes come back as Eip changes during a burst; deciding
    /// a whole pass for each would decide every Service again and hold all their writes.
    fn eips_changed_beyond_status(&self) -> bool {
        let now: BTreeMap<String, u64> = {
            let eips = self.eips.read().unwrap_or_else(|e| e.into_inner());
            eips.iter()
                .map(|(key, eip)| (key.name.clone(), eip_fingerprint(eip)))
                .collect()
        };
        let mut seen = self.eips_seen.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *seen != now;
        *seen = now;
        changed
    }

    /// The keys of every Service the index holds.
    pub fn service_keys(&self) -> BTreeSet<ServiceKey> {
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        services.iter().map(|(_, s)| s.key.clone()).collect()
    }

    /// The Services the next pass must decide, from what changed (see [`Changed`]): `None` for a
    /// whole pass. When every Service may have changed, a reconciler that has registered the
    /// existing assignments decides them as touched ([`next_touched`] takes them
    /// [`MAX_TOUCHED_PER_PASS`] at a time): every Service the index holds and every one the
    /// reconciler holds something of (one deleted in the meantime). One whole pass would decide
    /// them alike but hold all their writes at once: a burst of ten thousand creates overflows
    /// the index's change tracking, and such a pass held tens of megabytes.
    pub fn touched_by(&self, changed: Changed, reconciler: &Reconciler) -> Option<BTreeSet<ServiceKey>> {
        match changed {
            Changed::Pools => None,
            Changed::Services(keys) => Some(keys),
            Changed::AllServices if reconciler.bootstrapped() => {
                let mut keys = self.service_keys();
                keys.extend(reconciler.known_services().cloned());
                Some(keys)
            }
            Changed::AllServices => None,
        }
    }
}

/// Starts the indexes of every kind the controller reads, each object viewed on arrival as what a
/// decision reads (see [`view`]): Services the controller never handles and holds nothing of are
/// not kept, Namespaces are kept as their labels.
pub fn watch_all(app: &mut App, handling: &Handling) -> Indexes {
    let services = app.index_viewed::<Service, ServiceView>(service_view(handling.clone()));
    let namespaces = app.index_viewed::<Namespace, NamespaceView>(namespace_view());
    let eips = app.index::<Eip>();
    // A pass over a change needs to know what changed.
    services
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .track_changes();
    namespaces
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .track_changes();
    eips.write().unwrap_or_else(|e| e.into_inner()).track_changes();
    Indexes {
        services,
        namespaces,
        eips,
        eips_seen: Arc::default(),
    }
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(args: Args) -> Result<(), AppError> {
    let lease = match args.lease_config() {
        Ok(lease) => lease,
        Err(message) => {
            // A flag error before anything started: say which flag and stop.
            eprintln!("oxelb-controller: {message}");
            std::process::exit(2);
        }
    };
    let mut registry = Registry::default();
    let metrics = ControllerMetrics::register(&mut registry);
    let mut app = App::start(&args.common, registry).await?;
    let indexes = watch_all(&mut app, &args.handling());
    let writer = app.source().writer(COMPONENT);

    let mut tasks = Vec::new();
    let leadership = match (app.source().kube_client(), args.leader_elect) {
        _ if args.uninstall => Leadership::always(),
        (Some(client), true) => {
            let (tx, rx) = watch::channel(None);
            let shutdown = app.shutdown().clone();
            info!(lease = %format!("{}/{}", lease.namespace, lease.name), identity = %lease.identity, "leader election on");
            tasks.push(tokio::spawn(leader::run_election(
                client,
                lease,
                tx,
                async move {
                    shutdown.wait().await;
                },
            )));
            Leadership::from_receiver(rx)
        }
        _ => {
            if matches!(args.common.source, SourceSpec::Dir(_)) {
                info!("dir source: one process, no leader election");
            } else {
                warn!("leader election off: run exactly one replica");
            }
            Leadership::always()
        }
    };
    if let Some(client) = app.source().kube_client().filter(|_| !args.uninstall) {
        let (namespace, shutdown) = (args.webhook_namespace.clone(), app.shutdown().clone());
        tasks.push(tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            loop {
                match heartbeat_key::ensure(client.clone(), &namespace, HEARTBEAT_SECRET).await {
                    Ok(true) => {
                        info!(secret = %format!("{namespace}/{HEARTBEAT_SECRET}"), "created the speakers' heartbeat key");
                        return;
                    }
                    Ok(false) => return,
                    Err(error) => warn!(%error, "speakers' heartbeat key not ensured; speakers wait for it"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }));
    }
    match (app.source().kube_client(), args.webhook) {
        (Some(client), true) => {
            let gate = app.ready_gate();
            tasks.push(tokio::spawn(webhook::run(
                client,
                args.webhook_names(),
                args.webhook_addr,
                indexes.eips.clone(),
                gate,
                app.shutdown().clone(),
                metrics.clone(),
            )));
        }
        (Some(_), false) => warn!("webhook off: bad Eips, BgpConfs and BgpPeers are accepted at apply time"),
        (None, _) => info!("dir source: no admission webhook (no apiserver calls it)"),
    }
    if args.uninstall {
        let gate = app.ready_gate();
        tasks.push(tokio::spawn(uninstall::run(
            indexes,
            writer,
            app.tracker().clone(),
            app.shutdown().clone(),
            metrics,
            Some(gate),
        )));
    } else {
        tasks.push(tokio::spawn(reconcile_loop(
            indexes,
            writer,
            app.tracker().clone(),
            app.shutdown().clone(),
            leadership,
            metrics,
            args.handling(),
        )));
    }
    let result = app.run().await;
    for task in tasks {
        if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
            warn!("a controller task did not stop in time");
        }
    }
    result
}

/// The reconcile loop: waits for every watch to sync, then passes while this replica leads.
pub async fn reconcile_loop(
    indexes: Indexes,
    writer: Writer,
    tracker: SyncTracker,
    shutdown: Shutdown,
    mut leadership: Leadership,
    metrics: ControllerMetrics,
    handling: Handling,
) {
    // Never decide on a partial view: an unsynced index could hide an existing assignment.
    tokio::select! {
        _ = tracker.wait() => {}
        _ = shutdown.wait() => return,
    }
    let mut changes = tracker.changes();
    loop {
        tokio::select! {
            _ = leadership.wait_leading() => {}
            _ = shutdown.wait() => return,
        }
        metrics.set_leader(true);
        info!("leading: re-registering existing assignments, then allocating");
        // A new term starts from the API's truth: the previous leader may have allocated.
        let mut reconciler = Reconciler::new(handling.clone());
        let mut applier = Applier::new(writer.clone(), metrics.clone());
        let mut backoff = ERROR_BACKOFF.0;
        // A whole pass first (re-registration), then passes over changes, with a whole pass as
        // the safety net every RESYNC and after anything a pass over a change cannot cover.
        let mut whole_due = true;
        let mut next_whole = Instant::now();
        // Changed Services a pass left for the next (see MAX_TOUCHED_PER_PASS).
        let mut carry: BTreeSet<ServiceKey> = BTreeSet::new();
        // When the last pass wrote the Eips it moved IPs of.
        let mut eips_written = Instant::now();
        loop {
            changes.borrow_and_update();
            let started = Instant::now();
            let changed = next_touched(
                indexes.touched_by(indexes.take_changes(), &reconciler),
                &mut carry,
                MAX_TOUCHED_PER_PASS,
            );
            let whole = whole_due || started >= next_whole || changed.is_none();
            if whole {
                carry.clear();
            }
            let snapshot = indexes.snapshot_of(if whole { None } else { changed });
            if whole {
                next_whole = started + RESYNC;
            }
            // While a burst is decided chunk by chunk, the Eips' status follows at most every
            // EIP_STATUS_EVERY (and after the last chunk).
            let defer_eips = !carry.is_empty() && started < eips_written + EIP_STATUS_EVERY;
            if !defer_eips {
                eips_written = started;
            }
            let report = reconciler.pass_deferring(&snapshot, defer_eips);
            metrics.record_pass(&report);
            whole_due = report.needs_whole_pass;
            let actions = report.actions.len();
            let summary = applier
                .apply_phases(report.actions, &report.phase_starts, &leadership)
                .await;
            let elapsed = started.elapsed();
            metrics.observe_pass(elapsed.as_secs_f64());
            if actions > 0 {
                info!(
                    whole,
                    services = snapshot.services.len(),
                    eips = snapshot.eips.len(),
                    written = summary.written,
                    skipped = summary.skipped,
                    conflicts = summary.conflicts,
                    errors = summary.errors,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "pass"
                );
            }
            if summary.fenced {
                break;
            }
            let wait = if summary.errors > 0 {
                // The failed writes' objects did not change: only a whole pass decides them again.
                whole_due = true;
                let wait = backoff;
                backoff = (backoff * 2).min(ERROR_BACKOFF.1);
                wait
            } else {
                backoff = ERROR_BACKOFF.0;
                if summary.conflicts > 0 {
                    // The conflicting objects changed: the watch brings them as touched.
                    CONFLICT_RETRY
                } else if whole_due {
                    DEBOUNCE
                } else if !carry.is_empty() {
                    Duration::ZERO
                } else {
                    next_whole.saturating_duration_since(Instant::now())
                }
            };
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() { return; }
                    tokio::time::sleep(DEBOUNCE).await;
                }
                _ = tokio::time::sleep(wait) => {}
                _ = leadership.lost() => break,
                _ = shutdown.wait() => return,
            }
        }
        metrics.set_leader(false);
        warn!("not leading any more: writes stopped; waiting to lead again");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn passes_over_changes_take_at_most_max_services_in_key_order() {
        let keys = |range: std::ops::Range<usize>| -> BTreeSet<ServiceKey> {
            range.map(|i| ServiceKey::new("ns", format!("s{i:03}"))).collect()
        };
        let mut carry = BTreeSet::new();
        // 250 changes, 100 a pass: 100, then 100 more plus nothing new, then the rest plus new ones.
        assert_eq!(
            next_touched(Some(keys(0..250)), &mut carry, 100),
            Some(keys(0..100))
        );
        assert_eq!(carry, keys(100..250));
        assert_eq!(
            next_touched(Some(BTreeSet::new()), &mut carry, 100),
            Some(keys(100..200))
        );
        // A change to a carried Service is one key, not two.
        let mut again = keys(260..270);
        again.insert(ServiceKey::new("ns", "s210"));
        assert_eq!(
            next_touched(Some(again), &mut carry, 100),
            Some(keys(200..250).into_iter().chain(keys(260..270)).collect())
        );
        assert!(carry.is_empty());
        // A whole pass decides everything: nothing is carried past it.
        next_touched(Some(keys(0..150)), &mut carry, 100);
        assert_eq!(carry.len(), 50);
        assert_eq!(next_touched(None, &mut carry, 100), None);
        assert!(carry.is_empty());
    }

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
}
