//! Packet header decoding: link layer → (802.1Q/802.1ad/QinQ, Cisco FabricPath/VN-Tag, PPPoE,
//! MPLS) → IPv4/IPv6 → TCP/UDP/ICMP/ICMPv6.
//!
//! CONTRACT (used by xacct-core; keep stable):
//! `decode(link, frame, wire_len)` returns a [`PacketSummary`] describing the packet the way
//! pmacctd accounts it (bytes = IP total length, not the frame length).
//!
//! # pmacctd 1.7.7 behaviour this follows (each checked on a pcap with the Debian package)
//! - Bytes: IPv4 total length, IPv6 payload length + 40; the frame length and caplen never count.
//! - QinQ: `vlan` is the OUTERMOST id (0x8100/0x8100 with ids 300/400 reports 300).
//! - TCP/UDP need their 4 port bytes captured: with fewer pmacctd does not account the packet
//!   at all (we return `TruncatedTcp`/`TruncatedUdp`). With the ports but a TCP header cut
//!   before the flags byte, the packet counts with its ports and flags 0.
//! - ICMP/ICMPv6 and every other protocol count even with no L4 byte captured; ICMP ports are 0.
//!   So `DecodeError::TruncatedIcmp` is never returned (kept so counter tables stay stable).
//! - SCTP, UDP-Lite, … get ports 0 (pmacctd reads ports for TCP and UDP only).
//! - IPv4 AH is not skipped (proto = 51, ports 0); IPv6 AH is skipped like the other extension
//!   headers. IPv6 ESP (50) and no-next-header (59) end the chain and become `proto`.
//! - Fragments: pmacctd keeps a fragment table and gives later fragments the ports of their first
//!   fragment (it even holds later fragments back until the first one arrives, and never counts
//!   them if it does not). That is state, so it belongs to the caller: `decode` marks
//!   `is_later_fragment`, leaves the ports 0 and exposes `frag_id`.
//! - Link types: Ethernet, Linux SLL, raw IP, DLT_NULL/DLT_LOOP (4-byte address family in
//!   either byte order), DLT_PPP (ff 03 optional, 1- or 2-byte protocol; 0x0021/0x0800 IPv4,
//!   0x0057/0x86dd IPv6, 0x0281/0x0283 MPLS) and DLT_IEEE802_11 (unprotected data frames,
//!   24 or 30-byte header, then LLC/SNAP with an IP EtherType). Its `_devices[]` table has no
//!   others. Only Ethernet and SLL frames have MACs (SLL: the source only).
//! - After an Ethernet header: any number of 802.1Q tags (the first one's id is `vlan`, and
//!   only when it comes first), Cisco FabricPath (0x8903, 16 bytes) and VN-Tag (0x8926, 6
//!   bytes), PPPoE sessions (0x8864: 6-byte header and the PPP protocol, 0x0021 IPv4, 0x0057
//!   IPv6; every other PPP protocol, MPLS included, is not IP) and MPLS (0x8847/0x8848: labels
//!   down to the bottom-of-stack bit, then IPv4 or IPv6 by the payload's version nibble).
//!   `etype` is then the IP EtherType (pmacct's `etype` primitive reports 800 inside PPPoE);
//!   the EtherType libpcap's filters see is `link_etype`. After SLL: tags, MPLS and LLC/SNAP.
//! - MPLS primitives: `mpls_label_top` (first label), `mpls_label_bottom` (the one with the
//!   bottom-of-stack bit) and `mpls_stack_depth`, labels without EXP and BoS bits.
//! - L2TP (UDP 1701) is accounted as the outer UDP packet; pmacctd does not look inside.
//! - Non-IP frames (ARP, LLDP, PPPoE LCP, MPLS pseudowires, …) are not accounted by pmacctd at all, not even with an L2-only
//!   aggregate such as `src_mac,dst_mac` or `none`. `decode` still returns them (`L3::None`,
//!   `ip_len` = frame length on the wire) and leaves that choice to the caller.
//!
//! # Where xacct deliberately differs
//! - pmacctd 1.7.7 drops 802.1ad (0x88a8) and 0x9100 tagged frames entirely; we decode them.
//! - pmacctd counts garbage headers (IHL < 5, a version nibble that contradicts the EtherType,
//!   a total length below the header length) with whatever bytes it finds; we return a reason.
//! - An IPv4 total length or IPv6 payload length of 0 (Linux BIG TCP / GSO super-packets, or a
//!   jumbogram) counts the wire length from the IP header on, where pmacctd counts 0 / 40.
//! - pmacctd 1.7.7 cannot read SLL2 (276) or LINKTYPE_IPV4/IPV6 (228/229) savefiles.
//! - MPLS stacks of two labels or more: pmacctd 1.7.7 steps through the stack 16 bytes a label
//!   instead of 4, so it finds the bottom of stack in payload bytes, accounts the packet with
//!   garbage (0.0.0.0, 0 bytes) and crashes with `mpls_label_bottom` or `mpls_stack_depth`.
//!   We walk the stack (checked against tshark's decode).
//! - MPLS over DLT_PPP: pmacctd reads the label stack as the IP header; we skip the stack.
//! - DLT_NULL/DLT_LOOP: the BSD and macOS values of AF_INET6 (24, 28, 30) are IPv6 here, as in
//!   libpcap's filters; pmacctd on Linux knows only 10, so a macOS loopback capture's IPv6
//!   traffic is not accounted by it at all.
//! - 802.11 QoS data frames (2 more header bytes, 6 with an HT control field), the usual data
//!   frames since 802.11n: pmacctd reads their QoS field as LLC and accounts nothing.
//! - PPPoE, FabricPath and VN-Tag after an SLL header (pmacctd decodes them after Ethernet only).
//! - A payload after an MPLS stack or a NULL header that is neither version 4 nor 6 is non-IP
//!   here; pmacctd also decides by the explicit-null labels (0, 2) where we go by the nibble, and
//!   takes 0x40–0x44 as non-IP where we count a bad IPv4 header length.
//!
//! # How it stays panic-free without bounds checks everywhere
//! Every header is taken as a fixed-size array (`&[u8; N]`) through `slice::first_chunk`, which
//! is the only length check; fields are then read with constant indexes into that array, which
//! the compiler checks at build time, so there is no runtime bounds check and nothing can panic.

