//! The SQL plugin thread (`pgsql`, `mysql`, `sqlite3`).
//!
//! Every `sql_refresh_time` (after `sql_startup_delay`), and early when the table holds more
//! than `sql_cache_entries` entries, the plugin harvests the workers' shards, applies
//! `sql_preprocess`, groups the entries by destination table and time bin and makes one batch of
//! each group. A batch is appended to the durable spool (`sql_spool_dir`) before anything is
//! written; `sql_max_writers` writer threads, each with its own connection, write batches in
//! transactions (see [`crate::db`]); a batch leaves the spool only once committed, and the spool
//! is emptied strictly in order. Batches for one table are written one at a time and in order;
//! different tables (dynamic names) are written in parallel.
//!
//! When the database is down or a write fails, the batch stays in the spool and is retried
//! with backoff (1 s doubling to 30 s), one probe at a time, trying `sql_recovery_backup_host`
//! when the primary fails. Batches left by an earlier run (crash, SIGKILL, database down at
//! shutdown) are replayed first, in order. Each batch carries an id that its transaction records
//! in `xacct_batches`, so a batch whose commit happened but whose removal from the spool did not
//! (a crash between the two) is recognised and not written twice.
//!
//! Memory stays bounded during a long outage: the oldest waiting batches stay in memory up to a
//! row budget; newer ones are read back from the spool when they reach its front.
//!
//! The spool is the one of the plugin's target in `sql_spool_dir`: batches made for another
//! database or table (the configuration changed while they waited) are reported and left
//! alone, never written here (see [`crate::targets`]).

use crate::batch::{Batch, Row, TargetId};
use crate::db::{self, Create, DbError, ErrKind, Mode, Outcome, Target};
use crate::preprocess::{MatchType, Preprocess};
use crate::schema::{default_table, Backend, Layout};
use crate::spool::Spool;
use crate::targets::Root;
use crate::trigger::{Trigger, WriteInfo};
use crossbeam_channel::{bounded, select, Receiver, Sender};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xacct_core::aggregate::{Counters, Table};
use xacct_core::config::PluginConfig;
use xacct_core::sqlconf::{NameVars, SqlConfig, TableTemplate};
use xacct_plugins::{PluginContext, PluginError};

/// Rows of one batch at most: bounds a transaction's size and a spool entry's.
const MAX_BATCH_ROWS: usize = 50_000;
/// How often the workers' shards are folded in between refreshes, to watch `sql_cache_entries`.
const HARVEST_EVERY: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long the final flush may wait for the database at shutdown before leaving the rest
/// in the spool for the next start.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);
/// How long shutdown waits for a writer still inside a transaction after the grace period.
const WRITER_GRACE: Duration = Duration::from_secs(10);
/// Markers younger than this are never pruned, whatever the spool says (margin for a crash
/// between commit and the spool's removal).
const MARKER_KEEP_US: u64 = 3_600_000_000;

/// Everything derived from the configuration, checked before the daemon starts.
pub struct Settings {
    pub backend: Backend,
    pub layout: Arc<Layout>,
    pub table: Option<TableTemplate>,
    pub default_table: String,
    pub preprocess: Option<Preprocess>,
    pub primary: Target,
    pub backup: Option<Target>,
    /// What batches for the primary, and `recover` batches for the backup, record as their
    /// target (see [`crate::targets`]).
    pub target: TargetId,
    pub backup_target: Option<TargetId>,
    pub create: Create,
    pub mode: Mode,
    pub writers: usize,
    pub spool_dir: PathBuf,
}

