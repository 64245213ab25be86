//! `Filter::kernel_superset` must never make the XDP pre-filter drop a packet the filter
//! accepts: for many expressions and thousands of random packet records, whenever
//! `Filter::matches` accepts a record, a model of the XDP program's rule evaluation
//! (`admitted` and the verdicts before it in ebpf/xdp/src/main.rs) must admit the packet too.
//! It must also stay selective for simple filters.

use std::net::{Ipv4Addr, Ipv6Addr};

use xacct_core::filter::{Filter, PrefilterRules, PREFILTER_MAX_NETS};
use xacct_core::record::{Addr, Record};

/// A packet as both sides see it: the record userspace filters (later fragments carry their
/// datagram's ports, from the daemon's fragment table) and whether the kernel sees it as a
/// later fragment (no L4 header: ports 0 in its flow key).
#[derive(Debug, Clone, Copy)]
struct Packet {
    rec: Record,
    later_fragment: bool,
}

/// The XDP program's decision, modelled from ebpf/xdp/src/main.rs: non-IP frames and frames
/// with more VLAN tags than it walks are never pre-filtered; otherwise `admitted()` on the flow
/// key, whose ports are those of TCP/UDP non-later fragments and whose VLAN is the outer id.
fn kernel_admits(rules: &PrefilterRules, p: &Packet) -> bool {
    const MAX_VLAN_TAGS: u8 = 3;
    let r = &p.rec;
    if !matches!(r.etype, 0x0800 | 0x86dd) || r.vlan_depth > MAX_VLAN_TAGS {
        return true;
    }
    let in4 = |nets: &[(Ipv4Addr, u8)], a: &Addr| match a {
        Addr::V4(b) => nets.iter().any(|(n, l)| {
            let mask = if *l == 0 { 0 } else { u32::MAX << (32 - u32::from(*l).min(32)) };
            u32::from_be_bytes(*b) & mask == u32::from(*n) & mask
        }),
        _ => false,
    };
    let in6 = |nets: &[(Ipv6Addr, u8)], a: &Addr| match a {
        Addr::V6(b) => nets.iter().any(|(n, l)| {
            let mask = if *l == 0 { 0 } else { u128::MAX << (128 - u32::from(*l).min(128)) };
            u128::from_be_bytes(*b) & mask == u128::from(*n) & mask
        }),
        _ => false,
    };
    if r.etype == 0x0800 {
        if rules.ipv4 || in4(&rules.v4_src, &r.src_ip) || in4(&rules.v4_dst, &r.dst_ip) {
            return true;
        }
    } else if rules.ipv6 || in6(&rules.v6_src, &r.src_ip) || in6(&rules.v6_dst, &r.dst_ip) {
        return true;
    }
    if rules.protos.contains(&r.proto) {
        return true;
    }
    let (sp, dp) = if !p.later_fragment && matches!(r.proto, 6 | 17) { (r.src_port, r.dst_port) } else { (0, 0) };
    if rules.src_ports.contains(&sp) || rules.dst_ports.contains(&dp) {
        return true;
    }
    let vlan = if r.vlan_depth > 0 { r.vlan & 0x0fff } else { 0 };
    rules.vlans.contains(&vlan)
}

/// xorshift64*: a few lines of deterministic randomness, so failures reproduce and the crate
/// needs no extra dev-dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Addresses inside and just outside the nets the expressions use, plus random ones.
const V4: &[[u8; 4]] = &[
    [10, 0, 0, 1],
    [10, 0, 5, 5],
    [10, 1, 2, 3],
    [10, 255, 0, 1],
    [11, 0, 0, 1],
    [192, 168, 1, 1],
    [192, 168, 1, 200],
    [192, 168, 2, 1],
    [1, 2, 3, 4],
    [5, 6, 7, 8],
    [172, 16, 3, 4],
    [172, 32, 0, 1],
    [224, 0, 0, 5],
    [239, 1, 1, 1],
    [255, 255, 255, 255],
    [0, 0, 0, 10],
    [127, 0, 0, 1],
];

const V6: &[&str] =
    &["::1", "2001:db8::1", "2001:db8:1::5", "2001:db9::1", "fe80::1", "ff02::1", "::ffff:1.2.3.4", "2a00::1"];