/// pcap link-layer types we accept (DLT values as in pcap files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// DLT_EN10MB (1)
    Ethernet,
    /// DLT_LINUX_SLL (113)
    LinuxSll,
    /// DLT_LINUX_SLL2 (276)
    LinuxSll2,
    /// DLT_RAW (12 on most systems, 14 on some BSDs, LINKTYPE_RAW 101), IPv4 or IPv6 by version nibble
    Raw,
    /// LINKTYPE_IPV4 (228)
    Ipv4,
    /// LINKTYPE_IPV6 (229)
    Ipv6,
    /// DLT_NULL (0) and DLT_LOOP (108): a 4-byte address family, in either byte order.
    Null,
    /// DLT_PPP (9): optional address/control bytes, then a 1- or 2-byte PPP protocol.
    Ppp,
    /// DLT_IEEE802_11 (105): 802.11 frames without a radio header; data frames carry LLC/SNAP.
    Ieee80211,
}

impl LinkType {
    /// Maps a pcap DLT / LINKTYPE number to a link type we decode.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        match dlt {
            1 => Some(LinkType::Ethernet),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            12 | 14 | 101 => Some(LinkType::Raw),
            228 => Some(LinkType::Ipv4),
            229 => Some(LinkType::Ipv6),
            0 | 108 => Some(LinkType::Null),
            9 => Some(LinkType::Ppp),
            105 => Some(LinkType::Ieee80211),
            _ => None,
        }
    }
}

/// Network-layer addresses found in the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum L3 {
    /// No IP header (ARP, LLDP, …): `etype` says what it was.
    #[default]
    None,
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
    },
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
    },
}

