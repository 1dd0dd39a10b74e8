#!/usr/bin/env bash
# Edge and Hub without EdgeSync, configured with curl alone (EXCHANGE-SPEC §3).
#
# Plays four hosts on loopback, each a real `ferry` process:
#   Edge   EDGE01  external $NET.2 (mail.contoso.test), internal $NET.3 (edge01.corp.contoso.test)
#   Hub 1  HUB01   $NET.11 (hub01.corp.contoso.test)     Hub 2  HUB02  $NET.12 (hub02.corp.contoso.test)
#   An Internet MTA for fabrikam.test on $NET.20, and dnsmasq on $NET.53:5353 for MX and A records.
# Then sends mail both ways with swaks and shows where it landed.
#
# Needs: the ferry binary (built with cargo if missing), curl, jq, openssl, dnsmasq, swaks.
# Env: NET (default 127.0.0), PORT (SMTP, default 2525), SUBMISSION_PORT (default 2587),
#      WORK (default /tmp/ferry-edge-hub), FERRY_BIN, KEEP_RUNNING=1 to leave everything up.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
NET=${NET:-127.0.0}
PORT=${PORT:-2525}
SUBMISSION_PORT=${SUBMISSION_PORT:-2587}
WORK=${WORK:-/tmp/ferry-edge-hub}
FERRY_BIN=${FERRY_BIN:-$REPO/target/debug/ferry}
EDGE_EXT=$NET.2 EDGE_INT=$NET.3 HUB1=$NET.11 HUB2=$NET.12 MTA=$NET.20 DNS=$NET.53
EDGE_TO_HUB_PASSWORD='Edge-To-Hub-Pass-1'
HUB_TO_EDGE_PASSWORD='Hub-To-Edge-Pass-2'
BOB_PASSWORD='Bob-Mailbox-Pass-3'

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stop_all() {
  for pidfile in "$WORK"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

# Idempotent: stop what a previous run left, start from a clean directory.
mkdir -p "$WORK"
stop_all
rm -rf "${WORK:?}"/*
if [ "${KEEP_RUNNING:-0}" != 1 ]; then trap stop_all EXIT; fi

if [ ! -x "$FERRY_BIN" ]; then
  say "building ferry"
  (cd "$REPO" && cargo build -q)
fi

# --- Certificates: a test CA issues every host's certificate ----------------
say "certificates (a test CA made with openssl)"
mkdir -p "$WORK/pki"
cd "$WORK/pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Contoso Test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout ca.key -out ca.crt 2>/dev/null
issue() {
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$1" > "$1.ext"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  echo "  issued $1"
}
for n in mail.contoso.test edge01.corp.contoso.test hub01.corp.contoso.test hub02.corp.contoso.test; do issue "$n"; done
cd "$WORK"

# --- DNS ------------------------------------------------------------------------
say "DNS on $DNS:5353 (dnsmasq)"
dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces --conf-file=/dev/null \
  --local=/test/ --pid-file= --user=root --listen-address="$DNS" --port=5353 \
  --mx-host=fabrikam.test,mx.fabrikam.test,10 --host-record=mx.fabrikam.test,"$MTA" \
  --mx-host=contoso.test,mail.contoso.test,10 --host-record=mail.contoso.test,"$EDGE_EXT" \
  --host-record=edge01.corp.contoso.test,"$EDGE_INT" \
  --host-record=hub01.corp.contoso.test,"$HUB1" --host-record=hub02.corp.contoso.test,"$HUB2" \
  >"$WORK/dnsmasq.log" 2>&1 &
echo $! > "$WORK/dnsmasq.pid"
echo "  MX fabrikam.test -> mx.fabrikam.test ($MTA); edge01/hub01/hub02.corp.contoso.test A records"

# --- Four Ferrys ------------------------------------------------------------------
declare -A API TOKEN
start() { # name role api-ip fqdn server-name default-bind submission-bind outbound-ip
  local name=$1
  API[$name]="http://$3:8080/api/v1"
  TOKEN[$name]="walkthrough-token-$name-0123456789"
  FERRY_ADMIN_TOKEN=${TOKEN[$name]} FERRY_LOG=${FERRY_LOG:-info,sqlx=warn} "$FERRY_BIN" serve \
    --data-dir "$WORK/$name" --role "$2" --fqdn "$4" --server-name "$5" --api-listen "$3:8080" \
    --default-smtp-bind "$6" --default-submission-bind "$7" --outbound-source-ip "$8" \
    >"$WORK/$name.log" 2>&1 &
  echo $! > "$WORK/$name.pid"
  for _ in $(seq 1 200); do
    curl -sf "http://$3:8080/healthz" >/dev/null && { echo "  $name ($2) is up: API http://$3:8080"; return; }
    sleep 0.05
  done
  echo "$name did not start; see $WORK/$name.log" >&2; exit 1
}
say "starting Edge, Hub 1, Hub 2 and the Internet MTA"
start edge edge "$EDGE_INT" edge01.corp.contoso.test EDGE01 "$EDGE_EXT:$PORT" "$EDGE_EXT:$SUBMISSION_PORT" "$EDGE_INT"
start hub1 hub "$HUB1" hub01.corp.contoso.test HUB01 "$HUB1:$PORT" "$HUB1:$SUBMISSION_PORT" "$HUB1"
start hub2 hub "$HUB2" hub02.corp.contoso.test HUB02 "$HUB2:$PORT" "$HUB2:$SUBMISSION_PORT" "$HUB2"
start internet hub "$MTA" mx.fabrikam.test FABRIKAM "$MTA:$PORT" "$MTA:$SUBMISSION_PORT" "$MTA"

# api HOST METHOD PATH [JSON] — prints a one-line summary of the answer; stops on an error.
api() {
  local host=$1 method=$2 path=$3 body=${4:-} out code
  out=$(mktemp)
  code=$(curl -s -o "$out" -w '%{http_code}' -X "$method" -H "Authorization: Bearer ${TOKEN[$host]}" \
    -H 'Content-Type: application/json' ${body:+--data "$body"} "${API[$host]}$path")
  printf '  %-8s %-6s %-45s -> %s %s\n' "$host" "$method" "$path" "$code" \
    "$(jq -c '{name, id, status, detail} | with_entries(select(.value != null))' "$out" 2>/dev/null | cut -c1-90)"
  if [ "$code" -ge 400 ]; then cat "$out" >&2; rm -f "$out"; exit 1; fi
  rm -f "$out"
}
pem() { jq -Rs . < "$WORK/pki/$1"; }
import_cert() { api "$1" POST /certificates "{\"source\":\"import\",\"certificatePem\":$(pem "$2.crt"),\"privateKeyPem\":$(pem "$2.key")}"; }
trust_ca() { api "$1" POST /certificates "{\"source\":\"trustAnchor\",\"friendlyName\":\"Contoso Test CA\",\"certificatePem\":$(pem ca.crt)}"; }

# --- The Edge: E1–E4 ------------------------------------------------------------------
say "Edge: accepted domain, certificates, DNS, credentials"
api edge POST /accepted-domains '{"domainName":"contoso.test"}'
import_cert edge mail.contoso.test
import_cert edge edge01.corp.contoso.test
trust_ca edge
api edge PATCH /transport-settings "{\"externalDNSServers\":[\"$DNS:5353\"],\"internalDNSServers\":[\"$DNS:5353\"]}"
api edge POST /credentials "{\"name\":\"edge-to-hub\",\"kind\":\"SmartHost\",\"userName\":\"edge01\",\"password\":\"$EDGE_TO_HUB_PASSWORD\"}"
api edge POST /credentials "{\"kind\":\"Login\",\"userName\":\"hub\",\"principal\":\"Server\",\"password\":\"$HUB_TO_EDGE_PASSWORD\"}"

say "Edge E3: the default receive connector becomes \"From Internet\" on the external address"
api edge PATCH "/receive-connectors/Default%20internal%20receive%20connector%20EDGE01" \
  "{\"name\":\"From Internet\",\"bindings\":[\"$EDGE_EXT:$PORT\"],\"fqdn\":\"mail.contoso.test\",\"maxMessageSize\":10485760,\"maxRecipientsPerMessage\":200}"
say "Edge E4: \"From Hub\" on the internal address, for the Hubs only, AUTH only after TLS"
api edge POST /receive-connectors "{\"name\":\"From Hub\",\"usage\":\"Internal\",\"bindings\":[\"$EDGE_INT:$PORT\"],\"remoteIpRanges\":[\"$HUB1\",\"$HUB2\"],\"authMechanism\":[\"Tls\",\"BasicAuth\",\"BasicAuthRequireTLS\",\"ExchangeServer\"],\"permissionGroups\":[\"ExchangeServers\"],\"fqdn\":\"edge01.corp.contoso.test\"}"
say "Edge E1: \"To Internet\" by DNS through the external DNS servers"
api edge POST /send-connectors "{\"name\":\"To Internet\",\"usage\":\"Internet\",\"addressSpaces\":[\"SMTP:*;1\"],\"dnsRoutingEnabled\":true,\"useExternalDNSServersEnabled\":true,\"fqdn\":\"mail.contoso.test\",\"sourceIPAddress\":\"$EDGE_EXT\",\"port\":$PORT}"
say "Edge E2: \"To Internal Org\" to the Hubs with BasicAuthRequireTLS"
api edge POST /send-connectors "{\"name\":\"To Internal Org\",\"usage\":\"Internal\",\"addressSpaces\":[\"SMTP:--;1\"],\"dnsRoutingEnabled\":false,\"smartHosts\":[\"hub01.corp.contoso.test\",\"hub02.corp.contoso.test\"],\"smartHostAuthMechanism\":\"BasicAuthRequireTLS\",\"authenticationCredential\":\"edge-to-hub\",\"port\":$PORT}"

# --- The Hubs: H1 and the installed receive connectors -------------------------------------
for hub in hub1 hub2; do
  n=${hub#hub}
  say "Hub $n: mailboxes, certificates, DNS, logins, and H1 \"To Edge\""
  api "$hub" POST /accepted-domains '{"domainName":"contoso.test","mailboxDelivery":{"type":"Maildir"}}'
  import_cert "$hub" "hub0$n.corp.contoso.test"
  trust_ca "$hub"
  api "$hub" PATCH /transport-settings "{\"internalDNSServers\":[\"$DNS:5353\"]}"
  api "$hub" POST /credentials "{\"kind\":\"Login\",\"userName\":\"edge01\",\"principal\":\"Server\",\"password\":\"$EDGE_TO_HUB_PASSWORD\"}"
  api "$hub" POST /credentials "{\"kind\":\"Login\",\"userName\":\"bob@contoso.test\",\"principal\":\"User\",\"password\":\"$BOB_PASSWORD\"}"
  api "$hub" POST /credentials "{\"name\":\"hub-to-edge\",\"kind\":\"SmartHost\",\"userName\":\"hub\",\"password\":\"$HUB_TO_EDGE_PASSWORD\"}"
  api "$hub" POST /send-connectors "{\"name\":\"To Edge\",\"usage\":\"Internal\",\"addressSpaces\":[\"SMTP:*;1\"],\"dnsRoutingEnabled\":false,\"smartHosts\":[\"edge01.corp.contoso.test\"],\"smartHostAuthMechanism\":\"BasicAuthRequireTLS\",\"authenticationCredential\":\"hub-to-edge\",\"port\":$PORT}"
done

say "Internet MTA: fabrikam.test mailboxes, anonymous mail accepted"
api internet POST /accepted-domains '{"domainName":"fabrikam.test","mailboxDelivery":{"type":"Maildir"}}'
api internet PATCH "/receive-connectors/Default%20FABRIKAM" '{"permissionGroups":["AnonymousUsers","ExchangeUsers","ExchangeServers"]}'

# --- Mail both ways ------------------------------------------------------------------------------
wait_for_mail() { # dir... ; prints the first file found
  for _ in $(seq 1 200); do
    for d in "$@"; do
      f=$(find "$d" -type f 2>/dev/null | head -n 1)
      if [ -n "$f" ]; then echo "$f"; return 0; fi
    done
    sleep 0.1
  done
  return 1
}
say "inbound: the Internet MTA ($MTA) sends to bob@contoso.test on mail.contoso.test"
swaks --server "$EDGE_EXT:$PORT" --local-interface "$MTA" --ehlo mx.fabrikam.test --tls \
  --from alice@fabrikam.test --to bob@contoso.test --header "Subject: inbound through the Edge" --silent 2
inbound=$(wait_for_mail "$WORK/hub1/mailboxes/contoso.test/bob/Maildir/new" "$WORK/hub2/mailboxes/contoso.test/bob/Maildir/new") \
  || { echo "inbound mail did not reach Bob's mailbox" >&2; exit 1; }
echo "  delivered: $inbound"
say "outbound: bob authenticates on Hub 1's client connector and writes to carol@fabrikam.test"
swaks --server "$HUB1:$SUBMISSION_PORT" --local-interface "$NET.40" --ehlo bob-laptop --tls \
  --auth PLAIN --auth-user bob@contoso.test --auth-password "$BOB_PASSWORD" \
  --from bob@contoso.test --to carol@fabrikam.test --header "Subject: outbound through the Edge" --silent 2
outbound=$(wait_for_mail "$WORK/internet/mailboxes/fabrikam.test/carol/Maildir/new") \
  || { echo "outbound mail did not reach the Internet MTA" >&2; exit 1; }
echo "  delivered: $outbound"
grep -E '^Received: from' "$outbound" | sed 's/^/    /'
say "done: mail flows both ways (logs and data in $WORK)"
