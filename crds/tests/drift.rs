//! The committed `config/crd/*.yaml` and `config/oxelb.yaml` are exactly what the library generates.

// Tests may panic on unexpected input: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use oxelb_crds::manifests::{self, CRDGEN_COMMAND};

#[test]
fn committed_manifests_match_the_generator() {
    let config_dir = manifests::default_config_dir();
    let stale = manifests::stale_files(&config_dir).unwrap();
    assert!(
        stale.is_empty(),
        "generated manifests are stale or missing: {}; run `{CRDGEN_COMMAND}` and commit the result",
        stale
            .iter()
            .map(|p| format!("config/{p}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

#[test]
fn every_document_of_the_all_in_one_manifest_is_a_kubernetes_object() {
    use serde::Deserialize;

    let text = manifests::assemble_all_in_one(&manifests::default_config_dir()).unwrap();
    let mut kinds = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(document).unwrap();
        let kind = value["kind"].as_str().unwrap_or_default().to_owned();
        assert!(
            value["apiVersion"].is_string() && !kind.is_empty(),
            "not an object: {value:?}"
        );
        kinds.push(kind);
    }
    let crds = kinds.iter().filter(|k| *k == "CustomResourceDefinition").count();
    assert_eq!(crds, 3, "the three CRDs are included exactly once: {kinds:?}");
}
