//! The SQL plugins' features against the real servers: history bins with roundoff and epoch
//! stamps, dynamic table names, INSERT-only / COPY / multi-values / UPDATE-then-INSERT, the
//! refusal of a table name that could carry SQL, `xacct -t`'s counters, and the seed's own
//! configuration with its SELECT.

mod sqlsupport;
mod support;

use sqlsupport::{memory_rows, sql_as_csv, sum, Cleanup, Db, Kind};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{client, counter, query_csv, savefile_conf, spec, table, xacct_bin, Daemon};
use xacct_core::history::History;
use xacct_perf::traffic::{build, Frame, L3, L4};

fn udp(ts: i64, src: [u8; 4], dst: [u8; 4], vlan: Option<u16>, payload: usize) -> Frame {
    let s = spec(vlan.into_iter().collect(), L3::V4 { src, dst, tos: 0 }, L4::Udp { sport: 1000, dport: 53 }, payload);
    Frame { ts_sec: ts, ts_usec: 0, data: build(&s) }
}

/// The IP length of `udp(…, payload)`.
fn ip_len(payload: usize) -> u64 {
    20 + 8 + payload as u64
}

fn utc(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0).expect("time").format("%Y-%m-%d %H:%M:%S").to_string()
}

const T0: i64 = 1_700_000_000;

/// 60 packets of 128 bytes, one every 20 s, from three hosts in turn.
fn history_frames() -> Vec<Frame> {
    (0..60).map(|k| udp(T0 + k * 20, [10, 0, 0, 1 + (k % 3) as u8], [10, 9, 9, 9], None, 100)).collect()
}

/// (host, bin) → packets, as `h` bins the frames.
fn expected_bins(h: &History, frames: &[Frame]) -> BTreeMap<(String, i64), u64> {
    let mut m = BTreeMap::new();
    for (k, f) in frames.iter().enumerate() {
        *m.entry((format!("10.0.0.{}", 1 + k % 3), h.bin_start(f.ts_sec))).or_insert(0) += 1;
    }
    m
}

fn history(db: &Db, dir: &Path) {
    let mut clean = Cleanup::new(db);
    let pcap = dir.join("h.pcap");
    let frames = history_frames();
    xacct_perf::traffic::write_pcap(&pcap, &frames).expect("pcap");
    let (th, te, to) = (clean.table("hist"), clean.table("epoch"), clean.table("offset"));
    let mut body = format!("plugins: {p}[h], {p}[e], {p}[o]\naggregate: src_host\nsql_table_version: 9\nsql_table_autocreate: true\nsql_history: 5m\nsql_history_roundoff: m\nsql_refresh_time: 3600\nsql_table[h]: {th}\nsql_table[e]: {te}\nsql_history_since_epoch[e]: true\nsql_table[o]: {to}\nsql_history_offset[o]: 120\n", p = db.plugin());
    for p in ["h", "e", "o"] {
        let spool = dir.join(format!("spool_{p}"));
        clean.markers(&spool);
        body.push_str(&format!("sql_spool_dir[{p}]: {}\n{}", spool.display(), db.conf(p)));
    }
    let conf = dir.join("h.conf");
    savefile_conf(&conf, &pcap, &format!("daemonize: false\n{body}"));
    let log = Daemon::start(&conf, &dir.join("h.log")).wait_exit(Duration::from_secs(60));
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
    let five = History::parse("5m", Some("m")).expect("history");
    let want = expected_bins(&five, &frames);
    // 20 minutes from 22:13:20: bins 22:10, 22:15, 22:20, 22:25, 22:30; with the offset of
    // 2 minutes 22:12, 22:17, … 22:32.
    let bins = |w: &BTreeMap<(String, i64), u64>| w.keys().map(|(_, b)| *b).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(bins(&want).len(), 5);
    let want_offset = expected_bins(&five.with_offset("120").expect("offset"), &frames);
    assert_eq!(bins(&want_offset).iter().map(|b| b - 120).collect::<std::collections::BTreeSet<_>>(), bins(&want));
    for (t, epoch, want) in [(&th, false, &want), (&te, true, &want), (&to, false, &want_offset)] {
        let rows = db.rows(&format!("SELECT ip_src, stamp_inserted, packets, bytes, stamp_updated FROM {t}"));
        let mut got = BTreeMap::new();
        for r in &rows {
            let bin = if epoch {
                r[1].parse::<i64>().unwrap_or_else(|_| panic!("epoch stamp {r:?}"))
            } else {
                let d = chrono::NaiveDateTime::parse_from_str(&r[1], "%Y-%m-%d %H:%M:%S")
                    .unwrap_or_else(|e| panic!("stamp {r:?}: {e}"));
                d.and_utc().timestamp()
            };
            assert_eq!(r[3].parse::<u64>().ok(), r[2].parse::<u64>().ok().map(|p| p * ip_len(100)), "{r:?}");
            assert_ne!(r[4], "NULL", "stamp_updated is set: {r:?}");
            if epoch {
                assert!(r[4].parse::<i64>().is_ok_and(|u| u > T0), "{r:?}");
            }
            got.insert((r[0].clone(), bin), r[2].parse::<u64>().expect("packets"));
        }
        assert_eq!(&got, want, "{t} (epoch stamps: {epoch})");
    }
    // The datetime form is UTC text.
    let first = want.keys().next().expect("a bin");
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM {th} WHERE stamp_inserted = '{}'", utc(first.1))),
        want.keys().filter(|k| k.1 == first.1).count() as u64
    );
}

