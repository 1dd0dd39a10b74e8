#!/usr/bin/env bash
# A private OpenLDAP server for tests: Debian's slapd run with its own
# slapd.conf, database and PID file under DIR, on one loopback address,
# stopped by PID. No system configuration (/etc/ldap) is read or written and
# no system slapd is started.
#
# slapd is the installed one when there is one; otherwise Debian's package,
# downloaded and extracted (not installed: its postinst would configure and
# start a system daemon) under target/peers/slapd by `fetch`.
# Usage:
#   slapd-private.sh fetch                               # once, as .ci/run does
#   slapd-private.sh available                           # exit 0 when slapd can run
#   slapd-private.sh DIR start ADDR:PORT SUFFIX LDIF [CERT KEY]
#                                  # load LDIF, listen on ldap://ADDR:PORT (StartTLS with CERT/KEY)
#   slapd-private.sh DIR stop
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LOCAL=$REPO/target/peers/slapd/root

locate() {
  if [ -x /usr/sbin/slapd ]; then
    SLAPD=/usr/sbin/slapd; SLAPADD=/usr/sbin/slapadd; MODULES=/usr/lib/ldap; SCHEMA=/etc/ldap/schema
  elif [ -x "$LOCAL/usr/sbin/slapd" ]; then
    SLAPD=$LOCAL/usr/sbin/slapd; SLAPADD=$LOCAL/usr/sbin/slapadd; MODULES=$LOCAL/usr/lib/ldap
    SCHEMA=$LOCAL/etc/ldap/schema
    export LD_LIBRARY_PATH=$LOCAL/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  else
    return 1
  fi
}

case $1 in
  fetch)
    locate && exit 0
    mkdir -p "$LOCAL/../debs"
    cd "$LOCAL/../debs"
    # slapd and the two libraries it needs that a test machine may lack.
    apt-get download slapd libltdl7 libwrap0 >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null
      apt-get download slapd libltdl7 libwrap0 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
    }
    for d in ./*.deb; do dpkg-deb -x "$d" "$LOCAL"; done
    locate
    exit 0
    ;;
  available)
    locate
    exit $?
    ;;
esac

DIR=$(realpath -m "$1"); cmd=$2; shift 2
locate || { echo "slapd is not available: run $0 fetch" >&2; exit 1; }
case $cmd in
  start)
    ADDR=$1; SUFFIX=$2; LDIF=$3; CERT=${4:-}; KEY=${5:-}
    mkdir -p "$DIR/db"
    cat > "$DIR/slapd.conf" <<CONF
include $SCHEMA/core.schema
include $SCHEMA/cosine.schema
include $SCHEMA/inetorgperson.schema
pidfile $DIR/slapd.pid
modulepath $MODULES
moduleload back_mdb
database mdb
maxsize 10485760
suffix "$SUFFIX"
rootdn "cn=admin,$SUFFIX"
rootpw admin-secret
directory $DIR/db
CONF
    if [ -n "$CERT" ]; then
      printf 'TLSCertificateFile %s\nTLSCertificateKeyFile %s\n' "$CERT" "$KEY" >> "$DIR/slapd.conf.tls"
      # Global directives go before the first database: put them on top.
      cat "$DIR/slapd.conf.tls" "$DIR/slapd.conf" > "$DIR/slapd.conf.new" && mv "$DIR/slapd.conf.new" "$DIR/slapd.conf"
    fi
    "$SLAPADD" -q -f "$DIR/slapd.conf" -l "$LDIF"
    "$SLAPD" -f "$DIR/slapd.conf" -h "ldap://$ADDR/"
    for _ in $(seq 1 100); do
      [ -s "$DIR/slapd.pid" ] && (exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}") 2>/dev/null && exit 0
      sleep 0.05
    done
    echo "slapd did not start on $ADDR" >&2
    exit 1
    ;;
  stop)
    if [ -s "$DIR/slapd.pid" ]; then
      pid=$(cat "$DIR/slapd.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    fi
    ;;
  *) echo "usage: $0 fetch | available | DIR start ADDR:PORT SUFFIX LDIF | DIR stop" >&2; exit 2 ;;
esac
