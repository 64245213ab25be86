//! Handcrafted frames for every link type, tag stack, IP option/extension and error reason. The
//! expected values for the pmacctd-specific cases (QinQ id, truncated L4, ICMP ports, IPv4 AH)
//! come from running pmacctd 1.7.7 on the same packets.

use xacct_wire::{decode, DecodeError, LinkType, PacketSummary, L3};

const SRC4: [u8; 4] = [10, 0, 0, 1];
const DST4: [u8; 4] = [192, 0, 2, 7];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const MAC_D: [u8; 6] = [0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb];
const MAC_S: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];

fn eth(etype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_D);
    f.extend_from_slice(&MAC_S);
    f.extend_from_slice(&etype.to_be_bytes());
    f
}

fn tag(f: &mut Vec<u8>, tci: u16, next: u16) {
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&next.to_be_bytes());
}

/// IPv4 header with `options` (a multiple of 4 bytes) whose total length covers `l4_len` bytes.
fn ipv4(proto: u8, options: &[u8], l4_len: usize, frag: u16) -> Vec<u8> {
    let hlen = 20 + options.len();
    let total = (hlen + l4_len) as u16;
    let mut h = vec![0x40 | (hlen / 4) as u8, 0xb8];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&0x1234u16.to_be_bytes()); // id
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&SRC4);
    h.extend_from_slice(&DST4);
    h.extend_from_slice(options);
    h
}

fn ipv6(next: u8, payload_len: u16) -> Vec<u8> {
    // traffic class 0xb8 spans the first two bytes
    let mut h = vec![0x6b, 0x80, 0, 0];
    h.extend_from_slice(&payload_len.to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&SRC6);
    h.extend_from_slice(&DST6);
    h
}

fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&[0; 8]); // seq, ack
    h.extend_from_slice(&[0x50, flags, 0x20, 0, 0, 0, 0, 0]);
    h
}

