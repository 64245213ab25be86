//! `sql_trigger_exec` / `sql_trigger_time`: runs an operator's program after writes, with
//! environment variables describing the write.
//!
//! When: without `sql_trigger_time`, after every refresh's write (what pmacct recommends,
//! since then every variable describes that write). With it, at the first write after each
//! boundary of a `sql_trigger_time` period (`#[s|m|h|d|w|M]`): pmacct keeps a deadline that
//! starts at the end of the period holding the daemon's start and steps by the period; here
//! the periods are the bins of [`xacct_core::history::History`] (aligned like `sql_history`
//! bins, optionally with `sql_history_roundoff`), so `1h` fires at the first write after each
//! full hour (UTC). If several periods passed since the last run, it runs once.
//!
//! Environment, on top of the daemon's own (names from pmacct's `docs/TRIGGER_VARS`; pmacct
//! sets the per-write ones only without `sql_trigger_time`, we always set them, describing the
//! write the trigger follows):
//! `SQL_DB`, `SQL_TABLE` (as configured), `EFFECTIVE_SQL_TABLE` (after variable expansion,
//! only when `sql_table` has variables), `SQL_HOST` (if any), `SQL_USER`, `SQL_REFRESH_TIME`,
//! `SAMPLING_RATE` (if sampling), `SQL_RECOVERY_BACKUP_HOST` (if set), `TOTAL_ELEM_NUMBER`,
//! `EFFECTIVE_ELEM_NUMBER`, `INSERT_QUERIES_NUMBER` / `UPDATE_QUERIES_NUMBER` (when the
//! backend counted them), `ELAPSED_TIME` (whole seconds), `SQL_HISTORY_BASETIME` and
//! `SQL_HISTORY_TIMESLOT` (with `sql_history`), `SQL_MAX_WRITERS`, `SQL_ACTIVE_WRITERS`.
//! Ours, for what pmacct has no name for: `XACCT_BACKEND`, `XACCT_SQL_HISTORY`,
//! `XACCT_ROWS_WRITTEN`, `XACCT_ROWS_SPOOLED`, `XACCT_ELAPSED_MS`, `XACCT_TRIGGER_TIME`.
//! (`SQL_HISTORY` and `SQL_QUERIES_NUMBER` are not pmacct variables, so they are not set.)
//!
//! The program is started without waiting for it (the plugin never blocks on it); finished
//! children are reaped at every call, their failures logged. At most [`MAX_RUNNING`] may run at
//! once: a trigger that hangs makes later runs be skipped (and logged), not pile up.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xacct_core::history::History;

/// Trigger runs allowed to be in flight at once.
pub const MAX_RUNNING: usize = 8;

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
    /// `sql_table` as configured, with its variables (empty: same as `table`).
    pub table_config: String,
    /// Entries of the refresh before `sql_preprocess` (0: same as `entries`).
    pub total_entries: u64,
    /// Rows that went in by INSERT (or COPY) / by UPDATE, when the backend counted them.
    pub inserted: Option<u64>,
    pub updated: Option<u64>,
    /// Writers busy when the trigger runs.
    pub active_writers: u32,
    /// `sampling_rate` (1 in N), 0 without sampling.
    pub sampling_rate: u64,
    /// `sql_recovery_backup_host`, empty if none.
    pub recovery_backup_host: String,
    /// Rows waiting in the spool (database down or behind).
    pub rows_spooled: u64,
}

