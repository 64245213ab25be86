//! Golden tests for the fixed NetFlow formats (v1, v5, v7, v8), each datagram written byte by
//! byte from the published layouts with the expected values worked out by hand.

use std::net::{IpAddr, Ipv4Addr};
use xacct_wire::netflow::{decode_fixed, encode_v5, FlowRecord, NetflowError, NetflowHeader};

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn collect(d: &[u8]) -> Result<(NetflowHeader, Vec<FlowRecord>), NetflowError> {
    let mut v = Vec::new();
    let h = decode_fixed(d, &mut |_: &NetflowHeader, r: &FlowRecord| v.push(*r))?;
    Ok((h, v))
}

/// uptime 1_000_000 ms, unix 1_700_000_000.5 s
const CLOCK: [u8; 12] = [0x00, 0x0f, 0x42, 0x40, 0x65, 0x53, 0xf1, 0x00, 0x1d, 0xcd, 0x65, 0x00];
const EXPORT_MS: u64 = 1_700_000_000_500;

/// srcaddr 10.0.0.1, dstaddr 192.0.2.7, nexthop 10.0.0.254, input 3, output 4, 10 packets,
/// 1500 bytes, first 990_000, last 999_000, ports 40000 -> 443: the 32 bytes v1/v5/v7 share.
fn common() -> Vec<u8> {
    vec![
        10, 0, 0, 1, 192, 0, 2, 7, 10, 0, 0, 254, 0, 3, 0, 4, //
        0, 0, 0, 10, 0, 0, 0x05, 0xdc, 0x00, 0x0f, 0x1b, 0x30, 0x00, 0x0f, 0x3e, 0x58, //
        0x9c, 0x40, 0x01, 0xbb,
    ]
}

fn check_common(r: &FlowRecord) {
    assert_eq!(r.src_addr, ip(10, 0, 0, 1));
    assert_eq!(r.dst_addr, ip(192, 0, 2, 7));
    assert_eq!(r.next_hop, ip(10, 0, 0, 254));
    assert_eq!((r.input, r.output), (3, 4));
    assert_eq!((r.packets, r.bytes, r.flows), (10, 1500, 1));
    assert_eq!((r.first_switched, r.last_switched), (990_000, 999_000));
    assert_eq!(r.start_ms, EXPORT_MS - 10_000);
    assert_eq!(r.end_ms, EXPORT_MS - 1_000);
    assert_eq!((r.src_port, r.dst_port), (40000, 443));
}

