//! Daemon lifecycle: final flush on SIGTERM and at the end of a file, -D with a pidfile,
//! SIGUSR1 counters, sampling with renormalisation, flags without a config file, and
//! configuration errors that name file, line and key.

mod support;

use nix::sys::signal::Signal;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{query_csv, savefile_conf, signal, sorted_rows, wait_file, xacctd_bin, Daemon};
use xacct_perf::traffic;

/// `xacctd -f conf`, on UTC: bins and file names follow local time, as in pmacct.
fn start_utc(conf: &Path, log: &Path) -> Daemon {
    let mut cmd = Command::new(xacctd_bin());
    cmd.arg("-f").arg(conf).env("TZ", "UTC");
    Daemon::spawn(cmd, log)
}

/// Sum of one CSV column (by header name) over the rows.
fn csv_sum(csv: &str, col: &str) -> u64 {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let i = header.iter().position(|h| *h == col).unwrap_or_else(|| panic!("no {col} in {header:?}"));
    lines.filter(|l| !l.is_empty()).map(|l| l.split(',').nth(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)).sum()
}

/// IP frames in a generated capture (ARP is never accounted, as in pmacctd).
fn ip_frames(frames: &[traffic::Frame]) -> u64 {
    frames.iter().filter(|f| f.data.get(12..14) != Some(&[0x08, 0x06][..])).count() as u64
}

#[test]
fn sigterm_flushes_print_plugin_and_matches_memory_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("t.pcap");
    let frames = traffic::mixed(20_000, 500, 3);
    traffic::write_pcap(&pcap, &frames).expect("pcap");
    let sock = dir.path().join("m.pipe");
    let out = dir.path().join("out.csv");
    let conf = dir.path().join("x.conf");
    savefile_conf(&conf, &pcap, &format!("pcap_savefile_wait: true\nplugins: memory[m], print[p]\naggregate: src_host,dst_host,proto\nimt_path[m]: {}\nprint_output[p]: csv\nprint_output_file[p]: {}\nprint_refresh_time[p]: 3600\n", sock.display(), out.display()));
    let log = dir.path().join("x.log");
    let mut daemon = start_utc(&conf, &log);
    daemon.wait_log("finished reading", Duration::from_secs(30));
    let mem = query_csv(&sock);
    assert_eq!(csv_sum(&mem, "PACKETS"), ip_frames(&frames));
    assert!(!out.exists(), "print plugin wrote before its refresh time");
    let log = daemon.terminate();
    let printed = std::fs::read_to_string(&out).expect("print output after final flush");
    assert_eq!(sorted_rows(&printed), sorted_rows(&mem), "print's final flush differs from the memory table");
    assert!(log.contains("shutdown complete"), "{log}");
}

#[test]
fn end_of_file_flushes_and_exits_without_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("t.pcap");
    let frames = traffic::mixed(5_000, 300, 4);
    traffic::write_pcap(&pcap, &frames).expect("pcap");
    let out = dir.path().join("out.csv");
    let conf = dir.path().join("x.conf");
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "plugins: print\naggregate: proto\nprint_output: csv\nprint_output_file: {}\nprint_refresh_time: 3600\n",
            out.display()
        ),
    );
    start_utc(&conf, &dir.path().join("x.log")).wait_exit(Duration::from_secs(30));
    let printed = std::fs::read_to_string(&out).expect("print output");
    assert_eq!(csv_sum(&printed, "PACKETS"), ip_frames(&frames));
}

#[test]
fn daemonize_writes_pidfile_and_sigusr1_logs_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("t.pcap");
    traffic::write_pcap(&pcap, &traffic::mixed(3_000, 100, 5)).expect("pcap");
    let sock = dir.path().join("m.pipe");
    let pidfile = dir.path().join("xacctd.pid");
    let logfile = dir.path().join("xacctd.log");
    let conf = dir.path().join("x.conf");
    savefile_conf(
        &conf,
        &pcap,
        &format!("pcap_savefile_wait: true\nlogfile: {}\nimt_path: {}\n", logfile.display(), sock.display()),
    );
    let st = Command::new(xacctd_bin())
        .args(["-D", "-F", pidfile.to_str().expect("utf8"), "-f", conf.to_str().expect("utf8")])
        .status()
        .expect("run xacctd -D");
    assert!(st.success(), "the foreground part of -D must exit 0");
    wait_file(&logfile, "finished reading", Duration::from_secs(30));
    let pid: u32 = std::fs::read_to_string(&pidfile).expect("pidfile").trim().parse().expect("pid");
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "daemon {pid} not running");
    assert!(csv_sum(&query_csv(&sock), "PACKETS") > 0);
    signal(pid, Signal::SIGUSR1);
    wait_file(&logfile, "received 3000 processed 3000", Duration::from_secs(10));
    signal(pid, Signal::SIGTERM);
    let t = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "daemon still running after SIGTERM");
    assert!(!pidfile.exists(), "pidfile left behind");
    assert!(!sock.exists(), "memory socket left behind");
}

