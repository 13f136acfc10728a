#!/usr/bin/env bash
# The oxelb test command (the README's second command; `.ci/run` calls exactly this).
#
# Runs, in order: formatting check, clippy with warnings denied (the pure crates are also linted
# without their optional Kubernetes feature), then every test of the workspace. It installs what the
# tests need from Debian when it runs as root and a package is missing, so it works on a fresh Debian
# machine and from a clean CI checkout.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# Debian packages the tests need; each is installed only when missing. `required` builds (make:
# jemalloc, the binaries' allocator, is compiled from source) and runs
# every test; `lab` is for the network-namespace labs, which run only as root (the real routers FRR,
# BIRD 2 and GoBGP; ping, arping and ndisc6 as clients whose kernels resolve layer2 IPs; tcpdump;
# curl for the speaker's metrics inside a node namespace).
# `images` build the release images without Docker or a registry (images/build.sh: musl-gcc for
# jemalloc, buildah for the FROM scratch images) and run them (podman with runc, which works on
# hosts with cgroups v1 and v2 side by side; tests/tests/images.rs and images_controller.rs), and
# import them as kind does (containerd's ctr).
# `tools` are checkers some tests call: promtool (Debian package `prometheus`) checks and unit-tests
# the alerting rules in config/prometheus/ (tests/tests/monitoring.rs; it reports that it skips when
# promtool is missing outside CI).
required=(gcc make)
lab=(iproute2 iputils-ping arping ndisc6 tcpdump curl frr bird2 gobgpd)
images=(musl-tools buildah podman runc containerd)
tools=(prometheus)

missing_from() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$p"
  done
}

if [[ $(id -u) -eq 0 ]]; then
  mapfile -t missing < <(missing_from "${required[@]}" "${lab[@]}" "${images[@]}" "${tools[@]}")
  if ((${#missing[@]})); then
    if command -v apt-get >/dev/null; then
      log "installing Debian packages: ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
      echo "missing Debian packages: ${missing[*]} (no apt-get here: install them by hand)" >&2
      exit 1
    fi
  fi
else
  mapfile -t missing < <(missing_from "${required[@]}")
  if ((${#missing[@]})); then
    echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  echo "note: not root: the network-namespace lab tests will report that they skip" >&2
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust stable (1.89 or newer) with rustup, then run this again" >&2
  exit 1
fi

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy (all targets, warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p oxelb-crds --no-default-features --all-targets --locked -- -D warnings

if [[ $(id -u) -eq 0 ]]; then
  # The images users install, built as users build them, then run by tests/tests/images*.rs.
  musl_target=x86_64-unknown-linux-musl
  [[ $(uname -m) == aarch64 ]] && musl_target=aarch64-unknown-linux-musl
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$musl_target"; then
    log "rustup target add $musl_target"
    rustup target add "$musl_target"
  fi
  log "images/build.sh (release binaries for $musl_target, OCI archives)"
  images_start=$(date +%s)
  images_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/images
  ./images/build.sh images "$images_dir"
  echo "images built in $(($(date +%s) - images_start)) s"
  export OXELB_IMAGES_DIR=$images_dir
fi

log "cargo test"
# cargo prints one "test result" line per test binary, the last often a doctest run with 0 tests;
# sum them into one closing line so the total is visible at the end.
test_log=$(mktemp)
trap 'rm -f "$test_log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$test_log"
awk '/^test result:/ { p += $4; f += $6 } END { printf "\ntests: %d passed, %d failed\n", p, f }' "$test_log"
