//! Compatibility of oxelb's generated schemas with OpenELB's own CRDs (tests/fixtures/).
//!
//! For each kind and each version OpenELB serves, every property path of OpenELB's openAPIV3Schema
//! must exist in oxelb's schema of the same version with a compatible type (integer/integer,
//! string/string, object with the same kind of children, map via additionalProperties, array items),
//! oxelb must not require a field OpenELB leaves optional, and oxelb must not add validation
//! (enum, pattern, bounds) that could reject an object OpenELB accepts and can read. All mismatches are
//! reported at once, each naming its path.

// Tests may panic on unexpected input: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use oxelb_crds::crd;
use serde_json::Value;

#[path = "support/openelb_paths.rs"]
mod openelb_paths;
use openelb_paths::{IMPLICIT_ROOT_FIELDS, child, list_items, map_values};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openelb-v0.6-crds");

/// Deliberate differences, each with its reason (path, what).
///
/// `spec` is required at the root because the Rust types (kube's derive) cannot decode an object
/// without one; OpenELB's Go clients always write `spec` (its Go field is a struct, never omitted).
const ALLOWED: [(&str, &str); 1] = [("", "requires spec")];

fn openelb(file: &str) -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{file}")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn ours(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    serde_json::to_value(crd).unwrap()
}

fn schema_of<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == version)
        .map(|v| &v["schema"]["openAPIV3Schema"])
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The bounds a normalized integer format implies (see `oxelb_crds::crd`): these are not "added
/// validation" because the Go types OpenELB decodes into have the same range.
fn representational_bounds(format: Option<&str>) -> Option<(f64, f64)> {
    match format {
        Some("int32") => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
        Some("int64") => Some((0.0, f64::from(u32::MAX))),
        _ => None,
    }
}

fn compare(theirs: &Value, ours: &Value, path: &str, errors: &mut Vec<String>) {
    let at = if path.is_empty() { "<root>" } else { path };
    let their_type = theirs["type"].as_str();
    let our_type = ours["type"].as_str();
    if their_type.is_some() && their_type != our_type {
        errors.push(format!(
            "{at}: type {their_type:?} in OpenELB, {our_type:?} in oxelb"
        ));
        return;
    }

    // Objects: every property of theirs must exist in ours.
    if let Some(props) = theirs["properties"].as_object() {
        for (name, their_prop) in props {
            if path.is_empty() && IMPLICIT_ROOT_FIELDS.contains(&name.as_str()) {
                continue;
            }
            let child = child(path, name);
            match ours["properties"].get(name) {
                Some(our_prop) => compare(their_prop, our_prop, &child, errors),
                None => errors.push(format!("{child}: missing in oxelb")),
            }
        }
    }
    // Maps.
    if theirs["additionalProperties"].is_object() {
        if ours["additionalProperties"].is_object() {
            compare(
                &theirs["additionalProperties"],
                &ours["additionalProperties"],
                &map_values(path),
                errors,
            );
        } else {
            errors.push(format!(
                "{at}: a map (additionalProperties) in OpenELB, not in oxelb"
            ));
        }
    }
    // Arrays.
    if theirs["items"].is_object() {
        if ours["items"].is_object() {
            compare(&theirs["items"], &ours["items"], &list_items(path), errors);
        } else {
            errors.push(format!("{at}: an array with items in OpenELB, no items in oxelb"));
        }
    }

    if !theirs["x-kubernetes-map-type"].is_null()
        && theirs["x-kubernetes-map-type"] != ours["x-kubernetes-map-type"]
    {
        errors.push(format!(
            "{at}: x-kubernetes-map-type {} in OpenELB, {} in oxelb",
            theirs["x-kubernetes-map-type"], ours["x-kubernetes-map-type"]
        ));
    }

    // Requiredness.
    let their_required = strings(&theirs["required"]);
    for name in strings(&ours["required"]) {
        if !their_required.contains(&name) && !ALLOWED.contains(&(path, format!("requires {name}").as_str()))
        {
            errors.push(format!(
                "{at}: oxelb requires {name:?}, OpenELB leaves it optional"
            ));
        }
    }
    for name in &their_required {
        if !strings(&ours["required"]).contains(name) {
            // Not an incompatibility for objects, but the brief asks for the same optionality.
            errors.push(format!(
                "{at}: OpenELB requires {name:?}, oxelb leaves it optional"
            ));
        }
    }

    // No added validation.
    if let Some(our_enum) = ours["enum"].as_array() {
        let our_values: BTreeSet<String> = our_enum.iter().map(Value::to_string).collect();
        match theirs["enum"].as_array() {
            None => errors.push(format!("{at}: oxelb adds an enum OpenELB does not have")),
            Some(their_enum) => {
                for value in their_enum {
                    if !our_values.contains(&value.to_string()) {
                        errors.push(format!("{at}: OpenELB allows {value}, oxelb's enum does not"));
                    }
                }
            }
        }
    }
    if !ours["pattern"].is_null() && ours["pattern"] != theirs["pattern"] {
        errors.push(format!(
            "{at}: oxelb pattern {} differs from OpenELB's {}",
            ours["pattern"], theirs["pattern"]
        ));
    }
    for bound in ["minimum", "maximum"] {
        let Some(our_bound) = ours[bound].as_f64() else {
            continue;
        };
        if theirs[bound].as_f64() == Some(our_bound) {
            continue;
        }
        let implied = representational_bounds(ours["format"].as_str())
            .is_some_and(|(min, max)| our_bound == if bound == "minimum" { min } else { max });
        if !implied {
            errors.push(format!(
                "{at}: oxelb adds {bound} {our_bound} that OpenELB does not have"
            ));
        }
    }
}

