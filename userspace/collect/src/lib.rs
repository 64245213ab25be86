//! NetFlow/IPFIX and sFlow collectors: UDP sockets whose datagrams are decoded (xacct-wire) into
//! [`xacct_core::Record`]s and handed to the workers in `Batch::records`, like the XDP source's
//! harvests. A [`Collector`] has the packet sources' shape (`run(id, sink, stop, stats)`), so the
//! daemon runs each on a thread of its own.
//!
//! Several collectors may listen on one port (SO_REUSEPORT): the kernel hashes each exporter's
//! address and port to one socket, so each thread keeps its own template cache and sequence
//! state. (An exporter that changes its source port may land on another socket, whose cache then
//! learns the templates again from the next refresh.)
//!
//! Counting, per socket:
//! - `SourceStats::received` counts records handed to the workers (the daemon's "finished" check
//!   compares it with the workers' `processed`); datagrams are in `extra` and per exporter;
//! - `kernel_dropped` is the socket's SO_RXQ_OVFL counter: datagrams the kernel dropped because
//!   the receive buffer was full;
//! - per exporter ([`xacct_core::stats::ExporterStats`]): datagrams, records, malformed by
//!   reason, unknown-template sets, sequence gaps forward/backward.
//!
//! NetFlow collectors may share a [`TemplatesFile`] (`nfacctd_templates_file`): each socket's
//! cache starts from it, and hands it what changed at its housekeeping ticks and at stop.

mod map;
mod seq;
pub mod templates_file;

pub use map::{record_from_flow, record_from_sample};
pub use templates_file::TemplatesFile;

use nix::sys::socket::{
    self, sockopt, AddressFamily, ControlMessageOwned, MsgFlags, MultiHeaders, SockFlag, SockType, SockaddrStorage,
};
use nix::sys::time::TimeVal;
use seq::Exporters;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use xacct_capture::{Batch, BatchSink, SourceEnd};
use xacct_core::maps::{AllowList, MapError, Methods};
use xacct_core::stats::{ExporterStats, SourceStats};
use xacct_core::Record;
use xacct_wire::netflow::{Decoder, FlowRecord, FlowSink, Limits, NetflowHeader};
use xacct_wire::LinkType;

/// Which protocol a collector speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// NetFlow v1/v5/v7/v8/v9 and IPFIX (nfacctd).
    Netflow,
    /// sFlow v2/v4/v5 (sfacctd).
    Sflow,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Netflow => "netflow",
            Protocol::Sflow => "sflow",
        }
    }
}

/// One collector socket's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    pub protocol: Protocol,
    /// None = every address (IPv6 and IPv4-mapped when the host has IPv6, else IPv4).
    pub ip: Option<IpAddr>,
    pub port: u16,
    /// SO_RCVBUF in bytes (`nfacctd_pipe_size` / `sfacctd_pipe_size`).
    pub recv_buffer: Option<usize>,
    /// Multiply packets and bytes by the exporter's sampling rate.
    pub renormalize: bool,
    /// Time records by their arrival instead of the flow's start.
    pub time_new: bool,
    /// `*_net`/`*_as`: stamped on every record, so that the workers resolve nets and ASes the
    /// way this collector's keys say.
    pub methods: Methods,
    /// With `ip` None: take IPv6 only on the all-addresses socket (`*_ipv6_only`).
    pub ipv6_only: bool,
    /// Multicast groups to join (`*_mcast_groups`).
    pub mcast_groups: Vec<IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{what} {addr}: {source}")]
    Socket { what: &'static str, addr: SocketAddr, source: nix::Error },
    #[error("receiving on {addr}: {source}")]
    Recv { addr: SocketAddr, source: nix::Error },
}

/// The bounds every NetFlow collector socket puts on its template cache (also what a templates
/// file is checked against).
pub fn template_limits() -> Limits {
    Limits::default()
}

