#!/usr/bin/env bash
# Collector capacity: xacctd beside Debian's nfacctd/sfacctd on the same datagrams, in one run.
#
#   bash perf/collect_capacity.sh [RECORDS]     (default 1,000,000 records per flat-out run)
#
# Environment: FLOWS (distinct flows, default 100000), RATES (sweep steps in records/s),
# STEP_SECONDS (length of a sweep step, default 4), DRAIN_SLACK (default 0.5 s), PROTOS (default "v5 v9 ipfix sflow"),
# SENDER_CORE (default 0), COLLECTOR_CORE (default 1).
#
# For each protocol:
#  1. Per core, without the socket: xacct-collect-capacity decodes the datagrams with the
#     collector's own decoder and folds the records into a real worker's shard tables.
#  2. End to end over loopback UDP. Datagrams made by our encoders (xacct-replay make: RECORDS
#     records over FLOWS distinct 5-tuples, every record one packet) and datagrams captured
#     once from a real exporter (softflowd -r for v5/v9/IPFIX, pmacctd's sfprobe for sFlow v5,
#     recorded with tcpdump) are replayed by xacct-replay, pinned to SENDER_CORE, to xacctd and
#     then to nfacctd/sfacctd. Each collector runs alone, pinned to COLLECTOR_CORE (taskset:
#     xacctd's collector thread, worker and plugin share that core; so do nfacctd's core and
#     plugin processes), with one memory plugin and the 5-tuple aggregate. Runs: flat out, then
#     a rate sweep (RATES, stopping at the first step that fails, then two bisection steps) to
#     find each collector's highest lossless rate: the highest rate at which nothing was lost
#     AND the collector was done within DRAIN_SLACK s (or 10 % of the step) of the last
#     datagram. Without the second condition big buffers (nfacctd's 100 MB plugin pipe, the
#     socket buffer) would pass a step the collector only survived by falling behind.
#
# Per run: records sent; accounted = the sum of the table's PACKETS read back with the client
# (`xacct -s` / `pmacct -s`), each record or sample being one packet; loss; accounted records
# per second of sending; CPU seconds of the collector (utime+stime from /proc/<pid>/stat of
# the process and its child processes, taken once it is idle, before the table is queried)
# and records per CPU-second; datagrams the kernel dropped at the collector's socket
# (/proc/net/udp).
#
# Settings, the same for both where both have them: receive buffer nfacctd_pipe_size /
# sfacctd_pipe_size = net.core.rmem_max. nfacctd/sfacctd only: plugin_pipe_size 100000000 and
# plugin_buffer_size 1000000 (1:100, the large end of pmacct's advised ratio: with 1:1000 its
# core→plugin control channel overflowed and lost records under load, "Failed during write"),
# imt_mem_pools_number 1024 × imt_mem_pools_size 1048576 (room for the table: the default 16
# pools silently stop adding entries), imt_buckets 131071.
#
# nfacctd's core hands records to its plugin only in plugin_buffer_size chunks, so the last
# partial chunk of a run waits for more data. After each run both collectors are sent 30,000
# records of a marker flow (203.0.113.1 → 203.0.113.2), which push that chunk through; the
# marker's entries are left out of the sums. CPU seconds are read before the marker is sent
# (so they leave out nfacctd's work on that last partial chunk: in its favour, a few thousand
# records at most).
#
# Loss is counted in packets (sum of PACKETS); records accounted = records sent × packets
# accounted / packets sent (exact for our datagrams, where a record is one packet, and for any
# lossless run). accounted/s divides by the time from the first datagram sent to the collector
# falling idle.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
FLOWS=${FLOWS:-100000}
RATES=${RATES:-"25000 50000 100000 200000 400000 800000 1600000 3200000 4800000 6400000"}
STEP_SECONDS=${STEP_SECONDS:-4}
PROTOS=${PROTOS:-"v5 v9 ipfix sflow"}
SENDER_CORE=${SENDER_CORE:-0}
COLLECTOR_CORE=${COLLECTOR_CORE:-1}
AGG="src_host,dst_host,src_port,dst_port,proto"
MARKER=203.0.113.1
OUT=target/perf/collect
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cargo build --release -q -p xacct-perf -p xacctd -p xacct
BIN=$(pwd)/target/release
RCVBUF=$(sysctl -n net.core.rmem_max)
TCK=$(getconf CLK_TCK)
PORT=$((21000 + RANDOM % 20000))
REPORT="$OUT/report.txt"
: > "$REPORT"

say() { echo "$@" | tee -a "$REPORT"; }

for t in nfacctd sfacctd pmacct pmacctd softflowd softflowctl tcpdump taskset; do
  command -v "$t" >/dev/null || { echo "missing $t (cargo xtask setup installs it)"; exit 1; }