/// Everything the accounting pipeline needs from one packet. Plain data, `Copy`, ~80 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketSummary {
    /// Zero for link types without MACs (raw IP, and SLL's destination).
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// Outermost 802.1Q VLAN id (12 bits), 0 when untagged.
    pub vlan: u16,
    /// How many 802.1Q/802.1ad tags preceded the payload (QinQ = 2). libpcap's `vlan` keyword
    /// semantics depend on it.
    pub vlan_depth: u8,
    /// EtherType of the network layer after every link-layer header (0x0800 for IPv4 also
    /// inside PPPoE or MPLS, 0x86dd, 0x0806, …): pmacct's `etype` primitive. For a non-IP
    /// frame, the last EtherType read (0x8864 for a PPPoE frame carrying LCP).
    pub etype: u16,
    /// The EtherType right after the leading VLAN tags: what libpcap's filters compare at the
    /// link layer (0x8864 PPPoE session, 0x8847/0x8848 MPLS, 0x8903/0x8926 Cisco tags, else
    /// `etype`). Link types without EtherTypes get `etype`, or 0x8847 for MPLS over PPP.
    pub link_etype: u16,
    /// MPLS label stack: top and bottom label (20 bits each) and how many labels were read
    /// down to the bottom-of-stack bit; all 0 without MPLS.
    pub mpls_top: u32,
    pub mpls_bottom: u32,
    pub mpls_depth: u8,
    /// PPPoE session id (meaningful when `link_etype` is 0x8864).
    pub pppoe_session: u16,
    pub l3: L3,
    /// IP protocol / IPv6 upper-layer next header after extension headers.
    pub proto: u8,
    /// IPv4 TOS byte / IPv6 traffic class.
    pub tos: u8,
    /// 0 when the packet has no ports (ICMP, non-first fragments, …).
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags byte (FIN=0x01 … CWR=0x80), 0 for other protocols.
    pub tcp_flags: u8,
    /// ICMP/ICMPv6 type and code (ports stay 0 for ICMP as pmacctd does).
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Fragment offset != 0 (a later fragment: no L4 header).
    pub is_later_fragment: bool,
    /// More-fragments set or offset != 0.
    pub is_fragment: bool,
    /// Bytes as pmacctd counts them: IPv4 total length, IPv6 payload length + 40; for non-IP
    /// frames the frame length on the wire.
    pub ip_len: u32,
    /// Offset of the L3 header inside the frame (for payload classifiers and BPF fallback).
    pub l3_offset: u16,
    /// Offset of the L4 payload inside the frame (0 when unknown).
    /// Offset of the L4 payload inside the frame: just past the TCP/UDP/ICMP header, or just
    /// past the IP header (and IPv6 extension headers) for protocols we do not parse. 0 when
    /// unknown: non-IP frames, later fragments, an L4 header the snaplen cut.
    pub payload_offset: u16,
    /// IPv4 identification / IPv6 fragment-header identification when `is_fragment` (0
    /// otherwise): with the addresses and `proto` it keys the caller's fragment table.
    pub frag_id: u32,
}

/// Why a frame could not be (fully) decoded. Each reason has its own counter in the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    #[error("frame shorter than its link-layer header")]
    TruncatedLink,
    #[error("VLAN tag truncated")]
    TruncatedVlan,
    #[error("IPv4 header truncated")]
    TruncatedIpv4,
    #[error("IPv4 header length field below 20 bytes")]
    BadIpv4HeaderLen,
    #[error("IPv4 total length smaller than its header")]
    BadIpv4TotalLen,
    #[error("IPv6 header truncated")]
    TruncatedIpv6,
    #[error("IPv6 extension header truncated or malformed")]
    BadIpv6ExtHeader,
    #[error("IP version nibble does not match the link type")]
    BadIpVersion,
    #[error("TCP header truncated")]
    TruncatedTcp,
    #[error("UDP header truncated")]
    TruncatedUdp,
    /// Never returned by [`decode`]: pmacctd accounts ICMP packets whatever the snaplen left
    /// of their header (type and code then read as 0). Kept so counter tables stay stable.
    #[error("ICMP header truncated")]
    TruncatedIcmp,
    #[error("PPPoE session header truncated")]
    TruncatedPppoe,
    #[error("MPLS label stack truncated before its bottom label or payload")]
    TruncatedMpls,
    #[error("LLC/SNAP header truncated")]
    TruncatedLlc,
    #[error("Cisco FabricPath / VN-Tag header truncated")]
    TruncatedCiscoTag,
}

impl DecodeError {
    /// All reasons, for counter tables indexed by `self as usize`.
    pub const ALL: [DecodeError; 15] = [
        DecodeError::TruncatedLink,
        DecodeError::TruncatedVlan,
        DecodeError::TruncatedIpv4,
        DecodeError::BadIpv4HeaderLen,
        DecodeError::BadIpv4TotalLen,
        DecodeError::TruncatedIpv6,
        DecodeError::BadIpv6ExtHeader,
        DecodeError::BadIpVersion,
        DecodeError::TruncatedTcp,
        DecodeError::TruncatedUdp,
        DecodeError::TruncatedIcmp,
        DecodeError::TruncatedPppoe,
        DecodeError::TruncatedMpls,
        DecodeError::TruncatedLlc,
        DecodeError::TruncatedCiscoTag,
    ];

