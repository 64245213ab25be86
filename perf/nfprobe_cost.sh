#!/usr/bin/env bash
# CPU per packet as a NetFlow v9 probe over the same pcap, in one run: xacctd (nfprobe
# plugin), pmacctd 1.7.7 (nfprobe plugin) and softflowd, each exporting to a UDP sink on
# loopback.
#
#   perf/nfprobe_cost.sh [PACKETS] [FLOWS]     (defaults 2,000,000 packets, 100,000 flows)
#   REPS=N perf/nfprobe_cost.sh …               (each figure the least of N runs, default 3)
#
# The cost is the marginal one: (CPU of the full file - CPU of a file of PACKETS/20 packets of
# the same generator) / (difference in packets), so start-up and pmacctd's and softflowd's
# fixed costs do not count. CPU is user+sys of the process and its children (pmacctd's
# plugin processes), from /usr/bin/time. The aggregate is pmacct's nfprobe default
# (src_host,dst_host,src_port,dst_port,proto,tos).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000000}
FLOWS=${2:-100000}
REPS=${REPS:-3}
SMALL=$((N / 20))
OUT=target/perf/nfprobe
mkdir -p "$OUT"
cargo build --release -q -p xacct-perf -p xacctd
BIN=target/release

for n in "$SMALL" "$N"; do
  [ -f "$OUT/mixed_$n.pcap" ] || "$BIN/xacct-gen" --kind mixed --packets "$n" --flows "$FLOWS" "$OUT/mixed_$n.pcap" >/dev/null
done

PORT=$((20000 + RANDOM % 10000))
socat -u "UDP-RECV:$PORT,bind=127.0.0.1,rcvbuf=8388608" /dev/null &
SINK=$!
trap 'kill $SINK 2>/dev/null || true' EXIT

cpu() { # runs "$@" REPS times; the least user+sys seconds
  local best=""
  for _ in $(seq 1 "$REPS"); do
    /usr/bin/time -f "%U %S" -o "$OUT/time.txt" "$@" >/dev/null 2>&1 || true
    local v
    v=$(awk '{printf "%.4f", $1+$2}' "$OUT/time.txt")
    if [ -z "$best" ] || awk -v a="$v" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=$v; fi
  done
  echo "$best"
}

conf() { # daemon pcap
  printf 'daemonize: false\npcap_savefile: %s\nplugins: nfprobe[n]\nnfprobe_receiver[n]: 127.0.0.1:%s\nnfprobe_version[n]: 9\naggregate[n]: src_host,dst_host,src_port,dst_port,proto,tos\n' \
    "$2" "$PORT" > "$OUT/$1.conf"
  echo "$OUT/$1.conf"
}

marginal() { # small-cpu big-cpu → ns per packet
  awk -v s="$1" -v b="$2" -v n="$N" -v m="$SMALL" 'BEGIN{printf "%.0f", (b-s)*1e9/(n-m)}'
}

declare -A NS
x_s=$(cpu "$BIN/xacctd" -f "$(conf xs "$OUT/mixed_$SMALL.pcap")")
x_b=$(cpu "$BIN/xacctd" -f "$(conf xb "$OUT/mixed_$N.pcap")")
NS[xacctd]=$(marginal "$x_s" "$x_b")
if command -v pmacctd >/dev/null; then
  p_s=$(cpu pmacctd -f "$(conf ps "$OUT/mixed_$SMALL.pcap")")
  p_b=$(cpu pmacctd -f "$(conf pb "$OUT/mixed_$N.pcap")")
  NS[pmacctd]=$(marginal "$p_s" "$p_b")
fi
if command -v softflowd >/dev/null; then
  s_s=$(cpu softflowd -r "$OUT/mixed_$SMALL.pcap" -n "127.0.0.1:$PORT" -v 9 -d)
  s_b=$(cpu softflowd -r "$OUT/mixed_$N.pcap" -n "127.0.0.1:$PORT" -v 9 -d)
  NS[softflowd]=$(marginal "$s_s" "$s_b")
fi
echo "packets: $N (marginal over $SMALL)   flows: $FLOWS   load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %12s %12s\n' probe "ns/packet" "vs xacctd"
for d in xacctd pmacctd softflowd; do
  [ -n "${NS[$d]:-}" ] || continue
  printf '%-10s %12s %12s\n' "$d" "${NS[$d]}" "$(awk -v a="${NS[$d]}" -v b="${NS[xacctd]}" 'BEGIN{printf "%.1fx", a/b}')"
done
