//! The nfprobe plugin: a NetFlow v5/v9 and IPFIX exporter fed by the workers like any other
//! plugin. Workers aggregate the plugin's records per flow key, and its entries' counters also
//! keep their first and last second (`Projector::with_times`), so whatever the capture path
//! (libpcap, AF_XDP, XDP pre-aggregates with the kernel's first/last-seen times) each harvest
//! gives the plugin one entry per active flow with packets, bytes, OR-ed TCP flags and times.
//! Its flow cache folds those into flows, expires them with pmacct's rules
//! (`nfprobe_timeouts`: per-protocol idle timeouts, TCP FIN and RST, maxlife, a scan every
//! `expint`; `nfprobe_maxflows` exports the oldest flows early) and sends them to
//! `nfprobe_receiver`.
//!
//! Time is the data's, at second resolution: the clock that expires flows follows the records
//! (advanced by wall time while no record comes), so a pcap replayed in a second expires its
//! flows as it would have live. At shutdown every cached flow is exported.
//!
//! Templates and field order follow pmacct's nfprobe (compat-wave2.md §2.3): data template
//! ids 1024/1025 (IPv4 ingress/egress) and 2048/2049 (IPv6) plus the plugin's index among the
//! daemon's nfprobe plugins; every template in the first datagram and again every
//! [`TEMPLATE_EVERY`] datagrams; tags only in IPFIX, as pmacct's enterprise elements.

use crate::{PluginContext, PluginError};
use hashbrown::HashMap;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use xacct_core::aggregate::{KeyBuf, Primitive, Projector, Table, MAX_KEY_WORDS};
use xacct_core::config::export::{FromTag, NfprobeConfig, ProbeDirection};
use xacct_core::record::{Addr, Record};
use xacct_core::stats::ExportStats;
use xacct_wire::netflow::{encode_v5, FlowRecord, MessageBuilder, NetflowHeader, TemplateField};

/// How often the workers' shards are folded into the flow cache.
const HARVEST_EVERY: Duration = Duration::from_secs(1);
/// pmacct's NF9_DEFAULT_TEMPLATE_INTERVAL: templates go out again every this many datagrams.
pub const TEMPLATE_EVERY: u64 = 18;
/// Most NetFlow v5 records in a datagram.
const V5_MAX: usize = 30;
/// Largest v9/IPFIX datagram payload (a 1500-byte MTU less IPv6 and UDP headers).
const MAX_DATAGRAM: usize = 1400;

/// The flowSamplerID records and sampling options carry.
const SAMPLER_ID: u8 = 1;

const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Idle,
    Active,
    MaxFlows,
    Shutdown,
    Uncached,
}

#[derive(Debug, Clone)]
struct Flow {
    /// The flow's primitives (what the aggregate keeps; the rest is zero).
    rec: Record,
    first: i64,
    last: i64,
    packets: u64,
    bytes: u64,
    flows: u64,
    tcp_flags: u8,
}

/// The flow cache and the export state.
struct Probe {
    cfg: NfprobeConfig,
    /// The plugin's key layout: the flow key and an `expint` window; its counters keep the
    /// first and last second.
    keys: Projector,
    cache: HashMap<Box<[u64]>, Flow>,
    socket: UdpSocket,
    /// Index of this plugin among the daemon's nfprobe plugins (template ids).
    index: u16,
    /// Reference for uptime fields, ms since the epoch.
    boot_ms: Option<i64>,
    /// The data clock: latest second seen, and the wall time it was seen at.
    data_now: Option<(i64, Instant)>,
    datagrams: u64,
    records_sent: u64,
    tags: bool,
    started_ms: i64,
    /// The window (data time, `expint` long) the last expiry scan ran at.
    scanned: Option<i64>,
    /// The flow key: the plugin's key without its time window.
    flows_key: Projector,
}

