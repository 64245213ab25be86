//! NetFlow v5/v9/IPFIX and sFlow v5 datagrams (made by the wire crate's encoders) sent over
//! loopback UDP to xacctd's collectors; the memory table and `xacct -t` checked exactly.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use support::*;
use xacct_wire::netflow::{encode_v5, FlowRecord, MessageBuilder, NetflowHeader, TemplateField};
use xacct_wire::sflow::{DatagramBuilder, FlowSampleSpec};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn flow(src: &str, dst: &str, sport: u16, dport: u16, proto: u8, packets: u64, bytes: u64) -> FlowRecord {
    FlowRecord {
        src_addr: ip(src),
        dst_addr: ip(dst),
        src_port: sport,
        dst_port: dport,
        proto,
        packets,
        bytes,
        ..FlowRecord::default()
    }
}

const AGG: &str = "src_host,dst_host,src_port,dst_port,proto";

fn start(dir: &Path, listen: &str) -> (Daemon, std::path::PathBuf) {
    start_collector(dir, "x", listen, AGG)
}

fn send(port: u16, dgrams: &[Vec<u8>]) {
    send_udp(port, dgrams)
}

const V4_FIELDS: [TemplateField; 7] = [
    TemplateField::iana(8, 4),
    TemplateField::iana(12, 4),
    TemplateField::iana(7, 2),
    TemplateField::iana(11, 2),
    TemplateField::iana(4, 1),
    TemplateField::iana(2, 4),
    TemplateField::iana(1, 4),
];

#[test]
fn netflow_v5_v9_ipfix_accounted_exactly_with_gaps_and_malformed_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let (d, pipe) = start(dir.path(), &format!("nfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\n"));

    let h5 = |seq| NetflowHeader { version: 5, unix_secs: 1_700_000_000, sequence: seq, ..NetflowHeader::default() };
    let v5a = encode_v5(
        &h5(0),
        &[flow("10.0.0.1", "10.0.0.2", 1000, 80, 6, 10, 1000), flow("10.0.0.3", "10.0.0.4", 53, 53, 17, 2, 150)],
    );
    // Sequence 5 where 2 was expected: 3 flows lost on the way.
    let v5b = encode_v5(&h5(5), &[flow("10.0.0.1", "10.0.0.2", 1000, 80, 6, 5, 500)]);

    let h9 =
        NetflowHeader { version: 9, unix_secs: 1_700_000_000, sequence: 7, source_id: 3, ..NetflowHeader::default() };
    let mut m = MessageBuilder::v9(&h9);
    m.template(256, &V4_FIELDS).data(256, &V4_FIELDS, &[flow("192.0.2.1", "192.0.2.2", 4000, 443, 6, 3, 300)]);
    let v9 = m.finish();

    let hx =
        NetflowHeader { version: 10, unix_secs: 1_700_000_000, sequence: 0, source_id: 9, ..NetflowHeader::default() };
    let mut m = MessageBuilder::ipfix(&hx);
    m.template(300, &V4_FIELDS).data(
        300,
        &V4_FIELDS,
        &[flow("198.51.100.1", "198.51.100.2", 5000, 22, 6, 4, 400), flow("10.0.0.3", "10.0.0.4", 53, 53, 17, 1, 70)],
    );
    let ipfix = m.finish();
    // IPFIX data set for a template nobody announced: counted, not accounted.
    let mut m = MessageBuilder::ipfix(&NetflowHeader { sequence: 2, ..hx });
    m.data_raw(999, 1, &[0u8; 8], 0);
    let unknown = m.finish();
    // Truncated v5 and an unknown version.
    let truncated = v5a.get(..30).expect("v5 datagram").to_vec();
    let bad_version = vec![0u8, 42, 0, 0];

    send(port, &[v5a, v5b, v9, ipfix, unknown, truncated, bad_version]);
    let status = wait_counter(&pipe, "datagrams", 7);

    let csv = query_csv(&pipe);
    assert_eq!(
        sorted_rows(&csv),
        vec![
            "10.0.0.1,10.0.0.2,1000,80,tcp,15,1500",
            "10.0.0.3,10.0.0.4,53,53,udp,3,220",
            "192.0.2.1,192.0.2.2,4000,443,tcp,3,300",
            "198.51.100.1,198.51.100.2,5000,22,tcp,4,400",
        ],
        "{csv}"
    );
    assert_eq!(csv.lines().next(), Some("SRC_IP,DST_IP,SRC_PORT,DST_PORT,PROTOCOL,PACKETS,BYTES"));
    assert_eq!(counter(&status, "flow_records"), Some(6), "{status}");
    assert_eq!(counter(&status, "seq_gaps_forward"), Some(1), "{status}");
    assert_eq!(counter(&status, "seq_gaps_backward"), Some(0), "{status}");
    assert_eq!(counter(&status, "unknown_template_sets"), Some(1), "{status}");
    assert_eq!(counter(&status, "malformed_datagrams"), Some(2), "{status}");
    assert!(status.contains("netflow exporter 127.0.0.1/3 datagrams: 1"), "{status}");
    assert!(
        status.contains("malformed truncated_header: 1") || status.contains("malformed count_mismatch: 1"),
        "{status}"
    );
    assert!(status.contains("malformed bad_version: 1"), "{status}");
    let log = d.terminate();
    assert!(log.contains("netflow exporter 127.0.0.1/0: datagrams 4"), "{log}");
}