/// Datagrams read per recvmmsg call.
const BATCH_DATAGRAMS: usize = 32;
/// Pause after a read that drained the socket (see `Collector::run`).
const COALESCE: Duration = Duration::from_micros(500);
/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// How long a receive may block before the loop flushes a partial batch, publishes counters
/// and checks for a stop request.
const IDLE: Duration = Duration::from_millis(50);
/// How often per-exporter counters are published while datagrams keep arriving.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// Where a collector hands a copy of every datagram its allow list takes (a tee plugin's
/// queue). A full queue drops the copy and counts it (`tee_queue_dropped` of the plugin):
/// replication never stalls collection.
#[derive(Debug, Clone)]
pub struct Tap {
    pub tx: crossbeam_channel::Sender<xacct_core::tee::Datagram>,
    pub stats: Arc<xacct_core::stats::PluginStats>,
}

/// A bound collector socket and its decoding state.
pub struct Collector {
    taps: Vec<Tap>,
    fd: OwnedFd,
    addr: SocketAddr,
    describe: String,
    dec: DatagramDecoder,
    templates_file: Option<Arc<TemplatesFile>>,
    /// Whether this socket shows the templates file's counters (one socket per file does, so
    /// that totals over sources count them once).
    report_templates_file: bool,
}

fn socket_err(what: &'static str, addr: SocketAddr) -> impl FnOnce(nix::Error) -> CollectError {
    move |source| CollectError::Socket { what, addr, source }
}

fn bind_one(addr: SocketAddr, cfg: &CollectorConfig) -> Result<OwnedFd, CollectError> {
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd =
        socket::socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).map_err(socket_err("socket", addr))?;
    socket::setsockopt(&fd, sockopt::ReusePort, &true).map_err(socket_err("SO_REUSEPORT", addr))?;
    if let Some(n) = cfg.recv_buffer {
        socket::setsockopt(&fd, sockopt::RcvBuf, &n).map_err(socket_err("SO_RCVBUF", addr))?;
    }
    socket::setsockopt(&fd, sockopt::RxqOvfl, &1).map_err(socket_err("SO_RXQ_OVFL", addr))?;
    if addr.is_ipv6() && cfg.ip.is_none() {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &cfg.ipv6_only).map_err(socket_err("IPV6_V6ONLY", addr))?;
    }
    socket::setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, IDLE.as_micros() as _))
        .map_err(socket_err("SO_RCVTIMEO", addr))?;
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(socket_err("bind", addr))?;
    Ok(fd)
}

/// Joins multicast group `g` on every interface the kernel routes it to.
fn join_group(fd: &OwnedFd, g: IpAddr, addr: SocketAddr) -> Result<(), CollectError> {
    match (g, addr) {
        (IpAddr::V4(g), SocketAddr::V4(_)) => {
            let req = socket::IpMembershipRequest::new(g, None);
            socket::setsockopt(fd, sockopt::IpAddMembership, &req).map_err(socket_err("IP_ADD_MEMBERSHIP", addr))
        }
        (IpAddr::V4(g), SocketAddr::V6(_)) => {
            // A dual-stack socket joins IPv4 groups through the IPv4 option too.
            let req = socket::IpMembershipRequest::new(g, None);
            socket::setsockopt(fd, sockopt::IpAddMembership, &req).map_err(socket_err("IP_ADD_MEMBERSHIP", addr))
        }
        (IpAddr::V6(g), SocketAddr::V6(_)) => {
            let req = socket::Ipv6MembershipRequest::new(g);
            socket::setsockopt(fd, sockopt::Ipv6AddMembership, &req).map_err(socket_err("IPV6_ADD_MEMBERSHIP", addr))
        }
        (IpAddr::V6(_), SocketAddr::V4(_)) => Err(CollectError::Socket {
            what: "IPv6 multicast group on an IPv4 socket",
            addr,
            source: nix::Error::EAFNOSUPPORT,
        }),
    }
}

