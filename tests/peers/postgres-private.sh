#!/usr/bin/env bash
# A private PostgreSQL: Debian's postgresql-15 run with its own cluster in a
# temporary directory, listening on one loopback address and port, stopped
# by `stop` (pg_ctl, by the cluster's PID file). No system cluster is
# created, configured or started.
#
# PostgreSQL is the installed one when there is one; otherwise Debian's
# package and the libraries it needs, downloaded and extracted (not
# installed: its postinst would create and start the system's cluster)
# under target/peers/postgres by `fetch`. PostgreSQL refuses to run as root:
# as root the cluster belongs to `nobody`.
# Usage:
#   postgres-private.sh fetch
#   postgres-private.sh available
#   postgres-private.sh DIR start ADDR PORT     # prints the connection URL
#   postgres-private.sh DIR stop
#   postgres-private.sh DIR kill               # as a crash would: no shutdown
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LOCAL=$REPO/target/peers/postgres/root

locate() {
  if [ -x /usr/lib/postgresql/15/bin/postgres ]; then
    BIN=/usr/lib/postgresql/15/bin
  elif [ -x "$LOCAL/usr/lib/postgresql/15/bin/postgres" ]; then
    BIN=$LOCAL/usr/lib/postgresql/15/bin
    export LD_LIBRARY_PATH=$LOCAL/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  else
    return 1
  fi
  "$BIN/postgres" --version >/dev/null 2>&1
}

case $1 in
  fetch)
    locate && exit 0
    mkdir -p "$LOCAL/../debs"
    cd "$LOCAL/../debs"
    pkgs="postgresql-15 libicu72 libxml2 libpq5 libllvm14 libxslt1.1 libz3-4"
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
locate || { echo "PostgreSQL is not available: run $0 fetch" >&2; exit 1; }
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}
case $cmd in
  start)
    addr=$1 port=$2
    mkdir -p "$DIR"
    # The cluster lives where its owner can reach it (a test's temporary
    # directory is private to root).
    data=$(mktemp -d /tmp/ferry-pg.XXXXXX)
    chmod 755 "$data"
    echo "$data" > "$DIR/cluster"
    [ "$(id -u)" = 0 ] && chown nobody "$data"
    as_owner "$BIN/initdb" -D "$data/db" -U ferry --auth=trust --no-locale -E UTF8 >"$DIR/initdb.log" 2>&1 ||
      { cat "$DIR/initdb.log" >&2; exit 1; }
    # Its settings in its own configuration file, so a restart keeps them.
    cat >> "$data/db/postgresql.conf" <<CONF
listen_addresses = '$addr'
port = $port
unix_socket_directories = '$data'
max_connections = 200
CONF
    as_owner "$BIN/pg_ctl" -D "$data/db" -l "$data/postgres.log" -w -t 30 start >/dev/null ||
      { cat "$data/postgres.log" >&2; exit 1; }
    echo "postgres://ferry@$addr:$port/postgres"
    ;;
  stop|kill)
    [ -f "$DIR/cluster" ] || exit 0
    data=$(cat "$DIR/cluster")
    if [ "$cmd" = kill ]; then
      pid=$(head -1 "$data/db/postmaster.pid" 2>/dev/null || true)
      [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
      sleep 0.2
    else
      as_owner "$BIN/pg_ctl" -D "$data/db" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
  restart)
    data=$(cat "$DIR/cluster")
    as_owner "$BIN/pg_ctl" -D "$data/db" -l "$data/postgres.log" -w -t 30 start >/dev/null
    ;;
  remove)
    [ -f "$DIR/cluster" ] || exit 0
    data=$(cat "$DIR/cluster")
    as_owner "$BIN/pg_ctl" -D "$data/db" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$data" "$DIR/cluster"
    ;;
  *) echo "start|stop|kill|restart|remove" >&2; exit 2 ;;
esac
