//! Writing batches to PostgreSQL (`postgres`), MySQL/MariaDB (`mysql`) and SQLite (`rusqlite`).
//!
//! One batch is one transaction: it first looks for the batch's marker in `xacct_batches` (a
//! batch already committed is not written again), then writes the rows — UPDATE-then-INSERT by
//! default, INSERT only with `sql_dont_try_update`, PostgreSQL COPY with `sql_use_copy`,
//! multi-row INSERTs with `sql_multi_values` — then inserts the marker, prunes markers no
//! replay can need any more, and commits. Statements are prepared once per transaction.
//! Tables are checked (and created when configured) before the transaction, because MySQL
//! commits implicitly around DDL.

use crate::batch::{stamp, Batch, ParamKind, Row, Shape, TargetId, Value};
use crate::schema::Backend;
use std::collections::HashSet;
use std::time::Duration;

/// The table that makes writes exactly-once.
pub const MARKERS: &str = "xacct_batches";

/// Why a write failed, which decides what happens to the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrKind {
    /// The connection is gone or could not be made: reconnect, retry later.
    Connection,
    /// Worth retrying later (lock timeout, missing table the operator may create, …).
    Transient,
    /// The data can never be written as it is (out of range, constraint): retrying would block
    /// the spool forever.
    Permanent,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {msg}")]
pub struct DbError {
    pub kind: ErrKind,
    pub what: String,
    pub msg: String,
    /// A unique or primary-key violation: see [`Checked`]'s write for when that is the data's
    /// fault.
    pub duplicate_key: bool,
}

impl DbError {
    pub fn new(kind: ErrKind, what: impl Into<String>, msg: impl Into<String>) -> DbError {
        DbError { kind, what: what.into(), msg: msg.into(), duplicate_key: false }
    }

    fn duplicate_key(mut self, yes: bool) -> DbError {
        self.duplicate_key = yes;
        self
    }
}

/// Where to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub backend: Backend,
    /// Host name or address; `unix:/path` (MySQL) or a directory (PostgreSQL) for a socket;
    /// the database file for SQLite.
    pub host: String,
    pub port: Option<u16>,
    pub user: String,
    pub passwd: String,
    pub db: String,
}

impl Target {
    pub fn describe(&self) -> String {
        match self.backend {
            Backend::Sqlite => format!("sqlite3 {}", self.db),
            b => format!("{} {}@{}:{}/{}", b.name(), self.user, self.host, self.port_or_default(), self.db),
        }
    }

    /// This target as spooled batches record it; `table`: `sql_table` as configured.
    pub fn id(&self, table: &str) -> TargetId {
        match self.backend {
            Backend::Sqlite => TargetId {
                backend: self.backend.name().into(),
                host: String::new(),
                port: 0,
                // Absolute, as written: the directory may not exist yet (resolving links would
                // then give another name later), and relative paths depend on the cwd.
                db: std::path::absolute(&self.db).map_or_else(|_| self.db.clone(), |p| p.display().to_string()),
                table: table.into(),
            },
            b => TargetId {
                backend: b.name().into(),
                host: self.host.clone(),
                port: self.port_or_default(),
                db: self.db.clone(),
                table: table.into(),
            },
        }
    }

    fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.backend {
            Backend::Mysql => 3306,
            _ => 5432,
        })
    }
}

/// How rows are written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mode {
    pub dont_try_update: bool,
    pub use_copy: bool,
    /// Bytes per multi-row INSERT; 0 = one row per INSERT.
    pub multi_values: usize,
}

/// How a missing table comes to be.
#[derive(Debug, Clone)]
pub enum Create {
    /// It must exist (pmacct's default).
    No,
    /// `sql_table_schema`: the file's text with the configured `sql_table` value replaced by
    /// the expanded name, unquoted, wherever it occurs: pmacct expands the variables in the
    /// whole text, so its files' `CONSTRAINT acct_v9_pk` must stay one identifier (a quoted name
    /// would make it `"acct_v9"_pk`). Expanded names hold identifier characters only.
    Schema { template: String, text: String },
    /// `sql_table_autocreate`: xacct's definition, `{}` standing for the quoted name.
    Ours(String),
}

impl Create {
    fn sql(&self, name: &str, quoted: &str) -> Option<String> {
        match self {
            Create::No => None,
            Create::Schema { template, text } => Some(text.replace(template.as_str(), name)),
            Create::Ours(t) => Some(t.replace("{}", quoted)),
        }
    }
}

/// What a committed write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Rows written (UPDATEs that matched plus INSERTed rows).
    pub rows: u64,
    pub updated: u64,
    pub inserted: u64,
    /// The batch's marker was already there: nothing written.
    pub duplicate: bool,
}

/// One open connection.
pub trait Conn: Send {
    /// Writes `batch` exactly once, in one transaction (see the module doc). `prune_below`:
    /// markers of this spool with smaller ids may go.
    fn write(&mut self, batch: &Batch, spool: &str, prune_below: u64, now: i64, mode: Mode)
        -> Result<Outcome, DbError>;
}

