#!/usr/bin/env bash
# The other MTAs a user would weigh against Ferry, each as a private relay
# instance for the benchmarks: Exim 4 (Debian's exim4-daemon-light),
# OpenSMTPD (Debian's opensmtpd) and Haraka (from npm). Each listens on one
# loopback address and port, relays everything from 127.0.0.0/8 to one
# smart host (127.0.0.1:SINK) with its queue on disk under DIR, and is
# stopped by its PID.
#
# Nothing of the host is configured. Debian lets one MTA package be installed
# at a time (and their postinst scripts would configure and start a system
# daemon), so Exim and OpenSMTPD are Debian's packages downloaded and
# extracted under target/peers/mta by `fetch`, not installed. Both insist on
# their system users and compiled-in paths (Exim re-executes /usr/sbin/exim4;
# OpenSMTPD keeps its queue in /var/spool/smtpd and chroots into
# /var/lib/opensmtpd/empty), so each runs in a mount namespace of its own
# (unshare) where DIR's own passwd and group files and directories are bound
# over those paths; the host's files are never written. Haraka is installed
# by npm under target/peers/mta/haraka and runs as nobody.
#
# Durability before 250, as seen under strace -f on one message each:
#   exim       fsync()s the spool's data and header files, then answers 250
#   opensmtpd  no fsync or fdatasync in any of its processes: rename() only
#   haraka     its outbound queue file is written with fsync (FsyncWriteStream)
# Usage:
#   mta-private.sh fetch exim|opensmtpd|haraka
#   mta-private.sh DIR start exim|opensmtpd|haraka ADDR PORT SINK_PORT
#   mta-private.sh DIR stop
#   mta-private.sh DIR queued        # messages still in its queue on disk
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
LOCAL=$REPO/target/peers/mta
HARAKA_VERSION=3.3.4