#[test]
fn history_bins_roundoff_and_epoch_stamps_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    history(&Db::sqlite(&dir.path().join("h.db")), dir.path());
}

#[test]
fn history_bins_roundoff_and_epoch_stamps_pgsql() {
    let Some(db) = Db::pg() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    history(&db, dir.path());
}

#[test]
fn history_bins_roundoff_and_epoch_stamps_mysql() {
    let Some(db) = Db::mysql() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    history(&db, dir.path());
}

fn dynamic(db: &Db, dir: &Path) {
    let mut clean = Cleanup::new(db);
    let pcap = dir.join("d.pcap");
    let frames = history_frames();
    xacct_perf::traffic::write_pcap(&pcap, &frames).expect("pcap");
    let prefix = clean.table("dyn");
    let h = History::parse("10m", None).expect("history");
    let mut per_table: BTreeMap<String, u64> = BTreeMap::new();
    for f in &frames {
        let b = h.bin_start(f.ts_sec);
        let name = format!("{prefix}_{}", chrono::DateTime::from_timestamp(b, 0).expect("t").format("%Y%m%d_%H%M"));
        *per_table.entry(name).or_insert(0) += 1;
    }
    for t in per_table.keys() {
        clean.adopt(t);
    }
    let tagged = format!("{prefix}_t0");
    clean.adopt(&tagged);
    let (sd, st) = (dir.join("spool_d"), dir.join("spool_t"));
    clean.markers(&sd);
    clean.markers(&st);
    let body = format!(
        "plugins: {p}[d], {p}[t]\nsql_table_version: 9\nsql_table_autocreate: true\nsql_refresh_time: 3600\n\
aggregate[d]: src_host\nsql_history[d]: 10m\nsql_table[d]: {prefix}_%Y%m%d_%H%M\nsql_spool_dir[d]: {}\n{}\
aggregate[t]: tag,src_host\nsql_table[t]: {prefix}_t$tag\nsql_spool_dir[t]: {}\n{}",
        sd.display(),
        db.conf("d"),
        st.display(),
        db.conf("t"),
        p = db.plugin()
    );
    let conf = dir.join("d.conf");
    savefile_conf(&conf, &pcap, &format!("daemonize: false\n{body}"));
    let log = Daemon::start(&conf, &dir.join("d.log")).wait_exit(Duration::from_secs(60));
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
    assert_eq!(per_table.len(), 3, "20 minutes from 22:13:20 make three 10-minute tables");
    for (t, packets) in &per_table {
        assert!(db.table_exists(t), "{t} was not created:\n{log}");
        assert_eq!(sum(db, t, "packets"), *packets, "{t}");
    }
    // Untagged traffic ($tag = 0) goes to one table.
    assert_eq!(sum(db, &tagged, "packets"), frames.len() as u64);
}

#[test]
fn dynamic_table_names_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    dynamic(&Db::sqlite(&dir.path().join("d.db")), dir.path());
}

#[test]
fn dynamic_table_names_pgsql() {
    let Some(db) = Db::pg() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    dynamic(&db, dir.path());
}

#[test]
fn dynamic_table_names_mysql() {
    let Some(db) = Db::mysql() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    dynamic(&db, dir.path());
}

