#!/usr/bin/env bash
# Checks the OpenAPI document against a running Ferry with tools nobody
# here wrote: openapi-spec-validator on the document Ferry serves, then
# schemathesis (all checks; examples, coverage, fuzzing and stateful
# phases) with a fixed seed and a random one, which it prints for replay.
# A private Hub on 127.248.0.1:8080 (its own temp data directory, stopped
# by PID, in a network namespace with loopback only) with the AUTH/API
# lockout off, so generated wrong tokens are answered 401 rather than 429,
# and DNS pointed at a loopback address where nothing answers.
# Every operation is tested: receive connectors' generated bindings can
# listen on nothing but the namespace's loopback, and a run whose own
# token was revoked or rotated by a generated request fails (its 401s
# would prove nothing).
# The seeds run at the same time, each against its own Ferry in its own
# namespace (the same addresses, nothing shared): schemathesis is one
# Python thread, so two seeds take the time of one on two cores. Each
# seed's output is printed whole when both are done.
# Usage: tests/contract/run.sh [examples per operation, default 15] [more schemathesis options]
# e.g. tests/contract/run.sh 15 --include-path /api/v1/accepted-domains
# SEED=n replays seed n (with seed 1 beside it); SEEDS="n ..." runs exactly those.
# Needs: the venv .ci/run makes (schemathesis and openapi-spec-validator in it).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Generated settings name DNS servers, smart hosts and scanners anywhere:
# each seed runs in a network namespace of its own with nothing but
# loopback, so no generated address can ever be reached.
if [ -z "${FERRY_CONTRACT_SEED:-}" ]; then
  # Each seed once (SEED=1 would name seed 1 twice, into one log).
  # shellcheck disable=SC2086
  read -r -a seeds <<< "$(printf '%s\n' ${SEEDS:-1 ${SEED:-$RANDOM}} | awk '!seen[$0]++' | xargs)"
  logs=$(mktemp -d)
  trap 'rm -rf "$logs"' EXIT
  pids=()
  for s in "${seeds[@]}"; do
    FERRY_CONTRACT_SEED=$s unshare --user --map-root-user --net -- bash "$0" "$@" > "$logs/$s.log" 2>&1 &
    pids+=($!)
  done
  status=0
  for i in "${!seeds[@]}"; do
    wait "${pids[$i]}" || status=1
    echo "== schemathesis, seed ${seeds[$i]}"
    cat "$logs/${seeds[$i]}.log"
  done
  exit $status
fi
ip link set lo up
N=${1:-15}
shift || true
FERRY=${FERRY_BIN:-target/debug/ferry}
PY=target/ci-venv/bin
TOKEN=contract-test-token-0123456789
work=$(mktemp -d)
FERRY_LOG=warn "$FERRY" serve --data-dir "$work/data" --role hub --fqdn hub01.contoso.test \
  --api-listen 127.248.0.1:8080 --admin-token "$TOKEN" \
  --default-smtp-bind 127.248.0.1:2525 --default-submission-bind 127.248.0.1:2587 > "$work/ferry.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf http://127.248.0.1:8080/healthz >/dev/null && break; sleep 0.1; done
curl -sf -X PATCH -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  http://127.248.0.1:8080/api/v1/transport-settings -d '{"authFailureLockoutThreshold": 0, "externalDNSServers": ["127.248.0.53"], "internalDNSServers": ["127.248.0.53"]}' >/dev/null
curl -sf http://127.248.0.1:8080/api/v1/openapi.json > "$work/openapi.json"
# The token the API-token operations act on (schemathesis.toml), so they
# never revoke or rotate the one the run uses.
target_token() {
  curl -sf -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    http://127.248.0.1:8080/api/v1/api-tokens -d '{"name": "contract-target", "role": "Operator"}' || true
}
"$PY/python" -m openapi_spec_validator "$work/openapi.json"
s=$FERRY_CONTRACT_SEED
status=0
target_token
PYTHONPATH=tests/contract SCHEMATHESIS_HOOKS=hooks "$PY/schemathesis" --config-file tests/contract/schemathesis.toml run "$work/openapi.json" \
  --url http://127.248.0.1:8080 -H "Authorization: Bearer $TOKEN" --checks all -n "$N" --seed "$s" \
  --phases examples,coverage,fuzzing,stateful --no-color "$@" || status=1
# Answers to a token that stopped working (a generated revoke or rotate
# of the run's own token) are 401s, which prove nothing: the token must
# still be good at the end of the run.
if ! curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" http://127.248.0.1:8080/api/v1/server; then
  echo "the run's API token no longer works: its answers since then prove nothing"
  status=1
fi
exit $status
