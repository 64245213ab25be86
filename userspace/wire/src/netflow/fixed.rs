//! The fixed-layout formats: v1, v5, v7 and v8 (every aggregation scheme), as published by
//! Cisco (v8 record layouts cross-checked against the structures other collectors use).

use super::{be16, be32, byte, v4, version, FlowRecord, FlowSink, NetflowError, NetflowHeader};

/// Header lengths and the documented maximum records per datagram.
const V1: (usize, usize, u16) = (16, 48, 24);
const V5: (usize, usize, u16) = (24, 48, 30);
const V7: (usize, usize, u16) = (24, 52, 28);
const V8_HEADER: usize = 28;

/// v8 record length per aggregation scheme (1..=14), 0 = not a scheme.
fn v8_record_len(scheme: u8) -> usize {
    match scheme {
        1 | 2 => 28,   // AS, proto/port
        3 | 4 => 32,   // source prefix, destination prefix
        5 => 40,       // prefix
        6 => 32,       // destination only (router/full-flow family)
        7 => 40,       // source-destination
        8 => 44,       // full flow
        9..=12 => 32,  // AS-ToS, proto/port-ToS, src prefix-ToS, dst prefix-ToS
        13 | 14 => 40, // prefix-ToS, prefix-port-ToS
        _ => 0,
    }
}

/// Decodes a v1, v5, v7 or v8 datagram. The whole datagram is validated before the first
/// record reaches `sink`. Bytes after the last record are ignored (some exporters pad).
pub fn decode_fixed<S: FlowSink + ?Sized>(datagram: &[u8], sink: &mut S) -> Result<NetflowHeader, NetflowError> {
    let ver = version(datagram)?;
    let (hlen, rlen, max) = match ver {
        1 => V1,
        5 => V5,
        7 => V7,
        8 => {
            let scheme = byte(datagram, 22);
            let rlen = v8_record_len(scheme);
            if datagram.len() >= V8_HEADER && rlen == 0 {
                return Err(NetflowError::BadAggregation(scheme));
            }
            // v8 datagrams are capped at ~1500 bytes by exporters; the count is u16 anyway,
            // so bound it by what fits in a datagram of the maximum IPv4 UDP payload.
            (V8_HEADER, rlen.max(1), u16::MAX)
        }
        v => return Err(NetflowError::BadVersion(v)),
    };
    if datagram.len() < hlen {
        return Err(NetflowError::TruncatedHeader { version: ver, len: datagram.len() });
    }
    let h = header(ver, datagram);
    if h.count > max {
        return Err(NetflowError::TooManyRecords { version: ver, count: h.count, max });
    }
    let body = datagram.get(hlen..).unwrap_or(&[]);
    let room = body.len() / rlen;
    if usize::from(h.count) > room {
        return Err(NetflowError::CountMismatch { count: h.count, room });
    }
    for r in body.chunks_exact(rlen).take(usize::from(h.count)) {
        let mut rec = match ver {
            1 => v1(r),
            5 => v5(r, &h),
            7 => v7(r),
            _ => v8(h.aggregation, r),
        };
        rec.engine_type = h.engine_type;
        rec.engine_id = h.engine_id;
        rec.start_ms = h.uptime_to_unix_ms(rec.first_switched);
        rec.end_ms = h.uptime_to_unix_ms(rec.last_switched);
        sink.record(&h, &rec);
    }
    Ok(h)
}

fn header(ver: u16, d: &[u8]) -> NetflowHeader {
    let mut h = NetflowHeader {
        version: ver,
        count: be16(d, 2),
        sys_uptime_ms: be32(d, 4),
        unix_secs: be32(d, 8),
        unix_nsecs: be32(d, 12),
        ..NetflowHeader::default()
    };
    if ver == 1 {
        return h;
    }
    h.sequence = be32(d, 16);
    // v7's bytes 20..24 are "reserved" in Cisco's table; Catalyst exporters put the engine
    // there like v5, so read them the same way (zero when reserved).
    h.engine_type = byte(d, 20);
    h.engine_id = byte(d, 21);
    match ver {
        5 => {
            let s = be16(d, 22);
            h.sampling_interval = s & 0x3fff;
            h.sampling_mode = (s >> 14) as u8;
        }
        8 => {
            h.aggregation = byte(d, 22);
            h.agg_version = byte(d, 23);
        }
        _ => {}
    }
    h
}

/// The 32-byte prefix v1, v5 and v7 records share.
fn common(r: &[u8]) -> FlowRecord {
    FlowRecord {
        src_addr: v4(r, 0),
        dst_addr: v4(r, 4),
        next_hop: v4(r, 8),
        input: u32::from(be16(r, 12)),
        output: u32::from(be16(r, 14)),
        packets: u64::from(be32(r, 16)),
        bytes: u64::from(be32(r, 20)),
        first_switched: be32(r, 24),
        last_switched: be32(r, 28),
        src_port: be16(r, 32),
        dst_port: be16(r, 34),
        ..FlowRecord::default()
    }
}

fn v1(r: &[u8]) -> FlowRecord {
    FlowRecord { proto: byte(r, 38), tos: byte(r, 39), tcp_flags: byte(r, 40), ..common(r) }
}