fn ip(a: Addr) -> IpAddr {
    a.to_ip().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn tf(ie: u16, len: u16) -> TemplateField {
    TemplateField { ie, len, enterprise: None }
}

impl Probe {
    fn new(cfg: NfprobeConfig, keys: Projector, index: u16) -> std::io::Result<Probe> {
        let flows_key = Projector::new(keys.aggregate(), false);
        let socket = crate::export_socket(cfg.receiver, cfg.source_ip, cfg.hoplimit, cfg.ipprec)?;
        let tags = cfg.version == 10 && (keys.aggregate().has(Primitive::Tag) || keys.aggregate().has(Primitive::Tag2));
        Ok(Probe {
            cfg,
            keys,
            cache: HashMap::new(),
            socket,
            index,
            boot_ms: None,
            data_now: None,
            datagrams: 0,
            records_sent: 0,
            tags,
            started_ms: chrono::Utc::now().timestamp_millis(),
            scanned: None,
            flows_key,
        })
    }

    /// The expiry clock in seconds: the data's, moved on by wall time while nothing comes.
    fn clock(&self) -> i64 {
        match self.data_now {
            Some((t, at)) => t + at.elapsed().as_secs() as i64,
            None => chrono::Utc::now().timestamp(),
        }
    }

    /// Folds a harvested table (one entry per key and second) into the cache.
    fn absorb(&mut self, table: &Table, st: &ExportStats) {
        let mut out = Vec::new();
        let mut span = None::<(i64, i64)>;
        // The harvest's entries in time order, so that expiry scans run on the data's clock
        // between them, as they would have live (a replayed pcap arrives in one harvest).
        let mut seen: Vec<(i64, Box<[u64]>, Flow)> = Vec::with_capacity(table.len());
        let now = self.clock();
        table.for_each(|key, c| {
            let (rec, window) = self.keys.unpack(key);
            let mut k1: KeyBuf = [0; MAX_KEY_WORDS];
            let mut k2: KeyBuf = [0; MAX_KEY_WORDS];
            self.flows_key.pack(&rec, 0, &mut k1, &mut k2);
            if self.keys.is_overflow(key) {
                // Keys the budget refused: one flow with every primitive zero keeps totals.
                k1 = self.flows_key.overflow_of(&k1);
            }
            let fkey: Box<[u64]> = k1.get(..self.flows_key.words()).unwrap_or(&[]).into();
            let (first, last) = if c.last == 0 { (now, now) } else { (i64::from(c.first()), i64::from(c.last)) };
            span = Some(span.map_or((first, last), |(a, b)| (a.min(first), b.max(last))));
            let flow =
                Flow { rec, first, last, packets: c.packets, bytes: c.bytes, flows: c.flows, tcp_flags: c.tcp_flags };
            seen.push((window, fkey, flow));
        });
        // Expiry scans run at the start of each `expint` window of data time, before the
        // window's entries are folded in, as a live probe scans every `expint` seconds. The
        // order is sorted as indexes: moving the entries themselves costs more than the rest.
        let mut order: Vec<(i64, i64, u32)> =
            seen.iter().enumerate().map(|(i, (w, _, f))| (*w, f.first, i as u32)).collect();
        order.sort_unstable();
        let mut seen: Vec<Option<(i64, Box<[u64]>, Flow)>> = seen.into_iter().map(Some).collect();
        for (_, _, i) in order {
            let Some((window, key, flow)) = seen.get_mut(i as usize).and_then(Option::take) else { continue };
            if self.cfg.dont_cache {
                out.push((flow, Why::Uncached));
                continue;
            }
            if self.scanned.is_none_or(|s| window > s) {
                out.extend(self.expire(window, false));
                self.scanned = Some(window);
            }
            match self.cache.get_mut(&key) {
                Some(f) => {
                    f.first = f.first.min(flow.first);
                    f.last = f.last.max(flow.last);
                    f.packets += flow.packets;
                    f.bytes += flow.bytes;
                    f.flows += flow.flows;
                    f.tcp_flags |= flow.tcp_flags;
                }
                None => {
                    self.cache.insert(key, flow);
                }
            }
        }
        if let Some((earliest, l)) = span {
            // Uptime counts from the probe's start, or from the first second of data when the
            // data is older (a pcap being replayed).
            let ms = earliest * 1000;
            self.boot_ms = Some(self.boot_ms.map_or(ms.min(self.started_ms), |b| b.min(ms)));
            if self.data_now.is_none_or(|(t, _)| l > t) {
                self.data_now = Some((l, Instant::now()));
            }
        }
        if self.cache.len() > self.cfg.maxflows {
            out.extend(self.evict_oldest(self.cache.len() - self.cfg.maxflows));
        }
        self.export(out, st);
        st.flows_cached.store(self.cache.len() as u64, Relaxed);
    }

    /// The `n` least recently seen flows (and an eighth of the cache more, as softflowd does,
    /// so that a full cache does not scan on every harvest).
    fn evict_oldest(&mut self, n: usize) -> Vec<(Flow, Why)> {
        let n = (n + self.cfg.maxflows / 8).min(self.cache.len());
        let mut lasts: Vec<i64> = self.cache.values().map(|f| f.last).collect();
        if n == 0 || lasts.is_empty() {
            return Vec::new();
        }
        let cut = *lasts.select_nth_unstable(n - 1).1;
        let mut out = Vec::with_capacity(n);
        self.cache.retain(|_, f| {
            if out.len() < n && f.last <= cut {
                out.push((f.clone(), Why::MaxFlows));
                false
            } else {
                true
            }
        });
        out
    }

    /// Flows whose timeout passed at `now` (every flow when `all`).
    fn expire(&mut self, now: i64, all: bool) -> Vec<(Flow, Why)> {
        let t = self.cfg.timeouts;
        let mut out = Vec::new();
        self.cache.retain(|_, f| {
            let idle = match f.rec.proto {
                6 if f.tcp_flags & TCP_RST != 0 => t.tcp_rst,
                6 if f.tcp_flags & TCP_FIN != 0 => t.tcp_fin,
                6 => t.tcp,
                17 => t.udp,
                1 | 58 => t.icmp,
                _ => t.general,
            } as i64;
            let why = if all {
                Why::Shutdown
            } else if now - f.last >= idle {
                Why::Idle
            } else if f.last - f.first >= t.maxlife as i64 {
                Why::Active
            } else {
                return true;
            };
            out.push((f.clone(), why));
            false
        });
        out
    }

    fn direction(&self, f: &Flow) -> Option<ProbeDirection> {
        let from_tag = |v: u64| match v {
            1 => Some(ProbeDirection::In),
            2 => Some(ProbeDirection::Out),
            _ => None,
        };
        match self.cfg.direction? {
            FromTag::Fixed(d) => Some(d),
            FromTag::Tag => from_tag(f.rec.tag),
            FromTag::Tag2 => from_tag(f.rec.tag2),
        }
    }

    fn to_record(&self, f: &Flow) -> FlowRecord {
        let boot = self.boot_ms.unwrap_or(0);
        let (start_ms, end_ms) = (f.first * 1000, f.last * 1000);
        let mut r = FlowRecord {
            src_addr: ip(f.rec.src_ip),
            dst_addr: ip(f.rec.dst_ip),
            src_port: f.rec.src_port,
            dst_port: f.rec.dst_port,
            proto: f.rec.proto,
            tos: f.rec.tos,
            tcp_flags: f.tcp_flags,
            input: f.rec.in_iface,
            output: f.rec.out_iface,
            src_as: f.rec.src_as,
            dst_as: f.rec.dst_as,
            src_mask: f.rec.src_mask,
            dst_mask: f.rec.dst_mask,
            vlan: f.rec.vlan,
            src_mac: f.rec.src_mac,
            dst_mac: f.rec.dst_mac,
            packets: f.packets,
            bytes: f.bytes,
            flows: f.flows.max(1),
            first_switched: (start_ms - boot).clamp(0, i64::from(u32::MAX)) as u32,
            last_switched: (end_ms - boot).clamp(0, i64::from(u32::MAX)) as u32,
            start_ms: start_ms.max(0) as u64,
            end_ms: end_ms.max(0) as u64,
            tag: f.rec.tag,
            tag2: f.rec.tag2,
            sampler_id: if self.cfg.sampling_rate > 1 { u32::from(SAMPLER_ID) } else { 0 },
            ..FlowRecord::default()
        };
        let dir = self.direction(f);
        r.direction = Some(u8::from(dir == Some(ProbeDirection::Out)));
        // nfprobe_ifindex applies with a direction, to the side it names, unless the record
        // has its own interface (or nfprobe_ifindex_override says to replace it).
        if let (Some(d), Some(ix)) = (dir, self.cfg.ifindex) {
            let value = match ix {
                FromTag::Fixed(v) => u64::from(v),
                FromTag::Tag => f.rec.tag,
                FromTag::Tag2 => f.rec.tag2,
            } as u32;
            let slot = if d == ProbeDirection::In { &mut r.input } else { &mut r.output };
            if *slot == 0 || self.cfg.ifindex_override {
                *slot = value;
            }
        }
        r
    }

    /// pmacct's template for a family and direction: timestamps, counters and the always
    /// present fields, then one field per aggregated primitive, then (IPFIX) the tags.
    fn template(&self, v6: bool, out: bool) -> Vec<TemplateField> {
        let a = self.keys.aggregate();
        let mut t = vec![tf(153, 8), tf(152, 8), tf(1, 8), tf(2, 8), tf(60, 1), tf(10, 4), tf(14, 4), tf(61, 1)];
        let has = |p| a.has(p);
        if has(Primitive::Flows) {
            t.push(tf(3, 8));
        }
        if has(Primitive::SrcHost) {
            t.push(if v6 { tf(27, 16) } else { tf(8, 4) });
        }
        if has(Primitive::DstHost) {
            t.push(if v6 { tf(28, 16) } else { tf(12, 4) });
        }
        if has(Primitive::SrcMask) {
            t.push(if v6 { tf(29, 1) } else { tf(9, 1) });
        }
        if has(Primitive::DstMask) {
            t.push(if v6 { tf(30, 1) } else { tf(13, 1) });
        }
        if has(Primitive::SrcPort) {
            t.push(tf(7, 2));
        }
        if has(Primitive::DstPort) {
            t.push(tf(11, 2));
        }
        if has(Primitive::Tos) {
            t.push(tf(5, 1));
        }
        if has(Primitive::SrcPort) || has(Primitive::DstPort) {
            t.push(tf(6, 1));
        }
        if has(Primitive::Proto) {
            t.push(tf(4, 1));
        }
        if has(Primitive::SrcAs) {
            t.push(tf(16, 4));
        }
        if has(Primitive::DstAs) {
            t.push(tf(17, 4));
        }
        if has(Primitive::SrcMac) {
            t.push(if out { tf(81, 6) } else { tf(56, 6) });
        }
        if has(Primitive::DstMac) {
            t.push(if out { tf(57, 6) } else { tf(80, 6) });
        }
        if has(Primitive::Vlan) {
            t.push(if out { tf(59, 2) } else { tf(58, 2) });
        }
        if self.cfg.sampling_rate > 1 {
            t.push(tf(48, 1));
        }
        if self.tags {
            let pen = Some(xacct_wire::netflow::PMACCT_PEN);
            if has(Primitive::Tag) {
                t.push(TemplateField { ie: 1, len: 8, enterprise: pen });
            }
            if has(Primitive::Tag2) {
                t.push(TemplateField { ie: 2, len: 8, enterprise: pen });
            }
        }
        t
    }

    fn template_id(&self, v6: bool, out: bool) -> u16 {
        (if v6 { 2048 } else { 1024 }) + u16::from(out) + self.index
    }

    /// pmacct's sampling options template id.
    fn sampling_template_id(&self) -> u16 {
        4096 + self.index
    }

    /// The sampling options template (scope: the observation domain / source id) and its one
    /// record: sampler 1, deterministic 1-in-N (the daemon's sampling is systematic), N.
    fn sampling_options(&self, m: &mut MessageBuilder) -> usize {
        let scope = if self.cfg.version == 9 { tf(1, 4) } else { tf(149, 4) };
        let options = [tf(48, 1), tf(49, 1), tf(50, 4)];
        let id = self.sampling_template_id();
        m.options_template(id, &[scope], &options);
        let mut rec = Vec::with_capacity(10);
        rec.extend_from_slice(&self.cfg.engine_id.to_be_bytes());
        rec.extend_from_slice(&[SAMPLER_ID, 1]);
        rec.extend_from_slice(&self.cfg.sampling_rate.to_be_bytes());
        let pad = (4 - (4 + rec.len()) % 4) % 4;
        m.data_raw(id, 1, &rec, pad);
        // Template set (header, id, counts, four fields) and the data set.
        4 + 8 + 4 * 4 + 4 + rec.len() + pad
    }

    fn header(&self, now_ms: i64) -> NetflowHeader {
        NetflowHeader {
            version: self.cfg.version,
            sys_uptime_ms: (now_ms - self.boot_ms.unwrap_or(now_ms)).clamp(0, i64::from(u32::MAX)) as u32,
            unix_secs: (now_ms / 1000).clamp(0, i64::from(u32::MAX)) as u32,
            unix_nsecs: ((now_ms % 1000) * 1_000_000) as u32,
            source_id: self.cfg.engine_id,
            engine_type: self.cfg.engine_type,
            engine_id: self.cfg.engine_id as u8,
            ..NetflowHeader::default()
        }
    }

    fn send(&mut self, dgram: &[u8], flows: u64, st: &ExportStats) {
        match self.socket.send(dgram) {
            Ok(_) => {
                st.datagrams_sent.fetch_add(1, Relaxed);
                st.flows_exported.fetch_add(flows, Relaxed);
            }
            Err(e) => {
                st.send_errors.fetch_add(1, Relaxed);
                st.flows_lost.fetch_add(flows, Relaxed);
                tracing::warn!("nfprobe: sending to {}: {e}", self.cfg.receiver);
            }
        }
        self.datagrams += 1;
    }

    fn export(&mut self, flows: Vec<(Flow, Why)>, st: &ExportStats) {
        if flows.is_empty() {
            return;
        }
        for (_, why) in &flows {
            match why {
                Why::Idle => &st.expired_idle,
                Why::Active => &st.expired_active,
                Why::MaxFlows => &st.expired_maxflows,
                Why::Shutdown => &st.expired_shutdown,
                Why::Uncached => &st.expired_uncached,
            }
            .fetch_add(1, Relaxed);
        }
        let now_ms = self.clock() * 1000;
        let records: Vec<FlowRecord> = flows.iter().map(|(f, _)| self.to_record(f)).collect();
        if self.cfg.version == 5 {
            let (v4, v6): (Vec<FlowRecord>, Vec<FlowRecord>) =
                records.into_iter().partition(|r| r.src_addr.is_ipv4() && r.dst_addr.is_ipv4());
            st.flows_unexportable.fetch_add(v6.len() as u64, Relaxed);
            for chunk in v4.chunks(V5_MAX) {
                let mut h = self.header(now_ms);
                h.sequence = self.records_sent as u32;
                h.engine_id = self.cfg.engine_id as u8;
                if self.cfg.sampling_rate > 1 {
                    // Mode 01: packet interval; the interval in the low 14 bits.
                    h.sampling_mode = 1;
                    h.sampling_interval = self.cfg.sampling_rate.min(0x3fff) as u16;
                }
                let d = encode_v5(&h, chunk);
                self.send(&d, chunk.len() as u64, st);
                self.records_sent += chunk.len() as u64;
            }
            return;
        }
        // v9/IPFIX: records grouped by template, datagrams filled up to MAX_DATAGRAM.
        let mut groups: Vec<((bool, bool), Vec<FlowRecord>)> = Vec::new();
        for r in records {
            let k = (r.src_addr.is_ipv6() || r.dst_addr.is_ipv6(), r.direction == Some(1));
            match groups.iter_mut().find(|(g, _)| *g == k) {
                Some((_, v)) => v.push(r),
                None => groups.push((k, vec![r])),
            }
        }
        for ((v6, out), recs) in groups {
            let fields = self.template(v6, out);
            let id = self.template_id(v6, out);
            let per_record: usize = fields.iter().map(|f| usize::from(f.len)).sum::<usize>().max(1);
            let mut rest: &[FlowRecord] = &recs;
            while !rest.is_empty() {
                let mut h = self.header(now_ms);
                h.sequence = if self.cfg.version == 9 { self.datagrams as u32 } else { self.records_sent as u32 };
                let mut m = if self.cfg.version == 9 { MessageBuilder::v9(&h) } else { MessageBuilder::ipfix(&h) };
                let mut room = MAX_DATAGRAM - 20 - 4;
                if self.datagrams % TEMPLATE_EVERY == 0 {
                    // Every template this probe can use, so a collector that just started
                    // learns them all at once.
                    for (tv6, tout) in [(false, false), (false, true), (true, false), (true, true)] {
                        let t = self.template(tv6, tout);
                        room = room.saturating_sub(8 + 4 * t.len() + if self.tags { 8 } else { 0 });
                        m.template(self.template_id(tv6, tout), &t);
                    }
                    if self.cfg.sampling_rate > 1 {
                        room = room.saturating_sub(self.sampling_options(&mut m));
                    }
                }
                let n = (room / per_record).clamp(1, rest.len());
                let (now, later) = rest.split_at(n);
                m.data(id, &fields, now);
                let d = m.finish();
                self.send(&d, n as u64, st);
                self.records_sent += n as u64;
                rest = later;
            }
        }
    }
}

pub fn run_nfprobe(mut ctx: PluginContext) -> Result<(), PluginError> {
    let name = ctx.config.name.clone();
    let failed = |what: String| PluginError::Failed { plugin: name.clone(), what };
    let cfg = ctx.config.nfprobe.as_deref().cloned().ok_or_else(|| failed("no nfprobe settings".into()))?;
    let index = ctx
        .peers
        .iter()
        .filter(|(_, k, _)| *k == xacct_core::config::PluginKind::Nfprobe)
        .position(|(n, _, _)| *n == ctx.config.name)
        .unwrap_or(0) as u16;
    let receiver = cfg.receiver;
    let expint = Duration::from_secs(cfg.timeouts.expint);
    let mut probe = Probe::new(cfg, ctx.projector.clone(), index).map_err(|e| PluginError::Io {
        plugin: name.clone(),
        what: format!("export socket to {receiver}"),
        source: e,
    })?;
    tracing::info!("plugin {name}: nfprobe exporting NetFlow/IPFIX version {} to {receiver}", probe.cfg.version);
    let mut table = Table::with_words(ctx.projector.words());
    let mut next_harvest = Instant::now() + HARVEST_EVERY;
    let mut next_scan = Instant::now() + expint;
    let st = &ctx.stats;
    loop {
        let wait = next_harvest.min(next_scan).saturating_duration_since(Instant::now());
        let stopping = crossbeam_channel::select! {
            recv(ctx.shutdown) -> _ => true,
            default(wait.min(crate::POLL)) => false,
        };
        let now = Instant::now();
        if stopping || now >= next_harvest || ctx.harvest.wanted() {
            ctx.harvest.harvest_into(&mut table);
            st.refreshes.fetch_add(1, Relaxed);
            probe.absorb(&table, &st.export);
            table.clear();
            next_harvest = now + HARVEST_EVERY;
        }
        if stopping || now >= next_scan {
            let gone = probe.expire(probe.clock(), stopping);
            probe.export(gone, &st.export);
            st.export.flows_cached.store(probe.cache.len() as u64, Relaxed);
            next_scan = now + expint;
        }
        if stopping {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xacct_core::aggregate::{Aggregate, Counters, MAX_KEY_WORDS};
    use xacct_core::config::export::ProbeTimeouts;
    use xacct_wire::netflow::Decoder;

    fn probe(version: u16, timeouts: ProbeTimeouts, maxflows: usize) -> (Probe, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("receiver");
        rx.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let cfg = NfprobeConfig {
            receiver: rx.local_addr().expect("addr"),
            version,
            timeouts,
            maxflows,
            ..NfprobeConfig::default()
        };
        let agg = Aggregate::parse("src_host,dst_host,src_port,dst_port,proto,tos,tcpflags,tag").expect("aggregate");
        (Probe::new(cfg, Projector::new(&agg, true).with_times(), 0).expect("probe"), rx)
    }

    fn rec(sport: u16, proto: u8, ts: i64) -> Record {
        Record {
            src_ip: Addr::V4([10, 0, 0, 1]),
            dst_ip: Addr::V4([10, 0, 0, 2]),
            src_port: sport,
            dst_port: 80,
            proto,
            tag: 7,
            ts,
            packets: 1,
            bytes: 100,
            ..Record::default()
        }
    }

    /// One harvest: the records, binned by second as the workers do.
    fn feed(p: &mut Probe, recs: &[(Record, u8)], st: &ExportStats) {
        let mut t = Table::with_words(p.keys.words());
        for (r, flags) in recs {
            let (mut k1, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
            let window = r.ts - r.ts.rem_euclid(p.cfg.timeouts.expint as i64);
            p.keys.pack(r, window, &mut k1, &mut k2);
            t.add(&k1, &Counters { tcp_flags: *flags, ..Counters::timed(r, false) });
        }
        p.absorb(&t, st);
    }

    fn received(rx: &UdpSocket, want: usize) -> Vec<FlowRecord> {
        let mut dec = Decoder::default();
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        while out.len() < want {
            let n = rx.recv(&mut buf).expect("datagram");
            dec.decode(
                "127.0.0.1".parse().expect("ip"),
                buf.get(..n).unwrap_or_default(),
                &mut |_h: &NetflowHeader, r: &FlowRecord| out.push(*r),
            )
            .expect("decodes");
        }
        out
    }

    #[test]
    fn timeouts_by_protocol_and_flags() {
        let t = ProbeTimeouts {
            tcp: 100,
            tcp_rst: 5,
            tcp_fin: 10,
            udp: 20,
            icmp: 30,
            general: 40,
            maxlife: 1000,
            expint: 1,
        };
        let (mut p, rx) = probe(10, t, 100);
        let st = ExportStats::default();
        let base = 1_700_000_000;
        feed(
            &mut p,
            &[
                (rec(1, 6, base), 0x02), // TCP SYN only: 100 s
                (rec(2, 6, base), 0x04), // RST: 5 s
                (rec(3, 6, base), 0x11), // FIN: 10 s
                (rec(4, 17, base), 0),   // UDP: 20 s
                (rec(5, 1, base), 0),    // ICMP: 30 s
                (rec(6, 47, base), 0),   // GRE: general, 40 s
            ],
            &st,
        );
        let gone = |p: &mut Probe, now| {
            let mut v: Vec<u16> = p.expire(now, false).into_iter().map(|(f, _)| f.rec.src_port).collect();
            v.sort();
            v
        };
        assert_eq!(gone(&mut p, base + 4), Vec::<u16>::new());
        assert_eq!(gone(&mut p, base + 5), [2]);
        assert_eq!(gone(&mut p, base + 10), [3]);
        assert_eq!(gone(&mut p, base + 20), [4]);
        assert_eq!(gone(&mut p, base + 30), [5]);
        assert_eq!(gone(&mut p, base + 40), [6]);
        assert_eq!(gone(&mut p, base + 99), Vec::<u16>::new());
        assert_eq!(gone(&mut p, base + 100), [1]);
        drop(rx);
    }

    #[test]
    fn maxlife_splits_long_flows_and_counts_merge() {
        let t = ProbeTimeouts { maxlife: 60, ..ProbeTimeouts::default() };
        let (mut p, rx) = probe(10, t, 100);
        let st = ExportStats::default();
        let base = 1_700_000_000;
        // The same flow over 61 seconds, one packet a second, fed as one harvest each.
        for s in 0..=61 {
            feed(&mut p, &[(rec(9, 17, base + s), 0)], &st);
        }
        let out = p.expire(base + 61, false);
        assert_eq!(out.len(), 1);
        let (f, why) = &out[0];
        assert_eq!((f.first, f.last, f.packets, f.bytes, *why), (base, base + 61, 62, 6200, Why::Active));
        drop(rx);
    }

    #[test]
    fn full_cache_exports_the_oldest_first() {
        let (mut p, rx) = probe(9, ProbeTimeouts::default(), 16);
        let st = ExportStats::default();
        let base = 1_700_000_000;
        let recs: Vec<(Record, u8)> = (0..20).map(|i| (rec(100 + i, 17, base + i64::from(i)), 0)).collect();
        feed(&mut p, &recs, &st);
        // 4 over the limit, plus an eighth of the cache: the 6 oldest went out.
        assert_eq!(st.expired_maxflows.load(Relaxed), 6);
        assert_eq!(p.cache.len(), 14);
        assert!(p.cache.values().all(|f| f.rec.src_port >= 106));
        let sent = received(&rx, 6);
        let mut ports: Vec<u16> = sent.iter().map(|r| r.src_port).collect();
        ports.sort();
        assert_eq!(ports, [100, 101, 102, 103, 104, 105]);
    }

    #[test]
    fn exports_decode_with_times_flags_and_tags() {
        for version in [5u16, 9, 10] {
            let (mut p, rx) = probe(version, ProbeTimeouts::default(), 100);
            let st = ExportStats::default();
            let base = 1_700_000_000;
            feed(&mut p, &[(rec(1, 6, base), 0x02), (rec(1, 6, base + 3), 0x10), (rec(2, 17, base + 1), 0)], &st);
            let gone = p.expire(base + 10, true);
            p.export(gone, &st);
            let mut got = received(&rx, 2);
            got.sort_by_key(|r| r.src_port);
            assert_eq!(got.len(), 2, "v{version}");
            let tcp = got[0];
            assert_eq!((tcp.packets, tcp.bytes, tcp.tcp_flags, tcp.proto, tcp.dst_port), (2, 200, 0x12, 6, 80));
            if version == 5 {
                // Uptime-relative: the first second seen is the probe's boot.
                assert_eq!((tcp.first_switched, tcp.last_switched), (0, 3000), "v5");
            } else {
                assert_eq!((tcp.start_ms, tcp.end_ms), ((base * 1000) as u64, ((base + 3) * 1000) as u64));
            }
            // Tags go out only in IPFIX, as pmacct's enterprise elements.
            assert_eq!(tcp.tag, if version == 10 { 7 } else { 0 }, "v{version}");
            assert_eq!(st.flows_exported.load(Relaxed), 2);
            assert_eq!(st.expired_shutdown.load(Relaxed), 2);
        }
    }

    #[test]
    fn templates_follow_pmacct() {
        let (p, _rx) = probe(9, ProbeTimeouts::default(), 10);
        let ies: Vec<u16> = p.template(false, false).iter().map(|f| f.ie).collect();
        assert_eq!(ies, [153, 152, 1, 2, 60, 10, 14, 61, 8, 12, 7, 11, 5, 6, 4]);
        let v6: Vec<u16> = p.template(true, true).iter().map(|f| f.ie).collect();
        assert_eq!(v6, [153, 152, 1, 2, 60, 10, 14, 61, 27, 28, 7, 11, 5, 6, 4]);
        assert_eq!((p.template_id(false, false), p.template_id(true, true)), (1024, 2049));
    }
}
