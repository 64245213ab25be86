//! The writers against the real databases: a batch written twice (a crash after the commit,
//! before the spool forgot it) is recognised by its marker and not applied again; the next
//! batch for the same keys UPDATEs them; markers are pruned; data that can never fit is
//! reported as a permanent error (so it cannot block the spool), a missing table as a
//! transient one.

use xacct_core::aggregate::Aggregate;
use xacct_core::record::{Addr, Record};
use xacct_sql::batch::{Batch, Row};
use xacct_sql::db::{self, Create, ErrKind, Mode, Target};
use xacct_sql::schema::{Backend, Layout};

fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn target(b: Backend, sqlite: &std::path::Path) -> Option<Target> {
    let t = match b {
        Backend::Pgsql => Target {
            backend: b,
            host: "127.0.0.1".into(),
            port: Some(5432),
            user: "postgres".into(),
            passwd: String::new(),
            db: "test".into(),
        },
        Backend::Mysql => Target {
            backend: b,
            host: "127.0.0.1".into(),
            port: Some(3306),
            user: "root".into(),
            passwd: String::new(),
            db: "test".into(),
        },
        Backend::Sqlite => Target {
            backend: b,
            host: "localhost".into(),
            port: None,
            user: String::new(),
            passwd: String::new(),
            db: sqlite.display().to_string(),
        },
    };
    match db::connect(&t, Create::No) {
        Ok(_) => Some(t),
        Err(e) => {
            assert!(!under_ci(), "cannot skip under CI=true: {} unreachable: {e}", b.name());
            eprintln!("SKIP: {} unreachable: {e}", b.name());
            None
        }
    }
}

fn layout(b: Backend) -> Layout {
    Layout::new(b, 9, &Aggregate::parse("src_host,dst_port,proto").expect("aggregate"), false, true, false, false)
        .expect("layout")
}

fn batch(l: &Layout, id: u64, table: &str, packets: u64) -> Batch {
    let rows = (1..=3u8)
        .map(|i| {
            let r = Record { src_ip: Addr::V4([10, 0, 0, i]), dst_port: 80, proto: 6, ..Record::default() };
            Row { keys: l.key_values(&r), packets, bytes: packets * 100, flows: 0, tcp_flags: 0 }
        })
        .collect();
    Batch {
        id,
        table: table.to_string(),
        bin: Some(1_700_000_000),
        shape: l.shape(),
        rows,
        made: 0,
        recovery: false,
        target: None,
    }
}

/// A session of the test's own to the PostgreSQL target.
fn pg_client(t: &Target) -> Result<postgres::Client, postgres::Error> {
    postgres::Config::new().host(&t.host).port(5432).user(&t.user).dbname(&t.db).connect(postgres::NoTls)
}

/// A session of the test's own to MariaDB's `test` database.
fn my_conn() -> Result<mysql::Conn, mysql::Error> {
    mysql::Conn::new(
        mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .user(Some("root"))
            .pass(Some(""))
            .db_name(Some("test")),
    )
}

/// (rows, packets) of `table`, read over a connection of the test's own.
fn sums(b: Backend, t: &Target, table: &str) -> (u64, u64) {
    let q = format!("SELECT COUNT(*), COALESCE(SUM(packets), 0) FROM {}", b.quote(table));
    match b {
        Backend::Pgsql => {
            let mut cl = pg_client(t).expect("pg");
            let r = cl
                .query_one(
                    &format!("SELECT COUNT(*)::bigint, COALESCE(SUM(packets), 0)::bigint FROM {}", b.quote(table)),
                    &[],
                )
                .expect("sum");
            (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64)
        }
        Backend::Mysql => {
            use mysql::prelude::Queryable;
            let mut cl = my_conn().expect("mysql");
            let r: Option<(u64, u64)> = cl.query_first(&q).expect("sum");
            r.expect("row")
        }
        Backend::Sqlite => {
            let cl = rusqlite::Connection::open(&t.db).expect("sqlite");
            cl.query_row(&q, [], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))).expect("sum")
        }
    }
}

fn drop_table(b: Backend, t: &Target, table: &str) {
    let q = format!("DROP TABLE IF EXISTS {}", b.quote(table));
    let spool = format!("DELETE FROM xacct_batches WHERE spool LIKE 'test-{}-%'", std::process::id());
    match b {
        Backend::Pgsql => {
            if let Ok(mut cl) = pg_client(t) {
                let _ = cl.batch_execute(&q);
                let _ = cl.batch_execute(&spool);
            }
        }
        Backend::Mysql => {
            use mysql::prelude::Queryable;
            if let Ok(mut cl) = my_conn() {
                let _ = cl.query_drop(&q);
                let _ = cl.query_drop(&spool);
            }
        }
        Backend::Sqlite => {}
    }
}