const MODE_AGG: &str = "src_mac,dst_mac,vlan,src_host,dst_host,src_port,dst_port,proto,tos";

/// One run over `pcap` with a memory plugin and an SQL plugin writing `t` with `mode` lines;
/// returns the memory table's CSV.
fn run_mode(db: &Db, dir: &Path, pcap: &Path, t: &str, mode: &str, run: usize) -> String {
    let spool = dir.join("spool");
    let body = format!(
        "daemonize: false\npcap_savefile_wait: true\nplugins: memory[m], {p}[s]\naggregate: {MODE_AGG}\nimt_path[m]: {}\n\
sql_table[s]: {t}\nsql_table_version[s]: 9\nsql_table_autocreate[s]: true\nsql_refresh_time[s]: 3600\nsql_history[s]: 1h\nsql_spool_dir[s]: {}\n{}{mode}\n",
        dir.join("m.pipe").display(),
        spool.display(),
        db.conf("s"),
        p = db.plugin()
    );
    let conf = dir.join(format!("m{run}.conf"));
    savefile_conf(&conf, pcap, &body);
    let mut d = Daemon::start(&conf, &dir.join(format!("m{run}.log")));
    d.wait_log("finished reading", Duration::from_secs(60));
    let csv = query_csv(&dir.join("m.pipe"));
    let log = d.terminate();
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{mode}: {log}");
    csv
}

fn modes(db: &Db, dir: &Path, list: &[&str]) {
    let pcap = dir.join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(4_000, 400, 9)).expect("pcap");
    for (i, mode) in list.iter().enumerate() {
        let mut clean = Cleanup::new(db);
        clean.markers(&dir.join("spool"));
        let t = clean.table(&format!("mode{i}"));
        let csv = run_mode(db, dir, &pcap, &t, mode, 2 * i);
        let (header, want) = memory_rows(db, &csv);
        let got = sql_as_csv(db, &t, &header, 9, "");
        assert_eq!(got.len(), want.len(), "{mode}: row count");
        assert!(
            got == want,
            "{mode}: SQL rows differ from the memory table: {:?}",
            want.difference(&got).take(3).collect::<Vec<_>>()
        );
        // The same traffic again, UPDATE-then-INSERT (with the multi-row INSERT path where the
        // backend has it): every row is found and doubled, none added.
        let packets = sum(db, &t, "packets");
        let again = if db.kind == Kind::Pg { "" } else { "sql_multi_values: 8192" };
        run_mode(db, dir, &pcap, &t, again, 2 * i + 1);
        assert_eq!(db.count(&format!("SELECT count(*) FROM {t}")), want.len() as u64, "{mode} then UPDATE");
        assert_eq!(sum(db, &t, "packets"), 2 * packets, "{mode} then UPDATE: counters doubled");
        eprintln!("{} {mode:?}: {} rows equal to memory; second run doubled them", db.plugin(), got.len());
    }
}

#[test]
fn write_modes_pgsql_insert_only_copy_and_update() {
    let Some(db) = Db::pg() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    modes(&db, dir.path(), &["sql_dont_try_update: true", "sql_dont_try_update: true\nsql_use_copy: true", ""]);
}

#[test]
fn write_modes_mysql_insert_only_multi_values_and_update() {
    let Some(db) = Db::mysql() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    modes(&db, dir.path(), &["sql_dont_try_update: true", "sql_dont_try_update: true\nsql_multi_values: 4096", ""]);
}

#[test]
fn write_modes_sqlite_insert_only_multi_values_and_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::sqlite(&dir.path().join("m.db"));
    modes(&db, dir.path(), &["sql_dont_try_update: true", "sql_dont_try_update: true\nsql_multi_values: 4096", ""]);
}