fn check_kind(file: &str, ours: Value) {
    let theirs = openelb(file);
    let mut errors = Vec::new();
    let versions = theirs["spec"]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{file}: OpenELB serves v1alpha1 and v1alpha2");
    for version in versions {
        let name = version["name"].as_str().unwrap();
        let Some(our_schema) = schema_of(&ours, name) else {
            errors.push(format!("{file} {name}: version not served by oxelb"));
            continue;
        };
        let mut version_errors = Vec::new();
        compare(
            &version["schema"]["openAPIV3Schema"],
            our_schema,
            "",
            &mut version_errors,
        );
        errors.extend(version_errors.into_iter().map(|e| format!("{file} {name}: {e}")));

        // Same served/storage flags, printer columns and status subresource.
        let our_version = ours["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap();
        for key in ["served", "storage", "additionalPrinterColumns"] {
            if version[key] != our_version[key] {
                errors.push(format!(
                    "{file} {name}: {key} is {} in OpenELB, {} in oxelb",
                    version[key], our_version[key]
                ));
            }
        }
        let their_status = !version["subresources"]["status"].is_null();
        let our_status = !our_version["subresources"]["status"].is_null();
        if their_status != our_status {
            errors.push(format!(
                "{file} {name}: status subresource {their_status} in OpenELB, {our_status} in oxelb"
            ));
        }
    }
    for key in ["group", "scope"] {
        if theirs["spec"][key] != ours["spec"][key] {
            errors.push(format!("{file}: spec.{key} differs"));
        }
    }
    for key in ["kind", "plural", "singular", "categories"] {
        if theirs["spec"]["names"][key] != ours["spec"]["names"][key] {
            errors.push(format!(
                "{file}: names.{key} is {} in OpenELB, {} in oxelb",
                theirs["spec"]["names"][key], ours["spec"]["names"][key]
            ));
        }
    }
    if theirs["metadata"]["name"] != ours["metadata"]["name"] {
        errors.push(format!("{file}: CRD name differs"));
    }
    assert!(
        errors.is_empty(),
        "oxelb's CRD is not compatible with OpenELB's:\n  {}",
        errors.join("\n  ")
    );
}

#[test]
fn eips_accept_everything_openelb_accepts() {
    check_kind("network.kubesphere.io_eips.yaml", ours(crd::eips().unwrap()));
}

#[test]
fn bgpconfs_accept_everything_openelb_accepts() {
    check_kind(
        "network.kubesphere.io_bgpconfs.yaml",
        ours(crd::bgp_confs().unwrap()),
    );
}

#[test]
fn bgppeers_accept_everything_openelb_accepts() {
    check_kind(
        "network.kubesphere.io_bgppeers.yaml",
        ours(crd::bgp_peers().unwrap()),
    );
}

#[test]
fn the_checker_catches_a_missing_field_and_a_wrong_type() {
    // Guard against a checker that passes everything.
    let theirs: Value = serde_json::json!({
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "string"}},
    });
    let ours: Value = serde_json::json!({
        "type": "object",
        "required": ["c"],
        "properties": {"b": {"type": "string"}, "c": {"type": "string", "pattern": "^x$"}},
    });
    let mut errors = Vec::new();
    compare(&theirs, &ours, "", &mut errors);
    assert_eq!(
        errors,
        [
            "a: missing in oxelb",
            r#"b: type Some("integer") in OpenELB, Some("string") in oxelb"#,
            r#"c: oxelb pattern "^x$" differs from OpenELB's null"#,
            r#"<root>: oxelb requires "c", OpenELB leaves it optional"#,
        ]
    );
}

#[test]
fn openelb_has_193_property_paths_in_all() {
    // The paths every check above compares, named as `docs/openelb-fields.md` lists them (the
    // same walker, `support/openelb_paths.rs`). A new OpenELB schema changes this count, and the
    // table must follow.
    let paths = openelb_paths::reference_paths(std::path::Path::new(FIXTURES));
    assert_eq!(paths.len(), 193);
    assert!(paths.iter().any(
        |(kind, version, path)| (kind.as_str(), version.as_str(), path.as_str())
            == ("BgpPeer", "v1alpha2", "spec.afiSafis[].addPaths.config.sendMax")
    ));
    assert!(paths.iter().any(|(_, _, path)| path == "status.used.<value>"));
}
