//! For every pmacct schema version 1–9 and every backend (PostgreSQL, MariaDB, SQLite), xacctd
//! reads the same pcap into a memory plugin and an SQL plugin with the same aggregate; the SQL
//! table, created from the repository's `sql/` file of that version, must hold exactly the
//! memory table's entries.

mod sqlsupport;
mod support;

use sqlsupport::{memory_rows, sql_as_csv, Cleanup, Db};
use std::path::Path;
use std::time::Duration;
use support::{query_csv, savefile_conf, Daemon};

/// The richest aggregate each version's columns hold.
fn aggregate(v: u8) -> &'static str {
    match v {
        1 => "src_mac,dst_mac,src_host,dst_host,src_port,dst_port,proto",
        2 => "src_mac,dst_mac,vlan,src_host,dst_host,src_port,dst_port,proto",
        3 => "src_mac,dst_mac,vlan,src_host,dst_host,src_port,dst_port,proto,tos",
        4 | 5 => "src_mac,dst_mac,vlan,src_host,dst_host,src_port,dst_port,proto,tos,flows",
        6 => "src_mac,dst_mac,vlan,src_as,dst_as,src_host,dst_host,src_port,dst_port,proto,tos,flows",
        _ => "src_mac,dst_mac,vlan,src_as,dst_as,src_host,dst_host,src_port,dst_port,proto,tos,flows,tcpflags",
    }
}

pub const NETWORKS: &str =
    "! test networks\n65001,10.0.0.0/16\n10.0.1.0/24\n65002,192.168.0.0/16\n65003,2001:db8::/32\n";

fn all_versions(db: &Db, dir: &Path) {
    let mut clean = Cleanup::new(db);
    let pcap = dir.join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(6_000, 600, 5)).expect("pcap");
    let nets = dir.join("networks.lst");
    std::fs::write(&nets, NETWORKS).expect("networks");
    let versions: Vec<u8> = (1..=9).collect();
    let mut tables = Vec::new();
    let mut plugins = Vec::new();
    let mut body = String::new();
    for &v in &versions {
        let t = clean.table(&format!("v{v}"));
        db.create_from_sql_file(v, &t);
        let (m, s) = (format!("m{v}"), format!("s{v}"));
        plugins.push(format!("memory[{m}]"));
        plugins.push(format!("{}[{s}]", db.plugin()));
        let spool = dir.join(format!("spool{v}"));
        clean.markers(&spool);
        body.push_str(&format!(
            "aggregate[{m}]: {agg}\nimt_path[{m}]: {}\naggregate[{s}]: {agg}\nsql_table[{s}]: {t}\nsql_table_version[{s}]: {v}\nsql_refresh_time[{s}]: 2\nsql_spool_dir[{s}]: {}\n{}",
            dir.join(format!("{m}.pipe")).display(),
            spool.display(),
            db.conf(&s),
            agg = aggregate(v),
        ));
        tables.push((v, t));
    }
    let conf = dir.join("x.conf");
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "daemonize: false\npcap_savefile_wait: true\nnetworks_file: {}\npmacctd_as: file\nplugins: {}\n{body}",
            nets.display(),
            plugins.join(", ")
        ),
    );
    let mut d = Daemon::start(&conf, &dir.join("x.log"));
    d.wait_log("finished reading", Duration::from_secs(60));
    let memory: Vec<String> = versions.iter().map(|v| query_csv(&dir.join(format!("m{v}.pipe")))).collect();
    let log = d.terminate();
    assert!(!log.contains("ERROR") && !log.contains("WARN"), "errors or warnings in the log:\n{log}");
    let mut failures = Vec::new();
    for ((v, t), csv) in tables.iter().zip(&memory) {
        let (header, want) = memory_rows(db, csv);
        let got = sql_as_csv(db, t, &header, *v, "");
        assert!(want.len() > 50, "v{v}: memory table too small: {}", want.len());
        if got != want {
            let missing: Vec<_> = want.difference(&got).take(3).collect();
            let extra: Vec<_> = got.difference(&want).take(3).collect();
            failures.push(format!(
                "v{v} ({header}): {} rows in SQL, {} in memory; missing {missing:?}; unexpected {extra:?}",
                got.len(),
                want.len()
            ));
        } else {
            eprintln!("{} v{v}: {} rows identical to the memory table", db.plugin(), got.len());
        }
    }
    assert!(failures.is_empty(), "{}:\n{}", db.plugin(), failures.join("\n"));
}

#[test]
fn pgsql_versions_1_to_9_equal_memory_table() {
    let Some(db) = Db::pg() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    all_versions(&db, dir.path());
}

#[test]
fn mysql_versions_1_to_9_equal_memory_table() {
    let Some(db) = Db::mysql() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    all_versions(&db, dir.path());
}

#[test]
fn sqlite_versions_1_to_9_equal_memory_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::sqlite(&dir.path().join("acct.db"));
    all_versions(&db, dir.path());
}