fn udp(sport: u16, dport: u16, len: u16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn dec(link: LinkType, f: &[u8]) -> Result<PacketSummary, DecodeError> {
    decode(link, f, f.len() as u32)
}

/// Ethernet + IPv4 + TCP with `payload` bytes after the TCP header.
fn eth_v4_tcp(payload: usize) -> Vec<u8> {
    cat(&[&eth(0x0800), &ipv4(6, &[], 20 + payload, 0), &tcp(40000, 443, 0x12), &vec![0xee; payload]])
}

#[test]
fn ethernet_ipv4_tcp() {
    let f = eth_v4_tcp(10);
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!(p.dst_mac, MAC_D);
    assert_eq!(p.src_mac, MAC_S);
    assert_eq!((p.vlan, p.vlan_depth, p.etype), (0, 0, 0x0800));
    assert_eq!(p.l3, L3::V4 { src: SRC4, dst: DST4 });
    assert_eq!((p.proto, p.tos), (6, 0xb8));
    assert_eq!((p.src_port, p.dst_port, p.tcp_flags), (40000, 443, 0x12));
    assert_eq!(p.ip_len, 50);
    assert_eq!((p.l3_offset, p.payload_offset), (14, 54));
    assert!(!p.is_fragment && !p.is_later_fragment);
    assert_eq!(p.frag_id, 0);
}

#[test]
fn ip_len_is_the_ip_total_length_not_the_frame() {
    // Ethernet padding after a short packet must not count.
    let mut f = cat(&[&eth(0x0800), &ipv4(17, &[], 8, 0), &udp(53, 5353, 8)]);
    f.resize(60, 0);
    assert_eq!(decode(LinkType::Ethernet, &f, 60).unwrap().ip_len, 28);
    // A snaplen cut after the UDP ports keeps the length of the IP header.
    let mut f = cat(&[&eth(0x0800), &ipv4(17, &[], 1480, 0), &udp(53, 5353, 1480)]);
    f.truncate(14 + 20 + 4);
    let p = decode(LinkType::Ethernet, &f, 1514).unwrap();
    assert_eq!((p.ip_len, p.src_port, p.dst_port, p.payload_offset), (1500, 53, 5353, 0));
}

#[test]
fn tcp_cut_after_ports_counts_without_flags() {
    // pmacctd: ports but no flags byte -> accounted with flags 0.
    let f = eth_v4_tcp(100);
    let p = decode(LinkType::Ethernet, &f[..14 + 20 + 13], f.len() as u32).unwrap();
    assert_eq!((p.src_port, p.dst_port, p.tcp_flags, p.payload_offset), (40000, 443, 0, 0));
    assert_eq!(p.ip_len, 140);
    // One more byte brings the flags.
    let p = decode(LinkType::Ethernet, &f[..14 + 20 + 14], f.len() as u32).unwrap();
    assert_eq!((p.tcp_flags, p.payload_offset), (0x12, 0));
}

#[test]
fn tcp_or_udp_without_ports_is_an_error() {
    // pmacctd does not account these at all.
    let f = eth_v4_tcp(0);
    assert_eq!(dec(LinkType::Ethernet, &f[..14 + 20 + 3]), Err(DecodeError::TruncatedTcp));
    assert_eq!(dec(LinkType::Ethernet, &f[..14 + 20]), Err(DecodeError::TruncatedTcp));
    let f = cat(&[&eth(0x0800), &ipv4(17, &[], 8, 0), &udp(1, 2, 8)]);
    assert_eq!(dec(LinkType::Ethernet, &f[..14 + 20 + 2]), Err(DecodeError::TruncatedUdp));
    let f = cat(&[&ipv6(17, 8), &udp(1, 2, 8)]);
    assert_eq!(dec(LinkType::Ipv6, &f[..43]), Err(DecodeError::TruncatedUdp));
}

#[test]
fn linux_sll() {
    let mut f = vec![0, 0, 0, 1, 0, 6];
    f.extend_from_slice(&MAC_S);
    f.extend_from_slice(&[0, 0, 0x08, 0x00]);
    f.extend_from_slice(&ipv4(17, &[], 8, 0));
    f.extend_from_slice(&udp(5, 6, 8));
    let p = dec(LinkType::LinuxSll, &f).unwrap();
    assert_eq!((p.src_mac, p.dst_mac), (MAC_S, [0; 6]));
    assert_eq!((p.l3_offset, p.payload_offset, p.src_port, p.dst_port), (16, 44, 5, 6));

    // A tag inside SLL (outgoing tagged traffic), as pmacctd reports it.
    let mut f = vec![0, 4, 0, 1, 0, 6];
    f.extend_from_slice(&MAC_S);
    f.extend_from_slice(&[0, 0, 0x81, 0x00]);
    tag(&mut f, 7, 0x0800);
    f.extend_from_slice(&ipv4(17, &[], 8, 0));
    f.extend_from_slice(&udp(5, 6, 8));
    let p = dec(LinkType::LinuxSll, &f).unwrap();
    assert_eq!((p.vlan, p.vlan_depth, p.l3_offset), (7, 1, 20));

    // An address that is not 6 bytes long is not a MAC.
    f[5] = 0;
    assert_eq!(dec(LinkType::LinuxSll, &f).unwrap().src_mac, [0; 6]);
}

#[test]
fn linux_sll2() {
    let mut f = vec![0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
    f.extend_from_slice(&MAC_S);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&ipv6(6, 20));
    f.extend_from_slice(&tcp(1, 2, 0x02));
    let p = dec(LinkType::LinuxSll2, &f).unwrap();
    assert_eq!((p.src_mac, p.dst_mac, p.etype), (MAC_S, [0; 6], 0x86dd));
    assert_eq!(p.l3, L3::V6 { src: SRC6, dst: DST6 });
    assert_eq!((p.l3_offset, p.payload_offset, p.tcp_flags, p.ip_len), (20, 80, 2, 60));
}

#[test]
fn raw_ip_link_types() {
    let v4 = cat(&[&ipv4(17, &[], 8, 0), &udp(5, 6, 8)]);
    let v6 = cat(&[&ipv6(17, 8), &udp(5, 6, 8)]);
    let p = dec(LinkType::Raw, &v4).unwrap();
    assert_eq!((p.etype, p.l3_offset, p.ip_len, p.src_mac), (0x0800, 0, 28, [0; 6]));
    let p = dec(LinkType::Raw, &v6).unwrap();
    assert_eq!((p.etype, p.l3_offset, p.ip_len, p.tos), (0x86dd, 0, 48, 0xb8));
    assert_eq!(dec(LinkType::Ipv4, &v4).unwrap().dst_port, 6);
    assert_eq!(dec(LinkType::Ipv6, &v6).unwrap().dst_port, 6);
    // The version nibble must agree with the link type.
    assert_eq!(dec(LinkType::Ipv4, &v6), Err(DecodeError::BadIpVersion));
    assert_eq!(dec(LinkType::Ipv6, &v4), Err(DecodeError::BadIpVersion));
    assert_eq!(dec(LinkType::Raw, &[0x50; 40]), Err(DecodeError::BadIpVersion));
    assert_eq!(LinkType::from_dlt(14), Some(LinkType::Raw));
    assert_eq!(LinkType::from_dlt(229), Some(LinkType::Ipv6));
    assert_eq!(LinkType::from_dlt(147), None);
}

#[test]
fn vlan_single_and_qinq_report_the_outer_id() {
    let body = cat(&[&ipv4(17, &[], 8, 0), &udp(5, 6, 8)]);
    let mut f = eth(0x8100);
    tag(&mut f, 0x2000 | 100, 0x0800); // priority bits must not leak into the id
    f.extend_from_slice(&body);
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!((p.vlan, p.vlan_depth, p.etype, p.l3_offset, p.dst_port), (100, 1, 0x0800, 18, 6));

    for outer in [0x8100u16, 0x88a8, 0x9100] {
        let mut f = eth(outer);
        tag(&mut f, 300, 0x8100);
        tag(&mut f, 400, 0x0800);
        f.extend_from_slice(&body);
        let p = dec(LinkType::Ethernet, &f).unwrap();
        assert_eq!((p.vlan, p.vlan_depth, p.l3_offset, p.payload_offset), (300, 2, 22, 50), "tpid {outer:#x}");
    }

    let mut f = eth(0x88a8);
    tag(&mut f, 1, 0x8100);
    tag(&mut f, 2, 0x8100);
    tag(&mut f, 3, 0x86dd);
    f.extend_from_slice(&cat(&[&ipv6(17, 8), &udp(5, 6, 8)]));
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!((p.vlan, p.vlan_depth, p.etype, p.l3_offset), (1, 3, 0x86dd, 26));
}

#[test]
fn truncated_vlan() {
    let mut f = eth(0x8100);
    tag(&mut f, 5, 0x8100);
    f.extend_from_slice(&[0, 6]);
    assert_eq!(dec(LinkType::Ethernet, &f), Err(DecodeError::TruncatedVlan));
}

#[test]
fn ipv4_options_shift_the_l4_header() {
    let opts = [0x94, 0x04, 0, 0, 1, 1, 1, 0]; // router alert + NOPs + EOL
    let f = cat(&[&eth(0x0800), &ipv4(6, &opts, 20, 0), &tcp(1234, 80, 0x18)]);
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!((p.src_port, p.dst_port, p.tcp_flags), (1234, 80, 0x18));
    assert_eq!((p.ip_len, p.payload_offset), (48, 62));

    let opts = [1u8; 40]; // IHL = 15, the maximum
    let f = cat(&[&eth(0x0800), &ipv4(17, &opts, 8, 0), &udp(7, 9, 8)]);
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!((p.src_port, p.dst_port, p.payload_offset), (7, 9, 82));
    // Options cut by the snaplen.
    assert_eq!(dec(LinkType::Ethernet, &f[..14 + 30]), Err(DecodeError::TruncatedIpv4));
}

#[test]
fn ipv4_header_errors() {
    let f = eth_v4_tcp(0);
    assert_eq!(dec(LinkType::Ethernet, &f[..14 + 19]), Err(DecodeError::TruncatedIpv4));
    let mut bad = f.clone();
    bad[14] = 0x44;
    assert_eq!(dec(LinkType::Ethernet, &bad), Err(DecodeError::BadIpv4HeaderLen));
    let mut bad = f.clone();
    bad[16..18].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(dec(LinkType::Ethernet, &bad), Err(DecodeError::BadIpv4TotalLen));
    let mut bad = f.clone();
    bad[14] = 0x65;
    assert_eq!(dec(LinkType::Ethernet, &bad), Err(DecodeError::BadIpVersion));
}

#[test]
fn zero_total_length_counts_the_wire_length() {
    // A GSO/BIG TCP super-packet as captured on the sending host.
    let mut f = eth_v4_tcp(0);
    f[16..18].copy_from_slice(&[0, 0]);
    let p = decode(LinkType::Ethernet, &f, 70_014).unwrap();
    assert_eq!((p.ip_len, p.dst_port), (70_000, 443));
    let f = cat(&[&eth(0x86dd), &ipv6(6, 0), &tcp(1, 2, 0x10)]);
    assert_eq!(decode(LinkType::Ethernet, &f, 100_014).unwrap().ip_len, 100_000);
}

#[test]
fn ipv4_first_fragment_has_ports() {
    let f = cat(&[&eth(0x0800), &ipv4(17, &[], 1480, 0x2000), &udp(1000, 2000, 3008)]);
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert!(p.is_fragment && !p.is_later_fragment);
    assert_eq!((p.src_port, p.dst_port, p.frag_id, p.ip_len), (1000, 2000, 0x1234, 1500));
}

#[test]
fn ipv4_later_fragment_has_no_ports() {
    // Bytes after the header look like a TCP header but are the middle of the payload.
    for frag in [185u16, 0x2000 | 185] {
        let f = cat(&[&eth(0x0800), &ipv4(6, &[], 20, frag), &tcp(1000, 2000, 0x3f)]);
        let p = dec(LinkType::Ethernet, &f).unwrap();
        assert!(p.is_fragment && p.is_later_fragment);
        assert_eq!((p.proto, p.src_port, p.dst_port, p.tcp_flags), (6, 0, 0, 0));
        assert_eq!((p.frag_id, p.payload_offset, p.ip_len), (0x1234, 0, 40));
    }
    // Nothing at all after the header is fine for a later fragment.
    let f = cat(&[&eth(0x0800), &ipv4(6, &[], 0, 185)]);
    assert!(dec(LinkType::Ethernet, &f).unwrap().is_later_fragment);
}

fn ext(next: u8, units: u8) -> Vec<u8> {
    let mut h = vec![next, units];
    h.resize((usize::from(units) + 1) * 8, 1);
    h
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    let chain = cat(&[&ext(43, 0), &ext(60, 1), &ext(6, 0), &tcp(1006, 80, 0x02)]);
    // hop-by-hop -> routing -> destination options -> TCP
    let f = cat(&[&eth(0x86dd), &ipv6(0, chain.len() as u16), &chain]);
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!((p.proto, p.src_port, p.dst_port, p.tcp_flags), (6, 1006, 80, 2));
    assert_eq!((p.ip_len, p.l3_offset, p.payload_offset), (40 + 52, 14, 14 + 40 + 32 + 20));

    // AH: length in 4-byte units minus 2.
    let mut ah = vec![17, 4, 0, 0];
    ah.resize(24, 0);
    let f = cat(&[&ipv6(51, 32), &ah, &udp(1007, 53, 8)]);
    let p = dec(LinkType::Ipv6, &f).unwrap();
    assert_eq!((p.proto, p.src_port, p.dst_port, p.payload_offset), (17, 1007, 53, 72));
}

#[test]
fn ipv6_esp_and_no_next_header_end_the_chain() {
    let f = cat(&[&ipv6(0, 48), &ext(50, 0), &[0; 40]]);
    let p = dec(LinkType::Ipv6, &f).unwrap();
    assert_eq!((p.proto, p.src_port, p.dst_port, p.ip_len, p.payload_offset), (50, 0, 0, 88, 48));
    let p = dec(LinkType::Ipv6, &ipv6(59, 0)).unwrap();
    assert_eq!((p.proto, p.payload_offset), (59, 40));
}

fn frag6(next: u8, offset: u16, more: bool) -> Vec<u8> {
    let mut h = vec![next, 0];
    h.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
    h.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    h
}

#[test]
fn ipv6_fragments() {
    let f = cat(&[&ipv6(44, 16), &frag6(17, 0, true), &udp(1000, 2000, 3008)]);
    let p = dec(LinkType::Ipv6, &f).unwrap();
    assert!(p.is_fragment && !p.is_later_fragment);
    assert_eq!((p.proto, p.src_port, p.dst_port, p.frag_id), (17, 1000, 2000, 0xdead_beef));

    // A later fragment after a hop-by-hop header; what follows is not parsed.
    let f = cat(&[&ipv6(0, 32), &ext(44, 0), &frag6(17, 154, false), &udp(1000, 2000, 8)]);
    let p = dec(LinkType::Ipv6, &f).unwrap();
    assert!(p.is_fragment && p.is_later_fragment);
    assert_eq!((p.proto, p.src_port, p.dst_port, p.payload_offset), (17, 0, 0, 0));
    assert_eq!((p.frag_id, p.ip_len), (0xdead_beef, 72));

    // An atomic fragment (offset 0, no more fragments) is a whole packet.
    let f = cat(&[&ipv6(44, 16), &frag6(17, 0, false), &udp(1, 2, 8)]);
    let p = dec(LinkType::Ipv6, &f).unwrap();
    assert!(!p.is_fragment && !p.is_later_fragment);
    assert_eq!((p.dst_port, p.frag_id), (2, 0));

    // Found by the fuzzer: a second, atomic fragment header must not leave a stale frag_id.
    let f = cat(&[&ipv6(44, 24), &frag6(44, 0, true), &frag6(17, 0, false), &udp(1, 2, 8)]);
    let p = dec(LinkType::Ipv6, &f).unwrap();
    assert_eq!((p.is_fragment, p.frag_id, p.dst_port), (false, 0, 2));
}

#[test]
fn ipv6_header_errors() {
    let f = cat(&[&ipv6(6, 20), &tcp(1, 2, 0)]);
    assert_eq!(dec(LinkType::Ipv6, &f[..39]), Err(DecodeError::TruncatedIpv6));
    // Extension header whose first bytes are missing.
    let f = ipv6(0, 8);
    assert_eq!(dec(LinkType::Ipv6, &f), Err(DecodeError::BadIpv6ExtHeader));
    // Extension header longer than what was captured.
    let f = cat(&[&ipv6(60, 64), &ext(6, 7)[..16]]);
    assert_eq!(dec(LinkType::Ipv6, &f), Err(DecodeError::BadIpv6ExtHeader));
    // Fragment header cut short.
    let f = cat(&[&ipv6(44, 8), &frag6(17, 1, false)[..6]]);
    assert_eq!(dec(LinkType::Ipv6, &f), Err(DecodeError::BadIpv6ExtHeader));
    let mut bad = cat(&[&eth(0x86dd), &ipv6(59, 0)]);
    bad[14] = 0x45;
    assert_eq!(dec(LinkType::Ethernet, &bad), Err(DecodeError::BadIpVersion));
}

#[test]
fn icmp_type_code_and_zero_ports() {
    let icmp = [3u8, 1, 0, 0, 0, 0, 0, 0, 0x45];
    let f = cat(&[&eth(0x0800), &ipv4(1, &[], icmp.len(), 0), &icmp]);
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!((p.proto, p.icmp_type, p.icmp_code, p.src_port, p.dst_port), (1, 3, 1, 0, 0));
    assert_eq!((p.ip_len, p.payload_offset), (29, 42));

    let icmp6 = [128u8, 0, 0, 0, 0, 1, 0, 1];
    let f = cat(&[&ipv6(58, 8), &icmp6]);
    let p = dec(LinkType::Ipv6, &f).unwrap();
    assert_eq!((p.proto, p.icmp_type, p.icmp_code, p.src_port, p.dst_port), (58, 128, 0, 0, 0));

    // pmacctd counts an ICMP packet with no ICMP byte captured.
    let f = cat(&[&ipv4(1, &[], 100, 0), &[8]]);
    let p = decode(LinkType::Ipv4, &f, 120).unwrap();
    assert_eq!((p.proto, p.icmp_type, p.ip_len, p.payload_offset), (1, 0, 120, 0));
    // ICMPv4's number inside IPv6 is not ICMP.
    let f = cat(&[&ipv6(1, 8), &icmp6]);
    assert_eq!(dec(LinkType::Ipv6, &f).unwrap().icmp_type, 0);
}

#[test]
fn other_protocols_have_no_ports() {
    // SCTP: pmacctd reads ports for TCP and UDP only.
    let f = cat(&[&ipv4(132, &[], 12, 0), &[0x03, 0xe9, 0x07, 0xd1, 0, 0, 0, 0, 0, 0, 0, 0]]);
    let p = dec(LinkType::Raw, &f).unwrap();
    assert_eq!((p.proto, p.src_port, p.dst_port, p.payload_offset), (132, 0, 0, 20));
    // IPv4 AH is not skipped (pmacctd reports proto ah).
    let mut ah = vec![6, 4];
    ah.resize(24, 0);
    let f = cat(&[&ipv4(51, &[], 44, 0), &ah, &tcp(1, 2, 2)]);
    let p = dec(LinkType::Raw, &f).unwrap();
    assert_eq!((p.proto, p.src_port, p.dst_port), (51, 0, 0));
    // GRE with nothing captured after the IP header still counts.
    let f = ipv4(47, &[], 100, 0);
    assert_eq!(decode(LinkType::Ipv4, &f, 120).unwrap().ip_len, 120);
}

#[test]
fn non_ip_frames() {
    let mut f = eth(0x0806);
    f.extend_from_slice(&[0; 28]);
    let p = decode(LinkType::Ethernet, &f, 60).unwrap();
    assert_eq!((p.etype, p.l3, p.ip_len, p.proto), (0x0806, L3::None, 60, 0));
    assert_eq!((p.l3_offset, p.payload_offset, p.src_mac), (14, 0, MAC_S));
    // Tagged ARP keeps its tag.
    let mut f = eth(0x8100);
    tag(&mut f, 42, 0x0806);
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!((p.vlan, p.etype, p.l3, p.l3_offset), (42, 0x0806, L3::None, 18));
}

#[test]
fn truncated_link_headers() {
    assert_eq!(dec(LinkType::Ethernet, &eth(0x0800)[..13]), Err(DecodeError::TruncatedLink));
    assert_eq!(dec(LinkType::LinuxSll, &[0; 15]), Err(DecodeError::TruncatedLink));
    assert_eq!(dec(LinkType::LinuxSll2, &[0; 19]), Err(DecodeError::TruncatedLink));
    assert_eq!(dec(LinkType::Raw, &[]), Err(DecodeError::TruncatedLink));
    assert_eq!(dec(LinkType::Ipv4, &[]), Err(DecodeError::TruncatedIpv4));
    assert_eq!(dec(LinkType::Ipv6, &[]), Err(DecodeError::TruncatedIpv6));
    // Ethernet header alone says IPv4 but nothing follows.
    assert_eq!(dec(LinkType::Ethernet, &eth(0x0800)), Err(DecodeError::TruncatedIpv4));
}

#[test]
fn error_table_is_complete_and_names_are_unique() {
    for (i, e) in DecodeError::ALL.iter().enumerate() {
        assert_eq!(*e as usize, i, "ALL must be in declaration order for counter indexing");
        assert!(!e.to_string().is_empty());
    }
    let mut names: Vec<_> = DecodeError::ALL.iter().map(|e| e.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), DecodeError::ALL.len());
}

