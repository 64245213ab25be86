//! A spooled batch is written only to the target it was made for.
//!
//! xacctd runs with its database unavailable, so its batches wait in the spool, and is
//! SIGKILLed. The configuration then points the plugin at another database, then at another
//! table of the first one: the old batches must not be written there, must be reported (log
//! line naming their directory, batches, rows and target; `spool_orphaned_*` in `xacct -t`
//! and the final counters) and must stay on disk byte for byte. With the original target
//! configured again they are written there, once: the table ends with exactly two runs' worth
//! (the spooled one and the last one's own). Each run reads the same pcap.
//!
//! Also: a spool left by an xacct version that did not record targets is not written
//! anywhere until the operator moves it into the target's spool as the log says; then it is,
//! and a batch of it that had been committed before is recognised by its old marker.

mod sqlsupport;
mod support;

use sqlsupport::{memory_rows, sql_as_csv, sum, Db, FreshDb};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::proxy::Proxy;
use support::{client, counter, query_csv, savefile_conf, table, xacct_bin, Daemon};
use xacct_sql::batch::Batch;

const AGG: &str = "src_host,dst_host,src_port,dst_port,proto";

/// The SQL plugin's part of `xacct -t` (it comes after the memory plugin's).
fn sql_section(status: &str) -> &str {
    status.split_once("plugin s (").map_or_else(|| panic!("no SQL plugin in:\n{status}"), |(_, s)| s)
}

fn sql_counter(status: &str, name: &str) -> u64 {
    counter(sql_section(status), name).unwrap_or_else(|| panic!("no {name} in:\n{status}"))
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

/// Every spool entry file under `root`, with its bytes.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("list spool").flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "entry") {
                m.insert(p.clone(), std::fs::read(&p).expect("read entry"));
            }
        }
    }
    m
}

/// The batches of a snapshot: (batches, rows, packets).
fn batches_in(s: &BTreeMap<PathBuf, Vec<u8>>) -> (u64, u64, u64) {
    let mut out = (0, 0, 0);
    for p in s.keys() {
        let id: u64 = p.file_stem().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()).expect("entry id");
        let b: Batch = xacct_sql::spool::read_entry(p, id).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        out.0 += 1;
        out.1 += b.rows.len() as u64;
        out.2 += b.rows.iter().map(|r| r.packets).sum::<u64>();
    }
    out
}

struct Run<'a> {
    dir: &'a Path,
    pcap: &'a Path,
    plugin: &'a str,
}

impl Run<'_> {
    /// Starts xacctd on the pcap with a memory plugin and SQL plugin `s` (`keys`: its
    /// connection lines) writing `table` every second; waits until it read the whole file.
    fn start(&self, name: &str, keys: &str, table: &str) -> (Daemon, PathBuf) {
        let pipe = self.dir.join(format!("{name}.pipe"));
        let conf = self.dir.join(format!("{name}.conf"));
        savefile_conf(
            &conf,
            self.pcap,
            &format!(
                "daemonize: false\npcap_savefile_wait: true\nplugins: memory[m], {}[s]\naggregate: {AGG}\nimt_path[m]: {}\n\
{keys}sql_table[s]: {table}\nsql_table_version[s]: 9\nsql_table_autocreate[s]: true\nsql_refresh_time[s]: 1\n\
sql_spool_dir[s]: {}\n",
                self.plugin,
                pipe.display(),
                self.dir.join("spool").display()
            ),
        );
        let mut d = Daemon::start(&conf, &self.dir.join(format!("{name}.log")));
        d.wait_log("finished reading", Duration::from_secs(60));
        (d, pipe)
    }
}

/// The run-1 daemon's batches are all in the spool: two refreshes after the whole file was
/// processed (a refresh counted may have harvested just before), and one more for the push.
fn wait_all_spooled(pipe: &Path) {
    let r0 = sql_counter(&client(&xacct_bin(), pipe, &["-t"]), "refreshes");
    wait_status(pipe, "three more refreshes", |s| sql_counter(s, "refreshes") >= r0 + 3);
}

