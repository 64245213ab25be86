//! The bodies of the fuzz targets over this crate's parsers (`fuzz/fuzz_targets/*.rs` are
//! one-line wrappers), kept here so that `tests/fuzz_corpus.rs` replays every committed corpus
//! file and fixed crash through exactly what libFuzzer ran, on stable and without libFuzzer.
//! Errors are fine; a panic, a hang or an allocation sized by the input is a finding.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::aggregate::{Aggregate, KeyBuf, Projector, MAX_KEY_WORDS};
use crate::config::{Config, Daemon, Launch, OutputFormat};
use crate::filter::Filter;
use crate::format::{FormatOptions, TableWriter};
use crate::imt::{self, Request, Response};
use crate::maps::{AllowList, Networks, Ports};
use crate::record::{Addr, Record};

/// Records every evaluation runs on: IPv4 TCP inside a VLAN, IPv6 UDP, and a non-IP frame.
fn records() -> [Record; 3] {
    let v4 = Record {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        vlan: 100,
        vlan_depth: 1,
        etype: 0x0800,
        link_etype: 0x8100,
        src_ip: Addr::from(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
        dst_ip: Addr::from(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2))),
        src_port: 40000,
        dst_port: 80,
        proto: 6,
        tos: 0x10,
        tcp_flags: 0x12,
        packets: 1,
        bytes: 1500,
        ..Record::default()
    };
    let v6 = Record {
        etype: 0x86dd,
        link_etype: 0x86dd,
        src_ip: Addr::from(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))),
        dst_ip: Addr::from(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2))),
        src_port: 5353,
        dst_port: 53,
        proto: 17,
        packets: 2,
        bytes: 200,
        ..Record::default()
    };
    let arp = Record { etype: 0x0806, link_etype: 0x0806, packets: 1, bytes: 60, ..Record::default() };
    [v4, v6, arp]
}

