//! The tee plugin: an nfacctd/sfacctd-mode xacctd replicates every datagram, byte for byte,
//! to the pools of its `tee_receivers` map (all receivers, round robin, tag-filtered pools by
//! a pre_tag_map), non-transparently and with the exporter's own address and port
//! (`tee_transparent`), while its memory plugin still accounts the same datagrams.

mod support;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use support::{client, counter, free_udp_port, wait_counter, xacct_bin, Daemon};
use xacct_wire::netflow::{encode_v5, FlowRecord, NetflowHeader};

fn receiver() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("receiver");
    s.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let p = s.local_addr().expect("addr").port();
    (s, p)
}

/// Everything the socket receives until it stays quiet: (sender, bytes).
fn drain(s: &UdpSocket) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok((n, from)) = s.recv_from(&mut buf) {
        out.push((from, buf.get(..n).unwrap_or_default().to_vec()));
    }
    out
}

fn datagrams(n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let h = NetflowHeader { version: 5, sequence: i, unix_secs: 1_700_000_000, ..NetflowHeader::default() };
            let r = FlowRecord {
                src_addr: "10.0.0.1".parse().expect("ip"),
                dst_addr: "10.0.0.2".parse().expect("ip"),
                src_port: 1000 + i as u16,
                dst_port: 53,
                proto: 17,
                packets: 1,
                bytes: 100,
                ..FlowRecord::default()
            };
            encode_v5(&h, &[r])
        })
        .collect()
}

fn run(transparent: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let rx: Vec<(UdpSocket, u16)> = (0..6).map(|_| receiver()).collect();
    let port = |i: usize| rx.get(i).map(|r| r.1).unwrap_or_default();
    let map = d.join("tee_receivers.lst");
    std::fs::write(
        &map,
        format!(
            "! pools: both receivers, round robin, tagged 100 only, all but 100\n\
             id=1\tip=127.0.0.1:{},127.0.0.1:{}\n\
             id=2\tip=127.0.0.1:{},127.0.0.1:{}\tbalance-alg=rr\n\
             id=3\tip=127.0.0.1:{}\ttag=100\n\
             id=4\tip=127.0.0.1:{}\ttag=-100\n",
            port(0),
            port(1),
            port(2),
            port(3),
            port(4),
            port(5)
        ),
    )
    .expect("map");
    let pretag = d.join("pretag.map");
    std::fs::write(&pretag, "set_tag=100 ip=127.0.0.1\n").expect("pretag");
    let listen = free_udp_port();
    let pipe = d.join("tee.pipe");
    let conf = d.join("tee.conf");
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {listen}\npre_tag_map: {}\n\
             plugins: tee[t], memory[a]\ntee_receivers[t]: {}\ntee_transparent[t]: {transparent}\n\
             aggregate[a]: src_port\nimt_path[a]: {}\n",
            pretag.display(),
            map.display(),
            pipe.display()
        ),
    )
    .expect("conf");
    let mut daemon = Daemon::start(&conf, &d.join("tee.log"));
    daemon.wait_log("listening:", Duration::from_secs(20));
    let t = std::time::Instant::now();
    while !pipe.exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "no {}", pipe.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    let sender = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let from = sender.local_addr().expect("addr");
    let sent = datagrams(20);
    for dg in &sent {
        sender.send_to(dg, ("127.0.0.1", listen)).expect("send");
    }
    // The memory plugin accounts them too.
    wait_counter(&pipe, "tee_received", 20);
    let got: Vec<Vec<(SocketAddr, Vec<u8>)>> = rx.iter().map(|(s, _)| drain(s)).collect();
    let bytes = |i: usize| -> Vec<Vec<u8>> { got[i].iter().map(|(_, b)| b.clone()).collect() };
    // Pool 1: every datagram to both receivers, unchanged and in order.
    assert_eq!(bytes(0), sent);
    assert_eq!(bytes(1), sent);
    // Pool 2: round robin.
    let (a, b) = (bytes(2), bytes(3));
    assert_eq!((a.len(), b.len()), (10, 10));
    let evens: Vec<Vec<u8>> = sent.iter().step_by(2).cloned().collect();
    assert_eq!(a, evens);
    // Pool 3 takes tag 100 (what the map gives 127.0.0.1); pool 4 takes every other tag.
    assert_eq!(bytes(4), sent);
    assert!(got[5].is_empty());
    // Transparent replication keeps the exporter's address and port.
    for (src, _) in got.iter().flatten() {
        if transparent {
            assert_eq!(*src, from, "transparent copies come from the exporter");
        } else {
            assert_ne!(src.port(), from.port());
        }
    }
    let status = client(&xacct_bin(), &pipe, &["-t"]);
    assert_eq!(counter(&status, &format!("tee_sent[1/127.0.0.1:{}]", port(0))), Some(20), "{status}");
    assert_eq!(counter(&status, &format!("tee_sent[2/127.0.0.1:{}]", port(3))), Some(10), "{status}");
    assert_eq!(counter(&status, "tee_queue_dropped"), Some(0), "{status}");
    let table = support::query_csv(&pipe);
    let rows: BTreeMap<&str, &str> = table.lines().skip(1).filter_map(|l| l.split_once(',')).collect();
    assert_eq!(rows.len(), 20, "{table}");
    drop(daemon);
}