#[test]
fn netflow_renormalize_uses_the_v5_sampling_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let (d, pipe) =
        start(dir.path(), &format!("nfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nnfacctd_renormalize: true\n"));
    let h = NetflowHeader {
        version: 5,
        unix_secs: 1_700_000_000,
        sampling_interval: 100,
        sampling_mode: 1,
        ..NetflowHeader::default()
    };
    send(port, &[encode_v5(&h, &[flow("10.0.0.1", "10.0.0.2", 1, 2, 17, 3, 90)])]);
    wait_counter(&pipe, "flow_records", 1);
    assert_eq!(sorted_rows(&query_csv(&pipe)), vec!["10.0.0.1,10.0.0.2,1,2,udp,300,9000"]);
    d.terminate();
}

fn udp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    use xacct_perf::traffic::{build, L3, L4};
    build(&spec(vec![], L3::V4 { src, dst, tos: 0 }, L4::Udp { sport, dport }, payload))
}

fn sample(seq: u32, frame: &[u8], rate: u32) -> FlowSampleSpec<'_> {
    FlowSampleSpec { sampling_rate: rate, sample_pool: 0, ..FlowSampleSpec::ethernet(seq, frame) }
}

#[test]
fn sflow_v5_accounted_exactly_and_renormalised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let (d, pipe) =
        start(dir.path(), &format!("sfacctd_ip: 127.0.0.1\nsfacctd_port: {port}\nsfacctd_renormalize: true\n"));
    let agent = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50));
    let f1 = udp_frame([10, 1, 0, 1], [10, 1, 0, 2], 1111, 53, 100);
    let f2 = udp_frame([10, 1, 0, 3], [10, 1, 0, 4], 2222, 123, 20);
    let mut b = DatagramBuilder::new(agent, 0, 1, 1000);
    b.flow_sample(&sample(1, &f1, 10)).flow_sample(&sample(2, &f2, 10));
    let d1 = b.finish();
    // Datagram sequence 4 after 1: two datagrams lost.
    let mut b = DatagramBuilder::new(agent, 0, 4, 2000);
    b.flow_sample(&sample(3, &f1, 10));
    let d2 = b.finish();
    send(port, &[d1, d2, vec![0, 0, 0, 5, 0, 0]]);
    let status = wait_counter(&pipe, "datagrams", 3);
    let (l1, l2) = (f1.len() as u64 + 4, f2.len() as u64 + 4);
    assert_eq!(
        sorted_rows(&query_csv(&pipe)),
        vec![
            format!("10.1.0.1,10.1.0.2,1111,53,udp,20,{}", 20 * l1),
            format!("10.1.0.3,10.1.0.4,2222,123,udp,10,{}", 10 * l2)
        ]
    );
    assert!(status.contains("sflow exporter 192.0.2.50/0 seq_gaps_forward: 1"), "{status}");
    assert_eq!(counter(&status, "malformed_datagrams"), Some(1), "{status}");
    d.terminate();
}

/// The smallest receive buffer and a burst far faster than a thread wakes up: the kernel drops
/// datagrams at the socket, and xacctd must report exactly as many (SO_RXQ_OVFL) as the kernel
/// counted for the socket, so that every datagram sent is either received or counted dropped.
#[test]
fn kernel_socket_drops_are_counted_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let (d, pipe) = start(dir.path(), &format!("nfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nnfacctd_pipe_size: 1\n"));
    let h = NetflowHeader { version: 5, unix_secs: 1_700_000_000, ..NetflowHeader::default() };
    let recs: Vec<FlowRecord> = (0..30).map(|i| flow("10.0.0.1", "10.0.0.2", 1000 + i, 80, 6, 1, 100)).collect();
    let dgram = encode_v5(&h, &recs);
    let sent = 5_000u64;
    send(port, &vec![dgram.clone(); sent as usize]);
    // SO_RXQ_OVFL arrives with the next datagram the socket queues: one more, after a pause.
    std::thread::sleep(std::time::Duration::from_millis(200));
    send(port, &[dgram]);
    let total = sent + 1;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (received, dropped) = loop {
        let s = client(&xacct_bin(), &pipe, &["-t"]);
        let (r, k) = (counter(&s, "datagrams").unwrap_or(0), counter(&s, "kernel dropped").unwrap_or(0));
        if r + k >= total || std::time::Instant::now() > deadline {
            break (r, k);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // The kernel's own count for the socket (/proc/net/udp, last column).
    let hex_port = format!(":{port:04X} ");
    let udp = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    let kernel: u64 = udp
        .lines()
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|a| a.ends_with(hex_port.trim_end())))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum();
    assert!(dropped > 0, "a 1-byte receive buffer and {sent} datagrams in a burst must overflow");
    assert_eq!((received + dropped, dropped), (total, kernel), "received {received} dropped {dropped}");
    let csv = query_csv(&pipe);
    let packets: u64 = sorted_rows(&csv).iter().filter_map(|r| r.rsplit(',').nth(1)?.parse::<u64>().ok()).sum();
    assert_eq!(packets, received * 30, "{csv}");
    d.terminate();
}
