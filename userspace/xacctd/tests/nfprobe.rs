//! The nfprobe plugin end to end: xacctd reads a pcap with an nfprobe plugin (and a memory
//! plugin as the reference), exports NetFlow v5, v9 or IPFIX to a collector, and the
//! collector's table must equal the probe's own, flow for flow: xacctd's collector, and
//! Debian's nfacctd 1.7.7 where installed.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{client, counter, free_udp_port, query_csv, start_collector, xacct_bin, Daemon};

const AGG: &str = "src_host,dst_host,src_port,dst_port,proto";

/// key columns → (packets, bytes), from `xacct -s -O csv`-shaped text (or nfacctd's print
/// CSV, whose columns are named the same).
fn totals(csv: &str, keep: impl Fn(&BTreeMap<String, String>) -> bool) -> BTreeMap<String, (u64, u64)> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines.next().unwrap_or_default().split(',').map(|h| h.trim().to_string()).collect();
    let mut out = BTreeMap::new();
    for l in lines {
        let row: BTreeMap<String, String> =
            header.iter().cloned().zip(l.split(',').map(|v| v.trim().to_string())).collect();
        if !keep(&row) {
            continue;
        }
        let key = ["SRC_IP", "DST_IP", "SRC_PORT", "DST_PORT", "PROTOCOL"]
            .iter()
            .map(|c| row.get(*c).cloned().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ");
        let n = |c: &str| row.get(c).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let e = out.entry(key).or_insert((0, 0));
        e.0 += n("PACKETS");
        e.1 += n("BYTES");
    }
    out
}

fn v4_only(row: &BTreeMap<String, String>) -> bool {
    !row.get("SRC_IP").is_some_and(|a| a.contains(':'))
}

/// Runs the probe over `pcap` with `nfprobe` lines for plugin `n` (see `support::run_probe`).
fn run_probe(dir: &Path, tag: &str, pcap: &Path, nfprobe: &str) -> (String, String) {
    support::run_probe(dir, tag, pcap, "nfprobe[n]", AGG, nfprobe)
}

