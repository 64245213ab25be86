//! AF_XDP source: one socket per (interface, RX queue), whose frames land in a UMEM shared with
//! the kernel and are copied (headers only) into [`Batch`]es like any other source's.
//!
//! Built on `xsk-rs` (libxdp underneath): it works on veth, lets us either keep libxdp's own
//! redirect program or inhibit it and put the socket into our XDP program's XSKMAP, and exposes
//! the kernel's `XDP_STATISTICS`. The `afxdp` crate also works but is unmaintained.
//!
//! Frame life cycle: every UMEM frame starts on the fill ring; the kernel moves it to the rx
//! ring with a packet in it; we copy the headers out and give the same frame straight back to
//! the fill ring. The fill ring is as large as the UMEM, so handing frames back never finds it
//! full, and no frame is ever held across a batch hand-off (workers never see UMEM memory).

use crate::batch::{BatchSink, BATCH_FRAMES, COALESCE_NAP};
use crate::pcap_source::SourceEnd;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use xacct_core::stats::SourceStats;
use xacct_wire::LinkType;
use xsk_rs::config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    #[error("AF_XDP on {iface} queue {queue}: {what} must be a power of two, got {value}")]
    NotPowerOfTwo { iface: String, queue: u32, what: &'static str, value: u32 },
    #[error("AF_XDP: interface name '{0}' contains a NUL byte")]
    BadInterface(String),
    #[error("AF_XDP on {iface} queue {queue}: cannot create the UMEM: {detail}")]
    Umem { iface: String, queue: u32, detail: String },
    #[error("AF_XDP on {iface} queue {queue}: cannot bind a socket (zero-copy: {zero_copy}; copy mode: {copy})")]
    Socket { iface: String, queue: u32, zero_copy: String, copy: String },
    #[error("AF_XDP on {iface} queue {queue}: the socket came without fill/completion rings")]
    NoFillRing { iface: String, queue: u32 },
    #[error("AF_XDP on {iface} queue {queue}: polling the socket: {source}")]
    Poll { iface: String, queue: u32, source: std::io::Error },
}

/// How packets reach the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steering {
    /// libxdp loads its default program, which redirects every packet of the queue to the
    /// socket (alone on an interface, and in tests).
    Standalone,
    /// No program is loaded here: the daemon's XDP program redirects to the socket once
    /// [`AfXdpSource::fd`] is in its XSKMAP at this queue's index.
    External,
}

/// Whether the kernel copies packets into the UMEM or the driver DMAs straight into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    ZeroCopy,
    Copy,
}

impl std::fmt::Display for BindMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        })
    }
}

/// Sizes of the UMEM and rings (all powers of two, as the kernel requires).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// UMEM frames; the fill ring gets this many slots so every frame fits on it at once.
    pub frames: u32,
    /// Bytes per UMEM frame: 4096 holds any standard-MTU frame; larger frames are dropped by
    /// the kernel and counted in `xsk_rx_dropped`.
    pub frame_size: u32,
    /// Rx ring slots.
    pub rx_ring: u32,
    pub steering: Steering,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        // 4096 frames x 4 KiB = 16 MiB per queue: about 1 ms of line rate at 4 Mpps of small
        // frames, enough to ride out a worker-queue hiccup. The rx ring holds every frame: with
        // 2048 slots, a source thread sharing its core with a worker (a scheduler slice of a
        // few ms) lost ~0.6 % of 1 Mpps to `xsk_rx_ring_full` on perf/xacct-vethbench's
        // `kernel` bed; with 4096, none.
        AfXdpConfig { frames: 4096, frame_size: 4096, rx_ring: 4096, steering: Steering::Standalone }
    }
}

/// The kernel's cumulative socket counters as last seen, so only the increase is added to
/// [`SourceStats`] (several queues may share one `SourceStats`).
#[derive(Debug, Default, Clone, Copy)]
struct SeenStats {
    rx_dropped: u64,
    rx_ring_full: u64,
    fill_empty: u64,
    invalid: u64,
}