/// Opens a connection, creates the marker table if needed, and wraps it so that tables are
/// checked (and created) once per connection.
pub fn connect(t: &Target, create: Create) -> Result<Box<dyn Conn>, DbError> {
    let inner: Box<dyn Engine> = match t.backend {
        Backend::Pgsql => Box::new(pg::Pg::connect(t)?),
        Backend::Mysql => Box::new(my::My::connect(t)?),
        Backend::Sqlite => Box::new(lite::Lite::connect(t)?),
    };
    let mut c = Checked { inner, known: HashSet::new(), create, backend: t.backend };
    let markers = format!(
        "CREATE TABLE IF NOT EXISTS {MARKERS} (spool VARCHAR(255) NOT NULL, batch BIGINT NOT NULL, written BIGINT NOT NULL, PRIMARY KEY (spool, batch)){}",
        if t.backend == Backend::Mysql { " ENGINE=InnoDB" } else { "" }
    );
    c.inner.ensure_table(MARKERS, &markers)?;
    Ok(Box::new(c))
}

/// How long a session waits for another one that is creating tables in the same database.
const CREATE_LOCK_WAIT: Duration = Duration::from_secs(60);

/// The parts each backend provides.
trait Engine: Send {
    fn table_exists(&mut self, name: &str) -> Result<bool, DbError>;
    /// Runs `ddl` if the table `name` does not exist, serialized with every other xacct
    /// session creating tables in the same database; true if this call created it.
    ///
    /// "IF NOT EXISTS" alone is not enough: PostgreSQL's check and insert into its catalog are
    /// not atomic, so two sessions creating one table at once make one fail (a unique violation
    /// on `pg_type_typname_nsp_index`, or "type already exists"); and an operator's
    /// `sql_table_schema` may be pmacct's own file, which starts with `DROP TABLE IF EXISTS`:
    /// run by a session that looked before another one created and filled the table, it drops
    /// the rows that session just committed. Under the lock, the check and the creation are one
    /// step for every xacct writer, so the schema text runs at most once per missing table.
    fn ensure_table(&mut self, name: &str, ddl: &str) -> Result<bool, DbError>;
    fn write(&mut self, w: &Write<'_>) -> Result<Outcome, DbError>;
}

/// A creation that failed although the table exists now was beaten by a session that does not
/// take our lock (pmacct, an older xacct, an operator): that is success. Anything else is the
/// creation's own failure, never the data's (see [`transient`]).
fn created_or_exists(engine: &mut dyn Engine, name: &str, r: Result<bool, DbError>) -> Result<bool, DbError> {
    match r {
        Ok(c) => Ok(c),
        Err(e) => match engine.table_exists(name) {
            Ok(true) => Ok(false),
            _ => Err(transient(e)),
        },
    }
}

struct Checked {
    inner: Box<dyn Engine>,
    /// Tables seen to exist on this connection. Forgotten with the connection, which the
    /// plugin drops after any failed write, so a table dropped meanwhile is looked for (and
    /// created) again on the next try.
    known: HashSet<String>,
    create: Create,
    backend: Backend,
}

impl Conn for Checked {
    fn write(
        &mut self,
        batch: &Batch,
        spool: &str,
        prune_below: u64,
        now: i64,
        mode: Mode,
    ) -> Result<Outcome, DbError> {
        let quoted = self.backend.quote(&batch.table);
        if !self.known.contains(&batch.table) {
            match self.create.sql(&batch.table, &quoted) {
                Some(sql) => {
                    if self.inner.ensure_table(&batch.table, &sql)? {
                        tracing::info!("created table {quoted}");
                    }
                }
                None => {
                    if !self.inner.table_exists(&batch.table)? {
                        return Err(DbError::new(
                            ErrKind::Transient,
                            format!("table {quoted}"),
                            "does not exist (create it, or set sql_table_schema or sql_table_autocreate)",
                        ));
                    }
                }
            }
            self.known.insert(batch.table.clone());
        }
        let w = Write { batch, quoted: &quoted, spool, prune_below, now, mode, backend: self.backend };
        self.inner.write(&w).map_err(|e| {
            // UPDATE-then-INSERT inserts only the rows its UPDATE found missing; another writer
            // (a second plugin writing the same table) that inserted one of those keys in
            // between makes the INSERT collide. That is a race, not bad data: the transaction
            // is retried and its UPDATE then finds the row. With INSERT only
            // (`sql_dont_try_update`) a duplicate key is the configuration meeting the data,
            // and waiting would not change it.
            if e.duplicate_key && !mode.dont_try_update {
                transient(e)
            } else {
                e
            }
        })
    }
}

/// One write request as the engines see it.
struct Write<'a> {
    batch: &'a Batch,
    quoted: &'a str,
    spool: &'a str,
    prune_below: u64,
    now: i64,
    mode: Mode,
    backend: Backend,
}

/// A parameter's binding kind, including stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PK {
    Col(ParamKind),
    StampText,
}