fn kill(d: Daemon) {
    support::signal(d.pid(), nix::sys::signal::Signal::SIGKILL);
    let t = Instant::now();
    while std::fs::read_to_string(format!("/proc/{}/status", d.pid())).is_ok_and(|s| !s.contains("State:\tZ")) {
        assert!(t.elapsed() < Duration::from_secs(10), "xacctd survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A database that can be unavailable for the first run, and another one.
struct Targets {
    /// Connection lines of the first and the second database.
    keys_a: String,
    keys_b: String,
    /// `(db, table)` as the plugin's log names the first database's target.
    describe_a: Box<dyn Fn(&str) -> String>,
    a: Db,
    b: Db,
    /// Makes the second database reachable (before run 2), then the first (before run 3).
    up_b: Box<dyn Fn()>,
    up_a: Box<dyn Fn()>,
}

fn spool_follows_its_target(dir: &Path, plugin: &str, t: Targets) {
    let pcap = dir.join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(2_000, 200, 4)).expect("pcap");
    let run = Run { dir, pcap: &pcap, plugin };

    // 1: the database is unavailable; every batch waits in the spool; SIGKILL.
    let (d, pipe) = run.start("r1", &t.keys_a, "t1");
    let csv = query_csv(&pipe);
    let (header, want) = memory_rows(&t.a, &csv);
    let col = header.split(',').position(|h| h == "PACKETS").expect("PACKETS column");
    let packets: u64 =
        table(&csv).1.iter().map(|r| r.split(',').nth(col).and_then(|p| p.parse::<u64>().ok()).expect("packets")).sum();
    wait_all_spooled(&pipe);
    kill(d);
    let spooled = snapshot(&dir.join("spool"));
    let (batches, rows, spooled_packets) = batches_in(&spooled);
    assert!(batches >= 1, "nothing spooled");
    assert_eq!(spooled_packets, packets, "run 1 spooled all its traffic");

    // 2: another database; 3: the first one, another table. Neither gets the old batches.
    let runs: [(&str, &str, &Db, &str); 2] = [("r2", &t.keys_b, &t.b, "t1"), ("r3", &t.keys_a, &t.a, "t2")];
    for (i, (name, keys, db, tbl)) in runs.into_iter().enumerate() {
        if i == 0 {
            (t.up_b)();
        } else {
            (t.up_a)();
        }
        let (mut d, pipe) = run.start(name, keys, tbl);
        let target = (t.describe_a)("t1");
        d.wait_log(&format!("were made for {target}, not for this plugin's target"), Duration::from_secs(10));
        let s = wait_status(&pipe, "the run's own rows written", |s| {
            sql_counter(s, "rows_written") >= want.len() as u64 && sql_counter(s, "spool_batches") == 0
        });
        assert_eq!(sql_counter(&s, "spool_orphaned_batches"), batches, "{s}");
        assert_eq!(sql_counter(&s, "spool_orphaned_rows"), rows, "{s}");
        let log = d.terminate();
        let line = log.lines().find(|l| l.contains("were made for")).expect("orphan line");
        eprintln!("{name}: {line}");
        assert!(line.contains(&format!("{batches} spooled batch(es) ({rows} rows")), "{line}");
        assert!(line.contains(&dir.join("spool").display().to_string()), "{line}");
        let last = log.lines().rev().find(|l| l.contains("plugin s/")).expect("final counters");
        assert_eq!(counter(last, "spool_orphaned_batches"), Some(batches), "{last}");
        // Its own traffic only, once.
        let got = sql_as_csv(db, tbl, &header, 9, "");
        assert!(got == want, "{name}: {tbl} is not one run's traffic: {} rows", got.len());
        assert_eq!(sum(db, tbl, "packets"), packets, "{name}");
        assert!(!db.table_exists("t1") || tbl == "t1", "{name}: t1 made in the first database");
        assert_eq!(snapshot(&dir.join("spool")), spooled, "{name}: the old batches were touched");
    }

    // 4: the original target again: the old batches are written there, once.
    let (mut d, pipe) = run.start("r4", &t.keys_a, "t1");
    d.wait_log("left in the spool by an earlier run", Duration::from_secs(10));
    let s = wait_status(&pipe, "the spool replayed", |s| {
        sql_counter(s, "rows_written") >= rows + want.len() as u64 && sql_counter(s, "spool_batches") == 0
    });
    assert!(sql_counter(&s, "batches_replayed") >= batches, "{s}");
    assert_eq!(sql_counter(&s, "batches_duplicate"), 0, "{s}");
    assert_eq!(sql_counter(&s, "spool_orphaned_batches"), 0, "{s}");
    let log = d.terminate();
    assert!(!log.contains("were made for"), "{log}");
    assert_eq!(db_rows(&t.a, "t1"), want.len() as u64);
    assert_eq!(sum(&t.a, "t1", "packets"), 2 * packets, "the spooled run and this one, each once");
    assert!(snapshot(&dir.join("spool")).is_empty(), "batches left in the spool");
}

fn db_rows(db: &Db, t: &str) -> u64 {
    db.count(&format!("SELECT count(*) FROM {t}"))
}

#[test]
fn sqlite3_spooled_batches_go_to_their_own_database_and_table_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The first file's directory does not exist yet: SQLite cannot open it.
    let (fa, fb) = (dir.path().join("a").join("a.db"), dir.path().join("b.db"));
    let (a, b) = (Db::sqlite(&fa), Db::sqlite(&fb));
    let adir = dir.path().join("a");
    let shown = fa.display().to_string();
    spool_follows_its_target(
        dir.path(),
        "sqlite3",
        Targets {
            keys_a: a.conf("s"),
            keys_b: b.conf("s"),
            describe_a: Box::new(move |t| format!("sqlite3 {shown} table {t}")),
            a,
            b,
            up_b: Box::new(|| {}),
            up_a: Box::new(move || std::fs::create_dir(&adir).expect("mkdir")),
        },
    );
}

#[test]
fn pgsql_spooled_batches_go_to_their_own_database_and_table_only() {
    let (Some(fa), Some(fb)) = (FreshDb::pg("spool_a"), FreshDb::pg("spool_b")) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // Both databases through one proxy: the same host and port, only sql_db differs.
    let proxy = std::sync::Arc::new(Proxy::start("127.0.0.1:5432".parse().expect("addr")));
    proxy.cut();
    let port = proxy.port();
    let name_a = fa.db.name.clone();
    let p = proxy.clone();
    spool_follows_its_target(
        dir.path(),
        "pgsql",
        Targets {
            keys_a: fa.db.conf_via("s", port),
            keys_b: fb.db.conf_via("s", port),
            describe_a: Box::new(move |t| format!("pgsql 127.0.0.1:{port} database {name_a} table {t}")),
            a: fa.db.clone(),
            b: fb.db.clone(),
            up_b: Box::new(move || p.restore()),
            up_a: Box::new(|| {}),
        },
    );
}

/// Two batches as the previous xacct version spooled them (entries directly in
/// `sql_spool_dir`, no target recorded) for table `t1` of `db`: keys 10.9.0.x, 5 + 7 packets;
/// the second one was committed before that version stopped (its marker, under the old spool
/// name, is in the database).
fn legacy_spool(root: &Path, db: &Db) -> u64 {
    use xacct_core::aggregate::Aggregate;
    use xacct_core::record::{Addr, Record};
    use xacct_sql::batch::Row;
    use xacct_sql::schema::{Backend, Layout};
    let l = Layout::new(Backend::Sqlite, 9, &Aggregate::parse(AGG).expect("aggregate"), false, false, false, false)
        .expect("layout");
    let batch = |id: u64, k: u8, packets: u64| {
        let rows = (0..2u8)
            .map(|i| {
                let r = Record {
                    src_ip: Addr::V4([10, 9, k, i]),
                    dst_ip: Addr::V4([10, 9, 9, 9]),
                    src_port: 7,
                    dst_port: 7,
                    proto: 17,
                    ..Record::default()
                };
                Row { keys: l.key_values(&r), packets: packets + u64::from(i), bytes: 1000, flows: 0, tcp_flags: 0 }
            })
            .collect();
        Batch { id, table: "t1".into(), bin: None, shape: l.shape(), rows, made: 0, recovery: false, target: None }
    };
    let mut spool = xacct_sql::spool::Spool::open(root).expect("old spool");
    let (b1, b2) = (batch(1_000_000, 1, 2), batch(2_000_000, 2, 3));
    for b in [&b1, &b2] {
        let json = serde_json::to_string(b).expect("json");
        assert!(!json.contains("target"), "{json}");
        spool.push(b.id, b).expect("push");
    }
    drop(spool);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let old_name = format!("{}:{}", host.trim(), std::fs::canonicalize(root).expect("root").display());
    db.exec(&format!(
        "CREATE TABLE xacct_batches (spool VARCHAR(255) NOT NULL, batch BIGINT NOT NULL, written BIGINT NOT NULL, \
         PRIMARY KEY (spool, batch)); INSERT INTO xacct_batches VALUES ('{old_name}', {}, 0)",
        b2.id
    ));
    b1.rows.iter().map(|r| r.packets).sum()
}

#[test]
fn sqlite3_spool_of_the_older_layout_waits_for_the_operator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(1_000, 100, 6)).expect("pcap");
    let run = Run { dir: dir.path(), pcap: &pcap, plugin: "sqlite3" };
    let db = Db::sqlite(&dir.path().join("l.db"));
    let root = dir.path().join("spool");
    let first_batch_packets = legacy_spool(&root, &db);
    let old = snapshot(&root);
    assert_eq!(old.len(), 2);

    // Not written anywhere: reported, with the table they name and where they would go.
    let (mut d, pipe) = run.start("l1", &db.conf("s"), "t1");
    d.wait_log("did not record their target (tables: t1)", Duration::from_secs(10));
    let csv = query_csv(&pipe);
    let (header, want) = memory_rows(&db, &csv);
    let s = wait_status(&pipe, "the run's own rows written", |s| {
        sql_counter(s, "rows_written") >= want.len() as u64 && sql_counter(s, "spool_batches") == 0
    });
    assert_eq!((sql_counter(&s, "spool_orphaned_batches"), sql_counter(&s, "spool_orphaned_rows")), (2, 4), "{s}");
    let log = d.terminate();
    assert!(sql_as_csv(&db, "t1", &header, 9, "") == want, "only this run's traffic in t1");
    assert_eq!(snapshot(&root), old, "the old spool was touched");
    let line = log.lines().find(|l| l.contains("did not record their target")).expect("line");
    eprintln!("{line}");
    assert!(line.contains(&format!("in {} were spooled", root.display())), "{line}");
    let into = line.split_once("move the *.entry files into ").and_then(|(_, r)| r.split_once(", else")).expect(line).0;
    assert!(Path::new(into).starts_with(&root) && Path::new(into).is_dir(), "{line}");

    // The operator moves them into the target's spool, as the line says.
    for p in old.keys() {
        std::fs::rename(p, Path::new(into).join(p.file_name().expect("name"))).expect("move");
    }
    let (mut d, pipe) = run.start("l2", &db.conf("s"), "t1");
    d.wait_log("2 batch(es) left in the spool by an earlier run", Duration::from_secs(10));
    let s = wait_status(&pipe, "the spool replayed", |s| {
        sql_counter(s, "batches_duplicate") == 1 && sql_counter(s, "spool_batches") == 0
    });
    assert_eq!(sql_counter(&s, "spool_orphaned_batches"), 0, "{s}");
    d.terminate();
    let pcap_packets: u64 = {
        let col = header.split(',').position(|h| h == "PACKETS").expect("PACKETS");
        table(&csv).1.iter().map(|r| r.split(',').nth(col).and_then(|p| p.parse::<u64>().ok()).expect("packets")).sum()
    };
    // Two runs of the pcap, the first old batch; not the second, which had been committed.
    assert_eq!(sum(&db, "t1", "packets"), 2 * pcap_packets + first_batch_packets);
    assert_eq!(db_rows(&db, "t1"), want.len() as u64 + 2);
    assert!(snapshot(&root).is_empty());
}

