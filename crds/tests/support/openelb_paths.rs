//! The property paths of OpenELB's CRD schemas (`crds/tests/fixtures/openelb-v0.6-crds/`), named
//! one way for every test that walks them: `spec.conf.peerAs`, `.<value>` for a map's values, `[]`
//! for a list's items. `crds/tests/openelb_compat.rs` names the paths it compares with these
//! functions, and `tests/tests/docs.rs` includes this file to check `docs/openelb-fields.md`
//! (one file, included by both, so the two cannot name a path differently).

// Each includer uses a part of it.
#![allow(dead_code)]

use serde_json::Value;

/// Root fields the apiserver validates itself; kube's derive leaves them out of the schema, and
/// no table lists them.
pub const IMPLICIT_ROOT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// OpenELB's CRD manifests, relative to the workspace root.
pub const FIXTURES: &str = "crds/tests/fixtures/openelb-v0.6-crds";

/// The manifest file of each kind, by kind.
pub const FILES: [(&str, &str); 3] = [
    ("BgpConf", "network.kubesphere.io_bgpconfs.yaml"),
    ("BgpPeer", "network.kubesphere.io_bgppeers.yaml"),
    ("Eip", "network.kubesphere.io_eips.yaml"),
];

/// The path of property `name` of the object at `path` (`""`: the root).
pub fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The path of the values of the map at `path`.
pub fn map_values(path: &str) -> String {
    format!("{path}.<value>")
}

/// The path of the items of the list at `path`.
pub fn list_items(path: &str) -> String {
    format!("{path}[]")
}

/// Every property path of `schema` (an `openAPIV3Schema`), depth first in the schema's order, the
/// implicit root fields left out.
pub fn property_paths(schema: &Value) -> Vec<String> {
    fn walk(schema: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(props) = schema["properties"].as_object() {
            for (name, prop) in props {
                if path.is_empty() && IMPLICIT_ROOT_FIELDS.contains(&name.as_str()) {
                    continue;
                }
                let here = child(path, name);
                out.push(here.clone());
                walk(prop, &here, out);
            }
        }
        if schema["additionalProperties"].is_object() {
            let here = map_values(path);
            out.push(here.clone());
            walk(&schema["additionalProperties"], &here, out);
        }
        if schema["items"].is_object() {
            let here = list_items(path);
            out.push(here.clone());
            walk(&schema["items"], &here, out);
        }
    }
    let mut out = Vec::new();
    walk(schema, "", &mut out);
    out
}

/// Every (kind, version, path) of OpenELB's three CRDs, read from `fixtures` (the directory of
/// [`FILES`]).
pub fn reference_paths(fixtures: &std::path::Path) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (kind, file) in FILES {
        let path = fixtures.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let crd: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
            let name = version["name"].as_str().unwrap_or_default();
            for p in property_paths(&version["schema"]["openAPIV3Schema"]) {
                out.push((kind.to_owned(), name.to_owned(), p));
            }
        }
    }
    out
}