impl Settings {
    /// Builds and checks the plugin's settings; the error names the plugin and, for values
    /// only this crate can parse, the file, line and key.
    pub fn new(p: &PluginConfig) -> Result<Settings, String> {
        let backend = Backend::of(p.kind).ok_or_else(|| format!("plugin {} is not an SQL plugin", p.name))?;
        let default = SqlConfig::new(&p.name, backend == Backend::Sqlite);
        let s = p.sql.as_deref().unwrap_or(&default);
        let layout = Layout::new(
            backend,
            s.table_version,
            &p.aggregate,
            s.optimize_clauses,
            s.history.is_some(),
            s.since_epoch,
            s.num_protos,
        )
        .map_err(|e| format!("plugin {}: {e}", p.name))?;
        let preprocess = match &s.preprocess {
            Some(d) => Some(
                Preprocess::parse(&d.value, if s.preprocess_all { MatchType::All } else { MatchType::Any })
                    .map_err(|e| format!("{}: bad value '{}': {e}", d.origin, d.value))?,
            ),
            None => None,
        };
        let target = |host: &str| Target {
            backend,
            host: host.to_string(),
            port: s.port,
            user: s.user.clone(),
            passwd: s.passwd.clone(),
            db: if backend == Backend::Sqlite && host != s.host { host.to_string() } else { s.db.clone() },
        };
        let primary = target(&s.host);
        let backup = s.recovery_backup_host.as_deref().map(|h| {
            let mut t = target(h);
            if backend == Backend::Sqlite {
                t.db = h.to_string();
            }
            t
        });
        let create = match (&s.table_schema, s.table_autocreate) {
            (Some((_, text)), _) => Create::Schema {
                template: s.table.as_ref().map_or_else(|| default_table(s.table_version), |t| t.to_string()),
                text: text.clone(),
            },
            (None, true) => Create::Ours(layout.create_table("{}")),
            (None, false) => Create::No,
        };
        if let (Create::Schema { template, text }, Some(_)) = (&create, &s.table) {
            if !text.contains(template.as_str()) {
                return Err(format!(
                    "plugin {}: sql_table_schema must create the table named by sql_table ('{template}')",
                    p.name
                ));
            }
        }
        let table_config = s.table.as_ref().map_or_else(|| default_table(s.table_version), |t| t.to_string());
        let target_id = primary.id(&table_config);
        let backup_target = backup.as_ref().map(|b| b.id(&table_config));
        // SQLite takes one writer at a time: more writers would only wait on its lock.
        let writers = if backend == Backend::Sqlite { 1 } else { s.max_writers.max(1) as usize };
        Ok(Settings {
            backend,
            layout: Arc::new(layout),
            table: s.table.clone(),
            default_table: default_table(s.table_version),
            preprocess,
            primary,
            backup,
            target: target_id,
            backup_target,
            create,
            mode: Mode { dont_try_update: s.dont_try_update, use_copy: s.use_copy, multi_values: s.multi_values },
            writers,
            spool_dir: s.spool_dir.clone(),
        })
    }
}

/// Checks an SQL plugin's configuration (for the daemon, before anything starts).
pub fn check(p: &PluginConfig) -> Result<(), String> {
    Settings::new(p).map(|_| ())
}

struct Job {
    seq: u64,
    writer: usize,
    batch: Arc<Batch>,
    prune_below: u64,
}

struct Done {
    seq: u64,
    writer: usize,
    result: Result<(Outcome, bool), DbError>,
    elapsed: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    InFlight,
    Done,
}

/// One spool entry, in spool order. `batch` is None for entries only on disk (left by an
/// earlier run, or put out of memory during an outage): they are read when they reach the
/// spool's front.
struct Slot {
    seq: u64,
    batch: Option<Arc<Batch>>,
    rows: u64,
    state: State,
    attempts: u32,
    from_disk: bool,
}

struct Writers {
    /// One channel per writer: the plugin gives work to the lowest-numbered idle writer, so
    /// connections are opened only as far as writes really run in parallel (one for a plugin
    /// with one table), not `sql_max_writers` per plugin.
    jobs: Vec<Sender<Job>>,
    done: Receiver<Done>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

/// The `spool` column of the markers: this target's spool's, or for batches spooled before
/// targets were recorded, the one those were spooled under (see [`crate::targets`]).
#[derive(Clone)]
struct MarkerSpools {
    current: String,
    legacy: String,
}

impl MarkerSpools {
    fn of(&self, b: &Batch) -> &str {
        if b.target.is_some() {
            &self.current
        } else {
            &self.legacy
        }
    }
}

fn spawn_writers(st: &Settings, spools: &MarkerSpools, name: &str) -> Result<Writers, std::io::Error> {
    // Bounded by construction: a writer gets a job only when idle, so each has at most one
    // job queued and one answer pending.
    let (dtx, drx) = bounded::<Done>(st.writers.max(1));
    let mut handles = Vec::new();
    let mut jobs = Vec::new();
    for i in 0..st.writers {
        let (jtx, jrx) = bounded::<Job>(1);
        jobs.push(jtx);
        let dtx = dtx.clone();
        let (primary, backup, create, mode) = (st.primary.clone(), st.backup.clone(), st.create.clone(), st.mode);
        let spools = spools.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("{name}-writer{i}"))
                .spawn(move || writer(jrx, dtx, primary, backup, create, mode, spools))?,
        );
    }
    Ok(Writers { jobs, done: drx, handles })
}

