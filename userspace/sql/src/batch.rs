//! The unit of writing: one batch of rows for one table and time bin, spooled before it is
//! written and written in one transaction. A batch describes its own columns, so a batch left
//! in the spool by an earlier run is written the same way after a restart.

use serde::{Deserialize, Serialize};

/// A column value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Int(i64),
    Text(String),
}

impl Value {
    /// The value as COPY's text format wants it: numbers, addresses, MACs and fixed names as
    /// they are; labels (operators' strings) may hold a backslash, which COPY reads as an
    /// escape, so it is doubled (maps split on whitespace: no tab or newline gets here).
    pub fn copy_text(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Text(s) if s.contains('\\') => s.replace('\\', "\\\\"),
            Value::Text(s) => s.clone(),
        }
    }
}

/// How a key column is bound: PostgreSQL casts text to `inet`/`macaddr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParamKind {
    Int,
    Text,
    Inet,
    Mac,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColSpec {
    pub name: String,
    pub kind: ParamKind,
}

/// Which columns a batch writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Key columns (the UPDATE's WHERE, the primary key without `stamp_inserted`).
    pub keys: Vec<ColSpec>,
    /// The table has `tcp_flags` (written on INSERT).
    pub tcp_flags: bool,
    /// The aggregate has `tcpflags`: UPDATE ORs them in.
    pub tcp_flags_or: bool,
    /// The table has `flows`.
    pub flows: bool,
    /// `stamp_inserted` / `stamp_updated` are written (`sql_history`).
    pub stamps: bool,
    /// Stamps as epoch seconds instead of `YYYY-MM-DD HH:MM:SS` (UTC).
    pub since_epoch: bool,
}

/// One table entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub keys: Vec<Value>,
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub tcp_flags: u8,
}

/// Where a batch is written, recorded in the batch when it is made: a spooled batch is written
/// to this target only, whatever the configuration says by the time it is replayed (see
/// [`crate::targets`]). The account (`sql_user`, `sql_passwd`) is not part of it: another
/// account writing the same table writes the same rows, and a password change must not strand
/// a spool. Host names are compared as written (`localhost` and `127.0.0.1` differ): a batch
/// left aside by mistake can be moved, one written to the wrong database cannot be taken back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TargetId {
    /// `pgsql`, `mysql` or `sqlite3`.
    pub backend: String,
    /// The server's host (a name, an address, a socket path); empty for SQLite.
    pub host: String,
    /// The server's port, its default filled in; 0 for SQLite.
    pub port: u16,
    /// The database, or the SQLite file's absolute path.
    pub db: String,
    /// `sql_table` as configured: a dynamic name's template (each batch holds its expansion).
    pub table: String,
}

impl std::fmt::Display for TargetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.is_empty() && self.port == 0 {
            write!(f, "{} {} table {}", self.backend, self.db, self.table)
        } else {
            write!(f, "{} {}:{} database {} table {}", self.backend, self.host, self.port, self.db, self.table)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Unique per spool, increasing: the exactly-once marker's key.
    pub id: u64,
    /// Expanded, validated table name (unquoted).
    pub table: String,
    /// Bin start (epoch seconds) with `sql_history`.
    pub bin: Option<i64>,
    pub shape: Shape,
    pub rows: Vec<Row>,
    /// When the batch was made (epoch seconds), for logs and triggers.
    pub made: i64,
    /// Entries that failed `sql_preprocess` checks with `recover`: written to
    /// `sql_recovery_backup_host` only, never to the primary (pmacct's recovery path).
    #[serde(default)]
    pub recovery: bool,
    /// The target it was made for; None in batches spooled by xacct before targets were
    /// recorded (see [`crate::targets`] for what happens to those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetId>,
}

/// A stamp value: epoch seconds or UTC `YYYY-MM-DD HH:MM:SS`.
pub fn stamp(ts: i64, since_epoch: bool) -> Value {
    if since_epoch {
        Value::Int(ts)
    } else {
        let t = chrono::DateTime::from_timestamp(ts, 0).unwrap_or_default();
        Value::Text(t.format("%Y-%m-%d %H:%M:%S").to_string())
    }
}
