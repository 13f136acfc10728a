//! AdmissionReview v1 in, AdmissionReview v1 out: pure, and never a panic whatever the bytes.
//!
//! A body that is not an AdmissionReview with a `request.uid` cannot be answered in kind (the answer
//! must echo the uid) and becomes a [`ReviewError`], which the server turns into HTTP 400.

use oxelb_crds::v1alpha2::{BgpConf, BgpPeer, Eip};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::validate::{Violation, validate_bgp_conf, validate_bgp_peer, validate_eip};

/// The kinds the webhook validates, one path each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/validate-network-kubesphere-io-v1alpha2-eip`
    Eip,
    /// `/validate-network-kubesphere-io-v1alpha2-bgpconf`
    BgpConf,
    /// `/validate-network-kubesphere-io-v1alpha2-bgppeer`
    BgpPeer,
}

impl Kind {
    /// The URL path of the kind, as in `config/webhook/validatingwebhookconfiguration.yaml`.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Eip => "/validate-network-kubesphere-io-v1alpha2-eip",
            Kind::BgpConf => "/validate-network-kubesphere-io-v1alpha2-bgpconf",
            Kind::BgpPeer => "/validate-network-kubesphere-io-v1alpha2-bgppeer",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Eip => "Eip",
            Kind::BgpConf => "BgpConf",
            Kind::BgpPeer => "BgpPeer",
        }
    }
}

/// Why a body could not be reviewed at all (answered with HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON.
    #[error("request body is not JSON ({0}); expected an admission.k8s.io/v1 AdmissionReview")]
    NotJson(String),
    /// JSON, but not an AdmissionReview with a request and its uid.
    #[error("request body is not an admission.k8s.io/v1 AdmissionReview with request.uid")]
    NotAReview,
}

/// Reviews one AdmissionReview body for `kind`; `other_eips` gives the cluster's Eips (asked only
/// for Eip reviews).
pub fn review(kind: Kind, body: &[u8], other_eips: &dyn Fn() -> Vec<Eip>) -> Result<Value, ReviewError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    let request = value.get("request").ok_or(ReviewError::NotAReview)?;
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .ok_or(ReviewError::NotAReview)?;
    let operation = request.get("operation").and_then(Value::as_str).unwrap_or("");
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("admission.k8s.io/v1");

    let verdict = if operation == "CREATE" || operation == "UPDATE" {
        decide(kind, request, operation == "UPDATE", other_eips)
    } else {
        Ok(()) // DELETE and CONNECT are not ours to refuse.
    };
    let response = match verdict {
        Ok(()) => json!({"uid": uid, "allowed": true}),
        Err(message) => json!({
            "uid": uid,
            "allowed": false,
            "status": {"code": 422, "reason": "Invalid", "message": message},
        }),
    };
    Ok(json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response}))
}

/// `Err(message)` when the object is refused: every violation, each naming its field.
fn decide(
    kind: Kind,
    request: &Value,
    update: bool,
    other_eips: &dyn Fn() -> Vec<Eip>,
) -> Result<(), String> {
    let name = request
        .pointer("/object/metadata/name")
        .and_then(Value::as_str)
        .or_else(|| request.get("name").and_then(Value::as_str))
        .unwrap_or("")
        .to_owned();
    let refuse = |violations: Vec<Violation>| -> Result<(), String> {
        if violations.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        Err(format!("{} {name} is invalid: {}", kind.name(), list.join("; ")))
    };
    match kind {
        Kind::Eip => {
            let eip: Eip = object(kind, request, "object", &name)?;
            let old: Option<Eip> = if update {
                Some(object(kind, request, "oldObject", &name)?)
            } else {
                None
            };
            refuse(validate_eip(&eip, old.as_ref(), &other_eips()))
        }
        Kind::BgpConf => refuse(validate_bgp_conf(&object::<BgpConf>(
            kind, request, "object", &name,
        )?)),
        Kind::BgpPeer => refuse(validate_bgp_peer(&object::<BgpPeer>(
            kind, request, "object", &name,
        )?)),
    }
}

/// Reads `request.<field>` as the kind's type; a shape the type refuses is a refusal naming the path.
fn object<T: DeserializeOwned>(kind: Kind, request: &Value, field: &str, name: &str) -> Result<T, String> {
    let value = request
        .get(field)
        .ok_or_else(|| format!("{} {name}: request.{field} is missing", kind.name()))?;
    serde_json::from_value(value.clone()).map_err(|e| {
        format!(
            "{} {name} is invalid: cannot read request.{field}: {e}",
            kind.name()
        )
    })
}