fn attempt(
    conn: &mut Option<Box<dyn db::Conn>>,
    t: &Target,
    create: &Create,
    job: &Job,
    mode: Mode,
    spools: &MarkerSpools,
) -> Result<Outcome, DbError> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(db::connect(t, create.clone())?),
    };
    let now = chrono::Utc::now().timestamp();
    let r = c.write(&job.batch, spools.of(&job.batch), job.prune_below, now, mode);
    if r.is_err() {
        // Whatever failed, the next attempt starts from a new session: what a session keeps
        // between transactions (the tables it has seen, the driver's prepared statements and
        // type cache, a transaction the server may still think open, session locks) was
        // learnt before the failure and may be what made it. A reconnect costs little beside
        // an error, and a data error (the only kind a session would survive) is rare.
        *conn = None;
    }
    r
}

fn writer(
    jobs: Receiver<Job>,
    done: Sender<Done>,
    primary: Target,
    backup: Option<Target>,
    create: Create,
    mode: Mode,
    spools: MarkerSpools,
) {
    let (mut conn, mut bconn) = (None, None);
    for job in jobs {
        let t0 = Instant::now();
        // Recovered entries (sql_preprocess `recover`) belong on the backup host only; the
        // plugin makes such batches only when one is configured.
        if job.batch.recovery {
            if let Some(b) = &backup {
                let result = attempt(&mut bconn, b, &create, &job, mode, &spools).map(|o| (o, true));
                if done.send(Done { seq: job.seq, writer: job.writer, result, elapsed: t0.elapsed() }).is_err() {
                    return;
                }
                continue;
            }
        }
        let mut result = attempt(&mut conn, &primary, &create, &job, mode, &spools).map(|o| (o, false));
        if let (Err(e), Some(b)) = (&result, &backup) {
            if e.kind != ErrKind::Permanent {
                tracing::warn!("{}: {e}; trying sql_recovery_backup_host", primary.describe());
                result = attempt(&mut bconn, b, &create, &job, mode, &spools).map(|o| (o, true));
            }
        }
        if done.send(Done { seq: job.seq, writer: job.writer, result, elapsed: t0.elapsed() }).is_err() {
            return;
        }
    }
}

/// The plugin's state between refreshes.
struct Sql {
    ctx: PluginContext,
    st: Settings,
    /// `sql_spool_dir`, locked.
    root: Root,
    /// The spool of the configured target.
    spool: Spool,
    queue: VecDeque<Slot>,
    /// Batches the spool refused (disk full, …), kept in memory and pushed first next time.
    unspooled: VecDeque<Batch>,
    next_seq: u64,
    last_id: u64,
    free: usize,
    /// Which writers are idle.
    idle: Vec<bool>,
    down: bool,
    retry_at: Instant,
    backoff: Duration,
    trigger: Option<Trigger>,
    /// Facts about the writes since the last trigger.
    info: Option<WriteInfo>,
    /// Rows kept in memory for waiting batches before older ones are left on disk only.
    memory_rows: u64,
    writers_jobs: Vec<Sender<Job>>,
    /// Entries harvested since the last trigger, before `sql_preprocess`.
    harvested: u64,
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

impl Sql {
    fn cfg(&self) -> SqlConfig {
        self.ctx.config.sql.as_deref().cloned().unwrap_or_else(|| SqlConfig::new(&self.ctx.config.name, false))
    }

    /// Ids grow across restarts and also after the spool directory was lost: they are
    /// microseconds since the epoch at least.
    fn next_id(&mut self) -> u64 {
        self.last_id = (self.last_id + 1).max(now_us());
        self.last_id
    }

