//! Per-packet cost of `decode` on the shapes that matter: the common small TCP/IPv4 frame, an
//! IPv6 frame that walks extension headers, and the same TCP/IPv4 frame inside PPPoE and under
//! a three-label MPLS stack.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use xacct_wire::{decode, LinkType};

/// 64-byte Ethernet + IPv4 + TCP (ACK) frame, as on the wire before the FCS.
fn tcp_v4_64() -> Vec<u8> {
    let mut f = vec![0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 50, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 192, 0, 2, 7]);
    f.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x10, 0x20, 0, 0, 0, 0, 0]);
    f.resize(64, 0);
    f
}

/// Ethernet + IPv6 + hop-by-hop + destination options + UDP.
fn udp_v6_ext() -> Vec<u8> {
    let mut f = vec![0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x86, 0xdd];
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 40, 0, 64]);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop -> dest opts
    f.extend_from_slice(&[17, 1, 1, 14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // dest opts -> UDP
    f.extend_from_slice(&[0x13, 0x88, 0x00, 0x35, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    f
}

/// `tcp_v4_64`'s IP packet after `encap` (EtherType first, then the encapsulation's headers).
fn encapsulated(encap: &[u8]) -> Vec<u8> {
    let plain = tcp_v4_64();
    let mut f = plain[..12].to_vec();
    f.extend_from_slice(encap);
    f.extend_from_slice(&plain[14..]);
    f
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    let pppoe = encapsulated(&[0x88, 0x64, 0x11, 0, 0x12, 0x34, 0, 52, 0x00, 0x21]);
    let mpls3 = encapsulated(&[0x88, 0x47, 0, 0x10, 0x00, 64, 0, 0x20, 0x00, 64, 0, 0x30, 0x01, 64]);
    for (name, frame) in [
        ("tcp_ipv4_64", tcp_v4_64()),
        ("udp_ipv6_ext", udp_v6_ext()),
        ("pppoe_tcp_ipv4", pppoe),
        ("mpls3_tcp_ipv4", mpls3),
    ] {
        assert!(decode(LinkType::Ethernet, &frame, frame.len() as u32).is_ok(), "{name} must decode");
        g.bench_function(name, |b| {
            b.iter(|| decode(LinkType::Ethernet, black_box(&frame), black_box(frame.len() as u32)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
