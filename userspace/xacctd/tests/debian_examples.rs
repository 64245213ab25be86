//! Every `*.conf.example` Debian's pmacct 1.7.7 ships, run by xacctd from the package's own
//! files with only the textual substitutions each test shows (an interface becomes a pcap
//! file, paths go to a temporary directory, database credentials and name become this test's),
//! and traffic checked where it lands: the memory tables with `xacct`, MariaDB (strict mode) in
//! a database of this test's own with the table pmacct's `pmacct-create-db_v1.mysql` creates,
//! SQLite with pmacct's `pmacct-create-table_v1.sqlite3`, NetFlow v9 and sFlow v5 decoded by
//! the test.

mod sqlsupport;
mod support;

use sqlsupport::{Db, Kind};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{client, free_udp_port, send_udp, skip, sorted_rows, spec, xacct_bin, Daemon};
use xacct_perf::traffic::{build, write_pcap, Frame, L3, L4};

const EXAMPLES: &str = "/usr/lib/x86_64-linux-gnu/pmacct/examples";
const SQL: &str = "/usr/share/pmacct/sql";
/// This test's own MariaDB database (others use `test` at the same time).
const DB: &str = "xacct_t12_conf";

/// The example's text, or None (skipped; a failure under CI) when pmacct is not installed.
fn example(name: &str) -> Option<String> {
    let path = Path::new(EXAMPLES).join(name);
    match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) => {
            skip(&format!("{}: {e} (apt-get install pmacct)", path.display()));
            None
        }
    }
}

/// `text` with `from` replaced by `to`, which must occur: a substitution that silently did
/// nothing would test another configuration than the one shown.
fn subst(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the example has no '{from}'");
    text.replacen(from, to, 1)
}

/// UDP packets between 10.0.0.{1,2} and 192.168.1.{1,2}, `n` of each of four flows, 10 bytes
/// of payload (IP length 38).
fn pcap(dir: &Path, n: usize) -> PathBuf {
    let mut frames = Vec::new();
    for i in 0..n {
        for (src, dst) in [
            ([10, 0, 0, 1], [192, 168, 1, 1]),
            ([10, 0, 0, 2], [192, 168, 1, 2]),
            ([192, 168, 1, 1], [10, 0, 0, 1]),
            ([192, 168, 1, 2], [10, 0, 0, 9]),
        ] {
            let s = spec(vec![], L3::V4 { src, dst, tos: 0 }, L4::Udp { sport: 1000, dport: 53 }, 10);
            frames.push(Frame { ts_sec: 1_700_000_000 + i as i64, ts_usec: 0, data: build(&s) });
        }
    }
    let path = dir.join("traffic.pcap");
    write_pcap(&path, &frames).expect("write pcap");
    path
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p
}

/// The memory table on `pipe` as sorted CSV rows.
fn table(pipe: &Path) -> Vec<String> {
    sorted_rows(&client(&xacct_bin(), pipe, &["-s", "-O", "csv"]))
}

#[test]
fn pmacctd_imt_example_fills_the_memory_table() {
    let Some(text) = example("pmacctd-imt.conf.example") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let pipe = dir.join("collect.pipe");
    let conf = subst(
        &text,
        "pcap_interface: eth0",
        &format!(
            "pcap_savefile: {}\npcap_savefile_wait: true\nimt_path[foo]: {}",
            pcap(dir, 3).display(),
            pipe.display()
        ),
    );
    let conf = write(dir, "pmacctd-imt.conf", &conf);
    let mut d = Daemon::start(&conf, &dir.join("x.log"));
    d.wait_log("pcap_savefile_wait: keeping tables", Duration::from_secs(20));
    assert_eq!(
        table(&pipe),
        [
            "10.0.0.1,192.168.1.1,3,114",
            "10.0.0.2,192.168.1.2,3,114",
            "192.168.1.1,10.0.0.1,3,114",
            "192.168.1.2,10.0.0.9,3,114"
        ]
    );
    let log = d.terminate();
    // imt_buckets does nothing in xacct, and it says so; its pools' size alone (the number is
    // commented out) sets no budget of its own: the default applies.
    assert!(
        log.contains("imt_buckets: accepted, no effect: the memory table is a hash table that grows to its budget"),
        "{log}"
    );
    assert!(log.contains("memory budget: ") && log.contains("(default: "), "{log}");
}

