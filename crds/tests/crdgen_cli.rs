//! The `crdgen` binary writes the manifests into `--config-dir` and `--check` detects stale files.

// Tests may panic on unexpected input: that is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn crdgen(config_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crdgen"))
        .args(args)
        .arg("--config-dir")
        .arg(config_dir)
        .output()
        .unwrap()
}

#[test]
fn writes_then_checks_then_detects_a_stale_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rbac")).unwrap();
    std::fs::write(
        dir.path().join("rbac/role.yaml"),
        "apiVersion: v1\nkind: ConfigMap\n",
    )
    .unwrap();

    let check = crdgen(dir.path(), &["--check"]);
    assert!(!check.status.success(), "nothing written yet: check must fail");

    let write = crdgen(dir.path(), &[]);
    assert!(
        write.status.success(),
        "{}",
        String::from_utf8_lossy(&write.stderr)
    );
    for file in [
        "crd/network.kubesphere.io_eips.yaml",
        "crd/network.kubesphere.io_bgpconfs.yaml",
        "crd/network.kubesphere.io_bgppeers.yaml",
        "oxelb.yaml",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} written");
    }
    let all = std::fs::read_to_string(dir.path().join("oxelb.yaml")).unwrap();
    assert!(all.contains("# Source: config/rbac/role.yaml\napiVersion: v1\nkind: ConfigMap\n"));

    let check = crdgen(dir.path(), &["--check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // Another helper's manifest changes: the all-in-one file is now stale.
    std::fs::write(
        dir.path().join("rbac/role.yaml"),
        "apiVersion: v1\nkind: Secret\n",
    )
    .unwrap();
    let check = crdgen(dir.path(), &["--check"]);
    assert_eq!(check.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("oxelb.yaml is stale"), "{stderr}");
    assert!(
        stderr.contains("cargo run -p oxelb-crds --bin crdgen"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("eips.yaml"),
        "the CRDs are still fresh: {stderr}"
    );
}

#[test]
fn rejects_unknown_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let out = crdgen(dir.path(), &["--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}
