//! The memory plugin: keeps the cumulative table and serves it to the `xacct` client over the
//! Unix socket `imt_path` ([`xacct_core::imt`] protocol).
//!
//! Threads: an acceptor thread accepts connections and reads each request line (with a timeout,
//! so a silent client cannot block it for long), then hands `(request, stream)` to the plugin
//! thread over a channel. The plugin thread alone owns the table: it harvests the workers'
//! shards, answers from the table, and builds each answer into a buffer that a short-lived
//! writer thread sends. So no lock is taken on the table, every answer includes every record
//! harvested up to the moment it was asked, and a slow reader stalls only its own writer thread,
//! never the harvesting.

use crate::{PluginContext, PluginError};
use crossbeam_channel::select;
use std::io::{BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xacct_core::aggregate::{Projector, Table};
use xacct_core::imt::{self, ImtError, QueryCounters, Request, Response, SourceStatus, Status};

/// Harvest at least this often so worker shards stay small between queries.
const HARVEST_EVERY: Duration = Duration::from_secs(1);
/// How long a client may take to send its request line, and to read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

struct Incoming {
    req: Result<Request, ImtError>,
    stream: UnixStream,
}

/// Removes the socket file when the plugin returns, however it returns.
struct SocketGuard {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        // Wake the acceptor out of accept().
        let _ = UnixStream::connect(&self.path);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

pub fn run_memory(mut ctx: PluginContext) -> Result<(), PluginError> {
    let name = ctx.config.name.clone();
    let path = ctx.config.imt_path.clone();
    let io_err = |what: String| {
        let plugin = name.clone();
        move |source| PluginError::Io { plugin, what, source }
    };
    // A socket file left by a crashed daemon would make bind fail.
    if std::fs::symlink_metadata(&path).is_ok() {
        std::fs::remove_file(&path).map_err(io_err(format!("removing stale socket {}", path.display())))?;
    }
    let listener = UnixListener::bind(&path).map_err(io_err(format!("binding {}", path.display())))?;
    crate::chown(&path, &ctx.config).map_err(io_err(format!("files_uid/files_gid: chown {}", path.display())))?;
    let (tx, rx) = crossbeam_channel::bounded::<Incoming>(64);
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("imt-accept-{name}"))
            .spawn(move || accept_loop(listener, tx, &stop))
            .map_err(io_err("spawning the acceptor thread".into()))?
    };
    let _guard = SocketGuard { path: path.clone(), stop, acceptor: Some(acceptor) };
    tracing::info!(plugin = %name, socket = %path.display(), "memory table ready");

    let mut server = Server {
        table: Table::with_words(ctx.projector.words()),
        projector: ctx.projector.clone(),
        with_bin: ctx.config.history().is_some(),
        last_clear: None,
    };
    let mut next_harvest = Instant::now() + HARVEST_EVERY;
    loop {
        let wait = next_harvest.saturating_duration_since(Instant::now());
        select! {
            recv(ctx.shutdown) -> _ => break,
            recv(rx) -> msg => {
                let Ok(Incoming { req, stream }) = msg else { break };
                server.harvest(&mut ctx);
                let answer = match req {
                    Ok(req) => server.answer(&req, &ctx),
                    Err(e) => error_answer(&e.to_string()),
                };
                ctx.stats.entries_written.store(server.table.len() as u64, Relaxed);
                send_answer(stream, answer);
            }
            default(wait.min(crate::POLL)) => {
                if Instant::now() >= next_harvest || ctx.harvest.wanted() {
                    server.harvest(&mut ctx);
                    ctx.stats.entries_written.store(server.table.len() as u64, Relaxed);
                    next_harvest = Instant::now() + HARVEST_EVERY;
                }
            }
        }
    }
    tracing::info!(plugin = %name, entries = server.table.len(), "memory table closing");
    Ok(())
}

