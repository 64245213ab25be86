//! Frame batches: one contiguous buffer plus per-frame metadata, so a worker touches one
//! allocation per few hundred frames and channel traffic is per batch, not per packet.

use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use xacct_core::stats::SourceStats;
use xacct_wire::LinkType;

/// Where a frame sits in [`Batch::buf`] and what libpcap said about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    pub off: u32,
    pub caplen: u32,
    /// Original length on the wire.
    pub wire_len: u32,
    /// Capture timestamp, seconds since the epoch.
    pub ts: i64,
}

/// A batch of frames from one source.
#[derive(Debug)]
pub struct Batch {
    pub link: LinkType,
    /// Index of the source in the daemon's source list (its stats are counted there).
    pub source: usize,
    pub buf: Vec<u8>,
    pub frames: Vec<FrameMeta>,
    /// Records that arrive already decoded and aggregated (XDP flow-map harvests).
    pub records: Vec<xacct_core::Record>,
}

/// Bytes of each frame kept for decoding: Ethernet + two VLAN tags + IPv6 + 160 bytes of
/// extension headers + TCP. pmacctd captures 128 bytes by default (`snaplen`).
pub const HEADER_BYTES: usize = 256;

/// Frames per batch: large enough to amortise channel hand-offs, small enough to keep latency
/// and cache footprint low.
pub const BATCH_FRAMES: usize = 256;

impl Batch {
    pub fn new(link: LinkType, source: usize) -> Batch {
        Batch {
            link,
            source,
            buf: Vec::with_capacity(BATCH_FRAMES * HEADER_BYTES),
            frames: Vec::with_capacity(BATCH_FRAMES),
            records: Vec::new(),
        }
    }

    /// A batch for records only (XDP harvests): no frame buffer, room for a full batch of
    /// records from the start, so that filling it never reallocates.
    pub fn for_records(link: LinkType, source: usize) -> Batch {
        Batch { link, source, buf: Vec::new(), frames: Vec::new(), records: Vec::with_capacity(BATCH_FRAMES) }
    }

    /// Appends a frame, keeping only its first [`HEADER_BYTES`]: accounting reads headers
    /// only (bytes come from the IP length), and copying whole 1500-byte frames would make
    /// every batch ten times larger for nothing, in the source's copy and in the workers'
    /// caches.
    pub fn push(&mut self, data: &[u8], wire_len: u32, ts: i64) {
        let off = self.buf.len() as u32;
        let kept = &data[..data.len().min(HEADER_BYTES)];
        self.buf.extend_from_slice(kept);
        self.frames.push(FrameMeta { off, caplen: kept.len() as u32, wire_len, ts });
    }

    /// Frames plus records.
    pub fn len(&self) -> usize {
        self.frames.len() + self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.records.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.frames.len() >= BATCH_FRAMES || self.records.len() >= BATCH_FRAMES
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.frames.clear();
        self.records.clear();
    }

    /// The frame bytes for `m` (metadata from this batch).
    #[inline]
    pub fn data(&self, m: &FrameMeta) -> &[u8] {
        let start = m.off as usize;
        self.buf.get(start..start + m.caplen as usize).unwrap_or(&[])
    }
}

/// What to do when every worker queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkMode {
    /// Wait (pcap files: reading slower is lossless).
    Block,
    /// Drop the batch and count it in `queue_dropped` (live capture: keep draining the kernel
    /// ring so drops show up here, counted, rather than as silent ring overruns).
    DropAndCount,
}

/// How long a source naps when its ring runs dry while a batch is gathering.
pub const COALESCE_NAP: std::time::Duration = std::time::Duration::from_micros(50);
/// The oldest a gathering batch gets before it is handed over regardless.
pub const COALESCE_AGE: std::time::Duration = std::time::Duration::from_millis(1);

/// Distributes batches over the workers round-robin and recycles empty batches.
pub struct BatchSink {
    workers: Vec<Sender<Batch>>,
    recycle: Receiver<Batch>,
    next: usize,
    mode: SinkMode,
    stats: Arc<SourceStats>,
}

impl BatchSink {
    pub fn new(
        workers: Vec<Sender<Batch>>,
        recycle: Receiver<Batch>,
        mode: SinkMode,
        stats: Arc<SourceStats>,
    ) -> BatchSink {
        BatchSink { workers, recycle, next: 0, mode, stats }
    }

    /// An empty batch to fill: a recycled one when available.
    pub fn empty(&self, link: LinkType, source: usize) -> Batch {
        self.recycled(link, source).unwrap_or_else(|| Batch::new(link, source))
    }

    /// An empty batch to fill with records: a recycled one when available.
    pub fn empty_for_records(&self, link: LinkType, source: usize) -> Batch {
        self.recycled(link, source).unwrap_or_else(|| Batch::for_records(link, source))
    }

    fn recycled(&self, link: LinkType, source: usize) -> Option<Batch> {
        let mut b = self.recycle.try_recv().ok()?;
        b.clear();
        b.link = link;
        b.source = source;
        Some(b)
    }

    /// Whether a source whose ring just ran dry should wait a little for more frames before
    /// handing over `batch`: true while it holds frames but is younger than [`COALESCE_AGE`].
    /// Handing over every frame as it comes costs a worker wake-up (two context switches, a
    /// few µs) per frame at moderate rates, several times what the frame's own processing
    /// costs; a nap of [`COALESCE_NAP`] lets frames gather at a bounded delay (counts are read
    /// seconds later anyway), while the kernel ring (thousands of frames) absorbs the nap.
    pub fn should_coalesce(batch: &Batch, started: Option<std::time::Instant>) -> bool {
        !batch.is_empty() && !batch.is_full() && started.is_some_and(|t| t.elapsed() < COALESCE_AGE)
    }

    /// Counts the frames/records of `batch` as received, sends it to a worker and leaves a fresh
    /// batch in its place. False when no worker is left (daemon stopping).
    pub fn flush(&mut self, batch: &mut Batch, stats: &SourceStats) -> bool {
        if batch.is_empty() {
            return true;
        }
        stats.received.fetch_add(batch.len() as u64, Relaxed);
        let fresh = self.empty(batch.link, batch.source);
        let full = std::mem::replace(batch, fresh);
        self.send(full)
    }

    /// Sends a batch to a worker. Returns false when no worker is left (daemon stopping).
    pub fn send(&mut self, batch: Batch) -> bool {
        if batch.is_empty() {
            return true;
        }
        let n = self.workers.len();
        if n == 0 {
            return false;
        }
        let mut batch = batch;
        // Try every worker once without blocking, starting with the next in turn.
        for i in 0..n {
            let w = (self.next + i) % n;
            match self.workers[w].try_send(batch) {
                Ok(()) => {
                    self.next = (w + 1) % n;
                    return true;
                }
                Err(TrySendError::Full(b)) | Err(TrySendError::Disconnected(b)) => batch = b,
            }
        }
        match self.mode {
            SinkMode::Block => {
                let w = self.next;
                self.next = (w + 1) % n;
                self.workers[w].send(batch).is_ok()
            }
            SinkMode::DropAndCount => {
                self.stats.queue_dropped.fetch_add(batch.len() as u64, Relaxed);
                true
            }
        }
    }
}
