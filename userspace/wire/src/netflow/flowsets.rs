//! The v9 (RFC 3954) and IPFIX (RFC 7011) set walker and data record decoder. The two share
//! everything but the header, the set ids and IPFIX's enterprise fields, variable-length
//! fields and withdrawals, so one walker handles both.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use super::templates::{DomainKey, Kind, PendingSet, Template, TemplateCache, TemplateField, VARLEN};
use super::VERSION_IPFIX;
use super::{be16, be32, version, DatagramStats, FlowRecord, FlowSink, NetflowError, NetflowHeader, SamplingInfo};

const V9_HEADER: usize = 20;
const IPFIX_HEADER: usize = 16;

pub(crate) fn decode<S: FlowSink + ?Sized>(
    cache: &mut TemplateCache,
    exporter: IpAddr,
    d: &[u8],
    sink: &mut S,
) -> Result<DatagramStats, NetflowError> {
    let ver = version(d)?;
    let ipfix = ver == VERSION_IPFIX;
    let hlen = if ipfix { IPFIX_HEADER } else { V9_HEADER };
    if d.len() < hlen {
        return Err(NetflowError::TruncatedHeader { version: ver, len: d.len() });
    }
    let (h, body) = if ipfix {
        let declared = be16(d, 2);
        let body = match d.get(hlen..usize::from(declared)) {
            Some(b) => b,
            None => return Err(NetflowError::BadMessageLength { declared, actual: d.len() }),
        };
        let h = NetflowHeader {
            version: ver,
            count: declared,
            unix_secs: be32(d, 4),
            sequence: be32(d, 8),
            source_id: be32(d, 12),
            ..NetflowHeader::default()
        };
        (h, body)
    } else {
        let h = NetflowHeader {
            version: ver,
            count: be16(d, 2),
            sys_uptime_ms: be32(d, 4),
            unix_secs: be32(d, 8),
            sequence: be32(d, 12),
            source_id: be32(d, 16),
            ..NetflowHeader::default()
        };
        (h, d.get(hlen..).unwrap_or(&[]))
    };
    let key: DomainKey = (exporter, ver, h.source_id);
    let mut stats = DatagramStats { header: h, ..DatagramStats::default() };
    let mut rest = body;
    // v9 exporters may pad the datagram after the last flowset; IPFIX sets tile the message
    // exactly (checked below).
    while rest.len() >= 4 {
        let set_id = be16(rest, 0);
        let len = be16(rest, 2);
        let ulen = usize::from(len);
        let (set, tail) = match (ulen >= 4).then(|| rest.split_at_checked(ulen)).flatten() {
            Some(x) => x,
            None => return Err(NetflowError::BadSetLength { set_id, len, remaining: rest.len() }),
        };
        rest = tail;
        let content = set.get(4..).unwrap_or(&[]);
        match (ipfix, set_id) {
            (false, 0) | (true, 2) => template_set(cache, key, &h, set_id, content, false, &mut stats, sink)?,
            (false, 1) | (true, 3) => template_set(cache, key, &h, set_id, content, true, &mut stats, sink)?,
            (_, id) if id >= 256 => {
                let t = cache.domains.get(&key).and_then(|dom| dom.templates.get(&id)).map(Arc::clone);
                match t {
                    Some(t) => {
                        data_set(cache, key, &h, &t, content, sink, &mut stats.records, &mut stats.options_records)?
                    }
                    None => {
                        stats.unknown_template_sets += 1;
                        let pending = PendingSet { header: h, template_id: id, data: content.to_vec() };
                        stats.pending_dropped += cache.hold(key, pending);
                    }
                }
            }
            _ => stats.skipped_sets += 1,
        }
    }
    if ipfix && !rest.is_empty() {
        return Err(NetflowError::BadSetLength { set_id: 0, len: 0, remaining: rest.len() });
    }
    Ok(stats)
}

