//! pre_tag_map end to end on a savefile: flow control, keys pmacctd 1.7.7 ignores, per-plugin
//! tag filters (redirection), post_tag2, the label primitive in memory and print tables, the
//! client's `-c tag -N`; and a map that fails to reload keeps the old one.

mod sqlsupport;
mod support;

use std::path::Path;
use std::time::Duration;
use support::{client, counter, query_csv, savefile_conf, sorted_rows, wait_file, xacct_bin, Daemon};
use xacct_perf::traffic::{build, write_pcap, Frame, FrameSpec, L3, L4};

const UNICAST: [u8; 6] = [2, 0, 0, 0, 0, 2];
const MULTICAST: [u8; 6] = [1, 0, 0x5e, 0, 0, 1];

struct Case {
    spec: FrameSpec,
    count: usize,
    /// What the map below gives: tag, tag2, label.
    tags: (u64, u64, &'static str),
}

fn case(
    vlans: Vec<u16>,
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    l4: L4,
    count: usize,
    tags: (u64, u64, &'static str),
) -> Case {
    let spec =
        FrameSpec { src_mac: [2, 0, 0, 0, 0, 1], dst_mac, vlans, l3: L3::V4 { src, dst, tos: 0 }, l4, payload: 20 };
    Case { spec, count, tags }
}

/// The map's rules and, per frame kind, the tags they give (worked out from pmacct's
/// evaluation rules in compat-wave2.md §1.3).
const MAP: &str = "\
! vlan 100 jumps to the rule labelled lbl; the jump keeps tag 100
id=100 vlan=100 jeq=lbl
id=3000 filter='net 10.0.0.0/8'
set_label=multi is_multicast=true
id=5 ip_proto=udp
! no match key: every record that gets here matches
set_tag2=7 label=lbl jeq=l2
set_label=blue label=l2
";

fn cases() -> Vec<Case> {
    let udp = L4::Udp { sport: 1000, dport: 53 };
    let tcp = L4::Tcp { sport: 1000, dport: 80, flags: 0x18 };
    vec![
        // vlan 100: id=100, then lbl (tag2 7), then l2 (label blue).
        case(vec![100], UNICAST, [10, 0, 0, 1], [192, 168, 1, 2], udp, 3, (100, 7, "blue")),
        // net 10/8 on the destination: first match, stop.
        case(vec![], UNICAST, [172, 16, 0, 1], [10, 0, 0, 9], tcp, 2, (3000, 0, "")),
        // multicast destination MAC: a label only.
        case(vec![], MULTICAST, [198, 18, 0, 1], [198, 18, 0, 2], udp, 4, (0, 0, "multi")),
        // unicast UDP elsewhere: id=5.
        case(vec![], UNICAST, [198, 18, 0, 5], [198, 18, 0, 6], udp, 1, (5, 0, "")),
        // TCP elsewhere: falls to the key-less rule, then its jump.
        case(vec![], UNICAST, [198, 18, 0, 7], [198, 18, 0, 8], tcp, 5, (0, 7, "blue")),
    ]
}

fn ip_len(c: &Case) -> u64 {
    (build(&c.spec).len() - 14 - 4 * c.spec.vlans.len()) as u64
}

fn src(c: &Case) -> String {
    match c.spec.l3 {
        L3::V4 { src, .. } => std::net::Ipv4Addr::from(src).to_string(),
        L3::V6 { src, .. } => std::net::Ipv6Addr::from(src).to_string(),
    }
}

fn write_frames(path: &Path, cases: &[Case]) {
    let mut frames = Vec::new();
    for c in cases {
        for _ in 0..c.count {
            frames.push(Frame { ts_sec: 1_700_000_000, ts_usec: frames.len() as i64, data: build(&c.spec) });
        }
    }
    write_pcap(path, &frames).expect("pcap");
}

/// Expected CSV rows `tag,tag2,label,src,packets,bytes` of the cases `keep` takes.
fn rows(cases: &[Case], keep: impl Fn(&Case) -> bool, post_tag2: Option<u64>) -> Vec<String> {
    let mut v: Vec<String> = cases
        .iter()
        .filter(|c| keep(c))
        .map(|c| {
            let (t, t2, l) = c.tags;
            format!("{t},{},{l},{},{},{}", post_tag2.unwrap_or(t2), src(c), c.count, c.count as u64 * ip_len(c))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn map_flow_control_filters_and_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cases = cases();
    let pcap = d.join("t.pcap");
    write_frames(&pcap, &cases);
    let map = d.join("pretag.map");
    std::fs::write(&map, MAP).expect("map");
    let pipe = |n: &str| d.join(format!("{n}.pipe"));
    let print = d.join("print.csv");
    let conf = d.join("x.conf");
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "pcap_savefile_wait: true\npre_tag_map: {map}\nplugins: memory[all], memory[t100], memory[untag], print[p]\n\
             aggregate: tag,tag2,label,src_host\n\
             imt_path[all]: {all}\nimt_path[t100]: {t100}\nimt_path[untag]: {untag}\n\
             pre_tag_filter[t100]: 100-200\n\
             pre_tag_filter[untag]: 0\npre_tag_label_filter[untag]: -blue\n\
             print_output[p]: csv\nprint_output_file[p]: {print}\nprint_output_separator[p]: ;\nprint_refresh_time[p]: 1\npost_tag2[p]: 9\n",
            map = map.display(),
            all = pipe("all").display(),
            t100 = pipe("t100").display(),
            untag = pipe("untag").display(),
            print = print.display(),
        ),
    );
    let mut x = Daemon::start(&conf, &d.join("x.log"));
    x.wait_log("finished reading", Duration::from_secs(30));

    let all = query_csv(&pipe("all"));
    assert_eq!(all.lines().next(), Some("TAG,TAG2,LABEL,SRC_IP,PACKETS,BYTES"), "{all}");
    assert_eq!(sorted_rows(&all), rows(&cases, |_| true, None));
    // pre_tag_filter 100-200: only the vlan 100 frames.
    assert_eq!(sorted_rows(&query_csv(&pipe("t100"))), rows(&cases, |c| (100..=200).contains(&c.tags.0), None));
    // Untagged and not labelled blue.
    assert_eq!(
        sorted_rows(&query_csv(&pipe("untag"))),
        rows(&cases, |c| c.tags.0 == 0 && !c.tags.2.split(',').any(|l| l == "blue"), None)
    );
    // The client's JSON names and its per-tag counters.
    let json = client(&xacct_bin(), &pipe("all"), &["-s", "-O", "json"]);
    let line = json.lines().find(|l| l.contains("\"multi\"")).unwrap_or_else(|| panic!("{json}"));
    assert!(
        line.contains("\"tag\": 0") && line.contains("\"tag2\": 0") && line.contains("\"label\": \"multi\""),
        "{line}"
    );
    // `-N` alone prints packets, bytes, flows and entries per query.
    let packets = |q: &[&str]| -> u64 {
        let mut args = q.to_vec();
        args.extend(["-n", "packets"]);
        let out = client(&xacct_bin(), &pipe("all"), &args);
        out.trim().parse().unwrap_or_else(|_| panic!("{q:?}: {out}"))
    };
    let sum = |f: &dyn Fn(&Case) -> bool| cases.iter().filter(|c| f(c)).map(|c| c.count as u64).sum::<u64>();
    assert_eq!(packets(&["-c", "tag", "-N", "100"]), sum(&|c| c.tags.0 == 100));
    assert_eq!(packets(&["-c", "tag2", "-N", "7"]), sum(&|c| c.tags.1 == 7));
    assert_eq!(packets(&["-c", "label", "-N", "blue"]), sum(&|c| c.tags.2 == "blue"));
    assert_eq!(packets(&["-c", "label", "-N", "never-seen"]), 0);

    // The print plugin: its own separator (labels may hold commas), post_tag2 over the map's.
    wait_file(&print, "PACKETS", Duration::from_secs(10));
    let mut got = Vec::new();
    for _ in 0..50 {
        let t = std::fs::read_to_string(&print).unwrap_or_default();
        got = sorted_rows(&t.replace(';', ","));
        if got.len() == cases.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(got, rows(&cases, |_| true, Some(9)));
    x.terminate();
}

#[test]
fn bad_map_on_reload_keeps_the_old_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cases = cases();
    let pcap = d.join("t.pcap");
    write_frames(&pcap, &cases);
    let map = d.join("pretag.map");
    std::fs::write(&map, MAP).expect("map");
    let conf = d.join("x.conf");
    let pipe = d.join("m.pipe");
    // pcap_savefile_delay keeps the file unread until the reload has been tried.
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "pcap_savefile_wait: true\npcap_savefile_delay: 3\npre_tag_map: {}\naggregate: tag,tag2,label,src_host\nimt_path: {}\n",
            map.display(),
            pipe.display()
        ),
    );
    let mut x = Daemon::start(&conf, &d.join("x.log"));
    x.wait_log("map successfully (re)loaded with 6 entries", Duration::from_secs(10));
    std::fs::write(&map, format!("{MAP}id=1 vlan=5000\n")).expect("bad map");
    support::signal(x.pid(), nix::sys::signal::Signal::SIGUSR2);
    x.wait_log(&format!("{}:9: vlan", map.display()), Duration::from_secs(10));
    x.wait_log("finished reading", Duration::from_secs(30));
    assert_eq!(sorted_rows(&query_csv(&pipe)), rows(&cases, |_| true, None));
    let status = client(&xacct_bin(), &pipe, &["-t"]);
    assert_eq!(counter(&status, "maps_reload_failed"), Some(1), "{status}");
    assert_eq!(counter(&status, "maps_reloaded"), Some(0), "{status}");
    x.terminate();
}

