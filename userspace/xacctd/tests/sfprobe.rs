//! The sfprobe plugin end to end: xacctd reads a pcap with an sfprobe plugin (and a memory
//! plugin as the reference) and sends sFlow v5 to a collector: at rate 1 xacctd's collector
//! and sfacctd 1.7.7 see every packet of the probe's table; at rate 10 the samples are one in
//! ten at random, with the sample pool, the drops and the counter samples right.

mod support;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{counter, free_udp_port, query_csv, start_collector, Daemon};

const AGG: &str = "src_host,dst_host,src_port,dst_port,proto";

/// The generator's mixed traffic without double-tagged frames (sfacctd 1.7.7 accounts nothing
/// for those, and neither does xacctd's sFlow collector) and without IP fragments (a sample of
/// a later fragment stands alone, without the ports the probe's own table gives it from the
/// first fragment); returns the pcap, its packets and their wire bytes.
fn pcap(dir: &Path, n: usize, seed: u64) -> (PathBuf, u64, u64) {
    let frames: Vec<_> = xacct_perf::traffic::mixed(n, n as u64 / 10, seed)
        .into_iter()
        .filter(|f| {
            xacct_wire::decode(xacct_wire::LinkType::Ethernet, &f.data, f.data.len() as u32)
                .is_ok_and(|p| p.vlan_depth < 2 && !p.is_fragment && !matches!(p.l3, xacct_wire::L3::None))
        })
        .collect();
    let bytes = frames.iter().map(|f| f.data.len() as u64).sum();
    let path = dir.join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&path, &frames).expect("pcap");
    (path, frames.len() as u64, bytes)
}

/// Fails with the first differing keys (whole tables are too long to read).
fn assert_same(got: &BTreeMap<String, u64>, want: &BTreeMap<String, u64>) {
    let diff: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: want {v}, got {:?}", got.get(k)))
        .chain(got.keys().filter(|k| !want.contains_key(*k)).map(|k| format!("{k}: not in the probe's table")))
        .take(10)
        .collect();
    assert!(diff.is_empty(), "{} of {} keys differ, e.g.:\n{}", diff.len(), want.len(), diff.join("\n"));
}

