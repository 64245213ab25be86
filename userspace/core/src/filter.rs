//! libpcap filter expressions (`aggregate_filter`, `pcap_filter`, pre_tag_map `filter=`),
//! evaluated on [`Record`] fields so that packets and flow records get the same answer.
//!
//! CONTRACT (stable API): `Filter::parse(&str) -> Result<Filter, FilterError>`,
//! `Filter::matches(&self, &Record) -> bool`,
//! `Filter::kernel_superset(&self) -> Option<PrefilterRules>` (rules for the XDP pre-filter
//! that admit at least what the filter accepts; see [`PrefilterRules`]).
//!
//! The grammar and the meaning of each primitive follow pcap-filter(7) as implemented by
//! libpcap 1.10 (checked by `tests/filter_vs_libpcap.rs` against the real library):
//! `and`/`or` have equal precedence and associate left, `not` binds tighter; a bare value after
//! `and`/`or`/`not` reuses the previous primitive's qualifiers (`host 1.2.3.4 or 5.6.7.8`,
//! `tcp port (80 or 443)`); `host 10.1` and `net 10.1` mean 10.1.0.0/16, `net 10` means
//! 10.0.0.0/8 but `host 10` means 0.0.0.10; `port <name>` and `proto <name>` are looked up in
//! `/etc/services` and `/etc/protocols` the way libpcap does (so `port http` is TCP-only on
//! systems whose services file lists http for TCP only).
//!
//! Every `vlan` keyword shifts, in libpcap, the link-layer offsets of all tests that follow it
//! in the text. Emulation: a test preceded by `n` `vlan` keywords looks at the EtherType/L3/L4
//! of a record only when the record has exactly `n` VLAN tags (with a different tag count
//! libpcap would read a TPID or payload bytes where it expects an EtherType); `vlan [id]` after
//! `n` keywords matches records with more than `n` tags.
//!
//! `mpls [label]` and `pppoes [session]` shift offsets the same way, and so do they here: a
//! test after `n` `mpls` keywords looks at records with exactly `n` labels (libpcap reads the
//! n-th label's bottom-of-stack bit and the version nibble after it), one after `pppoes` at
//! PPPoE session records (libpcap reads the PPP protocol). The first `mpls` matches the
//! unicast MPLS EtherType (0x8847) only, as libpcap's does; a plain `ip` does not match IP
//! inside PPPoE or MPLS (the EtherType there is 0x8864 or 0x8847: records keep it as
//! `link_etype`). `pppoed` is `ether proto 0x8863`.
//!
//! What a record cannot answer, and how it is approximated:
//! - `mpls <label>` for a label between the top and the bottom of the stack: records keep
//!   those two only, so such a label matches any. `mpls` after `pppoes` (PPP's MPLS inside
//!   PPPoE, which is not decoded) matches nothing; `vlan`/`pppoes` after `mpls` or `pppoes`
//!   are refused.
//! - `vlan <id>` after another `vlan`: records keep only the outer VLAN id, so an inner id
//!   matches any id.
//! - `less`/`greater` compare libpcap's frame length; records carry the IP length, so the
//!   frame length is taken as Ethernet header + 4 bytes per VLAN tag + IP length, at least the
//!   60-byte Ethernet minimum (for non-IP records `bytes` is already the frame length). Flow
//!   records use their average packet size.
//! - `port`, `portrange` and `tcp[tcpflags]`: libpcap never matches a non-first IPv4 fragment;
//!   its record has ports and flags 0, so only tests that accept 0 (e.g. `portrange 0-10`,
//!   `tcp[13] == 0`) can disagree.
//! - `host`/`net` without a protocol also match ARP/RARP sender/target addresses in libpcap;
//!   here they do when the source filled the record's addresses for ARP (the packet decoder
//!   does not).
//! - IPv6 protocol tests use the record's upper-layer protocol (after extension headers),
//!   where libpcap looks at the first Next Header (and one fragment header).
//! - `ether proto 0x8100`/`0x88a8`/`0x9100` match any VLAN-tagged record (the TPID is not kept).
//! - Records whose source leaves `etype` at 0 (flow records) are classified IPv4/IPv6 by their
//!   address family.
//!
//! Anything else that needs packet bytes (`ip[0]`, `len`, `icmp[icmptype]`, `gateway`,
//! host names, …) is rejected with a [`FilterError`] naming it and its column.

use std::net::Ipv6Addr;

use crate::record::{Addr, Record};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg} (at column {col})")]
pub struct FilterError {
    pub msg: String,
    /// 1-based character column of the offending token (one past the end for "unexpected end").
    pub col: usize,
}

fn err<T>(col: usize, msg: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError { msg: msg.into(), col })
}

/// A compiled filter expression: a flat program of record tests with true/false jump targets
/// (BPF-like), so matching is a loop without recursion or allocation.
#[derive(Debug, Clone)]
pub struct Filter {
    src: String,
    prog: Vec<Insn>,
    entry: u32,
}

const ACCEPT: u32 = u32::MAX;
const REJECT: u32 = u32::MAX - 1;

#[derive(Debug, Clone, Copy)]
struct Insn {
    test: Test,
    jt: u32,
    jf: u32,
}

impl Filter {
    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        let toks = lex(expr)?;
        let mut p = Parser { toks, pos: 0, at: Layer::default(), nest: 0, nodes: Vec::new() };
        let mut prog = Vec::new();
        // libpcap: an empty expression accepts everything.
        let mut entry = ACCEPT;
        if p.peek() != &Tok::End {
            let (root, _) = p.expr()?;
            if p.peek() != &Tok::End {
                return err(p.col(), format!("unexpected {}", p.describe()));
            }
            entry = gen(&p.nodes, &mut prog, root, ACCEPT, REJECT);
        }
        Ok(Filter { src: expr.to_string(), prog, entry })
    }

    /// The expression this filter was parsed from.
    pub fn source(&self) -> &str {
        &self.src
    }

    #[inline]
    pub fn matches(&self, r: &Record) -> bool {
        let mut pc = self.entry;
        // Jumps only go to lower indices (see `gen`), so this terminates.
        while let Some(insn) = self.prog.get(pc as usize) {
            pc = if insn.test.eval(r) { insn.jt } else { insn.jf };
        }
        pc == ACCEPT
    }
}

// ---------------------------------------------------------------------------------------------
// Tests on record fields

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Src,
    Dst,
    Or,
    And,
}

impl Dir {
    #[inline]
    fn check(self, src: bool, dst: impl FnOnce() -> bool) -> bool {
        match self {
            Dir::Src => src,
            Dir::Dst => dst(),
            Dir::Or => src || dst(),
            Dir::And => src && dst(),
        }
    }
}

const ET_IP: u16 = 0x0800;
const ET_IP6: u16 = 0x86dd;
const ET_ARP: u16 = 0x0806;
const ET_RARP: u16 = 0x8035;

// Families a v4 `host`/`net` applies to (libpcap: ip, arp and rarp when no protocol is given).
const FAM_IP: u8 = 1;
const FAM_ARP: u8 = 2;
const FAM_RARP: u8 = 4;

// Transport protocols a `port` applies to.
const L4_TCP: u8 = 1;
const L4_UDP: u8 = 2;
const L4_SCTP: u8 = 4;

#[derive(Debug, Clone, Copy)]
enum Test {
    /// EtherType after `depth` VLAN tags.
    EtherType {
        depth: Layer,
        etype: u16,
    },
    /// More than `depth` VLAN tags (and the outer id when `depth == 0`).
    Vlan {
        depth: u8,
        id: Option<u16>,
    },
    /// `mpls [label]`: the first keyword tests the link EtherType (unicast MPLS) at `depth`,
    /// later ones that the label before them is not the bottom one; `label` is the label at
    /// the stack position `depth.mpls`.
    Mpls {
        depth: Layer,
        label: Option<u32>,
    },
    /// `pppoes [session]`: a PPPoE session frame at `depth`.
    Pppoes {
        depth: Layer,
        session: Option<u16>,
    },
    IpProto {
        depth: Layer,
        v4: bool,
        v6: bool,
        proto: u8,
    },
    Host4 {
        depth: Layer,
        fam: u8,
        dir: Dir,
        net: u32,
        mask: u32,
    },
    Host6 {
        depth: Layer,
        dir: Dir,
        net: u128,
        mask: u128,
    },
    Port {
        depth: Layer,
        l4: u8,
        dir: Dir,
        lo: u16,
        hi: u16,
    },
    Ether {
        dir: Dir,
        mac: [u8; 6],
    },
    EtherBroadcast,
    EtherMulticast,
    Ip4Multicast {
        depth: Layer,
    },
    Ip6Multicast {
        depth: Layer,
    },
    /// Frame length `<= n` (`less`) or `>= n` (`greater`).
    Len {
        greater: bool,
        n: u32,
    },
    /// IPv4 TCP whose flags byte is in the 256-bit set.
    TcpFlags {
        depth: Layer,
        set: [u64; 4],
    },
}

/// Where libpcap's offsets point after the `vlan`, `mpls` and `pppoes` keywords before a test:
/// each `vlan` shifts the link layer by a tag, each `mpls` the network layer by a label, and
/// `pppoes` makes what follows a PPP frame behind the session header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Layer {
    vlans: u8,
    mpls: u8,
    pppoe: bool,
}

const ET_PPPOES: u16 = 0x8864;
const ET_PPPOED: u16 = 0x8863;
const ET_MPLS: u16 = 0x8847;

/// The EtherType after the record's leading VLAN tags (what libpcap compares at the link
/// layer); records that do not know it (flow records) are taken to be unencapsulated.
#[inline]
fn link_etype(r: &Record) -> u16 {
    if r.link_etype != 0 {
        r.link_etype
    } else {
        etype(r)
    }
}

impl Layer {
    /// The protocol a test at this layer sees in `r`, as an EtherType: the link EtherType
    /// when nothing shifted it; behind `pppoes` or `n` `mpls` keywords, the record's IP
    /// EtherType when it has exactly that encapsulation (libpcap reads the PPP protocol, or
    /// the bottom-of-stack bit of the n-th label and the version nibble), 0 for a non-IP
    /// payload there. `None` when the record's encapsulation puts other bytes where the test
    /// looks.
    #[inline]
    fn proto(self, r: &Record) -> Option<u16> {
        if r.vlan_depth != self.vlans {
            return None;
        }
        let ip = || match etype(r) {
            e @ (ET_IP | ET_IP6) => e,
            _ => 0,
        };
        if self.pppoe {
            (link_etype(r) == ET_PPPOES).then(ip)
        } else if self.mpls > 0 {
            (r.mpls_depth == self.mpls).then(ip)
        } else {
            Some(link_etype(r))
        }
    }
}

/// The EtherType the record describes; flow records that leave it 0 are classified by address.
#[inline]
fn etype(r: &Record) -> u16 {
    if r.etype != 0 {
        return r.etype;
    }
    match r.src_ip {
        Addr::V4(_) => ET_IP,
        Addr::V6(_) => ET_IP6,
        Addr::None => 0,
    }
}

#[inline]
fn v4(a: &Addr) -> Option<u32> {
    match a {
        Addr::V4(b) => Some(u32::from_be_bytes(*b)),
        _ => None,
    }
}

#[inline]
fn v6(a: &Addr) -> Option<u128> {
    match a {
        Addr::V6(b) => Some(u128::from_be_bytes(*b)),
        _ => None,
    }
}

/// See the module doc: Ethernet header + tags + IP length, padded to the Ethernet minimum.
#[inline]
fn frame_len(r: &Record) -> u64 {
    let per_packet = r.bytes / r.packets.max(1);
    if r.src_ip.is_none() {
        per_packet
    } else {
        let pppoe = if link_etype(r) == ET_PPPOES { 8 } else { 0 };
        (14 + 4 * u64::from(r.vlan_depth) + pppoe + 4 * u64::from(r.mpls_depth) + per_packet).max(60)
    }
}