#[test]
fn table_name_that_could_carry_sql_is_refused_before_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let victim = dir.path().join("victim.db");
    rusqlite::Connection::open(&victim).and_then(|c| c.execute_batch("CREATE TABLE acct (a INT);")).expect("victim");
    for (table, why) in [
        ("acct; DROP TABLE acct", "character ';' is not allowed"),
        ("acct\" ; DROP TABLE acct; --", "not allowed"),
        ("acct_$peer_src_ip", "not supported"),
        ("acct_%z", "'%z' is not allowed"),
    ] {
        let conf = dir.path().join("bad.conf");
        std::fs::write(
            &conf,
            format!("daemonize: false\nplugins: sqlite3[s]\nsql_table[s]: {table}\nsql_db[s]: {}\n", victim.display()),
        )
        .expect("conf");
        let out = Command::new(support::xacctd_bin()).arg("-f").arg(&conf).output().expect("run xacctd");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{table:?} accepted: {err}");
        let want = format!("{}:3: sql_table[s]: bad value", conf.display());
        assert!(err.contains(&want) && err.contains(why), "{table:?}: {err}");
    }
    // A bad value only the SQL crate can check still names file, line and key.
    let conf = dir.path().join("pre.conf");
    std::fs::write(
        &conf,
        format!("daemonize: false\nplugins: sqlite3[s]\nsql_preprocess: minb=lots\nsql_db: {}\n", victim.display()),
    )
    .expect("conf");
    let out = Command::new(support::xacctd_bin()).arg("-f").arg(&conf).output().expect("run xacctd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&format!("{}:3: sql_preprocess: bad value 'minb=lots'", conf.display())),
        "{err}"
    );
    let c = rusqlite::Connection::open(&victim).expect("victim");
    assert_eq!(
        c.query_row("SELECT count(*) FROM sqlite_master WHERE name='acct'", [], |r| r.get::<_, i64>(0)).ok(),
        Some(1)
    );
}

