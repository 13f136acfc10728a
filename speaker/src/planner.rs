//! The planner task: recomputes the speaker's desired state ([`oxelb_speaker_core::plan`]) on every
//! change of the indexes, publishes each new state to the announcers, logs what changed, writes this
//! node's entry of `BgpConf.status.nodesConfStatus`, says every configuration problem once as a
//! Warning Event, and the BgpConf/BgpPeer fields that are set and not applied ([`crate::unapplied`]).

use std::{collections::BTreeMap, sync::Arc};

use kube::Resource as _;
use oxelb_crds::{
    names,
    v1alpha2::{BgpConf, EipProtocol},
};
use oxelb_runtime::{
    feed::SyncTracker,
    shutdown::Shutdown,
    source::{EventRecord, EventType, Writer},
};
use oxelb_speaker_core::{
    node::NodeFacts,
    plan::{Said, SpeakerSnapshot, SpeakerState, compute_with, debounce_after, problems},
    policy::PoolPolicy,
    sessions::diff,
};
use prometheus_client::{
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

/// The planner's metrics.
#[derive(Clone, Debug, Default)]
pub struct PlannerMetrics {
    announcements: Family<Vec<(&'static str, String)>, Gauge>,
    sessions: Gauge,
    routes: Gauge,
    problems: Gauge,
}

impl PlannerMetrics {
    /// Creates and registers the families.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "oxelb_speaker_announcements",
            "IPs the cluster announces, by the protocol of their Eip",
            metrics.announcements.clone(),
        );
        registry.register(
            "oxelb_bgp_sessions_configured",
            "BGP sessions this node must hold",
            metrics.sessions.clone(),
        );
        registry.register(
            "oxelb_bgp_routes_desired",
            "Host routes this node should announce over BGP",
            metrics.routes.clone(),
        );
        registry.register(
            "oxelb_speaker_config_problems",
            "BgpConf/BgpPeer/Eip problems that keep a session or an announcement from starting",
            metrics.problems.clone(),
        );
        metrics
    }

    fn record(&self, state: &SpeakerState, problems: usize) {
        self.announcements.clear();
        for protocol in [EipProtocol::Bgp, EipProtocol::Layer2, EipProtocol::Vip] {
            let count = state
                .announcements
                .values()
                .filter(|a| a.protocol == protocol)
                .count();
            self.announcements
                .get_or_create(&vec![("protocol", protocol.as_str().to_owned())])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.sessions
            .set(i64::try_from(state.sessions.sessions.len()).unwrap_or(i64::MAX));
        self.routes
            .set(i64::try_from(state.bgp_routes.len()).unwrap_or(i64::MAX));
        self.problems.set(i64::try_from(problems).unwrap_or(i64::MAX));
    }
}

/// Recomputes the state on every change until shutdown, publishing it on `publish`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    indexes: crate::Indexes,
    writer: Writer,
    tracker: SyncTracker,
    shutdown: Shutdown,
    node_name: String,
    metrics: PlannerMetrics,
    publish: watch::Sender<Arc<SpeakerState>>,
) {
    // Never announce from a partial view: an unsynced index would withdraw what it has not seen.
    tokio::select! {
        _ = tracker.wait() => {}
        _ = shutdown.wait() => return,
    }
    let mut changes = tracker.changes();
    // The state last published: the announcers hold the same `Arc`, not copies.
    let mut current = Arc::new(SpeakerState::default());
    let mut said: BTreeMap<(String, &'static str), String> = BTreeMap::new();
    // The fields set and not applied, said once per object and generation.
    let mut said_fields = crate::unapplied::Said::new();
    // The pool policies last applied: a malformed edit (no webhook in front of `dir:`) keeps them.
    let mut last_good: BTreeMap<String, PoolPolicy> = BTreeMap::new();
    let mut written_identity = None;
    loop {
        changes.borrow_and_update();
        let started = std::time::Instant::now();
        let snapshot = indexes.snapshot();
        let next = compute_with(&snapshot, &node_name, &last_good);
        last_good.clone_from(&next.policies);
        let spent = started.elapsed();
        if next.node.is_none() && current.node.is_none() {
            warn!(node = %node_name, "no Node object of this name: nothing is announced (set --node-name / NODE_NAME to the node's name)");
        }
        let problems = problems(&next);
        metrics.record(&next, problems.len());
        report_problems(&writer, &snapshot, &problems, &mut said).await;
        crate::unapplied::report(&writer, &snapshot, &node_name, &mut said_fields).await;
        // Not kept while waiting for the next change.
        drop(snapshot);
        if next != *current {
            log_changes(&current, &next, &node_name);
            if next.sessions.identity != written_identity
                && let Some(identity) = next.sessions.identity
            {
                let status = json!({"nodesConfStatus": {node_name.clone(): {"routerId": identity.router_id.to_string(), "as": identity.asn}}});
                // A merge patch of this node's key only: other nodes' entries are untouched.
                match writer
                    .patch_status::<BgpConf>(names::DEFAULT_BGP_CONF_NAME, None, status)
                    .await
                {
                    Ok(()) => written_identity = Some(identity),
                    Err(error) => {
                        warn!(%error, "cannot write BgpConf status of this node; retried on the next change")
                    }
                }
            }
            current = Arc::new(next);
            let _ = publish.send(current.clone());
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() { return; }
                tokio::time::sleep(debounce_after(spent)).await;
            }
            _ = shutdown.wait() => return,
        }
    }
}