// ---------------------------------------------------------------------------------------------
// Encapsulations and link types pmacctd 1.7.7 decodes (expected values from running it on the
// same frames, see userspace/xacctd/tests/link_compare.rs).

/// PPPoE session header (version/type 0x11, code 0, `session`) and the PPP protocol.
fn pppoe(session: u16, ppp: u16, payload_len: u16) -> Vec<u8> {
    let mut h = vec![0x11, 0x00];
    h.extend_from_slice(&session.to_be_bytes());
    h.extend_from_slice(&(payload_len + 2).to_be_bytes());
    h.extend_from_slice(&ppp.to_be_bytes());
    h
}

/// An MPLS label stack entry: label, TTL 64, bottom-of-stack bit.
fn label(l: u32, bottom: bool) -> Vec<u8> {
    ((l << 12) | (u32::from(bottom) << 8) | 64).to_be_bytes().to_vec()
}

fn stack(labels: &[u32]) -> Vec<u8> {
    labels.iter().enumerate().flat_map(|(i, l)| label(*l, i + 1 == labels.len())).collect()
}

#[test]
fn pppoe_session_ipv4_and_ipv6() {
    let l4 = udp(5353, 53, 8);
    let f = cat(&[&eth(0x8864), &pppoe(0x1234, 0x0021, 28), &ipv4(17, &[], 8, 0), &l4]);
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!((p.etype, p.link_etype, p.pppoe_session), (0x0800, 0x8864, 0x1234));
    assert_eq!((p.l3, p.ip_len, p.src_port, p.dst_port), (L3::V4 { src: SRC4, dst: DST4 }, 28, 5353, 53));
    assert_eq!((p.src_mac, p.dst_mac, p.l3_offset, p.payload_offset), (MAC_S, MAC_D, 22, 50));
    assert_eq!((p.mpls_depth, p.vlan_depth), (0, 0));
    // Behind a VLAN tag, as PPPoE reaches a BNG.
    let mut f = eth(0x8100);
    tag(&mut f, 300, 0x8864);
    f.extend(cat(&[&pppoe(7, 0x0057, 48), &ipv6(17, 8), &l4]));
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!((p.vlan, p.vlan_depth, p.etype, p.link_etype, p.pppoe_session), (300, 1, 0x86dd, 0x8864, 7));
    assert_eq!((p.l3, p.ip_len, p.l3_offset), (L3::V6 { src: SRC6, dst: DST6 }, 48, 26));
}

