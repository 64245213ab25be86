//! Writes a synthetic pcap: `xacct-gen --kind mixed|small64 --packets N --flows F --seed S out.pcap`.

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Write a deterministic synthetic pcap for tests, demos and capacity runs")]
struct Args {
    /// mixed (realistic protocol/size/VLAN mix) or small64 (64-byte TCP/IPv4 frames).
    #[arg(long, default_value = "mixed")]
    kind: String,
    #[arg(long, default_value_t = 100_000)]
    packets: usize,
    #[arg(long, default_value_t = 10_000)]
    /// Distinct 5-tuples to draw from (small64: 0 = one per packet).
    flows: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let frames = match a.kind.as_str() {
        "mixed" => xacct_perf::traffic::mixed(a.packets, a.flows, a.seed),
        "small64" => {
            // Streamed: tens of millions of packets do not fit in memory as frames.
            xacct_perf::traffic::write_small64_pcap(&a.out, a.packets, a.flows, a.seed)?;
            println!("wrote {} frames to {}", a.packets, a.out.display());
            return Ok(());
        }
        k => anyhow::bail!("unknown --kind {k} (mixed|small64)"),
    };
    xacct_perf::traffic::write_pcap(&a.out, &frames)?;
    println!("wrote {} frames to {}", frames.len(), a.out.display());
    Ok(())
}