fn placeholder(b: Backend, n: usize, k: PK) -> String {
    match b {
        Backend::Pgsql => match k {
            PK::Col(ParamKind::Int) => format!("${n}::bigint"),
            // No cast: the column's own type (CHAR(16), VARCHAR, …) is inferred, so comparisons
            // stay on the column's type and its index (`bpchar = text` would compare as text and
            // scan the table for every UPDATE).
            PK::Col(ParamKind::Text) => format!("${n}"),
            PK::Col(ParamKind::Inet) => format!("${n}::text::inet"),
            PK::Col(ParamKind::Mac) => format!("${n}::text::macaddr"),
            PK::StampText => format!("${n}::text::timestamp"),
        },
        _ => "?".to_string(),
    }
}

fn stamp_kind(s: &Shape) -> PK {
    if s.since_epoch {
        PK::Col(ParamKind::Int)
    } else {
        PK::StampText
    }
}

impl Write<'_> {
    fn shape(&self) -> &Shape {
        &self.batch.shape
    }

    /// The UPDATE's parameters in order: the column each one is compared with or added to,
    /// its binding, and whether it belongs to the WHERE clause.
    fn update_columns_where(&self) -> Vec<(String, PK, bool)> {
        let s = self.shape();
        let int = PK::Col(ParamKind::Int);
        let mut v = vec![("packets".to_string(), int, false), ("bytes".to_string(), int, false)];
        if s.flows {
            v.push(("flows".into(), int, false));
        }
        if s.tcp_flags && s.tcp_flags_or {
            v.push(("tcp_flags".into(), int, false));
        }
        if s.stamps {
            v.push(("stamp_updated".into(), stamp_kind(s), false));
        }
        v.extend(s.keys.iter().map(|c| (c.name.clone(), PK::Col(c.kind), true)));
        if s.stamps {
            v.push(("stamp_inserted".into(), stamp_kind(s), true));
        }
        v
    }

    fn update_columns(&self) -> Vec<(String, PK)> {
        self.update_columns_where().into_iter().map(|(c, k, _)| (c, k)).collect()
    }

    /// `UPDATE … SET counters … WHERE keys …`.
    fn update_sql(&self) -> String {
        let (mut set, mut cond) = (Vec::new(), Vec::new());
        for (n, (col, kind, key)) in self.update_columns_where().into_iter().enumerate() {
            let p = placeholder(self.backend, n + 1, kind);
            match (key, col.as_str()) {
                (true, _) => cond.push(format!("{col}={p}")),
                (false, "stamp_updated") => set.push(format!("{col}={p}")),
                (false, "tcp_flags") => set.push(format!("{col}={col}|{p}")),
                (false, _) => set.push(format!("{col}={col}+{p}")),
            }
        }
        let mut sql = format!("UPDATE {} SET {}", self.quoted, set.join(", "));
        if !cond.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&cond.join(" AND "));
        }
        sql
    }

    fn update_params(&self, r: &Row) -> Vec<Value> {
        let s = self.shape();
        let mut v = vec![Value::Int(r.packets as i64), Value::Int(r.bytes as i64)];
        if s.flows {
            v.push(Value::Int(r.flows as i64));
        }
        if s.tcp_flags && s.tcp_flags_or {
            v.push(Value::Int(r.tcp_flags.into()));
        }
        if s.stamps {
            v.push(stamp(self.now, s.since_epoch));
        }
        v.extend(r.keys.iter().cloned());
        if s.stamps {
            v.push(stamp(self.batch.bin.unwrap_or(0), s.since_epoch));
        }
        v
    }

    fn insert_columns(&self) -> Vec<String> {
        let s = self.shape();
        let mut c: Vec<String> = s.keys.iter().map(|k| k.name.clone()).collect();
        if s.tcp_flags {
            c.push("tcp_flags".into());
        }
        c.extend(["packets".to_string(), "bytes".to_string()]);
        if s.flows {
            c.push("flows".into());
        }
        if s.stamps {
            c.extend(["stamp_inserted".to_string(), "stamp_updated".to_string()]);
        }
        c
    }

    /// A one-row INSERT's parameters: column and binding.
    fn insert_params_columns(&self) -> Vec<(String, PK)> {
        self.insert_columns().into_iter().zip(self.insert_kinds()).collect()
    }

    fn insert_kinds(&self) -> Vec<PK> {
        let s = self.shape();
        let int = PK::Col(ParamKind::Int);
        let mut k: Vec<PK> = s.keys.iter().map(|c| PK::Col(c.kind)).collect();
        if s.tcp_flags {
            k.push(int);
        }
        k.extend([int, int]);
        if s.flows {
            k.push(int);
        }
        if s.stamps {
            k.extend([stamp_kind(s), stamp_kind(s)]);
        }
        k
    }

    /// `INSERT INTO … VALUES (…), (…)` for `rows` rows.
    fn insert_sql(&self, rows: usize) -> String {
        let kinds = self.insert_kinds();
        let mut n = 0;
        let tuples: Vec<String> = (0..rows)
            .map(|_| {
                let ph: Vec<String> = kinds
                    .iter()
                    .map(|k| {
                        n += 1;
                        placeholder(self.backend, n, *k)
                    })
                    .collect();
                format!("({})", ph.join(","))
            })
            .collect();
        format!("INSERT INTO {} ({}) VALUES {}", self.quoted, self.insert_columns().join(", "), tuples.join(","))
    }

    fn insert_params(&self, r: &Row, out: &mut Vec<Value>) {
        let s = self.shape();
        out.extend(r.keys.iter().cloned());
        if s.tcp_flags {
            out.push(Value::Int(r.tcp_flags.into()));
        }
        out.extend([Value::Int(r.packets as i64), Value::Int(r.bytes as i64)]);
        if s.flows {
            out.push(Value::Int(r.flows as i64));
        }
        if s.stamps {
            out.push(stamp(self.batch.bin.unwrap_or(0), s.since_epoch));
            out.push(stamp(self.now, s.since_epoch));
        }
    }

    /// Rows per multi-row INSERT: as many as fit `multi_values` bytes of SQL text (counting the
    /// values as pmacct's text statements would), within the engine's parameter limit.
    fn rows_per_insert(&self, max_params: usize) -> usize {
        if self.mode.multi_values == 0 {
            return 1;
        }
        let params = self.insert_kinds().len().max(1);
        let sample = self.batch.rows.first().map_or(64, |r| {
            let mut v = Vec::new();
            self.insert_params(r, &mut v);
            v.iter().map(|x| x.copy_text().len() + 3).sum::<usize>() + 3
        });
        (self.mode.multi_values / sample.max(1)).clamp(1, (max_params / params).max(1))
    }

    fn marker_check_sql(&self) -> String {
        format!(
            "SELECT 1 FROM {MARKERS} WHERE spool={} AND batch={}",
            placeholder(self.backend, 1, PK::Col(ParamKind::Text)),
            placeholder(self.backend, 2, PK::Col(ParamKind::Int))
        )
    }

    fn marker_insert_sql(&self) -> String {
        format!(
            "INSERT INTO {MARKERS} (spool, batch, written) VALUES ({}, {}, {})",
            placeholder(self.backend, 1, PK::Col(ParamKind::Text)),
            placeholder(self.backend, 2, PK::Col(ParamKind::Int)),
            placeholder(self.backend, 3, PK::Col(ParamKind::Int))
        )
    }

    fn marker_prune_sql(&self) -> String {
        format!(
            "DELETE FROM {MARKERS} WHERE spool={} AND batch<{}",
            placeholder(self.backend, 1, PK::Col(ParamKind::Text)),
            placeholder(self.backend, 2, PK::Col(ParamKind::Int))
        )
    }

    fn marker_params(&self) -> Vec<Value> {
        vec![Value::Text(self.spool.to_string()), Value::Int(self.batch.id as i64), Value::Int(self.now)]
    }

    fn prune_params(&self) -> Vec<Value> {
        vec![Value::Text(self.spool.to_string()), Value::Int(self.prune_below.min(i64::MAX as u64) as i64)]
    }

    /// `COPY … FROM STDIN` (text format) and the rows' lines.
    fn copy_sql(&self) -> String {
        format!("COPY {} ({}) FROM STDIN", self.quoted, self.insert_columns().join(", "))
    }

    /// One COPY text line, written straight into `out` (no per-value allocation: COPY is the
    /// fast path).
    fn copy_line(&self, r: &Row, out: &mut Vec<u8>, stamps: &Option<(String, String)>) {
        let mut ib = itoa::Buffer::new();
        let mut int = |out: &mut Vec<u8>, v: i64| out.extend_from_slice(ib.format(v).as_bytes());
        for x in &r.keys {
            match x {
                Value::Int(i) => int(out, *i),
                Value::Text(t) => out.extend_from_slice(t.as_bytes()),
            }
            out.push(b'\t');
        }
        let s = self.shape();
        if s.tcp_flags {
            int(out, r.tcp_flags.into());
            out.push(b'\t');
        }
        int(out, r.packets as i64);
        out.push(b'\t');
        int(out, r.bytes as i64);
        if s.flows {
            out.push(b'\t');
            int(out, r.flows as i64);
        }
        if let Some((ins, upd)) = stamps {
            out.push(b'\t');
            out.extend_from_slice(ins.as_bytes());
            out.push(b'\t');
            out.extend_from_slice(upd.as_bytes());
        }
        out.push(b'\n');
    }

    /// The stamps of every COPY line, rendered once.
    fn copy_stamps(&self) -> Option<(String, String)> {
        let s = self.shape();
        s.stamps.then(|| {
            (stamp(self.batch.bin.unwrap_or(0), s.since_epoch).copy_text(), stamp(self.now, s.since_epoch).copy_text())
        })
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one statement may go without the server answering.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// DDL failures are never the data's fault: a table the operator can fix, a race with another
/// writer. The batch waits in the spool instead of being set aside.
fn transient(mut e: DbError) -> DbError {
    if e.kind == ErrKind::Permanent {
        e.kind = ErrKind::Transient;
    }
    e
}

mod pg {
    use super::*;
    use postgres::types::ToSql;
    use std::error::Error as _;

    /// The advisory lock every xacct session takes to create tables ("xacct" and 1).
    const CREATE_LOCK_KEY: i64 = 0x7861_6363_7400_0001;

    pub struct Pg {
        client: postgres::Client,
    }

    fn err(what: &str, e: postgres::Error) -> DbError {
        let kind = if e.is_closed() {
            ErrKind::Connection
        } else {
            match e.code().map(|c| c.code()) {
                Some(c) if c.starts_with("22") || c.starts_with("23") => ErrKind::Permanent,
                Some(c) if c.starts_with("08") => ErrKind::Connection,
                Some(_) => ErrKind::Transient,
                // A value the client could not encode for its parameter's type: the table
                // does not match, which the operator can fix; the connection is fine.
                None if e.source().is_some_and(|s| s.is::<postgres::types::WrongType>()) => ErrKind::Transient,
                // No SQLSTATE: an I/O or protocol failure.
                None => ErrKind::Connection,
            }
        };
        let msg = match e.as_db_error() {
            Some(d) => format!("{} ({})", d.message(), d.code().code()),
            None => e.to_string(),
        };
        let duplicate = e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION);
        DbError::new(kind, what, msg).duplicate_key(duplicate)
    }

    fn params(v: &[Value]) -> Vec<Box<dyn ToSql + Sync>> {
        v.iter()
            .map(|x| -> Box<dyn ToSql + Sync> {
                match x {
                    Value::Int(i) => Box::new(*i),
                    Value::Text(s) => Box::new(s.clone()),
                }
            })
            .collect()
    }

    fn refs(b: &[Box<dyn ToSql + Sync>]) -> Vec<&(dyn ToSql + Sync)> {
        b.iter().map(|x| x.as_ref()).collect()
    }

    /// A text parameter without a cast takes its column's type; when the table's column is
    /// not text (a table made by another definition than the plugin's columns), binding fails
    /// on the client with only "error serializing parameter N". Say which column instead.
    fn check_params(w: &Write<'_>, st: &postgres::Statement, cols: &[(String, PK)]) -> Result<(), DbError> {
        use postgres::types::Type;
        for (ty, (col, kind)) in st.params().iter().zip(cols) {
            let ok = match kind {
                PK::Col(ParamKind::Int) => *ty == Type::INT8,
                _ => <String as ToSql>::accepts(ty),
            };
            if !ok {
                let ours = if *kind == PK::Col(ParamKind::Int) { "a number (bigint)" } else { "text" };
                return Err(DbError::new(
                    ErrKind::Transient,
                    format!("table {}", w.quoted),
                    format!(
                        "column {col} is {ty}, xacct writes {ours} there: the table does not have the \
columns of the plugin's sql_table_version and aggregate (fix or recreate the table)"
                    ),
                ));
            }
        }
        Ok(())
    }

    impl Pg {
        pub fn connect(t: &Target) -> Result<Pg, DbError> {
            let mut c = postgres::Config::new();
            c.host(&t.host)
                .port(t.port.unwrap_or(5432))
                .user(&t.user)
                .password(&t.passwd)
                .dbname(&t.db)
                .application_name("xacctd")
                .connect_timeout(CONNECT_TIMEOUT)
                // A server that vanishes without a reset must not hang a writer for ever.
                .keepalives_idle(Duration::from_secs(30))
                .tcp_user_timeout(IO_TIMEOUT);
            let client = c.connect(postgres::NoTls).map_err(|e| err(&format!("connecting to {}", t.describe()), e))?;
            Ok(Pg { client })
        }
    }

    impl Engine for Pg {
        fn table_exists(&mut self, name: &str) -> Result<bool, DbError> {
            // to_regclass folds case like an unquoted name; quote_ident keeps the check exact.
            let q = Backend::Pgsql.quote(name);
            let row = self
                .client
                .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&q])
                .map_err(|e| err("checking the table", e))?;
            Ok(row.get(0))
        }

        fn ensure_table(&mut self, name: &str, ddl: &str) -> Result<bool, DbError> {
            let r = (|| {
                let e = |what: &'static str| move |x| err(what, x);
                let mut tx = self.client.transaction().map_err(e("BEGIN"))?;
                // DDL is transactional here, so a transaction-scoped advisory lock covers the
                // check, the creation and its commit, and goes away with the session if that
                // dies. Advisory locks are per database, like the tables they guard.
                tx.batch_execute(&format!(
                    "SET LOCAL lock_timeout = '{}s'; SELECT pg_advisory_xact_lock({CREATE_LOCK_KEY})",
                    CREATE_LOCK_WAIT.as_secs()
                ))
                .map_err(e("waiting for another session creating tables"))?;
                let exists: bool = tx
                    .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&Backend::Pgsql.quote(name)])
                    .map_err(e("checking the table"))?
                    .get(0);
                if !exists {
                    tx.batch_execute(ddl).map_err(e("creating the table"))?;
                }
                tx.commit().map_err(e("COMMIT"))?;
                Ok(!exists)
            })();
            created_or_exists(self, name, r)
        }

        fn write(&mut self, w: &Write<'_>) -> Result<Outcome, DbError> {
            let e = |what: &'static str| move |x| err(what, x);
            let mut tx = self.client.transaction().map_err(e("BEGIN"))?;
            let m = w.marker_params();
            let check = tx.query_opt(&w.marker_check_sql(), &refs(&params(&m[..2]))).map_err(e("marker check"))?;
            if check.is_some() {
                tx.rollback().map_err(e("ROLLBACK"))?;
                return Ok(Outcome { duplicate: true, ..Outcome::default() });
            }
            let mut out = Outcome::default();
            if w.mode.use_copy && w.mode.dont_try_update {
                use std::io::Write as _;
                let mut sink = tx.copy_in(&w.copy_sql()).map_err(e("COPY"))?;
                let mut buf = Vec::with_capacity(1 << 17);
                let stamps = w.copy_stamps();
                for r in &w.batch.rows {
                    w.copy_line(r, &mut buf, &stamps);
                    if buf.len() >= 1 << 16 {
                        sink.write_all(&buf)
                            .map_err(|x| DbError::new(ErrKind::Connection, "COPY data", x.to_string()))?;
                        buf.clear();
                    }
                }
                sink.write_all(&buf).map_err(|x| DbError::new(ErrKind::Connection, "COPY data", x.to_string()))?;
                out.inserted = sink.finish().map_err(e("COPY"))?;
            } else {
                let upd = if w.mode.dont_try_update {
                    None
                } else {
                    let st = tx.prepare(&w.update_sql()).map_err(e("prepare UPDATE"))?;
                    check_params(w, &st, &w.update_columns())?;
                    Some(st)
                };
                let ins = tx.prepare(&w.insert_sql(1)).map_err(e("prepare INSERT"))?;
                check_params(w, &ins, &w.insert_params_columns())?;
                let mut vals = Vec::new();
                for r in &w.batch.rows {
                    if let Some(u) = &upd {
                        let p = params(&w.update_params(r));
                        if tx.execute(u, &refs(&p)).map_err(e("UPDATE"))? > 0 {
                            out.updated += 1;
                            continue;
                        }
                    }
                    vals.clear();
                    w.insert_params(r, &mut vals);
                    let p = params(&vals);
                    tx.execute(&ins, &refs(&p)).map_err(e("INSERT"))?;
                    out.inserted += 1;
                }
            }
            tx.execute(&w.marker_insert_sql(), &refs(&params(&m))).map_err(e("marker insert"))?;
            tx.execute(&w.marker_prune_sql(), &refs(&params(&w.prune_params()))).map_err(e("marker prune"))?;
            tx.commit().map_err(e("COMMIT"))?;
            out.rows = out.updated + out.inserted;
            Ok(out)
        }
    }
}