fn v5(r: &[u8], h: &NetflowHeader) -> FlowRecord {
    FlowRecord {
        tcp_flags: byte(r, 37),
        proto: byte(r, 38),
        tos: byte(r, 39),
        src_as: u32::from(be16(r, 40)),
        dst_as: u32::from(be16(r, 42)),
        src_mask: byte(r, 44),
        dst_mask: byte(r, 45),
        sampling_interval: u32::from(h.sampling_interval),
        sampling_algorithm: h.sampling_mode,
        ..common(r)
    }
}

fn v7(r: &[u8]) -> FlowRecord {
    // Same as v5 up to byte 46; 46..48 are flags/drops and 48..52 the shortcut router
    // address, neither of which has a place in FlowRecord.
    FlowRecord {
        tcp_flags: byte(r, 37),
        proto: byte(r, 38),
        tos: byte(r, 39),
        src_as: u32::from(be16(r, 40)),
        dst_as: u32::from(be16(r, 42)),
        src_mask: byte(r, 44),
        dst_mask: byte(r, 45),
        ..common(r)
    }
}

/// Counters + times at the head of schemes 1–5 and 9–14: flows, packets, octets, first, last.
fn v8_counted(r: &[u8]) -> FlowRecord {
    FlowRecord {
        flows: u64::from(be32(r, 0)),
        packets: u64::from(be32(r, 4)),
        bytes: u64::from(be32(r, 8)),
        first_switched: be32(r, 12),
        last_switched: be32(r, 16),
        ..FlowRecord::default()
    }
}

/// Packets, octets, first, last at offset `o` for the router schemes 6–8 (one flow each).
fn v8_router(r: &[u8], o: usize) -> FlowRecord {
    FlowRecord {
        packets: u64::from(be32(r, o)),
        bytes: u64::from(be32(r, o + 4)),
        first_switched: be32(r, o + 8),
        last_switched: be32(r, o + 12),
        ..FlowRecord::default()
    }
}

fn v8(scheme: u8, r: &[u8]) -> FlowRecord {
    let w = |o| u32::from(be16(r, o));
    match scheme {
        1 => FlowRecord { src_as: w(20), dst_as: w(22), input: w(24), output: w(26), ..v8_counted(r) },
        2 => FlowRecord { proto: byte(r, 20), src_port: be16(r, 24), dst_port: be16(r, 26), ..v8_counted(r) },
        3 => FlowRecord { src_addr: v4(r, 20), src_mask: byte(r, 24), src_as: w(26), input: w(28), ..v8_counted(r) },
        4 => FlowRecord { dst_addr: v4(r, 20), dst_mask: byte(r, 24), dst_as: w(26), output: w(28), ..v8_counted(r) },
        5 => FlowRecord {
            src_addr: v4(r, 20),
            dst_addr: v4(r, 24),
            dst_mask: byte(r, 28),
            src_mask: byte(r, 29),
            src_as: w(32),
            dst_as: w(34),
            input: w(36),
            output: w(38),
            ..v8_counted(r)
        },
        6 => FlowRecord { dst_addr: v4(r, 0), output: w(20), tos: byte(r, 22), ..v8_router(r, 4) },
        7 => FlowRecord {
            dst_addr: v4(r, 0),
            src_addr: v4(r, 4),
            output: w(24),
            input: w(26),
            tos: byte(r, 28),
            ..v8_router(r, 8)
        },
        8 => FlowRecord {
            dst_addr: v4(r, 0),
            src_addr: v4(r, 4),
            dst_port: be16(r, 8),
            src_port: be16(r, 10),
            output: w(28),
            input: w(30),
            tos: byte(r, 32),
            proto: byte(r, 33),
            ..v8_router(r, 12)
        },
        9 => {
            FlowRecord { src_as: w(20), dst_as: w(22), input: w(24), output: w(26), tos: byte(r, 28), ..v8_counted(r) }
        }
        10 => FlowRecord {
            proto: byte(r, 20),
            tos: byte(r, 21),
            src_port: be16(r, 24),
            dst_port: be16(r, 26),
            input: w(28),
            output: w(30),
            ..v8_counted(r)
        },
        11 => FlowRecord {
            src_addr: v4(r, 20),
            src_mask: byte(r, 24),
            tos: byte(r, 25),
            src_as: w(26),
            input: w(28),
            ..v8_counted(r)
        },
        12 => FlowRecord {
            dst_addr: v4(r, 20),
            dst_mask: byte(r, 24),
            tos: byte(r, 25),
            dst_as: w(26),
            output: w(28),
            ..v8_counted(r)
        },
        13 => FlowRecord {
            src_addr: v4(r, 20),
            dst_addr: v4(r, 24),
            dst_mask: byte(r, 28),
            src_mask: byte(r, 29),
            tos: byte(r, 30),
            src_as: w(32),
            dst_as: w(34),
            input: w(36),
            output: w(38),
            ..v8_counted(r)
        },
        14 => FlowRecord {
            src_addr: v4(r, 20),
            dst_addr: v4(r, 24),
            dst_mask: byte(r, 28),
            src_mask: byte(r, 29),
            tos: byte(r, 30),
            proto: byte(r, 31),
            src_port: be16(r, 32),
            dst_port: be16(r, 34),
            input: w(36),
            output: w(38),
            ..v8_counted(r)
        },
        // Unreachable: decode_fixed rejects unknown schemes before reading records.
        _ => FlowRecord::default(),
    }
}