const PORTS: &[u16] = &[0, 20, 21, 22, 23, 53, 80, 443, 1023, 1024, 1025, 8080, 5000, 50, 55, 60, 9000, 65535];
const PROTOS: &[u8] = &[6, 6, 17, 17, 1, 58, 132, 47, 50, 2, 0, 255];
const VLANS: &[u16] = &[0, 10, 20, 100, 4095];
const MACS: &[[u8; 6]] =
    &[[0, 0x11, 0x22, 0x33, 0x44, 0x55], [0, 0x11, 0x22, 0x33, 0x44, 0x66], [0xff; 6], [0x01, 0, 0x5e, 0, 0, 1]];

fn v4(rng: &mut Rng) -> Addr {
    if rng.chance(15) {
        Addr::V4((rng.next() as u32).to_be_bytes())
    } else {
        Addr::V4(rng.pick(V4))
    }
}

fn v6(rng: &mut Rng) -> Addr {
    if rng.chance(15) {
        Addr::V6(u128::from(rng.next()).rotate_left(64).wrapping_add(u128::from(rng.next())).to_be_bytes())
    } else {
        Addr::V6(rng.pick(V6).parse::<Ipv6Addr>().map(|a| a.octets()).unwrap_or_default())
    }
}

/// A packet record the way the wire decoder and the daemon's fragment table fill it.
fn packet(rng: &mut Rng) -> Packet {
    let vlan_depth = rng.pick(&[0u8, 0, 0, 1, 1, 2, 2, 3, 4]);
    let vlan = if vlan_depth == 0 {
        0
    } else if rng.chance(80) {
        rng.pick(VLANS)
    } else {
        rng.below(4096) as u16
    };
    let etype = rng.pick(&[0x0800u16, 0x0800, 0x0800, 0x86dd, 0x86dd, 0x0806, 0x8035, 0x88cc]);
    let mut rec = Record {
        src_mac: rng.pick(MACS),
        dst_mac: rng.pick(MACS),
        vlan,
        vlan_depth,
        etype,
        packets: 1,
        bytes: 40 + rng.below(1460),
        ..Record::default()
    };
    let mut later_fragment = false;
    match etype {
        0x0800 | 0x86dd => {
            let (s, d) = if etype == 0x0800 { (v4(rng), v4(rng)) } else { (v6(rng), v6(rng)) };
            rec.src_ip = s;
            rec.dst_ip = d;
            rec.proto = if rng.chance(90) { rng.pick(PROTOS) } else { rng.below(256) as u8 };
            rec.tos = rng.below(256) as u8;
            // The decoder reads ports for TCP and UDP only (SCTP, ICMP: 0).
            if matches!(rec.proto, 6 | 17) {
                later_fragment = rng.chance(15);
                let port = |rng: &mut Rng| if rng.chance(85) { rng.pick(PORTS) } else { rng.below(65536) as u16 };
                // A later fragment whose first fragment was seen gets the datagram's ports; an
                // orphan keeps 0.
                if !later_fragment || rng.chance(80) {
                    rec.src_port = port(rng);
                    rec.dst_port = port(rng);
                }
                if rec.proto == 6 && !later_fragment {
                    rec.tcp_flags = rng.below(256) as u8;
                }
            }
        }
        // Non-IP: no addresses (the decoder fills none), bytes = frame length.
        _ => {}
    }
    Packet { rec, later_fragment }
}

