#!/usr/bin/env bash
# A private rspamd for tests and benchmarks: Debian's rspamd run with its
# own configuration, state, log and PID file under DIR, its scanner worker
# on one loopback address (and, when asked, its milter proxy on another
# port), stopped by PID. No system configuration (/etc/rspamd) is read or
# written and no system rspamd is started.
#
# The configuration is Debian's rules and scores with only the modules that
# need nothing from the network (no RBLs, no fuzzy servers, no maps fetched
# from the Internet, no Redis); its DNS resolver is a loopback port where
# nothing answers, so no lookup ever leaves the machine.
#
# rspamd is the installed one when there is one; otherwise Debian's package
# and the libraries it needs, downloaded and extracted (not installed: its
# postinst would start a system daemon) under target/peers/rspamd by `fetch`.
# Usage:
#   rspamd-private.sh fetch                          # once, as .ci/run does
#   rspamd-private.sh available                      # exit 0 when rspamd can run
#   rspamd-private.sh DIR start ADDR:PORT [MILTER_PORT [WORKERS]]
#   rspamd-private.sh DIR stop
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LOCAL=$REPO/target/peers/rspamd/root

locate() {
  if [ -x /usr/bin/rspamd ] && [ -d /usr/share/rspamd/rules ]; then
    ROOT=
  elif [ -x "$LOCAL/usr/bin/rspamd" ]; then
    ROOT=$LOCAL
    export LD_LIBRARY_PATH=$LOCAL/usr/lib/x86_64-linux-gnu:$LOCAL/usr/lib/rspamd${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  else
    return 1
  fi
  RSPAMD=$ROOT/usr/bin/rspamd
  CONFDIR=$ROOT/etc/rspamd
  SHAREDIR=$ROOT/usr/share/rspamd
  "$RSPAMD" --version >/dev/null 2>&1
}

case $1 in
  fetch)
    locate && exit 0
    mkdir -p "$LOCAL/../debs"
    cd "$LOCAL/../debs"
    # rspamd and the libraries it needs that a test machine may lack.
    pkgs="rspamd libhyperscan5 libicu72 libluajit-5.1-2 libluajit-5.1-common libsodium23 libunwind8 libglib2.0-0"
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
locate || { echo "rspamd is not available: run $0 fetch" >&2; exit 1; }
case $cmd in
  start)
    ADDR=$1; MILTER=${2:-}; WORKERS=${3:-2}
    HOST=${ADDR%:*}
    HS_CACHE=$REPO/target/peers/rspamd/hs-cache
    mkdir -p "$DIR/db" "$DIR/local/local.d" "$HS_CACHE"
    proxy=""
    if [ -n "$MILTER" ]; then
      proxy="worker \"rspamd_proxy\" {
    bind_socket = \"$HOST:$MILTER\";
    .include \"\$CONFDIR/worker-proxy.inc\"
    count = $WORKERS;
    milter = yes;
    timeout = 120s;
    upstream \"local\" { default = yes; self_scan = yes; }
}"
    fi
    cat > "$DIR/rspamd.conf" <<CONF
lua = "\$RULESDIR/rspamd.lua"
.include "\$CONFDIR/metrics.conf"
.include "\$CONFDIR/actions.conf"
.include "\$CONFDIR/groups.conf"
.include "\$CONFDIR/composites.conf"
modules { path = "\${PLUGINSDIR}"; }
# Only the modules that need nothing from the network.
.include "\$CONFDIR/modules.d/chartable.conf"
.include "\$CONFDIR/modules.d/regexp.conf"
.include "\$CONFDIR/modules.d/forged_recipients.conf"
.include "\$CONFDIR/modules.d/once_received.conf"
.include "\$CONFDIR/modules.d/milter_headers.conf"
options {
    # Debian's options.inc less what would reach the network.
    pidfile = "$DIR/rspamd.pid";
    url_tld = "\${SHAREDIR}/effective_tld_names.dat";
    cache_file = "$DIR/db/symbols.cache";
    # Hyperscan's compiled rules, shared by every instance: only the first
    # start compiles them.
    hs_cache_dir = "$HS_CACHE/";
    control_socket = "$DIR/db/rspamd.sock mode=0600";
    tempdir = "$DIR";
    allow_raw_input = true;
    task_timeout = 8s;
    explicit_modules = ["settings"];
    dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 1; sockets = 4; }
    local_addrs = [127.0.0.0/8];
    # GTUBE gives its verdict: the tests rely on it.
    enable_test_patterns = true;
}
logging { type = "file"; filename = "$DIR/rspamd.log"; level = "warning"; }
worker "normal" {
    bind_socket = "$ADDR";
    .include "\$CONFDIR/worker-normal.inc"
    count = $WORKERS;
}
$proxy
CONF
    rm -f "$DIR/rspamd.pid"
    vars=(--var="CONFDIR=$CONFDIR" --var="LOCAL_CONFDIR=$DIR/local" --var="RUNDIR=$DIR"
          --var="DBDIR=$DIR/db" --var="LOGDIR=$DIR" --var="SHAREDIR=$SHAREDIR"
          --var="RULESDIR=$SHAREDIR/rules" --var="LUALIBDIR=$SHAREDIR/lualib"
          --var="PLUGINSDIR=$SHAREDIR/plugins" --var="WWWDIR=$SHAREDIR/www")
    user=()
    [ "$(id -u)" = 0 ] && user=(-i)
    "$RSPAMD" "${user[@]}" -c "$DIR/rspamd.conf" "${vars[@]}" -p "$DIR/rspamd.pid" \
      >"$DIR/stdout" 2>&1 || { cat "$DIR/stdout" "$DIR/rspamd.log" >&2 2>/dev/null; exit 1; }
    # Ready when the scanner answers its health check.
    for _ in $(seq 1 200); do
      if [ -s "$DIR/rspamd.pid" ] && exec 3<>"/dev/tcp/$HOST/${ADDR##*:}" 2>/dev/null; then
        printf 'GET /ping HTTP/1.0\r\n\r\n' >&3
        if grep -q pong <&3; then exec 3<&-; exit 0; fi
        exec 3<&-
      fi
      sleep 0.05
    done
    echo "rspamd did not start on $ADDR" >&2
    cat "$DIR/rspamd.log" >&2 2>/dev/null || true
    exit 1
    ;;
  stop)
    if [ -s "$DIR/rspamd.pid" ]; then
      pid=$(cat "$DIR/rspamd.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    ;;
  *) echo "usage: $0 fetch | available | DIR start ADDR:PORT [MILTER_PORT [WORKERS]] | DIR stop" >&2; exit 2 ;;
esac
