# syntax=docker/dockerfile:1
# keyrotor's image: the operator (`keyrotor run`), the reporter sidecar
# (`keyrotor reporter`), the gateways' verifier sidecar (`keyrotor verifier`),
# the reference Redis hook (`keyrotor hook redis`) and the CRD printer in one
# binary on a distroless, non-root base. (The sidecars' own slim binary,
# `keyrotor-sidecar` from crates/sidecar, is not in this image yet.)
#
#   docker build -t keyrotor:0.1.0 .
#
# Release builds use --no-default-features: the in-memory Kubernetes API
# (feature `testkit`, for tests and `keyrotor demo`) is not in the image.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first, from the manifests and the lockfile alone, so source
# edits reuse the layer. Every target the manifests declare (benches too) and
# the workspace's other members (the in-memory API, the test support) only
# need a stub to resolve.
COPY Cargo.toml Cargo.lock ./
COPY crates/consumer/Cargo.toml crates/consumer/
COPY crates/sidecar/Cargo.toml crates/sidecar/
COPY crates/hooks/Cargo.toml crates/hooks/
COPY crates/testkit/Cargo.toml crates/testkit/
COPY crates/testsupport/Cargo.toml crates/testsupport/
COPY crates/benchsupport/Cargo.toml crates/benchsupport/
RUN mkdir -p src/bin benches crates/consumer/src crates/sidecar/src crates/hooks/src crates/testkit/src crates/testsupport/src crates/benchsupport/src \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > src/bin/kubectl-keyrotor.rs \
 && echo 'fn main() {}' > benches/scale.rs \
 && echo 'fn main() {}' > benches/nudge.rs \
 && echo 'fn main() {}' > benches/gateway.rs \
 && echo 'fn main() {}' > benches/peers.rs \
 && echo 'fn main() {}' > benches/sidecars.rs \
 && echo '' > src/lib.rs \
 && echo '' > crates/consumer/src/lib.rs \
 && echo 'fn main() {}' > crates/sidecar/src/main.rs \
 && echo '' > crates/sidecar/src/lib.rs \
 && echo '' > crates/hooks/src/lib.rs \
 && echo '' > crates/testkit/src/lib.rs \
 && echo '' > crates/testsupport/src/lib.rs \
 && echo '' > crates/benchsupport/src/lib.rs \
 && cargo fetch --locked
COPY src ./src
# The consumer crate is part of the product (wire contract, hook protocol,
# key type), and so are the sidecar crate (`keyrotor reporter` / `keyrotor
# verifier`, the admin server) and the reference hooks.
COPY crates/consumer ./crates/consumer
COPY crates/sidecar ./crates/sidecar
COPY crates/hooks ./crates/hooks
# The crates come from the fetch layer above (no network here); the target
# directory is a build cache only, the binary is copied out of it.
RUN --mount=type=cache,target=/src/target \
    cargo build --release --locked --offline --no-default-features -p keyrotor --bin keyrotor \
 && install -D -m 0755 target/release/keyrotor /out/keyrotor

# glibc and libgcc (what a Rust binary links), no shell, no package manager;
# the :nonroot tag runs as uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="keyrotor" \
      org.opencontainers.image.description="Kubernetes operator that rotates API keys with zero failed requests" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/keyrotor /keyrotor
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/keyrotor"]
CMD ["run"]