const EXPRS: &[&str] = &[
    "",
    "ip",
    "ip6",
    "arp",
    "rarp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "sctp",
    "igmp",
    "ip proto 47",
    "ip6 proto 17",
    "proto 6",
    "proto \\udp or proto 1",
    "ether proto 0x0800",
    "ether proto 0x88cc",
    "host 10.0.0.1",
    "src host 10.0.0.1",
    "dst host 192.168.1.1",
    "src or dst host 1.2.3.4",
    "src and dst net 10.0.0.0/8",
    "ip src 5.6.7.8",
    "arp host 10.0.0.1",
    "net 10.0.0.0/16",
    "src net 10.0.0.0/16",
    "src net 10.0.0.0/8",
    "net 10.0.0.0 mask 255.0.255.0",
    "net 10",
    "host 10.1",
    "host 10",
    "net 224.0.0.0/4",
    "net 0.0.0.0/0",
    "dst net 172.16.0.0/12",
    "host ::1",
    "net 2001:db8::/32",
    "src net 2001:db8:1::/48",
    "ip6 dst net fe80::/10",
    "net ::/0",
    "ip6 src host 2001:db8::1 or ip6 dst host ff02::1",
    "port 80",
    "tcp port 80",
    "udp port 53",
    "udp src port 53",
    "tcp dst port 443",
    "sctp port 80",
    "src and dst port 80",
    "portrange 1-1023",
    "tcp portrange 1000-9000",
    "udp dst portrange 50-60",
    "portrange 0-100",
    "portrange 1-65535",
    "port 80 or 443",
    "tcp port (80 or 443)",
    "host 1.2.3.4 or 5.6.7.8",
    "host 1.2.3.4 and not 5.6.7.8",
    "ether host 00:11:22:33:44:55",
    "ether broadcast",
    "multicast",
    "ip multicast",
    "ip6 multicast",
    "vlan",
    "vlan 10",
    "vlan 0",
    "not vlan",
    "vlan and ip",
    "vlan and tcp port 80",
    "vlan 10 and src net 10.0.0.0/8",
    "vlan and vlan 20",
    "vlan 20 and vlan 10 and udp",
    "vlan or ip",
    "tcp or vlan and udp",
    "vlan and host 1.2.3.4 or 5.6.7.8",
    "less 100",
    "greater 1000 and tcp",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[13] <= 1",
    "2 = 2",
    "1 > 2 or tcp",
    "1 > 2",
    "tcp or udp and port 53",
    "tcp and port 80 or udp",
    "not tcp and port 80",
    "not (tcp and port 80)",
    "ip and not (port 80 or port 443)",
    "(host 10.0.0.1 or host 1.2.3.4) and (tcp or icmp)",
    "not not udp",
    "icmp or icmp6 or arp",
    "src net 10.0.0.0/8 and not dst net 10.0.0.0/8",
    "ip6 or arp or net 192.168.0.0/16",
    "not ip6 and (udp port 53 or tcp port 80)",
    "(src net 10.0.0.0/8 or dst net 192.168.1.0/24) and not icmp",
];

/// Primitives combined at random with and/or/not and parentheses.
const ATOMS: &[&str] = &[
    "tcp",
    "udp",
    "icmp",
    "ip",
    "ip6",
    "arp",
    "vlan",
    "vlan 10",
    "port 80",
    "udp port 53",
    "src port 1024",
    "portrange 50-60",
    "host 10.0.0.1",
    "src net 10.0.0.0/8",
    "dst net 192.168.1.0/24",
    "net 2001:db8::/32",
    "ip6 src host ::1",
    "proto 47",
    "ether broadcast",
    "less 200",
    "tcp[13] & 2 != 0",
    "ip multicast",
];

fn random_expr(rng: &mut Rng, depth: u32) -> String {
    if depth == 0 || rng.chance(30) {
        let a = rng.pick(ATOMS);
        return if rng.chance(20) { format!("not {a}") } else { a.to_string() };
    }
    let l = random_expr(rng, depth - 1);
    let r = random_expr(rng, depth - 1);
    let op = if rng.chance(50) { "and" } else { "or" };
    match rng.below(3) {
        0 => format!("{l} {op} {r}"),
        1 => format!("({l}) {op} ({r})"),
        _ => format!("not ({l} {op} {r})"),
    }
}

/// Returns a packet the filter accepts but the kernel would drop under `rules`.
fn counterexample(f: &Filter, rules: &PrefilterRules, packets: &[Packet]) -> Option<Packet> {
    packets.iter().find(|p| f.matches(&p.rec) && !kernel_admits(rules, p)).copied()
}

fn packets(seed: u64, n: usize) -> Vec<Packet> {
    let mut rng = Rng(seed);
    (0..n).map(|_| packet(&mut rng)).collect()
}

