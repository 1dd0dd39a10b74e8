#!/usr/bin/env bash
# A private HAProxy: a TCP load balancer in front of Ferry, sending the PROXY
# protocol (v1 or v2) to it. Debian's haproxy run with its own configuration
# and PID file under DIR, on loopback addresses only, stopped by PID. No
# system configuration (/etc/haproxy) is read or written and no system
# haproxy is started.
#
# haproxy is the installed one when there is one; otherwise Debian's package
# and the libraries it needs, downloaded and extracted (not installed: its
# postinst would start a system daemon) under target/peers/haproxy by
# `fetch`.
# Usage:
#   haproxy-private.sh fetch
#   haproxy-private.sh available
#   haproxy-private.sh DIR start FRONTEND BACKEND v1|v2 [SOURCE]   # FRONTEND, BACKEND: ADDR:PORT
#   haproxy-private.sh DIR stop
# SOURCE: the address HAProxy connects to Ferry from (default: the
# frontend's address).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LOCAL=$REPO/target/peers/haproxy/root

locate() {
  if [ -x /usr/sbin/haproxy ]; then
    HAPROXY=/usr/sbin/haproxy
  elif [ -x "$LOCAL/usr/sbin/haproxy" ]; then
    HAPROXY=$LOCAL/usr/sbin/haproxy
    export LD_LIBRARY_PATH=$LOCAL/usr/lib/x86_64-linux-gnu:$LOCAL/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  else
    return 1
  fi
  "$HAPROXY" -v >/dev/null 2>&1
}

case $1 in
  fetch)
    locate && exit 0
    mkdir -p "$LOCAL/../debs"
    cd "$LOCAL/../debs"
    pkgs="haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1"
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
locate || { echo "haproxy is not available: run $0 fetch" >&2; exit 1; }
case $cmd in
  start)
    front=$1 back=$2 version=$3 source=${4:-${1%:*}}
    mkdir -p "$DIR"
    case $version in
      v1) send=send-proxy ;;
      v2) send=send-proxy-v2 ;;
      *) echo "v1 or v2" >&2; exit 2 ;;
    esac
    cat > "$DIR/haproxy.cfg" <<CFG
global
    pidfile $DIR/haproxy.pid
    maxconn 2000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend smtp
    bind $front
    default_backend ferry
backend ferry
    source $source
    server ferry $back $send
CFG
    "$HAPROXY" -c -q -f "$DIR/haproxy.cfg"
    "$HAPROXY" -D -f "$DIR/haproxy.cfg"
    for _ in $(seq 50); do
      [ -s "$DIR/haproxy.pid" ] && exit 0
      sleep 0.1
    done
    echo "haproxy did not start" >&2; exit 1
    ;;
  stop)
    if [ -s "$DIR/haproxy.pid" ]; then
      kill "$(cat "$DIR/haproxy.pid")" 2>/dev/null || true
      for _ in $(seq 50); do
        kill -0 "$(cat "$DIR/haproxy.pid")" 2>/dev/null || exit 0
        sleep 0.1
      done
    fi
    ;;
esac
