//! What the SQL plugin tests share: the real databases on this machine (PostgreSQL on
//! 127.0.0.1:5432 as `postgres`, MariaDB on 127.0.0.1:3306 as `root`, both database `test`, or
//! a database of the test's own made for it and dropped afterwards) and SQLite files, unique
//! table names that are dropped afterwards, pmacct's own schema files, NetFlow input for
//! daemons that must stay up between refreshes, and the memory table's CSV and an SQL table in
//! one comparable form.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pg,
    My,
    Lite,
}

/// One database to test against.
#[derive(Debug, Clone)]
pub struct Db {
    pub kind: Kind,
    /// The SQLite file.
    pub file: Option<PathBuf>,
    /// PostgreSQL/MySQL database name.
    pub name: String,
}

pub fn pg_client(db: &str) -> Result<postgres::Client, postgres::Error> {
    postgres::Config::new()
        .host("127.0.0.1")
        .port(5432)
        .user("postgres")
        .dbname(db)
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect(postgres::NoTls)
}

/// A MariaDB connection to database `db` (none when empty).
pub fn my_conn(db: &str) -> Result<mysql::Conn, mysql::Error> {
    mysql::Conn::new(
        mysql::OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(3306)
            .user(Some("root"))
            .pass(Some(""))
            .db_name(Some(db).filter(|d| !d.is_empty()))
            .prefer_socket(false),
    )
}

impl Db {
    /// PostgreSQL's `test` database, or None (after `skip`, which fails under CI) when the
    /// server is not there.
    pub fn pg() -> Option<Db> {
        match pg_client("test") {
            Ok(_) => Some(Db { kind: Kind::Pg, file: None, name: "test".into() }),
            Err(e) => {
                crate::support::skip(&format!("PostgreSQL on 127.0.0.1:5432: {e}"));
                None
            }
        }
    }

    pub fn mysql() -> Option<Db> {
        match my_conn("test") {
            Ok(_) => Some(Db { kind: Kind::My, file: None, name: "test".into() }),
            Err(e) => {
                crate::support::skip(&format!("MariaDB on 127.0.0.1:3306: {e}"));
                None
            }
        }
    }

    pub fn sqlite(file: &Path) -> Db {
        Db { kind: Kind::Lite, file: Some(file.to_path_buf()), name: String::new() }
    }

    pub fn backend(&self) -> xacct_sql::schema::Backend {
        match self.kind {
            Kind::Pg => xacct_sql::schema::Backend::Pgsql,
            Kind::My => xacct_sql::schema::Backend::Mysql,
            Kind::Lite => xacct_sql::schema::Backend::Sqlite,
        }
    }