#[test]
fn xacct_t_shows_the_sql_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(3_000, 300, 3)).expect("pcap");
    let pipe = dir.path().join("m.pipe");
    let conf = dir.path().join("t.conf");
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "daemonize: false\npcap_savefile_wait: true\nplugins: memory[m], sqlite3[s]\naggregate: src_host,dst_host\nimt_path[m]: {}\nsql_db[s]: {}\nsql_table_version[s]: 9\nsql_table_autocreate[s]: true\nsql_refresh_time[s]: 1\nsql_spool_dir[s]: {}\n",
            pipe.display(),
            dir.path().join("t.db").display(),
            dir.path().join("spool").display()
        ),
    );
    let mut d = Daemon::start(&conf, &dir.path().join("t.log"));
    d.wait_log("finished reading", Duration::from_secs(60));
    let entries = table(&query_csv(&pipe)).1.len() as u64;
    let t = Instant::now();
    let status = loop {
        let s = client(&xacct_bin(), &pipe, &["-t"]);
        if counter(&s, "rows_written").is_some_and(|n| n >= entries) && counter(&s, "spool_batches") == Some(0) {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "rows_written never reached {entries} with an empty spool:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.contains("plugin s (sqlite3):"), "{status}");
    for name in ["rows_spooled", "batches_replayed", "failed_statements", "spool_rows"] {
        assert_eq!(counter(&status, name), Some(0), "{name}:\n{status}");
    }
    assert!(counter(&status, "write_batches").is_some_and(|n| n >= 1), "{status}");
    assert!(counter(&status, "write_latency_p99_us").is_some_and(|n| n > 0), "{status}");
    let db = Db::sqlite(&dir.path().join("t.db"));
    assert_eq!(db.count("SELECT count(*) FROM acct_v9"), entries);
    // SIGUSR1 logs the same counters.
    support::signal(d.pid(), nix::sys::signal::Signal::SIGUSR1);
    d.wait_log("rows_written", Duration::from_secs(10));
    d.terminate();
}

/// The seed's configuration, as it is, against PostgreSQL (in a database of its own, so the
/// seed's table names need no change), over traffic that hits 150.145.80.0/20 on a VLAN; then
/// the seed's SELECT.
#[test]
fn seed_configuration_on_pgsql() {
    let Some(pg) = Db::pg() else { return };
    let dbname = format!("xacct_seed_{}", std::process::id());
    pg.exec(&format!("DROP DATABASE IF EXISTS {dbname}"));
    pg.exec(&format!("CREATE DATABASE {dbname}"));
    struct DropDb(Db, String);
    impl Drop for DropDb {
        fn drop(&mut self) {
            let q = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.1);
            let _ = std::panic::catch_unwind(|| self.0.exec(&q));
        }
    }
    let _guard = DropDb(pg.clone(), dbname.clone());
    let db = Db { name: dbname.clone(), ..pg.clone() };
    // pmacct's tables of the default version (1), from sql/pgsql/acct.sql.
    db.create_from_sql_file(1, "acct_out");
    db.create_from_sql_file(1, "acct_in");

    // Two hours of traffic: .101 sends 600 × 1000-byte packets an hour on VLAN 10 (600 kB, over
    // minb), .7 sends 10 (10 kB, under minb: dropped), .101 also sends untagged traffic (not
    // `vlan`: filtered out), and an outside host sends .101 traffic on the VLAN (acct_in).
    let t0 = 1_700_002_800; // 2023-11-14 23:00:00 UTC
    let mut frames = Vec::new();
    for k in 0..1200 {
        let ts = t0 + k * 6;
        frames.push(udp(ts, [150, 145, 80, 101], [8, 8, 8, 8], Some(10), 972));
        if k % 120 == 0 {
            frames.push(udp(ts, [150, 145, 80, 7], [8, 8, 8, 8], Some(10), 972));
        }
        if k % 2 == 0 {
            frames.push(udp(ts, [150, 145, 80, 101], [8, 8, 4, 4], None, 972));
            frames.push(udp(ts, [9, 9, 9, 9], [150, 145, 80, 101], Some(10), 972));
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("seed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &frames).expect("pcap");
    let seed = "plugins: pgsql[out], pgsql[in]\n\
aggregate[out]: src_host\n\
aggregate_filter[out]: vlan and src net 150.145.80.0/20\n\
sql_table[out]: acct_out\n\
aggregate[in]: dst_host\n\
aggregate_filter[in]: vlan and dst net 150.145.80.0/20\n\
sql_table[in]: acct_in\n\
sql_refresh_time: 60\n\
sql_history: 1h\n\
sql_history_roundoff: h\n\
sql_preprocess: minb=60000\n";
    let conf = dir.path().join("seed.conf");
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "daemonize: false\n{seed}sql_host: 127.0.0.1\nsql_user: postgres\nsql_db: {dbname}\nsql_spool_dir[out]: {}\nsql_spool_dir[in]: {}\n",
            dir.path().join("spool_out").display(),
            dir.path().join("spool_in").display()
        ),
    );
    let log = Daemon::start(&conf, &dir.path().join("seed.log")).wait_exit(Duration::from_secs(60));
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
    let rows = db.rows("SELECT * FROM acct_out WHERE ip_src = '150.145.80.101' ORDER BY stamp_inserted DESC");
    eprintln!("SELECT * FROM acct_out WHERE ip_src = '150.145.80.101' ORDER BY stamp_inserted DESC:");
    for r in &rows {
        eprintln!("  {}", r.join(" | "));
    }
    // Columns: mac_src mac_dst ip_src ip_dst port_src port_dst ip_proto packets bytes
    // stamp_inserted stamp_updated.
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][9], utc(t0 + 3600));
    assert_eq!(rows[1][9], utc(t0));
    for r in &rows {
        assert_eq!(
            (r[0].as_str(), r[1].as_str(), r[3].as_str(), r[6].as_str()),
            ("00:00:00:00:00:00", "00:00:00:00:00:00", "0.0.0.0", "0")
        );
        assert_eq!((r[7].as_str(), r[8].as_str()), ("600", "600000"), "VLAN traffic only: {r:?}");
        assert_ne!(r[10], "NULL");
    }
    assert_eq!(db.count("SELECT count(*) FROM acct_out WHERE ip_src = '150.145.80.7'"), 0, "under minb");
    assert_eq!(db.count("SELECT count(*) FROM acct_out"), 2);
    let rows_in = db.rows("SELECT ip_dst, packets, bytes FROM acct_in ORDER BY stamp_inserted");
    assert_eq!(rows_in, vec![vec!["150.145.80.101".to_string(), "300".into(), "300000".into()]; 2]);
}

