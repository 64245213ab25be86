//! Many writers creating the same tables at the same moment, on a database of the test's own
//! that starts empty each round: every connection must come up (the marker table
//! `xacct_batches` raced by all of them), and every batch must land in the data table that
//! they all create from pmacct's own schema file (which starts with `DROP TABLE IF EXISTS`, so
//! a creator that looked before another one created and filled the table would drop that
//! one's rows), and in a table of each writer's own created beside it.

use std::sync::{Arc, Barrier};
use xacct_core::aggregate::Aggregate;
use xacct_core::record::{Addr, Record};
use xacct_sql::batch::{Batch, Row};
use xacct_sql::db::{self, Create, ErrKind, Mode, Target};
use xacct_sql::schema::{Backend, Layout};

const WRITERS: usize = 12;
const ROUNDS: usize = 12;

fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn skip(why: &str) {
    assert!(!under_ci(), "cannot skip under CI=true: {why}");
    eprintln!("SKIP: {why}");
}

/// The `acct_v9` part of pmacct's schema file for `b` (its DROP and CREATE, without the
/// database, `proto` table and grants around them).
fn pmacct_v9(b: Backend) -> String {
    let file = match b {
        Backend::Pgsql => "pmacct-create-table_v9.pgsql",
        Backend::Mysql => "pmacct-create-db_v9.mysql",
        Backend::Sqlite => "pmacct-create-table_v9.sqlite3",
    };
    let path = std::path::Path::new("/usr/share/pmacct/sql").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lower = text.to_ascii_lowercase();
    let from = lower.find("drop table if exists acct_v9").unwrap_or_else(|| panic!("{file}: no DROP TABLE"));
    let create = lower[from..].find("create table acct_v9").expect("CREATE TABLE") + from;
    let to = lower[create..].find(");").expect("end of CREATE TABLE") + create + 2;
    text[from..to].to_string()
}

fn layout(b: Backend) -> Layout {
    Layout::new(b, 9, &Aggregate::parse("src_host,dst_port,proto").expect("aggregate"), false, true, false, false)
        .expect("layout")
}

/// One row whose key is the writer's own.
fn batch(l: &Layout, id: u64, table: &str, writer: usize) -> Batch {
    let r = Record { src_ip: Addr::V4([10, 0, 1, writer as u8]), dst_port: 80, proto: 6, ..Record::default() };
    let rows = vec![Row { keys: l.key_values(&r), packets: writer as u64 + 1, bytes: 100, flows: 0, tcp_flags: 0 }];
    Batch {
        id,
        table: table.into(),
        bin: Some(1_700_000_000),
        shape: l.shape(),
        rows,
        made: 0,
        recovery: false,
        target: None,
    }
}

/// A database that exists for one round (PostgreSQL, MariaDB) or a file (SQLite).
trait Fresh {
    fn target(&self) -> Target;
    /// Empty again for the next round.
    fn reset(&mut self);
    /// (rows, packets) of `table`.
    fn sums(&self, table: &str) -> (u64, u64);
}

struct PgFresh {
    admin: postgres::Client,
    name: String,
}

impl PgFresh {
    fn new() -> Option<PgFresh> {
        let admin = match postgres::Config::new()
            .host("127.0.0.1")
            .port(5432)
            .user("postgres")
            .dbname("postgres")
            .connect(postgres::NoTls)
        {
            Ok(c) => c,
            Err(e) => {
                skip(&format!("PostgreSQL on 127.0.0.1:5432: {e}"));
                return None;
            }
        };
        let mut f = PgFresh { admin, name: format!("xacct_t12_cc_{}", std::process::id()) };
        f.reset();
        Some(f)
    }

    fn client(&self) -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(5432)
            .user("postgres")
            .dbname(&self.name)
            .connect(postgres::NoTls)
            .expect("connect")
    }
}

impl Fresh for PgFresh {
    fn target(&self) -> Target {
        Target {
            backend: Backend::Pgsql,
            host: "127.0.0.1".into(),
            port: Some(5432),
            user: "postgres".into(),
            passwd: String::new(),
            db: self.name.clone(),
        }
    }

    fn reset(&mut self) {
        let n = &self.name;
        self.admin.batch_execute(&format!("DROP DATABASE IF EXISTS {n} WITH (FORCE)")).expect("drop database");
        self.admin.batch_execute(&format!("CREATE DATABASE {n}")).expect("create database");
    }

    fn sums(&self, table: &str) -> (u64, u64) {
        let r = self
            .client()
            .query_one(&format!("SELECT COUNT(*)::bigint, COALESCE(SUM(packets), 0)::bigint FROM {table}"), &[])
            .expect("sums");
        (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64)
    }
}

