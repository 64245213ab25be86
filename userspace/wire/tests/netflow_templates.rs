//! v9 and IPFIX: round trips through our encoder and hand-written messages covering options
//! templates with sampling, variable-length and enterprise fields, padding, withdrawal, data
//! before its template, limits, and a corpus of malformed messages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use xacct_wire::netflow::{
    Decoder, FlowRecord, FlowSink, Limits, MessageBuilder, NetflowError, NetflowHeader, SamplingInfo, TemplateField,
};

const EXP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

#[derive(Default)]
struct Sink {
    recs: Vec<(NetflowHeader, FlowRecord)>,
    sampling: Vec<SamplingInfo>,
}

impl FlowSink for Sink {
    fn record(&mut self, h: &NetflowHeader, r: &FlowRecord) {
        self.recs.push((*h, *r));
    }
    fn sampling(&mut self, info: &SamplingInfo) {
        self.sampling.push(*info);
    }
}

fn f(ie: u16, len: u16) -> TemplateField {
    TemplateField::iana(ie, len)
}

fn hdr(seq: u32) -> NetflowHeader {
    NetflowHeader {
        sys_uptime_ms: 1_000_000,
        unix_secs: 1_700_000_000,
        sequence: seq,
        source_id: 42,
        ..NetflowHeader::default()
    }
}

fn sample_records() -> Vec<FlowRecord> {
    let a = FlowRecord {
        src_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        dst_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        next_hop: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 254)),
        src_port: 1234,
        dst_port: 80,
        proto: 6,
        tos: 0x10,
        tcp_flags: 0x1b,
        input: 70000,
        output: 2,
        src_as: 4_200_000_000,
        dst_as: 65001,
        src_mask: 24,
        dst_mask: 16,
        vlan: 100,
        src_mac: [0, 1, 2, 3, 4, 5],
        dst_mac: [6, 7, 8, 9, 10, 11],
        packets: 5_000_000_000,
        bytes: 7_000_000_000_000,
        first_switched: 990_000,
        last_switched: 999_000,
        direction: Some(1),
        ..FlowRecord::default()
    };
    let b = FlowRecord { src_port: 53, dst_port: 5353, proto: 17, packets: 1, bytes: 99, ..a };
    vec![a, b]
}

const V4_FIELDS: [TemplateField; 20] = [
    TemplateField::iana(8, 4),
    TemplateField::iana(12, 4),
    TemplateField::iana(15, 4),
    TemplateField::iana(7, 2),
    TemplateField::iana(11, 2),
    TemplateField::iana(4, 1),
    TemplateField::iana(5, 1),
    TemplateField::iana(6, 1),
    TemplateField::iana(10, 4),
    TemplateField::iana(14, 2),
    TemplateField::iana(16, 4),
    TemplateField::iana(17, 2),
    TemplateField::iana(9, 1),
    TemplateField::iana(13, 1),
    TemplateField::iana(58, 2),
    TemplateField::iana(56, 6),
    TemplateField::iana(80, 6),
    TemplateField::iana(2, 8),
    TemplateField::iana(1, 8),
    TemplateField::iana(61, 1),
];

fn decode(d: &mut Decoder, bytes: &[u8]) -> (Result<xacct_wire::netflow::DatagramStats, NetflowError>, Sink) {
    let mut s = Sink::default();
    let r = d.decode(EXP, bytes, &mut s);
    (r, s)
}

#[test]
fn v9_roundtrip_with_uptime_times() {
    let recs = sample_records();
    let mut fields = V4_FIELDS.to_vec();
    fields.extend([f(22, 4), f(21, 4)]);
    let mut m = MessageBuilder::v9(&hdr(9));
    m.template(300, &fields).data(300, &fields, &recs);
    let bytes = m.finish();
    assert_eq!(&bytes[2..4], &[0, 3], "count = 1 template + 2 records");
    let mut dec = Decoder::default();
    let (st, s) = decode(&mut dec, &bytes);
    let st = st.unwrap();
    assert_eq!((st.records, st.templates, st.header.source_id, st.header.sequence), (2, 1, 42, 9));
    for ((_, got), want) in s.recs.iter().zip(&recs) {
        let want = FlowRecord { start_ms: 1_700_000_000_000 - 10_000, end_ms: 1_700_000_000_000 - 1_000, ..*want };
        assert_eq!(got, &want);
    }
    // The template stays: a data-only datagram decodes too.
    let mut m = MessageBuilder::v9(&hdr(10));
    m.data(300, &fields, &recs[..1]);
    let (st, s) = decode(&mut dec, &m.finish());
    assert_eq!((st.unwrap().records, s.recs[0].1.bytes), (1, 7_000_000_000_000));
}

