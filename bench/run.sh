#!/usr/bin/env bash
# Ferry's benchmarks, in one invocation on this machine, against Postfix
# measured in the same run (ratios, because these machines are noisy):
#   1. relay throughput  smtp-source -> MTA -> smtp-sink, 4 KB and 100 KB, 20 and 200 sessions
#   2. acceptance latency p50/p99 (end of DATA -> reply), loadgen, same load on both
#   3. memory: idle RSS and growth per idle SMTP session (5,000 sessions)
#   4. hot reload: POST returning -> new binding answering; 100 changes under relay load
#   5. API: requests/s listing 200 receive connectors (wrk)
#   6. crash durability: 20 rounds of kill -9 under load, then drain: lost and duplicated
#   7. configuration at scale: two receive connectors of 100,000 ranges each on one binding,
#      saved while /healthz and an SMTP banner are probed (latency ratio against idle probes)
#   8. the anti-spam agents' cost: 4 KB x 20 sessions relayed with the agents disabled and
#      enabled over the same data (10,000 IP Block list entries, a DNSBL answering from a
#      private dnsmasq on loopback, recipient validation from a 100,000-recipient list)
#   9. the Content Filter's cost: 4 KB x 20 sessions relayed by Ferry with the Content Filter
#      off and on (a private rspamd on loopback), and by Postfix without and with the same
#      rspamd as a milter
#  10. message authentication's cost: 4 KB x 20 sessions relayed by Ferry plain and with
#      DKIM signing plus SPF/DKIM/DMARC verification of every message (records served by a
#      private dnsmasq), and by Postfix plain and with a private OpenDKIM milter signing
#  11. event webhooks' cost: 4 KB x 20 sessions relayed by Ferry with no webhook, with one
#      subscribed to every event and its receiver up (a Python HTTP server on loopback), and
#      with its receiver down for the whole run (every delivery fails and waits in the outbox)
#  12. the ceiling: what this machine does with no MTA at all, measured in the same run —
#      smtp-source straight into smtp-sink (the pipe's limit, 4 KB x 20 sessions) and the
#      disk's fsync rate (4 KB written and fsynced, in a loop, on the file system of the
#      data directories) — and Ferry's relay of the same load as a fraction of the pipe's limit,
#      with its CPU and the bytes it wrote toward the disk a message, each step of one
#      session timed under the load, and, when /dev/shm is a tmpfs, the same relay with
#      Ferry's data directory there (no write or fsync reaches the disk: what the disk costs)
#  13. connections: a fresh session's banner latency (p50/p99 of 200, connect -> 220) with
#      no other session open, and with ~19,000 idle sessions held open (two loadgens; the
#      file limit here is 20,000 a process and cannot be raised), and Ferry's RSS then
#  14. a fleet: three servers sharing one private PostgreSQL (--config-store); 30 receive
#      connectors created through the first, each with the two others' own bindings: the time
#      from the POST returning to a banner on both others (p50, p95, max)
#  15. queue depth: the next hop down, the queue filled to 100k, 500k and 1M messages; the
#      acceptance rate of a window at each depth, the queue viewer's first page, a filtered
#      count and the queue list; then the hop back and the time to drain it all
#  16. recipients: one message to 1,000 recipients in 50 domains, each a send connector to its
#      own smtp-sink (127.0.1.1-50): acceptance, and the time from 250 to the 50th hop
#  17. message size: 1, 10 and 50 MB messages relayed; MB/s against the pipe's own, and
#      Ferry's peak RSS growth
#  18. where the CPU goes: perf on Ferry relaying 4 KB x 20 sessions, a flame graph
#      (bench/flamegraph.svg) and the share of samples in SQLite, fsync, TCP, futex, ...
# Sections 1-2 run Postfix, Exim, OpenSMTPD and Haraka beside Ferry, each as a private
# instance (tests/peers/postfix-private.sh, tests/peers/mta-private.sh).
# Writes bench/RESULTS.md. Everything talks to loopback only; every loop is bounded.
# Usage: bash bench/run.sh [--quick]     (--quick: fewer messages, rounds and shorter budgets, under
#                                         10 minutes once built; written to target/RESULTS-quick.md,
#                                         bench/RESULTS.md untouched)
#        bash bench/run.sh --relay SIZE SESSIONS   (only sections 1–2 for one case, printed, RESULTS.md untouched)
#        bash bench/run.sh --peers                 (only sections 1–2, every case, written into RESULTS.md)
#        bash bench/run.sh --config                (only section 7, printed, RESULTS.md untouched)
#        bash bench/run.sh --agents                (only section 8, printed, RESULTS.md untouched)
#        bash bench/run.sh --content               (only section 9, printed, RESULTS.md untouched)
#        bash bench/run.sh --auth                  (only section 10, printed, RESULTS.md untouched)
#        bash bench/run.sh --webhooks              (only section 11, printed, RESULTS.md untouched)
#        bash bench/run.sh --ceiling               (only section 12, written into RESULTS.md, dated)
#        bash bench/run.sh --connections           (only section 13, written into RESULTS.md, dated)
#        bash bench/run.sh --fleet                 (only section 14, written into RESULTS.md, dated)
#        bash bench/run.sh --depth                 (only section 15, written into RESULTS.md, dated)
#        bash bench/run.sh --fanout                (only section 16, written into RESULTS.md, dated)
#        bash bench/run.sh --size                  (only section 17, written into RESULTS.md, dated)
#        bash bench/run.sh --profile               (only section 18 and bench/flamegraph.svg, written, dated)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
QUICK=${1:-}
N4K=5000; N100K=3000; CEIL_N=10000; CEIL_ROUNDS=5; CEIL_PROBE=300; ROUNDS=20; IDLE=5000; RELAY_BUDGET=40; LAT_BUDGET=20
DEPTHS="100000 500000 1000000"; DEPTH_WINDOW=20000; FANOUT_MESSAGES=20; SIZES_MB="1 10 50"
# How long a load waits for a reply, and for the sink to receive what was
# accepted: a slow peer is measured on what it did by then.
REPLY_WAIT=60; SINK_WAIT=180
# Latency samples per load: enough that p99 is not one unlucky message.
LAT_SAMPLES=1500
RESULTS=$REPO/bench/RESULTS.md
if [ "$QUICK" = --quick ]; then
  N4K=600; N100K=150; CEIL_N=600; CEIL_ROUNDS=2; CEIL_PROBE=50; ROUNDS=3; IDLE=1000; RELAY_BUDGET=3; LAT_BUDGET=2; REPLY_WAIT=3; SINK_WAIT=15; LAT_SAMPLES=600
  DEPTHS="20000 50000"; DEPTH_WINDOW=5000; FANOUT_MESSAGES=5; SIZES_MB="1 10"
  mkdir -p "$REPO/target"; RESULTS=$REPO/target/RESULTS-quick.md
fi
FLAMEGRAPH=$REPO/bench/flamegraph.svg; [ "$QUICK" = --quick ] && FLAMEGRAPH=$REPO/target/flamegraph-quick.svg
export LOADGEN_REPLY_SECONDS=$REPLY_WAIT
SIZES="4096 102400"; SESSIONS="20 200"
if [ "$QUICK" = --relay ]; then SIZES=${2:?size}; SESSIONS=${3:?sessions}; fi
# --peers: sections 1-2 in full (every size and session count), written into RESULTS.md.
W=$(mktemp -d /tmp/ferry-bench.XXXX)
chmod 0755 "$W"   # smtp-sink runs as postfix and writes its dumps in here
TOKEN=bench-admin-token-0123456789
API=http://127.0.0.1:18700/api/v1
IN=2531; SINK=2532; PF_IN=2526; PF_SINK=2527
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

need=()
for pkg in postfix wrk python3 curl jq; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release --locked -q
cargo build --release --locked -q --example loadgen
case $QUICK in ""|--quick|--profile) cargo build --profile profiling --locked -q ;; esac
SECONDS=0   # the run's own time, after the builds: "[N s]" before each section
FERRY=$REPO/target/release/ferry
LOADGEN=$REPO/target/release/examples/loadgen

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "ferry serve --data-dir $W" 2>/dev/null || true
  bash "$REPO/tests/peers/postgres-private.sh" "$W/fleet-pg" remove 2>/dev/null || true
  pf stop 2>/dev/null || true
  for p in exim opensmtpd haraka; do bash "$REPO/tests/peers/mta-private.sh" "$W/$p" stop 2>/dev/null || true; done
  bash "$REPO/tests/peers/rspamd-private.sh" "$W/rspamd" stop 2>/dev/null || true
  bash "$REPO/tests/peers/opendkim-private.sh" "$W/opendkim" stop 2>/dev/null || true
  if [ -n "${CEIL_TMPFS:-}" ]; then
    pkill -f "ferry serve --data-dir $CEIL_TMPFS" 2>/dev/null || true; rm -rf "$CEIL_TMPFS"
  fi
  rm -rf "$W"
}
trap cleanup EXIT

j() { echo "$1" | jq -r "$2"; }
api() { curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }

start_ferry() { # data-dir
  FERRY_ADMIN_TOKEN=$TOKEN FERRY_LOG=warn "$FERRY" serve --data-dir "$1" --fqdn bench.test --api-listen 127.0.0.1:18700 \
    --default-smtp-bind 127.0.0.1:2530 >>"$W/ferry.log" 2>&1 &
  FERRY_PID=$!
  for _ in $(seq 1 200); do curl -sf http://127.0.0.1:18700/healthz >/dev/null && return 0; sleep 0.05; done
  echo "ferry did not start" >&2; exit 1
}

configure_relay() { # a connector that lets 127.0.0.1 relay, and a send connector to the sink
  api -X POST "$API/receive-connectors" -d "{\"name\":\"bench relay\",\"usage\":\"Custom\",\"bindings\":[\"127.0.0.1:$IN\"],
    \"remoteIpRanges\":[\"127.0.0.1\"],\"permissionGroups\":[\"AnonymousUsers\"],\"tarpitInterval\":\"00:00:00\",
    \"messageRateLimit\":\"unlimited\",\"maxInboundConnection\":\"unlimited\",\"maxInboundConnectionPerSource\":\"unlimited\",
    \"maxInboundConnectionPercentagePerSource\":100,\"maxMessageSize\":104857600,
    \"extendedRights\":[{\"principal\":\"Anonymous\",\"right\":\"ms-Exch-SMTP-Accept-Any-Recipient\"}]}" >/dev/null
  api -X POST "$API/send-connectors" -d "{\"name\":\"to sink\",\"addressSpaces\":[\"*\"],\"smartHosts\":[\"127.0.0.1\"],\"port\":$SINK,
    \"maxMessageSize\":\"unlimited\",\"smtpMaxMessagesPerConnection\":1000}" >/dev/null
  api -X PATCH "$API/transport-settings" -d '{"maxPerDomainOutboundConnections":20}' >/dev/null
}

start_sink() { # port out-file [dump-dir]
  if [ -n "${3:-}" ]; then
    mkdir -p "$3"; chown postfix "$3"
    smtp-sink -u postfix -c -d "$3/%M." 127.0.0.1:"$1" 1000 >"$2" 2>&1 &
  else
    smtp-sink -u postfix -c 127.0.0.1:"$1" 1000 >"$2" 2>&1 &
  fi
  SINK_PID=$!; pids+=("$SINK_PID"); sleep 0.3
}
sink_count() { grep -o 'mesg=[0-9]*' "$1" 2>/dev/null | tail -n 1 | cut -d= -f2; }
wait_sink() { # file n -> seconds waited (max SINK_WAIT)
  local t0; t0=$(date +%s.%N)
  for _ in $(seq 1 $(( SINK_WAIT * 20 ))); do [ "$(sink_count "$1")" -ge "$2" ] 2>/dev/null && break; sleep 0.05; done
  python3 -c "import time,sys; print(f'{time.time()-float(sys.argv[1]):.3f}')" "$t0"
}
rate() { python3 -c "import sys; print(f'{int(sys.argv[1])/float(sys.argv[2]):.0f}')" "$1" "$2"; }
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.3f}')" "$1" "$2"; }