impl WriteInfo {
    /// The variables set for the program, in a stable order.
    pub fn env_vars(&self, now: i64) -> Vec<(&'static str, String)> {
        let mut v: Vec<(&'static str, String)> = Vec::with_capacity(24);
        let configured = if self.table_config.is_empty() { &self.table } else { &self.table_config };
        v.push(("SQL_DB", self.db.clone()));
        v.push(("SQL_TABLE", configured.clone()));
        if configured.contains(['%', '$']) {
            v.push(("EFFECTIVE_SQL_TABLE", self.table.clone()));
        }
        if !self.host.is_empty() {
            v.push(("SQL_HOST", self.host.clone()));
        }
        v.push(("SQL_USER", self.user.clone()));
        v.push(("SQL_REFRESH_TIME", self.refresh_time.to_string()));
        if self.sampling_rate > 0 {
            v.push(("SAMPLING_RATE", self.sampling_rate.to_string()));
        }
        if !self.recovery_backup_host.is_empty() {
            v.push(("SQL_RECOVERY_BACKUP_HOST", self.recovery_backup_host.clone()));
        }
        v.push(("TOTAL_ELEM_NUMBER", self.total_entries.max(self.entries).to_string()));
        v.push(("EFFECTIVE_ELEM_NUMBER", self.entries.to_string()));
        if let Some(n) = self.inserted {
            v.push(("INSERT_QUERIES_NUMBER", n.to_string()));
        }
        if let Some(n) = self.updated {
            v.push(("UPDATE_QUERIES_NUMBER", n.to_string()));
        }
        v.push(("ELAPSED_TIME", self.elapsed.as_secs().to_string()));
        if !self.history.is_empty() {
            v.push(("SQL_HISTORY_BASETIME", self.history_basetime.to_string()));
            v.push(("SQL_HISTORY_TIMESLOT", self.history_timeslot.to_string()));
        }
        v.push(("SQL_MAX_WRITERS", self.max_writers.to_string()));
        v.push(("SQL_ACTIVE_WRITERS", self.active_writers.to_string()));
        v.push(("XACCT_BACKEND", self.backend.to_string()));
        v.push(("XACCT_SQL_HISTORY", self.history.clone()));
        v.push(("XACCT_ROWS_WRITTEN", self.rows_written.to_string()));
        v.push(("XACCT_ROWS_SPOOLED", self.rows_spooled.to_string()));
        v.push(("XACCT_ELAPSED_MS", self.elapsed.as_millis().to_string()));
        v.push(("XACCT_TRIGGER_TIME", now.to_string()));
        v
    }
}

#[derive(Debug, thiserror::Error)]
#[error("sql_trigger_exec {path}: {source}")]
pub struct TriggerError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

#[derive(Debug)]
pub struct Trigger {
    exec: PathBuf,
    period: Option<History>,
    /// Start of the period of the last run (or of the start).
    current: i64,
    running: Vec<Child>,
    runs: u64,
    skipped: u64,
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Why `exec` cannot be run, checked once at start so a typo is a startup error, not a log line
/// at every refresh.
fn check_program(exec: &Path) -> Result<(), String> {
    let shown = exec.display();
    let meta = std::fs::metadata(exec).map_err(|e| format!("sql_trigger_exec {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("sql_trigger_exec {shown}: not a regular file"));
    }
    nix::unistd::access(exec, nix::unistd::AccessFlags::X_OK)
        .map_err(|e| format!("sql_trigger_exec {shown}: not executable ({})", e.desc()))
}

impl Trigger {
    /// `exec`: the program; `time`: `sql_trigger_time` (`#[s|m|h|d|w|M]`), None = every refresh.
    pub fn new(exec: PathBuf, time: Option<&str>) -> Result<Trigger, String> {
        Trigger::aligned(exec, time, None, now_epoch())
    }

    /// Like [`Trigger::new`], with `sql_history_roundoff` letters for aligning the periods and
    /// the time the plugin started (epoch seconds): the first run is at the first write after
    /// the end of the period holding `start`.
    pub fn aligned(exec: PathBuf, time: Option<&str>, roundoff: Option<&str>, start: i64) -> Result<Trigger, String> {
        check_program(&exec)?;
        let period = match time {
            Some(t) => Some(History::parse(t, roundoff).map_err(|e| format!("sql_trigger_time '{t}': {e}"))?),
            None => None,
        };
        // A bare name would be looked up in PATH by Command; pmacct runs it as a path.
        let exec = if exec.components().count() == 1 && exec.is_relative() { Path::new(".").join(exec) } else { exec };
        let current = period.map_or(start, |p| p.bin_start(start));
        Ok(Trigger { exec, period, current, running: Vec::new(), runs: 0, skipped: 0 })
    }

    /// Called after each refresh's write; runs the program (without waiting for it, reaping
    /// earlier children) when due. Returns whether it ran.
    pub fn after_write(&mut self, now: i64, info: &WriteInfo) -> Result<bool, TriggerError> {
        self.reap();
        let due = match self.period {
            None => true,
            Some(p) => {
                let bin = p.bin_start(now);
                if bin > self.current {
                    self.current = bin;
                    true
                } else {
                    false
                }
            }
        };
        if !due {
            return Ok(false);
        }
        if self.running.len() >= MAX_RUNNING {
            self.skipped += 1;
            tracing::warn!(
                exec = %self.exec.display(),
                running = self.running.len(),
                "sql_trigger_exec: earlier runs have not finished; this run is skipped"
            );
            return Ok(false);
        }
        let child = Command::new(&self.exec)
            .envs(info.env_vars(now))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| TriggerError { path: self.exec.display().to_string(), source })?;
        tracing::debug!(exec = %self.exec.display(), pid = child.id(), "sql_trigger_exec started");
        self.running.push(child);
        self.runs += 1;
        Ok(true)
    }

    /// Collects children that have exited; logs those that failed.
    fn reap(&mut self) {
        let exec = &self.exec;
        self.running.retain_mut(|c| match c.try_wait() {
            Ok(None) => true,
            Ok(Some(st)) => {
                if !st.success() {
                    tracing::warn!(exec = %exec.display(), pid = c.id(), status = %st, "sql_trigger_exec failed");
                }
                false
            }
            Err(e) => {
                tracing::warn!(exec = %exec.display(), pid = c.id(), error = %e, "sql_trigger_exec: cannot wait");
                false
            }
        });
    }

    /// Runs still in flight (after reaping the finished ones).
    pub fn running(&mut self) -> usize {
        self.reap();
        self.running.len()
    }

    /// Times the program was started.
    pub fn runs(&self) -> u64 {
        self.runs
    }

    /// Runs skipped because [`MAX_RUNNING`] were still in flight.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Waits (bounded by `timeout`) for children still running, at shutdown.
    pub fn wait_children(&mut self, timeout: Duration) {
        let t = Instant::now();
        while self.running() > 0 && t.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(10));
        }
        for c in &self.running {
            tracing::warn!(
                exec = %self.exec.display(),
                pid = c.id(),
                "sql_trigger_exec still running at shutdown; left running"
            );
        }
    }
}
