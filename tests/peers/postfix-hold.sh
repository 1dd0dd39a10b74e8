#!/usr/bin/env bash
# A private Postfix (postfix-private.sh) as a next hop that accepts mail from
# loopback and puts every message on hold, so a test can read the envelope
# it received (postcat: the DSN records RFC 3461 carries, dsn_envid,
# dsn_orig_rcpt, dsn_notify_flags, dsn_ret). With `nodsn` it does not
# offer DSN (smtpd_discard_ehlo_keywords), like a next hop that takes no
# DSN requests. With CERT and KEY it offers STARTTLS with that certificate.
# Stop it with `postfix-private.sh DIR stop`.
# Usage: postfix-hold.sh DIR IP PORT [dsn|nodsn] [CERT KEY]
#        postfix-hold.sh DIR envelopes      # postcat of every held message
set -euo pipefail
DIR=$(realpath -m "$1")
here=$(dirname "$0")
pf() { bash "$here/postfix-private.sh" "$DIR" "$@"; }

if [ "$2" = envelopes ]; then
  for id in $(postqueue -c "$DIR/conf" -j | sed -n 's/.*"queue_id": *"\([0-9A-Za-z]*\)".*/\1/p'); do
    echo "== $id"
    postcat -c "$DIR/conf" -e -q "$id"
  done
  exit 0
fi
IP=$2 PORT=$3 MODE=${4:-dsn} CERT=${5:-} KEY=${6:-}
pf init
discard=
[ "$MODE" = nodsn ] && discard=dsn
pf postconf -e "myhostname = hold.$IP.test" "inet_interfaces = all" "mynetworks = 127.0.0.0/8" \
  "smtpd_relay_restrictions = permit_mynetworks, reject" \
  "smtpd_recipient_restrictions = check_client_access static:HOLD, permit_mynetworks, reject" \
  "smtpd_discard_ehlo_keywords = $discard" "smtpd_client_connection_count_limit = 0"
if [ -n "$CERT" ]; then
  install -m 0644 "$CERT" "$DIR/conf/smtpd.crt"
  install -m 0600 "$KEY" "$DIR/conf/smtpd.key"
  pf postconf -e "smtpd_tls_cert_file = $DIR/conf/smtpd.crt" "smtpd_tls_key_file = $DIR/conf/smtpd.key" \
    "smtpd_tls_security_level = may"
fi
pf postconf -M "$IP:$PORT/inet=$IP:$PORT inet n - n - - smtpd"
pf start
pf wait "$IP" "$PORT"