fn parse(expr: &str) -> Filter {
    Filter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

#[test]
fn superset_admits_every_accepted_packet() {
    let pkts = packets(0x9e37_79b9_7f4a_7c15, 20_000);
    let (mut with_rules, mut dropping, mut unmatched) = (0, 0, Vec::new());
    for expr in EXPRS {
        let f = parse(expr);
        if !pkts.iter().any(|p| f.matches(&p.rec)) {
            unmatched.push(*expr);
        }
        let Some(rules) = f.kernel_superset() else { continue };
        with_rules += 1;
        if let Some(p) = counterexample(&f, &rules, &pkts) {
            panic!("{expr:?}: rules {rules} drop accepted {p:?}");
        }
        if pkts.iter().any(|p| !kernel_admits(&rules, p)) {
            dropping += 1;
        }
    }
    // The check only means something if the packets exercise the expressions. These three
    // match no packet record: ARP records carry no addresses, SCTP ones no ports.
    assert_eq!(unmatched, ["arp host 10.0.0.1", "sctp port 80", "1 > 2"]);
    assert!(with_rules >= 60, "only {with_rules} of {} expressions got rules", EXPRS.len());
    assert!(dropping >= 55, "only {dropping} rule sets drop anything");
}

#[test]
fn superset_of_random_combinations() {
    let pkts = packets(42, 3_000);
    let mut rng = Rng(7);
    let mut selective = 0;
    for _ in 0..400 {
        let expr = random_expr(&mut rng, 3);
        let f = parse(&expr);
        let Some(rules) = f.kernel_superset() else { continue };
        selective += 1;
        if let Some(p) = counterexample(&f, &rules, &pkts) {
            panic!("{expr:?}: rules {rules} drop accepted {p:?}");
        }
    }
    assert!(selective > 100, "only {selective} random expressions got rules");
}

/// The random check has teeth: removing what looks like slack from real rules (the port-0
/// entry that admits later fragments, the protocol an SCTP port test needs, one of `host`'s
/// two directions, the IPv6 half of `ip or ip6`) is caught.
#[test]
fn weakened_rules_are_caught() {
    let pkts = packets(1234, 20_000);
    type Weaken = fn(&mut PrefilterRules);
    let cases: &[(&str, Weaken)] = &[
        ("udp port 53", |r| {
            r.src_ports.retain(|p| *p != 0);
            r.dst_ports.retain(|p| *p != 0);
        }),
        ("port 80", |r| {
            r.src_ports.retain(|p| *p != 0);
            r.dst_ports.retain(|p| *p != 0);
        }),
        // SCTP records have ports 0 (the decoder reads TCP and UDP ports only).
        ("sctp portrange 0-10", |r| r.protos.clear()),
        ("host 10.0.0.1", |r| r.v4_dst.clear()),
        ("ip or ip6", |r| r.ipv6 = false),
        ("vlan 20", |r| r.vlans.clear()),
        ("tcp or icmp6", |r| r.protos.retain(|p| *p != 58)),
    ];
    for (expr, weaken) in cases {
        let f = parse(expr);
        let mut rules = f.kernel_superset().unwrap_or_else(|| panic!("{expr}: no rules"));
        assert!(counterexample(&f, &rules, &pkts).is_none(), "{expr}");
        weaken(&mut rules);
        assert!(counterexample(&f, &rules, &pkts).is_some(), "{expr}: weakened rules {rules} not caught");
    }
}

fn rules(expr: &str) -> Option<PrefilterRules> {
    parse(expr).kernel_superset()
}

fn v4net(a: [u8; 4], len: u8) -> (Ipv4Addr, u8) {
    (Ipv4Addr::from(a), len)
}

#[test]
fn simple_filters_give_exact_rules() {
    let none = PrefilterRules::default();
    assert_eq!(
        rules("src net 10.0.0.0/16"),
        Some(PrefilterRules { v4_src: vec![v4net([10, 0, 0, 0], 16)], ..none.clone() })
    );
    assert_eq!(
        rules("host 10.0.0.1"),
        Some(PrefilterRules {
            v4_src: vec![v4net([10, 0, 0, 1], 32)],
            v4_dst: vec![v4net([10, 0, 0, 1], 32)],
            ..none.clone()
        })
    );
    assert_eq!(
        rules("dst net 192.168.1"),
        Some(PrefilterRules { v4_dst: vec![v4net([192, 168, 1, 0], 24)], ..none.clone() })
    );
    // A non-contiguous mask keeps its leading prefix.
    assert_eq!(
        rules("src net 10.0.0.0 mask 255.0.255.0"),
        Some(PrefilterRules { v4_src: vec![v4net([10, 0, 0, 0], 8)], ..none.clone() })
    );
    assert_eq!(
        rules("src net 2001:db8::/32"),
        Some(PrefilterRules { v6_src: vec![("2001:db8::".parse().unwrap(), 32)], ..none.clone() })
    );
    assert_eq!(rules("tcp"), Some(PrefilterRules { protos: vec![6], ..none.clone() }));
    assert_eq!(rules("tcp or udp"), Some(PrefilterRules { protos: vec![6, 17], ..none.clone() }));
    assert_eq!(rules("ip6"), Some(PrefilterRules { ipv6: true, ..none.clone() }));
    assert_eq!(rules("vlan 10"), Some(PrefilterRules { vlans: vec![10], ..none.clone() }));
    // Port 0 for later fragments, which the kernel sees without ports.
    assert_eq!(rules("udp dst port 53"), Some(PrefilterRules { dst_ports: vec![0, 53], ..none.clone() }));
    // Port 0 also covers SCTP, whose ports the kernel does not read.
    assert_eq!(
        rules("port 80"),
        Some(PrefilterRules { src_ports: vec![0, 80], dst_ports: vec![0, 80], ..none.clone() })
    );
    assert_eq!(rules("sctp port 80"), Some(PrefilterRules { protos: vec![132], ..none.clone() }));
    assert_eq!(rules("portrange 1-65535"), Some(PrefilterRules { protos: vec![6, 17, 132], ..none.clone() }));
    assert_eq!(rules("tcp[tcpflags] & tcp-syn != 0"), Some(PrefilterRules { protos: vec![6], ..none.clone() }));
    // `and` keeps the more selective side.
    assert_eq!(
        rules("tcp and src net 10.1.0.0/16"),
        Some(PrefilterRules { v4_src: vec![v4net([10, 1, 0, 0], 16)], ..none.clone() })
    );
    assert_eq!(
        rules("vlan 10 and src host 1.2.3.4"),
        Some(PrefilterRules { v4_src: vec![v4net([1, 2, 3, 4], 32)], ..none.clone() })
    );
    assert_eq!(rules("tcp and not port 22"), Some(PrefilterRules { protos: vec![6], ..none.clone() }));
    // Only non-IP frames pass these, and the kernel never pre-filters non-IP frames.
    assert_eq!(rules("arp"), Some(none.clone()));
    assert_eq!(rules("1 > 2"), Some(none.clone()));
}

#[test]
fn inexpressible_filters_give_none() {
    for expr in [
        "",
        "not tcp",
        "ether host 00:11:22:33:44:55",
        "broadcast",
        "less 100",
        "vlan",
        "vlan and vlan 20",
        // libpcap: the second `vlan` tests the INNER tag, whatever the `or`.
        "vlan 10 or vlan 20",
        "tcp or ether broadcast",
        "not (host 10.0.0.1)",
        "2 = 2",
    ] {
        assert_eq!(rules(expr), None, "{expr:?}");
    }
}

#[test]
fn union_merges_and_respects_kernel_capacity() {
    let a = rules("src net 10.0.0.0/8 or tcp").unwrap();
    let b = rules("src net 10.0.0.0/8 or udp port 53").unwrap();
    let u = a.union(b).unwrap();
    assert_eq!(u.v4_src, vec![v4net([10, 0, 0, 0], 8)]);
    assert_eq!(u.protos, vec![6]);
    assert_eq!(u.src_ports, vec![0, 53]);
    assert!(!u.is_empty());
    assert!(PrefilterRules::default().is_empty());

    let many = |from: u32| PrefilterRules {
        v4_src: (from..from + PREFILTER_MAX_NETS as u32 / 2 + 1).map(|i| (Ipv4Addr::from(i << 8), 24)).collect(),
        ..PrefilterRules::default()
    };
    assert!(many(0).union(many(0)).is_some(), "duplicates do not count");
    assert_eq!(many(0).union(many(1 << 20)), None);
    // A long `or` of hosts outgrows the trie: no rules rather than rules the loader rejects.
    let hosts: Vec<String> = (0..PREFILTER_MAX_NETS as u32 + 1).map(|i| Ipv4Addr::from(i).to_string()).collect();
    assert_eq!(rules(&format!("src host {}", hosts.join(" or "))), None);
}
