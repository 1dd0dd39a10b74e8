#!/usr/bin/env bash
# Makes docker.io/library/debian:bookworm-slim in podman's local storage when
# it is missing, from a debootstrap of Debian 12 (minbase, trimmed like the
# official slim image): no registry is reachable here. Used by the image
# check (docker-test.sh) and by the clean-machine rehearsal of CI (rehearse).
# Expects CONTAINERS_CONF to be set by the caller when the host needs it.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
podman image exists docker.io/library/debian:bookworm-slim && exit 0
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
rootfs=$(mktemp -d)
trap '$SUDO rm -rf "$rootfs"' EXIT
$SUDO debootstrap --variant=minbase bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >/dev/null
$SUDO rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
  "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/info/* "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
$SUDO tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - localhost/debian:bookworm-slim >/dev/null
podman tag localhost/debian:bookworm-slim docker.io/library/debian:bookworm-slim
