//! Replays NetFlow/IPFIX/sFlow datagrams to a collector.
//!
//! ```text
//! xacct-replay make  --proto v5|v9|ipfix|sflow --records N --flows K [--seed S] [--marker] OUT.pcap
//! xacct-replay count FILE.pcap
//! xacct-replay send  FILE.pcap --to HOST:PORT [--rate R] [--records N] [--core C]
//! xacct-replay sink  --port P [--seconds S]
//! ```
//!
//! `make` writes datagrams from our own encoders (a known mix, `K` distinct flows) as a pcap of
//! UDP frames; datagrams captured from real exporters (tcpdump on lo) are pcaps too, so `send`
//! replays either. `count` and `send` decode every datagram once with the collector's own
//! decoder (xacct-collect's `DatagramDecoder`) to know how many records and packets an exact
//! collector accounts for what is sent. `send` paces to `--rate` records (flows or samples)
//! per second, or sends flat out (`--rate 0`), cycling through the file until `--records`
//! have been sent (default: the file once), from a thread pinned to `--core`. Its last line
//! is `key=value` pairs for scripts. `sink` swallows datagrams, for exporters that must not
//! see ICMP port-unreachable while tcpdump records what they send.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xacct_collect::{CollectorConfig, DatagramDecoder, Protocol};
use xacct_perf::flowgen::{self, Proto};

#[derive(Parser)]
#[command(about = "Make, count and replay NetFlow/IPFIX/sFlow datagrams")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Writes datagrams made by our encoders to a pcap of UDP frames.
    Make {
        #[arg(long)]
        proto: String,
        /// Flow records (sFlow: samples) in total.
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
        /// Distinct flow keys they are drawn from.
        #[arg(long, default_value_t = 100_000)]
        flows: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Every record the marker flow 203.0.113.1:9 → 203.0.113.2:9 UDP instead.
        #[arg(long)]
        marker: bool,
        /// Destination port written in the frames (replay ignores it).
        #[arg(long, default_value_t = 2100)]
        port: u16,
        out: PathBuf,
    },
    /// Prints datagrams, records and packets of a datagram pcap.
    Count { pcap: PathBuf },
    /// Sends the datagrams of a pcap to a collector.
    Send {
        pcap: PathBuf,
        #[arg(long)]
        to: SocketAddr,
        /// Records (flows or samples) per second; 0 = flat out.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Stop after this many records, cycling through the file (default: the file once).
        #[arg(long)]
        records: Option<u64>,
        /// Core to pin the sending thread to.
        #[arg(long)]
        core: Option<usize>,
    },
    /// Receives and discards datagrams on 127.0.0.1:port.
    Sink {
        #[arg(long)]
        port: u16,
        /// Exit after this many seconds without a datagram.
        #[arg(long, default_value_t = 3600)]
        seconds: u64,
    },
}

/// Records and packets an exact collector accounts for each datagram, in order.
struct Counted {
    dgrams: Vec<Vec<u8>>,
    records: Vec<u64>,
    packets: Vec<u64>,
    protocol: Protocol,
}

/// sFlow datagrams start with a 32-bit version (2, 4 or 5), so their first 16 bits are zero;
/// NetFlow's first 16 bits are its version.
fn protocol_of(d: &[u8]) -> Protocol {
    if d.get(..2) == Some(&[0, 0]) {
        Protocol::Sflow
    } else {
        Protocol::Netflow
    }
}

fn count(pcap: &Path) -> Result<Counted> {
    let dgrams = flowgen::read_udp_pcap(pcap)?;
    let Some(first) = dgrams.first() else { bail!("{}: no UDP datagrams", pcap.display()) };
    let protocol = protocol_of(first);
    let cfg = CollectorConfig {
        protocol,
        ip: None,
        port: 0,
        recv_buffer: None,
        renormalize: false,
        time_new: false,
        methods: xacct_core::maps::Methods::COLLECTOR,
        ipv6_only: false,
        mcast_groups: Vec::new(),
    };
    let mut dec = DatagramDecoder::new(&cfg);
    let exporter = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (mut records, mut packets) = (Vec::with_capacity(dgrams.len()), Vec::with_capacity(dgrams.len()));
    for d in &dgrams {
        let (mut r, mut p) = (0u64, 0u64);
        dec.datagram(exporter, d, 0, &mut |rec| {
            r += 1;
            p += rec.packets;
        });
        records.push(r);
        packets.push(p);
    }
    // What a collector would not account, by reason (sFlow samples of non-IP or QinQ frames
    // are among them: `sample_not_accounted`).
    let (rows, totals) = dec.snapshot();
    let mut why: Vec<(&str, u64)> = Vec::new();
    for (reason, n) in rows.iter().flat_map(|r| r.malformed.iter()) {
        match why.iter_mut().find(|(w, _)| w == reason) {
            Some((_, m)) => *m += n,
            None => why.push((reason, *n)),
        }
    }
    why.extend(totals.into_iter().filter(|(k, v)| *v > 0 && *k == "unknown_template_sets"));
    if !why.is_empty() {
        eprintln!("{}: not accounted by a collector: {why:?}", pcap.display());
    }
    Ok(Counted { dgrams, records, packets, protocol })
}

