//! pre_tag_map end to end on a savefile: flow control, keys pmacctd 1.7.7 ignores, per-plugin
//! tag filters (redirection), post_tag2, the label primitive in memory and print tables, the
//! client's `-c tag -N`; and a map that fails to reload keeps the old one.

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
