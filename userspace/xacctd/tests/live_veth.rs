//! Live capture end to end: xacctd captures on one end of a veth pair inside a private network
//! namespace while the test injects a known set of frames into the other end with libpcap; the
//! memory tables, seen through `xacct -s -O csv`, must hold exactly those frames.
//!
//! Needs root (CAP_SYS_ADMIN for the namespace, CAP_NET_ADMIN/RAW for the veth and capture).
//! Without it the test is skipped, except under CI=true where it must run.
//!
//! Addresses are from 198.18.0.0/15 (RFC 2544, benchmarking) and 2001:db8::/32 (documentation):
//! nothing here is ever routed, and every frame stays inside the namespace made for the test.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{counter, row_key, skip, spec, try_client, xacct_bin, Daemon, SUMMARY_CSV};
use xacct_perf::traffic::{arp, build, FrameSpec, L3, L4};

const TX: &str = "xa0";
const RX: &str = "xa1";

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Best effort: a kernel without IPv6 has no such files, and then emits no IPv6 noise either.
fn sysctl_off(path: &str) {
    let _ = std::fs::write(path, "1");
}

/// `xacct -s -O csv` as rows of column → value (column names from the header line).
fn query(pipe: &Path) -> Result<Vec<BTreeMap<String, String>>, String> {
    let text = try_client(&xacct_bin(), pipe, &SUMMARY_CSV)?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines.next().ok_or("empty answer")?.split(',').map(str::to_string).collect();
    Ok(lines
        .map(|l| header.iter().cloned().zip(l.split(',').map(str::to_string)).collect::<BTreeMap<_, _>>())
        .filter(|r| r.len() == header.len())
        .collect())
}

/// Our rows only (the namespace is quiet, but a kernel may still emit something of its own),
/// keyed by [`row_key`], valued (packets, bytes).
fn ours(rows: &[BTreeMap<String, String>]) -> BTreeMap<String, (u64, u64)> {
    rows.iter()
        .filter(|r| r.get("SRC_IP").is_some_and(|a| a.starts_with("198.18.") || a.starts_with("2001:db8:")))
        .map(|r| {
            let n = |k: &str| r.get(k).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
            (row_key(r), (n("PACKETS"), n("BYTES")))
        })
        .collect()
}