fn send(c: &Counted, to: SocketAddr, rate: f64, limit: u64, core: Option<usize>) -> Result<()> {
    if let Some(core) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            bail!("cannot pin to core {core}");
        }
    }
    let sock = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).context("bind")?;
    sock.connect(to).with_context(|| format!("connect {to}"))?;
    let (mut dgrams, mut records, mut packets, mut bytes, mut failed) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    'outer: loop {
        for (i, d) in c.dgrams.iter().enumerate() {
            if records >= limit {
                break 'outer;
            }
            if rate > 0.0 {
                // Each datagram leaves when the records before it are due: a fixed schedule,
                // so a late datagram is followed by catching up, not by a lower rate.
                let due = Duration::from_secs_f64(records as f64 / rate);
                loop {
                    let now = start.elapsed();
                    if now >= due {
                        break;
                    }
                    let ahead = due - now;
                    if ahead > Duration::from_micros(200) {
                        std::thread::sleep(ahead - Duration::from_micros(100));
                    } else {
                        std::hint::spin_loop();
                    }
                }
            }
            match sock.send(d) {
                Ok(_) => {}
                // A collector that is not listening (yet) answers with ICMP port unreachable,
                // which shows up on the next send of a connected socket.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    failed += 1;
                    continue;
                }
                Err(e) => return Err(e).context("send"),
            }
            dgrams += 1;
            records += c.records.get(i).copied().unwrap_or(0);
            packets += c.packets.get(i).copied().unwrap_or(0);
            bytes += d.len() as u64;
        }
        if c.records.iter().all(|&r| r == 0) {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent datagrams={dgrams} records={records} packets={packets} bytes={bytes} seconds={secs:.3} records_per_s={:.0} refused={failed} protocol={}",
        records as f64 / secs.max(1e-9),
        c.protocol.name()
    );
    Ok(())
}

fn sink(port: u16, idle: u64) -> Result<()> {
    let s = UdpSocket::bind(("127.0.0.1", port)).with_context(|| format!("bind 127.0.0.1:{port}"))?;
    s.set_read_timeout(Some(Duration::from_secs(idle)))?;
    let mut buf = vec![0u8; 65536];
    let mut n = 0u64;
    loop {
        match s.recv(&mut buf) {
            Ok(_) => n += 1,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
            Err(e) => return Err(e).context("recv"),
        }
    }
    println!("sink received datagrams={n}");
    Ok(())
}

fn main() -> Result<()> {
    match Args::parse().cmd {
        Cmd::Make { proto, records, flows, seed, marker, port, out } => {
            let proto = Proto::parse(&proto)?;
            let dgrams = flowgen::make(proto, records, flows, seed, marker);
            flowgen::write_udp_pcap(&out, &dgrams, 40000, port)?;
            println!("wrote {} datagrams ({records} records over {flows} flows) to {}", dgrams.len(), out.display());
        }
        Cmd::Count { pcap } => {
            let c = count(&pcap)?;
            println!(
                "datagrams={} records={} packets={} protocol={}",
                c.dgrams.len(),
                c.records.iter().sum::<u64>(),
                c.packets.iter().sum::<u64>(),
                c.protocol.name()
            );
        }
        Cmd::Send { pcap, to, rate, records, core } => {
            let c = count(&pcap)?;
            let limit = records.unwrap_or_else(|| c.records.iter().sum());
            send(&c, to, rate, limit, core)?;
        }
        Cmd::Sink { port, seconds } => sink(port, seconds)?,
    }
    Ok(())
}