# Postfix runs as a private instance under $W/postfix (tests/peers/postfix-private.sh):
# the host's /etc/postfix, its queue and any system Postfix are left alone.
PFDIR=$W/postfix
pf() { bash "$REPO/tests/peers/postfix-private.sh" "$PFDIR" "$@"; }
postfix_setup() { # sessions
  pf stop
  [ -d "$PFDIR/conf" ] || pf init
  pf postconf -e "myhostname = baseline.test" "mydestination =" \
    "inet_interfaces = loopback-only" "mynetworks = 127.0.0.0/8" \
    "relayhost = [127.0.0.1]:$PF_SINK" "virtual_mailbox_domains =" "smtpd_tls_security_level = none" \
    "smtpd_sasl_auth_enable = no" "smtp_tls_security_level = none" "smtpd_relay_restrictions = permit_mynetworks, reject" \
    "default_destination_concurrency_limit = 20" "smtpd_client_connection_count_limit = 0" \
    "smtpd_client_connection_rate_limit = 0" "default_process_limit = $(( $1 + 20 ))" \
    "in_flow_delay = 0" "message_size_limit = 104857600"
  for svc in $(pf postconf -M | awk '$2 == "inet" {print $1}'); do pf postconf -MX "$svc/inet"; done
  pf postconf -M "$PF_IN/inet=127.0.0.1:$PF_IN inet n - n - - smtpd"
  pf flush
  pf start
  sleep 1
}

# The other MTAs (tests/peers/mta-private.sh): Exim, OpenSMTPD and Haraka,
# each a private instance relaying 127.0.0.0/8 to a smart host, on Postfix's
# ports (one MTA runs at a time).
PEERS="postfix exim opensmtpd haraka"
mta_port() { if [ "$1" = ferry ]; then echo "$IN"; else echo "$PF_IN"; fi; }
mta_start() { # name sessions: the MTA and its sink, a fresh queue
  case $1 in
    ferry)
      rm -rf "$W/ferry-relay"; start_ferry "$W/ferry-relay"; configure_relay
      start_sink $SINK "$W/relay-sink.out" ;;
    postfix)
      postfix_setup "$2"; start_sink $PF_SINK "$W/relay-sink.out" ;;
    *)
      rm -rf "${W:?}/$1"
      bash tests/peers/mta-private.sh "$W/$1" start "$1" 127.0.0.1 $PF_IN $PF_SINK
      start_sink $PF_SINK "$W/relay-sink.out" ;;
  esac
}
mta_stop() {
  kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true
  case $1 in
    ferry) kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true ;;
    postfix) pf stop; pf flush ;;
    *) bash tests/peers/mta-private.sh "$W/$1" stop ;;
  esac
}
mta_queued() { # messages accepted and not yet relayed
  case $1 in
    ferry) api "$API/messages" | jq .total ;;
    postfix) find "$PFDIR/spool/incoming" "$PFDIR/spool/active" "$PFDIR/spool/deferred" -type f 2>/dev/null | wc -l ;;
    *) bash tests/peers/mta-private.sh "$W/$1" queued ;;
  esac
}
# smtp-source's n messages (a new session each) into the MTA, for at most
# RELAY_BUDGET seconds: a slow MTA is measured on what it accepted by then
# (relayed plus still queued), and on how fast it relays that.
relay_case() { # name size sessions n -> R[acc_name_key], R[rel_name_key]
  local m=$1 key="$2_$3" t0 t1 t2 done=$4
  t0=$(now)
  timeout "$RELAY_BUDGET" smtp-source -s "$3" -m "$4" -l "$2" -f bench@source.test -t rcpt@remote.test \
    127.0.0.1:"$(mta_port "$m")" || { c=$(sink_count "$W/relay-sink.out"); done=$(( ${c:-0} + $(mta_queued "$m") )); }
  t1=$(now)
  wait_sink "$W/relay-sink.out" "$done" >/dev/null; t2=$(now)
  R[acc_${m}_$key]=$(rate "$done" "$(elapsed "$t0" "$t1")")
  R[rel_${m}_$key]=$(rate "$(sink_count "$W/relay-sink.out")" "$(elapsed "$t0" "$t2")")
}