done

# A pid and its descendants.
tree() {
  echo "$1"
  local c
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done
}

# utime+stime ticks of a process tree (comm may hold spaces: read after the last ')').
cpu_ticks() {
  local t=0 p v
  for p in $(tree "$1"); do
    v=$(sed 's/.*) //' /proc/"$p"/stat 2>/dev/null | awk '{print $12 + $13}') || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

# Waits until the tree uses at most 1 tick per 200 ms (done with what it was sent); sets
# IDLE_AT to the time the quiet interval began.
wait_idle() {
  local a b ta
  a=$(cpu_ticks "$1")
  ta=$(date +%s.%N)
  for _ in $(seq 300); do
    sleep 0.2
    b=$(cpu_ticks "$1")
    if [ $((b - a)) -le 1 ]; then
      IDLE_AT=$ta
      return
    fi
    a=$b
    ta=$(date +%s.%N)
  done
  IDLE_AT=$ta
}

# Datagrams the kernel dropped at sockets bound to a port.
udp_drops() {
  awk -v p=":$(printf %04X "$1")" '$2 ~ p"$" {s += $NF} END {print s + 0}' /proc/net/udp /proc/net/udp6
}

# Sum of PACKETS in a memory table, marker flow left out. $1 client, $2 socket.
table_sum() {
  "$1" -p "$2" -s -O csv | awk -F, -v m="$MARKER" '
    NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "PACKETS") c = i; if ($i == "SRC_IP") s = i } }
    NR > 1 && $s != m { t += $c }
    END { print t + 0 }'
}

# Polls the table until it holds $3 packets or stops changing for a second.
settle() {
  local last=-1 same=0 v=0
  for _ in $(seq 200); do
    v=$(table_sum "$1" "$2")
    [ "$v" -ge "$3" ] && break
    if [ "$v" = "$last" ]; then
      same=$((same + 1))
      [ $same -ge 4 ] && break
    else
      same=0
    fi
    last=$v
    sleep 0.25
  done
  echo "$v"
}

# start_collector NAME PROTO: starts xacctd or the reference on its own port; sets PID, SOCK,
# CLIENT, CPORT.
start_collector() {
  local name=$1 proto=$2 key=nfacctd conf log
  [ "$proto" = sflow ] && key=sfacctd
  PORT=$((PORT + 1))
  CPORT=$PORT
  SOCK="$OUT/$name.$proto.pipe"
  conf="$OUT/$name.$proto.conf"
  log="$OUT/$name.$proto.log"
  rm -f "$SOCK"
  {
    printf 'daemonize: false\n%s_ip: 127.0.0.1\n%s_port: %s\n%s_pipe_size: %s\n' "$key" "$key" "$CPORT" "$key" "$RCVBUF"
    printf 'plugins: memory[m]\naggregate[m]: %s\nimt_path[m]: %s\n' "$AGG" "$SOCK"
    if [ "$name" != xacctd ]; then
      printf 'plugin_pipe_size: 100000000\nplugin_buffer_size: 1000000\n'
      printf 'imt_mem_pools_number: 1024\nimt_mem_pools_size: 1048576\nimt_buckets: 131071\n'
    fi
  } > "$conf"
  if [ "$name" = xacctd ]; then
    CLIENT=$BIN/xacct
    taskset -c "$COLLECTOR_CORE" "$BIN/xacctd" -f "$conf" 2> "$log" &
  else
    CLIENT=pmacct
    taskset -c "$COLLECTOR_CORE" "$key" -f "$conf" 2> "$log" &
  fi
  PID=$!
  for _ in $(seq 200); do
    [ -S "$SOCK" ] && grep -qE "listening:|waiting for" "$log" && break
    sleep 0.05
  done
  [ -S "$SOCK" ] || { echo "$name did not start:"; cat "$log"; exit 1; }
  sleep 0.3
}

stop_collector() {
  local pids
  pids=$(tree "$PID" | tac)
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  # nfacctd's core sometimes outlives its plugin after TERM.
  kill -KILL $pids 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
}

