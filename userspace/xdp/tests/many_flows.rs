//! Harvest with many flows: the map is filled with BPF_PROG_TEST_RUN (which counts into the live
//! maps like real traffic, on the CPU the caller runs on), from two CPUs so that per-CPU values
//! must be summed. The program is attached (natively, to a veth in a private network namespace)
//! only because a test run of an XDP program that is not attached anywhere swaps it into the
//! kernel's XDP dispatcher and out again, an RCU grace period each: milliseconds per run.
//! Then then one harvest must return every flow exactly once with exact counts and
//! leave both flow maps empty. The harvest time is printed, not asserted (it depends on the
//! machine); `XDP_MANY_FLOWS` sets the number of flows (default 50 000).

use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

use xacct_perf::traffic::{build, FrameSpec, L3, L4};
use xacct_xdp::{FlowKey, FlowValue, Mode, Options, XdpCounter, XdpProgram};

const XDP_PASS: u32 = 2;
const SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const DST: [u8; 4] = [198, 19, 255, 1];

/// Flow `i`: a UDP frame with its own source address (198.18.0.0/15) and port, and a payload
/// that varies so that byte counts differ between flows.
fn flow(i: u32) -> (FrameSpec, FlowKey, u64) {
    let src = [198, 18 + ((i >> 16) & 1) as u8, (i >> 8) as u8, i as u8];
    let sport = 1024 + (i % 50_000) as u16;
    let payload = (i % 7) as usize * 3;
    let spec = FrameSpec {
        src_mac: SRC_MAC,
        dst_mac: DST_MAC,
        vlans: vec![],
        l3: L3::V4 { src, dst: DST, tos: 0 },
        l4: L4::Udp { sport, dport: 9 },
        payload,
    };
    // The key the program builds with every field kept.
    let mut k = FlowKey { src_mac: SRC_MAC, dst_mac: DST_MAC, family: 4, proto: 17, ..FlowKey::default() };
    k.ethertype = 0x0800u16.to_be_bytes();
    k.src_addr[..4].copy_from_slice(&src);
    k.dst_addr[..4].copy_from_slice(&DST);
    k.src_port = sport.to_be_bytes();
    k.dst_port = 9u16.to_be_bytes();
    (spec, k, 28 + payload as u64)
}

/// Packets flow `i` gets on the first CPU and on the second.
fn runs(i: u32) -> (u32, u32) {
    (1 + i % 3, u32::from(i.is_multiple_of(2)))
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).unwrap_or_else(|e| panic!("cpu set {cpu}: {e}"));
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap_or_else(|e| panic!("pin to {cpu}: {e}"));
}

fn online_cpus() -> Vec<usize> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).expect("sched_getaffinity");
    (0..nix::sched::CpuSet::count()).filter(|c| set.is_set(*c).unwrap_or(false)).collect()
}

/// Runs the program on every flow's frame, `per_flow(i).0` times on `cpus[0]` and
/// `per_flow(i).1` times on `cpus[1]` (if there is one); returns the packets counted.
fn fill(p: &XdpProgram, frames: &[Vec<u8>], cpus: &[usize], per_flow: impl Fn(u32) -> (u32, u32)) -> u64 {
    let mut n = 0;
    for (slot, cpu) in cpus.iter().take(2).enumerate() {
        pin(*cpu);
        for (i, frame) in (0u32..).zip(frames) {
            let (a, b) = per_flow(i);
            let repeat = if slot == 0 { a } else { b };
            if repeat == 0 {
                continue;
            }
            let r = p.test_run(frame, repeat).unwrap_or_else(|e| panic!("test_run flow {i}: {e:#}"));
            assert_eq!(r.action, XDP_PASS);
            n += u64::from(repeat);
        }
    }
    n
}

/// One harvest: every flow it returned, and how many times the callback ran.
fn harvest(p: &mut XdpProgram) -> (HashMap<FlowKey, FlowValue>, usize, std::time::Duration) {
    let mut got: HashMap<FlowKey, FlowValue> = HashMap::new();
    let mut calls = 0;
    let t = Instant::now();
    p.harvest(|k, v| {
        calls += 1;
        got.entry(*k).or_default().merge(v);
    })
    .expect("harvest");
    (got, calls, t.elapsed())
}

