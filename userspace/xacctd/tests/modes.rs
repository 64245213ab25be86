//! Which daemon xacctd runs as: started under the name of a symlink (nfacctd, sfacctd,
//! pmacctd), with `--mode`, or as the configuration's keys say; a collector's configuration
//! never captures on a default interface, and a pmacctd configuration still captures.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;
use xacct_wire::netflow::{encode_v5, FlowRecord, NetflowHeader};

/// One NetFlow v5 datagram of two flows from 10.1.0.1 and 10.1.0.2 (10 + 5 packets).
fn v5() -> Vec<u8> {
    let h = NetflowHeader { version: 5, unix_secs: 1_700_000_000, ..NetflowHeader::default() };
    let f = |src: &str, packets| FlowRecord {
        src_addr: src.parse().expect("ip"),
        dst_addr: "10.2.0.1".parse().expect("ip"),
        proto: 17,
        packets,
        bytes: packets * 100,
        ..FlowRecord::default()
    };
    encode_v5(&h, &[f("10.1.0.1", 10), f("10.1.0.2", 5)])
}

/// An sFlow v5 datagram with one sample of a UDP packet from 10.3.0.1.
fn sflow() -> Vec<u8> {
    use xacct_perf::traffic::{build, L3, L4};
    let frame = build(&spec(
        vec![],
        L3::V4 { src: [10, 3, 0, 1], dst: [10, 2, 0, 1], tos: 0 },
        L4::Udp { sport: 5, dport: 53 },
        10,
    ));
    let mut d = xacct_wire::sflow::DatagramBuilder::new("127.0.0.1".parse().expect("ip"), 0, 1, 1000);
    d.flow_sample(&xacct_wire::sflow::FlowSampleSpec::ethernet(1, &frame));
    d.finish()
}

/// A config of one memory plugin `src_host` on `pipe`, plus `lines`.
fn conf(dir: &Path, lines: &str) -> (PathBuf, PathBuf) {
    let pipe = dir.join("m.pipe");
    let conf = dir.join("x.conf");
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\n{lines}plugins: memory[m]\naggregate[m]: src_host\nimt_path[m]: {}\n",
            pipe.display()
        ),
    )
    .expect("write conf");
    (conf, pipe)
}

