//! Packet header decoding: link layer → (802.1Q/QinQ) → IPv4/IPv6 → TCP/UDP/ICMP/ICMPv6.
//!
//! CONTRACT (used by xacct-core; keep stable):
//! `decode(link, frame, wire_len)` returns a [`PacketSummary`] describing the packet the way
//! pmacctd accounts it (bytes = IP total length, not the frame length).

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
            _ => None,
        }
    }
}

/// Network-layer addresses found in the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L3 {
    /// No IP header (ARP, LLDP, …): `etype` says what it was.
    #[default]
    None,
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
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
    /// EtherType of the payload after any VLAN tags (0x0800, 0x86dd, 0x0806, …).
    pub etype: u16,
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
    pub payload_offset: u16,
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
    #[error("ICMP header truncated")]
    TruncatedIcmp,
}

impl DecodeError {
    /// All reasons, for counter tables indexed by `self as usize`.
    pub const ALL: [DecodeError; 11] = [
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
        }
    }
}

/// Decodes one captured frame. `wire_len` is the original length on the wire (pcap `len`),
/// which may exceed `frame.len()` when the snaplen cut the capture.
pub fn decode(link: LinkType, frame: &[u8], wire_len: u32) -> Result<PacketSummary, DecodeError> {
    let _ = (link, frame, wire_len);
    Err(DecodeError::TruncatedLink) // placeholder until the decoder lands (same commit series)
}
