//! The print plugin: every `print_refresh_time` seconds, and once more at shutdown, harvests the
//! workers' shards and writes every entry in `print_output` format to stdout or
//! `print_output_file`, then starts over from an empty table.
//!
//! pmacct 1.7.7 behaviour kept: a refresh with no entries writes nothing (not even a header);
//! each write of a file replaces its previous content (pmacct's default, no append); formatted
//! output has no "For a total of" trailer; JSON objects start with `"event_type": "purge"` and,
//! with `print_history`, carry `stamp_inserted`/`stamp_updated` (formatted/CSV do not).
//! `print_output_file` strftime variables are expanded with the entry's time bin when
//! `print_history` is set (so each bin goes to its own file), else with the write time.
//!
//! If a write fails the table is kept and written again at the next refresh, so a full disk or
//! a missing directory loses nothing that the daemon still holds.
//!
//! Also as pmacct 1.7.7 (checked by running it): `print_markers` writes `--START (PID)--` and
//! `--END (PID)--` around formatted and CSV output, and JSON `purge_init`/`purge_close` events
//! with `writer_id` `<plugin>/<PID>`; `print_output_file_append` appends and writes the header
//! only into a new or empty file; `print_latest_file` is a symlink to the greatest file name
//! written so far; `print_write_empty_file` writes a zero-length file when a refresh has no
//! entry; `print_startup_delay` shifts every refresh by that many seconds.

use crate::{PluginContext, PluginError};
use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use xacct_core::aggregate::Table;
use xacct_core::config::OutputFormat;
use xacct_core::format::{FormatOptions, TableWriter, TimeStyle};

pub fn run_print(mut ctx: PluginContext) -> Result<(), PluginError> {
    let refresh = Duration::from_secs(ctx.config.print_refresh_time.max(1));
    let mut table = Table::with_words(ctx.projector.words());
    let mut next = Instant::now() + refresh + Duration::from_secs(ctx.config.print_startup_delay);
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let stopping = crossbeam_channel::select! {
            recv(ctx.shutdown) -> _ => true,
            default(wait) => false,
        };
        ctx.harvest.harvest_into(&mut table);
        ctx.stats.refreshes.fetch_add(1, Relaxed);
        match flush(&ctx, &table, chrono::Utc::now().timestamp()) {
            Ok(n) => {
                ctx.stats.entries_written.fetch_add(n, Relaxed);
                table.clear();
            }
            Err(e) => {
                ctx.stats.write_errors.fetch_add(1, Relaxed);
                if stopping {
                    return Err(e);
                }
                tracing::warn!("{e}; keeping {} entries for the next refresh", table.len());
            }
        }
        if stopping {
            return Ok(());
        }
        next += refresh;
        // After a long stall, do not fire a burst of catch-up refreshes.
        if next < Instant::now() {
            next = Instant::now() + refresh;
        }
    }
}

fn writer_for(ctx: &PluginContext) -> TableWriter {
    let cfg = &ctx.config;
    TableWriter::new(
        ctx.projector.aggregate(),
        FormatOptions {
            format: cfg.print_output,
            separator: cfg.print_output_separator.clone(),
            numeric_protocols: cfg.print_num_protos,
            all_fields: false,
            time_style: if cfg.timestamps_since_epoch {
                TimeStyle::Epoch
            } else if cfg.timestamps_utc {
                TimeStyle::Utc
            } else {
                TimeStyle::Local
            },
            stamps: cfg.print_history.is_some(),
            event_type: Some("purge"),
        },
    )
}

