#!/usr/bin/env bash
# Brings up fleet.yaml (PostgreSQL, two Edges sharing their configuration in
# it, HAProxy in front of them with the PROXY protocol, a Hub), configures
# the fleet once through EDGE01's API — EDGE02 follows by itself — sends two
# messages through HAProxy (round robin: one reaches each Edge), waits for
# the Hub to store both in Bob's mailbox, and lists the fleet's servers.
#   Usage: ./try-fleet.sh [project]
# Env: FERRY_IMAGE (default localhost/ferry:latest), EDGE_TOKEN, HUB_TOKEN,
# and the ports of fleet.yaml.
set -euo pipefail
cd "$(dirname "$0")"
P=${1:-ferry-fleet}
EDGE_TOKEN=${EDGE_TOKEN:-edge-admin-token-change-me-0123456789}
HUB_TOKEN=${HUB_TOKEN:-hub-admin-token-change-me-0123456789}
E1=https://edge01.corp.contoso.test:${EDGE1_API_PORT:-18091}/api/v1
E2=https://edge02.corp.contoso.test:${EDGE2_API_PORT:-18092}/api/v1
HUB=https://hub01.corp.contoso.test:${FLEET_HUB_API_PORT:-18093}/api/v1
SMTP=127.0.0.1:${FLEET_SMTP_PORT:-2527}
pki=$(mktemp -d)
trap 'rm -rf "$pki"' EXIT
hostport() { local u=${1#https://}; echo "${u%%/*}"; }
curl_to() { local url=$1; shift; local hp; hp=$(hostport "$url")
  curl --cacert "$pki/${hp%%:*}.pem" --resolve "$hp:127.0.0.1" "$@"; }
if command -v podman-compose >/dev/null; then ENGINE=podman; compose() { podman-compose -f fleet.yaml -p "$P" "$@"; }
else ENGINE=docker; compose() { docker compose -f fleet.yaml -p "$P" "$@"; }; fi
api() { local token=$1; shift; local url
  for url in "$@"; do case $url in https://*) break;; esac; done
  curl_to "$url" -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@" \
  || { echo "API call failed: $*" >&2; exit 1; }; }

echo "== starting PostgreSQL, EDGE01, EDGE02, HAProxy and the Hub"
compose up -d >/dev/null
for url in "$E1" "$E2" "$HUB"; do
  hp=$(hostport "$url"); port=${hp##*:}; name=${hp%%:*}
  for _ in $(seq 1 300); do curl -sfk "https://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
  openssl s_client -connect "127.0.0.1:$port" -servername "$name" </dev/null 2>/dev/null | openssl x509 > "$pki/$name.pem" \
    && curl_to "$url" -sf "${url%/api/v1}/healthz" >/dev/null || { echo "not healthy: $url" >&2; compose logs | tail -40; exit 1; }
done
# Both Edges in the fleet's registry (their heartbeats).
for _ in $(seq 1 100); do
  [ "$(api "$EDGE_TOKEN" "$E1/servers" | jq '[.items[] | select(.alive)] | length')" = 2 ] && break; sleep 0.2
done

echo "== certificates: a test CA issues the Hub's"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Fleet Test CA" -addext basicConstraints=critical,CA:TRUE \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
printf 'subjectAltName=DNS:hub,DNS:hub01.corp.contoso.test\nextendedKeyUsage=serverAuth\n' > "$pki/hub.ext"
openssl req -newkey rsa:2048 -nodes -subj /CN=hub01.corp.contoso.test -keyout "$pki/hub.key" -out "$pki/hub.csr" 2>/dev/null
openssl x509 -req -in "$pki/hub.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 -extfile "$pki/hub.ext" -out "$pki/hub.crt" 2>/dev/null
pem() { jq -Rs . < "$1"; }

echo "== Hub: mailboxes for contoso.test, its certificate, a login for the Edges"
api "$HUB_TOKEN" -X POST "$HUB/accepted-domains" -d '{"domainName":"contoso.test","mailboxDelivery":{"type":"Maildir"}}' >/dev/null
api "$HUB_TOKEN" -X POST "$HUB/certificates" -d "{\"source\":\"import\",\"certificatePem\":$(pem "$pki/hub.crt"),\"privateKeyPem\":$(pem "$pki/hub.key")}" >/dev/null
cat "$pki/ca.crt" >> "$pki/hub01.corp.contoso.test.pem"
api "$HUB_TOKEN" -X POST "$HUB/credentials" -d '{"kind":"Login","userName":"edges","principal":"Server","password":"Fleet-Edges-Pass-1"}' >/dev/null

echo "== the fleet, once, through EDGE01: the domain, the Hub's login, \"To Internal Org\", PROXY from HAProxy's network"
api "$EDGE_TOKEN" -X POST "$E1/accepted-domains" -d '{"domainName":"contoso.test"}' >/dev/null
api "$EDGE_TOKEN" -X POST "$E1/credentials" -d '{"name":"edges-to-hub","kind":"SmartHost","userName":"edges","password":"Fleet-Edges-Pass-1"}' >/dev/null
api "$EDGE_TOKEN" -X POST "$E1/send-connectors" -d '{"name":"To Internal Org","usage":"Internal","addressSpaces":["--"],"smartHosts":["hub"],"smartHostAuthMechanism":"BasicAuthRequireTLS","authenticationCredential":"edges-to-hub"}' >/dev/null
# HAProxy's address on the backbone, as the engine gave it (both label
# their containers the same way).
hap=$($ENGINE ps -q --filter "label=com.docker.compose.project=$P" --filter label=com.docker.compose.service=haproxy | head -1)
hap_ip=$($ENGINE inspect "$hap" --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}')
rc=$(api "$EDGE_TOKEN" "$E1/receive-connectors" | jq -r '.items[0].id')
api "$EDGE_TOKEN" -X PATCH "$E1/receive-connectors/$rc" -H 'Content-Type: application/merge-patch+json' \
  -d "{\"proxyProtocolFrom\":[\"$hap_ip\"]}" >/dev/null
echo "== certificates are each server's own: each Edge trusts the test CA"
for e in "$E1" "$E2"; do
  api "$EDGE_TOKEN" -X POST "$e/certificates" -d "{\"source\":\"trustAnchor\",\"certificatePem\":$(pem "$pki/ca.crt")}" >/dev/null
done
# EDGE02 follows: the fleet's revision on both.
r1=$(api "$EDGE_TOKEN" "$E1/servers" | jq .revision)
for _ in $(seq 1 50); do [ "$(api "$EDGE_TOKEN" "$E2/servers" | jq .revision)" = "$r1" ] && break; sleep 0.1; done
r2=$(api "$EDGE_TOKEN" "$E2/servers" | jq .revision)
[ "$r2" = "$r1" ] || { echo "EDGE02 is at revision $r2, EDGE01 at $r1" >&2; exit 1; }
echo "   EDGE02 follows: both at the fleet's revision $r1; PROXY accepted from HAProxy at $hap_ip"

echo "== two messages through HAProxy, one to each Edge"
stamp=$(date +%s)
for i in 1 2; do
  swaks --server "$SMTP" --from alice@fabrikam.test --to bob@contoso.test --header "Subject: fleet $stamp $i" --silent 2
done
for i in 1 2; do
  ok=""
  for _ in $(seq 1 150); do
    if curl_to "$HUB" -sf -H "Authorization: Bearer $HUB_TOKEN" "$HUB/tracking?event=DELIVER&recipient=bob@contoso.test" \
      | jq -e --arg s "fleet $stamp $i" '.items[] | select(.subject == $s and .connector == "mailbox")' >/dev/null; then
      ok=1; break
    fi
    sleep 0.2
  done
  [ -n "$ok" ] || { echo "\"fleet $stamp $i\" did not reach the Hub's mailbox" >&2; compose logs 2>&1 | tail -40; exit 1; }
done
for e in "$E1" "$E2"; do
  n=$(api "$EDGE_TOKEN" "$e/tracking?event=RECEIVE" | jq --arg s "fleet $stamp" '[.items[] | select(.subject | startswith($s))] | length')
  [ "$n" = 1 ] || { echo "$e received $n of the two messages, not one" >&2; exit 1; }
done
echo "== delivered: each Edge took one message from HAProxy, and the Hub stored both in Bob's mailbox"
echo "   (stop it with: podman-compose -f fleet.yaml -p $P down -v   or   docker compose -f fleet.yaml -p $P down -v)"