    /// Short stable name used in counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            DecodeError::TruncatedLink => "truncated_link",
            DecodeError::TruncatedVlan => "truncated_vlan",
            DecodeError::TruncatedIpv4 => "truncated_ipv4",
            DecodeError::BadIpv4HeaderLen => "bad_ipv4_ihl",
            DecodeError::BadIpv4TotalLen => "bad_ipv4_total_len",
            DecodeError::TruncatedIpv6 => "truncated_ipv6",
            DecodeError::BadIpv6ExtHeader => "bad_ipv6_ext_header",
            DecodeError::BadIpVersion => "bad_ip_version",
            DecodeError::TruncatedTcp => "truncated_tcp",
            DecodeError::TruncatedUdp => "truncated_udp",
            DecodeError::TruncatedIcmp => "truncated_icmp",
            DecodeError::TruncatedPppoe => "truncated_pppoe",
            DecodeError::TruncatedMpls => "truncated_mpls",
            DecodeError::TruncatedLlc => "truncated_llc",
            DecodeError::TruncatedCiscoTag => "truncated_cisco_tag",
        }
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_8021Q: u16 = 0x8100;
const ETHERTYPE_8021AD: u16 = 0x88a8;
/// Pre-standard QinQ outer tag still sent by some switches.
const ETHERTYPE_QINQ_9100: u16 = 0x9100;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const ETHERTYPE_MPLS_UNICAST: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
/// Cisco FabricPath: 16 bytes (the rest of the tag, the inner MACs) end in the inner EtherType.
const ETHERTYPE_CISCO_FABRICPATH: u16 = 0x8903;
/// Cisco VN-Tag: 6 bytes ending in the inner EtherType.
const ETHERTYPE_CISCO_VNTAG: u16 = 0x8926;
/// SLL's protocol for an 802.2 LLC frame (not an EtherType: values below 0x0600 are lengths).
const SLL_P_802_2: u16 = 0x0004;

const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const PPP_MPLS_UNICAST: u16 = 0x0281;
const PPP_MPLS_MULTICAST: u16 = 0x0283;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;

/// The `N` bytes at `at`, or `None` when the capture ends before them.
#[inline(always)]
fn chunk<const N: usize>(frame: &[u8], at: usize) -> Option<&[u8; N]> {
    frame.get(at..)?.first_chunk::<N>()
}