#[test]
fn pppoe_control_protocols_are_not_ip() {
    // LCP echo: pmacctd does not account it; the walk stops at the PPP protocol.
    let f = cat(&[&eth(0x8864), &pppoe(1, 0xc021, 8), &[9, 1, 0, 8, 0, 0, 0, 0]]);
    let p = decode(LinkType::Ethernet, &f, 64).unwrap();
    assert_eq!((p.l3, p.etype, p.link_etype, p.ip_len, p.proto), (L3::None, 0x8864, 0x8864, 64, 0));
    // MPLS inside PPPoE: pmacctd 1.7.7 does not look into it either.
    let f = cat(&[&eth(0x8864), &pppoe(1, 0x0281, 48), &stack(&[16]), &ipv4(17, &[], 8, 0), &udp(1, 2, 8)]);
    assert_eq!(dec(LinkType::Ethernet, &f).unwrap().l3, L3::None);
}

#[test]
fn pppoe_truncated() {
    let f = cat(&[&eth(0x8864), &pppoe(1, 0x0021, 28)]);
    for cut in 14..f.len() {
        assert_eq!(dec(LinkType::Ethernet, &f[..cut]), Err(DecodeError::TruncatedPppoe), "cut at {cut}");
    }
    // The session header complete, the IP header not.
    assert_eq!(dec(LinkType::Ethernet, &f), Err(DecodeError::TruncatedIpv4));
}

