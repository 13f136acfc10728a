#!/usr/bin/env bash
# The oxelb demo: `sudo ./examples/lab/demo.sh` on a fresh Debian machine.
#
# Installs the Debian packages it needs, builds the release binaries, then runs oxelb-demo: a
# router (FRR), two clients and three nodes in network namespaces, the controller and a speaker per
# node on the objects in examples/lab/, and prints step by step what they do. Only documentation
# addresses (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) are used, all inside the namespaces.
# Everything it makes is removed when it ends: on success, on failure and on Ctrl-C (a failed run
# keeps its logs and says where; a run that fails before the lab starts says what failed).
set -euo pipefail
cd "$(dirname "$0")/../.."
# cargo_bin_dir: where cargo put the binaries (CARGO_TARGET_DIR, build.target-dir, ...).
source examples/lab/cargo-bins.sh

prefix=oxdemo
packages=(gcc make iproute2 iputils-ping arping frr)

if [[ $(id -u) -ne 0 ]]; then
  echo "The demo builds network namespaces and needs root: sudo $0" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# What the script is doing, for the message when it stops with an error before the lab starts.
stage="checking the Debian packages"
work=""
lab_started=0
on_exit() {
  local status=$?
  remove_namespaces
  if ((status == 0)); then
    [[ -n $work ]] && rm -rf "$work"
  elif ((lab_started)) && [[ -n $(ls -A "$work" 2>/dev/null) ]]; then
    echo "The lab is removed; its logs are kept in $work" >&2
  else
    [[ -n $work ]] && rm -rf "$work"
    echo "The demo stopped while $stage (exit $status), before the lab started; the error is above." >&2
  fi
  return "$status"
}

remove_namespaces() {
  local ns pids
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${prefix}-" || true); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -n $pids ]] && kill -9 $pids 2>/dev/null || true
    ip netns delete "$ns" 2>/dev/null || true
  done
}
trap on_exit EXIT
trap 'echo; echo "Interrupted."; exit 130' INT TERM

if ((${#missing[@]})); then
  stage="installing the Debian packages ${missing[*]}"
  echo "==> installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# Rust is usually installed per user with rustup; under sudo, build as that user with their cargo
# so target/ stays theirs (sudo drops CARGO_TARGET_DIR from the environment: pass it on).
build=(cargo build --release --locked -p oxelb-controller -p oxelb-speaker -p oxelb-tests --bins)
if command -v cargo >/dev/null; then
  run_build=("${build[@]}")
elif [[ -n ${SUDO_USER:-} && -x $(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo/bin/cargo ]]; then
  home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
  run_build=(sudo -u "$SUDO_USER" env "PATH=$home/.cargo/bin:$PATH"
    ${CARGO_TARGET_DIR:+"CARGO_TARGET_DIR=$CARGO_TARGET_DIR"} "${build[@]}")
else
  stage="looking for cargo"
  echo "cargo not found: install Rust stable (https://rustup.rs), then run this again" >&2
  exit 1
fi
stage="building the release binaries (${build[*]})"
echo "==> building release binaries (the first build takes a few minutes)"
# Wherever cargo puts them (CARGO_TARGET_DIR, build.target-dir): cargo says, the script listens.
bin_dir=$(cargo_bin_dir "${run_build[@]}")

# A run killed with -9 may have left namespaces behind.
stage="removing namespaces a killed run left"
remove_namespaces

stage="starting $bin_dir/oxelb-demo"
work=$(mktemp -d /tmp/oxelb-demo.XXXXXX)
echo "==> running the demo"
lab_started=1
"$bin_dir/oxelb-demo" --bin-dir "$bin_dir" --manifests examples/lab --work "$work" --prefix "$prefix"