#[inline(always)]
fn be16(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

/// Offsets are `u16` to keep the summary small; only a pathological stack of headers (thousands
/// of VLAN tags or IPv6 extension headers) can pass 64 KiB, and then the offset is unknown (0).
#[inline(always)]
fn off16(at: usize) -> u16 {
    u16::try_from(at).unwrap_or(0)
}

/// Decodes one captured frame. `wire_len` is the original length on the wire (pcap `len`),
/// which may exceed `frame.len()` when the snaplen cut the capture.
pub fn decode(link: LinkType, frame: &[u8], wire_len: u32) -> Result<PacketSummary, DecodeError> {
    let mut s = PacketSummary::default();
    let (mut etype, mut at) = match link {
        LinkType::Ethernet => {
            let h: &[u8; 14] = chunk(frame, 0).ok_or(DecodeError::TruncatedLink)?;
            let [d0, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5, t0, t1] = *h;
            s.dst_mac = [d0, d1, d2, d3, d4, d5];
            s.src_mac = [s0, s1, s2, s3, s4, s5];
            (be16(t0, t1), 14)
        }
        LinkType::LinuxSll => {
            // packet type(2) ARPHRD type(2) address length(2) address(8) protocol(2); the one
            // address is the sender's, so there is no destination MAC (pmacctd prints zeros).
            let h: &[u8; 16] = chunk(frame, 0).ok_or(DecodeError::TruncatedLink)?;
            let [_, _, _, _, l0, l1, a0, a1, a2, a3, a4, a5, _, _, p0, p1] = *h;
            if be16(l0, l1) == 6 {
                s.src_mac = [a0, a1, a2, a3, a4, a5];
            }
            sll_payload(be16(p0, p1), frame, 16)?
        }
        LinkType::LinuxSll2 => {
            // protocol(2) reserved(2) ifindex(4) ARPHRD type(2) packet type(1) address length(1)
            // address(8)
            let h: &[u8; 20] = chunk(frame, 0).ok_or(DecodeError::TruncatedLink)?;
            let [p0, p1, _, _, _, _, _, _, _, _, _, halen, a0, a1, a2, a3, a4, a5, _, _] = *h;
            if halen == 6 {
                s.src_mac = [a0, a1, a2, a3, a4, a5];
            }
            sll_payload(be16(p0, p1), frame, 20)?
        }
        LinkType::Raw => {
            let &[b0] = chunk(frame, 0).ok_or(DecodeError::TruncatedLink)?;
            // The EtherType is synthesised so that callers (and `ip`/`ip6` filters) see the same
            // value whatever the link type.
            match b0 >> 4 {
                4 => (ETHERTYPE_IPV4, 0),
                6 => (ETHERTYPE_IPV6, 0),
                _ => return Err(DecodeError::BadIpVersion),
            }
        }
        LinkType::Ipv4 => (ETHERTYPE_IPV4, 0),
        LinkType::Ipv6 => (ETHERTYPE_IPV6, 0),
        LinkType::Null => null_payload(frame)?,
        LinkType::Ppp => ppp_payload(frame)?,
        LinkType::Ieee80211 => wlan_payload(frame)?,
    };
    if at == NON_IP {
        s.etype = etype;
        s.link_etype = etype;
        s.ip_len = wire_len;
        return Ok(s);
    }

    // Each tag consumes 4 bytes of a finite frame, so the loop ends.
    while matches!(etype, ETHERTYPE_8021Q | ETHERTYPE_8021AD | ETHERTYPE_QINQ_9100) {
        let &[c0, c1, t0, t1] = chunk(frame, at).ok_or(DecodeError::TruncatedVlan)?;
        if s.vlan_depth == 0 {
            s.vlan = be16(c0, c1) & 0x0fff;
        }
        s.vlan_depth = s.vlan_depth.saturating_add(1);
        etype = be16(t0, t1);
        at += 4;
    }
    s.etype = etype;
    s.link_etype = etype;
    s.l3_offset = off16(at);

    match etype {
        ETHERTYPE_IPV4 => decode_ipv4(&mut s, frame, at, wire_len)?,
        ETHERTYPE_IPV6 => decode_ipv6(&mut s, frame, at, wire_len)?,
        // Out of line with the summary by value: the plain path keeps `s` in registers (with
        // `&mut s` passed to a call, or the encapsulation's fields merged back in here, plain
        // frames paid a fifth more).
        _ => return encapsulated(s, frame, etype, at, wire_len),
    }
    Ok(s)
}

/// What a link-layer header leaves to the EtherType walk: an EtherType and where its payload
/// starts, or [`NON_IP`] with the protocol to report.
type Payload = (u16, usize);

/// A link header whose payload is not IP: its protocol number goes to `etype` as is, and the
/// EtherType walk stops at once.
const NON_IP: usize = usize::MAX;

/// SLL's protocol: an EtherType, or 802.2 LLC whose SNAP header names one (pmacctd reads IP
/// there too).
#[cold]
#[inline(never)]
fn sll_payload(proto: u16, frame: &[u8], at: usize) -> Result<Payload, DecodeError> {
    if proto == SLL_P_802_2 {
        return llc_payload(frame, at);
    }
    Ok((proto, at))
}

/// DLT_NULL/DLT_LOOP: the sender's address family in its own byte order (DLT_LOOP's is always
/// network order), read both ways as pmacctd does. IPv6 is 10 on Linux and 24, 28 or 30 on the
/// BSDs and macOS, where these captures come from; libpcap's `ip6` accepts all four.
#[cold]
#[inline(never)]
fn null_payload(frame: &[u8]) -> Result<Payload, DecodeError> {
    let b: &[u8; 4] = chunk(frame, 0).ok_or(DecodeError::TruncatedLink)?;
    let (le, be) = (u32::from_le_bytes(*b), u32::from_be_bytes(*b));
    let is = |af: u32| le == af || be == af;
    Ok(if is(2) {
        (ETHERTYPE_IPV4, 4)
    } else if is(10) || is(24) || is(28) || is(30) {
        (ETHERTYPE_IPV6, 4)
    } else {
        (0, NON_IP)
    })
}

/// DLT_PPP: address and control bytes (ff 03) when present, then the protocol, one byte when
/// odd (protocol-field compression). pmacctd wants 4 bytes before it looks at any.
#[cold]
#[inline(never)]
fn ppp_payload(frame: &[u8]) -> Result<Payload, DecodeError> {
    let h: &[u8; 4] = chunk(frame, 0).ok_or(DecodeError::TruncatedLink)?;
    let (at, p0, p1) = if h[0] == 0xff && h[1] == 0x03 { (2, h[2], h[3]) } else { (0, h[0], h[1]) };
    let (proto, at) = if p0 & 1 != 0 { (u16::from(p0), at + 1) } else { (be16(p0, p1), at + 2) };
    Ok(match proto {
        PPP_IPV4 | ETHERTYPE_IPV4 => (ETHERTYPE_IPV4, at),
        PPP_IPV6 | ETHERTYPE_IPV6 => (ETHERTYPE_IPV6, at),
        PPP_MPLS_UNICAST => (ETHERTYPE_MPLS_UNICAST, at),
        PPP_MPLS_MULTICAST => (ETHERTYPE_MPLS_MULTICAST, at),
        other => (other, NON_IP),
    })
}

/// DLT_IEEE802_11: unprotected data frames with a body carry LLC/SNAP after a header of 24
/// bytes, 30 with both DS bits (four addresses), plus 2 for QoS data and 4 more for an HT
/// control field. Management, control, protected and no-data frames are not IP.
#[cold]
#[inline(never)]
fn wlan_payload(frame: &[u8]) -> Result<Payload, DecodeError> {
    let &[fc0, fc1] = chunk(frame, 0).ok_or(DecodeError::TruncatedLink)?;
    let data = (fc0 >> 2) & 3 == 2;
    let no_body = fc0 & 0x40 != 0;
    let protected = fc1 & 0x40 != 0;
    if !data || no_body || protected {
        return Ok((0, NON_IP));
    }
    let mut hlen = if fc1 & 0x03 == 0x03 { 30 } else { 24 };
    if fc0 & 0x80 != 0 {
        hlen += if fc1 & 0x80 != 0 { 6 } else { 2 };
    }
    if frame.len() < hlen {
        return Err(DecodeError::TruncatedLink);
    }
    llc_payload(frame, hlen)
}

/// 802.2 LLC: only SNAP (aa aa 03, an OUI, an EtherType) can carry IP, and only IP is taken
/// from it (pmacctd's reading; a SNAP-encapsulated VLAN tag is not walked).
fn llc_payload(frame: &[u8], at: usize) -> Result<Payload, DecodeError> {
    let &[dsap, ssap, ctl] = chunk(frame, at).ok_or(DecodeError::TruncatedLlc)?;
    if (dsap, ssap, ctl) != (0xaa, 0xaa, 0x03) {
        return Ok((0, NON_IP));
    }
    let h: &[u8; 8] = chunk(frame, at).ok_or(DecodeError::TruncatedLlc)?;
    let etype = be16(h[6], h[7]);
    Ok(match etype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => (etype, at + 8),
        other => (other, NON_IP),
    })
}

