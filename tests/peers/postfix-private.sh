#!/usr/bin/env bash
# A private Postfix instance under DIR, for tests and benchmarks: its own
# config_directory (DIR/conf, from Debian's master.cf.dist), queue
# (DIR/spool), data directory (DIR/data) and log (DIR/maillog), every service
# out of chroot. The system's /etc/postfix, /var/spool/postfix and any
# running system Postfix are never touched. Stop it by DIR (its master's PID).
# Usage:
#   postfix-private.sh DIR init                # create the instance (no listener yet)
#   postfix-private.sh DIR postconf ARGS...     # postconf -c DIR/conf ARGS...
#   postfix-private.sh DIR start | stop | flush
#   postfix-private.sh DIR wait IP PORT        # until smtpd listens there
set -euo pipefail
DIR=$(realpath -m "$1"); cmd=$2; shift 2
CONF=$DIR/conf
pc() { postconf -c "$CONF" "$@"; }
case $cmd in
  init)
    mkdir -p "$CONF" "$DIR/spool" "$DIR/data"
    # Postfix's daemons (user postfix) must reach the instance's files.
    chmod 755 "$DIR" "$CONF"
    chown postfix "$DIR/data"
    cp /usr/share/postfix/master.cf.dist "$CONF/master.cf"
    : > "$CONF/main.cf"
    pc -e "compatibility_level = 3.6" "queue_directory = $DIR/spool" "data_directory = $DIR/data" \
      "maillog_file = $DIR/maillog" "maillog_file_prefixes = $DIR" "inet_protocols = ipv4" "alias_maps =" "alias_database =" \
      "mydestination =" "relayhost =" "import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C"
    # No listener until the caller adds one; every service out of chroot.
    for svc in $(pc -M | awk '$2 == "inet" {print $1}'); do pc -MX "$svc/inet"; done
    for svc in $(pc -M | awk '{print $1 "/" $2}'); do pc -F "$svc/chroot = n"; done
    ;;
  postconf) pc "$@" ;;
  start)
    postfix -c "$CONF" start >/dev/null 2>&1 || { tail -n 20 "$DIR/maillog" >&2 2>/dev/null; exit 1; }
    ;;
  flush) postsuper -c "$CONF" -d ALL >/dev/null 2>&1 || true ;;
  wait)
    # Until smtpd listens on IP PORT (ten seconds at most).
    for _ in $(seq 1 100); do
      if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then exit 0; fi
      sleep 0.1
    done
    echo "postfix did not start listening on $1:$2" >&2
    tail -n 20 "$DIR/maillog" >&2 || true
    exit 1
    ;;
  stop)
    pid=$(head -n 1 "$DIR/spool/pid/master.pid" 2>/dev/null | tr -d ' ' || true)
    postfix -c "$CONF" stop >/dev/null 2>&1 || true
    if [ -n "$pid" ]; then
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