// ---------------------------------------------------------------------------------------------
// Collectors: the seed's flow-control map on NetFlow and sFlow, exporter by exporter.

const SEED_MAP: &str = "\
id=8000 ip=192.168.1.1 in=10 jeq=eval_out return=true
id=8001 ip=192.168.1.1 in=20 jeq=eval_out return=true
id=9000 ip=192.168.1.1 out=1 label=eval_out
id=9001 ip=192.168.1.1 out=2
";

const ENGINE_MAP: &str = "\
id=1000 ip=192.168.1.1 engine_type=100 engine_id=1
id=3000 filter='net 10.0.0.0/8'
";

/// The tags each emission of a record from 192.168.1.1 gets under SEED_MAP (§1.3: a matching
/// `return=true` rule hands a copy to the plugins, then evaluation goes on at the label with
/// cleared tags; a record is then accounted once per emission).
fn seed_tags(inp: u32, out: u32) -> Vec<u64> {
    let tail = match out {
        1 => 9000,
        2 => 9001,
        _ => 0,
    };
    match inp {
        10 => vec![8000, tail],
        20 => vec![8001, tail],
        _ => vec![tail],
    }
}

const COMBOS: [(u32, u32); 8] = [(10, 1), (10, 2), (10, 3), (20, 1), (20, 2), (30, 1), (30, 2), (30, 3)];

