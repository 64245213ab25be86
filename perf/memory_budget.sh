#!/usr/bin/env bash
# Memory under floods of new keys: xacctd's peak RSS and memory per entry for pcaps of 1M, 5M
# and 20M distinct five-tuples (small64, one flow per packet), with a 256 MiB budget and with
# none, beside pmacctd 1.7.7 with its memory plugin's default pools on the same file.
#
#   perf/memory_budget.sh [KEYS...]        (default 1000000 5000000 20000000)
#
# Each run reads the file with one print plugin (five-tuple, written once at the end) and is
# measured by /usr/bin/time (maximum resident set size). The baseline is a 10,000-key file; the
# memory per entry is (peak - baseline) / keys. Totals: the print output's packets must equal
# the file's, overflow row included (checked here, and in tests/budget.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=("${@:-1000000 5000000 20000000}")
[ $# -gt 0 ] || KEYS=(1000000 5000000 20000000)
AGG="src_host,dst_host,src_port,dst_port,proto"
OUT=target/perf/budget
mkdir -p "$OUT"
cargo build --release -q -p xacct-perf -p xacctd
BIN=target/release

peak_kib() { # runs "$@", prints its maximum RSS in KiB
  /usr/bin/time -f "%M" -o "$OUT/time.txt" "$@" >/dev/null 2>"$OUT/stderr.txt" || { cat "$OUT/stderr.txt" >&2; exit 1; }
  cat "$OUT/time.txt"
}

run() { # pcap budget-line tag → peak KiB; checks the totals
  local pcap=$1 budget=$2 tag=$3
  printf 'daemonize: false\npcap_savefile: %s\nworkers: 1\nplugins: print[p]\naggregate[p]: %s\n%s\nprint_output[p]: csv\nprint_output_file[p]: %s\nprint_refresh_time[p]: 3600\n' \
    "$pcap" "$AGG" "$budget" "$OUT/$tag.csv" > "$OUT/$tag.conf"
  local kib
  kib=$(peak_kib "$BIN/xacctd" -f "$OUT/$tag.conf")
  local pk
  pk=$(awk -F, 'NR>1{s+=$6} END{print s}' "$OUT/$tag.csv")
  [ "$pk" = "$4" ] || { echo "$tag: $pk packets in the output, $4 in the file" >&2; exit 1; }
  echo "$kib"
}

base_pcap="$OUT/keys10000.pcap"
[ -f "$base_pcap" ] || "$BIN/xacct-gen" --kind small64 --packets 10000 --flows 0 "$base_pcap" >/dev/null
base=$(run "$base_pcap" "max_entries[p]: 1000000000" base 10000)
echo "baseline (10,000 keys): peak RSS $((base / 1024)) MiB"
printf '%10s  %-22s  %14s  %16s  %12s\n' keys budget "peak RSS MiB" "bytes per key" overflow
for n in "${KEYS[@]}"; do
  pcap="$OUT/keys$n.pcap"
  [ -f "$pcap" ] || "$BIN/xacct-gen" --kind small64 --packets "$n" --flows 0 "$pcap" >/dev/null
  for b in "max_entries[p]: 1000000000|none" "memory_budget[p]: 256M|memory_budget 256M"; do
    line=${b%%|*}; name=${b##*|}
    kib=$(run "$pcap" "$line" "k$n" "$n")
    over=$(grep -c '^overflow,' "$OUT/k$n.csv" || true)
    printf '%10s  %-22s  %14s  %16s  %12s\n' "$n" "$name" "$((kib / 1024))" \
      "$(awk -v k="$kib" -v b="$base" -v n="$n" 'BEGIN{printf "%.0f", (k-b)*1024/n}')" \
      "$( [ "$over" -gt 0 ] && awk -F, '/^overflow,/{print $6" pkts"}' "$OUT/k$n.csv" || echo none)"
  done
  if command -v pmacctd >/dev/null; then
    printf 'daemonize: false\npcap_savefile: %s\nplugins: memory\naggregate: %s\nimt_path: %s\n' "$pcap" "$AGG" "$OUT/pm.pipe" > "$OUT/pm.conf"
    # pmacctd keeps reading after the file ends only with savefile_wait; without it the memory
    # plugin exits with the core, after its peak.
    kib=$(/usr/bin/time -f "%M" -o "$OUT/time.txt" timeout 600 pmacctd -f "$OUT/pm.conf" >/dev/null 2>&1; cat "$OUT/time.txt")
    printf '%10s  %-22s  %14s  %16s  %12s\n' "$n" "pmacctd 1.7.7 memory" "$((kib / 1024))" "-" "(no counter)"
  fi
done
