//! Collector socket keys: nfacctd_ipv6_only on the all-addresses socket, and
//! nfacctd_mcast_groups (in a private network namespace whose loopback carries multicast).

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use support::netns::{in_own_namespace, sh};
use support::{query_csv, sorted_rows, start_collector};
use xacct_wire::netflow::{encode_v5, FlowRecord, NetflowHeader};

/// A NetFlow v5 datagram of one flow from `src`.
fn v5(src: &str) -> Vec<u8> {
    let h = NetflowHeader { version: 5, unix_secs: 1_700_000_000, ..NetflowHeader::default() };
    encode_v5(
        &h,
        &[FlowRecord {
            src_addr: src.parse().unwrap(),
            dst_addr: "10.2.0.1".parse().unwrap(),
            packets: 1,
            bytes: 100,
            ..FlowRecord::default()
        }],
    )
}

/// A UDP port free on both 0.0.0.0 and [::]: a dual-stack bind takes both or fails.
fn free_dual_port() -> u16 {
    UdpSocket::bind("[::]:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("bind [::]:0")
}

fn wait_rows(pipe: &std::path::Path, want: &[&str]) {
    let t = Instant::now();
    loop {
        let rows = sorted_rows(&query_csv(pipe));
        if rows == want {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "table {rows:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ipv6_only_takes_no_ipv4_datagrams() {
    if UdpSocket::bind("[::1]:0").is_err() {
        support::skip("no IPv6 loopback here");
        return;
    }
    for only in [false, true] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let port = free_dual_port();
        let (d, pipe) =
            start_collector(tmp.path(), "x", &format!("nfacctd_port: {port}\nnfacctd_ipv6_only: {only}\n"), "src_host");
        let s4 = UdpSocket::bind("127.0.0.1:0").expect("v4 sender");
        s4.send_to(&v5("10.4.0.4"), ("127.0.0.1", port)).expect("send v4");
        let s6 = UdpSocket::bind("[::1]:0").expect("v6 sender");
        s6.send_to(&v5("10.6.0.6"), SocketAddr::new("::1".parse().unwrap(), port)).expect("send v6");
        // The IPv6 datagram went second: once it is in, the IPv4 one would be too.
        let want: &[&str] = if only { &["10.6.0.6,1,100"] } else { &["10.4.0.4,1,100", "10.6.0.6,1,100"] };
        wait_rows(&pipe, want);
        d.terminate();
    }
}

#[test]
fn mcast_groups_are_joined() {
    in_own_namespace(|| {
        sh(&["ip", "link", "set", "lo", "multicast", "on"]);
        sh(&["ip", "route", "add", "239.0.0.0/8", "dev", "lo"]);
        for join in [false, true] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let port = free_dual_port();
            let key = if join { "nfacctd_mcast_groups: 239.1.2.3, 239.1.2.4\n" } else { "" };
            let (d, pipe) = start_collector(
                tmp.path(),
                "x",
                &format!("nfacctd_ip: 0.0.0.0\nnfacctd_port: {port}\n{key}"),
                "src_host",
            );
            let s = UdpSocket::bind("127.0.0.1:0").expect("sender");
            s.set_multicast_loop_v4(true).expect("loop");
            s.send_to(&v5("10.7.0.7"), ("239.1.2.3", port)).expect("send to the group");
            // Then one straight to the collector: once it is in, the group's one would be too.
            s.send_to(&v5("10.8.0.8"), ("127.0.0.1", port)).expect("send");
            let want: &[&str] = if join { &["10.7.0.7,1,100", "10.8.0.8,1,100"] } else { &["10.8.0.8,1,100"] };
            wait_rows(&pipe, want);
            d.terminate();
        }
    });
}

#[test]
fn allow_file_drops_and_counts_other_senders_and_reloads_on_sigusr2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let allow = tmp.path().join("allow.lst");
    std::fs::write(&allow, "! exporters\n127.0.0.2\n").expect("allow file");
    let port = support::free_udp_port();
    let (d, pipe) = start_collector(
        tmp.path(),
        "x",
        &format!("nfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nnfacctd_allow_file: {}\n", allow.display()),
        "src_host",
    );
    let from = |a: &str, src: &str| {
        let s = UdpSocket::bind((a, 0)).expect("sender");
        s.send_to(&v5(src), ("127.0.0.1", port)).expect("send");
    };
    from("127.0.0.1", "10.1.0.1");
    from("127.0.0.2", "10.2.0.2");
    wait_rows(&pipe, &["10.2.0.2,1,100"]);
    let status = support::wait_counter(&pipe, "datagrams_not_allowed", 1);
    assert_eq!(support::counter(&status, "datagrams_not_allowed"), Some(1), "{status}");
    // The file now names 127.0.0.1 as well; SIGUSR2 reloads it.
    std::fs::write(&allow, "127.0.0.0/30\n").expect("allow file");
    support::signal(d.pid(), nix::sys::signal::Signal::SIGUSR2);
    let mut d = d;
    d.wait_log("allow file", Duration::from_secs(10));
    from("127.0.0.1", "10.1.0.1");
    wait_rows(&pipe, &["10.1.0.1,1,100", "10.2.0.2,1,100"]);
    d.terminate();
    // A bad line is an error naming both files' lines.
    std::fs::write(&allow, "127.0.0.1\nrouter7\n").expect("allow file");
    let e = xacct_core::config::Config::parse_str(
        &format!("nfacctd_allow_file: {}\n", allow.display()),
        "/etc/x.conf",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("/etc/x.conf:1: nfacctd_allow_file: bad value")
            && e.ends_with(":2: 'router7' is not an address or prefix"),
        "{e}"
    );
}
