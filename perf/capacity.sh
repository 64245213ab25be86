#!/usr/bin/env bash
# Capacity of the packet pipeline, xacct beside pmacctd on the same pcap in the same run.
#
#   perf/capacity.sh [PACKETS]        (default 2,000,000 per input)
#
# For each input (64-byte TCP frames; a realistic mix) and the 5-tuple aggregate:
#  - xacct-capacity feeds the pcap, held in memory, through real workers with 1 and 2 workers
#    and prints packets/s per core (per worker-thread busy time), batch latency percentiles
#    (hdrhistogram) and memory per table entry;
#  - xacctd reads the same file end to end (libpcap → workers → memory table) and is timed;
#  - pmacctd reads the same file with a memory plugin and the same aggregate; its CPU time
#    (user+sys of the core and plugin processes) gives packets/s per CPU-second. pmacctd sleeps
#    2 s before reading a savefile; that sleep costs no CPU, so the CPU figure is unaffected.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000000}
AGG="src_host,dst_host,src_port,dst_port,proto"
OUT=target/perf
mkdir -p "$OUT"
cargo build --release -q -p xacct-perf -p xacctd -p xacct
BIN=target/release

cpu_of() { # runs "$@", prints user+sys seconds of it and its children
  /usr/bin/time -f "%U %S %e" -o "$OUT/time.txt" "$@" >/dev/null 2>&1 || true
  awk '{printf "%.3f %.3f\n", $1+$2, $3}' "$OUT/time.txt"
}

for kind in small64 mixed; do
  pcap="$OUT/$kind.pcap"
  [ -f "$pcap" ] && [ "$(stat -c %s "$pcap")" -gt 1000 ] || "$BIN/xacct-gen" --kind "$kind" --packets "$N" --flows 100000 "$pcap"
  echo "=== $kind: $N packets, aggregate $AGG"
  "$BIN/xacct-capacity" "$pcap" --aggregate "$AGG" --workers 1,2 --passes 3

  conf="$OUT/xa_$kind.conf"
  printf 'daemonize: false\npcap_savefile: %s\nplugins: print[p]\naggregate[p]: %s\nprint_output[p]: csv\nprint_output_file[p]: %s\nprint_refresh_time[p]: 3600\n' \
    "$pcap" "$AGG" "$OUT/xa_$kind.csv" > "$conf"
  read -r xcpu xwall < <(cpu_of "$BIN/xacctd" -f "$conf")
  echo "xacctd end to end (pcap file → workers → print): cpu ${xcpu}s wall ${xwall}s → $(awk -v n="$N" -v c="$xcpu" 'BEGIN{printf "%.0f", n/c}') packets per CPU-second"

  if command -v pmacctd >/dev/null; then
    pconf="$OUT/pm_$kind.conf"
    printf 'daemonize: false\npcap_savefile: %s\nplugins: print[p]\naggregate[p]: %s\nprint_output[p]: csv\nprint_output_file[p]: %s\nprint_refresh_time[p]: 3600\n' \
      "$pcap" "$AGG" "$OUT/pm_$kind.csv" > "$pconf"
    read -r pcpu pwall < <(cpu_of pmacctd -f "$pconf")
    echo "pmacctd end to end (same file, same aggregate, print): cpu ${pcpu}s wall ${pwall}s → $(awk -v n="$N" -v c="$pcpu" 'BEGIN{printf "%.0f", n/c}') packets per CPU-second"
    echo "ratio xacctd/pmacctd packets per CPU-second: $(awk -v a="$pcpu" -v b="$xcpu" 'BEGIN{printf "%.1f", a/b}')x"
  else
    echo "pmacctd not installed: no side-by-side figure"
  fi
done

echo "=== memory table query: xacct -s -O csv over 1,000,000 entries"
pcap="$OUT/flows1m.pcap"
[ -f "$pcap" ] || "$BIN/xacct-gen" --kind small64 --packets 1000000 --flows 0 "$pcap" >/dev/null  # every packet its own entry
sock="$OUT/q.pipe"
printf 'pcap_savefile: %s\npcap_savefile_wait: true\nplugins: memory[q]\naggregate[q]: %s\nimt_path[q]: %s\n' "$pcap" "$AGG" "$sock" > "$OUT/q.conf"
"$BIN/xacctd" -f "$OUT/q.conf" 2> "$OUT/q.log" &
qpid=$!
for _ in $(seq 600); do grep -q "finished reading" "$OUT/q.log" && break; sleep 0.1; done
"$BIN/xacct" -p "$sock" -s -O csv > "$OUT/q.csv"   # warm: first query also harvests the shards
for i in 1 2 3; do
  /usr/bin/time -f "%e s wall, %M KiB max RSS (client)" "$BIN/xacct" -p "$sock" -s -O csv > "$OUT/q.csv"
done 2>&1
echo "rows: $(($(wc -l < "$OUT/q.csv") - 1))"
echo "daemon RSS with the table: $(awk '/VmRSS/{print $2, $3}' /proc/$qpid/status)"
kill -TERM $qpid; wait $qpid || true
