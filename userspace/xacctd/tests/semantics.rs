//! Where xacct deliberately differs from pmacctd 1.7.7, the behaviour is pinned here (the
//! pmacct comparison tests leave these cases out, saying why).

mod support;

use std::path::Path;
use std::time::Duration;
use support::{query_csv, savefile_conf, sorted_rows, Daemon};
use xacct_perf::traffic::{build, fragment_v4, write_pcap, Frame, FrameSpec, L3, L4};

fn frame(src: [u8; 4], dst: [u8; 4], l4: L4, vlans: Vec<u16>, payload: usize) -> Vec<u8> {
    build(&FrameSpec {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        vlans,
        l3: L3::V4 { src, dst, tos: 0 },
        l4,
        payload,
    })
}

/// Runs xacctd over `frames` with one memory plugin and returns the sorted CSV rows.
fn run(dir: &Path, frames: Vec<Vec<u8>>, aggregate: &str, extra: &str) -> Vec<String> {
    let pcap = dir.join(format!("{}.pcap", aggregate.replace(',', "_")));
    let frames: Vec<Frame> = frames.into_iter().map(|data| Frame { ts_sec: 1_700_000_000, ts_usec: 0, data }).collect();
    write_pcap(&pcap, &frames).expect("pcap");
    let sock = pcap.with_extension("pipe");
    let conf = pcap.with_extension("conf");
    savefile_conf(
        &conf,
        &pcap,
        &format!("pcap_savefile_wait: true\naggregate: {aggregate}\nimt_path: {}\n{extra}", sock.display()),
    );
    let mut d = Daemon::start(&conf, &pcap.with_extension("log"));
    d.wait_log("finished reading", Duration::from_secs(30));
    let rows = sorted_rows(&query_csv(&sock));
    d.terminate();
    rows
}

#[test]
fn sum_net_credits_each_net_with_its_own_traffic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nets = dir.path().join("nets.lst");
    std::fs::write(&nets, "65001,10.0.0.0/16\n10.0.1.0/24\n65002,192.168.0.0/16\n").expect("networks");
    let udp = L4::Udp { sport: 1, dport: 2 };
    let frames = vec![
        frame([10, 0, 1, 5], [192, 168, 0, 9], udp, vec![], 0),
        frame([10, 0, 0, 5], [192, 168, 0, 9], udp, vec![], 0),
        frame([10, 0, 0, 5], [192, 168, 0, 9], udp, vec![], 0),
    ];
    // pmacctd 1.7.7 answers 10.0.1.0: 2 packets, 10.0.0.0: 4, and nothing for 192.168.0.0.
    let rows = run(dir.path(), frames, "sum_net", &format!("networks_file: {}\n", nets.display()));
    assert_eq!(rows, vec!["10.0.0.0,2,56", "10.0.1.0,1,28", "192.168.0.0,3,84"]);
}

#[test]
fn later_tcp_fragments_add_no_flags_and_get_their_ports() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Payload bytes that look like flags (0xff) where pmacctd reads "flags" from a fragment.
    let mut whole = frame([10, 0, 0, 1], [10, 0, 0, 2], L4::Tcp { sport: 1234, dport: 80, flags: 0x02 }, vec![], 200);
    for b in &mut whole[14 + 20 + 20..] {
        *b = 0xff;
    }
    let (first, later) = fragment_v4(&whole).expect("fragmentable");
    let rows = run(dir.path(), vec![first, later], "src_port,dst_port,tcpflags,proto", "");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].starts_with("1234,80,2,tcp,2,"), "{rows:?}");
}

#[test]
fn all_zero_keys_are_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frames = vec![frame([10, 0, 0, 1], [10, 0, 0, 2], L4::Icmp { ty: 8, code: 0 }, vec![], 0)];
    // ICMP has no ports: the sum_port key is 0, which pmacctd's memory table never shows.
    assert_eq!(run(dir.path(), frames, "sum_port", ""), vec!["0,2,56"]);
}
