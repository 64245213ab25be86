//! Feeds arbitrary bytes to `decode` under every link type and checks the invariants callers
//! rely on (beyond "does not panic").
#![no_main]

use libfuzzer_sys::fuzz_target;
use xacct_wire::{decode, LinkType, L3};

const LINKS: [LinkType; 9] = [
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

fuzz_target!(|data: &[u8]| {
    // The first four bytes pick the wire length, so that cut captures are covered too.
    let (wire_len, frame) = match data.split_first_chunk::<4>() {
        Some((w, rest)) => (u32::from_le_bytes(*w), rest),
        None => (data.len() as u32, data),
    };
    for link in LINKS {
        let Ok(p) = decode(link, frame, wire_len) else { continue };
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
        if p.mpls_depth > 0 {
            assert!(matches!(p.link_etype, 0x8847 | 0x8848), "{:#06x}", p.link_etype);
        }
        if p.pppoe_session != 0 {
            assert_eq!(p.link_etype, 0x8864);
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
});
