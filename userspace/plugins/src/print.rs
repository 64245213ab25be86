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

use crate::{PluginContext, PluginError};
use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use xacct_core::aggregate::Table;
use xacct_core::format::{FormatOptions, TableWriter, TimeStyle};

pub fn run_print(mut ctx: PluginContext) -> Result<(), PluginError> {
    let refresh = Duration::from_secs(ctx.config.print_refresh_time.max(1));
    let mut table = Table::with_words(ctx.projector.words());
    let mut next = Instant::now() + refresh;
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
            numeric_protocols: false,
            all_fields: false,
            time_style: TimeStyle::Local,
            stamps: cfg.print_history.is_some(),
            event_type: Some("purge"),
        },
    )
}

/// Writes `table` out once; returns the number of entries written.
fn flush(ctx: &PluginContext, table: &Table, now: i64) -> Result<u64, PluginError> {
    if table.is_empty() {
        return Ok(0);
    }
    let mut tw = writer_for(ctx);
    tw.set_updated(now);
    let proj = &ctx.projector;
    let plugin = ctx.config.name.clone();
    let err = |what: String| {
        let plugin = plugin.clone();
        move |source: io::Error| PluginError::Io { plugin, what, source }
    };
    match &ctx.config.print_output_file {
        None => {
            let stdout = io::stdout();
            let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
            let mut n = 0;
            let r = tw.header(&mut out).and_then(|_| {
                let mut res = Ok(());
                table.for_each(|k, c| {
                    if res.is_ok() {
                        let (rec, bin) = proj.unpack(k);
                        res = tw.row(&mut out, &rec, c, bin);
                        n += 1;
                    }
                });
                res
            });
            r.and_then(|_| out.flush()).map_err(err("writing to stdout".into()))?;
            Ok(n)
        }
        Some(pattern) => {
            // Entries grouped by destination file (one per bin with print_history).
            let binned = ctx.config.print_history.is_some();
            let mut files: BTreeMap<String, Vec<(Vec<u64>, xacct_core::Counters)>> = BTreeMap::new();
            table.for_each(|k, c| {
                let ts = if binned { proj.unpack(k).1 } else { now };
                files.entry(expand_path(pattern, ts)).or_default().push((k.to_vec(), *c));
            });
            let mut n = 0;
            for (path, entries) in &files {
                let f = std::fs::File::create(path).map_err(err(format!("creating {path}")))?;
                let mut out = BufWriter::with_capacity(1 << 16, f);
                tw.header(&mut out).map_err(err(format!("writing {path}")))?;
                for (k, c) in entries {
                    let (rec, bin) = proj.unpack(k);
                    tw.row(&mut out, &rec, c, bin).map_err(err(format!("writing {path}")))?;
                }
                out.flush().map_err(err(format!("writing {path}")))?;
                n += entries.len() as u64;
            }
            Ok(n)
        }
    }
}

/// Expands strftime variables (`%Y%m%d-%H%M`, …) in local time. A pattern chrono cannot parse
/// is used literally rather than failing every refresh.
pub fn expand_path(pattern: &str, ts: i64) -> String {
    use chrono::format::{Item, StrftimeItems};
    use chrono::TimeZone;
    use std::fmt::Write as _;
    if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
        return pattern.to_string();
    }
    let t = match chrono::Local.timestamp_opt(ts, 0) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t,
        chrono::LocalResult::None => return pattern.to_string(),
    };
    let mut s = String::new();
    if write!(s, "{}", t.format(pattern)).is_err() {
        return pattern.to_string();
    }
    s
}
