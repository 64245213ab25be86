//! Cost per flow record of decoding full datagrams: v5 (30 records) and v9/IPFIX (a typical
//! 18-field IPv4 template, 24 records per datagram, template already cached).

use std::net::{IpAddr, Ipv4Addr};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use xacct_wire::netflow::{encode_v5, Decoder, FlowRecord, MessageBuilder, NetflowHeader, TemplateField};

const EXP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn records(n: usize) -> Vec<FlowRecord> {
    (0..n)
        .map(|i| FlowRecord {
            src_addr: IpAddr::V4(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8)),
            dst_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            src_port: 1024 + i as u16,
            dst_port: 443,
            proto: 6,
            packets: 10,
            bytes: 1500,
            first_switched: 990_000,
            last_switched: 999_000,
            ..FlowRecord::default()
        })
        .collect()
}

fn fields() -> Vec<TemplateField> {
    [
        (8, 4),
        (12, 4),
        (15, 4),
        (7, 2),
        (11, 2),
        (4, 1),
        (5, 1),
        (6, 1),
        (10, 4),
        (14, 4),
        (16, 4),
        (17, 4),
        (9, 1),
        (13, 1),
        (2, 8),
        (1, 8),
        (22, 4),
        (21, 4),
    ]
    .into_iter()
    .map(|(ie, len)| TemplateField::iana(ie, len))
    .collect()
}

fn bench(c: &mut Criterion) {
    let h =
        NetflowHeader { sys_uptime_ms: 1_000_000, unix_secs: 1_700_000_000, source_id: 1, ..NetflowHeader::default() };
    let mut g = c.benchmark_group("netflow");

    let v5 = encode_v5(&h, &records(30));
    g.throughput(Throughput::Elements(30));
    let mut dec = Decoder::default();
    g.bench_function("v5_per_30_records", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            dec.decode(EXP, black_box(&v5), &mut |_: &NetflowHeader, r: &FlowRecord| sum += r.bytes).ok();
            sum
        })
    });

    let f = fields();
    for (name, mut tmpl, mut data) in [
        ("v9_per_24_records", MessageBuilder::v9(&h), MessageBuilder::v9(&h)),
        ("ipfix_per_24_records", MessageBuilder::ipfix(&h), MessageBuilder::ipfix(&h)),
    ] {
        tmpl.template(256, &f);
        data.data(256, &f, &records(24));
        let (tmpl, data) = (tmpl.finish(), data.finish());
        let mut dec = Decoder::default();
        dec.decode(EXP, &tmpl, &mut |_: &NetflowHeader, _: &FlowRecord| {}).expect("template");
        g.throughput(Throughput::Elements(24));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut sum = 0u64;
                dec.decode(EXP, black_box(&data), &mut |_: &NetflowHeader, r: &FlowRecord| sum += r.bytes).ok();
                sum
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
