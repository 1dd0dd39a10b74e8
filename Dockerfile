# Ferry: one image, one process.
#   docker build -t ferry .                      # users: builds from source on the official Rust image
#   podman build --target prebuilt \
#     --build-arg FERRY_BINARY=dist/ferry -t ferry .   # CI: packages a binary built on the host (bookworm glibc)
# Both end in the same runtime, built from scratch: the binary (allowed to
# bind port 25 as an unprivileged user), the parts of the C library it
# links, CA certificates, the user, /data and /tmp — no shell, no package
# manager, nothing else to patch. A HEALTHCHECK, and clean SIGTERM handling
# as PID 1.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY web ./web
COPY openapi ./openapi
RUN cargo build --release --locked && cp target/release/ferry /ferry

# The runtime's files, gathered on Debian under /rootfs.
FROM debian:bookworm-slim AS rootfs
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Pinning exact Debian versions would break on every point release; the
# security of this stage comes from rebuilding on a current bookworm.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libcap2-bin \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
 && mkdir -p /rootfs/etc/ssl/certs /rootfs/usr/local/bin /rootfs/data /rootfs/tmp \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && echo 'ferry:x:10001:10001:Ferry:/data:/usr/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'ferry:x:10001:' > /rootfs/etc/group \
 && chown 10001:10001 /rootfs/data \
 && chmod 0700 /rootfs/data \
 && chmod 1777 /rootfs/tmp

FROM rootfs AS files-prebuilt
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG FERRY_BINARY=dist/ferry
COPY ${FERRY_BINARY} /rootfs/usr/local/bin/ferry
# The binary with its capability (to bind port 25 without running as
# root), and the shared libraries it links, as `ldd` lists them.
RUN setcap cap_net_bind_service=+ep /rootfs/usr/local/bin/ferry \
 && for lib in $(ldd /rootfs/usr/local/bin/ferry | grep -o '/[^ ]*'); do cp --parents -L "$lib" /rootfs/; done

FROM rootfs AS files
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=build /ferry /rootfs/usr/local/bin/ferry
# The binary with its capability (to bind port 25 without running as
# root), and the shared libraries it links, as `ldd` lists them.
RUN setcap cap_net_bind_service=+ep /rootfs/usr/local/bin/ferry \
 && for lib in $(ldd /rootfs/usr/local/bin/ferry | grep -o '/[^ ]*'); do cp --parents -L "$lib" /rootfs/; done

FROM scratch AS runtime-base
ENV FERRY_DATA_DIR=/data \
    FERRY_API_LISTEN=0.0.0.0:8080 \
    FERRY_API_TLS=true \
    FERRY_DEFAULT_SMTP_BIND=0.0.0.0:25 \
    FERRY_DEFAULT_SUBMISSION_BIND=0.0.0.0:587 \
    FERRY_LOG_FORMAT=text \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
VOLUME ["/data"]
EXPOSE 25 587 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/ferry", "healthcheck"]
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["serve"]

FROM runtime-base AS prebuilt
COPY --from=files-prebuilt /rootfs/ /

FROM runtime-base AS runtime
COPY --from=files /rootfs/ /
