//! SQL plugins of one daemon started together on a fresh database, and recovery from transient
//! errors.
//!
//! Six plugins of one backend (PostgreSQL, MariaDB, or SQLite on one file) write at the same
//! moment (the final flush) into a database nothing has been created in: they all create the
//! marker table at once; two share a table they both create from pmacct's own schema file
//! (which starts with `DROP TABLE IF EXISTS`), two share one they both autocreate (each pair
//! split by disjoint filters), one writes a dynamic name. Every table must then hold exactly
//! the memory table's entries. The same configuration runs again on the database left over
//! (every counter doubles), and once more on another fresh one.
//!
//! Then a daemon that stays up (NetFlow input, a write a second) meets errors between and
//! during writes — its session killed while idle, killed while its transaction waits on a
//! locked table, its table dropped — and each time the next try must write the batch, once.

mod sqlsupport;
mod support;

use sqlsupport::{
    flows, memory_rows, netflow_sql_conf, pmacct_v9_schema, send_flows, sql_as_csv, sum, total_packets, wait_packets,
    Db, FreshDb, Kind,
};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{client, counter, free_udp_port, query_csv, savefile_conf, table, xacct_bin, Daemon};

const AGG: &str = "src_mac,dst_mac,vlan,src_host,dst_host,src_port,dst_port,proto,tos";

/// The six plugins: (name, sql_table, creation lines, aggregate_filter).
fn plugins(schema: &Path) -> Vec<(&'static str, String, String, &'static str)> {
    let auto = "sql_table_autocreate: true".to_string();
    vec![
        ("a1", "t_a1".into(), auto.clone(), ""),
        ("p1", "acct_v9".into(), format!("sql_table_schema: {}", schema.display()), "tcp"),
        ("p2", "acct_v9".into(), format!("sql_table_schema: {}", schema.display()), "not tcp"),
        ("dy", "t_dy_%Y%m%d_%H".into(), auto.clone(), ""),
        ("s1", "t_shared".into(), auto.clone(), "tcp"),
        ("s2", "t_shared".into(), auto, "not tcp"),
    ]
}

/// The tables the plugins write: the frames are all within 22:13:20–22:13:21 UTC, one hour bin.
const TABLES: [&str; 4] = ["t_a1", "acct_v9", "t_dy_20231114_22", "t_shared"];

/// One run of xacctd with a memory plugin and the six SQL plugins for `db`, each writing once at
/// the end; returns the memory table's CSV and the log.
fn run_together(db: &Db, dir: &Path, pcap: &Path, run: &str) -> (String, String) {
    let schema = dir.join("pmacct_v9.schema");
    std::fs::write(&schema, pmacct_v9_schema(db.kind)).expect("schema file");
    let list = plugins(&schema);
    let names: Vec<String> = list.iter().map(|(p, ..)| format!("{}[{p}]", db.plugin())).collect();
    let mut body = format!(
        "daemonize: false\npcap_savefile_wait: true\nplugins: memory[m], {}\naggregate: {AGG}\nimt_path[m]: {}\n\
sql_table_version: 9\nsql_history: 1h\nsql_refresh_time: 3600\n",
        names.join(", "),
        dir.join(format!("{run}.pipe")).display()
    );
    for (p, t, create, filter) in &list {
        body.push_str(&format!(
            "sql_table[{p}]: {t}\n{}\nsql_spool_dir[{p}]: {}\n{}",
            create.replace(": ", &format!("[{p}]: ")),
            dir.join(format!("spool_{p}")).display(),
            db.conf(p)
        ));
        if !filter.is_empty() {
            body.push_str(&format!("aggregate_filter[{p}]: {filter}\n"));
        }
    }
    let conf = dir.join(format!("{run}.conf"));
    savefile_conf(&conf, pcap, &body);
    let mut d = Daemon::start(&conf, &dir.join(format!("{run}.log")));
    d.wait_log("finished reading", Duration::from_secs(60));
    let csv = query_csv(&dir.join(format!("{run}.pipe")));
    // SIGTERM: the final flush is where all six plugins connect and write at once.
    let log = d.terminate();
    (csv, log)
}

/// Warnings the log may hold: InnoDB's gap locks make two plugins' UPDATE-then-INSERTs into one
/// table deadlock now and then, and the plugin retries them like any transient error.
fn assert_clean(db: &Db, log: &str) {
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| matches!(level(l), Some("WARN" | "ERROR")))
        .filter(|l| !(db.kind == Kind::My && l.contains("Deadlock found")))
        .collect();
    assert!(bad.is_empty(), "{}: unexpected warnings: {bad:#?}\n{log}", db.plugin());
}

