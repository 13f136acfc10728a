//! The ValidatingWebhookConfiguration's `matchConditions` (CEL, evaluated by the API server before it
//! calls the webhook) say the same as the handler's own skip rule, [`passes_unvalidated`]: for every
//! request of a corpus, the API server calls the webhook exactly when the handler would validate. So
//! a finalizer removal or a label edit is never sent to a webhook nobody serves (`failurePolicy:
//! Fail` would refuse it), and on API servers without `matchConditions` the handler lets it through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cel::{Context, Program};
use oxelb_controller::webhook::review::{Kind, passes_unvalidated};
use oxelb_tests::workspace_root;
use serde_json::{Value, json};

/// Each webhook's name with its compiled conditions (name, program).
fn webhooks() -> Vec<(String, Vec<(String, Program)>)> {
    let path = workspace_root().join("config/webhook/validatingwebhookconfiguration.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    let hooks = doc["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 3, "{}", path.display());
    hooks
        .iter()
        .map(|hook| {
            let name = hook["name"].as_str().unwrap().to_owned();
            let conditions = hook["matchConditions"]
                .as_array()
                .unwrap_or_else(|| panic!("webhook {name} has no matchConditions"))
                .iter()
                .map(|c| {
                    let expression = c["expression"].as_str().unwrap();
                    let program = Program::compile(expression)
                        .unwrap_or_else(|e| panic!("{name}: {expression}: {e:?}"));
                    (c["name"].as_str().unwrap().to_owned(), program)
                })
                .collect();
            (name, conditions)
        })
        .collect()
}

/// Whether the API server calls the webhook: every condition true (an error would, with
/// `failurePolicy: Fail`, refuse the request: no request of the corpus may cause one).
fn called(hook: &str, conditions: &[(String, Program)], request: &Value) -> bool {
    let mut context = Context::default();
    context.add_variable("request", request).unwrap();
    context.add_variable("object", &request["object"]).unwrap();
    context
        .add_variable("oldObject", request.get("oldObject").unwrap_or(&Value::Null))
        .unwrap();
    conditions
        .iter()
        .all(|(name, program)| match program.execute(&context) {
            Ok(cel::Value::Bool(b)) => b,
            other => panic!("{hook}: condition {name} on {request}: {other:?}"),
        })
}

fn object(spec: Value) -> Value {
    json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "Eip",
        "metadata": {"name": "pool", "resourceVersion": "7", "finalizers": ["finalizer.ipam.kubesphere.io/v1alpha1"]},
        "spec": spec})
}

