//! Live-capture cost on a veth pair in a private network namespace: the same traffic is sent
//! (by an AF_XDP socket on a thread pinned to core 0) into one end while xacctd (pinned to core 1
//! with `taskset`) captures the other end with each capture method in turn: XDP pre-aggregation
//! (`xdp_action: drop`, as on a mirror port), AF_XDP, libpcap. Reports, per method, the CPU it
//! costs per packet, kernel included.
//!
//! Where the CPU goes on a veth: the receiver's kernel work (the XDP program, the AF_XDP copy,
//! the packet socket) runs in the sender's `sendto` on core 0, or in ksoftirqd. So the cost of a
//! method is the CPU time of the sender thread, of every ksoftirqd and of xacctd (per task, from
//! the kernel's accounting, so other load on the machine does not enter it), minus the same for
//! a baseline run that sends the same frames with nothing capturing in the same kernel mode:
//! for libpcap, no XDP program; for XDP and AF_XDP, a two-instruction XDP program that drops
//! (veth in XDP mode copies every frame into a page of its own before any program runs, a cost
//! of the test bed, not of capturing).
//!
//! Usage (root): xacct-vethbench [--packets N] [--flows 100000,1000] [--methods xdp,afxdp,pcap]
//! [--xdp-flow-entries N]. With VETHBENCH_DEBUG set it also prints xacctd's CPU per thread
//! before shutdown (where a method's userspace time goes).

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
    /// Distinct 5-tuples in the traffic, one run of every method per value: many flows with
    /// few packets each is the hard case for pre-aggregation.
    #[arg(long, default_value = "100000,1000", value_delimiter = ',')]
    flows: Vec<u64>,
    /// `xdp_flow_entries` for the XDP runs (default: twice the flows, at least 65536).
    #[arg(long)]
    xdp_flow_entries: Option<u64>,
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

/// utime + stime of a task (process or thread) from its /proc stat file, in seconds.
fn stat_cpu(path: &str, tck: f64) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / tck
}

/// CPU seconds of every ksoftirqd thread: softirq work the kernel defers out of the sender.
fn ksoftirqd_cpu(tck: f64) -> f64 {
    let mut sum = 0.0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let p = e.path();
        if std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.starts_with("ksoftirqd/")) {
            sum += stat_cpu(&p.join("stat").display().to_string(), tck);
        }
    }
    sum
}

/// This thread's CPU time (user + system), seconds: the sender's, softirq work it ran included.
fn thread_cpu() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_THREAD is valid on Linux.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Sends every frame from core 0; returns (seconds it took, CPU seconds of the sender thread).
fn blast(frames: &[Vec<u8>]) -> (f64, f64) {
    let start = Instant::now();
    let cpu = std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(c) = core_affinity::get_core_ids().and_then(|c| c.first().copied()) {
                core_affinity::set_for_current(c);
            }
            let mut tx = xacct_perf::afxdp_tx::AfXdpSender::open(TX).expect("AF_XDP sender");
            let c0 = thread_cpu();
            tx.send_all(frames).expect("send");
            thread_cpu() - c0
        })
        .join()
        .expect("sender thread")
    });
    (start.elapsed().as_secs_f64(), cpu)
}

/// Kernel-side CPU of one send: the sender thread plus ksoftirqd, seconds.
fn send_measured(frames: &[Vec<u8>], tck: f64) -> (f64, f64) {
    let k0 = ksoftirqd_cpu(tck);
    let (secs, sender) = blast(frames);
    std::thread::sleep(Duration::from_millis(300));
    (secs, sender + ksoftirqd_cpu(tck) - k0)
}