fn markers(b: Backend, t: &Target, spool: &str) -> u64 {
    let q = format!("SELECT COUNT(*) FROM xacct_batches WHERE spool = '{spool}'");
    match b {
        Backend::Pgsql => {
            let mut cl = pg_client(t).expect("pg");
            cl.query_one(&q, &[]).expect("markers").get::<_, i64>(0) as u64
        }
        Backend::Mysql => {
            use mysql::prelude::Queryable;
            let mut cl = my_conn().expect("mysql");
            cl.query_first::<u64, _>(&q).expect("markers").expect("row")
        }
        Backend::Sqlite => {
            let cl = rusqlite::Connection::open(&t.db).expect("sqlite");
            cl.query_row(&q, [], |r| r.get::<_, i64>(0)).expect("markers") as u64
        }
    }
}

fn exactly_once(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(t) = target(b, &dir.path().join("x.db")) else { return };
    let table = format!("eo_{}_{}", std::process::id(), b.name());
    struct Guard(Backend, Target, String);
    impl Drop for Guard {
        fn drop(&mut self) {
            drop_table(self.0, &self.1, &self.2);
        }
    }
    let _g = Guard(b, t.clone(), table.clone());
    let l = layout(b);
    let spool = format!("test-{}-{}", std::process::id(), b.name());
    let mut c = db::connect(&t, Create::Ours(l.create_table("{}"))).expect("connect");
    let mode = Mode::default();

    let b1 = batch(&l, 10, &table, 2);
    let o = c.write(&b1, &spool, 0, 1_700_000_100, mode).expect("first write");
    assert_eq!((o.rows, o.inserted, o.updated, o.duplicate), (3, 3, 0, false));
    assert_eq!(sums(b, &t, &table), (3, 6));

    // The same batch again, as after a crash between commit and spool removal.
    let o = c.write(&b1, &spool, 0, 1_700_000_200, mode).expect("replay");
    assert!(o.duplicate && o.rows == 0, "{o:?}");
    assert_eq!(sums(b, &t, &table), (3, 6), "nothing written twice");
    // Also from another connection (another writer, or the next start).
    let mut c2 = db::connect(&t, Create::No).expect("connect");
    assert!(c2.write(&b1, &spool, 0, 1_700_000_200, mode).expect("replay").duplicate);

    // A new batch for the same keys and bin updates them.
    let o = c.write(&batch(&l, 11, &table, 5), &spool, 0, 1_700_000_300, mode).expect("update");
    assert_eq!((o.rows, o.inserted, o.updated), (3, 0, 3));
    assert_eq!(sums(b, &t, &table), (3, 21));

    // Markers below the spool's front are pruned in the same transaction.
    assert_eq!(markers(b, &t, &spool), 2);
    c.write(&batch(&l, 12, &table, 1), &spool, 12, 1_700_000_400, mode).expect("prune");
    assert_eq!(markers(b, &t, &spool), 1);

    // A missing table without a way to create it: transient (the operator may create it).
    let e = c2.write(&batch(&l, 13, &format!("{table}_missing"), 1), &spool, 0, 0, mode).expect_err("missing table");
    assert_eq!(e.kind, ErrKind::Transient, "{e}");

    // Counters beyond the column's range can never be written: permanent. (SQLite's INT
    // takes any 64-bit value.)
    if b != Backend::Sqlite {
        let mut huge = batch(&l, 14, &table, 1);
        huge.rows[0].keys[7] = xacct_sql::batch::Value::Text("10.9.9.9".into());
        huge.rows[0].packets = 1 << 40;
        let e = c.write(&huge, &spool, 0, 0, mode).expect_err("out of range");
        assert_eq!(e.kind, ErrKind::Permanent, "{e}");
        // The failed transaction left nothing behind.
        let mut c3 = db::connect(&t, Create::No).expect("connect");
        assert_eq!(sums(b, &t, &table), (3, 24));
        assert!(!c3.write(&huge, &spool, 0, 0, mode).is_ok_and(|o| o.duplicate));
    }
}

#[test]
fn sqlite_batches_apply_once() {
    exactly_once(Backend::Sqlite);
}

#[test]
fn pgsql_batches_apply_once() {
    exactly_once(Backend::Pgsql);
}

#[test]
fn mysql_batches_apply_once() {
    exactly_once(Backend::Mysql);
}

/// A table made by another definition (here `class_id` as a number, as an operator's own
/// schema might have it): PostgreSQL gives an uncast text parameter its column's type, and the
/// client used to fail with only "error serializing parameter N", taken for a lost connection.
/// The error names the column and is transient (the operator can fix the table); nothing is
/// written, and once the table is right the same batch goes in.
#[test]
fn pgsql_table_of_another_shape_is_named_and_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(t) = target(Backend::Pgsql, &dir.path().join("x.db")) else { return };
    let table = format!("eo_{}_shape", std::process::id());
    struct Guard(Target, String);
    impl Drop for Guard {
        fn drop(&mut self) {
            drop_table(Backend::Pgsql, &self.0, &self.1);
        }
    }
    let _g = Guard(t.clone(), table.clone());
    let l = layout(Backend::Pgsql);
    let good = l.create_table(&Backend::Pgsql.quote(&table));
    let bad = good.replace("class_id CHAR(16)", "class_id INT").replace("DEFAULT ' '", "DEFAULT 0");
    assert_ne!(good, bad, "{good}");
    let mut admin = pg_client(&t).expect("pg");
    admin.batch_execute(&bad).expect("create the odd table");
    let spool = format!("test-{}-shape", std::process::id());
    let b = batch(&l, 20, &table, 2);
    let mut c = db::connect(&t, Create::No).expect("connect");
    let e = c.write(&b, &spool, 0, 1_700_000_100, Mode::default()).expect_err("odd table");
    assert_eq!(e.kind, ErrKind::Transient, "{e}");
    assert!(e.to_string().contains("column class_id is int4"), "{e}");
    assert_eq!(sums(Backend::Pgsql, &t, &table), (0, 0));
    admin.batch_execute(&format!("DROP TABLE {}; {good}", Backend::Pgsql.quote(&table))).expect("fix the table");
    let mut c = db::connect(&t, Create::No).expect("connect");
    let o = c.write(&b, &spool, 0, 1_700_000_100, Mode::default()).expect("write after the fix");
    assert_eq!((o.inserted, o.duplicate), (3, false));
    assert_eq!(sums(Backend::Pgsql, &t, &table), (3, 6));
}