/// Parses a (options) template set, inserting each template and replaying the data sets held
/// for it.
#[allow(clippy::too_many_arguments)]
fn template_set<S: FlowSink + ?Sized>(
    cache: &mut TemplateCache,
    key: DomainKey,
    h: &NetflowHeader,
    set_id: u16,
    mut c: &[u8],
    options: bool,
    stats: &mut DatagramStats,
    sink: &mut S,
) -> Result<(), NetflowError> {
    let ipfix = h.version == VERSION_IPFIX;
    let max_fields = cache.limits.max_fields;
    // Anything shorter than a template record header, or all zeros, is set padding.
    while c.len() >= 4 && c.iter().any(|&b| b != 0) {
        let tid = be16(c, 0);
        let (scope, total, hdr) = if !options {
            (0, usize::from(be16(c, 2)), 4)
        } else if ipfix {
            if c.len() < 6 && be16(c, 2) != 0 {
                return Err(NetflowError::TruncatedTemplate { set_id });
            }
            (usize::from(be16(c, 4)), usize::from(be16(c, 2)), 6)
        } else {
            // v9 options template: scope and option lengths are in bytes, 4 per field.
            if c.len() < 6 {
                return Err(NetflowError::TruncatedTemplate { set_id });
            }
            let (sl, ol) = (usize::from(be16(c, 2)), usize::from(be16(c, 4)));
            if sl % 4 != 0 || ol % 4 != 0 {
                return Err(NetflowError::BadOptionsTemplate { template_id: tid });
            }
            (sl / 4, (sl + ol) / 4, 6)
        };
        if total == 0 {
            if !ipfix {
                return Err(NetflowError::TemplateTooShort { template_id: tid });
            }
            // IPFIX withdrawal (RFC 7011 §8.1): field count 0. Template id == set id
            // withdraws every (options) template of the domain.
            if let Some(dom) = cache.domains.get_mut(&key) {
                let before = dom.templates.len();
                if tid == set_id {
                    dom.templates.retain(|_, t| t.options != options);
                } else {
                    dom.templates.remove(&tid);
                }
                let withdrawn = before - dom.templates.len();
                if withdrawn > 0 {
                    stats.templates_withdrawn += withdrawn as u32;
                    cache.mark_changed(key);
                }
            }
            c = c.get(4..).unwrap_or(&[]);
            continue;
        }
        if tid < 256 {
            return Err(NetflowError::BadTemplateId(tid));
        }
        if total > max_fields {
            return Err(NetflowError::TooManyFields { template_id: tid, fields: total, max: max_fields });
        }
        if options && (scope == 0 || scope > total) {
            return Err(NetflowError::BadOptionsTemplate { template_id: tid });
        }
        c = c.get(hdr..).unwrap_or(&[]);
        let mut wire = Vec::with_capacity(total);
        for _ in 0..total {
            let (ie, len) = match c.first_chunk::<4>() {
                Some(f) => (u16::from_be_bytes([f[0], f[1]]), u16::from_be_bytes([f[2], f[3]])),
                None => return Err(NetflowError::TruncatedTemplate { set_id }),
            };
            c = c.get(4..).unwrap_or(&[]);
            let field = if ipfix && ie & 0x8000 != 0 {
                let Some(pen) = c.first_chunk::<4>() else {
                    return Err(NetflowError::TruncatedTemplate { set_id });
                };
                let pen = u32::from_be_bytes(*pen);
                c = c.get(4..).unwrap_or(&[]);
                TemplateField { ie: ie & 0x7fff, len, enterprise: Some(pen) }
            } else {
                TemplateField::iana(ie, len)
            };
            wire.push(field);
        }
        let t = Template::new(tid, options, if options { scope } else { 0 }, wire, ipfix, max_fields)?;
        cache.insert(key, t)?;
        stats.templates += 1;
        let held = cache.take_pending(key, tid);
        if let Some(t) = cache.domains.get(&key).and_then(|d| d.templates.get(&tid)).map(Arc::clone) {
            for p in held {
                // A held set that turns out malformed is dropped on its own: the current
                // datagram, whose template just parsed, is not at fault.
                let replay = data_set(
                    cache,
                    key,
                    &p.header,
                    &t,
                    &p.data,
                    sink,
                    &mut stats.replayed_records,
                    &mut stats.options_records,
                );
                if replay.is_err() {
                    stats.replay_malformed += 1;
                }
            }
        }
    }
    Ok(())
}

/// Per-record values that only make sense once the whole record is read.
#[derive(Default)]
struct Scratch {
    has_bytes: bool,
    has_packets: bool,
    bytes_total: u64,
    packets_total: u64,
    post_src_mac: [u8; 6],
    post_dst_mac: [u8; 6],
    dot1q_vlan: u16,
    system_init_ms: Option<u64>,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    has_uptimes: bool,
    start_delta_us: Option<u64>,
    end_delta_us: Option<u64>,
}