#[test]
fn mpls_one_and_three_labels() {
    let v4 = cat(&[&ipv4(6, &[], 20, 0), &tcp(1000, 80, 0x02)]);
    let f = cat(&[&eth(0x8847), &stack(&[100]), &v4]);
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!((p.mpls_top, p.mpls_bottom, p.mpls_depth), (100, 100, 1));
    assert_eq!((p.etype, p.link_etype, p.l3_offset, p.ip_len), (0x0800, 0x8847, 18, 40));
    assert_eq!((p.src_port, p.dst_port, p.tcp_flags), (1000, 80, 0x02));
    // Three labels, the largest label value, multicast EtherType, behind a VLAN tag.
    let mut f = eth(0x8100);
    tag(&mut f, 7, 0x8848);
    f.extend(cat(&[&stack(&[0xfffff, 200, 300]), &ipv6(17, 8), &udp(3000, 53, 8)]));
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!((p.mpls_top, p.mpls_bottom, p.mpls_depth), (0xfffff, 300, 3));
    assert_eq!((p.vlan, p.vlan_depth, p.etype, p.link_etype), (7, 1, 0x86dd, 0x8848));
    assert_eq!((p.l3, p.l3_offset, p.ip_len, p.dst_port), (L3::V6 { src: SRC6, dst: DST6 }, 30, 48, 53));
}

