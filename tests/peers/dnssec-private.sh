#!/usr/bin/env bash
# A private DNSSEC-signed DNS on loopback, for DANE: zones signed with
# ldns-signzone (ECDSA P-256 keys made by ldns-keygen) and served by NSD,
# both from Debian's packages (nsd, ldnsutils and the libraries they need),
# downloaded and extracted under target/peers/dnssec by `fetch` — never
# installed, since nsd's postinst starts a system daemon. The instance has
# its configuration, zones, PID file and log under DIR and is stopped by
# PID. Nothing of the system's is read or written.
# Usage:
#   dnssec-private.sh fetch
#   dnssec-private.sh available
#   dnssec-private.sh DIR sign ORIGIN          # DIR/ORIGIN.zone -> .zone.signed; DIR/ORIGIN.ds, DIR/ORIGIN.ksk
#   dnssec-private.sh DIR start ADDR PORT ZONE...  # serves DIR/ZONE.zone.signed (or DIR/ZONE.zone)
#   dnssec-private.sh DIR stop
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LOCAL=$REPO/target/peers/dnssec/root
export LD_LIBRARY_PATH=$LOCAL/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

locate() {
  [ -x "$LOCAL/usr/sbin/nsd" ] && [ -x "$LOCAL/usr/bin/ldns-signzone" ] &&
    "$LOCAL/usr/sbin/nsd" -v >/dev/null 2>&1
}

case $1 in
  fetch)
    locate && exit 0
    mkdir -p "$LOCAL/../debs"
    cd "$LOCAL/../debs"
    pkgs="nsd ldnsutils libldns3 libpcap0.8 libfstrm0 libprotobuf-c1"
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
locate || { echo "nsd/ldnsutils are not available: run $0 fetch" >&2; exit 1; }
BIN=$LOCAL/usr/bin
case $cmd in
  sign)
    origin=$1
    cd "$DIR"
    name=${origin%.}; [ -z "$name" ] && name=root
    zsk=$("$BIN/ldns-keygen" -a ECDSAP256SHA256 "$origin")
    ksk=$("$BIN/ldns-keygen" -a ECDSAP256SHA256 -k "$origin")
    "$BIN/ldns-signzone" -n -o "$origin" "$name.zone" "$zsk" "$ksk"
    cp "$ksk.ds" "$name.ds"
    cp "$ksk.key" "$name.ksk"
    ;;
  start)
    addr=$1 port=$2; shift 2
    {
      echo "server:"
      echo "  ip-address: $addr@$port"
      echo "  username: \"\""
      echo "  chroot: \"\""
      echo "  zonesdir: \"$DIR\""
      echo "  database: \"\""
      echo "  pidfile: \"$DIR/nsd.pid\""
      echo "  xfrdfile: \"$DIR/xfrd.state\""
      echo "  zonelistfile: \"$DIR/zone.list\""
      echo "  logfile: \"$DIR/nsd.log\""
      echo "  server-count: 1"
      echo "remote-control:"
      echo "  control-enable: no"
      for zone in "$@"; do
        name=${zone%.}; [ -z "$name" ] && name=root
        file=$name.zone.signed; [ -f "$DIR/$file" ] || file=$name.zone
        echo "zone:"
        echo "  name: \"$zone\""
        echo "  zonefile: \"$file\""
      done
    } > "$DIR/nsd.conf"
    "$LOCAL/usr/sbin/nsd" -c "$DIR/nsd.conf" -P "$DIR/nsd.pid"
    for _ in $(seq 1 100); do
      [ -s "$DIR/nsd.pid" ] && grep -q "nsd started" "$DIR/nsd.log" 2>/dev/null && exit 0
      sleep 0.05
    done
    echo "nsd did not start" >&2; cat "$DIR/nsd.log" >&2 || true; exit 1
    ;;
  stop)
    pid=$(cat "$DIR/nsd.pid" 2>/dev/null || true)
    [ -n "$pid" ] || exit 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
    ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