impl Test {
    #[inline]
    fn eval(&self, r: &Record) -> bool {
        match *self {
            Test::EtherType { depth, etype: et } => depth.proto(r) == Some(et),
            Test::Vlan { depth, id } => r.vlan_depth > depth && (depth > 0 || id.is_none_or(|id| r.vlan == id)),
            Test::Mpls { depth, label } => {
                let here = if depth.mpls == 0 {
                    r.vlan_depth == depth.vlans && link_etype(r) == ET_MPLS
                } else {
                    r.vlan_depth == depth.vlans
                };
                // Records keep the top and bottom labels only: a label in between matches any.
                let k = depth.mpls;
                here && r.mpls_depth > k
                    && label.is_none_or(|l| {
                        if k == 0 {
                            r.mpls_top == l
                        } else if k + 1 == r.mpls_depth {
                            r.mpls_bottom == l
                        } else {
                            true
                        }
                    })
            }
            Test::Pppoes { depth, session } => {
                depth.proto(r) == Some(ET_PPPOES) && session.is_none_or(|s| r.pppoe_session == s)
            }
            Test::IpProto { depth, v4: a, v6: b, proto } => {
                r.proto == proto
                    && match depth.proto(r) {
                        Some(ET_IP) => a,
                        Some(ET_IP6) => b,
                        _ => false,
                    }
            }
            Test::Host4 { depth, fam, dir, net, mask } => {
                let fam_ok = match depth.proto(r) {
                    Some(ET_IP) => fam & FAM_IP != 0,
                    Some(ET_ARP) => fam & FAM_ARP != 0,
                    Some(ET_RARP) => fam & FAM_RARP != 0,
                    _ => false,
                };
                let hit = |a: &Addr| v4(a).is_some_and(|a| a & mask == net);
                fam_ok && dir.check(hit(&r.src_ip), || hit(&r.dst_ip))
            }
            Test::Host6 { depth, dir, net, mask } => {
                let hit = |a: &Addr| v6(a).is_some_and(|a| a & mask == net);
                depth.proto(r) == Some(ET_IP6) && dir.check(hit(&r.src_ip), || hit(&r.dst_ip))
            }
            Test::Port { depth, l4, dir, lo, hi } => {
                let l4_ok = match r.proto {
                    6 => l4 & L4_TCP != 0,
                    17 => l4 & L4_UDP != 0,
                    132 => l4 & L4_SCTP != 0,
                    _ => false,
                };
                l4_ok
                    && matches!(depth.proto(r), Some(ET_IP | ET_IP6))
                    && dir.check((lo..=hi).contains(&r.src_port), || (lo..=hi).contains(&r.dst_port))
            }
            Test::Ether { dir, mac } => dir.check(r.src_mac == mac, || r.dst_mac == mac),
            Test::EtherBroadcast => r.dst_mac == [0xff; 6],
            Test::EtherMulticast => r.dst_mac[0] & 1 != 0,
            Test::Ip4Multicast { depth } => {
                depth.proto(r) == Some(ET_IP) && matches!(r.dst_ip, Addr::V4([a, ..]) if a >= 224)
            }
            Test::Ip6Multicast { depth } => depth.proto(r) == Some(ET_IP6) && matches!(r.dst_ip, Addr::V6([0xff, ..])),
            Test::Len { greater, n } => {
                let len = frame_len(r);
                if greater {
                    len >= u64::from(n)
                } else {
                    len <= u64::from(n)
                }
            }
            Test::TcpFlags { depth, set } => {
                let f = r.tcp_flags as usize;
                r.proto == 6 && depth.proto(r) == Some(ET_IP) && set.get(f / 64).is_some_and(|w| w >> (f % 64) & 1 != 0)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Expression tree and its lowering to the flat program

#[derive(Debug, Clone, Copy)]
enum Node {
    Test(Test),
    Const(bool),
    Not(u32),
    And(u32, u32),
    Or(u32, u32),
}

/// Emits `node` so that it jumps to `t` when true and `f` when false; returns its entry.
/// Successors are emitted before the tests that jump to them, so jumps always go to lower
/// indices. Left spines (long `a and b or c …` chains, `not not …`) are walked in a loop; only
/// right operands recurse, and their depth is bounded by the parser's nesting limit.
fn gen(nodes: &[Node], prog: &mut Vec<Insn>, mut n: u32, mut t: u32, mut f: u32) -> u32 {
    loop {
        match nodes.get(n as usize) {
            None | Some(Node::Const(false)) => return f,
            Some(Node::Const(true)) => return t,
            Some(Node::Test(test)) => {
                prog.push(Insn { test: *test, jt: t, jf: f });
                return (prog.len() - 1) as u32;
            }
            Some(Node::Not(a)) => {
                std::mem::swap(&mut t, &mut f);
                n = *a;
            }
            Some(Node::And(a, b)) => {
                t = gen(nodes, prog, *b, t, f);
                n = *a;
            }
            Some(Node::Or(a, b)) => {
                f = gen(nodes, prog, *b, t, f);
                n = *a;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer (libpcap's token classes: keywords, NUM, HID, HID6, EID, ID, punctuation)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    Src,
    Dst,
    Host,
    Net,
    Mask,
    Port,
    Portrange,
    Proto,
    Less,
    Greater,
    Vlan,
    Mpls,
    Pppoes,
    Pppoed,
    Broadcast,
    Multicast,
    Len,
    P(Pq),
    /// A libpcap keyword this evaluator cannot answer on records.
    Unsupported(&'static str),
}

/// Protocol qualifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pq {
    Default,
    Link,
    Ip,
    Ip6,
    Arp,
    Rarp,
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmp6,
    Igmp,
}

impl Pq {
    fn name(self) -> &'static str {
        match self {
            Pq::Default => "",
            Pq::Link => "ether",
            Pq::Ip => "ip",
            Pq::Ip6 => "ip6",
            Pq::Arp => "arp",
            Pq::Rarp => "rarp",
            Pq::Tcp => "tcp",
            Pq::Udp => "udp",
            Pq::Sctp => "sctp",
            Pq::Icmp => "icmp",
            Pq::Icmp6 => "icmp6",
            Pq::Igmp => "igmp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rel {
    Gt,
    Ge,
    Eq,
    Ne,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    Xor,
    Shl,
    Shr,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Kw(Kw),
    Num(u32),
    /// Dotted IPv4 address or abbreviation (`10.1`): value and bit length.
    Hid(u32, u32),
    Hid6(Ipv6Addr),
    Eid([u8; 6]),
    Id(String),
    LParen,
    RParen,
    LBrack,
    RBrack,
    Colon,
    And,
    Or,
    Not,
    Rel(Rel),
    Op(Op),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    col: usize,
    /// The source text, for messages.
    text: String,
}

fn keyword(w: &str) -> Option<Tok> {
    let kw = match w {
        "src" => Kw::Src,
        "dst" => Kw::Dst,
        "host" => Kw::Host,
        "net" => Kw::Net,
        "mask" => Kw::Mask,
        "port" => Kw::Port,
        "portrange" => Kw::Portrange,
        "proto" => Kw::Proto,
        "less" => Kw::Less,
        "greater" => Kw::Greater,
        "vlan" => Kw::Vlan,
        "mpls" => Kw::Mpls,
        "pppoes" => Kw::Pppoes,
        "pppoed" => Kw::Pppoed,
        "broadcast" => Kw::Broadcast,
        "multicast" => Kw::Multicast,
        "len" | "length" => Kw::Len,
        "ether" | "link" | "ppp" | "slip" | "fddi" | "tr" | "wlan" => Kw::P(Pq::Link),
        "ip" => Kw::P(Pq::Ip),
        "ip6" => Kw::P(Pq::Ip6),
        "arp" => Kw::P(Pq::Arp),
        "rarp" => Kw::P(Pq::Rarp),
        "tcp" => Kw::P(Pq::Tcp),
        "udp" => Kw::P(Pq::Udp),
        "sctp" => Kw::P(Pq::Sctp),
        "icmp" => Kw::P(Pq::Icmp),
        "icmp6" => Kw::P(Pq::Icmp6),
        "igmp" => Kw::P(Pq::Igmp),
        "and" => return Some(Tok::And),
        "or" => return Some(Tok::Or),
        "not" => return Some(Tok::Not),
        // TCP flag and offset names are numbers in libpcap's lexer.
        "tcpflags" => return Some(Tok::Num(13)),
        "tcp-fin" => return Some(Tok::Num(0x01)),
        "tcp-syn" => return Some(Tok::Num(0x02)),
        "tcp-rst" => return Some(Tok::Num(0x04)),
        "tcp-push" => return Some(Tok::Num(0x08)),
        "tcp-ack" => return Some(Tok::Num(0x10)),
        "tcp-urg" => return Some(Tok::Num(0x20)),
        "tcp-ece" => return Some(Tok::Num(0x40)),
        "tcp-cwr" => return Some(Tok::Num(0x80)),
        // Reserved by libpcap; they need packet bytes or metadata records do not carry.
        _ => return UNSUPPORTED.iter().find(|n| **n == w).map(|n| Tok::Kw(Kw::Unsupported(n))),
    };
    Some(Tok::Kw(kw))
}

/// libpcap keywords for things records do not carry (packet bytes, link metadata, other
/// link types).
#[rustfmt::skip]
const UNSUPPORTED: &[&str] = &[
    "gateway", "protochain", "byte", "inbound", "outbound", "ifindex",
    "geneve", "vxlan", "batadv", "atalk", "aarp", "decnet", "lat", "sca", "moprc", "mopdl", "iso",
    "esis", "es-is", "clnp", "isis", "is-is", "l1", "l2", "iih", "lsp", "snp", "csnp", "psnp",
    "stp", "ipx", "netbeui", "ah", "esp", "igrp", "pim", "vrrp", "carp", "radio", "llc", "type",
    "subtype", "dir", "addr1", "addr2", "addr3", "addr4", "ra", "ta", "on", "ifname", "rnr",
    "rulenum", "reason", "rset", "ruleset", "srnr", "srulenum", "action", "lane", "metac", "bcc",
    "oam", "oamf4", "oamf4ec", "oamf4sc", "sc", "ilmic", "connectmsg", "metaconnect", "vpi", "vci",
    "fisu", "lssu", "msu", "hfisu", "hlssu", "hmsu", "sio", "opc", "dpc", "sls", "hsio", "hopc",
    "hdpc", "hsls", "icmptype", "icmpcode", "icmp6type", "icmp6code", "decnet-src",
];

/// libpcap's number syntax: `0x` hex, leading-zero octal, decimal. `None` if `w` is not a
/// number at all (it may then be an ID such as a port range `1-1024`).
fn number(w: &str) -> Option<Result<u32, String>> {
    let b = w.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() {
        return None;
    }
    if let Some(hex) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        return Some(u32::from_str_radix(hex, 16).map_err(|_| format!("number {w} overflows 32 bits")));
    }
    if !b.iter().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if b.len() > 1 && b[0] == b'0' {
        if b.iter().any(|c| *c > b'7') {
            return Some(Err(format!("number {w} contains non-octal digit")));
        }
        return Some(u32::from_str_radix(w, 8).map_err(|_| format!("number {w} overflows 32 bits")));
    }
    Some(w.parse::<u32>().map_err(|_| format!("number {w} overflows 32 bits")))
}

/// Dotted decimal with 2 to 4 parts (a single part is a NUM). Value right-aligned, bit length.
fn hid(w: &str) -> Option<Result<(u32, u32), String>> {
    let parts: Vec<&str> = w.split('.').collect();
    if !(2..=4).contains(&parts.len()) || !parts.iter().all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let mut v: u32 = 0;
    for p in &parts {
        match p.parse::<u32>() {
            Ok(n) if n <= 255 => v = (v << 8) | n,
            _ => return Some(Err(format!("invalid IPv4 address '{w}'"))),
        }
    }
    Some(Ok((v, 8 * parts.len() as u32)))
}

/// MAC address forms libpcap's lexer accepts: `a:b:c:d:e:f` / `a-b-…` (1-2 hex digits each),
/// `aabb.ccdd.eeff`, and 12 bare hex digits.
fn mac(w: &str) -> Option<[u8; 6]> {
    let hex2 = |s: &str| {
        if (1..=2).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_hexdigit()) {
            u8::from_str_radix(s, 16).ok()
        } else {
            None
        }
    };
    let mut out = [0u8; 6];
    for sep in [':', '-'] {
        let parts: Vec<&str> = w.split(sep).collect();
        if parts.len() == 6 {
            for (o, p) in out.iter_mut().zip(&parts) {
                *o = hex2(p)?;
            }
            return Some(out);
        }
    }
    let digits: String = if w.len() == 14 && w.as_bytes().get(4) == Some(&b'.') && w.as_bytes().get(9) == Some(&b'.') {
        w.split('.').collect()
    } else {
        w.to_string()
    };
    if digits.len() == 12 && digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        return Some(out);
    }
    None
}

fn lex(src: &str) -> Result<Vec<Token>, FilterError> {
    let s: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |j: usize| s.get(j).copied().unwrap_or('\0');
    while i < s.len() {
        let c = s[i];
        let col = i + 1;
        let mut push = |tok: Tok, len: usize, i: &mut usize| {
            let text = s.get(*i..*i + len).unwrap_or_default().iter().collect();
            out.push(Token { tok, col, text });
            *i += len;
        };
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        // IPv6 addresses and colon MACs first: their ':' would otherwise be punctuation.
        if c.is_ascii_hexdigit() || c == ':' {
            let end =
                (i..s.len()).find(|&j| !(s[j].is_ascii_hexdigit() || s[j] == ':' || s[j] == '.')).unwrap_or(s.len());
            let cand: String = s[i..end].iter().collect();
            if cand.contains(':') {
                if let Some(m) = mac(&cand) {
                    push(Tok::Eid(m), end - i, &mut i);
                    continue;
                }
                if let Ok(a) = cand.parse::<Ipv6Addr>() {
                    push(Tok::Hid6(a), end - i, &mut i);
                    continue;
                }
            }
        }
        let two = (c, at(i + 1));
        let punct = match two {
            ('&', '&') => Some((Tok::And, 2)),
            ('|', '|') => Some((Tok::Or, 2)),
            ('!', '=') => Some((Tok::Rel(Rel::Ne), 2)),
            ('=', '=') => Some((Tok::Rel(Rel::Eq), 2)),
            ('<', '=') => Some((Tok::Rel(Rel::Le), 2)),
            ('>', '=') => Some((Tok::Rel(Rel::Ge), 2)),
            ('<', '<') => Some((Tok::Op(Op::Shl), 2)),
            ('>', '>') => Some((Tok::Op(Op::Shr), 2)),
            ('(', _) => Some((Tok::LParen, 1)),
            (')', _) => Some((Tok::RParen, 1)),
            ('[', _) => Some((Tok::LBrack, 1)),
            (']', _) => Some((Tok::RBrack, 1)),
            (':', _) => Some((Tok::Colon, 1)),
            ('!', _) => Some((Tok::Not, 1)),
            ('=', _) => Some((Tok::Rel(Rel::Eq), 1)),
            ('<', _) => Some((Tok::Rel(Rel::Lt), 1)),
            ('>', _) => Some((Tok::Rel(Rel::Gt), 1)),
            ('&', _) => Some((Tok::Op(Op::BitAnd), 1)),
            ('|', _) => Some((Tok::Op(Op::BitOr), 1)),
            ('^', _) => Some((Tok::Op(Op::Xor), 1)),
            ('+', _) => Some((Tok::Op(Op::Add), 1)),
            ('-', _) => Some((Tok::Op(Op::Sub), 1)),
            ('*', _) => Some((Tok::Op(Op::Mul), 1)),
            ('/', _) => Some((Tok::Op(Op::Div), 1)),
            ('%', _) => Some((Tok::Op(Op::Mod), 1)),
            _ => None,
        };
        if let Some((tok, len)) = punct {
            push(tok, len, &mut i);
            continue;
        }
        if c == '\\' {
            // `\tcp`: a keyword used as a name (libpcap: up to a blank, '!', '(' or ')').
            let end =
                (i + 1..s.len()).find(|&j| s[j].is_whitespace() || matches!(s[j], '!' | '(' | ')')).unwrap_or(s.len());
            if end == i + 1 {
                return err(col, "'\\' must be followed by a name");
            }
            let w: String = s[i + 1..end].iter().collect();
            push(Tok::Id(w), end - i, &mut i);
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            let mut end = (i..s.len())
                .find(|&j| !(s[j].is_ascii_alphanumeric() || matches!(s[j], '_' | '.' | '-')))
                .unwrap_or(s.len());
            // libpcap IDs do not end with '-' (so `tcp[13]-1` still lexes the minus).
            while end > i + 1 && s[end - 1] == '-' {
                end -= 1;
            }
            let w: String = s[i..end].iter().collect();
            let tok = if let Some(t) = keyword(&w) {
                t
            } else if let Some(m) = mac(&w) {
                Tok::Eid(m)
            } else if let Some(n) = number(&w) {
                match n {
                    Ok(n) => Tok::Num(n),
                    Err(e) => return err(col, e),
                }
            } else if let Some(h) = hid(&w) {
                match h {
                    Ok((v, len)) => Tok::Hid(v, len),
                    Err(e) => return err(col, e),
                }
            } else {
                Tok::Id(w)
            };
            push(tok, end - i, &mut i);
            continue;
        }
        return err(col, format!("unexpected character '{c}'"));
    }
    out.push(Token { tok: Tok::End, col: s.len() + 1, text: String::new() });
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parser (recursive descent over libpcap's grammar)

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aq {
    Default,
    Host,
    Net,
    Port,
    Portrange,
    Proto,
}

/// A primitive's qualifiers; a bare value after `and`/`or`/`not` reuses the previous ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Qual {
    proto: Pq,
    dir: Dir,
    addr: Aq,
}

/// Bound on parenthesis / `not` / unary-minus nesting, so that no input can exhaust the stack.
const MAX_NEST: usize = 100;

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// `vlan`, `mpls` and `pppoes` keywords seen so far (libpcap's offset shifts for what
    /// follows).
    at: Layer,
    nest: usize,
    nodes: Vec<Node>,
}

/// Result of a boolean element: node and the qualifiers a following bare value inherits.
type Elem = (u32, Option<Qual>);

impl Parser {
    fn peek(&self) -> &Tok {
        self.peek_at(0)
    }
    fn peek_at(&self, k: usize) -> &Tok {
        self.toks.get(self.pos + k).or(self.toks.last()).map_or(&Tok::End, |t| &t.tok)
    }
    fn col(&self) -> usize {
        self.col_at(0)
    }
    fn col_at(&self, k: usize) -> usize {
        self.toks.get(self.pos + k).or(self.toks.last()).map_or(1, |t| t.col)
    }
    fn describe_tok(t: Option<&Token>) -> String {
        match t {
            Some(t) if t.tok != Tok::End => format!("'{}'", t.text),
            _ => "end of expression".into(),
        }
    }
    fn describe(&self) -> String {
        Self::describe_tok(self.toks.get(self.pos))
    }
    fn describe_prev(&self) -> String {
        Self::describe_tok(self.pos.checked_sub(1).and_then(|i| self.toks.get(i)))
    }
    fn prev_col(&self) -> usize {
        self.pos.checked_sub(1).and_then(|i| self.toks.get(i)).map_or(1, |t| t.col)
    }
    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    fn expect(&mut self, want: Tok, what: &str) -> Result<(), FilterError> {
        if *self.peek() == want {
            self.bump();
            Ok(())
        } else {
            err(self.col(), format!("expected {what}, found {}", self.describe()))
        }
    }
    fn node(&mut self, n: Node) -> u32 {
        self.nodes.push(n);
        (self.nodes.len() - 1) as u32
    }
    fn enter(&mut self) -> Result<(), FilterError> {
        self.nest += 1;
        if self.nest > MAX_NEST {
            return err(self.col(), "expression nested too deeply");
        }
        Ok(())
    }
    fn leave(&mut self) {
        self.nest = self.nest.saturating_sub(1);
    }
    fn test(&mut self, t: Test) -> u32 {
        self.node(Node::Test(t))
    }

    /// An EtherType test at the current layer. libpcap knows only IPv4 and IPv6 behind MPLS.
    fn etype_test(&mut self, etype: u16, col: usize) -> Result<u32, FilterError> {
        if self.at.mpls > 0 && !matches!(etype, ET_IP | ET_IP6) {
            return err(col, format!("protocol {etype:#06x} over MPLS is not supported (libpcap: IPv4 and IPv6 only)"));
        }
        Ok(self.test(Test::EtherType { depth: self.at, etype }))
    }

    /// expr: term ((and|or) (term|id))*  — equal precedence, left associative.
    fn expr(&mut self) -> Result<Elem, FilterError> {
        let (mut left, mut q) = self.elem(None, false)?;
        loop {
            let is_and = match self.peek() {
                Tok::And => true,
                Tok::Or => false,
                _ => return Ok((left, q)),
            };
            self.bump();
            let (right, q2) = self.elem(q, true)?;
            left = self.node(if is_and { Node::And(left, right) } else { Node::Or(left, right) });
            q = q2;
        }
    }

    fn is_id_start(t: &Tok) -> bool {
        matches!(t, Tok::Num(_) | Tok::Hid(..) | Tok::Hid6(_) | Tok::Eid(_) | Tok::Id(_))
    }

    /// Whether the tokens from `k` look like a bare value (possibly `not`-prefixed) rather than
    /// the start of an arithmetic relation or a parenthesised expression.
    fn id_ahead(&self, mut k: usize) -> bool {
        while self.peek_at(k) == &Tok::Not {
            k += 1;
        }
        Self::is_id_start(self.peek_at(k)) && !matches!(self.peek_at(k + 1), Tok::Rel(_) | Tok::Op(_))
    }

    /// term, or (when `allow_id`) a bare value inheriting `q`.
    fn elem(&mut self, q: Option<Qual>, allow_id: bool) -> Result<Elem, FilterError> {
        if self.peek() == &Tok::Not {
            self.bump();
            self.enter()?;
            let (n, q2) = self.elem(q, allow_id)?;
            self.leave();
            return Ok((self.node(Node::Not(n)), q2));
        }
        if allow_id && (self.id_ahead(0) || (self.peek() == &Tok::LParen && self.id_ahead(1))) {
            return self.id(q);
        }
        self.rterm(q)
    }

    fn rterm(&mut self, q: Option<Qual>) -> Result<Elem, FilterError> {
        let col = self.col();
        match self.peek().clone() {
            Tok::LParen => {
                if self.relation_ahead() {
                    return Ok((self.relation()?, None));
                }
                self.bump();
                self.enter()?;
                let (n, _) = self.expr()?;
                self.leave();
                self.expect(Tok::RParen, "')'")?;
                // libpcap: a parenthesised group passes on the qualifiers from before it.
                Ok((n, q))
            }
            Tok::Kw(Kw::P(pq)) => match self.peek_at(1) {
                Tok::LBrack => Ok((self.relation()?, None)),
                Tok::Kw(Kw::Src | Kw::Dst | Kw::Host | Kw::Net | Kw::Port | Kw::Portrange) | Tok::Kw(Kw::Proto) => {
                    self.bump();
                    self.head(pq)
                }
                Tok::Kw(Kw::Unsupported(w @ ("gateway" | "protochain"))) => {
                    err(self.col_at(1), format!("'{w}' is not supported"))
                }
                Tok::Kw(Kw::Broadcast) => {
                    self.bump();
                    self.bump();
                    Ok((self.broadcast(pq, col)?, None))
                }
                Tok::Kw(Kw::Multicast) => {
                    self.bump();
                    self.bump();
                    Ok((self.multicast(pq, col)?, None))
                }
                _ => {
                    self.bump();
                    Ok((self.proto_abbrev(pq, col)?, None))
                }
            },
            Tok::Kw(Kw::Src | Kw::Dst | Kw::Host | Kw::Net | Kw::Port | Kw::Portrange | Kw::Proto) => {
                self.head(Pq::Default)
            }
            Tok::Kw(Kw::Vlan) => {
                self.bump();
                let id = if matches!(self.peek(), Tok::Num(_) | Tok::LParen) {
                    let c = self.col();
                    let v = self.pnum()?;
                    if v > 4095 {
                        return err(c, format!("VLAN tag {v} greater than maximum 4095"));
                    }
                    Some(v as u16)
                } else {
                    None
                };
                if self.at.mpls > 0 || self.at.pppoe {
                    return err(col, "'vlan' after 'mpls' or 'pppoes' is not supported on records");
                }
                let depth = self.at.vlans;
                self.at.vlans = self.at.vlans.saturating_add(1);
                Ok((self.test(Test::Vlan { depth, id }), None))
            }
            Tok::Kw(Kw::Mpls) => {
                self.bump();
                let label = if matches!(self.peek(), Tok::Num(_) | Tok::LParen) {
                    let c = self.col();
                    let v = self.pnum()?;
                    if v > 0xfffff {
                        return err(c, format!("MPLS label {v} greater than maximum 1048575"));
                    }
                    Some(v)
                } else {
                    None
                };
                let depth = self.at;
                self.at.mpls = self.at.mpls.saturating_add(1);
                // Behind `pppoes` libpcap tests PPP's MPLS protocol, which records never carry
                // (MPLS inside PPPoE is not decoded).
                if depth.pppoe {
                    return Ok((self.node(Node::Const(false)), None));
                }
                Ok((self.test(Test::Mpls { depth, label }), None))
            }
            Tok::Kw(Kw::Pppoes) => {
                self.bump();
                let session = if matches!(self.peek(), Tok::Num(_) | Tok::LParen) {
                    let c = self.col();
                    let v = self.pnum()?;
                    if v > 0xffff {
                        return err(c, format!("PPPoE session number {v} greater than maximum 65535"));
                    }
                    Some(v as u16)
                } else {
                    None
                };
                if self.at.mpls > 0 || self.at.pppoe {
                    return err(col, "'pppoes' after 'mpls' or 'pppoes' is not supported on records");
                }
                let depth = self.at;
                self.at.pppoe = true;
                Ok((self.test(Test::Pppoes { depth, session }), None))
            }
            Tok::Kw(Kw::Pppoed) => {
                self.bump();
                if self.at.mpls > 0 || self.at.pppoe {
                    return err(col, "'pppoed' after 'mpls' or 'pppoes' is not supported on records");
                }
                Ok((self.test(Test::EtherType { depth: self.at, etype: ET_PPPOED }), None))
            }
            Tok::Kw(k @ (Kw::Less | Kw::Greater)) => {
                self.bump();
                match self.bump() {
                    Tok::Num(n) => Ok((self.test(Test::Len { greater: k == Kw::Greater, n }), None)),
                    _ => err(self.prev_col(), format!("expected a length, found {}", self.describe_prev())),
                }
            }
            Tok::Kw(Kw::Broadcast) => {
                self.bump();
                Ok((self.broadcast(Pq::Default, col)?, None))
            }
            Tok::Kw(Kw::Multicast) => {
                self.bump();
                Ok((self.multicast(Pq::Default, col)?, None))
            }
            Tok::Kw(Kw::Len) | Tok::Num(_) | Tok::Op(Op::Sub) => Ok((self.relation()?, None)),
            Tok::Kw(Kw::Unsupported(w)) => err(col, format!("'{w}' is not supported on records")),
            Tok::Hid(..) | Tok::Hid6(_) | Tok::Eid(_) | Tok::Id(_) => {
                err(col, format!("{} needs a qualifier (e.g. 'host', 'port', 'ether host')", self.describe()))
            }
            _ => err(col, format!("unexpected {}", self.describe())),
        }
    }

    /// head: [proto] [dir] [host|net|port|portrange] | [proto] proto — then the value.
    fn head(&mut self, proto: Pq) -> Result<Elem, FilterError> {
        let mut dir = None;
        match self.peek() {
            Tok::Kw(Kw::Src) | Tok::Kw(Kw::Dst) => {
                let first_src = self.peek() == &Tok::Kw(Kw::Src);
                self.bump();
                let other = if first_src { Kw::Dst } else { Kw::Src };
                let combined = match (self.peek_at(0), self.peek_at(1)) {
                    (Tok::Or, Tok::Kw(k)) if *k == other => Some(Dir::Or),
                    (Tok::And, Tok::Kw(k)) if *k == other => Some(Dir::And),
                    _ => None,
                };
                if combined.is_some() {
                    self.bump();
                    self.bump();
                }
                dir = Some(combined.unwrap_or(if first_src { Dir::Src } else { Dir::Dst }));
            }
            _ => {}
        }
        let addr = match self.peek() {
            Tok::Kw(Kw::Host) => Aq::Host,
            Tok::Kw(Kw::Net) => Aq::Net,
            Tok::Kw(Kw::Port) => Aq::Port,
            Tok::Kw(Kw::Portrange) => Aq::Portrange,
            Tok::Kw(Kw::Proto) if dir.is_none() => Aq::Proto,
            Tok::Kw(Kw::Unsupported(w @ ("gateway" | "protochain"))) => {
                return err(self.col(), format!("'{w}' is not supported"));
            }
            _ => Aq::Default,
        };
        if addr != Aq::Default {
            self.bump();
        }
        self.id(Some(Qual { proto, dir: dir.unwrap_or(Dir::Or), addr }))
    }

    /// id: value | `not` id | `(` id ((and|or) id)* `)` — all with the qualifiers `q`.
    fn id(&mut self, q: Option<Qual>) -> Result<Elem, FilterError> {
        let col = self.col();
        let Some(q) = q else {
            return err(col, format!("{} needs a qualifier (e.g. 'host', 'port')", self.describe()));
        };
        match self.bump() {
            Tok::Not => {
                self.enter()?;
                let (n, _) = self.id(Some(q))?;
                self.leave();
                Ok((self.node(Node::Not(n)), Some(q)))
            }
            Tok::LParen => {
                self.enter()?;
                let (mut left, _) = self.id(Some(q))?;
                loop {
                    let is_and = match self.peek() {
                        Tok::And => true,
                        Tok::Or => false,
                        _ => break,
                    };
                    self.bump();
                    let (right, _) = self.id(Some(q))?;
                    left = self.node(if is_and { Node::And(left, right) } else { Node::Or(left, right) });
                }
                self.leave();
                self.expect(Tok::RParen, "')'")?;
                Ok((left, Some(q)))
            }
            Tok::Num(v) => Ok((self.gen_num(q, v, col)?, Some(q))),
            Tok::Hid(v, len) => {
                let n = match self.peek() {
                    Tok::Op(Op::Div) => {
                        self.bump();
                        let c = self.col();
                        let Tok::Num(bits) = self.bump() else {
                            return err(c, "expected a prefix length after '/'");
                        };
                        if bits > 32 {
                            return err(c, "mask length must be <= 32");
                        }
                        let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                        self.gen_masked4(q, v << (32 - len), mask, col)?
                    }
                    Tok::Kw(Kw::Mask) => {
                        self.bump();
                        let c = self.col();
                        let Tok::Hid(m, mlen) = self.bump() else {
                            return err(c, "expected a dotted netmask after 'mask'");
                        };
                        self.gen_masked4(q, v << (32 - len), m << (32 - mlen), col)?
                    }
                    _ => self.gen_host4(q, v << (32 - len), u32::MAX << (32 - len), col)?,
                };
                Ok((n, Some(q)))
            }
            Tok::Hid6(a) => {
                let bits = if self.peek() == &Tok::Op(Op::Div) {
                    self.bump();
                    let c = self.col();
                    let Tok::Num(bits) = self.bump() else {
                        return err(c, "expected a prefix length after '/'");
                    };
                    if bits > 128 {
                        return err(c, "mask length must be <= 128");
                    }
                    Some(bits)
                } else {
                    None
                };
                Ok((self.gen_host6(q, a, bits, col)?, Some(q)))
            }
            Tok::Eid(m) => {
                if q.proto != Pq::Link || !matches!(q.addr, Aq::Default | Aq::Host) {
                    return err(col, "ethernet address used in non-ether expression");
                }
                self.no_mac_after_pppoes(col)?;
                Ok((self.test(Test::Ether { dir: q.dir, mac: m }), Some(q)))
            }
            Tok::Id(name) => Ok((self.gen_name(q, &name, col)?, Some(q))),
            _ => err(col, format!("expected a value, found {}", self.describe_prev())),
        }
    }

    /// pnum: NUM | `(` pnum `)`
    fn pnum(&mut self) -> Result<u32, FilterError> {
        let col = self.col();
        match self.bump() {
            Tok::Num(n) => Ok(n),
            Tok::LParen => {
                self.enter()?;
                let n = self.pnum()?;
                self.leave();
                self.expect(Tok::RParen, "')'")?;
                Ok(n)
            }
            _ => err(col, format!("expected a number, found {}", self.describe_prev())),
        }
    }

    // --- primitives ---------------------------------------------------------------------

    /// libpcap: after `pppoes` the link layer is PPP, which has no MAC addresses.
    fn no_mac_after_pppoes(&self, col: usize) -> Result<(), FilterError> {
        if self.at.pppoe {
            return err(col, "ethernet addresses after 'pppoes' (a PPP link) are not supported");
        }
        Ok(())
    }

    fn proto_abbrev(&mut self, pq: Pq, col: usize) -> Result<u32, FilterError> {
        let depth = self.at;
        let ip = |v4, v6, proto| Test::IpProto { depth, v4, v6, proto };
        let t = match pq {
            Pq::Ip => return self.etype_test(ET_IP, col),
            Pq::Ip6 => return self.etype_test(ET_IP6, col),
            Pq::Arp => return self.etype_test(ET_ARP, col),
            Pq::Rarp => return self.etype_test(ET_RARP, col),
            Pq::Tcp => ip(true, true, 6),
            Pq::Udp => ip(true, true, 17),
            Pq::Sctp => ip(true, true, 132),
            Pq::Icmp => ip(true, false, 1),
            Pq::Icmp6 => ip(false, true, 58),
            Pq::Igmp => ip(true, false, 2),
            Pq::Link | Pq::Default => {
                return err(col, "'ether' needs 'host', 'src', 'dst', 'proto', 'broadcast' or 'multicast'")
            }
        };
        Ok(self.test(t))
    }

    fn broadcast(&mut self, pq: Pq, col: usize) -> Result<u32, FilterError> {
        match pq {
            Pq::Default | Pq::Link => {
                self.no_mac_after_pppoes(col)?;
                Ok(self.test(Test::EtherBroadcast))
            }
            Pq::Ip => err(col, "'ip broadcast' needs the capture netmask; not supported on records"),
            _ => err(col, "only 'ether broadcast' is supported"),
        }
    }

    fn multicast(&mut self, pq: Pq, col: usize) -> Result<u32, FilterError> {
        let depth = self.at;
        match pq {
            Pq::Default | Pq::Link => {
                self.no_mac_after_pppoes(col)?;
                Ok(self.test(Test::EtherMulticast))
            }
            Pq::Ip => Ok(self.test(Test::Ip4Multicast { depth })),
            Pq::Ip6 => Ok(self.test(Test::Ip6Multicast { depth })),
            _ => err(col, format!("'{} multicast' is not supported", pq.name())),
        }
    }

    /// Families a v4 address applies to for protocol qualifier `pq` (libpcap's gen_host).
    fn fam4(q: Qual, col: usize) -> Result<u8, FilterError> {
        match q.proto {
            Pq::Default => Ok(FAM_IP | FAM_ARP | FAM_RARP),
            Pq::Ip => Ok(FAM_IP),
            Pq::Arp => Ok(FAM_ARP),
            Pq::Rarp => Ok(FAM_RARP),
            Pq::Link => err(col, "illegal link layer address"),
            Pq::Ip6 => err(col, "'ip6' modifier applied to ip host"),
            p => err(col, format!("'{}' modifier applied to host", p.name())),
        }
    }

    fn addr_qual_ok(q: Qual, col: usize, what: &str) -> Result<(), FilterError> {
        match q.addr {
            Aq::Port => err(col, format!("'port' modifier applied to {what}")),
            Aq::Portrange => err(col, format!("'portrange' modifier applied to {what}")),
            Aq::Proto => err(col, format!("'proto' modifier applied to {what}")),
            _ => Ok(()),
        }
    }

    fn gen_host4(&mut self, q: Qual, net: u32, mask: u32, col: usize) -> Result<u32, FilterError> {
        Self::addr_qual_ok(q, col, "IP address")?;
        let fam = Self::fam4(q, col)?;
        Ok(self.test(Test::Host4 { depth: self.at, fam, dir: q.dir, net, mask }))
    }

    fn gen_masked4(&mut self, q: Qual, net: u32, mask: u32, col: usize) -> Result<u32, FilterError> {
        Self::addr_qual_ok(q, col, "IP address and netmask")?;
        if q.addr != Aq::Net {
            return err(col, "Mask syntax for networks only");
        }
        if net & !mask != 0 {
            return err(col, "non-network bits set in network address");
        }
        self.gen_host4(q, net, mask, col)
    }

    fn gen_host6(&mut self, q: Qual, a: Ipv6Addr, bits: Option<u32>, col: usize) -> Result<u32, FilterError> {
        Self::addr_qual_ok(q, col, "IP address")?;
        let bits = bits.unwrap_or(128);
        if bits != 128 && q.addr != Aq::Net {
            return err(col, "Mask syntax for networks only");
        }
        match q.proto {
            Pq::Default | Pq::Ip6 => {}
            Pq::Ip => return err(col, "'ip' modifier applied to ip6 host"),
            Pq::Link => return err(col, "illegal link layer address"),
            p => return err(col, format!("'{}' modifier applied to ip6 host", p.name())),
        }
        let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
        let net = u128::from(a);
        if net & !mask != 0 {
            return err(col, "non-network bits set in network address");
        }
        Ok(self.test(Test::Host6 { depth: self.at, dir: q.dir, net, mask }))
    }

    fn port_l4(q: Qual, col: usize) -> Result<u8, FilterError> {
        match q.proto {
            Pq::Default => Ok(L4_TCP | L4_UDP | L4_SCTP),
            Pq::Tcp => Ok(L4_TCP),
            Pq::Udp => Ok(L4_UDP),
            Pq::Sctp => Ok(L4_SCTP),
            _ => err(col, format!("illegal qualifier of '{}'", if q.addr == Aq::Port { "port" } else { "portrange" })),
        }
    }

    fn gen_port(&mut self, q: Qual, l4: u8, lo: u32, hi: u32, col: usize) -> Result<u32, FilterError> {
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        if hi > 65535 {
            return err(col, format!("illegal port number {hi} > 65535"));
        }
        let l4 = Self::port_l4(q, col)? & l4;
        Ok(self.test(Test::Port { depth: self.at, l4, dir: q.dir, lo: lo as u16, hi: hi as u16 }))
    }

    fn gen_proto(&mut self, q: Qual, v: u32, col: usize) -> Result<u32, FilterError> {
        let depth = self.at;
        let Ok(proto) = u8::try_from(v) else {
            // libpcap compares the protocol byte with the value: never equal.
            return Ok(match q.proto {
                Pq::Default | Pq::Ip | Pq::Ip6 => self.node(Node::Const(false)),
                _ => return self.gen_proto_other(q, v, col),
            });
        };
        let t = match q.proto {
            Pq::Default => Test::IpProto { depth, v4: true, v6: true, proto },
            Pq::Ip => Test::IpProto { depth, v4: true, v6: false, proto },
            Pq::Ip6 => Test::IpProto { depth, v4: false, v6: true, proto },
            _ => return self.gen_proto_other(q, v, col),
        };
        Ok(self.test(t))
    }

    fn gen_proto_other(&mut self, q: Qual, v: u32, col: usize) -> Result<u32, FilterError> {
        if q.proto != Pq::Link {
            return err(col, format!("'{} proto' is bogus", q.proto.name()));
        }
        if v <= 1500 {
            return err(col, "'ether proto' values up to 1500 are LLC SAPs; not supported on records");
        }
        let depth = self.at;
        Ok(match v {
            0x8100 | 0x88a8 | 0x9100 if depth.mpls == 0 && !depth.pppoe => {
                self.test(Test::Vlan { depth: depth.vlans, id: None })
            }
            _ => match u16::try_from(v) {
                Ok(etype) => self.etype_test(etype, col)?,
                Err(_) => self.node(Node::Const(false)),
            },
        })
    }

    fn gen_num(&mut self, q: Qual, v: u32, col: usize) -> Result<u32, FilterError> {
        match q.addr {
            Aq::Default | Aq::Host => self.gen_host4(q, v, u32::MAX, col),
            Aq::Net => {
                // libpcap promotes a short net number: `net 10` is 10.0.0.0/8.
                let (mut v, mut mask) = (v, u32::MAX);
                while v != 0 && v & 0xff00_0000 == 0 {
                    v <<= 8;
                    mask <<= 8;
                }
                self.gen_host4(q, v, mask, col)
            }
            Aq::Port | Aq::Portrange => self.gen_port(q, L4_TCP | L4_UDP | L4_SCTP, v, v, col),
            Aq::Proto => self.gen_proto(q, v, col),
        }
    }

    fn gen_name(&mut self, q: Qual, name: &str, col: usize) -> Result<u32, FilterError> {
        match q.addr {
            Aq::Port => {
                let Some((port, real)) = service(name) else {
                    return err(col, format!("unknown port '{name}'"));
                };
                let l4 = self.restrict_l4(q, name, real, col)?;
                self.gen_port(q, l4, port, port, col)
            }
            Aq::Portrange => {
                let (lo, hi, real) = port_range(name)
                    .ok_or_else(|| FilterError { msg: format!("unknown port in range '{name}'"), col })?;
                let l4 = self.restrict_l4(q, name, real, col)?;
                self.gen_port(q, l4, lo, hi, col)
            }
            Aq::Proto => {
                let v = if q.proto == Pq::Link {
                    ether_proto(name)
                        .ok_or_else(|| FilterError { msg: format!("unknown ether proto '{name}'"), col })?
                } else {
                    ip_proto(name).ok_or_else(|| FilterError { msg: format!("unknown ip proto '{name}'"), col })?
                };
                self.gen_proto(q, v, col)
            }
            Aq::Default | Aq::Host | Aq::Net => {
                err(col, format!("host/network names are not supported ('{name}'); use an address"))
            }
        }
    }

    /// libpcap: a service name known only for TCP (or UDP) restricts `port` to that protocol,
    /// and `udp port <tcp-only name>` is an error.
    fn restrict_l4(&self, q: Qual, name: &str, real: Option<u8>, col: usize) -> Result<u8, FilterError> {
        Ok(match (q.proto, real) {
            (Pq::Default, None) => L4_TCP | L4_UDP | L4_SCTP,
            (Pq::Default, Some(l4)) => l4,
            (Pq::Tcp, Some(L4_UDP)) => return err(col, format!("port '{name}' is udp")),
            (Pq::Udp, Some(L4_TCP)) => return err(col, format!("port '{name}' is tcp")),
            (Pq::Sctp, Some(L4_TCP)) => return err(col, format!("port '{name}' is tcp")),
            (Pq::Sctp, Some(L4_UDP)) => return err(col, format!("port '{name}' is udp")),
            _ => L4_TCP | L4_UDP | L4_SCTP,
        })
    }

    // --- arithmetic relations (`tcp[tcpflags] & tcp-syn != 0`) --------------------------

    /// At a `(`: does the matching `)` precede an arithmetic or relational operator?
    fn relation_ahead(&self) -> bool {
        let mut depth = 0usize;
        let mut k = 0;
        loop {
            match self.peek_at(k) {
                Tok::LParen => depth += 1,
                Tok::RParen => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return matches!(self.peek_at(k + 1), Tok::Rel(_) | Tok::Op(_));
                    }
                }
                Tok::End => return false,
                _ => {}
            }
            k += 1;
        }
    }

    /// arth relop arth. The only packet value records can supply is the TCP flags byte, so
    /// each side is evaluated for all 256 flag values at parse time and the relation becomes a
    /// 256-bit set: exact, and constant-time per record.
    fn relation(&mut self) -> Result<u32, FilterError> {
        let lhs = self.arith(0)?;
        let col = self.col();
        let Tok::Rel(rel) = self.bump() else {
            return err(col, "expected a comparison ('=', '!=', '<', '<=', '>', '>=')");
        };
        let rhs = self.arith(0)?;
        let mut set = [0u64; 4];
        for x in 0..256 {
            let (Some(a), Some(b)) = (lhs.v[x], rhs.v[x]) else {
                continue;
            };
            let hit = match rel {
                Rel::Gt => a > b,
                Rel::Ge => a >= b,
                Rel::Eq => a == b,
                Rel::Ne => a != b,
                Rel::Lt => a < b,
                Rel::Le => a <= b,
            };
            if hit {
                set[x / 64] |= 1 << (x % 64);
            }
        }
        match lhs.load.or(rhs.load) {
            Some(depth) => Ok(self.test(Test::TcpFlags { depth, set })),
            None => Ok(self.node(Node::Const(set[0] & 1 != 0))),
        }
    }

    /// Precedence climbing over libpcap's levels: `|` `^` < `&` < shifts < `+ -` < `* / %`.
    fn arith(&mut self, level: u8) -> Result<Box<Vals>, FilterError> {
        const LEVELS: u8 = 5;
        if level == LEVELS {
            return self.arith_unary();
        }
        let mut lhs = self.arith(level + 1)?;
        loop {
            let op = match (level, self.peek()) {
                (0, Tok::Op(o @ (Op::BitOr | Op::Xor)))
                | (1, Tok::Op(o @ Op::BitAnd))
                | (2, Tok::Op(o @ (Op::Shl | Op::Shr)))
                | (3, Tok::Op(o @ (Op::Add | Op::Sub)))
                | (4, Tok::Op(o @ (Op::Mul | Op::Div | Op::Mod))) => *o,
                _ => return Ok(lhs),
            };
            let col = self.col();
            self.bump();
            let rhs = self.arith(level + 1)?;
            if matches!(op, Op::Div | Op::Mod) && rhs.load.is_none() && rhs.v[0] == Some(0) {
                return err(col, if op == Op::Div { "division by zero" } else { "modulus by zero" });
            }
            lhs.combine(&rhs, op);
        }
    }

    fn arith_unary(&mut self) -> Result<Box<Vals>, FilterError> {
        let col = self.col();
        match self.peek().clone() {
            Tok::Op(Op::Sub) => {
                self.bump();
                self.enter()?;
                let mut v = self.arith_unary()?;
                self.leave();
                for x in v.v.iter_mut().flatten() {
                    *x = x.wrapping_neg();
                }
                Ok(v)
            }
            Tok::LParen => {
                self.bump();
                self.enter()?;
                let v = self.arith(0)?;
                self.leave();
                self.expect(Tok::RParen, "')'")?;
                Ok(v)
            }
            Tok::Num(n) => {
                self.bump();
                Ok(Vals::constant(n))
            }
            Tok::Kw(Kw::P(pq)) if self.peek_at(1) == &Tok::LBrack => {
                self.bump();
                self.bump();
                let idx_col = self.col();
                let idx = self.arith(0)?;
                let mut size = 1;
                if self.peek() == &Tok::Colon {
                    self.bump();
                    let c = self.col();
                    match self.bump() {
                        Tok::Num(n @ (1 | 2 | 4)) => size = n,
                        _ => return err(c, "data size must be 1, 2, or 4"),
                    }
                }
                self.expect(Tok::RBrack, "']'")?;
                if pq != Pq::Tcp || idx.load.is_some() || idx.v[0] != Some(13) || size != 1 {
                    return err(
                        if pq == Pq::Tcp { idx_col } else { col },
                        "only the TCP flags byte (tcp[13] or tcp[tcpflags]) can be read from records; other packet bytes are not supported",
                    );
                }
                Ok(Vals::tcp_flags(self.at))
            }
            Tok::Kw(Kw::Len) => err(col, "'len' (frame length) is not supported on records; use 'less'/'greater'"),
            Tok::Kw(Kw::Unsupported(w)) => err(col, format!("'{w}' is not supported on records")),
            _ => err(col, format!("expected a number or tcp[tcpflags], found {}", self.describe_prev())),
        }
    }
}

/// The value of an arithmetic expression for each possible TCP flags byte (`None`: the BPF
/// program would have aborted, e.g. division by a zero it loaded) and the VLAN depth of the load
/// it contains, if any.
struct Vals {
    v: [Option<u32>; 256],
    load: Option<Layer>,
}

impl Vals {
    fn constant(n: u32) -> Box<Vals> {
        Box::new(Vals { v: [Some(n); 256], load: None })
    }
    fn tcp_flags(depth: Layer) -> Box<Vals> {
        let mut v = [None; 256];
        for (x, slot) in v.iter_mut().enumerate() {
            *slot = Some(x as u32);
        }
        Box::new(Vals { v, load: Some(depth) })
    }
    /// BPF ALU semantics: 32-bit wrapping, out-of-range shifts give 0, x/0 aborts.
    fn combine(&mut self, rhs: &Vals, op: Op) {
        for (a, b) in self.v.iter_mut().zip(rhs.v.iter()) {
            *a = match (*a, *b) {
                (Some(a), Some(b)) => match op {
                    Op::Add => Some(a.wrapping_add(b)),
                    Op::Sub => Some(a.wrapping_sub(b)),
                    Op::Mul => Some(a.wrapping_mul(b)),
                    Op::Div => a.checked_div(b),
                    Op::Mod => a.checked_rem(b),
                    Op::BitAnd => Some(a & b),
                    Op::BitOr => Some(a | b),
                    Op::Xor => Some(a ^ b),
                    Op::Shl => Some(a.checked_shl(b).unwrap_or(0)),
                    Op::Shr => Some(a.checked_shr(b).unwrap_or(0)),
                },
                _ => None,
            };
        }
        self.load = self.load.or(rhs.load);
    }
}

// ---------------------------------------------------------------------------------------------
// Name lookups, as libpcap does them (getaddrinfo/getprotobyname read these files). Read per
// parse: filters are parsed at startup and on reload only. Hand-written because std has no
// services/protocols database and a libc binding would need unsafe code.

fn db_lines(path: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").split_whitespace().map(str::to_string).collect())
        .filter(|f: &Vec<String>| f.len() >= 2)
        .collect()
}

/// Port of a service name and, when the name is known for only one of TCP/UDP, that protocol
/// (libpcap's pcap_nametoport).
fn service(name: &str) -> Option<(u32, Option<u8>)> {
    let (mut tcp, mut udp) = (None, None);
    for f in db_lines("/etc/services") {
        if !f.iter().enumerate().any(|(i, w)| i != 1 && w == name) {
            continue;
        }
        let Some((port, proto)) = f[1].split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u32>() else {
            continue;
        };
        match proto {
            "tcp" if tcp.is_none() => tcp = Some(port),
            "udp" if udp.is_none() => udp = Some(port),
            _ => {}
        }
    }
    match (tcp, udp) {
        (Some(t), Some(u)) if t == u => Some((t, None)),
        (Some(t), _) => Some((t, Some(L4_TCP))),
        (None, Some(u)) => Some((u, Some(L4_UDP))),
        (None, None) => None,
    }
}

/// `a-b` with decimal numbers or service names (libpcap's pcap_nametoportrange).
fn port_range(s: &str) -> Option<(u32, u32, Option<u8>)> {
    let (a, b) = s.split_once('-')?;
    let num =
        |x: &str| (!x.is_empty() && x.bytes().all(|c| c.is_ascii_digit())).then(|| x.parse::<u32>().ok()).flatten();
    if let (Some(a), Some(b)) = (num(a), num(b)) {
        return Some((a, b, None));
    }
    let (pa, ra) = num(a).map(|n| (n, None)).or_else(|| service(a))?;
    let (pb, rb) = num(b).map(|n| (n, None)).or_else(|| service(b))?;
    Some((pa, pb, if ra == rb { ra } else { None }))
}

fn ip_proto(name: &str) -> Option<u32> {
    db_lines("/etc/protocols")
        .into_iter()
        .find(|f| f.iter().enumerate().any(|(i, w)| i != 1 && w == name))
        .and_then(|f| f[1].parse().ok())
}

/// libpcap's built-in EtherType names (`ether proto \ip`).
fn ether_proto(name: &str) -> Option<u32> {
    Some(match name {
        "ip" => 0x0800,
        "ip6" => 0x86dd,
        "arp" => 0x0806,
        "rarp" => 0x8035,
        "atalk" => 0x809b,
        "aarp" => 0x80f3,
        "decnet" => 0x6003,
        "sca" => 0x6007,
        "lat" => 0x6004,
        "mopdl" => 0x6001,
        "moprc" => 0x6002,
        "loopback" => 0x9000,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Kernel pre-filter: a superset of a filter in the XDP program's rule language

/// Entries each of the XDP program's address tries holds (`LpmTrie::with_max_entries(4096)` in
/// ebpf/xdp): a superset needing more nets than that is not expressible.
pub const PREFILTER_MAX_NETS: usize = 4096;

/// Longest port range expanded into port rules; a wider range falls back to protocol rules.
const PREFILTER_MAX_RANGE: u32 = 1024;

/// Kernel pre-filter rules in xacct-core's terms (the daemon converts them into the XDP
/// loader's rules, so xacct-core does not depend on it). An IP packet is admitted when ANY
/// rule admits it; no rule at all admits no IP packet. The XDP program never pre-filters
/// non-IP frames, nor frames it cannot fully parse (more than 3 VLAN tags, long IPv6
/// extension-header chains), so rules only ever need to cover IP packets.
///
/// Rule meanings, as the XDP program evaluates them on its parsed flow key:
/// - `v4_src`…`v6_dst`: the packet's address is in one of the nets (any VLAN depth);
/// - `protos`: the IP protocol (IPv6: after extension headers) is in the set;
/// - `src_ports`/`dst_ports`: the port is in the set, where the kernel's ports are those of
///   TCP and UDP first fragments and 0 for every other packet (ICMP, SCTP, later fragments…);
/// - `vlans`: the OUTERMOST VLAN id is in the set (untagged frames have id 0);
/// - `ipv4`/`ipv6`: every packet of that family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefilterRules {
    /// Nets as (network address with host bits cleared, prefix length).
    pub v4_src: Vec<(std::net::Ipv4Addr, u8)>,
    pub v4_dst: Vec<(std::net::Ipv4Addr, u8)>,
    pub v6_src: Vec<(Ipv6Addr, u8)>,
    pub v6_dst: Vec<(Ipv6Addr, u8)>,
    pub protos: Vec<u8>,
    pub src_ports: Vec<u16>,
    pub dst_ports: Vec<u16>,
    pub vlans: Vec<u16>,
    pub ipv4: bool,
    pub ipv6: bool,
}

impl PrefilterRules {
    /// Whether these rules admit no IP packet at all.
    pub fn is_empty(&self) -> bool {
        self.v4_src.is_empty()
            && self.v4_dst.is_empty()
            && self.v6_src.is_empty()
            && self.v6_dst.is_empty()
            && self.protos.is_empty()
            && self.src_ports.is_empty()
            && self.dst_ports.is_empty()
            && self.vlans.is_empty()
            && !self.ipv4
            && !self.ipv6
    }

    /// Rules admitting what either set admits (sorted, deduplicated); `None` when a net list
    /// would outgrow [`PREFILTER_MAX_NETS`].
    pub fn union(mut self, other: PrefilterRules) -> Option<PrefilterRules> {
        fn merge<T: Ord>(a: &mut Vec<T>, b: Vec<T>) {
            a.extend(b);
            a.sort_unstable();
            a.dedup();
        }
        merge(&mut self.v4_src, other.v4_src);
        merge(&mut self.v4_dst, other.v4_dst);
        merge(&mut self.v6_src, other.v6_src);
        merge(&mut self.v6_dst, other.v6_dst);
        merge(&mut self.protos, other.protos);
        merge(&mut self.src_ports, other.src_ports);
        merge(&mut self.dst_ports, other.dst_ports);
        merge(&mut self.vlans, other.vlans);
        self.ipv4 |= other.ipv4;
        self.ipv6 |= other.ipv6;
        let nets = [self.v4_src.len(), self.v4_dst.len(), self.v6_src.len(), self.v6_dst.len()];
        (nets.iter().all(|n| *n <= PREFILTER_MAX_NETS)).then_some(self)
    }

    /// A rough guess of the share of IP traffic admitted, only used to choose between the two
    /// sides of an `and`. Traffic is not uniform, so these are orders of magnitude: a whole
    /// family or protocol is a lot, a port a little, a net by its length.
    fn cost(&self) -> f64 {
        let net = |len: u8| 0.5f64.powf(f64::from(len) / 4.0);
        let mut c = 0.0;
        c += f64::from(u8::from(self.ipv4)) + f64::from(u8::from(self.ipv6));
        c += 0.3 * self.protos.len() as f64;
        c += 0.2 * self.vlans.len() as f64;
        let ports = self.src_ports.len() + self.dst_ports.len();
        if ports > 0 {
            // Port 0 also admits every packet without ports (see `leaf_superset`).
            c += 0.1 + 0.01 * ports as f64;
        }
        c += self.v4_src.iter().chain(&self.v4_dst).map(|(_, l)| net(*l)).sum::<f64>();
        c += self.v6_src.iter().chain(&self.v6_dst).map(|(_, l)| net(*l / 4)).sum::<f64>();
        c
    }
}

impl std::fmt::Display for PrefilterRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Long lists (port ranges, big net sets) are cut: this goes to the log.
        const SHOWN: usize = 16;
        fn cut(items: Vec<String>, total: usize) -> String {
            let mut s = items.join(",");
            if total > SHOWN {
                s.push_str(&format!(",… ({total} in all)"));
            }
            s
        }
        fn list<T: std::fmt::Display>(v: &[T]) -> String {
            cut(v.iter().take(SHOWN).map(|x| x.to_string()).collect(), v.len())
        }
        fn nets<A: std::fmt::Display>(v: &[(A, u8)]) -> String {
            cut(v.iter().take(SHOWN).map(|(a, l)| format!("{a}/{l}")).collect(), v.len())
        }
        let mut parts = Vec::new();
        for (name, s) in [
            ("v4 src", nets(&self.v4_src)),
            ("v4 dst", nets(&self.v4_dst)),
            ("v6 src", nets(&self.v6_src)),
            ("v6 dst", nets(&self.v6_dst)),
            ("proto", list(&self.protos)),
            ("src port", list(&self.src_ports)),
            ("dst port", list(&self.dst_ports)),
            ("vlan", list(&self.vlans)),
        ] {
            if !s.is_empty() {
                parts.push(format!("{name} {s}"));
            }
        }
        if self.ipv4 {
            parts.push("all ipv4".into());
        }
        if self.ipv6 {
            parts.push("all ipv6".into());
        }
        if parts.is_empty() {
            f.write_str("no IP packet")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// `None` stands for "every packet" in the superset computation.
type Sup = Option<PrefilterRules>;

/// Either side is a superset of an intersection: take the more selective one.
fn sup_and(a: Sup, b: Sup) -> Sup {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => Some(if b.cost() < a.cost() { b } else { a }),
    }
}

fn sup_or(a: Sup, b: Sup) -> Sup {
    a?.union(b?)
}

/// The prefix that a possibly non-contiguous `net … mask …` mask starts with: every address
/// matching the mask matches that prefix.
fn prefix_len(mask: u128, bits: u32) -> u8 {
    mask.leading_ones().min(bits) as u8
}

/// (source nets, destination nets)
type NetPair<A> = (Vec<(A, u8)>, Vec<(A, u8)>);

fn nets_by_dir<A: Copy>(dir: Dir, net: (A, u8)) -> NetPair<A> {
    match dir {
        Dir::Src => (vec![net], vec![]),
        Dir::Dst => (vec![], vec![net]),
        Dir::Or => (vec![net], vec![net]),
        // Both must match, so either list alone is a superset.
        Dir::And => (vec![net], vec![]),
    }
}

impl Test {
    /// Kernel rules admitting every IP packet whose record passes this test; `None` when the
    /// kernel rules cannot express one short of everything.
    ///
    /// The `depth` of address/protocol/port tests (libpcap's `vlan` offset shift) is ignored:
    /// the kernel's rules hold at any VLAN depth, which only widens the superset. Tests that
    /// only non-IP frames pass give empty rules, since the kernel never pre-filters non-IP.
    fn kernel_superset(&self) -> Sup {
        let empty = PrefilterRules::default();
        match *self {
            Test::EtherType { etype: ET_IP, .. } => Some(PrefilterRules { ipv4: true, ..empty }),
            Test::EtherType { etype: ET_IP6, .. } => Some(PrefilterRules { ipv6: true, ..empty }),
            // EtherTypes in front of IP packets (PPPoE, MPLS, Cisco tags) admit them too.
            Test::EtherType {
                depth: Layer { mpls: 0, pppoe: false, .. },
                etype: 0x8864 | 0x8847 | 0x8848 | 0x8903 | 0x8926,
            } => None,
            Test::EtherType { .. } => Some(empty),
            // Only the outermost id is kept by the kernel, and only `vlan <id>` before any other
            // `vlan` tests it; an inner or absent id would admit every frame.
            Test::Vlan { depth: 0, id: Some(id) } => Some(PrefilterRules { vlans: vec![id], ..empty }),
            Test::Vlan { .. } => None,
            // The kernel keeps no rule on encapsulations; what follows them still narrows.
            Test::Mpls { .. } | Test::Pppoes { .. } => None,
            Test::IpProto { v4: false, v6: false, .. } => Some(empty),
            Test::IpProto { proto, .. } => Some(PrefilterRules { protos: vec![proto], ..empty }),
            Test::Host4 { fam, .. } if fam & FAM_IP == 0 => Some(empty),
            Test::Host4 { dir, net, mask, .. } => {
                let len = prefix_len(u128::from(mask) << 96, 32);
                let keep = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
                let (v4_src, v4_dst) = nets_by_dir(dir, (std::net::Ipv4Addr::from(net & keep), len));
                Some(PrefilterRules { v4_src, v4_dst, ..empty })
            }
            Test::Host6 { dir, net, mask, .. } => {
                let len = prefix_len(mask, 128);
                let keep = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
                let (v6_src, v6_dst) = nets_by_dir(dir, (Ipv6Addr::from(net & keep), len));
                Some(PrefilterRules { v6_src, v6_dst, ..empty })
            }
            Test::Port { l4, dir, lo, hi, .. } => {
                let mut protos = Vec::new();
                for (bit, p) in [(L4_TCP, 6u8), (L4_UDP, 17), (L4_SCTP, 132)] {
                    if l4 & bit != 0 {
                        protos.push(p);
                    }
                }
                if protos.is_empty() {
                    return Some(empty);
                }
                if u32::from(hi) - u32::from(lo) >= PREFILTER_MAX_RANGE || l4 & (L4_TCP | L4_UDP) == 0 {
                    return Some(PrefilterRules { protos, ..empty });
                }
                // Port 0 is added because the kernel's ports are 0 for later IPv4/IPv6
                // fragments (checked before they go up, while userspace gives them their
                // datagram's ports) and for SCTP (the kernel reads TCP and UDP ports only).
                let mut ports: Vec<u16> = (lo..=hi).collect();
                if lo != 0 {
                    ports.insert(0, 0);
                }
                let (src_ports, dst_ports) = match dir {
                    Dir::Src | Dir::And => (ports, vec![]),
                    Dir::Dst => (vec![], ports),
                    Dir::Or => (ports.clone(), ports),
                };
                Some(PrefilterRules { src_ports, dst_ports, ..empty })
            }
            Test::Ip4Multicast { .. } => {
                Some(PrefilterRules { v4_dst: vec![(std::net::Ipv4Addr::new(224, 0, 0, 0), 3)], ..empty })
            }
            Test::Ip6Multicast { .. } => {
                Some(PrefilterRules { v6_dst: vec![(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8)], ..empty })
            }
            Test::TcpFlags { .. } => Some(PrefilterRules { protos: vec![6], ..empty }),
            Test::Ether { .. } | Test::EtherBroadcast | Test::EtherMulticast | Test::Len { .. } => None,
        }
    }
}

impl Filter {
    /// Kernel pre-filter rules admitting (at least) every IP packet this filter accepts, or
    /// `None` when no rule set short of "admit everything" is known to be one. Userspace still
    /// applies the filter itself: the rules only have to be a superset.
    ///
    /// Computed on the compiled program rather than the expression tree: an instruction
    /// accepts `(test and accept(jt)) or (not test and accept(jf))`, a subset of
    /// `(superset(test) or-else superset(jt)) ∪ superset(jf)`, where either side of the `and`
    /// will do (the more selective one is taken). A `not` only shows up as swapped jump
    /// targets, so it costs selectivity, never correctness.
    pub fn kernel_superset(&self) -> Option<PrefilterRules> {
        // sup[i]: superset of what is accepted from instruction i on. Jumps only go to lower
        // indices, so one pass in index order sees every target before its use.
        let mut sup: Vec<Sup> = Vec::with_capacity(self.prog.len());
        let at = |sup: &[Sup], pc: u32| -> Sup {
            match pc {
                ACCEPT => None,
                REJECT => Some(PrefilterRules::default()),
                // Unreachable by construction; "everything" is the safe answer anyway.
                _ => sup.get(pc as usize).cloned().flatten(),
            }
        };
        for insn in &self.prog {
            let taken = sup_and(insn.test.kernel_superset(), at(&sup, insn.jt));
            let s = sup_or(taken, at(&sup, insn.jf));
            sup.push(s);
        }
        at(&sup, self.entry)
    }
}

// ---------------------------------------------------------------------------------------------
// Index guards: exact field values a filter needs, for the pre_tag_map index

/// A record field holding one value (an address within a prefix), as a pre_tag_map index
/// looks records up by. Addresses are network addresses with the host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atom {
    SrcNet(Addr, u8),
    DstNet(Addr, u8),
    SrcPort(u16),
    DstPort(u16),
    Proto(u8),
    /// The outer VLAN id.
    Vlan(u16),
    SrcMac([u8; 6]),
    DstMac([u8; 6]),
}

/// Alternatives, each a conjunction of [`Atom`]s: a record the filter accepts satisfies at
/// least one alternative. An empty list: the filter accepts nothing.
pub type Guard = Vec<Vec<Atom>>;

/// Most alternatives a guard keeps; beyond, the side is given up (an `or`) or the smaller
/// side is kept (an `and`), so guards stay cheap to look up.
const GUARD_MAX_ALTS: usize = 64;
/// Most atoms in one alternative; dropping atoms only widens the condition.
const GUARD_MAX_ATOMS: usize = 8;
/// Longest port range expanded into one alternative per port.
const GUARD_MAX_RANGE: u16 = 16;

/// `None` stands for "any record".
type Gd = Option<Guard>;

fn guard_and(a: Gd, b: Gd) -> Gd {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) if a.len() * b.len() <= GUARD_MAX_ALTS => Some(
            a.iter()
                .flat_map(|x| {
                    b.iter().map(move |y| x.iter().chain(y).copied().take(GUARD_MAX_ATOMS).collect::<Vec<Atom>>())
                })
                .collect(),
        ),
        (Some(a), Some(b)) => Some(if b.len() < a.len() { b } else { a }),
    }
}

fn guard_or(a: Gd, b: Gd) -> Gd {
    let mut a = a?;
    a.extend(b?);
    (a.len() <= GUARD_MAX_ALTS).then_some(a)
}

fn atoms_by_dir(dir: Dir, src: Atom, dst: Atom) -> Guard {
    match dir {
        Dir::Src => vec![vec![src]],
        Dir::Dst => vec![vec![dst]],
        Dir::Or => vec![vec![src], vec![dst]],
        Dir::And => vec![vec![src, dst]],
    }
}

impl Test {
    /// The values a record passing this test must hold, whatever the test's `depth` (every
    /// test reads these record fields at any depth, and depth only adds conditions).
    fn guard(&self) -> Gd {
        match *self {
            Test::IpProto { v4: false, v6: false, .. } => Some(vec![]),
            Test::IpProto { proto, .. } => Some(vec![vec![Atom::Proto(proto)]]),
            Test::Host4 { dir, net, mask, .. } => {
                let len = prefix_len(u128::from(mask) << 96, 32);
                let keep = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
                let a = Addr::V4((net & keep).to_be_bytes());
                Some(atoms_by_dir(dir, Atom::SrcNet(a, len), Atom::DstNet(a, len)))
            }
            Test::Host6 { dir, net, mask, .. } => {
                let len = prefix_len(mask, 128);
                let keep = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
                let a = Addr::V6((net & keep).to_be_bytes());
                Some(atoms_by_dir(dir, Atom::SrcNet(a, len), Atom::DstNet(a, len)))
            }
            Test::Port { l4: 0, .. } => Some(vec![]),
            Test::Port { dir, lo, hi, .. } if hi - lo < GUARD_MAX_RANGE => {
                let mut g = Vec::new();
                for p in lo..=hi {
                    match dir {
                        // Both ports in the range: the source port alone is necessary.
                        Dir::And if lo != hi => g.push(vec![Atom::SrcPort(p)]),
                        _ => g.extend(atoms_by_dir(dir, Atom::SrcPort(p), Atom::DstPort(p))),
                    }
                }
                Some(g)
            }
            Test::Ether { dir, mac } => Some(atoms_by_dir(dir, Atom::SrcMac(mac), Atom::DstMac(mac))),
            Test::EtherBroadcast => Some(vec![vec![Atom::DstMac([0xff; 6])]]),
            Test::Vlan { depth: 0, id: Some(id) } => Some(vec![vec![Atom::Vlan(id)]]),
            _ => None,
        }
    }
}

impl Filter {
    /// Field values every record this filter accepts holds (as alternatives), or `None` when
    /// no such condition short of "any record" is known. A pre_tag_map index files a
    /// `filter=` rule under these and still runs the filter on the records they bring, so
    /// the guard only has to be necessary, not sufficient. Computed on the program the way
    /// [`Filter::kernel_superset`] is: a `not` shows up as swapped jumps and only costs
    /// selectivity.
    pub fn guard(&self) -> Option<Guard> {
        let mut g: Vec<Gd> = Vec::with_capacity(self.prog.len());
        let at = |g: &[Gd], pc: u32| -> Gd {
            match pc {
                ACCEPT => None,
                REJECT => Some(vec![]),
                _ => g.get(pc as usize).cloned().flatten(),
            }
        };
        for insn in &self.prog {
            let taken = guard_and(insn.test.guard(), at(&g, insn.jt));
            g.push(guard_or(taken, at(&g, insn.jf)));
        }
        at(&g, self.entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col_of(expr: &str) -> (usize, String) {
        match Filter::parse(expr) {
            Ok(_) => panic!("{expr:?} parsed"),
            Err(e) => (e.col, e.msg),
        }
    }

    #[test]
    fn parse_errors_report_their_column() {
        let cases: &[(&str, usize, &str)] = &[
            ("tcp[13:2] = 0", 5, "TCP flags"),
            ("ip[0] & 0xf > 5", 1, "not supported"),
            ("host 1.2.3.4 and len > 100", 18, "len"),
            ("host 1.2.3.4 and gateway foo", 18, "gateway"),
            ("src port 80 and icmp[icmptype] = 8", 22, "icmptype"),
            ("host 10.0.0.0/8", 6, "networks only"),
            ("net 10.0.0.1/8", 5, "non-network bits"),
            ("net 10.0.0.0/33", 14, "<= 32"),
            ("port 70000", 6, "65535"),
            ("tcp and (port 80", 17, "')'"),
            ("tcp or 80", 8, "qualifier"),
            ("1.2.3.4", 1, "qualifier"),
            ("host 1.2.3.4 5.6.7.8", 14, "unexpected"),
            ("ip port 80", 9, "illegal qualifier"),
            ("ip6 host 1.2.3.4", 10, "'ip6' modifier"),
            ("host www.example.com", 6, "names are not supported"),
            ("vlan 4096", 6, "4095"),
            ("port 080", 6, "octal"),
            ("tcp[13] / 0 = 1", 9, "division by zero"),
            ("host 00:11:22:33:44:55", 6, "non-ether"),
            ("tcp # 1", 5, "unexpected character"),
            ("not", 4, "end of expression"),
            ("ether proto 0x42", 13, "LLC"),
            ("ip broadcast", 1, "netmask"),
            ("mpls 1048576", 6, "1048575"),
            ("pppoes 65536", 8, "65535"),
            ("mpls and vlan", 10, "'vlan' after"),
            ("pppoes and pppoes", 12, "'pppoes' after"),
            ("ifindex 3", 1, "ifindex"),
        ];
        for (expr, col, frag) in cases {
            let (c, msg) = col_of(expr);
            assert_eq!(c, *col, "{expr:?}: {msg}");
            assert!(msg.contains(frag), "{expr:?}: {msg:?} lacks {frag:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}tcp{}", "(".repeat(5000), ")".repeat(5000));
        assert!(Filter::parse(&deep).is_err());
        let nots = format!("{}tcp", "not ".repeat(5000));
        assert!(Filter::parse(&nots).is_err());
        // Long flat chains are fine: they are walked iteratively.
        let chain = vec!["port 80"; 20000].join(" or ");
        let f = Filter::parse(&chain).unwrap();
        let r = Record { etype: ET_IP, proto: 6, dst_port: 80, ..Record::default() };
        assert!(f.matches(&r));
    }

    fn tcp4(dport: u16) -> Record {
        Record {
            etype: ET_IP,
            src_ip: Addr::V4([10, 0, 0, 1]),
            dst_ip: Addr::V4([1, 2, 3, 4]),
            proto: 6,
            dst_port: dport,
            ..Record::default()
        }
    }

    #[test]
    fn and_or_have_equal_precedence_left_to_right() {
        // (tcp or udp) and port 53, not tcp or (udp and port 53).
        let f = Filter::parse("tcp or udp and port 53").unwrap();
        assert!(!f.matches(&tcp4(80)));
        assert!(f.matches(&tcp4(53)));
        // (not tcp) and port 80
        let f = Filter::parse("not tcp and port 80").unwrap();
        assert!(!f.matches(&tcp4(80)));
    }

    #[test]
    fn bare_values_reuse_the_previous_qualifiers() {
        let f = Filter::parse("dst host 9.9.9.9 or 1.2.3.4").unwrap();
        assert!(f.matches(&tcp4(1)));
        let f = Filter::parse("src host 9.9.9.9 or 1.2.3.4").unwrap();
        assert!(!f.matches(&tcp4(1)), "1.2.3.4 inherits 'src'");
        let f = Filter::parse("tcp dst port 22 or 443").unwrap();
        assert!(f.matches(&tcp4(443)));
        assert!(!Filter::parse("udp port (22 or 443)").unwrap().matches(&tcp4(443)));
    }

    #[test]
    fn vlan_shifts_the_tests_that_follow_it() {
        let tagged = Record { vlan: 10, vlan_depth: 1, ..tcp4(80) };
        assert!(!Filter::parse("src net 10.0.0.0/8").unwrap().matches(&tagged));
        assert!(Filter::parse("vlan and src net 10.0.0.0/8").unwrap().matches(&tagged));
        assert!(!Filter::parse("vlan and src net 10.0.0.0/8").unwrap().matches(&tcp4(80)));
        assert!(Filter::parse("vlan 10 and tcp port 80").unwrap().matches(&tagged));
        assert!(!Filter::parse("vlan 11 and tcp port 80").unwrap().matches(&tagged));
        // `ip` after `vlan` in another branch is still shifted.
        assert!(!Filter::parse("vlan or ip").unwrap().matches(&tcp4(80)));
    }

    #[test]
    fn mpls_and_pppoes_shift_the_tests_that_follow_them() {
        let plain = tcp4(80);
        let enc = |link_etype, depth: u8| Record {
            link_etype,
            mpls_depth: depth,
            mpls_top: if depth > 0 { 100 } else { 0 },
            mpls_bottom: if depth > 0 { 300 } else { 0 },
            pppoe_session: if link_etype == ET_PPPOES { 7 } else { 0 },
            ..plain
        };
        let (mpls1, mpls3, mcast, pppoe) = (enc(0x8847, 1), enc(0x8847, 3), enc(0x8848, 1), enc(0x8864, 0));
        let m = |e: &str, r: &Record| Filter::parse(e).unwrap().matches(r);
        assert!(m("ip", &plain) && !m("ip", &mpls1) && !m("ip", &pppoe));
        assert!(m("mpls and ip", &mpls1) && !m("mpls and ip", &mpls3) && !m("mpls and ip", &plain));
        assert!(!m("mpls", &mcast) && m("ether proto 0x8848", &mcast));
        assert!(m("mpls 100 and mpls and mpls 300 and tcp port 80", &mpls3));
        assert!(!m("mpls 101", &mpls3) && !m("mpls and mpls and mpls 301", &mpls3));
        assert!(m("mpls and mpls", &mpls3) && !m("mpls and mpls", &mpls1));
        assert!(m("pppoes and host 10.0.0.1", &pppoe) && m("pppoes 7 and ip", &pppoe));
        assert!(!m("pppoes 8", &pppoe) && !m("host 10.0.0.1", &pppoe) && !m("pppoes", &plain));
        assert!(m("ether proto 0x8864", &pppoe) && !m("pppoes and mpls", &pppoe));
        let tagged = Record { vlan: 5, vlan_depth: 1, ..pppoe };
        assert!(m("vlan 5 and pppoes and udp or tcp", &tagged) && !m("pppoes", &tagged));
        assert!(m("pppoed", &Record { etype: 0x8863, link_etype: 0x8863, src_ip: Addr::None, ..plain }));
        // The kernel superset of an encapsulation test admits what follows it.
        let sup = Filter::parse("pppoes and host 10.0.0.1").unwrap().kernel_superset().unwrap();
        assert_eq!(sup.v4_src.len(), 1);
        assert!(Filter::parse("ether proto 0x8847").unwrap().kernel_superset().is_none());
    }

    #[test]
    fn arbitrary_input_never_panics() {
        const PIECES: &[&str] = &[
            "host",
            "net",
            "port",
            "portrange",
            "src",
            "dst",
            "and",
            "or",
            "not",
            "!",
            "(",
            ")",
            "[",
            "]",
            ":",
            "tcp",
            "ip6",
            "vlan",
            "ether",
            "proto",
            "10",
            "10.1",
            "1.2.3.4",
            "/",
            "::1",
            "0:1:2:3:4:5",
            "mask",
            "255.0.0.0",
            "tcp[13]",
            "&",
            "|",
            "=",
            "!=",
            "<<",
            "-",
            "0x",
            "080",
            "\\",
            "\\tcp",
            "less",
            "1-2",
            "tcpflags",
            "é",
            "%",
            "99999999999",
            "2001:db8::/200",
            "broadcast",
            "multicast",
            "len",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let r = tcp4(80);
        for _ in 0..20_000 {
            let mut e = String::new();
            for _ in 0..(x % 9) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                e.push_str(PIECES[(x % PIECES.len() as u64) as usize]);
                e.push(if x & 0x100 != 0 { ' ' } else { '\t' });
            }
            x = x.wrapping_add(0x9e37_79b9);
            if let Ok(f) = Filter::parse(&e) {
                f.matches(&r);
            }
        }
    }

    #[test]
    fn empty_matches_everything() {
        assert!(Filter::parse("").unwrap().matches(&Record::default()));
        assert!(Filter::parse("  ").unwrap().matches(&Record::default()));
    }

    #[test]
    fn flow_records_without_etype_are_classified_by_address() {
        let r = Record {
            src_ip: Addr::V4([10, 0, 0, 1]),
            dst_ip: Addr::V4([10, 0, 0, 2]),
            proto: 6,
            dst_port: 443,
            ..Record::default()
        };
        assert!(Filter::parse("ip and tcp dst port 443 and src net 10.0.0.0/8").unwrap().matches(&r));
        assert!(!Filter::parse("ip6").unwrap().matches(&r));
    }

    #[test]
    fn less_greater_use_average_frame_size() {
        // 10 packets of IP length 1000 => frames of 1014 bytes.
        let r =
            Record { etype: ET_IP, src_ip: Addr::V4([1, 1, 1, 1]), bytes: 10_000, packets: 10, ..Record::default() };
        assert!(Filter::parse("greater 1014").unwrap().matches(&r));
        assert!(!Filter::parse("greater 1015").unwrap().matches(&r));
        assert!(Filter::parse("less 1014").unwrap().matches(&r));
    }

    fn atom_holds(a: &Atom, r: &Record) -> bool {
        match *a {
            Atom::SrcNet(n, l) => r.src_ip.masked(l) == n,
            Atom::DstNet(n, l) => r.dst_ip.masked(l) == n,
            Atom::SrcPort(p) => r.src_port == p,
            Atom::DstPort(p) => r.dst_port == p,
            Atom::Proto(p) => r.proto == p,
            Atom::Vlan(v) => r.vlan == v,
            Atom::SrcMac(m) => r.src_mac == m,
            Atom::DstMac(m) => r.dst_mac == m,
        }
    }

    #[test]
    fn guards_are_necessary() {
        let exprs = [
            "src net 10.1.0.0/16",
            "net 10.1.2.0/24",
            "src host 10.1.2.3 and dst host 10.9.9.9",
            "src and dst net 10.0.0.0/8",
            "net 10.1.0.0 mask 255.255.0.255",
            "tcp and port 80",
            "udp or icmp",
            "port 53 or port 80 or host 10.9.9.9",
            "portrange 70-90",
            "portrange 1-1000",
            "src and dst port 80",
            "not port 80",
            "not (port 80 or port 81)",
            "tcp and not src net 10.1.0.0/16",
            "vlan 5 and tcp",
            "ether src 00:00:00:00:00:01 or ether dst 00:00:00:00:00:02",
            "ether broadcast",
            "ip6 and net 2001:db8::/32",
            "(tcp or udp) and (port 80 or net 10.9.0.0/16)",
            "udp and tcp",
        ];
        let guards: Vec<(Filter, Option<Guard>)> = exprs
            .iter()
            .map(|e| {
                let f = Filter::parse(e).unwrap();
                let g = f.guard();
                (f, g)
            })
            .collect();
        // Which expressions get a guard, and which do not.
        let got: Vec<bool> = guards.iter().map(|(_, g)| g.is_some()).collect();
        assert_eq!(
            got,
            [
                true, true, true, true, true, true, true, true, false, false, true, false, false, true, true, true,
                true, true, true, true
            ]
        );
        let addrs4 = [[10, 1, 2, 3], [10, 1, 9, 3], [10, 9, 9, 9], [10, 2, 0, 3], [192, 168, 0, 1]];
        let mut n = 0;
        for (si, di) in (0..addrs4.len() + 1).flat_map(|s| (0..addrs4.len() + 1).map(move |d| (s, d))) {
            for (proto, sp, dp, vlan) in [(6, 80, 1000), (17, 53, 53), (6, 81, 80), (1, 0, 0), (17, 75, 76)]
                .iter()
                .flat_map(|&(p, s, d)| [(p, s, d, 0u16), (p, s, d, 5)])
            {
                for mac in [[0, 0, 0, 0, 0, 1], [0xff; 6]] {
                    let v6 = si == addrs4.len() || di == addrs4.len();
                    let (src_ip, dst_ip) = if v6 {
                        (Addr::V6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), Addr::V6([0x20; 16]))
                    } else {
                        (Addr::V4(addrs4[si]), Addr::V4(addrs4[di]))
                    };
                    let r = Record {
                        src_ip,
                        dst_ip,
                        proto,
                        src_port: sp,
                        dst_port: dp,
                        vlan,
                        vlan_depth: u8::from(vlan != 0),
                        src_mac: mac,
                        dst_mac: mac,
                        packets: 1,
                        bytes: 100,
                        ..Record::default()
                    };
                    for (f, g) in &guards {
                        if f.matches(&r) {
                            n += 1;
                            if let Some(g) = g {
                                assert!(
                                    g.iter().any(|alt| alt.iter().all(|a| atom_holds(a, &r))),
                                    "{:?} accepts {r:?} but its guard {g:?} does not",
                                    f.source()
                                );
                            }
                        }
                    }
                }
            }
        }
        assert!(n > 500, "only {n} accepted records checked");
    }
}