/// What the encapsulation walk found: the IP EtherType and where its header starts (`at` is
/// [`NON_IP`], and `etype` the protocol found, when the frame is not IP), and the MPLS and
/// PPPoE fields on the way.
#[derive(Default)]
struct Encap {
    etype: u16,
    at: usize,
    mpls_top: u32,
    mpls_bottom: u32,
    mpls_depth: u8,
    pppoe_session: u16,
}

/// Finishes a frame whose EtherType after the leading VLAN tags is neither IPv4 nor IPv6:
/// Cisco tags, PPPoE, MPLS, or a non-IP protocol.
#[cold]
#[inline(never)]
fn encapsulated(
    mut s: PacketSummary,
    frame: &[u8],
    etype: u16,
    at: usize,
    wire_len: u32,
) -> Result<PacketSummary, DecodeError> {
    let e = walk(frame, etype, at)?;
    (s.mpls_top, s.mpls_bottom, s.mpls_depth, s.pppoe_session) =
        (e.mpls_top, e.mpls_bottom, e.mpls_depth, e.pppoe_session);
    s.etype = e.etype;
    match e.etype {
        _ if e.at == NON_IP => s.ip_len = wire_len,
        ETHERTYPE_IPV4 => {
            s.l3_offset = off16(e.at);
            decode_ipv4(&mut s, frame, e.at, wire_len)?;
        }
        _ => {
            s.l3_offset = off16(e.at);
            decode_ipv6(&mut s, frame, e.at, wire_len)?;
        }
    }
    Ok(s)
}