/// The primary SQLite file cannot be opened: batches go to `sql_recovery_backup_host` (for
/// sqlite3, another file), and `sql_trigger_exec` runs after the write with pmacct's variables.
#[test]
fn recovery_backup_host_and_trigger_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(2_000, 200, 4)).expect("pcap");
    let backup = dir.path().join("backup.db");
    let out = dir.path().join("trigger.env");
    let script = dir.path().join("trigger.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nenv | grep -E '^(SQL_|XACCT_|TOTAL_)' | sort > {}.tmp && mv {0}.tmp {0}\n", out.display()),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let conf = dir.path().join("b.conf");
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "daemonize: false\nplugins: sqlite3[s]\naggregate: src_host,dst_host\nsql_db: {}\nsql_recovery_backup_host: {}\nsql_table_version: 9\nsql_table_autocreate: true\nsql_refresh_time: 3600\nsql_spool_dir: {}\nsql_trigger_exec: {}\n",
            dir.path().join("no-such-dir/primary.db").display(),
            backup.display(),
            dir.path().join("spool").display(),
            script.display()
        ),
    );
    let log = Daemon::start(&conf, &dir.path().join("b.log")).wait_exit(Duration::from_secs(60));
    assert!(log.contains("trying sql_recovery_backup_host"), "{log}");
    assert!(counter(&log, "batches_to_backup").is_some_and(|n| n >= 1), "{log}");
    let db = Db::sqlite(&backup);
    let rows = db.count("SELECT count(*) FROM acct_v9");
    assert!(rows > 50, "{rows}");
    assert_eq!(counter(&log, "rows_written"), Some(rows), "{log}");
    assert_eq!(sum(&db, "acct_v9", "packets"), counter(&log, "accounted").expect("accounted"));
    let env = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("the trigger did not run ({e}):\n{log}"));
    for want in
        ["SQL_TABLE=acct_v9", &format!("XACCT_ROWS_WRITTEN={rows}"), "XACCT_BACKEND=sqlite3", "SQL_REFRESH_TIME=3600"]
    {
        assert!(env.lines().any(|l| l == want), "{want} missing from the trigger's environment:\n{env}");
    }
}

/// `sql_preprocess: minp=3, recover=1`: entries with fewer than 3 packets fail the check and
/// go to `sql_recovery_backup_host` (another SQLite file), the rest to the primary; together
/// they are the whole traffic, each entry in exactly one of the two. Without a backup host
/// the failing entries are dropped, counted.
#[test]
fn preprocess_recover_sends_failing_entries_to_the_backup_host_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(2_000, 400, 6)).expect("pcap");
    let (primary, backup) = (dir.path().join("primary.db"), dir.path().join("backup.db"));
    let conf = dir.path().join("r.conf");
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "daemonize: false\nplugins: sqlite3[s]\naggregate: src_host,dst_host\nsql_db: {}\nsql_recovery_backup_host: {}\nsql_table_version: 9\nsql_table_autocreate: true\nsql_refresh_time: 3600\nsql_spool_dir: {}\nsql_preprocess: minp=3, recover=1\n",
            primary.display(),
            backup.display(),
            dir.path().join("spool").display(),
        ),
    );
    let log = Daemon::start(&conf, &dir.path().join("r.log")).wait_exit(Duration::from_secs(60));
    let (p, b) = (Db::sqlite(&primary), Db::sqlite(&backup));
    assert!(p.count("SELECT count(*) FROM acct_v9 WHERE packets < 3") == 0, "a failing entry reached the primary");
    assert!(b.count("SELECT count(*) FROM acct_v9 WHERE packets >= 3") == 0, "a passing entry reached the backup");
    let (np, nb) = (p.count("SELECT count(*) FROM acct_v9"), b.count("SELECT count(*) FROM acct_v9"));
    assert!(np > 0 && nb > 0, "both sides should get entries: primary {np}, backup {nb}\n{log}");
    let total = sum(&p, "acct_v9", "packets") + sum(&b, "acct_v9", "packets");
    assert_eq!(total, counter(&log, "accounted").expect("accounted"), "{log}");
    assert_eq!(counter(&log, "preprocess_dropped"), Some(0), "{log}");

    // No backup host: the failing entries are dropped and counted.
    let primary2 = dir.path().join("primary2.db");
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "daemonize: false\nplugins: sqlite3[s]\naggregate: src_host,dst_host\nsql_db: {}\nsql_table_version: 9\nsql_table_autocreate: true\nsql_refresh_time: 3600\nsql_spool_dir: {}\nsql_preprocess: minp=3, recover=1\n",
            primary2.display(),
            dir.path().join("spool2").display(),
        ),
    );
    let log = Daemon::start(&conf, &dir.path().join("r2.log")).wait_exit(Duration::from_secs(60));
    let p2 = Db::sqlite(&primary2);
    assert_eq!(p2.count("SELECT count(*) FROM acct_v9"), np);
    assert_eq!(counter(&log, "preprocess_dropped"), Some(nb), "{log}");
}