async fn report_problems(
    writer: &Writer,
    snapshot: &SpeakerSnapshot,
    problems: &[Said],
    said: &mut BTreeMap<(String, &'static str), String>,
) {
    said.retain(|(object, reason), _| problems.iter().any(|(o, r, _)| o == object && r == reason));
    for (object, reason, message) in problems {
        let key = (object.clone(), *reason);
        if said.get(&key) == Some(message) {
            continue;
        }
        warn!(object = %object, reason = %reason, problem = %message, "configuration problem");
        let regarding = match object.split_once('/') {
            Some(("BgpPeer", name)) => snapshot
                .bgp_peers
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name))
                .map(|p| p.object_ref(&())),
            Some(("BgpConf", name)) => snapshot
                .bgp_confs
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name))
                .map(|p| p.object_ref(&())),
            Some(("Eip", name)) => snapshot
                .eips
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name))
                .map(|p| p.object_ref(&())),
            _ => None,
        };
        if let Some(regarding) = regarding {
            let event = EventRecord {
                regarding,
                type_: EventType::Warning,
                reason: (*reason).into(),
                action: "Announce".into(),
                note: Some(message.clone()),
            };
            if let Err(error) = writer.publish_event(event).await {
                warn!(%error, "cannot publish Event");
            }
        }
        said.insert(key, message.clone());
    }
}

fn log_changes(old: &SpeakerState, new: &SpeakerState, node: &str) {
    let announce: Vec<String> = new
        .bgp_routes
        .iter()
        .filter(|(prefix, route)| old.bgp_routes.get(prefix) != Some(route))
        .map(|(prefix, _)| prefix.to_string())
        .collect();
    let withdraw: Vec<String> = old
        .bgp_routes
        .keys()
        .filter(|prefix| !new.bgp_routes.contains_key(prefix))
        .map(ToString::to_string)
        .collect();
    let changes = diff(&old.sessions, &new.sessions);
    info!(
        node,
        eligible = new.node.as_ref().is_some_and(NodeFacts::eligible),
        announcements = new.announcements.len(),
        bgp_announce = ?announce,
        bgp_withdraw = ?withdraw,
        sessions_start = ?changes.start,
        sessions_stop = ?changes.stop,
        sessions_restart = ?changes.restart,
        listener_changed = changes.listen_changed,
        "desired state changed"
    );
}
