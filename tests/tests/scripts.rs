//! The project's shell scripts find the binaries they build where cargo put them, whatever
//! `CARGO_TARGET_DIR` or `build.target-dir` says (`examples/lab/cargo-bins.sh`, which `demo.sh`
//! sources). Each case builds a one-file crate with the real cargo into a target directory that is
//! not `<crate>/target`, and runs the script's function on it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use oxelb_tests::workspace_root;

/// A throwaway crate `hello` with one binary; `body` is its `main`.
fn crate_dir(root: &Path, body: &str) -> PathBuf {
    let dir = root.join("hello");
    std::fs::create_dir_all(dir.join("src")).expect("create the crate's directories");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .expect("write Cargo.toml");
    std::fs::write(dir.join("src/main.rs"), format!("fn main() {{ {body} }}\n")).expect("write main.rs");
    dir
}

/// Runs `cargo_bin_dir cargo build --offline` from the script on `dir`, in `dir`, with the
/// environment variables `env` set and `CARGO_TARGET_DIR` / `CARGO_BUILD_TARGET_DIR` otherwise
/// unset (the test runner's own cargo sets neither for the test, but a developer's shell may).
fn cargo_bin_dir(dir: &Path, env: &[(&str, &Path)]) -> Output {
    let script = workspace_root().join("examples/lab/cargo-bins.sh");
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(r#"set -euo pipefail; source "$1"; cargo_bin_dir cargo build --offline"#)
        .arg("cargo-bins-test")
        .arg(&script)
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run bash")
}

fn stdout_line(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo_bin_dir failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one directory expected on stdout, got {stdout:?}");
    lines[0].to_owned()
}

#[test]
fn cargo_target_dir_elsewhere_is_where_the_binaries_are_found() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = crate_dir(root.path(), "println!(\"hello\");");
    let elsewhere = root.path().join("shared-target");

    let found = PathBuf::from(stdout_line(&cargo_bin_dir(
        &dir,
        &[("CARGO_TARGET_DIR", elsewhere.as_path())],
    )));

    assert_eq!(found, elsewhere.join("debug"));
    assert!(
        found.join("hello").is_file(),
        "{} holds no hello",
        found.display()
    );
    assert!(
        !dir.join("target").exists(),
        "nothing should be built into the crate's own target/"
    );
}

#[test]
fn build_target_dir_from_cargo_config_is_followed() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = crate_dir(root.path(), "println!(\"hello\");");
    let configured = root.path().join("configured-target");
    std::fs::create_dir_all(dir.join(".cargo")).expect("create .cargo");
    std::fs::write(
        dir.join(".cargo/config.toml"),
        format!("[build]\ntarget-dir = {:?}\n", configured.display().to_string()),
    )
    .expect("write .cargo/config.toml");

    let found = PathBuf::from(stdout_line(&cargo_bin_dir(&dir, &[])));

    assert_eq!(found, configured.join("debug"));
    assert!(
        found.join("hello").is_file(),
        "{} holds no hello",
        found.display()
    );
}

#[test]
fn a_failed_build_is_reported_and_prints_no_directory() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = crate_dir(root.path(), "this is not rust");
    let elsewhere = root.path().join("shared-target");

    let output = cargo_bin_dir(&dir, &[("CARGO_TARGET_DIR", elsewhere.as_path())]);

    assert!(!output.status.success(), "a broken crate must fail");
    assert!(
        output.stdout.is_empty(),
        "no directory on stdout: {:?}",
        output.stdout
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cargo_bin_dir: the build failed"),
        "the failure is named: {stderr}"
    );
    assert!(
        stderr.contains("error"),
        "cargo's own compiler error is let through to stderr: {stderr}"
    );
}

/// The demo runs what `cargo_bin_dir` found, never a spelled-out `target/` path (the bug: it ran
/// `target/release/oxelb-demo`, which does not exist when `CARGO_TARGET_DIR` is set).
#[test]
fn demo_runs_the_binaries_cargo_reports() {
    let demo = std::fs::read_to_string(workspace_root().join("examples/lab/demo.sh")).expect("read demo.sh");
    let code: Vec<&str> = demo
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect();
    assert!(
        code.iter()
            .any(|line| line.contains("source examples/lab/cargo-bins.sh")),
        "demo.sh sources cargo-bins.sh"
    );
    assert!(
        code.iter()
            .any(|line| line.contains("bin_dir=$(cargo_bin_dir \"${run_build[@]}\")")),
        "demo.sh asks cargo_bin_dir where the build went"
    );
    assert!(
        code.iter()
            .any(|line| line.contains("\"$bin_dir/oxelb-demo\" --bin-dir \"$bin_dir\"")),
        "demo.sh runs oxelb-demo from that directory"
    );
    for line in &code {
        assert!(
            !line.contains("target/release") && !line.contains("target/debug"),
            "demo.sh spells a target path: {line}"
        );
    }
}
