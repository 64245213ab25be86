//! The bodies of the fuzz targets over this crate's decoders (`fuzz/fuzz_targets/*.rs` are
//! one-line wrappers), kept here so that `tests/fuzz_corpus.rs` replays every committed corpus
//! file and fixed crash through exactly what libFuzzer ran, on stable and without libFuzzer.
//! Each checks the invariants callers rely on, beyond "does not panic".

use std::net::{IpAddr, Ipv4Addr};

use crate::netflow::{
    decode_fixed, Decoder, DomainState, FlowRecord, Limits, NetflowHeader, SamplingInfo, TemplateField, TemplateState,
};
use crate::pcapfile::{self, FILE_HEADER_LEN};
use crate::sflow::decode_datagram;
use crate::{decode, LinkType, L3};

/// The link types `decode` handles; the first input byte of `decode_packet` picks one.
pub const LINKS: [LinkType; 9] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Ppp,
    LinkType::Ieee80211,
];

/// Small limits, so that the fuzzer reaches them.
const LIMITS: Limits =
    Limits { max_templates: 8, max_fields: 32, max_pending_sets: 4, max_pending_bytes: 4096, max_domains: 8 };

/// Input: link byte (index into `LINKS`, modulo), 4-byte little-endian wire length (so cut
/// captures are covered too), then the frame.
pub fn decode_packet(data: &[u8]) {
    let Some((&l, rest)) = data.split_first() else { return };
    let link = LINKS[usize::from(l) % LINKS.len()];
    let (wire_len, frame) = match rest.split_first_chunk::<4>() {
        Some((w, rest)) => (u32::from_le_bytes(*w), rest),
        None => (rest.len() as u32, rest),
    };
    let Ok(p) = decode(link, frame, wire_len) else { return };
    assert!(usize::from(p.l3_offset) <= frame.len());
    assert!(usize::from(p.payload_offset) <= frame.len());
    if p.payload_offset != 0 {
        assert!(p.payload_offset >= p.l3_offset);
    }
    assert!(p.vlan < 4096);
    if p.vlan_depth == 0 {
        assert_eq!(p.vlan, 0);
    }
    if p.is_later_fragment {
        assert!(p.is_fragment);
        assert_eq!((p.src_port, p.dst_port, p.tcp_flags), (0, 0, 0));
        assert_eq!((p.icmp_type, p.icmp_code, p.payload_offset), (0, 0, 0));
    }
    if !p.is_fragment {
        assert_eq!(p.frag_id, 0);
    }
    assert!(p.mpls_top < 1 << 20 && p.mpls_bottom < 1 << 20);
    if p.mpls_depth == 0 {
        assert_eq!((p.mpls_top, p.mpls_bottom), (0, 0));
    }
    // MPLS and PPPoE right after the link header, or behind a Cisco FabricPath/VN-Tag header,
    // whose EtherType is then the one libpcap compares.
    const CISCO: [u16; 2] = [0x8903, 0x8926];
    if p.mpls_depth > 0 {
        assert!(matches!(p.link_etype, 0x8847 | 0x8848) || CISCO.contains(&p.link_etype), "{:#06x}", p.link_etype);
    }
    if p.pppoe_session != 0 {
        assert!(p.link_etype == 0x8864 || CISCO.contains(&p.link_etype), "{:#06x}", p.link_etype);
    }
    match p.l3 {
        L3::None => {
            assert_eq!(p.ip_len, wire_len);
            assert_eq!((p.proto, p.src_port, p.dst_port, p.payload_offset), (0, 0, 0, 0));
        }
        L3::V4 { .. } => assert_eq!(p.etype, 0x0800),
        L3::V6 { .. } => {
            assert_eq!(p.etype, 0x86dd);
            assert!(p.ip_len >= 40);
        }
    }
    if p.proto != 6 && p.proto != 17 {
        assert_eq!((p.src_port, p.dst_port), (0, 0));
    }
    if p.proto != 6 {
        assert_eq!(p.tcp_flags, 0);
    }
}

/// Input: one sFlow datagram.
pub fn decode_sflow(data: &[u8]) {
    let mut seen = 0u32;
    let r = decode_datagram(data, |s| {
        seen += 1;
        assert!(s.source_id_index <= 0x00ff_ffff || s.expanded);
        // v2/v4 inputs are full words, so only the output format can be bounded.
        assert!(s.output_format <= 3 || s.expanded);
        if s.header_error.is_some() {
            assert!(matches!(s.header_protocol, 1 | 11 | 12));
        }
    });
    if let Ok((dg, counts)) = r {
        assert!(matches!(dg.version, 2 | 4 | 5));
        assert_eq!(counts.flow_samples, seen);
        assert_eq!(counts.flow_samples + counts.counter_samples + counts.unknown_samples, dg.samples);
    }
}

