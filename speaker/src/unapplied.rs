//! Says the BgpConf and BgpPeer fields oxelb accepts but does not apply
//! ([`oxelb_speaker_core::unapplied`] decides which): one Warning Event `FieldsIgnored` per object
//! and generation, and a `FieldsIgnored` condition in the object's status (an oxelb extension;
//! False again once no such field is set).
//!
//! One speaker says it for the cluster: the Ready node first by name (as the layer2 announcer's
//! `NoEligibleNode`), so N speakers do not say it N times. What was said is remembered here and in
//! the condition itself, so neither a speaker restart nor a change of reporter repeats it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use oxelb_crds::{
    names,
    v1alpha2::{BgpConf, BgpPeer},
};
use oxelb_runtime::source::{EventRecord, EventType, Writer};
use oxelb_speaker_core::{
    plan::SpeakerSnapshot,
    unapplied::{self, Current, FIELDS_IGNORED, Unapplied},
};
use serde_json::{Value, json};
use tracing::{debug, warn};

use crate::clock::now_rfc3339;

/// What this speaker said about each object: (kind, name) -> (generation, message).
pub type Said = BTreeMap<(&'static str, String), (Option<i64>, String)>;

/// The condition's reason while no field is ignored.
const ALL_APPLIED: &str = "AllFieldsApplied";

/// Says the unapplied fields of BgpConf `default` and every BgpPeer, when `me` is the reporter
/// (the first Ready node of `nodes` by name).
pub async fn report(writer: &Writer, snapshot: &SpeakerSnapshot, me: &str, said: &mut Said) {
    let reporter = snapshot
        .nodes
        .iter()
        .filter(|n| n.ready)
        .map(|n| n.name.as_str())
        .min();
    if reporter != Some(me) {
        return;
    }
    for conf in &snapshot.bgp_confs {
        if conf.metadata.name.as_deref() != Some(names::DEFAULT_BGP_CONF_NAME) || is_cni(&conf.metadata) {
            continue;
        }
        let fields = unapplied::bgp_conf(&conf.spec);
        let conditions = conf.status.as_ref().and_then(|s| s.conditions.as_deref());
        one::<BgpConf>(writer, conf, &fields, conditions, said).await;
    }
    for peer in &snapshot.bgp_peers {
        if peer.is_cni_owned() {
            continue;
        }
        let fields = unapplied::bgp_peer(&peer.spec);
        let conditions = peer.status.as_ref().and_then(|s| s.conditions.as_deref());
        one::<BgpPeer>(writer, peer, &fields, conditions, said).await;
    }
    // Objects gone: forget them (a new object of the same name is said again).
    said.retain(|(kind, name), _| match *kind {
        "BgpConf" => snapshot
            .bgp_confs
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(name)),
        _ => snapshot
            .bgp_peers
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(name)),
    });
}

fn is_cni(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .is_some_and(|l| l.contains_key(names::CNI_LABEL))
}

async fn one<K>(
    writer: &Writer,
    object: &K,
    fields: &[Unapplied],
    conditions: Option<&[Condition]>,
    said: &mut Said,
) where
    K: oxelb_runtime::object::Object,
{
    let kind = if K::kind(&()) == "BgpConf" {
        "BgpConf"
    } else {
        "BgpPeer"
    };
    let meta = object.meta();
    let Some(name) = meta.name.clone() else {
        return;
    };
    let generation = meta.generation;
    let message = (!fields.is_empty()).then(|| unapplied::message(fields));
    let current = conditions
        .into_iter()
        .flatten()
        .find(|c| c.type_ == FIELDS_IGNORED);
    let key = (kind, name.clone());
    let decision = unapplied::decide(
        message.as_deref(),
        generation,
        current.map(|c| Current {
            status: &c.status,
            observed_generation: c.observed_generation,
            message: &c.message,
        }),
        said.get(&key).map(|(g, m)| (*g, m.as_str())),
    );
    if decision.event
        && let Some(message) = &message
    {
        let paths: Vec<&str> = fields.iter().map(|f| f.path).collect();
        warn!(kind, object = %name, ?generation, fields = ?paths, "fields set that oxelb does not apply");
        let event = EventRecord {
            regarding: object.object_ref(&()),
            type_: EventType::Warning,
            reason: FIELDS_IGNORED.into(),
            action: "Configure".into(),
            note: Some(unapplied::note(fields)),
        };
        match writer.publish_event(event).await {
            Ok(()) => {
                said.insert(key, (generation, message.clone()));
            }
            Err(error) => debug!(kind, object = %name, %error, "FieldsIgnored Event not published; retried"),
        }
    }
    if decision.write {
        let status =
            json!({"conditions": conditions_after(conditions, current, message.as_deref(), generation)});
        if let Err(error) = writer.patch_status::<K>(&name, None, status).await {
            debug!(kind, object = %name, %error, "FieldsIgnored condition not written; retried on the next change");
        }
    }
}

/// The object's conditions with `FieldsIgnored` set for `message` (`None`: False): the others
/// kept as they are, the transition time kept while the status stays the same.
fn conditions_after(
    all: Option<&[Condition]>,
    current: Option<&Condition>,
    message: Option<&str>,
    generation: Option<i64>,
) -> Vec<Value> {
    let status = if message.is_some() { "True" } else { "False" };
    let since = current
        .filter(|c| c.status == status)
        .and_then(|c| serde_json::to_value(&c.last_transition_time).ok())
        .unwrap_or_else(|| Value::String(now_rfc3339()));
    let mut out: Vec<Value> = all
        .into_iter()
        .flatten()
        .filter(|c| c.type_ != FIELDS_IGNORED)
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    let mut condition = json!({
        "type": FIELDS_IGNORED,
        "status": status,
        "reason": if message.is_some() { FIELDS_IGNORED } else { ALL_APPLIED },
        "message": message.unwrap_or("every field set is applied"),
        "lastTransitionTime": since,
    });
    if let Some(generation) = generation {
        condition["observedGeneration"] = generation.into();
    }
    out.push(condition);
    out
}