mod my {
    use super::*;
    use mysql::prelude::Queryable;

    pub struct My {
        conn: mysql::Conn,
    }

    fn err(what: &str, e: mysql::Error) -> DbError {
        let kind = match &e {
            mysql::Error::MySqlError(m) => match m.code {
                // Duplicate entry, out of range, too long, bad value, NULL into NOT NULL, no
                // default, bad datetime, truncated: the data will never fit.
                1062 | 1264 | 1406 | 1366 | 1048 | 1364 | 1292 | 1265 | 1690 => ErrKind::Permanent,
                // Server gone / lost connection.
                2006 | 2013 | 1053 | 1927 => ErrKind::Connection,
                _ => ErrKind::Transient,
            },
            mysql::Error::IoError(_) | mysql::Error::DriverError(_) | mysql::Error::UrlError(_) => ErrKind::Connection,
            _ => ErrKind::Transient,
        };
        let duplicate = matches!(&e, mysql::Error::MySqlError(m) if m.code == 1062);
        DbError::new(kind, what, e.to_string()).duplicate_key(duplicate)
    }

    fn params(v: &[Value]) -> mysql::Params {
        mysql::Params::Positional(
            v.iter()
                .map(|x| match x {
                    Value::Int(i) => mysql::Value::Int(*i),
                    Value::Text(s) => mysql::Value::Bytes(s.as_bytes().to_vec()),
                })
                .collect(),
        )
    }

