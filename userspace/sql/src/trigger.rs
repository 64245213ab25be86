//! `sql_trigger_exec` / `sql_trigger_time`. BEING WRITTEN: the signatures below are the agreed
//! interface; bodies are filled in by this module's author.

use std::path::PathBuf;
use std::time::Duration;

/// Facts about one refresh's write, passed to the trigger as environment variables.
#[derive(Debug, Clone, Default)]
pub struct WriteInfo {
    pub backend: &'static str,
    pub host: String,
    pub db: String,
    pub user: String,
    /// Table name(s) written, after variable expansion (first one if several).
    pub table: String,
    pub refresh_time: u64,
    /// `sql_history` as configured (e.g. "1h"), empty if none.
    pub history: String,
    /// Start of the earliest bin written (epoch seconds), 0 without history.
    pub history_basetime: i64,
    /// Bin length in seconds, 0 without history.
    pub history_timeslot: i64,
    pub max_writers: u32,
    /// Entries handed to the writer / statements (rows) written.
    pub entries: u64,
    pub rows_written: u64,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("sql_trigger_exec {path}: {source}")]
pub struct TriggerError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

pub struct Trigger {
    _private: (),
}

impl Trigger {
    /// `exec`: the program; `time`: `sql_trigger_time` (`#[s|m|h|d|w|M]`), None = every refresh.
    pub fn new(exec: PathBuf, time: Option<&str>) -> Result<Trigger, String> {
        let _ = (exec, time);
        unimplemented!("trigger being written")
    }
    /// Called after each refresh's write; runs the program (without waiting for it, reaping
    /// earlier children) when due. Returns whether it ran.
    pub fn after_write(&mut self, now: i64, info: &WriteInfo) -> Result<bool, TriggerError> {
        let _ = (now, info);
        unimplemented!("trigger being written")
    }
    /// Waits (bounded by `timeout`) for children still running, at shutdown.
    pub fn wait_children(&mut self, timeout: Duration) {
        let _ = timeout;
        unimplemented!("trigger being written")
    }
}
