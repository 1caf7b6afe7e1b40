# syntax=docker/dockerfile:1
# secure-defaults: the webhook image.
#   docker build -t secure-defaults:0.1.0 .
# Build stage: the release binary, with the versions in Cargo.lock.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target dir between builds; the
# binary is copied out of the cached target dir.
# Linked statically (glibc, crt-static) so the run stage needs no libc: the
# same binary `make oci-image` packs (hack/oci-image/build-product.sh).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --locked --target x86_64-unknown-linux-gnu --bin secure-defaults \
    && install -D -m 0755 target/x86_64-unknown-linux-gnu/release/secure-defaults /out/secure-defaults

# Run stage: no libc, no shell, no package manager; CA certificates (the kube
# client of `scan` and `serve --namespace-policy` needs system roots),
# /etc/passwd with nonroot, /tmp. The :nonroot tag runs as 65532, stated again
# numerically so that runAsNonRoot can be verified by the kubelet without a
# name lookup. hack/oci-image/product.json describes the same image for
# `make oci-image`; hack/oci-image/test_ociimage.py checks that the two agree.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/secure-defaults /usr/local/bin/secure-defaults
USER 65532:65532
WORKDIR /home/nonroot
# mimalloc (the binary's allocator) without eager arena commit: about 10 MiB
# less RSS at idle (BENCHMARKS.md).
ENV MIMALLOC_ARENA_EAGER_COMMIT=0
# 8443: webhook (TLS). 8080: /healthz, /readyz, /metrics (plain HTTP).
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/secure-defaults"]
CMD ["serve"]