#[test]
fn mpls_payload_guessed_from_its_version_nibble() {
    // An Ethernet pseudowire (control word 0) is not IP; nor is anything but 4 and 6.
    let f = cat(&[&eth(0x8847), &stack(&[16, 17]), &[0, 0, 0, 0], &eth(0x0800)]);
    let p = decode(LinkType::Ethernet, &f, 100).unwrap();
    assert_eq!((p.l3, p.etype, p.link_etype, p.ip_len), (L3::None, 0x8847, 0x8847, 100));
    assert_eq!((p.mpls_top, p.mpls_bottom, p.mpls_depth), (16, 17, 2));
    // Explicit null (label 0) carrying IPv4.
    let f = cat(&[&eth(0x8847), &stack(&[0]), &ipv4(1, &[], 8, 0), &[8, 0, 0, 0, 0, 0, 0, 0]]);
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!((p.l3, p.proto, p.mpls_depth), (L3::V4 { src: SRC4, dst: DST4 }, 1, 1));
    // Version 4 with a bad header length is a malformed IPv4 header, not a guess gone wrong.
    let mut bad = ipv4(1, &[], 8, 0);
    bad[0] = 0x44;
    let f = cat(&[&eth(0x8847), &stack(&[5]), &bad]);
    assert_eq!(dec(LinkType::Ethernet, &f), Err(DecodeError::BadIpv4HeaderLen));
}

#[test]
fn mpls_truncated() {
    let f = cat(&[&eth(0x8847), &stack(&[1, 2, 3])]);
    // Cut inside the stack, and a stack whose bottom label ends the frame.
    for cut in 14..=f.len() {
        assert_eq!(dec(LinkType::Ethernet, &f[..cut]), Err(DecodeError::TruncatedMpls), "cut at {cut}");
    }
    // No bottom-of-stack bit before the frame ends.
    let f = cat(&[&eth(0x8847), &label(1, false), &label(2, false)]);
    assert_eq!(dec(LinkType::Ethernet, &f), Err(DecodeError::TruncatedMpls));
}

