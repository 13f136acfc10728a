//! AdmissionReview v1 in, AdmissionReview v1 out: pure, and never a panic whatever the bytes.
//!
//! A body that is not an AdmissionReview with a `request.uid` cannot be answered in kind (the answer
//! must echo the uid) and becomes a [`ReviewError`], which the server turns into HTTP 400.

use oxelb_crds::{
    names,
    v1alpha2::{BgpConf, BgpPeer, Eip},
};
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

    let verdict = if operation == "UPDATE" && passes_unvalidated(kind, request) {
        // Removing a finalizer, editing labels, or anything on an object on its way out: never
        // refused, so an invalid pool inherited from OpenELB or an uninstall cannot get stuck.
        Ok(())
    } else if operation == "CREATE" || operation == "UPDATE" {
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

/// Whether an UPDATE goes through without validation (pure): it changes only metadata other than
/// the Eip default-pool annotation (finalizers, labels, other annotations, owner references), or the
/// object is already being deleted. The ValidatingWebhookConfiguration's `matchConditions` say the
/// same in CEL so the API server does not even call the webhook for such requests (which matters
/// while no controller serves: `failurePolicy: Fail` would refuse them); this is the same rule on
/// the handler side, for API servers without `matchConditions` (before 1.28) and as the reference the
/// manifest test compares the CEL with.
pub fn passes_unvalidated(kind: Kind, request: &Value) -> bool {
    let (Some(new), Some(old)) = (request.get("object"), request.get("oldObject")) else {
        return false;
    };
    if old
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return true;
    }
    // Everything but metadata and status (status is a subresource the webhook does not see anyway).
    let content = |object: &Value| -> Option<serde_json::Map<String, Value>> {
        let mut map = object.as_object()?.clone();
        map.remove("metadata");
        map.remove("status");
        Some(map)
    };
    // Absent and empty are the same, as in the CEL of the matchConditions.
    let default_annotation = |object: &Value| {
        object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(names::IS_DEFAULT_EIP_ANNOTATION))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    // An object without a spec on either side is validated (and refused with a message) as usual.
    new.get("spec").is_some()
        && old.get("spec").is_some()
        && content(new).is_some_and(|n| Some(n) == content(old))
        && (kind != Kind::Eip || default_annotation(new) == default_annotation(old))
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
