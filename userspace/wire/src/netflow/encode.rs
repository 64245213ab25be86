//! Encoders: NetFlow v5, and v9/IPFIX messages built set by set (for exporters, the replayer
//! and tests).

use std::net::IpAddr;

use super::templates::{TemplateField, VARLEN};
use super::{FlowRecord, NetflowHeader, VERSION_IPFIX};

/// Encodes a v5 datagram. `count` is set to `records.len()` (callers send at most 30 per
/// datagram to stay within the published format); the header's sequence, engine and sampling
/// are written as given. Counters wider than the format are truncated to 32 bits.
pub fn encode_v5(header: &NetflowHeader, records: &[FlowRecord]) -> Vec<u8> {
    let mut b = Vec::with_capacity(24 + 48 * records.len());
    b.extend_from_slice(&5u16.to_be_bytes());
    b.extend_from_slice(&(records.len() as u16).to_be_bytes());
    b.extend_from_slice(&header.sys_uptime_ms.to_be_bytes());
    b.extend_from_slice(&header.unix_secs.to_be_bytes());
    b.extend_from_slice(&header.unix_nsecs.to_be_bytes());
    b.extend_from_slice(&header.sequence.to_be_bytes());
    b.push(header.engine_type);
    b.push(header.engine_id);
    let sampling = (u16::from(header.sampling_mode) << 14) | (header.sampling_interval & 0x3fff);
    b.extend_from_slice(&sampling.to_be_bytes());
    for r in records {
        b.extend_from_slice(&v4_octets(r.src_addr));
        b.extend_from_slice(&v4_octets(r.dst_addr));
        b.extend_from_slice(&v4_octets(r.next_hop));
        b.extend_from_slice(&(r.input as u16).to_be_bytes());
        b.extend_from_slice(&(r.output as u16).to_be_bytes());
        b.extend_from_slice(&(r.packets as u32).to_be_bytes());
        b.extend_from_slice(&(r.bytes as u32).to_be_bytes());
        b.extend_from_slice(&r.first_switched.to_be_bytes());
        b.extend_from_slice(&r.last_switched.to_be_bytes());
        b.extend_from_slice(&r.src_port.to_be_bytes());
        b.extend_from_slice(&r.dst_port.to_be_bytes());
        b.extend_from_slice(&[0, r.tcp_flags, r.proto, r.tos]);
        b.extend_from_slice(&(r.src_as as u16).to_be_bytes());
        b.extend_from_slice(&(r.dst_as as u16).to_be_bytes());
        b.extend_from_slice(&[r.src_mask, r.dst_mask, 0, 0]);
    }
    b
}

fn v4_octets(a: IpAddr) -> [u8; 4] {
    match a {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => [0; 4],
    }
}

/// Builds a v9 or IPFIX message one set at a time; [`MessageBuilder::finish`] fills in the
/// header's count (v9: records written) or length (IPFIX).
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    ipfix: bool,
    records: u16,
}

impl MessageBuilder {
    /// A NetFlow v9 message with the header's uptime, unix time, sequence and source id.
    pub fn v9(h: &NetflowHeader) -> Self {
        let mut buf = Vec::with_capacity(1400);
        buf.extend_from_slice(&9u16.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&h.sys_uptime_ms.to_be_bytes());
        buf.extend_from_slice(&h.unix_secs.to_be_bytes());
        buf.extend_from_slice(&h.sequence.to_be_bytes());
        buf.extend_from_slice(&h.source_id.to_be_bytes());
        MessageBuilder { buf, ipfix: false, records: 0 }
    }

    /// An IPFIX message with the header's export time, sequence and observation domain.
    pub fn ipfix(h: &NetflowHeader) -> Self {
        let mut buf = Vec::with_capacity(1400);
        buf.extend_from_slice(&VERSION_IPFIX.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&h.unix_secs.to_be_bytes());
        buf.extend_from_slice(&h.sequence.to_be_bytes());
        buf.extend_from_slice(&h.source_id.to_be_bytes());
        MessageBuilder { buf, ipfix: true, records: 0 }
    }

    fn open_set(&mut self, id: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&id.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        at
    }

    fn close_set(&mut self, at: usize, padding: usize) {
        self.buf.resize(self.buf.len() + padding, 0);
        let len = (self.buf.len() - at) as u16;
        if let Some(l) = self.buf.get_mut(at + 2..at + 4) {
            l.copy_from_slice(&len.to_be_bytes());
        }
    }

    fn put_fields(&mut self, fields: &[TemplateField]) {
        for f in fields {
            match f.enterprise.filter(|_| self.ipfix) {
                Some(pen) => {
                    self.buf.extend_from_slice(&(f.ie | 0x8000).to_be_bytes());
                    self.buf.extend_from_slice(&f.len.to_be_bytes());
                    self.buf.extend_from_slice(&pen.to_be_bytes());
                }
                None => {
                    self.buf.extend_from_slice(&f.ie.to_be_bytes());
                    self.buf.extend_from_slice(&f.len.to_be_bytes());
                }
            }
        }
    }

    /// A template set holding one template.
    pub fn template(&mut self, id: u16, fields: &[TemplateField]) -> &mut Self {
        let at = self.open_set(if self.ipfix { 2 } else { 0 });
        self.buf.extend_from_slice(&id.to_be_bytes());
        self.buf.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        self.put_fields(fields);
        self.close_set(at, 0);
        self.records += 1;
        self
    }