#[test]
fn tee_replicates_to_pools() {
    run(false);
}

#[test]
fn tee_transparent_keeps_the_exporter_address() {
    run(true);
}

#[test]
fn tee_needs_a_collector_and_a_good_map() {
    let dir = tempfile::tempdir().expect("tempdir");
    let map = dir.path().join("r.lst");
    std::fs::write(&map, "id=1 ip=127.0.0.1:9\nid=2 ip=127.0.0.1\n").expect("map");
    let conf = dir.path().join("x.conf");
    std::fs::write(&conf, format!("nfacctd_port: 2100\nplugins: tee[t]\ntee_receivers: {}\n", map.display()))
        .expect("conf");
    let out = std::process::Command::new(support::xacctd_bin()).arg("-f").arg(&conf).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{}:2: ip=127.0.0.1", map.display())), "{err}");
    std::fs::write(&conf, format!("pcap_savefile: /dev/null\nplugins: tee[t]\ntee_receivers: {}\n", map.display()))
        .expect("conf");
    let out = std::process::Command::new(support::xacctd_bin()).arg("-f").arg(&conf).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs nfacctd or sfacctd mode"), "{err}");
}

/// Debian's `tee_receivers.lst.example` loads unchanged (its repeated pool ids are pools of
/// their own, as in pmacct).
#[test]
fn debian_tee_receivers_example_loads() {
    let path = std::path::Path::new("/usr/lib/x86_64-linux-gnu/pmacct/examples/tee_receivers.lst.example");
    if !path.exists() {
        support::skip("pmacct's examples are not installed (cargo xtask setup)");
        return;
    }
    let pools = xacct_core::tee::load(path, xacct_core::tee::MAX_POOLS, xacct_core::tee::MAX_RECEIVERS).expect("loads");
    assert_eq!(pools.len(), 7);
    assert_eq!(pools.iter().map(|p| p.receivers.len()).sum::<usize>(), 10);
    assert_eq!(pools.last().map(|p| p.balance), Some(xacct_core::tee::Balance::RoundRobin));
}