/// `tables`: the per-CPU tables in front of the hash maps (at this load, a quarter of the flows
/// do not fit in their probe range and land in the hash maps: both levels are exercised), or
/// the hash maps alone.
fn many_flows_body(tables: bool, cpus: &[usize]) {
    let n: u32 = std::env::var("XDP_MANY_FLOWS").ok().and_then(|s| s.parse().ok()).unwrap_or(50_000).min(131_072);
    let mut p = XdpProgram::load(Options { flow_entries: n.next_power_of_two(), tables, ..Options::default() })
        .unwrap_or_else(|e| panic!("load: {e:#}"));
    println!("{}:", if tables { "per-CPU tables, then hash maps" } else { "hash maps only" });
    let a = p.attach("xm1").expect("attach to the veth");
    assert_eq!(a.mode, Mode::Native, "{a:?}");
    let flows: Vec<(FrameSpec, FlowKey, u64)> = (0..n).map(flow).collect();
    let frames: Vec<Vec<u8>> = flows.iter().map(|(s, _, _)| build(s)).collect();
    let cpus = &cpus[..cpus.len().min(2)];
    let two = cpus.len() == 2;
    if !two {
        eprintln!("only one CPU available: per-CPU summing is not exercised");
    }
    let sent = fill(&p, &frames, cpus, runs);

    let (got, calls, took) = harvest(&mut p);
    println!("harvest of {} flows ({} CPUs): {:.1} ms", got.len(), cpus.len(), took.as_secs_f64() * 1e3);
    // Per-CPU table slots come up once per CPU that counted the flow; the hash maps' per-CPU
    // values are summed into one call.
    if tables {
        assert!(calls >= n as usize && calls <= n as usize * cpus.len(), "{calls} calls for {n} flows");
    } else {
        assert_eq!(calls, n as usize, "each flow exactly once");
    }
    assert_eq!(got.len(), n as usize);
    for (i, (_, key, ip_len)) in (0u32..).zip(&flows) {
        let (a, b) = runs(i);
        let packets = u64::from(a) + if two { u64::from(b) } else { 0 };
        let v = got.get(key).unwrap_or_else(|| panic!("flow {i} missing: {key:?}"));
        assert_eq!((v.packets, v.bytes), (packets, packets * ip_len), "flow {i}");
        assert!(v.first_seen_ns != 0 && v.first_seen_ns <= v.last_seen_ns, "flow {i}: {v:?}");
    }
    assert_eq!(got.values().map(|v| v.packets).sum::<u64>(), sent);

    // Both maps are empty now: the next harvest drains the other (untouched) map, the one after
    // the map just drained.
    for round in 0..2 {
        let (left, calls, _) = harvest(&mut p);
        assert_eq!((calls, left.len()), (0, 0), "round {round}: {left:?}");
    }

    // The drained map takes every flow again (it would overflow if the drain had left keys
    // behind in it), and a second harvest is as exact as the first.
    let sent2 = fill(&p, &frames, cpus, |i| (u32::from(i.is_multiple_of(5)) + 1, 0));
    let (got, calls, took) = harvest(&mut p);
    println!("second harvest of {} flows: {:.1} ms", got.len(), took.as_secs_f64() * 1e3);
    assert_eq!(got.len(), n as usize);
    assert!(calls >= n as usize && calls <= n as usize * cpus.len(), "{calls} calls for {n} flows");
    for (i, (_, key, _)) in (0u32..).zip(&flows) {
        let want = u64::from(i.is_multiple_of(5)) + 1;
        assert_eq!(got.get(key).map(|v| v.packets), Some(want), "flow {i}");
    }
    let c = p.counters().expect("counters");
    assert_eq!(c.get(XdpCounter::MapFull), 0, "{c:?}");
    assert_eq!(c.get(XdpCounter::Aggregated), sent + sent2, "{c:?}");
}

#[test]
fn harvest_many_flows() {
    if !xacct_perf::root_or_skip("BPF_PROG_TEST_RUN") {
        return;
    }
    // A thread of its own, so that its network namespace and CPU pinning affect nothing else.
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        sh(&["ip", "link", "add", "xm0", "type", "veth", "peer", "name", "xm1"]);
        // Left down: nothing but the test runs reaches the program.
        // Taken before `fill` pins the thread to one CPU at a time.
        let cpus = online_cpus();
        many_flows_body(false, &cpus);
        many_flows_body(true, &cpus);
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p));
}
