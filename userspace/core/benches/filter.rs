//! Per-record filter cost on the hot path, for typical pmacct `aggregate_filter` expressions,
//! over a mix of IPv4/IPv6 TCP/UDP records.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use xacct_core::filter::Filter;
use xacct_core::record::{Addr, Record};

fn records(n: u32) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let h = i.wrapping_mul(2_654_435_761);
            let v6 = h % 5 == 0;
            Record {
                etype: if v6 { 0x86dd } else { 0x0800 },
                src_ip: if v6 {
                    Addr::V6((0x2001_0db8u128 << 96 | u128::from(h)).to_be_bytes())
                } else {
                    Addr::V4((0x0a00_0000 | (h & 0xffff)).to_be_bytes())
                },
                dst_ip: if v6 {
                    Addr::V6((0x2001_0db9u128 << 96 | u128::from(h >> 7)).to_be_bytes())
                } else {
                    Addr::V4((0xc0a8_0000 | (h >> 16)).to_be_bytes())
                },
                src_port: (h % 60000) as u16,
                dst_port: [80, 443, 53, 22][(h % 4) as usize],
                proto: if h % 3 == 0 { 17 } else { 6 },
                tcp_flags: (h >> 24) as u8,
                vlan_depth: (h % 7 == 0) as u8,
                packets: 1,
                bytes: 64 + u64::from(h % 1400),
                ..Record::default()
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let recs = records(4096);
    let mut g = c.benchmark_group("filter");
    g.throughput(Throughput::Elements(recs.len() as u64));
    for expr in [
        "src net 10.0.0.0/16",
        "tcp port 80 or udp port 53",
        "not (src net 10.0.0.0/8 or dst net 192.168.0.0/16) and port 443",
        "vlan and dst net 192.168.0.0/20",
        "ip6 and net 2001:db8::/32 and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
    ] {
        let f = Filter::parse(expr).expect("filter");
        g.bench_function(expr, |b| b.iter(|| recs.iter().filter(|r| f.matches(black_box(r))).count()));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
