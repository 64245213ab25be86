//! Live-capture cost side by side: XDP pre-aggregation (`xdp_action: drop`, as on a mirror
//! port), AF_XDP and libpcap, each capturing the same traffic mix on the receiving end of a
//! veth pair in a private network namespace while xacctd runs pinned to core 1 (`taskset`).
//! Reports, per method, the CPU it costs per packet: the kernel's receive path and xacctd's.
//!
//! Two test beds (`--bed`):
//!
//! * `kernel` (default) times each method's kernel receive path with the kernel's own clock:
//!   BPF_PROG_TEST_RUN in live-frames mode on core 0 places each frame in a page-pool page,
//!   as a NIC driver does, and carries the verdict out: the AF_XDP copy into xacctd's socket,
//!   or a socket buffer up the stack to xacctd's packet socket, or a drop. The program run is a
//!   small traffic generator (perf/bpf/trafficgen.c) that gives every copy of a train a flow of
//!   its own (`--vary`) and tail-calls the receiver: the program the capture interface has
//!   (xacctd's), a passing one where it has none (libpcap: a driver without XDP) or a dropping
//!   one, the floor: what any method pays to receive a frame. Trains of `--train` copies are
//!   paced to `--rate`; every train goes to the floor and then to the method, one after the
//!   other, and each method's kernel cost is its time above the floor of the same trains,
//!   which cancels most of this VM's drift. This bed has none of veth's own costs (below) and
//!   no wake-ups or cross-core transfers in the kernel figure.
//! * `direct` sends real frames into `xb0` with an AF_XDP sender on core 0. On a veth the
//!   receiver's kernel work runs in the sender's `sendto` or in ksoftirqd, so a method's kernel
//!   cost is the CPU of the sender, of every ksoftirqd and of xacctd, minus a baseline run that
//!   sends the same frames with nothing capturing (libpcap) or a dropping XDP program (XDP,
//!   AF_XDP: veth in XDP mode copies every socket buffer into a page of its own before any
//!   program runs, a cost of the test bed, not of capturing). Real frames end to end, noisier.
//!
//! xacctd's cost is its CPU time from just before the traffic until it has exited (final
//! harvest and flush included), less its idle CPU over the same time (timers, the harvest of
//! empty maps), which is reported apart: a fixed cost per second, not per packet. Each figure
//! is the median of `--trials` runs, the floor measured again in every trial.
//!
//! Usage (root): xacct-vethbench [--bed kernel|direct] [--packets N] [--flows 100000,1000]
//! [--methods xdp,afxdp,pcap] [--trials 3] [--xdp-flow-entries N] [--train 64] [--vary 64].
//! With VETHBENCH_DEBUG set it also prints xacctd's CPU per thread before shutdown.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xacct_perf::trafficgen::{Generator, Target};

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
    /// `kernel`: the kernel's receive path timed by the kernel; `direct`: real frames sent into
    /// the veth, CPU per task.
    #[arg(long, default_value = "kernel")]
    bed: String,
    /// Runs of the floor and of every method; the medians are reported.
    #[arg(long, default_value_t = 3)]
    trials: usize,
    /// `kernel` bed: each frame of the mix runs this many times in a row (a train), which
    /// spreads the test run's set-up per call (a page pool) over the train.
    #[arg(long, default_value_t = 64)]
    train: u32,
    /// `kernel` bed: distinct flows per frame of the mix, copy n of a train getting the n-th
    /// mod this (its addresses' last words shifted, checksums kept): consecutive packets are
    /// different flows, as on a link. The mix then has `--flows` / this 5-tuples. 0: every copy
    /// of a train is the same frame.
    #[arg(long, default_value_t = 64)]
    vary: u32,
    /// `kernel` bed: frames handed on per batch, and pages in each call's page pool.
    #[arg(long, default_value_t = 8)]
    batch: u32,
    /// `kernel` bed: frames per second offered (trains are paced to it), below what every
    /// method can take so that their costs are compared on the same packets, none dropped.
    #[arg(long, default_value_t = 1_000_000)]
    rate: u64,
    /// Flow sizes Zipf-distributed with this exponent (1.0: as on real links, a few flows
    /// carry most packets) instead of every packet picking a flow uniformly (0, the default:
    /// the hard case for pre-aggregation, every flow with about the same few packets).
    #[arg(long, default_value_t = 0.0)]
    zipf: f64,
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