fn wait_packets(pipe: &Path, want: u64) -> String {
    let t = Instant::now();
    loop {
        let csv = query_csv(pipe);
        let have: u64 = totals(&csv, |_| true).values().map(|v| v.0).sum();
        if have >= want {
            return csv;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "collector has {have} of {want} packets:\n{csv}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn round_trip(version: u16) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(20_000, 1_500, 41)).expect("pcap");
    let port = free_udp_port();
    let (collector, cpipe) =
        start_collector(dir.path(), "col", &format!("nfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\n"), AGG);
    let (probe_table, log) = run_probe(
        dir.path(),
        "probe",
        &pcap,
        &format!("nfprobe_receiver[n]: 127.0.0.1:{port}\nnfprobe_version[n]: {version}\n"),
    );
    let keep = |row: &BTreeMap<String, String>| version != 5 || v4_only(row);
    let want = totals(&probe_table, keep);
    assert!(want.len() > 500, "{} flows", want.len());
    let packets: u64 = want.values().map(|v| v.0).sum();
    let got = totals(&wait_packets(&cpipe, packets), |_| true);
    assert_eq!(got, want, "collector table != probe table (v{version})");
    // The exporter's counters say what went out and why.
    assert_eq!(counter(&log, "send_errors"), Some(0), "{log}");
    assert!(counter(&log, "flows_exported").is_some_and(|n| n >= want.len() as u64), "{log}");
    assert!(counter(&log, "expired_shutdown").is_some_and(|n| n > 0), "{log}");
    if version == 5 {
        assert!(counter(&log, "flows_unexportable").is_some_and(|n| n > 0), "IPv6 flows: {log}");
    }
    let status = client(&xacct_bin(), &cpipe, &["-t"]);
    assert_eq!(counter(&status, "datagrams_malformed").unwrap_or(0), 0, "{status}");
    drop(collector);
}

#[test]
fn netflow_v5_round_trip() {
    round_trip(5);
}

#[test]
fn netflow_v9_round_trip() {
    round_trip(9);
}

#[test]
fn ipfix_round_trip() {
    round_trip(10);
}

/// nfacctd 1.7.7 reads what the probe sends: its print table equals the probe's own.
#[test]
fn nfacctd_reads_the_export() {
    if Command::new("nfacctd").arg("-V").output().is_err() {
        support::skip("nfacctd is not installed (cargo xtask setup)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(10_000, 800, 43)).expect("pcap");
    for version in [5u16, 9, 10] {
        let port = free_udp_port();
        let out = dir.path().join(format!("nfacctd{version}.csv"));
        let conf = dir.path().join(format!("nfacctd{version}.conf"));
        std::fs::write(
            &conf,
            format!(
                "daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nplugins: print[p]\naggregate[p]: {AGG}\n\
                 print_output[p]: csv\nprint_output_file[p]: {}\nprint_output_file_append[p]: true\n\
                 print_refresh_time[p]: 1\n",
                out.display()
            ),
        )
        .expect("conf");
        let mut cmd = Command::new("nfacctd");
        cmd.arg("-f").arg(&conf);
        let nfacctd = Daemon::spawn(cmd, &dir.path().join(format!("nfacctd{version}.log")));
        std::thread::sleep(Duration::from_millis(500));
        let (probe_table, _) = run_probe(
            dir.path(),
            &format!("probe{version}"),
            &pcap,
            &format!("nfprobe_receiver[n]: 127.0.0.1:{port}\nnfprobe_version[n]: {version}\n"),
        );
        let keep = |row: &BTreeMap<String, String>| version != 5 || v4_only(row);
        let want = totals(&probe_table, keep);
        let packets: u64 = want.values().map(|v| v.0).sum();
        // nfacctd's print plugin appends what it got each second.
        let t = Instant::now();
        let got = loop {
            let csv = std::fs::read_to_string(&out).unwrap_or_default();
            let got = totals(&csv, |_| true);
            if got.values().map(|v| v.0).sum::<u64>() >= packets || t.elapsed() > Duration::from_secs(15) {
                break got;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(got, want, "nfacctd's table != probe table (v{version})");
        drop(nfacctd);
    }
}

/// With `sampling_rate: 10` the probe tells collectors (v5 header; v9/IPFIX sampling options
/// and flowSamplerID): xacctd's collector with `nfacctd_renormalize` gives ten times the
/// probe's (sampled) table.
#[test]
fn sampling_rate_is_announced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(20_000, 1_000, 47)).expect("pcap");
    for version in [5u16, 9, 10] {
        let port = free_udp_port();
        let (collector, cpipe) = start_collector(
            dir.path(),
            &format!("col{version}"),
            &format!("nfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nnfacctd_renormalize: true\n"),
            AGG,
        );
        let (probe_table, _) = run_probe(
            dir.path(),
            &format!("probe{version}"),
            &pcap,
            &format!("sampling_rate: 10\nnfprobe_receiver[n]: 127.0.0.1:{port}\nnfprobe_version[n]: {version}\n"),
        );
        let keep = |row: &BTreeMap<String, String>| version != 5 || v4_only(row);
        let want: BTreeMap<String, (u64, u64)> =
            totals(&probe_table, keep).into_iter().map(|(k, (p, b))| (k, (p * 10, b * 10))).collect();
        let packets: u64 = want.values().map(|v| v.0).sum();
        assert!(packets > 10_000, "{packets}");
        let got = totals(&wait_packets(&cpipe, packets), |_| true);
        assert_eq!(got, want, "renormalised collector table != 10 x probe table (v{version})");
        drop(collector);
    }
}

/// Timeouts on the data's clock: a pcap (replayed in far less than its 100 seconds) whose
/// flows pause longer than their idle timeout, end with FIN or RST and go on, or outlive
/// maxlife, gives one record per flow lifetime, as it would have live.
#[test]
fn timeouts_split_flows_by_the_data_s_clock() {
    use xacct_perf::traffic::{build, Frame, FrameSpec, L3, L4};
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = 1_700_000_000i64;
    let frame = |t: i64, l4: L4| Frame {
        ts_sec: t0 + t,
        ts_usec: 0,
        data: build(&FrameSpec {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            vlans: vec![],
            l3: L3::V4 { src: [10, 1, 1, 1], dst: [10, 2, 2, 2], tos: 0 },
            l4,
            payload: 20,
        }),
    };
    let udp = |sport| L4::Udp { sport, dport: 53 };
    let tcp = |sport, flags| L4::Tcp { sport, dport: 80, flags };
    let mut frames = vec![
        // UDP, idle 30 s: 3 packets, a 98 s pause, 2 packets.
        frame(0, udp(1000)),
        frame(1, udp(1000)),
        frame(2, udp(1000)),
        frame(100, udp(1000)),
        frame(101, udp(1000)),
        // TCP ended by FIN (tcp.fin 10 s), then one late packet.
        frame(0, tcp(2000, 0x02)),
        frame(1, tcp(2000, 0x10)),
        frame(2, tcp(2000, 0x11)),
        frame(50, tcp(2000, 0x10)),
        // TCP reset (tcp.rst 5 s), then one late packet.
        frame(0, tcp(3000, 0x02)),
        frame(1, tcp(3000, 0x04)),
        frame(20, tcp(3000, 0x10)),
    ];
    // UDP every 5 s for 100 s: never idle, but maxlife is 40 s.
    frames.extend((0..20).map(|i| frame(5 * i, udp(4000))));
    frames.sort_by_key(|f| f.ts_sec);
    let pcap = dir.path().join("timeouts.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &frames).expect("pcap");
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("receiver");
    rx.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let port = rx.local_addr().expect("addr").port();
    run_probe(
        dir.path(),
        "probe",
        &pcap,
        &format!(
            "nfprobe_receiver[n]: 127.0.0.1:{port}\nnfprobe_version[n]: 10\n\
             nfprobe_timeouts[n]: udp=30:tcp.fin=10:tcp.rst=5:maxlife=40:expint=5\n"
        ),
    );
    let mut records: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    for r in support::netflow_records(&rx) {
        records.entry(r.src_port).or_default().push(r.packets);
    }
    for v in records.values_mut() {
        v.sort();
    }
    assert_eq!(records.get(&1000), Some(&vec![2, 3]), "{records:?}");
    assert_eq!(records.get(&2000), Some(&vec![1, 3]), "{records:?}");
    assert_eq!(records.get(&3000), Some(&vec![1, 2]), "{records:?}");
    let long = records.get(&4000).cloned().unwrap_or_default();
    assert_eq!(long.iter().sum::<u64>(), 20, "{records:?}");
    assert_eq!(long.len(), 3, "100 s of a flow with maxlife 40 s: {records:?}");
}

/// tshark dissects every exported datagram (v5, v9, IPFIX) as NetFlow/IPFIX with no malformed
/// field or expert error.
#[test]
fn tshark_decodes_every_datagram() {
    if Command::new("tshark").arg("-v").output().is_err() {
        support::skip("tshark is not installed (cargo xtask setup)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(5_000, 400, 61)).expect("pcap");
    for version in [5u16, 9, 10] {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("receiver");
        rx.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let port = rx.local_addr().expect("addr").port();
        run_probe(
            dir.path(),
            &format!("probe{version}"),
            &pcap,
            &format!("nfprobe_receiver[n]: 127.0.0.1:{port}\nnfprobe_version[n]: {version}\naggregate[n]: src_host,dst_host,src_port,dst_port,proto,tos,src_mac,dst_mac,vlan,tag\n"),
        );
        let mut dgrams = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = rx.recv(&mut buf) {
            dgrams.push(buf.get(..n).unwrap_or_default().to_vec());
        }
        assert!(dgrams.len() > 5, "v{version}: {} datagrams", dgrams.len());
        let out = dir.path().join(format!("export{version}.pcap"));
        support::udp_pcap(&out, 2055, &dgrams);
        let (dissected, bad) = support::tshark_check(&out, 2055, "cflow");
        assert_eq!(dissected, dgrams.len(), "v{version}");
        assert!(bad.is_empty(), "v{version}: tshark flags {} frames, e.g. {:?}", bad.len(), bad.first());
    }
}

/// nfdump (nfcapd 1.7) stores the v9 and IPFIX streams and reads back every packet, per
/// address pair as the probe's own table has them.
#[test]
fn nfdump_reads_v9_and_ipfix() {
    if Command::new("nfcapd").arg("-V").output().is_err() {
        support::skip("nfdump is not installed (cargo xtask setup)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("mixed.pcap");
    xacct_perf::traffic::write_pcap(&pcap, &xacct_perf::traffic::mixed(5_000, 400, 67)).expect("pcap");
    for version in [9u16, 10] {
        let flows = dir.path().join(format!("flows{version}"));
        std::fs::create_dir_all(&flows).expect("flow dir");
        let port = free_udp_port();
        let mut cmd = Command::new("nfcapd");
        cmd.args(["-b", "127.0.0.1", "-p", &port.to_string(), "-t", "3600", "-w"]).arg(&flows);
        let nfcapd = support::Daemon::spawn(cmd, &dir.path().join(format!("nfcapd{version}.log")));
        std::thread::sleep(Duration::from_millis(500));
        let (probe_table, _) = run_probe(
            dir.path(),
            &format!("probe{version}"),
            &pcap,
            &format!("nfprobe_receiver[n]: 127.0.0.1:{port}\nnfprobe_version[n]: {version}\n"),
        );
        std::thread::sleep(Duration::from_millis(500));
        // SIGTERM: nfcapd closes its current file under its final name.
        nfcapd.terminate();
        let out = Command::new("nfdump")
            .args(["-q", "-N", "-o", "fmt:%sa|%da|%pkt|%byt", "-R"])
            .arg(&flows)
            .output()
            .expect("run nfdump");
        assert!(out.status.success(), "nfdump: {}", String::from_utf8_lossy(&out.stderr));
        let mut got: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            if let [sa, da, pkt, byt] = f[..] {
                let e = got.entry(format!("{sa} {da}")).or_default();
                e.0 += pkt.parse::<u64>().unwrap_or(0);
                e.1 += byt.parse::<u64>().unwrap_or(0);
            }
        }
        let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (k, v) in totals(&probe_table, |_| true) {
            let mut it = k.split(' ');
            let e = want.entry(format!("{} {}", it.next().unwrap_or(""), it.next().unwrap_or(""))).or_default();
            e.0 += v.0;
            e.1 += v.1;
        }
        assert!(want.len() > 100, "{}", want.len());
        assert_eq!(got, want, "nfdump's flows != probe table (v{version})");
    }
}
