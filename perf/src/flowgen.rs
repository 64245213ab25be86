//! Deterministic NetFlow v5, v9, IPFIX and sFlow v5 datagrams made with the wire crate's own
//! encoders, for the collector replayer and capacity harness; and pcap files of UDP datagrams
//! (ours, or captured from real exporters with tcpdump) read back as payloads.
//!
//! Every flow record carries `packets = 1` and every sFlow sample stands for one packet (no
//! renormalisation), so the sum of a collector's PACKETS column is the number of records or
//! samples it accounted.

use anyhow::{bail, Context, Result};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use xacct_wire::netflow::{encode_v5, FlowRecord, MessageBuilder, NetflowHeader, TemplateField};
use xacct_wire::sflow::{DatagramBuilder, FlowSampleSpec};

use crate::traffic::{build, Frame, FrameSpec, Rng, L3, L4};

/// Which export protocol to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    V5,
    V9,
    Ipfix,
    Sflow,
}

impl Proto {
    pub fn parse(s: &str) -> Result<Proto> {
        Ok(match s {
            "v5" | "5" => Proto::V5,
            "v9" | "9" => Proto::V9,
            "ipfix" | "v10" | "10" => Proto::Ipfix,
            "sflow" | "sflow5" => Proto::Sflow,
            _ => bail!("unknown protocol {s} (v5|v9|ipfix|sflow)"),
        })
    }
}

/// The one flow of marker datagrams (`make(.., marker: true)`): capacity scripts send it after
/// a run to push records a collector still buffers, and leave its entry out of the sums.
pub const MARKER: (Ipv4Addr, Ipv4Addr, u16, u16, u8) =
    (Ipv4Addr::new(203, 0, 113, 1), Ipv4Addr::new(203, 0, 113, 2), 9, 9, 17);

type Key = (IpAddr, IpAddr, u16, u16, u8);

fn key(i: u64, v6: bool, marker: bool) -> Key {
    if marker {
        let (s, d, sp, dp, p) = MARKER;
        (IpAddr::V4(s), IpAddr::V4(d), sp, dp, p)
    } else {
        flow_key(i, v6)
    }
}

/// The flow mix: `flows` distinct keys, 1 in 8 IPv6 where the format carries it (not v5);
/// TCP 60 %, UDP 30 %, ICMP 10 %.
fn flow_key(i: u64, v6: bool) -> Key {
    let mut r = Rng::new(i.wrapping_add(0x5eed));
    let proto = match r.below(10) {
        0..=5 => 6,
        6..=8 => 17,
        _ => 1,
    };
    let (sport, dport) = match proto {
        6 => (1024 + r.below(60000) as u16, [80, 443, 22, 25, 8080][r.below(5) as usize]),
        17 => (1024 + r.below(60000) as u16, [53, 123, 443, 4789][r.below(4) as usize]),
        _ => (0, 0x0800),
    };
    // The index is spread over the addresses so that every key is distinct.
    let (src, dst) = if v6 && i.is_multiple_of(8) {
        let s = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, (i >> 16) as u16, i as u16);
        let d = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, r.below(4096) as u16);
        (IpAddr::V6(s), IpAddr::V6(d))
    } else {
        let s = Ipv4Addr::from(0x0a00_0000 | (i as u32 & 0x00ff_ffff));
        let d = Ipv4Addr::from(0xc0a8_0000 | (r.below(4096) as u32));
        (IpAddr::V4(s), IpAddr::V4(d))
    };
    (src, dst, sport, dport, proto)
}

fn record(k: Key, rng: &mut Rng, uptime: u32) -> FlowRecord {
    let (src_addr, dst_addr, src_port, dst_port, proto) = k;
    FlowRecord {
        src_addr,
        dst_addr,
        src_port,
        dst_port,
        proto,
        tcp_flags: if proto == 6 { 0x1b } else { 0 },
        input: 1 + rng.below(48) as u32,
        output: 1 + rng.below(48) as u32,
        packets: 1,
        bytes: 40 + rng.below(1460),
        first_switched: uptime.saturating_sub(30_000 + rng.below(30_000) as u32),
        last_switched: uptime.saturating_sub(rng.below(1000) as u32),
        start_ms: 1_699_999_970_000,
        end_ms: 1_699_999_999_000,
        ..FlowRecord::default()
    }
}