#[test]
fn v1_golden() {
    let mut d = vec![0, 1, 0, 1];
    d.extend_from_slice(&CLOCK);
    d.extend(common());
    d.extend_from_slice(&[0, 0, 6, 0x10, 0x1b, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(d.len(), 16 + 48);
    let (h, v) = collect(&d).unwrap();
    assert_eq!((h.version, h.count, h.sys_uptime_ms, h.unix_secs), (1, 1, 1_000_000, 1_700_000_000));
    assert_eq!(v.len(), 1);
    check_common(&v[0]);
    assert_eq!((v[0].proto, v[0].tos, v[0].tcp_flags), (6, 0x10, 0x1b));
    assert_eq!((v[0].src_as, v[0].src_mask), (0, 0));
}

fn v5_datagram() -> Vec<u8> {
    let mut d = vec![0, 5, 0, 1];
    d.extend_from_slice(&CLOCK);
    // sequence 77, engine 1/2, sampling mode 1 interval 100
    d.extend_from_slice(&[0, 0, 0, 77, 1, 2, 0x40, 100]);
    d.extend(common());
    // pad, tcp_flags 0x12, proto 6, tos 0, src_as 64512, dst_as 65001, masks 24/16, pad
    d.extend_from_slice(&[0, 0x12, 6, 0, 0xfc, 0x00, 0xfd, 0xe9, 24, 16, 0, 0]);
    d
}

#[test]
fn v5_golden() {
    let d = v5_datagram();
    assert_eq!(d.len(), 24 + 48);
    let (h, v) = collect(&d).unwrap();
    assert_eq!((h.version, h.sequence, h.engine_type, h.engine_id), (5, 77, 1, 2));
    assert_eq!((h.sampling_mode, h.sampling_interval), (1, 100));
    let r = &v[0];
    check_common(r);
    assert_eq!((r.tcp_flags, r.proto, r.tos), (0x12, 6, 0));
    assert_eq!((r.src_as, r.dst_as, r.src_mask, r.dst_mask), (64512, 65001, 24, 16));
    assert_eq!((r.engine_type, r.engine_id, r.sampling_interval, r.sampling_algorithm), (1, 2, 100, 1));
}

#[test]
fn v5_encode_roundtrip_is_byte_exact() {
    let d = v5_datagram();
    let (h, v) = collect(&d).unwrap();
    assert_eq!(encode_v5(&h, &v), d);
}

#[test]
fn v7_golden() {
    let mut d = vec![0, 7, 0, 1];
    d.extend_from_slice(&CLOCK);
    d.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 0]); // sequence 256, reserved
    d.extend(common());
    // flags, tcp_flags 0x02, proto 17, tos 0xb8, src_as 1, dst_as 2, masks 8/32, drops, router_sc
    d.extend_from_slice(&[0, 0x02, 17, 0xb8, 0, 1, 0, 2, 8, 32, 0, 0, 10, 9, 9, 9]);
    assert_eq!(d.len(), 24 + 52);
    let (h, v) = collect(&d).unwrap();
    assert_eq!((h.version, h.sequence), (7, 256));
    check_common(&v[0]);
    assert_eq!((v[0].tcp_flags, v[0].proto, v[0].tos), (0x02, 17, 0xb8));
    assert_eq!((v[0].src_as, v[0].dst_as, v[0].src_mask, v[0].dst_mask), (1, 2, 8, 32));
}

fn v8(scheme: u8, rec: &[u8]) -> FlowRecord {
    let mut d = vec![0, 8, 0, 1];
    d.extend_from_slice(&CLOCK);
    d.extend_from_slice(&[0, 0, 0, 5, 3, 4, scheme, 2, 0, 0, 0, 0]);
    d.extend_from_slice(rec);
    let (h, v) = collect(&d).unwrap_or_else(|e| panic!("scheme {scheme}: {e}"));
    assert_eq!((h.aggregation, h.agg_version, h.engine_type, h.engine_id), (scheme, 2, 3, 4));
    assert_eq!(v.len(), 1);
    // A record one byte short must be rejected, not read past its end.
    let short = &d[..d.len() - 1];
    assert!(matches!(collect(short), Err(NetflowError::CountMismatch { count: 1, room: 0 })), "scheme {scheme}");
    v[0]
}

/// flows 7, packets 100, bytes 64000, first 990000, last 999000
const COUNTED: [u8; 20] = [0, 0, 0, 7, 0, 0, 0, 100, 0, 0, 0xfa, 0, 0, 0x0f, 0x1b, 0x30, 0, 0x0f, 0x3e, 0x58];

fn counted(rest: &[u8]) -> Vec<u8> {
    let mut r = COUNTED.to_vec();
    r.extend_from_slice(rest);
    r
}

fn check_counted(r: &FlowRecord) {
    assert_eq!((r.flows, r.packets, r.bytes), (7, 100, 64000));
    assert_eq!((r.start_ms, r.end_ms), (EXPORT_MS - 10_000, EXPORT_MS - 1_000));
}

#[test]
fn v8_as() {
    let r = v8(1, &counted(&[0, 10, 0, 20, 0, 1, 0, 2]));
    check_counted(&r);
    assert_eq!((r.src_as, r.dst_as, r.input, r.output), (10, 20, 1, 2));
}