    /// Turns the harvested table into spooled batches.
    fn flush(&mut self, table: &Table, now: i64) {
        self.harvested += table.len() as u64;
        if !table.is_empty() {
            let mut entries: Vec<(Vec<u64>, Counters)> = Vec::with_capacity(table.len());
            table.for_each(|k, c| entries.push((k.to_vec(), *c)));
            // `recover`: entries failing the checks go to sql_recovery_backup_host when there
            // is one (pmacct: "handled through the recovery mechanism, if enabled"), else they
            // are dropped like the others, counted.
            let mut recovered: Vec<(Vec<u64>, Counters)> = Vec::new();
            if let Some(p) = &self.st.preprocess {
                let o = p.apply_split(&mut entries, &mut recovered);
                let mut dropped = o.dropped;
                if self.st.backup.is_none() {
                    dropped += recovered.len() as u64;
                    recovered.clear();
                }
                self.ctx.stats.preprocess_dropped.fetch_add(dropped, Relaxed);
            }
            let cfg = self.cfg();
            let history = cfg.history;
            let mut groups: BTreeMap<(bool, String, Option<i64>), Vec<Row>> = BTreeMap::new();
            let tagged = entries.iter().map(|e| (false, e)).chain(recovered.iter().map(|e| (true, e)));
            for (recovery, (k, c)) in tagged {
                let (rec, bin) = self.ctx.projector.unpack(k);
                let bin = history.map(|_| bin);
                let name = match &self.st.table {
                    Some(t) => t.expand(&NameVars {
                        time: bin.unwrap_or(now),
                        tag: rec.tag,
                        tag2: rec.tag2,
                        refresh: cfg.refresh_time,
                        history_secs: bin.zip(history).map_or(0, |(b, h)| h.bin_len(b).max(0) as u64),
                    }),
                    None => self.st.default_table.clone(),
                };
                let row = Row {
                    keys: self.st.layout.key_values(&rec),
                    packets: c.packets,
                    bytes: c.bytes,
                    flows: c.flows,
                    tcp_flags: c.tcp_flags,
                };
                groups.entry((recovery, name, bin)).or_default().push(row);
            }
            let shape = self.st.layout.shape();
            for ((recovery, name, bin), rows) in groups {
                let mut rows = rows;
                while !rows.is_empty() {
                    let rest = rows.split_off(rows.len().min(MAX_BATCH_ROWS));
                    let id = self.next_id();
                    self.unspooled.push_back(Batch {
                        id,
                        table: name.clone(),
                        bin,
                        shape: shape.clone(),
                        rows,
                        made: now,
                        recovery,
                        target: Some(if recovery {
                            self.st.backup_target.clone().unwrap_or_else(|| self.st.target.clone())
                        } else {
                            self.st.target.clone()
                        }),
                    });
                    rows = rest;
                }
            }
        }
        self.push_unspooled();
    }

    /// Appends waiting batches to the spool, in order; stops at the first failure (kept for
    /// the next try).
    fn push_unspooled(&mut self) {
        while let Some(b) = self.unspooled.front() {
            if let Err(e) = self.spool.push(b.id, b) {
                self.ctx.stats.write_errors.fetch_add(1, Relaxed);
                tracing::error!(
                    "plugin {}: {e}; {} batch(es) held in memory until the spool takes them",
                    self.ctx.config.name,
                    self.unspooled.len()
                );
                break;
            }
            let Some(b) = self.unspooled.pop_front() else { break };
            let rows = b.rows.len() as u64;
            self.next_seq += 1;
            self.queue.push_back(Slot {
                seq: self.next_seq,
                batch: Some(Arc::new(b)),
                rows,
                state: State::Waiting,
                attempts: 0,
                from_disk: false,
            });
        }
        self.limit_memory();
        self.gauges();
    }

    /// Keeps at most `memory_rows` rows of waiting batches in memory (the front one always);
    /// the rest is read back from the spool when its turn comes.
    fn limit_memory(&mut self) {
        let mut kept = 0u64;
        for (i, s) in self.queue.iter_mut().enumerate() {
            if s.state != State::Waiting || s.batch.is_none() {
                continue;
            }
            kept += s.rows;
            if i > 0 && kept > self.memory_rows {
                s.batch = None;
            }
        }
    }

    fn gauges(&self) {
        let st = &self.ctx.stats;
        st.spool_batches.store(self.queue.len() as u64 + self.unspooled.len() as u64, Relaxed);
        let rows: u64 = self.queue.iter().map(|s| s.rows).sum::<u64>()
            + self.unspooled.iter().map(|b| b.rows.len() as u64).sum::<u64>();
        st.spool_rows.store(rows, Relaxed);
    }

    fn prune_below(&self) -> u64 {
        let front = self.queue.front().and_then(|s| s.batch.as_ref()).map_or(0, |b| b.id);
        front.min(now_us().saturating_sub(MARKER_KEEP_US))
    }

