//! What the memory budget costs on the workers' path: a worker's shard update with no limit,
//! with a limit it never reaches (the check itself, on the new-key path only), and full (every
//! new key refused and folded into the overflow entry); and the plugin's merge of a shard with
//! and without a limit. 100k distinct five-tuples, keys built as the workers build them.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use xacct_core::aggregate::{Aggregate, Projector, Refused, Table, MAX_KEY_WORDS};
use xacct_core::record::{Addr, Record};
use xacct_core::shard::ShardTable;

const N: usize = 100_000;

fn keys(p: &Projector, stride: usize) -> (Vec<u64>, Vec<xacct_core::Counters>) {
    let (mut k, mut k2) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
    let (mut keys, mut ctrs) = (Vec::new(), Vec::new());
    for i in 0..N as u32 {
        let h = i.wrapping_mul(2_654_435_761);
        let r = Record {
            src_ip: Addr::V4((0x0a00_0000 | (h & 0xffff)).to_be_bytes()),
            dst_ip: Addr::V4((0xc0a8_0000 | (h >> 16)).to_be_bytes()),
            src_port: (h % 60000) as u16,
            dst_port: 80,
            proto: 6,
            packets: 1,
            bytes: 64,
            ..Record::default()
        };
        p.pack(&r, 0, &mut k, &mut k2);
        keys.extend_from_slice(&k[..stride]);
        ctrs.push(p.counters(&r));
    }
    (keys, ctrs)
}

/// The worker's loop: 256-entry batches, refused entries to the overflow entry.
fn feed(t: &mut ShardTable, p: &Projector, keys: &[u64], ctrs: &[xacct_core::Counters], refused: &mut Refused) {
    let stride = t.stride();
    let (mut hashes, mut idx) = (Vec::new(), Vec::new());
    for (kc, cc) in keys.chunks(256 * stride).zip(ctrs.chunks(256)) {
        idx.clear();
        t.add_batch(kc, cc, &mut hashes, &mut idx);
        for &j in &idx {
            let j = j as usize;
            refused.note(hashes[j], &cc[j]);
            t.add(&p.overflow_of(&kc[j * stride..(j + 1) * stride]), &cc[j]);
        }
    }
}

fn bench(c: &mut Criterion) {
    let agg = Aggregate::parse("src_host,dst_host,src_port,dst_port,proto").expect("aggregate");
    let p = Projector::new(&agg, false);
    let stride = ShardTable::with_words(p.words()).stride();
    let (keys, ctrs) = keys(&p, stride);
    let mut g = c.benchmark_group("budget/shard_new_keys");
    g.throughput(Throughput::Elements(N as u64));
    for (name, limit) in [("unlimited", usize::MAX), ("limit_not_reached", 1 << 30), ("full_at_half", N / 2)] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || (ShardTable::with_words_for(p.words(), N, limit), Refused::default()),
                |(t, r)| feed(t, &p, &keys, &ctrs, r),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();

    let mut shard = ShardTable::with_words_for(p.words(), N, usize::MAX);
    feed(&mut shard, &p, &keys, &ctrs, &mut Refused::default());
    let mut g = c.benchmark_group("budget/merge_shard");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("unbounded", |b| {
        b.iter_batched_ref(|| Table::with_words(p.words()), |t| t.merge_shard(&shard), BatchSize::LargeInput)
    });
    for (name, limit) in [("limit_not_reached", 1 << 30), ("full_at_half", N / 2)] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || (Table::with_words(p.words()), Refused::default()),
                |(t, r)| t.merge_shard_bounded(&shard, limit, &p, r),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
