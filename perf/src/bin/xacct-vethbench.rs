//! Live-capture cost on veth pairs in a private network namespace: the same traffic reaches
//! one interface while xacctd (pinned to core 1 with `taskset`) captures it with each capture
//! method in turn: XDP pre-aggregation (`xdp_action: drop`, as on a mirror port), AF_XDP,
//! libpcap. Reports, per method, the CPU it costs per packet, kernel included.
//!
//! Two test beds (`--bed`):
//!
//! * `nic` (default) makes veth behave like a NIC's receive path. An AF_XDP sender on core 0
//!   transmits on `xg0`; an XDP program on its peer `xg1` redirects every frame into `xb0`, so
//!   the frames reach `xb1` as XDP frames in its receive ring, the way a driver's RX ring holds
//!   them: no socket buffer yet. `xb1` runs threaded NAPI, its kernel thread pinned to core 1
//!   with xacctd, so everything the receiving side does (the XDP program, the AF_XDP copy,
//!   building socket buffers and the packet socket for libpcap) is CPU time of that thread and
//!   of xacctd, measured per task (`/proc/<pid>/schedstat`, `wait4`), apart from the sender's.
//!   The floor is the same frames dropped by a two-instruction XDP program: what a driver
//!   spends receiving a frame before any method sees it. libpcap runs with a pass-through XDP
//!   program on `xb1` (veth only has a receive ring while a program is attached; it also keeps
//!   GRO off, as a probe's NIC should have it).
//! * `direct` sends straight into `xb0` from core 0: the receiver's kernel work then runs in the
//!   sender's `sendto` on core 0 or in ksoftirqd, so a method's cost is the CPU of the sender,
//!   of every ksoftirqd and of xacctd, minus a baseline run with nothing capturing (libpcap) or
//!   a dropping XDP program (XDP, AF_XDP: veth in XDP mode copies every socket buffer into a
//!   page of its own before any program runs, a cost of this bed, not of capturing).
//!
//! Usage (root): xacct-vethbench [--packets N] [--flows 100000,1000] [--methods xdp,afxdp,pcap]
//! [--bed nic|direct] [--xdp-flow-entries N]. With VETHBENCH_DEBUG set it also prints xacctd's
//! CPU per thread before shutdown (where a method's userspace time goes).

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TX: &str = "xb0";
const RX: &str = "xb1";
/// The `nic` bed's generator pair: frames sent on `GEN_TX` are redirected by `GEN_RX` into `TX`.
const GEN_TX: &str = "xg0";
const GEN_RX: &str = "xg1";

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
    /// `nic`: frames reach the capture interface as in a NIC's RX ring, receive work on core 1;
    /// `direct`: socket buffers sent straight in, receive work on the sender's core.
    #[arg(long, default_value = "nic")]
    bed: String,
    /// `kernel` bed: each frame of the mix runs this many times in a row (a train), which
    /// spreads the test run's set-up per call (a page pool) over the train.
    #[arg(long, default_value_t = 64)]
    train: u32,
    /// `kernel` bed: frames per second offered (trains are paced to it), below what every
    /// method can take so that their costs are compared on the same packets, none dropped.
    #[arg(long, default_value_t = 1_000_000)]
    rate: u64,
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
fn blast(frames: &[Vec<u8>], iface: &str) -> (f64, f64) {
    let start = Instant::now();
    let cpu = std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(c) = core_affinity::get_core_ids().and_then(|c| c.first().copied()) {
                core_affinity::set_for_current(c);
            }
            let mut tx = xacct_perf::afxdp_tx::AfXdpSender::open(iface).expect("AF_XDP sender");
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
    let (secs, sender) = blast(frames, TX);
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
    // bpf_redirect is helper 23 of the kernel's stable helper ABI; declared here so that the
    // program needs no headers.
    std::fs::write(
        &src,
        format!(
            "static long (*bpf_redirect)(unsigned int ifindex, unsigned long long flags) = (void *) 23;\n\
             __attribute__((section(\"xdp\"), used)) int {name}(void *ctx) {{ {body} }}\n\
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
        Some(o) => sh(&["ip", "-force", "link", "set", "dev", iface, "xdpdrv", "obj", o.to_str().unwrap_or_default(), "sec", "xdp"]),
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

/// The kernel threads running `iface`'s threaded NAPI, pinned to `core`: their pids.
fn pin_napi_threads(iface: &str, core: usize) -> Result<Vec<u32>> {
    let prefix = format!("napi/{iface}-");
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.starts_with(&prefix)) {
            let st = Command::new("taskset").args(["-pc", &core.to_string(), &pid.to_string()]).stdout(Stdio::null()).status()?;
            if !st.success() {
                bail!("taskset {pid}: {st}");
            }
            pids.push(pid);
        }
    }
    if pids.is_empty() {
        bail!("{iface} has no threaded NAPI thread (is an XDP program attached?)");
    }
    Ok(pids)
}

/// The mean run time of the XDP program attached to `iface` since it was attached, from the
/// kernel's bpf_stats (bpftool), ns per run; None when not available.
fn attached_prog_ns(iface: &str) -> Option<f64> {
    let out = Command::new("ip").args(["-d", "link", "show", "dev", iface]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text.lines().find(|l| l.contains("prog/xdp"))?;
    let id = line.split_whitespace().skip_while(|w| *w != "id").nth(1)?.to_string();
    let out = Command::new("bpftool").args(["prog", "show", "id", &id]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| text.split_whitespace().skip_while(|w| *w != name).nth(1)?.parse::<f64>().ok();
    Some(field("run_time_ns")? / field("run_cnt")?.max(1.0))
}

/// Frames the capture interface's receive ring refused so far (the bed's `rx_missed`): veth
/// counts them as the sending side's XDP transmit errors and the ring's drops.
fn ring_drops() -> u64 {
    let stat = |iface: &str, suffix: &str| -> u64 {
        let out = Command::new("ethtool").args(["-S", iface]).output().map(|o| o.stdout).unwrap_or_default();
        String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|l| l.trim().split_once(": "))
            .filter(|(k, _)| k.ends_with(suffix))
            .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
            .sum()
    };
    stat(TX, "xdp_xmit_errors") + stat(RX, "_drops") - stat(RX, "_xdp_drops")
}

/// The program attached to `iface`, if any: (kernel id).
fn attached_prog_id(iface: &str) -> Option<u32> {
    let out = Command::new("ip").args(["-d", "link", "show", "dev", iface]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text.lines().find(|l| l.contains("prog/xdp"))?;
    line.split_whitespace().skip_while(|w| *w != "id").nth(1)?.parse().ok()
}

/// How a run's receive-side kernel CPU is measured.
enum Bed {
    /// BPF_PROG_TEST_RUN in live-frames mode on core 0: the kernel's own time of the receive
    /// path, per frame (`kernel`). Runs the program attached to the capture interface, or
    /// where it has none (libpcap) the pass-through program attached to its idle peer: a
    /// driver without XDP. Test runs only use programs attached somewhere: the kernel swaps
    /// any other in and out of its XDP dispatcher on every run, an RCU grace period each.
    Kernel { ifindex: u32, train: u32, rate: u64 },
    /// Sender thread + ksoftirqd, seconds (`direct`).
    Direct { tck: f64 },
    /// The capture interface's NAPI threads (`nic`).
    Nic,
}

impl Bed {
    /// Sends every frame; returns (seconds it took, receive-side kernel CPU seconds).
    fn send(&self, frames: &[Vec<u8>]) -> Result<(f64, f64)> {
        match self {
            Bed::Kernel { ifindex, train, rate } => {
                let id = attached_prog_id(RX).or_else(|| attached_prog_id(TX)).context("no XDP program to test-run")?;
                let prog = xacct_perf::testrun::prog_by_id(id)?;
                let prog = &prog;
                let start = Instant::now();
                let ns = std::thread::scope(|s| {
                    s.spawn(|| {
                        if let Some(c) = core_affinity::get_core_ids().and_then(|c| c.first().copied()) {
                            core_affinity::set_for_current(c);
                        }
                        let mut ns = 0u64;
                        let t0 = Instant::now();
                        for (i, f) in frames.iter().step_by(*train as usize).enumerate() {
                            let due = Duration::from_secs_f64((i as u64 * u64::from(*train)) as f64 / *rate as f64);
                            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                                std::thread::sleep(wait);
                            }
                            let per = xacct_perf::testrun::test_run_live(prog, f, *ifindex, 0, *train)?;
                            ns += u64::from(per) * u64::from(*train);
                        }
                        Ok::<u64, std::io::Error>(ns)
                    })
                    .join()
                    .expect("test-run thread")
                })
                .context("BPF_PROG_TEST_RUN (live frames)")?;
                let secs = start.elapsed().as_secs_f64();
                std::thread::sleep(Duration::from_millis(300));
                Ok((secs, ns as f64 / 1e9))
            }
            Bed::Direct { tck } => Ok(send_measured(frames, *tck)),
            Bed::Nic => {
                let pids = pin_napi_threads(RX, 1)?;
                let cpu = || pids.iter().map(|p| task_ns(std::path::Path::new(&format!("/proc/{p}")))).sum::<u64>();
                let c0 = cpu();
                let d0 = ring_drops();
                let (secs, _) = blast(frames, GEN_TX);
                std::thread::sleep(Duration::from_millis(300));
                let dropped = ring_drops() - d0;
                if dropped > 0 {
                    eprintln!("  (the receive ring overflowed: {dropped} frames never reached {RX})");
                }
                Ok((secs, (cpu() - c0) as f64 / 1e9))
            }
        }
    }
}

/// What one xacctd run cost.
struct Run {
    /// Seconds the send took.
    secs: f64,
    /// Receive-side kernel CPU seconds during the send.
    kernel: f64,
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
    let sent = bed.send(frames);
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
    let (secs, kernel) = sent?;
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = tv(ru.ru_utime) + tv(ru.ru_stime) - cpu0;
    let per_packet = (cpu - idle_rate * t0.elapsed().as_secs_f64()).max(0.0);
    Ok(Run { secs, kernel, per_packet, idle_rate, log: std::fs::read_to_string(log)? })
}

fn main() -> Result<()> {
    let a = Args::parse();
    let xacctd = a.xacctd.clone().unwrap_or_else(|| std::env::current_exe().expect("exe").with_file_name("xacctd"));
    let (nic, kernel) = match a.bed.as_str() {
        "kernel" => (false, true),
        "nic" => (true, false),
        "direct" => (false, false),
        other => bail!("--bed {other}: expected kernel, nic or direct"),
    };
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNET | CLONE_NEWNS): run as root")?;
    // A sysfs of this network namespace (ifindex, threaded NAPI, queues), seen by this process
    // and xacctd only: the mount namespace is private to them.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).context("make mounts private")?;
    mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), None::<&str>).context("mount this namespace's sysfs")?;
    // iproute2 loads programs only with a BPF filesystem, which the new sysfs covered up.
    mount(Some("bpf"), "/sys/fs/bpf", Some("bpf"), MsFlags::empty(), None::<&str>).context("mount bpffs")?;
    std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1").ok();
    sh(&["ip", "link", "set", "lo", "up"])?;
    sh(&["ip", "link", "add", TX, "type", "veth", "peer", "name", RX])?;
    let mut links = vec![TX, RX];
    if nic {
        sh(&["ip", "link", "add", GEN_TX, "type", "veth", "peer", "name", GEN_RX])?;
        links.extend([GEN_TX, GEN_RX]);
    }
    for d in links {
        sh(&["ip", "link", "set", d, "up"])?;
    }
    let tck: f64 =
        String::from_utf8(Command::new("getconf").arg("CLK_TCK").output()?.stdout)?.trim().parse().unwrap_or(100.0);
    let dir = std::env::temp_dir().join(format!("xacct-vethbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let drop = build_program(&dir, "drop", "return 1;")?;
    let pass = build_program(&dir, "pass", "return 2;")?;
    // Drops too, after reading the frame's EtherType: the first touch of the packet's bytes
    // on the receiving core, which every method pays (for the program's parse, the AF_XDP
    // copy, the socket buffer's eth_type_trans), priced apart from the methods.
    let touch = build_program(
        &dir,
        "touch",
        "unsigned char *d = (void *)(long)((unsigned int *)ctx)[0]; \
         unsigned char *e = (void *)(long)((unsigned int *)ctx)[1]; \
         if (d + 14 > e) return 1; return d[12] == 0x42 ? 2 : 1;",
    )?;
    let bed = if kernel {
        let ifindex = nix::net::if_::if_nametoindex(RX).context("capture interface index")?;
        xdp_attach(TX, Some(&pass))?;
        Bed::Kernel { ifindex, train: a.train.max(1), rate: a.rate.max(1) }
    } else if nic {
        let tx_index = std::fs::read_to_string(format!("/sys/class/net/{TX}/ifindex"))?;
        let fwd = build_program(&dir, "fwd", &format!("return bpf_redirect({}, 0);", tx_index.trim()))?;
        xdp_attach(GEN_RX, Some(&fwd))?;
        // Threaded NAPI needs the NAPI instance that attaching a program creates; the setting
        // then holds for the instances later programs (xacctd's) create.
        xdp_attach(RX, Some(&drop))?;
        std::fs::write(format!("/sys/class/net/{RX}/threaded"), "1").context("threaded NAPI on the capture veth")?;
        xdp_attach(RX, None)?;
        Bed::Nic
    } else {
        Bed::Direct { tck }
    };
    for &nflows in &a.flows {
        let frames: Vec<Vec<u8>> =
            xacct_perf::traffic::mixed(a.packets, nflows, 5).into_iter().map(|f| f.data).collect();
        let n = frames.len() as f64;
        println!(
            "\n{} frames of the mixed traffic, {nflows} distinct 5-tuples (aggregate src_host,dst_host,src_port,dst_port,proto); bed {}, sender on core 0, xacctd{} on core 1",
            frames.len(),
            a.bed,
            if nic { " and the receive NAPI thread" } else { "" }
        );
        // Baselines with nothing capturing. `nic`: the frames dropped as they arrive (the floor
        // every method pays) and passed to the stack (the socket buffers libpcap needs).
        // `direct`: without and with veth's XDP mode.
        let (floor, stack) = if kernel {
            xdp_attach(RX, Some(&drop))?;
            let (_, floor) = bed.send(&frames)?;
            xdp_attach(RX, None)?;
            let (_, stack) = bed.send(&frames)?;
            println!(
                "floor, frames dropped on arrival: {:>5.0} ns/packet\nframes passed to the stack:       {:>5.0} ns/packet (no one listening)",
                floor * 1e9 / n,
                stack * 1e9 / n,
            );
            (floor, stack)
        } else if nic {
            xdp_attach(RX, Some(&drop))?;
            let (t_drop, floor) = bed.send(&frames)?;
            xdp_attach(RX, Some(&touch))?;
            let stats = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1").is_ok();
            let (t_touch, touched) = bed.send(&frames)?;
            if stats {
                if let Some(ns) = attached_prog_ns(RX) {
                    eprintln!("read-then-drop program on live traffic: {ns:.0} ns/run (bpf_stats)");
                }
                std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0").ok();
            }
            xdp_attach(RX, Some(&pass))?;
            let (t_pass, stack) = bed.send(&frames)?;
            xdp_attach(RX, None)?;
            println!(
                "floor, frames dropped on arrival: {:>5.0} ns/packet ({:.0} pps)\nread, then dropped:               {:>5.0} ns/packet ({:.0} pps)\nframes passed to the stack:       {:>5.0} ns/packet ({:.0} pps)",
                floor * 1e9 / n,
                n / t_drop,
                touched * 1e9 / n,
                n / t_touch,
                stack * 1e9 / n,
                n / t_pass
            );
            (floor, stack)
        } else {
            let (t_none, base_none) = bed.send(&frames)?;
            xdp_attach(RX, Some(&drop))?;
            let (t_drop, base_drop) = bed.send(&frames)?;
            xdp_attach(RX, None)?;
            println!(
                "baseline, no capture:        {:>5.0} ns/packet kernel ({:.0} pps)\nbaseline, XDP_DROP program:  {:>5.0} ns/packet kernel ({:.0} pps)",
                base_none * 1e9 / n,
                n / t_none,
                base_drop * 1e9 / n,
                n / t_drop
            );
            (base_drop, base_none)
        };
        println!(
            "{:<7} {:>10} {:>22} {:>14} {:>13} {:>12}   counters",
            "method",
            "pps",
            if nic || kernel { "kernel ns/pkt (-floor)" } else { "kernel ns/pkt (-base)" },
            "xacctd ns/pkt",
            "total ns/pkt",
            "xacctd idle"
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
            // libpcap on the `nic` bed: veth has a receive ring only with a program attached.
            if nic && method == "pcap" {
                xdp_attach(RX, Some(&pass))?;
            }
            // The kernel's own timing of the program on this live traffic (two clock reads a run).
            // Not on the `kernel` bed: there the kernel times every run anyway, and the two extra
            // clock reads a run would count in the method's cost.
            let stats = method == "xdp" && !kernel && std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1").is_ok();
            let r = run_xacctd(&xacctd, &conf, &log, &frames, &bed).with_context(|| method.clone());
            if stats {
                std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "0").ok();
            }
            if nic && method == "pcap" {
                xdp_attach(RX, None)?;
            }
            let Run { secs, kernel, per_packet: cpu, idle_rate, log: text } = r?;
            // `direct`: libpcap's baseline is the run without XDP mode.
            let base = if !nic && method == "pcap" { stack } else { floor };
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
                "{method:<7} {:>10.0} {kernel_ns:>22.0} {user_ns:>14.0} {:>13.0} {:>11.1}%   {counters}",
                n / secs,
                kernel_ns + user_ns,
                idle_rate * 100.0
            );
            totals.push((method.clone(), kernel_ns + user_ns));
        }
        if let Some((_, xdp)) = totals.iter().find(|(m, _)| m == "xdp") {
            for (m, t) in totals.iter().filter(|(m, _)| m != "xdp") {
                println!(
                    "xdp pre-aggregation is {:.1}x cheaper per packet than {m} (above the floor); {:.1}x counting the floor",
                    t / xdp.max(1.0),
                    (t + floor * 1e9 / n) / (xdp + floor * 1e9 / n).max(1.0)
                );
            }
        }
    }
    Ok(())
}
