//! Nets, masks and ASes of collected records, against Debian's nfacctd/sfacctd 1.7.7 on the
//! same datagrams (`xacct -s -O csv` = `pmacct -s -O csv`, entry for entry), for each
//! `*_net`/`*_as` method:
//! - softflowd (NetFlow v5 and v9, masks and ASes 0) with `nfacctd_as: file`, `nfacctd_net:
//!   file` and a networks_file: the usual way to get nets and ASes on a collector;
//! - NetFlow v5 and v9 records that carry masks and ASes (made with the repo's encoders): the
//!   default (`netflow`, with a networks_file that must then go unused), `longest` (with and
//!   without `networks_file_no_lpm`), `file` (with and without `networks_file_filter`), `mask`
//!   with `networks_mask`;
//! - sFlow samples with extended router (masks) and gateway (ASes) data: the default
//!   (`sflow`) and `longest`.

mod support;

use std::net::IpAddr;
use std::path::Path;
use support::collect::{compare_collectors, have, softflowd, Setup};
use support::send_udp;
use xacct_wire::netflow::{encode_v5, FlowRecord, MessageBuilder, NetflowHeader, TemplateField};

/// IPv4 only: nfacctd 1.7.7's IPv6 lookups are broken (see `maps`), and xacct's do a real
/// longest match; IPv6 addresses here are in no listed net, for both.
const NETWORKS: &str = "! nets for the comparison\n\
65001,10.0.0.0/8\n\
65002,10.0.8.0/24\n\
10.0.1.0/24\n\
65003,192.168.5.0/24\n\
65004,192.168.0.0/16\n\
64512_65005,192.168.2.0/24\n";

const PLUGINS: &[(&str, &str)] =
    &[("a", "src_net,dst_net,src_mask,dst_mask,src_as,dst_as"), ("b", "dst_host,src_as,proto")];

fn networks(dir: &Path) -> String {
    let p = dir.join("networks.lst");
    std::fs::write(&p, NETWORKS).expect("write networks file");
    p.display().to_string()
}

/// Compares the collectors for one configuration; the differences found.
fn compare(dir: &Path, reference: &str, what: &str, extra: &str, send: impl FnOnce(u16, u16)) -> Vec<String> {
    std::fs::create_dir_all(dir).expect("subdir");
    let ready = if reference == "nfacctd" { "waiting for NetFlow" } else { "waiting for sFlow" };
    let setup = Setup { plugins: PLUGINS, extra };
    compare_collectors(dir, reference, ready, what, &setup, send, |_, _| None)
}

