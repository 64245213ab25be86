//! Nothing lost, nothing written twice: xacctd collects NetFlow over loopback into a memory
//! plugin and a PostgreSQL (or MariaDB) plugin whose database sits behind a TCP proxy
//! (tests/support/proxy.rs).
//! The link is cut mid-run and restored; later xacctd is SIGKILLed while batches wait in the
//! spool and restarted. Each time the SQL table must end equal to the memory table, entry for
//! entry (a batch written twice would double its counters).

mod sqlsupport;
mod support;

use sqlsupport::{flows, netflow_sql_conf, send_flows as send, sql_as_csv, total_packets, wait_packets, Cleanup, Db};
use std::path::Path;
use std::time::{Duration, Instant};
use support::proxy::Proxy;
use support::{client, counter, free_udp_port, query_csv, table, xacct_bin, Daemon};

/// xacctd with a NetFlow collector on `port`, a memory plugin and an SQL plugin for `db`
/// reached through `proxy`.
fn conf(dir: &Path, name: &str, port: u16, db: &Db, proxy: &Proxy, table: &str) -> std::path::PathBuf {
    netflow_sql_conf(dir, name, port, db.plugin(), &db.conf_via("s", proxy.port()), table, "")
}

/// Polls `xacct -t` until `ok` holds for it.
fn wait_status(pipe: &Path, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
    let t = Instant::now();
    loop {
        let s = client(&xacct_bin(), pipe, &["-t"]);
        if ok(&s) {
            return s;
        }
        assert!(t.elapsed() < timeout, "{what} did not happen within {timeout:?}:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sql_counter(status: &str, name: &str) -> u64 {
    // The memory plugin's section comes first and has no SQL counters.
    counter(status, name).unwrap_or_else(|| panic!("no {name} in:\n{status}"))
}

fn packets_in(db: &Db, t: &str) -> u64 {
    sqlsupport::sum(db, t, "packets")
}

fn assert_same(db: &Db, t: &str, memory_csv: &str) {
    let (header, want) = table(memory_csv);
    let got = sql_as_csv(db, t, &header, 9, "");
    assert_eq!(got.len(), want.len(), "rows");
    assert!(got == want, "SQL differs from memory: missing {:?}", want.difference(&got).take(3).collect::<Vec<_>>());
}

fn link_cut_mid_run(db: &Db, upstream: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut clean = Cleanup::new(db);
    clean.markers(&dir.path().join("spool"));
    let t = clean.table("outage");
    db.create_from_sql_file(9, &t);
    let proxy = Proxy::start(upstream.parse().expect("addr"));
    let port = free_udp_port();
    let mut d = Daemon::start(&conf(dir.path(), "a", port, db, &proxy, &t), &dir.path().join("a.log"));
    d.wait_log("listening:", Duration::from_secs(20));
    let pipe = dir.path().join("a.pipe");
    let mut seq = 0;

    // Up: written as usual.
    let a = flows(0, 100);
    send(port, &mut seq, &a);
    wait_packets(db, &t, total_packets(&a), Duration::from_secs(20));

    // Down: refreshes fail, batches wait in the spool.
    proxy.cut();
    let b = flows(100, 200);
    send(port, &mut seq, &b);
    d.wait_log("batches stay in the spool", Duration::from_secs(20));
    let s = wait_status(&pipe, "failed retries", Duration::from_secs(20), |s| {
        counter(s, "failed_statements").is_some_and(|n| n >= 2) && counter(s, "spool_batches").is_some_and(|n| n >= 1)
    });
    assert!(sql_counter(&s, "rows_spooled") >= 1, "{s}");
    assert_eq!(packets_in(db, &t), total_packets(&a), "nothing reached the database while cut");

    // Back: the spool replays in order, then new traffic follows.
    proxy.restore();
    let c = flows(200, 300);
    send(port, &mut seq, &c);
    let all = [a, b, c].concat();
    wait_packets(db, &t, total_packets(&all), Duration::from_secs(40));
    let s = wait_status(&pipe, "an empty spool", Duration::from_secs(20), |s| counter(s, "spool_batches") == Some(0));
    assert!(sql_counter(&s, "batches_replayed") >= 1, "{s}");
    assert_eq!(sql_counter(&s, "batches_duplicate"), 0, "{s}");
    let memory = query_csv(&pipe);
    assert_same(db, &t, &memory);
    let log = d.terminate();
    assert!(log.contains("database reachable again"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
    // Still equal after the final flush (which had nothing new).
    assert_same(db, &t, &memory);
}

#[test]
fn pgsql_link_cut_mid_run_every_aggregate_arrives_once() {
    let Some(db) = Db::pg() else { return };
    link_cut_mid_run(&db, "127.0.0.1:5432");
}

#[test]
fn mysql_link_cut_mid_run_every_aggregate_arrives_once() {
    let Some(db) = Db::mysql() else { return };
    link_cut_mid_run(&db, "127.0.0.1:3306");
}

#[test]
fn sigkill_with_batches_spooled_restart_replays_them_once() {
    let Some(db) = Db::pg() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut clean = Cleanup::new(&db);
    clean.markers(&dir.path().join("spool"));
    let t = clean.table("kill");
    db.create_from_sql_file(9, &t);
    let proxy = Proxy::start("127.0.0.1:5432".parse().expect("addr"));

    // First run: some batches written, then the database goes away and more pile up.
    let port = free_udp_port();
    let mut d = Daemon::start(&conf(dir.path(), "k1", port, &db, &proxy, &t), &dir.path().join("k1.log"));
    d.wait_log("listening:", Duration::from_secs(20));
    let pipe = dir.path().join("k1.pipe");
    let mut seq = 0;
    let a = flows(0, 80);
    send(port, &mut seq, &a);
    wait_packets(&db, &t, total_packets(&a), Duration::from_secs(20));
    proxy.cut();
    for round in 0..3 {
        let b = flows(100 + round * 50, 150 + round * 50);
        send(port, &mut seq, &b);
        std::thread::sleep(Duration::from_millis(1200));
    }
    let s = wait_status(&pipe, "three spooled batches", Duration::from_secs(20), |s| {
        counter(s, "spool_batches").is_some_and(|n| n >= 3)
    });
    let memory = query_csv(&pipe);
    let want_packets: u64 =
        table(&memory).1.iter().map(|r| r.split(',').nth(5).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0)).sum();
    assert!(want_packets > total_packets(&a), "{memory}");
    eprintln!("killing with {} batch(es) spooled", sql_counter(&s, "spool_batches"));
    support::signal(d.pid(), nix::sys::signal::Signal::SIGKILL);
    let t0 = Instant::now();
    while std::fs::read_to_string(format!("/proc/{}/status", d.pid())).is_ok_and(|s| !s.contains("State:\tZ")) {
        assert!(t0.elapsed() < Duration::from_secs(10), "xacctd survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(d);
    assert_eq!(packets_in(&db, &t), total_packets(&a));

    // Restart with the database back: the spool is replayed, each batch once.
    proxy.restore();
    let port2 = free_udp_port();
    let mut d2 = Daemon::start(&conf(dir.path(), "k2", port2, &db, &proxy, &t), &dir.path().join("k2.log"));
    d2.wait_log("left in the spool by an earlier run", Duration::from_secs(20));
    wait_packets(&db, &t, want_packets, Duration::from_secs(30));
    let pipe2 = dir.path().join("k2.pipe");
    let s = wait_status(&pipe2, "an empty spool", Duration::from_secs(20), |s| counter(s, "spool_batches") == Some(0));
    assert!(sql_counter(&s, "batches_replayed") >= 3, "{s}");
    let log = d2.terminate();
    assert!(!log.contains("ERROR"), "{log}");
    assert_same(&db, &t, &memory);
}
