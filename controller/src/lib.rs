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
pub mod args;
pub mod handling;
mod hash;
pub mod heartbeat_key;
pub mod indexes;
pub mod inputs;
pub mod leader;
pub mod metrics;
pub mod pacing;
pub mod pass_loop;
pub mod reconcile;
pub mod uninstall;
pub mod view;
pub mod webhook;

use std::time::Duration;

use oxelb_runtime::{
    app::{App, AppError},
    cli::SourceSpec,
};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{info, warn};

pub use crate::{
    args::Args,
    indexes::{Changed, Indexes, watch_all},
    pacing::{MAX_TOUCHED_PER_PASS, RESYNC, next_touched},
    pass_loop::reconcile_loop,
};
use crate::{leader::Leadership, metrics::ControllerMetrics};

/// Default `--metrics-addr` of the controller (a Deployment: any port of the pod is free).
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:8080";

/// The component name in Events and logs.
pub const COMPONENT: &str = "oxelb-controller";

/// The Secret holding the speakers' shared heartbeat key (the speaker DaemonSet mounts it).
pub const HEARTBEAT_SECRET: &str = "oxelb-speaker-heartbeat";

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
            {
                let handling = args.handling();
                let max_bytes = args.eip_status_max_bytes;
                move || {
                    crate::reconcile::Reconciler::new(handling.clone()).with_eip_status_max_bytes(max_bytes)
                }
            },
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
