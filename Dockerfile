# Ferry: one image, one process.
#   docker build -t ferry .                      # users: builds from source on the official Rust image
#   podman build --target prebuilt \
#     --build-arg FERRY_BINARY=dist/ferry -t ferry .   # CI: packages a binary built on the host (bookworm glibc)
# Both end in the same runtime: slim Debian, an unprivileged user allowed to
# bind port 25, data in /data, a HEALTHCHECK, and clean SIGTERM handling as PID 1.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY web ./web
COPY openapi ./openapi
RUN cargo build --release --locked && cp target/release/ferry /ferry

FROM debian:bookworm-slim AS runtime-base
# Pinning exact Debian versions would break on every point release; the
# security of this stage comes from rebuilding on a current bookworm.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libcap2-bin \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc /usr/share/man \
 && groupadd --system --gid 10001 ferry \
 && useradd --system --uid 10001 --gid ferry --home-dir /data --shell /usr/sbin/nologin ferry \
 && mkdir -p /data \
 && chown ferry:ferry /data \
 && chmod 0700 /data
ENV FERRY_DATA_DIR=/data \
    FERRY_API_LISTEN=0.0.0.0:8080 \
    FERRY_API_TLS=true \
    FERRY_DEFAULT_SMTP_BIND=0.0.0.0:25 \
    FERRY_DEFAULT_SUBMISSION_BIND=0.0.0.0:587 \
    FERRY_LOG_FORMAT=text
VOLUME ["/data"]
EXPOSE 25 587 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/ferry", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["serve"]

# The binary gets its capability in a scratch stage and is copied into the
# runtime with it, so the image carries one copy of it, not two layers.
FROM runtime-base AS caps-prebuilt
ARG FERRY_BINARY=dist/ferry
COPY ${FERRY_BINARY} /usr/local/bin/ferry
# Let the unprivileged user bind port 25 (and 587) without running as root.
RUN setcap cap_net_bind_service=+ep /usr/local/bin/ferry

FROM runtime-base AS prebuilt
COPY --from=caps-prebuilt /usr/local/bin/ferry /usr/local/bin/ferry
USER 10001:10001

FROM runtime-base AS caps
COPY --from=build /ferry /usr/local/bin/ferry
RUN setcap cap_net_bind_service=+ep /usr/local/bin/ferry

FROM runtime-base AS runtime
COPY --from=caps /usr/local/bin/ferry /usr/local/bin/ferry
USER 10001:10001
