//! The XDP program's cost per packet, measured by the kernel with BPF_PROG_TEST_RUN over a mix
//! of packet kinds (perf/xdp_cost.sh runs this in release mode and prints the table). The test
//! checks the verdicts and that every run was counted; the ns figures are reported, not
//! asserted, since they depend on the machine.
//!
//! BPF_PROG_TEST_RUN reports the mean time per repeat (the kernel divides the loop's total by
//! the repeat count), and that includes the loop's own fixed cost per iteration (timer and
//! reschedule checks, the dispatcher call). To separate it out, the same frames are also run
//! through the smallest possible XDP program (`r0 = XDP_PASS; exit`): the "floor" column. The
//! program's own cost is the difference ("net").

use xacct_perf::testrun::{load_verdict, test_run, XDP_PASS};
use xacct_perf::traffic::{arp, build, FrameSpec, L3, L4};
use xacct_xdp::{
    Options, XdpCounter, XdpProgram, KEEP_ALL, KEEP_DST_ADDR, KEEP_DST_PORT, KEEP_PROTO, KEEP_SRC_ADDR, KEEP_SRC_PORT,
};

/// Rounds per packet kind (see `cost_per_packet`).
const ROUNDS: u32 = 25;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn spec(vlans: Vec<u16>, l3: L3, l4: L4, payload: usize) -> FrameSpec {
    FrameSpec { src_mac: [2, 0, 0, 0, 0, 1], dst_mac: [2, 0, 0, 0, 0, 2], vlans, l3, l4, payload }
}

#[test]
fn cost_per_packet() {
    if !xacct_perf::root_or_skip("BPF_PROG_TEST_RUN") {
        return;
    }
    let v4 = L3::V4 { src: [198, 18, 1, 1], dst: [198, 18, 2, 1], tos: 0 };
    let mut a6 = [0u8; 16];
    a6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    let v6 = L3::V6 { src: a6, dst: a6, tclass: 0 };
    // A datagram in two fragments: the first notes its ports in the fragment map, the later
    // one (run after it in every round) takes them from there.
    let (frag1, frag2) =
        xacct_perf::traffic::fragment_v4(&build(&spec(vec![], v4, L4::Udp { sport: 1234, dport: 53 }, 600)))
            .expect("fragments");
    let kinds: Vec<(&str, Vec<u8>, bool)> = vec![
        ("ipv4/tcp", build(&spec(vec![], v4, L4::Tcp { sport: 1234, dport: 80, flags: 0x10 }, 1400)), true),
        ("ipv4/udp", build(&spec(vec![], v4, L4::Udp { sport: 1234, dport: 53 }, 64)), true),
        ("ipv4/icmp", build(&spec(vec![], v4, L4::Icmp { ty: 8, code: 0 }, 56)), true),
        ("vlan/ipv4/udp", build(&spec(vec![10], v4, L4::Udp { sport: 1234, dport: 53 }, 64)), true),
        ("qinq/ipv4/tcp", build(&spec(vec![10, 20], v4, L4::Tcp { sport: 1, dport: 2, flags: 2 }, 0)), true),
        ("ipv6/udp", build(&spec(vec![], v6, L4::Udp { sport: 1234, dport: 53 }, 64)), true),
        ("ipv6/tcp", build(&spec(vec![], v6, L4::Tcp { sport: 1234, dport: 443, flags: 0x18 }, 1000)), true),
        ("ipv4/udp frag1", frag1, true),
        ("ipv4/udp frag2", frag2, true),
        ("arp", arp([2, 0, 0, 0, 0, 1], [198, 18, 1, 1], [198, 18, 2, 1]), false),
        (
            "pppoe/ipv4/udp",
            xacct_perf::traffic::pppoe(&build(&spec(vec![], v4, L4::Udp { sport: 1234, dport: 53 }, 64)), 0, 7),
            true,
        ),
        (
            "mpls3/ipv4/tcp",
            xacct_perf::traffic::mpls(
                &build(&spec(vec![], v4, L4::Tcp { sport: 1234, dport: 80, flags: 0x10 }, 1400)),
                0,
                &[16, 17, 18],
            ),
            true,
        ),
    ];
    let repeat: u32 = std::env::var("XDP_COST_REPEAT").ok().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let floor = load_verdict(XDP_PASS).unwrap_or_else(|e| panic!("loading the empty program: {e}"));
    // The usual 5-tuple aggregate (IPv4 flows under the compact 16-byte key), and every key
    // field the kernel can keep, MACs included (every flow under the 56-byte key).
    let five_tuple = KEEP_SRC_ADDR | KEEP_DST_ADDR | KEEP_SRC_PORT | KEEP_DST_PORT | KEEP_PROTO;
    for (label, key_fields) in [("5-tuple key", five_tuple), ("all key fields (MACs too)", KEEP_ALL)] {
        let loading = std::time::Instant::now();
        let p =
            XdpProgram::load(Options { key_fields, ..Options::default() }).unwrap_or_else(|e| panic!("load: {e:#}"));
        println!("load and verification: {:.0} ms", loading.elapsed().as_secs_f64() * 1e3);
        let mut ip_runs = 0u64;
        let (mut total, mut total_floor) = (0.0, 0.0);
        println!("{label}:");
        println!("{:<16} {:>10} {:>10} {:>10}", "kind", "ns/packet", "floor", "net");
        // Rounds over all kinds, each kind's program and floor back to back, then the median
        // of each: slow swings of the (virtual) machine's speed spread over every kind rather
        // than landing on one, and a round another tenant slowed down does not move a figure.
        let mut samples = vec![(Vec::new(), Vec::new()); kinds.len()];
        for _ in 0..ROUNDS {
            for ((name, frame, _), (ns, floor_ns)) in kinds.iter().zip(&mut samples) {
                let r = p.test_run(frame, repeat / ROUNDS).unwrap_or_else(|e| panic!("test_run {name}: {e:#}"));
                assert_eq!(r.action, XDP_PASS, "{name}");
                ns.push(r.per_run.as_nanos() as f64);
                let (ret, f) = test_run(&floor, frame, repeat / ROUNDS).unwrap_or_else(|e| panic!("floor {name}: {e}"));
                assert_eq!(ret, XDP_PASS, "floor {name}");
                floor_ns.push(f64::from(f));
            }
        }
        for ((name, _, ip), (ns, floor_ns)) in kinds.iter().zip(samples) {
            let (ns, floor_ns) = (median(ns), median(floor_ns));
            total += ns;
            total_floor += floor_ns;
            println!("{name:<16} {ns:>10.1} {floor_ns:>10.1} {:>10.1}", ns - floor_ns);
            if *ip {
                ip_runs += u64::from(repeat / ROUNDS * ROUNDS);
            }
        }
        let n = kinds.len() as f64;
        println!("{:<16} {:>10.1} {:>10.1} {:>10.1}", "mean", total / n, total_floor / n, (total - total_floor) / n);
        let c = p.counters().expect("counters");
        assert_eq!(c.get(XdpCounter::Aggregated), ip_runs, "{label}: {c:?}");
        assert_eq!(c.get(XdpCounter::NonIp), u64::from(repeat / ROUNDS * ROUNDS), "{label}: {c:?}");
        // Every run landed in the flow maps (kinds that differ only in fields a key drops,
        // like the VLAN under the 5-tuple, share a flow).
        let mut harvested = 0;
        let mut p = p;
        p.harvest(|_, v| harvested += v.packets).expect("harvest");
        assert_eq!(harvested, ip_runs, "{label}");
    }
    many_flows(&floor, five_tuple);
}