/// The walk behind [`encapsulated`], header by header.
fn walk(frame: &[u8], mut etype: u16, mut at: usize) -> Result<Encap, DecodeError> {
    let mut e = Encap::default();
    // Every header consumes bytes of a finite frame, so the walk ends.
    while at != NON_IP {
        match etype {
            ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => break,
            ETHERTYPE_CISCO_FABRICPATH => {
                let h: &[u8; 16] = chunk(frame, at).ok_or(DecodeError::TruncatedCiscoTag)?;
                etype = be16(h[14], h[15]);
                at += 16;
            }
            ETHERTYPE_CISCO_VNTAG => {
                let h: &[u8; 6] = chunk(frame, at).ok_or(DecodeError::TruncatedCiscoTag)?;
                etype = be16(h[4], h[5]);
                at += 6;
            }
            // A tag behind a Cisco tag: walked, but pmacctd reports only a leading tag's id.
            ETHERTYPE_8021Q | ETHERTYPE_8021AD | ETHERTYPE_QINQ_9100 => {
                let &[_, _, t0, t1] = chunk(frame, at).ok_or(DecodeError::TruncatedVlan)?;
                etype = be16(t0, t1);
                at += 4;
            }
            ETHERTYPE_PPPOE_SESSION => {
                // version/type(1) code(1) session(2) length(2), then the PPP protocol (2).
                let h: &[u8; 8] = chunk(frame, at).ok_or(DecodeError::TruncatedPppoe)?;
                e.pppoe_session = be16(h[2], h[3]);
                (etype, at) = match be16(h[6], h[7]) {
                    PPP_IPV4 => (ETHERTYPE_IPV4, at + 8),
                    PPP_IPV6 => (ETHERTYPE_IPV6, at + 8),
                    // LCP, IPCP, PAP, …, and MPLS (which pmacctd does not look into here).
                    _ => (ETHERTYPE_PPPOE_SESSION, NON_IP),
                };
            }
            ETHERTYPE_MPLS_UNICAST | ETHERTYPE_MPLS_MULTICAST => {
                let (next, after) = mpls_stack(&mut e, frame, at)?;
                // pmacctd's guess from the first payload byte (it also trusts the explicit-null
                // labels, which carry the same version on a sane network).
                (etype, at) = match next >> 4 {
                    4 => (ETHERTYPE_IPV4, after),
                    6 => (ETHERTYPE_IPV6, after),
                    _ => (etype, NON_IP),
                };
            }
            _ => at = NON_IP,
        }
    }
    (e.etype, e.at) = (etype, at);
    Ok(e)
}

/// Walks an MPLS label stack at `at` down to its bottom-of-stack bit, noting the top and
/// bottom label and the depth (255 for deeper stacks); returns the first byte after the stack
/// and its offset.
fn mpls_stack(e: &mut Encap, frame: &[u8], at: usize) -> Result<(u8, usize), DecodeError> {
    let mut off = at;
    loop {
        let &[a, b, c, _ttl] = chunk(frame, off).ok_or(DecodeError::TruncatedMpls)?;
        let label = (u32::from(a) << 12) | (u32::from(b) << 4) | u32::from(c >> 4);
        if off == at {
            e.mpls_top = label;
        }
        e.mpls_bottom = label;
        e.mpls_depth = e.mpls_depth.saturating_add(1);
        off += 4;
        if c & 1 != 0 {
            break;
        }
    }
    let &[next] = chunk(frame, off).ok_or(DecodeError::TruncatedMpls)?;
    Ok((next, off))
}

#[inline(always)]
fn decode_ipv4(s: &mut PacketSummary, frame: &[u8], at: usize, wire_len: u32) -> Result<(), DecodeError> {
    // The version is checked first so that a wrong guess of the link type reads as such
    // rather than as a truncated header.
    let &[b0] = chunk(frame, at).ok_or(DecodeError::TruncatedIpv4)?;
    if b0 >> 4 != 4 {
        return Err(DecodeError::BadIpVersion);
    }
    let h: &[u8; 20] = chunk(frame, at).ok_or(DecodeError::TruncatedIpv4)?;
    let hlen = usize::from(h[0] & 0x0f) * 4;
    if hlen < 20 {
        return Err(DecodeError::BadIpv4HeaderLen);
    }
    // Options must be captured too: the L4 header starts after them.
    if frame.len().saturating_sub(at) < hlen {
        return Err(DecodeError::TruncatedIpv4);
    }
    let total = be16(h[2], h[3]);
    s.ip_len = if total == 0 {
        wire_len.saturating_sub(at as u32)
    } else if usize::from(total) < hlen {
        return Err(DecodeError::BadIpv4TotalLen);
    } else {
        u32::from(total)
    };
    s.tos = h[1];
    s.proto = h[9];
    s.l3 = L3::V4 { src: [h[12], h[13], h[14], h[15]], dst: [h[16], h[17], h[18], h[19]] };
    let frag = be16(h[6], h[7]);
    let offset = frag & 0x1fff;
    let more = frag & 0x2000 != 0;
    s.is_later_fragment = offset != 0;
    s.is_fragment = more || offset != 0;
    if s.is_fragment {
        s.frag_id = u32::from(be16(h[4], h[5]));
    }
    decode_l4(s, frame, at + hlen, IPPROTO_ICMP)
}

