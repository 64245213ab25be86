//! Live-capture capacity on a veth pair in a private network namespace: the same traffic mix is
//! sent (by an AF_XDP socket on a thread pinned to core 0) into one end while xacctd (pinned to core 1 with
//! `taskset`) captures the other end with each capture method in turn. Reports packets/s
//! received and xacctd's CPU time per packet, side by side.
//!
//! On a veth the sender's core also runs the receiver's kernel work (XDP program, AF_XDP copy,
//! the packet socket's ring). So besides xacctd's own CPU per packet, the whole machine's busy
//! time during each run is read from /proc/stat and a baseline run (same traffic, nothing
//! capturing) is subtracted: what remains is the full cost of capturing, kernel included.
//! The XDP program alone is measured with BPF_PROG_TEST_RUN (perf/xdp_cost.sh). Run it on an
//! otherwise idle machine.
//!
//! Usage (root): xacct-vethbench [--packets N] [--methods xdp,afxdp,pcap] [--xacctd PATH]

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TX: &str = "xb0";
const RX: &str = "xb1";

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    packets: usize,
    #[arg(long, default_value = "xdp,afxdp,pcap", value_delimiter = ',')]
    methods: Vec<String>,
    /// xacctd binary (default: next to this one).
    #[arg(long)]
    xacctd: Option<PathBuf>,
}

fn sh(args: &[&str]) -> Result<()> {
    let st = Command::new(args[0]).args(&args[1..]).status().with_context(|| format!("{args:?}"))?;
    if !st.success() {
        bail!("{args:?}: {st}");
    }
    Ok(())
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32, tck: f64) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Ok((t(11) + t(12)) / tck)
}

/// Busy time of the whole machine so far (all CPUs, everything but idle and iowait), seconds.
fn machine_busy(tck: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or_default();
    let v: Vec<f64> = cpu.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: f64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle) / tck
}

/// Sends every frame from core 0; returns the seconds it took.
fn blast(frames: &[Vec<u8>]) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(c) = core_affinity::get_core_ids().and_then(|c| c.first().copied()) {
                core_affinity::set_for_current(c);
            }
            let mut tx = xacct_perf::afxdp_tx::AfXdpSender::open(TX).expect("AF_XDP sender");
            tx.send_all(frames).expect("send");
        });
    });
    start.elapsed().as_secs_f64()
}

fn counter(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .skip_while(|w| *w != name)
        .nth(1)
        .and_then(|v| v.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<()> {
    let a = Args::parse();
    let xacctd = a.xacctd.clone().unwrap_or_else(|| std::env::current_exe().expect("exe").with_file_name("xacctd"));
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET): run as root")?;
    std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1").ok();
    sh(&["ip", "link", "set", "lo", "up"])?;
    sh(&["ip", "link", "add", TX, "type", "veth", "peer", "name", RX])?;
    for d in [TX, RX] {
        sh(&["ip", "link", "set", d, "up"])?;
    }
    let tck: f64 =
        String::from_utf8(Command::new("getconf").arg("CLK_TCK").output()?.stdout)?.trim().parse().unwrap_or(100.0);
    let frames: Vec<Vec<u8>> = xacct_perf::traffic::mixed(a.packets, 100_000, 5).into_iter().map(|f| f.data).collect();
    let dir = std::env::temp_dir().join(format!("xacct-vethbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!("{} frames of the mixed traffic per method, sender pinned to core 0, xacctd to core 1", frames.len());
    // Baseline: the same traffic with nothing capturing (the kernel drops it unclaimed).
    let b0 = machine_busy(tck);
    let base_time = blast(&frames);
    std::thread::sleep(Duration::from_millis(500));
    let baseline = machine_busy(tck) - b0;
    println!(
        "baseline (nothing capturing): sent in {:.2}s ({:.0} pps), machine busy {:.3}s",
        base_time,
        frames.len() as f64 / base_time,
        baseline
    );
    for method in &a.methods {
        let conf = dir.join(format!("{method}.conf"));
        let log = dir.join(format!("{method}.log"));
        std::fs::write(
            &conf,
            format!(
                "pcap_interface: {RX}\ncapture_method: {method}\nworkers: 1\nplugins: memory\naggregate: src_host,dst_host,src_port,dst_port,proto\nimt_path: {}\n",
                dir.join(format!("{method}.pipe")).display()
            ),
        )?;
        let mut child = Command::new("taskset")
            .args(["-c", "1"])
            .arg(&xacctd)
            .arg("-f")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("start xacctd")?;
        let t = Instant::now();
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("capturing from") {
            if t.elapsed() > Duration::from_secs(20) || child.try_wait()?.is_some() {
                bail!("{method}: xacctd did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let cpu0 = cpu_seconds(child.id(), tck)?;
        let busy0 = machine_busy(tck);
        let send_time = blast(&frames);
        std::thread::sleep(Duration::from_millis(500));
        let busy = machine_busy(tck) - busy0;
        let cpu = cpu_seconds(child.id(), tck)? - cpu0;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        child.wait()?;
        let text = std::fs::read_to_string(&log)?;
        let line = text.lines().rev().find(|l| l.contains("source ") && l.contains("received")).unwrap_or_default();
        let received = counter(line, "received");
        let dropped = counter(line, "kernel_dropped") + counter(line, "queue_dropped");
        let n = frames.len() as f64;
        println!(
            "{method:6} sent {} in {:.2}s ({:.0} pps) | source received {received}, dropped (counted) {dropped} | xacctd cpu {:.3}s = {:.0} ns/packet | capture cost incl. kernel (machine busy - baseline) {:.0} ns/packet",
            frames.len(),
            send_time,
            n / send_time,
            cpu,
            cpu * 1e9 / n,
            (busy - baseline).max(0.0) * 1e9 / n
        );
    }
    Ok(())
}