/// Builds a one-function XDP program with clang (`body` is its C statement) in `dir`.
fn build_program(dir: &std::path::Path, name: &str, body: &str) -> Result<PathBuf> {
    let src = dir.join(format!("{name}.c"));
    let obj = dir.join(format!("{name}.o"));
    std::fs::write(
        &src,
        format!(
            "__attribute__((section(\"xdp\"), used)) int {name}(void *ctx) {{ {body} }}\n\
             char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n"
        ),
    )?;
    let st = Command::new("clang").args(["-O2", "-target", "bpf", "-c"]).arg(&src).arg("-o").arg(&obj).status()?;
    if !st.success() {
        bail!("clang could not build the {name} XDP program (cargo xtask setup installs clang)");
    }
    Ok(obj)
}

/// Attaches `obj` natively to `iface`, or detaches whatever is there (`None`).
fn xdp_attach(iface: &str, obj: Option<&std::path::Path>) -> Result<()> {
    match obj {
        Some(o) => sh(&[
            "ip",
            "-force",
            "link",
            "set",
            "dev",
            iface,
            "xdpdrv",
            "obj",
            o.to_str().unwrap_or_default(),
            "sec",
            "xdp",
        ]),
        None => sh(&["ip", "link", "set", "dev", iface, "xdpdrv", "off"]),
    }
}