#[test]
fn pmacctd_multiple_plugins_example_splits_in_and_out() {
    let Some(text) = example("pmacctd-multiple-plugins.conf.example") else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (pin, pout) = (dir.join("acct_in.pipe"), dir.join("acct_out.pipe"));
    let conf = subst(
        &text,
        "pcap_interface: eth0",
        &format!("pcap_savefile: {}\npcap_savefile_wait: true", pcap(dir, 2).display()),
    );
    let conf = subst(&conf, "/tmp/acct_in.pipe", &pin.display().to_string());
    let conf = subst(&conf, "/tmp/acct_out.pipe", &pout.display().to_string());
    let conf = write(dir, "pmacctd-multiple-plugins.conf", &conf);
    let mut d = Daemon::start(&conf, &dir.join("x.log"));
    d.wait_log("pcap_savefile_wait: keeping tables", Duration::from_secs(20));
    // in: src_host of traffic to 192.168/16; out: dst_host of traffic from it.
    assert_eq!(table(&pin), ["10.0.0.1,2,76", "10.0.0.2,2,76"]);
    assert_eq!(table(&pout), ["10.0.0.1,2,76", "10.0.0.9,2,76"]);
    d.terminate();
}

#[test]
fn pmacctd_sqlite3_example_writes_pmacct_s_own_table() {
    let Some(text) = example("pmacctd-sqlite3.conf.example") else { return };
    let Ok(schema) = std::fs::read_to_string(Path::new(SQL).join("pmacct-create-table_v1.sqlite3")) else {
        skip("pmacct's SQLite schema is not installed");
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let file = dir.join("pmacct.db");
    let db = Db::sqlite(&file);
    db.exec(&schema);
    let conf = subst(&text, "pcap_interface: eth0", &format!("pcap_savefile: {}", pcap(dir, 4).display()));
    let conf = subst(&conf, "/path/to/pmacct.db", &file.display().to_string());
    let conf = conf + &format!("sql_spool_dir[foo]: {}\n", dir.join("spool").display());
    let conf = write(dir, "pmacctd-sqlite3.conf", &conf);
    // The file's end ends the run: the last refresh writes everything.
    Daemon::start(&conf, &dir.join("x.log")).wait_exit(Duration::from_secs(30));
    let rows = db.rows("SELECT ip_src, ip_dst, SUM(packets), SUM(bytes) FROM acct GROUP BY 1, 2 ORDER BY 1, 2");
    assert_eq!(
        rows,
        [
            ["10.0.0.1", "192.168.1.1", "4", "152"],
            ["10.0.0.2", "192.168.1.2", "4", "152"],
            ["192.168.1.1", "10.0.0.1", "4", "152"],
            ["192.168.1.2", "10.0.0.9", "4", "152"],
        ]
    );
}

/// MariaDB with pmacct's own v1 database script, run under this test's database name; None
/// when the server is not there (skipped, a failure under CI).
fn mariadb_with_pmacct_schema() -> Option<Db> {
    let test = Db::mysql()?;
    let Ok(script) = std::fs::read_to_string(Path::new(SQL).join("pmacct-create-db_v1.mysql")) else {
        skip("pmacct's MySQL script is not installed");
        return None;
    };
    // The script drops and creates database `pmacct`; here it is this test's own.
    let script = script.replace("database if exists pmacct;", &format!("database if exists {DB};"));
    let script = subst(&script, "create database pmacct;", &format!("create database {DB};"));
    let script = subst(&script, "use pmacct;", &format!("use {DB};"));
    test.exec(&script);
    Some(Db { kind: Kind::My, file: None, name: DB.into() })
}

/// The MySQL plugin's keys of the examples, for this machine's server and this test's
/// database.
fn mysql_credentials(text: &str, spool: &Path) -> String {
    let c = subst(text, "sql_db[foo]: pmacct", &format!("sql_db[foo]: {DB}\nsql_host[foo]: 127.0.0.1"));
    let c = subst(&c, "sql_passwd[foo]: arealsmartpwd", "sql_passwd[foo]:");
    let c = subst(&c, "sql_user[foo]: pmacct", "sql_user[foo]: root");
    c + &format!("sql_spool_dir[foo]: {}\n", spool.display())
}

/// Drops this test's database however the test ends.
struct DropDb(Db);

impl Drop for DropDb {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.0.exec(&format!("DROP DATABASE IF EXISTS {DB}")));
    }
}

