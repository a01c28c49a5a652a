# syntax=docker/dockerfile:1
# shopflow's container image: a release build in the Rust image, run from slim
# Debian as a non-root user. From the repository root:
#   docker build -t shopflow .
# docs/deploy.md: running it (compose, Kubernetes) and how this file is checked
# without a Docker engine (hadolint in `make ops`).

# Rust is pinned so that a rebuild is the same build (the workspace needs 1.88
# or newer). Both stages are Debian 12, so the binary finds the glibc it was
# linked against.
FROM rust:1.95.0-slim-bookworm AS build
# rdkafka-sys builds its bundled librdkafka with configure and make, and that
# configure insists on a C++ compiler; aws-lc-sys (TLS to S3) may use cmake.
# Pinned to Debian 12's versions: when a security update retires one, the
# build stops at apt-get; refresh it with `apt-cache policy PKG` (docs/deploy.md).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake=3.25.1-1 g++=4:12.2.0-3 make=4.3-4.1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .dockerignore keeps this to what cargo reads (sources, manifests, the lock,
# sql/ and web/assets/, which are compiled in).
COPY . .
# BuildKit keeps the crate downloads and the target dir between builds. A cache
# mount is not part of the image, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin shopflow \
 && cp target/release/shopflow /usr/local/bin/shopflow

FROM debian:bookworm-slim
# ca-certificates: rustls reads the system store to verify S3 and other HTTPS
# endpoints. curl: the HEALTHCHECK below. The binary links only glibc and libgcc.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates=20250419~deb12u2 curl=7.88.1-10+deb12u15 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin shopflow
COPY --from=build /usr/local/bin/shopflow /usr/local/bin/shopflow
# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
# /metrics and /healthz on every interface of the container: the default,
# 127.0.0.1, would hide them from the health check's peers and from Prometheus.
# The dashboard stays off the network unless its config says so (with a token).
ENV SHOPFLOW_METRICS_LISTEN=0.0.0.0:9464
# 2101: timely peers (hostfile); 8080: dashboard (process 0); 9464: metrics, health.
EXPOSE 2101 8080 9464
# Only `shopflow run` serves /healthz; other commands (fx-server, migrate) get
# their own check or none where they are run (deploy/compose/compose.yaml).
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9464/healthz"]
ENTRYPOINT ["shopflow"]
CMD ["run", "--config", "/etc/shopflow/shopflow.toml"]
