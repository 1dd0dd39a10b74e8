#!/usr/bin/env bash
# A private Postfix (postfix-private.sh) as a real smart host for the delivery
# tests: STARTTLS with the given certificate, SASL PLAIN/LOGIN (Cyrus sasldb)
# for one user, and virtual delivery of DOMAIN into one Maildir, DIR/mail/DOMAIN/
# (Postfix adds Delivered-To to tell recipients apart). Nothing outside DIR is
# written; stop it with `postfix-private.sh DIR stop`.
# Usage: postfix-smarthost.sh DIR IP PORT HOSTNAME DOMAIN USER PASSWORD CERT KEY
set -euo pipefail
DIR=$(realpath -m "$1") IP=$2 PORT=$3 HOST=$4 DOMAIN=$5 USER=$6 PASS=$7 CERT=$8 KEY=$9
here=$(dirname "$0")
pf() { bash "$here/postfix-private.sh" "$DIR" "$@"; }

pf init
CONF=$DIR/conf
mkdir -p "$CONF/sasl" "$DIR/mail"
chown postfix:postfix "$DIR/mail"
install -m 0644 "$CERT" "$CONF/smarthost.crt"
install -m 0600 "$KEY" "$CONF/smarthost.key"
cat > "$CONF/sasl/smtpd.conf" <<CONF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: $CONF/sasl/sasldb2
CONF
echo -n "$PASS" | saslpasswd2 -f "$CONF/sasl/sasldb2" -p -c -u "$HOST" "$USER"
chown postfix:postfix "$CONF/sasl/sasldb2"
chmod 0600 "$CONF/sasl/sasldb2"
pf postconf -e "myhostname = $HOST" "inet_interfaces = all" "mynetworks = 127.0.0.1/32" \
  "virtual_mailbox_domains = $DOMAIN" "virtual_mailbox_base = $DIR/mail" \
  "virtual_mailbox_maps = static:$DOMAIN/" \
  "virtual_uid_maps = static:$(id -u postfix)" "virtual_gid_maps = static:$(id -g postfix)" "virtual_minimum_uid = 1" \
  "smtpd_tls_cert_file = $CONF/smarthost.crt" "smtpd_tls_key_file = $CONF/smarthost.key" \
  "smtpd_tls_security_level = may" "smtpd_tls_auth_only = yes" \
  "smtpd_sasl_auth_enable = yes" "smtpd_sasl_type = cyrus" "smtpd_sasl_path = smtpd" \
  "cyrus_sasl_config_path = $CONF/sasl" "smtpd_sasl_local_domain = $HOST" \
  "smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination" \
  "smtpd_client_connection_count_limit = 0" \
  "message_size_limit = 52428800" "virtual_mailbox_limit = 0" "smtpd_recipient_restrictions ="
pf postconf -M "$IP:$PORT/inet=$IP:$PORT inet n - n - - smtpd"
pf start
pf wait "$IP" "$PORT"