#[test]
fn v8_proto_port() {
    let r = v8(2, &counted(&[17, 0, 0, 0, 0, 53, 0x04, 0x00]));
    check_counted(&r);
    assert_eq!((r.proto, r.src_port, r.dst_port), (17, 53, 1024));
}

#[test]
fn v8_source_prefix() {
    let r = v8(3, &counted(&[192, 0, 2, 0, 24, 0, 0, 10, 0, 5, 0, 0]));
    check_counted(&r);
    assert_eq!((r.src_addr, r.src_mask, r.src_as, r.input), (ip(192, 0, 2, 0), 24, 10, 5));
    assert_eq!(r.dst_addr, ip(0, 0, 0, 0));
}

#[test]
fn v8_destination_prefix() {
    let r = v8(4, &counted(&[198, 51, 100, 0, 22, 0, 0, 11, 0, 6, 0, 0]));
    check_counted(&r);
    assert_eq!((r.dst_addr, r.dst_mask, r.dst_as, r.output), (ip(198, 51, 100, 0), 22, 11, 6));
}

#[test]
fn v8_prefix() {
    let r = v8(5, &counted(&[10, 1, 0, 0, 10, 2, 0, 0, 24, 16, 0, 0, 0, 1, 0, 2, 0, 3, 0, 4]));
    check_counted(&r);
    assert_eq!((r.src_addr, r.dst_addr), (ip(10, 1, 0, 0), ip(10, 2, 0, 0)));
    assert_eq!((r.dst_mask, r.src_mask), (24, 16));
    assert_eq!((r.src_as, r.dst_as, r.input, r.output), (1, 2, 3, 4));
}

/// packets 100, bytes 64000, first, last (the router schemes have no flow count)
const ROUTER: [u8; 16] = [0, 0, 0, 100, 0, 0, 0xfa, 0, 0, 0x0f, 0x1b, 0x30, 0, 0x0f, 0x3e, 0x58];

#[test]
fn v8_destination_only() {
    let mut rec = vec![10, 0, 0, 9];
    rec.extend_from_slice(&ROUTER);
    rec.extend_from_slice(&[0, 7, 0x20, 0x28, 0, 0, 0, 1, 10, 0, 0, 254]);
    let r = v8(6, &rec);
    assert_eq!((r.flows, r.packets, r.bytes, r.start_ms), (1, 100, 64000, EXPORT_MS - 10_000));
    assert_eq!((r.dst_addr, r.output, r.tos), (ip(10, 0, 0, 9), 7, 0x20));
}

