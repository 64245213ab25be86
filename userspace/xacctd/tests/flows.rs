//! The `flows` counter end to end: bidirectional flows, lifetime expiry, SYN after FIN.

mod support;

use std::time::Duration;
use support::{query_csv, savefile_conf, sorted_rows, Daemon};
use xacct_perf::traffic::{build, write_pcap, Frame, FrameSpec, L3, L4};

fn frame(ts: i64, src: u8, dst: u8, l4: L4) -> Frame {
    let spec = FrameSpec {
        src_mac: [2, 0, 0, 0, 0, src],
        dst_mac: [2, 0, 0, 0, 0, dst],
        vlans: vec![],
        l3: L3::V4 { src: [10, 0, 0, src], dst: [10, 0, 0, dst], tos: 0 },
        l4,
        payload: 10,
    };
    Frame { ts_sec: 1_700_000_000 + ts, ts_usec: 0, data: build(&spec) }
}

#[test]
fn flows_count_connections_and_expired_flows() {
    let tcp = |f| L4::Tcp { sport: 1000, dport: 80, flags: f };
    let rtcp = |f| L4::Tcp { sport: 80, dport: 1000, flags: f };
    let udp = L4::Udp { sport: 5000, dport: 53 };
    let rudp = L4::Udp { sport: 53, dport: 5000 };
    let frames = vec![
        frame(0, 1, 2, tcp(0x02)),
        frame(0, 2, 1, rtcp(0x12)),
        frame(1, 1, 2, tcp(0x10)),
        frame(2, 1, 2, tcp(0x11)),
        frame(2, 2, 1, rtcp(0x11)),
        frame(5, 1, 2, tcp(0x02)), // same ports after FIN: a new connection
        frame(6, 2, 1, rtcp(0x12)),
        frame(0, 3, 4, udp),
        frame(10, 3, 4, udp),
        frame(11, 4, 3, rudp),
        frame(100, 3, 4, udp), // 89 s idle > 60 s lifetime: a new flow
        frame(101, 4, 3, rudp),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("f.pcap");
    write_pcap(&pcap, &frames).expect("pcap");
    let sock = dir.path().join("f.pipe");
    let conf = dir.path().join("f.conf");
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "pcap_savefile_wait: true\nworkers: 2\naggregate: src_host,dst_host,flows\nimt_path: {}\n",
            sock.display()
        ),
    );
    let log = dir.path().join("f.log");
    let mut daemon = Daemon::start(&conf, &log);
    daemon.wait_log("finished reading", Duration::from_secs(30));
    let csv = query_csv(&sock);
    drop(daemon);
    let rows = sorted_rows(&csv);
    assert_eq!(csv.lines().next(), Some("SRC_IP,DST_IP,PACKETS,FLOWS,BYTES"), "{csv}");
    assert_eq!(
        rows,
        vec![
            "10.0.0.1,10.0.0.2,4,2,200",
            "10.0.0.2,10.0.0.1,3,0,150",
            "10.0.0.3,10.0.0.4,3,2,114",
            "10.0.0.4,10.0.0.3,2,0,76"
        ],
        "{csv}"
    );
}