#[test]
fn ipfix_roundtrip_v6_and_absolute_times() {
    let v6 = |x: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, x));
    let recs: Vec<_> = sample_records()
        .into_iter()
        .map(|r| FlowRecord {
            src_addr: v6(1),
            dst_addr: v6(2),
            next_hop: v6(3),
            first_switched: 0,
            last_switched: 0,
            start_ms: 1_699_999_990_123,
            end_ms: 1_699_999_999_456,
            ..r
        })
        .collect();
    let fields = [
        f(27, 16),
        f(28, 16),
        f(62, 16),
        f(7, 2),
        f(11, 2),
        f(4, 1),
        f(2, 4),
        f(1, 4),
        f(152, 8),
        f(153, 8),
        f(29, 1),
        f(30, 1),
    ];
    let mut m = MessageBuilder::ipfix(&hdr(1000));
    m.template(256, &fields).data(256, &fields, &recs);
    let bytes = m.finish();
    assert_eq!(usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), bytes.len());
    let (st, s) = decode(&mut Decoder::default(), &bytes);
    assert_eq!(st.unwrap().records, 2);
    let got = &s.recs[1].1;
    assert_eq!((got.src_addr, got.dst_addr, got.next_hop), (v6(1), v6(2), v6(3)));
    assert_eq!((got.src_port, got.dst_port, got.proto, got.packets, got.bytes), (53, 5353, 17, 1, 99));
    assert_eq!((got.start_ms, got.end_ms, got.src_mask, got.dst_mask), (1_699_999_990_123, 1_699_999_999_456, 24, 16));
}

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn ipfix(domain: u32, seq: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = sets.concat();
    let mut v = vec![0, 10];
    v.extend_from_slice(&((16 + body.len()) as u16).to_be_bytes());
    v.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&domain.to_be_bytes());
    v.extend(body);
    v
}

#[test]
fn ipfix_options_sampling_varlen_enterprise_padding() {
    // Options template 400: scope observationDomainId(149)/4, options samplingPacketInterval
    // (305)/4 and selectorAlgorithm (304)/1.
    let opt_t = set(3, &[1, 144, 0, 3, 0, 1, 0, 149, 0, 4, 1, 49, 0, 4, 1, 48, 0, 1]);
    let opt_d = set(400, &[0, 0, 0, 42, 0, 0, 0, 64, 1, 0, 0, 0]); // + 3 bytes padding
                                                                   // Template 500: srcIPv4, enterprise 12345 IE 7 variable length, packets/2, an IANA
                                                                   // variable-length field (IE 82 interfaceName), dstIPv4, enterprise 99 IE 1 / 3 bytes.
    let t = set(
        2,
        &[
            1, 244, 0, 6, 0, 8, 0, 4, 0x80, 7, 0xff, 0xff, 0, 0, 0x30, 0x39, 0, 2, 0, 2, 0, 82, 0xff, 0xff, 0, 12, 0,
            4, 0x80, 1, 0, 3, 0, 0, 0, 99,
        ],
    );
    let mut rec1 = vec![10, 0, 0, 1, 3, b'a', b'b', b'c', 0, 5, 0, 10, 0, 0, 2, 1, 2, 3];
    // Second record: the enterprise field uses the 3-byte length form (255, 300).
    let mut rec2 = vec![10, 0, 0, 3, 255, 1, 44];
    rec2.extend(std::iter::repeat_n(0xaa, 300));
    rec2.extend_from_slice(&[0, 7, 2, b'e', b'0', 10, 0, 0, 4, 9, 9, 9]);
    rec1.extend(rec2);
    rec1.extend_from_slice(&[0, 0]); // padding shorter than a record
    let d = set(500, &rec1);
    let mut dec = Decoder::default();
    let (st, s) = decode(&mut dec, &ipfix(42, 1, &[opt_t, opt_d, t, d]));
    let st = st.unwrap();
    assert_eq!((st.records, st.options_records, st.templates), (2, 1, 2));
    assert_eq!(
        s.sampling,
        vec![SamplingInfo { exporter: Some(EXP), source_id: 42, sampler_id: 0, interval: 64, algorithm: 1 }]
    );
    let (a, b) = (&s.recs[0].1, &s.recs[1].1);
    assert_eq!((a.src_addr, a.dst_addr, a.packets), (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]), 5));
    assert_eq!((b.src_addr, b.dst_addr, b.packets), (IpAddr::from([10, 0, 0, 3]), IpAddr::from([10, 0, 0, 4]), 7));
    // Sampling announced by options data applies to the exporter's records.
    assert_eq!((a.sampling_interval, a.sampling_algorithm), (64, 1));
    assert_eq!(dec.templates.sampling(EXP, 10, 42, 0).map(|s| s.interval), Some(64));
    // Another observation domain of the same exporter is not sampled.
    assert_eq!(dec.templates.sampling(EXP, 10, 43, 0), None);
}