/// SIGUSR2 re-reads tee_receivers: datagrams after the reload go to the new pools only; a
/// broken map is refused and the old pools stay.
#[test]
fn sigusr2_reloads_the_receivers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (a, pa) = receiver();
    let (b, pb) = receiver();
    let map = d.join("tee_receivers.lst");
    std::fs::write(&map, format!("id=1 ip=127.0.0.1:{pa}\n")).expect("map");
    let listen = free_udp_port();
    let conf = d.join("tee.conf");
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {listen}\nplugins: tee[t]\ntee_receivers[t]: {}\n",
            map.display()
        ),
    )
    .expect("conf");
    let mut daemon = Daemon::start(&conf, &d.join("tee.log"));
    daemon.wait_log("listening:", Duration::from_secs(20));
    let sender = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let sent = datagrams(10);
    let send = |range: std::ops::Range<usize>| {
        for dg in &sent[range] {
            sender.send_to(dg, ("127.0.0.1", listen)).expect("send");
        }
    };
    send(0..4);
    assert_eq!(drain(&a).len(), 4);
    std::fs::write(&map, format!("id=1 ip=127.0.0.1:{pb}\n")).expect("map");
    support::signal(daemon.pid(), nix::sys::signal::Signal::SIGUSR2);
    daemon.wait_log("reloaded: 1 pool(s)", Duration::from_secs(10));
    send(4..7);
    let got: Vec<Vec<u8>> = drain(&b).into_iter().map(|(_, d)| d).collect();
    assert_eq!(got, sent[4..7].to_vec());
    assert!(drain(&a).is_empty());
    // A bad map is refused; the pools stay.
    std::fs::write(&map, "id=1 ip=nowhere\n").expect("map");
    support::signal(daemon.pid(), nix::sys::signal::Signal::SIGUSR2);
    daemon.wait_log("receivers not reloaded", Duration::from_secs(10));
    send(7..10);
    assert_eq!(drain(&b).len(), 3);
    let log = daemon.terminate();
    assert!(counter(&log, "maps_reload_failed").is_some_and(|n| n >= 1), "{log}");
}

/// nfacctd 1.7.7 behind xacctd's tee gets the same table as nfacctd fed directly.
#[test]
fn nfacctd_behind_the_tee_sees_what_it_would_see_directly() {
    if std::process::Command::new("nfacctd").arg("-V").output().is_err() {
        support::skip("nfacctd is not installed (cargo xtask setup)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let nfacctd = |tag: &str, port: u16| {
        let out = d.join(format!("{tag}.csv"));
        let conf = d.join(format!("{tag}.conf"));
        std::fs::write(
            &conf,
            format!(
                "daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nplugins: print[p]\n\
                 aggregate[p]: src_host,dst_host,src_port,dst_port,proto\nprint_output[p]: csv\n\
                 print_output_file[p]: {}\nprint_output_file_append[p]: true\nprint_refresh_time[p]: 1\n",
                out.display()
            ),
        )
        .expect("conf");
        let mut cmd = std::process::Command::new("nfacctd");
        cmd.arg("-f").arg(&conf);
        (Daemon::spawn(cmd, &d.join(format!("{tag}.log"))), out)
    };
    let (direct_port, behind_port, tee_port) = (free_udp_port(), free_udp_port(), free_udp_port());
    let (direct, direct_out) = nfacctd("direct", direct_port);
    let (behind, behind_out) = nfacctd("behind", behind_port);
    let map = d.join("r.lst");
    std::fs::write(&map, format!("id=1 ip=127.0.0.1:{behind_port}\n")).expect("map");
    let conf = d.join("tee.conf");
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {tee_port}\nplugins: tee[t]\ntee_receivers[t]: {}\n",
            map.display()
        ),
    )
    .expect("conf");
    let mut tee = Daemon::start(&conf, &d.join("tee.log"));
    tee.wait_log("listening:", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let sender = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let sent = datagrams(50);
    for dg in &sent {
        sender.send_to(dg, ("127.0.0.1", direct_port)).expect("send");
        sender.send_to(dg, ("127.0.0.1", tee_port)).expect("send");
    }
    let rows = |p: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_to_string(p).unwrap_or_default().lines().skip(1).map(str::to_string).collect();
        v.sort();
        v
    };
    let t = std::time::Instant::now();
    while rows(&direct_out).len() < 50 || rows(&behind_out).len() < 50 {
        assert!(t.elapsed() < Duration::from_secs(15), "{:?} / {:?}", rows(&direct_out), rows(&behind_out));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(rows(&behind_out), rows(&direct_out));
    drop((direct, behind, tee));
}