#[test]
fn cisco_fabricpath_and_vntag_are_walked() {
    // FabricPath: the rest of the tag and the inner MACs (16 bytes), then the inner EtherType.
    let mut f = eth(0x8903);
    f.extend_from_slice(&[0; 14]);
    f.extend_from_slice(&0x8100u16.to_be_bytes());
    tag(&mut f, 55, 0x0800);
    f.extend(cat(&[&ipv4(17, &[], 8, 0), &udp(1, 2, 8)]));
    let p = dec(LinkType::Ethernet, &f).unwrap();
    // A tag behind the FabricPath header is not the frame's VLAN (pmacctd reports 0).
    assert_eq!((p.vlan, p.vlan_depth, p.etype, p.link_etype), (0, 0, 0x0800, 0x8903));
    assert_eq!((p.l3, p.l3_offset, p.src_mac), (L3::V4 { src: SRC4, dst: DST4 }, 34, MAC_S));
    // VN-Tag: 4 bytes of tag, then the EtherType.
    let f = cat(&[&eth(0x8926), &[0, 0, 0, 0, 0x86, 0xdd], &ipv6(59, 0)]);
    let p = dec(LinkType::Ethernet, &f).unwrap();
    assert_eq!((p.etype, p.link_etype, p.l3_offset, p.proto), (0x86dd, 0x8926, 20, 59));
    assert_eq!(dec(LinkType::Ethernet, &f[..19]), Err(DecodeError::TruncatedCiscoTag));
    assert_eq!(dec(LinkType::Ethernet, &eth(0x8903)), Err(DecodeError::TruncatedCiscoTag));
}

#[test]
fn null_and_loop_address_families() {
    let v4 = cat(&[&ipv4(17, &[], 8, 0), &udp(1, 2, 8)]);
    let v6 = cat(&[&ipv6(17, 8), &udp(1, 2, 8)]);
    for (af, l3) in [(2u32, &v4), (10, &v6), (24, &v6), (28, &v6), (30, &v6)] {
        for hdr in [af.to_le_bytes(), af.to_be_bytes()] {
            let f = cat(&[&hdr, l3]);
            let p = dec(LinkType::Null, &f).unwrap_or_else(|e| panic!("AF {af} {hdr:?}: {e}"));
            assert_eq!((p.l3_offset, p.dst_port, p.src_mac), (4, 2, [0; 6]), "AF {af}");
            assert_eq!(p.etype, if af == 2 { 0x0800 } else { 0x86dd });
            assert_eq!(p.link_etype, p.etype);
        }
    }
    // Another family (AF_UNIX) is not IP; a header cut short is a truncated link header.
    let p = decode(LinkType::Null, &cat(&[&1u32.to_le_bytes(), &v4]), 40).unwrap();
    assert_eq!((p.l3, p.ip_len, p.etype), (L3::None, 40, 0));
    assert_eq!(dec(LinkType::Null, &[2, 0, 0]), Err(DecodeError::TruncatedLink));
    assert_eq!(LinkType::from_dlt(0), Some(LinkType::Null));
    assert_eq!(LinkType::from_dlt(108), Some(LinkType::Null));
}

#[test]
fn ppp_headers() {
    let v4 = cat(&[&ipv4(17, &[], 8, 0), &udp(1, 2, 8)]);
    let v6 = cat(&[&ipv6(17, 8), &udp(1, 2, 8)]);
    let cases: [(&[u8], &Vec<u8>, u16, u16); 6] = [
        (&[0xff, 0x03, 0x00, 0x21], &v4, 0x0800, 4),
        (&[0x00, 0x21], &v4, 0x0800, 2),
        (&[0x21], &v4, 0x0800, 1), // protocol-field compression
        (&[0xff, 0x03, 0x00, 0x57], &v6, 0x86dd, 4),
        (&[0xff, 0x03, 0x08, 0x00], &v4, 0x0800, 4), // an EtherType, as pmacctd also takes
        (&[0xff, 0x03, 0x86, 0xdd], &v6, 0x86dd, 4),
    ];
    for (hdr, l3, etype, off) in cases {
        let p = dec(LinkType::Ppp, &cat(&[hdr, l3])).unwrap_or_else(|e| panic!("{hdr:?}: {e}"));
        assert_eq!((p.etype, p.link_etype, p.l3_offset, p.dst_port), (etype, etype, off, 2), "{hdr:?}");
    }
    // MPLS over PPP: the stack is walked (pmacctd 1.7.7 reads the label as the IP header).
    let f = cat(&[&[0xff, 0x03, 0x02, 0x81], &stack(&[77]), &v4]);
    let p = dec(LinkType::Ppp, &f).unwrap();
    assert_eq!((p.mpls_top, p.mpls_depth, p.etype, p.link_etype, p.l3_offset), (77, 1, 0x0800, 0x8847, 8));
    assert_eq!(p.l3, L3::V4 { src: SRC4, dst: DST4 });
    // LCP is not IP; fewer than 4 bytes are a truncated header, as pmacctd drops them.
    let p = decode(LinkType::Ppp, &[0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4], 8).unwrap();
    assert_eq!((p.l3, p.etype, p.ip_len), (L3::None, 0xc021, 8));
    assert_eq!(dec(LinkType::Ppp, &[0xff, 0x03, 0x00]), Err(DecodeError::TruncatedLink));
    assert_eq!(LinkType::from_dlt(9), Some(LinkType::Ppp));
}