    /// The target this plugin writes `b` to now.
    fn target_for(&self, b: &Batch) -> &TargetId {
        match (&self.st.backup_target, b.recovery) {
            (Some(t), true) => t,
            _ => &self.st.target,
        }
    }

    /// Reads the front batch when it is on disk only. One that is not for the target this
    /// plugin would write it to is moved to its own target's spool, unchanged (see
    /// [`crate::targets`]); batches without a recorded target found here were put here by
    /// the operator. False when the spool cannot be read now.
    fn load_front(&mut self) -> bool {
        let name = self.ctx.config.name.clone();
        while self.queue.front().is_some_and(|s| s.batch.is_none()) {
            let b = match self.spool.front::<Batch>() {
                Ok(Some((_, b))) => b,
                Ok(None) => {
                    tracing::error!("plugin {name}: the spool is shorter than expected");
                    self.queue.pop_front();
                    return false;
                }
                Err(e) => {
                    tracing::error!("plugin {name}: reading the spool: {e}");
                    self.ctx.stats.write_errors.fetch_add(1, Relaxed);
                    self.retry_at = Instant::now() + BACKOFF_MAX;
                    return false;
                }
            };
            match b.target.clone().filter(|t| t != self.target_for(&b)) {
                None => {
                    if let Some(s) = self.queue.front_mut() {
                        s.rows = b.rows.len() as u64;
                        s.batch = Some(Arc::new(b));
                    }
                }
                Some(t) => match self.root.set_aside(&mut self.spool, &t) {
                    Ok(path) => {
                        let rows = b.rows.len() as u64;
                        self.ctx.stats.spool_orphaned_batches.fetch_add(1, Relaxed);
                        self.ctx.stats.spool_orphaned_rows.fetch_add(rows, Relaxed);
                        tracing::warn!(
                            "plugin {name}: spooled batch {} ({rows} rows, table {}) was made for {t}, not for {}: \
not written; moved to {}",
                            b.id,
                            b.table,
                            self.target_for(&b),
                            path.display()
                        );
                        self.queue.pop_front();
                        self.gauges();
                    }
                    Err(e) => {
                        tracing::error!("plugin {name}: setting aside a batch made for {t}: {e}");
                        self.ctx.stats.write_errors.fetch_add(1, Relaxed);
                        self.retry_at = Instant::now() + BACKOFF_MAX;
                        return false;
                    }
                },
            }
        }
        true
    }

    /// Hands waiting batches to free writers (see the module doc for the order rules).
    fn dispatch(&mut self) {
        if self.free == 0 || Instant::now() < self.retry_at {
            return;
        }
        if !self.load_front() {
            return;
        }
        let prune_below = self.prune_below();
        let mut busy: HashSet<String> = HashSet::new();
        let mut sent = 0;
        for i in 0..self.queue.len() {
            if self.free == 0 || (self.down && sent > 0) {
                break;
            }
            let state = self.queue[i].state;
            if state == State::Done {
                continue;
            }
            // A batch still on disk (after the front, which load_front read): its table is
            // unknown until it is read, so later batches wait behind it.
            let Some(batch) = self.queue[i].batch.clone() else { break };
            if state == State::InFlight {
                busy.insert(batch.table.clone());
                continue;
            }
            if !busy.insert(batch.table.clone()) {
                continue;
            }
            let seq = self.queue[i].seq;
            let Some(w) = self.idle.iter().position(|i| *i) else { return };
            let Some(jobs) = self.writers_jobs.get(w) else { return };
            if jobs.send(Job { seq, writer: w, batch, prune_below }).is_err() {
                return;
            }
            self.idle[w] = false;
            self.queue[i].state = State::InFlight;
            self.free -= 1;
            sent += 1;
        }
    }

