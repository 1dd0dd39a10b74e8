#!/usr/bin/env bash
# Plans (default) or applies (`deploy.sh apply`) edge-fleet.yaml on every
# Edge, one after the other; stops at the first problem. Each Edge's API URL
# and token come from the environment the CI job provides:
#   FERRY_API_URL_EDGE01, FERRY_API_TOKEN_EDGE01, …  and FERRY_API_CA_CERT
#   (the CA of the Edges' API certificates, if not a public one).
set -euo pipefail
action=${1:-plan}
cd "$(dirname "$0")"
for server in EDGE01 EDGE02 EDGE03; do
  url_var=FERRY_API_URL_$server token_var=FERRY_API_TOKEN_$server
  echo "== $server"
  FERRY_API_URL=${!url_var} FERRY_API_TOKEN=${!token_var} \
    ferry config "$action" edge-fleet.yaml
done