/// Runs `sql` on an admin session of the test's own, in an open transaction that
/// `finish` then commits.
enum Admin {
    Pg(postgres::Client),
    My(mysql::Conn),
}

impl Admin {
    fn open(b: Backend, t: &Target) -> Admin {
        match b {
            Backend::Pgsql => Admin::Pg(pg_client(t).expect("pg")),
            _ => Admin::My(my_conn().expect("mysql")),
        }
    }

    fn run(&mut self, sql: &str) {
        use mysql::prelude::Queryable;
        match self {
            Admin::Pg(c) => c.batch_execute(sql).expect(sql),
            Admin::My(c) => c.query_drop(sql).expect(sql),
        }
    }
}

/// Two writers of one table (two plugins sharing it): this one's UPDATE finds no row, then
/// another session inserts the same key and commits before this one's INSERT. That duplicate
/// key is a race, not bad data: the write fails transient (or waits and updates, where the
/// server's locking lets it), and the retry adds the counters to the other writer's row.
/// With `sql_dont_try_update` the same collision is permanent, as the operator chose INSERT.
fn racing_writers(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(t) = target(b, &dir.path().join("x.db")) else { return };
    let (table, other) =
        (format!("race_{}_{}", std::process::id(), b.name()), format!("race_{}_{}_src", std::process::id(), b.name()));
    struct Guard(Backend, Target, Vec<String>);
    impl Drop for Guard {
        fn drop(&mut self) {
            for t in &self.2 {
                drop_table(self.0, &self.1, t);
            }
        }
    }
    let _g = Guard(b, t.clone(), vec![table.clone(), other.clone()]);
    let l = layout(b);
    let spool = format!("test-{}-race-{}", std::process::id(), b.name());
    let mut c = db::connect(&t, Create::Ours(l.create_table("{}"))).expect("connect");
    // The other writer's rows, made by xacct in a table of their own, then copied under an
    // open transaction so that their keys are taken but not yet visible.
    c.write(&batch(&l, 1, &other, 7), &spool, 0, 1_700_000_100, Mode::default()).expect("source rows");
    c.write(&batch(&l, 2, &table, 1), &spool, 0, 1_700_000_100, Mode::default()).expect("create the table");
    let mut admin = Admin::open(b, &t);
    admin.run(&format!("DELETE FROM {}", b.quote(&table)));
    for (id, mode, permanent) in
        [(3, Mode::default(), false), (4, Mode { dont_try_update: true, ..Mode::default() }, true)]
    {
        admin.run("BEGIN");
        admin.run(&format!("INSERT INTO {} SELECT * FROM {}", b.quote(&table), b.quote(&other)));
        let ours = batch(&l, id, &table, 5);
        let res = std::thread::scope(|s| {
            let w = s.spawn(|| {
                let mut c = db::connect(&t, Create::No).expect("connect");
                c.write(&ours, &spool, 0, 1_700_000_200, mode)
            });
            // Long enough for the writer to reach its INSERT and wait on the taken keys.
            std::thread::sleep(std::time::Duration::from_millis(700));
            admin.run("COMMIT");
            w.join().expect("writer")
        });
        match res {
            Err(e) if permanent => assert_eq!(e.kind, ErrKind::Permanent, "{e}"),
            Err(e) => {
                assert!(e.kind != ErrKind::Permanent && e.duplicate_key, "{e}");
                let mut c = db::connect(&t, Create::No).expect("connect");
                let o = c.write(&ours, &spool, 0, 1_700_000_300, mode).expect("the retry");
                assert_eq!(o.updated, 3, "{o:?}");
            }
            Ok(o) => assert!(!permanent && o.updated == 3, "{o:?}"),
        }
        if !permanent {
            assert_eq!(sums(b, &t, &table), (3, 3 * 12), "both writers' counters, once each");
        }
        admin.run(&format!("DELETE FROM {}", b.quote(&table)));
    }
}

#[test]
fn pgsql_racing_writers_of_one_table() {
    racing_writers(Backend::Pgsql);
}

#[test]
fn mysql_racing_writers_of_one_table() {
    racing_writers(Backend::Mysql);
}
