#!/usr/bin/env bash
# A private OpenDKIM milter: for the benchmarks, signing beside Postfix
# (what admins run); for the tests, verifying what Ferry signed after a
# Postfix relay, its public keys read from a file (TestPublicKeys) rather
# than DNS. Debian's opendkim run with its own configuration, keys and PID
# file under DIR, listening on one loopback address (its resolver pointed
# at loopback all the same), stopped by PID. No system configuration
# (/etc/opendkim.conf) is read or written and no system opendkim is started.
#
# opendkim is the installed one when there is one; otherwise Debian's
# package and the libraries it needs, downloaded and extracted (not
# installed: its postinst would start a system daemon) under
# target/peers/opendkim by `fetch`.
# Usage:
#   opendkim-private.sh fetch
#   opendkim-private.sh available
#   opendkim-private.sh DIR start ADDR PORT DOMAIN SELECTOR KEYFILE   # signing
#   opendkim-private.sh DIR verify ADDR PORT AUTHSERV-ID KEYS         # verifying; KEYS: "name record" lines
#   opendkim-private.sh DIR stop
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LOCAL=$REPO/target/peers/opendkim/root

locate() {
  if [ -x /usr/sbin/opendkim ]; then
    OPENDKIM=/usr/sbin/opendkim
  elif [ -x "$LOCAL/usr/sbin/opendkim" ]; then
    OPENDKIM=$LOCAL/usr/sbin/opendkim
    export LD_LIBRARY_PATH=$LOCAL/usr/lib/x86_64-linux-gnu:$LOCAL/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  else
    return 1
  fi
  "$OPENDKIM" -V >/dev/null 2>&1
}

case $1 in
  fetch)
    locate && exit 0
    mkdir -p "$LOCAL/../debs"
    cd "$LOCAL/../debs"
    pkgs="opendkim libopendkim11 librbl1 libvbr2 libmilter1.0.1 libmemcached11 libopendbx1 liblua5.3-0 libhashkit2
      libunbound8 libldap-2.5-0 libevent-2.1-7 libbsd0 libmd0 libdb5.3"
    # shellcheck disable=SC2086
    apt-get download $pkgs >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null
      apt-get download $pkgs 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
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
locate || { echo "opendkim is not available: run $0 fetch" >&2; exit 1; }
case $cmd in
  start)
    ADDR=$1; PORT=$2; DOMAIN=$3; SELECTOR=$4; KEY=$5
    mkdir -p "$DIR"
    cp "$KEY" "$DIR/key.pem"; chmod 600 "$DIR/key.pem"
    cat > "$DIR/opendkim.conf" <<CONF
Mode                    s
Domain                  $DOMAIN
Selector                $SELECTOR
KeyFile                 $DIR/key.pem
Canonicalization        relaxed/relaxed
OversignHeaders         From
Socket                  inet:$PORT@$ADDR
PidFile                 $DIR/opendkim.pid
Nameservers             127.0.0.1
Syslog                  no
RequireSafeKeys         no
UMask                   007
CONF
    rm -f "$DIR/opendkim.pid"
    "$OPENDKIM" -x "$DIR/opendkim.conf" -u root >"$DIR/stdout" 2>&1 || { cat "$DIR/stdout" >&2; exit 1; }
    for _ in $(seq 1 100); do
      [ -s "$DIR/opendkim.pid" ] && (exec 3<>"/dev/tcp/$ADDR/$PORT") 2>/dev/null && exit 0
      sleep 0.05
    done
    echo "opendkim did not start on $ADDR:$PORT" >&2; cat "$DIR/stdout" >&2; exit 1
    ;;
  verify)
    ADDR=$1; PORT=$2; AUTHSERV=$3; KEYS=$4
    mkdir -p "$DIR"
    cp "$KEYS" "$DIR/public-keys"
    cat > "$DIR/opendkim.conf" <<CONF
Mode                    v
AuthservID              $AUTHSERV
# Verify every client: loopback is otherwise an internal host, signed for
# rather than verified (192.0.2.255 is a documentation address, never used).
InternalHosts           192.0.2.255/32
TestPublicKeys          $DIR/public-keys
Socket                  inet:$PORT@$ADDR
PidFile                 $DIR/opendkim.pid
Nameservers             127.0.0.1
Syslog                  no
UMask                   007
CONF
    rm -f "$DIR/opendkim.pid"
    "$OPENDKIM" -x "$DIR/opendkim.conf" -u root >"$DIR/stdout" 2>&1 || { cat "$DIR/stdout" >&2; exit 1; }
    for _ in $(seq 1 100); do
      [ -s "$DIR/opendkim.pid" ] && (exec 3<>"/dev/tcp/$ADDR/$PORT") 2>/dev/null && exit 0
      sleep 0.05
    done
    echo "opendkim did not start on $ADDR:$PORT" >&2; cat "$DIR/stdout" >&2; exit 1
    ;;
  stop)
    if [ -s "$DIR/opendkim.pid" ]; then
      pid=$(cat "$DIR/opendkim.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    fi
    ;;
  *) echo "usage: $0 fetch | available | DIR start ADDR PORT DOMAIN SELECTOR KEYFILE | DIR verify ADDR PORT AUTHSERV-ID KEYS | DIR stop" >&2; exit 2 ;;
esac
