#!/usr/bin/env bash
# CPU per packet of pre_tag_map, xacctd beside pmacctd on the same pcap with the same map, in
# one run.
#
#   perf/tag_cost.sh [PACKETS] [RULES]      (defaults 1,000,000 packets, 100 rules)
#   REPS=N perf/tag_cost.sh …                (each figure the least of N runs, default 3)
#
# The map has RULES rules `id=<i> filter='src net 10.0.<i>.0/24'` (the shape pmacctd 1.7.7
# applies on packets: it ignores most other keys there) and a catch-all `id=9999`; the
# aggregate is `tag,src_host` in a print plugin. Each daemon reads the file without a map and
# with it; user+sys CPU seconds of the whole run (children included) divided by packets gives
# ns per packet, and the map's cost is the difference. Both daemons read a file, so capture
# cost is the same for both runs of a daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
RULES=${2:-100}
OUT=target/perf
mkdir -p "$OUT"
cargo build --release -q -p xacct-perf -p xacctd
BIN=target/release

pcap="$OUT/tag_mixed_$N.pcap"
[ -f "$pcap" ] || "$BIN/xacct-gen" --kind mixed --packets "$N" --flows 100000 "$pcap" >/dev/null
map="$OUT/tag_$RULES.map"
: > "$map"
for i in $(seq 1 "$RULES"); do
  printf "id=%d filter='src net 10.0.%d.0/24'\n" "$i" $(( i % 256 )) >> "$map"
done
echo "id=9999" >> "$map"

REPS=${REPS:-3}
ns_per_packet() { # runs "$@" REPS times, prints the least user+sys ns per packet (the run
  # least disturbed by whatever else the machine does)
  local best=""
  for _ in $(seq 1 "$REPS"); do
    /usr/bin/time -f "%U %S" -o "$OUT/time.txt" "$@" >/dev/null 2>&1 || true
    local v
    v=$(awk -v n="$N" '{printf "%.0f", ($1+$2)*1e9/n}' "$OUT/time.txt")
    if [ -z "$best" ] || [ "$v" -lt "$best" ]; then best=$v; fi
  done
  echo "$best"
}

conf() { # daemon-name map-line
  printf 'daemonize: false\npcap_savefile: %s\n%splugins: print[p]\naggregate[p]: tag,src_host\nprint_output[p]: csv\nprint_output_file[p]: %s\nprint_refresh_time[p]: 3600\n' \
    "$pcap" "$2" "$OUT/tag_$1.csv" > "$OUT/tag_$1.conf"
  echo "$OUT/tag_$1.conf"
}

x0=$(ns_per_packet "$BIN/xacctd" -f "$(conf xa0 '')")
x1=$(ns_per_packet "$BIN/xacctd" -f "$(conf xa1 "pre_tag_map: $map
")")
echo "packets: $N   map: $RULES filter rules + catch-all   load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %14s %14s %10s\n' daemon "no map ns/pkt" "map ns/pkt" ratio
printf '%-8s %14s %14s %10s\n' xacctd "$x0" "$x1" "$(awk -v a="$x1" -v b="$x0" 'BEGIN{printf "%.2f", a/b}')"
if command -v pmacctd >/dev/null; then
  p0=$(ns_per_packet pmacctd -f "$(conf pm0 '')")
  p1=$(ns_per_packet pmacctd -f "$(conf pm1 "pre_tag_map: $map
")")
  printf '%-8s %14s %14s %10s\n' pmacctd "$p0" "$p1" "$(awk -v a="$p1" -v b="$p0" 'BEGIN{printf "%.2f", a/b}')"
  # Same tags on both sides (row order differs).
  if diff <(sort "$OUT/tag_xa1.csv") <(sort "$OUT/tag_pm1.csv") >/dev/null; then
    echo "tables: identical"
  else
    echo "tables: DIFFER ($OUT/tag_xa1.csv vs $OUT/tag_pm1.csv)"
  fi
else
  echo "pmacctd not installed: no side-by-side figure"
fi
