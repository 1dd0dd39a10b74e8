#!/usr/bin/env bash
# Builds Ferry's image with podman from a binary built on the host, runs it,
# and checks it through the published ports: /healthz, the API with a token
# from a secret file, SMTP on the default receive connector, a restart on
# the same volume keeping configuration and queued mail, and `podman stop`
# finishing within its timeout. Then brings up deploy/compose.yaml (Edge +
# Hub) and sends a message through it, and deploy/fleet.yaml (PostgreSQL, two
# Edges sharing their configuration behind HAProxy, a Hub) and sends mail
# through both Edges. Containers are removed whatever happens.
# FERRY_IMAGE_BUILD=release (the default, and the image users get) packages
# the release build and checks the image's size too; =dev packages the
# debug build the tests use, stripped: the same code and every other check,
# without the release build's 12 minutes (CI runs it so; the size of a
# debug build says nothing of the release image's).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need=()
for pkg in podman runc conmon catatonit netavark aardvark-dns iptables uidmap fuse-overlayfs slirp4netns \
           containernetworking-plugins debootstrap podman-compose; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# crun fails on these hosts' hybrid cgroups and podman's default rlimits cannot be raised (TESTING.md).
# podman reads these settings from a private file named by CONTAINERS_CONF; /etc/containers is left alone.
mkdir -p target
export CONTAINERS_CONF=$PWD/target/containers.conf
printf '[containers]\ndefault_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
  > "$CONTAINERS_CONF"

# No registry here: make debian:bookworm-slim locally when it is missing.
bash .ci/base-image.sh

build=${FERRY_IMAGE_BUILD:-release}
echo "== build the image (prebuilt target, host binary, $build build) [${SECONDS} s]"
mkdir -p dist
case "$build" in
  release) cargo build --release --locked && cp target/release/ferry dist/ferry ;;
  dev) cargo build --locked && strip -o dist/ferry target/debug/ferry ;;
  *) echo "FERRY_IMAGE_BUILD is release or dev, not '$build'" >&2; exit 2 ;;
esac
podman build --pull=never --format docker --target prebuilt --build-arg FERRY_BINARY=dist/ferry -t localhost/ferry:ci . >/dev/null
size=$(podman image inspect localhost/ferry:ci --format '{{.Size}}')
binary=$(stat -c %s dist/ferry)
echo "image size: $((size / 1024 / 1024)) MB, of which the binary $((binary / 1024 / 1024)) MB"

run=$$
cid=""
vol="ferry-ci-data-$run"
secret=$(mktemp)
cleanup() {
  [ -n "$cid" ] && podman rm -f "$cid" >/dev/null 2>&1 || true
  podman volume rm -f "$vol" >/dev/null 2>&1 || true
  rm -f "$secret" "${pinned:-}"
  (cd deploy && EDGE_SMTP_PORT=12526 EDGE_API_PORT=18581 HUB_SUBMISSION_PORT=12588 HUB_API_PORT=18582 \
    podman-compose -p "ferry-ci-$run" down -v >/dev/null 2>&1) || true
  podman network rm -f "ferry-ci-${run}_backbone" >/dev/null 2>&1 || true
  (cd deploy && EDGE1_API_PORT=18591 EDGE2_API_PORT=18592 FLEET_HUB_API_PORT=18593 FLEET_SMTP_PORT=12527 \
    podman-compose -f fleet.yaml -p "ferry-ci-fleet-$run" down -v >/dev/null 2>&1) || true
  podman network rm -f "ferry-ci-fleet-${run}_backbone" >/dev/null 2>&1 || true
}
trap cleanup EXIT

TOKEN="ci-container-admin-token-0123456789"
echo "$TOKEN" > "$secret"
chmod 0644 "$secret"
# The image serves the API over HTTPS with the self-signed certificate made
# at first start for FERRY_FQDN; curl trusts exactly that certificate, whose
# SHA-256 fingerprint Ferry logs, and reaches it by that name.
API=https://mail.contoso.test:18580/api/v1
pinned=$(mktemp)
api() { curl -sf --cacert "$pinned" --resolve mail.contoso.test:18580:127.0.0.1 \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
wait_healthy() {
  for _ in $(seq 1 100); do curl -sfk https://127.0.0.1:18580/healthz >/dev/null && return 0; sleep 0.1; done
  podman logs "$cid" | tail -20; echo "not healthy" >&2; return 1
}
pin_certificate() {
  openssl s_client -connect 127.0.0.1:18580 -servername mail.contoso.test </dev/null 2>/dev/null | openssl x509 > "$pinned"
  local seen logged
  seen=$(openssl x509 -in "$pinned" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr 'A-F' 'a-f')
  logged=$(podman logs "$cid" 2>&1 | grep -o 'sha256=[0-9a-f]*' | tail -n 1 | cut -d= -f2)
  [ -n "$seen" ] && [ "$seen" = "$logged" ]
}
pass=0
# check DESCRIPTION COMMAND...: runs the command; a failure stops the script.
check() {
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); echo "ok: $what"; else echo "FAILED: $what" >&2; exit 1; fi
}