/// Nanoseconds a task has run (the scheduler's own sum, exact to the ns), 0 if it is gone.
fn task_ns(stat_dir: &std::path::Path) -> u64 {
    std::fs::read_to_string(stat_dir.join("schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Every thread of `pid`, run time summed, seconds.
fn process_cpu(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    tasks.map(|t| task_ns(&t.path())).sum::<u64>() as f64 / 1e9
}

/// The program attached to `iface`, if any: (kernel id).
fn attached_prog_id(iface: &str) -> Option<u32> {
    let out = Command::new("ip").args(["-d", "link", "show", "dev", iface]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text.lines().find(|l| l.contains("prog/xdp"))?;
    line.split_whitespace().skip_while(|w| *w != "id").nth(1)?.parse().ok()
}

/// The kernel's mean run time of the program attached to `iface` (bpf_stats, read with
/// bpftool), ns per run; None when not available.
fn attached_prog_ns(iface: &str) -> Option<f64> {
    let id = attached_prog_id(iface)?;
    let out = Command::new("bpftool").args(["prog", "show", "id", &id.to_string()]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| text.split_whitespace().skip_while(|w| *w != name).nth(1)?.parse::<f64>().ok();
    Some(field("run_time_ns")? / field("run_cnt")?.max(1.0))
}

/// What receives the frames of a send.
#[derive(Clone, Copy, PartialEq)]
enum Receiver {
    /// Dropped on arrival (the floor; `direct`: the caller attaches the dropping program).
    Drop,
    /// Passed up a stack where no one listens.
    Stack,
    /// Whatever the capture interface has: xacctd's program, or none (libpcap).
    Capture,
}

/// How a run's receive-side kernel CPU is measured.
enum Bed {
    /// BPF_PROG_TEST_RUN in live-frames mode on core 0 (`kernel`). The test runs are of the
    /// traffic generator (attached to the idle peer, see [`Generator`]), which varies the flow
    /// of every copy and tail-calls the receiver: the program attached to the capture
    /// interface, a dropping one (the floor) or a passing one (a driver without XDP).
    Kernel { ifindex: u32, train: u32, batch: u32, rate: u64, vary: u32, gen: Generator },
    /// Sender thread + ksoftirqd, seconds (`direct`).
    Direct { tck: f64 },
}

impl Bed {
    /// Sends every frame to `rx` (see [`Sent`]).
    fn send(&self, frames: &[Vec<u8>], rx: Receiver) -> Result<Sent> {
        match self {
            Bed::Direct { tck } => {
                let (secs, kernel) = send_measured(frames, *tck);
                Ok(Sent { secs, kernel, floor: None })
            }
            Bed::Kernel { ifindex, train, batch, rate, vary, gen } => {
                let attached = match rx {
                    Receiver::Capture => attached_prog_id(RX).map(xacct_perf::testrun::prog_by_id).transpose()?,
                    _ => None,
                };
                let target = match (&attached, rx) {
                    (Some(fd), _) => Target::Program(fd.as_fd()),
                    (None, Receiver::Drop) => Target::Drop,
                    (None, _) => Target::Pass,
                };
                // Every train but the floor's own goes twice, to the floor and to `rx`, one
                // after the other: the pair sees the same frames at the same moment, so the
                // difference is free of this VM's drift (±30 % over minutes).
                let paired = rx != Receiver::Drop;
                gen.set_target(0, Target::Drop)?;
                gen.set_target(1, target)?;
                let prog = gen.program()?;
                let start = Instant::now();
                let (ns, floor) = std::thread::scope(|s| {
                    s.spawn(|| {
                        if let Some(c) = core_affinity::get_core_ids().and_then(|c| c.first().copied()) {
                            core_affinity::set_for_current(c);
                        }
                        let (mut ns, mut floor) = (0u64, 0u64);
                        let t0 = Instant::now();
                        let run = |f: &[u8], first: u64, slot: u32| -> Result<u64> {
                            gen.set_frame(f, *vary, first, slot)?;
                            let per = xacct_perf::testrun::test_run_live(&prog, f, *ifindex, 0, *train, *batch)?;
                            Ok(u64::from(per) * u64::from(*train))
                        };
                        for (i, f) in self.delivered(frames).enumerate() {
                            let first = i as u64 * u64::from(*train);
                            let due = Duration::from_secs_f64(first as f64 / *rate as f64);
                            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                                std::thread::sleep(wait);
                            }
                            if paired {
                                floor += run(f, first, 0)?;
                            }
                            ns += run(f, first, 1)?;
                        }
                        Ok::<_, anyhow::Error>((ns, floor))
                    })
                    .join()
                    .expect("test-run thread")
                })
                .context("BPF_PROG_TEST_RUN (live frames)")?;
                let secs = start.elapsed().as_secs_f64();
                std::thread::sleep(Duration::from_millis(300));
                Ok(Sent { secs, kernel: ns as f64 / 1e9, floor: paired.then_some(floor as f64 / 1e9) })
            }
        }
    }

    /// The frames one send delivers (the `kernel` bed sends a train of copies of the first
    /// frame of every `train`).
    fn delivered<'f>(&self, frames: &'f [Vec<u8>]) -> impl Iterator<Item = &'f Vec<u8>> {
        let step = match self {
            Bed::Kernel { train, .. } => *train as usize,
            Bed::Direct { .. } => 1,
        };
        frames.iter().step_by(step)
    }

    /// Every frame one send delivers, as the receiver sees it (`kernel`: the generator's
    /// copies).
    fn each_frame(&self, frames: &[Vec<u8>], mut f: impl FnMut(&[u8])) {
        match self {
            Bed::Kernel { train, vary, .. } => {
                for (i, base) in self.delivered(frames).enumerate() {
                    for n in 0..u64::from(*train) {
                        f(&xacct_perf::trafficgen::varied(base, *vary, i as u64 * u64::from(*train) + n));
                    }
                }
            }
            Bed::Direct { .. } => frames.iter().for_each(|x| f(x)),
        }
    }

    /// Packets one send delivers (the `kernel` bed sends whole trains).
    fn packets(&self, frames: usize) -> f64 {
        match self {
            Bed::Kernel { train, .. } => (frames.div_ceil(*train as usize) * *train as usize) as f64,
            Bed::Direct { .. } => frames as f64,
        }
    }
}

/// What one send took.
struct Sent {
    /// Seconds it took.
    secs: f64,
    /// Receive-side kernel CPU seconds.
    kernel: f64,
    /// `kernel` bed: the kernel CPU seconds of the same trains sent to the floor, interleaved.
    floor: Option<f64>,
}

/// What one xacctd run cost.
struct Run {
    /// Seconds the send took.
    secs: f64,
    /// Receive-side kernel CPU seconds during the send.
    kernel: f64,
    /// `kernel` bed: the paired floor's kernel CPU seconds (see [`Bed::send`]).
    floor: Option<f64>,
    /// xacctd's CPU seconds from just before the send until it has exited (final harvest and
    /// flush included), less what it spends idle over the same time.
    per_packet: f64,
    /// xacctd's CPU when idle (timers, the XDP harvest of its maps), CPU seconds per second:
    /// a fixed cost, paid at any packet rate.
    idle_rate: f64,
    log: String,
}

/// Runs xacctd while `frames` are sent and measures it (see [`Run`]).
fn run_xacctd(
    xacctd: &std::path::Path,
    conf: &std::path::Path,
    log: &std::path::Path,
    frames: &[Vec<u8>],
    bed: &Bed,
) -> Result<Run> {
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
    let idle0 = process_cpu(pid);
    let idle_t = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let cpu0 = process_cpu(pid);
    let idle_rate = (cpu0 - idle0) / idle_t.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let sent = bed.send(frames, Receiver::Capture);
    if std::env::var_os("VETHBENCH_DEBUG").is_some() {
        eprintln!("xacctd cpu before shutdown: {:.3}s", process_cpu(pid) - cpu0);
        for t in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            eprintln!("  {} {:.3}s", comm.trim(), task_ns(&t.path()) as f64 / 1e9);
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
    let Sent { secs, kernel, floor } = sent?;
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = tv(ru.ru_utime) + tv(ru.ru_stime) - cpu0;
    let per_packet = (cpu - idle_rate * t0.elapsed().as_secs_f64()).max(0.0);
    Ok(Run { secs, kernel, floor, per_packet, idle_rate, log: std::fs::read_to_string(log)? })
}

/// One method's figures from one trial, ns per packet.
#[derive(Clone, Default)]
struct Figures {
    pps: f64,
    kernel: f64,
    xacctd: f64,
    idle: f64,
    counters: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> Result<()> {
    let a = Args::parse();
    let xacctd = a.xacctd.clone().unwrap_or_else(|| std::env::current_exe().expect("exe").with_file_name("xacctd"));
    let kernel = match a.bed.as_str() {
        "kernel" => true,
        "direct" => false,
        other => bail!("--bed {other}: expected kernel or direct"),
    };
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)
        .context("unshare(CLONE_NEWNET | CLONE_NEWNS): run as root")?;
    // This network namespace's sysfs (xacctd reads the interface's queues there), seen by this
    // process and xacctd only: the mount namespace is theirs.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .context("make mounts private")?;
    mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), None::<&str>)
        .context("mount this namespace's sysfs")?;
    // iproute2 loads programs only with a BPF filesystem, which the new sysfs covered up.
    mount(Some("bpf"), "/sys/fs/bpf", Some("bpf"), MsFlags::empty(), None::<&str>).context("mount bpffs")?;
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
    let drop = build_program(&dir, "drop", "return 1;")?;
    let bed = if kernel {
        let ifindex = nix::net::if_::if_nametoindex(RX).context("capture interface index")?;
        let gen = Generator::load(&dir, Some(TX))?;
        Bed::Kernel { ifindex, train: a.train.max(1), batch: a.batch.max(1), rate: a.rate.max(1), vary: a.vary, gen }
    } else {
        Bed::Direct { tck }
    };
    for &nflows in &a.flows {
        // The `kernel` bed's generator makes `vary` flows of every 5-tuple of the mix.
        let tuples = if kernel && a.vary > 0 { nflows.div_ceil(u64::from(a.vary)) } else { nflows };
        let mix = if a.zipf > 0.0 {
            xacct_perf::traffic::mixed_zipf(a.packets, tuples, a.zipf, 5)
        } else {
            xacct_perf::traffic::mixed(a.packets, tuples, 5)
        };
        let frames: Vec<Vec<u8>> = mix.into_iter().map(|f| f.data).collect();
        let n = bed.packets(frames.len());
        // The 5-tuples the traffic really has: the `kernel` bed's trains draw from the mix.
        let mut seen = std::collections::HashSet::new();
        bed.each_frame(&frames, |f| {
            if let Ok(p) = xacct_wire::decode(xacct_wire::LinkType::Ethernet, f, f.len() as u32) {
                seen.insert((p.l3, p.proto, p.src_port, p.dst_port));
            }
        });
        println!(
            "\n{n} packets of the mixed traffic{}, {nflows} distinct 5-tuples asked for, {} sent (aggregate src_host,dst_host,src_port,dst_port,proto); bed {}, {} on core 0, xacctd on core 1; medians of {} trials",
            if a.zipf > 0.0 { format!(" (flow sizes Zipf, s = {})", a.zipf) } else { String::new() },
            seen.len(),
            a.bed,
            if kernel { "test runs" } else { "sender" },
            a.trials.max(1)
        );
        if let Bed::Kernel { train, vary, rate, .. } = &bed {
            println!(
                "trains of {train} copies of a frame of the mix at {rate} frames/s, copy n the flow n mod {vary} of its own (--vary; 0: all alike); costs above the floor of the same trains"
            );
        }
        let (mut floors, mut stacks) = (Vec::new(), Vec::new());
        let mut runs: Vec<Vec<Figures>> = vec![Vec::new(); a.methods.len()];
        for _ in 0..a.trials.max(1) {
            // Baselines with nothing capturing. `kernel`: the frames dropped on arrival (the floor
            // every method pays) and passed to a stack where no one listens. `direct`: without
            // and with veth's XDP mode.
            if !kernel {
                xdp_attach(RX, Some(&drop))?;
            }
            // `direct`: what the kernel's per-run timing itself costs on these frames (the two
            // clock reads that `program on the live frames` figures include).
            let stats = !kernel && std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1").is_ok();
            let with_drop = bed.send(&frames, Receiver::Drop)?.kernel;
            if stats {
                if let Some(ns) = attached_prog_ns(RX) {
                    println!("two-instruction XDP_DROP program on the live frames: {ns:.0} ns/run (bpf_stats)");
                }
                std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0").ok();
            }
            if !kernel {
                xdp_attach(RX, None)?;
            }
            let without = bed.send(&frames, Receiver::Stack)?.kernel;
            floors.push(with_drop * 1e9 / n);
            stacks.push(without * 1e9 / n);
            for (method, runs) in a.methods.iter().zip(&mut runs) {
                let (r, counters) =
                    run_method(&a, method, nflows, &xacctd, &dir, &frames, &bed).with_context(|| method.clone())?;
                // `direct`: libpcap's baseline is the run without XDP mode.
                let base = match r.floor {
                    Some(f) => f * 1e9 / n,
                    None if method == "pcap" => *stacks.last().unwrap_or(&0.0),
                    None => *floors.last().unwrap_or(&0.0),
                };
                runs.push(Figures {
                    pps: n / r.secs,
                    kernel: (r.kernel * 1e9 / n - base).max(0.0),
                    xacctd: r.per_packet * 1e9 / n,
                    idle: r.idle_rate,
                    counters,
                });
            }
        }
        let (floor, stack) = (median(floors), median(stacks));
        if kernel {
            println!("floor, frames dropped on arrival: {floor:>5.0} ns/packet\nframes passed to the stack:       {stack:>5.0} ns/packet (no one listening)");
        } else {
            println!("baseline, no capture:        {stack:>5.0} ns/packet kernel\nbaseline, XDP_DROP program:  {floor:>5.0} ns/packet kernel");
        }
        println!(
            "{:<7} {:>10} {:>22} {:>14} {:>13} {:>12}   counters (last trial)",
            "method",
            "pps",
            if kernel { "kernel ns/pkt (-floor)" } else { "kernel ns/pkt (-base)" },
            "xacctd ns/pkt",
            "total ns/pkt",
            "xacctd idle"
        );
        let mut totals = Vec::new();
        for (method, runs) in a.methods.iter().zip(&runs) {
            let m = |f: fn(&Figures) -> f64| median(runs.iter().map(f).collect());
            let (k, u) = (m(|f| f.kernel), m(|f| f.xacctd));
            let total = m(|f| f.kernel + f.xacctd);
            let spread =
                runs.iter().map(|f| f.kernel + f.xacctd).fold((f64::MAX, 0.0f64), |(lo, hi), t| (lo.min(t), hi.max(t)));
            println!(
                "{method:<7} {:>10.0} {k:>22.0} {u:>14.0} {total:>13.0} {:>11.1}%   {} (totals {:.0}..{:.0})",
                m(|f| f.pps),
                m(|f| f.idle) * 100.0,
                runs.last().map_or("", |f| f.counters.as_str()),
                spread.0,
                spread.1
            );
            totals.push((method.clone(), total));
        }
        if let Some((_, xdp)) = totals.iter().find(|(m, _)| m == "xdp") {
            for (m, t) in totals.iter().filter(|(m, _)| m != "xdp") {
                println!(
                    "xdp pre-aggregation is {:.1}x cheaper per packet than {m} above the floor; {:.1}x with the floor",
                    t / xdp.max(1.0),
                    (t + floor) / (xdp + floor).max(1.0)
                );
            }
        }
    }
    Ok(())
}

/// One run of xacctd capturing with `method` while the frames are sent: its costs, and the
/// counters from its log worth showing.
fn run_method(
    a: &Args,
    method: &str,
    nflows: u64,
    xacctd: &std::path::Path,
    dir: &std::path::Path,
    frames: &[Vec<u8>],
    bed: &Bed,
) -> Result<(Run, String)> {
    let conf = dir.join(format!("{method}.conf"));
    let log = dir.join(format!("{method}-{nflows}.log"));
    // Flow maps sized for the flows of one harvest interval, as ARCHITECTURE.md advises.
    let extra = if method == "xdp" {
        format!("xdp_action: drop\nxdp_flow_entries: {}\n", a.xdp_flow_entries.unwrap_or((2 * nflows).max(65536)))
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
    // `direct`: the kernel's own timing of the program on the live frames (two clock reads a
    // run, so not on the `kernel` bed, where the kernel times every run anyway).
    let stats = method == "xdp"
        && matches!(bed, Bed::Direct { .. })
        && std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1").is_ok();
    let r = run_xacctd(xacctd, &conf, &log, frames, bed);
    if stats {
        std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0").ok();
    }
    let run = r?;
    let text = &run.log;
    let line = text.lines().rev().find(|l| l.contains("source ") && l.contains("received")).unwrap_or_default();
    let xdp_line = text.lines().rev().find(|l| l.contains("xdp_seen")).unwrap_or_default();
    let counters = if method == "xdp" {
        let runs = counter(xdp_line, "xdp_runs");
        let live = if runs > 0 {
            format!(
                " | program on the live frames {:.0} ns/run (bpf_stats)",
                counter(xdp_line, "xdp_run_ns") as f64 / runs as f64
            )
        } else {
            String::new()
        };
        format!(
            "xdp_aggregated {} xdp_redirected {} xdp_map_full {}{live}",
            counter(xdp_line, "xdp_aggregated"),
            counter(xdp_line, "xdp_redirected"),
            counter(xdp_line, "xdp_map_full")
        )
    } else {
        format!(
            "received {} dropped {}",
            counter(line, "received"),
            counter(line, "kernel_dropped") + counter(line, "queue_dropped") + counter(line, "xsk_rx_dropped")
        )
    };
    Ok((run, counters))
}