/// Requests: (operation, object, oldObject).
fn corpus() -> Vec<Value> {
    let base = object(json!({"address": "192.0.2.0/28", "protocol": "layer2", "interface": "eth0"}));
    let mut cases: Vec<(&str, Value, Option<Value>)> = vec![("CREATE", base.clone(), None)];
    let mut unchanged = base.clone();
    unchanged["metadata"]["resourceVersion"] = json!("8");
    cases.push(("UPDATE", unchanged.clone(), Some(base.clone())));
    let mut no_finalizer = base.clone();
    no_finalizer["metadata"]["finalizers"] = json!([]);
    cases.push(("UPDATE", no_finalizer.clone(), Some(base.clone())));
    let mut no_finalizers_field = base.clone();
    no_finalizers_field["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("finalizers");
    cases.push(("UPDATE", no_finalizers_field, Some(base.clone())));
    let mut labelled = base.clone();
    labelled["metadata"]["labels"] = json!({"team": "a"});
    labelled["metadata"]["annotations"] = json!({"note": "x"});
    cases.push(("UPDATE", labelled.clone(), Some(base.clone())));
    let mut default = labelled.clone();
    default["metadata"]["annotations"]["eip.openelb.kubesphere.io/is-default-eip"] = json!("true");
    cases.push(("UPDATE", default.clone(), Some(labelled.clone())));
    cases.push(("UPDATE", labelled.clone(), Some(default.clone())));
    let mut empty_default = labelled.clone();
    empty_default["metadata"]["annotations"]["eip.openelb.kubesphere.io/is-default-eip"] = json!("");
    cases.push(("UPDATE", empty_default, Some(labelled.clone())));
    let mut disabled = base.clone();
    disabled["spec"]["disable"] = json!(true);
    cases.push(("UPDATE", disabled.clone(), Some(base.clone())));
    let mut moved = base.clone();
    moved["spec"]["address"] = json!("192.0.2.16/28");
    cases.push(("UPDATE", moved, Some(base.clone())));
    let mut deleting = base.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-12-04T15:00:00Z");
    let mut deleting_released = deleting.clone();
    deleting_released["metadata"]["finalizers"] = json!([]);
    cases.push(("UPDATE", deleting_released, Some(deleting.clone())));
    let mut deleting_edited = deleting.clone();
    deleting_edited["spec"]["disable"] = json!(true);
    cases.push(("UPDATE", deleting_edited, Some(deleting)));
    let no_spec = json!({"apiVersion": "network.kubesphere.io/v1alpha2", "kind": "BgpConf",
        "metadata": {"name": "default"}});
    cases.push(("UPDATE", no_spec.clone(), Some(no_spec)));
    cases.push(("CREATE", json!({"metadata": {"name": "x"}}), None));
    cases
        .into_iter()
        .map(|(operation, object, old)| {
            let mut request = json!({"uid": "u", "operation": operation, "object": object});
            if let Some(old) = old {
                request["oldObject"] = old;
            }
            request
        })
        .collect()
}

fn kind_of(hook: &str) -> Kind {
    match hook {
        "validate.eip.network.kubesphere.io" => Kind::Eip,
        "validate.bgpconf.network.kubesphere.io" => Kind::BgpConf,
        "validate.bgppeer.network.kubesphere.io" => Kind::BgpPeer,
        other => panic!("unknown webhook {other}"),
    }
}

#[test]
fn match_conditions_call_the_webhook_exactly_when_the_handler_would_validate() {
    let hooks = webhooks();
    let corpus = corpus();
    let mut skipped = 0;
    for (hook, conditions) in &hooks {
        for request in &corpus {
            let update = request["operation"] == "UPDATE";
            let handler_validates = !(update && passes_unvalidated(kind_of(hook), request));
            assert_eq!(
                called(hook, conditions, request),
                handler_validates,
                "{hook}: the API server and the handler disagree on {request}"
            );
            skipped += usize::from(!handler_validates);
        }
    }
    // Not vacuous: both outcomes occur for every webhook.
    assert!(skipped >= 3 * 5 && skipped < 3 * corpus.len(), "{skipped}");
}

#[test]
fn a_finalizer_removal_is_never_sent_to_the_webhook() {
    let base = object(json!({"address": "not an address"}));
    let mut released = base.clone();
    released["metadata"]["finalizers"] = json!([]);
    let request = json!({"uid": "u", "operation": "UPDATE", "object": released, "oldObject": base});
    for (hook, conditions) in webhooks() {
        assert!(!called(&hook, &conditions, &request), "{hook}");
    }
}

#[test]
fn only_the_eip_webhook_looks_at_the_default_pool_annotation() {
    let base = object(json!({"address": "192.0.2.0/28"}));
    let mut default = base.clone();
    default["metadata"]["annotations"] = json!({"eip.openelb.kubesphere.io/is-default-eip": "true"});
    let request = json!({"uid": "u", "operation": "UPDATE", "object": default, "oldObject": base});
    let calls: Vec<(String, bool)> = webhooks()
        .into_iter()
        .map(|(hook, conditions)| {
            let c = called(&hook, &conditions, &request);
            (hook, c)
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("validate.eip.network.kubesphere.io".to_owned(), true),
            ("validate.bgpconf.network.kubesphere.io".to_owned(), false),
            ("validate.bgppeer.network.kubesphere.io".to_owned(), false),
        ]
    );
}
