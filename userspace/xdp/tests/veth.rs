//! The XDP program on a veth pair in a private network namespace: known frames injected with
//! libpcap into one end, counted by the program on the other end, read back by harvest.
//!
//! Needs root (namespaces, BPF, XDP). Without it each test is skipped, except under CI=true
//! where it must run. Addresses are from 198.18.0.0/15 and 2001:db8::/32: nothing leaves the
//! namespace, which vanishes with the test's thread.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xacct_perf::traffic::{arp, build, FrameSpec, L3, L4};
use xacct_xdp::{
    Action, FlowKey, FlowValue, Mode, Options, Rules, XdpCounter, XdpProgram, ENCAP_PPPOE, KEEP_DST_ADDR,
    KEEP_DST_PORT, KEEP_PROTO, KEEP_SRC_ADDR, KEEP_SRC_PORT,
};

const TX: &str = "xx0";
const RX: &str = "xx1";

fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn skip(reason: &str) {
    assert!(!under_ci(), "cannot skip under CI=true: {reason}");
    eprintln!("SKIP: {reason}");
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `body` in a thread of its own, inside a fresh network namespace holding the veth pair
/// TX–RX (IPv6 off so the kernel sends nothing of its own).
fn in_namespace(body: fn()) {
    let h = std::thread::spawn(move || {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            skip(&format!("XDP veth tests need root: unshare(CLONE_NEWNET): {e}"));
            return;
        }
        for p in ["all", "default"] {
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{p}/disable_ipv6"), "1");
        }
        sh(&["ip", "link", "set", "lo", "up"]);
        sh(&["ip", "link", "add", TX, "type", "veth", "peer", "name", RX]);
        for dev in [TX, RX] {
            sh(&["ip", "link", "set", dev, "up"]);
        }
        body();
    });
    if let Err(p) = h.join() {
        std::panic::resume_unwind(p);
    }
}

fn v4(a: [u8; 4], b: [u8; 4]) -> L3 {
    L3::V4 { src: a, dst: b, tos: 0 }
}

fn v6(s: u8, d: u8) -> L3 {
    let mk = |x: u8| {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[15] = x;
        a
    };
    L3::V6 { src: mk(s), dst: mk(d), tclass: 0 }
}

fn spec(vlans: Vec<u16>, l3: L3, l4: L4, payload: usize) -> FrameSpec {
    FrameSpec { src_mac: [2, 0, 0, 0, 0, 1], dst_mac: [2, 0, 0, 0, 0, 2], vlans, l3, l4, payload }
}

/// What a flow's frames are wrapped in between their VLAN tags and the IP packet.
#[derive(Clone, Copy)]
enum Encap {
    None,
    Pppoe(u16),
    Mpls(&'static [u32]),
}

/// A flow to send: its frame, how many times, and its IP length (what is counted as bytes).
struct Flow {
    spec: FrameSpec,
    encap: Encap,
    count: u64,
    ip_len: u64,
}

impl Flow {
    fn frame(&self) -> Vec<u8> {
        let f = build(&self.spec);
        match self.encap {
            Encap::None => f,
            Encap::Pppoe(session) => xacct_perf::traffic::pppoe(&f, self.spec.vlans.len(), session),
            Encap::Mpls(labels) => xacct_perf::traffic::mpls(&f, self.spec.vlans.len(), labels),
        }
    }