/// `sql_startup_delay: 4` with `sql_refresh_time: 1`: nothing is written during the first
/// seconds, then the refreshes write. (The daemon keeps running after the file with
/// `pcap_savefile_wait`.) The margins are seconds wide: the assertions are about the delay's
/// existence, not its precision.
#[test]
fn startup_delay_holds_the_first_write_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(500, 50, 2)).expect("pcap");
    let dbfile = dir.path().join("d.db");
    let conf = dir.path().join("d.conf");
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "daemonize: false\npcap_savefile_wait: true\nplugins: sqlite3[s]\naggregate: src_host\nsql_db: {}\nsql_table_version: 9\nsql_table_autocreate: true\nsql_refresh_time: 1\nsql_startup_delay: 4\nsql_spool_dir: {}\n",
            dbfile.display(),
            dir.path().join("spool").display(),
        ),
    );
    let t0 = Instant::now();
    let daemon = Daemon::start(&conf, &dir.path().join("d.log"));
    let rows = || {
        if !dbfile.exists() {
            return 0;
        }
        let db = Db::sqlite(&dbfile);
        if db.table_exists("acct_v9") {
            db.count("SELECT count(*) FROM acct_v9")
        } else {
            0
        }
    };
    std::thread::sleep(Duration::from_millis(2_000));
    assert_eq!(rows(), 0, "written before sql_startup_delay ran out");
    while rows() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "never written after the delay");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(t0.elapsed() >= Duration::from_secs(3), "first write after {:?}", t0.elapsed());
    drop(daemon);
}

/// More entries than `sql_cache_entries` between refreshes: the plugin writes early instead of
/// holding them until `sql_refresh_time`.
#[test]
fn cache_entries_bound_flushes_early() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(3_000, 600, 8)).expect("pcap");
    let conf = dir.path().join("c.conf");
    let dbfile = dir.path().join("c.db");
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "daemonize: false\npcap_savefile_wait: true\nplugins: sqlite3[s]\naggregate: src_host,dst_host,src_port,dst_port,proto\nsql_db: {}\nsql_table_version: 9\nsql_table_autocreate: true\nsql_refresh_time: 3600\nsql_cache_entries: 100\nsql_spool_dir: {}\n",
            dbfile.display(),
            dir.path().join("spool").display()
        ),
    );
    let mut d = Daemon::start(&conf, &dir.path().join("c.log"));
    d.wait_log("exceed sql_cache_entries", Duration::from_secs(30));
    let db = Db::sqlite(&dbfile);
    let t = Instant::now();
    while !(db.table_exists("acct_v9") && db.count("SELECT count(*) FROM acct_v9") > 100) {
        assert!(t.elapsed() < Duration::from_secs(20), "nothing written before sql_refresh_time");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = d.terminate();
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
}