    impl My {
        pub fn connect(t: &Target) -> Result<My, DbError> {
            let mut o = mysql::OptsBuilder::new()
                .user(Some(&t.user))
                .pass(Some(&t.passwd))
                .db_name(Some(&t.db))
                .tcp_connect_timeout(Some(CONNECT_TIMEOUT))
                // A server that vanishes without a reset must not hang a writer for ever.
                .read_timeout(Some(IO_TIMEOUT))
                .write_timeout(Some(IO_TIMEOUT))
                .prefer_socket(false)
                // UPDATE must report the rows it matched, not only those it changed.
                .additional_capabilities(mysql::consts::CapabilityFlags::CLIENT_FOUND_ROWS);
            match t.host.strip_prefix("unix:") {
                Some(path) => o = o.socket(Some(path)),
                None => o = o.ip_or_hostname(Some(&t.host)).tcp_port(t.port.unwrap_or(3306)),
            }
            let conn = mysql::Conn::new(o).map_err(|e| err(&format!("connecting to {}", t.describe()), e))?;
            Ok(My { conn })
        }
    }

    impl Engine for My {
        fn table_exists(&mut self, name: &str) -> Result<bool, DbError> {
            let (schema, table) = match name.split_once('.') {
                Some((s, t)) => (Some(s.to_string()), t.to_string()),
                None => (None, name.to_string()),
            };
            let n: Option<i64> = match schema {
                Some(s) => self.conn.exec_first(
                    "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                    (s, table),
                ),
                None => self.conn.exec_first(
                    "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?",
                    (table,),
                ),
            }
            .map_err(|e| err("checking the table", e))?;
            Ok(n.is_some())
        }

