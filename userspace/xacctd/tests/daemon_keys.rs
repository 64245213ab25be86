//! Daemon-wide pmacct keys, end to end: syslog, files_umask/files_uid/files_gid,
//! proc_priority, core_proc_name, plugin_exit_any, maps_refresh (SIGUSR2),
//! pcap_savefile_delay, pmacctd_time_new.

mod support;

use nix::sys::signal::Signal;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;
use xacct_perf::traffic::{build, write_pcap, Frame, L3, L4};

/// A pcap of `n` UDP packets from 10.9.0.1 to 10.2.0.1 at `ts`.
fn pcap(dir: &Path, n: usize, ts: i64) -> PathBuf {
    let s =
        spec(vec![], L3::V4 { src: [10, 9, 0, 1], dst: [10, 2, 0, 1], tos: 0 }, L4::Udp { sport: 5, dport: 53 }, 10);
    let frames: Vec<Frame> = (0..n).map(|_| Frame { ts_sec: ts, ts_usec: 0, data: build(&s) }).collect();
    let p = dir.join("t.pcap");
    write_pcap(&p, &frames).expect("pcap");
    p
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn syslog_gets_the_log_lines_with_facility_and_severity() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let sock_path = dir.join("dev-log");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind a syslog socket");
    sock.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let pcap = pcap(dir, 1, 1_700_000_000);
    for (how, pri) in [("syslog: local3\n", 19 * 8 + 6), ("", 3 * 8 + 6)] {
        let conf = dir.join("x.conf");
        savefile_conf(
            &conf,
            &pcap,
            &format!("{how}plugins: memory[m]\nimt_path[m]: {}\n", dir.join("m.pipe").display()),
        );
        let mut cmd = Command::new(xacctd_bin());
        cmd.env("XACCT_SYSLOG_SOCKET", &sock_path).arg("-f").arg(&conf);
        if how.is_empty() {
            cmd.args(["-S", "daemon"]);
        }
        // Read while the daemon runs, as a syslog daemon does.
        let (got, stderr) = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(20) {
                    if let Ok(n) = sock.recv(&mut buf) {
                        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let done = m.contains("shutdown complete");
                        got.push(m);
                        if done {
                            break;
                        }
                    }
                }
                got
            });
            let stderr = Daemon::spawn(cmd, &dir.join("x.log")).wait_exit(Duration::from_secs(20));
            (reader.join().expect("reader"), stderr)
        });
        let start = got.iter().find(|m| m.contains("xacctd 0.1.0 starting")).unwrap_or_else(|| panic!("{got:?}"));
        assert!(start.starts_with(&format!("<{pri}>xacctd[")), "{start}");
        assert!(got.iter().any(|m| m.contains("shutdown complete")), "{got:?}");
        assert!(!stderr.contains("starting"), "the log went to syslog, not stderr:\n{stderr}");
    }
}

#[test]
fn files_get_the_umask_and_owner_asked_for() {
    if !xacct_perf::root_or_skip("changing file owners") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (pid, log, pipe, out) = (dir.join("x.pid"), dir.join("x.log"), dir.join("m.pipe"), dir.join("p.csv"));
    let conf = dir.join("x.conf");
    savefile_conf(
        &conf,
        &pcap(dir, 3, 1_700_000_000),
        &format!(
            "pcap_savefile_wait: true\nfiles_umask: 027\nfiles_uid: nobody\nfiles_gid: 65534\npidfile: {}\nlogfile: {}\n\
             plugins: memory[m], print[p]\nimt_path[m]: {}\nprint_output_file[p]: {}\nprint_output[p]: csv\nprint_refresh_time[p]: 1\n",
            pid.display(),
            log.display(),
            pipe.display(),
            out.display()
        ),
    );
    let d = Daemon::start(&conf, &dir.join("stderr.log"));
    wait_for("the print file", Duration::from_secs(20), || out.exists());
    let nobody = 65534;
    for (f, mode) in [(&pid, 0o640), (&log, 0o640), (&out, 0o640), (&pipe, 0o750)] {
        let m = std::fs::metadata(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(m.permissions().mode() & 0o777, mode, "{}", f.display());
        assert_eq!((m.uid(), m.gid()), (nobody, nobody), "{}", f.display());
    }
    signal(d.pid(), Signal::SIGTERM);
    wait_for("the pidfile removed at exit", Duration::from_secs(20), || !pid.exists());
}

/// A task's nice value, from /proc/PID/task/TID/stat (the 19th field).
fn nice(stat: &str) -> i32 {
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    after.split_whitespace().nth(16).and_then(|v| v.parse().ok()).unwrap_or(99)
}

#[test]
fn proc_priority_and_core_proc_name() {
    if !xacct_perf::root_or_skip("raising nice values back") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let conf = dir.join("x.conf");
    savefile_conf(
        &conf,
        &pcap(dir, 1, 1_700_000_000),
        &format!(
            "pcap_savefile_wait: true\nproc_priority: 5\ncore_proc_name: edge-collector7\nplugins: memory[m], print[p]\n\
             proc_priority[p]: 9\nimt_path[m]: {}\n",
            dir.join("m.pipe").display()
        ),
    );
    let mut d = Daemon::start(&conf, &dir.join("x.log"));
    d.wait_log("pcap_savefile_wait: keeping tables", Duration::from_secs(20));
    let proc = format!("/proc/{}", d.pid());
    assert_eq!(std::fs::read_to_string(format!("{proc}/comm")).unwrap(), "edge-collector7\n");
    let mut seen = Vec::new();
    for t in std::fs::read_dir(format!("{proc}/task")).expect("tasks").flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_string();
        let n = nice(&std::fs::read_to_string(t.path().join("stat")).unwrap_or_default());
        seen.push((comm, n));
    }
    for (comm, n) in &seen {
        let want = if comm == "p/print" { 9 } else { 5 };
        assert_eq!(*n, want, "{comm}: {seen:?}");
    }
    assert!(seen.iter().any(|(c, _)| c == "p/print") && seen.len() > 3, "{seen:?}");
    d.terminate();
}