# run NAME PROTO SOURCE PCAP RATE RECORDS: one replay to the running collector; prints the
# report line and sets LOSSLESS (nothing lost, and the collector kept up: it was done within
# DRAIN_SLACK seconds, or 10 % of the sending time, after the last datagram; otherwise its
# buffers only hid that it was falling behind) and SENT_RATE (the rate the sender reached).
DRAIN_SLACK=${DRAIN_SLACK:-0.5}
run() {
  local name=$1 proto=$2 src=$3 pcap=$4 rate=$5 records=$6
  local before drops0 cpu0 line sent recs acc cpu drops secs t0 t1 drain
  before=$(table_sum "$CLIENT" "$SOCK")
  drops0=$(udp_drops "$CPORT")
  cpu0=$(cpu_ticks "$PID")
  t0=$(date +%s.%N)
  line=$("$BIN/xacct-replay" send "$pcap" --to "127.0.0.1:$CPORT" --rate "$rate" --records "$records" --core "$SENDER_CORE")
  t1=$(date +%s.%N)
  wait_idle "$PID"
  secs=$(awk -v a="$t0" -v b="$IDLE_AT" 'BEGIN { printf "%.3f", b - a }')
  drain=$(awk -v a="$t1" -v b="$IDLE_AT" 'BEGIN { d = b - a; printf "%.2f", (d > 0 ? d : 0) }')
  cpu=$(($(cpu_ticks "$PID") - cpu0))
  "$BIN/xacct-replay" send "$OUT/marker.$proto.pcap" --to "127.0.0.1:$CPORT" --rate 200000 --core "$SENDER_CORE" > /dev/null
  wait_idle "$PID"
  sent=$(sed 's/.* packets=\([0-9]*\).*/\1/' <<< "$line")
  recs=$(sed 's/.* records=\([0-9]*\).*/\1/' <<< "$line")
  SENT_RATE=$(sed 's/.* records_per_s=\([0-9]*\).*/\1/' <<< "$line")
  acc=$(($(settle "$CLIENT" "$SOCK" $((before + sent))) - before))
  drops=$(($(udp_drops "$CPORT") - drops0))
  LOSSLESS=$(awk -v a="$acc" -v s="$sent" -v d="$drain" -v slack="$DRAIN_SLACK" -v t0="$t0" -v t1="$t1" \
    'BEGIN { print (a >= s && (d <= slack || d <= 0.1 * (t1 - t0))) ? 1 : 0 }')
  awk -v n="$name" -v p="$proto" -v s="$src" -v r="$rate" -v sr="$SENT_RATE" -v sent="$sent" -v acc="$acc" -v cpu="$cpu" \
    -v tck="$TCK" -v secs="$secs" -v d="$drops" -v recs="$recs" -v drain="$drain" -v ok="$LOSSLESS" 'BEGIN {
      c = cpu / tck
      ar = (sent > 0 ? recs * acc / sent : 0)
      printf "%-8s %-6s %-5s %-8s sent %8d at %8d/s  accounted %8.0f  loss %6.2f%%  drained +%5.2fs  accounted/s %8.0f  cpu %6.2fs  records/cpu-s %8.0f  socket drops %6d%s\n",
        n, p, s, (r == 0 ? "flat-out" : r), recs, sr, ar, (sent - acc) * 100 / (sent ? sent : 1), drain, ar / (secs > 0 ? secs : 1), c, (c > 0 ? ar / c : 0), d,
        (r == 0 ? "" : (ok ? "  kept up" : "  LOST or fell behind"))
    }' | tee -a "$REPORT"
}

# Highest rate the running collector keeps up with losslessly: RATES until a step fails, then
# two bisection steps between the last good and the first bad rate.
sweep() {
  local name=$1 proto=$2 pcap=$3 good=0 bad=0 r n i
  step() {
    n=$(($1 * STEP_SECONDS))
    [ "$n" -lt 100000 ] && n=100000
    run "$name" "$proto" ours "$pcap" "$1" "$n"
  }
  for r in $RATES; do
    step "$r"
    # Credit only what the sender really reached.
    [ "$SENT_RATE" -lt "$r" ] && r=$SENT_RATE
    if [ "$LOSSLESS" = 1 ]; then good=$r; else bad=$r; break; fi
  done
  if [ "$bad" -gt 0 ] && [ "$good" -gt 0 ]; then
    for i in 1 2; do
      r=$(((good + bad) / 2))
      step "$r"
      [ "$SENT_RATE" -lt "$r" ] && r=$SENT_RATE
      if [ "$LOSSLESS" = 1 ]; then good=$r; else bad=$r; fi
    done
  fi
  if [ "$bad" = 0 ]; then
    say "$name $proto highest lossless rate: >= $good records/s (every step kept up: the sender's limit)"
  else
    say "$name $proto highest lossless rate: $good records/s (fails at $bad)"
  fi
  eval "LOSSLESS_${name}_${proto}=$good"
}

# Datagrams captured once from real exporters.
SRC_PCAP="$OUT/exporter_input.pcap"
[ -f "$SRC_PCAP" ] || "$BIN/xacct-gen" --kind mixed --packets 300000 --flows 30000 --seed 7 "$SRC_PCAP" > /dev/null

