#!/usr/bin/env bash
# Brings up compose.yaml (Edge + Hub), configures the pair through their
# APIs as the seed scenario does — the Edge relays the accepted domain to the
# Hub over STARTTLS + AUTH (BasicAuthRequireTLS, with a test CA made here) —
# sends a message to the Edge's SMTP port with swaks, and waits for the Hub
# to record it stored in Bob's mailbox.   Usage: ./try-compose.sh [project]
# Env: FERRY_IMAGE (default localhost/ferry:latest), EDGE_TOKEN, HUB_TOKEN, and the *_PORT of compose.yaml.
set -euo pipefail
cd "$(dirname "$0")"
P=${1:-ferry}
EDGE_TOKEN=${EDGE_TOKEN:-edge-admin-token-change-me-0123456789}
HUB_TOKEN=${HUB_TOKEN:-hub-admin-token-change-me-0123456789}
# The image serves each API over HTTPS with the self-signed certificate made
# at first start for its FQDN: curl is pointed at that certificate (fetched
# once below; compare its fingerprint with the one in the container's log).
EDGE=https://edge01.corp.contoso.test:${EDGE_API_PORT:-18081}/api/v1
HUB=https://hub01.corp.contoso.test:${HUB_API_PORT:-18082}/api/v1
pki=$(mktemp -d)
trap 'rm -rf "$pki"' EXIT
hostport() { local u=${1#https://}; echo "${u%%/*}"; }
curl_to() { local url=$1; shift; local hp; hp=$(hostport "$url")
  curl --cacert "$pki/${hp%%:*}.pem" --resolve "$hp:127.0.0.1" "$@"; }
if command -v podman-compose >/dev/null; then ENGINE=podman; compose() { podman-compose -p "$P" "$@"; }
else ENGINE=docker; compose() { docker compose -p "$P" "$@"; }; fi

echo "== starting Edge and Hub"
compose up -d >/dev/null
for url in "$EDGE" "$HUB"; do
  hp=$(hostport "$url"); port=${hp##*:}; name=${hp%%:*}
  for _ in $(seq 1 150); do curl -sfk "https://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
  openssl s_client -connect "127.0.0.1:$port" -servername "$name" </dev/null 2>/dev/null | openssl x509 > "$pki/$name.pem" \
    && curl_to "$url" -sf "${url%/api/v1}/healthz" >/dev/null || { echo "not healthy: $url" >&2; compose logs | tail -30; exit 1; }
done
api() { local token=$1; shift; local url
  for url in "$@"; do case $url in https://*) break;; esac; done
  curl_to "$url" -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@" >/dev/null \
  || { echo "API call failed: $*" >&2; exit 1; }; }

echo "== certificates: a test CA issues the Hub's"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Compose Test CA" -addext basicConstraints=critical,CA:TRUE \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
printf 'subjectAltName=DNS:hub,DNS:hub01.corp.contoso.test\nextendedKeyUsage=serverAuth\n' > "$pki/hub.ext"
openssl req -newkey rsa:2048 -nodes -subj /CN=hub01.corp.contoso.test -keyout "$pki/hub.key" -out "$pki/hub.csr" 2>/dev/null
openssl x509 -req -in "$pki/hub.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 -extfile "$pki/hub.ext" -out "$pki/hub.crt" 2>/dev/null
pem() { jq -Rs . < "$1"; }

echo "== Hub: mailboxes for contoso.test, its certificate, a login for the Edge"
api "$HUB_TOKEN" -X POST "$HUB/accepted-domains" -d '{"domainName":"contoso.test","mailboxDelivery":{"type":"Maildir"}}'
api "$HUB_TOKEN" -X POST "$HUB/certificates" -d "{\"source\":\"import\",\"certificatePem\":$(pem "$pki/hub.crt"),\"privateKeyPem\":$(pem "$pki/hub.key")}"
# The Hub's API now presents that certificate too (no restart): trust its CA.
cat "$pki/ca.crt" >> "$pki/hub01.corp.contoso.test.pem"
api "$HUB_TOKEN" -X POST "$HUB/credentials" -d '{"kind":"Login","userName":"edge01","principal":"Server","password":"Compose-Edge-Pass-1"}'

echo "== Edge: the accepted domain, trust in the CA, and \"To Internal Org\" to the Hub"
api "$EDGE_TOKEN" -X POST "$EDGE/accepted-domains" -d '{"domainName":"contoso.test"}'
api "$EDGE_TOKEN" -X POST "$EDGE/certificates" -d "{\"source\":\"trustAnchor\",\"certificatePem\":$(pem "$pki/ca.crt")}"
api "$EDGE_TOKEN" -X POST "$EDGE/credentials" -d '{"name":"edge-to-hub","kind":"SmartHost","userName":"edge01","password":"Compose-Edge-Pass-1"}'
api "$EDGE_TOKEN" -X POST "$EDGE/send-connectors" -d '{"name":"To Internal Org","usage":"Internal","addressSpaces":["--"],"smartHosts":["hub"],"smartHostAuthMechanism":"BasicAuthRequireTLS","authenticationCredential":"edge-to-hub"}'

echo "== a first message, sent to the Edge with swaks"
subject="compose hello $(date +%s)"
swaks --server "127.0.0.1:${EDGE_SMTP_PORT:-2525}" --from alice@fabrikam.test --to bob@contoso.test --header "Subject: $subject" --silent 2
# The image has no shell to look inside with: the Hub's message tracking
# says when it stored the message in Bob's mailbox.
for _ in $(seq 1 150); do
  if curl_to "$HUB" -sf -H "Authorization: Bearer $HUB_TOKEN" "$HUB/tracking?event=DELIVER&recipient=bob@contoso.test" \
    | jq -e --arg s "$subject" '.items[] | select(.subject == $s and .connector == "mailbox")' >/dev/null; then
    echo "== delivered: the Hub stored \"$subject\" in Bob's mailbox"
    echo "   (stop it with: podman-compose -p $P down -v   or   docker compose -p $P down -v)"
    exit 0
  fi
  sleep 0.2
done
echo "the message did not reach the Hub's mailbox" >&2
compose logs 2>&1 | tail -40
exit 1