/// Primitives a version lacks get pmacct's extra columns (`net_src`, `mask_dst`, `tos` in v1,
/// …); with `sql_optimize_clauses` only the aggregate's columns exist and are written. Tables
/// created by `sql_table_autocreate`; contents equal the memory table's.
fn extra_columns(db: &Db, dir: &Path) {
    let mut clean = Cleanup::new(db);
    let pcap = dir.join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(3_000, 300, 12)).expect("pcap");
    let nets = dir.join("networks.lst");
    std::fs::write(&nets, "10.0.0.0/16\n192.168.0.0/16\n2001:db8::/32\n").expect("networks");
    let plans =
        [("x", 9u8, "src_host,src_net,dst_mask,dst_port,proto", false), ("o", 1u8, "src_host,dst_port,tos", true)];
    let mut body = format!("daemonize: false\npcap_savefile_wait: true\nnetworks_file: {}\nplugins: ", nets.display());
    body.push_str(
        &plans.iter().map(|(n, ..)| format!("memory[m{n}], {}[s{n}]", db.plugin())).collect::<Vec<_>>().join(", "),
    );
    body.push('\n');
    let mut tables = Vec::new();
    for (n, v, agg, opt) in plans {
        let t = clean.table(&format!("extra_{n}"));
        let spool = dir.join(format!("spool_{n}"));
        clean.markers(&spool);
        body.push_str(&format!(
            "aggregate[m{n}]: {agg}\nimt_path[m{n}]: {}\naggregate[s{n}]: {agg}\nsql_table[s{n}]: {t}\nsql_table_version[s{n}]: {v}\nsql_table_autocreate[s{n}]: true\nsql_optimize_clauses[s{n}]: {opt}\nsql_refresh_time[s{n}]: 3600\nsql_spool_dir[s{n}]: {}\n{}",
            dir.join(format!("m{n}.pipe")).display(),
            spool.display(),
            db.conf(&format!("s{n}"))
        ));
        tables.push((n, v, t));
    }
    let conf = dir.join("x.conf");
    savefile_conf(&conf, &pcap, &body);
    let mut d = Daemon::start(&conf, &dir.join("x.log"));
    d.wait_log("finished reading", Duration::from_secs(60));
    let memory: Vec<String> = tables.iter().map(|(n, ..)| query_csv(&dir.join(format!("m{n}.pipe")))).collect();
    let log = d.terminate();
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
    for ((n, v, t), csv) in tables.iter().zip(&memory) {
        let (header, want) = memory_rows(db, csv);
        let got = sql_as_csv(db, t, &header, *v, "");
        assert!(got == want && want.len() > 20, "{n}: {} SQL rows vs {} memory rows", got.len(), want.len());
    }
    // The optimized table has the aggregate's columns and the counters and stamps only.
    let cols = match db.kind {
        Kind::Lite => db.rows(&format!("SELECT name FROM pragma_table_info('{}')", tables[1].2)),
        Kind::Pg => db.rows(&format!(
            "SELECT column_name FROM information_schema.columns WHERE table_name = '{}' ORDER BY ordinal_position",
            tables[1].2
        )),
        Kind::My => db.rows(&format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{}' ORDER BY ordinal_position",
            tables[1].2
        )),
    };
    let cols: Vec<String> = cols.into_iter().map(|r| r[0].clone()).collect();
    let port = if db.kind == Kind::Pg { "port_dst" } else { "dst_port" };
    assert_eq!(cols, ["ip_src", port, "tos", "packets", "bytes", "stamp_inserted", "stamp_updated"]);
    // The full v9 table gained net_src and mask_dst.
    assert!(db.count(&format!("SELECT count(*) FROM {} WHERE net_src <> '0.0.0.0' AND mask_dst > 0", tables[0].2)) > 0);
}

#[test]
fn extra_columns_and_optimize_clauses_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    extra_columns(&Db::sqlite(&dir.path().join("x.db")), dir.path());
}

#[test]
fn extra_columns_and_optimize_clauses_pgsql() {
    let Some(db) = Db::pg() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    extra_columns(&db, dir.path());
}

#[test]
fn extra_columns_and_optimize_clauses_mysql() {
    let Some(db) = Db::mysql() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    extra_columns(&db, dir.path());
}

/// `sql_table_schema`: a missing (here dynamic, per day) table is created from the operator's
/// own CREATE TABLE, with the configured name's variables expanded.
#[test]
fn sql_table_schema_creates_dynamic_tables_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("h.pcap");
    let frames = history_frames();
    xacct_perf::traffic::write_pcap(&pcap, &frames).expect("pcap");
    let schema = dir.path().join("acct.schema");
    std::fs::write(
        &schema,
        "CREATE TABLE acct_%Y%m%d (\n  ip_src CHAR(45) NOT NULL,\n  packets INT NOT NULL,\n  bytes BIGINT NOT NULL,\n  stamp_inserted DATETIME NOT NULL,\n  stamp_updated DATETIME,\n  PRIMARY KEY (ip_src, stamp_inserted)\n);\n",
    )
    .expect("schema");
    let dbfile = dir.path().join("s.db");
    let conf = dir.path().join("s.conf");
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "daemonize: false\nplugins: sqlite3[s]\naggregate: src_host\nsql_db: {}\nsql_table: acct_%Y%m%d\nsql_table_schema: {}\nsql_optimize_clauses: true\nsql_history: 5m\nsql_refresh_time: 3600\nsql_spool_dir: {}\n",
            dbfile.display(),
            schema.display(),
            dir.path().join("spool").display()
        ),
    );
    let log = Daemon::start(&conf, &dir.path().join("s.log")).wait_exit(Duration::from_secs(60));
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
    let db = Db::sqlite(&dbfile);
    // 2023-11-14 22:13:20 UTC plus 20 minutes: one day.
    assert!(db.table_exists("acct_20231114"), "{log}");
    assert_eq!(sum(&db, "acct_20231114", "packets"), frames.len() as u64);
    assert_eq!(db.count("SELECT count(*) FROM acct_20231114"), 3 * 5, "three hosts, five 5-minute bins");
}