impl Collector {
    /// Binds one SO_REUSEPORT socket (call it once per collector thread).
    pub fn open(cfg: &CollectorConfig) -> Result<Collector, CollectError> {
        let (fd, addr) = match cfg.ip {
            Some(ip) => {
                let a = SocketAddr::new(ip, cfg.port);
                (bind_one(a, cfg)?, a)
            }
            None => {
                // Dual-stack [::] like nfacctd; hosts without IPv6 get 0.0.0.0.
                let a6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), cfg.port);
                match bind_one(a6, cfg) {
                    Ok(fd) => (fd, a6),
                    Err(e) => {
                        let a4 = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), cfg.port);
                        tracing::debug!("{e}; binding {a4} instead");
                        (bind_one(a4, cfg)?, a4)
                    }
                }
            }
        };
        for g in &cfg.mcast_groups {
            join_group(&fd, *g, addr)?;
        }
        let rcvbuf = socket::getsockopt(&fd, sockopt::RcvBuf).unwrap_or(0);
        let describe = format!("{} collector udp {addr} (receive buffer {rcvbuf} bytes)", cfg.protocol.name());
        Ok(Collector {
            taps: Vec::new(),
            fd,
            addr,
            describe,
            dec: DatagramDecoder::new(cfg),
            templates_file: None,
            report_templates_file: false,
        })
    }

    /// Takes datagrams only from the senders `allow` lists.
    pub fn add_tap(&mut self, tap: Tap) {
        self.taps.push(tap);
    }

    pub fn set_allow(&mut self, allow: Arc<Allow>) {
        self.dec.set_allow(allow);
    }

    /// Seeds this socket's template cache from `file` and keeps `file` up to date with what
    /// changes here; `report` puts the file's counters in this socket's statistics.
    pub fn use_templates_file(&mut self, file: Arc<TemplatesFile>, report: bool) {
        // The file's contents were checked against these limits when it was loaded.
        if let Err(e) = self.dec.decoder.templates.restore(&file.domains()) {
            tracing::error!("{}: templates from {}: {e}", self.describe, file.path().display());
        }
        self.templates_file = Some(file);
        self.report_templates_file = report;
    }

    /// Hands changed templates to the templates file and writes it when due (or `now`).
    fn save_templates(&mut self, now: bool) {
        let Some(f) = &self.templates_file else { return };
        if self.dec.decoder.templates.has_changes() {
            f.update(self.dec.decoder.templates.take_changed());
        }
        if now {
            f.write_now();
        } else {
            f.write_if_due(templates_file::WRITE_EVERY);
        }
    }

    pub fn describe(&self) -> &str {
        &self.describe
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Receives and decodes until `stop` is set or the workers are gone.
    pub fn run(
        &mut self,
        id: usize,
        sink: &mut BatchSink,
        stop: &AtomicBool,
        stats: &SourceStats,
    ) -> Result<SourceEnd, CollectError> {
        let mut bufs: Vec<Vec<u8>> = (0..BATCH_DATAGRAMS).map(|_| vec![0u8; MAX_DATAGRAM]).collect();
        let mut got: Vec<(usize, Option<SocketAddr>)> = Vec::with_capacity(BATCH_DATAGRAMS);
        let mut batch = sink.empty(LinkType::Ethernet, id);
        let mut last_publish = Instant::now();
        let mut overflow = 0u32;
        loop {
            if stop.load(Relaxed) {
                self.save_templates(true);
                self.publish(stats);
                if !hand_on(&mut batch, sink, id, stats) {
                    return Ok(SourceEnd::WorkersGone);
                }
                return Ok(SourceEnd::Stopped);
            }
            got.clear();
            let res = {
                // Fresh headers for every call: the kernel overwrites each header's control and
                // address lengths with what it wrote, and nix 0.29/0.30 do not restore them, so
                // reused headers get no room for the SO_RXQ_OVFL message after the first
                // datagram without one (nix-rust/nix PR #2813) and kernel drops would go
                // unreported. Three small allocations per 32 datagrams.
                let mut headers =
                    MultiHeaders::<SockaddrStorage>::preallocate(BATCH_DATAGRAMS, Some(nix::cmsg_space!(u32)));
                let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                    bufs.iter_mut().map(|b| [IoSliceMut::new(b.as_mut_slice())]).collect();
                socket::recvmmsg(self.fd.as_raw_fd(), &mut headers, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None)
                    .map(|msgs| {
                        for m in msgs {
                            if let Ok(cmsgs) = m.cmsgs() {
                                for c in cmsgs {
                                    if let ControlMessageOwned::RxqOvfl(n) = c {
                                        overflow = n;
                                    }
                                }
                            }
                            let src = m.address.as_ref().and_then(sockaddr_of);
                            got.push((m.bytes, src));
                        }
                    })
            };
            match res {
                Ok(()) => {}
                Err(nix::Error::EAGAIN | nix::Error::EINTR) => {
                    // Idle: hand on what we have so records do not wait for a full batch.
                    if !hand_on(&mut batch, sink, id, stats) {
                        return Ok(SourceEnd::WorkersGone);
                    }
                    self.save_templates(false);
                    self.publish(stats);
                    last_publish = Instant::now();
                    continue;
                }
                Err(source) => return Err(CollectError::Recv { addr: self.addr, source }),
            }
            // The kernel's counter is cumulative for the socket.
            stats.kernel_dropped.store(overflow as u64, Relaxed);
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
            for (i, &(len, from)) in got.iter().enumerate() {
                let (Some(buf), Some(from)) = (bufs.get(i), from) else { continue };
                let src = from.ip();
                let dgram = buf.get(..len).unwrap_or(&[]);
                if !self.taps.is_empty() && self.dec.allows(src) {
                    for t in &self.taps {
                        let d = xacct_core::tee::Datagram { src: from, data: dgram.to_vec() };
                        if t.tx.try_send(d).is_err() {
                            t.stats.export.tee_queue_dropped.fetch_add(1, Relaxed);
                        }
                    }
                }
                let mut out = Out { batch: &mut batch, sink, id, stats, gone: false };
                self.dec.datagram(src, dgram, now, &mut |r| out.push(r));
                if out.gone {
                    return Ok(SourceEnd::WorkersGone);
                }
            }
            if last_publish.elapsed() >= PUBLISH_EVERY {
                self.save_templates(false);
                self.publish(stats);
                last_publish = Instant::now();
            }
            if got.len() < BATCH_DATAGRAMS / 2 {
                // The socket is drained. Reading again at once would sleep in the kernel and
                // be woken for every datagram (two context switches each, and on a shared core
                // each one preempts the worker): measured, that was most of the CPU per
                // record at a few hundred thousand records/s. Letting datagrams gather for a
                // moment instead reads them a batch per wake-up; the socket buffer holds far
                // more than arrives meanwhile.
                std::thread::sleep(COALESCE);
            }
        }
    }

    fn publish(&self, stats: &SourceStats) {
        let (rows, mut totals) = self.dec.snapshot();
        if let (Some(f), true) = (&self.templates_file, self.report_templates_file) {
            totals.extend(f.counters());
        }
        if let Ok(mut v) = stats.exporters.lock() {
            *v = rows;
        }
        if let Ok(mut v) = stats.extra.lock() {
            *v = totals;
        }
    }
}