/// Every table holds the memory table's entries, each counter `times` over.
fn assert_tables(db: &Db, csv: &str, times: u64, run: &str) {
    let (header, want) = memory_rows(db, csv);
    let packets: u64 = want.iter().map(|r| counter_of(&header, r, "PACKETS")).sum();
    let bytes: u64 = want.iter().map(|r| counter_of(&header, r, "BYTES")).sum();
    assert!(packets > 0, "{csv}");
    for t in TABLES {
        assert!(db.table_exists(t), "{run}: {} did not create {t}", db.plugin());
        let got = sql_as_csv(db, t, &header, 9, "");
        if times == 1 {
            assert_eq!(got.len(), want.len(), "{run} {t}: rows");
            assert!(
                got == want,
                "{run} {t}: differs from the memory table: missing {:?}",
                want.difference(&got).take(3).collect::<Vec<_>>()
            );
        } else {
            assert_eq!(db.count(&format!("SELECT count(*) FROM {t}")), want.len() as u64, "{run} {t}: rows");
        }
        assert_eq!(sum(db, t, "packets"), times * packets, "{run} {t}: packets");
        assert_eq!(sum(db, t, "bytes"), times * bytes, "{run} {t}: bytes");
    }
}

fn counter_of(header: &str, row: &str, col: &str) -> u64 {
    let i = header.split(',').position(|h| h == col).unwrap_or_else(|| panic!("no {col} in {header}"));
    row.split(',').nth(i).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{col} of {row}"))
}

/// A fresh database, then the same one left over from that run, then another fresh one.
fn together(fresh: &mut dyn FnMut(usize) -> (Db, Option<FreshDb>), dir: &Path) {
    let pcap = dir.join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(4_000, 400, 9)).expect("pcap");
    let (db, keep) = fresh(0);
    let (csv, log) = run_together(&db, &dir.join("r1"), &pcap, "fresh");
    assert_clean(&db, &log);
    assert_tables(&db, &csv, 1, "fresh database");
    let (csv2, log) = run_together(&db, &dir.join("r2"), &pcap, "again");
    assert_clean(&db, &log);
    assert_eq!(table(&csv2), table(&csv), "the same input");
    assert_tables(&db, &csv, 2, "database left over");
    drop(keep);
    let (db, _keep) = fresh(1);
    let (csv, log) = run_together(&db, &dir.join("r3"), &pcap, "fresh2");
    assert_clean(&db, &log);
    assert_tables(&db, &csv, 1, "second fresh database");
}

fn dirs(dir: &Path) {
    for r in ["r1", "r2", "r3"] {
        std::fs::create_dir_all(dir.join(r)).expect("run dir");
    }
}

#[test]
fn six_pgsql_plugins_on_a_fresh_database_all_write_exact_totals() {
    if Db::pg().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    dirs(dir.path());
    together(
        &mut |n| {
            let f = FreshDb::pg(&format!("six{n}")).expect("server checked");
            (f.db.clone(), Some(f))
        },
        dir.path(),
    );
}

#[test]
fn six_mysql_plugins_on_a_fresh_database_all_write_exact_totals() {
    if Db::mysql().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    dirs(dir.path());
    together(
        &mut |n| {
            let f = FreshDb::mysql(&format!("six{n}")).expect("server checked");
            (f.db.clone(), Some(f))
        },
        dir.path(),
    );
}

#[test]
fn six_sqlite3_plugins_on_one_new_file_all_write_exact_totals() {
    let dir = tempfile::tempdir().expect("tempdir");
    dirs(dir.path());
    let files = dir.path().to_path_buf();
    together(&mut |n| (Db::sqlite(&files.join(format!("six{n}.db"))), None), dir.path());
}