        fn ensure_table(&mut self, name: &str, ddl: &str) -> Result<bool, DbError> {
            // DDL commits implicitly here, so no transaction can hold a lock across it: a named
            // lock does, and the server drops it with the session if that dies. Its names are
            // server-wide, at most 64 characters: one per database.
            let got: Option<Option<i64>> = self
                .conn
                .exec_first(
                    "SELECT GET_LOCK(CONCAT('xacct_create:', MD5(IFNULL(DATABASE(), ''))), ?)",
                    (CREATE_LOCK_WAIT.as_secs(),),
                )
                .map_err(|e| err("waiting for another session creating tables", e))?;
            if got.flatten() != Some(1) {
                return Err(DbError::new(
                    ErrKind::Transient,
                    "waiting for another session creating tables",
                    format!("lock not granted within {} s", CREATE_LOCK_WAIT.as_secs()),
                ));
            }
            let r = (|| {
                let exists = self.table_exists(name)?;
                if !exists {
                    self.conn.query_drop(ddl).map_err(|e| err("creating the table", e))?;
                }
                Ok(!exists)
            })();
            let released = self
                .conn
                .query_drop("DO RELEASE_LOCK(CONCAT('xacct_create:', MD5(IFNULL(DATABASE(), ''))))")
                .map_err(|e| err("releasing the table creation lock", e));
            let r = created_or_exists(self, name, r)?;
            released?;
            Ok(r)
        }