/// A collector without its socket: datagrams in, Records out, with the template cache and the
/// per-exporter counters. The collector threads use it, and so does the perf harness that
/// measures decoding and aggregation per core without the kernel's UDP path.
pub struct DatagramDecoder {
    protocol: Protocol,
    methods: Methods,
    allow: Option<AllowSeen>,
    /// Datagrams from senders the allow list does not name.
    not_allowed: u64,
    renormalize: bool,
    time_new: bool,
    decoder: Decoder,
    exporters: Exporters,
}

impl DatagramDecoder {
    pub fn new(cfg: &CollectorConfig) -> DatagramDecoder {
        DatagramDecoder {
            protocol: cfg.protocol,
            methods: cfg.methods,
            allow: None,
            not_allowed: 0,
            renormalize: cfg.renormalize,
            time_new: cfg.time_new,
            decoder: Decoder::new(template_limits()),
            exporters: Exporters::default(),
        }
    }

    /// Decodes one datagram from `src` received at `now` (unix seconds), handing each Record
    /// to `emit` and counting it, or what was wrong with it, for its exporter.
    pub fn datagram(&mut self, src: IpAddr, dgram: &[u8], now: i64, emit: &mut impl FnMut(Record)) {
        if let Some(a) = &mut self.allow {
            if !a.allows(src) {
                self.not_allowed += 1;
                return;
            }
        }
        match self.protocol {
            Protocol::Netflow => self.netflow(src, dgram, now, emit),
            Protocol::Sflow => self.sflow(src, dgram, now, emit),
        }
    }