/// Writes `table` out once; returns the number of entries written.
fn flush(ctx: &PluginContext, table: &Table, now: i64) -> Result<u64, PluginError> {
    let cfg = &ctx.config;
    if table.is_empty() {
        if let (true, Some(pattern)) = (cfg.print_write_empty_file, &cfg.print_output_file) {
            let ts = cfg.print_history.map_or(now, |h| h.bin_start(now));
            let path = expand_path(pattern, ts, cfg.timestamps_utc);
            let err = |what: String| {
                let plugin = cfg.name.clone();
                move |source: io::Error| PluginError::Io { plugin, what, source }
            };
            let mut o = std::fs::OpenOptions::new();
            o.create(true).write(true);
            if cfg.print_output_file_append {
                o.append(true);
            } else {
                o.truncate(true);
            }
            o.open(&path).map_err(err(format!("creating {path}")))?;
            crate::chown(std::path::Path::new(&path), cfg).map_err(err(format!("chown {path}")))?;
            update_latest(cfg, &path).map_err(err("updating print_latest_file".into()))?;
        }
        return Ok(0);
    }
    let mut tw = writer_for(ctx);
    tw.set_updated(now);
    let proj = &ctx.projector;
    let plugin = cfg.name.clone();
    let err = |what: String| {
        let plugin = plugin.clone();
        move |source: io::Error| PluginError::Io { plugin, what, source }
    };
    let markers = Markers { on: cfg.print_markers, json: cfg.print_output == OutputFormat::Json, writer: &cfg.name };
    match &cfg.print_output_file {
        None => {
            let stdout = io::stdout();
            let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
            let mut n = 0;
            let r = markers.start(&mut out).and_then(|_| tw.header(&mut out)).and_then(|_| {
                let mut res = Ok(());
                table.for_each(|k, c| {
                    if res.is_ok() {
                        res = tw.row_of(&mut out, proj, k, c);
                        n += 1;
                    }
                });
                res
            });
            r.and_then(|_| markers.end(&mut out, n))
                .and_then(|_| out.flush())
                .map_err(err("writing to stdout".into()))?;
            Ok(n)
        }
        Some(pattern) => {
            // Entries grouped by destination file (one per bin with print_history).
            let binned = cfg.print_history.is_some();
            let mut files: BTreeMap<String, Vec<(Vec<u64>, xacct_core::Counters)>> = BTreeMap::new();
            table.for_each(|k, c| {
                let ts = if binned { proj.unpack(k).1 } else { now };
                files.entry(expand_path(pattern, ts, cfg.timestamps_utc)).or_default().push((k.to_vec(), *c));
            });
            let mut n = 0;
            for (path, entries) in &files {
                let mut o = std::fs::OpenOptions::new();
                o.create(true).write(true);
                if cfg.print_output_file_append {
                    o.append(true);
                } else {
                    o.truncate(true);
                }
                let f = o.open(path).map_err(err(format!("creating {path}")))?;
                // Appending: the header goes only into a new or empty file.
                let fresh = !cfg.print_output_file_append || f.metadata().map(|m| m.len() == 0).unwrap_or(true);
                crate::chown(std::path::Path::new(path), cfg).map_err(err(format!("chown {path}")))?;
                let mut out = BufWriter::with_capacity(1 << 16, f);
                markers.start(&mut out).map_err(err(format!("writing {path}")))?;
                if fresh {
                    tw.header(&mut out).map_err(err(format!("writing {path}")))?;
                }
                for (k, c) in entries {
                    tw.row_of(&mut out, proj, k, c).map_err(err(format!("writing {path}")))?;
                }
                markers.end(&mut out, entries.len() as u64).map_err(err(format!("writing {path}")))?;
                out.flush().map_err(err(format!("writing {path}")))?;
                n += entries.len() as u64;
            }
            if let Some(last) = files.keys().next_back() {
                update_latest(cfg, last).map_err(err("updating print_latest_file".into()))?;
            }
            Ok(n)
        }
    }
}

/// `print_markers`.
struct Markers<'a> {
    on: bool,
    json: bool,
    writer: &'a str,
}

impl Markers<'_> {
    fn start(&self, out: &mut impl Write) -> io::Result<()> {
        match (self.on, self.json) {
            (false, _) => Ok(()),
            (true, false) => writeln!(out, "--START ({})--", std::process::id()),
            (true, true) => writeln!(
                out,
                "{{\"event_type\": \"purge_init\", \"writer_id\": \"{}/{}\"}}",
                self.writer,
                std::process::id()
            ),
        }
    }

    fn end(&self, out: &mut impl Write, entries: u64) -> io::Result<()> {
        match (self.on, self.json) {
            (false, _) => Ok(()),
            (true, false) => writeln!(out, "--END ({})--", std::process::id()),
            // Written in one pass from memory: the duration is under a second.
            (true, true) => writeln!(
                out,
                "{{\"event_type\": \"purge_close\", \"writer_id\": \"{}/{}\", \"purged_entries\": {entries}, \"total_entries\": {entries}, \"duration\": 0}}",
                self.writer,
                std::process::id()
            ),
        }
    }
}

/// `print_latest_file`: points the symlink at `path` unless it points at a greater name
/// already (pmacct's rule: the lexicographically greatest file is the latest).
fn update_latest(cfg: &xacct_core::config::PluginConfig, path: &str) -> io::Result<()> {
    let Some(link) = &cfg.print_latest_file else { return Ok(()) };
    if let Ok(cur) = std::fs::read_link(link) {
        if cur.to_string_lossy().as_ref() >= path {
            return Ok(());
        }
    }
    // A new link renamed over the old one: readers never see it missing.
    let tmp = format!("{link}.xacct-tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(path, &tmp)?;
    std::fs::rename(&tmp, link)
}

/// Expands strftime variables (`%Y%m%d-%H%M`, …) in local time (UTC with `timestamps_utc`). A
/// pattern chrono cannot parse is used literally rather than failing every refresh.
pub fn expand_path(pattern: &str, ts: i64, utc: bool) -> String {
    use chrono::format::{Item, StrftimeItems};
    use chrono::TimeZone;
    use std::fmt::Write as _;
    if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
        return pattern.to_string();
    }
    let mut s = String::new();
    let ok = if utc {
        match chrono::Utc.timestamp_opt(ts, 0) {
            chrono::LocalResult::Single(t) => write!(s, "{}", t.format(pattern)).is_ok(),
            _ => false,
        }
    } else {
        match chrono::Local.timestamp_opt(ts, 0) {
            chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                write!(s, "{}", t.format(pattern)).is_ok()
            }
            chrono::LocalResult::None => false,
        }
    };
    if !ok {
        return pattern.to_string();
    }
    s
}