/// Batches of one target put by hand into another target's spool are not written there: the
/// plugin moves them back, unchanged, to their own target's spool, and counts them.
#[test]
fn sqlite3_batch_in_another_targets_spool_is_moved_to_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(1_000, 100, 7)).expect("pcap");
    let run = Run { dir: dir.path(), pcap: &pcap, plugin: "sqlite3" };
    let (a, b) = (Db::sqlite(&dir.path().join("a").join("a.db")), Db::sqlite(&dir.path().join("b.db")));
    let root = dir.path().join("spool");

    // B's spool exists (one run written); then A, unavailable, spools its batches.
    let (d, _) = run.start("b1", &b.conf("s"), "t1");
    d.terminate();
    let b_spool: Vec<PathBuf> =
        std::fs::read_dir(&root).expect("root").flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    assert_eq!(b_spool.len(), 1, "{b_spool:?}");
    let (d, pipe) = run.start("a1", &a.conf("s"), "t1");
    let csv = query_csv(&pipe);
    wait_all_spooled(&pipe);
    kill(d);
    let spooled: BTreeMap<PathBuf, Vec<u8>> =
        snapshot(&root).into_iter().filter(|(p, _)| !p.starts_with(&b_spool[0])).collect();
    let (batches, rows, _) = batches_in(&spooled);
    assert!(batches >= 1);

    // By mistake, into B's spool.
    for p in spooled.keys() {
        std::fs::rename(p, b_spool[0].join(p.file_name().expect("name"))).expect("move");
    }
    let (mut d, pipe) = run.start("b2", &b.conf("s"), "t1");
    d.wait_log("not written; moved to", Duration::from_secs(10));
    let s = wait_status(&pipe, "its own rows written", |s| sql_counter(s, "spool_batches") == 0);
    assert_eq!((sql_counter(&s, "spool_orphaned_batches"), sql_counter(&s, "spool_orphaned_rows")), (batches, rows));
    d.terminate();
    assert_eq!(snapshot(&root), spooled, "moved back unchanged");
    let (header, want) = memory_rows(&b, &csv);
    assert_eq!(sql_as_csv(&b, "t1", &header, 9, "").len(), want.len());
    let packets = |db: &Db| sum(db, "t1", "packets");
    let one_run: u64 = {
        let col = header.split(',').position(|h| h == "PACKETS").expect("PACKETS");
        table(&csv).1.iter().map(|r| r.split(',').nth(col).and_then(|p| p.parse::<u64>().ok()).expect("packets")).sum()
    };
    assert_eq!(packets(&b), 2 * one_run, "B: its two runs only");

    // A, reachable now, writes them.
    std::fs::create_dir(dir.path().join("a")).expect("mkdir");
    let (d, pipe) = run.start("a2", &a.conf("s"), "t1");
    wait_status(&pipe, "the spool replayed", |s| {
        sql_counter(s, "spool_batches") == 0 && sql_counter(s, "rows_written") >= rows
    });
    d.terminate();
    assert_eq!(packets(&a), 2 * one_run, "A: the spooled run and this one");
    assert!(snapshot(&root).is_empty());
}
