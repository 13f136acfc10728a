# syntax=docker/dockerfile:1
# oxelb images: both binaries built static (musl) in one stage, each shipped alone on an empty base.
#
#   docker build --target controller -t oxelb/oxelb-controller:v0.1.0 .
#   docker build --target speaker    -t oxelb/oxelb-speaker:v0.1.0 .
#
# The tags are the ones config/oxelb.yaml refers to. Into kind: `kind load docker-image <tag>`.
# Needs Docker with internet access (the Rust image, the musl target, crates.io). The build stage
# runs images/build.sh, the one build recipe: without Docker, `sudo images/build.sh` builds the same
# binaries the same way and the same two images with buildah, as OCI archives (the test command does
# that and runs them with podman). The global allocator, jemalloc, is compiled from C with musl-gcc
# and make (both in this stage), tuned by the .cargo/config.toml the build context carries.

FROM rust:1-bookworm AS build
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
# amd64 -> x86_64, arm64 -> aarch64: the musl target of the platform being built.
RUN case "${TARGETARCH:-amd64}" in \
      amd64) echo x86_64-unknown-linux-musl ;; \
      arm64) echo aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac > /target \
 && rustup target add "$(cat /target)"
WORKDIR /src
COPY . .
# The copy below names target/: pin it, whatever a .cargo/config.toml in the context says.
ENV CARGO_TARGET_DIR=/src/target
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    OXELB_MUSL_TARGET="$(cat /target)" images/build.sh binaries /out

# The controller runs as the unprivileged user the Deployment names (65532), read-only.
FROM scratch AS controller
COPY --from=build /out/oxelb-controller /oxelb-controller
USER 65532:65532
ENTRYPOINT ["/oxelb-controller"]

# The speaker runs as root with only NET_RAW and NET_ADMIN (the DaemonSet sets both).
FROM scratch AS speaker
COPY --from=build /out/oxelb-speaker /oxelb-speaker
ENTRYPOINT ["/oxelb-speaker"]
