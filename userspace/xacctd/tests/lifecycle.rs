//! Daemon lifecycle: final flush on SIGTERM and at the end of a file, -D with a pidfile,
//! SIGUSR1 counters, sampling with renormalisation, flags without a config file, and
//! configuration errors that name file, line and key.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xacct_perf::traffic;

fn xacctd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xacctd"))
}

fn xacct() -> PathBuf {
    xacctd().with_file_name("xacct")
}

fn wait_for(path: &Path, needle: &str, timeout: Duration) -> String {
    let t = Instant::now();
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if s.contains(needle) {
            return s;
        }
        assert!(t.elapsed() < timeout, "timed out waiting for '{needle}' in {}:\n{s}", path.display());
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if t.elapsed() > timeout {
            let _ = child.kill();
            panic!("daemon did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().expect("kill").success());
}

fn spawn(conf: &Path, log: &Path, args: &[&str]) -> Child {
    Command::new(xacctd())
        .args(args)
        .arg("-f")
        .arg(conf)
        // Bins and file names follow local time, as in pmacct: pin it.
        .env("TZ", "UTC")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("spawn xacctd")
}

fn client(args: &[&str]) -> String {
    let out = Command::new(xacct()).args(args).output().expect("xacct");
    assert!(out.status.success(), "xacct {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8")
}

/// Sum of one CSV column (by header name) over the rows.
fn csv_sum(csv: &str, col: &str) -> u64 {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let i = header.iter().position(|h| *h == col).unwrap_or_else(|| panic!("no {col} in {header:?}"));
    lines.filter(|l| !l.is_empty()).map(|l| l.split(',').nth(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)).sum()
}

fn sorted_rows(csv: &str) -> Vec<String> {
    let mut v: Vec<String> = csv.lines().skip(1).filter(|l| !l.is_empty()).map(str::to_string).collect();
    v.sort();
    v
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
    std::fs::write(
        &conf,
        format!(
            "pcap_savefile: {}\npcap_savefile_wait: true\nplugins: memory[m], print[p]\naggregate: src_host,dst_host,proto\nimt_path[m]: {}\nprint_output[p]: csv\nprint_output_file[p]: {}\nprint_refresh_time[p]: 3600\n",
            pcap.display(),
            sock.display(),
            out.display()
        ),
    )
    .expect("conf");
    let log = dir.path().join("x.log");
    let mut child = spawn(&conf, &log, &[]);
    wait_for(&log, "finished reading", Duration::from_secs(30));
    let mem = client(&["-p", sock.to_str().expect("utf8"), "-s", "-O", "csv"]);
    assert_eq!(csv_sum(&mem, "PACKETS"), ip_frames(&frames));
    assert!(!out.exists(), "print plugin wrote before its refresh time");
    signal(child.id(), "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    let printed = std::fs::read_to_string(&out).expect("print output after final flush");
    assert_eq!(sorted_rows(&printed), sorted_rows(&mem), "print's final flush differs from the memory table");
    let log = std::fs::read_to_string(&log).expect("log");
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
    std::fs::write(
        &conf,
        format!(
            "pcap_savefile: {}\nplugins: print\naggregate: proto\nprint_output: csv\nprint_output_file: {}\nprint_refresh_time: 3600\n",
            pcap.display(),
            out.display()
        ),
    )
    .expect("conf");
    let log = dir.path().join("x.log");
    let mut child = spawn(&conf, &log, &[]);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
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
    std::fs::write(
        &conf,
        format!(
            "pcap_savefile: {}\npcap_savefile_wait: true\nlogfile: {}\nimt_path: {}\n",
            pcap.display(),
            logfile.display(),
            sock.display()
        ),
    )
    .expect("conf");
    let st = Command::new(xacctd())
        .args(["-D", "-F", pidfile.to_str().expect("utf8"), "-f", conf.to_str().expect("utf8")])
        .status()
        .expect("run xacctd -D");
    assert!(st.success(), "the foreground part of -D must exit 0");
    wait_for(&logfile, "finished reading", Duration::from_secs(30));
    let pid: u32 = std::fs::read_to_string(&pidfile).expect("pidfile").trim().parse().expect("pid");
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "daemon {pid} not running");
    assert!(csv_sum(&client(&["-p", sock.to_str().expect("utf8"), "-s", "-O", "csv"]), "PACKETS") > 0);
    signal(pid, "USR1");
    wait_for(&logfile, "received 3000 processed 3000", Duration::from_secs(10));
    signal(pid, "TERM");
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
        std::fs::write(
            &conf,
            format!(
                "pcap_savefile: {}\npcap_savefile_wait: true\nworkers: 1\nsampling_rate: 10\npmacctd_renormalize: {renorm}\naggregate: src_host\nimt_path: {}\n",
                pcap.display(),
                sock.display()
            ),
        )
        .expect("conf");
        let log = dir.path().join(format!("s{renorm}.log"));
        let mut child = spawn(&conf, &log, &[]);
        wait_for(&log, "finished reading", Duration::from_secs(30));
        let csv = client(&["-p", sock.to_str().expect("utf8"), "-s", "-O", "csv"]);
        assert_eq!(csv_sum(&csv, "PACKETS"), want, "renormalize={renorm}:\n{csv}");
        assert_eq!(csv_sum(&csv, "BYTES"), want * 40, "renormalize={renorm}: 40-byte IP packets");
        signal(child.id(), "TERM");
        assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
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
    let mut child = Command::new(xacctd())
        .args(["-I", pcap.to_str().expect("utf8"), "-c", "proto", "-P", "memory", "-p", sock.to_str().expect("utf8")])
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn");
    // Without pcap_savefile_wait the daemon exits at the end of the file; the table is gone
    // then, so this only checks it ran the whole file and exited cleanly.
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    let log = std::fs::read_to_string(&log).expect("log");
    assert!(log.contains(&format!("received {}", frames.len())), "{log}");
    assert!(log.contains("aggregate proto"), "{log}");
}

#[test]
fn bad_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, "daemonize: false\n! comment\naggregate: src_host,dst_hots\n").expect("conf");
    let out = Command::new(xacctd()).arg("-f").arg(&conf).output().expect("run");
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
    std::fs::write(
        &conf,
        format!(
            "pcap_savefile: {}\nplugins: print\naggregate: src_host\nprint_output: json\nprint_output_file: {}\nprint_history: 1m\nprint_history_roundoff: m\nprint_refresh_time: 3600\n",
            pcap.display(),
            pattern.display()
        ),
    )
    .expect("conf");
    let log = dir.path().join("h.log");
    let mut child = spawn(&conf, &log, &[]);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    for (name, packets, stamp) in [("out-2213.json", 1, "2023-11-14 22:13:00"), ("out-2214.json", 2, "2023-11-14 22:14:00"), ("out-2215.json", 1, "2023-11-14 22:15:00")] {
        let body = std::fs::read_to_string(dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}; log: {}", std::fs::read_to_string(&log).unwrap_or_default()));
        let v: serde_json::Value = serde_json::from_str(body.lines().next().expect("one line")).expect("json");
        assert_eq!(v["packets"], packets, "{name}: {body}");
        assert_eq!(v["stamp_inserted"], stamp, "{name}: {body}");
    }
}
