//! Collector comparisons: xacctd and Debian's nfacctd/sfacctd 1.7.7 with the same plugins and
//! keys get the same datagrams; their memory tables must be equal, entry for entry. Exporters:
//! softflowd (reading a pcap), or datagrams a test makes and sends to both.

use super::{all_zero_key, client, free_udp_port, query_csv, query_stable, skip, table, Daemon, SUMMARY_CSV};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Whether every tool is installed (`-h` runs); skips (fails under CI) naming the first missing.
pub fn have(tools: &[&str]) -> bool {
    for tool in tools {
        let found = Command::new(tool).arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        if !found {
            skip(&format!("{tool} is not installed (apt-get install pmacct softflowd)"));
            return false;
        }
    }
    true
}

/// Waits for an exporter process to exit by itself, calling `tick` every 100 ms meanwhile;
/// kills it and fails with its log after `timeout`.
pub fn wait_exit(child: &mut Child, what: &str, log: &Path, timeout: Duration, mut tick: impl FnMut()) -> ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap_or_else(|e| panic!("wait {what}: {e}")) {
            return st;
        }
        if t.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        tick();
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The plugins and the extra keys both collectors get.
pub struct Setup<'a> {
    /// (memory plugin name, aggregate).
    pub plugins: &'a [(&'a str, &'a str)],
    /// Lines for both configurations (keys of the comparison: networks_file, nfacctd_net, …).
    pub extra: &'a str,
}

/// A collector config with one memory plugin per aggregate; `tag` names the sockets.
pub fn config(dir: &Path, tag: &str, listen: &str, setup: &Setup) -> PathBuf {
    let mut c = format!(
        // The reference needs more memory pools than the default 16 to hold the table, and a
        // bigger core→plugin pipe: with the default, nfacctd drops records of softflowd's burst
        // ("Failed during write: Resource temporarily unavailable"). xacctd accepts both keys
        // and logs that they have no effect.
        "daemonize: false\nimt_mem_pools_number: 4096\nplugin_pipe_size: 100000000\n{listen}{}plugins: {}\n",
        setup.extra,
        setup.plugins.iter().map(|(n, _)| format!("memory[{n}]")).collect::<Vec<_>>().join(", ")
    );
    for (n, agg) in setup.plugins {
        c.push_str(&format!("aggregate[{n}]: {agg}\nimt_path[{n}]: {}\n", pipe(dir, tag, n).display()));
    }
    let path = dir.join(format!("{tag}.conf"));
    std::fs::write(&path, c).expect("write config");
    path
}

pub fn pipe(dir: &Path, tag: &str, plugin: &str) -> PathBuf {
    dir.join(format!("{tag}_{plugin}.pipe"))
}

