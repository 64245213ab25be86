//! Cost of decoding sFlow v5: per datagram of raw-header flow samples (the common shape from
//! switches), reported per sample.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use xacct_wire::sflow::{decode_datagram, DatagramBuilder, ExtSwitch, FlowSampleSpec};

/// Ethernet + IPv4 + TCP header as switches sample it (first 64 bytes of a 1518-byte frame).
fn header() -> Vec<u8> {
    let mut f = vec![0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0x05, 0xdc, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 192, 0, 2, 7]);
    f.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x10, 0x20, 0, 0, 0, 0, 0]);
    f.resize(64, 0);
    f
}

const SAMPLES: u32 = 10;

fn datagram() -> Vec<u8> {
    let h = header();
    let mut b = DatagramBuilder::new([192, 0, 2, 1].into(), 0, 1, 1000);
    for i in 0..SAMPLES {
        b.flow_sample(&FlowSampleSpec {
            sequence: i,
            source_id_type: 0,
            source_id_index: 3,
            sampling_rate: 1024,
            sample_pool: 1024 * i,
            drops: 0,
            input: 3,
            output: 4,
            header_protocol: 1,
            frame_length: 1518,
            stripped: 4,
            header: &h,
            switch: Some(ExtSwitch { src_vlan: 10, src_priority: 0, dst_vlan: 10, dst_priority: 0 }),
            router: None,
            gateway: None,
            tags: None,
        });
    }
    b.finish()
}

fn bench(c: &mut Criterion) {
    let dg = datagram();
    let mut g = c.benchmark_group("sflow");
    g.throughput(Throughput::Elements(u64::from(SAMPLES)));
    g.bench_function("v5_10_raw_header_samples", |b| {
        b.iter(|| {
            let mut bytes = 0u64;
            let r = decode_datagram(black_box(&dg), |s| bytes += u64::from(s.bytes));
            assert!(r.is_ok());
            bytes
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
