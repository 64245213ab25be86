//! libpcap sources: a live interface (non-blocking reads polled with a timeout, since a
//! blocking read can hang forever on an idle link) or a pcap savefile.

use crate::batch::{Batch, BatchSink, COALESCE_NAP};
use crate::savefile::SavefileReader;
use pcap::{Active, Capture, Offline};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xacct_core::stats::SourceStats;
use xacct_wire::LinkType;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open interface '{iface}': {source}")]
    OpenLive { iface: String, source: pcap::Error },
    #[error("cannot open pcap file '{}': {source}", path.display())]
    OpenFile { path: PathBuf, source: pcap::Error },
    #[error("pcap_filter '{expr}' rejected by libpcap: {source}")]
    Filter { expr: String, source: pcap::Error },
    #[error("unsupported link type {dlt} ({name}) on {what}")]
    LinkType { dlt: i32, name: String, what: String },
    #[error("reading from {what}: {source}")]
    Read { what: String, source: pcap::Error },
}

/// Why a source stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceEnd {
    /// A pcap file was read to its end.
    EndOfFile,
    /// A pcap file ended inside a record (a capture cut short): every whole frame before the
    /// cut was accounted, as pmacctd does; the reason is kept for the log.
    Truncated,
    /// The daemon asked the source to stop.
    Stopped,
    /// Every worker is gone.
    WorkersGone,
}

enum Handle {
    Live(Capture<Active>),
    /// pcapng and anything else libpcap reads.
    File(Capture<Offline>),
    /// Classic pcap files, read in blocks (see [`crate::savefile`]).
    Block {
        reader: SavefileReader,
        filter: Option<pcap::BpfProgram>,
    },
}

/// One libpcap capture handle.
pub struct PcapSource {
    handle: Handle,
    link: LinkType,
    what: String,
}

fn link_of(dlt: pcap::Linktype, what: &str) -> Result<LinkType, CaptureError> {
    LinkType::from_dlt(dlt.0).ok_or_else(|| CaptureError::LinkType {
        dlt: dlt.0,
        name: dlt.get_name().unwrap_or_else(|_| "?".into()),
        what: what.to_string(),
    })
}

impl PcapSource {
    /// Opens a live interface in non-blocking mode.
    pub fn open_live(
        iface: &str,
        snaplen: u32,
        promisc: bool,
        filter: Option<&str>,
    ) -> Result<PcapSource, CaptureError> {
        let err = |source| CaptureError::OpenLive { iface: iface.to_string(), source };
        let cap = Capture::from_device(iface)
            .map_err(err)?
            .snaplen(snaplen as i32)
            .promisc(promisc)
            .immediate_mode(true)
            .buffer_size(32 << 20)
            .timeout(100)
            .open()
            .map_err(err)?;
        let mut cap = cap.setnonblock().map_err(err)?;
        if let Some(expr) = filter {
            cap.filter(expr, true).map_err(|source| CaptureError::Filter { expr: expr.to_string(), source })?;
        }
        let what = format!("interface {iface}");
        let link = link_of(cap.get_datalink(), &what)?;
        Ok(PcapSource { handle: Handle::Live(cap), link, what })
    }

    /// Captures only packets received (`inbound`) or only packets sent by the host
    /// (`pcap_direction`); a no-op on files.
    pub fn set_direction(&mut self, inbound: bool) -> Result<(), CaptureError> {
        if let Handle::Live(cap) = &self.handle {
            let d = if inbound { pcap::Direction::In } else { pcap::Direction::Out };
            cap.direction(d).map_err(|source| CaptureError::OpenLive { iface: self.what.clone(), source })?;
        }
        Ok(())
    }

