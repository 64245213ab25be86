//! Spool throughput: push (frame + fsync + rename + directory fsync) then front (read, CRC,
//! decode) and pop (unlink + directory fsync) of a realistic refresh batch: the plugin's own
//! `Batch` type with a 5-tuple aggregate (`src_host,dst_host,src_port,dst_port,proto`) and
//! history stamps. Reported as bytes of spooled JSON per second; batches/s is 1 / time.
//!
//! `cargo bench -p xacct-sql --bench spool`. The spool lives in a temporary directory under
//! $TMPDIR (default /tmp): the figure is the disk's fsync cost as much as our code's.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xacct_sql::batch::{Batch, ColSpec, ParamKind, Row, Shape, Value};
use xacct_sql::spool::Spool;

fn batch(id: u64, rows: usize) -> Batch {
    let col = |name: &str, kind| ColSpec { name: name.to_string(), kind };
    let shape = Shape {
        keys: vec![
            col("ip_src", ParamKind::Inet),
            col("ip_dst", ParamKind::Inet),
            col("port_src", ParamKind::Int),
            col("port_dst", ParamKind::Int),
            col("ip_proto", ParamKind::Int),
        ],
        tcp_flags: false,
        tcp_flags_or: false,
        flows: true,
        stamps: true,
        since_epoch: false,
    };
    let rows = (0..rows as u64)
        .map(|i| Row {
            keys: vec![
                Value::Text(format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)),
                Value::Text(format!("150.145.{}.{}", 80 + (i >> 8) % 16, (i * 7) & 255)),
                Value::Int(1024 + (i * 31 % 60000) as i64),
                Value::Int([80, 443, 53, 22, 8080][i as usize % 5]),
                Value::Int([6, 17][i as usize % 2]),
            ],
            packets: 1 + i % 1000,
            bytes: 64 + (i * 1337) % 1_500_000,
            flows: 1 + i % 7,
            tcp_flags: 0,
        })
        .collect();
    Batch {
        id,
        table: "acct_v9".into(),
        bin: Some(1_709_640_000),
        shape,
        rows,
        made: 1_709_640_060,
        recovery: false,
        target: None,
    }
}

fn push_pop(c: &mut Criterion) {
    let mut g = c.benchmark_group("spool_push_front_pop");
    g.sample_size(30);
    for rows in [1_000usize, 10_000] {
        let b = batch(1, rows);
        let json = serde_json::to_vec(&b).expect("encode");
        g.throughput(Throughput::Bytes(json.len() as u64));
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spool::open(dir.path()).expect("open spool");
        let mut id = 0u64;
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{rows}_rows_{}KiB", json.len() / 1024)),
            &b,
            |bch, b| {
                bch.iter(|| {
                    id += 1;
                    s.push(id, b).expect("push");
                    let (got, back): (u64, Batch) = s.front().expect("front").expect("an entry");
                    assert_eq!(got, id);
                    assert_eq!(back.rows.len(), b.rows.len());
                    s.pop_front().expect("pop");
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, push_pop);
criterion_main!(benches);