/// Both MySQL examples share the database, one after the other.
#[test]
fn mysql_examples_nfacctd_sql_and_pmacctd_sql() {
    let (Some(nf), Some(pm)) = (example("nfacctd-sql.conf.example"), example("pmacctd-sql.conf.example")) else {
        return;
    };
    let Some(db) = mariadb_with_pmacct_schema() else { return };
    let _drop = DropDb(db.clone());
    let strict = db.rows("SELECT @@GLOBAL.sql_mode");
    assert!(
        strict.iter().flatten().any(|m| m.contains("STRICT_TRANS_TABLES")),
        "MariaDB is not in strict mode: {strict:?}"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();

    // nfacctd-sql: no nfacctd_port; nfacctd would listen on 2100, and so does xacctd, unless
    // something else holds 2100 here (then the test adds nfacctd_port).
    let conf = mysql_credentials(&nf, &dir.join("spool_nf"));
    let free_2100 = std::net::UdpSocket::bind("[::]:2100").is_ok() && std::net::UdpSocket::bind("0.0.0.0:2100").is_ok();
    let (conf, port) = if free_2100 {
        (conf, 2100)
    } else {
        let p = free_udp_port();
        eprintln!("UDP port 2100 is busy here: adding nfacctd_port: {p}");
        (conf + &format!("nfacctd_port: {p}\n"), p)
    };
    let line = nf.lines().position(|l| l.starts_with("nfacctd_time_new")).expect("nfacctd_time_new") + 1;
    let path = write(dir, "nfacctd-sql.conf", &conf);
    let mut d = Daemon::start(&path, &dir.join("nf.log"));
    d.wait_log("listening:", Duration::from_secs(20));
    let h = xacct_wire::netflow::NetflowHeader { version: 5, unix_secs: 1_700_000_000, ..Default::default() };
    let f = |src: &str, dst: &str, packets| xacct_wire::netflow::FlowRecord {
        src_addr: src.parse().expect("ip"),
        dst_addr: dst.parse().expect("ip"),
        proto: 6,
        packets,
        bytes: packets * 100,
        ..Default::default()
    };
    send_udp(
        port,
        &[xacct_wire::netflow::encode_v5(&h, &[f("10.5.0.1", "10.6.0.1", 7), f("10.5.0.2", "10.6.0.1", 3)])],
    );
    // The collector reads within 50 ms; SIGTERM then flushes the SQL plugin.
    std::thread::sleep(Duration::from_secs(1));
    let log = d.terminate();
    assert!(
        log.contains(&format!("mode nfacctd: the config sets nfacctd_time_new ({}:{line})", path.display())),
        "{log}"
    );
    assert!(log.contains(&format!("listening: netflow collector udp [::]:{port}")), "{log}");
    assert!(!log.contains("capturing from"), "{log}");
    let rows =
        db.rows("SELECT ip_src, ip_dst, ip_proto, SUM(packets), SUM(bytes) FROM acct GROUP BY 1, 2, 3 ORDER BY 1");
    // The protocol is not in the aggregate: written as 0, "ip", as pmacct does.
    assert_eq!(rows, [["10.5.0.1", "10.6.0.1", "ip", "7", "700"], ["10.5.0.2", "10.6.0.1", "ip", "3", "300"]]);
    db.exec("DELETE FROM acct");

    // pmacctd-sql: sampling_rate 10 (one packet in ten, not renormalised) into the same table.
    let conf = mysql_credentials(&pm, &dir.join("spool_pm"));
    let conf = subst(&conf, "pcap_interface: eth0", &format!("pcap_savefile: {}", pcap(dir, 20).display()));
    let path = write(dir, "pmacctd-sql.conf", &conf);
    Daemon::start(&path, &dir.join("pm.log")).wait_exit(Duration::from_secs(30));
    // 80 packets of four flows, every tenth kept: 8 packets of 38 bytes.
    let total = db.rows("SELECT SUM(packets), SUM(bytes) FROM acct");
    assert_eq!(total, [["8", "304"]]);
    let hosts = db.rows("SELECT DISTINCT ip_src FROM acct ORDER BY 1");
    assert!(hosts.iter().all(|h| h[0].starts_with("10.0.0.") || h[0].starts_with("192.168.1.")), "{hosts:?}");
}

/// probe_netflow: pmacctd as a NetFlow v9 probe. Its receiver becomes a socket of this test,
/// which decodes what arrives: the pcap's four flows, every packet and byte.
#[test]
fn probe_netflow_example_exports_netflow_v9() {
    let Some(text) = example("probe_netflow.conf.example") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("receiver");
    rx.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let port = rx.local_addr().expect("addr").port();
    let conf = subst(&text, "daemonize: true", "daemonize: false");
    let conf = subst(&conf, "pcap_interface: eth0", &format!("pcap_savefile: {}", pcap(dir, 20).display()));
    let conf = subst(&conf, "nfprobe_receiver: 192.168.1.1:2100", &format!("nfprobe_receiver: 127.0.0.1:{port}"));
    let path = write(dir, "probe_netflow.conf", &conf);
    Daemon::start(&path, &dir.join("probe.log")).wait_exit(Duration::from_secs(30));
    let mut dec = xacct_wire::netflow::Decoder::default();
    let mut flows = std::collections::BTreeMap::new();
    let mut buf = [0u8; 65536];
    while flows.values().map(|(p, _)| p).sum::<u64>() < 80 {
        let n = rx.recv(&mut buf).expect("an export datagram");
        let h = dec
            .decode(
                "127.0.0.1".parse().expect("ip"),
                buf.get(..n).unwrap_or_default(),
                &mut |_h: &xacct_wire::netflow::NetflowHeader, r: &xacct_wire::netflow::FlowRecord| {
                    let e = flows.entry((r.src_addr, r.dst_addr, r.src_port, r.dst_port, r.proto)).or_insert((0, 0));
                    e.0 += r.packets;
                    e.1 += r.bytes;
                },
            )
            .expect("decodes");
        assert_eq!(h.header.version, 9);
    }
    assert_eq!(flows.len(), 4, "{flows:?}");
    // 20 packets of 38 bytes (IP length) per flow.
    assert!(flows.values().all(|v| *v == (20, 760)), "{flows:?}");
}

/// probe_sflow: pmacctd as an sFlow agent sampling one packet in 20. Its receiver becomes a
/// socket of this test: flow samples at rate 20 from sub-agent 1402, as many as the probe
/// says it took, and the counter sample sent at shutdown.
#[test]
fn probe_sflow_example_exports_sflow() {
    let Some(text) = example("probe_sflow.conf.example") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("receiver");
    rx.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let port = rx.local_addr().expect("addr").port();
    let conf = subst(&text, "daemonize: true", "daemonize: false");
    let conf = subst(&conf, "pcap_interface: eth0", &format!("pcap_savefile: {}", pcap(dir, 500).display()));
    let conf = subst(&conf, "sfprobe_receiver: 192.168.1.1:6343", &format!("sfprobe_receiver: 127.0.0.1:{port}"));
    let path = write(dir, "probe_sflow.conf", &conf);
    let log = Daemon::start(&path, &dir.join("probe.log")).wait_exit(Duration::from_secs(30));
    let (mut flows, mut counters) = (0u64, 0u32);
    let mut buf = [0u8; 65536];
    while let Ok(n) = rx.recv(&mut buf) {
        let (d, c) = xacct_wire::sflow::decode_datagram(buf.get(..n).unwrap_or_default(), |s| {
            assert_eq!(s.sampling_rate, 20);
            flows += 1;
        })
        .expect("decodes");
        assert_eq!(d.sub_agent_id, 1402);
        counters += c.counter_samples;
        if counters > 0 {
            break;
        }
    }
    assert_eq!(counters, 1, "the counter sample at shutdown");
    // 2000 packets at 1 in 20: about 100 samples.
    assert!((40..=200).contains(&flows), "{flows} samples");
    assert_eq!(support::counter(&log, "samples_taken"), Some(flows), "{log}");
}