#[test]
fn sampling_renormalises_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("t.pcap");
    // One flow, so every sampled packet lands on the same entry.
    let frames = traffic::small64(10_000, 1, 6);
    traffic::write_pcap(&pcap, &frames).expect("pcap");
    for (renorm, want) in [(false, 1_000u64), (true, 10_000u64)] {
        let sock = dir.path().join(format!("s{renorm}.pipe"));
        let conf = dir.path().join(format!("s{renorm}.conf"));
        savefile_conf(&conf, &pcap, &format!("pcap_savefile_wait: true\nworkers: 1\nsampling_rate: 10\npmacctd_renormalize: {renorm}\naggregate: src_host\nimt_path: {}\n", sock.display()));
        let log = dir.path().join(format!("s{renorm}.log"));
        let mut daemon = start_utc(&conf, &log);
        daemon.wait_log("finished reading", Duration::from_secs(30));
        let csv = query_csv(&sock);
        assert_eq!(csv_sum(&csv, "PACKETS"), want, "renormalize={renorm}:\n{csv}");
        assert_eq!(csv_sum(&csv, "BYTES"), want * 40, "renormalize={renorm}: 40-byte IP packets");
        daemon.terminate();
    }
}

#[test]
fn pmacctd_flags_work_without_a_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("t.pcap");
    let frames = traffic::mixed(2_000, 100, 8);
    traffic::write_pcap(&pcap, &frames).expect("pcap");
    // -I file -c aggregate -P plugins -p socket, no -f.
    let sock = dir.path().join("f.pipe");
    let log = dir.path().join("f.log");
    let mut cmd = Command::new(xacctd_bin());
    cmd.args(["-I", pcap.to_str().expect("utf8"), "-c", "proto", "-P", "memory", "-p", sock.to_str().expect("utf8")]);
    let daemon = Daemon::spawn(cmd, &log);
    // Without pcap_savefile_wait the daemon exits at the end of the file; the table is gone
    // then, so this only checks it ran the whole file and exited cleanly.
    let log = daemon.wait_exit(Duration::from_secs(30));
    assert!(log.contains(&format!("received {}", frames.len())), "{log}");
    assert!(log.contains("aggregate proto"), "{log}");
}

#[test]
fn bad_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, "daemonize: false\n! comment\naggregate: src_host,dst_hots\n").expect("conf");
    let out = Command::new(xacctd_bin()).arg("-f").arg(&conf).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3: aggregate", conf.display())), "{err}");
    assert!(err.contains("dst_hots"), "{err}");
}

#[test]
fn print_history_bins_go_to_their_own_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("t.pcap");
    // 1_700_000_000 is 22:13:20 UTC: packets at +0 s, +50 s, +70 s and +130 s fall into the
    // 22:13, 22:14 and 22:15 one-minute bins (1, 2 and 1 packets).
    let base = traffic::small64(4, 1, 9);
    let frames: Vec<traffic::Frame> = base
        .into_iter()
        .zip([0i64, 50, 70, 130])
        .map(|(mut f, dt)| {
            f.ts_sec = 1_700_000_000 + dt;
            f
        })
        .collect();
    traffic::write_pcap(&pcap, &frames).expect("pcap");
    let conf = dir.path().join("h.conf");
    let pattern = dir.path().join("out-%H%M.json");
    savefile_conf(&conf, &pcap, &format!("plugins: print\naggregate: src_host\nprint_output: json\nprint_output_file: {}\nprint_history: 1m\nprint_history_roundoff: m\nprint_refresh_time: 3600\n", pattern.display()));
    let log = start_utc(&conf, &dir.path().join("h.log")).wait_exit(Duration::from_secs(30));
    for (name, packets, stamp) in [
        ("out-2213.json", 1, "2023-11-14 22:13:00"),
        ("out-2214.json", 2, "2023-11-14 22:14:00"),
        ("out-2215.json", 1, "2023-11-14 22:15:00"),
    ] {
        let body = std::fs::read_to_string(dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}; log: {log}"));
        let v: serde_json::Value = serde_json::from_str(body.lines().next().expect("one line")).expect("json");
        assert_eq!(v["packets"], packets, "{name}: {body}");
        assert_eq!(v["stamp_inserted"], stamp, "{name}: {body}");
    }
}