    /// Per-exporter counters and their totals, as the collector publishes them.
    pub fn snapshot(&self) -> (Vec<ExporterStats>, Vec<(&'static str, u64)>) {
        let (rows, mut totals) = self.exporters.snapshot();
        if self.allow.is_some() {
            totals.push(("datagrams_not_allowed", self.not_allowed));
        }
        (rows, totals)
    }

    /// Whether the allow list (if any) takes datagrams from `src` (not counted: `datagram`
    /// counts the refusals).
    pub fn allows(&mut self, src: IpAddr) -> bool {
        self.allow.as_mut().is_none_or(|a| a.allows(src))
    }

    /// Takes datagrams only from the senders `allow` lists (`*_allow_file`).
    pub fn set_allow(&mut self, allow: Arc<Allow>) {
        let (generation, list) = allow.current();
        self.allow = Some(AllowSeen { shared: allow, generation, list });
    }

    fn netflow(&mut self, src: IpAddr, dgram: &[u8], now: i64, emit: &mut impl FnMut(Record)) {
        let methods = Some(self.methods);
        let mut stamped = |mut r: Record| {
            r.methods = methods;
            map::set_exporter(&mut r, src);
            emit(r)
        };
        let mut fs = NfSink {
            emit: &mut stamped,
            renormalize: self.renormalize,
            time_new: self.time_new,
            now,
            header: None,
            records: 0,
        };
        let res = self.decoder.decode(src, dgram, &mut fs);
        let (header, records) = (fs.header, fs.records);
        match res {
            Ok(st) => self.exporters.netflow_ok(src, &st, records),
            Err(e) => self.exporters.netflow_err(src, header.as_ref(), records, e.reason()),
        }
    }

    fn sflow(&mut self, src: IpAddr, dgram: &[u8], now: i64, emit: &mut impl FnMut(Record)) {
        let mut records = 0u64;
        let mut skipped = 0u64;
        let renormalize = self.renormalize;
        let methods = Some(self.methods);
        let res = xacct_wire::sflow::decode_datagram(dgram, |s| match record_from_sample(s, renormalize, now) {
            Some(mut r) => {
                r.methods = methods;
                records += 1;
                emit(r);
            }
            None => skipped += 1,
        });
        match res {
            Ok((d, _counts)) => self.exporters.sflow_ok(&d, records, skipped),
            Err(e) => self.exporters.sflow_err(src, records, skipped, e.name()),
        }
    }
}

/// An allow list shared by a collector's sockets; [`Allow::reload`] (SIGUSR2) replaces it,
/// and each socket's thread picks the new one up at its next datagram.
pub struct Allow {
    path: std::path::PathBuf,
    generation: std::sync::atomic::AtomicU64,
    list: std::sync::RwLock<Arc<AllowList>>,
}

impl Allow {
    pub fn load(path: &std::path::Path) -> Result<Allow, MapError> {
        let list = AllowList::load(path)?;
        Ok(Allow { path: path.to_path_buf(), generation: 0.into(), list: std::sync::RwLock::new(Arc::new(list)) })
    }

