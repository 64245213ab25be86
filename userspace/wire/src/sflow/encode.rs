//! sFlow v5 encoder: datagrams of compact flow samples carrying raw packet headers (plus the
//! extended switch/router/gateway records) and generic interface counter samples. Used by the
//! tests, the replayer and the sfprobe exporter.

use super::{ExtGateway, ExtRouter, ExtSwitch};
use std::net::IpAddr;

/// One flow sample to encode (compact form, format 1).
#[derive(Debug, Clone, Copy)]
pub struct FlowSampleSpec<'a> {
    pub sequence: u32,
    /// Source id class (top 8 bits on the wire) and index (low 24 bits).
    pub source_id_type: u8,
    pub source_id_index: u32,
    pub sampling_rate: u32,
    pub sample_pool: u32,
    pub drops: u32,
    /// ifIndexes (30 bits on the wire, format 0).
    pub input: u32,
    pub output: u32,
    /// 1 Ethernet, 11 IPv4, 12 IPv6.
    pub header_protocol: u32,
    /// Original frame length (including what `stripped` says was removed).
    pub frame_length: u32,
    pub stripped: u32,
    /// The captured leading bytes of the frame.
    pub header: &'a [u8],
    pub switch: Option<ExtSwitch>,
    pub router: Option<ExtRouter>,
    pub gateway: Option<ExtGateway>,
    /// pmacct's EX_TAG record: tag and tag2.
    pub tags: Option<(u64, u64)>,
}

impl<'a> FlowSampleSpec<'a> {
    /// A sample of the whole Ethernet `frame` as an agent sends it: the raw header is the frame,
    /// `frame_length` adds the 4-byte FCS the agent stripped; sampling rate 1, data source
    /// ifIndex 1, in 1, out 2, no extended records. Tests and generators set what they vary
    /// with struct update syntax.
    pub fn ethernet(sequence: u32, frame: &'a [u8]) -> Self {
        FlowSampleSpec {
            sequence,
            source_id_type: 0,
            source_id_index: 1,
            sampling_rate: 1,
            sample_pool: sequence,
            drops: 0,
            input: 1,
            output: 2,
            header_protocol: 1,
            frame_length: frame.len() as u32 + 4,
            stripped: 4,
            header: frame,
            switch: None,
            router: None,
            gateway: None,
            tags: None,
        }
    }
}

/// Generic interface counters (v5 counter record format 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfCounters {
    pub if_index: u32,
    pub if_type: u32,
    pub if_speed: u64,
    pub if_direction: u32,
    pub if_status: u32,
    pub in_octets: u64,
    pub in_ucast: u32,
    pub in_mcast: u32,
    pub in_bcast: u32,
    pub in_discards: u32,
    pub in_errors: u32,
    pub in_unknown_protos: u32,
    pub out_octets: u64,
    pub out_ucast: u32,
    pub out_mcast: u32,
    pub out_bcast: u32,
    pub out_discards: u32,
    pub out_errors: u32,
    pub promiscuous: u32,
}

/// Builds one v5 datagram. The sample count in the header is patched as samples are added.
#[derive(Debug, Clone)]
pub struct DatagramBuilder {
    buf: Vec<u8>,
    count_at: usize,
    count: u32,
}

fn put(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn put_addr(buf: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => {
            put(buf, 1);
            buf.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            put(buf, 2);
            buf.extend_from_slice(&a.octets());
        }
    }
}

