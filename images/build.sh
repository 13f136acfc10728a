#!/usr/bin/env bash
# The one recipe for oxelb's release binaries and images. The Dockerfile's build stage runs
# `images/build.sh binaries /out`; without Docker or a registry, `sudo images/build.sh` builds the
# same binaries the same way and commits the two images with buildah (FROM scratch needs no
# registry) as OCI archives:
#
#   target/images/oxelb-controller.oci.tar   oxelb/oxelb-controller:v<version>, USER 65532:65532
#   target/images/oxelb-speaker.oci.tar      oxelb/oxelb-speaker:v<version>
#
# Each archive loads with `docker load -i`, `podman load -i`, `kind load image-archive` and
# `ctr images import` (its index carries both the OCI ref name and containerd's image name).
#
# Usage:
#   images/build.sh binaries DIR   build the static (musl) binaries and copy them into DIR
#   images/build.sh [images] [DIR] build the binaries and both OCI archives into DIR
#                                  (default: <cargo target dir>/images)
# OXELB_MUSL_TARGET overrides the musl target (default: the machine's, x86_64 or aarch64).
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo_bin_dir: where cargo put the binaries (CARGO_TARGET_DIR, build.target-dir, --target).
source examples/lab/cargo-bins.sh

mode=${1:-images}
case $mode in
  binaries | images) ;;
  *) echo "usage: $0 [binaries DIR | images [DIR]]" >&2; exit 2 ;;
esac

musl_target=${OXELB_MUSL_TARGET:-}
if [[ -z $musl_target ]]; then
  case $(uname -m) in
    x86_64) musl_target=x86_64-unknown-linux-musl ;;
    aarch64) musl_target=aarch64-unknown-linux-musl ;;
    *) echo "no musl target known for $(uname -m): set OXELB_MUSL_TARGET" >&2; exit 1 ;;
  esac
fi
command -v musl-gcc >/dev/null || {
  echo "musl-gcc not found (jemalloc is compiled with it): apt-get install musl-tools" >&2
  exit 1
}
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$musl_target"; then
  echo "the Rust target $musl_target is missing: rustup target add $musl_target" >&2
  exit 1
fi

# THE build command: both recipes (this script's images and the Dockerfile) run exactly this.
build=(cargo build --release --locked --target "$musl_target" -p oxelb-controller -p oxelb-speaker --bins)
echo "==> ${build[*]}" >&2
bin_dir=$(cargo_bin_dir "${build[@]}")

if [[ $mode == binaries ]]; then
  out=${2:?"usage: $0 binaries DIR"}
  mkdir -p "$out"
  cp "$bin_dir/oxelb-controller" "$bin_dir/oxelb-speaker" "$out/"
  exit 0
fi

command -v buildah >/dev/null || { echo "buildah not found: apt-get install buildah" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# <target dir>/<triple>/release -> <target dir>/images
out=${2:-$(dirname "$(dirname "$bin_dir")")/images}
mkdir -p "$out"
case $musl_target in
  x86_64-*) arch=amd64 ;;
  aarch64-*) arch=arm64 ;;
esac

work=$(mktemp -d)
containers=()
cleanup() {
  local c
  for c in "${containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# image NAME USER: FROM scratch, the binary at /NAME, ENTRYPOINT ["/NAME"], as the Dockerfile's
# stages, committed to an OCI layout and packed into $out/NAME.oci.tar.
image() {
  local name=$1 user=$2 ref="oxelb/$1:v$version" ctr layout
  ctr=$(buildah from --quiet scratch)
  containers+=("$ctr")
  buildah copy --quiet --chmod 0755 "$ctr" "$bin_dir/$name" "/$name" >/dev/null
  buildah config --os linux --arch "$arch" --entrypoint "[\"/$name\"]" --cmd '' \
    ${user:+--user "$user"} --label "org.opencontainers.image.title=$name" \
    --label "org.opencontainers.image.version=$version" "$ctr"
  layout=$work/$name
  # gzip-compressed layer (buildah stores layers uncompressed unless told): what a registry serves.
  buildah commit --quiet --timestamp 0 --disable-compression=false "$ctr" "oci:$layout:$ref" >/dev/null
  # containerd (ctr images import, kind load image-archive) names an image after
  # io.containerd.image.name; docker and podman load read the OCI ref name. Carry both.
  sed -i "s|\"org.opencontainers.image.ref.name\":|\"io.containerd.image.name\":\"docker.io/$ref\",&|" "$layout/index.json"
  grep -q '"io.containerd.image.name"' "$layout/index.json" || {
    echo "could not name $ref in $layout/index.json" >&2
    exit 1
  }
  tar -C "$layout" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -cf "$out/$name.oci.tar" oci-layout index.json blobs
  echo "$out/$name.oci.tar  $ref  $(du -k "$out/$name.oci.tar" | cut -f1) KiB" >&2
}

# The controller runs as the unprivileged user its Deployment names; the speaker as root, with the
# capabilities its DaemonSet grants.
image oxelb-controller 65532:65532
image oxelb-speaker ""