/// The same program on the mixed traffic of perf's capacity runs, one test run per packet over
/// many distinct flows, so that each packet finds its flow's slot cold as on a busy link (the
/// loop above repeats one frame, whose slot stays in the L1 cache). Each run also starts with
/// the program's code and maps displaced by the system call's own work, which a driver's poll
/// loop over a batch does not do: an upper bound. The floor's identical loop takes the timer's
/// overhead out. XDP_COST_FLOWS sets the flows (default 100000; 1000 in CI's quick run, when
/// XDP_COST_REPEAT is not set either).
fn many_flows(floor: &std::os::fd::OwnedFd, key_fields: u32) {
    let quick = std::env::var_os("XDP_COST_REPEAT").is_none();
    let flows: u64 =
        std::env::var("XDP_COST_FLOWS").ok().and_then(|s| s.parse().ok()).unwrap_or(if quick { 1000 } else { 100_000 });
    let packets = (flows as usize * 4).max(20_000);
    let frames = xacct_perf::traffic::mixed(packets, flows, 5);
    let mut p =
        XdpProgram::load(Options { key_fields, flow_entries: (2 * flows as u32).max(65536), ..Options::default() })
            .unwrap_or_else(|e| panic!("load: {e:#}"));
    // Two passes: the first fills the tables, the second is measured (flows going on).
    let pass = |measure: bool| -> (f64, f64) {
        let (mut ns, mut floor_ns) = (0u64, 0u64);
        for f in &frames {
            let r = p.test_run(&f.data, 1).unwrap_or_else(|e| panic!("test_run: {e:#}"));
            let (_, fl) = test_run(floor, &f.data, 1).unwrap_or_else(|e| panic!("floor: {e}"));
            if measure {
                ns += r.per_run.as_nanos() as u64;
                floor_ns += u64::from(fl);
            }
        }
        (ns as f64 / frames.len() as f64, floor_ns as f64 / frames.len() as f64)
    };
    pass(false);
    let (ns, floor_ns) = pass(true);
    println!(
        "5-tuple key, mixed traffic over {flows} flows, one run per packet: {ns:.1} ns/packet, floor {floor_ns:.1}, net {:.1}",
        ns - floor_ns
    );
    let mut harvested = 0;
    p.harvest(|_, v| harvested += v.packets).expect("harvest");
    let c = p.counters().expect("counters");
    assert_eq!(harvested, c.get(XdpCounter::Aggregated), "{c:?}");
    assert_eq!(c.get(XdpCounter::MapFull), 0, "{c:?}");
}
