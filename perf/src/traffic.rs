//! Deterministic traffic mixes. A seed gives the same frames every time, so pmacctd and xacctd
//! can be compared on identical input and perf runs are repeatable.

use anyhow::{Context, Result};
use etherparse::{IpNumber, Ipv4Header, PacketBuilder};
use std::path::Path;

/// Layer 4 of a frame to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Tcp { sport: u16, dport: u16, flags: u8 },
    Udp { sport: u16, dport: u16 },
    Icmp { ty: u8, code: u8 },
}

/// Network layer of a frame to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3 {
    V4 { src: [u8; 4], dst: [u8; 4], tos: u8 },
    V6 { src: [u8; 16], dst: [u8; 16], tclass: u8 },
}

/// Everything needed to build one Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSpec {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// 0, 1 or 2 VLAN ids (outer first).
    pub vlans: Vec<u16>,
    pub l3: L3,
    pub l4: L4,
    pub payload: usize,
}

/// A captured frame with its timestamp (seconds, microseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub ts_sec: i64,
    pub ts_usec: i64,
    pub data: Vec<u8>,
}

/// Builds the frame bytes for `s`. Frames shorter than Ethernet's 60-byte minimum are padded
/// (padding is not part of the IP length, as on a real wire).
pub fn build(s: &FrameSpec) -> Vec<u8> {
    // Zero payload: pmacctd 1.7.7 reads "TCP flags" from the payload of later TCP fragments and
    // ORs them into tcpflags; zeros keep that defect from showing in comparisons (xacct gives
    // later fragments flags 0; see userspace/wire's fragment tests).
    let payload = vec![0u8; s.payload];
    let eth = PacketBuilder::ethernet2(s.src_mac, s.dst_mac);
    let mut out = Vec::with_capacity(64 + s.payload);
    macro_rules! finish {
        ($ip:expr) => {{
            let ip = $ip;
            match s.l4 {
                L4::Tcp { sport, dport, flags } => {
                    let mut b = ip.tcp(sport, dport, 1000, 65535);
                    if flags & 0x01 != 0 {
                        b = b.fin();
                    }
                    if flags & 0x02 != 0 {
                        b = b.syn();
                    }
                    if flags & 0x04 != 0 {
                        b = b.rst();
                    }
                    if flags & 0x08 != 0 {
                        b = b.psh();
                    }
                    if flags & 0x10 != 0 {
                        b = b.ack(1);
                    }
                    if flags & 0x20 != 0 {
                        b = b.urg(0);
                    }
                    b.write(&mut out, &payload).expect("write to Vec");
                }
                L4::Udp { sport, dport } => ip.udp(sport, dport).write(&mut out, &payload).expect("write to Vec"),
                L4::Icmp { ty, code } => match s.l3 {
                    L3::V4 { .. } => ip.icmpv4_raw(ty, code, [0; 4]).write(&mut out, &payload).expect("write to Vec"),
                    L3::V6 { .. } => ip.icmpv6_raw(ty, code, [0; 4]).write(&mut out, &payload).expect("write to Vec"),
                },
            }
        }};
    }
    macro_rules! l3 {
        ($l2:expr) => {{
            match s.l3 {
                L3::V4 { src, dst, tos } => {
                    // Built as a header (not `.ipv4()`) because the builder has no TOS setter.
                    let mut h = Ipv4Header::new(0, 64, IpNumber(0), src, dst).expect("valid v4 header");
                    h.dscp = etherparse::IpDscp::try_new(tos >> 2).expect("6-bit dscp");
                    h.ecn = etherparse::IpEcn::try_new(tos & 3).expect("2-bit ecn");
                    finish!($l2.ip(etherparse::IpHeaders::Ipv4(h, Default::default())))
                }
                L3::V6 { src, dst, tclass } => {
                    let _ = tclass;
                    finish!($l2.ipv6(src, dst, 64))
                }
            }
        }};
    }
    match s.vlans.as_slice() {
        [] => l3!(eth),
        [v] => l3!(eth.single_vlan(etherparse::VlanId::try_new(*v).expect("12-bit vlan"))),
        [o, i, ..] => l3!(eth.double_vlan(
            etherparse::VlanId::try_new(*o).expect("12-bit vlan"),
            etherparse::VlanId::try_new(*i).expect("12-bit vlan")
        )),
    }
    if s.vlans.len() >= 2 {
        // etherparse writes 802.1ad (0x88a8) as the outer TPID; QinQ in the field is mostly
        // 0x8100/0x8100, which is also the only form pmacctd 1.7.7 accounts.
        out[12..14].copy_from_slice(&[0x81, 0x00]);
    }
    if out.len() < 60 {
        out.resize(60, 0);
    }
    out
}