/// An 802.11 header: frame control, duration, three addresses, sequence, (a fourth address).
fn wlan(fc0: u8, fc1: u8, extra: usize) -> Vec<u8> {
    let mut h = vec![fc0, fc1, 0, 0];
    h.extend_from_slice(&MAC_D);
    h.extend_from_slice(&MAC_S);
    h.extend_from_slice(&MAC_D);
    h.extend_from_slice(&[0, 0]);
    h.extend(vec![0; extra]);
    h
}

const SNAP_V4: [u8; 8] = [0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00];

#[test]
fn ieee80211_data_frames() {
    let v4 = cat(&[&ipv4(17, &[], 8, 0), &udp(1, 2, 8)]);
    // (frame control, extra header bytes): to-DS, from-DS, four addresses, QoS, QoS + HT control.
    for (fc0, fc1, extra) in [(0x08, 0x01, 0), (0x08, 0x02, 0), (0x08, 0x03, 6), (0x88, 0x01, 2), (0x88, 0x81, 6)] {
        let f = cat(&[&wlan(fc0, fc1, extra), &SNAP_V4, &v4]);
        let p = dec(LinkType::Ieee80211, &f).unwrap_or_else(|e| panic!("{fc0:02x} {fc1:02x}: {e}"));
        assert_eq!((p.l3, p.etype, p.dst_port), (L3::V4 { src: SRC4, dst: DST4 }, 0x0800, 2), "{fc0:02x}");
        assert_eq!((p.l3_offset as usize, p.src_mac, p.dst_mac), (24 + extra + 8, [0; 6], [0; 6]));
    }
    // Not IP: protected, management (beacon), null function, non-SNAP LLC, SNAP ARP.
    for f in [
        cat(&[&wlan(0x08, 0x41, 0), &SNAP_V4, &v4]),
        cat(&[&wlan(0x80, 0x00, 0), &[0; 12]]),
        wlan(0x48, 0x01, 0),
        cat(&[&wlan(0x08, 0x01, 0), &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0]]),
        cat(&[&wlan(0x08, 0x01, 0), &[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x06], &[0; 28]]),
    ] {
        let p = decode(LinkType::Ieee80211, &f, 99).unwrap();
        assert_eq!((p.l3, p.ip_len), (L3::None, 99), "{f:02x?}");
    }
    // A data frame cut inside its header or its LLC/SNAP header.
    let f = cat(&[&wlan(0x08, 0x01, 0), &SNAP_V4, &v4]);
    assert_eq!(dec(LinkType::Ieee80211, &f[..1]), Err(DecodeError::TruncatedLink));
    assert_eq!(dec(LinkType::Ieee80211, &f[..20]), Err(DecodeError::TruncatedLink));
    assert_eq!(dec(LinkType::Ieee80211, &f[..24]), Err(DecodeError::TruncatedLlc));
    assert_eq!(dec(LinkType::Ieee80211, &f[..30]), Err(DecodeError::TruncatedLlc));
    assert_eq!(LinkType::from_dlt(105), Some(LinkType::Ieee80211));
}

#[test]
fn sll_llc_vlan_and_mpls() {
    let v4 = cat(&[&ipv4(17, &[], 8, 0), &udp(1, 2, 8)]);
    let sll = |proto: u16| -> Vec<u8> {
        let mut h = vec![0, 0, 0, 1, 0, 6];
        h.extend_from_slice(&MAC_S);
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&proto.to_be_bytes());
        h
    };
    let p = dec(LinkType::LinuxSll, &cat(&[&sll(0x0004), &SNAP_V4, &v4])).unwrap();
    assert_eq!((p.etype, p.l3_offset, p.src_mac), (0x0800, 24, MAC_S));
    assert_eq!(dec(LinkType::LinuxSll, &cat(&[&sll(0x0004), &SNAP_V4[..5]])), Err(DecodeError::TruncatedLlc));
    let p = dec(LinkType::LinuxSll, &cat(&[&sll(0x8100), &[0, 5, 8, 0], &v4])).unwrap();
    assert_eq!((p.vlan, p.vlan_depth, p.l3_offset), (5, 1, 20));
    let p = dec(LinkType::LinuxSll, &cat(&[&sll(0x8847), &stack(&[88]), &v4])).unwrap();
    assert_eq!((p.mpls_top, p.mpls_depth, p.etype, p.link_etype), (88, 1, 0x0800, 0x8847));
}

#[test]
fn plain_frames_carry_no_encapsulation() {
    let p = dec(LinkType::Ethernet, &eth_v4_tcp(0)).unwrap();
    assert_eq!((p.link_etype, p.mpls_top, p.mpls_bottom, p.mpls_depth, p.pppoe_session), (0x0800, 0, 0, 0, 0));
    let p = dec(LinkType::Ethernet, &cat(&[&eth(0x0806), &[0; 28]])).unwrap();
    assert_eq!((p.etype, p.link_etype), (0x0806, 0x0806));
}
