#!/usr/bin/env bash
# The oxelb demo: `sudo ./examples/lab/demo.sh` on a fresh Debian machine.
#
# Installs the Debian packages it needs, builds the release binaries, then runs oxelb-demo: a
# router (FRR), two clients and three nodes in network namespaces, the controller and a speaker per
# node on the objects in examples/lab/, and prints step by step what they do. Only documentation
# addresses (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) are used, all inside the namespaces.
# Everything it makes is removed when it ends: on success, on failure and on Ctrl-C (a failed run
# keeps its logs and says where).
set -euo pipefail
cd "$(dirname "$0")/../.."

prefix=oxdemo
packages=(gcc iproute2 iputils-ping arping frr)

if [[ $(id -u) -ne 0 ]]; then
  echo "The demo builds network namespaces and needs root: sudo $0" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# Rust is usually installed per user with rustup; under sudo, build as that user with their cargo
# so target/ stays theirs.
build=(cargo build --release --locked -p oxelb-controller -p oxelb-speaker -p oxelb-tests --bins)
if command -v cargo >/dev/null; then
  run_build=("${build[@]}")
elif [[ -n ${SUDO_USER:-} && -x $(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo/bin/cargo ]]; then
  home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  run_build=(sudo -u "$SUDO_USER" env "PATH=$home/.cargo/bin:$PATH" "${build[@]}")
else
  echo "cargo not found: install Rust stable (https://rustup.rs), then run this again" >&2
  exit 1
fi
echo "==> building release binaries (the first build takes a few minutes)"
"${run_build[@]}"

remove_namespaces() {
  local ns pids
  for ns in $(ip netns list | awk '{print $1}' | grep "^${prefix}-" || true); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -n $pids ]] && kill -9 $pids 2>/dev/null || true
    ip netns delete "$ns" 2>/dev/null || true
  done
}

work=$(mktemp -d /tmp/oxelb-demo.XXXXXX)
failed=0
cleanup() {
  remove_namespaces
  if ((failed)); then
    echo "The lab is removed; its logs are kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'echo; echo "Interrupted."; exit 130' INT TERM

# A run killed with -9 may have left namespaces behind.
remove_namespaces

echo "==> running the demo"
target/release/oxelb-demo --bin-dir target/release --manifests examples/lab --work "$work" --prefix "$prefix" || failed=1
exit "$failed"