# A section of a standalone run (--peers, --fleet, --depth, --fanout,
# --size) written into RESULTS.md in place of the same section of an
# earlier run, dated; sections stay in numeric order.
write_sections() { # text-with-"## N." headings, the flag
  python3 - "$RESULTS" "$1" "$(date -u +%Y-%m-%d)" "$(nproc)" "$2" "$(uname -r)" \
    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" "$(git -C "$REPO" rev-parse --short HEAD)" <<'PY'
import re, sys
path, new, day, cpus, flag, kernel, model, commit = sys.argv[1:]
text = open(path).read()
head, *rest = re.split(r"(?m)^(?=## \d+\. )", text)
sections = {int(re.match(r"## (\d+)\.", s).group(1)): s.rstrip("\n") for s in rest}
for s in re.split(r"(?m)^(?=## \d+\. )", new)[1:]:
    n = int(re.match(r"## (\d+)\.", s).group(1))
    sections[n] = s.rstrip("\n") + f"\n\nRun alone (`bash bench/run.sh {flag}`) on {day}, on {model or 'this machine'} ({cpus} cores), Linux {kernel}, ferry {commit}."
open(path, "w").write(head.rstrip("\n") + "\n\n" + "\n\n".join(sections[n] for n in sorted(sections)) + "\n")
PY
  echo "wrote $(echo "$1" | grep -c '^## [0-9]*\. ') section(s) of $RESULTS"
}
# Section 12, also run alone with --ceiling: the pipe's limit (smtp-source
# straight into smtp-sink), the disk's fsync rate, and Ferry's relay of the
# same load, alternating, CEIL_ROUNDS times each (each side its median).
fsync_rate() { # fsyncs/s of 4 KB writes on the file system holding $W, for 3 s
  python3 - "$W/fsync-probe" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
block, n, t0 = b"x" * 4096, 0, time.time()
while time.time() - t0 < 3:
    os.write(fd, block)
    os.fsync(fd)
    n += 1
os.close(fd)
os.unlink(sys.argv[1])
print(f"{n / (time.time() - t0):.0f}")
PY
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # user + system, in 1/100 s
disk_bytes() { awk '/^write_bytes/ {print $2}' "/proc/$1/io"; }   # what it sent toward the disk
cpu_of() { # command... : runs it; its CPU seconds (user + system) go to stderr's last line
  python3 -c 'import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:]).returncode
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_utime + r.ru_stime, file=sys.stderr)
sys.exit(rc)' "$@"
}
cpu_split() { # /proc/stat's cpu line before, after: "busy idle iowait steal" in % of all cores
  python3 -c 'import sys
a, b = ([int(v) for v in x.split()[1:9]] for x in sys.argv[1:3])
d = [y - x for x, y in zip(a, b)]
t = sum(d) or 1
user, nice, system, idle, iowait, irq, softirq, steal = d
print(*(round(v * 100 / t) for v in (user + nice + system + irq + softirq, idle, iowait, steal)))' "$1" "$2"
}
# Where a session's time goes under the round's load: 19 smtp-source
# sessions keep the load on while one probe session times each reply
# (connect, then each command to its reply), CEIL_PROBE cycles; the means
# in ms, as JSON. Run after the round's rate is measured: it does not
# change the rate reported. Any reply but the expected one ends the run.
reply_probe() { # port
  smtp-source -s 19 -m 1000000 -l 4096 -f bench@source.test -t rcpt@remote.test 127.0.0.1:"$1" >/dev/null 2>&1 &
  local bg=$! rc=0; sleep 0.5
  python3 - "$1" "$CEIL_PROBE" <<'PY' || rc=$?
import json, socket, statistics, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
body = b"Subject: probe\r\n\r\n" + (b"a" * 76 + b"\r\n") * 52 + b".\r\n"
steps = ["connect", "banner", "ehlo", "mail", "rcpt", "data", "dot", "quit"]
took = {k: [] for k in steps}
def reply(f, want):
    while True:
        line = f.readline()
        if len(line) < 4 or line[3:4] != b"-":
            break
    # A refusal is not a timing: the run stops and says what came back.
    if not line.startswith(want):
        sys.exit(f"probe: expected {want.decode()}, got {line!r}")
for _ in range(n):
    t = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    mark = time.perf_counter(); took["connect"].append(mark - t); t = mark
    reply(f, b"220"); mark = time.perf_counter(); took["banner"].append(mark - t); t = mark
    for k, cmd, want in [("ehlo", b"EHLO probe.test\r\n", b"250"), ("mail", b"MAIL FROM:<probe@source.test>\r\n", b"250"),
                         ("rcpt", b"RCPT TO:<rcpt@remote.test>\r\n", b"250"), ("data", b"DATA\r\n", b"354"),
                         ("dot", body, b"250"), ("quit", b"QUIT\r\n", b"221")]:
        s.sendall(cmd); reply(f, want)
        mark = time.perf_counter(); took[k].append(mark - t); t = mark
    s.close()
print(json.dumps({k: round(statistics.mean(v) * 1000, 3) for k, v in took.items()}))
PY
  kill "$bg" 2>/dev/null || true; wait "$bg" 2>/dev/null || true
  return "$rc"
}
ceiling_round() { # pipe | ferry | tmpfs (Ferry, its data directory in memory), round
  local n=$CEIL_N target=$SINK dir="$W/ferry-ceiling"
  [ "$1" = tmpfs ] && dir="$CEIL_TMPFS/ferry-ceiling"
  if [ "$1" != pipe ]; then
    rm -rf "$dir"; start_ferry "$dir"; configure_relay; target=$IN
  fi
  start_sink $SINK "$W/ceiling-sink.out"
  local f0=0 d0=0; [ "$1" != pipe ] && { f0=$(cpu_ticks "$FERRY_PID"); d0=$(disk_bytes "$FERRY_PID"); }
  local stat0; stat0=$(head -n 1 /proc/stat)
  t0=$(now); cpu_of smtp-source -s 20 -m "$n" -l 4096 -f bench@source.test -t rcpt@remote.test 127.0.0.1:$target 2>"$W/source-cpu"
  wait_sink "$W/ceiling-sink.out" "$n" >/dev/null; t2=$(now)
  R[ceil_$1_$2]=$(rate "$(sink_count "$W/ceiling-sink.out")" "$(elapsed "$t0" "$t2")")
  # The whole machine over the round: where the cores' time went.
  R[ceil_split_$1_$2]=$(cpu_split "$stat0" "$(head -n 1 /proc/stat)")
  # CPU time per message, in microseconds: the pipe's two ends, and Ferry.
  local ends; ends=$(python3 -c "import sys; print(round((float(sys.argv[1]) + int(sys.argv[2]) / 100) * 1e6 / int(sys.argv[3])))" \
    "$(tail -n 1 "$W/source-cpu")" "$(cpu_ticks "$SINK_PID")" "$n")
  R[ceil_ends_$1_$2]=$ends; R[ceil_mta_$1_$2]=0; R[ceil_disk_$1_$2]=0
  if [ "$1" != pipe ]; then
    R[ceil_mta_$1_$2]=$(( ($(cpu_ticks "$FERRY_PID") - f0) * 10000 / n ))
    # Bytes Ferry's writes sent toward the disk (the queue's and the
    # tracking log's WAL frames and checkpoints), in KB a message.
    R[ceil_disk_$1_$2]=$(python3 -c "import sys; print(f'{(int(sys.argv[2]) - int(sys.argv[1])) / 1024 / int(sys.argv[3]):.1f}')" "$d0" "$(disk_bytes "$FERRY_PID")" "$n")
  fi
  echo "  round $2, $1: ${R[ceil_$1_$2]} msg/s; CPU per message: source and sink ${ends} µs, Ferry ${R[ceil_mta_$1_$2]} µs, Ferry's writes toward the disk ${R[ceil_disk_$1_$2]} KB; the machine's cores busy / idle / waiting on the disk / stolen: ${R[ceil_split_$1_$2]// / \/ } %"
  R[ceil_probe_$1_$2]=$(reply_probe "$target")
  echo "  round $2, $1: one session's replies under the load (ms): $(echo "${R[ceil_probe_$1_$2]}" | jq -c .)"
  kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true
  if [ "$1" != pipe ]; then kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true; rm -rf "$dir"; fi
}
ceiling_bench() {
  # Alternating rounds: the pipe's own rate swings by a sixth between
  # rounds on a shared machine, so each side is its median over the rounds.
  # A third side, when /dev/shm is a tmpfs: the same Ferry with its data
  # directory in memory, where no write or fsync reaches a disk. Not a way
  # to run (a power cut loses the queue): it measures what the disk costs.
  CEIL_TMPFS=; local sides="pipe ferry"
  if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && CEIL_TMPFS=$(mktemp -d /dev/shm/ferry-bench.XXXXXX 2>/dev/null); then
    chmod 755 "$CEIL_TMPFS"; sides="pipe ferry tmpfs"
  else
    CEIL_TMPFS=; echo "  /dev/shm is not a writable tmpfs: no round with Ferry's data in memory"
  fi
  local round side; for round in $(seq 1 "$CEIL_ROUNDS"); do for side in $sides; do ceiling_round "$side" "$round"; done; done
  med() { python3 -c 'import statistics, sys; print(round(statistics.median(map(int, sys.argv[1:]))))' "$@"; }
  mean() { python3 -c 'import statistics, sys; print(round(statistics.mean(map(int, sys.argv[1:]))))' "$@"; }
  pick() { local k=$1 r; for r in $(seq 1 "$CEIL_ROUNDS"); do echo "${R[${k}_$r]}"; done; }
  CEIL_PIPE=$(med $(pick ceil_pipe)); CEIL_FERRY=$(med $(pick ceil_ferry))
  CEIL_FSYNC=$(fsync_rate)
  CEIL_ENDS_PIPE=$(mean $(pick ceil_ends_pipe)); CEIL_ENDS_FERRY=$(mean $(pick ceil_ends_ferry))
  CEIL_CPU_FERRY=$(mean $(pick ceil_mta_ferry))
  CEIL_DISK_FERRY=$(pick ceil_disk_ferry | python3 -c 'import statistics, sys; print(f"{statistics.mean(float(l) for l in sys.stdin):.1f}")')
  if [ -n "$CEIL_TMPFS" ]; then
    CEIL_TMPFS_RATE=$(med $(pick ceil_tmpfs)); CEIL_CPU_TMPFS=$(mean $(pick ceil_mta_tmpfs))
  fi
  # Ferry's rate over the pipe's in each pair of rounds run one after the other.
  CEIL_PAIRS=$(for r in $(seq 1 "$CEIL_ROUNDS"); do ratio "${R[ceil_ferry_$r]}" "${R[ceil_pipe_$r]}"; done | sort -n | paste -sd' ')
  local k i; for k in pipe ferry ${CEIL_TMPFS:+tmpfs}; do
    for i in 1 2 3 4; do R[ceil_split${i}_$k]=$(mean $(for r in $(seq 1 "$CEIL_ROUNDS"); do cut -d' ' -f"$i" <<<"${R[ceil_split_${k}_$r]}"; done)); done
    R[ceil_busy_$k]=${R[ceil_split1_$k]}; R[ceil_idle_$k]=${R[ceil_split2_$k]}
    R[ceil_iowait_$k]=${R[ceil_split3_$k]}; R[ceil_steal_$k]=${R[ceil_split4_$k]}
  done
  # One session's replies, the mean of the rounds, and each side's whole
  # cycle: 20 sessions at the median rate take 20 / rate s a message each.
  local k2; for k2 in pipe ferry ${CEIL_TMPFS:+tmpfs}; do
    R[ceil_probe_$k2]=$(for r in $(seq 1 "$CEIL_ROUNDS"); do echo "${R[ceil_probe_${k2}_$r]}"; done | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
out = {k: round(statistics.mean(r[k] for r in rows), 2) for k in rows[0]}
out["replies"] = round(sum(out.values()), 2)
print(json.dumps(out))')
  done
  cycle_ms() { python3 -c "import sys; print(f'{20e3 / int(sys.argv[1]):.2f}')" "$1"; }   # rate -> 20 sessions' cycle
  CEIL_CYCLE_PIPE=$(cycle_ms "$CEIL_PIPE"); CEIL_CYCLE_FERRY=$(cycle_ms "$CEIL_FERRY")
  echo "  a session's cycle: the pipe ${CEIL_CYCLE_PIPE} ms, of which its server's replies $(j "${R[ceil_probe_pipe]}" .replies) ms; Ferry ${CEIL_CYCLE_FERRY} ms, of which its replies $(j "${R[ceil_probe_ferry]}" .replies) ms"
  # At the pipe's limit both cores are busy (its rate × its CPU per message
  # ≈ cores): the most any relay between the same two ends could do is
  # cores ÷ (the ends' CPU + the relay's own CPU) per message.
  CEIL_CORES=$(nproc)
  CEIL_BUSY=$(python3 -c "import sys; print(f'{int(sys.argv[1]) * int(sys.argv[2]) / 1e6:.2f}')" "$CEIL_PIPE" "$CEIL_ENDS_PIPE")
  CEIL_FERRY_CORES=$(python3 -c "import sys; print(f'{int(sys.argv[1]) * int(sys.argv[2]) / 1e6:.2f}')" "$CEIL_FERRY" "$CEIL_CPU_FERRY")
  # Half the pipe's rate on these cores leaves Ferry this much CPU a message.
  CEIL_BUDGET=$(python3 -c "import sys; c,p,e=map(int,sys.argv[1:]); print(max(0, round(c * 1e6 / (p / 2) - e)))" "$CEIL_CORES" "$CEIL_PIPE" "$CEIL_ENDS_FERRY")
  echo "  the pipe ${CEIL_PIPE} msg/s; Ferry relaying ${CEIL_FERRY} msg/s (medians of ${CEIL_ROUNDS} rounds) — $(ratio "$CEIL_FERRY" "$CEIL_PIPE")× the pipe's limit (pair by pair: ${CEIL_PAIRS}); the disk: ${CEIL_FSYNC} fsyncs/s"
  echo "  CPU per message: the pipe's ends ${CEIL_ENDS_PIPE} µs (${CEIL_BUSY} of ${CEIL_CORES} cores busy at its limit); with Ferry between them the ends ${CEIL_ENDS_FERRY} µs and Ferry ${CEIL_CPU_FERRY} µs; half the pipe's rate would leave Ferry ${CEIL_BUDGET} µs"
  if [ -n "$CEIL_TMPFS" ]; then
    CEIL_CYCLE_TMPFS=$(cycle_ms "$CEIL_TMPFS_RATE")
    echo "  Ferry with its data in memory (tmpfs): ${CEIL_TMPFS_RATE} msg/s, $(ratio "$CEIL_TMPFS_RATE" "$CEIL_PIPE")× the pipe; ${CEIL_CPU_TMPFS} µs of CPU a message; on the disk Ferry wrote ${CEIL_DISK_FERRY} KB a message"
  fi
}
# Section 13, also run alone with --connections.
banner_latency() { # addr n -> {"p50_ms":…,"p99_ms":…} of connect -> 220
  python3 - "$1" "$2" <<'PY'
import json, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
samples = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    s = socket.create_connection((host, int(port)), timeout=10)
    f = s.makefile("rb")
    line = f.readline()
    samples.append((time.perf_counter() - t0) * 1000)
    assert line.startswith(b"220"), line
    s.sendall(b"QUIT\r\n"); f.readline(); s.close()
samples.sort()
pick = lambda q: round(samples[min(len(samples) - 1, int(q * len(samples)))], 2)
print(json.dumps({"p50_ms": pick(0.50), "p99_ms": pick(0.99)}))
PY
}
connections_bench() {
  local each=9500
  rm -rf "$W/ferry-conn"; start_ferry "$W/ferry-conn"; configure_relay
  CONN_IDLE_LAT=$(banner_latency 127.0.0.1:$IN 200)
  CONN_RSS0=$(awk '/VmRSS/ {print $2}' "/proc/$FERRY_PID/status")
  "$LOADGEN" idle 127.0.0.1:$IN "$each" 60 > "$W/conn-a.out" 2>"$W/conn-a.err" & local la=$!
  "$LOADGEN" idle 127.0.0.1:$IN "$each" 60 > "$W/conn-b.out" 2>"$W/conn-b.err" & local lb=$!
  pids+=("$la" "$lb")
  for _ in $(seq 1 600); do
    grep -q open "$W/conn-a.out" 2>/dev/null && grep -q open "$W/conn-b.out" 2>/dev/null && break; sleep 0.1
  done
  CONN_OPEN=$(( $(jq .open "$W/conn-a.out") + $(jq .open "$W/conn-b.out") ))
  CONN_BUSY_LAT=$(banner_latency 127.0.0.1:$IN 200)
  CONN_RSS1=$(awk '/VmRSS/ {print $2}' "/proc/$FERRY_PID/status")
  kill "$la" "$lb" 2>/dev/null || true; wait "$la" "$lb" 2>/dev/null || true
  kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
  echo "  a fresh session's banner: $(echo "$CONN_IDLE_LAT" | jq -c .) alone; $(echo "$CONN_BUSY_LAT" | jq -c .) with $CONN_OPEN idle sessions open; RSS ${CONN_RSS0} KB -> ${CONN_RSS1} KB"
}
# Section 15, also run alone with --depth: the queue's depth. The next hop
# is down (nothing listens on the sink's port), so every message stays; the
# acceptance rate of a window of messages is measured at each depth, with
# the queue viewer's latency there; then the hop returns and the queue is
# retried and timed until drained.
api_latency() { # path n -> {"p50_ms":…,"max_ms":…}
  python3 - "$TOKEN" "$1" "$2" <<'PY'
import json, sys, time, urllib.request
token, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
lat = []
for _ in range(n):
    req = urllib.request.Request("http://127.0.0.1:18700/api/v1" + path, headers={"Authorization": "Bearer " + token})
    t0 = time.perf_counter()
    urllib.request.urlopen(req, timeout=120).read()
    lat.append((time.perf_counter() - t0) * 1000)
lat.sort()
print(json.dumps({"p50_ms": round(lat[len(lat) // 2], 2), "max_ms": round(lat[-1], 2)}))
PY
}
depth_fill() { # n messages, 20 sessions, 4 KB -> seconds
  local t0; t0=$(now)
  smtp-source -s 20 -m "$1" -l 4096 -f bench@source.test -t rcpt@remote.test 127.0.0.1:$IN
  elapsed "$t0" "$(now)"
}
depth_bench() {
  local filled=0 d secs qid
  rm -rf "$W/ferry-depth"; start_ferry "$W/ferry-depth"; configure_relay
  DEPTH_ROWS=()
  for d in 0 $DEPTHS; do
    [ "$d" -gt "$filled" ] && depth_fill $(( d - filled )) >/dev/null && filled=$d
    secs=$(depth_fill "$DEPTH_WINDOW"); filled=$(( filled + DEPTH_WINDOW ))
    local acc page count queues
    acc=$(rate "$DEPTH_WINDOW" "$secs")
    page=$(api_latency "/messages?limit=50" 10)
    count=$(api_latency "/messages?sender=nobody-matches&limit=1" 5)
    queues=$(api_latency "/queues" 5)
    DEPTH_ROWS+=("$d|$acc|$(j "$page" .p50_ms) / $(j "$page" .max_ms)|$(j "$count" .p50_ms) / $(j "$count" .max_ms)|$(j "$queues" .p50_ms) / $(j "$queues" .max_ms)")
    echo "  at $d queued: accepted $acc msg/s; first page $page; filtered count $count; queues $queues"
  done
  DEPTH_TOTAL=$(api "$API/messages?limit=1" | jq .total)
  # The hop returns: a sink on its port, and the queue retried now.
  start_sink $SINK "$W/depth-sink.out"
  qid=$(api "$API/queues" | jq -r '[.items[] | select(.deliveryType == "SmartHostConnectorDelivery")][0].id')
  local t0; t0=$(now)
  api -X POST "$API/queues/$qid/retry" >/dev/null
  for _ in $(seq 1 $(( DEPTH_TOTAL / 50 + 600 ))); do
    [ "$(sink_count "$W/depth-sink.out")" -ge "$DEPTH_TOTAL" ] 2>/dev/null && break; sleep 0.5
  done
  DEPTH_DRAIN_S=$(elapsed "$t0" "$(now)")
  DEPTH_DRAINED=$(sink_count "$W/depth-sink.out")
  kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true
  kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
  echo "  drained $DEPTH_DRAINED of $DEPTH_TOTAL in ${DEPTH_DRAIN_S} s ($(rate "$DEPTH_DRAINED" "$DEPTH_DRAIN_S") msg/s)"
}
depth_section() {
  echo "## 15. Queue depth"
  echo
  echo "The next hop down (nothing listening on the smart host's port), the queue filled with 4 KB messages over 20 sessions; at each depth a window of ${DEPTH_WINDOW} messages is timed, and the queue viewer asked for its first page (\`GET /messages?limit=50\`, with the total), a filtered count (\`GET /messages?sender=…\` matching nothing) and the queue list (p50 / max, ms)."
  echo
  echo "| queued | accepted msg/s | first page | filtered count | queue list |"
  echo "|---|---|---|---|---|"
  local row base=; for row in "${DEPTH_ROWS[@]}"; do
    IFS='|' read -r d acc page count queues <<<"$row"
    [ -z "$base" ] && base=$acc
    echo "| $d | $acc ($(ratio "$acc" "$base")×) | $page | $count | $queues |"
  done
  echo
  echo "Then the hop returned and the queue was retried: **${DEPTH_DRAINED} of ${DEPTH_TOTAL} messages relayed in ${DEPTH_DRAIN_S} s ($(rate "${DEPTH_DRAINED:-0}" "$DEPTH_DRAIN_S") msg/s)**."
}
if [ "$QUICK" = --depth ]; then
  declare -A R
  j() { echo "$1" | jq -r "$2"; }
  echo "[${SECONDS} s] == 15. queue depth"; depth_bench; write_sections "$(depth_section)" --depth; exit 0
fi
# Section 16, also run alone with --fanout: one message to 1,000 recipients
# in 50 domains, each domain a send connector to its own smart host (an
# smtp-sink on 127.0.1.N), timed from the 250 to the last hop's delivery.
fanout_bench() {
  local i sinks=()
  rm -rf "$W/ferry-fanout"; start_ferry "$W/ferry-fanout"
  api -X POST "$API/receive-connectors" -d "{\"name\":\"bench relay\",\"usage\":\"Custom\",\"bindings\":[\"127.0.0.1:$IN\"],
    \"remoteIpRanges\":[\"127.0.0.1\"],\"permissionGroups\":[\"AnonymousUsers\"],\"tarpitInterval\":\"00:00:00\",
    \"messageRateLimit\":\"unlimited\",\"maxRecipientsPerMessage\":1000,
    \"extendedRights\":[{\"principal\":\"Anonymous\",\"right\":\"ms-Exch-SMTP-Accept-Any-Recipient\"}]}" >/dev/null
  for i in $(seq 1 50); do
    api -X POST "$API/send-connectors" -d "{\"name\":\"hop $i\",\"addressSpaces\":[\"d$i.test\"],\"smartHosts\":[\"127.0.1.$i\"],\"port\":$SINK}" >/dev/null
    mkdir -p "$W/fanout"
    smtp-sink -u postfix -c 127.0.1."$i":$SINK 100 >"$W/fanout/$i.out" 2>&1 &
    sinks+=("$!"); pids+=("$!")
  done
  sleep 0.5
  FANOUT=$(python3 - "$W/fanout" "$FANOUT_MESSAGES" <<'PY'
import glob, json, re, smtplib, sys, time
out, n = sys.argv[1], int(sys.argv[2])
def delivered():
    total = 0
    for f in glob.glob(out + "/*.out"):
        m = re.findall(r"mesg=(\d+)", open(f).read())
        total += int(m[-1]) if m else 0
    return total
rcpts = [f"user{k}@d{k % 50 + 1}.test" for k in range(1000)]
body = "From: <bench@source.test>\r\nSubject: fan-out\r\n\r\n" + ("x" * 76 + "\r\n") * 52
accept, fan = [], []
for i in range(n):
    base = delivered()
    s = smtplib.SMTP("127.0.0.1", int(sys.argv[3]) if len(sys.argv) > 3 else 2531, timeout=60)
    t0 = time.perf_counter()
    refused = s.sendmail("bench@source.test", rcpts, body)
    t1 = time.perf_counter()
    s.quit()
    assert not refused, refused
    # Every one of the 50 hops receives one message of 20 recipients.
    while delivered() < base + 50:
        assert time.perf_counter() - t1 < 120, f"message {i}: {delivered() - base} of 50 hops after 120 s"
        time.sleep(0.002)
    fan.append((time.perf_counter() - t1) * 1000)
    accept.append((t1 - t0) * 1000)
fan.sort(); accept.sort()
print(json.dumps({"messages": n, "accept_p50_ms": round(accept[n // 2], 1),
                  "fanout_p50_ms": round(fan[n // 2], 1), "fanout_max_ms": round(fan[-1], 1)}))
PY
)
  for i in "${sinks[@]}"; do kill "$i" 2>/dev/null || true; wait "$i" 2>/dev/null || true; done
  kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
  echo "  1,000 recipients to 50 hops: $(echo "$FANOUT" | jq -c .)"
}
fanout_section() {
  echo "## 16. Recipients: one message to 1,000 recipients on 50 next hops"
  echo
  echo "One 4 KB message to 1,000 recipients in 50 domains (20 each), each domain a send connector to its own smart host (50 smtp-sinks on 127.0.1.1–50), sent $(j "$FANOUT" .messages) times one after another: the envelope and data accepted (MAIL FROM to the 250 after DATA) in p50 $(j "$FANOUT" .accept_p50_ms) ms; from the 250 to the 50th hop's delivery, **p50 $(j "$FANOUT" .fanout_p50_ms) ms, max $(j "$FANOUT" .fanout_max_ms) ms**."
}
if [ "$QUICK" = --fanout ]; then
  declare -A R
  j() { echo "$1" | jq -r "$2"; }
  echo "[${SECONDS} s] == 16. recipients"; fanout_bench; write_sections "$(fanout_section)" --fanout; exit 0
fi
# Section 17, also run alone with --size: message size. Messages of 1, 10
# and 50 MB relayed one session at a time, by a fresh Ferry for each size:
# its peak RSS (VmHWM) against its RSS before, and the MB/s against the
# pipe's own (smtp-source straight into smtp-sink, same sizes).
size_bench() {
  local mb n t0 secs rss0 hwm
  SIZE_ROWS=()
  for mb in $SIZES_MB; do
    n=$(( mb >= 50 ? 3 : (mb >= 10 ? 5 : 20) ))
    start_sink $SINK "$W/size-pipe.out"
    t0=$(now); smtp-source -s 1 -m "$n" -l $(( mb * 1048576 )) -f bench@source.test -t rcpt@remote.test 127.0.0.1:$SINK
    wait_sink "$W/size-pipe.out" "$n" >/dev/null; secs=$(elapsed "$t0" "$(now)")
    local pipe; pipe=$(python3 -c "import sys; print(f'{int(sys.argv[1])*int(sys.argv[2])/float(sys.argv[3]):.0f}')" "$mb" "$n" "$secs")
    kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true
    rm -rf "$W/ferry-size"; start_ferry "$W/ferry-size"; configure_relay
    start_sink $SINK "$W/size.out"
    sleep 0.5; rss0=$(awk '/VmRSS/ {print $2}' "/proc/$FERRY_PID/status")
    t0=$(now); smtp-source -s 1 -m "$n" -l $(( mb * 1048576 )) -f bench@source.test -t rcpt@remote.test 127.0.0.1:$IN
    wait_sink "$W/size.out" "$n" >/dev/null; secs=$(elapsed "$t0" "$(now)")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$FERRY_PID/status")
    local ferry; ferry=$(python3 -c "import sys; print(f'{int(sys.argv[1])*int(sys.argv[2])/float(sys.argv[3]):.0f}')" "$mb" "$n" "$secs")
    SIZE_ROWS+=("$mb|$n|$pipe|$ferry|$rss0|$hwm|$(sink_count "$W/size.out")")
    echo "  $mb MB x $n: pipe $pipe MB/s, Ferry $ferry MB/s; RSS ${rss0} KB before, peak ${hwm} KB"
    kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true
    kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
  done
}
size_section() {
  echo "## 17. Message size"
  echo
  echo "Messages of each size relayed one after another over one session, by a fresh Ferry for each size; the pipe is smtp-source straight into smtp-sink with the same messages. RSS growth is Ferry's peak RSS (VmHWM) over its RSS before the first message (target: under 30 MB at 50 MB)."
  echo
  echo "| size | messages | the pipe MB/s | Ferry MB/s | Ferry ÷ pipe | RSS before | peak RSS | growth |"
  echo "|---|---|---|---|---|---|---|---|"
  local row; for row in "${SIZE_ROWS[@]}"; do
    IFS='|' read -r mb n pipe ferry rss0 hwm got <<<"$row"
    echo "| $mb MB | $got of $n | $pipe | $ferry | $(ratio "$ferry" "$pipe")× | $(( rss0 / 1024 )) MB | $(( hwm / 1024 )) MB | **$(( (hwm - rss0) / 1024 )) MB** |"
  done
}
if [ "$QUICK" = --size ]; then
  declare -A R
  echo "[${SECONDS} s] == 17. message size"; size_bench; write_sections "$(size_section)" --size; exit 0
fi
# Section 14, also run alone with --fleet.
fleet_bench() {
  bash tests/peers/postgres-private.sh fetch >/dev/null
  local pg n; pg=$(bash tests/peers/postgres-private.sh "$W/fleet-pg" start 127.0.0.1 18790)
  local key; key=$(openssl rand -base64 32)
  local fleet_pids=()
  for n in 1 2 3; do
    # One at a time: the first seeds the fleet, the others join it.
    FERRY_SECRET_KEY=$key FERRY_ADMIN_TOKEN=$TOKEN FERRY_LOG=warn "$FERRY" serve --data-dir "$W/fleet-$n" \
      --server-name "EDGE0$n" --fqdn "edge0$n.bench.test" --config-store "$pg" \
      --api-listen "127.0.0.1:1871$n" --default-smtp-bind "127.0.0.1:1872$n" >>"$W/fleet.log" 2>&1 &
    fleet_pids+=("$!"); pids+=("$!")
    for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:1871$n/healthz" >/dev/null && break; sleep 0.05; done
  done
  FLEET=$(python3 - "$TOKEN" <<'PY'
import json, socket, sys, threading, time, urllib.request
token = sys.argv[1]
def post(body):
    req = urllib.request.Request("http://127.0.0.1:18711/api/v1/receive-connectors",
        data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()
def banner_after(port, t0, out, key):
    while time.perf_counter() - t0 < 10:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            line = s.makefile("rb").readline()
            s.close()
            if line.startswith(b"220"):
                out[key] = (time.perf_counter() - t0) * 1000
                return
        except OSError:
            pass
        time.sleep(0.0002)
lat = []
for i in range(30):
    a, b, c = 19100 + i, 19200 + i, 19300 + i
    post({"name": f"fleet {i}", "usage": "Custom", "permissionGroups": ["AnonymousUsers"],
          "bindings": [f"127.0.0.1:{a}"], "remoteIpRanges": ["127.0.0.1"],
          "serverBindings": {"EDGE02": [f"127.0.0.1:{b}"], "EDGE03": [f"127.0.0.1:{c}"]}})
    t0 = time.perf_counter()
    out = {}
    ts = [threading.Thread(target=banner_after, args=(p, t0, out, k)) for k, p in (("b", b), ("c", c))]
    for t in ts: t.start()
    for t in ts: t.join()
    assert len(out) == 2, f"change {i}: no banner on {set('bc') - set(out)} within 10 s"
    lat.append(max(out.values()))
    time.sleep(0.05)
lat.sort()
pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 2)
print(json.dumps({"changes": len(lat), "p50_ms": pick(0.5), "p95_ms": pick(0.95), "max_ms": round(lat[-1], 2)}))
PY
)
  for p in "${fleet_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  bash tests/peers/postgres-private.sh "$W/fleet-pg" remove
  echo "  a change through EDGE01 answering on EDGE02 and EDGE03: $(echo "$FLEET" | jq -c .)"
}
fleet_section() {
  echo "## 14. A fleet (shared configuration in PostgreSQL)"
  echo
  echo "Three Ferrys sharing one private PostgreSQL 15 on loopback (\`--config-store\`), each with its own SQLite copy. $(echo "$FLEET" | jq .changes) receive connectors created one after another through EDGE01, each with EDGE02's and EDGE03's own bindings (\`serverBindings\`); the time from the POST returning to an SMTP banner on both other servers: **p50 $(echo "$FLEET" | jq .p50_ms) ms, p95 $(echo "$FLEET" | jq .p95_ms) ms, max $(echo "$FLEET" | jq .max_ms) ms** (target: within 50 ms). The path: the change is in PostgreSQL before the POST returns; NOTIFY wakes the others, which read the changed rows, write them into their copy and bind."
}
if [ "$QUICK" = --fleet ]; then
  declare -A R
  echo "[${SECONDS} s] == 14. a fleet"; fleet_bench
  write_sections "$(fleet_section)" --fleet; exit 0
fi
ceiling_section() {
  echo "## 12. The ceiling"
  echo
  echo "What this machine does with no MTA, in the same run: \`smtp-source\` straight into \`smtp-sink\` (${CEIL_N} messages of 4 KB × 20 sessions, the pipe's limit) **${CEIL_PIPE} msg/s**; Ferry relaying the same load between them **${CEIL_FERRY} msg/s — $(ratio "$CEIL_FERRY" "$CEIL_PIPE")× the pipe's limit** (target ≥ 0.50×; alternating, ${CEIL_ROUNDS} rounds each, the median of each side; Ferry over the pipe pair by pair, lowest to highest: ${CEIL_PAIRS// /, }). The disk under the data directories does **${CEIL_FSYNC} fsyncs/s** of a 4 KB write: Ferry fsyncs once per group commit, so that bounds its commits a second, not its messages."
  echo
  echo "CPU time per message (user + system): the pipe's two ends **${CEIL_ENDS_PIPE} µs** (at its limit ${CEIL_BUSY} of ${CEIL_CORES} cores busy); with Ferry between them, the ends ${CEIL_ENDS_FERRY} µs and **Ferry ${CEIL_CPU_FERRY} µs** (at its rate Ferry alone kept ${CEIL_FERRY_CORES} of ${CEIL_CORES} cores busy). A relay does the work of both ends once more (it receives what smtp-sink receives and sends what smtp-source sends), and then stores and fsyncs. Half the pipe's rate on ${CEIL_CORES} cores would leave Ferry **${CEIL_BUDGET} µs** of CPU a message. Its writes sent **${CEIL_DISK_FERRY} KB a message** toward the disk (\`/proc/PID/io\`'s \`write_bytes\`, the mean of the rounds: the queue's and the tracking log's write-ahead logs and their checkpoints; the message itself is 4 KB)."
  echo
  if [ -n "$CEIL_TMPFS" ]; then
    echo "What the disk costs: the same relay, alternating with the two above, with Ferry's data directory on a tmpfs (\`/dev/shm\`: its writes and fsyncs stay in memory — a diagnosis, not a way to run, since a power cut would lose the queue) did **${CEIL_TMPFS_RATE} msg/s, $(ratio "$CEIL_TMPFS_RATE" "$CEIL_PIPE")× the pipe's limit**, Ferry at ${CEIL_CPU_TMPFS} µs of CPU a message against ${CEIL_CPU_FERRY} µs on the disk."
    echo
  fi
  echo "Where the machine's time went (\`/proc/stat\` over each round, % of all ${CEIL_CORES} cores, the mean of the rounds):"
  echo
  echo "| round | busy | idle | idle, waiting on the disk | stolen by the hypervisor |"
  echo "|---|---|---|---|---|"
  echo "| the pipe | ${R[ceil_busy_pipe]} % | ${R[ceil_idle_pipe]} % | ${R[ceil_iowait_pipe]} % | ${R[ceil_steal_pipe]} % |"
  echo "| Ferry between its ends | ${R[ceil_busy_ferry]} % | ${R[ceil_idle_ferry]} % | ${R[ceil_iowait_ferry]} % | ${R[ceil_steal_ferry]} % |"
  [ -n "$CEIL_TMPFS" ] && echo "| Ferry, its data on tmpfs | ${R[ceil_busy_tmpfs]} % | ${R[ceil_idle_tmpfs]} % | ${R[ceil_iowait_tmpfs]} % | ${R[ceil_steal_tmpfs]} % |"
  echo
  echo "Busy counts user, system and interrupt time, loopback TCP's included; *waiting on the disk* is idle time while some task waited for the disk (Linux's iowait). A round that leaves the cores idle is bound by its sessions' round trips and waits, not by the CPU: 20 sessions, each waiting for one reply at a time, did not keep ${CEIL_CORES} cores busy."
  echo
  echo "Where a session's time goes: after each round's rate was measured, 19 \`smtp-source\` sessions kept the same load on while one probe session (Python, on loopback) timed ${CEIL_PROBE} messages, each step from sending to the server's whole reply (mean ms, the mean of the rounds). Each of the 20 sessions sends one message a cycle, so a cycle lasts 20 ÷ the rate; what the server's replies do not account for is the client's own time between a reply and its next command, \`smtp-source\` waiting for a core among the others."
  echo
  local tmpfs_head="" tmpfs_rule=""
  [ -n "$CEIL_TMPFS" ] && { tmpfs_head=" Ferry, its data on tmpfs |"; tmpfs_rule="---|"; }
  echo "| step | the pipe | Ferry between its ends |$tmpfs_head"
  echo "|---|---|---|$tmpfs_rule"
  local step label
  for step in connect banner ehlo mail rcpt data dot quit replies; do
    case $step in
      connect) label="TCP connect" ;; banner) label="connect → 220" ;; ehlo) label="EHLO → 250" ;; mail) label="MAIL → 250" ;;
      rcpt) label="RCPT → 250" ;; data) label="DATA → 354" ;; dot) label="the message and its end → 250 (Ferry: the commit and its fsync)" ;;
      quit) label="QUIT → 221" ;; replies) label="**all of the server's replies**" ;;
    esac
    echo "| $label | $(j "${R[ceil_probe_pipe]}" ".$step") | $(j "${R[ceil_probe_ferry]}" ".$step") |${CEIL_TMPFS:+ $(j "${R[ceil_probe_tmpfs]:-}" ".$step") |}"
  done
  echo "| **a whole cycle** (20 sessions ÷ the rate) | ${CEIL_CYCLE_PIPE} | ${CEIL_CYCLE_FERRY} |${CEIL_TMPFS:+ ${CEIL_CYCLE_TMPFS} |}"
}
connections_section() {
  echo "## 13. Connections"
  echo
  echo "A fresh session's banner (connect → 220, 200 in a row): p50 $(j "$CONN_IDLE_LAT" .p50_ms) ms, p99 $(j "$CONN_IDLE_LAT" .p99_ms) ms alone; p50 $(j "$CONN_BUSY_LAT" .p50_ms) ms, p99 $(j "$CONN_BUSY_LAT" .p99_ms) ms with **${CONN_OPEN} idle sessions** held open (two loadgens: the file limit here is 20,000 a process and cannot be raised, so 20,000 is out of reach). Ferry's RSS: ${CONN_RSS0} KB alone, ${CONN_RSS1} KB with them."
}
if [ "$QUICK" = --connections ]; then
  declare -A R
  echo "[${SECONDS} s] == 13. connections"; connections_bench
  write_sections "$(connections_section)" --connections; exit 0
fi
if [ "$QUICK" = --ceiling ]; then
  declare -A R
  echo "[${SECONDS} s] == 12. the ceiling"; ceiling_bench
  write_sections "$(ceiling_section)" --ceiling; exit 0
fi
# Section 18, also run alone with --profile: where Ferry's CPU goes while it
# relays 4 KB x 20 sessions (perf, cpu-clock samples with DWARF call graphs,
# of the release build with its symbols: Cargo's `profiling` profile), as a
# flame graph (bench/flamegraph.svg) and a table of shares.
profile_bench() {
  if ! command -v perf >/dev/null; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf >/dev/null; fi
  if ! command -v inferno-flamegraph >/dev/null; then cargo install inferno --locked -q --version 0.12.8; fi
  local release=$FERRY
  FERRY=$REPO/target/profiling/ferry
  rm -rf "$W/ferry-prof"; start_ferry "$W/ferry-prof"; configure_relay
  FERRY=$release
  start_sink $SINK "$W/prof-sink.out"
  # A first load, unprofiled, so the profile sees a warm process.
  smtp-source -s 20 -m 1000 -l 4096 -f bench@source.test -t rcpt@remote.test 127.0.0.1:$IN
  wait_sink "$W/prof-sink.out" 1000 >/dev/null
  perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$FERRY_PID" -o "$W/perf.data" 2>"$W/perf.err" &
  local perf=$!; sleep 1
  local t0 t2; t0=$(now)
  smtp-source -s 20 -m "$N4K" -l 4096 -f bench@source.test -t rcpt@remote.test 127.0.0.1:$IN
  wait_sink "$W/prof-sink.out" $((N4K + 1000)) >/dev/null; t2=$(now)
  kill -INT "$perf"; wait "$perf" 2>/dev/null || true
  PROF_RATE=$(rate "$N4K" "$(elapsed "$t0" "$t2")")
  perf script -i "$W/perf.data" 2>/dev/null | inferno-collapse-perf --all > "$W/folded"
  inferno-flamegraph --title "Ferry relaying 4 KB x 20 sessions: CPU (perf cpu-clock, $(date -u +%Y-%m-%d))" \
    < "$W/folded" > "$FLAMEGRAPH"
  PROFILE=$(python3 - "$W/folded" <<'PY'
import json, re, sys
# Each line: "thread;frame;...;leaf count". A sample counts once per
# category whose pattern is somewhere in its stack (shares overlap).
cats = [
    ("SMTP server sessions (ferry::smtp::server)", r"ferry::smtp::server"),
    ("delivery engine (ferry::queue::delivery)", r"ferry::queue::delivery"),
    ("SMTP client (ferry::smtp::client)", r"ferry::smtp::client"),
    ("the queue writer thread", r"^ferry-queue-wri"),
    ("the message tracking writer thread", r"^ferry-tracking-"),
    ("SQLite, any thread", r"sqlite3"),
    ("sqlx's SQLite worker threads", r"^sqlx-sqlite"),
    ("fsync/fdatasync", r"fsync|fdatasync"),
    ("TCP send and receive in the kernel", r"tcp_sendmsg|tcp_recvmsg"),
    ("futex (thread wake-ups and waits)", r"futex"),
    ("the kernel's scheduler (context switches)", r"\b__schedule\b|\bschedule\b"),
    ("epoll", r"epoll"),
    ("memory copies (memcpy/memmove)", r"memcpy|memmove"),
    ("allocation (malloc/free)", r"malloc|free|realloc|cfree"),
    ("message tracking and logs (ferry::observe)", r"ferry::observe"),
]
total, counts, threads = 0, {c: 0 for c, _ in cats}, {}
for line in open(sys.argv[1]):
    stack, _, n = line.rstrip().rpartition(" ")
    n = int(n)
    total += n
    t = re.sub(r"[-_ ]?\d+$", "", stack.split(";", 1)[0])
    threads[t] = threads.get(t, 0) + n
    for c, pat in cats:
        if re.search(pat, stack):
            counts[c] += n
print(json.dumps({"samples": total,
                  "shares": [[c, round(100 * counts[c] / max(1, total), 1)] for c, _ in cats],
                  "threads": sorted([[t, round(100 * n / max(1, total), 1)] for t, n in threads.items()], key=lambda x: -x[1])[:8]}))
PY
)
  kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true
  kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
  echo "  relayed $N4K at ${PROF_RATE} msg/s under perf; $(echo "$PROFILE" | jq -c .)"
}
profile_section() {
  echo "## 18. Where the CPU goes"
  echo
  echo "\`perf record -e cpu-clock --call-graph dwarf\` on Ferry (the release build with its symbols, Cargo's \`profiling\` profile) while it relayed ${N4K} messages of 4 KB over 20 sessions to smtp-sink (${PROF_RATE} msg/s under the profiler; $(echo "$PROFILE" | jq '.samples / 1e7 | round / 100') s of CPU sampled). The flame graph is [\`bench/flamegraph.svg\`](flamegraph.svg). Share of Ferry's samples with each in the stack (they overlap):"
  echo
  echo "| where | share |"
  echo "|---|---|"
  echo "$PROFILE" | jq -r '.shares[] | "| \(.[0]) | \(.[1]) % |"'
  echo
  echo "By thread: $(echo "$PROFILE" | jq -r '[.threads[] | "\(.[0]) \(.[1]) %"] | join(", ")')."
}
if [ "$QUICK" = --profile ]; then
  declare -A R
  echo "[${SECONDS} s] == 18. where the CPU goes"; profile_bench
  write_sections "$(profile_section)" --profile; exit 0
fi

# Section 7, also run alone with --config.
config_scale() {
  rm -rf "$W/ferry-scale"; start_ferry "$W/ferry-scale"
  python3 - "$TOKEN" <<'PY'
import ipaddress, json, socket, sys, threading, time, urllib.request
token = sys.argv[1]
API = "http://127.0.0.1:18700"

def call(method, path, data=None):
    req = urllib.request.Request(API + path, method=method, data=data,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

def probe():
    t = time.perf_counter()
    urllib.request.urlopen(API + "/healthz", timeout=30).read()
    s = socket.create_connection(("127.0.0.1", 2530), timeout=30)
    assert s.recv(512).startswith(b"220")
    s.close()
    return (time.perf_counter() - t) * 1000

def pct(v, q):
    v = sorted(v)
    return round(v[min(len(v) - 1, int(len(v) * q))], 2)

def ranges(offset):
    out = []
    for i in range(100_000):
        if i % 2 == 0:
            out.append(str(ipaddress.IPv4Address(0x0B000000 + i * 4 + offset)))
        else:
            out.append(str(ipaddress.IPv6Address((0x20010DB8 << 96) | (i << 1) | offset)))
    return out

def connector(name, offset):
    return {"name": name, "usage": "Custom", "bindings": ["127.0.0.1:2533"], "remoteIpRanges": ranges(offset),
            "permissionGroups": ["AnonymousUsers"]}

# Bodies are encoded before probing starts: json.dumps of 100,000 ranges holds
# Python's GIL long enough to stall the probe thread and blame the server.
bodies = [(name, json.dumps(connector(name, offset)).encode(), expect)
          for name, offset, expect in [("first", 0, 201), ("second", 1, 201), ("conflicting", 0, 422)]]
idle = [probe() for _ in range(200)]
during, stop = [], threading.Event()
def loop():
    while not stop.is_set():
        during.append(probe())
        time.sleep(0.01)
th = threading.Thread(target=loop); th.start()
saves = {}
for name, body, expect in bodies:
    t = time.perf_counter()
    status, _ = call("POST", "/api/v1/receive-connectors", body)
    saves[name] = round((time.perf_counter() - t) * 1000, 1)
    assert status == expect, (name, status)
stop.set(); th.join()
print(json.dumps({"first_ms": saves["first"], "second_ms": saves["second"], "conflict_ms": saves["conflicting"],
                  "idle_p50_ms": pct(idle, 0.5), "idle_p99_ms": pct(idle, 0.99),
                  "during_p50_ms": pct(during, 0.5), "during_p99_ms": pct(during, 0.99), "during_probes": len(during)}))
PY
  kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
}
if [ "$QUICK" = --config ]; then
  echo "[${SECONDS} s] == 7. configuration at scale"; config_scale; exit 0
fi

# Section 8, also run alone with --agents: the same relay with the agents
# disabled and enabled, over the same data, alternating, twice each.
DNSBL_PORT=2534
agents_data() { # the lists, the provider and the directory
  python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
json.dump({"items": [{"ipRange": f"10.{i // 256}.{i % 256}.0/24"} for i in range(10_000)]},
          open(f"{w}/entries.json", "w"))
items = [{"primaryAddress": f"user{i}@remote.test"} for i in range(99_999)]
items.append({"primaryAddress": "rcpt@remote.test"})
json.dump({"items": items}, open(f"{w}/recipients.json", "w"))
PY
  api -X POST "$API/ip-block-list-entries/bulk" --data-binary @"$W/entries.json" >/dev/null
  api -X PATCH "$API/transport-settings" -d "{\"externalDNSServers\":[\"127.0.0.1:$DNSBL_PORT\"]}" >/dev/null
  api -X POST "$API/ip-block-list-providers" -d '{"name":"bench DNSBL","lookupDomain":"bl.test"}' >/dev/null
  api -X POST "$API/accepted-domains" -d '{"domainName":"remote.test","recipientDirectory":{"type":"List"}}' >/dev/null
  api -X PUT "$API/recipients" --data-binary @"$W/recipients.json" >/dev/null
  api -X PATCH "$API/recipient-filter-config" -d '{"recipientValidationEnabled":true}' >/dev/null
}
agents_enabled() { # true|false
  for a in Connection%20Filtering%20Agent Sender%20Filter%20Agent Recipient%20Filter%20Agent Attachment%20Filtering%20Agent; do
    api -X PATCH "$API/transport-agents/$a" -d "{\"enabled\":$1}" >/dev/null
  done
}
agents_bench() {
  local n=$N4K
  dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces --conf-file=/dev/null \
    --local=/test/ --pid-file= --user=root --log-facility=- --listen-address=127.0.0.1 \
    --port=$DNSBL_PORT --host-record=2.0.0.127.bl.test,127.0.0.2 >/dev/null 2>&1 &
  pids+=("$!"); sleep 0.5
  for round in 1 2; do for on in false true; do
    rm -rf "$W/ferry-agents"; start_ferry "$W/ferry-agents"; configure_relay; agents_data; agents_enabled "$on"
    start_sink $SINK "$W/a-sink.out"
    t0=$(now); smtp-source -s 20 -m "$n" -l 4096 -f bench@source.test -t rcpt@remote.test 127.0.0.1:$IN; t1=$(now)
    wait_sink "$W/a-sink.out" "$n" >/dev/null; t2=$(now)
    R[ag_${on}_$round]=$(rate "$(sink_count "$W/a-sink.out")" "$(elapsed "$t0" "$t2")")
    echo "  round $round, agents enabled=$on: accepted $(rate "$n" "$(elapsed "$t0" "$t1")")/s, relayed ${R[ag_${on}_$round]}/s"
    kill "$SINK_PID" 2>/dev/null || true
    kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
  done; done
  AG_OFF=$(( (${R[ag_false_1]} + ${R[ag_false_2]}) / 2 )); AG_ON=$(( (${R[ag_true_1]} + ${R[ag_true_2]}) / 2 ))
  echo "  mean relayed: disabled ${AG_OFF}/s, enabled ${AG_ON}/s — enabled/disabled $(ratio "$AG_ON" "$AG_OFF")"
}
# Section 9, also run alone with --content: the Content Filter's cost beside
# what users would run instead, Postfix with rspamd as a milter; the same
# rspamd (its scanner and its milter proxy, both self-scanning) for both.
RSPAMD=127.0.0.1:2535; RSPAMD_MILTER=2536
content_round() { # label: ferry-off | ferry-on | postfix-off | postfix-on
  local n=$N4K
  case $1 in
    ferry-*)
      rm -rf "$W/ferry-content"; start_ferry "$W/ferry-content"; configure_relay
      if [ "$1" = ferry-on ]; then
        api -X PATCH "$API/transport-agents/Content%20Filter%20Agent" -d '{"enabled":true}' >/dev/null
        api -X PATCH "$API/content-filter-config" -d "{\"scannerUrl\":\"http://$RSPAMD\"}" >/dev/null
      fi
      start_sink $SINK "$W/c-sink.out"
      t0=$(now); smtp-source -s 20 -m "$n" -l 4096 -f bench@source.test -t rcpt@remote.test 127.0.0.1:$IN; t1=$(now)
      wait_sink "$W/c-sink.out" "$n" >/dev/null; t2=$(now)
      R[ct_$1]=$(rate "$(sink_count "$W/c-sink.out")" "$(elapsed "$t0" "$t2")")
      kill "$SINK_PID" 2>/dev/null || true
      kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
      ;;
    postfix-*)
      postfix_setup 20
      if [ "$1" = postfix-on ]; then
        pf postconf -e "smtpd_milters = inet:127.0.0.1:$RSPAMD_MILTER" "milter_default_action = accept" \
          "milter_protocol = 6"
      else
        pf postconf -e "smtpd_milters ="
      fi
      pf stop; pf start; sleep 1
      start_sink $PF_SINK "$W/pc-sink.out"
      t0=$(now); smtp-source -s 20 -m "$n" -l 4096 -f bench@source.test -t rcpt@remote.test 127.0.0.1:$PF_IN; t1=$(now)
      wait_sink "$W/pc-sink.out" "$n" >/dev/null; t2=$(now)
      R[ct_$1]=$(rate "$(sink_count "$W/pc-sink.out")" "$(elapsed "$t0" "$t2")")
      kill "$SINK_PID" 2>/dev/null || true; pf stop
      ;;
  esac
  echo "  $1: accepted $(rate "$n" "$(elapsed "$t0" "$t1")")/s, relayed ${R[ct_$1]}/s"
}
content_bench() {
  bash "$REPO/tests/peers/rspamd-private.sh" fetch
  bash "$REPO/tests/peers/rspamd-private.sh" "$W/rspamd" start "$RSPAMD" "$RSPAMD_MILTER" "$(nproc)"
  for label in ferry-off ferry-on postfix-off postfix-on; do content_round "$label"; done
  # The scanned cases again, so that neither is measured only first.
  for label in postfix-on ferry-on; do
    local first=${R[ct_$label]}; content_round "$label"
    R[ct_$label]=$(( (first + ${R[ct_$label]}) / 2 ))
  done
  bash "$REPO/tests/peers/rspamd-private.sh" "$W/rspamd" stop
  echo "  Ferry: ${R[ct_ferry-off]}/s plain, ${R[ct_ferry-on]}/s scanned ($(ratio "${R[ct_ferry-on]}" "${R[ct_ferry-off]}")×);" \
    "Postfix: ${R[ct_postfix-off]}/s plain, ${R[ct_postfix-on]}/s with the milter ($(ratio "${R[ct_postfix-on]}" "${R[ct_postfix-off]}")×);" \
    "scanned Ferry/Postfix $(ratio "${R[ct_ferry-on]}" "${R[ct_postfix-on]}")×"
}
# Section 10, also run alone with --auth: DKIM signing and SPF/DKIM/DMARC
# verification on every message, beside Postfix signing with OpenDKIM.
AUTH_DNS_PORT=2538; OPENDKIM_PORT=2537
auth_round() { # label: ferry-off | ferry-on | postfix-off | postfix-on
  local n=$N4K
  case $1 in
    ferry-*)
      rm -rf "$W/ferry-auth"; start_ferry "$W/ferry-auth"; configure_relay
      if [ "$1" = ferry-on ]; then
        key=$(api -X POST "$API/dkim-signing-keys" -d '{"domain":"source.test","selector":"bench","state":"Active"}')
        name=$(echo "$key" | jq -r .dnsRecordName); record=$(echo "$key" | jq -r .dnsRecord)
        dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces --conf-file=/dev/null \
          --local=/test/ --pid-file= --user=root --log-facility=- --listen-address=127.0.0.1 --port=$AUTH_DNS_PORT \
          "--txt-record=source.test,v=spf1 ip4:127.0.0.1 -all" "--txt-record=_dmarc.source.test,v=DMARC1; p=none" \
          "--txt-record=$name,${record:0:250},${record:250}" >/dev/null 2>&1 &
        AUTH_DNS_PID=$!; pids+=("$AUTH_DNS_PID"); sleep 0.5
        api -X PATCH "$API/transport-settings" -d "{\"internalSMTPServers\":[\"127.0.0.1\"],\"externalDNSServers\":[\"127.0.0.1:$AUTH_DNS_PORT\"]}" >/dev/null
        api -X PATCH "$API/sender-id-config" -d '{"internalMailEnabled":true}' >/dev/null
        api -X PATCH "$API/transport-agents/Sender%20Id%20Agent" -d '{"enabled":true}' >/dev/null
        # A few messages first, kept, to show the measured ones are signed and verified.
        start_sink $SINK "$W/au-check.out" "$W/au-dump"
        smtp-source -s 1 -m 5 -l 4096 -f bench@source.test -t rcpt@remote.test 127.0.0.1:$IN
        wait_sink "$W/au-check.out" 5 >/dev/null; kill "$SINK_PID" 2>/dev/null || true; sleep 0.2
        grep -lq "^DKIM-Signature: v=1; a=rsa-sha256; s=bench; d=source.test" "$W"/au-dump/* \
          && grep -lq "^Authentication-Results: .*spf=pass\|^	spf=pass" "$W"/au-dump/* \
          || { echo "ferry-on: the relayed mail is not signed and verified" >&2; exit 1; }
      fi
      start_sink $SINK "$W/au-sink.out"
      t0=$(now); smtp-source -s 20 -m "$n" -l 4096 -f bench@source.test -t rcpt@remote.test 127.0.0.1:$IN; t1=$(now)
      wait_sink "$W/au-sink.out" "$n" >/dev/null; t2=$(now)
      R[au_$1]=$(rate "$(sink_count "$W/au-sink.out")" "$(elapsed "$t0" "$t2")")
      kill "$SINK_PID" 2>/dev/null || true
      kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
      [ "$1" = ferry-on ] && { kill "$AUTH_DNS_PID" 2>/dev/null || true; }
      ;;
    postfix-*)
      postfix_setup 20
      if [ "$1" = postfix-on ]; then
        pf postconf -e "smtpd_milters = inet:127.0.0.1:$OPENDKIM_PORT" "milter_default_action = accept" "milter_protocol = 6"
      else
        pf postconf -e "smtpd_milters ="
      fi
      pf stop; pf start; sleep 1
      start_sink $PF_SINK "$W/pa-sink.out"
      t0=$(now); smtp-source -s 20 -m "$n" -l 4096 -f bench@source.test -t rcpt@remote.test 127.0.0.1:$PF_IN; t1=$(now)
      wait_sink "$W/pa-sink.out" "$n" >/dev/null; t2=$(now)
      R[au_$1]=$(rate "$(sink_count "$W/pa-sink.out")" "$(elapsed "$t0" "$t2")")
      kill "$SINK_PID" 2>/dev/null || true; pf stop
      ;;
  esac
  echo "  $1: accepted $(rate "$n" "$(elapsed "$t0" "$t1")")/s, relayed ${R[au_$1]}/s"
}
auth_bench() {
  bash "$REPO/tests/peers/opendkim-private.sh" fetch
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/opendkim.key" 2>/dev/null
  bash "$REPO/tests/peers/opendkim-private.sh" "$W/opendkim" start 127.0.0.1 $OPENDKIM_PORT source.test bench "$W/opendkim.key"
  for label in ferry-off ferry-on postfix-off postfix-on; do auth_round "$label"; done
  for label in postfix-on ferry-on; do
    local first=${R[au_$label]}; auth_round "$label"
    R[au_$label]=$(( (first + ${R[au_$label]}) / 2 ))
  done
  bash "$REPO/tests/peers/opendkim-private.sh" "$W/opendkim" stop
  echo "  Ferry: ${R[au_ferry-off]}/s plain, ${R[au_ferry-on]}/s signing and verifying ($(ratio "${R[au_ferry-on]}" "${R[au_ferry-off]}")×);" \
    "Postfix: ${R[au_postfix-off]}/s plain, ${R[au_postfix-on]}/s with OpenDKIM signing ($(ratio "${R[au_postfix-on]}" "${R[au_postfix-off]}")×);" \
    "Ferry/Postfix $(ratio "${R[au_ferry-on]}" "${R[au_postfix-on]}")×"
}
# Section 11, also run alone with --webhooks: the relay with no webhook, with
# one taking every event (receiver up), and with its receiver down, so every
# delivery fails and is retried from the outbox while mail flows.
WEBHOOK_PORT=2539
webhook_receiver() { # the receiver: answers 200 to every POST, counts them
  python3 - "$WEBHOOK_PORT" "$W/hook-count" <<'PY' &
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, out = int(sys.argv[1]), sys.argv[2]
lock, n = threading.Lock(), [0]
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
        with lock:
            n[0] += 1
            open(out, "w").write(str(n[0]))
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
  HOOK_PID=$!; pids+=("$HOOK_PID"); sleep 0.5
}
webhook_round() { # off | up | down, round
  local n=$N4K
  rm -rf "$W/ferry-hooks"; start_ferry "$W/ferry-hooks"; configure_relay
  if [ "$1" != off ]; then
    api -X POST "$API/webhooks" -d "{\"name\":\"bench\",\"url\":\"http://127.0.0.1:$WEBHOOK_PORT/hook\"}" >/dev/null
  fi
  [ "$1" = up ] && webhook_receiver
  start_sink $SINK "$W/h-sink.out"
  t0=$(now); smtp-source -s 20 -m "$n" -l 4096 -f bench@source.test -t rcpt@remote.test 127.0.0.1:$IN; t1=$(now)
  wait_sink "$W/h-sink.out" "$n" >/dev/null; t2=$(now)
  R[wh_$1_$2]=$(rate "$(sink_count "$W/h-sink.out")" "$(elapsed "$t0" "$t2")")
  local state=""
  if [ "$1" != off ]; then
    state=$(api "$API/webhooks/bench/deliveries?limit=1" | jq -c '{pending, delivered, failed}')
  fi
  echo "  round $2, webhook $1: accepted $(rate "$n" "$(elapsed "$t0" "$t1")")/s, relayed ${R[wh_$1_$2]}/s $state"
  kill "$SINK_PID" 2>/dev/null || true
  if [ "$1" = up ]; then kill "$HOOK_PID" 2>/dev/null || true; wait "$HOOK_PID" 2>/dev/null || true; fi
  kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
}
webhooks_bench() {
  for round in 1 2; do for mode in off up down; do webhook_round "$mode" "$round"; done; done
  WH_OFF=$(( (${R[wh_off_1]} + ${R[wh_off_2]}) / 2 )); WH_UP=$(( (${R[wh_up_1]} + ${R[wh_up_2]}) / 2 ))
  WH_DOWN=$(( (${R[wh_down_1]} + ${R[wh_down_2]}) / 2 ))
  echo "  mean relayed: no webhook ${WH_OFF}/s, receiver up ${WH_UP}/s ($(ratio "$WH_UP" "$WH_OFF")×), receiver down ${WH_DOWN}/s ($(ratio "$WH_DOWN" "$WH_OFF")×)"
}
if [ "$QUICK" = --webhooks ]; then
  declare -A R
  echo "[${SECONDS} s] == 11. event webhooks' cost"; webhooks_bench; exit 0
fi
if [ "$QUICK" = --auth ]; then
  declare -A R
  echo "[${SECONDS} s] == 10. message authentication's cost"; auth_bench; exit 0
fi
if [ "$QUICK" = --content ]; then
  declare -A R
  echo "[${SECONDS} s] == 9. the Content Filter's cost"; content_bench; exit 0
fi
if [ "$QUICK" = --agents ]; then
  declare -A R
  echo "[${SECONDS} s] == 8. the anti-spam agents' cost"; agents_bench; exit 0
fi

# Sections 1-2's text (the full run's, or --peers's alone).
relay_sections() {
  j() { echo "$1" | jq -r "$2"; }
  echo "## 1. Relay throughput (smtp-source, messages/s)"
  echo
  echo "Every MTA relays to \`smtp-sink\` on 127.0.0.1 as a private instance on loopback, with its queue on disk (\`tests/peers/postfix-private.sh\`, \`tests/peers/mta-private.sh\`): Postfix $(postconf -d -h mail_version 2>/dev/null) as in \`shared/tools/postfix-relay-baseline.sh\`; Exim $(dpkg-deb -f target/peers/mta/exim/debs/exim4-daemon-light_*.deb Version 2>/dev/null) (Debian's exim4-daemon-light, a manualroute smart host); OpenSMTPD $(dpkg-deb -f target/peers/mta/opensmtpd/debs/opensmtpd_*.deb Version 2>/dev/null) (\`action relay host\`); Haraka $(jq -r .version target/peers/mta/haraka/node_modules/Haraka/package.json 2>/dev/null) on Node.js $(node --version 2>/dev/null) (the relay plugin, its outbound queue on disk, \`queue/smtp_forward\` naming the next hop, a worker per core). Ferry runs as an Edge with a relay receive connector and a smart-host send connector."
  echo
  echo "Durability before \`250\`, as seen under \`strace -f\` on one message each: Ferry commits to SQLite with synchronous=FULL (fsync); Postfix fsyncs the queue file; Exim fsyncs its spool's data and header files; Haraka writes its outbound queue file with fsync; **OpenSMTPD does not fsync** (no fsync or fdatasync in any of its processes; its figures are shown anyway)."
  echo
  echo "smtp-source sends each message in a session of its own, for at most ${RELAY_BUDGET} s (a slower MTA is measured on what it accepted by then: relayed plus still queued). *Best peer* is the fastest of the four others; the ratio is Ferry's rate over it (target ≥ 2×)."
  echo
  for what in acc rel; do
    [ $what = acc ] && echo "Accepted:" || echo "Relayed (accepted and delivered to the sink):"
    echo
    echo "| size | sessions | Postfix | Exim | OpenSMTPD | Haraka | Ferry | Ferry ÷ best peer |"
    echo "|---|---|---|---|---|---|---|---|"
    for size in $SIZES; do for s in $SESSIONS; do k="${size}_${s}"
      best=0; for m in $PEERS; do [ "${R[${what}_${m}_$k]}" -gt "$best" ] && best=${R[${what}_${m}_$k]}; done
      echo "| $((size / 1024)) KB | $s | ${R[${what}_postfix_$k]} | ${R[${what}_exim_$k]} | ${R[${what}_opensmtpd_$k]} | ${R[${what}_haraka_$k]} | ${R[${what}_ferry_$k]} | **$(ratio "${R[${what}_ferry_$k]}" "$best")×** |"
    done; done
    echo
  done
  echo "Exim 4.96 answers \`QUIT\` with its \`221\` held back by TCP_CORK while it waits up to 200 ms for the client to close first (visible under strace: \`poll(…, 200)\`); smtp-source waits for that \`221\`, so Exim's rate here is bounded near sessions ÷ 0.2 s. Its figures at the same concurrency below, over reused sessions, do not pay it. OpenSMTPD's relay leg neither pipelines nor sets TCP_NODELAY: each message's final segment waits for the sink's delayed ACK (~40 ms, seen under strace), one message at a time per connection."
  echo
  echo "## 2. Acceptance latency (end of DATA → reply, loadgen, ms)"
  echo
  echo "Two loads, over reused sessions, each for at most ${LAT_BUDGET} s. *Same concurrency*: every session sends its next message as soon as the last is answered, so a faster server also carries more messages a second (msg/s in brackets). *Same rate*: every MTA is offered the same paced load, 80% of the best peer's rate at the same concurrency among the peers whose sessions all completed (\`LOADGEN_RATE\`); the ratio is Ferry's p99 over the lowest p99 among the peers that kept up (at least 95% of the offered rate, no session ended early) (target ≤ 0.5×)."
  echo
  echo "| size | sessions | Postfix p50 / p99 (msg/s) | Exim | OpenSMTPD | Haraka | Ferry |"
  echo "|---|---|---|---|---|---|---|"
  for size in $SIZES; do for s in $SESSIONS; do k="${size}_${s}"
    row="| $((size / 1024)) KB | $s |"
    for m in $PEERS ferry; do row+=" $(j "${R[lat_${m}_$k]}" .p50_ms) / $(j "${R[lat_${m}_$k]}" .p99_ms) ($(j "${R[lat_${m}_$k]}" .msgs_per_s)) |"; done
    echo "$row"
  done; done
  echo
  echo "| size | sessions | same rate | Postfix p50 / p99 | Exim | OpenSMTPD | Haraka | Ferry | Ferry's p99 ÷ best peer's |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for size in $SIZES; do for s in $SESSIONS; do k="${size}_${s}"
    row="| $((size / 1024)) KB | $s | ${R[rate_$k]}/s |"; bestp99=
    for m in $PEERS ferry; do
      local_rate=$(j "${R[rlat_${m}_$k]}" .msgs_per_s); local_failed=$(j "${R[rlat_${m}_$k]}" .failed)
      if [ "$local_failed" = 0 ] && [ "$(( local_rate * 100 ))" -ge "$(( ${R[rate_$k]} * 95 ))" ]; then
        row+=" $(j "${R[rlat_${m}_$k]}" .p50_ms) / $(j "${R[rlat_${m}_$k]}" .p99_ms) |"
        if [ "$m" != ferry ]; then
          p=$(j "${R[rlat_${m}_$k]}" .p99_ms)
          bestp99=$(python3 -c "import sys; a=sys.argv[1]; print(min(float(a), float(sys.argv[2])) if a else sys.argv[2])" "$bestp99" "$p")
        fi
      else
        # It did not keep up: its end-of-DATA latency says nothing of the
        # wait, so it is not a best peer for the ratio.
        row+=" fell behind: ${local_rate} msg/s, ${local_failed} sessions ended early: a reply not given in ${REPLY_WAIT} s, or the session closed ($(j "${R[rlat_${m}_$k]}" .p50_ms) / $(j "${R[rlat_${m}_$k]}" .p99_ms)) |"
      fi
    done
    echo "$row **$(ratio "$(j "${R[rlat_ferry_$k]}" .p99_ms)" "${bestp99:-0}")×** |"
  done; done
  echo
}
declare -A R
echo "[${SECONDS} s] == 1. relay throughput, and 2. acceptance latency: ${PEERS// /, } and Ferry"
for p in $PEERS; do [ "$p" = postfix ] || bash tests/peers/mta-private.sh fetch "$p"; done
for size in $SIZES; do
  n=$N4K; [ "$size" = 102400 ] && n=$N100K
  for s in $SESSIONS; do
    key="${size}_${s}"
    nl=$(( n / 2 )); [ "$nl" -lt "$LAT_SAMPLES" ] && nl=$LAT_SAMPLES
    for m in $PEERS ferry; do
      mta_start "$m" "$s"
      relay_case "$m" "$size" "$s" "$n"
      R[lat_${m}_$key]=$(LOADGEN_SECONDS=$LAT_BUDGET "$LOADGEN" send 127.0.0.1:"$(mta_port "$m")" "$s" "$nl" "$size")
      mta_stop "$m"
      echo "  $key $m: accepted ${R[acc_${m}_$key]}/s, relayed ${R[rel_${m}_$key]}/s; latency $(echo "${R[lat_${m}_$key]}" | jq -c .)"
    done
    # The same offered rate for all: 80% of what the best peer sustained
    # at this concurrency (the rate the targets compare at).
    best=0
    # A peer whose sessions ended early did not sustain its rate: it does
    # not set the pace.
    for m in $PEERS; do
      [ "$(echo "${R[lat_${m}_$key]}" | jq .failed)" = 0 ] || continue
      r=$(echo "${R[lat_${m}_$key]}" | jq .msgs_per_s); [ "$r" -gt "$best" ] && best=$r
    done
    R[rate_$key]=$(( best * 8 / 10 )); [ "${R[rate_$key]}" -lt 1 ] && R[rate_$key]=1
    for m in $PEERS ferry; do
      mta_start "$m" "$s"
      R[rlat_${m}_$key]=$(LOADGEN_SECONDS=$LAT_BUDGET LOADGEN_RATE=${R[rate_$key]} "$LOADGEN" send 127.0.0.1:"$(mta_port "$m")" "$s" "$nl" "$size")
      mta_stop "$m"
      echo "  $key $m at ${R[rate_$key]}/s: $(echo "${R[rlat_${m}_$key]}" | jq -c .)"
    done
  done
done

[ "$QUICK" = --relay ] && exit 0
if [ "$QUICK" = --peers ]; then write_sections "$(relay_sections)" --peers; exit 0; fi

echo "[${SECONDS} s] == 3. memory per idle session"
rm -rf "$W/ferry-mem"; start_ferry "$W/ferry-mem"; configure_relay
sleep 1
rss() { awk '/VmRSS/ {print $2}' "/proc/$FERRY_PID/status"; }
idle_kb=$(rss)
"$LOADGEN" idle 127.0.0.1:$IN "$IDLE" 12 > "$W/idle.out" &
LG=$!
for _ in $(seq 1 200); do grep -q open "$W/idle.out" 2>/dev/null && break; sleep 0.1; done
sleep 2
held_kb=$(rss)
opened=$(jq .open "$W/idle.out")
wait "$LG" || true
per_session=$(python3 -c "import sys; print(f'{(int(sys.argv[2])-int(sys.argv[1]))/max(1,int(sys.argv[3])):.1f}')" "$idle_kb" "$held_kb" "$opened")
echo "  idle RSS ${idle_kb} KB; with $opened sessions ${held_kb} KB; ${per_session} KB per session"

echo "[${SECONDS} s] == 4. hot reload under relay load"
start_sink $SINK "$W/reload-sink.out"
"$LOADGEN" send 127.0.0.1:$IN 20 30000 4096 > "$W/reload-load.out" &
LG=$!
sleep 0.5
python3 - "$TOKEN" > "$W/reload.out" <<'PY'
import json, socket, sys, time, urllib.request
token = sys.argv[1]
lat = []
for i in range(100):
    port = 3100 + i
    body = json.dumps({"name": f"reload {i}", "usage": "Custom", "bindings": [f"127.0.0.1:{port}"],
                       "remoteIpRanges": ["127.0.0.1"], "permissionGroups": ["AnonymousUsers"]}).encode()
    req = urllib.request.Request("http://127.0.0.1:18700/api/v1/receive-connectors", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
    t = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    banner = s.recv(512)
    lat.append((time.perf_counter() - t) * 1000)
    assert banner.startswith(b"220"), banner
    s.close()
lat.sort()
print(json.dumps({"changes": len(lat), "p50_ms": round(lat[len(lat)//2], 2), "max_ms": round(lat[-1], 2)}))
PY
still_running=$(kill -0 "$LG" 2>/dev/null && echo yes || echo no)
wait "$LG" || true
reload=$(cat "$W/reload.out")
load=$(cat "$W/reload-load.out")
kill "$SINK_PID" 2>/dev/null || true
echo "  $reload; relay load during the changes: $load (still running when the changes ended: $still_running)"

echo "[${SECONDS} s] == 5. API: listing 200 receive connectors"
for i in $(seq 100 199); do
  api -X POST "$API/receive-connectors" -d "{\"name\":\"api $i\",\"usage\":\"Custom\",\"bindings\":[\"127.0.0.1:$((3100 + i))\"],\"remoteIpRanges\":[\"127.0.0.1\"]}" >/dev/null
done
count=$(api "$API/receive-connectors" | jq '.items | length')
wrk_out=$(wrk -t2 -c20 -d10s -H "Authorization: Bearer $TOKEN" "$API/receive-connectors" 2>&1)
api_rps=$(echo "$wrk_out" | awk '/Requests\/sec/ {print $2}')
echo "  $count connectors listed at $api_rps requests/s"
kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true

echo "[${SECONDS} s] == 6. crash durability: $ROUNDS rounds of kill -9 under load"
rm -rf "$W/ferry-crash" "$W/dump"; : > "$W/acked"
start_sink $SINK "$W/crash-sink.out" "$W/dump"
start_ferry "$W/ferry-crash"; configure_relay
for r in $(seq 1 "$ROUNDS"); do
  [ "$r" -gt 1 ] && start_ferry "$W/ferry-crash"
  "$LOADGEN" send 127.0.0.1:$IN 20 3000 4096 "$W/acked" > /dev/null &
  LG=$!
  sleep "$(python3 -c 'import random; print(round(random.uniform(0.2, 1.0), 2))')"
  kill -9 "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
  wait "$LG" 2>/dev/null || true
done
start_ferry "$W/ferry-crash"
for _ in $(seq 1 3000); do [ "$(api "$API/messages" | jq .total)" = 0 ] && break; sleep 0.1; done
remaining=$(api "$API/messages" | jq .total)
sleep 1
acked=$(sort -u "$W/acked" | wc -l)
grep -rh '^Message-ID:' "$W/dump" 2>/dev/null | awk '{print $2}' | tr -d '\r' | sort > "$W/delivered"
delivered=$(sort -u "$W/delivered" | wc -l)
dups=$(( $(wc -l < "$W/delivered") - delivered ))
lost=$(comm -23 <(sort -u "$W/acked") <(sort -u "$W/delivered") | wc -l)
echo "  acknowledged $acked, delivered $delivered distinct, lost $lost, duplicates $dups, still queued $remaining"
kill "$FERRY_PID"; wait "$FERRY_PID" 2>/dev/null || true
# Its sink (which keeps every message) frees the port for the sections after.
kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true

echo "[${SECONDS} s] == 7. configuration at scale"
scale=$(config_scale)
echo "[${SECONDS} s] == 8. the anti-spam agents' cost"
agents_bench
echo "[${SECONDS} s] == 9. the Content Filter's cost"
content_bench
echo "[${SECONDS} s] == 10. message authentication's cost"
auth_bench
echo "[${SECONDS} s] == 11. event webhooks' cost"
webhooks_bench
echo "[${SECONDS} s] == 12. the ceiling"
ceiling_bench
echo "[${SECONDS} s] == 13. connections"
connections_bench
echo "[${SECONDS} s] == 14. a fleet"
fleet_bench
echo "[${SECONDS} s] == 15. queue depth"
depth_bench
echo "[${SECONDS} s] == 16. recipients"
fanout_bench
echo "[${SECONDS} s] == 17. message size"
size_bench
echo "[${SECONDS} s] == 18. where the CPU goes"
profile_bench
echo "  $scale"

# ---- RESULTS.md ---------------------------------------------------------------
{
  echo "# Ferry benchmarks"
  echo
  echo "Run: \`bash bench/run.sh${QUICK:+ $QUICK}\` on $(date -u +%Y-%m-%d) — $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr), $(postconf -d -h mail_version 2>/dev/null | sed 's/^/Postfix /'), ferry $(git rev-parse --short HEAD 2>/dev/null)."
  echo
  relay_sections
  echo "## 3. Memory"
  echo
  echo "Idle RSS: ${idle_kb} KB. With ${opened} idle SMTP sessions open: ${held_kb} KB — **${per_session} KB per idle session** (target ≤ 64 KB)."
  echo
  echo "## 4. Hot reload"
  echo
  echo "100 receive connectors created in a row on new ports while loadgen relayed through another connector: time from the POST returning to the new port's banner: p50 $(j "$reload" .p50_ms) ms, max $(j "$reload" .max_ms) ms (target ≤ 50 ms). The relay load around them: $(j "$load" .sent) messages acknowledged, **$(j "$load" .failed) failed transactions** (load still running when the last change returned: ${still_running})."
  echo
  echo "## 5. API"
  echo
  echo "\`wrk -t2 -c20 -d10s\` on GET /api/v1/receive-connectors with ${count} connectors: **${api_rps} requests/s**."
  echo
  echo "## 6. Crash durability"
  echo
  echo "${ROUNDS} rounds of kill -9 at a random moment (0.2–1 s) under 20 sessions of load (at most 3,000 messages a round), then a restart and a full drain: ${acked} messages acknowledged with 250; ${delivered} distinct delivered; **${lost} lost**; ${dups} delivered twice (the documented window: a message in flight at the kill is sent again); ${remaining} still queued when the drain ended."
  echo
  echo "## 7. Configuration at scale"
  echo
  echo "Two receive connectors of 100,000 remote ranges each (half IPv4, half IPv6) on one binding, then a third whose ranges are identical to the first's (refused with 422): saved in **$(j "$scale" .first_ms) ms** and **$(j "$scale" .second_ms) ms** (the second checked against the first for rule 5 overlaps), conflict found in $(j "$scale" .conflict_ms) ms (target: under a second). Meanwhile /healthz plus an SMTP banner on the default connector, probed in a loop ($(j "$scale" .during_probes) probes): p50 $(j "$scale" .during_p50_ms) ms, p99 $(j "$scale" .during_p99_ms) ms, against p50 $(j "$scale" .idle_p50_ms) ms, p99 $(j "$scale" .idle_p99_ms) ms idle — ratio $(ratio "$(j "$scale" .during_p99_ms)" "$(j "$scale" .idle_p99_ms)")× at p99."
  echo
  echo "## 8. The anti-spam agents' cost"
  echo
  echo "4 KB × 20 sessions relayed to smtp-sink through an Edge holding 10,000 IP Block list entries, a DNSBL provider (a private dnsmasq on loopback), and recipient validation from a 100,000-recipient list, with the four agents disabled and then enabled over the same data, alternating, twice each: **${AG_OFF} msg/s disabled, ${AG_ON} msg/s enabled — $(ratio "$AG_ON" "$AG_OFF")×** (target ≥ 0.90×)."
  echo
  echo "## 9. The Content Filter's cost"
  echo
  echo "4 KB × 20 sessions relayed to smtp-sink, every message scanned by one private rspamd on loopback ($(nproc) workers; Debian's rules, the modules that need no network): **Ferry ${R[ct_ferry-off]} msg/s plain, ${R[ct_ferry-on]} msg/s with the Content Filter — $(ratio "${R[ct_ferry-on]}" "${R[ct_ferry-off]}")×**; Postfix ${R[ct_postfix-off]} msg/s plain, ${R[ct_postfix-on]} msg/s with the same rspamd as a milter — $(ratio "${R[ct_postfix-on]}" "${R[ct_postfix-off]}")×. Scanned, Ferry relays **$(ratio "${R[ct_ferry-on]}" "${R[ct_postfix-on]}")×** Postfix's rate (the scanned cases are the mean of two rounds)."
  echo
  echo "## 10. Message authentication's cost"
  echo
  echo "4 KB × 20 sessions relayed to smtp-sink. Ferry signs every message with an RSA-2048 DKIM key and verifies it first (SPF, DKIM, DMARC and ARC against a private dnsmasq on loopback): **${R[au_ferry-off]} msg/s plain, ${R[au_ferry-on]} msg/s signing and verifying — $(ratio "${R[au_ferry-on]}" "${R[au_ferry-off]}")×**. Postfix ${R[au_postfix-off]} msg/s plain, ${R[au_postfix-on]} msg/s with a private OpenDKIM milter signing (RSA-2048) — $(ratio "${R[au_postfix-on]}" "${R[au_postfix-off]}")×. With authentication on, Ferry relays **$(ratio "${R[au_ferry-on]}" "${R[au_postfix-on]}")×** Postfix's rate (the authenticated cases are the mean of two rounds)."
  echo
  echo "## 11. Event webhooks' cost"
  echo
  echo "4 KB × 20 sessions relayed to smtp-sink, alternating, twice each: no webhook **${WH_OFF} msg/s**; a webhook taking every event (about six a message) with its receiver up **${WH_UP} msg/s — $(ratio "$WH_UP" "$WH_OFF")×**; with its receiver down for the whole run, every delivery failing and waiting in the outbox, **${WH_DOWN} msg/s — $(ratio "$WH_DOWN" "$WH_OFF")×**."
  echo
  ceiling_section
  echo
  connections_section
  echo
  fleet_section
  echo
  depth_section
  echo
  fanout_section
  echo
  size_section
  echo
  profile_section
} > "$RESULTS"
echo "[${SECONDS} s] wrote $RESULTS"