/// Input: the first byte picks how the daemon was started (xacctd, or under pmacctd's,
/// nfacctd's or sfacctd's name, which changes what keys mean); the rest is configuration
/// text, parsed and resolved as `-f` would.
pub fn config(data: &[u8]) {
    let Some((&who, text)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let argv0 = match who % 4 {
        0 => None,
        1 => Some(Daemon::Pmacctd),
        2 => Some(Daemon::Nfacctd),
        _ => Some(Daemon::Sfacctd),
    };
    let launch = Launch { argv0, flags: Vec::new() };
    let Ok(c) = Config::parse_with(text, "fuzz.conf", &[], &launch) else { return };
    let _ = (c.global.netflow_listen(), c.global.sflow_listen(), c.global.captures_packets());
    for p in &c.plugins {
        let _ = p.history();
        assert!(c.plugin(&p.name).is_some());
    }
}

/// Input: the first byte picks the map (networks_file, ports_file, the allow file); the rest
/// is its text. What parses is then used on the fixed records.
pub fn maps(data: &[u8]) {
    let Some((&which, text)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let mut recs = records();
    match which % 3 {
        0 => {
            let Ok(n) = Networks::parse(text, "networks.lst") else { return };
            for r in &mut recs {
                n.resolve(r);
                assert!(r.nets_resolved);
                assert!(r.src_mask <= 128 && r.dst_mask <= 128);
                if let Some((_, len, _)) = n.lookup(r.src_ip) {
                    assert!(len <= 128);
                }
            }
            let _ = (n.len(), n.is_empty());
        }
        1 => {
            let Ok(p) = Ports::parse(text, "ports.lst") else { return };
            for r in &mut recs {
                p.apply(r);
                assert!(r.src_port == 0 || p.contains(r.src_port));
            }
        }
        _ => {
            let Ok(a) = AllowList::parse(text, "allow.lst") else { return };
            for ip in ["10.0.0.1", "2001:db8::1", "0.0.0.0", "::"] {
                let _ = a.allows(ip.parse().expect("a literal address"));
            }
        }
    }
}

/// Input: a libpcap filter expression, compiled and, when it compiles, evaluated on the fixed
/// records; its XDP pre-filter superset, when there is one, must let through every record the
/// filter accepts.
pub fn filter(data: &[u8]) {
    let Ok(expr) = std::str::from_utf8(data) else { return };
    let Ok(f) = Filter::parse(expr) else { return };
    assert_eq!(f.source(), expr);
    for r in &records() {
        let _ = f.matches(r);
    }
    let _ = f.kernel_superset();
}

/// The aggregate the memory table of the `imt` target serves.
const IMT_AGGREGATE: &str = "src_mac,dst_mac,vlan,src_host,dst_host,src_port,dst_port,proto,tos,tag";

/// Input: the first byte picks the side. Even: a client's request line as the memory-table
/// server reads it, its `-M`/`-N` patterns compiled against a fixed aggregate and matched on
/// the fixed records. Odd: the server's answer line then its binary entries, as the client
/// reads and renders them (the output format is picked by the first byte too).
pub fn imt(data: &[u8]) {
    let Some((&side, mut rest)) = data.split_first() else { return };
    if side % 2 == 0 {
        let Ok(req) = imt::read_line::<Request>(&mut rest) else { return };
        let agg = Aggregate::parse(IMT_AGGREGATE).expect("a valid aggregate");
        let spec = match &req {
            Request::Table { matches, .. } => matches.as_ref(),
            Request::Counters { matches, .. } => Some(matches),
            _ => None,
        };
        if let Some(Ok(patterns)) = spec.map(|m| m.compile(&agg)) {
            // Matched on records as the table stores them (projected through the aggregate).
            let proj = Projector::new(&agg, false);
            let (mut a, mut b): (KeyBuf, KeyBuf) = ([0; MAX_KEY_WORDS], [0; MAX_KEY_WORDS]);
            for r in &records() {
                proj.pack(r, 0, &mut a, &mut b);
                let (back, _) = proj.unpack(&a[..proj.words()]);
                for p in &patterns {
                    let _ = p.matches(&back);
                }
            }
        }
    } else {
        let Ok(resp) = imt::read_line::<Response>(&mut rest) else { return };
        let format = match side >> 1 & 3 {
            0 => OutputFormat::Formatted,
            1 => OutputFormat::Csv,
            _ => OutputFormat::Json,
        };
        let opts = FormatOptions { format, all_fields: side & 0x10 != 0, ..FormatOptions::default() };
        let mut out = Vec::new();
        if let Ok(n) = imt::render_table(&resp, &mut rest, &mut out, |agg| TableWriter::new(agg, opts), true) {
            // Every entry was read from the input: a count larger than the stream is an error.
            assert!(n <= data.len() as u64);
        }
    }
}

/// Input: the first byte picks the parser: a pre_tag_map (parsed with and without
/// `maps_index`, both evaluated on the fixed records: the index must give the scan's tags), a
/// `pre_tag_filter`/`pre_tag2_filter` value, or a `pre_tag_label_filter` value.
pub fn pre_tag_map(data: &[u8]) {
    use crate::tag::{parse_map_with, LabelFilter, MapOptions, TagFilter};
    let Some((&which, text)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    match which % 3 {
        0 => {
            let scan = MapOptions { index: false, ..MapOptions::default() };
            let Ok(m) = parse_map_with(text, "pretag.map", &scan) else { return };
            let indexed = parse_map_with(text, "pretag.map", &MapOptions { index: true, ..MapOptions::default() })
                .expect("a map that parses without the index parses with it");
            for r in &records() {
                // Every emission, compared: both maps are evaluated the same number of times,
                // so their `N++` counters stay in step.
                let (mut a, mut b) = (Vec::new(), Vec::new());
                m.eval(r, |t| a.push(t));
                indexed.eval(r, |t| b.push(t));
                assert_eq!(a, b, "index and scan disagree");
                assert!(a.len() <= m.len() + 1, "more emissions than rules");
            }
        }
        1 => {
            let Ok(f) = TagFilter::parse(text) else { return };
            for t in [0, 1, 100, u64::MAX] {
                let _ = f.takes(t);
            }
        }
        _ => {
            let Ok(f) = LabelFilter::parse(text) else { return };
            for l in [0, 1, 7] {
                let _ = f.takes(l);
            }
        }
    }
}