    /// Reads the file again; on an error the list in use stays.
    pub fn reload(&self) -> Result<(), MapError> {
        let list = AllowList::load(&self.path)?;
        if let Ok(mut l) = self.list.write() {
            *l = Arc::new(list);
        }
        self.generation.fetch_add(1, Relaxed);
        Ok(())
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn current(&self) -> (u64, Arc<AllowList>) {
        let generation = self.generation.load(Relaxed);
        let list = self.list.read().map(|l| l.clone()).unwrap_or_default();
        (generation, list)
    }
}

/// A socket's copy of the allow list, refreshed when the shared one changes: a datagram costs
/// one relaxed load, no lock.
struct AllowSeen {
    shared: Arc<Allow>,
    generation: u64,
    list: Arc<AllowList>,
}

impl AllowSeen {
    fn allows(&mut self, ip: IpAddr) -> bool {
        if self.shared.generation.load(Relaxed) != self.generation {
            (self.generation, self.list) = self.shared.current();
        }
        self.list.allows(ip)
    }
}

/// A received datagram's sender, IPv4-mapped addresses as IPv4 (a dual-stack socket reports
/// IPv4 exporters that way; templates and counters must key on the plain address).
fn sockaddr_of(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::new(IpAddr::V4(v4.ip()), v4.port()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::new(IpAddr::V6(v6.ip()).to_canonical(), v6.port()))
}

/// Where decoded records go: the batch being filled, sent on when full.
struct Out<'a> {
    batch: &'a mut Batch,
    sink: &'a mut BatchSink,
    id: usize,
    stats: &'a SourceStats,
    gone: bool,
}

impl Out<'_> {
    fn push(&mut self, r: Record) {
        self.batch.records.push(r);
        if self.batch.is_full() && !hand_on(self.batch, self.sink, self.id, self.stats) {
            self.gone = true;
        }
    }
}

/// Sends `batch` to the workers (leaving an empty one in its place), counting its records as
/// received first: once per batch, not per record, because the workers' `processed` counter
/// shares the cache line.
fn hand_on(batch: &mut Batch, sink: &mut BatchSink, id: usize, stats: &SourceStats) -> bool {
    stats.received.fetch_add(batch.records.len() as u64, Relaxed);
    let fresh = sink.empty(LinkType::Ethernet, id);
    sink.send(std::mem::replace(batch, fresh))
}

struct NfSink<'a, F> {
    emit: &'a mut F,
    renormalize: bool,
    time_new: bool,
    now: i64,
    /// The last header records came with: names the exporter domain of a datagram that fails
    /// part-way.
    header: Option<NetflowHeader>,
    records: u64,
}

impl<F: FnMut(Record)> FlowSink for NfSink<'_, F> {
    fn record(&mut self, h: &NetflowHeader, r: &FlowRecord) {
        self.header = Some(*h);
        self.records += 1;
        (self.emit)(record_from_flow(h, r, self.renormalize, self.time_new, self.now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_v4_senders_are_plain_v4() {
        let a: SocketAddr = "[::ffff:10.1.2.3]:999".parse().unwrap();
        assert_eq!(sockaddr_of(&SockaddrStorage::from(a)), Some("10.1.2.3:999".parse().unwrap()));
        let b: SocketAddr = "[2001:db8::1]:999".parse().unwrap();
        assert_eq!(sockaddr_of(&SockaddrStorage::from(b)), Some("[2001:db8::1]:999".parse().unwrap()));
    }
}
