# Ferry: one image, one process. Build with `docker build -t ferry .`
# Stage 1 builds the binary on the official Rust image; stage 2 runs it on
# slim Debian (bookworm, the same glibc as the builder).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY web ./web
COPY openapi ./openapi
RUN cargo build --release --locked && cp target/release/ferry /ferry

FROM debian:bookworm-slim AS runtime
# Pinning exact Debian versions would break on every point release; the
# security of this stage comes from rebuilding on a current bookworm.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ferry \
 && useradd --system --uid 10001 --gid ferry --home-dir /data --shell /usr/sbin/nologin ferry \
 && mkdir -p /data \
 && chown ferry:ferry /data \
 && chmod 0700 /data
COPY --from=build /ferry /usr/local/bin/ferry
# Let the unprivileged user bind port 25 (and 587) without running as root.
RUN setcap cap_net_bind_service=+ep /usr/local/bin/ferry

USER 10001:10001
ENV FERRY_DATA_DIR=/data \
    FERRY_API_LISTEN=0.0.0.0:8080 \
    FERRY_LOG_FORMAT=text
VOLUME ["/data"]
EXPOSE 25 587 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/ferry", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["serve"]
