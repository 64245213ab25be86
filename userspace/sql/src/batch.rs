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
    /// The value as COPY's text format wants it (values hold no tab, newline or backslash:
    /// they are numbers, addresses, MACs and fixed names).
    pub fn copy_text(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
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
