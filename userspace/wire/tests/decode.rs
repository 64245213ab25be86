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
    assert_eq!(LinkType::from_dlt(0), None);
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