    /// An options template set holding one options template.
    pub fn options_template(&mut self, id: u16, scope: &[TemplateField], options: &[TemplateField]) -> &mut Self {
        let at = self.open_set(if self.ipfix { 3 } else { 1 });
        self.buf.extend_from_slice(&id.to_be_bytes());
        if self.ipfix {
            self.buf.extend_from_slice(&((scope.len() + options.len()) as u16).to_be_bytes());
            self.buf.extend_from_slice(&(scope.len() as u16).to_be_bytes());
        } else {
            self.buf.extend_from_slice(&((scope.len() * 4) as u16).to_be_bytes());
            self.buf.extend_from_slice(&((options.len() * 4) as u16).to_be_bytes());
        }
        self.put_fields(scope);
        self.put_fields(options);
        // v9 options template sets are padded to 4 bytes (RFC 3954 §6.1).
        let pad = if self.ipfix { 0 } else { (4 - (self.buf.len() - at) % 4) % 4 };
        self.close_set(at, pad);
        self.records += 1;
        self
    }

    /// IPFIX template withdrawal (field count 0) for `id`; `id` 2 or 3 withdraws all
    /// templates or all options templates.
    pub fn withdraw(&mut self, id: u16, options: bool) -> &mut Self {
        let at = self.open_set(if options { 3 } else { 2 });
        self.buf.extend_from_slice(&id.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        self.close_set(at, 0);
        self
    }

    /// A data set with pre-encoded record bytes and `padding` zero bytes at the end.
    pub fn data_raw(&mut self, template_id: u16, records: u16, bytes: &[u8], padding: usize) -> &mut Self {
        let at = self.open_set(template_id);
        self.buf.extend_from_slice(bytes);
        self.close_set(at, padding);
        self.records = self.records.wrapping_add(records);
        self
    }

    /// A data set with `records` encoded per `fields` (IANA elements this crate decodes;
    /// others, and variable-length fields, are written as zeros / empty). Padded to 4 bytes.
    pub fn data(&mut self, template_id: u16, fields: &[TemplateField], records: &[FlowRecord]) -> &mut Self {
        let mut bytes = Vec::new();
        for r in records {
            for f in fields {
                encode_field(&mut bytes, f, r);
            }
        }
        let pad = (4 - (4 + bytes.len()) % 4) % 4;
        self.data_raw(template_id, records.len() as u16, &bytes, pad)
    }

    pub fn finish(mut self) -> Vec<u8> {
        let v = if self.ipfix { self.buf.len() as u16 } else { self.records };
        if let Some(l) = self.buf.get_mut(2..4) {
            l.copy_from_slice(&v.to_be_bytes());
        }
        self.buf
    }
}

fn encode_field(out: &mut Vec<u8>, f: &TemplateField, r: &FlowRecord) {
    if f.len == VARLEN {
        out.push(0);
        return;
    }
    let len = usize::from(f.len);
    let int = |out: &mut Vec<u8>, v: u64| {
        let be = v.to_be_bytes();
        if len <= 8 {
            out.extend_from_slice(be.get(8 - len..).unwrap_or(&[]));
        } else {
            out.resize(out.len() + len - 8, 0);
            out.extend_from_slice(&be);
        }
    };
    let addr = |out: &mut Vec<u8>, a: IpAddr| match (a, len) {
        (IpAddr::V4(a), 4) => out.extend_from_slice(&a.octets()),
        (IpAddr::V6(a), 16) => out.extend_from_slice(&a.octets()),
        _ => out.resize(out.len() + len, 0),
    };
    let mac = |out: &mut Vec<u8>, m: [u8; 6]| {
        if len == 6 {
            out.extend_from_slice(&m)
        } else {
            out.resize(out.len() + len, 0)
        }
    };
    match f.enterprise {
        Some(super::templates::PMACCT_PEN) if f.ie == 1 => return int(out, r.tag),
        Some(super::templates::PMACCT_PEN) if f.ie == 2 => return int(out, r.tag2),
        Some(_) => {
            out.resize(out.len() + len, 0);
            return;
        }
        None => {}
    }
    match f.ie {
        1 | 85 => int(out, r.bytes),
        2 | 86 => int(out, r.packets),
        3 => int(out, r.flows),
        4 => int(out, r.proto.into()),
        5 => int(out, r.tos.into()),
        6 => int(out, r.tcp_flags.into()),
        7 => int(out, r.src_port.into()),
        8 | 27 => addr(out, r.src_addr),
        9 | 29 => int(out, r.src_mask.into()),
        10 => int(out, r.input.into()),
        11 => int(out, r.dst_port.into()),
        12 | 28 => addr(out, r.dst_addr),
        13 | 30 => int(out, r.dst_mask.into()),
        14 => int(out, r.output.into()),
        15 | 62 => addr(out, r.next_hop),
        18 | 63 => addr(out, r.bgp_next_hop),
        245 => int(out, r.cvlan.into()),
        16 => int(out, r.src_as.into()),
        17 => int(out, r.dst_as.into()),
        21 => int(out, r.last_switched.into()),
        22 => int(out, r.first_switched.into()),
        34 | 50 | 305 => int(out, r.sampling_interval.into()),
        35 | 49 | 304 => int(out, r.sampling_algorithm.into()),
        38 => int(out, r.engine_type.into()),
        39 => int(out, r.engine_id.into()),
        48 | 302 => int(out, r.sampler_id.into()),
        56 | 81 => mac(out, r.src_mac),
        80 | 57 => mac(out, r.dst_mac),
        58 | 59 => int(out, r.vlan.into()),
        60 => int(out, if r.src_addr.is_ipv6() { 6 } else { 4 }),
        61 => int(out, r.direction.unwrap_or(0).into()),
        150 => int(out, r.start_ms / 1000),
        151 => int(out, r.end_ms / 1000),
        152 => int(out, r.start_ms),
        153 => int(out, r.end_ms),
        _ => out.resize(out.len() + len, 0),
    }
}