        fn write(&mut self, w: &Write<'_>) -> Result<Outcome, DbError> {
            let e = |what: &'static str| move |x| err(what, x);
            let mut tx = self.conn.start_transaction(mysql::TxOpts::default()).map_err(e("BEGIN"))?;
            let m = w.marker_params();
            let found: Option<i64> = tx.exec_first(w.marker_check_sql(), params(&m[..2])).map_err(e("marker check"))?;
            if found.is_some() {
                tx.rollback().map_err(e("ROLLBACK"))?;
                return Ok(Outcome { duplicate: true, ..Outcome::default() });
            }
            let mut out = Outcome::default();
            let mut pending: Vec<&Row> = Vec::new();
            if w.mode.dont_try_update {
                pending.extend(&w.batch.rows);
            } else {
                let upd = tx.prep(w.update_sql()).map_err(e("prepare UPDATE"))?;
                let ins = if w.mode.multi_values == 0 {
                    Some(tx.prep(w.insert_sql(1)).map_err(e("prepare INSERT"))?)
                } else {
                    None
                };
                let mut vals = Vec::new();
                for r in &w.batch.rows {
                    tx.exec_drop(&upd, params(&w.update_params(r))).map_err(e("UPDATE"))?;
                    if tx.affected_rows() > 0 {
                        out.updated += 1;
                        continue;
                    }
                    match &ins {
                        Some(ins) => {
                            vals.clear();
                            w.insert_params(r, &mut vals);
                            tx.exec_drop(ins, params(&vals)).map_err(e("INSERT"))?;
                            out.inserted += 1;
                        }
                        None => pending.push(r),
                    }
                }
            }
            if !pending.is_empty() {
                let per = w.rows_per_insert(65_535);
                let mut stmts: std::collections::HashMap<usize, mysql::Statement> = std::collections::HashMap::new();
                let mut vals = Vec::new();
                for chunk in pending.chunks(per) {
                    let st = match stmts.get(&chunk.len()) {
                        Some(s) => s.clone(),
                        None => {
                            let s = tx.prep(w.insert_sql(chunk.len())).map_err(e("prepare INSERT"))?;
                            stmts.insert(chunk.len(), s.clone());
                            s
                        }
                    };
                    vals.clear();
                    for r in chunk {
                        w.insert_params(r, &mut vals);
                    }
                    tx.exec_drop(&st, params(&vals)).map_err(e("INSERT"))?;
                    out.inserted += chunk.len() as u64;
                }
            }
            tx.exec_drop(w.marker_insert_sql(), params(&m)).map_err(e("marker insert"))?;
            tx.exec_drop(w.marker_prune_sql(), params(&w.prune_params())).map_err(e("marker prune"))?;
            tx.commit().map_err(e("COMMIT"))?;
            out.rows = out.updated + out.inserted;
            Ok(out)
        }
    }
}

mod lite {
    use super::*;
    use rusqlite::types::Value as SqlValue;

    pub struct Lite {
        conn: rusqlite::Connection,
    }