#[inline(always)]
fn decode_ipv6(s: &mut PacketSummary, frame: &[u8], at: usize, wire_len: u32) -> Result<(), DecodeError> {
    let &[b0] = chunk(frame, at).ok_or(DecodeError::TruncatedIpv6)?;
    if b0 >> 4 != 6 {
        return Err(DecodeError::BadIpVersion);
    }
    let h: &[u8; 40] = chunk(frame, at).ok_or(DecodeError::TruncatedIpv6)?;
    s.tos = (h[0] << 4) | (h[1] >> 4);
    let plen = be16(h[4], h[5]);
    s.ip_len = if plen == 0 { wire_len.saturating_sub(at as u32).max(40) } else { u32::from(plen) + 40 };
    let (Some(src), Some(dst)) = (chunk::<16>(h, 8), chunk::<16>(h, 24)) else {
        return Err(DecodeError::TruncatedIpv6); // unreachable: h is 40 bytes
    };
    s.l3 = L3::V6 { src: *src, dst: *dst };

    // Every extension header is at least 8 bytes long, so the walk ends with the frame.
    let mut next = h[6];
    let mut at = at + 40;
    loop {
        let len = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let &[nh, units] = chunk(frame, at).ok_or(DecodeError::BadIpv6ExtHeader)?;
                next = nh;
                (usize::from(units) + 1) * 8
            }
            IPPROTO_AH => {
                let &[nh, units] = chunk(frame, at).ok_or(DecodeError::BadIpv6ExtHeader)?;
                next = nh;
                (usize::from(units) + 2) * 4
            }
            IPPROTO_FRAGMENT => {
                let f: &[u8; 8] = chunk(frame, at).ok_or(DecodeError::BadIpv6ExtHeader)?;
                next = f[0];
                let frag = be16(f[2], f[3]);
                let offset = frag >> 3;
                let more = frag & 1 != 0;
                // Assigned, not OR-ed: with several fragment headers (never legitimate) the
                // last one describes the packet, and the fields stay consistent.
                s.is_later_fragment = offset != 0;
                s.is_fragment = more || offset != 0;
                s.frag_id = if s.is_fragment { u32::from_be_bytes([f[4], f[5], f[6], f[7]]) } else { 0 };
                8
            }
            _ => break,
        };
        if frame.len().saturating_sub(at) < len {
            return Err(DecodeError::BadIpv6ExtHeader);
        }
        at += len;
        if s.is_later_fragment {
            // What follows is the middle of the upper-layer packet; `next` is its protocol.
            break;
        }
    }
    s.proto = next;
    decode_l4(s, frame, at, IPPROTO_ICMPV6)
}

/// Reads ports / flags / ICMP type from the upper-layer header at `at` (which the callers have
/// checked is within the frame). `icmp` is the ICMP protocol number of this IP version.
// Always inlined: reached from the plain path and the encapsulation walk, it was otherwise
// called out of line, and the plain path paid for the call.
#[inline(always)]
fn decode_l4(s: &mut PacketSummary, frame: &[u8], at: usize, icmp: u8) -> Result<(), DecodeError> {
    if s.is_later_fragment {
        return Ok(());
    }
    let l4 = frame.get(at..).unwrap_or_default();
    match s.proto {
        IPPROTO_TCP => {
            let &[p0, p1, p2, p3] = chunk(l4, 0).ok_or(DecodeError::TruncatedTcp)?;
            s.src_port = be16(p0, p1);
            s.dst_port = be16(p2, p3);
            if let Some(h) = chunk::<14>(l4, 0) {
                s.tcp_flags = h[13];
                let doff = usize::from(h[12] >> 4) * 4;
                if doff >= 20 && doff <= l4.len() {
                    s.payload_offset = off16(at + doff);
                }
            }
        }
        IPPROTO_UDP => {
            let &[p0, p1, p2, p3] = chunk(l4, 0).ok_or(DecodeError::TruncatedUdp)?;
            s.src_port = be16(p0, p1);
            s.dst_port = be16(p2, p3);
            if l4.len() >= 8 {
                s.payload_offset = off16(at + 8);
            }
        }
        p if p == icmp => {
            if let Some(&[t, c]) = chunk(l4, 0) {
                s.icmp_type = t;
                s.icmp_code = c;
            }
            if l4.len() >= 8 {
                s.payload_offset = off16(at + 8);
            }
        }
        _ => s.payload_offset = off16(at),
    }
    Ok(())
}