const UPTIME: u32 = 100_000_000;
const UNIX: u32 = 1_700_000_000;

fn v4_fields(ipfix: bool) -> Vec<TemplateField> {
    let f = TemplateField::iana;
    let mut v =
        vec![f(8, 4), f(12, 4), f(7, 2), f(11, 2), f(4, 1), f(5, 1), f(6, 1), f(10, 4), f(14, 4), f(2, 8), f(1, 8)];
    // v9 exporters send uptimes; IPFIX ones absolute times.
    v.extend(if ipfix { [f(152, 8), f(153, 8)] } else { [f(22, 4), f(21, 4)] });
    v
}

fn v6_fields(ipfix: bool) -> Vec<TemplateField> {
    let mut v = v4_fields(ipfix);
    v[0] = TemplateField::iana(27, 16);
    v[1] = TemplateField::iana(28, 16);
    v
}

/// Flow records per v9/IPFIX datagram (about 1,250 bytes: under a 1,500-byte MTU).
const NF_RECORDS: usize = 24;
/// Templates are re-sent every this many datagrams, as exporters refresh them.
const TEMPLATE_EVERY: usize = 64;
/// sFlow samples per datagram (128-byte headers: about 1,400 bytes).
const SF_SAMPLES: usize = 7;

/// `records` flow records (or sFlow samples) over `flows` distinct keys, drawn at random with
/// `seed`, as datagrams of `proto`; with `marker`, every record is the [`MARKER`] flow.
pub fn make(proto: Proto, records: usize, flows: u64, seed: u64, marker: bool) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut done = 0usize;
    let mut seq = 0u32;
    while done < records {
        let n = match proto {
            Proto::V5 => 30,
            Proto::V9 | Proto::Ipfix => NF_RECORDS,
            Proto::Sflow => SF_SAMPLES,
        }
        .min(records - done);
        let keys: Vec<u64> = (0..n).map(|_| rng.below(flows.max(1))).collect();
        let d = match proto {
            Proto::V5 => {
                let h = NetflowHeader {
                    version: 5,
                    sys_uptime_ms: UPTIME,
                    unix_secs: UNIX,
                    sequence: seq,
                    ..NetflowHeader::default()
                };
                let recs: Vec<FlowRecord> =
                    keys.iter().map(|&k| record(key(k, false, marker), &mut rng, UPTIME)).collect();
                seq = seq.wrapping_add(n as u32);
                encode_v5(&h, &recs)
            }
            Proto::V9 | Proto::Ipfix => {
                let ipfix = proto == Proto::Ipfix;
                let h = NetflowHeader {
                    version: if ipfix { 10 } else { 9 },
                    sys_uptime_ms: UPTIME,
                    unix_secs: UNIX,
                    sequence: seq,
                    source_id: 1,
                    ..NetflowHeader::default()
                };
                let mut m = if ipfix { MessageBuilder::ipfix(&h) } else { MessageBuilder::v9(&h) };
                let (f4, f6) = (v4_fields(ipfix), v6_fields(ipfix));
                if out.len() % TEMPLATE_EVERY == 0 {
                    m.template(256, &f4).template(257, &f6);
                }
                let recs: Vec<FlowRecord> =
                    keys.iter().map(|&k| record(key(k, true, marker), &mut rng, UPTIME)).collect();
                let (v4, v6): (Vec<FlowRecord>, Vec<FlowRecord>) = recs.into_iter().partition(|r| r.src_addr.is_ipv4());
                if !v4.is_empty() {
                    m.data(256, &f4, &v4);
                }
                if !v6.is_empty() {
                    m.data(257, &f6, &v6);
                }
                // v9 counts datagrams, IPFIX data records.
                seq = seq.wrapping_add(if ipfix { n as u32 } else { 1 });
                m.finish()
            }
            Proto::Sflow => {
                let mut b = DatagramBuilder::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 0, seq, UPTIME);
                for (j, &k) in keys.iter().enumerate() {
                    let frame = sample_frame(key(k, true, marker), &mut rng);
                    let header = frame.get(..frame.len().min(128)).unwrap_or(&frame);
                    let sequence = (done + j) as u32;
                    b.flow_sample(&FlowSampleSpec {
                        sampling_rate: 1000,
                        sample_pool: sequence.wrapping_mul(1000),
                        frame_length: frame.len() as u32 + 4,
                        ..FlowSampleSpec::ethernet(sequence, header)
                    });
                }
                seq = seq.wrapping_add(1);
                b.finish()
            }
        };
        out.push(d);
        done += n;
    }
    out
}

