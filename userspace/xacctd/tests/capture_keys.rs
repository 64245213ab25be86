//! pmacctd's capture keys on a live interface (a veth pair in a private network namespace):
//! pcap_interface_wait, pcap_direction with pcap_ifindex.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::netns::{ifindex, in_own_namespace, sh, veth};
use support::{query_csv, sorted_rows, spec, Daemon};
use xacct_perf::traffic::{build, L3, L4};

/// A UDP frame from 198.18.0.`src` to 198.18.1.1.
fn frame(src: u8) -> Vec<u8> {
    build(&spec(
        vec![],
        L3::V4 { src: [198, 18, 0, src], dst: [198, 18, 1, 1], tos: 0 },
        L4::Udp { sport: 7, dport: 9 },
        10,
    ))
}

fn inject(dev: &str, frames: &[Vec<u8>]) {
    let mut c = pcap::Capture::from_device(dev).and_then(|c| c.open()).expect("open for injection");
    for f in frames {
        c.sendpacket(f.as_slice()).expect("inject");
    }
}

fn wait_rows(pipe: &Path, want: &[String]) {
    let t = Instant::now();
    loop {
        let rows = std::panic::catch_unwind(|| sorted_rows(&query_csv(pipe))).unwrap_or_default();
        if rows == want {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "table {rows:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pcap_interface_wait_waits_for_the_interface() {
    in_own_namespace(|| {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let pipe = dir.join("m.pipe");
        let conf = dir.join("x.conf");
        let body =
            format!("pcap_interface: xw1\ncapture_method: pcap\nplugins: memory[m]\nimt_path[m]: {}\n", pipe.display());
        // Without the key a missing interface is an error.
        std::fs::write(&conf, &body).expect("conf");
        let out = std::process::Command::new(support::xacctd_bin()).arg("-f").arg(&conf).output().expect("run");
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("xw1"));
        std::fs::write(&conf, format!("pcap_interface_wait: true\n{body}")).expect("conf");
        let mut d = Daemon::start(&conf, &dir.join("x.log"));
        d.wait_log("pcap_interface_wait:", Duration::from_secs(10));
        veth("xw0", "xw1");
        d.wait_log("capturing from interface xw1", Duration::from_secs(10));
        let t = Instant::now();
        while !pipe.exists() {
            assert!(t.elapsed() < Duration::from_secs(10), "no memory table");
            std::thread::sleep(Duration::from_millis(20));
        }
        inject("xw0", &[frame(1), frame(1)]);
        wait_rows(&pipe, &["198.18.0.1,2,76".to_string()]);
        d.terminate();
    });
}

#[test]
fn pcap_direction_and_ifindex_fill_in_or_out_iface() {
    in_own_namespace(|| {
        veth("xd0", "xd1");
        let index = ifindex("xd1");
        for dir_key in ["in", "out"] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path();
            let pipe = dir.join("m.pipe");
            let conf = dir.join("x.conf");
            std::fs::write(
                &conf,
                format!(
                    "pcap_interface: xd1\ncapture_method: auto\npcap_direction: {dir_key}\npcap_ifindex: sys\n\
                     plugins: memory[m]\naggregate[m]: src_host, in_iface, out_iface\nimt_path[m]: {}\n",
                    pipe.display()
                ),
            )
            .expect("conf");
            let mut d = Daemon::start(&conf, &dir.join("x.log"));
            d.wait_log("capturing from", Duration::from_secs(20));
            let t = Instant::now();
            while !pipe.exists() {
                assert!(t.elapsed() < Duration::from_secs(10), "no memory table");
                std::thread::sleep(Duration::from_millis(20));
            }
            // Received on xd1 (sent into xd0) from .1; sent out of xd1 from .2.
            inject("xd0", &[frame(1), frame(1), frame(1)]);
            inject("xd1", &[frame(2)]);
            let want = if dir_key == "in" {
                format!("{index},0,198.18.0.1,3,114")
            } else {
                format!("0,{index},198.18.0.2,1,38")
            };
            wait_rows(&pipe, &[want]);
            let log = d.terminate();
            if dir_key == "out" {
                // XDP sees received packets only: auto takes libpcap, and says why.
                assert!(log.contains("pcap_direction out needs libpcap"), "{log}");
            }
        }
        sh(&["ip", "link", "del", "xd0"]);
    });
}