fn totals(csv: &str) -> BTreeMap<String, u64> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines.next().unwrap_or_default().split(',').map(|h| h.trim().to_string()).collect();
    let mut out = BTreeMap::new();
    for l in lines {
        let row: BTreeMap<&str, &str> = header.iter().map(String::as_str).zip(l.split(',').map(str::trim)).collect();
        let key = ["SRC_IP", "DST_IP", "SRC_PORT", "DST_PORT", "PROTOCOL"]
            .iter()
            .map(|c| row.get(c).copied().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ");
        *out.entry(key).or_insert(0) += row.get("PACKETS").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    out
}

/// Runs the probe over `pcap` with extra config `lines` (see `support::run_probe`).
fn run_probe(dir: &Path, tag: &str, pcap: &Path, lines: &str) -> (String, String) {
    support::run_probe(dir, tag, pcap, "sfprobe[s]", AGG, lines)
}

#[test]
fn every_packet_reaches_xacctd_s_collector() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Few enough that a burst of one datagram per few packets fits the collector's socket
    // buffer (loopback has no flow control; the probe sends as fast as the pcap is read).
    let (pcap, packets, _) = pcap(dir.path(), 500, 51);
    let port = free_udp_port();
    let (collector, cpipe) =
        start_collector(dir.path(), "col", &format!("sfacctd_ip: 127.0.0.1\nsfacctd_port: {port}\n"), AGG);
    let (probe, log) = run_probe(dir.path(), "probe", &pcap, &format!("sfprobe_receiver[s]: 127.0.0.1:{port}\n"));
    let want = totals(&probe);
    assert_eq!(want.values().sum::<u64>(), packets);
    let t = Instant::now();
    let got = loop {
        let got = totals(&query_csv(&cpipe));
        if got.values().sum::<u64>() >= packets || t.elapsed() > Duration::from_secs(20) {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_same(&got, &want);
    assert_eq!(counter(&log, "sample_pool"), Some(packets), "{log}");
    assert_eq!(counter(&log, "samples_taken"), Some(packets), "{log}");
    assert_eq!(counter(&log, "samples_dropped"), Some(0), "{log}");
    drop(collector);
}

/// At 1 in 50: about a fiftieth of the packets sampled at random, every sample saying rate 50
/// and how many packets the sampler had seen; the counter sample gives every byte.
#[test]
fn sampling_pool_and_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pcap, packets, bytes) = pcap(dir.path(), 20_000, 53);
    let rx = UdpSocket::bind("127.0.0.1:0").expect("receiver");
    rx.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let port = rx.local_addr().expect("addr").port();
    let (_, log) = run_probe(
        dir.path(),
        "probe",
        &pcap,
        &format!("sampling_rate: 50\nsfprobe_receiver[s]: 127.0.0.1:{port}\nsfprobe_agentip[s]: 192.0.2.7\nsfprobe_agentsubid[s]: 1402\n"),
    );
    let (mut flow, mut max_pool, mut octets, mut counters) = (0u64, 0u32, 0u64, 0u32);
    let mut buf = [0u8; 65536];
    while let Ok(n) = rx.recv(&mut buf) {
        let (d, c) = xacct_wire::sflow::decode_datagram(buf.get(..n).unwrap_or_default(), |s| {
            flow += 1;
            assert_eq!(s.sampling_rate, 50);
            assert_eq!(s.drops, 0);
            max_pool = max_pool.max(s.sample_pool);
        })
        .expect("decodes");
        assert_eq!((d.agent, d.sub_agent_id), ("192.0.2.7".parse().unwrap(), 1402));
        counters += c.counter_samples;
        if let Some(o) = in_octets(buf.get(..n).unwrap_or_default()) {
            octets = o;
        }
    }
    // Binomial(packets, 1/50): six standard deviations either side.
    let mean = packets as f64 / 50.0;
    let sd = (packets as f64 * 0.02 * 0.98).sqrt();
    assert!((flow as f64 - mean).abs() < 6.0 * sd, "{flow} samples of {packets} packets");
    assert_eq!(counter(&log, "samples_taken"), Some(flow), "{log}");
    assert!(u64::from(max_pool) > packets - packets / 50, "pool {max_pool} of {packets}");
    assert!(counters >= 1, "a counter sample at shutdown");
    assert_eq!(octets, bytes, "the counter sample's ifInOctets");
}