fn sample_frame(k: Key, rng: &mut Rng) -> Vec<u8> {
    let (src, dst, sport, dport, proto) = k;
    let l3 = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => L3::V4 { src: s.octets(), dst: d.octets(), tos: 0 },
        (IpAddr::V6(s), IpAddr::V6(d)) => L3::V6 { src: s.octets(), dst: d.octets(), tclass: 0 },
        _ => L3::V4 { src: [10, 0, 0, 1], dst: [10, 0, 0, 2], tos: 0 },
    };
    let l4 = match proto {
        6 => L4::Tcp { sport, dport, flags: 0x10 },
        17 => L4::Udp { sport, dport },
        _ => L4::Icmp { ty: 8, code: 0 },
    };
    let payload = [0usize, 100, 500, 1400][rng.below(4) as usize];
    build(&FrameSpec { src_mac: [2, 0, 0, 0, 0, 1], dst_mac: [2, 0, 0, 0, 0, 2], vlans: vec![], l3, l4, payload })
}

/// Writes datagrams as Ethernet/IPv4/UDP frames from 127.0.0.1:`sport` to 127.0.0.1:`dport`.
pub fn write_udp_pcap(path: &Path, dgrams: &[Vec<u8>], sport: u16, dport: u16) -> Result<()> {
    let frames: Vec<Frame> = dgrams
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let b = PacketBuilder::ethernet2([0; 6], [0; 6]).ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64).udp(sport, dport);
            let mut data = Vec::with_capacity(b.size(d.len()));
            // Writing into a Vec cannot fail; a datagram too large for UDP is refused.
            b.write(&mut data, d).map(|_| Frame {
                ts_sec: i64::from(UNIX) + (i / 10_000) as i64,
                ts_usec: (i % 10_000) as i64,
                data,
            })
        })
        .collect::<Result<_, _>>()
        .context("building UDP frames")?;
    crate::traffic::write_pcap(path, &frames)
}

/// The UDP payloads of a pcap file (Ethernet, Linux cooked or raw IP), in order. Only whole
/// datagrams: truncated captures and IP fragments are refused, since replaying part of a
/// datagram would measure something else.
pub fn read_udp_pcap(path: &Path) -> Result<Vec<Vec<u8>>> {
    let mut cap = pcap::Capture::from_file(path).with_context(|| format!("open {}", path.display()))?;
    let link = cap.get_datalink();
    let mut out = Vec::new();
    while let Ok(p) = cap.next_packet() {
        if p.header.caplen < p.header.len {
            bail!("{}: packet {} truncated by the capture (snaplen)", path.display(), out.len() + 1);
        }
        let sliced = match link {
            pcap::Linktype::ETHERNET => SlicedPacket::from_ethernet(p.data),
            pcap::Linktype::LINUX_SLL => SlicedPacket::from_linux_sll(p.data),
            pcap::Linktype(12) | pcap::Linktype(101) => SlicedPacket::from_ip(p.data),
            l => bail!("{}: link type {l:?} not supported", path.display()),
        };
        let s = sliced.with_context(|| format!("{}: packet {}", path.display(), out.len() + 1))?;
        if let Some(NetSlice::Ipv4(v4)) = &s.net {
            if v4.is_payload_fragmented() {
                bail!("{}: IP fragments are not supported", path.display());
            }
        }
        if let Some(TransportSlice::Udp(u)) = s.transport {
            out.push(u.payload().to_vec());
        }
    }
    Ok(out)
}
