//! Capacity of the accounting pipeline itself: a pcap held in memory is fed, batch by batch,
//! through real `Worker`s (decode → filter → project → shard) on 1..=N pinned threads.
//! Reports packets/s in total and per core, per-batch latency percentiles (hdrhistogram), and
//! memory per table entry.

use anyhow::{Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use xacct_capture::Batch;
use xacct_core::aggregate::{Aggregate, Projector, Table};
use xacct_core::filter::Filter;
use xacct_core::stats::{PluginStats, SourceStats};
use xacctd::pipeline::{PluginSpec, Sampling, Worker};

#[derive(Parser)]
struct Args {
    /// pcap file to load into memory.
    pcap: PathBuf,
    /// Aggregate of the single plugin.
    #[arg(long, default_value = "src_host,dst_host,src_port,dst_port,proto")]
    aggregate: String,
    /// Optional aggregate_filter.
    #[arg(long)]
    filter: Option<String>,
    /// Worker counts to measure, e.g. 1,2.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    workers: Vec<usize>,
    /// Passes over the file per worker (more passes, steadier numbers).
    #[arg(long, default_value_t = 5)]
    passes: usize,
}

fn load(path: &PathBuf) -> Result<Vec<Batch>> {
    let mut cap = pcap::Capture::from_file(path).with_context(|| format!("open {}", path.display()))?;
    let link = xacct_wire::LinkType::from_dlt(cap.get_datalink().0).context("link type")?;
    let mut batches = vec![Batch::new(link, 0)];
    while let Ok(p) = cap.next_packet() {
        if batches.last().is_some_and(|b| b.is_full()) {
            batches.push(Batch::new(link, 0));
        }
        if let Some(b) = batches.last_mut() {
            b.push(p.data, p.header.len, p.header.ts.tv_sec);
        }
    }
    Ok(batches)
}

fn main() -> Result<()> {
    let a = Args::parse();
    let batches = Arc::new(load(&a.pcap)?);
    let packets: usize = batches.iter().map(|b| b.len()).sum();
    let agg = Aggregate::parse(&a.aggregate).map_err(|e| anyhow::anyhow!("{e}"))?;
    let filter = a.filter.as_deref().map(Filter::parse).transpose().map_err(|e| anyhow::anyhow!("{e}"))?;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    println!("input: {} ({} packets in {} batches), aggregate: {}", a.pcap.display(), packets, batches.len(), agg);
    for &n in &a.workers {
        let spec = PluginSpec {
            name: "perf".into(),
            projector: Projector::new(&agg, false),
            filter: filter.clone(),
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
        let specs = Arc::new(vec![spec]);
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let specs = specs.clone();
                let batches = batches.clone();
                let core = cores.get(i % cores.len().max(1)).copied();
                let passes = a.passes;
                std::thread::spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    let sources = Arc::new(vec![Arc::new(SourceStats::default())]);
                    let mut w = Worker::new(specs, sources, Sampling::default());
                    let mut hist = Histogram::<u64>::new(3).expect("histogram");
                    let t = Instant::now();
                    for _ in 0..passes {
                        for b in batches.iter() {
                            let bt = Instant::now();
                            w.process_batch(b);
                            let _ = hist.record(bt.elapsed().as_nanos() as u64);
                        }
                    }
                    (t.elapsed(), hist, w)
                })
            })
            .collect();
        let mut hist = Histogram::<u64>::new(3).expect("histogram");
        let mut busy = 0.0;
        let mut entries = 0;
        let mut mem = 0;
        let mut shard = 0;
        for h in handles {
            let (el, hh, mut w) = h.join().map_err(|_| anyhow::anyhow!("worker panicked"))?;
            busy += el.as_secs_f64();
            hist.add(&hh).ok();
            let shard_mem = w.shard_bytes(0);
            let mut t = Table::with_words(w_words(&agg));
            w.drain_shard(0, &mut t);
            entries = t.len();
            mem = t.allocated_bytes();
            shard = shard_mem;
        }
        let wall = start.elapsed().as_secs_f64();
        let total = (packets * a.passes * n) as f64;
        println!(
            "workers={n} packets={} wall={:.3}s pps_total={:.0} pps_per_core={:.0} batch_ns p50={} p99={} p99.9={} entries={} table_bytes_per_entry={:.1} (key {} + counters/overhead {:.1}) worker_shard_bytes_per_entry={:.1}",
            total as u64,
            wall,
            total / wall,
            total / busy,
            hist.value_at_quantile(0.5),
            hist.value_at_quantile(0.99),
            hist.value_at_quantile(0.999),
            entries,
            mem as f64 / entries.max(1) as f64,
            w_words(&agg) * 8,
            mem as f64 / entries.max(1) as f64 - (w_words(&agg) * 8) as f64,
            shard as f64 / entries.max(1) as f64,
        );
    }
    Ok(())
}

fn w_words(agg: &Aggregate) -> usize {
    Projector::new(agg, false).words()
}
