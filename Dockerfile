# syntax=docker/dockerfile:1
# keyrotor's images, for users who build and push their own. Two targets:
#
#   docker build -t REGISTRY/keyrotor:VERSION .                          # the operator (the default)
#   docker build --target sidecar -t REGISTRY/keyrotor-sidecar:VERSION .
#
# operator  the `keyrotor` binary (the operator `keyrotor run`, the sidecars
#           `keyrotor reporter` / `keyrotor verifier`, the reference hooks
#           `keyrotor hook ...`, the CRD printer), `cargo build --release
#           --no-default-features`: the in-memory Kubernetes API (feature
#           `testkit`, for tests and `keyrotor demo`) is not in the image
# sidecar   the slim `keyrotor-sidecar` binary (`reporter` and `verifier`
#           only), `cargo build --profile sidecar -p keyrotor-sidecar`
#
# Each is an empty base with the binary and exactly what it needs to run:
# its loader and libraries (Debian 12's glibc and libgcc), the users root and
# nonroot (65532) without a shell, nsswitch.conf, the Debian packages'
# records for scanners, an empty /tmp, and for the operator Debian's CA
# bundle (hooks over https without a caBundle). `.ci/rootfs` puts them there,
# the script .ci/image runs for the images the chart installs and the
# release publishes: both hold the same files (docs/image.md lists them).
# No shell, no package manager; they run as 65532:65532.
#
# The build context is the whole workspace (.dockerignore leaves out only
# what holds no Rust), so no target needs a stub; .ci/check-dockerfile runs
# the build stages' `cargo fetch` on that context without docker and checks
# the stages. Add the version and revision labels with `docker build --label`.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS source
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
WORKDIR /src
COPY . .

# The registry and the target directory are caches: a source edit fetches
# nothing and rebuilds only the workspace's crates. The root file system is
# made while the binary is still in the cache mount.
FROM source AS sidecar-build
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo fetch --locked \
 && cargo build --profile sidecar --locked --offline -p keyrotor-sidecar \
 && .ci/rootfs /rootfs target/sidecar/keyrotor-sidecar keyrotor-sidecar

FROM source AS operator-build
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo fetch --locked \
 && cargo build --release --locked --offline --no-default-features -p keyrotor --bin keyrotor \
 && .ci/rootfs /rootfs target/release/keyrotor keyrotor --ca-bundle

FROM scratch AS sidecar
COPY --from=sidecar-build /rootfs/ /
LABEL org.opencontainers.image.title="keyrotor-sidecar" \
      org.opencontainers.image.description="keyrotor's sidecar for consumer pods: the reporter and the gateways' verifier" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/usr/local/bin
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/keyrotor-sidecar"]

# The operator: the last stage, what `docker build .` makes.
FROM scratch AS operator
COPY --from=operator-build /rootfs/ /
LABEL org.opencontainers.image.title="keyrotor" \
      org.opencontainers.image.description="Kubernetes operator that rotates API keys with zero failed requests" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/usr/local/bin
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/keyrotor"]
CMD ["run"]