    /// Opens a pcap savefile: classic pcap files are read in blocks, others by libpcap.
    pub fn open_file(path: &Path, filter: Option<&str>) -> Result<PcapSource, CaptureError> {
        let what = format!("pcap file {}", path.display());
        let io_err = |e: std::io::Error| CaptureError::OpenFile {
            path: path.to_path_buf(),
            source: pcap::Error::IoError(e.kind()),
        };
        if let Some(reader) = SavefileReader::open(path).map_err(io_err)? {
            let dlt = pcap::Linktype(reader.header().linktype as i32);
            let link = link_of(dlt, &what)?;
            let filter = match filter {
                Some(expr) => {
                    // libpcap's own compiler and interpreter: identical semantics to a capture.
                    let dead =
                        Capture::dead(dlt).map_err(|source| CaptureError::Filter { expr: expr.to_string(), source })?;
                    Some(
                        dead.compile(expr, true)
                            .map_err(|source| CaptureError::Filter { expr: expr.to_string(), source })?,
                    )
                }
                None => None,
            };
            return Ok(PcapSource { handle: Handle::Block { reader, filter }, link, what });
        }
        let mut cap =
            Capture::from_file(path).map_err(|source| CaptureError::OpenFile { path: path.to_path_buf(), source })?;
        if let Some(expr) = filter {
            cap.filter(expr, true).map_err(|source| CaptureError::Filter { expr: expr.to_string(), source })?;
        }
        let link = link_of(cap.get_datalink(), &what)?;
        Ok(PcapSource { handle: Handle::File(cap), link, what })
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    pub fn describe(&self) -> &str {
        &self.what
    }

    pub fn is_file(&self) -> bool {
        !matches!(self.handle, Handle::Live(_))
    }

    /// Reads until end of file, `stop`, or the workers going away, batching frames into `sink`.
    pub fn run(
        &mut self,
        id: usize,
        sink: &mut BatchSink,
        stop: &AtomicBool,
        stats: &SourceStats,
    ) -> Result<SourceEnd, CaptureError> {
        let link = self.link;
        let mut batch = sink.empty(link, id);
        if let Handle::Block { reader, filter } = &mut self.handle {
            return run_blocks(reader, filter.as_ref(), &self.what, sink, &mut batch, stop, stats);
        }
        let mut last_stats = Instant::now();
        // When the batch being filled got its first frame (see `BatchSink::should_coalesce`).
        let mut started: Option<Instant> = None;
        let mut napped_in_vain = false;
        loop {
            if stop.load(Relaxed) {
                let _ = sink.flush(&mut batch, stats);
                return Ok(SourceEnd::Stopped);
            }
            let next = match &mut self.handle {
                Handle::Live(c) => c.next_packet(),
                Handle::File(c) => c.next_packet(),
                Handle::Block { .. } => unreachable!("block-read files return above"),
            };
            match next {
                Ok(p) => {
                    napped_in_vain = false;
                    let ts = p.header.ts.tv_sec;
                    if batch.is_empty() {
                        started = Some(Instant::now());
                    }
                    batch.push(p.data, p.header.len, ts);
                    if batch.is_full() && !sink.flush(&mut batch, stats) {
                        return Ok(SourceEnd::WorkersGone);
                    }
                }
                // Nap only while frames keep coming: a nap that brought nothing means a slow
                // link, where waiting would cost more wake-ups than it saves.
                Err(pcap::Error::TimeoutExpired) if !napped_in_vain && BatchSink::should_coalesce(&batch, started) => {
                    std::thread::sleep(COALESCE_NAP);
                    napped_in_vain = true;
                    continue;
                }
                Err(pcap::Error::NoMorePackets) => {
                    sink.flush(&mut batch, stats);
                    return Ok(SourceEnd::EndOfFile);
                }
                Err(pcap::Error::TimeoutExpired) => {
                    // Idle link: hand over what we have so counts do not wait for a full batch,
                    // then wait for the descriptor (bounded, so `stop` is seen promptly).
                    if !sink.flush(&mut batch, stats) {
                        return Ok(SourceEnd::WorkersGone);
                    }
                    if let Handle::Live(c) = &self.handle {
                        let mut fds = [nix::poll::PollFd::new(c.as_fd(), nix::poll::PollFlags::POLLIN)];
                        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
                    }
                }
                Err(e) => {
                    // Frames already batched are accounted whatever happens next.
                    sink.flush(&mut batch, stats);
                    if self.is_file() {
                        tracing::warn!("{}: {e}; treating it as the end of the file", self.what);
                        return Ok(SourceEnd::Truncated);
                    }
                    return Err(CaptureError::Read { what: self.what.clone(), source: e });
                }
            }
            // Reading the clock per packet showed up in profiles; once per batch is plenty.
            if batch.is_empty() && last_stats.elapsed() > Duration::from_millis(500) {
                self.update_kernel_drops(stats);
                last_stats = Instant::now();
            }
        }
    }

    /// Copies libpcap's drop counters (kernel ring + interface) into `stats`.
    pub fn update_kernel_drops(&mut self, stats: &SourceStats) {
        if let Handle::Live(c) = &mut self.handle {
            if let Ok(s) = c.stats() {
                stats.kernel_dropped.store(s.dropped as u64 + s.if_dropped as u64, Relaxed);
            }
        }
    }
}

/// The block reader's loop (classic pcap files).
fn run_blocks(
    reader: &mut SavefileReader,
    filter: Option<&pcap::BpfProgram>,
    what: &str,
    sink: &mut BatchSink,
    batch: &mut Batch,
    stop: &AtomicBool,
    stats: &SourceStats,
) -> Result<SourceEnd, CaptureError> {
    loop {
        match reader.next_frame() {
            Ok(Some((h, data))) => {
                if filter.is_some_and(|f| !f.filter(data)) {
                    continue;
                }
                batch.push(data, h.len, h.ts_sec as i64);
                if batch.is_full() {
                    if !sink.flush(batch, stats) {
                        return Ok(SourceEnd::WorkersGone);
                    }
                    if stop.load(Relaxed) {
                        return Ok(SourceEnd::Stopped);
                    }
                }
            }
            Ok(None) => {
                sink.flush(batch, stats);
                return Ok(SourceEnd::EndOfFile);
            }
            Err(e) => {
                // Every whole frame before the damage is accounted, as pmacctd does.
                sink.flush(batch, stats);
                tracing::warn!("{what}: {e}; treating it as the end of the file");
                return Ok(SourceEnd::Truncated);
            }
        }
    }
}

/// Shared handle so the daemon can ask a running source to stop.
pub type StopFlag = Arc<AtomicBool>;