    fn completed(&mut self, d: Done, now: i64) {
        self.free += 1;
        if let Some(i) = self.idle.get_mut(d.writer) {
            *i = true;
        }
        let Some(slot) = self.queue.iter_mut().find(|s| s.seq == d.seq) else { return };
        let stats = &self.ctx.stats;
        let name = &self.ctx.config.name;
        let batch = slot.batch.clone();
        match d.result {
            Ok((o, to_backup)) => {
                slot.state = State::Done;
                stats.rows_written.fetch_add(o.rows, Relaxed);
                stats.entries_written.fetch_add(o.rows, Relaxed);
                stats.record_write_latency(d.elapsed);
                if o.duplicate {
                    stats.batches_duplicate.fetch_add(1, Relaxed);
                    tracing::info!(
                        "plugin {name}: batch {} was already committed; not written again",
                        batch.as_ref().map_or(0, |b| b.id)
                    );
                }
                if slot.attempts > 0 || slot.from_disk {
                    stats.batches_replayed.fetch_add(1, Relaxed);
                }
                if to_backup {
                    stats.batches_to_backup.fetch_add(1, Relaxed);
                }
                if self.down {
                    tracing::info!("plugin {name}: database reachable again; replaying the spool");
                }
                self.down = false;
                self.backoff = BACKOFF_MIN;
                if let Some(b) = &batch {
                    let info = self.info.get_or_insert_with(WriteInfo::default);
                    if info.table.is_empty() {
                        info.table = b.table.clone();
                    }
                    info.entries += b.rows.len() as u64;
                    info.rows_written += o.rows;
                    *info.inserted.get_or_insert(0) += o.inserted;
                    *info.updated.get_or_insert(0) += o.updated;
                    info.elapsed += d.elapsed;
                    if let Some(bin) = b.bin {
                        info.history_basetime =
                            if info.history_basetime == 0 { bin } else { info.history_basetime.min(bin) };
                    }
                }
            }
            Err(e) => {
                stats.failed_statements.fetch_add(1, Relaxed);
                if e.kind == ErrKind::Permanent {
                    slot.state = State::Done;
                    let saved = batch.as_ref().map(|b| reject(&self.st.spool_dir, b));
                    tracing::error!(
                        "plugin {name}: {e}: the batch can never be written; set aside in {}",
                        saved
                            .and_then(|r| r.ok())
                            .map_or_else(|| "nothing (could not save it)".into(), |p| p.display().to_string())
                    );
                } else {
                    if slot.attempts == 0 && !slot.from_disk {
                        stats.rows_spooled.fetch_add(slot.rows, Relaxed);
                    }
                    slot.attempts += 1;
                    slot.state = State::Waiting;
                    if !self.down {
                        tracing::warn!("plugin {name}: {e}; batches stay in the spool and are retried");
                    } else {
                        tracing::debug!("plugin {name}: retry failed: {e}");
                    }
                    self.down = true;
                    self.retry_at = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        // The spool is emptied strictly from its front.
        while self.queue.front().is_some_and(|s| s.state == State::Done) {
            if let Err(e) = self.spool.pop_front() {
                tracing::error!("plugin {name}: removing a written batch from the spool: {e}");
                self.ctx.stats.write_errors.fetch_add(1, Relaxed);
                break;
            }
            self.queue.pop_front();
        }
        self.gauges();
        if self.queue.is_empty() {
            self.fire_trigger(now);
        }
    }

    fn fire_trigger(&mut self, now: i64) {
        // The facts accumulate until the trigger actually runs (with sql_trigger_time it runs
        // once a period, and then describes every write since its last run).
        let (Some(t), Some(info)) = (self.trigger.as_mut(), self.info.as_ref()) else { return };
        let mut info = info.clone();
        let cfg = self.ctx.config.sql.as_deref();
        info.backend = self.st.backend.name();
        info.host = self.st.primary.host.clone();
        info.db = self.st.primary.db.clone();
        info.user = self.st.primary.user.clone();
        info.refresh_time = cfg.map_or(60, |c| c.refresh_time);
        info.history = cfg.map_or_else(String::new, |c| c.history_text.clone());
        info.history_timeslot = cfg.and_then(|c| c.history).map_or(0, |h| h.bin_len(info.history_basetime));
        info.max_writers = self.st.writers as u32;
        info.active_writers = (self.st.writers - self.free) as u32;
        info.table_config = self.st.table.as_ref().map_or_else(|| self.st.default_table.clone(), |t| t.to_string());
        info.total_entries = self.harvested;
        info.recovery_backup_host = cfg.and_then(|c| c.recovery_backup_host.clone()).unwrap_or_default();
        info.rows_spooled = self.ctx.stats.spool_rows.load(Relaxed);
        match t.after_write(now, &info) {
            Ok(false) => {}
            Ok(true) => {
                self.info = None;
                self.harvested = 0;
            }
            Err(e) => {
                tracing::warn!("plugin {}: {e}", self.ctx.config.name);
                self.info = None;
                self.harvested = 0;
            }
        }
    }

    fn writers_idle(&self) -> bool {
        self.free == self.st.writers
    }
}

/// Saves a batch the database will never take, beside the spool, so nothing vanishes silently.
fn reject(spool_dir: &std::path::Path, b: &Batch) -> std::io::Result<PathBuf> {
    let mut dir = spool_dir.as_os_str().to_owned();
    dir.push(".rejected");
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.json", b.id));
    let text = serde_json::to_vec(b).map_err(std::io::Error::other)?;
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Logs and counts the batches in `sql_spool_dir` that are not for this plugin's target (see
/// [`crate::targets`]); they stay where they are.
fn report_orphans(root: &Root, st: &Settings, name: &str, stats: &xacct_core::stats::PluginStats) {
    let groups = match root.orphans(&st.target) {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("plugin {name}: looking for batches of other targets in sql_spool_dir: {e}");
            stats.write_errors.fetch_add(1, Relaxed);
            return;
        }
    };
    for o in &groups {
        stats.spool_orphaned_batches.fetch_add(o.batches, Relaxed);
        stats.spool_orphaned_rows.fetch_add(o.rows, Relaxed);
        let unreadable =
            if o.unreadable > 0 { format!(", {} of them unreadable", o.unreadable) } else { String::new() };
        let what = format!("{} spooled batch(es) ({} rows, {} bytes{unreadable})", o.batches, o.rows, o.bytes);
        match &o.target {
            Some(t) => tracing::warn!(
                "plugin {name}: {what} in {} were made for {t}, not for this plugin's target ({}): \
not written; they stay there until a plugin with that target's settings and this sql_spool_dir \
writes them, or the directory is deleted",
                o.dir.display(),
                st.target
            ),
            None if o.dir != root.dir() => tracing::warn!(
                "plugin {name}: {what} in {} are for a target that cannot be read from its target file \
or its batches (tables: {}): not written; they stay there until moved or deleted",
                o.dir.display(),
                o.tables.iter().cloned().collect::<Vec<_>>().join(", "),
            ),
            None => tracing::warn!(
                "plugin {name}: {what} in {} were spooled by an xacct version that did not record their \
target (tables: {}): not written; if they are for {}, stop xacctd and move the *.entry files \
into {}, else delete them",
                o.dir.display(),
                o.tables.iter().cloned().collect::<Vec<_>>().join(", "),
                st.target,
                root.dir_of(&st.target).display()
            ),
        }
    }
}

pub fn run_sql(ctx: PluginContext) -> Result<(), PluginError> {
    let name = ctx.config.name.clone();
    let failed = |what: String| PluginError::Failed { plugin: name.clone(), what };
    let st = Settings::new(&ctx.config).map_err(&failed)?;
    let cfg = ctx.config.sql.as_deref().cloned().unwrap_or_else(|| SqlConfig::new(&name, false));
    let root = Root::open(&st.spool_dir).map_err(|e| failed(format!("sql_spool_dir: {e}")))?;
    let (spool, current) = root.open_target(&st.target).map_err(|e| failed(format!("sql_spool_dir: {e}")))?;
    let spools = MarkerSpools { current, legacy: root.legacy_marker_spool() };
    // Ids are also entry names, and entries may move between the targets' spools.
    let last_id = spool.last_id().max(root.last_id().map_err(|e| failed(format!("sql_spool_dir: {e}")))?);
    report_orphans(&root, &st, &name, &ctx.stats);
    let trigger = match &cfg.trigger_exec {
        Some(exec) => Some(Trigger::new(exec.clone(), cfg.trigger_time.as_deref()).map_err(&failed)?),
        None => None,
    };
    let writers = spawn_writers(&st, &spools, &name).map_err(|e| failed(format!("spawning writers: {e}")))?;
    let recovered = spool.len();
    if recovered > 0 {
        tracing::info!(
            "plugin {name}: {recovered} batch(es) left in the spool by an earlier run; replaying them first"
        );
    }
    if spool.quarantined() > 0 {
        tracing::warn!("plugin {name}: {} torn spool entr(ies) set aside", spool.quarantined());
    }
    tracing::info!(
        "plugin {name}: writing to {} ({} writer(s), spool {})",
        st.primary.describe(),
        st.writers,
        spool.dir().display()
    );
    let mut s = Sql {
        free: st.writers,
        idle: vec![true; st.writers],
        last_id,
        memory_rows: (cfg.cache_entries as u64 * 4).max(1_000_000),
        spool,
        queue: (0..recovered as u64)
            .map(|i| Slot { seq: i + 1, batch: None, rows: 0, state: State::Waiting, attempts: 0, from_disk: true })
            .collect(),
        unspooled: VecDeque::new(),
        next_seq: recovered as u64,
        down: false,
        retry_at: Instant::now(),
        backoff: BACKOFF_MIN,
        trigger,
        info: None,
        writers_jobs: writers.jobs.clone(),
        harvested: 0,
        root,
        st,
        ctx,
    };
    let done = writers.done.clone();
    s.gauges();
    s.dispatch();

    let refresh = Duration::from_secs(cfg.refresh_time.max(1));
    let mut table = Table::with_words(s.ctx.projector.words());
    let start = Instant::now() + Duration::from_secs(cfg.startup_delay);
    let mut next_refresh = start + refresh;
    let mut next_harvest = Instant::now() + HARVEST_EVERY;
    loop {
        let wake = next_harvest.min(next_refresh).min(if s.down { s.retry_at } else { next_harvest });
        let wait = wake.saturating_duration_since(Instant::now());
        let stop = select! {
            recv(s.ctx.shutdown) -> _ => true,
            recv(done) -> d => {
                if let Ok(d) = d { s.completed(d, chrono::Utc::now().timestamp()); }
                false
            }
            default(wait) => false,
        };
        if stop {
            break;
        }
        let now = Instant::now();
        if now >= next_harvest {
            s.ctx.harvest.harvest_into(&mut table);
            next_harvest = now + HARVEST_EVERY;
            if now >= start && (now >= next_refresh || table.len() > cfg.cache_entries) {
                if now < next_refresh {
                    tracing::info!(
                        "plugin {name}: {} entries exceed sql_cache_entries {}: writing early",
                        table.len(),
                        cfg.cache_entries
                    );
                }
                s.ctx.stats.refreshes.fetch_add(1, Relaxed);
                s.flush(&table, chrono::Utc::now().timestamp());
                table.clear();
                if now >= next_refresh {
                    next_refresh += refresh;
                    if next_refresh < now {
                        next_refresh = now + refresh;
                    }
                }
            } else if !s.unspooled.is_empty() {
                s.push_unspooled();
            }
        }
        s.dispatch();
    }

    // Final flush, then give the database a bounded time to take what is queued; what it does
    // not take stays in the spool for the next start.
    s.ctx.harvest.harvest_into(&mut table);
    s.ctx.stats.refreshes.fetch_add(1, Relaxed);
    s.flush(&table, chrono::Utc::now().timestamp());
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    if s.down {
        // No need to wait out a backoff that started long ago.
        s.retry_at = Instant::now();
    }
    s.dispatch();
    while !(s.queue.is_empty() && s.writers_idle()) && Instant::now() < deadline {
        if s.writers_idle() && s.down && Instant::now() < s.retry_at {
            // One more probe after the backoff, if the grace period allows.
            if s.retry_at > deadline {
                break;
            }
        }
        match done.recv_timeout(Duration::from_millis(100)) {
            Ok(d) => s.completed(d, chrono::Utc::now().timestamp()),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
        s.dispatch();
    }
    s.writers_jobs.clear();
    drop(writers.jobs);
    // Writers finish the transaction they are in (their results are read so none is lost). One
    // stuck on a dead server is left behind after a while: its batch is still in the spool, and
    // if it did commit, its marker keeps the replay from writing it twice.
    let stuck_after = Instant::now().max(deadline) + WRITER_GRACE;
    for h in writers.handles {
        while !h.is_finished() && Instant::now() < stuck_after {
            if let Ok(d) = done.recv_timeout(Duration::from_millis(50)) {
                s.completed(d, chrono::Utc::now().timestamp());
            }
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            tracing::warn!("plugin {name}: a writer is still waiting for the database; leaving its batch to the spool");
        }
    }
    while let Ok(d) = done.try_recv() {
        s.completed(d, chrono::Utc::now().timestamp());
    }
    let left = s.queue.len() + s.unspooled.len();
    if left > 0 {
        tracing::warn!("plugin {name}: {left} batch(es) not written; they stay in the spool for the next start");
    }
    if let Some(t) = s.trigger.as_mut() {
        t.wait_children(Duration::from_secs(5));
    }
    tracing::info!("plugin {name}: stopped");
    Ok(())
}