/// Input: NetFlow v1/v5/v7/v8/v9/IPFIX datagrams separated by the byte 0xa5 (so the fuzzer can
/// build template-then-data sequences), all through one decoder so that templates, held data
/// sets and withdrawals interact across messages, and the cache must stay within its limits.
pub fn decode_netflow(data: &[u8]) {
    let mut dec = Decoder::new(LIMITS);
    for (i, dgram) in data.split(|&b| b == 0xa5).enumerate() {
        let exporter = IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i % 2) as u8));
        let mut n = 0u64;
        let res = dec.decode(exporter, dgram, &mut |_: &NetflowHeader, r: &FlowRecord| {
            n += 1;
            assert!(r.vlan < 4096, "VLAN ids are 12 bits");
        });
        if let Ok(st) = res {
            assert_eq!(u64::from(st.records) + u64::from(st.replayed_records), n);
        }
        let _ = decode_fixed(dgram, &mut |_: &NetflowHeader, _: &FlowRecord| {});
        assert!(dec.templates.pending_sets() <= 8 * 4, "pending sets bounded");
        assert!(dec.templates.len() <= 8 * 8, "templates bounded");
    }
}

/// Reads a compact description; short input reads as zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map(|(b, r)| (*b, r)).unwrap_or((0, &[]));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

/// Templates restored from a (possibly hand-edited or corrupt) `nfacctd_templates_file` go
/// through `TemplateCache::restore`: whatever it accepts must decode data sets as safely as
/// templates that arrived on the wire, and an export of the cache must restore to the same
/// state. Input: a compact description of domains and templates, then datagrams separated by
/// 0xa5 that are decoded with the restored cache.
pub fn restore_templates(data: &[u8]) {
    let (desc, datagrams) = match data.iter().position(|&b| b == 0xa5) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut b = Bytes(desc);
    let mut domains = Vec::new();
    for d in 0..(b.u8() % 4) {
        let exporter = IpAddr::V4(Ipv4Addr::new(10, 0, 0, d));
        let version = if b.u8() & 1 == 0 { 9 } else { 10 };
        let source_id = u32::from(b.u8() % 3);
        let mut templates = Vec::new();
        for _ in 0..(b.u8() % 6) {
            let id = b.u16();
            let flags = b.u8();
            let mut fields = Vec::new();
            for _ in 0..(b.u8() % 12) {
                let (ie, len) = (b.u16() & 0x7fff, b.u16());
                let enterprise = (b.u8() & 1 == 1).then(|| b.u32());
                fields.push(TemplateField { ie, len, enterprise });
            }
            templates.push(TemplateState { id, options: flags & 1 == 1, scope: u16::from(flags >> 1 & 7), fields });
        }
        let sampling = (0..(b.u8() % 3))
            .map(|_| SamplingInfo {
                exporter: Some(exporter),
                source_id,
                sampler_id: u32::from(b.u8()),
                interval: b.u32(),
                algorithm: b.u8(),
            })
            .collect();
        domains.push(DomainState { exporter, version, source_id, templates, sampling, system_init_ms: None });
    }
    let mut dec = Decoder::new(LIMITS);
    if dec.templates.restore(&domains).is_ok() {
        // What was accepted comes back out the same (sorted, empty domains left out).
        let mut again = Decoder::new(LIMITS);
        let out = dec.templates.export();
        assert_eq!(again.templates.restore(&out).ok(), Some(out.iter().map(|d| d.templates.len()).sum()));
        assert_eq!(again.templates.export(), out);
    }
    for (i, dgram) in datagrams.split(|&b| b == 0xa5).enumerate() {
        let exporter = IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i % 4) as u8));
        let mut n = 0u64;
        let res = dec.decode(exporter, dgram, &mut |_: &NetflowHeader, _: &FlowRecord| n += 1);
        if let Ok(st) = res {
            assert_eq!(u64::from(st.records) + u64::from(st.replayed_records), n);
        }
        assert!(dec.templates.len() <= 8 * 8, "templates bounded");
    }
}

/// Input: a classic pcap savefile held in memory (file header, then records), framed the way
/// `xacct_capture::savefile` frames its read blocks.
pub fn savefile(data: &[u8]) {
    let Ok(h) = pcapfile::parse_file_header(data) else { return };
    // Small, so the fuzzer meets the bogus-length refusal as well as whole records.
    let max = 4096;
    let body = &data[FILE_HEADER_LEN..];
    let mut taken = 0usize;
    for r in pcapfile::records(&h, body, max) {
        let Ok((rh, frame)) = r else { break };
        assert_eq!(frame.len(), rh.caplen as usize);
        assert!(frame.len() <= max);
        taken += pcapfile::RECORD_HEADER_LEN + frame.len();
        assert!(taken <= body.len());
    }
}