fn accept_loop(listener: UnixListener, tx: crossbeam_channel::Sender<Incoming>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Relaxed) {
            return;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!("memory table: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
        let req =
            stream.try_clone().map_err(ImtError::from).and_then(|s| imt::read_line::<Request>(&mut BufReader::new(s)));
        if tx.send(Incoming { req, stream }).is_err() {
            return;
        }
    }
}

fn error_answer(message: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = imt::write_line(&mut buf, &Response::Error { message: message.to_string() });
    buf
}

fn send_answer(mut stream: UnixStream, answer: Vec<u8>) {
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let spawned = std::thread::Builder::new().name("imt-reply".into()).spawn(move || {
        if let Err(e) = stream.write_all(&answer) {
            tracing::debug!("memory table client went away: {e}");
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot spawn a reply thread: {e}");
    }
}

struct Server {
    table: Table,
    projector: Projector,
    /// The daemon builds a binned projector exactly when `print_history` is set; the client
    /// needs to know to unpack keys.
    with_bin: bool,
    last_clear: Option<Instant>,
}

impl Server {
    fn harvest(&mut self, ctx: &mut PluginContext) {
        ctx.harvest.harvest_into(&mut self.table);
        ctx.stats.refreshes.fetch_add(1, Relaxed);
    }

    fn clear(&mut self) {
        self.table.clear();
        self.last_clear = Some(Instant::now());
    }

    /// The full answer bytes: the response line, then any entries.
    fn answer(&mut self, req: &Request, ctx: &PluginContext) -> Vec<u8> {
        let agg = self.projector.aggregate().clone();
        let mut buf = Vec::new();
        let response = match req {
            Request::Table { matches, top, reset, clear } => {
                let patterns = match matches.as_ref().map(|m| m.compile(&agg)).transpose() {
                    Ok(p) => p,
                    Err(e) => return error_answer(&e.to_string()),
                };
                let words = self.projector.words();
                let mut entries = Vec::new();
                let mut n = 0u64;
                let proj = &self.projector;
                let selected = |k: &[u64], c: &xacct_core::Counters| -> bool {
                    // Entries whose counters were reset (-r) are not shown, as in pmacct.
                    if c.packets == 0 && c.bytes == 0 && c.flows == 0 {
                        return false;
                    }
                    match &patterns {
                        None => true,
                        // The overflow entry has no key for a pattern to match.
                        Some(_) if proj.is_overflow(k) => false,
                        Some(ps) => {
                            let r = proj.unpack(k).0;
                            ps.iter().any(|p| p.matches(&r))
                        }
                    }
                };
                match top {
                    None => {
                        entries.reserve(self.table.len() * imt::entry_size(words));
                        self.table.for_each(|k, c| {
                            if selected(k, c) {
                                // Tables round key widths up (7 words are stored in 8): the
                                // client reads exactly the projector's width.
                                imt::encode_entry(&mut entries, &k[..words.min(k.len())], c);
                                n += 1;
                            }
                        });
                    }
                    Some((kind, limit)) => {
                        // Keys in one flat buffer: no allocation per entry.
                        let mut keys: Vec<u64> = Vec::new();
                        let mut picked: Vec<(u64, usize, xacct_core::Counters)> = Vec::new();
                        self.table.for_each(|k, c| {
                            if selected(k, c) {
                                picked.push((kind.of(c), keys.len(), *c));
                                keys.extend_from_slice(&k[..words.min(k.len())]);
                            }
                        });
                        picked.sort_by_key(|p| std::cmp::Reverse(p.0));
                        picked.truncate(limit.unwrap_or(usize::MAX));
                        for &(_, at, ref c) in &picked {
                            imt::encode_entry(&mut entries, keys.get(at..at + words).unwrap_or_default(), c);
                        }
                        n = picked.len() as u64;
                    }
                }
                if *reset {
                    if let Some(ps) = &patterns {
                        self.reset_matching(ps);
                    }
                }
                if *clear {
                    self.clear();
                }
                let _ = imt::write_line(
                    &mut buf,
                    &Response::Table {
                        aggregate: agg.to_string(),
                        with_bin: self.with_bin,
                        entries: n,
                        labels: if agg.has(xacct_core::Primitive::Label) {
                            xacct_core::tag::labels().all()
                        } else {
                            Vec::new()
                        },
                    },
                );
                buf.extend_from_slice(&entries);
                return buf;
            }
            Request::Counters { matches, reset, clear } => {
                let patterns = match matches.compile(&agg) {
                    Ok(p) => p,
                    Err(e) => return error_answer(&e.to_string()),
                };
                let mut results = vec![QueryCounters::default(); patterns.len()];
                let proj = &self.projector;
                self.table.for_each(|k, c| {
                    if proj.is_overflow(k) {
                        return;
                    }
                    let r = proj.unpack(k).0;
                    for (p, q) in patterns.iter().zip(results.iter_mut()) {
                        if p.matches(&r) {
                            q.packets += c.packets;
                            q.bytes += c.bytes;
                            q.flows += c.flows;
                            q.entries += 1;
                        }
                    }
                });
                if *reset {
                    self.reset_matching(&patterns);
                }
                if *clear {
                    self.clear();
                }
                Response::Counters { results }
            }
            Request::Clear => {
                self.clear();
                Response::Cleared
            }
            Request::SinceClear => Response::SinceClear { seconds: self.last_clear.map(|t| t.elapsed().as_secs()) },
            Request::Status => Response::Status(self.status(ctx)),
        };
        let _ = imt::write_line(&mut buf, &response);
        buf
    }

    /// `-r`: matched entries start counting from zero again (removed; they come back with the
    /// next matching record).
    fn reset_matching(&mut self, patterns: &[imt::Pattern]) {
        let proj = &self.projector;
        self.table.retain(|k, _| {
            if proj.is_overflow(k) {
                return true;
            }
            let r = proj.unpack(k).0;
            !patterns.iter().any(|p| p.matches(&r))
        });
    }

    fn status(&self, ctx: &PluginContext) -> Status {
        Status {
            plugin: ctx.config.name.clone(),
            aggregate: self.projector.aggregate().to_string(),
            entries: self.table.len() as u64,
            table_bytes: self.table.allocated_bytes() as u64,
            since_clear: self.last_clear.map(|t| t.elapsed().as_secs()),
            accounted: ctx.stats.accounted.load(Relaxed),
            filtered: ctx.stats.filtered.load(Relaxed),
            refreshes: ctx.stats.refreshes.load(Relaxed),
            sources: ctx
                .sources
                .iter()
                .map(|(name, s)| SourceStatus {
                    name: name.clone(),
                    received: s.received.load(Relaxed),
                    kernel_dropped: s.kernel_dropped.load(Relaxed),
                    malformed: s.malformed_by_reason().into_iter().map(|(w, n)| (w.to_string(), n)).collect(),
                    non_ip: s.non_ip.load(Relaxed),
                    queue_dropped: s.queue_dropped.load(Relaxed),
                    processed: s.processed.load(Relaxed),
                    finished: s.finished.load(Relaxed),
                    fragment_orphans: s.fragment_orphans.load(Relaxed),
                    fragments_untracked: s.fragments_untracked.load(Relaxed),
                    flows_untracked: s.flows_untracked.load(Relaxed),
                    xsk_rx_ring_full: s.xsk_rx_ring_full.load(Relaxed),
                    xsk_fill_ring_empty: s.xsk_fill_ring_empty.load(Relaxed),
                    xsk_rx_dropped: s.xsk_rx_dropped.load(Relaxed),
                    xsk_rx_invalid_descs: s.xsk_rx_invalid_descs.load(Relaxed),
                    extra: s
                        .extra_counters()
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .chain(s.exporter_counters())
                        .collect(),
                })
                .collect(),
            plugins: ctx
                .peers
                .iter()
                .map(|(name, kind, st)| imt::PluginStatus {
                    name: name.clone(),
                    kind: kind.name().to_string(),
                    counters: st.counters(*kind),
                })
                .collect(),
        }
    }
}
