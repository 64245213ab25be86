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
    let tables = collect_tables(dir, reference, ready, setup, send, || None);
    compare_tables(reference, what, &tables, check_reference)
}

/// Both collectors' table of one plugin: its aggregate, then (header, rows) of the reference
/// and of xacctd.
pub struct Tables {
    pub aggregate: String,
    pub reference: (String, BTreeSet<String>),
    pub xacct: (String, BTreeSet<String>),
}

/// Runs the reference collector and xacctd on what `send(reference_port, xacctd_port)` sends
/// (see [`compare_collectors`]) and returns every plugin's tables. `settled()`, asked once
/// `send` has returned, may give the number of packets every table holds once both collectors
/// have accounted all that was sent: each table is then queried until its total reaches it
/// (or a timeout passes), instead of until two answers agree, which a collector starved of CPU
/// for a moment can fool.
pub fn collect_tables(
    dir: &Path,
    reference: &str,
    ready: &str,
    setup: &Setup,
    send: impl FnOnce(u16, u16),
    settled: impl FnOnce() -> Option<u64>,
) -> Vec<Tables> {
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
    let settled = settled();
    let query = |q: &dyn Fn() -> String| match settled {
        Some(total) => query_until(q, total),
        None => query_stable(q),
    };

    let tables = setup
        .plugins
        .iter()
        .map(|(n, agg)| {
            let want = query(&|| client(Path::new("pmacct"), &pipe(dir, "pm", n), &SUMMARY_CSV));
            let got = query(&|| query_csv(&pipe(dir, "xa", n)));
            let (wh, wr) = table(&want);
            let (gh, mut gr) = table(&got);
            // pmacct leaves out an entry whose key is all zeros when its addresses have no
            // family (nothing was resolved); xacct shows it. Such rows of ours are set aside
            // unless the reference has them too (nets of 0.0.0.0/0 and :: it shows).
            gr.retain(|r| !all_zero_key(&gh, r) || wr.contains(r));
            Tables { aggregate: agg.to_string(), reference: (wh, wr), xacct: (gh, gr) }
        })
        .collect();
    drop(xa);
    drop(pm);
    tables
}

/// Queries until the table's PACKETS total reaches `total` (20 s at most); the last answer.
fn query_until(query: &dyn Fn() -> String, total: u64) -> String {
    let t = Instant::now();
    loop {
        let answer = query();
        let (h, rows) = table(&answer);
        let done = h.contains("PACKETS") && packets_total(&h, &rows) >= total;
        if done || t.elapsed() > Duration::from_secs(20) {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The differences between the reference's and xacctd's tables, and what
/// `check_reference(aggregate, packets)` finds wrong with the reference's packet total.
pub fn compare_tables(
    reference: &str,
    what: &str,
    tables: &[Tables],
    check_reference: impl Fn(&str, u64) -> Option<String>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for Tables { aggregate: agg, reference: (wh, wr), xacct: (gh, gr) } in tables {
        assert!(!wr.is_empty(), "{what}: reference table for {agg} is empty");
        if wh != gh || wr != gr {
            let missing: Vec<_> = wr.difference(gr).take(5).collect();
            let extra: Vec<_> = gr.difference(wr).take(5).collect();
            failures.push(format!(
                "{what} aggregate {agg}: header {reference} '{wh}' xacct '{gh}'; {} rows vs {}; missing {missing:?}; unexpected {extra:?}",
                wr.len(),
                gr.len()
            ));
        } else {
            eprintln!("{what} aggregate {agg}: {} entries identical", wr.len());
        }
        failures.extend(check_reference(agg, packets_total(wh, wr)));
    }
    failures
}

/// Runs `send` with the port of a loopback recorder that keeps every datagram it gets; once
/// `send` has returned and the recorder has gone quiet, replays them, in order, to each of
/// `ports`, paced (a reference collector on a busy machine drops datagrams of a burst at its
/// socket, which would make the tables differ for a reason that has nothing to do with
/// decoding); returns the datagrams.
pub fn fan_out(ports: &[u16], send: impl FnOnce(u16)) -> Vec<Vec<u8>> {
    let relay = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind the relay");
    relay.set_read_timeout(Some(Duration::from_millis(200))).expect("relay timeout");
    let port = relay.local_addr().expect("relay address").port();
    let done = std::sync::atomic::AtomicBool::new(false);
    let datagrams = std::thread::scope(|s| {
        let recorder = s.spawn(|| {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                match relay.recv(&mut buf) {
                    Ok(n) => got.push(buf[..n].to_vec()),
                    // Quiet for a timeout after the sender has finished: everything is here.
                    Err(_) if done.load(std::sync::atomic::Ordering::Relaxed) => break got,
                    Err(_) => {}
                }
            }
        });
        send(port);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        recorder.join().expect("recorder")
    });
    for chunk in datagrams.chunks(8) {
        for &p in ports {
            super::send_udp(p, chunk);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    datagrams
}

/// The sum of the PACKETS column.
pub fn packets_total(header: &str, rows: &BTreeSet<String>) -> u64 {
    column_total(header, rows, "PACKETS")
}

/// The sum of column `name`.
pub fn column_total(header: &str, rows: &BTreeSet<String>, name: &str) -> u64 {
    let Some(col) = header.split(',').position(|h| h == name) else {
        panic!("no {name} column in '{header}'");
    };
    rows.iter().filter_map(|r| r.split(',').nth(col)).map(|v| v.parse::<u64>().unwrap_or(0)).sum()
}