/// Waits for the memory table to hold `want` (sorted CSV rows without header).
fn wait_rows(pipe: &Path, want: &[&str]) {
    let t = std::time::Instant::now();
    loop {
        let rows = try_client(&xacct_bin(), pipe, &SUMMARY_CSV).map(|s| sorted_rows(&s)).unwrap_or_default();
        if rows == want {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "table {rows:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `xacctd` under another name: a symlink `name` in `dir`.
fn linked(dir: &Path, name: &str) -> Command {
    let link = dir.join(name);
    std::os::unix::fs::symlink(xacctd_bin(), &link).expect("symlink");
    Command::new(link)
}

#[test]
fn started_as_nfacctd_it_collects_with_nfacctd_flags_and_captures_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let port = free_udp_port();
    // No collector key at all: the name decides. -l is nfacctd's port, -L its address.
    let (conf, pipe) = conf(dir, "");
    let mut cmd = linked(dir, "nfacctd");
    cmd.arg("-f").arg(&conf).args(["-L", "127.0.0.1", "-l", &port.to_string()]);
    let mut d = Daemon::spawn(cmd, &dir.join("nf.log"));
    d.wait_log("listening:", Duration::from_secs(20));
    send_udp(port, &[v5()]);
    wait_rows(&pipe, &["10.1.0.1,10,1000", "10.1.0.2,5,500"]);
    let log = d.terminate();
    assert!(log.contains("mode nfacctd: started as nfacctd"), "{log}");
    assert!(log.contains(&format!("netflow collector udp 127.0.0.1:{port}")), "{log}");
    assert!(!log.contains("capturing from"), "a collector must not capture:\n{log}");
}

#[test]
fn started_as_sfacctd_or_with_mode_flags() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let port = free_udp_port();
    let (plain, pipe) = conf(dir, "");
    let mut cmd = linked(dir, "sfacctd");
    cmd.arg("-f").arg(&plain).args(["-L", "127.0.0.1", "-l", &port.to_string()]);
    let mut d = Daemon::spawn(cmd, &dir.join("sf.log"));
    d.wait_log("listening:", Duration::from_secs(20));
    send_udp(port, &[sflow()]);
    wait_rows(&pipe, &["10.3.0.1,1,64"]);
    let log = d.terminate();
    assert!(log.contains("mode sfacctd: started as sfacctd"), "{log}");
    assert!(!log.contains("capturing from"), "{log}");

    // xacctd --mode nfacctd: the flag decides, the port comes from the config.
    let port = free_udp_port();
    let (flagged, pipe) = conf(dir, &format!("nfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\n"));
    let mut cmd = Command::new(xacctd_bin());
    cmd.args(["--mode", "nfacctd", "-f"]).arg(&flagged);
    let mut d = Daemon::spawn(cmd, &dir.join("flag.log"));
    d.wait_log("listening:", Duration::from_secs(20));
    send_udp(port, &[v5()]);
    wait_rows(&pipe, &["10.1.0.1,10,1000", "10.1.0.2,5,500"]);
    let log = d.terminate();
    assert!(log.contains("mode nfacctd: --mode nfacctd"), "{log}");

    // --mode names nfacctd, but the config names an interface: refused, naming the line.
    let (bad, _) = conf(dir, "pcap_interface: lo\n");
    let out = Command::new(xacctd_bin()).args(["--mode", "nfacctd", "-f"]).arg(&bad).output().expect("run xacctd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("{}:2: pcap_interface: xacctd runs as nfacctd here", bad.display())), "{err}");
    // An unknown mode and -l without a collector mode are command-line errors.
    let out = Command::new(xacctd_bin()).args(["--mode", "uacctd"]).output().expect("run xacctd");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected pmacctd, nfacctd or sfacctd"));
    let out = Command::new(xacctd_bin()).args(["-l", "2100"]).output().expect("run xacctd");
    assert_eq!(out.status.code(), Some(2));
    // --help documents the modes.
    let out = Command::new(xacctd_bin()).arg("--help").output().expect("run xacctd");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--mode") && help.contains("2100 / 6343"), "{help}");
}

#[test]
fn pmacctd_configs_still_capture_also_started_as_pmacctd() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let pcap = dir.join("t.pcap");
    let frames: Vec<_> = (1..=3u8)
        .map(|i| xacct_perf::traffic::Frame {
            ts_sec: 1_700_000_000,
            ts_usec: 0,
            data: xacct_perf::traffic::build(&spec(
                vec![],
                xacct_perf::traffic::L3::V4 { src: [10, 9, 0, i], dst: [10, 2, 0, 1], tos: 0 },
                xacct_perf::traffic::L4::Udp { sport: 5, dport: 53 },
                10,
            )),
        })
        .collect();
    xacct_perf::traffic::write_pcap(&pcap, &frames).expect("pcap");
    for name in ["xacctd", "pmacctd"] {
        let sub = dir.join(name);
        std::fs::create_dir(&sub).expect("subdir");
        let (file_conf, _) = conf(&sub, &format!("pcap_savefile: {}\n", pcap.display()));
        let mut cmd = if name == "xacctd" { Command::new(xacctd_bin()) } else { linked(&sub, "pmacctd") };
        cmd.arg("-f").arg(&file_conf);
        let log = Daemon::spawn(cmd, &sub.join("x.log")).wait_exit(Duration::from_secs(20));
        let why = if name == "xacctd" {
            format!("mode pmacctd: the config sets pcap_savefile ({}:2)", file_conf.display())
        } else {
            "mode pmacctd: started as pmacctd".to_string()
        };
        assert!(log.contains(&why), "{log}");
        assert!(log.contains("finished reading") && !log.contains("listening:"), "{log}");
    }
}

#[test]
fn an_interface_and_collector_keys_run_both() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let pcap = dir.join("t.pcap");
    let frame = xacct_perf::traffic::build(&spec(
        vec![],
        xacct_perf::traffic::L3::V4 { src: [10, 9, 0, 9], dst: [10, 2, 0, 1], tos: 0 },
        xacct_perf::traffic::L4::Udp { sport: 5, dport: 53 },
        10,
    ));
    xacct_perf::traffic::write_pcap(
        &pcap,
        &[xacct_perf::traffic::Frame { ts_sec: 1_700_000_000, ts_usec: 0, data: frame }],
    )
    .expect("pcap");
    let port = free_udp_port();
    let (conf, pipe) =
        conf(dir, &format!("pcap_savefile: {}\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\n", pcap.display()));
    let mut d = Daemon::start(&conf, &dir.join("x.log"));
    d.wait_log("listening:", Duration::from_secs(20));
    d.wait_log("finished reading", Duration::from_secs(20));
    send_udp(port, &[v5()]);
    wait_rows(&pipe, &["10.1.0.1,10,1000", "10.1.0.2,5,500", "10.9.0.9,1,38"]);
    let log = d.terminate();
    assert!(
        log.contains("mode pmacctd: the config sets pcap_savefile")
            && log.contains("mode nfacctd: the config sets nfacctd_ip"),
        "{log}"
    );
}
