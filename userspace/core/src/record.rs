//! The one currency of the pipeline: every source (packet capture, XDP pre-aggregates, NetFlow,
//! sFlow) produces [`Record`]s; nothing downstream knows which source made one.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP address as stored in records and keys. A dedicated type (rather than `IpAddr`) so that
/// "no address" (non-IP traffic, unset net) is a value and the byte layout is fixed for keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Addr {
    #[default]
    None,
    V4([u8; 4]),
    V6([u8; 16]),
}

impl Addr {
    pub fn is_none(&self) -> bool {
        matches!(self, Addr::None)
    }

    /// Keeps the first `len` bits (a network address); `None` stays `None`.
    pub fn masked(&self, len: u8) -> Addr {
        fn mask<const N: usize>(mut b: [u8; N], len: u8) -> [u8; N] {
            let len = len as usize;
            for (i, byte) in b.iter_mut().enumerate() {
                let bits = len.saturating_sub(i * 8).min(8);
                *byte &= if bits == 0 { 0 } else { 0xffu8 << (8 - bits) };
            }
            b
        }
        match *self {
            Addr::None => Addr::None,
            Addr::V4(b) => Addr::V4(mask(b, len)),
            Addr::V6(b) => Addr::V6(mask(b, len)),
        }
    }

    pub fn to_ip(&self) -> Option<IpAddr> {
        match *self {
            Addr::None => None,
            Addr::V4(b) => Some(IpAddr::V4(Ipv4Addr::from(b))),
            Addr::V6(b) => Some(IpAddr::V6(Ipv6Addr::from(b))),
        }
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Addr::V4(a.octets()),
            IpAddr::V6(a) => Addr::V6(a.octets()),
        }
    }
}

impl fmt::Display for Addr {
    /// pmacct prints an absent address as `0.0.0.0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_ip() {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("0.0.0.0"),
        }
    }
}

/// A packet an sfprobe plugin sampled: its leading bytes and what a flow sample says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketSample {
    /// The frame's first bytes (at most the plugin's header size).
    pub header: Vec<u8>,
    /// The frame's length on the wire.
    pub frame_len: u32,
    pub in_iface: u32,
    pub out_iface: u32,
    pub tag: u64,
    pub tag2: u64,
    /// Packets the sampler had seen, this one included, when it took the sample.
    pub pool: u64,
    /// Samples lost before this one (queue full).
    pub drops: u64,
    /// The sampling rate (1 in N) the sample was taken at.
    pub rate: u32,
}

/// A MAC address.
pub type Mac = [u8; 6];

/// Every primitive the daemon can fill, plus counters and time. Fixed layout, `Copy`.
///
/// A captured packet is a Record with `packets = 1`; pre-aggregated sources carry larger
/// counters. Fields a source cannot fill stay at their zero value, which is also how pmacct
/// prints an unset primitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Record {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub vlan: u16,
    /// Number of VLAN tags seen (libpcap `vlan` semantics in filters depend on it).
    pub vlan_depth: u8,
    pub etype: u16,
    /// EtherType after the leading VLAN tags (0x8864 PPPoE, 0x8847/0x8848 MPLS, …), which
    /// libpcap's filters compare; 0 when the source does not know it (flow records): then it
    /// is taken to be `etype`.
    pub link_etype: u16,
    /// MPLS label stack: top and bottom label, labels in the stack (0: no MPLS).
    pub mpls_top: u32,
    pub mpls_bottom: u32,
    pub mpls_depth: u8,
    /// PPPoE session id (when `link_etype` is 0x8864).
    pub pppoe_session: u16,
    pub src_ip: Addr,
    pub dst_ip: Addr,
    /// Filled from `networks_file` (longest prefix match) when a plugin needs nets/masks/ASes.
    pub src_net: Addr,
    pub dst_net: Addr,
    pub src_mask: u8,
    pub dst_mask: u8,
    pub src_as: u32,
    pub dst_as: u32,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    pub tos: u8,
    pub tcp_flags: u8,
    pub in_iface: u32,
    pub out_iface: u32,
    pub tag: u64,
    pub tag2: u64,
    /// `set_label` result, interned (see [`crate::tag::labels`]): 0 is "no label". An id
    /// rather than a string keeps Record `Copy` and keys fixed-width.
    pub label: u32,
    /// What flow exporters say about a record, for pre_tag_map's `ip`, `engine_type`, … keys.
    /// Zero when the source does not carry the field (packet capture carries none of these).
    pub exporter: Addr,
    pub engine_type: u8,
    /// NetFlow v5 engine_id, NetFlow v9/IPFIX source id, sFlow data source index.
    pub engine_id: u32,
    /// sFlow sub-agent id.
    pub agent_id: u32,
    /// 0 ingress, 1 egress (IE 61; sFlow: which port is the data source).
    pub direction: u8,
    pub nexthop: Addr,
    pub bgp_nexthop: Addr,
    /// Inner VLAN (IE 245), 0 when absent.
    pub cvlan: u16,
    /// See [`crate::tag::SampleType::code`]; 0 unknown.
    pub sample_type: u32,
    /// A non-first IP fragment: its ports (if any) come from the datagram's first fragment,
    /// which pre_tag_map does not see (pmacctd's filters run on the packet, which has none).
    pub later_fragment: bool,
    /// Whether `src_net`..`dst_as` have been resolved (done lazily, once per record).
    pub nets_resolved: bool,
    /// How nets/masks and ASes are to be resolved (`nfacctd_net`/`nfacctd_as` … of the source
    /// that made the record); None: the packet-capture methods (`pmacctd_net`/`pmacctd_as`).
    pub methods: Option<crate::maps::Methods>,
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    /// Time the record describes (packet timestamp / flow end), seconds since the epoch.
    pub ts: i64,
    /// For records that span time (the XDP program's pre-aggregates): the first packet's
    /// second; 0 when the record is one moment (`ts`).
    pub first_ts: i64,
}

impl Record {
    /// Builds a record from a decoded packet (`packets = 1`, `bytes` = IP length).
    pub fn from_packet(p: &xacct_wire::PacketSummary, ts: i64) -> Record {
        let (src_ip, dst_ip) = match p.l3 {
            xacct_wire::L3::None => (Addr::None, Addr::None),
            xacct_wire::L3::V4 { src, dst } => (Addr::V4(src), Addr::V4(dst)),
            xacct_wire::L3::V6 { src, dst } => (Addr::V6(src), Addr::V6(dst)),
        };
        Record {
            src_mac: p.src_mac,
            dst_mac: p.dst_mac,
            vlan: p.vlan,
            vlan_depth: p.vlan_depth,
            etype: p.etype,
            link_etype: p.link_etype,
            mpls_top: p.mpls_top,
            mpls_bottom: p.mpls_bottom,
            mpls_depth: p.mpls_depth,
            pppoe_session: p.pppoe_session,
            src_ip,
            dst_ip,
            src_port: p.src_port,
            dst_port: p.dst_port,
            proto: p.proto,
            tos: p.tos,
            tcp_flags: p.tcp_flags,
            later_fragment: p.is_later_fragment,
            packets: 1,
            bytes: p.ip_len as u64,
            ts,
            ..Record::default()
        }
    }

    pub fn is_ip(&self) -> bool {
        !self.src_ip.is_none()
    }
}