/// An ARP request frame (non-IP traffic).
pub fn arp(src_mac: [u8; 6], sip: [u8; 4], tip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&sip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tip);
    f.resize(60, 0);
    f
}

/// Splits a v4 UDP/TCP frame's IP payload into two fragments (first with the L4 header).
pub fn fragment_v4(frame: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let eth = 14;
    if frame.len() < eth + 20 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ihl = ((frame[eth] & 0x0f) as usize) * 4;
    let total = u16::from_be_bytes([frame[eth + 2], frame[eth + 3]]) as usize;
    let body = frame.get(eth + ihl..eth + total)?;
    if body.len() < 16 {
        return None;
    }
    let cut = 8 * (body.len() / 16).max(1);
    let mk = |part: &[u8], off: usize, more: bool| {
        let mut f = frame[..eth + ihl].to_vec();
        f.extend_from_slice(part);
        let tl = (ihl + part.len()) as u16;
        f[eth + 2..eth + 4].copy_from_slice(&tl.to_be_bytes());
        let fo = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
        f[eth + 6..eth + 8].copy_from_slice(&fo.to_be_bytes());
        f[eth + 10] = 0;
        f[eth + 11] = 0;
        let mut sum = 0u32;
        for c in f[eth..eth + ihl].chunks(2) {
            sum += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        f[eth + 10..eth + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        if f.len() < 60 {
            f.resize(60, 0);
        }
        f
    };
    Some((mk(&body[..cut], 0, true), mk(&body[cut..], cut, false)))
}

/// Splits an untagged IPv6 frame's upper-layer packet into two fragments behind a fragment
/// header with identification `id` (the first carries the L4 header). None for other frames or
/// an upper-layer packet too short to split.
pub fn fragment_v6(frame: &[u8], id: u32) -> Option<(Vec<u8>, Vec<u8>)> {
    let (eth, ip6) = (14, 40);
    if frame.len() < eth + ip6 || frame[12..14] != [0x86, 0xdd] {
        return None;
    }
    let plen = u16::from_be_bytes([frame[eth + 4], frame[eth + 5]]) as usize;
    let next = frame[eth + 6];
    let body = frame.get(eth + ip6..eth + ip6 + plen)?;
    if body.len() < 16 {
        return None;
    }
    let cut = 8 * (body.len() / 16).max(1);
    let mk = |part: &[u8], off: usize, more: bool| {
        let mut f = frame[..eth + ip6].to_vec();
        f[eth + 6] = 44;
        f[eth + 4..eth + 6].copy_from_slice(&((8 + part.len()) as u16).to_be_bytes());
        let offlg = (off as u16) | u16::from(more);
        f.extend_from_slice(&[next, 0]);
        f.extend_from_slice(&offlg.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(part);
        if f.len() < 60 {
            f.resize(60, 0);
        }
        f
    };
    Some((mk(&body[..cut], 0, true), mk(&body[cut..], cut, false)))
}

/// xorshift64*: tiny, deterministic, good enough to spread synthetic traffic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

fn mac(i: u64) -> [u8; 6] {
    [0x02, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

/// A realistic mix: hosts inside 10.0.0.0/16 talking to outside hosts and each other, TCP with
/// varied flags, UDP, ICMP, IPv6, single and double VLAN tags, a few fragments and ARP.
/// `flows` bounds the number of distinct 5-tuples; each packet picks one uniformly.
pub fn mixed(n: usize, flows: u64, seed: u64) -> Vec<Frame> {
    mixed_with(n, seed, |rng| rng.below(flows))
}

/// [`mixed`] with flow sizes as on real links: the flow of rank r (from 1) carries a share of
/// the packets proportional to 1 / r^`s` (Zipf), so a few flows carry most packets and most
/// flows a few. `s` = 1 is the usual fit for Internet traffic.
pub fn mixed_zipf(n: usize, flows: u64, s: f64, seed: u64) -> Vec<Frame> {
    // Inverse-CDF sampling over a table of the cumulative weights, with the mix's own
    // deterministic generator (rand_distr's Zipf would bring rand's RNG for this one draw).
    let mut cdf = Vec::with_capacity(flows as usize);
    let mut total = 0.0;
    for r in 1..=flows.max(1) {
        total += 1.0 / (r as f64).powf(s);
        cdf.push(total);
    }
    mixed_with(n, seed, move |rng| {
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        cdf.partition_point(|&c| c < u).min(cdf.len() - 1) as u64
    })
}

fn mixed_with(n: usize, seed: u64, mut pick: impl FnMut(&mut Rng) -> u64) -> Vec<Frame> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    let t0 = 1_700_000_000i64;
    while out.len() < n {
        let f = pick(&mut rng);
        let mut fr = Rng::new(f ^ seed.rotate_left(17));
        let inside = [10, 0, fr.below(4) as u8, 1 + fr.below(200) as u8];
        let outside = [192, 168, fr.below(3) as u8, 1 + fr.below(250) as u8];
        let (src, dst) = if fr.below(2) == 0 { (inside, outside) } else { (outside, inside) };
        let kind = fr.below(100);
        let vlans = match fr.below(10) {
            0..=5 => vec![],
            6..=8 => vec![10 + fr.below(3) as u16],
            _ => vec![100, 200 + fr.below(2) as u16],
        };
        let l4 = match kind {
            0..=54 => {
                let flags = [0x02, 0x12, 0x10, 0x18, 0x11, 0x04][rng.below(6) as usize];
                L4::Tcp { sport: 1024 + fr.below(60000) as u16, dport: [80, 443, 22, 25][fr.below(4) as usize], flags }
            }
            55..=84 => {
                L4::Udp { sport: 1024 + fr.below(60000) as u16, dport: [53, 123, 5353, 4789][fr.below(4) as usize] }
            }
            _ => L4::Icmp { ty: 8, code: 0 },
        };
        let l3 = if fr.below(8) == 0 {
            let mut s6 = [0u8; 16];
            let mut d6 = [0u8; 16];
            s6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            d6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            s6[15] = src[3];
            d6[15] = dst[3];
            d6[14] = 1;
            L3::V6 { src: s6, dst: d6, tclass: 0 }
        } else {
            L3::V4 { src, dst, tos: [0, 0, 0, 0x10, 0xb8][fr.below(5) as usize] }
        };
        let spec = FrameSpec {
            src_mac: mac(u32::from_be_bytes(src) as u64),
            dst_mac: mac(u32::from_be_bytes(dst) as u64),
            vlans,
            l3,
            l4,
            payload: [0usize, 10, 100, 500, 1400][rng.below(5) as usize],
        };
        let ts_sec = t0 + (out.len() as i64) / 1000;
        let data = build(&spec);
        if rng.below(200) == 0 && spec.vlans.is_empty() {
            if let Some((a, b)) = fragment_v4(&data) {
                out.push(Frame { ts_sec, ts_usec: 0, data: a });
                out.push(Frame { ts_sec, ts_usec: 1, data: b });
                continue;
            }
        }
        if rng.below(500) == 0 {
            out.push(Frame { ts_sec, ts_usec: 0, data: arp(spec.src_mac, src, dst) });
            continue;
        }
        out.push(Frame { ts_sec, ts_usec: (out.len() % 1000) as i64, data });
    }
    out.truncate(n);
    out
}

/// Minimum-size (64 bytes on the wire, 60 captured) TCP/IPv4 frames over `flows` 5-tuples
/// drawn at random; `flows == 0` gives every packet a 5-tuple of its own.
pub fn small64(n: usize, flows: u64, seed: u64) -> Vec<Frame> {
    let mut rng = Rng::new(seed);
    (0..n).map(|i| small64_frame(i, small64_flow(i, flows, &mut rng))).collect()
}

fn small64_flow(i: usize, flows: u64, rng: &mut Rng) -> u32 {
    if flows == 0 {
        i as u32
    } else {
        rng.below(flows) as u32
    }
}

/// Packet `i` of [`small64`], of 5-tuple number `f` (distinct for every `f` below 2^32).
pub fn small64_frame(i: usize, f: u32) -> Frame {
    let spec = FrameSpec {
        src_mac: mac(1),
        dst_mac: mac(2),
        vlans: vec![],
        l3: L3::V4 {
            src: (0x0a00_0000 | (f & 0xffff)).to_be_bytes(),
            dst: (0xc0a8_0000 | (f >> 16)).to_be_bytes(),
            tos: 0,
        },
        l4: L4::Tcp { sport: 1024 + (f % 50000) as u16, dport: 80, flags: 0x10 },
        payload: 0,
    };
    Frame { ts_sec: 1_700_000_000 + (i / 10_000) as i64, ts_usec: (i % 1_000_000) as i64, data: build(&spec) }
}

/// Writes the frames of [`small64`] straight to a pcap file, one at a time: a file of tens of
/// millions of distinct keys (the flood of a memory-budget test) without holding it in memory.
pub fn write_small64_pcap(path: &Path, n: usize, flows: u64, seed: u64) -> Result<()> {
    use std::io::Write;
    let f = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, f);
    // pcap's file header: magic, version 2.4, zone and accuracy 0, snaplen, LINKTYPE_ETHERNET.
    let mut hdr = Vec::with_capacity(24);
    for w in [0xa1b2_c3d4u32.to_le_bytes(), [2, 0, 4, 0], [0; 4], [0; 4], 65535u32.to_le_bytes(), 1u32.to_le_bytes()] {
        hdr.extend_from_slice(&w);
    }
    out.write_all(&hdr)?;
    let mut rng = Rng::new(seed);
    for i in 0..n {
        let fr = small64_frame(i, small64_flow(i, flows, &mut rng));
        let len = fr.data.len() as u32;
        out.write_all(&(fr.ts_sec as u32).to_le_bytes())?;
        out.write_all(&(fr.ts_usec as u32).to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&fr.data)?;
    }
    out.flush().with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// Writes Ethernet frames to a pcap file through libpcap.
pub fn write_pcap(path: &Path, frames: &[Frame]) -> Result<()> {
    write_pcap_linktype(path, frames, pcap::Linktype::ETHERNET)
}

/// Writes frames of any link type to a pcap file through libpcap.
pub fn write_pcap_linktype(path: &Path, frames: &[Frame], link: pcap::Linktype) -> Result<()> {
    let cap = pcap::Capture::dead(link).context("pcap dead handle")?;
    let mut out = cap.savefile(path).with_context(|| format!("create {}", path.display()))?;
    for f in frames {
        let header = pcap::PacketHeader {
            ts: libc_timeval(f.ts_sec, f.ts_usec),
            caplen: f.data.len() as u32,
            len: f.data.len() as u32,
        };
        out.write(&pcap::Packet::new(&header, &f.data));
    }
    out.flush().context("flush pcap")?;
    Ok(())
}

fn libc_timeval(sec: i64, usec: i64) -> libc::timeval {
    libc::timeval { tv_sec: sec as _, tv_usec: usec as _ }
}

/// `frame` (as [`build`] makes it, with `vlans` tags) inside a PPPoE session `session`: the
/// EtherType becomes 0x8864 and the session header and PPP protocol (IPv4 0x0021, IPv6 0x0057)
/// go in front of the IP packet.
pub fn pppoe(frame: &[u8], vlans: usize, session: u16) -> Vec<u8> {
    let at = 12 + 4 * vlans;
    let ppp: u16 = if frame[at..at + 2] == [0x86, 0xdd] { 0x0057 } else { 0x0021 };
    let payload = &frame[at + 2..];
    let mut f = frame[..at].to_vec();
    f.extend_from_slice(&[0x88, 0x64, 0x11, 0x00]);
    f.extend_from_slice(&session.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
    f.extend_from_slice(&ppp.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `frame` (as [`build`] makes it, with `vlans` tags) under an MPLS label stack (unicast
/// EtherType, TTL 64, the last label the bottom of the stack).
pub fn mpls(frame: &[u8], vlans: usize, labels: &[u32]) -> Vec<u8> {
    let at = 12 + 4 * vlans;
    let mut f = frame[..at].to_vec();
    f.extend_from_slice(&[0x88, 0x47]);
    for (i, l) in labels.iter().enumerate() {
        let bottom = u32::from(i + 1 == labels.len());
        f.extend_from_slice(&((l << 12) | (bottom << 8) | 64).to_be_bytes());
    }
    f.extend_from_slice(&frame[at + 2..]);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Share of the packets carried by the busiest 1 % of the flows that appear.
    fn head_share(frames: &[Frame]) -> f64 {
        let mut per_flow: HashMap<Vec<u8>, u64> = HashMap::new();
        for f in frames {
            if let Ok(p) = xacct_wire::decode(xacct_wire::LinkType::Ethernet, &f.data, f.data.len() as u32) {
                let key = format!("{:?} {} {} {}", p.l3, p.proto, p.src_port, p.dst_port);
                *per_flow.entry(key.into_bytes()).or_default() += 1;
            }
        }
        let mut sizes: Vec<u64> = per_flow.into_values().collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        let head: u64 = sizes.iter().take(sizes.len().div_ceil(100)).sum();
        head as f64 / sizes.iter().sum::<u64>() as f64
    }

    #[test]
    fn zipf_mix_is_heavy_tailed_and_uniform_mix_is_not() {
        let (n, flows) = (100_000, 5_000);
        // Zipf s = 1 over 5000 flows: the top 50 carry H(50) / H(5000) ≈ 4.50 / 9.09 ≈ 49 %.
        let zipf = head_share(&mixed_zipf(n, flows, 1.0, 3));
        assert!((0.40..0.60).contains(&zipf), "top 1 % of Zipf flows carry {zipf:.3}");
        let uniform = head_share(&mixed(n, flows, 3));
        assert!(uniform < 0.05, "top 1 % of uniform flows carry {uniform:.3}");
        // Same seed, same traffic.
        assert_eq!(mixed_zipf(1000, flows, 1.0, 3)[..], mixed_zipf(1000, flows, 1.0, 3)[..]);
    }
}