/// Waits until every memory plugin of `tag` has its socket.
pub fn wait_pipes(dir: &Path, tag: &str, setup: &Setup) {
    let t = Instant::now();
    for (n, _) in setup.plugins {
        let p = pipe(dir, tag, n);
        while !p.exists() {
            assert!(t.elapsed() < Duration::from_secs(20), "no {}", p.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// softflowd reads `pcap` and exports every flow to `port` with NetFlow `version`, then exits.
///
/// softflowd 1.1.0 blocks in accept() on its control socket when reading a file, before and
/// after each pass over it; each connection of `softflowctl` lets it go on. It flushes all
/// flows at the end of the file, so no timeout has to expire.
pub fn softflowd(pcap: &Path, dir: &Path, port: u16, version: &str) {
    let ctl = dir.join(format!("sf{port}.ctl"));
    let log = dir.join(format!("sf{port}.log"));
    let mut cmd = Command::new("softflowd");
    cmd.arg("-d")
        .arg("-r")
        .arg(pcap)
        .args(["-n", &format!("127.0.0.1:{port}"), "-v", version])
        .arg("-p")
        .arg(dir.join(format!("sf{port}.pid")))
        .arg("-c")
        .arg(&ctl);
    // IPv6 flows only fit v9 and IPFIX.
    if version != "5" {
        cmd.arg("-6");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log.with_extension("out")).expect("softflowd stdout"))
        .stderr(std::fs::File::create(&log).expect("softflowd log"))
        .spawn()
        .expect("spawn softflowd");
    let status = wait_exit(&mut child, "softflowd", &log, Duration::from_secs(30), || {
        if ctl.exists() {
            // Its answer does not matter; the connection is what unblocks softflowd.
            let _ = Command::new("softflowctl")
                .arg("-c")
                .arg(&ctl)
                .arg("statistics")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    });
    // Its statistics at exit go to stdout, its messages to stderr.
    let text = std::fs::read_to_string(&log).unwrap_or_default()
        + &std::fs::read_to_string(log.with_extension("out")).unwrap_or_default();
    assert!(status.success(), "softflowd {status}:\n{text}");
    assert!(text.contains("Flows exported") && text.contains("(0 failures)"), "softflowd:\n{text}");
}

/// Starts the reference collector `reference` (nfacctd or sfacctd, ready when it logs
/// `ready`) and xacctd with the same plugins, keys and `{reference}_ip`/`_port`, lets
/// `send(reference_port, xacctd_port)` export to them, and compares every plugin's table; the
/// differences found, and what `check_reference(aggregate, packets)` finds wrong with the
/// reference's packet total.
pub fn compare_collectors(
    dir: &Path,
    reference: &str,
    ready: &str,
    what: &str,
    setup: &Setup,
    send: impl FnOnce(u16, u16),
    check_reference: impl Fn(&str, u64) -> Option<String>,
) -> Vec<String> {
    let (pm_port, xa_port) = (free_udp_port(), free_udp_port());
    let keys = |port: u16| format!("{reference}_ip: 127.0.0.1\n{reference}_port: {port}\n");
    let pm_conf = config(dir, "pm", &keys(pm_port), setup);
    let xa_conf = config(dir, "xa", &keys(xa_port), setup);
    let mut cmd = Command::new(reference);
    cmd.arg("-f").arg(&pm_conf);
    let mut pm = Daemon::spawn(cmd, &dir.join("pm.log"));
    let mut xa = Daemon::start(&xa_conf, &dir.join("xa.log"));
    pm.wait_log(ready, Duration::from_secs(20));
    xa.wait_log("listening:", Duration::from_secs(20));
    wait_pipes(dir, "pm", setup);
    wait_pipes(dir, "xa", setup);

    send(pm_port, xa_port);

    let mut failures = Vec::new();
    for (n, agg) in setup.plugins {
        let want = query_stable(|| client(Path::new("pmacct"), &pipe(dir, "pm", n), &SUMMARY_CSV));
        let got = query_stable(|| query_csv(&pipe(dir, "xa", n)));
        let (wh, wr) = table(&want);
        let (gh, mut gr) = table(&got);
        // pmacct leaves out an entry whose key is all zeros when its addresses have no family
        // (nothing was resolved); xacct shows it. Such rows of ours are set aside unless the
        // reference has them too (nets of 0.0.0.0/0 and :: it shows).
        gr.retain(|r| !all_zero_key(&gh, r) || wr.contains(r));
        assert!(!wr.is_empty(), "{what}: reference table for {agg} is empty:\n{want}");
        if wh != gh || wr != gr {
            let missing: Vec<_> = wr.difference(&gr).take(5).collect();
            let extra: Vec<_> = gr.difference(&wr).take(5).collect();
            failures.push(format!(
                "{what} aggregate {agg}: header {reference} '{wh}' xacct '{gh}'; {} rows vs {}; missing {missing:?}; unexpected {extra:?}",
                wr.len(),
                gr.len()
            ));
        } else {
            eprintln!("{what} aggregate {agg}: {} entries identical", wr.len());
        }
        failures.extend(check_reference(agg, packets_total(&wh, &wr)));
    }
    drop(xa);
    drop(pm);
    failures
}

/// Runs `send` with the port of a loopback relay that forwards every datagram it gets to each
/// of `ports`, in order; returns once `send` has returned and the relay has gone quiet.
pub fn fan_out(ports: &[u16], send: impl FnOnce(u16)) {
    let relay = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind the relay");
    relay.set_read_timeout(Some(Duration::from_millis(200))).expect("relay timeout");
    let port = relay.local_addr().expect("relay address").port();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut buf = vec![0u8; 65536];
            loop {
                match relay.recv(&mut buf) {
                    Ok(n) => {
                        for &p in ports {
                            relay.send_to(&buf[..n], ("127.0.0.1", p)).expect("relay a datagram");
                        }
                    }
                    // Quiet for a timeout after the sender has finished: everything is relayed.
                    Err(_) if done.load(std::sync::atomic::Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
        });
        send(port);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

/// The sum of the PACKETS column.
pub fn packets_total(header: &str, rows: &BTreeSet<String>) -> u64 {
    let Some(col) = header.split(',').position(|h| h == "PACKETS") else {
        panic!("no PACKETS column in '{header}'");
    };
    rows.iter().filter_map(|r| r.split(',').nth(col)).map(|v| v.parse::<u64>().unwrap_or(0)).sum()
}