echo "== run the image [${SECONDS} s]"
cid=$(podman run -d -p 127.0.0.1:18580:8080 -p 127.0.0.1:12625:25 \
  -e FERRY_FQDN=mail.contoso.test -e FERRY_ADMIN_TOKEN_FILE=/run/secrets/admin-token \
  -v "$secret":/run/secrets/admin-token:ro -v "$vol":/data localhost/ferry:ci 2>/dev/null)
check "/healthz answers" wait_healthy
check "the API is HTTPS by default, with the certificate whose fingerprint is logged" pin_certificate
check "plain HTTP gets no answer from the API port" sh -c "! curl -sf http://127.0.0.1:18580/healthz"
check "HSTS on the API's answers" sh -c "curl -sI --cacert $pinned --resolve mail.contoso.test:18580:127.0.0.1 https://mail.contoso.test:18580/healthz | grep -qi '^strict-transport-security: max-age='"
# The image has no shell or `id`: the process's user, read on the host.
check "runs as the unprivileged user 10001" sh -c "grep -q '^Uid:[[:space:]]*10001[[:space:]]' /proc/\$(podman inspect \"$cid\" --format '{{.State.Pid}}')/status"
check "the image's HEALTHCHECK passes" podman healthcheck run "$cid"
if [ "$build" = release ]; then
  check "the image is under 60 MB ($((size / 1024 / 1024)) MB)" test "$size" -lt $((60 * 1024 * 1024))
fi
check "the runtime around the binary is under 8 MB ($(((size - binary) / 1024 / 1024)) MB)" test $((size - binary)) -lt $((8 * 1024 * 1024))
check "an authenticated API call with the token from the secret file" test "$(api $API/server | jq -r .role)" = Edge
check "the API refuses a request without the token" test "$(curl -s --cacert "$pinned" --resolve mail.contoso.test:18580:127.0.0.1 -o /dev/null -w '%{http_code}' $API/server)" = 401
api -X POST $API/accepted-domains -d '{"domainName":"contoso.test"}' >/dev/null
check "SMTP message accepted on the default receive connector (port 25, unprivileged)" \
  swaks --server 127.0.0.1:12625 --from a@fabrikam.test --to bob@contoso.test --header "Subject: into the container" --silent 2
check "the message is queued" test "$(api "$API/messages" | jq .total)" = 1

echo "== stop within the timeout, start again on the same volume [${SECONDS} s]"
start=$(date +%s)
podman stop -t 10 "$cid" >/dev/null
elapsed=$(( $(date +%s) - start ))
check "podman stop finished in ${elapsed}s, within its 10 s timeout" test "$elapsed" -lt 10
check "the process exited 0 on SIGTERM as PID 1 (no --init)" test "$(podman inspect "$cid" --format '{{.State.ExitCode}}')" = 0
podman start "$cid" >/dev/null
check "healthy again after the restart" wait_healthy
check "configuration kept across the restart" test "$(api $API/accepted-domains | jq -r '.items[0].domainName')" = contoso.test
check "queued mail kept across the restart" test "$(api "$API/messages" | jq .total)" = 1
check "logs go to stdout" sh -c "podman logs $cid 2>&1 | grep -q 'Ferry API listening'"
podman rm -f "$cid" >/dev/null
cid=""

echo "== compose: Edge + Hub [${SECONDS} s]"
# Ports away from the Quick start's 127.0.0.1:8080/2525/2587, so both can run at once.
check "a message sent to the Edge reached the Hub's mailbox (deploy/try-compose.sh)" \
  env FERRY_IMAGE=localhost/ferry:ci EDGE_SMTP_PORT=12526 EDGE_API_PORT=18581 HUB_SUBMISSION_PORT=12588 \
  HUB_API_PORT=18582 bash deploy/try-compose.sh "ferry-ci-$run"

echo "== compose: a fleet (PostgreSQL, two Edges behind HAProxy, a Hub) [${SECONDS} s]"
# The images of PostgreSQL and HAProxy are built from Debian's packages on
# the local debian:bookworm-slim (no registry is reachable here).
podman build --pull=never --format docker -t localhost/ferry-postgres:latest deploy/postgres >/dev/null
podman build --pull=never --format docker -t localhost/ferry-haproxy:latest deploy/haproxy >/dev/null
check "mail through HAProxy reached both Edges of one fleet, then the Hub (deploy/try-fleet.sh)" \
  env FERRY_IMAGE=localhost/ferry:ci EDGE1_API_PORT=18591 EDGE2_API_PORT=18592 FLEET_HUB_API_PORT=18593 \
  FLEET_SMTP_PORT=12527 bash deploy/try-fleet.sh "ferry-ci-fleet-$run"

echo "$pass passed, 0 failed"