/// Polls the table until it equals `want` (the memory plugin harvests the workers' shards on
/// query, but frames may still be in flight in the kernel ring or a worker queue).
fn settle(pipe: &Path, want: &BTreeMap<String, (u64, u64)>, timeout: Duration) {
    let t = Instant::now();
    loop {
        let got = query(pipe).map(|r| ours(&r));
        if got.as_ref() == Ok(want) {
            return;
        }
        if t.elapsed() > timeout {
            assert_eq!(got, Ok(want.clone()), "table behind {} never settled on the expected counts", pipe.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the flow's frames are wrapped in between their VLAN tags and the IP packet.
enum Encap {
    None,
    Pppoe(u16),
    Mpls(&'static [u32]),
}

struct Flow {
    spec: FrameSpec,
    encap: Encap,
    count: u64,
    /// IP total length (v4) or payload length + 40 (v6): what pmacct counts as bytes.
    ip_len: u64,
    key_a: &'static str,
    /// Row in plugin b's table (filter `src net 198.18.1.0/24 and udp`), if it passes.
    key_b: Option<&'static str>,
}

impl Flow {
    fn frame(&self) -> Vec<u8> {
        let f = build(&self.spec);
        match self.encap {
            Encap::None => f,
            Encap::Pppoe(session) => xacct_perf::traffic::pppoe(&f, self.spec.vlans.len(), session),
            Encap::Mpls(labels) => xacct_perf::traffic::mpls(&f, self.spec.vlans.len(), labels),
        }
    }

    /// The row of plugin c (`src_host,mpls_label_top,mpls_label_bottom,mpls_stack_depth`).
    fn key_c(&self) -> String {
        let src = self.key_a.split(' ').find_map(|w| w.strip_prefix("SRC_IP=")).expect("SRC_IP in key_a");
        let (top, bottom, depth) = match self.encap {
            Encap::Mpls(l) => (l[0], l[l.len() - 1], l.len()),
            _ => (0, 0, 0),
        };
        format!("MPLS_LABEL_BOTTOM={bottom} MPLS_LABEL_TOP={top} MPLS_STACK_DEPTH={depth} SRC_IP={src}")
    }
}

fn v4(a: [u8; 4], b: [u8; 4]) -> L3 {
    L3::V4 { src: a, dst: b, tos: 0 }
}

fn v6(last_src: u16, last_dst: u16) -> L3 {
    let mk = |x: u16| {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[12..14].copy_from_slice(&1u16.to_be_bytes());
        a[14..].copy_from_slice(&x.to_be_bytes());
        a
    };
    L3::V6 { src: mk(last_src), dst: mk(last_dst), tclass: 0 }
}

fn flows() -> Vec<Flow> {
    vec![
        Flow {
            spec: spec(
                vec![],
                v4([198, 18, 1, 1], [198, 18, 2, 1]),
                L4::Tcp { sport: 40001, dport: 80, flags: 0x18 },
                100,
            ),
            count: 5,
            ip_len: 20 + 20 + 100,
            key_a: "DST_IP=198.18.2.1 DST_PORT=80 PROTOCOL=tcp SRC_IP=198.18.1.1 SRC_PORT=40001",
            key_b: None,
            encap: Encap::None,
        },
        Flow {
            spec: spec(vec![], v4([198, 18, 1, 2], [198, 18, 2, 2]), L4::Udp { sport: 40002, dport: 53 }, 30),
            count: 7,
            ip_len: 20 + 8 + 30,
            key_a: "DST_IP=198.18.2.2 DST_PORT=53 PROTOCOL=udp SRC_IP=198.18.1.2 SRC_PORT=40002",
            key_b: Some("DST_PORT=53 PROTOCOL=udp SRC_IP=198.18.1.2"),
            encap: Encap::None,
        },
        // Padded to Ethernet's 60-byte minimum on the wire; bytes must still be the IP length.
        Flow {
            spec: spec(vec![], v4([198, 18, 1, 3], [198, 18, 2, 3]), L4::Udp { sport: 40003, dport: 5353 }, 0),
            count: 3,
            ip_len: 20 + 8,
            key_a: "DST_IP=198.18.2.3 DST_PORT=5353 PROTOCOL=udp SRC_IP=198.18.1.3 SRC_PORT=40003",
            key_b: Some("DST_PORT=5353 PROTOCOL=udp SRC_IP=198.18.1.3"),
            encap: Encap::None,
        },
        // VLAN-tagged flows come from outside 198.18.1.0/24 so plugin b's answer does not
        // depend on how a filter without the `vlan` keyword treats tagged frames.
        Flow {
            spec: spec(
                vec![42],
                v4([198, 18, 3, 1], [198, 18, 2, 4]),
                L4::Tcp { sport: 40004, dport: 443, flags: 0x10 },
                10,
            ),
            count: 4,
            ip_len: 20 + 20 + 10,
            key_a: "DST_IP=198.18.2.4 DST_PORT=443 PROTOCOL=tcp SRC_IP=198.18.3.1 SRC_PORT=40004",
            key_b: None,
            encap: Encap::None,
        },
        Flow {
            spec: spec(vec![100, 200], v4([198, 18, 3, 2], [198, 18, 2, 5]), L4::Udp { sport: 40007, dport: 4789 }, 50),
            count: 3,
            ip_len: 20 + 8 + 50,
            key_a: "DST_IP=198.18.2.5 DST_PORT=4789 PROTOCOL=udp SRC_IP=198.18.3.2 SRC_PORT=40007",
            key_b: None,
            encap: Encap::None,
        },
        Flow {
            spec: spec(vec![], v6(1, 2), L4::Udp { sport: 40005, dport: 123 }, 20),
            count: 6,
            ip_len: 40 + 8 + 20,
            key_a: "DST_IP=2001:db8::1:2 DST_PORT=123 PROTOCOL=udp SRC_IP=2001:db8::1:1 SRC_PORT=40005",
            key_b: None,
            encap: Encap::None,
        },
        Flow {
            spec: spec(vec![43], v6(3, 4), L4::Tcp { sport: 40006, dport: 22, flags: 0x02 }, 0),
            count: 2,
            ip_len: 40 + 20,
            key_a: "DST_IP=2001:db8::1:4 DST_PORT=22 PROTOCOL=tcp SRC_IP=2001:db8::1:3 SRC_PORT=40006",
            key_b: None,
            encap: Encap::None,
        },
        // PPPoE and MPLS, also behind VLAN tags. The UDP flow from 198.18.1.0/24 inside PPPoE
        // is not plugin b's: without `pppoes` libpcap's `src net` does not look inside PPPoE.
        Flow {
            spec: spec(
                vec![],
                v4([198, 18, 5, 1], [198, 18, 2, 7]),
                L4::Tcp { sport: 40009, dport: 80, flags: 0x18 },
                40,
            ),
            encap: Encap::Pppoe(0x1234),
            count: 3,
            ip_len: 20 + 20 + 40,
            key_a: "DST_IP=198.18.2.7 DST_PORT=80 PROTOCOL=tcp SRC_IP=198.18.5.1 SRC_PORT=40009",
            key_b: None,
        },
        Flow {
            spec: spec(vec![], v4([198, 18, 1, 9], [198, 18, 2, 8]), L4::Udp { sport: 40010, dport: 53 }, 12),
            encap: Encap::Pppoe(7),
            count: 2,
            ip_len: 20 + 8 + 12,
            key_a: "DST_IP=198.18.2.8 DST_PORT=53 PROTOCOL=udp SRC_IP=198.18.1.9 SRC_PORT=40010",
            key_b: None,
        },
        Flow {
            spec: spec(vec![44], v6(5, 6), L4::Udp { sport: 40011, dport: 123 }, 8),
            encap: Encap::Pppoe(9),
            count: 2,
            ip_len: 40 + 8 + 8,
            key_a: "DST_IP=2001:db8::1:6 DST_PORT=123 PROTOCOL=udp SRC_IP=2001:db8::1:5 SRC_PORT=40011",
            key_b: None,
        },
        Flow {
            spec: spec(vec![], v4([198, 18, 5, 2], [198, 18, 2, 9]), L4::Udp { sport: 40012, dport: 514 }, 30),
            encap: Encap::Mpls(&[100]),
            count: 4,
            ip_len: 20 + 8 + 30,
            key_a: "DST_IP=198.18.2.9 DST_PORT=514 PROTOCOL=udp SRC_IP=198.18.5.2 SRC_PORT=40012",
            key_b: None,
        },
        Flow {
            spec: spec(vec![45], v6(7, 8), L4::Tcp { sport: 40013, dport: 179, flags: 0x02 }, 0),
            encap: Encap::Mpls(&[16, 17, 1048575]),
            count: 3,
            ip_len: 40 + 20,
            key_a: "DST_IP=2001:db8::1:8 DST_PORT=179 PROTOCOL=tcp SRC_IP=2001:db8::1:7 SRC_PORT=40013",
            key_b: None,
        },
        // Deeper than the XDP program walks: it goes up to userspace over AF_XDP.
        Flow {
            spec: spec(vec![], v4([198, 18, 5, 3], [198, 18, 2, 10]), L4::Udp { sport: 40014, dport: 4000 }, 0),
            encap: Encap::Mpls(&[21, 22, 23, 24, 25]),
            count: 2,
            ip_len: 20 + 8,
            key_a: "DST_IP=198.18.2.10 DST_PORT=4000 PROTOCOL=udp SRC_IP=198.18.5.3 SRC_PORT=40014",
            key_b: None,
        },
    ]
}

fn setup_namespace() -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
    // Before the veths exist, so they are born without IPv6 (no router solicitations, no DAD).
    sysctl_off("/proc/sys/net/ipv6/conf/all/disable_ipv6");
    sysctl_off("/proc/sys/net/ipv6/conf/default/disable_ipv6");
    sh(&["ip", "link", "set", "lo", "up"]);
    sh(&["ip", "link", "add", TX, "type", "veth", "peer", "name", RX]);
    for dev in [TX, RX] {
        sysctl_off(&format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"));
        sh(&["ip", "link", "set", dev, "up"]);
    }
    Ok(())
}

/// `method` is the `capture_method`; `source` how xacctd names the capture in its log.
fn live_capture_in_namespace(method: &str, source: &str, extra: &str) {
    if let Err(why) = setup_namespace() {
        skip(&format!("live_veth needs root: {why}"));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    if method == "auto" {
        occupy_xdp(dir.path());
    }
    let (pipe_a, pipe_b, pipe_c) = (dir.path().join("a.pipe"), dir.path().join("b.pipe"), dir.path().join("c.pipe"));
    let conf = dir.path().join("xacctd.conf");
    std::fs::write(
        &conf,
        format!(
            "! live capture on a veth\ndaemonize: false\npcap_interface: {RX}\ncapture_method: {method}\n{extra}workers: 2\nplugins: memory[a], memory[b], memory[c]\n\
             aggregate[a]: src_host,dst_host,src_port,dst_port,proto\nimt_path[a]: {}\n\
             aggregate[b]: src_host,dst_port,proto\naggregate_filter[b]: src net 198.18.1.0/24 and udp\nimt_path[b]: {}\n\
             aggregate[c]: src_host,mpls_label_top,mpls_label_bottom,mpls_stack_depth\nimt_path[c]: {}\n",
            pipe_a.display(),
            pipe_b.display(),
            pipe_c.display()
        ),
    )
    .expect("write config");
    let log = dir.path().join("xacctd.log");
    let mut daemon = Daemon::start(&conf, &log);
    daemon.wait_log(&format!("capturing from {source}"), Duration::from_secs(20));
    if method == "auto" {
        daemon.wait_log("falling back to libpcap", Duration::from_secs(1));
    }

    let flows = flows();
    let mut tx = pcap::Capture::from_device(TX).and_then(|c| c.open()).expect("open the sending end with libpcap");
    // Interleave the flows, as on a real link, and add ARP that no IP aggregate may count.
    let frames: Vec<Vec<u8>> = flows.iter().map(Flow::frame).collect();
    let mut sent = 0u64;
    for round in 0..flows.iter().map(|f| f.count).max().unwrap_or(0) {
        for (f, frame) in flows.iter().zip(&frames) {
            if round < f.count {
                tx.sendpacket(frame.as_slice()).expect("inject frame");
                sent += 1;
            }
        }
        if round < 2 {
            tx.sendpacket(arp([2, 0, 0, 0, 0, 1], [198, 18, 1, 1], [198, 18, 2, 1])).expect("inject arp");
            sent += 1;
        }
    }

    // Two UDP datagrams in fragments: one in order, the other with its later fragment first.
    // Every method must count all four fragments under the datagrams' ports (XDP: the first
    // in the kernel, the second through userspace's fragment table).
    let whole = build(&spec(vec![], v4([198, 18, 4, 1], [198, 18, 2, 6]), L4::Udp { sport: 40008, dport: 9000 }, 200));
    let mut frag_bytes = 0;
    for id in [1u16, 2] {
        let mut w = whole.clone();
        w[18..20].copy_from_slice(&id.to_be_bytes());
        let (first, later) = xacct_perf::traffic::fragment_v4(&w).expect("fragment");
        let order = if id == 1 { [&first, &later] } else { [&later, &first] };
        for f in order {
            tx.sendpacket(f.as_slice()).expect("inject fragment");
            frag_bytes += u64::from(u16::from_be_bytes([f[16], f[17]]));
            sent += 1;
        }
    }

    let mut want_a: BTreeMap<String, (u64, u64)> =
        flows.iter().map(|f| (f.key_a.to_string(), (f.count, f.count * f.ip_len))).collect();
    want_a.insert(
        "DST_IP=198.18.2.6 DST_PORT=9000 PROTOCOL=udp SRC_IP=198.18.4.1 SRC_PORT=40008".to_string(),
        (4, frag_bytes),
    );
    let want_b: BTreeMap<String, (u64, u64)> =
        flows.iter().filter_map(|f| f.key_b.map(|k| (k.to_string(), (f.count, f.count * f.ip_len)))).collect();
    assert_eq!(want_b.len(), 2, "the test's own expectation for plugin b");
    let mut want_c: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for f in &flows {
        let e = want_c.entry(f.key_c()).or_default();
        e.0 += f.count;
        e.1 += f.count * f.ip_len;
    }
    let e = want_c
        .entry("MPLS_LABEL_BOTTOM=0 MPLS_LABEL_TOP=0 MPLS_STACK_DEPTH=0 SRC_IP=198.18.4.1".to_string())
        .or_default();
    e.0 += 4;
    e.1 += frag_bytes;
    settle(&pipe_a, &want_a, Duration::from_secs(20));
    settle(&pipe_b, &want_b, Duration::from_secs(20));
    settle(&pipe_c, &want_c, Duration::from_secs(20));
    // Settled means nothing more arrives: a second look must not have grown.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(query(&pipe_a).map(|r| ours(&r)), Ok(want_a), "table a changed after settling");

    let log = daemon.terminate();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&format!("source {source}")) && l.contains("received"))
        .unwrap_or_else(|| panic!("no counters for {source} in the log:\n{log}"));
    eprintln!("live: sent {sent} frames; {line}");
    let n = |k: &str| counter(line, k).unwrap_or_else(|| panic!("no '{k}' counter in: {line}"));
    if method == "xdp" {
        // The kernel counted the packets; the source received flow records.
        assert!(n("xdp_seen") >= sent, "xdp_seen {} < sent {sent}: {line}", n("xdp_seen"));
        assert!(n("xdp_non_ip") >= 2, "our two ARP frames are non-IP: {line}");
        assert_eq!(n("xdp_malformed") + n("xdp_map_full_lost"), 0, "{line}");
        // The in-order datagram's later fragment got its ports in the kernel; the other one's
        // two fragments went up.
        assert!(n("xdp_fragment_ports") >= 1, "{line}");
        assert!(n("xdp_redirected") >= 2, "{line}");
        if extra.contains("xdp_flow_entries") {
            assert!(n("xdp_map_full") > 0 && n("xdp_redirected") >= n("xdp_map_full"), "no overflow to AF_XDP: {line}");
        }
        assert_eq!(n("processed"), n("received"), "{line}");
        return;
    }
    assert!(n("received") >= sent, "received {} < sent {sent}: {line}", n("received"));
    assert_eq!(n("processed"), n("received"), "{line}");
    assert_eq!(n("queue_dropped"), 0, "{line}");
    assert_eq!(n("kernel_dropped"), 0, "{line}");
    assert_eq!(n("malformed"), 0, "{line}");
    assert!(n("non_ip") >= 2, "our two ARP frames are non-IP: {line}");
}

/// Attaches a foreign XDP program (compiled here with clang) to the capture end, so xacctd's own
/// program cannot attach and `capture_method: auto` must fall back to libpcap.
fn occupy_xdp(dir: &Path) {
    let src = dir.join("foreign.c");
    let obj = dir.join("foreign.o");
    std::fs::write(&src, "__attribute__((section(\"xdp\"), used)) int foreign(void *ctx) { return 2; }\nchar _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n")
        .expect("write foreign.c");
    let st = std::process::Command::new("clang")
        .args(["-O2", "-target", "bpf", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status()
        .expect("clang (cargo xtask setup installs it)");
    assert!(st.success(), "clang could not build the foreign XDP program");
    sh(&["ip", "link", "set", "dev", RX, "xdpgeneric", "obj", obj.to_str().expect("utf8"), "sec", "xdp"]);
}

fn in_namespace(method: &'static str, source: String, extra: &'static str) {
    // The namespace belongs to this thread alone (and to the processes it spawns); it vanishes
    // with the thread, taking the veth pair along.
    let h = std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || live_capture_in_namespace(method, &source, extra))
        .expect("spawn netns thread");
    if let Err(panic) = h.join() {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn live_capture_on_veth_pair() {
    in_namespace("pcap", format!("interface {RX}"), "");
}

#[test]
fn live_capture_with_af_xdp() {
    in_namespace("afxdp", format!("AF_XDP {RX} queue 0"), "");
}

#[test]
fn live_capture_with_xdp_pre_aggregation() {
    in_namespace("xdp", format!("XDP {RX} (native mode)"), "");
}

/// Another XDP program already owns the interface: auto says why and captures with libpcap.
#[test]
fn auto_falls_back_to_libpcap_when_xdp_cannot_attach() {
    in_namespace("auto", format!("interface {RX}"), "");
}

/// Room in the kernel for 4 of the 7 flows (2 slots in the receiving CPU's table, 2 hash map
/// entries): the overflow goes up over AF_XDP, and the tables are still exact.
#[test]
fn xdp_flow_map_overflow_goes_to_af_xdp_without_loss() {
    in_namespace("xdp", format!("XDP {RX} (native mode)"), "xdp_flow_entries: 2\n");
}

/// An XDP capture of every frame of [`flows`] by a daemon with one memory table at `pipe`.
struct XdpRun {
    _dir: tempfile::TempDir,
    daemon: Daemon,
    pipe: std::path::PathBuf,
    flows: Vec<Flow>,
    ip_frames: u64,
}

/// In a fresh namespace: starts xacctd with `capture_method: xdp` and `conf` (which must name
/// `imt_path: {pipe}`), waits for `ready` in its log, then sends every frame of [`flows`].
/// None when the namespace cannot be made (skipped).
fn xdp_run(conf: &str, ready: &str) -> Option<XdpRun> {
    if let Err(why) = setup_namespace() {
        skip(&format!("live_veth needs root: {why}"));
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pipe = dir.path().join("x.pipe");
    let path = dir.path().join("xacctd.conf");
    let body = conf.replace("{pipe}", &pipe.display().to_string());
    std::fs::write(&path, format!("pcap_interface: {RX}\ncapture_method: xdp\n{body}")).expect("write config");
    let mut daemon = Daemon::start(&path, &dir.path().join("xacctd.log"));
    daemon.wait_log(ready, Duration::from_secs(20));
    daemon.wait_log(&format!("capturing from XDP {RX}"), Duration::from_secs(20));
    let flows = flows();
    let mut tx = pcap::Capture::from_device(TX).and_then(|c| c.open()).expect("open the sending end");
    let mut ip_frames = 0u64;
    for f in &flows {
        for _ in 0..f.count {
            tx.sendpacket(f.frame().as_slice()).expect("inject frame");
            ip_frames += 1;
        }
    }
    Some(XdpRun { _dir: dir, daemon, pipe, flows, ip_frames })
}

/// Stops the daemon and returns its XDP source's counter line.
fn xdp_counters(daemon: Daemon) -> String {
    let log = daemon.terminate();
    log.lines()
        .rev()
        .find(|l| l.contains(&format!("source XDP {RX}")) && l.contains("xdp_seen"))
        .unwrap_or_else(|| panic!("no XDP counters in the log:\n{log}"))
        .to_string()
}

/// Runs `f` on a thread of its own, whose network namespace vanishes with it.
fn in_own_namespace(f: fn()) {
    let h = std::thread::Builder::new().name("netns".into()).spawn(f).expect("spawn netns thread");
    if let Err(panic) = h.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Every plugin filters, so xacctd derives kernel pre-filter rules from the filters: what no
/// plugin wants is dropped in the kernel (counted), and the table is still exact.
#[test]
fn xdp_prefilter_drops_what_no_plugin_wants() {
    in_own_namespace(|| {
        let conf = "plugins: memory[p]\naggregate[p]: src_host,dst_host,src_port,dst_port,proto\n\
                    aggregate_filter[p]: src net 198.18.1.0/24 and udp\nimt_path[p]: {pipe}\n";
        let Some(run) = xdp_run(conf, "XDP pre-filter") else { return };
        let want: BTreeMap<String, (u64, u64)> = run
            .flows
            .iter()
            .filter(|f| f.key_b.is_some())
            .map(|f| (f.key_a.to_string(), (f.count, f.count * f.ip_len)))
            .collect();
        settle(&run.pipe, &want, Duration::from_secs(20));
        let line = xdp_counters(run.daemon);
        eprintln!("prefilter: {line}");
        let n = |k: &str| counter(&line, k).unwrap_or_else(|| panic!("no '{k}' counter in: {line}"));
        assert!(n("xdp_prefiltered") > 0, "nothing pre-filtered: {line}");
        assert_eq!(n("xdp_prefiltered") + n("xdp_aggregated") + n("xdp_redirected"), run.ip_frames, "{line}");
    });
}

/// A plugin that needs every packet (here for the `flows` counter) makes the XDP program hand
/// every admitted packet up over AF_XDP; nothing is lost and flows are counted per packet.
#[test]
fn xdp_hands_every_packet_up_when_a_plugin_needs_it() {
    in_own_namespace(|| {
        let conf = "aggregate: src_host,dst_host,flows\nimt_path: {pipe}\n";
        let Some(run) = xdp_run(conf, "every admitted packet goes to userspace") else { return };
        // Every flow of the test is one connection: FLOWS sums to the number of flows.
        let t = std::time::Instant::now();
        let (packets, flow_starts) = loop {
            let rows = query(&run.pipe).unwrap_or_default();
            let sum = |k: &str| rows.iter().filter_map(|r| r.get(k).and_then(|v| v.parse::<u64>().ok())).sum::<u64>();
            let got = (sum("PACKETS"), sum("FLOWS"));
            if got.0 >= run.ip_frames || t.elapsed() > Duration::from_secs(20) {
                break got;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!((packets, flow_starts), (run.ip_frames, run.flows.len() as u64));
        let line = xdp_counters(run.daemon);
        let n = |k: &str| counter(&line, k).unwrap_or_else(|| panic!("no '{k}' counter in: {line}"));
        assert_eq!((n("xdp_redirected"), n("xdp_aggregated")), (run.ip_frames, 0), "{line}");
    });
}

/// `xdp_classify_packets: 3`: the first three packets of every stream, both directions
/// together, go up over AF_XDP (where classifiers will see their payload) and the rest are
/// counted in the kernel; the table is exact whichever path counted a packet.
#[test]
fn xdp_hands_each_streams_first_packets_up_for_classification() {
    in_own_namespace(|| {
        let conf = "xdp_classify_packets: 3\naggregate: src_host,dst_host,src_port,dst_port,proto\nimt_path: {pipe}\n";
        let Some(run) = xdp_run(conf, "for classification") else { return };
        // The reply direction of the first flow (5 packets out): 4 packets back, one stream.
        let out = &run.flows[0];
        let L3::V4 { src, dst, .. } = out.spec.l3 else { panic!("flow 0 is IPv4") };
        let back = spec(vec![], v4(dst, src), L4::Tcp { sport: 80, dport: 40001, flags: 0x12 }, 100);
        let mut tx = pcap::Capture::from_device(TX).and_then(|c| c.open()).expect("open the sending end");
        for _ in 0..4 {
            tx.sendpacket(build(&back).as_slice()).expect("inject reply");
        }
        let mut want: BTreeMap<String, (u64, u64)> =
            run.flows.iter().map(|f| (f.key_a.to_string(), (f.count, f.count * f.ip_len))).collect();
        want.insert(
            "DST_IP=198.18.1.1 DST_PORT=40001 PROTOCOL=tcp SRC_IP=198.18.2.1 SRC_PORT=80".into(),
            (4, 4 * out.ip_len),
        );
        settle(&run.pipe, &want, Duration::from_secs(20));
        // Per stream min(3, packets): the first flow and its reply are one stream of 9.
        // Frames under more labels than the kernel walks go up whole, not for classification.
        let deep = |f: &Flow| matches!(f.encap, Encap::Mpls(l) if l.len() > 4);
        let mut streams: Vec<u64> = run.flows.iter().map(|f| if deep(f) { 0 } else { f.count }).collect();
        streams[0] += 4;
        let classify: u64 = streams.iter().map(|&n| n.min(3)).sum();
        let up: u64 = run.flows.iter().filter(|f| deep(f)).map(|f| f.count).sum();
        assert!(up > 0, "the test needs a deep MPLS flow");
        let ip_frames = run.ip_frames + 4;
        let log = run.daemon.terminate();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains(&format!("source XDP {RX}")) && l.contains("xdp_seen"))
            .unwrap_or_else(|| panic!("no XDP counters in the log:\n{log}"));
        eprintln!("classify: {line}");
        let n = |k: &str| counter(line, k).unwrap_or_else(|| panic!("no '{k}' counter in: {line}"));
        assert_eq!(n("xdp_to_classify"), classify, "{line}");
        assert_eq!(n("xdp_redirected"), classify + up, "{line}");
        assert_eq!(n("xdp_aggregated"), ip_frames - classify - up, "{line}");
        // And the AF_XDP source received exactly those packets.
        let afxdp = log
            .lines()
            .rev()
            .find(|l| l.contains("source AF_XDP") && l.contains("received"))
            .unwrap_or_else(|| panic!("no AF_XDP source counters in the log:\n{log}"));
        assert_eq!(counter(afxdp, "received"), Some(classify + up), "{afxdp}");
    });
}

/// A flood of 20,000 new five-tuples under XDP pre-aggregation with room for 256 flows in the
/// kernel and 1,000 entries in the plugin's table: the flows the kernel cannot keep go up over
/// AF_XDP, the keys the table cannot keep go to its overflow entry, and the totals are still
/// every frame sent.
#[test]
fn xdp_flood_with_full_kernel_tables_and_a_full_plugin_table_keeps_totals_exact() {
    in_own_namespace(|| {
        const FLOOD: usize = 20_000;
        if let Err(why) = setup_namespace() {
            skip(&format!("live_veth needs root: {why}"));
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let pipe = dir.path().join("x.pipe");
        let conf = dir.path().join("xacctd.conf");
        std::fs::write(
            &conf,
            format!(
                "pcap_interface: {RX}\ncapture_method: xdp\nxdp_flow_entries: 256\nplugins: memory[a]\n\
                 aggregate[a]: src_host,dst_host,src_port,dst_port,proto\nmax_entries[a]: 1000\nimt_path[a]: {}\n",
                pipe.display()
            ),
        )
        .expect("write config");
        let mut daemon = Daemon::start(&conf, &dir.path().join("xacctd.log"));
        daemon.wait_log(&format!("capturing from XDP {RX}"), Duration::from_secs(20));
        let mut tx = pcap::Capture::from_device(TX).and_then(|c| c.open()).expect("open the sending end");
        for (i, f) in xacct_perf::traffic::small64(FLOOD, 0, 1).iter().enumerate() {
            tx.sendpacket(f.data.as_slice()).expect("inject frame");
            if i % 500 == 499 {
                // Below what the AF_XDP ring holds between two wake-ups of the worker.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let t = Instant::now();
        let (rows, packets) = loop {
            let rows = query(&pipe).expect("query");
            // small64's sources are 10.0.x.y: nothing else in the namespace sends from there.
            let ours: Vec<_> = rows
                .iter()
                .filter(|r| r.get("SRC_IP").is_some_and(|a| a.starts_with("10.0.") || a == "overflow"))
                .cloned()
                .collect();
            let packets: u64 = ours.iter().map(|r| r["PACKETS"].parse::<u64>().expect("packets")).sum();
            if packets >= FLOOD as u64 || t.elapsed() > Duration::from_secs(30) {
                break (ours, packets);
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        let status = try_client(&xacct_bin(), &pipe, &["-t"]).expect("status");
        let line = xdp_counters(daemon);
        let n = |name: &str| counter(&line, name).unwrap_or_else(|| panic!("no {name} in {line}"));
        assert_eq!(packets, FLOOD as u64, "{line}\n{status}");
        assert!(n("xdp_map_full") > 0 && n("xdp_redirected") >= n("xdp_map_full"), "{line}");
        assert_eq!(n("xdp_map_full_lost"), 0, "{line}");
        let overflow: Vec<_> = rows.iter().filter(|r| r["SRC_IP"] == "overflow").collect();
        assert_eq!(overflow.len(), 1, "{rows:?}");
        assert!(rows.len() <= 1001, "{}", rows.len());
        let over: u64 = overflow[0]["PACKETS"].parse().expect("packets");
        assert_eq!(Some(over), counter(&status, "overflow_packets"), "{status}");
        assert_eq!(over, FLOOD as u64 - (rows.len() as u64 - 1), "{status}");
    });
}

/// A mirror-port probe: XDP pre-aggregation with `xdp_action: drop` and an nfprobe plugin. No
/// frame goes up to userspace, yet the IPFIX export decodes to every packet sent, each flow
/// with its TCP flags and the seconds of its first and last packet (kept by the kernel).
#[test]
fn xdp_drop_probe_exports_flows_without_frames_in_userspace() {
    in_own_namespace(|| {
        if let Err(why) = setup_namespace() {
            skip(&format!("live_veth needs root: {why}"));
            return;
        }
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("receiver");
        rx.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
        let port = rx.local_addr().expect("addr").port();
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("xacctd.conf");
        std::fs::write(
            &conf,
            format!(
                "pcap_interface: {RX}\ncapture_method: xdp\nxdp_action: drop\nplugins: nfprobe[n]\n\
                 nfprobe_receiver[n]: 127.0.0.1:{port}\nnfprobe_version[n]: 10\n"
            ),
        )
        .expect("write config");
        let mut daemon = Daemon::start(&conf, &dir.path().join("xacctd.log"));
        daemon.wait_log(&format!("capturing from XDP {RX}"), Duration::from_secs(20));
        let mut tx = pcap::Capture::from_device(TX).and_then(|c| c.open()).expect("open the sending end");
        let frame = |sport: u16, flags: u8| {
            build(&spec(
                vec![],
                L3::V4 { src: [10, 9, 0, 1], dst: [10, 9, 0, 2], tos: 0 },
                L4::Tcp { sport, dport: 80, flags },
                100,
            ))
        };
        // Flow 1: SYN now, ACKs, FIN 2.5 seconds later; flow 2: ten ACKs at once.
        tx.sendpacket(frame(1111, 0x02).as_slice()).expect("send");
        for _ in 0..10 {
            tx.sendpacket(frame(2222, 0x10).as_slice()).expect("send");
        }
        std::thread::sleep(Duration::from_millis(2500));
        for _ in 0..4 {
            tx.sendpacket(frame(1111, 0x10).as_slice()).expect("send");
        }
        tx.sendpacket(frame(1111, 0x11).as_slice()).expect("send");
        std::thread::sleep(Duration::from_millis(1500));
        let line = xdp_counters(daemon);
        let n = |name: &str| counter(&line, name).unwrap_or_else(|| panic!("no {name} in {line}"));
        assert_eq!(n("xdp_redirected"), 0, "nothing goes up to userspace: {line}");
        let mut flows: BTreeMap<u16, xacct_wire::netflow::FlowRecord> = BTreeMap::new();
        for r in support::netflow_records(&rx).into_iter().filter(|r| r.dst_port == 80) {
            let e = flows.entry(r.src_port).or_insert(xacct_wire::netflow::FlowRecord {
                packets: 0,
                bytes: 0,
                tcp_flags: 0,
                ..r
            });
            e.packets += r.packets;
            e.bytes += r.bytes;
            e.tcp_flags |= r.tcp_flags;
            e.start_ms = e.start_ms.min(r.start_ms);
            e.end_ms = e.end_ms.max(r.end_ms);
        }
        let (a, b) = (flows.get(&1111).expect("flow 1"), flows.get(&2222).expect("flow 2"));
        assert_eq!((a.packets, a.tcp_flags, b.packets, b.tcp_flags), (6, 0x13, 10, 0x10), "{flows:?}");
        // The kernel's first and last packet times, at second resolution.
        let span = a.end_ms - a.start_ms;
        assert!((2000..=4000).contains(&span), "flow 1 lasted {span} ms: {a:?}");
        assert!(b.end_ms - b.start_ms <= 1000, "{b:?}");
    });
}
