#!/usr/bin/env bash
# SQL write capacity: rows/s into PostgreSQL, MariaDB and SQLite, xacctd beside Debian's
# pmacctd (its pgsql, mysql and sqlite3 plugins) on the same input, in the same run.
#
#   perf/sql_capacity.sh [ROWS]        (default 50,000 distinct 5-tuples)
#
# Input: a pcap of 64-byte TCP frames over ROWS distinct 5-tuples (two packets each on
# average); aggregate src_host,dst_host,src_port,dst_port,proto, so one refresh writes about
# ROWS rows. Both daemons read the file, hold everything until the end of the file (refresh
# 3600 s) and write once, into a v9 table created from sql/<backend>/acct_v9.sql.
#
# Modes: insert (sql_dont_try_update), update-then-insert into an empty table (every UPDATE
# misses, then INSERT), update (the same file again into the filled table: every row UPDATEd),
# multi-values (INSERT only, sql_multi_values 1 MiB: MySQL, SQLite) and copy (INSERT only,
# sql_use_copy: PostgreSQL).
#
# rows/s = rows written / (wall time of the run - wall time of the same daemon on the same file
# with a memory plugin only). The baseline takes out reading the file and pmacctd's fixed 2 s
# savefile sleep, leaving the time the SQL plugin needs to write.
#
# Needs the local servers of this machine kind (PostgreSQL 127.0.0.1:5432 trust, MariaDB
# 127.0.0.1:3306 root without password; databases "test"). pmacct cannot send an empty
# password, so a MariaDB user xacct_perf/xacct_perf is created for both daemons.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-50000}
AGG="src_host,dst_host,src_port,dst_port,proto"
OUT=target/perf-sql
rm -rf "$OUT"
mkdir -p "$OUT"
cargo build --release -q -p xacct-perf -p xacctd
BIN=target/release
PCAP="$OUT/rows.pcap"
"$BIN/xacct-gen" --kind small64 --packets $((ROWS * 2)) --flows "$ROWS" --seed 7 "$PCAP" >/dev/null

mysql -h 127.0.0.1 -u root test -e "CREATE USER IF NOT EXISTS 'xacct_perf'@'%' IDENTIFIED BY 'xacct_perf'; GRANT ALL ON test.* TO 'xacct_perf'@'%';"

sqlexec() { # backend sql
  case $1 in
    pgsql) psql -q -h 127.0.0.1 -U postgres -d test -v ON_ERROR_STOP=1 -c "$2" >/dev/null ;;
    mysql) mysql -h 127.0.0.1 -u root test -e "$2" ;;
    sqlite3) sqlite3 "$OUT/perf.db" "$2" ;;
  esac
}
sqlval() { # backend sql → one value
  case $1 in
    pgsql) psql -h 127.0.0.1 -U postgres -d test -tAc "$2" ;;
    mysql) mysql -h 127.0.0.1 -u root test -N -e "$2" ;;
    sqlite3) sqlite3 "$OUT/perf.db" "$2" ;;
  esac
}
create() { # backend table
  sqlexec "$1" "DROP TABLE IF EXISTS $2"
  sed "s/CREATE TABLE acct_v9 (/CREATE TABLE $2 (/" "sql/$1/acct_v9.sql" | grep -v '^--' > "$OUT/create.sql"
  case $1 in
    pgsql) psql -q -h 127.0.0.1 -U postgres -d test -v ON_ERROR_STOP=1 -f "$OUT/create.sql" >/dev/null ;;
    mysql) mysql -h 127.0.0.1 -u root test < "$OUT/create.sql" ;;
    sqlite3) sqlite3 "$OUT/perf.db" < "$OUT/create.sql" ;;
  esac
}
conn() { # backend → connection keys
  case $1 in
    pgsql) printf 'sql_host: 127.0.0.1\nsql_user: postgres\nsql_db: test\n' ;;
    mysql) printf 'sql_host: 127.0.0.1\nsql_user: xacct_perf\nsql_passwd: xacct_perf\nsql_db: test\n' ;;
    sqlite3) printf 'sql_db: %s\n' "$OUT/perf.db" ;;
  esac
}
wall() { # runs "$@" with output to $OUT/run.log, prints wall seconds
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > "$OUT/run.log" 2>&1 || echo "(exit $?)" >> "$OUT/run.log"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}'
}
daemon() { # xacctd|pmacctd conf
  case $1 in
    xacctd) wall "$BIN/xacctd" -f "$2" ;;
    pmacctd) wall pmacctd -f "$2" ;;
  esac
}