    fn err(what: &str, e: rusqlite::Error) -> DbError {
        use rusqlite::ErrorCode as C;
        let kind = match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                C::ConstraintViolation | C::TypeMismatch | C::TooBig => ErrKind::Permanent,
                C::CannotOpen | C::NotADatabase | C::DatabaseCorrupt | C::SystemIoFailure => ErrKind::Connection,
                _ => ErrKind::Transient,
            },
            _ => ErrKind::Transient,
        };
        // SQLITE_CONSTRAINT_PRIMARYKEY (1555) and SQLITE_CONSTRAINT_UNIQUE (2067).
        let duplicate = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if matches!(f.extended_code, 1555 | 2067));
        DbError::new(kind, what, e.to_string()).duplicate_key(duplicate)
    }

    fn vals(v: &[Value]) -> Vec<SqlValue> {
        v.iter()
            .map(|x| match x {
                Value::Int(i) => SqlValue::Integer(*i),
                Value::Text(s) => SqlValue::Text(s.clone()),
            })
            .collect()
    }

    fn exists_in(conn: &rusqlite::Connection, name: &str) -> Result<bool, DbError> {
        let (schema, table) = match name.split_once('.') {
            Some((s, t)) => (s.to_string(), t.to_string()),
            None => ("main".to_string(), name.to_string()),
        };
        let sql =
            format!("SELECT 1 FROM {}.sqlite_master WHERE type='table' AND name=?1", Backend::Sqlite.quote(&schema));
        let mut st = conn.prepare(&sql).map_err(|e| err("checking the table", e))?;
        st.exists([table]).map_err(|e| err("checking the table", e))
    }

    impl Lite {
        pub fn connect(t: &Target) -> Result<Lite, DbError> {
            let conn = rusqlite::Connection::open(&t.db).map_err(|e| err(&format!("opening {}", t.describe()), e))?;
            // Readers (and a second daemon) may hold the file briefly.
            conn.busy_timeout(Duration::from_secs(10)).map_err(|e| err("busy_timeout", e))?;
            Ok(Lite { conn })
        }
    }

    impl Engine for Lite {
        fn table_exists(&mut self, name: &str) -> Result<bool, DbError> {
            exists_in(&self.conn, name)
        }

        fn ensure_table(&mut self, name: &str, ddl: &str) -> Result<bool, DbError> {
            // BEGIN IMMEDIATE takes the file's write lock (waiting up to the busy timeout), and
            // DDL is transactional: the check and the creation are one step for every writer.
            let r = (|| {
                let e = |what: &'static str| move |x| err(what, x);
                let tx = self
                    .conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(e("waiting for the database's write lock"))?;
                let exists = exists_in(&tx, name)?;
                if !exists {
                    tx.execute_batch(ddl).map_err(e("creating the table"))?;
                }
                tx.commit().map_err(e("COMMIT"))?;
                Ok(!exists)
            })();
            created_or_exists(self, name, r)
        }

        fn write(&mut self, w: &Write<'_>) -> Result<Outcome, DbError> {
            let e = |what: &'static str| move |x| err(what, x);
            let tx =
                self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(e("BEGIN"))?;
            let m = w.marker_params();
            let dup = tx
                .prepare_cached(&w.marker_check_sql())
                .and_then(|mut s| s.exists(rusqlite::params_from_iter(vals(&m[..2]))))
                .map_err(e("marker check"))?;
            if dup {
                tx.rollback().map_err(e("ROLLBACK"))?;
                return Ok(Outcome { duplicate: true, ..Outcome::default() });
            }
            let mut out = Outcome::default();
            let mut pending: Vec<&Row> = Vec::new();
            {
                let mut upd = if w.mode.dont_try_update {
                    None
                } else {
                    Some(tx.prepare(&w.update_sql()).map_err(e("prepare UPDATE"))?)
                };
                for r in &w.batch.rows {
                    if let Some(u) = upd.as_mut() {
                        if u.execute(rusqlite::params_from_iter(vals(&w.update_params(r)))).map_err(e("UPDATE"))? > 0 {
                            out.updated += 1;
                            continue;
                        }
                    }
                    pending.push(r);
                }
            }
            // SQLite's default SQLITE_MAX_VARIABLE_NUMBER is 32766.
            let per = w.rows_per_insert(32_766);
            let mut v = Vec::new();
            let mut last: Option<(usize, rusqlite::Statement<'_>)> = None;
            for chunk in pending.chunks(per) {
                if last.as_ref().map(|(n, _)| *n) != Some(chunk.len()) {
                    last = Some((chunk.len(), tx.prepare(&w.insert_sql(chunk.len())).map_err(e("prepare INSERT"))?));
                }
                v.clear();
                for r in chunk {
                    w.insert_params(r, &mut v);
                }
                if let Some((_, st)) = last.as_mut() {
                    st.execute(rusqlite::params_from_iter(vals(&v))).map_err(e("INSERT"))?;
                }
                out.inserted += chunk.len() as u64;
            }
            drop(last);
            tx.execute(&w.marker_insert_sql(), rusqlite::params_from_iter(vals(&m))).map_err(e("marker insert"))?;
            tx.execute(&w.marker_prune_sql(), rusqlite::params_from_iter(vals(&w.prune_params())))
                .map_err(e("marker prune"))?;
            tx.commit().map_err(e("COMMIT"))?;
            out.rows = out.updated + out.inserted;
            Ok(out)
        }
    }
}