/// Polls `xacct -t` until `ok` holds for it.
fn wait_status(pipe: &Path, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let t = Instant::now();
    loop {
        let s = client(&xacct_bin(), pipe, &["-t"]);
        if ok(&s) {
            return s;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{what} did not happen:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sql_counter(status: &str, name: &str) -> u64 {
    counter(status, name).unwrap_or_else(|| panic!("no {name} in:\n{status}"))
}

/// Waits until `probe` finds xacctd's session waiting for a lock; its id.
fn wait_blocked(db: &Db, probe: &str) -> String {
    let t = Instant::now();
    loop {
        if let Some(r) = db.rows(probe).into_iter().next() {
            return r[0].clone();
        }
        assert!(t.elapsed() < Duration::from_secs(20), "xacctd never waited on the lock: {probe}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The database's sessions of xacctd (not the test's own).
fn xacctd_sessions(db: &Db) -> String {
    match db.kind {
        Kind::Pg => {
            format!("SELECT pid FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'xacctd'", db.name)
        }
        _ => format!(
            "SELECT id FROM information_schema.processlist WHERE db = '{}' AND id <> CONNECTION_ID() \
             AND command <> 'Killed'",
            db.name
        ),
    }
}

fn kill_sessions(db: &Db, ids: &[String]) {
    for id in ids {
        match db.kind {
            Kind::Pg => assert_eq!(db.count(&format!("SELECT count(*) FROM pg_terminate_backend({id}) t WHERE t")), 1),
            _ => db.exec(&format!("KILL CONNECTION {id}")),
        }
    }
}

/// One daemon, four phases of NetFlow traffic, an error injected before each of the last three.
fn transient(db: &Db, dir: &Path) {
    let t = "t_tr";
    let port = free_udp_port();
    let conf = netflow_sql_conf(dir, "tr", port, db.plugin(), &db.conf("s"), t, "sql_table_autocreate[s]: true\n");
    let mut d = Daemon::start(&conf, &dir.join("tr.log"));
    d.wait_log("listening:", Duration::from_secs(20));
    let pipe = dir.join("tr.pipe");
    let mut seq = 0;

    let a = flows(0, 100);
    send_flows(port, &mut seq, &a);
    wait_packets(db, t, total_packets(&a), Duration::from_secs(20));
    let mut failures = 0;

    if db.kind != Kind::Lite {
        // Its session killed while idle, between two writes.
        let ids: Vec<String> = db.rows(&xacctd_sessions(db)).into_iter().map(|r| r[0].clone()).collect();
        assert!(!ids.is_empty(), "no session of xacctd in {}", db.name);
        kill_sessions(db, &ids);
        failures += 1;
        let b = flows(100, 200);
        send_flows(port, &mut seq, &b);
        wait_packets(db, t, total_packets(&[a.clone(), b.clone()].concat()), Duration::from_secs(30));

        // Killed inside its transaction, while it waits for a table the test has locked.
        let (lock, probe) = match db.kind {
            Kind::Pg => (
                format!("BEGIN; LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE"),
                format!("{} AND wait_event_type = 'Lock'", xacctd_sessions(db)),
            ),
            _ => (
                format!("LOCK TABLES {t} WRITE"),
                format!("{} AND state LIKE 'Waiting for table%'", xacctd_sessions(db)),
            ),
        };
        let mut locker = db.session();
        locker.exec(&lock);
        let c = flows(200, 300);
        send_flows(port, &mut seq, &c);
        let id = wait_blocked(db, &probe);
        kill_sessions(db, &[id]);
        locker.exec(if db.kind == Kind::Pg { "COMMIT" } else { "UNLOCK TABLES" });
        drop(locker);
        failures += 1;
        wait_packets(db, t, total_packets(&[a.clone(), b, c].concat()), Duration::from_secs(30));
        let s = wait_status(&pipe, "an empty spool", |s| counter(s, "spool_batches") == Some(0));
        let (header, want) = memory_rows(db, &query_csv(&pipe));
        let got = sql_as_csv(db, t, &header, 9, "");
        assert!(
            got == want,
            "SQL differs from memory: missing {:?}",
            want.difference(&got).take(3).collect::<Vec<_>>()
        );
        assert_eq!(sql_counter(&s, "batches_duplicate"), 0, "{s}");
    }

    // Its table dropped between two writes: made again, and the next batch written into it.
    db.exec(&format!("DROP TABLE {t}"));
    failures += 1;
    let e = flows(300, 345);
    send_flows(port, &mut seq, &e);
    wait_packets(db, t, total_packets(&e), Duration::from_secs(30));
    let s = wait_status(&pipe, "an empty spool", |s| counter(s, "spool_batches") == Some(0));
    assert_eq!(db.count(&format!("SELECT count(*) FROM {t}")), 40, "40 keys");
    assert_eq!(sum(db, t, "packets"), total_packets(&e));
    assert_eq!(sum(db, t, "bytes"), e.iter().map(|r| r.bytes).sum::<u64>());
    assert!(sql_counter(&s, "failed_statements") >= failures, "{s}");
    assert!(sql_counter(&s, "batches_replayed") >= failures, "{s}");
    assert_eq!(sql_counter(&s, "batches_duplicate"), 0, "{s}");
    let log = d.terminate();
    assert!(log.contains("database reachable again"), "{log}");
    assert!(!log.lines().any(|l| level(l) == Some("ERROR")), "{log}");
}

/// The level of a log line (`<time> <LEVEL> …`).
fn level(line: &str) -> Option<&str> {
    line.split_whitespace().nth(1)
}

#[test]
fn pgsql_next_try_after_a_killed_session_or_a_dropped_table_writes_the_batch_once() {
    let Some(f) = FreshDb::pg("transient") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    transient(&f.db, dir.path());
}

#[test]
fn mysql_next_try_after_a_killed_session_or_a_dropped_table_writes_the_batch_once() {
    let Some(f) = FreshDb::mysql("transient") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    transient(&f.db, dir.path());
}

#[test]
fn sqlite3_next_try_after_a_dropped_table_writes_the_batch_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    transient(&Db::sqlite(&dir.path().join("tr.db")), dir.path());
}