#[test]
fn a_failed_plugin_stops_the_daemon_only_with_plugin_exit_any() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let good = dir.join("b.pipe");
    for exit_any in [false, true] {
        let port = free_udp_port();
        let conf = dir.join("x.conf");
        std::fs::write(
            &conf,
            format!(
                "nfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nplugin_exit_any: {exit_any}\nplugins: memory[a], memory[b]\n\
                 imt_path[a]: {}\nimt_path[b]: {}\n",
                dir.join("no-such-dir/a.pipe").display(),
                good.display()
            ),
        )
        .expect("conf");
        let mut d = Daemon::start(&conf, &dir.join(format!("x{exit_any}.log")));
        if exit_any {
            // The daemon stops by itself, after the final flush, and fails.
            d.wait_log("xacctd: plugin a/memory failed", Duration::from_secs(20));
            let log = std::fs::read_to_string(dir.join("xtrue.log")).unwrap_or_default();
            assert!(log.contains("plugin a/memory stopped: plugin_exit_any: flushing and shutting down"), "{log}");
            assert!(log.contains("shutdown complete"), "{log}");
        } else {
            d.wait_log(
                "plugin a/memory stopped; 1 plugin(s) go on (plugin_exit_any is false)",
                Duration::from_secs(20),
            );
            wait_for("b's socket", Duration::from_secs(10), || good.exists());
            assert!(try_client(&xacct_bin(), &good, &SUMMARY_CSV).is_ok(), "b still answers");
            d.terminate();
        }
    }
}

#[test]
fn sigusr2_reloads_the_networks_file_unless_maps_refresh_is_false() {
    use xacct_wire::netflow::{encode_v5, FlowRecord, NetflowHeader};
    let dgram = encode_v5(
        &NetflowHeader { version: 5, unix_secs: 1_700_000_000, ..NetflowHeader::default() },
        &[FlowRecord {
            src_addr: "10.1.0.1".parse().unwrap(),
            dst_addr: "10.2.0.1".parse().unwrap(),
            packets: 1,
            bytes: 100,
            ..FlowRecord::default()
        }],
    );
    for refresh in [true, false] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let nets = dir.join("nets.lst");
        std::fs::write(&nets, "10.0.0.0/8\n").expect("nets");
        let port = free_udp_port();
        let (mut d, pipe) = start_collector(
            dir,
            "x",
            &format!(
                "nfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nnfacctd_net: file\nnetworks_file: {}\nmaps_refresh: {refresh}\n",
                nets.display()
            ),
            "src_net,src_mask",
        );
        send_udp(port, std::slice::from_ref(&dgram));
        wait_for("the first record", Duration::from_secs(10), || {
            sorted_rows(&query_csv(&pipe)) == ["10.0.0.0,8,1,100"]
        });
        std::fs::write(&nets, "10.1.0.0/16\n").expect("nets");
        signal(d.pid(), Signal::SIGUSR2);
        d.wait_log(
            if refresh { "SIGUSR2: maps reloaded" } else { "SIGUSR2: maps_refresh is false: maps not reloaded" },
            Duration::from_secs(10),
        );
        send_udp(port, std::slice::from_ref(&dgram));
        let want: &[&str] = if refresh { &["10.0.0.0,8,1,100", "10.1.0.0,16,1,100"] } else { &["10.0.0.0,8,2,200"] };
        wait_for("the second record", Duration::from_secs(10), || sorted_rows(&query_csv(&pipe)) == want);
        d.terminate();
    }
}

#[test]
fn savefile_delay_and_time_new() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // 2009-02-13 23:31:30 UTC: bins of the packets' own time are from 2009.
    let pcap = pcap(dir, 2, 1_234_567_890);
    for time_new in [false, true] {
        let out = dir.join(format!("p{time_new}.json"));
        let conf = dir.join("x.conf");
        savefile_conf(
            &conf,
            &pcap,
            &format!(
                "pcap_savefile_delay: 1\npmacctd_time_new: {time_new}\nplugins: print[p]\nprint_output[p]: json\n\
                 print_output_file[p]: {}\nprint_history[p]: 1h\ntimestamps_since_epoch[p]: true\n",
                out.display()
            ),
        );
        let t = Instant::now();
        let log = Daemon::start(&conf, &dir.join("x.log")).wait_exit(Duration::from_secs(20));
        assert!(t.elapsed() >= Duration::from_secs(1), "read before pcap_savefile_delay");
        assert!(log.contains("pcap_savefile_delay: reading in 1 s"), "{log}");
        let text = std::fs::read_to_string(&out).expect("print output");
        let now_bin = (chrono::Utc::now().timestamp() / 3600) * 3600;
        let want = if time_new { now_bin } else { 1_234_566_000 };
        // Arrival times may cross an hour while the test runs.
        let ok = text.contains(&format!("\"stamp_inserted\": {want}"))
            || (time_new && text.contains(&format!("\"stamp_inserted\": {}", want - 3600)));
        assert!(ok, "time_new {time_new}: {text}");
    }
}
