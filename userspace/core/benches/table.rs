//! Table update cost: project a record onto an aggregate key and fold it into a Table, for the
//! 5-tuple and src_host aggregates over 100k distinct flows (cache-missing, like real traffic).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use xacct_core::aggregate::{Aggregate, Projector, Table, MAX_KEY_WORDS};
use xacct_core::record::{Addr, Record};
use xacct_core::shard::ShardTable;

fn records(n: u32) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let h = i.wrapping_mul(2_654_435_761);
            Record {
                src_ip: Addr::V4((0x0a00_0000 | (h & 0xffff)).to_be_bytes()),
                dst_ip: Addr::V4((0xc0a8_0000 | (h >> 16)).to_be_bytes()),
                src_port: (h % 60000) as u16,
                dst_port: 80,
                proto: 6,
                packets: 1,
                bytes: 64,
                ..Record::default()
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let recs = records(100_000);
    for agg in ["src_host", "src_host,dst_host,src_port,dst_port,proto"] {
        let a = Aggregate::parse(agg).expect("aggregate");
        let p = Projector::new(&a, false);
        let mut g = c.benchmark_group(format!("table_update/{agg}"));
        g.throughput(Throughput::Elements(recs.len() as u64));
        g.bench_function("project+add", |b| {
            b.iter_batched_ref(
                || {
                    // Warm table: steady state is updates to existing entries.
                    let mut t = Table::with_words(p.words());
                    let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
                    for r in &recs {
                        p.pack(r, 0, &mut k, &mut k2);
                        t.add(&k, &p.counters(r));
                    }
                    t
                },
                |t| {
                    let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
                    for r in &recs {
                        p.pack(r, 0, &mut k, &mut k2);
                        t.add(&k, &p.counters(r));
                    }
                },
                BatchSize::LargeInput,
            )
        });
        // The workers' path: keys of a 256-record batch collected, then one `add_batch`.
        g.bench_function("project+shard_add_batch", |b| {
            b.iter_batched_ref(
                || {
                    let mut t = ShardTable::with_words(p.words());
                    let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
                    for r in &recs {
                        p.pack(r, 0, &mut k, &mut k2);
                        t.add(&k, &p.counters(r));
                    }
                    t
                },
                |t| {
                    let stride = t.stride();
                    let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
                    let (mut keys, mut ctrs, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
                    for chunk in recs.chunks(256) {
                        keys.clear();
                        ctrs.clear();
                        for r in chunk {
                            p.pack(r, 0, &mut k, &mut k2);
                            keys.extend_from_slice(&k[..stride]);
                            ctrs.push(p.counters(r));
                        }
                        t.add_batch(&keys, &ctrs, &mut hashes, &mut Vec::new());
                    }
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