/// Decodes the records of one data set, adding the flow records delivered to `delivered` (also
/// when a later record turns out malformed: those before it did reach the sink).
#[allow(clippy::too_many_arguments)]
fn data_set<S: FlowSink + ?Sized>(
    cache: &mut TemplateCache,
    key: DomainKey,
    h: &NetflowHeader,
    t: &Template,
    c: &[u8],
    sink: &mut S,
    delivered: &mut u32,
    options_records: &mut u32,
) -> Result<(), NetflowError> {
    let ipfix = h.version == VERSION_IPFIX;
    let dom = cache.domains.get(&key);
    let dom_init = dom.and_then(|d| d.system_init_ms);
    let export_ms = h.unix_ms();
    let mut announced: Vec<SamplingInfo> = Vec::new();
    let mut new_init = None;
    let mut off = 0usize;
    // Fewer bytes left than the smallest record is padding (RFC 3954 §5.3, RFC 7011 §3.3.1).
    while c.len().saturating_sub(off) >= t.min_len {
        let mut rec = FlowRecord::default();
        let mut s = Scratch::default();
        for f in &t.fields {
            let len = if f.len == VARLEN {
                // RFC 7011 §7: one length byte, or 255 followed by a two-byte length.
                let l1 = c.get(off).copied().ok_or(NetflowError::TruncatedVarLen { template_id: t.id })?;
                off += 1;
                if l1 == 255 {
                    let l = be16(c, off);
                    if c.len() < off + 2 {
                        return Err(NetflowError::TruncatedVarLen { template_id: t.id });
                    }
                    off += 2;
                    usize::from(l)
                } else {
                    usize::from(l1)
                }
            } else {
                usize::from(f.len)
            };
            let v = c.get(off..off + len).ok_or(NetflowError::TruncatedVarLen { template_id: t.id })?;
            off += len;
            if f.kind != Kind::Skip {
                apply(f.kind, v, &mut rec, &mut s);
            }
        }
        if !s.has_bytes {
            rec.bytes = s.bytes_total;
        }
        if !s.has_packets {
            rec.packets = s.packets_total;
        }
        if rec.src_mac == [0; 6] {
            rec.src_mac = s.post_src_mac;
        }
        if rec.dst_mac == [0; 6] {
            rec.dst_mac = s.post_dst_mac;
        }
        if rec.vlan == 0 {
            rec.vlan = s.dot1q_vlan;
        }
        if t.options {
            *options_records += 1;
            if let Some(init) = s.system_init_ms {
                new_init = Some(init);
            }
            if rec.sampling_interval != 0 {
                let info = SamplingInfo {
                    exporter: Some(key.0),
                    source_id: h.source_id,
                    sampler_id: rec.sampler_id,
                    interval: rec.sampling_interval,
                    algorithm: rec.sampling_algorithm,
                };
                sink.sampling(&info);
                announced.push(info);
            }
            continue;
        }
        if s.has_uptimes {
            if !ipfix {
                rec.start_ms = h.uptime_to_unix_ms(rec.first_switched);
                rec.end_ms = h.uptime_to_unix_ms(rec.last_switched);
            } else if let Some(init) = s.system_init_ms.or(dom_init) {
                // The uptime IEs are 32-bit and wrap every ~49.7 days like v9's, so resolve
                // them against the uptime at export (modulo 2^32) rather than init + uptime.
                let at_export = NetflowHeader { sys_uptime_ms: export_ms.wrapping_sub(init) as u32, ..*h };
                rec.start_ms = at_export.uptime_to_unix_ms(rec.first_switched);
                rec.end_ms = at_export.uptime_to_unix_ms(rec.last_switched);
            }
        }
        if let Some(ms) = s.start_ms {
            rec.start_ms = ms;
        }
        if let Some(ms) = s.end_ms {
            rec.end_ms = ms;
        }
        if let Some(us) = s.start_delta_us {
            rec.start_ms = export_ms.saturating_sub(us / 1000);
        }
        if let Some(us) = s.end_delta_us {
            rec.end_ms = export_ms.saturating_sub(us / 1000);
        }
        if rec.sampling_interval == 0 {
            if let Some(smp) = dom.and_then(|d| d.sampling_for(rec.sampler_id)) {
                rec.sampling_interval = smp.interval;
                rec.sampling_algorithm = smp.algorithm;
            }
        }
        sink.record(h, &rec);
        *delivered += 1;
    }
    if !announced.is_empty() || new_init.is_some() {
        // Options data only arrives through a template, so the domain already exists.
        let Ok(d) = cache.domain_mut(key) else { return Ok(()) };
        let mut changed = false;
        for info in announced {
            changed |= d.set_sampling(info);
        }
        if new_init.is_some() && d.system_init_ms != new_init {
            d.system_init_ms = new_init;
            changed = true;
        }
        if changed {
            cache.mark_changed(key);
        }
    }
    Ok(())
}