capture_real() {
  local proto=$1 out="$OUT/real.$1.pcap" port tpid spid
  [ -s "$out" ] && return
  PORT=$((PORT + 1))
  port=$PORT
  # A listener, so the exporter gets no ICMP port unreachable.
  "$BIN/xacct-replay" sink --port "$port" --seconds 600 > /dev/null &
  spid=$!
  tcpdump -i lo -U -B 65536 -w "$out.tmp" "udp dst port $port" 2> "$OUT/tcpdump.$proto.log" &
  tpid=$!
  for _ in $(seq 100); do grep -q "listening on" "$OUT/tcpdump.$proto.log" && break; sleep 0.05; done
  if [ "$proto" = sflow ]; then
    printf 'daemonize: false\npcap_savefile: %s\nplugin_pipe_size: 100000000\nplugins: sfprobe\nsfprobe_receiver: 127.0.0.1:%s\nsfprobe_agentip: 127.0.0.1\nsampling_rate: 1\n' \
      "$SRC_PCAP" "$port" > "$OUT/sfprobe.conf"
    timeout 120 pmacctd -f "$OUT/sfprobe.conf" > /dev/null 2> "$OUT/sfprobe.log" || true
  else
    local v=${proto#v} extra=()
    [ "$proto" = ipfix ] && v=10
    [ "$v" != 5 ] && extra=(-6)
    rm -f "$OUT/softflowd.ctl"
    softflowd -d -r "$SRC_PCAP" -n "127.0.0.1:$port" -v "$v" -m 65536 "${extra[@]}" \
      -p "$OUT/softflowd.pid" -c "$OUT/softflowd.ctl" > "$OUT/softflowd.$proto.out" 2>&1 &
    local fpid=$!
    # softflowd 1.1.0 reading a file waits on its control socket before and after the pass.
    for _ in $(seq 600); do
      kill -0 $fpid 2>/dev/null || break
      [ -S "$OUT/softflowd.ctl" ] && softflowctl -c "$OUT/softflowd.ctl" statistics > /dev/null 2>&1 || true
      sleep 0.1
    done
    wait $fpid || true
  fi
  sleep 1
  kill -INT $tpid
  wait $tpid || true
  kill $spid 2>/dev/null || true
  wait $spid 2>/dev/null || true
  grep -q "^0 packets dropped by kernel" "$OUT/tcpdump.$proto.log" || { echo "tcpdump dropped packets:"; cat "$OUT/tcpdump.$proto.log"; exit 1; }
  mv "$out.tmp" "$out"
}

say "collector capacity: $(date -u +%FT%TZ), $(nproc) cores, sender on core $SENDER_CORE, each collector alone on core $COLLECTOR_CORE; load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine makes every figure lower and noisier)"
say "aggregate $AGG; receive buffer $RCVBUF (net.core.rmem_max); $N records over $FLOWS flows per flat-out run"
say "nfacctd/sfacctd: $(nfacctd -V 2>&1 | head -1)"

for proto in $PROTOS; do
  ours="$OUT/ours.$proto.$N.$FLOWS.pcap"
  [ -s "$ours" ] || "$BIN/xacct-replay" make --proto "$proto" --records "$N" --flows "$FLOWS" "$ours" > /dev/null
  "$BIN/xacct-replay" make --proto "$proto" --records 30000 --flows 1 --seed 99 --marker "$OUT/marker.$proto.pcap" > /dev/null
  capture_real "$proto"
  say ""
  say "=== $proto: $("$BIN/xacct-replay" count "$ours") (ours); $("$BIN/xacct-replay" count "$OUT/real.$proto.pcap") (real exporter)"
  say "--- per core, no socket (decode + aggregate into the shard tables):"
  "$BIN/xacct-collect-capacity" "$ours" "$OUT/real.$proto.pcap" --core "$COLLECTOR_CORE" | tee -a "$REPORT"
  ref=nfacctd
  [ "$proto" = sflow ] && ref=sfacctd
  for name in xacctd $ref; do
    say "--- $name, end to end"
    start_collector "$name" "$proto"
    run "$name" "$proto" ours "$ours" 0 "$N"
    run "$name" "$proto" real "$OUT/real.$proto.pcap" 0 "$N"
    sweep "$name" "$proto" "$ours"
    stop_collector
  done
  x=$(eval echo "\${LOSSLESS_xacctd_$proto}")
  r=$(eval echo "\${LOSSLESS_${ref}_$proto}")
  say "$proto: highest lossless rate xacctd $x vs $ref $r records/s → $(awk -v a="$x" -v b="$r" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }')x"
done
say ""
say "report: $REPORT"