/// Writes `(format, length)` then the body `f` writes, and patches the length.
fn with_len(buf: &mut Vec<u8>, format: u32, f: impl FnOnce(&mut Vec<u8>)) {
    put(buf, format);
    let at = buf.len();
    put(buf, 0);
    f(buf);
    let len = (buf.len() - at - 4) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

impl DatagramBuilder {
    pub fn new(agent: IpAddr, sub_agent_id: u32, sequence: u32, uptime_ms: u32) -> Self {
        let mut buf = Vec::with_capacity(1400);
        put(&mut buf, 5);
        put_addr(&mut buf, agent);
        put(&mut buf, sub_agent_id);
        put(&mut buf, sequence);
        put(&mut buf, uptime_ms);
        let count_at = buf.len();
        put(&mut buf, 0);
        DatagramBuilder { buf, count_at, count: 0 }
    }

    /// Bytes so far: lets callers keep datagrams under the path MTU.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn bump(&mut self) {
        self.count += 1;
        let at = self.count_at;
        self.buf[at..at + 4].copy_from_slice(&self.count.to_be_bytes());
    }

    pub fn flow_sample(&mut self, s: &FlowSampleSpec<'_>) -> &mut Self {
        with_len(&mut self.buf, 1, |b| {
            put(b, s.sequence);
            put(b, u32::from(s.source_id_type) << 24 | (s.source_id_index & 0x00ff_ffff));
            put(b, s.sampling_rate);
            put(b, s.sample_pool);
            put(b, s.drops);
            put(b, s.input & 0x3fff_ffff);
            put(b, s.output & 0x3fff_ffff);
            let records = 1
                + u32::from(s.switch.is_some())
                + u32::from(s.router.is_some())
                + u32::from(s.gateway.is_some())
                + u32::from(s.tags.is_some());
            put(b, records);
            with_len(b, 1, |b| {
                put(b, s.header_protocol);
                put(b, s.frame_length);
                put(b, s.stripped);
                put(b, s.header.len() as u32);
                b.extend_from_slice(s.header);
                b.resize(b.len() + (4 - s.header.len() % 4) % 4, 0);
            });
            if let Some(sw) = s.switch {
                with_len(b, 1001, |b| {
                    for v in [sw.src_vlan, sw.src_priority, sw.dst_vlan, sw.dst_priority] {
                        put(b, v);
                    }
                });
            }
            if let Some(r) = s.router {
                with_len(b, 1002, |b| {
                    put_addr(b, r.next_hop);
                    put(b, r.src_mask);
                    put(b, r.dst_mask);
                });
            }
            if let Some(g) = s.gateway {
                with_len(b, 1003, |b| {
                    put_addr(b, g.next_hop.unwrap_or(IpAddr::from([0, 0, 0, 0])));
                    put(b, g.my_as);
                    put(b, g.src_as);
                    put(b, g.src_peer_as);
                    // One AS_SEQUENCE segment: [peer, …, origin]; empty when both are 0.
                    let path: &[u32] = match (g.dst_peer_as, g.dst_as) {
                        (0, 0) => &[],
                        (p, d) if p == d => &[d],
                        (p, d) => &[p, d],
                    };
                    if path.is_empty() {
                        put(b, 0);
                    } else {
                        put(b, 1);
                        put(b, 2);
                        put(b, path.len() as u32);
                        for &a in path {
                            put(b, a);
                        }
                    }
                    put(b, 0); // communities
                    put(b, 100); // local preference
                });
            }
            if let Some((t1, t2)) = s.tags {
                with_len(b, super::PMACCT_EX_TAG, |b| {
                    b.extend_from_slice(&t1.to_be_bytes());
                    b.extend_from_slice(&t2.to_be_bytes());
                });
            }
        });
        self.bump();
        self
    }

    /// A compact counter sample (format 2) with one generic interface counters record.
    pub fn counter_sample(
        &mut self,
        sequence: u32,
        source_id_type: u8,
        source_id_index: u32,
        c: &IfCounters,
    ) -> &mut Self {
        with_len(&mut self.buf, 2, |b| {
            put(b, sequence);
            put(b, u32::from(source_id_type) << 24 | (source_id_index & 0x00ff_ffff));
            put(b, 1);
            with_len(b, 1, |b| {
                put(b, c.if_index);
                put(b, c.if_type);
                b.extend_from_slice(&c.if_speed.to_be_bytes());
                put(b, c.if_direction);
                put(b, c.if_status);
                b.extend_from_slice(&c.in_octets.to_be_bytes());
                for v in [c.in_ucast, c.in_mcast, c.in_bcast, c.in_discards, c.in_errors, c.in_unknown_protos] {
                    put(b, v);
                }
                b.extend_from_slice(&c.out_octets.to_be_bytes());
                for v in [c.out_ucast, c.out_mcast, c.out_bcast, c.out_discards, c.out_errors, c.promiscuous] {
                    put(b, v);
                }
            });
        });
        self.bump();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}