fetch() {
  case $1 in
    exim | opensmtpd)
      local pkgs libs need=()
      [ "$1" = exim ] && pkgs="exim4-daemon-light exim4-base" libs="libgnutls-dane0 libidn12 libdb5.3 libnsl2"
      [ "$1" = opensmtpd ] && pkgs="opensmtpd" libs="libevent-2.1-7 libdb5.3"
      # The libraries they link are installed (plain libraries, no daemon;
      # a setuid Exim would not take them from LD_LIBRARY_PATH).
      for l in $libs; do dpkg -s "$l" >/dev/null 2>&1 || need+=("$l"); done
      if [ ${#need[@]} -gt 0 ]; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
      fi
      [ -x "$LOCAL/$1/root/usr/sbin/$( [ "$1" = exim ] && echo exim4 || echo smtpd)" ] && return 0
      mkdir -p "$LOCAL/$1/debs"
      (
        cd "$LOCAL/$1/debs"
        # shellcheck disable=SC2086
        apt-get download $pkgs >/dev/null 2>&1 || {
          apt-get update -qq >/dev/null
          apt-get download $pkgs 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
        }
        for d in ./*.deb; do dpkg-deb -x "$d" "$LOCAL/$1/root"; done
      )
      ;;
    haraka)
      [ -f "$LOCAL/haraka/node_modules/Haraka/bin/haraka" ] && return 0
      mkdir -p "$LOCAL/haraka"
      (cd "$LOCAL/haraka" && npm install --no-audit --no-fund --silent "Haraka@$HARAKA_VERSION" >/dev/null)
      ;;
    *) echo "unknown MTA: $1" >&2; exit 2 ;;
  esac
}

# Runs "$@" in a new mount namespace where DIR/etc's passwd, group and
# resolv.conf stand for the host's, and every "SRC:DEST" of BINDS is bound
# over DEST. The resolver there is 127.0.0.1, where nothing answers: the
# host's may be a non-loopback address, and no peer may look anything up
# beyond loopback.
in_namespace() {
  local binds=$1; shift
  # shellcheck disable=SC2016
  ETC=$DIR/etc BINDS=$binds exec unshare --mount --propagation private bash -c '
    set -e
    mount --bind "$ETC/passwd" /etc/passwd
    mount --bind "$ETC/group" /etc/group
    mount --bind "$ETC/resolv.conf" /etc/resolv.conf
    for b in $BINDS; do mount --bind "${b%%:*}" "${b#*:}"; done
    exec "$@"' ns "$@"
}

private_users() { # name:uid ... -> DIR/etc/passwd and group, the host's plus these
  mkdir -p "$DIR/etc"
  cp /etc/passwd "$DIR/etc/passwd"; cp /etc/group "$DIR/etc/group"
  # "lookup file": OpenSMTPD's resolver (libasr) then reads /etc/hosts only.
  printf 'nameserver 127.0.0.1\nlookup file\n' > "$DIR/etc/resolv.conf"
  for u in "$@"; do
    echo "${u%%:*}:x:${u#*:}:${u#*:}::/nonexistent:/usr/sbin/nologin" >> "$DIR/etc/passwd"
    echo "${u%%:*}:x:${u#*:}:" >> "$DIR/etc/group"
  done
}

start_exim() { # addr port sink
  local root=$LOCAL/exim/root
  private_users Debian-exim:64900
  mkdir -p "$DIR/spool" "$DIR/log" "$DIR/sbin"
  chown 64900:64900 "$DIR/spool" "$DIR/log"
  # Exim re-executes itself as /usr/sbin/exim4.
  install -m 4755 "$root/usr/sbin/exim4" "$DIR/sbin/exim4"
  cat > "$DIR/exim.conf" <<CONF
keep_environment =
primary_hostname = exim.bench.test
exim_user = Debian-exim
exim_group = Debian-exim
spool_directory = $DIR/spool
log_file_path = $DIR/log/%slog
pid_file_path = $DIR/exim.pid
daemon_smtp_ports = $2
local_interfaces = $1
hostlist relay_from_hosts = 127.0.0.0/8
acl_smtp_rcpt = acl_check_rcpt
# The default (20) would refuse the benchmark's 200 sessions.
smtp_accept_max = 1000
smtp_accept_reserve = 0
message_size_limit = 100M
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
log_selector = -retry_defer -skip_delivery
begin acl
acl_check_rcpt:
  accept hosts = +relay_from_hosts
  deny message = relay not permitted
begin routers
smarthost:
  driver = manualroute
  route_list = * 127.0.0.1
  transport = remote_smtp
  self = send
  no_more
begin transports
remote_smtp:
  driver = smtp
  port = $3
  hosts_avoid_tls = *
  allow_localhost
begin retry
* * F,2h,1m
CONF
  in_namespace "$DIR/sbin:/usr/sbin" /usr/sbin/exim4 -C "$DIR/exim.conf" -bdf -q1m >"$DIR/exim.out" 2>&1 &
  echo $! > "$DIR/pid"
}

start_opensmtpd() { # addr port sink
  local root=$LOCAL/opensmtpd/root
  private_users opensmtpd:64901 opensmtpq:64902
  mkdir -p "$DIR/var-spool" "$DIR/var-lib/opensmtpd/empty" "$DIR/run"
  cat > "$DIR/smtpd.conf" <<CONF
smtp max-message-size 100M
listen on $1 port $2
action "relay" relay host smtp://127.0.0.1:$3
match from src 127.0.0.0/8 for any action "relay"
CONF
  in_namespace "$DIR/var-spool:/var/spool $DIR/var-lib:/var/lib $DIR/run:/run" \
    "$root/usr/sbin/smtpd" -d -f "$DIR/smtpd.conf" >"$DIR/smtpd.out" 2>&1 &
  echo $! > "$DIR/pid"
}

start_haraka() { # addr port sink
  local c=$DIR/haraka/config
  private_users
  mkdir -p "$DIR/haraka/queue"
  # Haraka's own defaults (connection.ini and the rest), then the relay's.
  cp -r "$LOCAL/haraka/node_modules/Haraka/config" "$c"
  printf '[main]\nlisten=%s:%s\nnodes=cpus\n' "$1" "$2" > "$c/smtp.ini"
  printf 'relay\nqueue/smtp_forward\n' > "$c/plugins"
  printf '[relay]\nacl=true\n' > "$c/relay.ini"
  echo 127.0.0.0/8 > "$c/relay_acl_allow"
  # Relayed mail goes through Haraka's outbound queue on disk; smtp_forward
  # only names the next hop for the benchmark's recipient domains.
  printf 'enable_outbound=false\nhost=127.0.0.1\nport=%s\nenable_tls=false\n' "$3" > "$c/smtp_forward.ini"
  for dom in remote.test; do printf '[%s]\nhost=127.0.0.1\nport=%s\nenable_tls=false\n' "$dom" "$3" >> "$c/smtp_forward.ini"; done
  printf '[main]\nenable_tls=false\nconcurrency_max=1000\n' > "$c/outbound.ini"
  printf '[main]\nlevel=warn\n' > "$c/log.ini"
  echo 104857600 > "$c/databytes"
  echo "$DIR/haraka/queue" > "$c/queue_dir"
  chown -R nobody "$DIR/haraka"
  in_namespace "" runuser -u nobody -- node "$LOCAL/haraka/node_modules/Haraka/bin/haraka" -c "$DIR/haraka" >"$DIR/haraka.out" 2>&1 &
  echo $! > "$DIR/pid"
}

case $1 in
  fetch) fetch "$2"; exit 0 ;;
esac
DIR=$(realpath -m "$1"); cmd=$2; shift 2
case $cmd in
  start)
    mta=$1 addr=$2 port=$3 sink=$4
    fetch "$mta"
    mkdir -p "$DIR"; chmod 755 "$DIR"
    echo "$mta" > "$DIR/mta"
    "start_$mta" "$addr" "$port" "$sink"
    for _ in $(seq 1 100); do
      if (exec 3<>"/dev/tcp/$addr/$port") 2>/dev/null; then exit 0; fi
      sleep 0.1
    done
    echo "$mta did not start:" >&2; tail -n 20 "$DIR"/*.out >&2; exit 1
    ;;
  stop)
    [ -f "$DIR/pid" ] || exit 0
    pid=$(cat "$DIR/pid")
    # The namespace's first process is the daemon (exec); its children
    # follow it out.
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    pkill -9 -f -- "$DIR/" 2>/dev/null || true
    rm -f "$DIR/pid"
    ;;
  queued)
    case $(cat "$DIR/mta") in
      exim) find "$DIR/spool/input" -name '*-H' 2>/dev/null | wc -l ;;
      opensmtpd) find "$DIR/var-spool/smtpd/queue" -type f -name message 2>/dev/null | wc -l ;;
      haraka) find "$DIR/haraka/queue" -maxdepth 1 -type f ! -name '.*' 2>/dev/null | wc -l ;;
    esac
    ;;
  *) echo "usage: $0 fetch MTA | DIR start MTA ADDR PORT SINK | DIR stop | DIR queued" >&2; exit 2 ;;
esac