#[test]
fn v9_options_sampling_with_sampler_id() {
    // v9 options template 257: scope system(1)/4; options FLOW_SAMPLER_ID(48)/1,
    // FLOW_SAMPLER_MODE(49)/1, FLOW_SAMPLER_RANDOM_INTERVAL(50)/4.
    let fields = [f(8, 4), f(12, 4), f(48, 1), f(1, 4), f(2, 4)];
    let mut m = MessageBuilder::v9(&hdr(1));
    m.options_template(257, &[f(1, 4)], &[f(48, 1), f(49, 1), f(50, 4)]);
    m.data_raw(257, 1, &[0, 0, 0, 0, 5, 2, 0, 0, 3, 0xe8], 2);
    m.template(258, &fields);
    let rec = FlowRecord { sampler_id: 5, bytes: 100, packets: 2, ..FlowRecord::default() };
    let other = FlowRecord { sampler_id: 6, ..rec };
    m.data(258, &fields, &[rec, other]);
    let (st, s) = decode(&mut Decoder::default(), &m.finish());
    let st = st.unwrap();
    assert_eq!((st.records, st.options_records), (2, 1));
    assert_eq!(s.sampling[0].interval, 1000);
    assert_eq!((s.sampling[0].sampler_id, s.sampling[0].algorithm), (5, 2));
    assert_eq!((s.recs[0].1.sampler_id, s.recs[0].1.sampling_interval), (5, 1000));
    assert_eq!(s.recs[1].1.sampling_interval, 0, "sampler 6 never announced");
}

#[test]
fn data_before_template_is_held_then_replayed() {
    let fields = [f(8, 4), f(12, 4), f(2, 4)];
    let recs = [FlowRecord { packets: 1, ..FlowRecord::default() }, FlowRecord { packets: 2, ..FlowRecord::default() }];
    let mut dec = Decoder::default();
    let mut m = MessageBuilder::ipfix(&hdr(1));
    m.data(256, &fields, &recs);
    let (st, s) = decode(&mut dec, &m.finish());
    let st = st.unwrap();
    assert_eq!((st.records, st.unknown_template_sets), (0, 1));
    assert!(s.recs.is_empty());
    assert_eq!(dec.templates.pending_sets(), 1);
    // The same template id from another domain must not unlock it.
    let mut m = MessageBuilder::ipfix(&NetflowHeader { source_id: 7, ..hdr(2) });
    m.template(256, &fields);
    let (st, _) = decode(&mut dec, &m.finish());
    assert_eq!(st.unwrap().replayed_records, 0);
    let mut m = MessageBuilder::ipfix(&hdr(3));
    m.template(256, &fields);
    let (st, s) = decode(&mut dec, &m.finish());
    let st = st.unwrap();
    assert_eq!((st.records, st.replayed_records), (0, 2));
    assert_eq!(s.recs.iter().map(|(h, r)| (h.sequence, r.packets)).collect::<Vec<_>>(), vec![(1, 1), (1, 2)]);
    assert_eq!(dec.templates.pending_sets(), 0);
}

#[test]
fn pending_buffer_is_bounded() {
    let limits = Limits { max_pending_sets: 2, ..Limits::default() };
    let mut dec = Decoder::new(limits);
    let mut dropped = 0;
    for i in 0..5u16 {
        let mut m = MessageBuilder::v9(&hdr(u32::from(i)));
        m.data_raw(300 + i, 1, &[1, 2, 3, 4], 0);
        dropped += decode(&mut dec, &m.finish()).0.unwrap().pending_dropped;
    }
    assert_eq!((dec.templates.pending_sets(), dropped), (2, 3));
}