/// Reads an unsigned big-endian integer of any width 1..=8 (RFC 7011 reduced-size encoding);
/// wider values keep their low 8 bytes.
#[inline]
fn uint(v: &[u8]) -> u64 {
    let tail = v.get(v.len().saturating_sub(8)..).unwrap_or(v);
    tail.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

fn mac(v: &[u8]) -> [u8; 6] {
    v.first_chunk::<6>().copied().unwrap_or([0; 6])
}

/// NTP-format timestamp (RFC 7011 dateTimeMicroseconds/Nanoseconds) to unix ms.
fn ntp_ms(v: &[u8]) -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let secs = u64::from(be32(v, 0)).saturating_sub(NTP_UNIX_OFFSET);
    let frac = u64::from(be32(v, 4));
    secs * 1000 + ((frac * 1000) >> 32)
}

fn apply(kind: Kind, v: &[u8], r: &mut FlowRecord, s: &mut Scratch) {
    let n = uint(v);
    match kind {
        Kind::Skip => {}
        Kind::Bytes => {
            r.bytes = n;
            s.has_bytes = true;
        }
        Kind::Packets => {
            r.packets = n;
            s.has_packets = true;
        }
        Kind::Flows => r.flows = n,
        Kind::BytesTotal => s.bytes_total = n,
        Kind::PacketsTotal => s.packets_total = n,
        Kind::Proto => r.proto = n as u8,
        Kind::Tos => r.tos = n as u8,
        // tcpControlBits is 16 bits in IPFIX; the classic flags are the low byte.
        Kind::TcpFlags => r.tcp_flags = n as u8,
        Kind::SrcPort => r.src_port = n as u16,
        Kind::DstPort => r.dst_port = n as u16,
        Kind::SrcV4 => set_v4(&mut r.src_addr, v),
        Kind::DstV4 => set_v4(&mut r.dst_addr, v),
        Kind::NextHopV4 => set_v4(&mut r.next_hop, v),
        Kind::SrcV6 => set_v6(&mut r.src_addr, v),
        Kind::DstV6 => set_v6(&mut r.dst_addr, v),
        Kind::NextHopV6 => set_v6(&mut r.next_hop, v),
        Kind::BgpNextHopV4 => set_v4(&mut r.bgp_next_hop, v),
        Kind::BgpNextHopV6 => set_v6(&mut r.bgp_next_hop, v),
        Kind::Cvlan => r.cvlan = (n & 0x0fff) as u16,
        Kind::SrcMask => r.src_mask = n as u8,
        Kind::DstMask => r.dst_mask = n as u8,
        Kind::Input => r.input = n as u32,
        Kind::Output => r.output = n as u32,
        Kind::SrcAs => r.src_as = n as u32,
        Kind::DstAs => r.dst_as = n as u32,
        Kind::FirstUptime => {
            r.first_switched = n as u32;
            s.has_uptimes = true;
        }
        Kind::LastUptime => {
            r.last_switched = n as u32;
            s.has_uptimes = true;
        }
        Kind::SrcMac => r.src_mac = mac(v),
        Kind::DstMac => r.dst_mac = mac(v),
        Kind::PostSrcMac => s.post_src_mac = mac(v),
        Kind::PostDstMac => s.post_dst_mac = mac(v),
        Kind::Vlan => r.vlan = (n & 0x0fff) as u16,
        Kind::Dot1qVlan => s.dot1q_vlan = (n & 0x0fff) as u16,
        Kind::Direction => r.direction = Some(n as u8),
        Kind::Tag => r.tag = n,
        Kind::Tag2 => r.tag2 = n,
        Kind::SamplingInterval => r.sampling_interval = n as u32,
        Kind::SamplingAlgorithm => r.sampling_algorithm = n as u8,
        Kind::SamplerId => r.sampler_id = n as u32,
        Kind::EngineType => r.engine_type = n as u8,
        Kind::EngineId => r.engine_id = n as u8,
        Kind::StartSecs => s.start_ms = Some(n.saturating_mul(1000)),
        Kind::EndSecs => s.end_ms = Some(n.saturating_mul(1000)),
        Kind::StartMs => s.start_ms = Some(n),
        Kind::EndMs => s.end_ms = Some(n),
        Kind::StartUs | Kind::StartNs => s.start_ms = Some(ntp_ms(v)),
        Kind::EndUs | Kind::EndNs => s.end_ms = Some(ntp_ms(v)),
        // flowStart/EndDeltaMicroseconds: microseconds before the export time.
        Kind::StartDeltaUs => s.start_delta_us = Some(n),
        Kind::EndDeltaUs => s.end_delta_us = Some(n),
        Kind::SystemInitMs => s.system_init_ms = Some(n),
    }
}

fn set_v4(a: &mut IpAddr, v: &[u8]) {
    if let Some(b) = v.first_chunk::<4>() {
        *a = IpAddr::from(*b);
    }
}

fn set_v6(a: &mut IpAddr, v: &[u8]) {
    if let Some(b) = v.first_chunk::<16>() {
        *a = IpAddr::V6(Ipv6Addr::from(*b));
    }
}