declare -A BASE
for d in xacctd pmacctd; do
  command -v "$d" >/dev/null || [ "$d" = xacctd ] || continue
  printf 'daemonize: false\npcap_savefile: %s\nplugins: memory[m]\naggregate: %s\nimt_path: %s\n' \
    "$PCAP" "$AGG" "$OUT/base_$d.pipe" > "$OUT/base_$d.conf"
  BASE[$d]=$(daemon "$d" "$OUT/base_$d.conf")
  echo "baseline $d (read the file, memory plugin only): ${BASE[$d]} s"
done

printf '\n%-8s %-9s %-20s %8s %8s %10s\n' backend daemon mode rows "sql s" "rows/s"
for b in pgsql mysql sqlite3; do
  modes="insert update-then-insert update"
  case $b in pgsql) modes="$modes copy" ;; *) modes="$modes multi-values" ;; esac
  for d in xacctd pmacctd; do
    [ "$d" = xacctd ] || command -v "$d" >/dev/null || continue
    t="perf_${d}_$$"
    for m in $modes; do
      case $m in
        insert) extra='sql_dont_try_update: true' ;;
        update-then-insert | update) extra='' ;;
        multi-values) extra=$'sql_dont_try_update: true\nsql_multi_values: 1048576' ;;
        copy) extra=$'sql_dont_try_update: true\nsql_use_copy: true' ;;
      esac
      # "update" writes into the table the update-then-insert run filled.
      [ "$m" = update ] || create "$b" "$t"
      before=$(sqlval "$b" "SELECT COALESCE(SUM(packets),0) FROM $t")
      rm -rf "$OUT/spool"
      printf 'daemonize: false\npcap_savefile: %s\nplugins: %s[s]\naggregate: %s\nsql_table: %s\nsql_table_version: 9\nsql_refresh_time: 3600\nsql_spool_dir: %s\n%s\n%s\n' \
        "$PCAP" "$b" "$AGG" "$t" "$OUT/spool" "$(conn "$b")" "$extra" > "$OUT/run.conf"
      # pmacctd knows no sql_spool_dir.
      [ "$d" = pmacctd ] && sed -i '/^sql_spool_dir/d' "$OUT/run.conf"
      secs=$(daemon "$d" "$OUT/run.conf")
      cp "$OUT/run.log" "$OUT/run-$b-$d-$m.log"
      rows=$(sqlval "$b" "SELECT COUNT(*) FROM $t")
      after=$(sqlval "$b" "SELECT COALESCE(SUM(packets),0) FROM $t")
      sqlsecs=$(awk -v a="$secs" -v b="${BASE[$d]}" 'BEGIN{s=a-b; if (s < 0.001) s=0.001; printf "%.3f", s}')
      if [ "$after" -le "$before" ]; then
        printf '%-8s %-9s %-20s %8s %8s %10s   (%s)\n' "$b" "$d" "$m" "-" "-" "failed" "$(grep -E '^ERROR|ERROR \(| ERROR ' "$OUT/run.log" | head -1 | cut -c1-120); log $OUT/run-$b-$d-$m.log"
        continue
      fi
      printf '%-8s %-9s %-20s %8s %8s %10.0f\n' "$b" "$d" "$m" "$rows" "$sqlsecs" "$(awk -v r="$rows" -v s="$sqlsecs" 'BEGIN{print r/s}')"
    done
    sqlexec "$b" "DROP TABLE IF EXISTS $t"
  done
done
# One spool per target under sql_spool_dir (userspace/sql/src/targets.rs).
sqlexec pgsql "DELETE FROM xacct_batches WHERE spool LIKE '%$OUT/spool/%'" || true