#[test]
fn v8_source_destination() {
    let mut rec = vec![10, 0, 0, 9, 10, 0, 0, 8];
    rec.extend_from_slice(&ROUTER);
    rec.extend_from_slice(&[0, 7, 0, 8, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let r = v8(7, &rec);
    assert_eq!((r.packets, r.bytes), (100, 64000));
    assert_eq!((r.dst_addr, r.src_addr, r.output, r.input, r.tos), (ip(10, 0, 0, 9), ip(10, 0, 0, 8), 7, 8, 0x20));
}

#[test]
fn v8_full_flow() {
    let mut rec = vec![10, 0, 0, 9, 10, 0, 0, 8, 0, 80, 0x30, 0x39];
    rec.extend_from_slice(&ROUTER);
    rec.extend_from_slice(&[0, 7, 0, 8, 0x20, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let r = v8(8, &rec);
    assert_eq!((r.packets, r.bytes, r.end_ms), (100, 64000, EXPORT_MS - 1_000));
    assert_eq!((r.dst_addr, r.src_addr, r.dst_port, r.src_port), (ip(10, 0, 0, 9), ip(10, 0, 0, 8), 80, 12345));
    assert_eq!((r.output, r.input, r.tos, r.proto), (7, 8, 0x20, 6));
}

#[test]
fn v8_as_tos() {
    let r = v8(9, &counted(&[0, 10, 0, 20, 0, 1, 0, 2, 0x48, 0, 0, 0]));
    check_counted(&r);
    assert_eq!((r.src_as, r.dst_as, r.input, r.output, r.tos), (10, 20, 1, 2, 0x48));
}

#[test]
fn v8_proto_port_tos() {
    let r = v8(10, &counted(&[6, 0x48, 0, 0, 0, 22, 0xc0, 0x00, 0, 1, 0, 2]));
    check_counted(&r);
    assert_eq!((r.proto, r.tos, r.src_port, r.dst_port, r.input, r.output), (6, 0x48, 22, 49152, 1, 2));
}

#[test]
fn v8_source_prefix_tos() {
    let r = v8(11, &counted(&[192, 0, 2, 0, 24, 0x48, 0, 10, 0, 5, 0, 0]));
    check_counted(&r);
    assert_eq!((r.src_addr, r.src_mask, r.tos, r.src_as, r.input), (ip(192, 0, 2, 0), 24, 0x48, 10, 5));
}

#[test]
fn v8_destination_prefix_tos() {
    let r = v8(12, &counted(&[198, 51, 100, 0, 22, 0x48, 0, 11, 0, 6, 0, 0]));
    check_counted(&r);
    assert_eq!((r.dst_addr, r.dst_mask, r.tos, r.dst_as, r.output), (ip(198, 51, 100, 0), 22, 0x48, 11, 6));
}

#[test]
fn v8_prefix_tos() {
    let r = v8(13, &counted(&[10, 1, 0, 0, 10, 2, 0, 0, 24, 16, 0x48, 0, 0, 1, 0, 2, 0, 3, 0, 4]));
    check_counted(&r);
    assert_eq!(
        (r.src_addr, r.dst_addr, r.dst_mask, r.src_mask, r.tos),
        (ip(10, 1, 0, 0), ip(10, 2, 0, 0), 24, 16, 0x48)
    );
    assert_eq!((r.src_as, r.dst_as, r.input, r.output), (1, 2, 3, 4));
}

#[test]
fn v8_prefix_port_tos() {
    let r = v8(14, &counted(&[10, 1, 0, 0, 10, 2, 0, 0, 24, 16, 0x48, 17, 0, 53, 0, 54, 0, 3, 0, 4]));
    check_counted(&r);
    assert_eq!((r.src_addr, r.dst_addr, r.dst_mask, r.src_mask), (ip(10, 1, 0, 0), ip(10, 2, 0, 0), 24, 16));
    assert_eq!((r.tos, r.proto, r.src_port, r.dst_port, r.input, r.output), (0x48, 17, 53, 54, 3, 4));
}

#[test]
fn fixed_malformed_give_typed_errors() {
    let v5 = v5_datagram();
    assert_eq!(collect(&[]).unwrap_err(), NetflowError::Empty);
    assert_eq!(collect(&[0, 6, 0, 0]).unwrap_err(), NetflowError::BadVersion(6));
    assert!(matches!(collect(&v5[..20]), Err(NetflowError::TruncatedHeader { version: 5, len: 20 })));
    assert!(matches!(collect(&v5[..60]), Err(NetflowError::CountMismatch { count: 1, room: 0 })));
    let mut many = v5.clone();
    many[3] = 31;
    assert!(matches!(collect(&many), Err(NetflowError::TooManyRecords { version: 5, count: 31, max: 30 })));
    let mut v8 = vec![0, 8, 0, 0];
    v8.extend_from_slice(&CLOCK);
    v8.extend_from_slice(&[0, 0, 0, 0, 0, 0, 15, 2, 0, 0, 0, 0]);
    assert_eq!(collect(&v8).unwrap_err(), NetflowError::BadAggregation(15));
    // Trailing bytes after the counted records are tolerated (exporters pad).
    let mut padded = v5.clone();
    padded.extend_from_slice(&[0; 7]);
    assert_eq!(collect(&padded).unwrap().1.len(), 1);
}