#[test]
fn ipfix_withdrawal_and_withdraw_all() {
    let fields = [f(2, 4)];
    let mut dec = Decoder::default();
    let mut m = MessageBuilder::ipfix(&hdr(1));
    m.template(256, &fields).template(257, &fields).options_template(258, &[f(149, 4)], &[f(305, 4)]);
    decode(&mut dec, &m.finish()).0.unwrap();
    assert_eq!(dec.templates.len(), 3);
    let mut m = MessageBuilder::ipfix(&hdr(2));
    m.withdraw(256, false).data_raw(256, 1, &[0, 0, 0, 1], 0).data_raw(257, 1, &[0, 0, 0, 1], 0);
    let st = decode(&mut dec, &m.finish()).0.unwrap();
    assert_eq!((st.templates_withdrawn, st.unknown_template_sets, st.records), (1, 1, 1));
    let mut m = MessageBuilder::ipfix(&hdr(3));
    m.withdraw(2, false);
    let st = decode(&mut dec, &m.finish()).0.unwrap();
    assert_eq!(st.templates_withdrawn, 1);
    assert!(dec.templates.get(EXP, 10, 42, 258).is_some(), "options templates survive an all-templates withdrawal");
    // Refresh: re-sending a template with other fields replaces it.
    let mut m = MessageBuilder::ipfix(&hdr(4));
    m.template(258, &[f(1, 4)]);
    decode(&mut dec, &m.finish()).0.unwrap();
    assert!(!dec.templates.get(EXP, 10, 42, 258).unwrap().options);
}

#[test]
fn template_limits() {
    let mut dec = Decoder::new(Limits { max_templates: 2, max_fields: 3, ..Limits::default() });
    let mut m = MessageBuilder::v9(&hdr(1));
    m.template(256, &[f(1, 4)]).template(257, &[f(1, 4)]).template(258, &[f(1, 4)]);
    assert_eq!(decode(&mut dec, &m.finish()).0.unwrap_err(), NetflowError::TooManyTemplates { max: 2 });
    // Refreshing a known id at the limit is fine.
    let mut m = MessageBuilder::v9(&hdr(2));
    m.template(257, &[f(2, 4)]);
    assert!(decode(&mut dec, &m.finish()).0.is_ok());
    let mut m = MessageBuilder::v9(&hdr(3));
    m.template(256, &[f(1, 4), f(2, 4), f(4, 1), f(5, 1)]);
    assert!(matches!(decode(&mut dec, &m.finish()).0, Err(NetflowError::TooManyFields { fields: 4, max: 3, .. })));
}

