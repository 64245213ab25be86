//! pre_tag_map cost per record by map size, with and without `maps_index`: maps of N rules
//! `id=<i> ip=<exporter i> in=<i % 48>` (the usual shape: one exporter and interface per
//! rule) and a final catch-all, over records from every exporter (so a scan walks on average
//! half the map) plus some no rule takes but the catch-all.
//!
//! Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not wall time, so that a
//! machine shared with builds reports what a record costs rather than how long the scheduler
//! kept the bench off the CPU.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use xacct_core::record::{Addr, Record};
use xacct_core::tag::{parse_map_with, MapOptions};

fn exporter(i: u32) -> [u8; 4] {
    (0x0a00_0000 | i).to_be_bytes()
}

fn map_text(n: u32) -> String {
    let mut s = String::new();
    for i in 0..n {
        let [a, b, c, d] = exporter(i);
        s += &format!("id={} ip={a}.{b}.{c}.{d} in={}\n", i + 1, i % 48);
    }
    s += "id=999999\n";
    s
}

fn records(n: u32, count: u32) -> Vec<Record> {
    (0..count)
        .map(|k| {
            let h = k.wrapping_mul(2_654_435_761);
            let i = h % (n + n / 10 + 1);
            Record { exporter: Addr::V4(exporter(i)), in_iface: i % 48, proto: 6, packets: 1, ..Record::default() }
        })
        .collect()
}

fn cpu_time() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pre_tag_map");
    for n in [10u32, 1_000, 10_000] {
        let recs = records(n, 4096);
        g.throughput(Throughput::Elements(recs.len() as u64));
        for index in [false, true] {
            if n == 10_000 && !index {
                // An ordered scan of 10,000 rules takes tens of µs per record: a few samples do.
                g.sample_size(10);
            } else {
                g.sample_size(50);
            }
            let m = parse_map_with(&map_text(n), "bench", &MapOptions { index, ..MapOptions::default() }).expect("map");
            let name = if index { "indexed" } else { "scan" };
            g.bench_with_input(BenchmarkId::new(name, n), &recs, |b, recs| {
                b.iter_custom(|iters| {
                    let start = cpu_time();
                    let mut sum = 0u64;
                    for _ in 0..iters {
                        for r in recs {
                            m.eval(black_box(r), |t| sum = sum.wrapping_add(t.tag));
                        }
                    }
                    black_box(sum);
                    cpu_time().saturating_sub(start)
                })
            });
        }
    }
    g.finish();

    // perf/tag_cost.sh's map: `filter=` rules, which the index files under the nets their
    // expressions need.
    let mut g = c.benchmark_group("pre_tag_map_filter");
    g.sample_size(30);
    let mut text = String::new();
    for i in 1..=100u32 {
        text += &format!("id={i} filter='src net 10.0.{}.0/24'\n", i % 256);
    }
    text += "id=9999\n";
    let recs: Vec<Record> = (0..4096u32)
        .map(|k| {
            let h = k.wrapping_mul(2_654_435_761) >> 8;
            Record {
                src_ip: Addr::V4([10, 0, (h % 128) as u8, (h >> 8) as u8]),
                dst_ip: Addr::V4([10, 1, 0, 1]),
                proto: 6,
                packets: 1,
                bytes: 100,
                ..Record::default()
            }
        })
        .collect();
    g.throughput(Throughput::Elements(recs.len() as u64));
    for index in [false, true] {
        let m = parse_map_with(&text, "bench", &MapOptions { index, ..MapOptions::default() }).expect("map");
        let name = if index { "indexed" } else { "scan" };
        g.bench_with_input(BenchmarkId::new(name, 100), &recs, |b, recs| {
            b.iter_custom(|iters| {
                let start = cpu_time();
                let mut sum = 0u64;
                for _ in 0..iters {
                    for r in recs {
                        m.eval(black_box(r), |t| sum = sum.wrapping_add(t.tag));
                    }
                }
                black_box(sum);
                cpu_time().saturating_sub(start)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