/// `(src, [(tag, ...)])` expected rows of a `tag,src_host` table, built from the untagged
/// `src_host` table's counters and the tags each source's record gets.
fn tagged_rows(plain: &str, tags_of: &dyn Fn(&str) -> Vec<u64>, keep: &dyn Fn(u64) -> bool) -> Vec<String> {
    let mut v = Vec::new();
    for row in plain.lines().skip(1).filter(|l| !l.is_empty()) {
        let (src, counters) = row.split_once(',').expect("src_host row");
        for t in tags_of(src) {
            if keep(t) {
                v.push(format!("{t},{src},{counters}"));
            }
        }
    }
    v.sort();
    v
}

fn collector_conf(dir: &Path, listen: &str, engine: bool) -> std::path::PathBuf {
    let seed = dir.join("seed.map");
    std::fs::write(&seed, SEED_MAP).expect("seed map");
    let eng = dir.join("engine.map");
    std::fs::write(&eng, ENGINE_MAP).expect("engine map");
    // `return=true` hands every plugin a copy, so the reference table gets a map of its own
    // (an empty one: every record once, untagged).
    let empty = dir.join("empty.map");
    std::fs::write(&empty, "! nothing\n").expect("empty map");
    let pipe = |n: &str| dir.join(format!("{n}.pipe")).display().to_string();
    let mut c = format!(
        "daemonize: false\n{listen}pre_tag_map: {}\nplugins: memory[plain], memory[all], memory[ret], memory[rest]{}\n\
         aggregate: tag,src_host\naggregate[plain]: src_host\n\
         pre_tag_filter[ret]: 8000-8001\npre_tag_filter[rest]: -8000-8001\n",
        seed.display(),
        if engine { ", memory[eng]" } else { "" }
    );
    c.push_str(&format!("pre_tag_map[plain]: {}\n", empty.display()));
    for n in ["plain", "all", "ret", "rest", "eng"].into_iter().filter(|n| engine || *n != "eng") {
        c.push_str(&format!("imt_path[{n}]: {}\n", pipe(n)));
    }
    if engine {
        c.push_str(&format!("pre_tag_map[eng]: {}\n", eng.display()));
    }
    let conf = dir.join("c.conf");
    std::fs::write(&conf, c).expect("conf");
    conf
}