/// ifInOctets of the generic interface counters in a v5 datagram from an IPv4 agent (the
/// decoder skips counter samples), read by hand from the XDR layout.
fn in_octets(d: &[u8]) -> Option<u64> {
    let u32_at = |o: usize| d.get(o..o + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let samples = u32_at(24)?;
    let mut at = 28;
    let mut found = None;
    for _ in 0..samples {
        let (format, len) = (u32_at(at)?, u32_at(at + 4)? as usize);
        if format == 2 && u32_at(at + 20)? == 1 {
            // seq, source, records; then the first record: format 1, length, ifIndex, ifType,
            // ifSpeed (8), ifDirection, ifStatus, ifInOctets (8).
            let o = at + 8 + 12 + 8 + 24;
            found = d.get(o..o + 8).map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
        }
        at += 8 + len;
    }
    found
}

/// sfacctd 1.7.7 reads the probe's datagrams into the same table.
#[test]
fn sfacctd_reads_the_samples() {
    if Command::new("sfacctd").arg("-V").output().is_err() {
        support::skip("sfacctd is not installed (cargo xtask setup)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (pcap, packets, _) = pcap(dir.path(), 500, 57);
    let port = free_udp_port();
    let out = dir.path().join("sfacctd.csv");
    let conf = dir.path().join("sfacctd.conf");
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\nsfacctd_ip: 127.0.0.1\nsfacctd_port: {port}\nplugins: print[p]\naggregate[p]: {AGG}\n\
             print_output[p]: csv\nprint_output_file[p]: {}\nprint_output_file_append[p]: true\nprint_refresh_time[p]: 1\n",
            out.display()
        ),
    )
    .expect("conf");
    let mut cmd = Command::new("sfacctd");
    cmd.arg("-f").arg(&conf);
    let sfacctd = Daemon::spawn(cmd, &dir.path().join("sfacctd.log"));
    std::thread::sleep(Duration::from_millis(500));
    let (probe, _) = run_probe(dir.path(), "probe", &pcap, &format!("sfprobe_receiver[s]: 127.0.0.1:{port}\n"));
    let want = totals(&probe);
    let t = Instant::now();
    let got = loop {
        let got = totals(&std::fs::read_to_string(&out).unwrap_or_default());
        if got.values().sum::<u64>() >= packets || t.elapsed() > Duration::from_secs(15) {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_same(&got, &want);
    drop(sfacctd);
}

/// Tags travel in pmacct's EX_TAG record: the collector's table by tag equals the probe's.
#[test]
fn tags_travel_in_ex_tag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pcap, _, _) = pcap(dir.path(), 500, 59);
    let map = dir.path().join("pretag.map");
    std::fs::write(&map, "set_tag=100 filter='tcp'\nset_tag=200 filter='udp'\nset_tag=300\n").expect("map");
    let port = free_udp_port();
    let (collector, cpipe) =
        start_collector(dir.path(), "col", &format!("sfacctd_ip: 127.0.0.1\nsfacctd_port: {port}\n"), "tag");
    // Tag and packets: sFlow counts frame bytes (FCS included), the probe's own table IP bytes.
    let tag_packets = |csv: &str| -> Vec<String> {
        support::sorted_rows(csv).iter().map(|r| r.rsplitn(2, ',').nth(1).unwrap_or_default().to_string()).collect()
    };
    let (table, _) = support::run_probe(
        dir.path(),
        "probe",
        &pcap,
        "sfprobe[s]",
        "tag",
        &format!("pre_tag_map: {}\naggregate[s]: tag\nsfprobe_receiver[s]: 127.0.0.1:{port}\n", map.display()),
    );
    let want = tag_packets(&table);
    assert_eq!(want.len(), 3, "{want:?}");
    let t = Instant::now();
    loop {
        let got = tag_packets(&query_csv(&cpipe));
        if got == want {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "collector {got:?} != probe {want:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(collector);
}

/// tshark dissects every sFlow datagram the probe sends with no malformed field or expert
/// error (tags in pmacct's EX_TAG record included).
#[test]
fn tshark_decodes_every_datagram() {
    if Command::new("tshark").arg("-v").output().is_err() {
        support::skip("tshark is not installed (cargo xtask setup)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (pcap, _, _) = pcap(dir.path(), 400, 63);
    let rx = UdpSocket::bind("127.0.0.1:0").expect("receiver");
    rx.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let port = rx.local_addr().expect("addr").port();
    run_probe(dir.path(), "probe", &pcap, &format!("sfprobe_receiver[s]: 127.0.0.1:{port}\naggregate[s]: tag\n"));
    let mut dgrams = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = rx.recv(&mut buf) {
        dgrams.push(buf.get(..n).unwrap_or_default().to_vec());
    }
    assert!(dgrams.len() > 5, "{} datagrams", dgrams.len());
    let out = dir.path().join("export.pcap");
    support::udp_pcap(&out, 6343, &dgrams);
    let (dissected, bad) = support::tshark_check(&out, 6343, "sflow");
    assert_eq!(dissected, dgrams.len());
    assert!(bad.is_empty(), "tshark flags {} frames, e.g. {:?}", bad.len(), bad.first());
}