#[test]
fn softflowd_with_networks_file_for_nets_and_ases_same_as_nfacctd() {
    if !have(&["nfacctd", "pmacct", "softflowd", "softflowctl"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let pcap = tmp.path().join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(5_000, 500, 31)).expect("pcap");
    let nets = networks(tmp.path());
    let extra = format!("networks_file: {nets}\nnfacctd_as: file\nnfacctd_net: file\n");
    let mut failures = Vec::new();
    for version in ["5", "9"] {
        let dir = tmp.path().join(format!("v{version}"));
        failures.extend(compare(&dir, "nfacctd", &format!("softflowd v{version}, file"), &extra, |pm, xa| {
            softflowd(&pcap, &dir, pm, version);
            softflowd(&pcap, &dir, xa, version);
        }));
    }
    assert!(failures.is_empty(), "tables differ:\n{}", failures.join("\n"));
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Flow records over addresses in and out of [`NETWORKS`], with every mask and AS case: the
/// record's prefix longer, shorter or as long as the file's, masks of 0, ASes of 0.
fn records(v6: bool) -> Vec<FlowRecord> {
    let v4 = [
        "10.0.8.29",
        "10.0.8.5",
        "10.1.1.1",
        "10.200.1.1",
        "192.168.5.47",
        "192.168.5.1",
        "172.16.1.1",
        "8.8.8.8",
        "11.2.3.4",
        "192.168.2.77",
        "10.0.1.9",
    ];
    let v6s = ["2001:db8::1", "2001:db8:1::5", "2001:db8:ff::9", "2001:db9::7"];
    let masks4 = [0u8, 8, 16, 24, 27, 30, 32];
    let masks6 = [0u8, 32, 48, 64];
    let ases = [0u32, 100, 200, 65002, 4_200_000_000];
    let n = if v6 { 24 } else { 77 };
    (0..n)
        .map(|i| {
            let (src, dst, sm, dm) = if v6 {
                (v6s[i % 4], v6s[(i / 4 + 1) % 4], masks6[i % 4], masks6[(i / 4) % 4])
            } else {
                (v4[i % 11], v4[(i * 7 + 3) % 11], masks4[i % 7], masks4[(i / 7) % 7])
            };
            FlowRecord {
                src_addr: ip(src),
                dst_addr: ip(dst),
                src_port: 1024 + i as u16,
                dst_port: 80,
                proto: 6,
                src_mask: sm,
                dst_mask: dm,
                src_as: ases[i % 5],
                dst_as: ases[(i / 5) % 5],
                packets: 1 + i as u64,
                bytes: 100 * (1 + i as u64),
                first_switched: 90_000,
                last_switched: 99_000,
                ..FlowRecord::default()
            }
        })
        .collect()
}

fn header(seq: u32) -> NetflowHeader {
    NetflowHeader {
        version: 5,
        sys_uptime_ms: 100_000,
        unix_secs: 1_700_000_000,
        sequence: seq,
        ..NetflowHeader::default()
    }
}

/// NetFlow v5 datagrams (30 records each) and v9 ones with IPv4 and IPv6 templates that carry
/// masks (IE 9/13, 29/30) and ASes (IE 16/17).
fn datagrams() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let v4 = records(false);
    for (k, chunk) in v4.chunks(30).enumerate() {
        out.push(encode_v5(&header((k * 30) as u32), chunk));
    }
    let f = TemplateField::iana;
    let common = [f(7, 2), f(11, 2), f(4, 1), f(16, 4), f(17, 4), f(2, 8), f(1, 8), f(22, 4), f(21, 4)];
    let t4: Vec<TemplateField> = [f(8, 4), f(12, 4), f(9, 1), f(13, 1)].into_iter().chain(common).collect();
    let t6: Vec<TemplateField> = [f(27, 16), f(28, 16), f(29, 1), f(30, 1)].into_iter().chain(common).collect();
    let h9 = NetflowHeader { version: 9, source_id: 7, ..header(0) };
    let mut m = MessageBuilder::v9(&h9);
    m.template(256, &t4).template(257, &t6);
    out.push(m.finish());
    for (k, chunk) in v4.chunks(20).enumerate() {
        let mut m = MessageBuilder::v9(&NetflowHeader { sequence: 1 + k as u32, ..h9 });
        m.data(256, &t4, chunk);
        out.push(m.finish());
    }
    let mut m = MessageBuilder::v9(&NetflowHeader { sequence: 10, ..h9 });
    m.data(257, &t6, &records(true));
    out.push(m.finish());
    out
}

#[test]
fn netflow_records_with_masks_and_ases_same_as_nfacctd_for_every_method() {
    if !have(&["nfacctd", "pmacct"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let nets = networks(tmp.path());
    let dgrams = datagrams();
    let cases = [
        // nfacctd's default is the record's, also when a networks_file is given.
        ("netflow (default), networks_file unused", format!("networks_file: {nets}\n")),
        ("netflow", "nfacctd_net: netflow\nnfacctd_as: netflow\nnetworks_no_mask_if_zero: true\n".to_string()),
        ("longest", format!("networks_file: {nets}\nnfacctd_net: longest\nnfacctd_as: longest\n")),
        (
            "longest, networks_file_no_lpm",
            format!("networks_file: {nets}\nnfacctd_net: longest\nnfacctd_as: longest\nnetworks_file_no_lpm: true\n"),
        ),
        ("file", format!("networks_file: {nets}\nnfacctd_net: file\nnfacctd_as: file\n")),
        (
            "file, networks_file_filter",
            format!("networks_file: {nets}\nnfacctd_net: file\nnfacctd_as: file\nnetworks_file_filter: true\n"),
        ),
        ("mask", format!("networks_file: {nets}\nnetworks_mask: 20\nnfacctd_net: mask\nnfacctd_as: file\n")),
    ];
    let mut failures = Vec::new();
    for (i, (what, extra)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("case{i}"));
        failures.extend(compare(&dir, "nfacctd", what, extra, |pm, xa| {
            send_udp(pm, &dgrams);
            send_udp(xa, &dgrams);
        }));
    }
    assert!(failures.is_empty(), "tables differ:\n{}", failures.join("\n"));
}

/// sFlow v5 datagrams of samples whose packets' addresses, masks and ASes vary as in
/// [`records`]: extended router data (masks) and gateway data (ASes) on each sample.
fn sflow_datagrams() -> Vec<Vec<u8>> {
    use xacct_perf::traffic::{build, FrameSpec, L3, L4};
    use xacct_wire::sflow::{DatagramBuilder, FlowSampleSpec};
    use xacct_wire::sflow::{ExtGateway, ExtRouter};
    let mut out = Vec::new();
    let recs = records(false);
    for (k, chunk) in recs.chunks(7).enumerate() {
        let mut d = DatagramBuilder::new(ip("127.0.0.1"), 0, k as u32, 1000);
        for (j, r) in chunk.iter().enumerate() {
            let (IpAddr::V4(s), IpAddr::V4(t)) = (r.src_addr, r.dst_addr) else { continue };
            let frame = build(&FrameSpec {
                src_mac: [2, 0, 0, 0, 0, 1],
                dst_mac: [2, 0, 0, 0, 0, 2],
                vlans: vec![],
                l3: L3::V4 { src: s.octets(), dst: t.octets(), tos: 0 },
                l4: L4::Udp { sport: r.src_port, dport: 53 },
                payload: 20,
            });
            d.flow_sample(&FlowSampleSpec {
                router: Some(ExtRouter {
                    next_hop: ip("10.9.9.9"),
                    src_mask: r.src_mask.into(),
                    dst_mask: r.dst_mask.into(),
                }),
                gateway: Some(ExtGateway {
                    next_hop: Some(ip("10.9.9.9")),
                    my_as: 64999,
                    src_as: r.src_as,
                    src_peer_as: 0,
                    dst_peer_as: r.dst_as,
                    dst_as: r.dst_as,
                }),
                ..FlowSampleSpec::ethernet((k * 7 + j) as u32, &frame)
            });
        }
        out.push(d.finish());
    }
    out
}

#[test]
fn sflow_samples_with_router_and_gateway_data_same_as_sfacctd() {
    if !have(&["sfacctd", "pmacct"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let nets = networks(tmp.path());
    let dgrams = sflow_datagrams();
    let cases = [
        ("sflow (default), networks_file unused", format!("networks_file: {nets}\n")),
        ("longest", format!("networks_file: {nets}\nsfacctd_net: longest\nsfacctd_as: longest\n")),
        ("file", format!("networks_file: {nets}\nsfacctd_net: file\nsfacctd_as: file\n")),
    ];
    let mut failures = Vec::new();
    for (i, (what, extra)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("case{i}"));
        failures.extend(compare(&dir, "sfacctd", &format!("sFlow {what}"), extra, |pm, xa| {
            send_udp(pm, &dgrams);
            send_udp(xa, &dgrams);
        }));
    }
    assert!(failures.is_empty(), "tables differ:\n{}", failures.join("\n"));
}