/// One AF_XDP socket bound to one RX queue.
pub struct AfXdpSource {
    // Field order matters only for clarity: xsk-rs keeps the socket alive until the last queue
    // handle (rx, tx, fill, completion) is dropped, whatever the order.
    rx: RxQueue,
    fill: FillQueue,
    _comp: CompQueue,
    _tx: TxQueue,
    umem: Umem,
    /// Scratch descriptors the rx ring is read into.
    descs: Vec<FrameDesc>,
    /// Frames taken off the rx ring but not yet back on the fill ring (only if the fill ring
    /// ever refused them; it is sized so it should not).
    pending: Vec<FrameDesc>,
    mode: BindMode,
    seen: SeenStats,
    what: String,
    iface: String,
    queue: u32,
}

fn pow2(iface: &str, queue: u32, what: &'static str, value: u32) -> Result<QueueSize, AfXdpError> {
    QueueSize::new(value).map_err(|_| AfXdpError::NotPowerOfTwo { iface: iface.to_string(), queue, what, value })
}

/// An error and its causes on one line (xsk-rs puts the errno in `source()`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn errno(e: &dyn std::error::Error) -> Option<i32> {
    e.source()?.downcast_ref::<std::io::Error>()?.raw_os_error()
}

impl AfXdpSource {
    /// Binds a socket to `queue` of `iface`, zero-copy if the driver offers it, else in copy
    /// mode ([`Self::mode`] says which), and puts every UMEM frame on the fill ring.
    pub fn open(iface: &str, queue: u32, cfg: &AfXdpConfig) -> Result<AfXdpSource, AfXdpError> {
        let frame_count = NonZeroU32::new(cfg.frames).filter(|n| n.is_power_of_two()).ok_or_else(|| {
            AfXdpError::NotPowerOfTwo { iface: iface.to_string(), queue, what: "frames", value: cfg.frames }
        })?;
        let fill_size = pow2(iface, queue, "frames", cfg.frames)?;
        let rx_size = pow2(iface, queue, "rx_ring", cfg.rx_ring)?;
        let frame_size =
            FrameSize::new(cfg.frame_size).ok().filter(|_| cfg.frame_size.is_power_of_two()).ok_or_else(|| {
                AfXdpError::NotPowerOfTwo {
                    iface: iface.to_string(),
                    queue,
                    what: "frame_size (at least 2048)",
                    value: cfg.frame_size,
                }
            })?;
        // The completion ring serves transmit only; we never transmit.
        let small = pow2(iface, queue, "tx ring", 64)?;
        let umem_err = |detail: String| AfXdpError::Umem { iface: iface.to_string(), queue, detail };
        let umem_cfg = UmemConfig::builder()
            .frame_size(frame_size)
            .fill_queue_size(fill_size)
            .comp_queue_size(small)
            .build()
            .map_err(|e| umem_err(chain(&e)))?;
        let name: Interface = iface.parse().map_err(|_| AfXdpError::BadInterface(iface.to_string()))?;

        let libxdp = match cfg.steering {
            Steering::Standalone => LibxdpFlags::empty(),
            Steering::External => LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD,
        };
        // Each attempt gets a UMEM of its own: a failed bind leaves libxdp's bookkeeping of
        // the UMEM's rings in a state that is not worth reasoning about.
        let attempt = |bind: BindFlags| -> Result<_, AfXdpError> {
            let (umem, descs) = Umem::new(umem_cfg, frame_count, false).map_err(|e| umem_err(chain(&e)))?;
            let sock_cfg = SocketConfig::builder()
                .rx_queue_size(rx_size)
                .tx_queue_size(small)
                .libxdp_flags(libxdp)
                .xdp_flags(XdpFlags::empty())
                .bind_flags(bind | BindFlags::XDP_USE_NEED_WAKEUP)
                .build();
            // SAFETY: the UMEM is fresh and not shared, so the shared-UMEM condition of
            // `Socket::new` (inhibit the program load when the pair is already bound from the
            // same UMEM) cannot arise.
            let made = unsafe { Socket::new(sock_cfg, &umem, &name, queue) };
            Ok(made.map(|queues| (umem, descs, queues)))
        };
        // The kernel releases a closed socket's hold on the queue in deferred work, so binding
        // the queue again right after (a restarted source, a test) briefly fails with EBUSY.
        let deadline = Instant::now() + Duration::from_secs(2);
        let (mode, (umem, frames, (tx, rx, rings))) = loop {
            let zc = match attempt(BindFlags::XDP_ZEROCOPY)? {
                Ok(ok) => break (BindMode::ZeroCopy, ok),
                Err(e) => e,
            };
            let copy = match attempt(BindFlags::XDP_COPY)? {
                Ok(ok) => break (BindMode::Copy, ok),
                Err(e) => e,
            };
            if errno(&copy) != Some(libc::EBUSY) || Instant::now() > deadline {
                return Err(AfXdpError::Socket {
                    iface: iface.to_string(),
                    queue,
                    zero_copy: chain(&zc),
                    copy: chain(&copy),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (mut fill, comp) = rings.ok_or_else(|| AfXdpError::NoFillRing { iface: iface.to_string(), queue })?;
        // SAFETY: the descriptors come from this UMEM and none is in use anywhere yet.
        let given = unsafe { fill.produce(&frames) };
        let what = format!("AF_XDP {iface} queue {queue}");
        if given != frames.len() {
            // The fill ring holds exactly `frames` slots, so this means a libxdp surprise; the
            // source still works, with the frames kept back for later refills.
            tracing::warn!("{what}: fill ring took {given} of {} frames", frames.len());
        }
        let pending = if given == frames.len() { Vec::new() } else { frames };
        tracing::info!("{what}: bound in {mode} mode ({:?} steering)", cfg.steering);
        Ok(AfXdpSource {
            rx,
            fill,
            _comp: comp,
            _tx: tx,
            umem,
            descs: vec![FrameDesc::default(); BATCH_FRAMES],
            pending,
            mode,
            seen: SeenStats::default(),
            what,
            iface: iface.to_string(),
            queue,
        })
    }

    /// Zero-copy or copy mode, as bound.
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// The socket, for the daemon's XSKMAP (with [`Steering::External`]).
    pub fn fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    pub fn describe(&self) -> &str {
        &self.what
    }

    /// Receives until `stop` or the workers going away, batching frame headers into `sink`.
    pub fn run(
        &mut self,
        id: usize,
        sink: &mut BatchSink,
        stop: &AtomicBool,
        stats: &SourceStats,
    ) -> Result<SourceEnd, AfXdpError> {
        let link = LinkType::Ethernet;
        let mut batch = sink.empty(link, id);
        let mut last_stats = Instant::now();
        // When the batch being filled got its first frame (see `BatchSink::should_coalesce`).
        let mut started: Option<Instant> = None;
        let mut napped_in_vain = false;
        loop {
            if stop.load(Relaxed) {
                sink.flush(&mut batch, stats);
                self.update_stats(stats);
                return Ok(SourceEnd::Stopped);
            }
            self.refill_pending();
            // SAFETY: `descs` is scratch space that the rx ring overwrites with descriptors of
            // this socket's own UMEM.
            let n = unsafe { self.rx.consume(&mut self.descs) };
            // Nap only while frames keep coming: a nap that brought nothing means a slow link,
            // where waiting would cost more wake-ups than it saves.
            if n == 0 && !napped_in_vain && BatchSink::should_coalesce(&batch, started) {
                std::thread::sleep(COALESCE_NAP);
                napped_in_vain = true;
                continue;
            }
            napped_in_vain = false;
            if n == 0 {
                started = None;
                // Idle: hand over what we have so counts do not wait for a full batch, then
                // wait for the socket (bounded, so `stop` is seen promptly). The poll also
                // wakes the driver when it asked for it (need_wakeup).
                if !sink.flush(&mut batch, stats) {
                    return Ok(SourceEnd::WorkersGone);
                }
                self.rx.poll(100).map_err(|source| AfXdpError::Poll {
                    iface: self.iface.clone(),
                    queue: self.queue,
                    source,
                })?;
                if last_stats.elapsed() > Duration::from_millis(500) {
                    self.update_stats(stats);
                    last_stats = Instant::now();
                }
                continue;
            }
            let ts = now_secs();
            let mut workers_gone = false;
            if batch.is_empty() {
                started = Some(Instant::now());
            }
            for d in self.descs.iter().take(n) {
                // SAFETY: `d` came off this UMEM's rx ring, so the kernel has handed the frame
                // to us and will not write it until it is back on the fill ring (below).
                let data = unsafe { self.umem.data(d) }.contents();
                batch.push(data, u32::try_from(data.len()).unwrap_or(u32::MAX), ts);
                if batch.is_full() {
                    started = Some(Instant::now());
                    if !sink.flush(&mut batch, stats) {
                        workers_gone = true;
                        break;
                    }
                }
            }
            self.give_back(n);
            if workers_gone {
                return Ok(SourceEnd::WorkersGone);
            }
            // Once per burst (not per frame), busy or idle, so drops show up while they happen.
            if last_stats.elapsed() > Duration::from_millis(500) {
                self.update_stats(stats);
                last_stats = Instant::now();
            }
        }
    }

    /// Returns the first `n` scratch descriptors (just read) to the fill ring.
    fn give_back(&mut self, n: usize) {
        let done = self.descs.get(..n).unwrap_or(&self.descs[..]);
        // SAFETY: these frames came off this UMEM's rx ring and their contents have been
        // copied; nothing refers to them any more.
        if unsafe { self.fill.produce(done) } == 0 {
            // `produce` is all or nothing: keep them for the next turn rather than leak frames.
            self.pending.extend_from_slice(done);
        }
        self.wake_fill();
    }

    /// Tells the driver there are fresh frames when it asked to be told (need_wakeup). A
    /// failed wake-up is harmless: the idle poll in `run` wakes it too.
    fn wake_fill(&mut self) {
        if self.fill.needs_wakeup() {
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
    }

    fn refill_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let free = self.fill.nb_free(self.pending.len() as u32) as usize;
        let k = free.min(self.pending.len());
        if k == 0 {
            return;
        }
        let start = self.pending.len() - k;
        // SAFETY: pending frames belong to this UMEM and are owned by us (off every ring).
        if unsafe { self.fill.produce(&self.pending[start..]) } > 0 {
            self.pending.truncate(start);
            self.wake_fill();
        }
    }

    /// Adds the increase of the kernel's socket counters since the last call to `stats`.
    pub fn update_stats(&mut self, stats: &SourceStats) {
        let Ok(k) = self.rx.fd().xdp_statistics() else { return };
        let now = SeenStats {
            rx_dropped: k.rx_dropped(),
            rx_ring_full: k.rx_ring_full(),
            fill_empty: k.rx_fill_ring_empty_descs(),
            invalid: k.rx_invalid_descs(),
        };
        let add = |c: &AtomicU64, new: u64, old: u64| {
            let d = new.saturating_sub(old);
            c.fetch_add(d, Relaxed);
            d
        };
        let dropped = add(&stats.xsk_rx_dropped, now.rx_dropped, self.seen.rx_dropped);
        let full = add(&stats.xsk_rx_ring_full, now.rx_ring_full, self.seen.rx_ring_full);
        add(&stats.xsk_fill_ring_empty, now.fill_empty, self.seen.fill_empty);
        add(&stats.xsk_rx_invalid_descs, now.invalid, self.seen.invalid);
        // With the full statistics struct the kernel reports ring-full drops apart from
        // rx_dropped; both are packets we never saw.
        stats.kernel_dropped.fetch_add(dropped + full, Relaxed);
        self.seen = now;
    }
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
