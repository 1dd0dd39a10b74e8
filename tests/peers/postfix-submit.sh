#!/usr/bin/env bash
# A private Postfix (tests/peers/postfix-private.sh) that submits mail the
# way a site's MTA or an application server does: it listens on IP:PORT for
# loopback clients and relays everything to RELAY (host:port) after STARTTLS
# (mandatory, unverified: `encrypt`) with SASL AUTH as USER / PASSWORD.
# Usage: postfix-submit.sh DIR IP PORT RELAY_IP RELAY_PORT USER PASSWORD
# Stop it with: postfix-private.sh DIR stop
set -euo pipefail
DIR=$1 IP=$2 PORT=$3 RELAY_IP=$4 RELAY_PORT=$5 USER=$6 PASSWORD=$7
HERE=$(dirname "$0")
P() { bash "$HERE/postfix-private.sh" "$DIR" "$@"; }
P init
P postconf -e "myhostname = app01.contoso.test" "inet_interfaces = all" "mynetworks = 127.0.0.0/8" \
  "relayhost = [$RELAY_IP]:$RELAY_PORT" "smtp_sasl_auth_enable = yes" \
  "smtp_sasl_password_maps = static:$USER:$PASSWORD" "smtp_sasl_security_options = noanonymous" \
  "smtp_sasl_tls_security_options = noanonymous" "smtp_tls_security_level = encrypt" \
  "smtp_bind_address = $IP" "bounce_queue_lifetime = 0" "maximal_queue_lifetime = 1h"
P postconf -M "$IP:$PORT/inet=$IP:$PORT inet n - n - - smtpd"
P start
P wait "$IP" "$PORT"
