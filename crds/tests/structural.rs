//! The generated schemas are structural (Kubernetes "Specifying a structural schema"), so a real
//! apiserver accepts the CRDs and prunes unknown fields: every node has a `type` (or
//! `x-kubernetes-int-or-string` / `x-kubernetes-preserve-unknown-fields`), arrays have one `items`
//! schema, objects do not mix `properties` and `additionalProperties`, and there is no `$ref`,
//! `oneOf`, `anyOf`, `allOf`, `not`, `definitions` or `$schema`.

// Tests may panic on unexpected input: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use oxelb_crds::crd;
use serde_json::Value;

const FORBIDDEN: [&str; 7] = ["$ref", "oneOf", "anyOf", "allOf", "not", "definitions", "$schema"];
const TYPES: [&str; 6] = ["object", "array", "string", "integer", "number", "boolean"];

fn check(node: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        errors.push(format!("{path}: schema is not an object"));
        return;
    };
    for key in FORBIDDEN {
        if obj.contains_key(key) {
            errors.push(format!("{path}: has {key}"));
        }
    }
    let escape = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        || obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let ty = obj.get("type").and_then(Value::as_str);
    match ty {
        Some(t) if TYPES.contains(&t) => {}
        Some(t) => errors.push(format!("{path}: unknown type {t:?}")),
        None if escape => {}
        None => errors.push(format!("{path}: no type")),
    }
    if obj.get("nullable").is_some_and(|nullable| !nullable.is_boolean()) {
        errors.push(format!("{path}: nullable is not a boolean"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        errors.push(format!("{path}: both properties and additionalProperties"));
    }
    if obj.contains_key("x-kubernetes-map-type") && ty != Some("object") {
        errors.push(format!("{path}: x-kubernetes-map-type on a non-object"));
    }
    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        for value in values {
            let ok = match ty {
                Some("string") => value.is_string(),
                Some("integer") => value.is_i64() || value.is_u64(),
                _ => false,
            };
            if !ok {
                errors.push(format!("{path}: enum value {value} does not match type {ty:?}"));
            }
        }
    }
    match ty {
        Some("array") => match obj.get("items") {
            Some(items) if items.is_object() => check(items, &format!("{path}[]"), errors),
            _ => errors.push(format!("{path}: array without a single items schema")),
        },
        Some("object") => {
            if let Some(props) = obj.get("properties") {
                match props.as_object() {
                    Some(props) => {
                        for (name, prop) in props {
                            check(prop, &format!("{path}.{name}"), errors);
                        }
                    }
                    None => errors.push(format!("{path}: properties is not a map")),
                }
            }
            match obj.get("additionalProperties") {
                Some(Value::Bool(true)) => errors.push(format!("{path}: additionalProperties: true")),
                Some(schema @ Value::Object(_)) => check(schema, &format!("{path}.<value>"), errors),
                _ => {}
            }
        }
        _ => {
            for key in ["properties", "additionalProperties", "items"] {
                if obj.contains_key(key) {
                    errors.push(format!("{path}: {key} on a non-object/array"));
                }
            }
        }
    }
}

fn check_crd(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) {
    let name = crd.metadata.name.clone().unwrap();
    let value = serde_json::to_value(&crd).unwrap();
    let mut errors = Vec::new();
    for version in value["spec"]["versions"].as_array().unwrap() {
        let schema = &version["schema"]["openAPIV3Schema"];
        let root = format!("{name} {}", version["name"].as_str().unwrap());
        check(schema, &root, &mut errors);
        if schema["type"] != "object" {
            errors.push(format!("{root}: root is not an object"));
        }
        // The apiserver allows only name/generateName under metadata in a CRD schema.
        if let Some(meta) = schema["properties"]["metadata"]["properties"].as_object()
            && meta.keys().any(|k| k != "name" && k != "generateName")
        {
            errors.push(format!("{root}: metadata constrains more than name/generateName"));
        }
    }
    let storage = value["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["storage"] == true)
        .count();
    if storage != 1 {
        errors.push(format!("{name}: {storage} storage versions"));
    }
    assert!(
        errors.is_empty(),
        "non-structural schema:\n  {}",
        errors.join("\n  ")
    );
}

#[test]
fn eips_are_structural() {
    check_crd(crd::eips().unwrap());
}

#[test]
fn bgpconfs_are_structural() {
    check_crd(crd::bgp_confs().unwrap());
}

#[test]
fn bgppeers_are_structural() {
    check_crd(crd::bgp_peers().unwrap());
}

#[test]
fn the_checker_rejects_non_structural_nodes() {
    let bad = serde_json::json!({
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "b": {"type": "array"},
            "c": {"$ref": "#/definitions/C"},
            "d": {"type": "string", "format": "ip", "oneOf": [{"format": "ipv4"}]}
        }
    });
    let mut errors = Vec::new();
    check(&bad, "x", &mut errors);
    assert_eq!(
        errors,
        [
            "x.a: has anyOf",
            "x.a: no type",
            "x.b: array without a single items schema",
            "x.c: has $ref",
            "x.c: no type",
            "x.d: has oneOf",
        ]
    );
}

#[test]
fn storage_version_is_v1alpha2_and_conversion_is_none() {
    for crd in crd::all().unwrap() {
        let versions: Vec<(&str, bool, bool)> = crd
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage))
            .collect();
        assert_eq!(versions, [("v1alpha1", true, false), ("v1alpha2", true, true)]);
        assert_eq!(
            crd.spec.conversion.as_ref().map(|c| c.strategy.as_str()),
            Some("None")
        );
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.group, "network.kubesphere.io");
    }
}