/// Every malformed message yields its typed error; none panics.
#[test]
fn malformed_corpus() {
    let v9 = |sets: &[Vec<u8>]| {
        let mut v = vec![0, 9, 0, 1, 0, 0, 0, 1, 0x65, 0x53, 0xf1, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        v.extend(sets.concat());
        v
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("v9 short header", vec![0, 9, 0, 1, 0, 0], "truncated_header"),
        ("ipfix short header", vec![0, 10, 0, 16], "truncated_header"),
        (
            "ipfix length beyond datagram",
            {
                let mut m = ipfix(1, 1, &[]);
                m[3] = 200;
                m
            },
            "bad_message_length",
        ),
        (
            "ipfix length below header",
            {
                let mut m = ipfix(1, 1, &[]);
                m[3] = 8;
                m
            },
            "bad_message_length",
        ),
        ("set length 2", v9(&[vec![1, 0, 0, 2]]), "bad_set_length"),
        ("set length past end", v9(&[vec![1, 0, 0, 40, 0, 0]]), "bad_set_length"),
        ("ipfix trailing bytes", ipfix(1, 1, &[vec![1, 2]]), "bad_set_length"),
        ("template truncated", v9(&[set(0, &[1, 0, 0, 3, 0, 8, 0, 4])]), "truncated_template"),
        ("template zero fields v9", v9(&[set(0, &[1, 0, 0, 0])]), "template_too_short"),
        ("zero-length field", v9(&[set(0, &[1, 0, 0, 1, 0, 8, 0, 0])]), "zero_length_field"),
        ("template id 5", v9(&[set(0, &[0, 5, 0, 1, 0, 8, 0, 4])]), "bad_template_id"),
        ("template too long", v9(&[set(0, &[1, 0, 0, 2, 0, 1, 0xff, 0xf0, 0, 2, 0, 0x20])]), "template_too_long"),
        ("options scope not /4", v9(&[set(1, &[1, 0, 0, 3, 0, 4, 0, 1, 0, 4, 0, 0])]), "bad_options_template"),
        ("options no scope", ipfix(1, 1, &[set(3, &[1, 0, 0, 1, 0, 0, 0, 8, 0, 4])]), "bad_options_template"),
        ("enterprise pen missing", ipfix(1, 1, &[set(2, &[1, 0, 0, 1, 0x80, 1, 0, 4])]), "truncated_template"),
        ("too many fields", v9(&[set(0, &[1, 0, 0x10, 0, 0, 8, 0, 4])]), "too_many_fields"),
        (
            "varlen past record end",
            ipfix(1, 1, &[set(2, &[1, 0, 0, 1, 0, 82, 0xff, 0xff]), set(256, &[10, b'x'])]),
            "truncated_varlen",
        ),
        (
            "varlen long form truncated",
            ipfix(1, 1, &[set(2, &[1, 0, 0, 1, 0, 82, 0xff, 0xff]), set(256, &[255, 0])]),
            "truncated_varlen",
        ),
    ];
    for (name, bytes, reason) in cases {
        let (r, _) = decode(&mut Decoder::default(), &bytes);
        match r {
            Err(e) => assert_eq!(e.reason(), reason, "{name}: {e}"),
            Ok(st) => panic!("{name}: decoded {st:?}"),
        }
        // Every prefix of a malformed message is handled too.
        for n in 0..bytes.len() {
            let _ = decode(&mut Decoder::default(), &bytes[..n]);
        }
    }
}

/// A template whose only field is variable-length: a run of zero-length records must end with
/// the set (each costs at least its length byte), never loop.
#[test]
fn varlen_only_template_terminates() {
    let t = set(2, &[1, 0, 0, 1, 0, 82, 0xff, 0xff]);
    let d = set(256, &[0; 64]);
    let (st, s) = decode(&mut Decoder::default(), &ipfix(1, 1, &[t, d]));
    assert_eq!((st.unwrap().records, s.recs.len()), (64, 64));
}

/// What a restarted collector needs: templates (data and options, v9 and IPFIX, enterprise and
/// variable-length fields) and announced sampling come back from `export` into a new decoder,
/// which then decodes data sets without seeing a template again.
#[test]
fn exported_state_restores_into_a_fresh_decoder() {
    use xacct_wire::netflow::DomainState;
    let fields = [f(8, 4), f(12, 4), f(48, 1), f(1, 4), f(2, 4)];
    let rec = FlowRecord { sampler_id: 5, bytes: 100, packets: 2, ..FlowRecord::default() };
    let mut dec = Decoder::default();
    let mut m = MessageBuilder::v9(&hdr(1));
    m.options_template(257, &[f(1, 4)], &[f(48, 1), f(49, 1), f(50, 4)]);
    m.data_raw(257, 1, &[0, 0, 0, 0, 5, 2, 0, 0, 3, 0xe8], 2);
    m.template(258, &fields);
    decode(&mut dec, &m.finish()).0.unwrap();
    let ent = [f(8, 4), TemplateField { ie: 7, len: 0xffff, enterprise: Some(12345) }, f(2, 4)];
    let mut m = MessageBuilder::ipfix(&NetflowHeader { source_id: 9, ..hdr(1) });
    m.template(256, &ent);
    decode(&mut dec, &m.finish()).0.unwrap();

    let saved: Vec<DomainState> = dec.templates.export();
    assert_eq!(saved.len(), 2);
    assert_eq!((saved[0].version, saved[0].source_id, saved[0].templates.len()), (9, 42, 2));
    assert_eq!((saved[0].templates[0].id, saved[0].templates[0].options, saved[0].templates[0].scope), (257, true, 1));
    assert_eq!(saved[0].sampling.len(), 1);
    assert_eq!(saved[1].templates[0].fields, ent.to_vec());

    let mut fresh = Decoder::default();
    assert_eq!(fresh.templates.restore(&saved), Ok(3));
    assert!(!fresh.templates.has_changes(), "a restore is not a change to write back");
    assert_eq!(fresh.templates.export(), saved);
    let mut m = MessageBuilder::v9(&hdr(2));
    m.data(258, &fields, &[rec]);
    let (st, s) = decode(&mut fresh, &m.finish());
    assert_eq!((st.unwrap().unknown_template_sets, s.recs.len()), (0, 1));
    // The v9 options scope stayed a scope field, and sampler 5's interval was restored.
    assert_eq!((s.recs[0].1.packets, s.recs[0].1.sampling_interval), (2, 1000));
    let mut m = MessageBuilder::ipfix(&NetflowHeader { source_id: 9, ..hdr(2) });
    m.data_raw(256, 1, &[10, 0, 0, 1, 2, b'x', b'y', 0, 0, 0, 7], 0);
    let (st, s) = decode(&mut fresh, &m.finish());
    assert_eq!((st.unwrap().records, s.recs[0].1.packets), (1, 7));
}

#[test]
fn only_real_template_changes_are_reported() {
    let fields = [f(8, 4), f(2, 4)];
    let mut dec = Decoder::default();
    let mut m = MessageBuilder::ipfix(&hdr(1));
    m.template(256, &fields).template(257, &fields);
    decode(&mut dec, &m.finish()).0.unwrap();
    let changed = dec.templates.take_changed();
    assert_eq!((changed.len(), changed[0].templates.len()), (1, 2));
    assert!(!dec.templates.has_changes());
    // A periodic refresh with the same fields changes nothing.
    let mut m = MessageBuilder::ipfix(&hdr(2));
    m.template(256, &fields);
    decode(&mut dec, &m.finish()).0.unwrap();
    assert!(!dec.templates.has_changes());
    // New fields under a known id do.
    let mut m = MessageBuilder::ipfix(&hdr(3));
    m.template(256, &[f(8, 4), f(1, 4)]);
    decode(&mut dec, &m.finish()).0.unwrap();
    assert_eq!(dec.templates.take_changed()[0].templates[0].fields, vec![f(8, 4), f(1, 4)]);
    // Withdrawing everything leaves an empty state: "forget this domain".
    let mut m = MessageBuilder::ipfix(&hdr(4));
    m.withdraw(2, false);
    decode(&mut dec, &m.finish()).0.unwrap();
    let changed = dec.templates.take_changed();
    assert!(changed.len() == 1 && changed[0].is_empty(), "{changed:?}");
    assert!(dec.templates.export().is_empty());
}

#[test]
fn restore_checks_templates_like_the_wire_does() {
    use xacct_wire::netflow::{DomainState, TemplateState};
    let domain = |version, t: TemplateState| DomainState {
        exporter: EXP,
        version,
        source_id: 1,
        templates: vec![t],
        sampling: Vec::new(),
        system_init_ms: None,
    };
    let t = |id, options, scope, fields: Vec<TemplateField>| TemplateState { id, options, scope, fields };
    let mut dec = Decoder::new(Limits { max_fields: 2, ..Limits::default() });
    let cases = [
        (domain(9, t(256, false, 0, vec![f(1, 0)])), NetflowError::ZeroLengthField { template_id: 256, ie: 1 }),
        (domain(10, t(255, false, 0, vec![f(1, 4)])), NetflowError::BadTemplateId(255)),
        (domain(5, t(256, false, 0, vec![f(1, 4)])), NetflowError::BadVersion(5)),
        (domain(9, t(256, true, 0, vec![f(1, 4)])), NetflowError::BadOptionsTemplate { template_id: 256 }),
        (domain(9, t(256, true, 2, vec![f(1, 4)])), NetflowError::BadOptionsTemplate { template_id: 256 }),
        (domain(9, t(256, false, 1, vec![f(1, 4)])), NetflowError::BadOptionsTemplate { template_id: 256 }),
        (
            domain(9, t(256, false, 0, vec![f(1, 4); 3])),
            NetflowError::TooManyFields { template_id: 256, fields: 3, max: 2 },
        ),
    ];
    for (state, want) in cases {
        assert_eq!(dec.templates.restore(std::slice::from_ref(&state)), Err(want), "{state:?}");
    }
    assert!(dec.templates.is_empty());
}
