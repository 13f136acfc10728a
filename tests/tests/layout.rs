//! The house rules of the workspace's layout (`ARCHITECTURE.md`), checked so that they stay
//! properties of the code and not habits:
//!
//! - **Pure crates stay pure.** `oxelb-ipam`, `oxelb-speaker-core`, `oxelb-bgp` and `oxelb-bfd`
//!   name no async runtime, Kubernetes client, socket or clock crate among their dependencies, and
//!   the API types they share (`oxelb-crds`) take only kube's CRD derive, not its client.
//! - **No file over about 600 lines without a reason.** A Rust source file longer than
//!   [`LONG_FILE`] lines says why at its top, with the words "Long because".

use std::path::{Path, PathBuf};

use oxelb_tests::workspace_root;

/// The crates that decide, in pure code, and their manifests.
const PURE_CRATES: [&str; 4] = [
    "controller/ipam/Cargo.toml",
    "speaker/core/Cargo.toml",
    "speaker/bgp/Cargo.toml",
    "speaker/bfd/Cargo.toml",
];

/// Crates a pure crate must not depend on: runtimes, clients, sockets and system calls, clocks.
const FORBIDDEN: [&str; 18] = [
    "tokio",
    "tokio-util",
    "tokio-stream",
    "async-std",
    "futures",
    "kube",
    "kube-client",
    "kube-runtime",
    "hyper",
    "tower",
    "reqwest",
    "socket2",
    "mio",
    "libc",
    "nix",
    "chrono",
    "jiff",
    "oxelb-runtime",
];

/// Past this many lines a file states why it is long.
const LONG_FILE: usize = 620;

/// The dependency names of a `[dependencies]`-like table (`[dependencies]`,
/// `[target.'...'.dependencies]`) of a Cargo manifest: each `name = ...` line or
/// `[dependencies.name]` header. Dev- and build-dependencies are left out: tests may use a clock.
fn normal_dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']');
            if let Some(name) = header.strip_prefix("dependencies.") {
                names.push(name.trim().to_owned());
                in_deps = false;
            } else {
                in_deps = header == "dependencies" || header.ends_with(".dependencies");
            }
            continue;
        }
        if in_deps
            && !line.starts_with('#')
            && let Some((name, _)) = line.split_once('=')
        {
            names.push(name.trim().trim_matches('"').to_owned());
        }
    }
    names
}

#[test]
fn the_dependency_parser_reads_what_cargo_reads() {
    let manifest = r#"
[package]
name = "x"
[dependencies]
# a comment = no
tokio = { workspace = true }
"kube" = "5"
[dev-dependencies]
proptest = "1"
[target.'cfg(unix)'.dependencies]
libc = "0.2"
[dependencies.socket2]
version = "0.6"
[build-dependencies]
cc = "1"
"#;
    assert_eq!(
        normal_dependencies(manifest),
        ["tokio", "kube", "libc", "socket2"]
    );
}

#[test]
fn pure_crates_name_no_runtime_client_socket_or_clock() {
    let root = workspace_root();
    let mut violations = Vec::new();
    for manifest in PURE_CRATES {
        let path = root.join(manifest);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let deps = normal_dependencies(&text);
        assert!(!deps.is_empty(), "{manifest}: no [dependencies] found");
        for dep in deps {
            if FORBIDDEN.contains(&dep.as_str()) {
                violations.push(format!("{manifest}: depends on {dep}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "a pure crate may not reach I/O (see ARCHITECTURE.md, the dependency rule): {violations:#?}"
    );
}

#[test]
fn the_api_types_take_kubes_derive_not_its_client() {
    let path = workspace_root().join("crds/Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let kube = text
        .lines()
        .find(|line| line.trim_start().starts_with("kube ="))
        .unwrap_or_else(|| panic!("{}: no kube dependency line", path.display()));
    assert!(
        kube.contains("default-features = false") && !kube.contains("workspace = true"),
        "crds/Cargo.toml: kube must be declared without default features (the workspace's kube has the client): {kube}"
    );
    for feature in ["client", "runtime", "ws", "rustls-tls", "openssl-tls"] {
        assert!(
            !kube.contains(&format!("\"{feature}\"")),
            "crds/Cargo.toml: kube feature {feature:?} would pull a client into the pure crates: {kube}"
        );
    }
}

/// Every `.rs` file of the workspace outside `target/` and hidden directories.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn a_long_file_says_why_at_its_top() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 100, "only {} Rust files found", files.len());
    let mut unexplained = Vec::new();
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let lines = text.lines().count();
        let top: String = text.lines().take(30).collect::<Vec<_>>().join("\n");
        if lines > LONG_FILE && !top.contains("Long because") {
            let rel = path.strip_prefix(&root).unwrap_or(&path);
            unexplained.push(format!("{} ({lines} lines)", rel.display()));
        }
    }
    assert!(
        unexplained.is_empty(),
        "split these by concern, or say at the top why they are long (\"Long because ...\"): {unexplained:#?}"
    );
}