    /// [`key_of`] with the encapsulation's fields.
    fn key(&self) -> FlowKey {
        let mut k = key_of(&self.spec);
        match self.encap {
            Encap::None => {}
            Encap::Pppoe(session) => {
                k.pppoe_session = session.to_be_bytes();
                k.encap = ENCAP_PPPOE;
            }
            Encap::Mpls(labels) => {
                k.mpls_top = labels[0].to_be_bytes();
                k.mpls_bottom = labels[labels.len() - 1].to_be_bytes();
                k.mpls_depth = labels.len() as u8;
            }
        }
        k
    }
}

fn flows() -> Vec<Flow> {
    let f = |spec, count, ip_len| Flow { spec, encap: Encap::None, count, ip_len };
    let e = |encap, spec, count, ip_len| Flow { spec, encap, count, ip_len };
    vec![
        f(
            spec(vec![], v4([198, 18, 1, 1], [198, 18, 2, 1]), L4::Tcp { sport: 40001, dport: 80, flags: 0x18 }, 100),
            5,
            140,
        ),
        f(spec(vec![], v4([198, 18, 1, 2], [198, 18, 2, 2]), L4::Udp { sport: 40002, dport: 53 }, 30), 7, 58),
        // Padded to 60 bytes on the wire: bytes must still be the IP length.
        f(spec(vec![], v4([198, 18, 1, 3], [198, 18, 2, 3]), L4::Udp { sport: 40003, dport: 5353 }, 0), 3, 28),
        f(
            spec(vec![42], v4([198, 18, 3, 1], [198, 18, 2, 4]), L4::Tcp { sport: 40004, dport: 443, flags: 0x02 }, 10),
            4,
            50,
        ),
        f(spec(vec![100, 200], v4([198, 18, 3, 2], [198, 18, 2, 5]), L4::Udp { sport: 40007, dport: 4789 }, 50), 3, 78),
        f(spec(vec![], v4([198, 18, 1, 4], [198, 18, 2, 6]), L4::Icmp { ty: 8, code: 0 }, 20), 2, 48),
        f(spec(vec![], v6(1, 2), L4::Udp { sport: 40005, dport: 123 }, 20), 6, 68),
        f(spec(vec![43], v6(3, 4), L4::Tcp { sport: 40006, dport: 22, flags: 0x02 }, 0), 2, 60),
        // PPPoE and MPLS, also behind VLAN tags: parsed in the kernel.
        e(
            Encap::Pppoe(0x1234),
            spec(vec![], v4([198, 18, 5, 1], [198, 18, 2, 7]), L4::Udp { sport: 40008, dport: 53 }, 12),
            3,
            40,
        ),
        e(Encap::Pppoe(5), spec(vec![46], v6(5, 6), L4::Tcp { sport: 40009, dport: 80, flags: 0x10 }, 8), 2, 68),
        e(
            Encap::Mpls(&[100]),
            spec(vec![], v4([198, 18, 5, 2], [198, 18, 2, 8]), L4::Tcp { sport: 40010, dport: 179, flags: 0x02 }, 0),
            4,
            40,
        ),
        e(
            Encap::Mpls(&[16, 17, 1_048_575]),
            spec(vec![47], v6(7, 8), L4::Udp { sport: 40011, dport: 4000 }, 20),
            3,
            68,
        ),
    ]
}

/// The key the program must produce for `s` with every field kept.
fn key_of(s: &FrameSpec) -> FlowKey {
    let mut k = FlowKey { src_mac: s.src_mac, dst_mac: s.dst_mac, ..FlowKey::default() };
    k.vlan = s.vlans.first().copied().unwrap_or(0).to_be_bytes();
    k.vlan_depth = s.vlans.len() as u8;
    match s.l3 {
        L3::V4 { src, dst, tos } => {
            k.family = 4;
            k.ethertype = 0x0800u16.to_be_bytes();
            k.src_addr[..4].copy_from_slice(&src);
            k.dst_addr[..4].copy_from_slice(&dst);
            k.tos = tos;
        }
        L3::V6 { src, dst, tclass } => {
            k.family = 6;
            k.ethertype = 0x86ddu16.to_be_bytes();
            k.src_addr = src;
            k.dst_addr = dst;
            k.tos = tclass;
        }
    }
    let v6 = k.family == 6;
    match s.l4 {
        L4::Tcp { sport, dport, .. } => {
            (k.proto, k.src_port, k.dst_port) = (6, sport.to_be_bytes(), dport.to_be_bytes())
        }
        L4::Udp { sport, dport } => (k.proto, k.src_port, k.dst_port) = (17, sport.to_be_bytes(), dport.to_be_bytes()),
        L4::Icmp { .. } => k.proto = if v6 { 58 } else { 1 },
    }
    k
}

fn tcp_flags(s: &FrameSpec) -> u8 {
    match s.l4 {
        L4::Tcp { flags, .. } => flags,
        _ => 0,
    }
}

/// Loads and attaches (inside the namespace, so privileges are known to be there).
fn load(opts: Options) -> Option<XdpProgram> {
    // The namespace was made, so we are privileged: a load failure is a real failure.
    let mut p = XdpProgram::load(opts).unwrap_or_else(|e| panic!("load the XDP program: {e:#}"));
    let a = p.attach(RX).expect("attach to the veth");
    eprintln!("attached to {RX}: {a:?}");
    // veth has native XDP: generic would mean a regression in our attach path.
    assert_eq!(a.mode, Mode::Native, "{a:?}");
    Some(p)
}

fn sender() -> pcap::Capture<pcap::Active> {
    pcap::Capture::from_device(TX).and_then(|c| c.open()).expect("open the sending end with libpcap")
}

/// Sends the flows interleaved, as on a real link; returns the frames sent.
fn send(flows: &[Flow], tx: &mut pcap::Capture<pcap::Active>) -> u64 {
    let frames: Vec<Vec<u8>> = flows.iter().map(Flow::frame).collect();
    let mut sent = 0;
    for round in 0..flows.iter().map(|f| f.count).max().unwrap_or(0) {
        for (f, fr) in flows.iter().zip(&frames) {
            if round < f.count {
                tx.sendpacket(fr.as_slice()).expect("inject frame");
                sent += 1;
            }
        }
    }
    sent
}

/// Harvests until `done` says the table is complete (frames may still be in flight in the veth
/// queue), then once more to prove nothing else arrives.
fn harvest_until(
    p: &mut XdpProgram,
    table: &mut BTreeMap<FlowKey, FlowValue>,
    done: impl Fn(&BTreeMap<FlowKey, FlowValue>) -> bool,
) {
    let t = Instant::now();
    loop {
        p.harvest(|k, v| table.entry(*k).or_default().merge(v)).expect("harvest");
        if done(table) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "harvest never completed: {table:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    p.harvest(|k, v| table.entry(*k).or_default().merge(v)).expect("harvest");
}

fn total(t: &BTreeMap<FlowKey, FlowValue>) -> u64 {
    t.values().map(|v| v.packets).sum()
}

fn exact_flows() {
    let Some(mut p) = load(Options::default()) else { return };
    let flows = flows();
    let mut tx = sender();
    let n = send(&flows, &mut tx);
    for _ in 0..2 {
        tx.sendpacket(arp([2, 0, 0, 0, 0, 1], [198, 18, 1, 1], [198, 18, 2, 1]).as_slice()).expect("inject arp");
    }
    // PPPoE carrying LCP: not IP, like ARP.
    let mut lcp =
        [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0x64, 0x11, 0, 0, 1, 0, 6, 0xc0, 0x21, 9, 1, 0, 4].to_vec();
    lcp.resize(60, 0);
    tx.sendpacket(lcp.as_slice()).expect("inject LCP");
    let mut got: BTreeMap<FlowKey, FlowValue> = BTreeMap::new();
    harvest_until(&mut p, &mut got, |t| total(t) >= n);
    let want: BTreeMap<FlowKey, (u64, u64, u64)> =
        flows.iter().map(|f| (f.key(), (f.count, f.count * f.ip_len, u64::from(tcp_flags(&f.spec))))).collect();
    let got_cmp: BTreeMap<FlowKey, (u64, u64, u64)> =
        got.iter().map(|(k, v)| (*k, (v.packets, v.bytes, v.tcp_flags))).collect();
    assert_eq!(got_cmp, want);
    for v in got.values() {
        assert!(v.first_seen_ns != 0 && v.first_seen_ns <= v.last_seen_ns, "{v:?}");
    }
    let c = p.counters().expect("counters");
    eprintln!("counters: {c:?}");
    assert_eq!(c.get(XdpCounter::Aggregated), n);
    assert_eq!(c.get(XdpCounter::NonIp), 3);
    assert_eq!(c.get(XdpCounter::Malformed), 0);
    assert_eq!(c.get(XdpCounter::Seen), n + 3);
}

fn prefilter_drops_what_no_rule_wants() {
    let Some(mut p) = load(Options { action: Action::Pass, ..Options::default() }) else { return };
    let mut rules = Rules::none();
    rules.v4_src.push((Ipv4Addr::new(198, 18, 1, 0), 24));
    rules.dst_ports.push(123);
    p.set_rules(&rules).expect("set rules");
    let flows = flows();
    let mut tx = sender();
    let n = send(&flows, &mut tx);
    // Admitted: the four flows from 198.18.1.0/24 and the IPv6 one to port 123.
    let admitted: Vec<&Flow> = flows
        .iter()
        .filter(|f| match (f.spec.l3, f.spec.l4) {
            (L3::V4 { src, .. }, _) => src[..3] == [198, 18, 1],
            (_, L4::Udp { dport, .. }) => dport == 123,
            _ => false,
        })
        .collect();
    let n_in: u64 = admitted.iter().map(|f| f.count).sum();
    assert_eq!(admitted.len(), 5, "the test's own expectation");
    let mut got: BTreeMap<FlowKey, FlowValue> = BTreeMap::new();
    harvest_until(&mut p, &mut got, |t| total(t) >= n_in);
    let want: BTreeMap<FlowKey, u64> = admitted.iter().map(|f| (f.key(), f.count)).collect();
    let got: BTreeMap<FlowKey, u64> = got.iter().map(|(k, v)| (*k, v.packets)).collect();
    assert_eq!(got, want);
    let c = p.counters().expect("counters");
    assert_eq!(c.get(XdpCounter::PreFiltered), n - n_in, "{c:?}");
    assert_eq!(c.get(XdpCounter::Aggregated), n_in, "{c:?}");

    // Back to admitting everything.
    p.set_rules(&Rules::pass_all()).expect("set rules");
    let n2 = send(&flows, &mut tx);
    let mut got: BTreeMap<FlowKey, FlowValue> = BTreeMap::new();
    harvest_until(&mut p, &mut got, |t| total(t) >= n2);
    assert_eq!(total(&got), n2);
    assert_eq!(p.counters().expect("counters").get(XdpCounter::PreFiltered), n - n_in);
}

fn continuous_harvest_is_exact() {
    // Only the 5-tuple kept: also checks that projection merges flows that differ elsewhere.
    let opts = Options { key_fields: xacct_xdp::KEEP_SRC_ADDR | xacct_xdp::KEEP_DST_PORT, ..Options::default() };
    let Some(mut p) = load(opts) else { return };
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let rounds = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rounds2 = Arc::clone(&rounds);
    let harvester = std::thread::spawn(move || {
        let mut table: BTreeMap<FlowKey, FlowValue> = BTreeMap::new();
        while !stop2.load(Ordering::Relaxed) {
            p.harvest(|k, v| table.entry(*k).or_default().merge(v)).expect("harvest");
            rounds2.fetch_add(1, Ordering::Relaxed);
        }
        (p, table)
    });
    let mut tx = sender();
    let per_flow = 400u64;
    let mut flows = Vec::new();
    for i in 0..50u8 {
        let vl = if i % 3 == 0 { vec![7] } else { vec![] };
        flows.push(Flow {
            encap: Encap::None,
            spec: spec(vl, v4([198, 18, 1, i], [198, 18, 2, 1]), L4::Udp { sport: 1000 + u16::from(i), dport: 9 }, 10),
            count: per_flow,
            ip_len: 38,
        });
    }
    // Send in chunks and let at least two harvests complete after each, so harvests overlap
    // the traffic by construction, however loaded the machine is.
    let mut n = 0;
    for chunk in flows.chunks(5) {
        n += send(chunk, &mut tx);
        let seen = rounds.load(Ordering::Relaxed);
        let t = std::time::Instant::now();
        while rounds.load(Ordering::Relaxed) < seen + 2 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (mut p, mut table) = harvester.join().expect("harvester");
    let rounds = rounds.load(Ordering::Relaxed);
    harvest_until(&mut p, &mut table, |t| total(t) >= n);
    eprintln!("continuous: {n} frames, {rounds} harvests while sending");
    assert!(rounds >= 20, "the harvests must overlap the sending: {rounds}");
    assert_eq!(total(&table), n);
    assert_eq!(table.len(), 50);
    for (k, v) in &table {
        assert_eq!((v.packets, v.bytes), (per_flow, per_flow * 38), "{k:?}");
        assert_eq!((k.src_port(), k.vlan(), k.proto, k.dst_port()), (0, 0, 0, 9), "unkept fields are zero");
    }
}

fn tiny_map_overflow_is_counted() {
    // 4 entries in each hash map and 4 slots in each CPU's table; the frames' flows all come
    // in on one CPU (the sender's).
    let Some(mut p) = load(Options { flow_entries: 4, ..Options::default() }) else { return };
    let mut flows = Vec::new();
    for i in 0..10u8 {
        flows.push(Flow {
            encap: Encap::None,
            spec: spec(vec![], v4([198, 18, 1, i], [198, 18, 2, 1]), L4::Udp { sport: 5000, dport: 9 }, 10),
            count: 3,
            ip_len: 38,
        });
    }
    let mut tx = sender();
    let n = send(&flows, &mut tx);
    let mut got: BTreeMap<FlowKey, FlowValue> = BTreeMap::new();
    let t = Instant::now();
    loop {
        p.harvest(|k, v| got.entry(*k).or_default().merge(v)).expect("harvest");
        let lost = p.counters().expect("counters").get(XdpCounter::MapFullFallback);
        if total(&got) + lost >= n {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "frames missing: {got:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = p.counters().expect("counters");
    eprintln!("tiny map: {} flows in the map, counters {c:?}", got.len());
    assert!(got.len() <= 8, "{got:?}");
    assert!(c.get(XdpCounter::MapFull) > 0, "{c:?}");
    // No AF_XDP socket: every overflow was passed to the stack and counted.
    assert_eq!(c.get(XdpCounter::Redirected), 0, "{c:?}");
    assert_eq!(c.get(XdpCounter::MapFull), c.get(XdpCounter::MapFullFallback), "{c:?}");
    assert_eq!(total(&got) + c.get(XdpCounter::MapFullFallback), n, "{c:?}");
}

/// The 5-tuple keeps no MAC, so IPv4 flows are counted under the compact 16-byte key and
/// expanded on harvest: the same flows, exactly, as the full key gives (with the fields the
/// 5-tuple drops zeroed).
fn exact_flows_compact_key() {
    let five_tuple = KEEP_SRC_ADDR | KEEP_DST_ADDR | KEEP_SRC_PORT | KEEP_DST_PORT | KEEP_PROTO;
    let Some(mut p) = load(Options { key_fields: five_tuple, ..Options::default() }) else { return };
    let flows = flows();
    let mut tx = sender();
    let n = send(&flows, &mut tx);
    let mut got: BTreeMap<FlowKey, FlowValue> = BTreeMap::new();
    harvest_until(&mut p, &mut got, |t| total(t) >= n);
    let mut want: BTreeMap<FlowKey, (u64, u64)> = BTreeMap::new();
    for f in &flows {
        let k = f.key();
        // IPv4 flows take the compact key; the full key (IPv6) keeps the encapsulation's
        // fields whatever is kept (the workers' projection merges them; see project()).
        let encap = if k.family == 6 {
            FlowKey {
                mpls_top: k.mpls_top,
                mpls_bottom: k.mpls_bottom,
                mpls_depth: k.mpls_depth,
                pppoe_session: k.pppoe_session,
                vlan_depth: k.vlan_depth,
                encap: k.encap,
                ..FlowKey::default()
            }
        } else {
            FlowKey::default()
        };
        let k = FlowKey {
            src_addr: k.src_addr,
            dst_addr: k.dst_addr,
            src_port: k.src_port,
            dst_port: k.dst_port,
            proto: k.proto,
            family: k.family,
            ..encap
        };
        let e = want.entry(k).or_default();
        e.0 += f.count;
        e.1 += f.count * f.ip_len;
    }
    assert!(flows.iter().any(|f| key_of(&f.spec).family == 4), "the test needs IPv4 flows");
    let got_cmp: BTreeMap<FlowKey, (u64, u64)> = got.iter().map(|(k, v)| (*k, (v.packets, v.bytes))).collect();
    assert_eq!(got_cmp, want);
}

/// A harvest keeps the entries of flows that had traffic (zeroed, so that a flow that goes on
/// is not re-inserted) and deletes those that had none: once traffic stops, two harvests (one
/// per epoch's map) leave the maps empty.
fn idle_flows_leave_the_maps() {
    // Hash maps only: the per-CPU tables free every slot at each harvest.
    let Some(mut p) = load(Options { flow_entries: 64, tables: false, ..Options::default() }) else { return };
    let flows = flows();
    let mut tx = sender();
    let n = send(&flows, &mut tx);
    let mut got: BTreeMap<FlowKey, FlowValue> = BTreeMap::new();
    harvest_until(&mut p, &mut got, |t| total(t) >= n);
    assert_eq!(total(&got), n);
    assert!(p.flow_entries().expect("count entries") > 0, "entries with traffic are kept, zeroed");
    for _ in 0..2 {
        p.harvest(|k, v| panic!("no traffic, yet a harvest gave {k:?} {v:?}")).expect("harvest");
    }
    assert_eq!(p.flow_entries().expect("count entries"), 0, "idle entries were not deleted");
    // And counting starts over cleanly: the same flows again, exactly.
    let n2 = send(&flows, &mut tx);
    let mut again: BTreeMap<FlowKey, FlowValue> = BTreeMap::new();
    harvest_until(&mut p, &mut again, |t| total(t) >= n2);
    assert_eq!(total(&again), n2);
}

#[test]
fn idle_entries_are_deleted_after_a_quiet_epoch() {
    in_namespace(idle_flows_leave_the_maps);
}

/// IP fragments stay in the kernel: a first fragment notes its datagram's ports, and later
/// fragments are counted with them. A later fragment that comes before its first goes up to
/// userspace, and so does that first one (userspace then holds the later one); after it, the
/// datagram's fragments stay in the kernel again. Without a kept port, fragments are counted as
/// they are. No AF_XDP socket here, so a fragment that goes up shows as `RedirectFailed` and is
/// counted in the kernel as it is (a later one with ports 0).
fn fragments_in_the_kernel() {
    let udp = build(&FrameSpec {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        vlans: vec![],
        l3: L3::V4 { src: [198, 18, 9, 1], dst: [198, 18, 9, 2], tos: 0 },
        l4: L4::Udp { sport: 5000, dport: 6000 },
        payload: 200,
    });
    let (first, later) = xacct_perf::traffic::fragment_v4(&udp).expect("fragments");
    let ip_len = |f: &[u8]| u64::from(u16::from_be_bytes([f[16], f[17]]));
    let (fb, lb) = (ip_len(&first), ip_len(&later));
    let ports = KEEP_SRC_ADDR | KEEP_DST_ADDR | KEEP_DST_PORT;
    // (key fields, frames in sending order, packets and bytes per destination port,
    // RedirectFailed, FragmentPorts)
    type Case<'a> = (u32, Vec<&'a [u8]>, Vec<(u16, u64, u64)>, u64, u64);
    let cases: Vec<Case> = vec![
        (
            KEEP_SRC_ADDR | KEEP_DST_ADDR | KEEP_PROTO,
            [&first[..], &later[..]].repeat(3),
            vec![(0, 6, 3 * (fb + lb))],
            0,
            0,
        ),
        (ports, [&first[..], &later[..]].repeat(3), vec![(6000, 6, 3 * (fb + lb))], 0, 3),
        (ports, vec![&later[..], &first[..], &later[..]], vec![(0, 1, lb), (6000, 2, fb + lb)], 2, 1),
    ];
    for (key_fields, frames, want, redirect_failed, fragment_ports) in cases {
        let Some(mut p) = load(Options { key_fields, ..Options::default() }) else { return };
        let mut tx = sender();
        for f in &frames {
            tx.sendpacket(*f).expect("inject");
        }
        let n = frames.len() as u64;
        let mut got: BTreeMap<FlowKey, FlowValue> = BTreeMap::new();
        harvest_until(&mut p, &mut got, |t| total(t) >= n);
        let by_port: Vec<(u16, u64, u64)> = got.iter().map(|(k, v)| (k.dst_port(), v.packets, v.bytes)).collect();
        assert_eq!(by_port, want, "{key_fields:#x}");
        let c = p.counters().expect("counters");
        assert_eq!(c.get(XdpCounter::RedirectFailed), redirect_failed, "{key_fields:#x}: {c:?}");
        assert_eq!(c.get(XdpCounter::FragmentPorts), fragment_ports, "{key_fields:#x}: {c:?}");
        drop(p);
    }
}

#[test]
fn fragments_get_their_datagrams_ports_in_the_kernel() {
    in_namespace(fragments_in_the_kernel);
}

#[test]
fn compact_key_flows_are_exact() {
    in_namespace(exact_flows_compact_key);
}

#[test]
fn exact_per_flow_counts() {
    in_namespace(exact_flows);
}

#[test]
fn prefilter() {
    in_namespace(prefilter_drops_what_no_rule_wants);
}

#[test]
fn continuous_harvest() {
    in_namespace(continuous_harvest_is_exact);
}

#[test]
fn tiny_flow_map() {
    in_namespace(tiny_map_overflow_is_counted);
}
