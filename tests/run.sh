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

# Debian packages the tests need. Later lab tests (real FRR/BIRD/GoBGP routers, client namespaces)
# extend this list; each package is installed only when missing.
packages=(gcc)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
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

log "cargo test"
# cargo prints one "test result" line per test binary, the last often a doctest run with 0 tests;
# sum them into one closing line so the total is visible at the end.
test_log=$(mktemp)
trap 'rm -f "$test_log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$test_log"
awk '/^test result:/ { p += $4; f += $6 } END { printf "\ntests: %d passed, %d failed\n", p, f }' "$test_log"