/// Waits until the plain table has `rows` rows and stopped changing; returns it.
fn settle(pipe: &Path, rows: usize) -> String {
    let t = std::time::Instant::now();
    loop {
        let s = query_csv(pipe);
        if sorted_rows(&s).len() >= rows {
            std::thread::sleep(Duration::from_millis(300));
            let again = query_csv(pipe);
            if again == s {
                return s;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(15), "{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks the all/ret/rest tables against the plain one: `tags_of` gives each source's tags.
fn check_seed_tables(dir: &Path, sources: usize, tags_of: &dyn Fn(&str) -> Vec<u64>) {
    let pipe = |n: &str| dir.join(format!("{n}.pipe"));
    let plain = settle(&pipe("plain"), sources);
    assert_eq!(sorted_rows(&plain).len(), sources, "{plain}");
    let all = settle(&pipe("all"), 1);
    assert_eq!(sorted_rows(&all), tagged_rows(&plain, tags_of, &|_| true));
    assert_eq!(sorted_rows(&query_csv(&pipe("ret"))), tagged_rows(&plain, tags_of, &|t| (8000..=8001).contains(&t)));
    assert_eq!(sorted_rows(&query_csv(&pipe("rest"))), tagged_rows(&plain, tags_of, &|t| !(8000..=8001).contains(&t)));
}

#[test]
fn netflow_seed_map_every_path_and_engine_rules() {
    use support::netns::{in_own_namespace, sh};
    use xacct_wire::netflow::{encode_v5, FlowRecord, NetflowHeader};
    in_own_namespace(|| {
        sh(&["ip", "link", "set", "lo", "up"]);
        sh(&["ip", "addr", "add", "192.168.1.1/32", "dev", "lo"]);
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let port = support::free_udp_port();
        let conf = collector_conf(dir, &format!("nfacctd_port: {port}\nnfacctd_ip: 0.0.0.0\n"), true);
        let mut d = Daemon::start(&conf, &dir.join("c.log"));
        d.wait_log("listening:", Duration::from_secs(20));
        let flow = |src: [u8; 4], inp: u32, out: u32, n: u64| FlowRecord {
            src_addr: std::net::Ipv4Addr::from(src).into(),
            dst_addr: "192.0.2.1".parse().unwrap(),
            input: inp,
            output: out,
            packets: n,
            bytes: 100 * n,
            ..FlowRecord::default()
        };
        let header = |engine_id: u8| NetflowHeader {
            version: 5,
            unix_secs: 1_700_000_000,
            engine_type: 100,
            engine_id,
            ..NetflowHeader::default()
        };
        // From 192.168.1.1: one flow per (in, out) path of the seed map, sources 172.16.0.i;
        // engine 100/1 for the first half, 100/2 for the rest.
        let mine: Vec<FlowRecord> = COMBOS
            .iter()
            .enumerate()
            .map(|(i, (a, b))| flow([172, 16, 0, i as u8 + 1], *a, *b, i as u64 + 1))
            .collect();
        // A 10/8 source (id=3000 of the engine map) with engine 100/2.
        let ten = flow([10, 1, 1, 1], 10, 1, 9);
        let from_us = std::net::UdpSocket::bind("192.168.1.1:0").expect("bind 192.168.1.1");
        from_us.send_to(&encode_v5(&header(1), &mine[..4]), ("127.0.0.1", port)).expect("send");
        from_us.send_to(&encode_v5(&header(2), &mine[4..]), ("127.0.0.1", port)).expect("send");
        from_us.send_to(&encode_v5(&header(2), &[ten]), ("127.0.0.1", port)).expect("send");
        // Another exporter: the seed's rules all need ip=192.168.1.1.
        let other = flow([172, 17, 0, 1], 10, 1, 3);
        support::send_udp(port, &[encode_v5(&header(1), &[other])]);

        let seed = |src: &str| -> Vec<u64> {
            match src.parse::<std::net::Ipv4Addr>().expect("v4").octets() {
                [172, 16, 0, i] => {
                    let (a, b) = COMBOS[usize::from(i) - 1];
                    seed_tags(a, b)
                }
                [10, 1, 1, 1] => seed_tags(10, 1),
                _ => vec![0],
            }
        };
        check_seed_tables(dir, COMBOS.len() + 2, &seed);
        // The per-plugin engine map replaces the global one for its plugin.
        let eng = |src: &str| -> Vec<u64> {
            match src.parse::<std::net::Ipv4Addr>().expect("v4").octets() {
                [172, 16, 0, i] if i <= 4 => vec![1000],
                [10, ..] => vec![3000],
                _ => vec![0],
            }
        };
        let plain = query_csv(&dir.join("plain.pipe"));
        assert_eq!(sorted_rows(&query_csv(&dir.join("eng.pipe"))), tagged_rows(&plain, &eng, &|_| true));
        d.terminate();
    });
}

#[test]
fn sflow_seed_map_every_path() {
    use xacct_wire::sflow::{DatagramBuilder, FlowSampleSpec};
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let port = support::free_udp_port();
    let conf = collector_conf(dir, &format!("sfacctd_port: {port}\nsfacctd_ip: 127.0.0.1\n"), false);
    let mut d = Daemon::start(&conf, &dir.join("c.log"));
    d.wait_log("listening:", Duration::from_secs(20));
    let frames: Vec<Vec<u8>> = (0..=COMBOS.len())
        .map(|i| {
            let l3 = L3::V4 { src: [172, 16, 0, i as u8 + 1], dst: [192, 0, 2, 1], tos: 0 };
            build(&support::spec(vec![], l3, L4::Udp { sport: 1, dport: 2 }, 10))
        })
        .collect();
    let mut dgrams = Vec::new();
    for (agent, range) in [("192.168.1.1", 0..COMBOS.len()), ("192.168.1.2", COMBOS.len()..COMBOS.len() + 1)] {
        let mut b = DatagramBuilder::new(agent.parse().unwrap(), 0, 1, 1000);
        for i in range {
            let (inp, out) = COMBOS.get(i).copied().unwrap_or((10, 1));
            b.flow_sample(&FlowSampleSpec {
                input: inp,
                output: out,
                ..FlowSampleSpec::ethernet(i as u32 + 1, &frames[i])
            });
        }
        dgrams.push(b.finish());
    }
    support::send_udp(port, &dgrams);
    let seed = |src: &str| -> Vec<u64> {
        match src.parse::<std::net::Ipv4Addr>().expect("v4").octets() {
            [172, 16, 0, i] if usize::from(i) <= COMBOS.len() => {
                let (a, b) = COMBOS[usize::from(i) - 1];
                seed_tags(a, b)
            }
            _ => vec![0],
        }
    };
    check_seed_tables(dir, COMBOS.len() + 1, &seed);
    d.terminate();
}

// ---------------------------------------------------------------------------------------------
// Live capture: every method gives the same tagged tables; reloads under traffic lose and
// double nothing.

fn live_conf(dir: &Path, method: &str, map: &Path, extra: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let pipe = dir.join(format!("{method}.pipe"));
    let conf = dir.join(format!("{method}.conf"));
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\npcap_interface: tg1\ncapture_method: {method}\nworkers: 2\npre_tag_map: {}\n{extra}\
             aggregate: tag,tag2,label,src_host\nimt_path: {}\n",
            map.display(),
            pipe.display()
        ),
    )
    .expect("conf");
    (conf, pipe)
}

fn capture_source(method: &str) -> &'static str {
    match method {
        "pcap" => "capturing from interface tg1",
        "afxdp" => "capturing from AF_XDP tg1",
        _ => "capturing from XDP tg1",
    }
}

/// Polls the memory table until its rows are `want`.
fn wait_table(pipe: &Path, want: &[String], what: &str) {
    let t = std::time::Instant::now();
    loop {
        let got = std::panic::catch_unwind(|| sorted_rows(&query_csv(pipe))).unwrap_or_default();
        if got == want {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{what}: table {got:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_capture_method_gives_the_same_tagged_table() {
    use support::netns::{in_own_namespace, veth};
    in_own_namespace(|| {
        veth("tg0", "tg1");
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let map = dir.join("pretag.map");
        std::fs::write(&map, MAP).expect("map");
        let cases = cases();
        let want = rows(&cases, |_| true, None);
        for method in ["pcap", "afxdp", "xdp"] {
            let (conf, pipe) = live_conf(dir, method, &map, "");
            let mut d = Daemon::start(&conf, &dir.join(format!("{method}.log")));
            d.wait_log(capture_source(method), Duration::from_secs(20));
            let mut tx = pcap::Capture::from_device("tg0").and_then(|c| c.open()).expect("open tg0");
            for c in &cases {
                let f = build(&c.spec);
                for _ in 0..c.count {
                    tx.sendpacket(f.as_slice()).expect("inject");
                }
            }
            wait_table(&pipe, &want, method);
            d.terminate();
        }
    });
}

/// A known stream over the veth while SIGUSR2 swaps two maps many times: every packet is
/// counted once, under the tag of one map or the other.
#[test]
fn reload_under_traffic_loses_and_doubles_nothing() {
    use support::netns::{in_own_namespace, veth};
    in_own_namespace(|| {
        veth("tg0", "tg1");
        for method in ["pcap", "xdp"] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path();
            let map = dir.join("pretag.map");
            let (a, b) = ("id=1 filter='udp'\nid=9\n", "id=2 ip_proto=udp\nid=9\n");
            std::fs::write(&map, a).expect("map");
            // Frequent harvests, so that XDP's records meet both maps too.
            let extra = if method == "xdp" { "xdp_harvest_interval: 0.05\n" } else { "" };
            let (conf, pipe) = live_conf(dir, method, &map, extra);
            let mut d = Daemon::start(&conf, &dir.join(format!("{method}.log")));
            d.wait_log(capture_source(method), Duration::from_secs(20));
            let l3 = L3::V4 { src: [198, 18, 0, 1], dst: [198, 18, 0, 2], tos: 0 };
            let frame = build(&support::spec(vec![], l3, L4::Udp { sport: 5, dport: 6 }, 50));
            let ip_len = (frame.len() - 14) as u64;
            const SENT: u64 = 20_000;
            let sender = std::thread::spawn(move || {
                let mut tx = pcap::Capture::from_device("tg0").and_then(|c| c.open()).expect("open tg0");
                for i in 0..SENT {
                    tx.sendpacket(frame.as_slice()).expect("inject");
                    if i % 500 == 0 {
                        // Spread the stream over the reloads.
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            });
            let mut reloads = 0u64;
            while !sender.is_finished() {
                reloads += 1;
                std::fs::write(&map, if reloads % 2 == 1 { b } else { a }).expect("map");
                support::signal(d.pid(), nix::sys::signal::Signal::SIGUSR2);
                support::wait_counter(&pipe, "maps_reloaded", reloads);
            }
            sender.join().expect("sender");
            assert!(reloads >= 5, "only {reloads} reloads during the stream");
            // Settled: the two tags together hold every packet once.
            let t = std::time::Instant::now();
            let (packets, rows) = loop {
                let csv = query_csv(&pipe);
                let rows = sorted_rows(&csv);
                let mut packets = 0;
                for r in &rows {
                    let f: Vec<&str> = r.split(',').collect();
                    assert!(matches!(f[0], "1" | "2"), "{method}: a packet tagged by neither map: {r}");
                    assert_eq!(f[4].parse::<u64>().unwrap() * ip_len, f[5].parse::<u64>().unwrap(), "{r}");
                    packets += f[4].parse::<u64>().unwrap();
                }
                if packets >= SENT || t.elapsed() > Duration::from_secs(20) {
                    break (packets, rows);
                }
                std::thread::sleep(Duration::from_millis(200));
            };
            assert_eq!(packets, SENT, "{method}: {rows:?}");
            let status = client(&xacct_bin(), &pipe, &["-t"]);
            assert_eq!(counter(&status, "maps_reload_failed"), Some(0), "{status}");
            eprintln!("{method}: {SENT} packets over {reloads} reloads: {rows:?}");
            d.terminate();
        }
    });
}

/// SQL: the tags and labels the map gives land in pmacct's columns (`tag` at version 9,
/// `tag2` and `label` extra columns), and `$tag`/`$tag2` in sql_table name tables by the
/// real values.
#[test]
fn sql_tables_by_tag_with_tag2_and_label_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cases = cases();
    let pcap = d.join("t.pcap");
    write_frames(&pcap, &cases);
    let map = d.join("pretag.map");
    std::fs::write(&map, MAP).expect("map");
    let db = sqlsupport::Db::sqlite(&d.join("t.db"));
    let conf = d.join("s.conf");
    savefile_conf(
        &conf,
        &pcap,
        &format!(
            "daemonize: false\npre_tag_map: {}\nplugins: sqlite3[s]\naggregate[s]: tag,tag2,label,src_host\n\
             sql_table_version[s]: 9\nsql_table_autocreate[s]: true\nsql_table[s]: tg_$tag_$tag2\n\
             sql_refresh_time[s]: 3600\nsql_spool_dir[s]: {}\n{}",
            map.display(),
            d.join("spool").display(),
            db.conf("s")
        ),
    );
    let log = Daemon::start(&conf, &d.join("s.log")).wait_exit(Duration::from_secs(60));
    assert!(!log.contains("ERROR") && !log.contains("WARN"), "{log}");
    for c in &cases {
        let (t, t2, l) = c.tags;
        let rows =
            db.rows(&format!("SELECT tag, tag2, label, packets, bytes FROM tg_{t}_{t2} WHERE ip_src = '{}'", src(c)));
        let want = vec![vec![
            t.to_string(),
            t2.to_string(),
            l.to_string(),
            c.count.to_string(),
            (c.count as u64 * ip_len(c)).to_string(),
        ]];
        assert_eq!(rows, want, "tg_{t}_{t2} for {}", src(c));
    }
}
