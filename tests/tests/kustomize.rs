//! `config/kustomization.yaml` installs what `config/oxelb.yaml` installs, and the example overlay
//! (`examples/kustomize/`) changes only what it says.
//!
//! Rendering needs kustomize: `kubectl kustomize` (or a `kustomize` binary) where present. Debian
//! packages neither, and no registry this project uses has a faithful one, so on a machine without
//! them the rendering tests say that they skip and why; the checks that need no renderer (the same
//! files in the same order, the overlay's objects valid and aimed at objects that exist) always run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, path::Path, process::Command};

use oxelb_crds::v1alpha2::Eip;
use oxelb_tests::workspace_root;
use serde_json::Value;

fn read(rel: &str) -> String {
    let path = workspace_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The documents of a multi-document YAML text, as JSON values (comments gone, empty documents
/// skipped).
fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// A whole number written as a float (`4294967295.0`, as the CRD generator writes schema bounds)
/// becomes an integer (as kustomize writes it): the same number either way.
fn normalize(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && n.is_f64())
                && f.abs() < 9.0e15
            {
                // Exact: |f| < 2^53.
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        Value::Object(map) => map.values_mut().for_each(normalize),
        _ => {}
    }
}

/// The documents as a sorted list of canonical JSON strings (order does not matter).
fn canonical(docs: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = docs
        .iter()
        .map(|d| {
            let mut d = d.clone();
            normalize(&mut d);
            serde_json::to_string(&d).unwrap()
        })
        .collect();
    out.sort();
    out
}

fn kustomization(rel: &str) -> Value {
    serde_yaml::from_str(&read(rel)).unwrap()
}

/// Renders a kustomization directory with `kubectl kustomize` or `kustomize build`; `None` after
/// saying on stderr that `test` skips, when neither is installed.
fn render(test: &str, dir: &Path) -> Option<String> {
    let attempts: [(&str, &[&str]); 2] = [("kubectl", &["kustomize"]), ("kustomize", &["build"])];
    for (program, args) in attempts {
        let Ok(out) = Command::new(program).args(args).arg(dir).output() else {
            continue; // not installed
        };
        assert!(
            out.status.success(),
            "{program} {} {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        return Some(String::from_utf8(out.stdout).unwrap());
    }
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: neither `kubectl` nor `kustomize` is installed (Debian packages neither); \
         the file-list and overlay checks of tests/kustomize.rs still ran"
    );
    None
}

#[test]
fn the_kustomization_lists_the_files_of_the_all_in_one_manifest_in_order() {
    let all_in_one = read("config/oxelb.yaml");
    let mut sources: Vec<&str> = Vec::new();
    for line in all_in_one.lines() {
        if let Some(source) = line.strip_prefix("# Source: config/")
            && sources.last() != Some(&source)
        {
            sources.push(source);
        }
    }
    let resources: Vec<String> = kustomization("config/kustomization.yaml")["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    assert!(sources.len() >= 10, "{sources:?}");
    assert_eq!(
        resources, sources,
        "config/kustomization.yaml must list the parts of config/oxelb.yaml"
    );
}

#[test]
fn kubectl_kustomize_renders_the_all_in_one_manifest() {
    let test = "kubectl_kustomize_renders_the_all_in_one_manifest";
    let Some(rendered) = render(test, &workspace_root().join("config")) else {
        return;
    };
    let rendered = documents(&rendered);
    let expected = documents(&read("config/oxelb.yaml"));
    assert_eq!(rendered.len(), expected.len());
    pretty_assertions::assert_eq!(canonical(&rendered), canonical(&expected));
}

/// What the example overlay adds and changes, checked without a renderer.
#[test]
fn the_example_overlay_targets_objects_that_exist_and_adds_a_valid_pool() {
    let overlay = kustomization("examples/kustomize/kustomization.yaml");
    assert_eq!(overlay["resources"][0], "../../config");
    assert!(
        overlay.get("namespace").is_none(),
        "oxelb-system is fixed: no namespace override"
    );
    let base = documents(&read("config/oxelb.yaml"));
    let base_images: BTreeSet<String> = base
        .iter()
        .flat_map(|d| {
            d.pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| {
            c["image"]
                .as_str()
                .map(|i| i.split(':').next().unwrap_or(i).to_owned())
        })
        .collect();
    for image in overlay["images"].as_array().unwrap() {
        let name = image["name"].as_str().unwrap();
        assert!(
            base_images.contains(name),
            "images: {name} is not an image of config/ ({base_images:?})"
        );
    }
    for patch in overlay["patches"].as_array().unwrap() {
        let path = format!("examples/kustomize/{}", patch["path"].as_str().unwrap());
        let target = &documents(&read(&path))[0];
        let found = base.iter().any(|d| {
            d["kind"] == target["kind"]
                && d["metadata"]["name"] == target["metadata"]["name"]
                && d["metadata"]["namespace"] == target["metadata"]["namespace"]
        });
        assert!(found, "{path}: patches no object of config/");
    }
    let eip: Eip = serde_yaml::from_str(&read("examples/kustomize/eip-team-a.yaml")).unwrap();
    eip.spec.parsed_address().unwrap();
    assert_eq!(
        eip.spec.namespaces.as_deref(),
        Some(&["team-a".to_owned(), "team-b".to_owned()][..])
    );
}

#[test]
fn the_example_overlay_renders_with_its_changes_and_nothing_else() {
    let test = "the_example_overlay_renders_with_its_changes_and_nothing_else";
    let Some(rendered) = render(test, &workspace_root().join("examples/kustomize")) else {
        return;
    };
    let mut rendered = documents(&rendered);
    let base = documents(&read("config/oxelb.yaml"));
    assert_eq!(rendered.len(), base.len() + 1, "the base plus the pool");
    let pool = rendered
        .iter()
        .position(|d| d["kind"] == "Eip" && d["metadata"]["name"] == "team-a")
        .expect("the team-a Eip");
    rendered.remove(pool);
    let mut changed = Vec::new();
    for doc in &mut rendered {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        if let Some(spec) = doc.pointer_mut("/spec/template/spec") {
            let image = spec["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(
                image.starts_with("registry.example.com/oxelb/"),
                "{kind}: {image}"
            );
            spec["containers"][0]["image"] = Value::from(image.replace("registry.example.com/", ""));
            if kind == "DaemonSet" {
                let selector = spec.as_object_mut().unwrap().remove("nodeSelector");
                assert_eq!(
                    selector,
                    Some(serde_json::json!({"example.com/load-balancer": "true"}))
                );
            }
            changed.push(kind);
        }
    }
    changed.sort();
    assert_eq!(changed, ["DaemonSet", "Deployment"]);
    // With those changes undone, the overlay's objects are the base's.
    pretty_assertions::assert_eq!(canonical(&rendered), canonical(&base));
}