    /// The plugin type.
    pub fn plugin(&self) -> &'static str {
        self.backend().name()
    }

    /// The connection keys for plugin `p`, as config lines.
    pub fn conf(&self, p: &str) -> String {
        match self.kind {
            Kind::Pg => format!(
                "sql_host[{p}]: 127.0.0.1\nsql_port[{p}]: 5432\nsql_user[{p}]: postgres\nsql_db[{p}]: {}\n",
                self.name
            ),
            Kind::My => format!(
                "sql_host[{p}]: 127.0.0.1\nsql_port[{p}]: 3306\nsql_user[{p}]: root\nsql_passwd[{p}]:\nsql_db[{p}]: {}\n",
                self.name
            ),
            Kind::Lite => format!("sql_db[{p}]: {}\n", self.file.as_ref().map(|f| f.display().to_string()).unwrap_or_default()),
        }
    }

    /// As [`Db::conf`], with the server reached on `port` of 127.0.0.1 (a proxy's).
    pub fn conf_via(&self, p: &str, port: u16) -> String {
        self.conf(p)
            .lines()
            .map(|l| {
                if l.starts_with(&format!("sql_port[{p}]:")) {
                    format!("sql_port[{p}]: {port}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect()
    }

    /// A connection of its own that stays open (for a transaction or a lock across calls).
    pub fn session(&self) -> Session {
        match self.kind {
            Kind::Pg => Session::Pg(pg_client(&self.name).expect("connect")),
            Kind::My => Session::My(my_conn(&self.name).expect("connect")),
            Kind::Lite => {
                Session::Lite(rusqlite::Connection::open(self.file.as_ref().expect("sqlite file")).expect("open"))
            }
        }
    }

    pub fn exec(&self, sql: &str) {
        match self.kind {
            Kind::Pg => {
                pg_client(&self.name).expect("connect").batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Kind::My => {
                use mysql::prelude::Queryable;
                my_conn(&self.name).expect("connect").query_drop(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Kind::Lite => rusqlite::Connection::open(self.file.as_ref().expect("sqlite file"))
                .expect("open")
                .execute_batch(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// An expression giving `col` as text: every reader here reads the text form already
    /// (PostgreSQL's simple query protocol, MySQL's text protocol, SQLite's values), which
    /// for `inet` leaves out the /32 that a cast to text would add.
    pub fn text(&self, col: &str) -> String {
        col.to_string()
    }

    /// Rows of `sql`, every column read as text (NULL as "NULL").
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        match self.kind {
            Kind::Pg => {
                let mut c = pg_client(&self.name).expect("connect");
                c.simple_query(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .into_iter()
                    .filter_map(|m| match m {
                        postgres::SimpleQueryMessage::Row(r) => {
                            Some((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect())
                        }
                        _ => None,
                    })
                    .collect()
            }
            Kind::My => {
                use mysql::prelude::Queryable;
                let mut c = my_conn(&self.name).expect("connect");
                let rows: Vec<mysql::Row> = c.query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.into_iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| match r.as_ref(i) {
                                Some(mysql::Value::NULL) | None => "NULL".to_string(),
                                Some(mysql::Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
                                Some(v) => v.as_sql(true).trim_matches('\'').to_string(),
                            })
                            .collect()
                    })
                    .collect()
            }
            Kind::Lite => {
                let c = rusqlite::Connection::open(self.file.as_ref().expect("sqlite file")).expect("open");
                let mut st = c.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let n = st.column_count();
                let rows = st
                    .query_map([], |r| {
                        Ok((0..n)
                            .map(|i| match r.get_ref(i) {
                                Ok(rusqlite::types::ValueRef::Null) => "NULL".to_string(),
                                Ok(rusqlite::types::ValueRef::Integer(v)) => v.to_string(),
                                Ok(rusqlite::types::ValueRef::Real(v)) => v.to_string(),
                                Ok(rusqlite::types::ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
                                Ok(rusqlite::types::ValueRef::Blob(b)) => format!("{b:?}"),
                                Err(e) => format!("error {e}"),
                            })
                            .collect::<Vec<String>>())
                    })
                    .expect("query");
                rows.map(|r| r.expect("row")).collect()
            }
        }
    }

    /// One number.
    pub fn count(&self, sql: &str) -> u64 {
        let r = self.rows(sql);
        r.first().and_then(|r| r.first()).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{sql}: {r:?}"))
    }

    pub fn table_exists(&self, name: &str) -> bool {
        let sql = match self.kind {
            Kind::Pg => format!("SELECT count(*) FROM pg_tables WHERE tablename = '{name}'"),
            Kind::My => format!(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = '{name}'"
            ),
            Kind::Lite => format!("SELECT count(*) FROM sqlite_master WHERE type='table' AND name = '{name}'"),
        };
        self.count(&sql) > 0
    }

    /// Creates `table` from the repository's `sql/<backend>/acct*.sql` file of `version`.
    pub fn create_from_sql_file(&self, version: u8, table: &str) {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../sql")
            .join(self.plugin())
            .join(format!("{}.sql", xacct_sql::schema::default_table(version)));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let text = text.replace(
            &format!("CREATE TABLE {} (", xacct_sql::schema::default_table(version)),
            &format!("CREATE TABLE {table} ("),
        );
        assert!(text.contains(table), "{} has no CREATE TABLE line", file.display());
        self.exec(&text);
    }
}

/// One open connection (see [`Db::session`]).
pub enum Session {
    Pg(postgres::Client),
    My(mysql::Conn),
    Lite(rusqlite::Connection),
}

impl Session {
    pub fn exec(&mut self, sql: &str) {
        match self {
            Session::Pg(c) => c.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}")),
            Session::My(c) => {
                use mysql::prelude::Queryable;
                c.query_drop(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Session::Lite(c) => c.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }
}

/// A database made for one test (PostgreSQL or MariaDB: `xacct_t_<pid>_<tag>`, empty), dropped
/// when the test ends, however it ends: nothing of another test or engineer is in it, and
/// nothing of it stays behind.
pub struct FreshDb {
    pub db: Db,
}

impl FreshDb {
    fn name(tag: &str) -> String {
        format!("xacct_t_{}_{tag}", std::process::id())
    }

    fn admin(kind: Kind, sql: &str) {
        match kind {
            Kind::Pg => {
                pg_client("postgres").expect("connect").batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Kind::My => {
                use mysql::prelude::Queryable;
                my_conn("").expect("connect").query_drop(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Kind::Lite => unreachable!("SQLite has no server"),
        }
    }

    fn drop_sql(kind: Kind, name: &str) -> String {
        match kind {
            // FORCE: a daemon a failed assertion left running must not keep it alive.
            Kind::Pg => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            _ => format!("DROP DATABASE IF EXISTS {name}"),
        }
    }

    fn make(kind: Kind, tag: &str) -> FreshDb {
        let name = FreshDb::name(tag);
        FreshDb::admin(kind, &FreshDb::drop_sql(kind, &name));
        FreshDb::admin(kind, &format!("CREATE DATABASE {name}"));
        FreshDb { db: Db { kind, file: None, name } }
    }

    /// A new PostgreSQL database, or None (after `skip`) when the server is not there.
    pub fn pg(tag: &str) -> Option<FreshDb> {
        Db::pg().map(|_| FreshDb::make(Kind::Pg, tag))
    }

    pub fn mysql(tag: &str) -> Option<FreshDb> {
        Db::mysql().map(|_| FreshDb::make(Kind::My, tag))
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        let (kind, name) = (self.db.kind, self.db.name.clone());
        let _ = std::panic::catch_unwind(|| FreshDb::admin(kind, &FreshDb::drop_sql(kind, &name)));
    }
}

/// The `acct_v9` part of pmacct's own schema file for `kind` (its `DROP TABLE IF EXISTS` and
/// `CREATE TABLE`, without the database, `proto` table, COPY and grants around them), as an
/// operator would give it to `sql_table_schema`.
pub fn pmacct_v9_schema(kind: Kind) -> String {
    let file = match kind {
        Kind::Pg => "pmacct-create-table_v9.pgsql",
        Kind::My => "pmacct-create-db_v9.mysql",
        Kind::Lite => "pmacct-create-table_v9.sqlite3",
    };
    let path = Path::new("/usr/share/pmacct/sql").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lower = text.to_ascii_lowercase();
    let from = lower.find("drop table if exists acct_v9").unwrap_or_else(|| panic!("{file}: no DROP TABLE"));
    let create = lower[from..].find("create table acct_v9").expect("CREATE TABLE") + from;
    let to = lower[create..].find(");").expect("end of CREATE TABLE") + create + 2;
    text[from..to].to_string()
}

/// NetFlow flows `from..to`: keys repeat every 40 flows, so later phases also update earlier
/// rows.
pub fn flows(from: u32, to: u32) -> Vec<xacct_wire::netflow::FlowRecord> {
    (from..to)
        .map(|i| xacct_wire::netflow::FlowRecord {
            src_addr: std::net::IpAddr::from([10, 1, 0, (i % 40) as u8]),
            dst_addr: std::net::IpAddr::from([10, 2, 0, 1]),
            src_port: 1000 + (i % 40) as u16,
            dst_port: 80,
            proto: 6,
            packets: 1 + u64::from(i % 7),
            bytes: 100 + u64::from(i),
            ..xacct_wire::netflow::FlowRecord::default()
        })
        .collect()
}

/// The aggregate that [`flows`] fills.
pub const FLOW_AGG: &str = "src_host,dst_host,src_port,dst_port,proto";

/// Sends `records` as NetFlow v5 to 127.0.0.1:`port`, 20 to a datagram, `seq` counting on.
pub fn send_flows(port: u16, seq: &mut u32, records: &[xacct_wire::netflow::FlowRecord]) {
    use xacct_wire::netflow::{encode_v5, NetflowHeader};
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
    for chunk in records.chunks(20) {
        let h = NetflowHeader { version: 5, unix_secs: 1_700_000_000, sequence: *seq, ..NetflowHeader::default() };
        s.send_to(&encode_v5(&h, chunk), ("127.0.0.1", port)).expect("send");
        *seq += chunk.len() as u32;
    }
}

pub fn total_packets(records: &[xacct_wire::netflow::FlowRecord]) -> u64 {
    records.iter().map(|r| r.packets).sum()
}

/// Waits until `table` exists and holds `want` packets in all.
pub fn wait_packets(db: &Db, table: &str, want: u64, timeout: std::time::Duration) {
    let s = std::time::Instant::now();
    let packets = || if db.table_exists(table) { sum(db, table, "packets") } else { 0 };
    while packets() != want {
        assert!(s.elapsed() < timeout, "{table} holds {} packets, want {want}", packets());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The config of an xacctd that collects NetFlow on `port` into a memory plugin `m` and an
/// SQL plugin `s` of type `plugin` (`keys`: its connection lines) writing v9 table `table`
/// every second, spooling in `dir`/spool; `extra`: more lines. Files `<name>.conf`,
/// `<name>.pipe` in `dir`.
pub fn netflow_sql_conf(
    dir: &Path,
    name: &str,
    port: u16,
    plugin: &str,
    keys: &str,
    table: &str,
    extra: &str,
) -> PathBuf {
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(
        &path,
        format!(
            "daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nplugins: memory[m], {plugin}[s]\naggregate: {FLOW_AGG}\n\
imt_path[m]: {}\n{keys}sql_table[s]: {table}\nsql_table_version[s]: 9\nsql_refresh_time[s]: 1\nsql_spool_dir[s]: {}\n{extra}",
            dir.join(format!("{name}.pipe")).display(),
            dir.join("spool").display()
        ),
    )
    .expect("conf");
    path
}

/// Tables to drop when the test ends, however it ends.
pub struct Cleanup {
    db: Db,
    tables: Vec<String>,
    markers_of: Vec<String>,
}

impl Cleanup {
    pub fn new(db: &Db) -> Cleanup {
        Cleanup { db: db.clone(), tables: Vec::new(), markers_of: Vec::new() }
    }

    /// A unique lower-case table name (`x<pid>_<n>_<what>`), dropped at the end.
    pub fn table(&mut self, what: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let t = format!("x{}_{}_{what}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        self.tables.push(t.clone());
        t
    }

    /// Also drop `name` (a table a test did not name itself, e.g. a dynamic one).
    pub fn adopt(&mut self, name: &str) {
        self.tables.push(name.to_string());
    }

    /// Remove this spool's rows from `xacct_batches` at the end.
    pub fn markers(&mut self, spool_dir: &Path) {
        self.markers_of.push(spool_dir.display().to_string());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for t in &self.tables {
            let q = match self.db.kind {
                Kind::My => format!("DROP TABLE IF EXISTS `{t}`"),
                _ => format!("DROP TABLE IF EXISTS \"{t}\""),
            };
            let _ = std::panic::catch_unwind(|| self.db.exec(&q));
        }
        for s in &self.markers_of {
            // The spool of each target is a directory in sql_spool_dir.
            let q = format!("DELETE FROM xacct_batches WHERE spool LIKE '%:{s}/%' OR spool LIKE '%:{s}'");
            let _ = std::panic::catch_unwind(|| self.db.exec(&q));
        }
    }
}

/// The SQL columns that hold the memory CSV's columns, for a table of `version`.
fn column_for(header: &str, kind: Kind, version: u8) -> String {
    let new_ports = version >= 8 || kind == Kind::Pg;
    match header {
        "TAG" => if version >= 9 { "tag" } else { "agent_id" }.into(),
        "TAG2" => "tag2".into(),
        "SRC_MAC" => "mac_src".into(),
        "DST_MAC" => "mac_dst".into(),
        "VLAN" => "vlan".into(),
        "ETYPE" => "etype".into(),
        "SRC_AS" => "as_src".into(),
        "DST_AS" => "as_dst".into(),
        "SRC_IP" => "ip_src".into(),
        "DST_IP" => "ip_dst".into(),
        "SRC_NET" => "net_src".into(),
        "DST_NET" => "net_dst".into(),
        "SRC_MASK" => "mask_src".into(),
        "DST_MASK" => "mask_dst".into(),
        "SRC_PORT" => if new_ports { "port_src" } else { "src_port" }.into(),
        "DST_PORT" => if new_ports { "port_dst" } else { "dst_port" }.into(),
        "TCP_FLAGS" => "tcp_flags".into(),
        "PROTOCOL" => "ip_proto".into(),
        "TOS" => "tos".into(),
        "PACKETS" => "packets".into(),
        "FLOWS" => "flows".into(),
        "BYTES" => "bytes".into(),
        other => panic!("no SQL column for CSV column {other}"),
    }
}

/// `table`'s rows in the memory CSV's form (the columns of `header`, comma-separated, protocol
/// names as the client prints them), optionally only those with `stamp_inserted = bin`.
pub fn sql_as_csv(db: &Db, table: &str, header: &str, version: u8, filter: &str) -> BTreeSet<String> {
    let heads: Vec<&str> = header.split(',').collect();
    let cols: Vec<String> = heads.iter().map(|h| db.text(&column_for(h, db.kind, version))).collect();
    let sql = format!("SELECT {} FROM {table} {filter}", cols.join(", "));
    db.rows(&sql)
        .into_iter()
        .map(|r| {
            r.iter()
                .zip(&heads)
                .map(|(v, h)| match *h {
                    "PROTOCOL" => match v.parse::<u8>() {
                        Ok(n) => xacct_core::format::proto_name(n).map_or_else(|| n.to_string(), str::to_string),
                        Err(_) => v.trim().to_string(),
                    },
                    _ => v.trim().to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

/// Sum of a counter column.
pub fn sum(db: &Db, table: &str, col: &str) -> u64 {
    db.count(&format!("SELECT COALESCE(SUM({col}), 0) FROM {table}"))
}

/// The memory CSV's header and rows as `db` stores them: MariaDB keeps `ip_proto` in CHAR(6),
/// so protocol names are cut to 6 characters there.
pub fn memory_rows(db: &Db, csv: &str) -> (String, BTreeSet<String>) {
    let (header, rows) = crate::support::table(csv);
    let Some(i) = header.split(',').position(|h| h == "PROTOCOL").filter(|_| db.kind == Kind::My) else {
        return (header, rows);
    };
    let rows = rows
        .into_iter()
        .map(|r| {
            let mut f: Vec<String> = r.split(',').map(str::to_string).collect();
            if let Some(p) = f.get_mut(i) {
                p.truncate(6);
            }
            f.join(",")
        })
        .collect();
    (header, rows)
}
