#!/usr/bin/env bash
# Configures and (re)starts the system Postfix as a real smart host for the
# delivery tests: STARTTLS with the given certificate, SASL PLAIN/LOGIN
# (Cyrus sasldb) for one user, and virtual delivery of DOMAIN into one
# Maildir, MAILBASE/DOMAIN/ (Postfix adds Delivered-To to tell recipients apart).
# Usage: postfix-smarthost.sh IP PORT HOSTNAME DOMAIN USER PASSWORD CERT KEY MAILBASE
set -euo pipefail
IP=$1 PORT=$2 HOST=$3 DOMAIN=$4 USER=$5 PASS=$6 CERT=$7 KEY=$8 BASE=$9

postfix stop >/dev/null 2>&1 || true
mkdir -p /etc/postfix/sasl "$BASE"
chown postfix:postfix "$BASE"
install -m 0644 "$CERT" /etc/postfix/ferry-test.crt
install -m 0600 "$KEY" /etc/postfix/ferry-test.key
cat > /etc/postfix/sasl/smtpd.conf <<CONF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: /etc/postfix/sasl/sasldb2
CONF
rm -f /etc/postfix/sasl/sasldb2
echo -n "$PASS" | saslpasswd2 -f /etc/postfix/sasl/sasldb2 -p -c -u "$HOST" "$USER"
chown postfix:postfix /etc/postfix/sasl/sasldb2
chmod 0600 /etc/postfix/sasl/sasldb2
[ -f /etc/postfix/main.cf ] || touch /etc/postfix/main.cf
postconf -e "compatibility_level = 3.6" "myhostname = $HOST" "mydestination =" \
  "inet_interfaces = all" "inet_protocols = ipv4" "mynetworks = 127.0.0.1/32" "relayhost =" \
  "virtual_mailbox_domains = $DOMAIN" "virtual_mailbox_base = $BASE" \
  "virtual_mailbox_maps = static:$DOMAIN/" \
  "virtual_uid_maps = static:$(id -u postfix)" "virtual_gid_maps = static:$(id -g postfix)" "virtual_minimum_uid = 1" \
  "smtpd_tls_cert_file = /etc/postfix/ferry-test.crt" "smtpd_tls_key_file = /etc/postfix/ferry-test.key" \
  "smtpd_tls_security_level = may" "smtpd_tls_auth_only = yes" \
  "smtpd_sasl_auth_enable = yes" "smtpd_sasl_type = cyrus" "smtpd_sasl_path = smtpd" \
  "cyrus_sasl_config_path = /etc/postfix/sasl" "smtpd_sasl_local_domain = $HOST" \
  "smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination" \
  "maillog_file = /var/log/postfix-ferry-test.log" "smtpd_client_connection_count_limit = 0" \
  "message_size_limit = 52428800" "virtual_mailbox_limit = 0" "relayhost =" "smtpd_recipient_restrictions ="
postconf -MX smtp/inet 2>/dev/null || true
# Only our listener: drop every other inet service (e.g. the benchmark's).
for svc in $(postconf -M | awk '$2 == "inet" {print $1}'); do postconf -MX "$svc/inet"; done
postconf -M "$IP:$PORT/inet=$IP:$PORT inet n - n - - smtpd"
newaliases 2>/dev/null || true
postfix start >/dev/null 2>&1
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/$IP/$PORT") 2>/dev/null; then exit 0; fi
  sleep 0.1
done
echo "postfix did not start listening on $IP:$PORT" >&2
exit 1
