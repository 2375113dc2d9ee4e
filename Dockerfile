# syntax=docker/dockerfile:1
# keyrotor's operator image, for users who build and push their own: the
# `keyrotor` binary (the operator `keyrotor run`, the sidecars `keyrotor
# reporter` / `keyrotor verifier`, the reference hooks `keyrotor hook ...` and
# the CRD printer) on an empty base, with exactly what it needs to run:
#
#   /usr/local/bin/keyrotor                 the binary (the entrypoint, `run`)
#   the dynamic loader, libc, libm and      what `ldd` lists for it (Debian 12's
#   libgcc_s                                glibc and libgcc)
#   /etc/ssl/certs/ca-certificates.crt      Debian's CA bundle: hooks over https
#                                           without a caBundle trust the system
#                                           roots (rustls-native-certs)
#   /etc/passwd, /etc/group                 root, and nonroot (65532), no shell
#   /etc/nsswitch.conf                      hosts: files dns
#   /var/lib/dpkg/status.d/<package>        the Debian packages of those files,
#                                           for image scanners and SBOMs
#   /tmp                                    empty, mode 1777
#
# No shell, no package manager; it runs as 65532:65532. These are the
# contents .ci/image packs from the release binary without docker (the image
# the chart and the e2e suite install); keep the two lists alike.
#
#   docker build -t REGISTRY/keyrotor:VERSION .
#
# The build context is the whole workspace (.dockerignore leaves out only
# what holds no Rust), so no target needs a stub; .ci/check-dockerfile runs
# this build stage's commands on that context without docker. Release builds
# use --no-default-features: the in-memory Kubernetes API (feature
# `testkit`, for tests and `keyrotor demo`) is not in the image. The release
# workflow adds the version and revision labels.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
WORKDIR /src
COPY . .
# The registry and the target directory are caches: a source edit fetches
# nothing and rebuilds only the workspace's crates. The binary is copied out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo fetch --locked \
 && cargo build --release --locked --offline --no-default-features -p keyrotor --bin keyrotor \
 && install -D -m 0755 target/release/keyrotor /rootfs/usr/local/bin/keyrotor

# The root filesystem: the binary's libraries (and the Debian packages they
# come from), the CA bundle, the users, an empty /tmp.
RUN packages=(ca-certificates) \
 && for lib in $(ldd /rootfs/usr/local/bin/keyrotor | grep -oE '/[^ ]+' | sort -u); do \
      install -D -m 0755 "$(readlink -f "$lib")" "/rootfs$lib"; \
      pkg="$(dpkg-query -S "$lib" 2>/dev/null || dpkg-query -S "/usr$lib" 2>/dev/null || dpkg-query -S "$(readlink -f "$lib")")"; \
      packages+=("${pkg%%:*}"); \
    done \
 && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
 && printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' >/rootfs/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' >/rootfs/etc/group \
 && printf 'hosts: files dns\n' >/rootfs/etc/nsswitch.conf \
 && chmod 0644 /rootfs/etc/passwd /rootfs/etc/group /rootfs/etc/nsswitch.conf \
 && mkdir -p /rootfs/var/lib/dpkg/status.d \
 && for pkg in $(printf '%s\n' "${packages[@]}" | sort -u); do \
      dpkg-query -s "$pkg" | grep -vE '^(Status|Conffiles|Config-Version):|^ /' >"/rootfs/var/lib/dpkg/status.d/$pkg"; \
    done \
 && install -d -m 1777 /rootfs/tmp \
 && if find /rootfs -name sh -o -name bash -o -name dash | grep -q .; then echo "a shell reached the image" >&2; exit 1; fi

FROM scratch
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title="keyrotor" \
      org.opencontainers.image.description="Kubernetes operator that rotates API keys with zero failed requests" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/usr/local/bin
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/keyrotor"]
CMD ["run"]
