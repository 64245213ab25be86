//! Capacity of the collectors' work per core, without the socket: datagrams held in memory
//! (pcaps from `xacct-replay make`, or captured from real exporters) are decoded by the
//! collector's own `DatagramDecoder` and the records folded into a real `Worker`'s shard
//! tables, on one pinned thread, exactly as a collector thread and a worker do it.
//!
//! For each file: records (flows or samples) per second decoded only, and decoded AND
//! aggregated, per core; the table's entries afterwards.

use anyhow::{Context, Result};
use clap::Parser;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use xacct_capture::Batch;
use xacct_collect::{CollectorConfig, DatagramDecoder, Protocol};
use xacct_core::aggregate::{Aggregate, Projector, Table};
use xacct_core::stats::{PluginStats, SourceStats};
use xacct_wire::LinkType;
use xacctd::pipeline::{PluginSpec, Sampling, Worker};

#[derive(Parser)]
struct Args {
    /// Datagram pcaps.
    #[arg(required = true)]
    pcaps: Vec<PathBuf>,
    #[arg(long, default_value = "src_host,dst_host,src_port,dst_port,proto")]
    aggregate: String,
    /// Timed passes over each file (after one untimed warm-up pass).
    #[arg(long, default_value_t = 3)]
    passes: usize,
    /// Core to pin the measuring thread to.
    #[arg(long, default_value_t = 0)]
    core: usize,
}

fn decoder(dgrams: &[Vec<u8>]) -> DatagramDecoder {
    let protocol =
        if dgrams.first().and_then(|d| d.get(..2)) == Some(&[0, 0]) { Protocol::Sflow } else { Protocol::Netflow };
    DatagramDecoder::new(&CollectorConfig {
        protocol,
        ip: None,
        port: 0,
        recv_buffer: None,
        renormalize: false,
        time_new: false,
        methods: xacct_core::maps::Methods::COLLECTOR,
        ipv6_only: false,
        mcast_groups: Vec::new(),
    })
}

const EXPORTER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const NOW: i64 = 1_700_000_000;

/// Records per second decoding only (records are built and dropped).
fn decode_only(dgrams: &[Vec<u8>], passes: usize) -> (u64, f64) {
    let mut dec = decoder(dgrams);
    let mut n = 0u64;
    let mut run = |n: &mut u64| {
        for d in dgrams {
            dec.datagram(EXPORTER, d, NOW, &mut |r| {
                std::hint::black_box(r);
                *n += 1;
            });
        }
    };
    run(&mut 0);
    let t = Instant::now();
    for _ in 0..passes {
        run(&mut n);
    }
    (n, t.elapsed().as_secs_f64())
}

/// Records per second decoded into batches and accounted by a Worker; the table afterwards.
fn decode_and_aggregate(dgrams: &[Vec<u8>], passes: usize, agg: &Aggregate) -> (u64, f64, usize) {
    let spec = PluginSpec {
        name: "perf".into(),
        projector: Projector::new(agg, false),
        filter: None,
        history: None,
        nets: None,
        capture_methods: xacct_core::maps::Methods::PMACCTD,
        ports: None,
        tag_map: None,
        tag_filters: Default::default(),
        post_tag: None,
        post_tag2: None,
        stats: Arc::new(PluginStats::default()),
        shard_limit: usize::MAX,
        accounts: true,
        sflow: None,
    };
    let sources = Arc::new(vec![Arc::new(SourceStats::default())]);
    let mut w = Worker::new(Arc::new(vec![spec]), sources, Sampling::default());
    let mut dec = decoder(dgrams);
    let mut batch = Batch::new(LinkType::Ethernet, 0);
    let mut n = 0u64;
    let mut run = |n: &mut u64, w: &mut Worker| {
        for d in dgrams {
            dec.datagram(EXPORTER, d, NOW, &mut |r| {
                batch.records.push(r);
                *n += 1;
                if batch.is_full() {
                    w.process_batch(&batch);
                    batch.clear();
                }
            });
        }
        w.process_batch(&batch);
        batch.clear();
    };
    run(&mut 0, &mut w);
    let t = Instant::now();
    for _ in 0..passes {
        run(&mut n, &mut w);
    }
    let secs = t.elapsed().as_secs_f64();
    let mut table = Table::with_words(Projector::new(agg, false).words());
    w.drain_shard(0, &mut table);
    (n, secs, table.len())
}

fn main() -> Result<()> {
    let a = Args::parse();
    let agg = Aggregate::parse(&a.aggregate).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !core_affinity::set_for_current(core_affinity::CoreId { id: a.core }) {
        anyhow::bail!("cannot pin to core {}", a.core);
    }
    println!("aggregate {agg}, {} timed passes per file, one thread on core {}", a.passes, a.core);
    for p in &a.pcaps {
        let dgrams = xacct_perf::flowgen::read_udp_pcap(p).with_context(|| format!("reading {}", p.display()))?;
        let (n, secs) = decode_only(&dgrams, a.passes);
        let (m, secs2, entries) = decode_and_aggregate(&dgrams, a.passes, &agg);
        println!(
            "{}: datagrams={} records_per_pass={} decode_only_per_core={:.0}/s decode_and_aggregate_per_core={:.0}/s ns_per_record={:.1} entries={entries}",
            p.display(),
            dgrams.len(),
            m / a.passes.max(1) as u64,
            n as f64 / secs,
            m as f64 / secs2,
            secs2 * 1e9 / m.max(1) as f64,
        );
    }
    Ok(())
}