impl Drop for PgFresh {
    fn drop(&mut self) {
        let _ = self.admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

struct MyFresh {
    admin: mysql::Conn,
    name: String,
}

impl MyFresh {
    fn new() -> Option<MyFresh> {
        let admin = match mysql::Conn::new(
            mysql::OptsBuilder::new()
                .ip_or_hostname(Some("127.0.0.1"))
                .tcp_port(3306)
                .user(Some("root"))
                .pass(Some(""))
                .prefer_socket(false),
        ) {
            Ok(c) => c,
            Err(e) => {
                skip(&format!("MariaDB on 127.0.0.1:3306: {e}"));
                return None;
            }
        };
        let mut f = MyFresh { admin, name: format!("xacct_t12_cc_{}", std::process::id()) };
        f.reset();
        Some(f)
    }
}

impl Fresh for MyFresh {
    fn target(&self) -> Target {
        Target {
            backend: Backend::Mysql,
            host: "127.0.0.1".into(),
            port: Some(3306),
            user: "root".into(),
            passwd: String::new(),
            db: self.name.clone(),
        }
    }

    fn reset(&mut self) {
        use mysql::prelude::Queryable;
        let n = &self.name;
        self.admin.query_drop(format!("DROP DATABASE IF EXISTS {n}")).expect("drop database");
        self.admin.query_drop(format!("CREATE DATABASE {n}")).expect("create database");
    }

    fn sums(&self, table: &str) -> (u64, u64) {
        use mysql::prelude::Queryable;
        let mut c = mysql::Conn::new(
            mysql::OptsBuilder::new()
                .ip_or_hostname(Some("127.0.0.1"))
                .tcp_port(3306)
                .user(Some("root"))
                .pass(Some(""))
                .db_name(Some(&self.name))
                .prefer_socket(false),
        )
        .expect("connect");
        let r: Option<(u64, u64)> = c
            .query_first(format!("SELECT COUNT(*), CAST(COALESCE(SUM(packets), 0) AS UNSIGNED) FROM {table}"))
            .expect("sums");
        r.expect("row")
    }
}

impl Drop for MyFresh {
    fn drop(&mut self) {
        use mysql::prelude::Queryable;
        let _ = self.admin.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

struct LiteFresh {
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
}

impl Fresh for LiteFresh {
    fn target(&self) -> Target {
        Target {
            backend: Backend::Sqlite,
            host: "localhost".into(),
            port: None,
            user: String::new(),
            passwd: String::new(),
            db: self.file.display().to_string(),
        }
    }

    fn reset(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }

    fn sums(&self, table: &str) -> (u64, u64) {
        let c = rusqlite::Connection::open(&self.file).expect("open");
        c.query_row(&format!("SELECT COUNT(*), COALESCE(SUM(packets), 0) FROM {table}"), [], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })
        .expect("sums")
    }
}

fn race(b: Backend, fresh: &mut dyn Fresh) {
    let l = Arc::new(layout(b));
    let schema = pmacct_v9(b);
    let ours = l.create_table("{}");
    let want_packets: u64 = (1..=WRITERS as u64).sum();
    for round in 0..ROUNDS {
        if round > 0 {
            fresh.reset();
        }
        let t = fresh.target();
        let start = Arc::new(Barrier::new(WRITERS));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (t, start, l, schema, ours) = (t.clone(), start.clone(), l.clone(), schema.clone(), ours.clone());
                std::thread::spawn(move || -> Result<(), String> {
                    let spool = format!("cc-{w}");
                    start.wait();
                    // Half the writers create from pmacct's file, half from xacct's definition
                    // (as plugins with sql_table_schema and sql_table_autocreate side by side).
                    let create = if w % 2 == 0 {
                        Create::Schema { template: "acct_v9".into(), text: schema }
                    } else {
                        Create::Ours(ours)
                    };
                    let mut c = db::connect(&t, create.clone()).map_err(|e| format!("writer {w} connect: {e}"))?;
                    for (id, table) in [(1, "acct_v9".to_string()), (2, format!("own_{w}"))] {
                        let b = batch(&l, id, &table, w);
                        let mut tries = 0;
                        loop {
                            match c.write(&b, &spool, 0, 1_700_000_100, Mode::default()) {
                                Ok(_) => break,
                                // InnoDB's gap locks make concurrent UPDATE-then-INSERTs into
                                // one table deadlock now and then: the plugin retries those
                                // (on a new session) like any transient error. Creating the
                                // tables must never fail.
                                Err(e)
                                    if e.kind == ErrKind::Transient
                                        && matches!(e.what.as_str(), "UPDATE" | "INSERT")
                                        && tries < 5 =>
                                {
                                    tries += 1;
                                    c = db::connect(&t, create.clone())
                                        .map_err(|e| format!("writer {w} reconnect: {e}"))?;
                                }
                                Err(e) => return Err(format!("writer {w} {table} (try {tries}): {e}")),
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        let errors: Vec<String> = handles.into_iter().filter_map(|h| h.join().expect("writer thread").err()).collect();
        assert!(errors.is_empty(), "{} round {round}: {errors:#?}", b.name());
        assert_eq!(fresh.sums("acct_v9"), (WRITERS as u64, want_packets), "{} round {round}: shared table", b.name());
        for w in 0..WRITERS {
            assert_eq!(fresh.sums(&format!("own_{w}")), (1, w as u64 + 1), "{} round {round}: own_{w}", b.name());
        }
    }
}

#[test]
fn pgsql_concurrent_creation_every_writer_succeeds_and_no_row_is_lost() {
    let Some(mut f) = PgFresh::new() else { return };
    race(Backend::Pgsql, &mut f);
}

#[test]
fn mysql_concurrent_creation_every_writer_succeeds_and_no_row_is_lost() {
    let Some(mut f) = MyFresh::new() else { return };
    race(Backend::Mysql, &mut f);
}

#[test]
fn sqlite_concurrent_creation_every_writer_succeeds_and_no_row_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cc.db");
    let mut f = LiteFresh { _dir: dir, file };
    race(Backend::Sqlite, &mut f);
}