fn counter(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .skip_while(|w| *w != name)
        .nth(1)
        .and_then(|v| v.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .unwrap_or(0)
}

/// Attaches (native mode) a two-instruction program returning XDP_DROP, built with clang.
fn attach_drop_program(dir: &std::path::Path) -> Result<()> {
    let src = dir.join("drop.c");
    let obj = dir.join("drop.o");
    std::fs::write(&src, "__attribute__((section(\"xdp\"), used)) int drop(void *ctx) { return 1; }\nchar _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n")?;
    let st = Command::new("clang").args(["-O2", "-target", "bpf", "-c"]).arg(&src).arg("-o").arg(&obj).status()?;
    if !st.success() {
        bail!("clang could not build the baseline XDP program (cargo xtask setup installs clang)");
    }
    sh(&["ip", "link", "set", "dev", RX, "xdpdrv", "obj", obj.to_str().unwrap_or_default(), "sec", "xdp"])
}

/// xacctd's CPU seconds from `from` until it has exited (final harvest and flush included).
fn run_xacctd(
    xacctd: &std::path::Path,
    conf: &std::path::Path,
    log: &std::path::Path,
    frames: &[Vec<u8>],
    tck: f64,
) -> Result<(f64, f64, f64, String)> {
    let mut child = Command::new("taskset")
        .args(["-c", "1"])
        .arg(xacctd)
        .arg("-f")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("start xacctd")?;
    let t = Instant::now();
    while !std::fs::read_to_string(log).unwrap_or_default().contains("capturing from") {
        if t.elapsed() > Duration::from_secs(20) || child.try_wait()?.is_some() {
            bail!("xacctd did not start: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();
    let cpu0 = stat_cpu(&format!("/proc/{pid}/stat"), tck);
    let (secs, kernel) = send_measured(frames, tck);
    if std::env::var_os("VETHBENCH_DEBUG").is_some() {
        eprintln!("xacctd cpu before shutdown: {:.3}s", stat_cpu(&format!("/proc/{pid}/stat"), tck) - cpu0);
        for t in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            eprintln!("  {} {:.3}s", comm.trim(), stat_cpu(&t.path().join("stat").display().to_string(), tck));
        }
    }
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    // wait4: the whole process's CPU (every thread, the final harvest included) at its exit.
    let mut status = 0;
    // SAFETY: rusage is ours and zeroed; `pid` is our child, not yet reaped.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut ru) };
    if r < 0 {
        bail!("wait4 xacctd: {}", std::io::Error::last_os_error());
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = tv(ru.ru_utime) + tv(ru.ru_stime) - cpu0;
    Ok((secs, kernel, cpu, std::fs::read_to_string(log)?))
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
    let dir = std::env::temp_dir().join(format!("xacct-vethbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for &nflows in &a.flows {
        let frames: Vec<Vec<u8>> =
            xacct_perf::traffic::mixed(a.packets, nflows, 5).into_iter().map(|f| f.data).collect();
        let n = frames.len() as f64;
        println!(
            "\n{} frames of the mixed traffic, {nflows} distinct 5-tuples (aggregate src_host,dst_host,src_port,dst_port,proto); sender on core 0, xacctd on core 1",
            frames.len()
        );
        // Baselines: nothing capturing, without and with veth's XDP mode.
        let (t_none, base_none) = send_measured(&frames, tck);
        attach_drop_program(&dir)?;
        let (t_drop, base_drop) = send_measured(&frames, tck);
        sh(&["ip", "link", "set", "dev", RX, "xdpdrv", "off"])?;
        println!(
            "baseline, no capture:        {:>5.0} ns/packet kernel ({:.0} pps)\nbaseline, XDP_DROP program:  {:>5.0} ns/packet kernel ({:.0} pps)",
            base_none * 1e9 / n,
            n / t_none,
            base_drop * 1e9 / n,
            n / t_drop
        );
        println!(
            "{:<7} {:>10} {:>22} {:>18} {:>18}   counters",
            "method", "pps", "kernel ns/pkt (-base)", "xacctd ns/pkt", "total ns/pkt"
        );
        let mut totals = Vec::new();
        for method in &a.methods {
            let conf = dir.join(format!("{method}.conf"));
            let log = dir.join(format!("{method}-{nflows}.log"));
            // Flow maps sized for the flows of one harvest interval, as ARCHITECTURE.md advises.
            let extra = if method == "xdp" {
                format!(
                    "xdp_action: drop\nxdp_flow_entries: {}\n",
                    a.xdp_flow_entries.unwrap_or((2 * nflows).max(65536))
                )
            } else {
                String::new()
            };
            std::fs::write(
                &conf,
                format!(
                    "pcap_interface: {RX}\ncapture_method: {method}\n{extra}workers: 1\nplugins: memory\naggregate: src_host,dst_host,src_port,dst_port,proto\nimt_path: {}\n",
                    dir.join(format!("{method}.pipe")).display()
                ),
            )?;
            // The kernel's own timing of the program on this live traffic (two clock reads a run).
            let stats = method == "xdp" && std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1").is_ok();
            let r = run_xacctd(&xacctd, &conf, &log, &frames, tck).with_context(|| method.clone());
            if stats {
                std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0").ok();
            }
            let (secs, kernel, cpu, text) = r?;
            let base = if method == "pcap" { base_none } else { base_drop };
            let kernel_ns = (kernel - base).max(0.0) * 1e9 / n;
            let user_ns = cpu * 1e9 / n;
            let line = text.lines().rev().find(|l| l.contains("source ") && l.contains("received")).unwrap_or_default();
            let xdp_line = text.lines().rev().find(|l| l.contains("xdp_seen")).unwrap_or_default();
            let counters = if method == "xdp" {
                let runs = counter(xdp_line, "xdp_runs").max(1);
                format!(
                    "xdp_aggregated {} xdp_redirected {} | program on live traffic {:.0} ns/run (bpf_stats)",
                    counter(xdp_line, "xdp_aggregated"),
                    counter(xdp_line, "xdp_redirected"),
                    counter(xdp_line, "xdp_run_ns") as f64 / runs as f64
                )
            } else {
                format!(
                    "received {} dropped {}",
                    counter(line, "received"),
                    counter(line, "kernel_dropped") + counter(line, "queue_dropped") + counter(line, "xsk_rx_dropped")
                )
            };
            println!(
                "{method:<7} {:>10.0} {kernel_ns:>22.0} {user_ns:>18.0} {:>18.0}   {counters}",
                n / secs,
                kernel_ns + user_ns
            );
            totals.push((method.clone(), kernel_ns + user_ns));
        }
        if let Some((_, xdp)) = totals.iter().find(|(m, _)| m == "xdp") {
            for (m, t) in totals.iter().filter(|(m, _)| m != "xdp") {
                println!("xdp pre-aggregation is {:.1}x cheaper per packet than {m}", t / xdp.max(1.0));
            }
        }
    }
    Ok(())
}
